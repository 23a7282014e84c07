//! `ntlb sweep`, `ntlb merge`, `ntlb report`.

use std::path::PathBuf;

use anyhow::Result;
use ntlb_eval::shard::{parse_shard_arg, resolve};
use ntlb_eval::sweep::{run_sweep, SweepConfig, SweepOptions};

#[derive(clap::Args)]
pub struct SweepArgs {
    /// Sweep config (TOML), e.g. configs/imagenet.toml.
    config: PathBuf,
    /// Print the plan and its cost estimate; run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run only part i of n (0-based), or `auto`: the shard of this Slurm array task
    /// (SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT) or Kubernetes
    /// Indexed Job (JOB_COMPLETION_INDEX of --shard-count).
    #[arg(long)]
    shard: Option<String>,
    /// Number of shards: needed by `--shard auto` under Kubernetes (the Job's completions);
    /// checked against `--shard i/n` and Slurm's array count, refused without `--shard`.
    #[arg(long, env = "NTLB_SHARD_COUNT")]
    shard_count: Option<usize>,
    /// Feature cache folder (overrides the config's `cache`); share it between array tasks.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Seconds between progress lines when stderr is not a terminal (batch logs).
    #[arg(long, default_value_t = 30.0)]
    log_every: f64,
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
    if let Some(c) = a.cache {
        cfg.cache = Some(c);
    }
    ntlb_eval::progress::set_log_every(a.log_every);
    let shard = resolve(a.shard.as_deref().map(parse_shard_arg).transpose()?, a.shard_count)?;
    if let Some((i, n)) = shard {
        eprintln!("shard {i} of {n}");
    }
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
    /// Shard result folders (none: the shards wrote into OUT itself; rebuild its tables).
    shards: Vec<PathBuf>,
}

pub fn merge(a: MergeArgs) -> Result<i32> {
    let m = ntlb_eval::results::merge_all(&a.out, &a.shards)?;
    for (dir, key, label) in &m.stale {
        eprintln!("left out (not in the sweep's plan): {} {key} {label}", dir.display());
    }
    println!(
        "merged {} folder(s): {} runs, {} run files copied, {} stale record(s) left out, {} result rows in {}",
        a.shards.len().max(1),
        m.runs,
        m.files_copied,
        m.stale.len(),
        m.rows,
        a.out.display()
    );
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
