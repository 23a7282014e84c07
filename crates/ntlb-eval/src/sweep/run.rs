//! Running a sweep: the jobs of this shard not yet done, one model loaded at a time and its
//! features shared by its jobs; one function per job kind; each finished job's record written
//! atomically, then the plan and (unsharded) the tables.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::{Tensor, TensorData};
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::Clip;
use ntlb_data::classes::ClassList;
use ntlb_data::source::TrainSet;
use ntlb_data::split::FewShotSplit;
use ntlb_data::variants::{DatasetKind, EvalSet};
use ntlb_prompt::class_text::ClassTextEncoder;
use ntlb_prompt::prompt::PromptLayout;
use ntlb_prompt::train::{train, StopAt, TrainConfig};

use super::plan::{job_keys, job_state, print_plan, JobState};
use super::{open_datasets, plan, run_path, Job, ModelEntry, SweepConfig, ZeroShotSweep};
use crate::features::{FeatureCache, Features};
use crate::lock::Turn;
use crate::method::Method;
use crate::relevance_maps::RelevanceMap;
use crate::results::{write_tables, EpochPoint, ResultRow, RunRecord};
use crate::scores::DeviceFeatures;
use crate::zeroshot::{ensemble_on_device, read_templates, templates_path, TemplateBank};

/// How a sweep runs; the default is a whole, real, quiet run.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    pub shard: Option<(usize, usize)>,
    pub dry_run: bool,
    pub progress: bool,
    /// Stop after this many jobs (tests simulate a killed sweep with it).
    pub max_jobs: Option<usize>,
}

/// Everything a job needs from the machine, loaded once per model.
struct Loaded {
    clip: Clip,
    tok: ClipTokenizer,
    sha: String,
    name: Option<String>,
}

fn load_model(m: &ModelEntry, device: &burn::tensor::Device) -> Result<Loaded> {
    let clip = Clip::load_with(
        &m.path,
        ntlb_clip::LoadOptions {
            expected: None,
            activation: m.activation,
        },
        device,
    )
    .with_context(|| format!("model `{}`", m.name))?;
    eprintln!("model `{}`: {}", m.name, clip.numerics.describe());
    let tok = ClipTokenizer::for_model(&m.path, m.tokenizer.as_deref())
        .with_context(|| format!("model `{}`", m.name))?
        .with_context_length(clip.config.text.context_length);
    let weights = crate::identity::weights_file(m)?;
    let sha = crate::identity::checkpoint_sha256(&weights)?;
    let name = ntlb_clip::names::identify(&weights, &sha);
    Ok(Loaded { clip, tok, sha, name })
}

fn git_commit() -> Option<String> {
    let o = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// What a job reads: its key and model, the sweep's classes and datasets, their features.
struct JobInputs<'a> {
    cfg: &'a SweepConfig,
    key: &'a str,
    model: &'a ModelEntry,
    loaded: &'a Loaded,
    classes: &'a ClassList,
    sets: &'a [EvalSet],
    feats: &'a [Features],
    /// The CoOp training sets by their `coop.train` name (opened once by `prepare`).
    train: &'a BTreeMap<String, TrainSet>,
    progress: bool,
}

impl JobInputs<'_> {
    /// Where a number of this job was computed, for its errors.
    fn at(&self, set: &EvalSet, what: &str) -> String {
        format!("model `{}`, dataset {}, {what}", self.model.name, self.set_name(set))
    }

    /// The name of one of the job's sets: its dataset entry's (the sets are opened in the
    /// order of the entries).
    fn set_name(&self, set: &EvalSet) -> &str {
        let i = self.sets.iter().position(|s| std::ptr::eq(s, set)).expect("one of the job's sets");
        self.cfg.datasets[i].name()
    }

    /// A result row of this job on `set` with the accuracy fields still zero.
    fn row(&self, set: &EvalSet, method: Method) -> ResultRow {
        ResultRow {
            sweep: self.cfg.name.clone(),
            run_key: self.key.to_string(),
            model: self.model.name.clone(),
            method,
            template: None,
            lambda: None,
            seed: None,
            dataset: self.set_name(set).into(),
            top1: 0.0,
            top5: 0.0,
            mean_per_class: 0.0,
            n_images: 0,
            n_failed: 0,
            name_score: None,
            dataset_kind: set.kind.name().into(),
            shots: None,
            train_dataset: None,
        }
    }
}

/// What a job produces: its result rows and, for CoOp, the relevance maps and training curve.
#[derive(Default)]
struct JobOutput {
    rows: Vec<ResultRow>,
    relevance: Option<Vec<RelevanceMap>>,
    curve: Option<Vec<EpochPoint>>,
    /// The upstream CoOp pickle the few-shot split was read from (none: a fresh draw).
    cached_draw: Option<ntlb_data::split::CachedFrom>,
}

/// Zero-shot: every single template (when `per_template`) and every ensemble, on every dataset.
fn zero_shot_job(x: &JobInputs, zero_shot: &ZeroShotSweep) -> Result<JobOutput> {
    let l = x.loaded;
    let mut rows = Vec::new();
    // Text features once per template and class list; scores on the model's device.
    let mut bank = TemplateBank::new(&l.clip, &l.tok);
    let device = l.clip.text.token_embedding.device();
    for (s, f) in x.sets.iter().zip(x.feats) {
        // A path with `{dataset}` reads each dataset's own templates.
        let templates = read_templates(&templates_path(&zero_shot.templates, s.kind))?;
        let mut ensembles = Vec::new();
        for (name, p) in &zero_shot.ensembles {
            ensembles.push((name.clone(), read_templates(&templates_path(p, s.kind))?));
        }
        let feats = DeviceFeatures::from_features(f, &device).with_context(|| x.at(s, "its image features"))?;
        if zero_shot.per_template {
            for t in &templates {
                let a = feats
                    .accuracy(&bank.get(t, &s.classes.names)?, &s.classes.names)
                    .with_context(|| x.at(s, &format!("template {t:?}")))?;
                rows.push(ResultRow {
                    template: Some(t.clone()),
                    top1: a.top1,
                    top5: a.top5,
                    mean_per_class: a.mean_per_class,
                    n_images: a.n,
                    n_failed: f.manifest.failed.len(),
                    ..x.row(s, Method::ZeroShot)
                });
            }
        }
        for (name, ts) in &ensembles {
            let per = ts.iter().map(|t| bank.get(t, &s.classes.names)).collect::<Result<Vec<_>>>()?;
            let a = feats
                .accuracy(&ensemble_on_device(&per), &s.classes.names)
                .with_context(|| x.at(s, &format!("ensemble `{name}`")))?;
            rows.push(ResultRow {
                template: Some(format!("ensemble-{name}")),
                top1: a.top1,
                top5: a.top5,
                mean_per_class: a.mean_per_class,
                n_images: a.n,
                n_failed: f.manifest.failed.len(),
                ..x.row(s, Method::Ensemble(name.clone()))
            });
        }
    }
    Ok(JobOutput {
        rows,
        ..JobOutput::default()
    })
}

/// CoOp: train the context on the few-shot split of its training set (resuming its
/// checkpoint), then score the starting and the learned context: trained on ImageNet, on every
/// dataset with the class-name score on held-out ImageNet val; trained on a split-list dataset,
/// on that dataset's test split with the score on its held-out test images. With the training
/// curve and the relevance maps before and after.
fn coop_job(x: &JobInputs, label: &str, lambda: f64, seed: u64, tcfg: &TrainConfig, train_dataset: Option<&str>) -> Result<JobOutput> {
    let (l, m) = (x.loaded, x.model);
    let on = train_dataset.unwrap_or(super::IMAGENET_TRAIN);
    let folder = x.train.get(on).with_context(|| format!("the training set `{on}` was not opened"))?;
    // ImageNet's class list is the sweep's; a split-list set's is its split file's, the same
    // list its test split is evaluated with.
    let classes = if train_dataset.is_some() { &folder.classes } else { x.classes };
    let evaluated: Vec<(&EvalSet, &Features)> = x
        .sets
        .iter()
        .zip(x.feats)
        .zip(&x.cfg.datasets)
        .filter(|(_, d)| train_dataset.is_none_or(|t| d.name() == t))
        .map(|(sf, _)| sf)
        .collect();
    if evaluated.is_empty() {
        bail!("{label}: the training dataset `{on}` is not among the opened datasets");
    }
    if let Some((p, why)) = folder.unreadable.first() {
        eprintln!(
            "{label}: {} entries of the training folders cannot be read and are left out of the split (first: {}: {why})",
            folder.unreadable.len(),
            p.display()
        );
    }
    let dir = x.cfg.results.join("runs").join(x.key);
    // The saved split must be the draw of this folder, shots and seed (the job's key covers all
    // three): one that is refused, or that holds other images and still parses, was changed
    // after it was written; it is moved aside and drawn again.
    let split_file = dir.join("split.json");
    let drawn = FewShotSplit::choose(&folder, tcfg.shots, tcfg.seed)?;
    let split = match FewShotSplit::load_or_draw(&split_file, &folder, tcfg.shots, tcfg.seed) {
        Ok(s) if s == drawn => s,
        saved => {
            let why = saved.map_or_else(
                |e| format!("{e:#}"),
                |_| "other images than the draw of this job's folder, shots and seed".into(),
            );
            let to = ntlb_core::damaged::set_aside(&split_file)
                .with_context(|| format!("{}: cannot move the damaged split aside", split_file.display()))?;
            eprintln!(
                "{label}: damaged split file {} ({why}): moved to {}, drawn again",
                split_file.display(),
                to.display()
            );
            FewShotSplit::load_or_draw(&split_file, &folder, tcfg.shots, tcfg.seed)?
        }
    };
    if let Some(c) = &split.cached {
        eprintln!(
            "{label}: few-shot split from upstream CoOp's cached draw {} (sha256 {}), named in {}",
            c.file.display(),
            c.sha256,
            split_file.display()
        );
    }
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
            if x.progress && (p.step % 10 == 0 || p.step == total) {
                eprintln!(
                    "   step {}/{total} epoch {} loss {:.4} (ce {:.4} expl {:.4}) acc {:.1}%",
                    p.step, p.epoch, p.loss, p.ce, p.expl, p.acc
                );
            }
        },
    )?;
    let shape = learned.manifest.ctx_shape;
    let initial = layout.initial_context(&l.clip, tcfg.seed);
    // The class-name score on held-out images of the training dataset (ImageNet val, or the
    // set's test split), before and after training: the paper's (max over the name) whatever
    // `name_score` trained with, so runs compare.
    let (mut score_init, mut score) = (None, None);
    let scored_on = evaluated.iter().find(|(s, _)| {
        if train_dataset.is_some() {
            true
        } else {
            s.kind == DatasetKind::Imagenet
        }
    });
    if let Some((_, f)) = scored_on {
        let rows = crate::relevance_maps::held_out_subset(&f.labels, crate::relevance_maps::NAME_SCORE_PER_CLASS);
        let xs: Vec<f32> = rows.iter().flat_map(|&i| f.data[i * f.dim..(i + 1) * f.dim].to_vec()).collect();
        let y: Vec<usize> = rows.iter().map(|&i| f.labels[i]).collect();
        let measure = |ctx: &[f32]| crate::relevance_maps::mean_name_score(&l.clip, &layout, ctx, shape, &xs, &y, f.dim);
        score_init = Some(measure(&initial)?);
        score = Some(measure(&learned.ctx)?);
    }
    let mut rows = Vec::new();
    for &(s, f) in &evaluated {
        if tcfg.prompt.class_specific && s.classes.names != classes.names {
            bail!(
                "{label}: class-specific contexts are learned per ImageNet class; evaluating them on the {} classes of {} is not supported",
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
        let device = l.clip.text.token_embedding.device();
        let feats = DeviceFeatures::from_features(f, &device).with_context(|| x.at(s, "its image features"))?;
        let enc = ClassTextEncoder::new(&l.clip, &lay);
        let agg = tcfg.loss.name_score;
        for (method, ctx, name_score) in [
            (Method::CoopInit(agg), &initial, score_init),
            (Method::Coop(agg), &learned.ctx, score),
        ] {
            let ctx = Tensor::<2>::from_data(TensorData::new(ctx.clone(), shape), &device);
            let a = feats
                .accuracy(&enc.features(ctx, tcfg.chunk), &s.classes.names)
                .with_context(|| x.at(s, &format!("{label}, {method}")))?;
            rows.push(ResultRow {
                lambda: Some(lambda),
                seed: Some(seed),
                top1: a.top1,
                top5: a.top5,
                mean_per_class: a.mean_per_class,
                n_images: a.n,
                n_failed: f.manifest.failed.len(),
                name_score,
                shots: Some(tcfg.shots),
                train_dataset: Some(on.to_string()),
                ..x.row(s, method)
            });
        }
    }
    let curve = Some(crate::results::epoch_curve(&learned.manifest.loss_curve));
    let relevance = Some(crate::relevance_maps::before_after(
        &l.clip,
        &l.tok,
        &layout,
        &classes.names,
        &split.items,
        &learned,
        tcfg.seed,
    )?);
    Ok(JobOutput {
        rows,
        relevance,
        curve,
        cached_draw: split.cached.clone(),
    })
}

/// What a sweep is about to do: the resolved config, its plan, its data, the job keys and the
/// state of this shard's jobs (`mine`: indices into `jobs`).
struct Prepared {
    cfg: SweepConfig,
    jobs: Vec<Job>,
    classes: ClassList,
    sets: Vec<EvalSet>,
    keys: Option<Vec<String>>,
    /// Each set's item hash (`SweepIdentity::set_items`), with the keys.
    set_items: Option<Vec<String>>,
    /// What each job's key hashes (its record must carry it), with the keys.
    contents: Option<Vec<String>>,
    mine: Vec<usize>,
    states: Option<Vec<JobState>>,
    /// The CoOp training sets, opened once for every CoOp job (none in a dry run without data).
    train: BTreeMap<String, TrainSet>,
}

/// Repeated class names are refused by zero-shot and CoOp alike unless the method's setting
/// allows them (CLIP's ImageNet list repeats two names: `zero_shot.allow_duplicate_names`,
/// `prompt.allow_duplicate_names`).
fn check_class_names(cfg: &SweepConfig, sets: &[EvalSet], jobs: &[Job]) -> Result<()> {
    let zero_shot = cfg.zero_shot.as_ref().map(|z| z.allow_duplicate_names);
    let coop = jobs.iter().find_map(|j| match j {
        Job::Coop { train, .. } => Some(train.prompt.allow_duplicate_names),
        _ => None,
    });
    for s in sets {
        if let Some(allow) = zero_shot {
            ntlb_prompt::prompt::check_classnames(&s.classes.names, allow).map_err(|e| {
                anyhow::anyhow!(
                    "{}: zero-shot on {}: {e:#} (`zero_shot.allow_duplicate_names = true`)",
                    cfg.source_name(),
                    s.kind.name()
                )
            })?;
        }
        if let Some(allow) = coop {
            ntlb_prompt::prompt::check_classnames(&s.classes.names, allow).map_err(|e| {
                let file = cfg
                    .coop
                    .as_ref()
                    .and_then(|c| c.config.as_ref())
                    .map_or(cfg.source_name(), |p| p.display().to_string());
                anyhow::anyhow!("{file}: CoOp on {}: {e:#} (`prompt.allow_duplicate_names = true`)", s.kind.name())
            })?;
        }
    }
    Ok(())
}

fn prepare(cfg: &SweepConfig, opts: &SweepOptions) -> Result<Prepared> {
    // Every setting is checked before anything is resolved, read or listed.
    plan(cfg)?;
    // Model names are looked up in the Hugging Face cache here, once; a dry run plans without
    // the downloads.
    let resolved = match cfg.resolved_checked() {
        Ok(c) => c,
        Err(e) if opts.dry_run => {
            println!("models not readable yet ({e:#})");
            cfg.resolved()
        }
        Err(e) => return Err(e),
    };
    let cfg = resolved;
    let jobs = plan(&cfg)?;
    // A dry run plans without the data (it may not be downloaded yet); a real run checks it all up front.
    let opened = open_datasets(&cfg);
    if opts.dry_run {
        if let Err(e) = &opened {
            println!("datasets not readable yet ({e:#}); the estimate uses the published sizes");
        }
    }
    let data_read = opened.is_ok();
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
    check_class_names(&cfg, &sets, &jobs)?;
    check_tokenizers(&cfg, opts.dry_run)?;
    let train = open_train_set(&cfg, &classes, &jobs, opts.dry_run, data_read)?;
    for s in &sets {
        if !s.empty_classes.is_empty() {
            eprintln!(
                "{}: {} of {} class folders hold no image, evaluated without them (allow_empty_classes): {}",
                s.kind.name(),
                s.empty_classes.len(),
                s.classes.len(),
                s.empty_classes.join(", ")
            );
        }
        if !s.unreadable.is_empty() {
            eprintln!(
                "{}: {} entries of its class folders cannot be read, counted as failed images (first: {} {})",
                s.kind.name(),
                s.unreadable.len(),
                s.unreadable[0].0.display(),
                s.unreadable[0].1
            );
        }
    }
    let (keys, set_items, contents) = match job_keys(&cfg, &classes, &sets, &jobs, opts.dry_run)? {
        Some(k) => (Some(k.keys), Some(k.set_items), Some(k.contents)),
        None => (None, None, None),
    };
    let range = opts.shard.map_or(0..jobs.len(), |s| crate::shard::shard_range(jobs.len(), s));
    let mine: Vec<usize> = range.filter(|i| *i < jobs.len()).collect();
    let states = keys
        .as_ref()
        .zip(contents.as_ref())
        .map(|(k, c)| mine.iter().map(|&i| job_state(&cfg, &k[i], &c[i])).collect());
    Ok(Prepared {
        cfg,
        jobs,
        classes,
        sets,
        keys,
        set_items,
        contents,
        mine,
        states,
        train,
    })
}

/// Images that fail to decode are left out of the scores: a set left without any has no
/// accuracy (an error, never a row of zeros), and a class left without any is an empty class,
/// under its entry's `allow_empty_classes` as a class folder without images is. Returns the
/// classes emptied this way, by dataset.
fn check_decoded(cfg: &SweepConfig, sets: &[EvalSet], feats: &[Features]) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
    let mut emptied_by_set = std::collections::BTreeMap::new();
    for ((s, f), entry) in sets.iter().zip(feats).zip(&cfg.datasets) {
        let failed = &f.manifest.failed;
        let first = failed
            .first()
            .map_or(String::new(), |(p, why)| format!(" (first: {}: {why})", p.display()));
        if f.is_empty() {
            bail!(
                "{}: dataset {}: none of its {} images could be read{first}: there is no accuracy over no image",
                cfg.source_name(),
                entry.name(),
                failed.len()
            );
        }
        let mut left = vec![0usize; s.classes.len()];
        for &l in &f.labels {
            left[l] += 1;
        }
        let listed: std::collections::BTreeSet<usize> = s.items.iter().map(|(_, l)| *l).collect();
        let emptied: Vec<String> = listed
            .into_iter()
            .filter(|&c| left[c] == 0)
            .map(|c| s.classes.ids[c].clone())
            .collect();
        if emptied.is_empty() {
            continue;
        }
        if !entry.allow_empty_classes {
            bail!(
                "{}: dataset {}: {} of its {} classes have no image that could be read: {}{first} \
                 (set `allow_empty_classes = true` in its dataset entry to evaluate without them)",
                cfg.source_name(),
                entry.name(),
                emptied.len(),
                s.classes.len(),
                emptied.join(", ")
            );
        }
        eprintln!(
            "{}: {} classes have no image that could be read, evaluated without them (allow_empty_classes): {}",
            entry.name(),
            emptied.len(),
            emptied.join(", ")
        );
        emptied_by_set.insert(entry.name().to_string(), emptied);
    }
    Ok(emptied_by_set)
}

/// Every model's tokenizer is found before any job runs (a dry run skips the models not
/// downloaded yet): without one a sweep would fail after the jobs of the models before it.
fn check_tokenizers(cfg: &SweepConfig, dry_run: bool) -> Result<()> {
    for m in &cfg.models {
        if dry_run && !m.path.exists() {
            continue;
        }
        match &m.tokenizer {
            Some(t) if !t.is_file() => bail!(
                "{}: model `{}`: `tokenizer = {:?}` in its [[models]] entry: no such file",
                cfg.source_name(),
                m.name,
                t.display().to_string()
            ),
            None if ClipTokenizer::beside(&m.path).is_none() => bail!(
                "{}: model `{}`: no tokenizer.json beside {}: name one with `tokenizer = \"…/tokenizer.json\"` in its [[models]] entry",
                cfg.source_name(),
                m.name,
                m.path.display()
            ),
            _ => {}
        }
    }
    Ok(())
}

/// The CoOp training sets, opened once before any job: a setting that does not fit the data
/// (a `coop.train_label_key` naming no column, a training dataset without its split file, ...)
/// fails the run, and the dry run, before the zero-shot job rather than after it. A dry run
/// without the data (the class list or the sets not readable, no training root yet) says so and
/// goes on.
fn open_train_set(
    cfg: &SweepConfig,
    classes: &ClassList,
    jobs: &[Job],
    dry_run: bool,
    data_read: bool,
) -> Result<BTreeMap<String, TrainSet>> {
    let Some(co) = cfg.coop.as_ref().filter(|_| jobs.iter().any(|j| matches!(j, Job::Coop { .. }))) else {
        return Ok(BTreeMap::new());
    };
    let imagenet_missing = co.trains_on_imagenet() && co.train_root.as_ref().is_none_or(|r| !r.exists());
    if dry_run && (!data_read || imagenet_missing) {
        println!(
            "training set{} not readable yet",
            co.train_root.as_ref().map_or(String::new(), |r| format!(" {}", r.display()))
        );
        return Ok(BTreeMap::new());
    }
    super::open_train_sets(cfg, classes).map_err(|e| {
        // The data crate's advice names a dataset entry's keys; the training set's are [coop]'s.
        let why = format!("{e:#}")
            .replace("`label_key` in the dataset entry", "`coop.train_label_key`")
            .replace("`image_key` in the dataset entry", "`coop.train_image_key`");
        let hint = if why.contains("has no label") {
            " (the label extension is `coop.train_label_key`)"
        } else {
            ""
        };
        anyhow::anyhow!(
            "{}: [coop] training set {}: {why}{hint}",
            cfg.source_name(),
            co.train_root.as_ref().map_or("".into(), |r| r.display().to_string())
        )
    })
}

/// `--dry-run`: print the plan, what is done and the cost estimate; run nothing. Returns how
/// many jobs of this shard are left to run (a damaged record's job among them).
pub fn dry_run(cfg: &SweepConfig, shard: Option<(usize, usize)>) -> Result<usize> {
    let opts = SweepOptions {
        shard,
        dry_run: true,
        progress: false,
        max_jobs: None,
    };
    let Prepared {
        cfg,
        jobs,
        classes,
        sets,
        keys,
        mine,
        states,
        ..
    } = prepare(cfg, &opts)?;
    let mine: Vec<(usize, &Job)> = mine.iter().map(|&i| (i, &jobs[i])).collect();
    let todo_jobs: Vec<&Job> = match &states {
        Some(st) => mine
            .iter()
            .zip(st)
            .filter(|(_, s)| **s != JobState::Done)
            .map(|((_, j), _)| *j)
            .collect(),
        None => mine.iter().map(|(_, j)| *j).collect(),
    };
    print_plan(&cfg, &jobs, keys.as_deref(), states.as_deref(), &mine, todo_jobs.len(), &sets);
    crate::estimate::print_estimate(&cfg, &classes, &sets, &todo_jobs, jobs.len());
    Ok(todo_jobs.len())
}

/// Run (or plan) the sweep; returns the number of jobs run.
pub fn run_sweep(cfg: &SweepConfig, opts: &SweepOptions) -> Result<usize> {
    if opts.dry_run {
        dry_run(cfg, opts.shard)?;
        return Ok(0);
    }
    let Prepared {
        cfg,
        jobs,
        classes,
        sets,
        keys,
        set_items,
        contents,
        mine,
        states,
        train,
    } = prepare(cfg, opts)?;
    let cfg = &cfg;
    let keys = keys.expect("a real run has keys");
    let set_items = set_items.expect("a real run has keys");
    let states = states.expect("a real run has keys");
    let contents = contents.expect("a real run has keys");
    // Jobs whose record reads back are done; the others run under a lock per job
    // (`runs/<key>.lock`), so sweeps started at once into one results folder share the training
    // as they share the encoding.
    let todo: Vec<(String, &Job, &str)> = mine
        .iter()
        .zip(&states)
        .filter(|(_, s)| **s != JobState::Done)
        .map(|(&i, _)| (keys[i].clone(), &jobs[i], contents[i].as_str()))
        .collect();
    let empty_classes: std::collections::BTreeMap<String, Vec<String>> = sets
        .iter()
        .zip(&cfg.datasets)
        .filter(|(s, _)| !s.empty_classes.is_empty())
        .map(|(s, d)| (d.name().to_string(), s.empty_classes.clone()))
        .collect();
    let device = ntlb_clip::device::parse_device_with(&cfg.device, &cfg.precision)?;
    let mut loaded: HashMap<String, Loaded> = HashMap::new();
    let mut feature_memo: HashMap<(String, usize), Features> = HashMap::new();
    let mut ran = 0;
    let numerics = crate::identity::Numerics::from_config(&cfg.device, &cfg.precision)?;
    crate::lock::each_when_free(todo.len(), opts.progress, |t| {
        let (key, job, content) = (todo[t].0.clone(), todo[t].1, todo[t].2);
        if opts.max_jobs.is_some_and(|m| ran >= m) {
            return Ok(Turn::Done(()));
        }
        let lock_path = cfg.results.join("runs").join(format!("{key}.lock"));
        let Some(_lock) = crate::lock::try_lock(&lock_path, crate::features::LOCK_STALE_AFTER)? else {
            return Ok(Turn::Busy(format!("{} ({})", job.label(), crate::lock::held_by(&lock_path))));
        };
        // The record again, under the lock: another sweep may have finished the job meanwhile. A
        // record that does not read back is moved aside (never deleted) and its job runs again.
        match job_state(cfg, &key, content) {
            JobState::Done => {
                if opts.progress {
                    eprintln!("== {}: done by another sweep meanwhile", job.label());
                }
                return Ok(Turn::Done(()));
            }
            JobState::Todo => {}
            JobState::Damaged(why) => {
                let path = run_path(cfg, &key);
                let to = ntlb_core::damaged::set_aside(&path)
                    .with_context(|| format!("{}: cannot move the damaged record aside", path.display()))?;
                eprintln!("damaged run record ({why}): moved to {}; {} runs again", to.display(), job.label());
            }
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
            None => FeatureCache {
                dir: Some(&cfg.cache_dir()),
                numerics: &numerics,
                batch: cfg.batch_size,
                strict: cfg.strict,
                progress: opts.progress,
            }
            .model(&l.clip, &sets, &set_items, &l.sha, cfg.convert_order)
            .with_context(|| format!("model `{}`", m.name))?,
        };
        let emptied = check_decoded(cfg, &sets, &feats)?;
        let inputs = JobInputs {
            cfg,
            key: &key,
            model: m,
            loaded: l,
            classes: &classes,
            sets: &sets,
            feats: &feats,
            train: &train,
            progress: opts.progress,
        };
        let out = match job {
            Job::ZeroShot { zero_shot, .. } => zero_shot_job(&inputs, zero_shot)?,
            Job::Coop {
                lambda,
                seed,
                train,
                train_dataset,
                ..
            } => coop_job(&inputs, &job.label(), *lambda, *seed, train, train_dataset.as_deref())?,
        };
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
            checkpoint_name: l.name.clone(),
            seconds: start.elapsed().as_secs_f64(),
            rows: out.rows,
            failed_images: failed,
            relevance: out.relevance,
            curve: out.curve,
            preprocessing: feature_memo
                .values()
                .map(|f| format!("{} {}", f.manifest.key.preprocessing, f.manifest.key.convert_order))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            model_numerics: Some(l.clip.numerics.clone()),
            empty_classes: {
                let mut all = empty_classes.clone();
                for (d, c) in &emptied {
                    all.entry(d.clone()).or_default().extend(c.iter().cloned());
                }
                all
            },
            content: Some(content.to_string()),
            cached_draw: out.cached_draw,
        };
        record.write(&run_path(cfg, &key))?;
        ran += 1;
        Ok(Turn::Done(()))
    })?;
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
        for (key, what) in &stale {
            eprintln!("  {key} {what}");
        }
    }
    // A shard writes no tables: with shards sharing a results folder the last one to finish
    // would write a partial table; `ntlb merge` writes them once every shard is done.
    if opts.shard.is_none() {
        write_tables(&cfg.results, Some(&plan.keys()))?;
    }
    Ok(ran)
}
