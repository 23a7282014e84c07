//! `make regress` as a test: a short demo (zero-shot and CoOp seed 1 with λ = 0 and 1, λ = 1
//! with each class-name score aggregation) on a
//! freshly generated world with the committed tiny CLIP passes every check of
//! `ntlb_eval::regress::compare` against the committed baseline `results/baselines/demo.csv`.

use std::path::PathBuf;

use ntlb_eval::regress::{compare, read_baseline, rerun, DEFAULT_TOLERANCES};
use ntlb_eval::sweep::SweepConfig;
use ntlb_prompt::objective::NameScore;
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
    // Each word of a name is shared by other classes: only the whole name identifies one.
    for n in &classes.names {
        for word in n.split(' ') {
            assert!(
                classes.names.iter().filter(|m| m.split(' ').any(|w| w == word)).count() > 1,
                "{word} of {n}"
            );
        }
    }
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
    let cfg = SweepConfig::read(&path).unwrap();
    let aggs = [NameScore::Max, NameScore::Mean, NameScore::Min];
    let rows = rerun(cfg, &[1], &[0.0, 1.0], &aggs, false).unwrap();
    let baseline = read_baseline(&repo.join("results/baselines/demo.csv")).unwrap();
    let problems = compare(&baseline, &rows, DEFAULT_TOLERANCES);
    assert!(problems.is_empty(), "{} checks failed:\n{}", problems.len(), problems.join("\n"));
    for method in [
        "coop",
        "coop-init",
        "zero-shot",
        "zero-shot-ensemble-all",
        "coop name_score=mean",
        "coop name_score=min",
    ] {
        assert!(rows.iter().any(|r| r.method == method), "the rerun has no {method} rows");
    }
    assert!(rows
        .iter()
        .any(|r| r.method == "coop" && r.lambda == Some(1.0) && r.name_score.is_some()));
}
