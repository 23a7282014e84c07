//! Sweeps spread over machines: keys from content (not mount points, but precision and device
//! kind), one encoding per (model, dataset) when array tasks share a cache, and a merge that
//! loses nothing and mixes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use ntlb_eval::features::FeatureKey;
use ntlb_eval::identity::{Numerics, SweepIdentity};
use ntlb_eval::results::{merge_all, read_runs, read_table, Plan};
use ntlb_eval::sweep::{open_datasets, plan, run_sweep, SweepConfig, SweepOptions};

fn opts(shard: Option<(usize, usize)>) -> SweepOptions {
    SweepOptions {
        shard,
        ..Default::default()
    }
}

fn copy_dir(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), dest.join(e.file_name())).unwrap();
        }
    }
}

fn config(root: &Path, model: &Path, results: &Path, coop: bool) -> SweepConfig {
    let path = root.join(format!("sweep-{}.toml", results.file_name().unwrap().to_string_lossy()));
    std::fs::write(&path, common::sweep_toml(root, model, results, coop)).unwrap();
    SweepConfig::read(&path).unwrap()
}

fn keys(cfg: &SweepConfig) -> (Vec<String>, Vec<String>) {
    let cfg = cfg.resolved();
    let (classes, sets) = open_datasets(&cfg).unwrap();
    let ident = SweepIdentity::compute(&cfg, &classes, &sets).unwrap();
    let jobs = plan(&cfg).unwrap();
    let numerics = Numerics::from_config(&cfg.device, &cfg.precision).unwrap();
    let features = sets
        .iter()
        .zip(&ident.set_items)
        .map(|(s, items)| {
            let model = ntlb_clip::checkpoint::numerics(&cfg.models[0].path, None).unwrap();
            FeatureKey::new(&ident.models["tiny"], &numerics, s, items, &model, 32).id()
        })
        .collect();
    (ident.keys(&jobs).unwrap(), features)
}

#[test]
fn keys_follow_content_not_location() {
    let tmp = tempfile::tempdir().unwrap();
    // The same data and checkpoint mounted at two places.
    let a = tmp.path().join("node-a/mnt/data");
    std::fs::create_dir_all(&a).unwrap();
    common::make_world(&a);
    let b = tmp.path().join("node-b/scratch/elsewhere");
    copy_dir(&a, &b);
    let (ma, mb) = (tmp.path().join("node-a/ckpt"), tmp.path().join("node-b/models/tiny"));
    copy_dir(&common::synth_clip(), &ma);
    copy_dir(&common::synth_clip(), &mb);
    let ca = config(&a, &ma, &tmp.path().join("ra"), true);
    let cb = config(&b, &mb, &tmp.path().join("rb"), true);
    let (ka, fa) = keys(&ca);
    let (kb, fb) = keys(&cb);
    assert_eq!(ka.len(), 3);
    assert_eq!(ka, kb, "job keys do not depend on where data and checkpoint are mounted");
    assert_eq!(fa, fb, "nor do feature cache keys");
    // Precision and device kind are part of every key; the device index is not.
    let mut half = ca.clone();
    half.precision = "bf16".into();
    let (kh, fh) = keys(&half);
    assert!(ka.iter().zip(&kh).all(|(x, y)| x != y), "bf16 and f32 share no job key");
    assert!(fa.iter().zip(&fh).all(|(x, y)| x != y), "nor a feature key");
    let (mut g0, mut g1) = (ca.clone(), ca.clone());
    g0.device = "cuda".into();
    g1.device = "cuda:3".into();
    assert_eq!(keys(&g0).0, keys(&g1).0);
    assert_ne!(keys(&g0).0, ka);
    // A template edit moves the zero-shot key only; a changed image moves every key.
    std::fs::write(a.join("templates.txt"), "a photo of a {}.\nart of a {}.\n").unwrap();
    let (kt, _) = keys(&ca);
    assert_ne!(kt[0], ka[0]);
    assert_eq!(kt[1..], ka[1..]);
    std::fs::write(a.join("templates.txt"), "a photo of a {}.\na sketch of a {}.\n").unwrap();
    let img = a.join("sketch/sketch/n00000001/img0.png");
    let mut bytes = std::fs::read(&img).unwrap();
    bytes.extend_from_slice(b"trailing");
    std::fs::write(&img, bytes).unwrap();
    let (kc, fc) = keys(&ca);
    assert!(kc.iter().zip(&ka).all(|(x, y)| x != y));
    assert_eq!(fc[0], fa[0], "imagenet features unaffected by a sketch file");
    assert_ne!(fc[2], fa[2]);
}

#[test]
fn a_sweep_run_at_one_mount_is_done_at_another() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    std::fs::create_dir_all(&a).unwrap();
    common::make_world(&a);
    let b = tmp.path().join("b");
    copy_dir(&a, &b);
    let model = common::synth_clip();
    let ca = config(&a, &model, &tmp.path().join("results"), false);
    assert_eq!(run_sweep(&ca, &opts(None)).unwrap(), 1);
    let mut cb = config(&b, &model, &tmp.path().join("other"), false);
    cb.results = ca.results.clone();
    std::fs::remove_dir_all(&a).unwrap();
    assert_eq!(run_sweep(&cb, &opts(None)).unwrap(), 0, "same job, same key: nothing to rerun");
    // Another precision is another job: the f32 record is not reused (the CPU may refuse bf16;
    // either way it must not be reported done).
    cb.precision = "bf16".into();
    match run_sweep(&cb, &opts(None)) {
        Ok(n) => assert_eq!(n, 1),
        Err(e) => assert!(format!("{e:#}").contains("bf16"), "{e:#}"),
    }
}

#[test]
fn shards_started_together_encode_each_dataset_once_and_merge_without_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let model = common::synth_clip();
    let cache = tmp.path().join("shared-cache");
    let mut cfgs = Vec::new();
    for i in 0..2 {
        let mut c = config(&root, &model, &tmp.path().join(format!("shard{i}")), true);
        c.coop.as_mut().unwrap().lambdas = vec![0.0];
        c.cache = Some(cache.clone());
        cfgs.push(c);
    }
    // Two jobs (zero-shot, CoOp λ = 0): one per shard, both needing the five datasets at once.
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = cfgs
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, c)| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                run_sweep(&c, &opts(Some((i, 2))))
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), 1, "each shard ran its job");
    }
    let log = std::fs::read_to_string(cache.join("encodings.log")).unwrap();
    let mut ids: Vec<&str> = log.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(ids.len(), 5, "five datasets, each encoded once:\n{log}");
    ids.dedup();
    assert_eq!(ids.len(), 5, "{log}");
    assert!(!std::fs::read_dir(&cache)
        .unwrap()
        .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "lock")));
    // Shards write no tables; the merge does, and copies the CoOp run's folder.
    let shards: Vec<PathBuf> = cfgs.iter().map(|c| c.results.clone()).collect();
    assert!(shards.iter().all(|s| !s.join("results.parquet").exists()));
    let merged = tmp.path().join("merged");
    let m = merge_all(&merged, &shards).unwrap();
    assert_eq!((m.runs, m.stale.len()), (2, 0));
    let runs = read_runs(&merged).unwrap();
    let coop = runs.iter().find(|r| r.job.label().contains("coop")).unwrap();
    assert!(
        merged.join("runs").join(&coop.key).join("split.json").exists(),
        "runs/<key>/ copied"
    );
    let rows = read_table(&merged).unwrap();
    assert_eq!(rows.len(), m.rows);
    assert!(rows.iter().any(|r| r.method == "coop") && rows.iter().any(|r| r.method == "zero-shot"));
    // A record outside the plan (an edited sweep's leftover) is listed and left out.
    let mut stale = coop.clone();
    stale.key = "0000000000000000".into();
    stale.write(&shards[0].join("runs/0000000000000000.json")).unwrap();
    let m2 = merge_all(&tmp.path().join("merged2"), &shards).unwrap();
    assert_eq!(m2.stale.len(), 1);
    assert_eq!(read_table(&tmp.path().join("merged2")).unwrap().len(), rows.len());
    // A job whose rows differ between shards is refused.
    let mut bad = coop.clone();
    bad.rows[0].top1 += 1.0;
    bad.write(&shards[0].join("runs").join(format!("{}.json", coop.key))).unwrap();
    let e = merge_all(&tmp.path().join("merged3"), &shards).unwrap_err().to_string();
    assert!(e.contains("differs"), "{e}");
    // Shards planned for different sweeps are refused.
    let mut p = Plan::read(&shards[1]).unwrap().unwrap();
    p.jobs.pop();
    p.write(&shards[1]).unwrap();
    let e = merge_all(&tmp.path().join("merged4"), &shards).unwrap_err().to_string();
    assert!(e.contains("different sweeps"), "{e}");
}
