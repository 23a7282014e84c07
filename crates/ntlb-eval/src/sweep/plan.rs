//! What a sweep runs: its jobs in a fixed order, their content keys, where each job's result
//! goes, and the listing `--dry-run` prints.

use std::path::PathBuf;

use anyhow::Result;
use ntlb_data::classes::ClassList;
use ntlb_data::variants::EvalSet;
use ntlb_prompt::objective::NameScore;
use ntlb_prompt::train::{InvalidSetting, TrainConfig};
use serde::{Deserialize, Serialize};

use super::{
    coop_schedule_epochs, CoopSweep, EpochsSetting, ModelEntry, ScheduleRule, ShotsSetting, SweepConfig, ZeroShotSweep, IMAGENET_TRAIN,
};
use crate::identity::SweepIdentity;
use crate::results::RunRecord;

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
        /// The training data's root: ImageNet's `coop.train_root`, or the training dataset
        /// entry's root.
        train_root: PathBuf,
        /// The `[[datasets]]` entry trained on (its split file's `train` list), evaluated on its
        /// test split; `None`: ImageNet at `train_root`, evaluated on every entry (records
        /// written before the field existed read so).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train_dataset: Option<String>,
    },
}

impl Job {
    pub fn model(&self) -> &ModelEntry {
        match self {
            Job::ZeroShot { model, .. } | Job::Coop { model, .. } => model,
        }
    }

    /// The training dataset's name (`imagenet` for the set at `coop.train_root`) and shots of a
    /// CoOp job.
    pub fn trained_on(&self) -> Option<(&str, usize)> {
        match self {
            Job::ZeroShot { .. } => None,
            Job::Coop { train, train_dataset, .. } => Some((train_dataset.as_deref().unwrap_or(super::IMAGENET_TRAIN), train.shots)),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Job::ZeroShot { model, .. } => format!("{} zero-shot", model.name),
            Job::Coop {
                model,
                lambda,
                seed,
                train,
                train_dataset,
                ..
            } => {
                // The defaults (ImageNet, 1 shot) unsaid, as before those axes existed.
                let on = train_dataset.as_ref().map_or(String::new(), |d| format!(" train={d}"));
                let shots = if train.shots == 1 {
                    String::new()
                } else {
                    format!(" shots={}", train.shots)
                };
                match train.loss.name_score {
                    NameScore::Max => format!("{} coop{on}{shots} λ={lambda} seed={seed}", model.name),
                    agg => format!("{} coop{on}{shots} λ={lambda} name_score={agg} seed={seed}", model.name),
                }
            }
        }
    }
}

/// A training setting of the sweep that [`TrainConfig::validate`] refuses, named where it was
/// set: the sweep's own keys (`coop.lambdas`, `coop.epochs`, `coop.shots`) in the sweep file,
/// the others in the base training config.
fn invalid(cfg: &SweepConfig, c: &CoopSweep, e: &InvalidSetting) -> anyhow::Error {
    let sweep = cfg.source_name();
    let from_sweep = match e.key {
        "loss.expl_weight" => Some("coop.lambdas"),
        "optim.epochs" if c.epochs.is_some() => Some("coop.epochs"),
        "shots" if c.shots.is_some() => Some("coop.shots"),
        _ => None,
    };
    match (from_sweep, &c.config) {
        (Some(key), _) => anyhow::anyhow!("{sweep}: `{key}` holds {}: {} (it sets `{}`)", e.value, e.rule, e.key),
        (None, Some(p)) => anyhow::anyhow!("{} (the base training config of {sweep}): {e}", p.display()),
        (None, None) => anyhow::anyhow!("{sweep}: default training config: {e}"),
    }
}

/// A list of the sweep that must name each value once (a repeat would run one job twice).
fn check_once<T: PartialEq + std::fmt::Display>(cfg: &SweepConfig, key: &str, values: &[T]) -> Result<()> {
    if values.is_empty() {
        anyhow::bail!("{}: `{key}` is empty", cfg.source_name());
    }
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            anyhow::bail!("{}: `{key}` lists {v} twice (each value is one job)", cfg.source_name());
        }
    }
    Ok(())
}

/// The plan: every job of the sweep, in a fixed order. Every setting is checked here, before any
/// work or `--dry-run` listing: each job's training config by [`TrainConfig::validate`], the
/// λ and seed lists for repeats, model and dataset entries for repeated names
/// ([`SweepConfig::check_entries`]).
pub fn plan(cfg: &SweepConfig) -> Result<Vec<Job>> {
    cfg.check_entries()?;
    if cfg.batch_size == 0 {
        anyhow::bail!("{}: `batch_size` = 0: must be at least 1", cfg.source_name());
    }
    // Checked here, not only when the real run opens the device: a dry run of a sweep that
    // cannot run says so.
    crate::identity::Numerics::from_config(&cfg.device, &cfg.precision)
        .map_err(|e| anyhow::anyhow!("{}: `device` / `precision` (or --device / --precision): {e:#}", cfg.source_name()))?;
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
                Some(p) => ntlb_core::toml_config::read_toml::<TrainConfig>(p)?,
                None => TrainConfig::default(),
            };
            if let Some(EpochsSetting::Fixed(e)) = c.epochs {
                base.optim.epochs = e;
            }
            let shots = c.shots.as_ref().map_or(vec![base.shots], ShotsSetting::counts);
            let aggs = name_scores(c.name_scores.as_deref(), base.loss.name_score)?;
            for on in c.train_sets() {
                let (train_root, train_dataset) = train_data(cfg, c, &on)?;
                for &k in &shots {
                    let mut base = base.clone();
                    base.shots = k;
                    if let Some(EpochsSetting::Rule(ScheduleRule::Coop)) = c.epochs {
                        base.optim.epochs = coop_schedule_epochs(k, train_dataset.is_none())
                            .map_err(|e| anyhow::anyhow!("{}: {e} (`coop.shots` lists {k})", cfg.source_name()))?;
                    }
                    for &lambda in &c.lambdas {
                        // At λ = 0 the score is not in the loss: one job (the max one, plain CoOp's key).
                        let aggs = if lambda == 0.0 { &[NameScore::Max][..] } else { &aggs[..] };
                        for &agg in aggs {
                            for &seed in &c.seeds {
                                let mut t = base.clone();
                                t.loss.expl_weight = lambda;
                                t.loss.name_score = agg;
                                t.seed = seed;
                                t.validate().map_err(|e| invalid(cfg, c, &e))?;
                                jobs.push(Job::Coop {
                                    model: m.clone(),
                                    lambda,
                                    seed,
                                    train: t,
                                    train_root: train_root.clone(),
                                    train_dataset: train_dataset.clone(),
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(c) = &cfg.coop {
        check_once(cfg, "coop.lambdas", &c.lambdas)?;
        check_once(cfg, "coop.seeds", &c.seeds)?;
        if let Some(k) = &c.shots {
            check_once(cfg, "coop.shots", &k.counts())?;
        }
        check_once(cfg, "coop.train", &c.train_sets())?;
    }
    Ok(jobs)
}

/// Where a training dataset of `coop.train` is: ImageNet at `coop.train_root` (`None` as its
/// entry), or a `[[datasets]]` entry of a split-list kind, by name.
fn train_data(cfg: &SweepConfig, c: &CoopSweep, name: &str) -> Result<(PathBuf, Option<String>)> {
    if name == IMAGENET_TRAIN {
        let root = c.imagenet_root().map_err(|e| anyhow::anyhow!("{}: {e}", cfg.source_name()))?;
        return Ok((root.to_path_buf(), None));
    }
    let Some(d) = cfg.datasets.iter().find(|d| d.name() == name) else {
        anyhow::bail!(
            "{}: `coop.train` names `{name}`, which is neither `{IMAGENET_TRAIN}` (the set at `coop.train_root`) nor a [[datasets]] entry (entries: {})",
            cfg.source_name(),
            cfg.datasets.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
        );
    };
    if !d.kind.has_split_list() {
        anyhow::bail!(
            "{}: `coop.train` names `{name}`, a {} entry: training reads a split list's `train` images (CoOp's split-file kinds), or `{IMAGENET_TRAIN}` at `coop.train_root`",
            cfg.source_name(),
            d.kind
        );
    }
    Ok((d.root.clone(), Some(name.to_string())))
}

/// The aggregations a CoOp sweep crosses with λ: `coop.name_scores` in its order without
/// repeats, or the base config's one when the sweep names none.
fn name_scores(listed: Option<&[NameScore]>, base: NameScore) -> Result<Vec<NameScore>> {
    let Some(listed) = listed else {
        return Ok(vec![base]);
    };
    if listed.is_empty() {
        anyhow::bail!("coop.name_scores is empty: name at least one of {}", NameScore::NAMES.join(", "));
    }
    let mut out: Vec<NameScore> = Vec::new();
    for &a in listed {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// The result record of the job with this key; a job whose record reads back is done.
pub fn run_path(cfg: &SweepConfig, key: &str) -> PathBuf {
    cfg.results.join("runs").join(format!("{key}.json"))
}

/// What a job's record says of it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    Todo,
    Done,
    /// A record that does not read back as this job's (truncated, changed bytes, another key,
    /// or computed from other inputs than the job's key hashes): why. The job runs again (the
    /// record is moved aside first, [`ntlb_core::damaged`]).
    Damaged(String),
}

/// The state of the job with this key, from its record: checked against its digest, and
/// reused only when it was computed from `content`, the text the key hashes
/// ([`SweepIdentity::content`]; see [`RunRecord::check_content`]).
pub fn job_state(cfg: &SweepConfig, key: &str, content: &str) -> JobState {
    let path = run_path(cfg, key);
    match RunRecord::read(&path) {
        Ok(r) => match r.check_content(content) {
            Ok(()) => JobState::Done,
            Err(e) => JobState::Damaged(format!("{}: {e:#}", path.display())),
        },
        Err(e) if ntlb_core::sealed::is_not_found(&e) => JobState::Todo,
        Err(e) => JobState::Damaged(format!("{e:#}")),
    }
}

/// What the plan's jobs are keyed on, once the data is readable.
pub(super) struct JobKeys {
    pub keys: Vec<String>,
    /// Each set's item hash (`SweepIdentity::set_items`): the feature-cache keys reuse it.
    pub set_items: Vec<String>,
    /// Each job's key material, the text its key hashes: a record carries it and is reused
    /// only where it matches.
    pub contents: Vec<String>,
}

/// The key of every job, with what it hashes and each set's item hash. Keys hash the data, so
/// they exist only once the data is readable: a dry run goes on without them (`None`), a real
/// run fails.
pub(super) fn job_keys(cfg: &SweepConfig, classes: &ClassList, sets: &[EvalSet], jobs: &[Job], dry_run: bool) -> Result<Option<JobKeys>> {
    if sets.is_empty() && !cfg.datasets.is_empty() {
        return Ok(None);
    }
    let keyed = SweepIdentity::compute(cfg, classes, sets).and_then(|ident| {
        let contents = jobs.iter().map(|j| ident.content(j)).collect::<Result<Vec<_>>>()?;
        Ok(JobKeys {
            keys: contents.iter().map(|c| SweepIdentity::key_of(c)).collect(),
            set_items: ident.set_items,
            contents,
        })
    });
    match keyed {
        Ok(k) => Ok(Some(k)),
        Err(e) if dry_run => {
            println!("job keys unknown until the inputs are readable: {e:#}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The `--dry-run` listing: counts, every job of this shard with its key and state, the datasets.
pub(super) fn print_plan(
    cfg: &SweepConfig,
    jobs: &[Job],
    keys: Option<&[String]>,
    states: Option<&[JobState]>,
    mine: &[(usize, &Job)],
    todo: usize,
    sets: &[EvalSet],
) {
    println!(
        "sweep `{}`: {} jobs in all, {} in this shard, {} to run",
        cfg.name,
        jobs.len(),
        mine.len(),
        if keys.is_some() { todo } else { mine.len() }
    );
    println!("results folder: {}", cfg.results.display());
    for (n, (i, j)) in mine.iter().enumerate() {
        match (keys.map(|k| &k[*i]), states.map(|s| &s[n])) {
            (Some(k), Some(state)) => println!(
                "  [{i:>3}] {:<40} key {k} {}",
                j.label(),
                match state {
                    JobState::Done => "done".to_string(),
                    JobState::Todo => "todo".to_string(),
                    JobState::Damaged(why) => format!("todo: damaged record, run again ({why})"),
                }
            ),
            _ => println!("  [{i:>3}] {:<40} key ? (data not readable) todo", j.label()),
        }
    }
    for (s, d) in sets.iter().zip(&cfg.datasets) {
        println!(
            "  dataset {:<16} {:>7} images, {} classes, root {}{}{}{}",
            d.name(),
            s.items.len(),
            s.classes.len(),
            s.root.display(),
            s.container.as_ref().map_or(String::new(), |c| format!(" ({})", c.describe())),
            if s.empty_classes.is_empty() {
                String::new()
            } else {
                format!(", {} empty class folder(s) allowed", s.empty_classes.len())
            },
            if s.unreadable.is_empty() {
                String::new()
            } else {
                format!(", {} unreadable entries", s.unreadable.len())
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Numerics, SweepIdentity};

    fn config(coop_extra: &str) -> SweepConfig {
        toml::from_str(&format!(
            "name = \"t\"\nresults = \"r\"\nclasses = \"c\"\ndatasets = []\n\
             [[models]]\nname = \"m\"\npath = \"m.safetensors\"\n\
             [coop]\ntrain_root = \"train\"\nlambdas = [0.0, 1.0]\nseeds = [1, 2]\n{coop_extra}"
        ))
        .unwrap()
    }

    fn identity() -> SweepIdentity {
        SweepIdentity {
            numerics: Numerics::from_config("cpu", "f32").unwrap(),
            strict: false,
            convert_order: Default::default(),
            classes: "classes".into(),
            datasets: vec![],
            set_items: vec![],
            dataset_names: None,
            models: [("m".to_string(), "checkpoint".to_string())].into(),
            model_numerics: [("m".to_string(), "numerics".to_string())].into(),
            templates: Default::default(),
            train: [("imagenet".to_string(), "train".to_string())].into(),
        }
    }

    /// `name_scores` crosses λ > 0 (λ = 0 once: the score is not in its loss); every job has its
    /// own key, and the max jobs keep the keys of a sweep that does not name the setting.
    #[test]
    fn name_scores_cross_lambda_with_their_own_keys() {
        let plain = plan(&config("")).unwrap();
        let crossed = plan(&config("name_scores = [\"max\", \"mean\", \"min\", \"mean\"]\n")).unwrap();
        let labels: Vec<String> = crossed.iter().map(Job::label).collect();
        assert_eq!(
            labels,
            [
                "m coop λ=0 seed=1",
                "m coop λ=0 seed=2",
                "m coop λ=1 seed=1",
                "m coop λ=1 seed=2",
                "m coop λ=1 name_score=mean seed=1",
                "m coop λ=1 name_score=mean seed=2",
                "m coop λ=1 name_score=min seed=1",
                "m coop λ=1 name_score=min seed=2",
            ]
        );
        let ident = identity();
        let keys = ident.keys(&crossed).unwrap();
        assert_eq!(keys.iter().collect::<std::collections::BTreeSet<_>>().len(), keys.len());
        assert_eq!(ident.keys(&plain).unwrap(), keys[..4]);
        assert_eq!(plan(&config("name_scores = [\"max\"]\n")).unwrap(), plain);
        let only_mean = plan(&config("name_scores = [\"mean\"]\n")).unwrap();
        assert!(matches!(&only_mean[0], Job::Coop { train, .. } if train.loss.name_score == NameScore::Max));
        assert!(matches!(&only_mean[2], Job::Coop { train, .. } if train.loss.name_score == NameScore::Mean));
        let e = plan(&config("name_scores = []\n")).unwrap_err().to_string();
        assert!(e.contains("name_scores is empty"), "{e}");
        let bad = "train_root = \"t\"\nlambdas = [1.0]\nname_scores = [\"median\"]\n";
        assert!(toml::from_str::<crate::sweep::CoopSweep>(bad).is_err());
    }

    /// `coop.shots` and `coop.train` are axes: each (training set, shots) its own jobs and
    /// keys, ImageNet 1-shot keeping the keys of a sweep that names neither.
    #[test]
    fn shots_and_training_sets_are_axes_with_their_own_keys() {
        let with = |extra: &str| -> SweepConfig {
            let mut c = config(extra);
            c.datasets = toml::from_str::<SweepConfig>(
                "name = \"t\"\nresults = \"r\"\nclasses = \"c\"\nmodels = []\n\
                 [[datasets]]\nkind = \"imagenet\"\nroot = \"i\"\n[[datasets]]\nkind = \"eurosat\"\nroot = \"e\"\n\
                 [[datasets]]\nname = \"v2\"\nkind = \"imagenet-v2\"\nroot = \"v\"\n",
            )
            .unwrap()
            .datasets;
            c
        };
        let plain = plan(&with("")).unwrap();
        let crossed = plan(&with("shots = [1, 2]\ntrain = [\"imagenet\", \"eurosat\"]\n")).unwrap();
        let labels: Vec<String> = crossed.iter().map(Job::label).collect();
        assert_eq!(labels.len(), 16);
        assert_eq!(labels[..4], plain.iter().map(Job::label).collect::<Vec<_>>()[..]);
        assert_eq!(labels[4], "m coop shots=2 λ=0 seed=1");
        assert_eq!(labels[8], "m coop train=eurosat λ=0 seed=1");
        assert_eq!(labels[15], "m coop train=eurosat shots=2 λ=1 seed=2");
        let on: Vec<(&str, usize)> = crossed.iter().filter_map(Job::trained_on).collect();
        assert_eq!(on[0], ("imagenet", 1));
        assert_eq!(on[7], ("imagenet", 2));
        assert_eq!(on[12], ("eurosat", 2));
        assert!(matches!(&crossed[8], Job::Coop { train_root, .. } if train_root == std::path::Path::new("e")));
        let mut ident = identity();
        ident.train.insert("eurosat".into(), "eurosat train".into());
        let keys = ident.keys(&crossed).unwrap();
        assert_eq!(keys.iter().collect::<std::collections::BTreeSet<_>>().len(), keys.len());
        assert_eq!(ident.keys(&plain).unwrap(), keys[..4], "ImageNet 1-shot keys as before");
        let content = ident.content(&crossed[8]).unwrap();
        assert!(
            content.contains("\"train_dataset\":\"eurosat\"") && content.contains("eurosat train"),
            "{content}"
        );
        assert!(!ident.content(&crossed[0]).unwrap().contains("train_dataset"));
        // One shot count given as a number plans as the list of it.
        assert_eq!(plan(&with("shots = 2\n")).unwrap(), plan(&with("shots = [2]\n")).unwrap());

        for (extra, says) in [
            ("shots = [1, 1]\n", "`coop.shots` lists 1 twice"),
            ("train = [\"eurosat\", \"eurosat\"]\n", "`coop.train` lists eurosat twice"),
            ("train = [\"pets\"]\n", "`coop.train` names `pets`, which is neither"),
            ("train = [\"v2\"]\n", "`coop.train` names `v2`, a imagenet-v2 entry"),
            ("shots = []\n", "`coop.shots` is empty"),
        ] {
            let e = format!("{:#}", plan(&with(extra)).unwrap_err());
            assert!(e.contains(says), "{extra}: {e}");
        }
        let mut no_root = with("train = [\"eurosat\"]\n");
        no_root.coop.as_mut().unwrap().train_root = None;
        assert_eq!(
            plan(&no_root).unwrap().len(),
            4,
            "ImageNet's root only where ImageNet is trained on"
        );
        no_root.coop.as_mut().unwrap().train = None;
        assert!(format!("{:#}", plan(&no_root).unwrap_err()).contains("sets no `train_root`"));
    }

    /// `epochs = "coop"`: CoOp's schedule per job, by shots and training set.
    #[test]
    fn the_coop_schedule_sets_each_jobs_epochs() {
        let mut c = config("shots = [1, 2, 4, 8, 16]\nepochs = \"coop\"\ntrain = [\"imagenet\", \"eurosat\"]\n");
        c.coop.as_mut().unwrap().lambdas = vec![0.0];
        c.coop.as_mut().unwrap().seeds = vec![1];
        c.datasets = toml::from_str::<SweepConfig>(
            "name = \"t\"\nresults = \"r\"\nclasses = \"c\"\nmodels = []\n[[datasets]]\nkind = \"eurosat\"\nroot = \"e\"\n",
        )
        .unwrap()
        .datasets;
        let epochs: Vec<(String, usize, usize)> = plan(&c)
            .unwrap()
            .iter()
            .map(|j| match j {
                Job::Coop { train, .. } => {
                    let (on, k) = j.trained_on().unwrap();
                    (on.to_string(), k, train.optim.epochs)
                }
                _ => unreachable!(),
            })
            .collect();
        let want: Vec<(String, usize, usize)> = [1, 2, 4, 8, 16]
            .iter()
            .map(|&k| ("imagenet".to_string(), k, 50))
            .chain(
                [(1, 50), (2, 100), (4, 100), (8, 200), (16, 200)]
                    .iter()
                    .map(|&(k, e)| ("eurosat".to_string(), k, e)),
            )
            .collect();
        assert_eq!(epochs, want);
        c.coop.as_mut().unwrap().shots = Some(ShotsSetting::Many(vec![5]));
        let e = format!("{:#}", plan(&c).unwrap_err());
        assert!(e.contains("no schedule for 5 shots") && e.contains("`coop.shots` lists 5"), "{e}");
        assert!(toml::from_str::<CoopSweep>("lambdas = [0.0]\nepochs = \"cop\"\n").is_err());
    }
}
