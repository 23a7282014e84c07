//! `ntlb report`: tables (Markdown, LaTeX, CSV) and figures (PNG and SVG) from a sweep's results.
//!
//! `aggregate`: the numbers (polars group-by over the results table); `tables` and `figures`
//! write them.

mod aggregate;
mod figures;
mod tables;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::results::{read_runs_of, read_table, rows_of, RunRecord};

/// Write every table and figure of a results folder into `out`; returns the files written.
pub fn run_report(results: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let rows = read_table(results)?;
    if rows.is_empty() {
        anyhow::bail!("{}: the results table is empty", results.display());
    }
    // Only the runs of the table (stale records of an edited sweep stay out of the figures too),
    // each checked against its digest; the table must be what they hold, row for row.
    let keys: std::collections::BTreeSet<String> = rows.iter().map(|r| r.run_key.clone()).collect();
    let runs: Vec<RunRecord> = read_runs_of(results, &keys)?;
    check_table(results, &rows, &runs)?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let lines = aggregate::summarize(&rows)?;
    let md = tables::write_tables(out, &rows, &lines, &notes(&runs))?;
    let mut files = vec![
        out.join("summary.md"),
        out.join("summary.tex"),
        out.join("summary.csv"),
        out.join("effects.csv"),
    ];
    files.extend(figures::write_figures(out, &rows, &lines, &aggregate::datasets_of(&rows), &runs)?);
    println!("{md}");
    Ok(files)
}

/// `results.parquet` is rebuilt from the run records; a table that disagrees with them (changed
/// bytes, or records changed since) is refused, naming both.
fn check_table(results: &Path, rows: &[crate::results::ResultRow], runs: &[RunRecord]) -> Result<()> {
    let table = results.join("results.parquet");
    let want = rows_of(runs);
    if want.len() != rows.len() {
        anyhow::bail!(
            "{}: {} rows, its run records in {} hold {}: rebuild it with `ntlb merge --out {}`",
            table.display(),
            rows.len(),
            results.join("runs").display(),
            want.len(),
            results.display()
        );
    }
    if let Some((i, (got, want))) = rows.iter().zip(&want).enumerate().find(|(_, (a, b))| a != b) {
        anyhow::bail!(
            "{}: row {i} ({} {} {}) differs from its run record {}.json: rebuild it with `ntlb merge --out {}`",
            table.display(),
            got.model,
            got.method,
            got.dataset,
            want.run_key,
            results.display()
        );
    }
    Ok(())
}

/// What the table's numbers were computed without: class folders that held no image
/// (`allow_empty_classes`), per dataset, and unreadable images.
fn notes(runs: &[RunRecord]) -> Vec<String> {
    let mut empty: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> = Default::default();
    for r in runs {
        for (d, classes) in &r.empty_classes {
            empty.entry(d).or_default().extend(classes.iter().map(String::as_str));
        }
    }
    let mut notes: Vec<String> = empty
        .iter()
        .map(|(d, c)| {
            format!(
                "{d}: evaluated without {} empty class folder(s) (allow_empty_classes): {}",
                c.len(),
                c.iter().copied().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    let failed: std::collections::BTreeSet<&Path> = runs.iter().flat_map(|r| r.failed_images.iter().map(|(p, _)| p.as_path())).collect();
    if !failed.is_empty() {
        notes.push(format!(
            "{} image(s) could not be read and are not counted (failed_images in the run records)",
            failed.len()
        ));
    }
    notes
}
