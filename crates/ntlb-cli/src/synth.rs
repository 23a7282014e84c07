//! `ntlb generate-synth`, `ntlb pretrain-synth`, `ntlb demo`: the embedded default world.

use std::path::{Path, PathBuf};

use anyhow::Result;
use ntlb_synth::pretrain::{pretrain, PretrainConfig};
use ntlb_synth::world::{generate, WorldSpec};

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Where the world goes.
    #[arg(long, default_value = "datasets/synth")]
    out: PathBuf,
    #[arg(long)]
    seed: Option<u64>,
}

pub fn generate_world(a: GenerateArgs) -> Result<i32> {
    let mut spec = WorldSpec::default();
    if let Some(s) = a.seed {
        spec.seed = s;
    }
    let t = std::time::Instant::now();
    let n = generate(&a.out, &spec)?;
    println!("wrote {n} images to {} in {:.1} s", a.out.display(), t.elapsed().as_secs_f64());
    Ok(0)
}

#[derive(clap::Args)]
pub struct PretrainArgs {
    /// Output folder (Hugging Face layout + manifest.json).
    #[arg(long, default_value = "models/synth-clip")]
    out: PathBuf,
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    max_minutes: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
}

pub fn pretrain_synth(a: PretrainArgs) -> Result<i32> {
    let mut cfg = PretrainConfig::default();
    if let Some(s) = a.steps {
        cfg.steps = s;
    }
    if let Some(m) = a.max_minutes {
        cfg.max_minutes = m;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    let m = pretrain(&a.out, &cfg, |p| {
        if p.step % 50 == 0 || p.zero_shot_val.is_some() {
            eprintln!(
                "step {:>5} loss {:.4} temperature {:.1} {} ({:.0} s)",
                p.step,
                p.loss,
                p.temperature,
                p.zero_shot_val.map_or(String::new(), |z| format!("zero-shot val {z:.1}%")),
                p.seconds
            );
        }
    })?;
    println!(
        "trained {} steps in {:.1} min; zero-shot top-1 on fresh photos: {:.1}% (chance {:.1}%); saved to {}",
        m.steps_done,
        m.minutes,
        m.zero_shot_val_top1,
        100.0 / ntlb_synth::world::n_classes() as f64,
        a.out.display()
    );
    Ok(0)
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Sweep config of the demo.
    #[arg(long, default_value = "configs/demo.toml")]
    config: PathBuf,
    /// Results folder (default: the config's).
    #[arg(long)]
    results: Option<PathBuf>,
}

pub fn demo(a: DemoArgs) -> Result<i32> {
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

pub fn regress(a: RegressArgs) -> Result<i32> {
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
        println!("wrote {} baseline rows ({} of the rerun) to {}", rows.len(), rerun.len(), a.baseline.display());
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
