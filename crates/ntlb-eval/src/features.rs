//! Image features of a dataset, computed once per (checkpoint, dataset, file list,
//! preprocessing) and cached on disk with a manifest. Decoding runs on all CPU cores in a
//! producer thread, one bounded batch ahead of the encoder.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::{Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use ntlb_clip::parity::to_f32_vec;
use ntlb_clip::preprocess::ConvertOrder;
use ntlb_clip::{l2_normalize, Clip};
use ntlb_data::variants::EvalSet;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Everything the cached features depend on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureKey {
    pub checkpoint_sha256: String,
    pub dataset: String,
    pub root: String,
    /// SHA-256 over the (file, label, size) list.
    pub files_sha256: String,
    pub n_files: usize,
    pub preprocessing: String,
    /// When images are converted to RGB (`ntlb_clip::preprocess::ConvertOrder`).
    #[serde(default)]
    pub convert_order: String,
}

impl FeatureKey {
    pub fn new(checkpoint_sha256: &str, set: &EvalSet, resolution: usize) -> FeatureKey {
        FeatureKey::with_order(checkpoint_sha256, set, resolution, ConvertOrder::default())
    }

    pub fn with_order(checkpoint_sha256: &str, set: &EvalSet, resolution: usize, order: ConvertOrder) -> FeatureKey {
        let mut h = Sha256::new();
        for (p, l) in &set.items {
            let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            h.update(format!("{}\t{l}\t{size}\n", p.display()).as_bytes());
        }
        FeatureKey {
            checkpoint_sha256: checkpoint_sha256.into(),
            dataset: set.kind.name().into(),
            root: set.root.display().to_string(),
            files_sha256: format!("{:x}", h.finalize()),
            n_files: set.items.len(),
            // v2: libjpeg-turbo decoding, tRNS kept out of alpha, Pillow 13's pass order.
            preprocessing: format!("clip-test:resize-bicubic-pillow,center-crop,{resolution}px,v2"),
            convert_order: order.name().into(),
        }
    }

    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).expect("serialisable"));
        format!("{:x}", h.finalize())[..20].to_string()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureManifest {
    pub key: FeatureKey,
    pub n_features: usize,
    pub dim: usize,
    /// Files that could not be decoded, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Normalised features `[N, E]` (row-major) with their labels.
#[derive(Debug, Clone)]
pub struct Features {
    pub data: Vec<f32>,
    pub dim: usize,
    pub labels: Vec<usize>,
    pub manifest: FeatureManifest,
}

impl Features {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Encode every image of `set` (or read the cache in `cache_dir`), converted to RGB in the
/// reference's order.
#[allow(clippy::too_many_arguments)]
pub fn dataset_features(
    clip: &Clip,
    set: &EvalSet,
    checkpoint_sha256: &str,
    cache_dir: Option<&Path>,
    batch: usize,
    strict: bool,
    progress: bool,
) -> Result<Features> {
    dataset_features_in_order(
        clip,
        set,
        checkpoint_sha256,
        cache_dir,
        batch,
        strict,
        progress,
        ConvertOrder::default(),
    )
}

/// [`dataset_features`] with the conversion order as a setting.
#[allow(clippy::too_many_arguments)]
pub fn dataset_features_in_order(
    clip: &Clip,
    set: &EvalSet,
    checkpoint_sha256: &str,
    cache_dir: Option<&Path>,
    batch: usize,
    strict: bool,
    progress: bool,
    order: ConvertOrder,
) -> Result<Features> {
    let n = clip.config.vision.image_resolution();
    let key = FeatureKey::with_order(checkpoint_sha256, set, n, order);
    let id = key.id();
    if let Some(dir) = cache_dir {
        let mpath = dir.join(format!("{id}.manifest.json"));
        if mpath.exists() {
            let manifest: FeatureManifest = serde_json::from_str(&std::fs::read_to_string(&mpath)?)
                .with_context(|| format!("{}: bad cache manifest", mpath.display()))?;
            if manifest.key == key {
                let mut t = ntlb_prompt::store::read_tensors(&dir.join(format!("{id}.features.safetensors")))?;
                let (fs, data) = t.remove("features").context("cache without features")?;
                let (_, labels) = t.remove("labels").context("cache without labels")?;
                if fs != [manifest.n_features, manifest.dim] {
                    bail!(
                        "{}: cached features have shape {fs:?}, manifest says [{}, {}]",
                        mpath.display(),
                        manifest.n_features,
                        manifest.dim
                    );
                }
                return Ok(Features {
                    data,
                    dim: manifest.dim,
                    labels: labels.iter().map(|&l| l as usize).collect(),
                    manifest,
                });
            }
        }
    }
    let device = clip.text.token_embedding.device();
    let start = Instant::now();
    let bar = if progress {
        ProgressBar::new(set.items.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{:<16} {{bar:30}} {{pos}}/{{len}} {{per_sec}} {{eta}} {{msg}}",
            set.kind.name()
        ))
        .expect("template"),
    );
    let items = set.items.clone();
    let batch = batch.max(1);
    // The producer decodes one batch ahead on the rayon pool; the channel bounds memory.
    let (tx, rx) = sync_channel::<Vec<(usize, std::result::Result<Vec<f32>, String>)>>(1);
    let producer = std::thread::spawn(move || {
        for (ci, chunk) in items.chunks(batch).enumerate() {
            let decoded: Vec<_> = chunk
                .par_iter()
                .enumerate()
                .map(|(j, (p, _))| {
                    (
                        ci * batch + j,
                        ntlb_clip::preprocess::load_image_with(p, n, order).map_err(|e| e.to_string()),
                    )
                })
                .collect();
            if tx.send(decoded).is_err() {
                break;
            }
        }
    });
    let (mut data, mut labels, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    let mut dim = clip.config.embed_dim;
    for decoded in rx {
        let mut pixels = Vec::new();
        let mut count = 0;
        for (i, r) in decoded {
            match r {
                Ok(px) => {
                    pixels.extend(px);
                    labels.push(set.items[i].1);
                    count += 1;
                }
                Err(e) => {
                    if strict {
                        bail!("{e} (--strict)");
                    }
                    bar.println(format!("skipping unreadable image: {e}"));
                    failed.push((set.items[i].0.clone(), e));
                }
            }
        }
        if count > 0 {
            let x = Tensor::<4>::from_data(TensorData::new(pixels, [count, 3, n, n]), &device);
            let f = l2_normalize(clip.encode_image(x));
            dim = f.dims()[1];
            data.extend(to_f32_vec(f));
        }
        bar.set_position((labels.len() + failed.len()) as u64);
        bar.set_message(if failed.is_empty() {
            String::new()
        } else {
            format!("{} unreadable", failed.len())
        });
    }
    producer.join().map_err(|_| anyhow::anyhow!("decoder thread panicked"))?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let manifest = FeatureManifest {
        key,
        n_features: labels.len(),
        dim,
        failed,
        seconds,
        images_per_second: set.items.len() as f64 / seconds.max(1e-9),
    };
    if let Some(dir) = cache_dir {
        std::fs::create_dir_all(dir)?;
        let lab: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
        ntlb_prompt::store::write_tensors(
            &dir.join(format!("{id}.features.safetensors")),
            &[
                ("features".into(), vec![labels.len(), dim], data.clone()),
                ("labels".into(), vec![labels.len()], lab),
            ],
        )?;
        // The manifest is written last: a run killed before this point leaves no readable cache.
        ntlb_clip::io::write_atomic(
            &dir.join(format!("{id}.manifest.json")),
            serde_json::to_string_pretty(&manifest)?.as_bytes(),
        )?;
    }
    Ok(Features {
        data,
        dim,
        labels,
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conversion_order_is_part_of_the_cache_key() {
        let set = EvalSet {
            kind: ntlb_data::variants::DatasetKind::Imagenet,
            root: "/data".into(),
            classes: ntlb_data::classes::ClassList {
                ids: vec!["a".into()],
                names: vec!["a".into()],
            },
            items: vec![("/data/a/1.JPEG".into(), 0)],
            empty_classes: vec![],
        };
        let dassl = FeatureKey::new("sha", &set, 224);
        assert_eq!(dassl.convert_order, "dassl");
        assert_eq!(dassl, FeatureKey::with_order("sha", &set, 224, ConvertOrder::Dassl));
        let clip = FeatureKey::with_order("sha", &set, 224, ConvertOrder::Clip);
        assert_eq!(clip.convert_order, "clip");
        assert_ne!(dassl.id(), clip.id());
    }
}
