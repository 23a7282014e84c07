//! A training process killed with SIGKILL at random moments (inside steps, inside checkpoint
//! writes) and restarted each time ends on the bit-identical context of an uninterrupted run,
//! and leaves no temporary files behind. Runs `ntlb train` on the committed tiny CLIP.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use common::repo;

fn train(world: &Path, out: &Path) -> Command {
    let repo = repo();
    let mut c = Command::new(env!("CARGO_BIN_EXE_ntlb"));
    c.arg("train")
        .arg("--model")
        .arg(repo.join("models/synth-clip"))
        .arg("--data")
        .arg(world.join("imagenet"))
        .arg("--classes")
        .arg(world.join("classnames.tsv"))
        .arg("--config")
        .arg(repo.join("configs/coop-demo.toml"))
        .args(["--lambda", "0", "--epochs", "30", "--batch-size", "16"])
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

fn ctx(dir: &Path) -> Vec<f32> {
    ntlb_core::store::read_tensors(&dir.join("prompt.safetensors")).unwrap()["ctx"]
        .1
        .clone()
}

#[test]
fn sigkilled_training_resumes_to_the_identical_context() {
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("world");
    ntlb_synth::world::generate(&world, &ntlb_synth::world::WorldSpec::default()).unwrap();
    let clean = tmp.path().join("clean");
    let t = Instant::now();
    assert!(train(&world, &clean).status().unwrap().success());
    let full = t.elapsed();
    let reference = ctx(&clean);

    let killed = tmp.path().join("killed");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
    let mut kills = 0;
    while kills < 20 {
        let mut child = train(&world, &killed).spawn().unwrap();
        // Anywhere in the run: start-up, steps, the checkpoint at each epoch's end. A run lives
        // at most 0.3 of an uninterrupted one, so at least three are killed before one finishes.
        std::thread::sleep(Duration::from_secs_f64(rng.random_range(0.05..0.3) * full.as_secs_f64()));
        if child.try_wait().unwrap().is_some() {
            break; // finished before the kill
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    assert!(kills >= 3, "only {kills} runs were killed before one finished");
    assert!(train(&world, &killed).status().unwrap().success());
    let resumed = ctx(&killed);
    let differ = resumed.iter().zip(&reference).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    let max = resumed.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(
        differ == 0 && resumed.len() == reference.len(),
        "after {kills} kills the resumed context differs in {differ} of {} entries (max {max})",
        reference.len()
    );
    let left: Vec<String> = std::fs::read_dir(&killed)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}
