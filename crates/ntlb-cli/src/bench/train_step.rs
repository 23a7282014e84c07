//! `ntlb bench train-step`: seconds per prompt-learning step (forward, loss, backward, update)
//! at random weights, the replicated and shared pass-1 paths each in its own process, with the
//! original's algorithm in PyTorch (scripts/bench_reference_step.py) alongside on request.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::{Distribution, Tensor};
use ntlb_clip::{Clip, ClipConfig};
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct TrainStepArgs {
    /// `fixture` (the golden tiny CLIP's sizes) or `vit-b-32` (CLIP ViT-B/32 towers).
    #[arg(long, default_value = "fixture")]
    preset: String,
    #[arg(long, default_value_t = 10)]
    classes: usize,
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// λ (0 = plain CoOp: no relevance passes).
    #[arg(long, default_value_t = 1.0)]
    lambda: f64,
    /// Classes per chunk.
    #[arg(long, default_value_t = 64)]
    chunk: usize,
    /// Timed steps (median reported) after one warm-up step.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, bf16 or f16 (half precision on GPU).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Pass 1: `both` times the replicated (the reference's algorithm) and shared (the default) paths, each in its own process
    /// so that each peak memory is its own; or one of `shared`, `replicated`.
    #[arg(long, default_value = "both", value_parser = ["both", "shared", "replicated"])]
    pass1: String,
    /// Also time scripts/bench_reference_step.py (the original's algorithm in PyTorch) at the same
    /// size; the script first reproduces the golden coop_middle case (NTLB_GOLDEN or ../shared/golden)
    /// and refuses to time otherwise.
    #[arg(long)]
    reference: bool,
    #[arg(long, env = "NTLB_PYTHON", default_value = "python3")]
    python: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The golden fixture's architecture (ViT 32 px, width 128, 2 layers) at random weights.
fn fixture_config() -> ClipConfig {
    use ntlb_clip::config::{TextConfig, VisionConfig};
    ClipConfig {
        embed_dim: 64,
        vision: VisionConfig::Vit {
            width: 128,
            layers: 2,
            heads: 2,
            patch_size: 8,
            image_resolution: 32,
            activation: ntlb_clip::config::Activation::QuickGelu,
        },
        text: TextConfig {
            context_length: 77,
            vocab_size: 49408,
            width: 128,
            layers: 2,
            heads: 2,
            activation: ntlb_clip::config::Activation::QuickGelu,
        },
    }
}

pub fn run(a: TrainStepArgs) -> Result<i32> {
    let mut out = if a.pass1 == "both" { both_paths(&a)? } else { one_path(&a)? };
    if a.reference {
        reference_step(&a, &mut out);
    }
    super::print_json(&out, a.json)?;
    Ok(0)
}

/// Re-run this command once per pass-1 path, each in a fresh process (its own peak memory).
fn both_paths(a: &TrainStepArgs) -> Result<Value> {
    let exe = std::env::current_exe().context("locating the ntlb binary")?;
    let mut rows = Vec::new();
    for path in ["replicated", "shared"] {
        let o = std::process::Command::new(&exe)
            .args([
                "bench",
                "train-step",
                "--json",
                "--pass1",
                path,
                "--preset",
                &a.preset,
                "--device",
                &a.device,
            ])
            .args([
                "--precision",
                &a.precision,
                "--classes",
                &a.classes.to_string(),
                "--batch",
                &a.batch.to_string(),
            ])
            .args([
                "--lambda",
                &a.lambda.to_string(),
                "--chunk",
                &a.chunk.to_string(),
                "--reps",
                &a.reps.to_string(),
            ])
            .output()
            .with_context(|| format!("running {}", exe.display()))?;
        if !o.status.success() {
            bail!("the {path} pass-1 run failed: {}", String::from_utf8_lossy(&o.stderr));
        }
        rows.push(serde_json::from_slice::<Value>(&o.stdout).with_context(|| format!("output of the {path} run"))?);
    }
    let secs = |r: &Value| r["seconds_per_step"].as_f64().unwrap_or(f64::NAN);
    Ok(json!({
        "preset": a.preset, "classes": a.classes, "batch": a.batch, "lambda": a.lambda, "device": a.device, "precision": a.precision,
        "replicated": rows[0], "shared": rows[1],
        "seconds_per_step": secs(&rows[1]),
        "speedup_shared_vs_replicated": secs(&rows[0]) / secs(&rows[1]),
    }))
}

fn one_path(a: &TrainStepArgs) -> Result<Value> {
    use ntlb_prompt::objective::{step, LossConfig, Pass1, StepOptions};
    use ntlb_prompt::prompt::{PromptConfig, PromptLayout};
    use rand::{Rng, SeedableRng};
    let config = match a.preset.to_ascii_lowercase().replace(['/', '_'], "-").as_str() {
        "fixture" => fixture_config(),
        "vit-b-32" => ClipConfig::preset("ViT-B/32").expect("preset exists"),
        other => bail!("unknown preset `{other}` (fixture or vit-b-32)"),
    };
    if a.classes == 0 || a.batch == 0 {
        bail!("need at least one class and one image");
    }
    let pass1 = if a.pass1 == "replicated" {
        Pass1::Replicated
    } else {
        Pass1::Shared
    };
    let device = ntlb_clip::device::parse_device_with(&a.device, &a.precision)?.autodiff();
    let clip = Clip::random(&config, 0, &device);
    // ImageNet-like class names: 1 to 3 word pieces after 16 context tokens.
    let n_ctx = 16;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let (mut rows, mut lens) = (Vec::new(), Vec::new());
    for _ in 0..a.classes {
        let nl = rng.random_range(1..=3);
        let mut ids = vec![49406];
        ids.extend(std::iter::repeat_n(343u32, n_ctx));
        ids.extend((0..nl).map(|_| rng.random_range(1000..40000u32)));
        ids.extend([269, 49407]);
        ids.resize(77, 0);
        rows.push(ids);
        lens.push(nl);
    }
    let layout = PromptLayout::from_tokens(PromptConfig::default(), n_ctx, rows, lens, None);
    let mut ctx = layout.initial_context(&clip, 1);
    let shape = [n_ctx, config.text.width];
    let res = config.vision.image_resolution();
    let labels: Vec<usize> = (0..a.batch).map(|i| i % a.classes).collect();
    let loss = LossConfig {
        expl_weight: a.lambda,
        ..LossConfig::default()
    };
    let opts = StepOptions {
        chunk: a.chunk,
        pass1,
        ..StepOptions::default()
    };
    let mut momentum = None;
    let images = Tensor::<4>::random([a.batch, 3, res, res], Distribution::Normal(0.0, 1.0), &device);
    let mut run = || -> Result<()> {
        let feats = ntlb_clip::l2_normalize(clip.encode_image(images.clone()).detach());
        let r = step(&clip, &layout, &ctx, shape, feats, &labels, &loss, &opts)?;
        ntlb_prompt::train::sgd_update(&mut ctx, &r.grad_ctx, &mut momentum, 0.002, 0.9, 5e-4);
        Ok(())
    };
    run()?;
    let mut times = Vec::new();
    for _ in 0..a.reps.max(1) {
        let t = Instant::now();
        run()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|x, y| x.partial_cmp(y).expect("finite"));
    let secs = times[times.len() / 2];
    // Modelled matmul FLOPs, the dry run's model (`ntlb_eval::estimate::coop_step_flop`).
    let mean_len = layout.eot.iter().map(|&e| e + 1).sum::<usize>() as f64 / a.classes as f64;
    let flops = ntlb_eval::estimate::coop_step_flop(
        &config,
        a.batch,
        a.classes,
        a.chunk,
        mean_len.round() as usize,
        a.lambda != 0.0,
        pass1,
    );
    Ok(json!({
        "impl": "ntlb", "pass1": a.pass1, "preset": a.preset, "classes": a.classes, "batch": a.batch, "lambda": a.lambda,
        "seconds_per_step": secs, "modelled_gflop_per_step": flops / 1e9, "modelled_gflops_per_second": flops / 1e9 / secs,
        "device": a.device, "precision": a.precision, "threads": rayon::current_num_threads(), "peak_rss_mib": ntlb_clip::device::peak_rss_mib(),
    }))
}

/// Time the original's algorithm (scripts/bench_reference_step.py) beside ours; the script checks
/// itself against the golden coop_middle case before it times anything.
fn reference_step(a: &TrainStepArgs, out: &mut Value) {
    let script = super::script("bench_reference_step.py");
    let golden = ntlb_golden::fixtures::golden_dir();
    let o = std::process::Command::new(&a.python)
        .arg(&script)
        .args([
            "--preset",
            &a.preset,
            "--classes",
            &a.classes.to_string(),
            "--batch",
            &a.batch.to_string(),
        ])
        .args(["--reps", "1", "--golden"])
        .arg(&golden)
        .output();
    match o {
        Ok(o) if o.status.success() => match serde_json::from_slice::<Value>(&o.stdout) {
            Ok(r) => {
                let ours = out["seconds_per_step"].as_f64().unwrap_or(f64::NAN);
                out["reference_seconds_per_step"] = r["seconds_per_step"].clone();
                out["reference_golden_check"] = r["golden_check"].clone();
                out["speedup_vs_reference"] = json!(r["seconds_per_step"].as_f64().unwrap_or(f64::NAN) / ours);
                if let Some(rep) = out.get("replicated").and_then(|v| v["seconds_per_step"].as_f64()) {
                    out["speedup_replicated_vs_reference"] = json!(r["seconds_per_step"].as_f64().unwrap_or(f64::NAN) / rep);
                }
            }
            Err(e) => out["reference_error"] = json!(format!("bench_reference_step.py output: {e}")),
        },
        Ok(o) => out["reference_error"] = json!(String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").to_string()),
        Err(e) => out["reference_error"] = json!(format!("{}: {e}", a.python)),
    }
}
