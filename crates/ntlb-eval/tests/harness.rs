//! Datasets, image pipeline, feature cache, sweep resume, shard/merge and report on generated
//! dataset trees, with the committed tiny CLIP of the demo world (models/synth-clip).

mod common;

use std::path::Path;

use burn::tensor::Device;
use ntlb_clip::Clip;
use ntlb_data::classes::ClassList;
use ntlb_data::variants::{read_wnids, DatasetKind, EvalSet};
use ntlb_eval::features::FeatureCache;
use ntlb_eval::identity::Numerics;
use ntlb_eval::results::{merge, read_table};
use ntlb_eval::sweep::{run_sweep, SweepConfig, SweepOptions};

fn cpu32() -> Numerics {
    Numerics::from_config("cpu", "f32").unwrap()
}

#[test]
fn datasets_open_in_every_layout_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let classes = ClassList::read(&root.join("classes.tsv")).unwrap();
    let subset = read_wnids(&root.join("subset_wnids.txt")).unwrap();
    let val = EvalSet::open(DatasetKind::Imagenet, &root.join("imagenet"), &classes, None, None).unwrap();
    assert_eq!(val.items.len(), 12);
    let v2 = EvalSet::open(DatasetKind::ImagenetV2, &root.join("v2"), &classes, None, None).unwrap();
    assert_eq!(v2.items.len(), 18);
    assert!(
        v2.items
            .iter()
            .all(|(p, l)| p.container().parent().unwrap().ends_with(l.to_string())),
        "V2 folder = class index"
    );
    let v2_two = EvalSet::open(DatasetKind::ImagenetV2, &root.join("v2"), &classes, None, Some(2)).unwrap();
    assert_eq!(v2_two.items.len(), 12, "max_per_class = 2 reproduces the reference's reader");
    let a = EvalSet::open(DatasetKind::ImagenetA, &root.join("imagenet-a"), &classes, Some(&subset), None).unwrap();
    assert_eq!(a.classes.names, vec![common::NAMES[1], common::NAMES[3], common::NAMES[5]]);
    assert_eq!(
        a.items.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![0, 0, 1, 1, 2, 2],
        "labels = rank in the wnid list; README.txt ignored"
    );
    let sketch = EvalSet::open(DatasetKind::ImagenetSketch, &root.join("sketch"), &classes, None, None).unwrap();
    assert_eq!(sketch.items.len(), 6);
    // Errors name the folder and what was expected.
    std::fs::remove_dir_all(root.join("v2/imagenetv2-matched-frequency-format-val/4")).unwrap();
    let e = EvalSet::open(DatasetKind::ImagenetV2, &root.join("v2"), &classes, None, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("folder `4`") && e.contains("imagenetv2-matched-frequency-format-val"),
        "{e}"
    );
    std::fs::remove_dir_all(root.join("imagenet/images/val/n00000003")).unwrap();
    let e = EvalSet::open(DatasetKind::Imagenet, &root.join("imagenet"), &classes, None, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("n00000003") && e.contains("missing"), "{e}");
    let e = EvalSet::open(DatasetKind::ImagenetSketch, &root.join("nowhere"), &classes, None, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nowhere"), "{e}");
    // An empty class folder is reported, not fatal.
    std::fs::create_dir_all(root.join("imagenet/images/val/n00000003")).unwrap();
    let val = EvalSet::open(DatasetKind::Imagenet, &root.join("imagenet"), &classes, None, None).unwrap();
    assert_eq!(val.empty_classes, vec!["n00000003"]);
}

#[test]
fn pipeline_counts_bad_images_and_the_cache_follows_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    common::add_bad_and_odd_files(&root);
    let classes = ClassList::read(&root.join("classes.tsv")).unwrap();
    let set = EvalSet::open(DatasetKind::Imagenet, &root.join("imagenet"), &classes, None, None).unwrap();
    let clip = Clip::load(&common::synth_clip(), None, &Device::flex()).unwrap();
    let cache = tmp.path().join("cache");
    let f = FeatureCache {
        dir: Some(&cache),
        numerics: &cpu32(),
        batch: 4,
        strict: false,
        progress: false,
    }
    .dataset(&clip, &set, "sha-a")
    .unwrap();
    assert_eq!(
        f.manifest.failed.len(),
        2,
        "corrupt PNG and truncated JPEG: {:?}",
        f.manifest.failed
    );
    assert!(f.manifest.failed.iter().any(|(p, _)| p.ends_with("corrupt.png")));
    assert_eq!(f.len(), set.items.len() - 2, "the CMYK JPEG and the PNG named .JPEG decode");
    let e = FeatureCache {
        dir: None,
        numerics: &cpu32(),
        batch: 4,
        strict: true,
        progress: false,
    }
    .dataset(&clip, &set, "sha-a")
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("--strict") && (e.contains("corrupt.png") || e.contains("truncated.jpg")),
        "{e}"
    );
    // Same key: read back from the cache, identical.
    let g = FeatureCache {
        dir: Some(&cache),
        numerics: &cpu32(),
        batch: 4,
        strict: false,
        progress: false,
    }
    .dataset(&clip, &set, "sha-a")
    .unwrap();
    assert_eq!((g.data.clone(), g.labels.clone()), (f.data.clone(), f.labels.clone()));
    assert_eq!(g.manifest.seconds, f.manifest.seconds, "second read came from the cache");
    // Another checkpoint, or a changed file: a new key, recomputed.
    let h = FeatureCache {
        dir: Some(&cache),
        numerics: &cpu32(),
        batch: 4,
        strict: false,
        progress: false,
    }
    .dataset(&clip, &set, "sha-b")
    .unwrap();
    assert_ne!(h.manifest.key.id(), f.manifest.key.id());
    std::fs::write(
        root.join("imagenet/images/val/n00000001/img0.png"),
        std::fs::read(root.join("imagenet/images/val/n00000001/img1.png")).unwrap(),
    )
    .unwrap();
    let set2 = EvalSet::open(DatasetKind::Imagenet, &root.join("imagenet"), &classes, None, None).unwrap();
    let k = FeatureCache {
        dir: Some(&cache),
        numerics: &cpu32(),
        batch: 4,
        strict: false,
        progress: false,
    }
    .dataset(&clip, &set2, "sha-a")
    .unwrap();
    assert_ne!(k.manifest.key.id(), f.manifest.key.id());
    // A killed write (features without a manifest) is never read: it is recomputed.
    let id = k.manifest.key.id();
    std::fs::remove_file(cache.join(format!("{id}.manifest.json"))).unwrap();
    std::fs::write(cache.join(format!("{id}.features.safetensors")), b"half written").unwrap();
    let again = FeatureCache {
        dir: Some(&cache),
        numerics: &cpu32(),
        batch: 4,
        strict: false,
        progress: false,
    }
    .dataset(&clip, &set2, "sha-a")
    .unwrap();
    assert_eq!(again.data, k.data);
}

fn config(root: &Path, model: &Path, results: &Path, coop: bool) -> SweepConfig {
    let path = root.join(format!("sweep-{}.toml", results.file_name().unwrap().to_string_lossy()));
    std::fs::write(&path, common::sweep_toml(root, model, results, coop)).unwrap();
    SweepConfig::read(&path).unwrap()
}

#[test]
fn sweep_resumes_after_a_kill_and_shards_merge_to_the_same_table() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let model = common::synth_clip();
    // Uninterrupted.
    let full = config(&root, &model, &tmp.path().join("full"), true);
    assert_eq!(
        run_sweep(&full, &SweepOptions::default()).unwrap(),
        3,
        "zero-shot + CoOp λ=0 + CoOp λ=1"
    );
    // Row order too: a resumed or merged table is the uninterrupted one, byte for byte.
    let reference = read_table(&full.results).unwrap();
    let csv = |results: &Path| std::fs::read(results.join("results.csv")).unwrap();
    assert!(reference
        .iter()
        .any(|r| r.method == "coop" && r.lambda == Some(1.0) && r.dataset == "imagenet-a"));
    assert!(reference
        .iter()
        .any(|r| r.method == "zero-shot-ensemble-2" && r.dataset == "imagenet-r"));
    // Killed after one job, then rerun: only the rest runs, the table is the same.
    let killed = config(&root, &model, &tmp.path().join("killed"), true);
    assert_eq!(
        run_sweep(
            &killed,
            &SweepOptions {
                max_jobs: Some(1),
                ..SweepOptions::default()
            }
        )
        .unwrap(),
        1
    );
    assert_eq!(run_sweep(&killed, &SweepOptions::default()).unwrap(), 2);
    assert_eq!(run_sweep(&killed, &SweepOptions::default()).unwrap(), 0, "nothing left to do");
    assert_eq!(read_table(&killed.results).unwrap(), reference);
    assert!(csv(&killed.results) == csv(&full.results), "resumed results.csv differs");
    // Two shards in separate folders, merged last shard first: the table does not follow the
    // order of the shards (nor the order their records were written in).
    let mut shards = Vec::new();
    for i in 0..2 {
        let c = config(&root, &model, &tmp.path().join(format!("shard{i}")), true);
        run_sweep(
            &c,
            &SweepOptions {
                shard: Some((i, 2)),
                ..SweepOptions::default()
            },
        )
        .unwrap();
        shards.push(c.results.clone());
    }
    let merged = tmp.path().join("merged");
    shards.reverse();
    merge(&merged, &shards).unwrap();
    assert_eq!(read_table(&merged).unwrap(), reference);
    assert!(csv(&merged) == csv(&full.results), "merged results.csv differs");
    // An edited sweep (λ = 1 dropped) keeps the old run file but leaves it out of its tables.
    let mut edited = full.clone();
    edited.coop.as_mut().unwrap().lambdas = vec![0.0];
    assert_eq!(run_sweep(&edited, &SweepOptions::default()).unwrap(), 0);
    let rows = read_table(&edited.results).unwrap();
    assert!(rows.iter().all(|r| r.lambda != Some(1.0)) && rows.iter().any(|r| r.lambda == Some(0.0)));
    run_sweep(&full, &SweepOptions::default()).unwrap();
    // The report draws every table and figure.
    let files = ntlb_eval::report::run_report(&full.results, &tmp.path().join("report")).unwrap();
    for f in &files {
        assert!(std::fs::metadata(f).unwrap().len() > 0, "{} is empty", f.display());
    }
    assert!(files.iter().any(|f| f.ends_with("relevance_before_after.png")));
    assert!(files.iter().any(|f| f.ends_with("tiny_accuracy_vs_lambda.svg")));
    assert!(files.iter().any(|f| f.ends_with("tiny_name_score_vs_lambda.png")));
    assert!(files.iter().any(|f| f.ends_with("tiny_training_curves.png")));
    // Every CoOp run reports its start and its class-name score before and after training.
    for method in ["coop", "coop-init"] {
        assert!(reference
            .iter()
            .filter(|r| r.method == method)
            .all(|r| r.name_score.is_some_and(|s| (0.0..=1.0).contains(&s))));
    }
    let summary = std::fs::read_to_string(tmp.path().join("report/summary.md")).unwrap();
    assert!(
        summary.contains("class-name score") && summary.contains("trained − start"),
        "{summary}"
    );
}
