//! Image features of a dataset, computed once per (checkpoint, dataset, file list,
//! preprocessing, device kind, precision) and cached on disk with a manifest; a lock file per
//! entry makes concurrent array tasks encode it once. Decoding runs on all CPU cores in a
//! producer thread, one bounded batch ahead of the encoder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use burn::tensor::{Tensor, TensorData};
use ntlb_clip::checkpoint::ModelNumerics;
use ntlb_clip::preprocess::ConvertOrder;
use ntlb_clip::{l2_normalize, Clip};
use ntlb_core::host::to_f32_vec;
use ntlb_data::variants::EvalSet;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::{items_sha256, Numerics, PIPELINE_VERSION};
use crate::progress::Progress;

/// Everything the cached features depend on; no path, so nodes that mount the data elsewhere
/// share one cache entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureKey {
    pub checkpoint_sha256: String,
    pub dataset: String,
    /// SHA-256 over the (file relative to the dataset root, label, size) list; for shards or
    /// parquet files, over the files, the sample count and the (sample, label) list
    /// (`ntlb_data::source::Container::sha256`).
    pub files_sha256: String,
    pub n_files: usize,
    pub preprocessing: String,
    pub numerics: Numerics,
    /// When images are converted to RGB (`ntlb_clip::preprocess::ConvertOrder`; the reference's,
    /// Dassl's, before resizing).
    #[serde(default)]
    pub convert_order: String,
    /// The model's activations and normalisation (`ModelNumerics::identity`): a GELU and a
    /// QuickGELU reading of one file never share an entry.
    #[serde(default)]
    pub model: String,
}

impl FeatureKey {
    /// The key of `set`'s features, `items` being its [`items_sha256`] (the sweep's identity
    /// hashed it already: each file list is hashed once).
    pub fn new(
        checkpoint_sha256: &str,
        numerics: &Numerics,
        set: &EvalSet,
        items: &str,
        model: &ModelNumerics,
        resolution: usize,
    ) -> FeatureKey {
        FeatureKey {
            checkpoint_sha256: checkpoint_sha256.into(),
            dataset: set.kind.name().into(),
            files_sha256: items.into(),
            n_files: set.items.len(),
            preprocessing: format!("clip-test:resize-bicubic-pillow,center-crop,{resolution}px,v{PIPELINE_VERSION}"),
            numerics: numerics.clone(),
            convert_order: ConvertOrder::default().name().into(),
            model: model.identity(),
        }
    }

    /// The same key for pictures converted to RGB in `order`.
    pub fn in_order(mut self, order: ConvertOrder) -> FeatureKey {
        self.convert_order = order.name().into();
        self
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
    /// SHA-256 of the `.features.safetensors` file this manifest describes, checked on every
    /// read: an entry whose bytes changed is recomputed, never used.
    #[serde(default)]
    pub features_sha256: Option<String>,
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

/// A dead holder's lock is taken over after this long without a refresh (it refreshes every
/// quarter of it while encoding).
pub const LOCK_STALE_AFTER: Duration = Duration::from_secs(300);

/// What the cache holds for a key.
#[allow(clippy::large_enum_variant)] // one per dataset and read
pub enum Cached {
    Hit(Features),
    /// No finished entry (or one for another key).
    Miss,
    /// An entry that fails its checks (unparseable manifest, truncated file, a digest that does
    /// not match, shapes that disagree): why, and the files to set aside.
    Damaged {
        why: String,
        files: Vec<PathBuf>,
    },
}

fn entry_paths(dir: &Path, id: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{id}.manifest.json")),
        dir.join(format!("{id}.features.safetensors")),
    )
}

/// The cached features of `key` in `dir`, checked against the manifest's digest.
pub fn read_cached(dir: &Path, key: &FeatureKey) -> Result<Cached> {
    let (mpath, fpath) = entry_paths(dir, &key.id());
    if !mpath.exists() {
        return Ok(Cached::Miss);
    }
    let both = vec![mpath.clone(), fpath.clone()];
    let damaged = |why: String| Ok(Cached::Damaged { why, files: both.clone() });
    // The manifest is sealed with the digest of its own text: a changed count of failed images
    // would change the rows as surely as changed features.
    let manifest: FeatureManifest = match ntlb_core::sealed::read_sealed_json(&mpath) {
        Ok(m) => m,
        Err(e) if ntlb_core::sealed::is_not_found(&e) => return Ok(Cached::Miss),
        Err(e) => return damaged(format!("not a usable cache manifest: {e:#}")),
    };
    if manifest.key != *key {
        return Ok(Cached::Miss);
    }
    let Some(want) = &manifest.features_sha256 else {
        // Nothing to keep: an entry that cannot be checked is encoded again in its place.
        return Ok(Cached::Damaged {
            why: format!("{}: no digest of its features (written before digests were kept)", mpath.display()),
            files: Vec::new(),
        });
    };
    let bytes = match std::fs::read(&fpath) {
        Ok(b) => b,
        Err(e) => return damaged(format!("{}: cannot read ({e})", fpath.display())),
    };
    let got = ntlb_core::digest::sha256_bytes(&bytes);
    if got != *want {
        return damaged(format!("{}: SHA-256 {got}, its manifest says {want}", fpath.display()));
    }
    let mut t = match ntlb_core::store::parse_tensors(&bytes, &fpath) {
        Ok((t, _)) => t,
        Err(e) => return damaged(format!("{e:#}")),
    };
    let (Some((fs, data)), Some((_, labels))) = (t.remove("features"), t.remove("labels")) else {
        return damaged(format!("{}: no `features` or no `labels` tensor", fpath.display()));
    };
    if fs != [manifest.n_features, manifest.dim] || labels.len() != manifest.n_features {
        return damaged(format!(
            "{}: features {fs:?} and {} labels, its manifest says [{}, {}]",
            fpath.display(),
            labels.len(),
            manifest.n_features,
            manifest.dim
        ));
    }
    if let Some((row, n, v)) = crate::metrics::first_non_finite(&data, manifest.dim) {
        return damaged(format!(
            "{}: feature row {row}: {n} values are not finite (first: {v})",
            fpath.display()
        ));
    }
    Ok(Cached::Hit(Features {
        data,
        dim: manifest.dim,
        labels: labels.iter().map(|&l| l as usize).collect(),
        manifest,
    }))
}

fn write_cached(dir: &Path, f: &mut Features) -> Result<()> {
    let id = f.manifest.key.id();
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let lab: Vec<f32> = f.labels.iter().map(|&l| l as f32).collect();
    let bytes = ntlb_core::store::serialize_tensors(
        &[
            ("features".into(), vec![f.labels.len(), f.dim], f.data.clone()),
            ("labels".into(), vec![f.labels.len()], lab),
        ],
        None,
    )?;
    f.manifest.features_sha256 = Some(ntlb_core::digest::sha256_bytes(&bytes));
    let (mpath, fpath) = entry_paths(dir, &id);
    ntlb_core::atomic::write_atomic(&fpath, &bytes).with_context(|| format!("writing {}", fpath.display()))?;
    // The manifest (with the digest) is written last: a run killed before this point leaves no
    // readable cache, and a reader between the two writes sees a digest mismatch.
    ntlb_core::sealed::write_sealed_json(&mpath, &f.manifest)?;
    // One line per encoding: who did the work (and the test that each dataset is encoded once).
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("encodings.log"))?;
    writeln!(
        log,
        "{id} {} {} pid {} {} images {:.1} s",
        f.manifest.key.dataset,
        crate::lock::hostname(),
        std::process::id(),
        f.manifest.n_features,
        f.manifest.seconds
    )?;
    Ok(())
}

/// Features, or who is encoding them right now.
#[allow(clippy::large_enum_variant)] // one per dataset and try: boxing buys nothing
enum Attempt {
    Ready(Features),
    Busy { holder: String },
}

/// Where and how features are encoded and cached: what every set of a run shares.
pub struct FeatureCache<'a> {
    /// The cache folder; `None` encodes every time.
    pub dir: Option<&'a Path>,
    pub numerics: &'a Numerics,
    /// Images per batch through the image encoder.
    pub batch: usize,
    /// Any unreadable or undecodable image is an error.
    pub strict: bool,
    pub progress: bool,
}

impl FeatureCache<'_> {
    /// `set`'s features: read from the cache, or encoded under the entry's lock; when another
    /// process is encoding the same entry, wait for it rather than encode it twice.
    pub fn dataset(&self, clip: &Clip, set: &EvalSet, checkpoint_sha256: &str) -> Result<Features> {
        let key = FeatureKey::new(
            checkpoint_sha256,
            self.numerics,
            set,
            &items_sha256(set)?,
            &clip.numerics,
            clip.config.vision.image_resolution(),
        );
        self.when_free(clip, std::slice::from_ref(set), vec![key])
            .map(|mut f| f.pop().expect("one set"))
    }

    /// Features of every set for one model (`set_items`: each set's item hash, from the
    /// sweep's identity). Each array task first takes what is cached, then encodes the sets no
    /// other task is encoding, and only then waits for the rest: tasks that start together on a
    /// cold cache split the encoding instead of queueing behind one lock.
    pub fn model(
        &self,
        clip: &Clip,
        sets: &[EvalSet],
        set_items: &[String],
        checkpoint_sha256: &str,
        order: ConvertOrder,
    ) -> Result<Vec<Features>> {
        let res = clip.config.vision.image_resolution();
        let keys: Vec<FeatureKey> = sets
            .iter()
            .zip(set_items)
            .map(|(s, items)| FeatureKey::new(checkpoint_sha256, self.numerics, s, items, &clip.numerics, res).in_order(order))
            .collect();
        self.when_free(clip, sets, keys)
    }

    /// The one wait loop: each set tried in turn until all are ready.
    fn when_free(&self, clip: &Clip, sets: &[EvalSet], keys: Vec<FeatureKey>) -> Result<Vec<Features>> {
        crate::lock::each_when_free(sets.len(), self.progress, |i| {
            Ok(match self.try_keyed(clip, &sets[i], keys[i].clone())? {
                Attempt::Ready(f) => crate::lock::Turn::Done(f),
                Attempt::Busy { holder } => crate::lock::Turn::Busy(format!("the features of {} ({holder})", sets[i].kind.name())),
            })
        })
    }

    /// Read the cache, or encode under the entry's lock; `Busy` when another process holds it.
    fn try_keyed(&self, clip: &Clip, set: &EvalSet, key: FeatureKey) -> Result<Attempt> {
        // Entries of the walk that could not be read are counted with the images that fail to
        // decode (they are in no cache entry: the file list they would change is of readable files).
        if let (true, Some((p, why))) = (self.strict, set.unreadable.first()) {
            bail!("{}: {why} (--strict)", p.display());
        }
        let with_unreadable = |mut f: Features| {
            f.manifest.failed.splice(0..0, set.unreadable.iter().cloned());
            Attempt::Ready(f)
        };
        let Some(dir) = self.dir else {
            return encode(clip, set, key, self.batch, self.strict, self.progress).map(with_unreadable);
        };
        if let Cached::Hit(f) = read_cached(dir, &key)? {
            return Ok(with_unreadable(f));
        }
        // A miss, or a damaged entry (perhaps one being rewritten): under the entry's lock.
        let lock_path = dir.join(format!("{}.lock", key.id()));
        let Some(_lock) = crate::lock::try_lock(&lock_path, LOCK_STALE_AFTER)? else {
            return Ok(Attempt::Busy {
                holder: crate::lock::held_by(&lock_path),
            });
        };
        // The previous holder may have finished between our read and our lock.
        match read_cached(dir, &key)? {
            Cached::Hit(f) => return Ok(with_unreadable(f)),
            Cached::Miss => {}
            Cached::Damaged { why, files } => {
                let mut kept = Vec::new();
                for p in files.iter().filter(|p| p.exists()) {
                    kept.push(
                        ntlb_core::damaged::set_aside(p)
                            .with_context(|| format!("{}: cannot move the damaged entry aside", p.display()))?,
                    );
                }
                let kept: Vec<String> = kept.iter().map(|p| p.display().to_string()).collect();
                if kept.is_empty() {
                    eprintln!(
                        "{}: unverifiable feature cache entry ({why}); encoding it again in its place",
                        set.kind.name()
                    );
                } else {
                    eprintln!(
                        "{}: damaged feature cache entry ({why}); moved aside to {}, encoding it again",
                        set.kind.name(),
                        kept.join(", ")
                    );
                }
            }
        }
        let mut f = encode(clip, set, key, self.batch, self.strict, self.progress)?;
        write_cached(dir, &mut f)?;
        Ok(with_unreadable(f))
    }
}

fn encode(clip: &Clip, set: &EvalSet, key: FeatureKey, batch: usize, strict: bool, progress: bool) -> Result<Features> {
    let n = clip.config.vision.image_resolution();
    let order: ConvertOrder = key
        .convert_order
        .parse()
        .map_err(|e| anyhow::anyhow!("feature key: conversion order `{}`: {e}", key.convert_order))?;
    let device = clip.text.token_embedding.device();
    let norm = clip.numerics.normalization;
    let start = Instant::now();
    let mut bar = Progress::new(set.kind.name(), set.items.len() as u64, progress);
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
                        ntlb_clip::preprocess::load_image_from(p, n, order, &norm).map_err(|e| e.to_string()),
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
        let mut encoded = Vec::new();
        for (i, r) in decoded {
            match r {
                Ok(px) => {
                    pixels.extend(px);
                    labels.push(set.items[i].1);
                    encoded.push(i);
                    count += 1;
                }
                Err(e) => {
                    if strict {
                        bail!("{e} (--strict)");
                    }
                    bar.note(&format!("skipping unreadable image: {e}"));
                    failed.push((ntlb_clip::preprocess::ImageBytes::image_name(&set.items[i].0), e));
                }
            }
        }
        if count > 0 {
            let x = Tensor::<4>::from_data(TensorData::new(pixels, [count, 3, n, n]), &device);
            let f = l2_normalize(clip.encode_image(x));
            dim = f.dims()[1];
            let rows = to_f32_vec(f);
            // A NaN feature would be scored as no number can be; the image it came from is named.
            if let Some((row, n, v)) = crate::metrics::first_non_finite(&rows, dim) {
                bail!(
                    "{}: image {}: {n} of the {dim} values of its image features are not finite (first: {v}): \
                     the model's numbers overflow on it",
                    set.kind.name(),
                    ntlb_clip::preprocess::ImageBytes::image_name(&set.items[encoded[row]].0).display()
                );
            }
            data.extend(rows);
        }
        let note = if failed.is_empty() {
            String::new()
        } else {
            format!("{} unreadable", failed.len())
        };
        bar.set((labels.len() + failed.len()) as u64, &note);
    }
    producer.join().map_err(|_| anyhow::anyhow!("decoder thread panicked"))?;
    bar.finish(&format!("{} unreadable", failed.len()));
    let seconds = start.elapsed().as_secs_f64();
    let manifest = FeatureManifest {
        key,
        n_features: labels.len(),
        dim,
        failed,
        seconds,
        images_per_second: set.items.len() as f64 / seconds.max(1e-9),
        features_sha256: None,
    };
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
    fn the_conversion_order_and_the_decoder_version_are_in_the_cache_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/1.JPEG");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"x").unwrap();
        let classes = ntlb_data::classes::ClassList {
            ids: vec!["a".into()],
            names: vec!["a".into()],
        };
        let set = EvalSet::of_files(ntlb_data::variants::DatasetKind::Imagenet, dir.path(), classes, vec![(file, 0)]);
        let numerics = Numerics::from_config("cpu", "f32").unwrap();
        let openai = ntlb_clip::checkpoint::numerics(dir.path(), None).unwrap();
        let items = items_sha256(&set).unwrap();
        let key = FeatureKey::new("sha", &numerics, &set, &items, &openai, 224);
        assert_eq!(key.convert_order, ConvertOrder::Dassl.name());
        assert!(key.preprocessing.ends_with("v2"));
        // The id entries are stored under: caches written before may not be orphaned by a
        // change of how the key is assembled (only by a change of what it holds).
        assert_eq!(key.id(), "718285cc4f382fcd6552");
        let other = FeatureKey {
            convert_order: ConvertOrder::Clip.name().into(),
            ..key.clone()
        };
        assert_ne!(key.id(), other.id());
        let gelu = ModelNumerics {
            text_activation: ntlb_clip::config::Activation::Gelu,
            ..openai.clone()
        };
        assert_ne!(key.id(), FeatureKey::new("sha", &numerics, &set, &items, &gelu, 224).id());
        let norm = ModelNumerics {
            normalization: ntlb_clip::preprocess::Normalization {
                mean: [0.5; 3],
                std: [0.5; 3],
            },
            ..openai
        };
        assert_ne!(key.id(), FeatureKey::new("sha", &numerics, &set, &items, &norm, 224).id());
    }
}
