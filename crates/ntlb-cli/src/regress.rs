//! `ntlb regress`: the short demo rerun checked against the committed baseline, or the baseline
//! written.

use std::path::PathBuf;

use anyhow::Result;
use ntlb_synth::world::{generate, WorldSpec};

#[derive(clap::Args)]
pub struct RegressArgs {
    /// The demo's sweep config.
    #[arg(long, default_value = "configs/demo.toml")]
    config: PathBuf,
    #[arg(long, default_value = "results/baselines/demo.csv")]
    baseline: PathBuf,
    /// Seeds of the short rerun (a subset of the demo's).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    seeds: Vec<u64>,
    /// λ values of the short rerun (a subset of the demo's; one must be 0 for the score gap).
    #[arg(long, value_delimiter = ',', default_value = "0,1")]
    lambdas: Vec<f64>,
    /// Class-name score aggregations of the short rerun, crossed with its λ > 0 (each must be
    /// in the demo's `name_scores`, so that the baseline has its rows).
    #[arg(long, value_delimiter = ',', default_value = "max,mean,min")]
    name_scores: Vec<ntlb_prompt::objective::NameScore>,
    /// Allowed move of any top-1 / top-5, in percentage points.
    #[arg(long, default_value_t = ntlb_eval::regress::DEFAULT_TOLERANCES.top1)]
    tol_top1: f64,
    /// Allowed move of any class-name score.
    #[arg(long, default_value_t = ntlb_eval::regress::DEFAULT_TOLERANCES.name_score)]
    tol_score: f64,
    /// Where the rerun writes its results.
    #[arg(long, default_value = "results/regress")]
    results: PathBuf,
    /// Instead of checking, write the baseline file from these results folders (repeatable;
    /// the demo's, `results/demo`) and the rerun's own rows (its λ > 0 rows of the other
    /// class-name score aggregations, which the demo does not train). A row two folders hold
    /// must agree in every digit.
    #[arg(long)]
    write_baseline_from: Vec<PathBuf>,
    /// cpu, cuda or cuda:N for the rerun (overrides the config). A baseline holds the numbers
    /// of one device: compare a GPU rerun with a baseline made on a GPU.
    #[arg(long)]
    device: Option<String>,
}

pub fn run(a: RegressArgs) -> Result<i32> {
    let mut cfg = ntlb_eval::sweep::SweepConfig::read(&a.config)?;
    cfg.results = a.results.clone();
    if let Some(d) = a.device {
        ntlb_clip::device::parse_device(&d)?;
        cfg.device = d;
    }
    let world = cfg.data_root.clone().unwrap_or_else(|| PathBuf::from("datasets/synth"));
    if !world.join("world.json").exists() {
        generate(&world, &WorldSpec::default())?;
    }
    let rerun = ntlb_eval::regress::rerun(cfg, &a.seeds, &a.lambdas, &a.name_scores, true)?;
    if !a.write_baseline_from.is_empty() {
        // The rerun's own rows too: the demo trains no other aggregation than max.
        let mut dirs = a.write_baseline_from.clone();
        dirs.push(a.results.clone());
        let rows = ntlb_eval::regress::merge_baselines(&dirs)?;
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in &rows {
            w.serialize(r)?;
        }
        ntlb_core::atomic::write_atomic(&a.baseline, &w.into_inner()?)?;
        println!(
            "wrote {} baseline rows ({} of the rerun) to {}",
            rows.len(),
            rerun.len(),
            a.baseline.display()
        );
        return Ok(0);
    }
    let baseline = ntlb_eval::regress::read_baseline(&a.baseline)?;
    let tol = ntlb_eval::regress::Tolerances {
        top1: a.tol_top1,
        name_score: a.tol_score,
    };
    let problems = ntlb_eval::regress::compare(&baseline, &rerun, tol);
    if problems.is_empty() {
        println!(
            "regression OK: {} rows of {} (top-1/top-5 within {} points, class-name scores within {}, and both gaps)",
            rerun.len(),
            a.baseline.display(),
            tol.top1,
            tol.name_score
        );
        Ok(0)
    } else {
        for p in &problems {
            eprintln!("REGRESSION {p}");
        }
        eprintln!("{} check(s) failed against {}", problems.len(), a.baseline.display());
        Ok(1)
    }
}
