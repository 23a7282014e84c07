//! Job keys from content, not location: the same sweep on a node that mounts the data or the
//! checkpoints elsewhere gives every job the same key, and a change of anything that moves a
//! number (checkpoint bytes, class list, templates, files, precision, device kind, training
//! settings) gives a new one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ntlb_data::classes::ClassList;
use ntlb_data::image::ImageRef;
use ntlb_data::source::TrainSet;
use ntlb_data::variants::EvalSet;
use ntlb_prompt::train::TrainConfig;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sweep::{Job, ModelEntry, SweepConfig};

/// Bumped when a code change moves results (keys of older records then stop matching).
pub const KEY_SCHEME: u32 = 3;

/// The version of the image pipeline (decoding, resampling, cropping, normalisation): in every
/// feature-cache key and in every job key, so a change of the pixels the model sees is one bump
/// here and invalidates both. 2: libjpeg-turbo decoding, tRNS kept out of alpha, Pillow 13's
/// pass order.
pub const PIPELINE_VERSION: u32 = 2;

/// Job keys made at pipeline 2 carry no pipeline field (they predate it): left out there, so they hold.
fn is_first_pipeline(v: &u32) -> bool {
    *v == 2
}

fn hex(h: Sha256) -> String {
    format!("{:x}", h.finalize())
}

/// Device kind and float precision, normalised (`cuda:3` and `cuda` are the same kind).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Numerics {
    pub device_kind: String,
    pub precision: String,
}

impl Numerics {
    pub fn from_config(device: &str, precision: &str) -> Result<Numerics> {
        let d = device.trim().to_ascii_lowercase();
        let device_kind = if d == "cpu" || d == "flex" {
            "cpu"
        } else if d.starts_with("cuda") {
            "cuda"
        } else {
            bail!("unknown device `{device}`: expected cpu, cuda or cuda:N")
        };
        let precision = match precision.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => "f32",
            "bf16" | "bfloat16" => "bf16",
            "f16" | "fp16" | "float16" => "f16",
            other => bail!("unknown precision `{other}`: expected f32, bf16 or f16"),
        };
        Ok(Numerics {
            device_kind: device_kind.into(),
            precision: precision.into(),
        })
    }
}

/// SHA-256 over (path relative to `root`, label, size) of every file, in order. Paths outside
/// `root` (never produced by the readers) keep their full form rather than colliding.
pub fn files_sha256(root: &Path, items: &[(PathBuf, usize)]) -> Result<String> {
    let lines: Vec<String> = items
        .par_iter()
        .map(|(p, l)| {
            let size = std::fs::metadata(p).with_context(|| format!("{}: cannot stat", p.display()))?.len();
            let rel = p.strip_prefix(root).unwrap_or(p);
            // `/` on every platform, so the hash does not depend on the separator either.
            let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            Ok(format!("{}\t{l}\t{size}\n", rel.join("/")))
        })
        .collect::<Result<_>>()?;
    let mut h = Sha256::new();
    for l in &lines {
        h.update(l.as_bytes());
    }
    Ok(hex(h))
}

/// The item list's hash of a set: [`files_sha256`] for a folder tree (so the keys of folder sets
/// are those made before containers existed), the container's own for shards and parquet
/// files (its files, sample count and (sample, label) list: no file is read).
pub fn items_sha256(set: &EvalSet) -> Result<String> {
    match &set.container {
        Some(c) => Ok(c.sha256(&set.root, &set.items)),
        None => files_sha256(&set.root, &as_files(&set.items)?),
    }
}

fn as_files(items: &[(ImageRef, usize)]) -> Result<Vec<(PathBuf, usize)>> {
    items
        .iter()
        .map(|(r, l)| match r.as_file() {
            Some(p) => Ok((p.to_path_buf(), *l)),
            None => bail!("{r}: a container's sample in a set of files"),
        })
        .collect()
}

/// The training images by content, as [`items_sha256`].
pub fn train_set_sha256(set: &TrainSet) -> Result<String> {
    match &set.container {
        Some(c) => Ok(c.sha256(&set.root, &set.items)),
        None => files_sha256(&set.root, &as_files(&set.items)?),
    }
}

/// Upstream CoOp's cached draws under `<dataset root>/split_fewshot/` by name and content (empty
/// when there are none). A cached draw wins over a fresh one (`FewShotSplit::choose`), so adding,
/// changing or removing one changes the images a job trains on: it is part of the training set.
pub fn cached_draws_sha256(dataset_root: &Path) -> Result<String> {
    let dir = dataset_root.join("split_fewshot");
    if !dir.is_dir() {
        return Ok(String::new());
    }
    let mut pickles = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("{}: cannot list", dir.display()))? {
        let p = e.with_context(|| format!("{}: cannot list", dir.display()))?.path();
        if p.extension().is_some_and(|x| x == "pkl") {
            pickles.push(p);
        }
    }
    if pickles.is_empty() {
        return Ok(String::new());
    }
    pickles.sort();
    let mut h = Sha256::new();
    for p in &pickles {
        let sha = ntlb_core::digest::sha256_file(p).with_context(|| format!("{}: cannot read", p.display()))?;
        h.update(format!("{}\t{sha}\n", p.file_name().unwrap_or_default().to_string_lossy()).as_bytes());
    }
    Ok(format!("+split_fewshot:{}", hex(h)))
}

pub fn classes_sha256(c: &ClassList) -> String {
    let mut h = Sha256::new();
    for (id, name) in c.ids.iter().zip(&c.names) {
        h.update(format!("{id}\t{name}\n").as_bytes());
    }
    hex(h)
}

/// An evaluation set by content: kind, its label space and its items (`items`: the set's
/// [`items_sha256`], hashed once per sweep for this and its feature-cache key).
pub fn eval_set_identity(set: &EvalSet, items: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!("{}\n{}\n", set.kind.name(), classes_sha256(&set.classes)).as_bytes());
    h.update(items.as_bytes());
    hex(h)
}

/// SHA-256 of a checkpoint, hashed once per process (the plan's keys and the model load both
/// need it; a checkpoint is hundreds of MB on a shared file system). Keyed by path, size and
/// mtime, so a file replaced in place is hashed again.
pub fn checkpoint_sha256(path: &Path) -> Result<String> {
    type FileStamp = (PathBuf, u64, Option<std::time::SystemTime>);
    static MEMO: std::sync::Mutex<Option<HashMap<FileStamp, String>>> = std::sync::Mutex::new(None);
    let meta = std::fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let k = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(h) = MEMO.lock().expect("memo").get_or_insert_with(HashMap::new).get(&k) {
        return Ok(h.clone());
    }
    let h = ntlb_core::digest::sha256_file(path).with_context(|| format!("{}: cannot hash", path.display()))?;
    MEMO.lock().expect("memo").get_or_insert_with(HashMap::new).insert(k, h.clone());
    Ok(h)
}

/// The checkpoint file of a model entry, by the loader's own rule
/// ([`ntlb_clip::weights::weights_file`]: a folder's `model.safetensors`, else its
/// `pytorch_model.bin`, ...).
pub fn weights_file(m: &ModelEntry) -> Result<PathBuf> {
    ntlb_clip::weights::weights_file(&m.path).with_context(|| format!("model `{}`", m.name))
}

/// Every content hash the keys of a sweep need, computed once.
#[derive(Debug, Clone)]
pub struct SweepIdentity {
    pub numerics: Numerics,
    pub strict: bool,
    pub convert_order: ntlb_clip::preprocess::ConvertOrder,
    pub classes: String,
    pub datasets: Vec<String>,
    /// Each set's [`items_sha256`], in the order of `datasets`: the feature-cache keys use them.
    pub set_items: Vec<String>,
    /// The dataset entries' names, in order, where one is not its kind (they name the rows, so
    /// a renamed set is another job); `None` where every name is its kind.
    pub dataset_names: Option<Vec<String>>,
    /// Model name -> checkpoint SHA-256 (and the tokenizer's, when one is named).
    pub models: HashMap<String, String>,
    /// Model name -> its activations and normalisation (`ModelNumerics::identity`).
    pub model_numerics: HashMap<String, String>,
    pub templates: HashMap<PathBuf, Vec<String>>,
    /// Each CoOp training set by content, by its `coop.train` name (`imagenet`: the folder at
    /// `coop.train_root`).
    pub train: HashMap<String, String>,
}

#[derive(Serialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
enum Content<'a> {
    ZeroShot {
        per_template: bool,
        templates: &'a [String],
        ensembles: BTreeMap<&'a str, &'a [String]>,
    },
    Coop {
        lambda: f64,
        seed: u64,
        train: &'a TrainConfig,
        train_data: &'a str,
        /// Left out for ImageNet at `coop.train_root`, so keys made before the axis existed hold.
        #[serde(skip_serializing_if = "Option::is_none")]
        train_dataset: Option<&'a str>,
    },
}

/// What a job key hashes (serialised; no path in it).
#[derive(Serialize)]
struct KeyMaterial<'a> {
    scheme: u32,
    model: &'a str,
    checkpoint: &'a str,
    model_numerics: &'a str,
    job: Content<'a>,
    classes: &'a str,
    datasets: &'a [String],
    /// Left out where every set is named after its kind, so keys made before names existed hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset_names: Option<&'a [String]>,
    numerics: &'a Numerics,
    strict: bool,
    /// Left out at the default (the reference's order), so keys made before it existed hold.
    #[serde(skip_serializing_if = "is_reference_order")]
    convert_order: ntlb_clip::preprocess::ConvertOrder,
    #[serde(skip_serializing_if = "is_first_pipeline")]
    pipeline: u32,
}

fn is_reference_order(o: &ntlb_clip::preprocess::ConvertOrder) -> bool {
    *o == ntlb_clip::preprocess::ConvertOrder::default()
}

impl SweepIdentity {
    /// Hash the checkpoints, templates, class list, datasets and (with CoOp) the training files.
    pub fn compute(cfg: &SweepConfig, classes: &ClassList, sets: &[EvalSet]) -> Result<SweepIdentity> {
        let numerics = Numerics::from_config(&cfg.device, &cfg.precision)?;
        let set_items = sets.iter().map(items_sha256).collect::<Result<Vec<_>>>()?;
        let datasets = sets.iter().zip(&set_items).map(|(s, i)| eval_set_identity(s, i)).collect();
        let names: Vec<String> = cfg.datasets.iter().map(|d| d.name().to_string()).collect();
        let dataset_names = cfg.datasets.iter().any(|d| d.name() != d.kind.name()).then_some(names);
        let mut models = HashMap::new();
        let mut model_numerics = HashMap::new();
        for m in &cfg.models {
            let n = ntlb_clip::checkpoint::numerics(&m.path, m.activation).with_context(|| format!("model `{}`", m.name))?;
            model_numerics.insert(m.name.clone(), n.identity());
            let w = weights_file(m)?;
            let mut id = checkpoint_sha256(&w).with_context(|| format!("model `{}`", m.name))?;
            if let Some(t) = &m.tokenizer {
                id += "+";
                id += &ntlb_core::digest::sha256_file(t).with_context(|| format!("model `{}`: {}", m.name, t.display()))?;
            }
            models.insert(m.name.clone(), id);
        }
        let mut templates = HashMap::new();
        if let Some(z) = &cfg.zero_shot {
            for p in std::iter::once(&z.templates).chain(z.ensembles.values()) {
                if !templates.contains_key(p) {
                    let kinds: Vec<_> = cfg.datasets.iter().map(|d| d.kind).collect();
                    templates.insert(p.clone(), crate::zeroshot::key_templates(p, &kinds)?);
                }
            }
        }
        let mut train = HashMap::new();
        for (name, set) in crate::sweep::open_train_sets(cfg, classes)? {
            train.insert(name, train_set_sha256(&set)? + &cached_draws_sha256(&set.dataset_root)?);
        }
        Ok(SweepIdentity {
            numerics,
            strict: cfg.strict,
            convert_order: cfg.convert_order,
            classes: classes_sha256(classes),
            datasets,
            set_items,
            dataset_names,
            models,
            model_numerics,
            templates,
            train,
        })
    }

    /// The job's key: 16 hex digits of the SHA-256 of its [`SweepIdentity::content`].
    pub fn key(&self, job: &Job) -> Result<String> {
        Ok(SweepIdentity::key_of(&self.content(job)?))
    }

    /// The key of a job's content.
    pub fn key_of(content: &str) -> String {
        let mut h = Sha256::new();
        h.update(content.as_bytes());
        hex(h)[..16].to_string()
    }

    /// What a job's key hashes, as JSON text: the model's name, checkpoint digest and numerics,
    /// the job's settings and template texts, the class list, each set by content, the
    /// numerics of the device. A run record carries it, so that what it was computed from can
    /// be checked against it ([`crate::results::RunRecord::check_content`]).
    pub fn content(&self, job: &Job) -> Result<String> {
        let m = job.model();
        let checkpoint = self
            .models
            .get(&m.name)
            .with_context(|| format!("model `{}` was not hashed", m.name))?;
        let tpl = |p: &PathBuf| -> Result<&[String]> {
            self.templates
                .get(p)
                .map(|v| v.as_slice())
                .with_context(|| format!("{}: templates were not read", p.display()))
        };
        let content = match job {
            Job::ZeroShot { zero_shot, .. } => Content::ZeroShot {
                per_template: zero_shot.per_template,
                // Without per-template rows the file only matters through the ensembles.
                templates: if zero_shot.per_template { tpl(&zero_shot.templates)? } else { &[] },
                ensembles: zero_shot
                    .ensembles
                    .iter()
                    .map(|(n, p)| Ok((n.as_str(), tpl(p)?)))
                    .collect::<Result<_>>()?,
            },
            Job::Coop {
                lambda,
                seed,
                train,
                train_dataset,
                ..
            } => {
                let on = train_dataset.as_deref().unwrap_or(crate::sweep::IMAGENET_TRAIN);
                Content::Coop {
                    lambda: *lambda,
                    seed: *seed,
                    train,
                    train_data: self
                        .train
                        .get(on)
                        .with_context(|| format!("CoOp job on `{on}` without a hashed training set"))?,
                    train_dataset: train_dataset.as_deref(),
                }
            }
        };
        let model_numerics = self
            .model_numerics
            .get(&m.name)
            .with_context(|| format!("model `{}`: its numerics were not read", m.name))?;
        let material = KeyMaterial {
            scheme: KEY_SCHEME,
            model: &m.name,
            checkpoint,
            model_numerics,
            job: content,
            classes: &self.classes,
            datasets: &self.datasets,
            dataset_names: self.dataset_names.as_deref(),
            numerics: &self.numerics,
            strict: self.strict,
            convert_order: self.convert_order,
            pipeline: PIPELINE_VERSION,
        };
        Ok(serde_json::to_string(&material)?)
    }

    pub fn keys(&self, jobs: &[Job]) -> Result<Vec<String>> {
        jobs.iter().map(|j| self.key(j)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cached draw added, changed or removed is another training set: the CoOp jobs' keys move.
    #[test]
    fn cached_draws_enter_the_training_identity() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(cached_draws_sha256(d.path()).unwrap(), "", "no folder: keys as before");
        let dir = d.path().join("split_fewshot");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();
        assert_eq!(cached_draws_sha256(d.path()).unwrap(), "", "only pickles count");
        std::fs::write(dir.join("shot_1-seed_1.pkl"), b"a").unwrap();
        let one = cached_draws_sha256(d.path()).unwrap();
        assert!(!one.is_empty());
        std::fs::write(dir.join("shot_1-seed_1.pkl"), b"b").unwrap();
        let changed = cached_draws_sha256(d.path()).unwrap();
        assert_ne!(one, changed);
        std::fs::rename(dir.join("shot_1-seed_1.pkl"), dir.join("shot_2-seed_1.pkl")).unwrap();
        assert_ne!(
            cached_draws_sha256(d.path()).unwrap(),
            changed,
            "the file's name says which run it serves"
        );
    }
}
