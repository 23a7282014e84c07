//! `ntlb report`: tables (Markdown, LaTeX, CSV) and figures (PNG and SVG) from a sweep's results.
//!
//! `aggregate`: the numbers (polars group-by over the results table); `tables` and `figures`
//! write them.

mod aggregate;
mod figures;
mod tables;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::results::{read_runs, read_table, RunRecord};

/// Write every table and figure of a results folder into `out`; returns the files written.
pub fn run_report(results: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let rows = read_table(results)?;
    if rows.is_empty() {
        anyhow::bail!("{}: the results table is empty", results.display());
    }
    let lines = aggregate::summarize(&rows)?;
    let md = tables::write_tables(out, &rows, &lines)?;
    let mut files = vec![
        out.join("summary.md"),
        out.join("summary.tex"),
        out.join("summary.csv"),
        out.join("effects.csv"),
    ];
    // Only the runs of the table (stale records of an edited sweep stay out of the figures too).
    let keys: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.run_key.as_str()).collect();
    let runs: Vec<RunRecord> = read_runs(results)?.into_iter().filter(|r| keys.contains(r.key.as_str())).collect();
    files.extend(figures::write_figures(out, &rows, &lines, &aggregate::datasets_of(&rows), &runs)?);
    println!("{md}");
    Ok(files)
}
