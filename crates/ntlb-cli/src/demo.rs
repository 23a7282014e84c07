//! `ntlb demo`: the demo sweep on the embedded world (generated when missing), then its report.

use std::path::{Path, PathBuf};

use anyhow::Result;
use ntlb_synth::world::{generate, WorldSpec};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Sweep config of the demo.
    #[arg(long, default_value = "configs/demo.toml")]
    config: PathBuf,
    /// Results folder (default: the config's).
    #[arg(long)]
    results: Option<PathBuf>,
}

pub fn run(a: DemoArgs) -> Result<i32> {
    let cfg = ntlb_eval::sweep::SweepConfig::read(&a.config)?;
    let world = cfg.data_root.clone().unwrap_or_else(|| PathBuf::from("datasets/synth"));
    if !Path::new(&world).join("world.json").exists() {
        eprintln!("generating the synthetic world in {}", world.display());
        generate(&world, &WorldSpec::default())?;
    }
    let mut cfg = cfg;
    if let Some(r) = a.results {
        cfg.results = r;
    }
    let ran = ntlb_eval::sweep::run_sweep(
        &cfg,
        &ntlb_eval::sweep::SweepOptions {
            shard: None,
            dry_run: false,
            progress: true,
            max_jobs: None,
        },
    )?;
    eprintln!("{ran} job(s) run");
    for f in ntlb_eval::report::run_report(&cfg.results, &cfg.results.join("report"))? {
        println!("wrote {}", f.display());
    }
    Ok(0)
}
