//! `ntlb sweep`: models × datasets × methods (zero-shot templates and ensembles, CoOp with
//! λ = 0 and λ > 0) × seeds. Each job has a key from the content it depends on
//! ([`crate::identity`]); a finished job's result file is written atomically and skipped on
//! rerun, so a killed sweep loses nothing. `--shard i/n` (or `auto` in a Slurm array) runs one
//! contiguous block of the plan; `merge` joins the shards' results and writes the tables.
//!
//! `config`: the TOML schema and its defaults; `plan`: the jobs, their keys and what is left
//! to run; `run`: the run loop, one function per job kind. The `--dry-run` cost model is
//! [`crate::estimate`].

mod config;
mod plan;
mod run;
mod train_sets;

pub use config::{
    coop_schedule_epochs, open_datasets, CoopSweep, DatasetEntry, EpochsSetting, ModelEntry, ScheduleRule, ShotsSetting, SweepConfig,
    ZeroShotSweep, IMAGENET_TRAIN,
};
pub use plan::{job_state, plan, run_path, Job, JobState};
pub use run::{dry_run, run_sweep, SweepOptions};
pub use train_sets::{open_train_sets, split_train_set};
