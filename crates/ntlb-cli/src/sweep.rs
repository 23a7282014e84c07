//! `ntlb sweep`, `ntlb merge`, `ntlb report`.

use std::path::PathBuf;

use anyhow::Result;
use ntlb_eval::sweep::{parse_shard, run_sweep, SweepConfig, SweepOptions};

#[derive(clap::Args)]
pub struct SweepArgs {
    /// Sweep config (TOML), e.g. configs/imagenet.toml.
    config: PathBuf,
    /// Print the plan and its cost estimate; run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run only part i of n (0-based), e.g. `--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`.
    #[arg(long)]
    shard: Option<String>,
    /// Only these models (names from the config).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Results folder (overrides the config's `results`).
    #[arg(long)]
    results: Option<PathBuf>,
    /// Folder holding the datasets (relative dataset roots are read under it).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Folder holding the checkpoints (relative model paths are read under it).
    #[arg(long)]
    checkpoints: Option<PathBuf>,
    /// cpu, cuda or cuda:N (overrides the config).
    #[arg(long)]
    device: Option<String>,
    /// f32, bf16 or f16 (overrides the config; half precision on GPU).
    #[arg(long)]
    precision: Option<String>,
    /// An unreadable image stops the run (default: counted and listed in the run record).
    #[arg(long)]
    strict: bool,
}

pub fn sweep(a: SweepArgs) -> Result<i32> {
    let mut cfg = SweepConfig::read(&a.config)?;
    cfg.apply_models(&a.models)?;
    cfg.set_roots(a.data, a.checkpoints);
    if let Some(r) = a.results {
        cfg.results = r;
    }
    if let Some(d) = a.device {
        cfg.device = d;
    }
    cfg.strict |= a.strict;
    if let Some(p) = a.precision {
        cfg.precision = p;
    }
    let shard = a.shard.as_deref().map(parse_shard).transpose()?;
    let ran = run_sweep(
        &cfg,
        &SweepOptions {
            shard,
            dry_run: a.dry_run,
            progress: true,
            max_jobs: None,
        },
    )?;
    if !a.dry_run {
        println!("{ran} job(s) run; results in {}", cfg.results.display());
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// Folder to merge into.
    #[arg(long)]
    out: PathBuf,
    /// Shard result folders.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
}

pub fn merge(a: MergeArgs) -> Result<i32> {
    let rows = ntlb_eval::results::merge(&a.out, &a.shards)?;
    println!("merged {} shard(s): {rows} result rows in {}", a.shards.len(), a.out.display());
    Ok(0)
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// A sweep's results folder.
    results: PathBuf,
    /// Where tables and figures go (default: RESULTS/report).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn report(a: ReportArgs) -> Result<i32> {
    let out = a.out.unwrap_or_else(|| a.results.join("report"));
    let files = ntlb_eval::report::run_report(&a.results, &out)?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(0)
}
