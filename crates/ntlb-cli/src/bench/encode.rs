//! `ntlb bench encode`: images/s and texts/s of the CLIP towers at random weights, with
//! PyTorch (open_clip, scripts/bench_torch.py) alongside when available.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::{Device, Distribution, Tensor};
use ntlb_clip::{Clip, ClipConfig};
use serde_json::{json, Value};

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

/// Median wall seconds of `reps` runs after one warm-up.
fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
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
    let script = super::script("bench_torch.py");
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

pub fn run(a: EncodeArgs) -> Result<i32> {
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
