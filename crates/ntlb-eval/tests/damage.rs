//! Random byte-level damage to the files a sweep reads back (feature-cache entries and their
//! manifests, run records, trainer states, few-shot splits), a fixed-seed stream of cases: never a different
//! table in silence. After each damage the sweep either gives the original table byte for byte,
//! having named the damaged file and moved it aside (`<name>.damaged*`, holding the damaged
//! bytes), or fails with an error naming the file.

mod common;

use std::path::{Path, PathBuf};

use ntlb_eval::sweep::{run_sweep, SweepConfig, SweepOptions};
use rand::{Rng, SeedableRng};

/// Every file under `dir` (recursively) whose name ends with one of `ends`.
fn files(dir: &Path, ends: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, ends, out);
        } else if ends.iter().any(|x| p.to_string_lossy().ends_with(x)) {
            out.push(p);
        }
    }
}

/// The copies set aside beside `path`.
fn set_aside(path: &Path) -> Vec<PathBuf> {
    let name = format!("{}.damaged", path.file_name().unwrap().to_string_lossy());
    let mut v: Vec<PathBuf> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&name))
        .collect();
    v.sort();
    v
}

/// One damage: cut the file, flip a few bytes, overwrite a range with random bytes, or change
/// one decimal digit into another (what still parses: another number in a JSON file).
fn damage(bytes: &[u8], kind: usize, rng: &mut impl Rng) -> (Vec<u8>, String) {
    let mut b = bytes.to_vec();
    let digits: Vec<usize> = (0..b.len()).filter(|&i| b[i].is_ascii_digit()).collect();
    match kind {
        3 if !digits.is_empty() => {
            let i = digits[rng.random_range(0..digits.len())];
            // The lowest bit: '0' <-> '1', …, '8' <-> '9'.
            b[i] ^= 1;
            (b, format!("digit at {i} changed"))
        }
        0 => {
            let n = rng.random_range(0..b.len());
            b.truncate(n);
            (b, format!("cut to {n} bytes"))
        }
        1 | 3 => {
            let k = rng.random_range(1..=4);
            let mut at = Vec::new();
            for _ in 0..k {
                let i = rng.random_range(0..b.len());
                b[i] ^= rng.random_range(1..=255u8);
                at.push(i);
            }
            (b, format!("bytes {at:?} flipped"))
        }
        _ => {
            let len = rng.random_range(1..=64.min(b.len()));
            let start = rng.random_range(0..=b.len() - len);
            rng.fill(&mut b[start..start + len]);
            (b, format!("bytes {start}..{} overwritten", start + len))
        }
    }
}

#[test]
fn random_damage_never_changes_the_table_in_silence() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let results = tmp.path().join("r");
    let cache = tmp.path().join("cache");
    let toml = common::sweep_toml(&root, &common::synth_clip(), &results, true).replace("lambdas = [0.0, 1.0]", "lambdas = [0.0]");
    let path = root.join("sweep.toml");
    std::fs::write(&path, toml).unwrap();
    let mut cfg = SweepConfig::read(&path).unwrap();
    cfg.cache = Some(cache.clone());
    assert_eq!(run_sweep(&cfg, &SweepOptions::default()).unwrap(), 2);
    let table = std::fs::read(results.join("results.csv")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(19);
    let (mut recomputed, mut refused, mut parsing_json) = (0, 0, 0);
    for case in 0..50 {
        // Every kind of file meets every kind of damage (twice or more); which file of that kind
        // and where in it are drawn.
        let mut candidates = Vec::new();
        match case % 5 {
            0 => files(&cache, &[".manifest.json"], &mut candidates),
            1 => files(&cache, &[".features.safetensors"], &mut candidates),
            2 => files(&results.join("runs"), &["state.safetensors"], &mut candidates),
            3 => files(&results.join("runs"), &["split.json"], &mut candidates),
            // Run records are `runs/<key>.json`; the `.json` files inside a run's folder (its
            // split, the learned prompt's manifest) are not what these cases damage.
            _ => files(&results.join("runs"), &[".json"], &mut candidates),
        }
        candidates.retain(|p| {
            !p.to_string_lossy().contains(".damaged")
                && (!p.starts_with(results.join("runs"))
                    || p.ends_with("state.safetensors")
                    || p.ends_with("split.json")
                    || p.parent() == Some(&results.join("runs")))
        });
        candidates.sort();
        let file = candidates[rng.random_range(0..candidates.len())].clone();
        let good = std::fs::read(&file).unwrap();
        let (bad, what) = damage(&good, (case / 5) % 4, &mut rng);
        if file.extension().is_some_and(|e| e == "json") && serde_json::from_slice::<serde_json::Value>(&bad).is_ok() {
            parsing_json += 1;
        }
        if bad == good {
            continue;
        }
        std::fs::write(&file, &bad).unwrap();
        let before = set_aside(&file).len();
        let name = file.strip_prefix(tmp.path()).unwrap().display().to_string();
        // The damaged file must be read: a cache entry by a sweep into a fresh results folder
        // (every job runs, on the shared cache), a trainer state or split by its job running
        // again (its record removed, as a user would).
        let mut c = cfg.clone();
        if file.starts_with(&cache) {
            c.results = tmp.path().join(format!("fresh-{case}"));
        } else if file.ends_with("state.safetensors") || file.ends_with("split.json") {
            let key = file.strip_prefix(results.join("runs")).unwrap().components().next().unwrap();
            std::fs::remove_file(results.join("runs").join(format!("{}.json", key.as_os_str().to_string_lossy()))).unwrap();
        }
        match run_sweep(&c, &SweepOptions::default()) {
            Ok(_) => {
                assert_eq!(
                    std::fs::read(c.results.join("results.csv")).unwrap(),
                    table,
                    "case {case}: {name} {what}: another table, in silence"
                );
                let aside = set_aside(&file);
                assert_eq!(
                    aside.len(),
                    before + 1,
                    "case {case}: {name} {what}: the damage was not noticed (nothing set aside)"
                );
                assert!(
                    aside.iter().any(|p| std::fs::read(p).unwrap() == bad),
                    "case {case}: {name} {what}: the damaged bytes were not kept aside"
                );
                assert!(file.exists(), "case {case}: {name} not recomputed");
                recomputed += 1;
            }
            Err(e) => {
                let e = format!("{e:#}");
                assert!(
                    e.contains(&file.display().to_string()),
                    "case {case}: {name} {what}: an error that does not name the file: {e}"
                );
                // Put it back for the next case.
                std::fs::write(&file, &good).unwrap();
                refused += 1;
            }
        }
    }
    eprintln!("{recomputed} damaged files recomputed, {refused} refused by name; {parsing_json} damaged JSON files still parsed");
    assert!(recomputed >= 40, "only {recomputed} cases recomputed");
    // The cases that only a digest catches: damaged JSON that still parses.
    assert!(parsing_json >= 4, "only {parsing_json} damaged JSON files that still parse");
}
