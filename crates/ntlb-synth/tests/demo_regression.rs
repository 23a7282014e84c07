//! `make regress` as a test: a short demo (zero-shot and CoOp seed 1 with λ = 0 and 1) on a
//! freshly generated world with the committed tiny CLIP stays within tolerance of the
//! committed baseline `results/baselines/demo.csv`.

use std::path::PathBuf;

use ntlb_eval::regress::{compare, read_baseline, DEFAULT_TOLERANCE};
use ntlb_eval::sweep::{run_sweep, SweepConfig, SweepOptions};
use ntlb_synth::world::{generate, n_classes, WorldSpec};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

#[test]
fn world_is_deterministic_and_readable() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let n = generate(a.path(), &WorldSpec::default()).unwrap();
    generate(b.path(), &WorldSpec::default()).unwrap();
    let f = "imagenet-adversarial/imagenet-a/syn0000/syn0000_003.JPEG";
    assert_eq!(std::fs::read(a.path().join(f)).unwrap(), std::fs::read(b.path().join(f)).unwrap());
    let classes = ntlb_data::classes::ClassList::read(&a.path().join("classnames.tsv")).unwrap();
    assert_eq!(classes.len(), n_classes());
    assert!(classes.names.iter().all(|n| n.split(' ').count() == 2), "two-word class names");
    assert!(n > 1500);
}

#[test]
fn short_demo_matches_the_committed_baseline() {
    let repo = repo();
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("world");
    generate(&world, &WorldSpec::default()).unwrap();
    let text = std::fs::read_to_string(repo.join("configs/demo.toml"))
        .unwrap()
        .replace("\"datasets/synth", &format!("\"{}", world.display()))
        .replace("\"configs/", &format!("\"{}/configs/", repo.display()))
        .replace(
            "checkpoint_root = \"models\"",
            &format!("checkpoint_root = \"{}/models\"", repo.display()),
        )
        .replace(
            "results = \"results/demo\"",
            &format!("results = \"{}/results\"", tmp.path().display()),
        );
    let path = tmp.path().join("demo.toml");
    std::fs::write(&path, text).unwrap();
    let mut cfg = SweepConfig::read(&path).unwrap();
    cfg.coop.as_mut().unwrap().seeds = vec![1];
    run_sweep(
        &cfg,
        &SweepOptions {
            shard: None,
            dry_run: false,
            progress: false,
            max_jobs: None,
        },
    )
    .unwrap();
    let rerun = ntlb_eval::results::read_table(&cfg.results).unwrap();
    let baseline = read_baseline(&repo.join("results/baselines/demo.csv")).unwrap();
    let problems = compare(&baseline, &rerun, DEFAULT_TOLERANCE);
    assert!(problems.is_empty(), "{} rows moved:\n{}", problems.len(), problems.join("\n"));
    assert!(rerun.iter().any(|r| r.method == "coop" && r.lambda == Some(1.0)));
}
