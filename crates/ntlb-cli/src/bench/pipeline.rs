//! `ntlb bench pipeline`: images/s from image files (JPEG, PNG, WebP) to features (the
//! evaluation harness's own path), and of decode + resize alone on one core and on all, with
//! Pillow (scripts/bench_preprocess.py) alongside.

use std::time::Instant;

use anyhow::{bail, Result};
use ntlb_clip::{Clip, ClipConfig};
use serde_json::json;

#[derive(clap::Args)]
pub struct PipelineArgs {
    /// Folder of JPEG / PNG / WebP files (default: 200 generated 500×375 photos in a temporary
    /// folder, in --format).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// The generated photos' format (without --dir): JPEG at quality 90, WebP lossy at Pillow's
    /// default quality 80, or lossless WebP (CLIP_benchmark's shards' default).
    #[arg(long, value_enum, default_value_t = PhotoFormat::Jpeg)]
    format: PhotoFormat,
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

#[derive(Clone, Copy, clap::ValueEnum)]
enum PhotoFormat {
    Jpeg,
    Webp,
    WebpLossless,
}

/// Write `n` 500×375 photo-like images (smooth colour fields with noise and edges).
fn write_photos(dir: &std::path::Path, n: usize, format: PhotoFormat) -> Result<Vec<std::path::PathBuf>> {
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
            let webp = |quality| {
                let raster = ntlb_clip::preprocess::Raster {
                    width: 500,
                    height: 375,
                    channels: 3,
                    data: img.as_raw().clone(),
                };
                ntlb_clip::preprocess::encode_webp(&raster, quality).map_err(anyhow::Error::msg)
            };
            let (p, bytes) = match format {
                PhotoFormat::Jpeg => {
                    let mut b = Vec::new();
                    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut b, 90).encode_image(&img)?;
                    (dir.join(format!("photo{i:04}.jpg")), b)
                }
                PhotoFormat::Webp => (dir.join(format!("photo{i:04}.webp")), webp(Some(80.0))?),
                PhotoFormat::WebpLossless => (dir.join(format!("photo{i:04}.webp")), webp(None)?),
            };
            std::fs::write(&p, bytes)?;
            Ok(p)
        })
        .collect()
}

pub fn run(a: PipelineArgs) -> Result<i32> {
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
        None => write_photos(&tmp, a.images, a.format)?,
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
    let set = ntlb_data::variants::EvalSet::of_files(
        ntlb_data::variants::DatasetKind::Imagenet,
        files[0].parent().unwrap_or(std::path::Path::new(".")),
        ntlb_data::classes::ClassList {
            ids: vec!["x".into()],
            names: vec!["x".into()],
        },
        files.iter().map(|p| (p.clone(), 0)).collect(),
    );
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
    let script = super::script("bench_preprocess.py");
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
    // Files by extension, lower-cased: what the figures are of.
    let mut formats = std::collections::BTreeMap::<String, usize>::new();
    for p in &files {
        let e = p.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
        *formats.entry(e).or_default() += 1;
    }
    let out = json!({
        "images": files.len(), "formats": formats, "decode_resize_per_core": per_core, "decode_resize_all_cores": all_cores,
        "threads": all.current_num_threads(), "files_to_features_vit_b32": end_to_end, "device": a.device,
        "pillow_torchvision_per_core": pillow.as_ref().ok().map(|p| p.0), "baseline": pillow.as_ref().ok().map(|p| &p.1),
        "ratio_vs_pillow_per_core": pillow.as_ref().ok().map(|p| per_core / p.0),
        "pillow_note": pillow.as_ref().err(),
    });
    super::print_json(&out, a.json)?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(0)
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("ntlb-bench-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
