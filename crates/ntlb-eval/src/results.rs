//! Result records: one JSON per finished job (`runs/<key>.json`), and the sweep's tables
//! (`results.parquet` through polars, `results.csv`) rebuilt from them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::relevance_maps::RelevanceMap;
use crate::sweep::Job;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub sweep: String,
    pub run_key: String,
    pub model: String,
    /// `zero-shot`, `zero-shot-ensemble-<name>` or `coop`.
    pub method: String,
    pub template: Option<String>,
    pub lambda: Option<f64>,
    pub seed: Option<u64>,
    pub dataset: String,
    pub top1: f64,
    pub top5: f64,
    pub mean_per_class: f64,
    pub n_images: usize,
    pub n_failed: usize,
}

/// The manifest of one finished job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub key: String,
    pub job: Job,
    pub sweep: String,
    pub git_commit: Option<String>,
    pub checkpoint_sha256: String,
    pub seconds: f64,
    pub rows: Vec<ResultRow>,
    pub failed_images: Vec<(PathBuf, String)>,
    pub relevance: Option<Vec<RelevanceMap>>,
    /// Preprocessing of the features (the feature-cache key's `preprocessing` and `convert_order`).
    #[serde(default)]
    pub preprocessing: Vec<String>,
}

pub fn read_runs(results: &Path) -> Result<Vec<RunRecord>> {
    let dir = results.join("runs");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p)?).with_context(|| format!("{}: not a run record", p.display())))
        .collect()
}

pub fn rows_of(runs: &[RunRecord]) -> Vec<ResultRow> {
    runs.iter().flat_map(|r| r.rows.clone()).collect()
}

fn frame(rows: &[ResultRow]) -> PolarsResult<DataFrame> {
    let s = |f: fn(&ResultRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
    DataFrame::new(
        rows.len(),
        vec![
            Column::new("sweep".into(), s(|r| r.sweep.clone())),
            Column::new("run_key".into(), s(|r| r.run_key.clone())),
            Column::new("model".into(), s(|r| r.model.clone())),
            Column::new("method".into(), s(|r| r.method.clone())),
            Column::new("template".into(), rows.iter().map(|r| r.template.clone()).collect::<Vec<_>>()),
            Column::new("lambda".into(), rows.iter().map(|r| r.lambda).collect::<Vec<_>>()),
            Column::new("seed".into(), rows.iter().map(|r| r.seed).collect::<Vec<_>>()),
            Column::new("dataset".into(), s(|r| r.dataset.clone())),
            Column::new("top1".into(), rows.iter().map(|r| r.top1).collect::<Vec<_>>()),
            Column::new("top5".into(), rows.iter().map(|r| r.top5).collect::<Vec<_>>()),
            Column::new("mean_per_class".into(), rows.iter().map(|r| r.mean_per_class).collect::<Vec<_>>()),
            Column::new("n_images".into(), rows.iter().map(|r| r.n_images as u64).collect::<Vec<_>>()),
            Column::new("n_failed".into(), rows.iter().map(|r| r.n_failed as u64).collect::<Vec<_>>()),
        ],
    )
}

/// Rebuild `results.parquet` and `results.csv` from the run records (atomically). With
/// `keep`, only runs with those keys count: records of jobs no longer in the sweep (an edited
/// config) stay on disk but never mix into its tables.
pub fn write_tables(results: &Path, keep: Option<&std::collections::BTreeSet<String>>) -> Result<usize> {
    let runs: Vec<RunRecord> = read_runs(results)?
        .into_iter()
        .filter(|r| keep.is_none_or(|k| k.contains(&r.key)))
        .collect();
    let rows = rows_of(&runs);
    let mut df = frame(&rows)?;
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).finish(&mut df)?;
    ntlb_clip::io::write_atomic(&results.join("results.parquet"), &buf)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in &rows {
        w.serialize(r)?;
    }
    ntlb_clip::io::write_atomic(&results.join("results.csv"), &w.into_inner()?)?;
    Ok(rows.len())
}

/// Read `results.parquet` back into rows (the report's input).
pub fn read_table(results: &Path) -> Result<Vec<ResultRow>> {
    let path = results.join("results.parquet");
    let file = std::fs::File::open(&path).with_context(|| format!("{}: no results table (run `ntlb sweep` first)", path.display()))?;
    let df = ParquetReader::new(file).finish()?;
    let n = df.height();
    let st = |c: &str| -> Result<Vec<Option<String>>> { Ok(df.column(c)?.str()?.iter().map(|v| v.map(String::from)).collect()) };
    let f64s = |c: &str| -> Result<Vec<Option<f64>>> { Ok(df.column(c)?.f64()?.iter().collect()) };
    let u64s = |c: &str| -> Result<Vec<Option<u64>>> { Ok(df.column(c)?.u64()?.iter().collect()) };
    let (sweep, key, model, method, template, dataset) = (
        st("sweep")?,
        st("run_key")?,
        st("model")?,
        st("method")?,
        st("template")?,
        st("dataset")?,
    );
    let (lambda, top1, top5, mpc) = (f64s("lambda")?, f64s("top1")?, f64s("top5")?, f64s("mean_per_class")?);
    let (seed, ni, nf) = (u64s("seed")?, u64s("n_images")?, u64s("n_failed")?);
    Ok((0..n)
        .map(|i| ResultRow {
            sweep: sweep[i].clone().unwrap_or_default(),
            run_key: key[i].clone().unwrap_or_default(),
            model: model[i].clone().unwrap_or_default(),
            method: method[i].clone().unwrap_or_default(),
            template: template[i].clone(),
            lambda: lambda[i],
            seed: seed[i],
            dataset: dataset[i].clone().unwrap_or_default(),
            top1: top1[i].unwrap_or(f64::NAN),
            top5: top5[i].unwrap_or(f64::NAN),
            mean_per_class: mpc[i].unwrap_or(f64::NAN),
            n_images: ni[i].unwrap_or(0) as usize,
            n_failed: nf[i].unwrap_or(0) as usize,
        })
        .collect())
}

/// Join the run records of several result folders (shards) into `out` and rebuild its tables.
pub fn merge(out: &Path, shards: &[PathBuf]) -> Result<usize> {
    std::fs::create_dir_all(out.join("runs"))?;
    for s in shards {
        for r in read_runs(s)? {
            let dest = out.join("runs").join(format!("{}.json", r.key));
            if dest.exists() {
                let existing: RunRecord = serde_json::from_str(&std::fs::read_to_string(&dest)?)?;
                if existing.rows != r.rows {
                    bail!(
                        "run {} differs between {} and {}: refusing to merge",
                        r.key,
                        s.display(),
                        dest.display()
                    );
                }
                continue;
            }
            ntlb_clip::io::write_atomic(&dest, serde_json::to_string_pretty(&r)?.as_bytes())?;
        }
    }
    write_tables(out, None)
}
