//! `ntlb sweep`: models × datasets × methods (zero-shot templates and ensembles, CoOp with
//! λ = 0 and λ > 0) × seeds. Each job has a key from the content it depends on
//! ([`crate::identity`]); a finished job's result file is written atomically and skipped on
//! rerun, so a killed sweep loses nothing. `--shard i/n` (or `auto` in a Slurm array) runs one
//! contiguous block of the plan; `merge` joins the shards' results and writes the tables.

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

use crate::features::{model_features, Features};
use crate::identity::SweepIdentity;
use crate::results::{write_tables, ResultRow, RunRecord};
use crate::scores::DeviceFeatures;
use crate::zeroshot::{ensemble_on_device, read_templates, TemplateBank};

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

pub fn run_path(cfg: &SweepConfig, key: &str) -> PathBuf {
    cfg.results.join("runs").join(format!("{key}.json"))
}

fn git_commit() -> Option<String> {
    let o = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Effective f32 matmul rate assumed for the GPU-hour figure (an A100/H100-class card runs
/// these shapes well below its peak); half precision is faster.
pub const ASSUMED_GPU_TFLOPS: f64 = 25.0;
/// Two busy CPU cores (measured: burn-flex matmuls at ~50 GFLOP/s on a quiet pair).
pub const ASSUMED_CPU_TFLOPS: f64 = 0.05;

fn print_estimate(todo: &[&Job], w: &crate::estimate::Workload, plan_len: usize) {
    let costs = crate::estimate::estimate(todo, w);
    let gpu_h = |t: f64| t / ASSUMED_GPU_TFLOPS / 3600.0;
    println!(
        "estimated cost of the {} job(s) to run (matmul FLOP; each dataset encoded once per model through the shared cache):",
        todo.len()
    );
    println!(
        "  {:<14} {:>5} {:>10} {:>8} {:>16}",
        "model", "jobs", "TFLOP", "GPU-h", "largest job GPU-h"
    );
    let (mut total, mut largest) = (0.0, 0.0f64);
    for (name, c) in &costs {
        println!(
            "  {:<14} {:>5} {:>10.1} {:>8.2} {:>16.2}{}",
            name,
            c.jobs,
            c.tflop,
            gpu_h(c.tflop),
            gpu_h(c.max_job_tflop),
            if c.assumed { "  (size unknown: costed as ViT-B/32)" } else { "" }
        );
        total += c.tflop;
        largest = largest.max(c.max_job_tflop);
    }
    println!(
        "  {:<14} {:>5} {:>10.1} {:>8.2}   (GPU-h at an effective {ASSUMED_GPU_TFLOPS} TFLOP/s in f32; {:.0} h at {ASSUMED_CPU_TFLOPS} TFLOP/s on 2 CPU cores)",
        "total",
        todo.len(),
        total,
        gpu_h(total),
        total / ASSUMED_CPU_TFLOPS / 3600.0
    );
    if plan_len > 0 {
        println!(
            "Slurm: sbatch --array=0-{} scripts/slurm/sweep-array.sbatch CONFIG   ({plan_len} tasks, one job each; the longest needs ≈ {:.2} GPU-h plus image decoding; fewer tasks: any --array=0-(n-1))",
            plan_len - 1,
            gpu_h(largest)
        );
    }
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
    let sha = crate::identity::checkpoint_sha256(&crate::identity::weights_file(m))?;
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
    // Keys hash the data, so they exist only once the data is readable (not always in a dry run).
    let keys: Option<Vec<String>> = if sets.is_empty() && !cfg.datasets.is_empty() {
        None
    } else {
        match SweepIdentity::compute(cfg, &classes, &sets).and_then(|ident| ident.keys(&jobs)) {
            Ok(k) => Some(k),
            Err(e) if opts.dry_run => {
                println!("job keys unknown until the inputs are readable: {e:#}");
                None
            }
            Err(e) => return Err(e),
        }
    };
    let key_of = |i: usize| keys.as_ref().map(|k| k[i].clone());
    let range = opts.shard.map_or(0..jobs.len(), |s| crate::shard::shard_range(jobs.len(), s));
    let mine: Vec<(usize, &Job)> = jobs.iter().enumerate().filter(|(i, _)| range.contains(i)).collect();
    let todo: Vec<(String, &Job)> = mine
        .iter()
        .filter_map(|&(i, j)| key_of(i).map(|k| (k, j)))
        .filter(|(k, _)| !run_path(cfg, k).exists())
        .collect();
    if opts.dry_run {
        println!(
            "sweep `{}`: {} jobs in all, {} in this shard, {} to run",
            cfg.name,
            jobs.len(),
            mine.len(),
            if keys.is_some() { todo.len() } else { mine.len() }
        );
        println!("results folder: {}", cfg.results.display());
        for (i, j) in &mine {
            match key_of(*i) {
                Some(k) => println!(
                    "  [{i:>3}] {:<40} key {k} {}",
                    j.label(),
                    if run_path(cfg, &k).exists() { "done" } else { "todo" }
                ),
                None => println!("  [{i:>3}] {:<40} key ? (data not readable) todo", j.label()),
            }
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
        let todo_jobs: Vec<&Job> = if keys.is_some() {
            todo.iter().map(|(_, j)| *j).collect()
        } else {
            mine.iter().map(|(_, j)| *j).collect()
        };
        let n_classes: Vec<usize> = if sets.is_empty() {
            cfg.datasets
                .iter()
                .map(|d| match d.kind {
                    DatasetKind::ImagenetA | DatasetKind::ImagenetR => 200,
                    _ => classes.len(),
                })
                .collect()
        } else {
            sets.iter().map(|s| s.classes.len()).collect()
        };
        print_estimate(
            &todo_jobs,
            &crate::estimate::Workload {
                images: &sizes,
                classes: &n_classes,
                train_classes: classes.len(),
            },
            jobs.len(),
        );
        return Ok(0);
    }
    let device = ntlb_clip::device::parse_device_with(&cfg.device, &cfg.precision)?;
    let mut loaded: HashMap<String, Loaded> = HashMap::new();
    let mut feature_memo: HashMap<(String, usize), Features> = HashMap::new();
    let mut ran = 0;
    let numerics = crate::identity::Numerics::from_config(&cfg.device, &cfg.precision)?;
    for (key, job) in todo {
        if opts.max_jobs.is_some_and(|m| ran >= m) {
            break;
        }
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
        let memo: Option<Vec<Features>> = (0..sets.len()).map(|i| feature_memo.remove(&(m.name.clone(), i))).collect();
        let feats = match memo {
            Some(f) => f,
            None => model_features(
                &l.clip,
                &sets,
                &l.sha,
                &numerics,
                Some(&cfg.cache_dir()),
                cfg.batch_size,
                cfg.strict,
                opts.progress,
                cfg.convert_order,
            )?,
        };
        let mut rows = Vec::new();
        let mut relevance = None;
        let mut curve = None;
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
            name_score: None,
        };
        match job {
            Job::ZeroShot { zero_shot, .. } => {
                let templates = read_templates(&zero_shot.templates)?;
                let mut ensembles = Vec::new();
                for (name, p) in &zero_shot.ensembles {
                    ensembles.push((name.clone(), read_templates(p)?));
                }
                // Text features once per template and class list; scores on the model's device.
                let mut bank = TemplateBank::new(&l.clip, &l.tok);
                let device = l.clip.text.token_embedding.device();
                for (s, f) in sets.iter().zip(&feats) {
                    let x = DeviceFeatures::from_features(f, &device);
                    if zero_shot.per_template {
                        for t in &templates {
                            let a = x.accuracy(&bank.get(t, &s.classes.names)?, s.classes.len());
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
                        let per = ts.iter().map(|t| bank.get(t, &s.classes.names)).collect::<Result<Vec<_>>>()?;
                        let a = x.accuracy(&ensemble_on_device(&per), s.classes.len());
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
                let initial = layout.initial_context(&l.clip, tcfg.seed);
                // The class-name score on held-out ImageNet val images, before and after training.
                let (mut score_init, mut score) = (None, None);
                if let Some((_, f)) = sets.iter().zip(&feats).find(|(s, _)| s.kind == DatasetKind::Imagenet) {
                    let rows = crate::relevance_maps::held_out_subset(&f.labels, crate::relevance_maps::NAME_SCORE_PER_CLASS);
                    let x: Vec<f32> = rows.iter().flat_map(|&i| f.data[i * f.dim..(i + 1) * f.dim].to_vec()).collect();
                    let y: Vec<usize> = rows.iter().map(|&i| f.labels[i]).collect();
                    let measure = |ctx: &[f32]| crate::relevance_maps::mean_name_score(&l.clip, &layout, ctx, shape, &x, &y, f.dim);
                    score_init = Some(measure(&initial)?);
                    score = Some(measure(&learned.ctx)?);
                }
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
                    // Scored on the model's device, as zero-shot is.
                    let x = DeviceFeatures::from_features(f, &l.clip.text.token_embedding.device());
                    for (method, ctx, name_score) in [("coop-init", &initial, score_init), ("coop", &learned.ctx, score)] {
                        let a = x.accuracy(&class_text_features(&l.clip, &lay, ctx, shape, tcfg.chunk), s.classes.len());
                        rows.push(ResultRow {
                            lambda: Some(*lambda),
                            seed: Some(*seed),
                            top1: a.top1,
                            top5: a.top5,
                            mean_per_class: a.mean_per_class,
                            n_images: a.n,
                            n_failed: f.manifest.failed.len(),
                            name_score,
                            ..base_row(s.kind.name(), method)
                        });
                    }
                }
                curve = Some(crate::results::epoch_curve(&learned.manifest.loss_curve));
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
            curve,
            preprocessing: feature_memo
                .values()
                .map(|f| format!("{} {}", f.manifest.key.preprocessing, f.manifest.key.convert_order))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        ntlb_core::atomic::write_atomic(&run_path(cfg, &key), serde_json::to_string_pretty(&record)?.as_bytes())?;
        ran += 1;
    }
    let keys = keys.expect("a real run has keys");
    let plan = crate::results::Plan {
        sweep: cfg.name.clone(),
        jobs: jobs.iter().zip(&keys).map(|(j, k)| (k.clone(), j.label())).collect(),
    };
    plan.write(&cfg.results)?;
    let stale = plan.stale_runs(&cfg.results)?;
    if !stale.is_empty() && opts.progress {
        eprintln!(
            "{} run record(s) in {} do not match this sweep's plan (changed checkpoint, data, templates, settings, or an older key scheme): not reused, left out of the tables:",
            stale.len(),
            cfg.results.join("runs").display()
        );
        for r in &stale {
            eprintln!("  {} {}", r.key, r.job.label());
        }
    }
    // A shard writes no tables: with shards sharing a results folder the last one to finish
    // would write a partial table; `ntlb merge` writes them once every shard is done.
    if opts.shard.is_none() {
        write_tables(&cfg.results, Some(&plan.keys()))?;
    }
    Ok(ran)
}
