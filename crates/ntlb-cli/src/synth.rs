//! `ntlb generate-synth`, `ntlb pretrain-synth`: the embedded default world and its tiny CLIP.

use std::path::PathBuf;

use anyhow::Result;
use ntlb_synth::pretrain::{pretrain, PretrainConfig};
use ntlb_synth::world::{generate, WorldSpec};

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Where the world goes.
    #[arg(long, default_value = "datasets/synth")]
    out: PathBuf,
    #[arg(long)]
    seed: Option<u64>,
}

pub fn generate_world(a: GenerateArgs) -> Result<i32> {
    let mut spec = WorldSpec::default();
    if let Some(s) = a.seed {
        spec.seed = s;
    }
    let t = std::time::Instant::now();
    let n = generate(&a.out, &spec)?;
    println!("wrote {n} images to {} in {:.1} s", a.out.display(), t.elapsed().as_secs_f64());
    Ok(0)
}

#[derive(clap::Args)]
pub struct PretrainArgs {
    /// Output folder (Hugging Face layout + manifest.json).
    #[arg(long, default_value = "models/synth-clip")]
    out: PathBuf,
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    max_minutes: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
}

pub fn pretrain_synth(a: PretrainArgs) -> Result<i32> {
    let mut cfg = PretrainConfig::default();
    if let Some(s) = a.steps {
        cfg.steps = s;
    }
    if let Some(m) = a.max_minutes {
        cfg.max_minutes = m;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    let m = pretrain(&a.out, &cfg, |p| {
        if p.step % 50 == 0 || p.zero_shot_val.is_some() {
            eprintln!(
                "step {:>5} loss {:.4} temperature {:.1} {} ({:.0} s)",
                p.step,
                p.loss,
                p.temperature,
                p.zero_shot_val.map_or(String::new(), |z| format!("zero-shot val {z:.1}%")),
                p.seconds
            );
        }
    })?;
    println!(
        "trained {} steps in {:.1} min; zero-shot top-1 on fresh photos: {:.1}% (chance {:.1}%); saved to {}",
        m.steps_done,
        m.minutes,
        m.zero_shot_val_top1,
        100.0 / ntlb_synth::world::n_classes() as f64,
        a.out.display()
    );
    Ok(0)
}
