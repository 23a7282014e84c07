//! No silent wrong number: damaged cache entries and run records are named and
//! recomputed, settings are checked before any work, evaluation sets that lost classes or hold
//! unreadable entries are refused or counted, repeated names are refused unless allowed.

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ntlb_clip::Clip;
use ntlb_data::classes::ClassList;
use ntlb_data::variants::{DatasetKind, EvalSet};
use ntlb_eval::features::FeatureCache;
use ntlb_eval::identity::Numerics;
use ntlb_eval::results::{read_runs, read_table};
use ntlb_eval::sweep::{dry_run, job_state, run_path, run_sweep, JobState, SweepConfig, SweepOptions};

/// The test world's sweep, zero-shot only unless `coop`, edited by `edit`, read from a file
/// named after `results` (errors name it).
fn sweep(root: &Path, results: &Path, coop: bool, edit: impl Fn(String) -> String) -> SweepConfig {
    let path = root.join(format!("sweep-{}.toml", results.file_name().unwrap().to_string_lossy()));
    std::fs::write(&path, edit(common::sweep_toml(root, &common::synth_clip(), results, coop))).unwrap();
    SweepConfig::read(&path).unwrap()
}

fn err(r: anyhow::Result<usize>) -> String {
    format!("{:#}", r.unwrap_err())
}

fn features_files(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".features.safetensors"))
        .collect();
    v.sort();
    v
}

/// Overwrite `n` bytes in the middle of `path` with other bytes: same size, other values.
fn damage(path: &Path, n: usize) {
    let mut b = std::fs::read(path).unwrap();
    let mid = b.len() / 2;
    for x in &mut b[mid..mid + n] {
        *x = !*x;
    }
    std::fs::write(path, b).unwrap();
}

/// A cache entry whose bytes changed (same size) is named, set aside and recomputed: the
/// features, and so the table, equal the original ones. A truncated entry or manifest too.
#[test]
fn a_damaged_feature_cache_entry_is_recomputed_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let classes = ClassList::read(&root.join("classes.tsv")).unwrap();
    let set = EvalSet::open(DatasetKind::Imagenet, &root.join("imagenet"), &classes, None, None).unwrap();
    let clip = Clip::load(&common::synth_clip(), None, &Device::flex()).unwrap();
    let cache = tmp.path().join("cache");
    let cpu = Numerics::from_config("cpu", "f32").unwrap();
    let read = || {
        FeatureCache {
            dir: Some(&cache),
            numerics: &cpu,
            batch: 4,
            strict: false,
            progress: false,
        }
        .dataset(&clip, &set, "sha")
        .unwrap()
    };
    let f = read();
    assert!(
        f.manifest.features_sha256.is_some(),
        "the manifest holds the digest of its features"
    );
    let file = features_files(&cache).pop().unwrap();
    let size = std::fs::metadata(&file).unwrap().len();
    damage(&file, 64);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), size);
    let g = read();
    assert_eq!((&g.data, &g.labels), (&f.data, &f.labels), "damaged cache bytes were used");
    assert_ne!(g.manifest.seconds, f.manifest.seconds, "not encoded again");
    let aside = PathBuf::from(format!("{}.damaged", file.display()));
    assert_eq!(std::fs::metadata(&aside).unwrap().len(), size, "the damaged entry is kept aside");
    assert_eq!(read().manifest.seconds, g.manifest.seconds, "the replaced entry reads back");
    // Truncated features, then a truncated manifest: recomputed as well.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 3]).unwrap();
    assert_eq!(read().data, f.data);
    let manifest = PathBuf::from(file.to_string_lossy().replace(".features.safetensors", ".manifest.json"));
    let text = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, &text[..text.len() / 2]).unwrap();
    assert_eq!(read().data, f.data);

    // Through a sweep: a second results folder on the damaged shared cache gives the same table.
    let cache_line = |s: String| {
        s.replacen(
            "batch_size = 3\n",
            &format!("batch_size = 3\ncache = {:?}\n", tmp.path().join("shared")),
            1,
        )
    };
    let a = sweep(&root, &tmp.path().join("a"), false, cache_line);
    assert_eq!(run_sweep(&a, &SweepOptions::default()).unwrap(), 1);
    for f in features_files(&tmp.path().join("shared")) {
        damage(&f, 32);
    }
    let b = sweep(&root, &tmp.path().join("b"), false, cache_line);
    assert_eq!(run_sweep(&b, &SweepOptions::default()).unwrap(), 1);
    let (ta, tb) = (read_table(&a.results).unwrap(), read_table(&b.results).unwrap());
    let top1 = |t: &[ntlb_eval::results::ResultRow]| {
        t.iter()
            .map(|r| (r.dataset.clone(), r.template.clone(), r.top1))
            .collect::<Vec<_>>()
    };
    assert_eq!(top1(&ta), top1(&tb), "a damaged cache changed the table");
}

/// A truncated run record is counted to run by `--dry-run`, then moved aside and its
/// job run again: the same table, the damaged file kept.
#[test]
fn a_damaged_run_record_is_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let c = sweep(&root, &tmp.path().join("r"), false, |s| s);
    assert_eq!(run_sweep(&c, &SweepOptions::default()).unwrap(), 1);
    let table = std::fs::read(c.results.join("results.csv")).unwrap();
    assert_eq!(dry_run(&c, None).unwrap(), 0, "done");
    let run = read_runs(&c.results).unwrap().remove(0);
    let (key, content) = (run.key.clone(), run.content.clone().unwrap());
    let record = run_path(&c, &key);
    let bytes = std::fs::read(&record).unwrap();
    std::fs::write(&record, &bytes[..bytes.len() - 40]).unwrap();
    assert!(matches!(job_state(&c, &key, &content), JobState::Damaged(why) if why.contains(&record.display().to_string())));
    assert_eq!(dry_run(&c, None).unwrap(), 1, "a damaged record's job is to run, not done");
    assert_eq!(run_sweep(&c, &SweepOptions::default()).unwrap(), 1);
    assert_eq!(job_state(&c, &key, &content), JobState::Done);
    assert_eq!(std::fs::read(c.results.join("results.csv")).unwrap(), table);
    assert_eq!(
        std::fs::read(PathBuf::from(format!("{}.damaged", record.display()))).unwrap(),
        &bytes[..bytes.len() - 40]
    );
}

/// Every λ and training setting is checked before any work or listing, each error
/// naming the file and the key; repeated λ and seeds are refused.
#[test]
fn settings_are_checked_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let results = tmp.path().join("v");
    let lambdas = |l: &'static str| move |s: String| s.replace("lambdas = [0.0, 1.0]", &format!("lambdas = {l}"));
    for (l, want) in [
        ("[-1.0]", "`coop.lambdas` holds -1"),
        ("[nan]", "`coop.lambdas` holds NaN"),
        ("[0.0, inf]", "`coop.lambdas` holds inf"),
        ("[1.0, 0.0, 1.0]", "`coop.lambdas` lists 1 twice"),
        ("[]", "`coop.lambdas` is empty"),
    ] {
        let c = sweep(&root, &results, true, lambdas(l));
        for e in [err(dry_run(&c, None).map(|_| 0)), err(run_sweep(&c, &SweepOptions::default()))] {
            assert!(e.contains(want) && e.contains("sweep-v.toml"), "{l}: {e}");
        }
    }
    let c = sweep(&root, &results, true, |s| s.replace("seeds = [1]", "seeds = [2, 1, 2]"));
    assert!(err(run_sweep(&c, &SweepOptions::default())).contains("`coop.seeds` lists 2 twice"));
    for (line, want) in [("epochs = 0", "`coop.epochs` holds 0"), ("shots = 0", "`coop.shots` holds 0")] {
        let c = sweep(&root, &results, true, |s| s.replace("epochs = 1\n", &format!("{line}\n")));
        let e = err(dry_run(&c, None).map(|_| 0));
        assert!(e.contains(want) && e.contains("sweep-v.toml"), "{e}");
    }
    // Settings of the base training config are named in that file.
    let base = tmp.path().join("base.toml");
    for (text, key) in [
        ("[prompt]\nn_ctx = 0\n", "prompt.n_ctx"),
        ("[optim]\nlr = nan\n", "optim.lr"),
        ("[optim]\nlr = 0.0\n", "optim.lr"),
        ("[optim]\nbatch_size = 0\n", "optim.batch_size"),
        ("[optim]\nmomentum = -0.9\n", "optim.momentum"),
        ("[optim]\nweight_decay = inf\n", "optim.weight_decay"),
    ] {
        std::fs::write(&base, text).unwrap();
        let c = sweep(&root, &results, true, |s| s + &format!("config = {base:?}\n"));
        let e = err(dry_run(&c, None).map(|_| 0));
        assert!(e.contains(&format!("`{key}` = ")) && e.contains("base.toml"), "{key}: {e}");
    }
    // The device and precision are settings too: refused by the dry run, not only by the run.
    for (line, want) in [
        ("precision = \"f8\"", "unknown precision `f8`"),
        ("device = \"tpu\"", "unknown device `tpu`"),
    ] {
        let c = sweep(&root, &results, false, |s| {
            s.replacen("batch_size = 3\n", &format!("batch_size = 3\n{line}\n"), 1)
        });
        for e in [err(dry_run(&c, None).map(|_| 0)), err(run_sweep(&c, &SweepOptions::default()))] {
            assert!(
                e.contains(want) && e.contains("sweep-v.toml") && e.contains("`device` / `precision`"),
                "{line}: {e}"
            );
        }
    }
    assert!(!results.exists(), "a refused sweep wrote something");
}

/// Repeated class names are refused by zero-shot as by CoOp, unless its
/// `allow_duplicate_names` is set (as the ImageNet configs do for CLIP's list).
#[test]
fn repeated_class_names_need_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let tsv = std::fs::read_to_string(root.join("classes.tsv")).unwrap();
    std::fs::write(root.join("classes.tsv"), tsv.replace("green square", "red circle")).unwrap();
    let c = sweep(&root, &tmp.path().join("d"), false, |s| s);
    let e = err(run_sweep(&c, &SweepOptions::default()));
    assert!(
        e.contains("zero-shot") && e.contains("\"red circle\"") && e.contains("allow_duplicate_names"),
        "{e}"
    );
    let allowed = |s: String| s.replace("[zero_shot]\n", "[zero_shot]\nallow_duplicate_names = true\n");
    let c = sweep(&root, &tmp.path().join("d"), true, allowed);
    let e = err(run_sweep(&c, &SweepOptions::default()));
    assert!(e.contains("CoOp") && e.contains("prompt.allow_duplicate_names"), "{e}");
    let c = sweep(&root, &tmp.path().join("d"), false, allowed);
    assert_eq!(run_sweep(&c, &SweepOptions::default()).unwrap(), 1);
}

/// An empty class folder is an error naming it unless the dataset entry allows it; then
/// it is in the run record. A class list shorter than the folders names the folder it lacks.
#[test]
fn evaluation_sets_that_lost_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let val = root.join("imagenet/images/val/n00000003");
    for f in std::fs::read_dir(&val).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let c = sweep(&root, &tmp.path().join("e"), false, |s| s);
    let e = err(run_sweep(&c, &SweepOptions::default()));
    assert!(e.contains(&val.display().to_string()) && e.contains("allow_empty_classes"), "{e}");
    let imagenet_entry = format!("root = \"{}/imagenet\"\n", root.display());
    let c = sweep(&root, &tmp.path().join("e"), false, |s| {
        s.replace(&imagenet_entry, &format!("{imagenet_entry}allow_empty_classes = true\n"))
    });
    assert_eq!(run_sweep(&c, &SweepOptions::default()).unwrap(), 1);
    let runs = read_runs(&c.results).unwrap();
    assert_eq!(runs[0].empty_classes.get("imagenet"), Some(&vec!["n00000003".to_string()]));
    // ... and in the report, under the table.
    ntlb_eval::report::run_report(&c.results, &tmp.path().join("e-report")).unwrap();
    let md = std::fs::read_to_string(tmp.path().join("e-report/summary.md")).unwrap();
    assert!(
        md.contains("imagenet: evaluated without 1 empty class folder(s) (allow_empty_classes): n00000003"),
        "{md}"
    );
    std::fs::write(
        val.join("img0.png"),
        std::fs::read(root.join("imagenet/images/val/n00000001/img0.png")).unwrap(),
    )
    .unwrap();
    // One class fewer in the list than folders on disk.
    let tsv = std::fs::read_to_string(root.join("classes.tsv")).unwrap();
    let short: String = tsv.lines().take(5).map(|l| format!("{l}\n")).collect();
    std::fs::write(root.join("classes.tsv"), short).unwrap();
    let c = sweep(&root, &tmp.path().join("f"), false, |s| s);
    let e = err(run_sweep(&c, &SweepOptions::default()));
    assert!(e.contains("folder `n00000006` is not a class of the list"), "{e}");
}

/// A symlink loop in a class folder is a failed image (in the record and the rows), and
/// fatal with `strict`.
#[cfg(unix)]
#[test]
fn unreadable_walk_entries_are_failed_images() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let lp = root.join("imagenet/images/val/n00000002/loop.png");
    std::os::unix::fs::symlink(&lp, &lp).unwrap();
    let c = sweep(&root, &tmp.path().join("u"), false, |s| s);
    assert_eq!(run_sweep(&c, &SweepOptions::default()).unwrap(), 1);
    let run = &read_runs(&c.results).unwrap()[0];
    assert!(run.failed_images.iter().any(|(p, _)| p == &lp), "{:?}", run.failed_images);
    assert!(run.rows.iter().filter(|r| r.dataset == "imagenet").all(|r| r.n_failed == 1));
    let strict = sweep(&root, &tmp.path().join("s"), false, |s| {
        s.replacen("batch_size = 3\n", "batch_size = 3\nstrict = true\n", 1)
    });
    let e = err(run_sweep(&strict, &SweepOptions::default()));
    assert!(e.contains("loop.png") && e.contains("--strict"), "{e}");
}

/// A run record whose numbers changed but still parses (a digit of a
/// top-1) is caught by its digest, counted to run by `--dry-run`, moved aside and run again; the
/// table is the original one. The report refuses a table that disagrees with its records.
#[test]
fn a_run_record_with_other_numbers_is_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let c = sweep(&root, &tmp.path().join("n"), false, |s| s);
    assert_eq!(run_sweep(&c, &SweepOptions::default()).unwrap(), 1);
    let table = std::fs::read(c.results.join("results.csv")).unwrap();
    let run = read_runs(&c.results).unwrap().remove(0);
    let record = run_path(&c, &run.key);
    let text = std::fs::read_to_string(&record).unwrap();
    let top1 = format!("\"top1\": {}", run.rows[0].top1);
    assert!(text.contains(&top1), "{top1} not in the record");
    let changed = text.replacen(&top1, &format!("\"top1\": {}", run.rows[0].top1 + 10.0), 1);
    std::fs::write(&record, &changed).unwrap();
    let e = format!("{:#}", read_runs(&c.results).unwrap_err());
    assert!(e.contains(&record.display().to_string()) && e.contains("SHA-256"), "{e}");
    assert!(
        matches!(job_state(&c, &run.key, run.content.as_deref().unwrap()), JobState::Damaged(why) if why.contains(&record.display().to_string()))
    );
    assert_eq!(dry_run(&c, None).unwrap(), 1, "a changed record's job is to run, not done");
    assert_eq!(run_sweep(&c, &SweepOptions::default()).unwrap(), 1);
    assert_eq!(std::fs::read(c.results.join("results.csv")).unwrap(), table);
    assert_eq!(std::fs::read_to_string(format!("{}.damaged", record.display())).unwrap(), changed);

    // A table that is not what its records hold (here: written from a changed record, the
    // record then put back) is refused by the report, naming the table and the record.
    let out = tmp.path().join("report");
    ntlb_eval::report::run_report(&c.results, &out).unwrap();
    let good = std::fs::read(&record).unwrap();
    let mut other = run.clone();
    other.rows[1].top1 += 1.0;
    other.write(&record).unwrap();
    ntlb_eval::results::write_tables(&c.results, None).unwrap();
    std::fs::write(&record, good).unwrap();
    let e = format!("{:#}", ntlb_eval::report::run_report(&c.results, &out).unwrap_err());
    assert!(e.contains("results.parquet") && e.contains("row 1") && e.contains(&run.key), "{e}");
}

/// Two sweeps started at once into one results folder train each CoOp job once (a
/// lock per job, as per cache entry) and write the table one sweep alone writes.
#[test]
fn concurrent_sweeps_into_one_folder_run_each_job_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let alone = sweep(&root, &tmp.path().join("alone"), true, |s| s);
    let n_jobs = ntlb_eval::sweep::plan(&alone).unwrap().len();
    assert_eq!(run_sweep(&alone, &SweepOptions::default()).unwrap(), n_jobs);
    let shared = sweep(&root, &tmp.path().join("shared"), true, |s| s);
    let start = std::sync::Barrier::new(2);
    let ran: Vec<usize> = std::thread::scope(|s| {
        let both: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    run_sweep(&shared, &SweepOptions::default()).unwrap()
                })
            })
            .collect();
        both.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        ran.iter().sum::<usize>(),
        n_jobs,
        "jobs run by each sweep: {ran:?} for {n_jobs} jobs"
    );
    assert_eq!(
        std::fs::read(shared.results.join("results.csv")).unwrap(),
        std::fs::read(alone.results.join("results.csv")).unwrap()
    );
    let left: Vec<_> = std::fs::read_dir(shared.results.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".lock") || n.contains(".damaged"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
