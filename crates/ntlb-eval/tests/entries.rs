//! What names a number: each model and dataset entry once, dataset entries by name in their
//! rows and in the report, a run record reused only for the inputs it was computed from, and a
//! renamed sweep's table under its new name.

mod common;

use std::path::{Path, PathBuf};

use ntlb_eval::identity::SweepIdentity;
use ntlb_eval::results::{read_runs, read_table, Plan, RunRecord};
use ntlb_eval::sweep::{dry_run, job_state, open_datasets, plan, run_path, run_sweep, JobState, SweepConfig, SweepOptions};

/// The test world's zero-shot sweep, edited by `edit`, read from a file named after `results`.
fn sweep(root: &Path, results: &Path, edit: impl Fn(String) -> String) -> SweepConfig {
    let path = root.join(format!("sweep-{}.toml", results.file_name().unwrap().to_string_lossy()));
    std::fs::write(&path, edit(common::sweep_toml(root, &common::synth_clip(), results, false))).unwrap();
    SweepConfig::read(&path).unwrap()
}

fn err(r: anyhow::Result<usize>) -> String {
    format!("{:#}", r.unwrap_err())
}

/// A copy of the committed model whose image projection is bent (other features, other
/// numbers, another checkpoint digest).
fn other_model(dir: &Path) -> PathBuf {
    let out = dir.join("other-model");
    std::fs::create_dir_all(&out).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(common::synth_clip().join(f), out.join(f)).unwrap();
    }
    let mut t = ntlb_core::store::read_tensors(&common::synth_clip().join("model.safetensors")).unwrap();
    let (_, w) = t.get_mut("visual_projection.weight").unwrap();
    for (i, x) in w.iter_mut().enumerate() {
        *x *= 1.0 + 2.0 * ((i as f32) * 0.37).sin();
    }
    let list: Vec<(String, Vec<usize>, Vec<f32>)> = t.into_iter().map(|(n, (s, d))| (n, s, d)).collect();
    ntlb_core::store::write_tensors(&out.join("model.safetensors"), &list).unwrap();
    out
}

/// The keys of a sweep's jobs and what each hashes.
fn keyed(cfg: &SweepConfig) -> (Vec<String>, Vec<String>) {
    let cfg = cfg.resolved();
    let (classes, sets) = open_datasets(&cfg).unwrap();
    let ident = SweepIdentity::compute(&cfg, &classes, &sets).unwrap();
    let jobs = plan(&cfg).unwrap();
    let contents: Vec<String> = jobs.iter().map(|j| ident.content(j).unwrap()).collect();
    (ident.keys(&jobs).unwrap(), contents)
}

/// Two `[[models]]` under one name would share one job key (the second never runs, the
/// first's rows filed under the second's key): refused before any work, naming the file and
/// both entries. So are two dataset entries under one name (the kind, unless named) and one
/// set listed twice.
#[test]
fn repeated_model_names_and_dataset_entries_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let other = other_model(tmp.path());
    let results = tmp.path().join("dup");
    let c = sweep(&root, &results, |s| {
        s + &format!("\n[[models]]\nname = \"tiny\"\npath = {other:?}\n")
    });
    for e in [err(dry_run(&c, None)), err(run_sweep(&c, &SweepOptions::default()))] {
        assert!(
            e.contains("sweep-dup.toml") && e.contains("[[models]] #1") && e.contains("#2") && e.contains("`tiny`"),
            "{e}"
        );
        assert!(e.contains(&other.display().to_string()), "{e}");
    }
    let imagenet = format!("[[datasets]]\nkind = \"imagenet\"\nroot = \"{}/imagenet\"\n", root.display());
    let second = |extra: &'static str| {
        let imagenet = imagenet.clone();
        move |s: String| s + "\n" + &imagenet + extra
    };
    let c = sweep(&root, &results, second("max_per_class = 1\n"));
    let e = err(dry_run(&c, None));
    assert!(
        e.contains("sweep-dup.toml") && e.contains("[[datasets]] #1") && e.contains("#6") && e.contains("named `imagenet`"),
        "{e}"
    );
    let c = sweep(&root, &results, second("name = \"again\"\n"));
    let e = err(run_sweep(&c, &SweepOptions::default()));
    assert!(
        e.contains("[[datasets]] #1") && e.contains("#6") && e.contains("the same set"),
        "{e}"
    );
    assert!(!results.exists(), "a refused sweep wrote something");
}

/// A record filed under a job's key but computed from another model (what two models under
/// one name left behind, or a file copied by hand) is not reused: it is set aside and the
/// job runs again, whether the record carries the content of its key or predates it.
#[test]
fn a_record_computed_from_other_inputs_than_its_key_is_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let other = other_model(tmp.path());
    let with_other = |s: String| s.replace(&common::synth_clip().display().to_string(), &other.display().to_string());
    let a = sweep(&root, &tmp.path().join("a"), |s| s);
    let b = sweep(&root, &tmp.path().join("b"), with_other);
    assert_eq!(run_sweep(&a, &SweepOptions::default()).unwrap(), 1);
    assert_eq!(run_sweep(&b, &SweepOptions::default()).unwrap(), 1);
    let (ra, rb) = (read_runs(&a.results).unwrap().remove(0), read_runs(&b.results).unwrap().remove(0));
    let top1 = |r: &RunRecord| r.rows.iter().map(|x| x.top1).collect::<Vec<_>>();
    assert_ne!(
        top1(&ra),
        top1(&rb),
        "the two models must give other numbers for this test to mean anything"
    );
    let (keys, contents) = keyed(&b);
    assert_eq!(
        (keys[0].as_str(), rb.content.as_deref()),
        (rb.key.as_str(), Some(contents[0].as_str()))
    );
    let table = std::fs::read(b.results.join("results.csv")).unwrap();
    let record = run_path(&b, &rb.key);

    // Model a's rows under model b's key, as two models named alike left them: no content.
    // Then one that carries b's content but says it was computed from a's checkpoint.
    let legacy = RunRecord {
        key: rb.key.clone(),
        content: None,
        ..ra.clone()
    };
    let claims_b = RunRecord {
        key: rb.key.clone(),
        content: rb.content.clone(),
        ..ra.clone()
    };
    for (n, poisoned) in [legacy, claims_b].into_iter().enumerate() {
        poisoned.write(&record).unwrap();
        match job_state(&b, &rb.key, &contents[0]) {
            JobState::Damaged(why) => assert!(why.contains(&ra.checkpoint_sha256) && why.contains("checkpoint"), "{why}"),
            s => panic!("a record of another checkpoint is {s:?}"),
        }
        assert_eq!(dry_run(&b, None).unwrap(), 1, "counted to run");
        assert_eq!(run_sweep(&b, &SweepOptions::default()).unwrap(), 1, "run again");
        assert_eq!(
            std::fs::read(b.results.join("results.csv")).unwrap(),
            table,
            "{n}: the poisoned numbers were reported"
        );
        let aside = if n == 0 {
            format!("{}.damaged", record.display())
        } else {
            format!("{}.damaged.2", record.display())
        };
        assert!(Path::new(&aside).exists(), "{aside}: the record is kept aside");
    }
    // A record whose content is not its key's is refused by every reader (merge, report).
    let moved = RunRecord {
        key: rb.key.clone(),
        ..ra.clone()
    };
    moved.write(&record).unwrap();
    let e = format!("{:#}", RunRecord::read(&record).unwrap_err());
    assert!(e.contains(&record.display().to_string()) && e.contains("hashes to key"), "{e}");
    assert!(matches!(job_state(&b, &rb.key, &contents[0]), JobState::Damaged(_)));
}

/// Two entries of one kind (here the same folder, one with `max_per_class`) are other sets,
/// never seeds of one: each has its name in its rows and its own column in the report.
/// Unnamed entries keep their keys; a name is in the key (it names the rows).
#[test]
fn dataset_entries_are_named_in_rows_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let imagenet = format!("kind = \"imagenet\"\nroot = \"{}/imagenet\"\n", root.display());
    let named = |s: String| {
        s.replacen(&imagenet, &format!("name = \"val-all\"\n{imagenet}"), 1)
            + &format!("\n[[datasets]]\nname = \"val-one\"\n{imagenet}max_per_class = 1\n")
    };
    let c = sweep(&root, &tmp.path().join("named"), named);
    assert_eq!(run_sweep(&c, &SweepOptions::default()).unwrap(), 1);
    let rows = read_table(&c.results).unwrap();
    for name in ["val-all", "val-one"] {
        let of: Vec<_> = rows.iter().filter(|r| r.dataset == name).collect();
        assert_eq!(of.len(), 3, "{name}: two templates and the ensemble");
        assert!(of.iter().all(|r| r.dataset_kind == "imagenet"));
    }
    assert!(rows.iter().all(|r| r.dataset != "imagenet"));
    assert_eq!(rows.iter().find(|r| r.dataset == "val-one").unwrap().n_images, 6);
    assert_eq!(rows.iter().find(|r| r.dataset == "val-all").unwrap().n_images, 12);
    let csv = std::fs::read_to_string(c.results.join("results.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",dataset_kind,shots,train_dataset"), "{csv}");
    let out = tmp.path().join("report");
    ntlb_eval::report::run_report(&c.results, &out).unwrap();
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("| model | method | val-all | val-one | imagenet-v2 |"), "{md}");
    // One run per cell: the two sets are never averaged as seeds.
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let ensemble: Vec<&str> = summary.lines().filter(|l| l.contains("ensemble") && l.contains(",val-")).collect();
    assert_eq!(ensemble.len(), 2, "{summary}");
    assert!(ensemble.iter().all(|l| l.ends_with(",1")), "{summary}");

    // Keys: a name equal to the kind is no name; another name is another job.
    let plain = sweep(&root, &tmp.path().join("plain"), |s| s);
    let same = sweep(&root, &tmp.path().join("same"), |s| {
        s.replacen(&imagenet, &format!("name = \"imagenet\"\n{imagenet}"), 1)
    });
    let renamed = sweep(&root, &tmp.path().join("renamed"), |s| {
        s.replacen(&imagenet, &format!("name = \"val\"\n{imagenet}"), 1)
    });
    assert_eq!(keyed(&plain).0, keyed(&same).0);
    assert_ne!(keyed(&plain).0, keyed(&renamed).0);
    assert!(!keyed(&plain).1[0].contains("dataset_names"));
}

/// Results written before dataset entries had names (no `dataset_kind` column) still read:
/// the committed baseline, with each row's kind its dataset.
#[test]
fn tables_without_the_kind_column_read_with_the_dataset_as_kind() {
    // The committed baseline with its newer columns dropped: a table written before they existed.
    let baseline = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/baselines/demo.csv");
    let mut r = csv::Reader::from_path(&baseline).unwrap();
    let header = r.headers().unwrap().clone();
    let newer = ["dataset_kind", "shots", "train_dataset"];
    let keep: Vec<usize> = (0..header.len()).filter(|&i| !newer.contains(&&header[i])).collect();
    assert!(keep.len() < header.len(), "the baseline has a newer column to drop: {header:?}");
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old.csv");
    let mut w = csv::Writer::from_path(&old).unwrap();
    w.write_record(keep.iter().map(|&i| &header[i])).unwrap();
    for rec in r.records() {
        let rec = rec.unwrap();
        w.write_record(keep.iter().map(|&i| &rec[i])).unwrap();
    }
    w.flush().unwrap();
    let rows = ntlb_eval::regress::read_baseline(&old).unwrap();
    assert!(rows.len() > 100);
    assert!(rows.iter().all(|r| r.dataset_kind == r.dataset));
}

/// A sweep renamed by a config that extends it reuses its records; its plan and its table
/// both carry the new name (the report checks the one against the other).
#[test]
fn a_renamed_sweep_names_its_plan_and_rows_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let base = sweep(&root, &tmp.path().join("r"), |s| s);
    assert_eq!(run_sweep(&base, &SweepOptions::default()).unwrap(), 1);
    let child_path = root.join("renamed.toml");
    std::fs::write(
        &child_path,
        format!(
            "extends = {:?}\nname = \"renamed\"\n",
            base.source.as_ref().unwrap().file_name().unwrap()
        ),
    )
    .unwrap();
    let child = SweepConfig::read(&child_path).unwrap();
    assert_eq!((child.name.as_str(), &child.results), ("renamed", &base.results));
    assert_eq!(run_sweep(&child, &SweepOptions::default()).unwrap(), 0, "the same jobs: reused");
    let plan = Plan::read(&child.results).unwrap().unwrap();
    assert_eq!(plan.sweep, "renamed");
    let rows = read_table(&child.results).unwrap();
    assert!(rows.iter().all(|r| r.sweep == plan.sweep), "{:?}", rows[0].sweep);
    let csv = std::fs::read_to_string(child.results.join("results.csv")).unwrap();
    assert!(csv.lines().skip(1).all(|l| l.starts_with("renamed,")), "{csv}");
    ntlb_eval::report::run_report(&child.results, &tmp.path().join("report")).unwrap();
    // A merge of the folder keeps the plan's name too.
    ntlb_eval::results::merge_all(&child.results, &[]).unwrap();
    assert!(read_table(&child.results).unwrap().iter().all(|r| r.sweep == "renamed"));
}

/// A merge checks every folder and record before it writes: a refused merge leaves the target
/// as it was; a folder that does not exist, or is no results folder, is refused by name.
#[test]
fn a_refused_merge_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let other = other_model(tmp.path());
    let two = |s: String| s + &format!("\n[[models]]\nname = \"bent\"\npath = {other:?}\n");
    let mut shards = Vec::new();
    for i in 0..2 {
        let c = sweep(&root, &tmp.path().join(format!("shard{i}")), two);
        let opts = SweepOptions {
            shard: Some((i, 2)),
            ..SweepOptions::default()
        };
        assert_eq!(run_sweep(&c, &opts).unwrap(), 1);
        shards.push(c.results.clone());
    }
    let target = tmp.path().join("target");
    ntlb_eval::results::merge_all(&target, &shards[1..]).unwrap();
    // The target's record of shard 1's job now disagrees with shard 1.
    let mine = read_runs(&target).unwrap().remove(0);
    let mut changed = mine.clone();
    changed.rows[0].top1 += 1.0;
    changed.write(&target.join("runs").join(format!("{}.json", mine.key))).unwrap();
    // Every file under the target with a hash of its bytes.
    let listing = |d: &Path| {
        use std::hash::{Hash, Hasher};
        let mut v: Vec<(String, u64)> = walk(d)
            .into_iter()
            .map(|p| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(&p).unwrap().hash(&mut h);
                (p.strip_prefix(d).unwrap().display().to_string(), h.finish())
            })
            .collect();
        v.sort();
        v
    };
    let before = listing(&target);
    let e = format!("{:#}", ntlb_eval::results::merge_all(&target, &shards).unwrap_err());
    assert!(e.contains("differs") && e.contains(&mine.key), "{e}");
    assert_eq!(listing(&target), before, "a refused merge changed the target");

    let missing = tmp.path().join("no-such-shard");
    let e = format!(
        "{:#}",
        ntlb_eval::results::merge_all(&tmp.path().join("m1"), &[missing.clone()]).unwrap_err()
    );
    assert!(e.contains(&missing.display().to_string()) && e.contains("no such"), "{e}");
    assert!(!tmp.path().join("m1").exists());
    let e = format!("{:#}", ntlb_eval::results::merge_all(&missing, &[]).unwrap_err());
    assert!(e.contains(&missing.display().to_string()), "{e}");
    assert!(!missing.exists(), "no folder, no empty table");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = format!(
        "{:#}",
        ntlb_eval::results::merge_all(&tmp.path().join("m2"), &[empty.clone()]).unwrap_err()
    );
    assert!(
        e.contains(&empty.display().to_string()) && e.contains("not a sweep's results folder"),
        "{e}"
    );
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
