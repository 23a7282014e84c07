//! What a sweep runs: its jobs in a fixed order, their content keys, where each job's result
//! goes, and the listing `--dry-run` prints.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ntlb_data::classes::ClassList;
use ntlb_data::variants::EvalSet;
use ntlb_prompt::train::TrainConfig;
use serde::{Deserialize, Serialize};

use super::{ModelEntry, SweepConfig, ZeroShotSweep};
use crate::identity::SweepIdentity;

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

/// The result record of the job with this key; a job whose record exists is done.
pub fn run_path(cfg: &SweepConfig, key: &str) -> PathBuf {
    cfg.results.join("runs").join(format!("{key}.json"))
}

/// The key of every job. Keys hash the data, so they exist only once the data is readable:
/// a dry run goes on without them (`None`), a real run fails.
pub(super) fn job_keys(
    cfg: &SweepConfig,
    classes: &ClassList,
    sets: &[EvalSet],
    jobs: &[Job],
    dry_run: bool,
) -> Result<Option<Vec<String>>> {
    if sets.is_empty() && !cfg.datasets.is_empty() {
        return Ok(None);
    }
    match SweepIdentity::compute(cfg, classes, sets).and_then(|ident| ident.keys(jobs)) {
        Ok(k) => Ok(Some(k)),
        Err(e) if dry_run => {
            println!("job keys unknown until the inputs are readable: {e:#}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The `--dry-run` listing: counts, every job of this shard with its key and state, the datasets.
pub(super) fn print_plan(cfg: &SweepConfig, jobs: &[Job], keys: Option<&[String]>, mine: &[(usize, &Job)], todo: usize, sets: &[EvalSet]) {
    println!(
        "sweep `{}`: {} jobs in all, {} in this shard, {} to run",
        cfg.name,
        jobs.len(),
        mine.len(),
        if keys.is_some() { todo } else { mine.len() }
    );
    println!("results folder: {}", cfg.results.display());
    for (i, j) in mine {
        match keys.map(|k| &k[*i]) {
            Some(k) => println!(
                "  [{i:>3}] {:<40} key {k} {}",
                j.label(),
                if run_path(cfg, k).exists() { "done" } else { "todo" }
            ),
            None => println!("  [{i:>3}] {:<40} key ? (data not readable) todo", j.label()),
        }
    }
    for s in sets {
        println!(
            "  dataset {:<16} {:>7} images, {} classes, root {}",
            s.kind.name(),
            s.items.len(),
            s.classes.len(),
            s.root.display()
        );
    }
}
