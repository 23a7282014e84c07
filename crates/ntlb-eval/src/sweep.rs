//! `ntlb sweep`: models × datasets × methods (zero-shot templates and ensembles, CoOp with
//! λ = 0 and λ > 0) × seeds. Each job has a key from its full configuration; a finished job's
//! result file is written atomically and skipped on rerun, so a killed sweep loses nothing.
//! `--shard i/n` runs every n-th job (a Slurm array spreads a sweep over machines); `merge`
//! joins the shards' results.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::Clip;
use ntlb_data::classes::ClassList;
use ntlb_data::folder::ImageFolder;
use ntlb_data::split::FewShotSplit;
use ntlb_data::variants::{read_wnids, DatasetKind, EvalSet};
use ntlb_prompt::prompt::PromptLayout;
use ntlb_prompt::train::{class_text_features, train, StopAt, TrainConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::features::{dataset_features, Features};
use crate::metrics::accuracy;
use crate::results::{write_tables, ResultRow, RunRecord};
use crate::zeroshot::{ensemble, read_templates, template_weights};

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
    pub path: PathBuf,
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEntry {
    pub kind: DatasetKind,
    pub root: PathBuf,
    /// Keep the first N images per class (the reference reads 2 per class of ImageNet-V2).
    #[serde(default)]
    pub max_per_class: Option<usize>,
    /// The 200-wnid list of -A / -R.
    #[serde(default)]
    pub wnids: Option<PathBuf>,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoopSweep {
    /// ImageNet root with the training split.
    pub train_root: PathBuf,
    /// Base training config (TOML); defaults: the paper's.
    #[serde(default)]
    pub config: Option<PathBuf>,
    pub lambdas: Vec<f64>,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub epochs: Option<usize>,
    #[serde(default)]
    pub shots: Option<usize>,
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
    pub models: Vec<ModelEntry>,
    pub datasets: Vec<DatasetEntry>,
    #[serde(default)]
    pub zero_shot: Option<ZeroShotSweep>,
    #[serde(default)]
    pub coop: Option<CoopSweep>,
}

impl SweepConfig {
    pub fn read(path: &Path) -> Result<SweepConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read sweep config", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
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

    /// The config with `data_root` / `checkpoint_root` applied to relative paths.
    pub fn resolved(&self) -> SweepConfig {
        let join = |root: &Option<PathBuf>, p: &Path| match root {
            Some(r) if p.is_relative() => r.join(p),
            _ => p.to_path_buf(),
        };
        let mut c = self.clone();
        for d in &mut c.datasets {
            d.root = join(&self.data_root, &d.root);
        }
        if let Some(co) = &mut c.coop {
            co.train_root = join(&self.data_root, &co.train_root);
        }
        for m in &mut c.models {
            m.path = join(&self.checkpoint_root, &m.path);
        }
        c.data_root = None;
        c.checkpoint_root = None;
        c
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(|| self.results.join("cache"))
    }

    /// Overrides from the command line (`--set key=value` for the common ones).
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

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Job {
    ZeroShot {
        model: ModelEntry,
        zero_shot: ZeroShotSweep,
    },
    Coop {
        model: ModelEntry,
        lambda: f64,
        seed: u64,
        train: TrainConfig,
        train_root: PathBuf,
    },
}

impl Job {
    pub fn model(&self) -> &ModelEntry {
        match self {
            Job::ZeroShot { model, .. } | Job::Coop { model, .. } => model,
        }
    }

    /// The job's key: a hash of the job and every setting its results depend on.
    pub fn key(&self, cfg: &SweepConfig) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&(self, &cfg.datasets, &cfg.classes, cfg.strict)).expect("serialisable"));
        format!("{:x}", h.finalize())[..16].to_string()
    }

    pub fn label(&self) -> String {
        match self {
            Job::ZeroShot { model, .. } => format!("{} zero-shot", model.name),
            Job::Coop { model, lambda, seed, .. } => format!("{} coop λ={lambda} seed={seed}", model.name),
        }
    }
}

/// The plan: every job of the sweep, in a fixed order.
pub fn plan(cfg: &SweepConfig) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for m in &cfg.models {
        if let Some(z) = &cfg.zero_shot {
            jobs.push(Job::ZeroShot {
                model: m.clone(),
                zero_shot: z.clone(),
            });
        }
        if let Some(c) = &cfg.coop {
            let mut base = match &c.config {
                Some(p) => {
                    toml::from_str::<TrainConfig>(&std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
                }
                None => TrainConfig::default(),
            };
            if let Some(e) = c.epochs {
                base.optim.epochs = e;
            }
            if let Some(s) = c.shots {
                base.shots = s;
            }
            for &lambda in &c.lambdas {
                for &seed in &c.seeds {
                    let mut t = base.clone();
                    t.loss.expl_weight = lambda;
                    t.seed = seed;
                    jobs.push(Job::Coop {
                        model: m.clone(),
                        lambda,
                        seed,
                        train: t,
                        train_root: c.train_root.clone(),
                    });
                }
            }
        }
    }
    Ok(jobs)
}

/// `i/n` -> (i, n), 0-based.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s.split_once('/').context("shard must be i/n")?;
    let (i, n): (usize, usize) = (i.parse()?, n.parse()?);
    if n == 0 || i >= n {
        bail!("shard {s}: need 0 <= i < n");
    }
    Ok((i, n))
}

pub fn run_path(cfg: &SweepConfig, key: &str) -> PathBuf {
    cfg.results.join("runs").join(format!("{key}.json"))
}

fn git_commit() -> Option<String> {
    let o = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Rough cost of the jobs still to run, in TFLOP (matmuls), for `--dry-run`.
pub fn estimate_tflop(cfg: &SweepConfig, jobs: &[&Job], images_per_dataset: &[usize], classes: usize) -> f64 {
    let vit = ntlb_clip::ClipConfig::preset("ViT-B/32").expect("preset");
    let f_img = 2.0 * vit.image_macs() as f64;
    let f_txt = |l| 2.0 * vit.text_macs(l) as f64;
    let images: f64 = images_per_dataset.iter().sum::<usize>() as f64;
    let mut t = 0.0;
    for j in jobs {
        match j {
            Job::ZeroShot { zero_shot, .. } => {
                let n_t = 80.0 + zero_shot.ensembles.len() as f64 * 40.0;
                t += images * f_img / cfg.models.len().max(1) as f64 + n_t * classes as f64 * f_txt(12);
            }
            Job::Coop { train, .. } => {
                let b = train.optim.batch_size as f64;
                let steps = (classes * train.shots) as f64 / b * train.optim.epochs as f64;
                let relevance = if train.loss.expl_weight != 0.0 { 2.0 * b + 2.0 } else { 2.0 };
                t += steps * (b * f_img + classes as f64 * f_txt(21) * (1.0 + relevance)) + images * classes as f64 * 0.0;
            }
        }
    }
    t / 1e12
}

/// Everything a job needs from the machine, loaded once per model.
struct Loaded {
    clip: Clip,
    tok: ClipTokenizer,
    sha: String,
}

fn load_model(m: &ModelEntry, device: &burn::tensor::Device) -> Result<Loaded> {
    let clip = Clip::load(&m.path, None, device).with_context(|| format!("model `{}`", m.name))?;
    let tok = ClipTokenizer::for_model(&m.path, m.tokenizer.as_deref()).with_context(|| format!("model `{}`", m.name))?;
    let weights = if m.path.is_dir() {
        m.path.join("model.safetensors")
    } else {
        m.path.clone()
    };
    let sha = ntlb_clip::io::sha256_file(&weights)?;
    Ok(Loaded { clip, tok, sha })
}

/// Open every dataset of the sweep (checked up front, so a bad path fails before any work).
pub fn open_datasets(cfg: &SweepConfig) -> Result<(ClassList, Vec<EvalSet>)> {
    let classes = ClassList::read(&cfg.classes)?;
    let mut sets = Vec::new();
    for d in &cfg.datasets {
        let wnids = match &d.wnids {
            Some(p) => Some(read_wnids(p)?),
            None => None,
        };
        sets.push(EvalSet::open(d.kind, &d.root, &classes, wnids.as_deref(), d.max_per_class)?);
    }
    Ok((classes, sets))
}

pub struct SweepOptions {
    pub shard: Option<(usize, usize)>,
    pub dry_run: bool,
    pub progress: bool,
    /// Stop after this many jobs (tests simulate a killed sweep with it).
    pub max_jobs: Option<usize>,
}

/// Run (or plan) the sweep; returns the number of jobs run.
pub fn run_sweep(cfg: &SweepConfig, opts: &SweepOptions) -> Result<usize> {
    let resolved = cfg.resolved();
    let cfg = &resolved;
    let jobs = plan(cfg)?;
    // A dry run plans without the data (it may not be downloaded yet); a real run checks it all up front.
    let opened = open_datasets(cfg);
    if opts.dry_run {
        if let Err(e) = &opened {
            println!("datasets not readable yet ({e:#}); the estimate uses the published sizes");
        }
    }
    let (classes, sets) = match opened {
        Ok(o) => o,
        Err(_) if opts.dry_run => (
            ClassList {
                ids: vec![String::new(); 1000],
                names: vec![String::new(); 1000],
            },
            Vec::new(),
        ),
        Err(e) => return Err(e),
    };
    let mine: Vec<(usize, &Job)> = jobs
        .iter()
        .enumerate()
        .filter(|(i, _)| opts.shard.is_none_or(|(s, n)| i % n == s))
        .collect();
    let todo: Vec<&Job> = mine
        .iter()
        .filter(|(_, j)| !run_path(cfg, &j.key(cfg)).exists())
        .map(|(_, j)| *j)
        .collect();
    if opts.dry_run {
        println!(
            "sweep `{}`: {} jobs in all, {} in this shard, {} to run",
            cfg.name,
            jobs.len(),
            mine.len(),
            todo.len()
        );
        for (i, j) in &mine {
            let done = run_path(cfg, &j.key(cfg)).exists();
            println!(
                "  [{i:>3}] {:<40} key {} {}",
                j.label(),
                j.key(cfg),
                if done { "done" } else { "todo" }
            );
        }
        for s in &sets {
            println!(
                "  dataset {:<16} {:>7} images, {} classes, root {}",
                s.kind.name(),
                s.items.len(),
                s.classes.len(),
                s.root.display()
            );
        }
        let sizes: Vec<usize> = if sets.is_empty() {
            // Published sizes: val 50,000, V2 10,000, Sketch 50,889, A 7,500, R 30,000.
            cfg.datasets
                .iter()
                .map(|d| match d.kind {
                    DatasetKind::Imagenet => 50_000,
                    DatasetKind::ImagenetV2 => 10_000,
                    DatasetKind::ImagenetSketch => 50_889,
                    DatasetKind::ImagenetA => 7_500,
                    DatasetKind::ImagenetR => 30_000,
                })
                .collect()
        } else {
            sets.iter().map(|s| s.items.len()).collect()
        };
        let tflop = estimate_tflop(cfg, &todo, &sizes, classes.len());
        println!("estimated cost of the jobs to run: {tflop:.1} TFLOP (≈ {:.1} h at 0.05 TFLOP/s on 2 CPU cores, ≈ {:.2} h at 50 TFLOP/s on a GPU)", tflop / 0.05 / 3600.0, tflop / 50.0 / 3600.0);
        return Ok(0);
    }
    let device = ntlb_clip::device::parse_device_with(&cfg.device, &cfg.precision)?;
    let mut loaded: HashMap<String, Loaded> = HashMap::new();
    let mut feature_memo: HashMap<(String, usize), Features> = HashMap::new();
    let mut ran = 0;
    for job in todo {
        if opts.max_jobs.is_some_and(|m| ran >= m) {
            break;
        }
        let key = job.key(cfg);
        let start = Instant::now();
        let m = job.model();
        if !loaded.contains_key(&m.name) {
            loaded.clear();
            feature_memo.clear();
            // Training needs gradients: load on the autodiff device (inference is unaffected).
            loaded.insert(m.name.clone(), load_model(m, &device.clone().autodiff())?);
        }
        let l = &loaded[&m.name];
        if opts.progress {
            eprintln!("== {} ({key})", job.label());
        }
        let mut feats = Vec::new();
        for (i, s) in sets.iter().enumerate() {
            let f = match feature_memo.remove(&(m.name.clone(), i)) {
                Some(f) => f,
                None => dataset_features(
                    &l.clip,
                    s,
                    &l.sha,
                    Some(&cfg.cache_dir()),
                    cfg.batch_size,
                    cfg.strict,
                    opts.progress,
                )?,
            };
            feats.push(f);
        }
        let mut rows = Vec::new();
        let mut relevance = None;
        let base_row = |dataset: &str, method: &str| ResultRow {
            sweep: cfg.name.clone(),
            run_key: key.clone(),
            model: m.name.clone(),
            method: method.into(),
            template: None,
            lambda: None,
            seed: None,
            dataset: dataset.into(),
            top1: 0.0,
            top5: 0.0,
            mean_per_class: 0.0,
            n_images: 0,
            n_failed: 0,
        };
        match job {
            Job::ZeroShot { zero_shot, .. } => {
                let templates = read_templates(&zero_shot.templates)?;
                let mut ensembles = Vec::new();
                for (name, p) in &zero_shot.ensembles {
                    ensembles.push((name.clone(), read_templates(p)?));
                }
                for (s, f) in sets.iter().zip(&feats) {
                    let mut cache: HashMap<String, Vec<f32>> = HashMap::new();
                    let mut weights = |t: &str| -> Result<Vec<f32>> {
                        if let Some(w) = cache.get(t) {
                            return Ok(w.clone());
                        }
                        let w = template_weights(&l.clip, &l.tok, t, &s.classes.names)?;
                        cache.insert(t.to_string(), w.clone());
                        Ok(w)
                    };
                    if zero_shot.per_template {
                        for t in &templates {
                            let w = weights(t)?;
                            let a = accuracy(&f.data, &f.labels, f.dim, &w, s.classes.len());
                            rows.push(ResultRow {
                                template: Some(t.clone()),
                                top1: a.top1,
                                top5: a.top5,
                                mean_per_class: a.mean_per_class,
                                n_images: a.n,
                                n_failed: f.manifest.failed.len(),
                                ..base_row(s.kind.name(), "zero-shot")
                            });
                        }
                    }
                    for (name, ts) in &ensembles {
                        let per: Vec<Vec<f32>> = ts.iter().map(|t| weights(t)).collect::<Result<_>>()?;
                        let w = ensemble(&per, f.dim);
                        let a = accuracy(&f.data, &f.labels, f.dim, &w, s.classes.len());
                        rows.push(ResultRow {
                            template: Some(format!("ensemble-{name}")),
                            top1: a.top1,
                            top5: a.top5,
                            mean_per_class: a.mean_per_class,
                            n_images: a.n,
                            n_failed: f.manifest.failed.len(),
                            ..base_row(s.kind.name(), &format!("zero-shot-ensemble-{name}"))
                        });
                    }
                }
            }
            Job::Coop {
                lambda,
                seed,
                train: tcfg,
                train_root,
                ..
            } => {
                let folder = ImageFolder::imagenet(train_root, "train", &classes)?;
                let dir = cfg.results.join("runs").join(&key);
                let split = FewShotSplit::load_or_draw(&dir.join("split.json"), &folder, tcfg.shots, tcfg.seed)?;
                let layout = PromptLayout::new(&l.tok, &classes.names, &tcfg.prompt)?;
                let learned = train(
                    &l.clip,
                    &layout,
                    &classes.names,
                    &split.items,
                    tcfg,
                    &dir.join("train"),
                    (&m.path.display().to_string(), &l.sha),
                    StopAt::default(),
                    |p, total| {
                        if opts.progress && (p.step % 10 == 0 || p.step == total) {
                            eprintln!(
                                "   step {}/{total} epoch {} loss {:.4} (ce {:.4} expl {:.4}) acc {:.1}%",
                                p.step, p.epoch, p.loss, p.ce, p.expl, p.acc
                            );
                        }
                    },
                )?;
                let shape = learned.manifest.ctx_shape;
                for (s, f) in sets.iter().zip(&feats) {
                    if tcfg.prompt.class_specific && s.classes.names != classes.names {
                        bail!(
                            "{}: class-specific contexts are learned per ImageNet class; evaluating them on the {} classes of {} is not supported",
                            job.label(),
                            s.classes.len(),
                            s.kind.name()
                        );
                    }
                    let lay = if s.classes.names == classes.names {
                        layout.clone()
                    } else {
                        PromptLayout::new(&l.tok, &s.classes.names, &tcfg.prompt)?
                    };
                    let w = ntlb_clip::parity::to_f32_vec(class_text_features(&l.clip, &lay, &learned.ctx, shape, tcfg.chunk));
                    let a = accuracy(&f.data, &f.labels, f.dim, &w, s.classes.len());
                    rows.push(ResultRow {
                        lambda: Some(*lambda),
                        seed: Some(*seed),
                        top1: a.top1,
                        top5: a.top5,
                        mean_per_class: a.mean_per_class,
                        n_images: a.n,
                        n_failed: f.manifest.failed.len(),
                        ..base_row(s.kind.name(), "coop")
                    });
                }
                relevance = Some(crate::relevance_maps::before_after(
                    &l.clip,
                    &l.tok,
                    &layout,
                    &classes.names,
                    &split.items,
                    &learned,
                    tcfg.seed,
                )?);
            }
        }
        for (i, f) in feats.into_iter().enumerate() {
            feature_memo.insert((m.name.clone(), i), f);
        }
        let failed: Vec<(PathBuf, String)> = feature_memo.values().flat_map(|f| f.manifest.failed.clone()).collect();
        let record = RunRecord {
            key: key.clone(),
            job: job.clone(),
            sweep: cfg.name.clone(),
            git_commit: git_commit(),
            checkpoint_sha256: l.sha.clone(),
            seconds: start.elapsed().as_secs_f64(),
            rows,
            failed_images: failed,
            relevance,
            preprocessing: feature_memo
                .values()
                .map(|f| format!("{} {}", f.manifest.key.preprocessing, f.manifest.key.convert_order))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        ntlb_clip::io::write_atomic(&run_path(cfg, &key), serde_json::to_string_pretty(&record)?.as_bytes())?;
        ran += 1;
    }
    let planned: std::collections::BTreeSet<String> = jobs.iter().map(|j| j.key(cfg)).collect();
    let stale = crate::results::read_runs(&cfg.results)?
        .iter()
        .filter(|r| !planned.contains(&r.key))
        .count();
    if stale > 0 && opts.progress {
        eprintln!(
            "{stale} run record(s) in {} belong to jobs no longer in this sweep: left out of the tables",
            cfg.results.join("runs").display()
        );
    }
    write_tables(&cfg.results, Some(&planned))?;
    Ok(ran)
}
