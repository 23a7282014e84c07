//! The sweep config (TOML): models, datasets, the zero-shot and CoOp settings, with the paper's
//! defaults; reading it, pointing it at data and checkpoint roots, and opening its datasets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ntlb_data::classes::ClassList;
use ntlb_data::source::{Format, Layout};
use ntlb_data::variants::{read_wnids, DatasetKind, EvalSet};
use serde::{Deserialize, Serialize};

fn default_batch() -> usize {
    64
}
fn default_precision() -> String {
    "f32".into()
}
fn default_device() -> String {
    "cpu".into()
}
fn default_true() -> bool {
    true
}
fn default_seeds() -> Vec<u64> {
    vec![1, 2, 3]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    /// A checkpoint file or folder (relative: under `checkpoint_root`), or a model name in the
    /// local Hugging Face cache: `org/name` (transformers) or `hf-hub:org/name` (open_clip),
    /// which [`SweepConfig::resolved`] replaces by its snapshot path.
    pub path: PathBuf,
    /// The revision of a named model (a branch, tag or commit hash; default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// `quick_gelu` or `gelu` for both towers; by default what the checkpoint declares (an
    /// error where it declares the other).
    #[serde(default)]
    pub activation: Option<ntlb_clip::config::Activation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEntry {
    /// What its rows and the report call the set (default: its kind). Two entries of one kind
    /// (a folder and a parquet copy, two `max_per_class`) need their own names: their rows
    /// are other sets, never seeds of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A kind of the dataset registry (`ntlb_data::registry`, docs/datasets.md): `imagenet`,
    /// its variants, and CoOp's `caltech101` … `ucf101` in their download layouts.
    pub kind: DatasetKind,
    pub root: PathBuf,
    /// Keep the first N images per class (the reference reads 2 per class of ImageNet-V2).
    #[serde(default)]
    pub max_per_class: Option<usize>,
    /// The 200-wnid list of -A / -R.
    #[serde(default)]
    pub wnids: Option<PathBuf>,
    /// Evaluate although some class folders hold no image (scored over the classes left; the
    /// empty ones are printed and written in every run record). Off: an error naming them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_empty_classes: bool,
    /// How the set is stored: `folder` (default), `wds` (CLIP_benchmark's WebDataset shards:
    /// `root/<split>/{0..n-1}.tar`) or `parquet` (Hugging Face: `root/data/<split>-*.parquet`,
    /// or one file).
    #[serde(default, skip_serializing_if = "is_folder")]
    pub format: Format,
    /// wds / parquet: the split (default `test` / `validation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// wds: the image extension (default: the first of webp, png, jpg, jpeg); parquet: the image
    /// column (default `image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_key: Option<String>,
    /// wds: the label extension (default `cls`); parquet: the label column (default `label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_key: Option<String>,
}

fn is_folder(f: &Format) -> bool {
    *f == Format::Folder
}

impl DatasetEntry {
    /// The entry's `name`, else its kind's.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.kind.name())
    }

    /// How errors name the entry: `[[datasets]] #i` (1-based), its name, kind and root.
    fn describe(&self, i: usize) -> String {
        format!(
            "[[datasets]] #{} (name `{}`, kind {}, root {})",
            i + 1,
            self.name(),
            self.kind.name(),
            self.root.display()
        )
    }

    pub fn layout(&self) -> Layout {
        Layout {
            format: self.format,
            split: self.split.clone(),
            image_key: self.image_key.clone(),
            label_key: self.label_key.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroShotSweep {
    /// Every template of this file is evaluated alone (when `per_template`).
    pub templates: PathBuf,
    #[serde(default = "default_true")]
    pub per_template: bool,
    /// Named ensembles: name -> template file.
    #[serde(default)]
    pub ensembles: BTreeMap<String, PathBuf>,
    /// Accept repeated class names, as CoOp's `prompt.allow_duplicate_names` (CLIP's ImageNet
    /// list repeats `missile` and `sunglasses`; the reference uses it as is). Off: an error
    /// naming the repeated name. Not in the job key (it moves no number).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_duplicate_names: bool,
}

/// `coop.shots`: one count, or a list of counts, each its own jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ShotsSetting {
    One(usize),
    Many(Vec<usize>),
}

impl ShotsSetting {
    pub fn counts(&self) -> Vec<usize> {
        match self {
            ShotsSetting::One(k) => vec![*k],
            ShotsSetting::Many(v) => v.clone(),
        }
    }
}

/// `coop.epochs`: one number for every job, or `"coop"`, CoOp's few-shot schedule
/// ([`coop_schedule_epochs`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EpochsSetting {
    Fixed(usize),
    Rule(ScheduleRule),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleRule {
    Coop,
}

/// The name `coop.train` uses for the ImageNet training set at `coop.train_root`.
pub const IMAGENET_TRAIN: &str = "imagenet";

/// CoOp's epochs for a few-shot run: 1 shot 50, 2 and 4 shots 100, 8 and 16 shots 200, and
/// ImageNet 50 at every count. These are the configs CoOp's `scripts/coop/main.sh` is run
/// with in its COOP.md (KaiyangZhou/CoOp ff61507): `rn50_ep50` for 1 shot, `rn50_ep100` for 2
/// and 4, `rn50` (200 epochs) for 8 and 16, `rn50_ep50` for ImageNet at every count. A count
/// outside those ranges (5–7, above 16, 0) has no stated schedule: an error,
/// never a guess.
pub fn coop_schedule_epochs(shots: usize, imagenet: bool) -> Result<usize> {
    Ok(match (imagenet, shots) {
        (true, 1..=16) => 50,
        (false, 1) => 50,
        (false, 2..=4) => 100,
        (false, 8..=16) => 200,
        _ => bail!(
            "`coop.epochs = \"coop\"` states no schedule for {shots} shots{} (CoOp's configs cover 1–4 and 8–16 shots): give `coop.epochs` as a number",
            if imagenet { " on ImageNet" } else { "" }
        ),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoopSweep {
    /// ImageNet root with the training split (needed when `train` names `imagenet`, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_root: Option<PathBuf>,
    /// The training datasets, each its own jobs: `imagenet` (the set at `train_root`, evaluated
    /// on every `[[datasets]]` entry) or the name of a `[[datasets]]` entry of a split-list kind
    /// (trained on its split file's `train` list with the reference's draw, evaluated on its
    /// test split). Default: `["imagenet"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<Vec<String>>,
    /// Base training config (TOML); defaults: the paper's.
    #[serde(default)]
    pub config: Option<PathBuf>,
    pub lambdas: Vec<f64>,
    /// Class-name score aggregations (`max`, `mean`, `min`) crossed with every λ > 0, each its
    /// own job and key (λ = 0 runs once: the score is not in its loss). Default: the base
    /// config's `[loss] name_score`, `max` (the paper's) unless it says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_scores: Option<Vec<ntlb_prompt::objective::NameScore>>,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// A number, or `"coop"` for CoOp's schedule by shots and training set. Default: the base
    /// config's.
    #[serde(default)]
    pub epochs: Option<EpochsSetting>,
    /// Shots per class: a number or a list (`[1, 2, 4, 8, 16]`), each its own jobs. Default:
    /// the base config's (1).
    #[serde(default)]
    pub shots: Option<ShotsSetting>,
    /// How the training set is stored, as a dataset entry's `format`, `split` (default `train`),
    /// `image_key`, `label_key`.
    #[serde(default, skip_serializing_if = "is_folder")]
    pub train_format: Format,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_split: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_image_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_label_key: Option<String>,
}

impl CoopSweep {
    /// The training datasets, `coop.train` or ImageNet alone.
    pub fn train_sets(&self) -> Vec<String> {
        self.train.clone().unwrap_or_else(|| vec![IMAGENET_TRAIN.to_string()])
    }

    /// Whether a job trains on the ImageNet set at `train_root`.
    pub fn trains_on_imagenet(&self) -> bool {
        self.train_sets().iter().any(|t| t == IMAGENET_TRAIN)
    }

    /// `train_root`, which ImageNet training needs.
    pub fn imagenet_root(&self) -> Result<&Path> {
        self.train_root
            .as_deref()
            .context("[coop] trains on `imagenet` (the default of `coop.train`) but sets no `train_root`")
    }

    pub fn train_layout(&self) -> Layout {
        Layout {
            format: self.train_format,
            split: self.train_split.clone(),
            image_key: self.train_image_key.clone(),
            label_key: self.train_label_key.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    pub name: String,
    pub results: PathBuf,
    #[serde(default)]
    pub cache: Option<PathBuf>,
    /// Relative dataset roots (and `coop.train_root`) are read under this folder.
    #[serde(default)]
    pub data_root: Option<PathBuf>,
    /// Relative model paths are read under this folder.
    #[serde(default)]
    pub checkpoint_root: Option<PathBuf>,
    /// `wnid<TAB>name` list of the 1000 classes.
    pub classes: PathBuf,
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// f32 (default), bf16 or f16 (GPU).
    #[serde(default = "default_precision")]
    pub precision: String,
    #[serde(default)]
    pub strict: bool,
    /// When images are converted to RGB: `dassl` (the NTLB/CoOp reference, default) or `clip`
    /// (CLIP's own transform, after the crop). In the feature-cache and job keys.
    #[serde(default)]
    pub convert_order: ntlb_clip::preprocess::ConvertOrder,
    pub models: Vec<ModelEntry>,
    pub datasets: Vec<DatasetEntry>,
    #[serde(default)]
    pub zero_shot: Option<ZeroShotSweep>,
    #[serde(default)]
    pub coop: Option<CoopSweep>,
    /// The file it was read from (errors name it), when read from one.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl SweepConfig {
    pub fn read(path: &Path) -> Result<SweepConfig> {
        let mut c: SweepConfig = ntlb_core::toml_config::read_toml(path)?;
        c.source = Some(path.to_path_buf());
        Ok(c)
    }

    /// How errors name the sweep config: its file, or `sweep config` when built in memory.
    pub fn source_name(&self) -> String {
        self.source.as_ref().map_or("sweep config".into(), |p| p.display().to_string())
    }

    /// Point relative dataset and model paths at new roots (`--data`, `--checkpoints`).
    pub fn set_roots(&mut self, data: Option<PathBuf>, checkpoints: Option<PathBuf>) {
        if data.is_some() {
            self.data_root = data;
        }
        if checkpoints.is_some() {
            self.checkpoint_root = checkpoints;
        }
    }

    /// The config with `data_root` / `checkpoint_root` applied to relative paths and model
    /// names resolved in the local Hugging Face cache (see [`ModelEntry::path`]), once, so that
    /// everything downstream reads real paths. A name not in the cache is left as written (a
    /// dry run plans before the downloads); [`SweepConfig::resolved_checked`] refuses it.
    pub fn resolved(&self) -> SweepConfig {
        self.resolve(false, &ntlb_clip::hub::HubEnv::from_process())
            .expect("a lenient resolution does not fail")
    }

    /// [`SweepConfig::resolved`], failing on a model name that is not in the cache (the error
    /// lists the paths looked at and the download command) or a revision given with a path.
    pub fn resolved_checked(&self) -> Result<SweepConfig> {
        self.resolve(true, &ntlb_clip::hub::HubEnv::from_process())
    }

    fn resolve(&self, strict: bool, env: &ntlb_clip::hub::HubEnv) -> Result<SweepConfig> {
        let join = |root: &Option<PathBuf>, p: &Path| match root {
            Some(r) if p.is_relative() => r.join(p),
            _ => p.to_path_buf(),
        };
        let mut c = self.clone();
        for d in &mut c.datasets {
            d.root = join(&self.data_root, &d.root);
        }
        if let Some(co) = &mut c.coop {
            co.train_root = co.train_root.as_ref().map(|r| join(&self.data_root, r));
        }
        for m in &mut c.models {
            let joined = join(&self.checkpoint_root, &m.path);
            match locate_model(m, &joined, env) {
                Ok(p) => {
                    m.path = p;
                    m.revision = None;
                }
                Err(e) if strict => return Err(e),
                Err(_) => m.path = joined,
            }
        }
        c.data_root = None;
        c.checkpoint_root = None;
        Ok(c)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(|| self.results.join("cache"))
    }

    /// Each model and each dataset entry once: a model's name keys its jobs and rows, a
    /// dataset's name its rows, so two entries under one name would file one's numbers under
    /// the other's (or the second would never run). The error names the file and both entries.
    pub fn check_entries(&self) -> Result<()> {
        let file = self.source_name();
        for (i, m) in self.models.iter().enumerate() {
            if m.name.trim().is_empty() {
                bail!("{file}: [[models]] #{} (path {}) has an empty `name`", i + 1, m.path.display());
            }
            if let Some(j) = self.models[..i].iter().position(|o| o.name == m.name) {
                bail!(
                    "{file}: [[models]] #{} (path {}) and #{} (path {}) are both named `{}`: give each model its own name",
                    j + 1,
                    self.models[j].path.display(),
                    i + 1,
                    m.path.display(),
                    m.name
                );
            }
        }
        for (i, d) in self.datasets.iter().enumerate() {
            if d.name().trim().is_empty() {
                bail!("{file}: {} has an empty `name`", d.describe(i));
            }
            if let Some(j) = self.datasets[..i].iter().position(|o| o.name() == d.name()) {
                bail!(
                    "{file}: {} and {} are both named `{}` (a name defaults to the kind): give each its own `name`, \
                     their rows are different sets, not seeds of one",
                    self.datasets[j].describe(j),
                    d.describe(i),
                    d.name()
                );
            }
            let unnamed = |e: &DatasetEntry| DatasetEntry { name: None, ..e.clone() };
            if let Some(j) = self.datasets[..i].iter().position(|o| unnamed(o) == unnamed(d)) {
                bail!(
                    "{file}: {} and {} are the same set (the same kind, root and settings): list it once",
                    self.datasets[j].describe(j),
                    d.describe(i)
                );
            }
        }
        Ok(())
    }

    /// Keep only the models named on the command line (`--models`), each of which must be in the config.
    pub fn apply_models(&mut self, models: &[String]) -> Result<()> {
        if models.is_empty() {
            return Ok(());
        }
        for m in models {
            if !self.models.iter().any(|e| &e.name == m) {
                bail!(
                    "model `{m}` is not in the sweep (models: {})",
                    self.models.iter().map(|e| e.name.clone()).collect::<Vec<_>>().join(", ")
                );
            }
        }
        self.models.retain(|e| models.contains(&e.name));
        Ok(())
    }
}

/// Where a model entry's checkpoint is: `joined` (its path under the checkpoint root) when that
/// exists, else the snapshot of its name in the Hugging Face cache. A missing path that is no
/// name is returned as it is (loading reports it).
fn locate_model(m: &ModelEntry, joined: &Path, env: &ntlb_clip::hub::HubEnv) -> Result<PathBuf> {
    let name = m.path.to_str().filter(|s| ntlb_clip::hub::is_name(s));
    if joined.exists() {
        if m.revision.is_some() {
            bail!(
                "model `{}`: `revision` is set but {} is an existing path (a revision only applies to a model name)",
                m.name,
                joined.display()
            );
        }
        return Ok(joined.to_path_buf());
    }
    match name {
        Some(spec) => ntlb_clip::hub::resolve_name_in(spec, m.revision.as_deref(), env, &[joined.to_path_buf()])
            .with_context(|| format!("model `{}`", m.name)),
        None if m.revision.is_some() => bail!(
            "model `{}`: `revision` is set but `{}` is not a model name (org/name or hf-hub:org/name)",
            m.name,
            m.path.display()
        ),
        None => Ok(joined.to_path_buf()),
    }
}

/// Open every dataset of the sweep (checked up front, so a bad path fails before any work).
/// Shard and parquet indexes are cached in the feature cache folder.
pub fn open_datasets(cfg: &SweepConfig) -> Result<(ClassList, Vec<EvalSet>)> {
    let classes = ClassList::read(&cfg.classes)?;
    let mut sets = Vec::new();
    for d in &cfg.datasets {
        let wnids = match &d.wnids {
            // A list the kind never reads would be a setting that changes nothing, in silence.
            Some(p) if d.kind.spec().classes != ntlb_data::registry::ClassRule::ImagenetSubset => bail!(
                "{}: dataset {}: `wnids` ({}) is set, but {} takes its classes from {}",
                cfg.source_name(),
                d.name(),
                p.display(),
                d.kind,
                if d.kind.has_split_list() {
                    "its split list"
                } else {
                    "the `classes` list"
                }
            ),
            Some(p) => Some(read_wnids(p)?),
            None => None,
        };
        let set = EvalSet::open_in(
            d.kind,
            &d.root,
            &d.layout(),
            &classes,
            wnids.as_deref(),
            d.max_per_class,
            Some(&cfg.cache_dir()),
        )
        .map_err(|e| anyhow::anyhow!("{}: dataset {}: {e:#}", cfg.source_name(), d.name()))?;
        set.check_empty_classes(d.allow_empty_classes)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", cfg.source_name()))?;
        sets.push(set);
    }
    Ok((classes, sets))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef01234567";

    /// Model names resolve once, to the snapshot, beside relative paths under the checkpoint
    /// root; a name not in the cache fails a checked resolution with the download command and
    /// is left as written by a lenient one.
    #[test]
    fn model_names_resolve_in_the_cache() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let cache = tempfile::tempdir().unwrap();
        let snap = cache.path().join("models--ntlb--synth/snapshots").join(HASH);
        std::fs::create_dir_all(&snap).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(models.join("synth-clip").join(f), snap.join(f)).unwrap();
        }
        std::fs::create_dir_all(cache.path().join("models--ntlb--synth/refs")).unwrap();
        std::fs::write(cache.path().join("models--ntlb--synth/refs/main"), HASH).unwrap();
        let env = ntlb_clip::hub::HubEnv {
            hf_hub_cache: Some(cache.path().into()),
            ..Default::default()
        };
        let toml = |extra: &str| {
            format!(
                "name = \"t\"\nresults = \"r\"\nclasses = \"c\"\ncheckpoint_root = {:?}\ndatasets = []\n\
                 [[models]]\nname = \"a\"\npath = \"ntlb/synth\"\n\
                 [[models]]\nname = \"b\"\npath = \"ntlb/synth\"\nrevision = \"{HASH}\"\n\
                 [[models]]\nname = \"c\"\npath = \"synth-clip\"\n{extra}",
                models.display().to_string()
            )
        };
        let cfg: SweepConfig = toml::from_str(&toml("")).unwrap();
        let r = cfg.resolve(true, &env).unwrap();
        assert_eq!(r.models[0].path, snap);
        assert_eq!((&r.models[1].path, &r.models[1].revision), (&snap, &None));
        assert_eq!(r.models[2].path, models.join("synth-clip"));
        assert_eq!(r.resolve(true, &env).unwrap(), r, "resolving twice changes nothing");

        let cfg: SweepConfig = toml::from_str(&toml("[[models]]\nname = \"d\"\npath = \"ntlb/absent\"\n")).unwrap();
        let e = format!("{:#}", cfg.resolve(true, &env).unwrap_err());
        assert!(e.contains("model `d`") && e.contains("huggingface-cli download ntlb/absent"), "{e}");
        assert!(e.contains(&models.join("ntlb/absent").display().to_string()), "{e}");
        let lenient = cfg.resolve(false, &env).unwrap();
        assert_eq!(lenient.models[3].path, models.join("ntlb/absent"));
        assert_eq!(lenient.models[0].path, snap);

        let cfg: SweepConfig = toml::from_str(&toml("[[models]]\nname = \"e\"\npath = \"synth-clip\"\nrevision = \"main\"\n")).unwrap();
        let e = format!("{:#}", cfg.resolve(true, &env).unwrap_err());
        assert!(e.contains("model `e`") && e.contains("revision"), "{e}");
    }

    /// CoOp's schedule: 1 shot 50 epochs, 2–4 shots 100, 8–16 shots 200, ImageNet 50 at every
    /// count; counts outside those ranges are refused, not guessed.
    #[test]
    fn coop_schedule_by_shots_and_training_set() {
        let rule = |k, imagenet| coop_schedule_epochs(k, imagenet).ok();
        assert_eq!(
            [1, 2, 4, 8, 16].map(|k| rule(k, false)),
            [Some(50), Some(100), Some(100), Some(200), Some(200)]
        );
        assert_eq!([1, 2, 4, 8, 16].map(|k| rule(k, true)), [Some(50); 5]);
        assert_eq!(rule(3, false), Some(100));
        for k in [0, 5, 7, 17, 32] {
            assert_eq!(rule(k, false), None, "{k}");
        }
        let c: CoopSweep = toml::from_str("lambdas = [0.0]\nepochs = \"coop\"\nshots = [1, 2]\n").unwrap();
        assert_eq!(c.epochs, Some(EpochsSetting::Rule(ScheduleRule::Coop)));
        assert_eq!(c.shots.unwrap().counts(), [1, 2]);
        let c: CoopSweep = toml::from_str("lambdas = [0.0]\nepochs = 3\nshots = 4\n").unwrap();
        assert_eq!((c.epochs, c.shots.unwrap().counts()), (Some(EpochsSetting::Fixed(3)), vec![4]));
    }
}
