//! `ntlb bench`: throughput with randomly initialised real-size models.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::{Device, Distribution, Tensor};
use ntlb_clip::{Clip, ClipConfig};
use serde_json::{json, Value};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Images/s and texts/s of the CLIP towers, with PyTorch CPU alongside when available.
    Encode(EncodeArgs),
    /// Seconds per prompt-learning step (forward, loss, backward, update), random weights.
    TrainStep(TrainStepArgs),
    /// Images/s from JPEG files to features, and of decode + resize alone, with Pillow alongside.
    Pipeline(PipelineArgs),
    /// Seconds per template to score cached features (host loop vs device matmul + ranks).
    ZeroShot(crate::bench_zeroshot::ZeroShotArgs),
}

#[derive(clap::Args)]
pub struct PipelineArgs {
    /// Folder of JPEG files (default: 200 generated 500×375 photos in a temporary folder).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 200)]
    images: usize,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, env = "NTLB_PYTHON", default_value = "python3")]
    python: String,
    #[arg(long)]
    json: bool,
}

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
    /// Pass 1: `both` times the replicated (old) and shared (new) paths, each in its own process
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

#[derive(clap::Args)]
pub struct EncodeArgs {
    /// Architectures (presets: ViT-B/32, ViT-B/16, ViT-L/14, RN50, RN101).
    #[arg(long, value_delimiter = ',', default_value = "ViT-B/32,RN50")]
    presets: Vec<String>,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    batches: Vec<usize>,
    /// Timed repetitions per point (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, bf16 or f16 (half precision on GPU).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Python with torch for the PyTorch figure (skipped with a message when absent).
    #[arg(long, env = "NTLB_PYTHON", default_value = "python3")]
    python: String,
    /// Skip the PyTorch comparison.
    #[arg(long)]
    no_torch: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: BenchCommand) -> Result<i32> {
    match cmd {
        BenchCommand::Encode(a) => encode(a),
        BenchCommand::TrainStep(a) => train_step(a),
        BenchCommand::Pipeline(a) => pipeline(a),
        BenchCommand::ZeroShot(a) => crate::bench_zeroshot::zero_shot(a),
    }
}

/// Median wall seconds of `reps` runs after one warm-up.
pub fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).expect("finite times"));
    t[t.len() / 2]
}

fn sync<const D: usize>(t: Tensor<D>) {
    // Reading one value back waits for queued device work.
    let _ = t.sum().into_scalar::<f32>();
}

fn ours(preset: &str, batch: usize, reps: usize, device: &Device) -> Result<Vec<Value>> {
    let config = ClipConfig::preset(preset).with_context(|| format!("unknown preset `{preset}`"))?;
    let clip = Clip::random(&config, 0, device);
    let res = config.vision.image_resolution();
    let images = Tensor::<4>::random([batch, 3, res, res], Distribution::Normal(0.0, 1.0), device);
    let img_s = median_secs(reps, || sync(clip.encode_image(images.clone())));
    let mut rows = vec![
        json!({"impl": "ntlb", "preset": preset, "what": "images", "batch": batch, "seconds": img_s, "per_second": batch as f64 / img_s}),
    ];
    for (label, eot) in [("texts (77 positions)", 76usize), ("texts (16-token prompt)", 15)] {
        let ids: Vec<Vec<u32>> = (0..batch)
            .map(|b| {
                (0..77)
                    .map(|p| {
                        if p == 0 {
                            49406
                        } else if p == eot {
                            49407
                        } else if p < eot {
                            (p * 31 + b * 7) as u32 % 49000
                        } else {
                            0
                        }
                    })
                    .collect()
            })
            .collect();
        let eots = vec![eot; batch];
        let s = median_secs(reps, || sync(clip.encode_text(&ids, &eots)));
        rows.push(json!({"impl": "ntlb", "preset": preset, "what": label, "batch": batch, "seconds": s, "per_second": batch as f64 / s}));
    }
    Ok(rows)
}

fn torch_rows(a: &EncodeArgs) -> Result<Vec<Value>, String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench_torch.py");
    let probe = std::process::Command::new(&a.python)
        .args(["-c", "import torch, open_clip"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        _ => return Err(format!("PyTorch comparison skipped: `{} -c 'import torch, open_clip'` failed (set NTLB_PYTHON to a Python with torch and open_clip_torch)", a.python)),
    }
    let batches: Vec<String> = a.batches.iter().map(|b| b.to_string()).collect();
    let out = std::process::Command::new(&a.python)
        .arg(&script)
        .args([
            "--presets",
            &a.presets.join(","),
            "--batches",
            &batches.join(","),
            "--reps",
            &a.reps.to_string(),
        ])
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_slice::<Vec<Value>>(&out.stdout).map_err(|e| format!("bench_torch.py output: {e}"))
}

fn encode(a: EncodeArgs) -> Result<i32> {
    let device = ntlb_clip::device::parse_device_with(&a.device, &a.precision)?;
    if a.batches.is_empty() || a.presets.is_empty() {
        bail!("need at least one preset and one batch size");
    }
    let mut rows = Vec::new();
    for p in &a.presets {
        for &b in &a.batches {
            rows.extend(ours(p, b, a.reps, &device)?);
        }
    }
    let peak = ntlb_clip::device::peak_rss_mib();
    let torch = if a.no_torch {
        Err("PyTorch comparison not asked for".to_string())
    } else {
        torch_rows(&a)
    };
    let torch_list = torch.clone().unwrap_or_default();
    for r in rows.iter_mut() {
        if let Some(t) = torch_list
            .iter()
            .find(|t| t["preset"] == r["preset"] && t["what"] == r["what"] && t["batch"] == r["batch"])
        {
            let ratio = r["per_second"].as_f64().unwrap_or(0.0) / t["per_second"].as_f64().unwrap_or(f64::NAN);
            r["torch_per_second"] = t["per_second"].clone();
            r["speedup_vs_torch"] = json!(ratio);
        }
    }
    if a.json {
        println!(
            "{}",
            json!({"device": a.device, "precision": a.precision, "threads": rayon::current_num_threads(), "peak_rss_mib": peak, "rows": rows, "torch": torch.as_ref().err()})
        );
        return Ok(0);
    }
    println!(
        "{:<10} {:<24} {:>6} {:>12} {:>12} {:>10}",
        "preset", "what", "batch", "ntlb /s", "torch /s", "ratio"
    );
    for r in &rows {
        println!(
            "{:<10} {:<24} {:>6} {:>12.2} {:>12} {:>10}",
            r["preset"].as_str().unwrap_or(""),
            r["what"].as_str().unwrap_or(""),
            r["batch"],
            r["per_second"].as_f64().unwrap_or(0.0),
            r.get("torch_per_second")
                .and_then(Value::as_f64)
                .map_or("-".into(), |v| format!("{v:.2}")),
            r.get("speedup_vs_torch")
                .and_then(Value::as_f64)
                .map_or("-".into(), |v| format!("{v:.2}x")),
        );
    }
    println!(
        "peak memory: {} MiB (ntlb part, before PyTorch ran)",
        peak.map_or("?".into(), |p| format!("{p:.0}"))
    );
    if let Err(msg) = torch {
        println!("{msg}");
    }
    Ok(0)
}

/// The golden fixture's architecture (ViT 32 px, width 128, 2 layers) at random weights.
pub fn fixture_config() -> ClipConfig {
    use ntlb_clip::config::{TextConfig, VisionConfig};
    ClipConfig {
        embed_dim: 64,
        vision: VisionConfig::Vit {
            width: 128,
            layers: 2,
            heads: 2,
            patch_size: 8,
            image_resolution: 32,
        },
        text: TextConfig {
            context_length: 77,
            vocab_size: 49408,
            width: 128,
            layers: 2,
            heads: 2,
        },
    }
}

fn train_step(a: TrainStepArgs) -> Result<i32> {
    let mut out = if a.pass1 == "both" { both_paths(&a)? } else { one_path(&a)? };
    if a.reference {
        reference_step(&a, &mut out);
    }
    if a.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
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
    // Modelled matmul FLOPs (not counted ones): image encodings, all-class logits (1 text forward
    // per class, unless shared and one chunk), pass 2 (C prompts, forward + backward) and pass 1: replicated, B·C prompts
    // forward + backward; shared, the B cotangents through the activation-only backward of pass
    // 2's forward. The weights are frozen, so a backward computes input gradients only: about one
    // forward.
    let mean_len = layout.eot.iter().map(|&e| e + 1).sum::<usize>() as f64 / a.classes as f64;
    let text = 2.0 * config.text_macs(mean_len.round() as usize) as f64;
    let img = 2.0 * config.image_macs() as f64;
    let pass1_work = match pass1 {
        Pass1::Replicated => 2.0 * a.batch as f64,
        Pass1::Shared => a.batch as f64,
    };
    let relevance_passes = if a.lambda != 0.0 { pass1_work + 2.0 } else { 2.0 };
    // The logits' own forward, skipped by the shared path when the classes fit in one chunk.
    let logits_pass = if pass1 == Pass1::Shared && a.classes <= a.chunk { 0.0 } else { 1.0 };
    let flops = img * a.batch as f64 + text * a.classes as f64 * (logits_pass + relevance_passes);
    Ok(json!({
        "impl": "ntlb", "pass1": a.pass1, "preset": a.preset, "classes": a.classes, "batch": a.batch, "lambda": a.lambda,
        "seconds_per_step": secs, "modelled_gflop_per_step": flops / 1e9, "modelled_gflops_per_second": flops / 1e9 / secs,
        "device": a.device, "precision": a.precision, "threads": rayon::current_num_threads(), "peak_rss_mib": ntlb_clip::device::peak_rss_mib(),
    }))
}

/// Time the original's algorithm (scripts/bench_reference_step.py) beside ours; the script checks
/// itself against the golden coop_middle case before it times anything.
fn reference_step(a: &TrainStepArgs, out: &mut Value) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench_reference_step.py");
    let golden = std::env::var_os("NTLB_GOLDEN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden"));
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

/// Write `n` 500×375 photo-like JPEGs (smooth colour fields with noise and edges).
fn write_photos(dir: &std::path::Path, n: usize) -> Result<Vec<std::path::PathBuf>> {
    use rand::{Rng, SeedableRng};
    (0..n)
        .map(|i| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
            let (a, b): ([f32; 3], [f32; 3]) = (
                std::array::from_fn(|_| rng.random_range(0.0..255.0)),
                std::array::from_fn(|_| rng.random_range(0.0..255.0)),
            );
            let img = image::RgbImage::from_fn(500, 375, |x, y| {
                let t = (x as f32 / 500.0 + (y as f32 / 60.0).sin() * 0.2).clamp(0.0, 1.0);
                let edge = if (x / 50 + y / 50) % 7 == 0 { 60.0 } else { 0.0 };
                image::Rgb(std::array::from_fn(|c| {
                    (a[c] * (1.0 - t) + b[c] * t + edge + rng.random_range(-10.0..10.0)).clamp(0.0, 255.0) as u8
                }))
            });
            let p = dir.join(format!("photo{i:04}.jpg"));
            let mut f = std::io::BufWriter::new(std::fs::File::create(&p)?);
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 90).encode_image(&img)?;
            Ok(p)
        })
        .collect()
}

fn pipeline(a: PipelineArgs) -> Result<i32> {
    use rayon::prelude::*;
    let tmp = tempfile_dir()?;
    let files: Vec<std::path::PathBuf> = match &a.dir {
        Some(d) => {
            let mut f: Vec<_> = std::fs::read_dir(d)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| ntlb_data::folder::is_image(p))
                .collect();
            f.sort();
            f.truncate(a.images);
            f
        }
        None => write_photos(&tmp, a.images)?,
    };
    if files.is_empty() {
        bail!("no images to read");
    }
    let n = files.len() as f64;
    // Decode + resize + crop + normalise alone: one core, then all cores.
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let stage = |pool: &rayon::ThreadPool| -> Result<f64> {
        let t = Instant::now();
        pool.install(|| {
            files
                .par_iter()
                .map(|p| ntlb_clip::preprocess::load_image(p, 224).map(|_| ()))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(n / t.elapsed().as_secs_f64())
    };
    let per_core = stage(&one)?;
    let all = rayon::ThreadPoolBuilder::new().build()?;
    let all_cores = stage(&all)?;
    // Files to features: the evaluation harness's own path (decoder thread + encoder).
    let device = ntlb_clip::device::parse_device(&a.device)?;
    let clip = Clip::random(&ClipConfig::preset("ViT-B/32").expect("preset"), 0, &device);
    let set = ntlb_data::variants::EvalSet {
        kind: ntlb_data::variants::DatasetKind::Imagenet,
        root: files[0].parent().unwrap_or(std::path::Path::new(".")).to_path_buf(),
        classes: ntlb_data::classes::ClassList {
            ids: vec!["x".into()],
            names: vec!["x".into()],
        },
        items: files.iter().map(|p| (p.clone(), 0)).collect(),
        empty_classes: vec![],
    };
    let t = Instant::now();
    ntlb_eval::features::dataset_features(
        &clip,
        &set,
        "bench",
        &ntlb_eval::identity::Numerics::from_config(&a.device, "f32")?,
        None,
        a.batch,
        true,
        false,
    )?;
    let end_to_end = n / t.elapsed().as_secs_f64();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench_preprocess.py");
    let mut list = tmp.join("files.txt");
    if !tmp.exists() {
        list = std::env::temp_dir().join("ntlb-bench-files.txt");
    }
    std::fs::write(&list, files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n"))?;
    let pillow = std::process::Command::new(&a.python).arg(&script).arg(&list).output();
    // The script prints "<images/s> <what ran> <Pillow version>".
    let pillow: Result<(f64, String), String> = match pillow {
        Ok(o) if o.status.success() => {
            let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let mut words = out.split_whitespace();
            match words.next().map(str::parse::<f64>) {
                Some(Ok(ips)) => Ok((ips, words.collect::<Vec<_>>().join(" "))),
                _ => Err(format!("Pillow comparison unreadable: {out:?}")),
            }
        }
        Ok(o) => Err(format!(
            "Pillow comparison skipped: {}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        )),
        Err(e) => Err(format!("Pillow comparison skipped: {}: {e}", a.python)),
    };
    let out = json!({
        "images": files.len(), "decode_resize_per_core": per_core, "decode_resize_all_cores": all_cores,
        "threads": all.current_num_threads(), "files_to_features_vit_b32": end_to_end, "device": a.device,
        "pillow_torchvision_per_core": pillow.as_ref().ok().map(|p| p.0), "baseline": pillow.as_ref().ok().map(|p| &p.1),
        "ratio_vs_pillow_per_core": pillow.as_ref().ok().map(|p| per_core / p.0),
        "pillow_note": pillow.as_ref().err(),
    });
    if a.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(0)
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("ntlb-bench-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
