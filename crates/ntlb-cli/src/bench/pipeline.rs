//! `ntlb bench pipeline`: images/s from image files (JPEG, PNG, WebP) to features (the
//! evaluation harness's own path), and of decode + resize alone on one core and on all, with
//! Pillow (scripts/bench_preprocess.py) alongside. The same images are also read as WebDataset
//! shard members and parquet rows (written to a temporary folder, or the input itself when
//! `--dir` is a shard folder or a parquet file): images/s of each against the folder's.

use std::time::Instant;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use ntlb_clip::preprocess::ImageBytes;
use ntlb_clip::{Clip, ClipConfig};
use ntlb_data::image::ImageRef;
use ntlb_data::source::{container_images, Format, Layout};
use ntlb_data::write::{write_parquet, write_wds, Written};
use serde_json::json;

#[derive(clap::Args)]
pub struct PipelineArgs {
    /// Folder of JPEG / PNG / WebP files, a WebDataset root or split folder (`nshards.txt`), or a
    /// parquet file or Hugging Face dataset folder (default: 200 generated 500×375 photos in a
    /// temporary folder, in --format).
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
    /// Decode figures: every layout measured in turn this many times, the best kept.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
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

/// What `--dir` holds: image files, or a container's images.
fn input_images(d: &Path, limit: usize) -> Result<(Format, Vec<ImageRef>)> {
    let wds_split = [d.to_path_buf(), d.join("test"), d.join("train")]
        .into_iter()
        .find(|p| p.join("nshards.txt").exists());
    let (format, mut refs) = if let Some(split) = wds_split {
        let layout = Layout {
            format: Format::Wds,
            split: Some(split.file_name().unwrap_or_default().to_string_lossy().into_owned()),
            ..Layout::default()
        };
        (Format::Wds, container_images(split.parent().unwrap_or(Path::new(".")), &layout)?)
    } else if let Some(split) = ["validation", "test", "train"]
        .into_iter()
        .find(|s| d.is_file() || ntlb_data::parquet::parquet_files(d, s).is_ok())
    {
        let layout = Layout {
            format: Format::Parquet,
            split: Some(split.into()),
            ..Layout::default()
        };
        (Format::Parquet, container_images(d, &layout)?)
    } else {
        let mut f: Vec<PathBuf> = std::fs::read_dir(d)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| ntlb_data::folder::is_image(p))
            .collect();
        f.sort();
        (Format::Folder, f.into_iter().map(ImageRef::File).collect())
    };
    refs.truncate(limit);
    Ok((format, refs))
}

/// The extension an image's bytes are stored under (wds) and named by (files).
fn extension(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG") {
        "png"
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        "webp"
    } else {
        "jpg"
    }
}

/// The same images in each layout: the input's own for its format, the others written to `tmp`.
fn all_layouts(tmp: &Path, format: Format, refs: Vec<ImageRef>) -> Result<Vec<(Format, Vec<ImageRef>)>> {
    let written: Vec<Written> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let bytes = r.image_bytes().map_err(|e| anyhow::anyhow!("{r}: {e}"))?;
            let ext = extension(&bytes).to_string();
            Ok(Written {
                path: format!("image{i:05}.{ext}"),
                bytes,
                ext,
                label: 0,
            })
        })
        .collect::<Result<_>>()?;
    let mut out = vec![(format, refs)];
    if format != Format::Folder {
        let dir = tmp.join("folder");
        std::fs::create_dir_all(&dir)?;
        let mut files = Vec::new();
        for w in &written {
            std::fs::write(dir.join(&w.path), &w.bytes)?;
            files.push(ImageRef::File(dir.join(&w.path)));
        }
        out.insert(0, (Format::Folder, files));
    }
    if format != Format::Wds {
        write_wds(&tmp.join("wds"), "test", &written, None, 10_000)?;
        out.push((
            Format::Wds,
            container_images(
                &tmp.join("wds"),
                &Layout {
                    format: Format::Wds,
                    ..Layout::default()
                },
            )?,
        ));
    }
    if format != Format::Parquet {
        // Hugging Face's row groups for image sets: 100 rows.
        write_parquet(&tmp.join("validation.parquet"), &written, 100)?;
        let layout = Layout {
            format: Format::Parquet,
            ..Layout::default()
        };
        out.push((Format::Parquet, container_images(&tmp.join("validation.parquet"), &layout)?));
    }
    out.sort_by_key(|(f, _)| *f as u8);
    Ok(out)
}

/// Images/s of decode + resize + crop + normalise alone (bytes read from the layout included).
fn decode_rate(refs: &[ImageRef], pool: &rayon::ThreadPool) -> Result<f64> {
    use rayon::prelude::*;
    let norm = ntlb_clip::preprocess::Normalization::OPENAI;
    let t = Instant::now();
    pool.install(|| {
        refs.par_iter()
            .map(|r| ntlb_clip::preprocess::load_image_from(r, 224, Default::default(), &norm).map(|_| ()))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(refs.len() as f64 / t.elapsed().as_secs_f64())
}

/// Images/s from one layout to features through the harness's own path (decoder thread +
/// encoder).
fn features_rate(format: Format, refs: &[ImageRef], clip: &Clip, a: &PipelineArgs) -> Result<f64> {
    let n = refs.len() as f64;
    let mut set = ntlb_data::variants::EvalSet::of_files(
        ntlb_data::variants::DatasetKind::Imagenet,
        Path::new("."),
        ntlb_data::classes::ClassList {
            ids: vec!["x".into()],
            names: vec!["x".into()],
        },
        Vec::new(),
    );
    set.items = refs.iter().map(|r| (r.clone(), 0)).collect();
    if format != Format::Folder {
        set.container = Some(ntlb_data::source::Container {
            format,
            files: Vec::new(),
            samples: refs.len(),
        });
    }
    let t = Instant::now();
    ntlb_eval::features::FeatureCache {
        dir: None,
        numerics: &ntlb_eval::identity::Numerics::from_config(&a.device, "f32")?,
        batch: a.batch,
        strict: true,
        progress: false,
    }
    .dataset(clip, &set, "bench")?;
    Ok(n / t.elapsed().as_secs_f64())
}

pub fn run(a: PipelineArgs) -> Result<i32> {
    let tmp = tempfile_dir()?;
    let (format, refs) = match &a.dir {
        Some(d) => input_images(d, a.images)?,
        None => (
            Format::Folder,
            write_photos(&tmp, a.images, a.format)?.into_iter().map(ImageRef::File).collect(),
        ),
    };
    if refs.is_empty() {
        bail!("no images to read");
    }
    let layouts = all_layouts(&tmp, format, refs)?;
    let files: Vec<PathBuf> = layouts[0].1.iter().filter_map(|r| r.as_file().map(Path::to_path_buf)).collect();
    let all = rayon::ThreadPoolBuilder::new().build()?;
    let device = ntlb_clip::device::parse_device(&a.device)?;
    let clip = Clip::random(&ClipConfig::preset("ViT-B/32").expect("preset"), 0, &device);
    // The layouts in turn, `--rounds` times, the best of each kept: a shared machine's load
    // falls on all of them alike.
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let mut best = vec![(0f64, 0f64); layouts.len()];
    for _ in 0..a.rounds.max(1) {
        for (i, (_, refs)) in layouts.iter().enumerate() {
            best[i].0 = best[i].0.max(decode_rate(refs, &one)?);
            best[i].1 = best[i].1.max(decode_rate(refs, &all)?);
        }
    }
    let mut figures = Vec::new();
    for (i, (f, refs)) in layouts.iter().enumerate() {
        figures.push((*f, (best[i].0, best[i].1, features_rate(*f, refs, &clip, &a)?)));
    }
    let (per_core, all_cores, end_to_end) = figures[0].1;
    let containers: serde_json::Map<String, serde_json::Value> = figures[1..]
        .iter()
        .map(|(f, (pc, ac, e2e))| {
            (
                f.name().to_string(),
                json!({
                    "decode_resize_per_core": pc, "decode_resize_all_cores": ac, "to_features_vit_b32": e2e,
                    "per_core_vs_folder": pc / per_core, "to_features_vs_folder": e2e / end_to_end,
                }),
            )
        })
        .collect();
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
        "images": files.len(), "input": format.name(), "containers": containers, "formats": formats, "decode_resize_per_core": per_core, "decode_resize_all_cores": all_cores,
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
