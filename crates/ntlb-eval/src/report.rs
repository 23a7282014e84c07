//! `ntlb report`: tables (Markdown, LaTeX, CSV) and figures (PNG and SVG) from a sweep's results.
//!
//! `aggregate`: the numbers (polars group-by over the results table); `tables` and `figures`
//! write them.

mod aggregate;
mod average;
mod figures;
mod tables;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::results::{read_runs_of, read_table, table_rows, RunRecord};

/// Write every table and figure of a results folder into `out`; returns the files written.
pub fn run_report(results: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let table = results.join("results.parquet");
    let rows = match read_table(results) {
        Ok(r) => r,
        Err(e) if table.exists() => anyhow::bail!(
            "{}: not a readable results table ({e:#}): rebuild it from the run records with `ntlb merge --out {}`",
            table.display(),
            results.display()
        ),
        Err(e) => return Err(e),
    };
    if rows.is_empty() {
        anyhow::bail!("{}: the results table is empty", results.display());
    }
    check_measured(&table, &rows)?;
    check_one_training_setting(&table, &rows)?;
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
        out.join("average.csv"),
    ];
    files.extend(figures::write_figures(out, &rows, &lines, &aggregate::datasets_of(&rows), &runs)?);
    println!("{md}");
    Ok(files)
}

/// `results.parquet` is rebuilt from the run records; a table that disagrees with them (changed
/// bytes, or records changed since) is refused, naming both.
fn check_table(results: &Path, rows: &[crate::results::ResultRow], runs: &[RunRecord]) -> Result<()> {
    let table = results.join("results.parquet");
    let want = table_rows(results, runs)?;
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

/// Every row is an accuracy over some images, and a number: a row over no image (or a NaN)
/// would be printed as a score of 0.00 (or averaged into one); it is refused, naming the row
/// and the run record it came from.
/// The report's tables and figures pair CoOp rows by (dataset, λ, seed): rows of several
/// training datasets or shot counts would be averaged as seeds of one run. Until the report
/// has per-setting tables, such a table is refused, naming what it holds.
fn check_one_training_setting(table: &Path, rows: &[crate::results::ResultRow]) -> Result<()> {
    let settings: std::collections::BTreeSet<(String, usize)> = rows
        .iter()
        .filter(|r| !r.method.is_zero_shot())
        .map(|r| (r.train_dataset.clone().unwrap_or_default(), r.shots.unwrap_or_default()))
        .collect();
    if settings.len() > 1 {
        let list: Vec<String> = settings.iter().map(|(d, k)| format!("{d} {k}-shot")).collect();
        anyhow::bail!(
            "{}: CoOp rows of {} training settings ({}): the report pairs runs by dataset, λ and seed only, and would average them as seeds; \
             report one setting at a time (a sweep per training dataset and shot count)",
            table.display(),
            settings.len(),
            list.join(", ")
        );
    }
    Ok(())
}

fn check_measured(table: &Path, rows: &[crate::results::ResultRow]) -> Result<()> {
    for (i, r) in rows.iter().enumerate() {
        let what = if r.n_images == 0 {
            "is an accuracy over no image (every image unreadable)".to_string()
        } else if let Some((name, v)) = [("top1", r.top1), ("top5", r.top5), ("mean_per_class", r.mean_per_class)]
            .into_iter()
            .find(|(_, v)| !v.is_finite())
        {
            format!("has {name} = {v}")
        } else {
            continue;
        };
        anyhow::bail!(
            "{}: row {i} ({} {} {}, run record {}.json) {what}: no score to report; rerun its job",
            table.display(),
            r.model,
            r.method,
            r.dataset,
            r.run_key
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::ResultRow;

    #[test]
    fn a_damaged_results_table_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("results.parquet"), b"PAR1 not a table").unwrap();
        let e = run_report(dir.path(), &dir.path().join("report")).unwrap_err().to_string();
        let table = dir.path().join("results.parquet");
        assert!(
            e.starts_with(&format!("{}: not a readable results table", table.display())) && e.contains("ntlb merge --out"),
            "{e}"
        );
    }

    /// A row over no image would be printed as 0.00, a NaN averaged into a mean: both refused.
    #[test]
    fn rows_over_no_image_or_with_nan_are_refused() {
        let table = Path::new("r/results.parquet");
        let good = ResultRow::for_test("zero-shot", None, None, "imagenet", 50.0, 75.0, None);
        check_measured(table, std::slice::from_ref(&good)).unwrap();
        let empty = ResultRow {
            n_images: 0,
            top1: 0.0,
            top5: 0.0,
            ..good.clone()
        };
        let e = check_measured(table, &[good.clone(), empty]).unwrap_err().to_string();
        assert!(
            e.contains("row 1 (m zero-shot imagenet, run record k.json) is an accuracy over no image"),
            "{e}"
        );
        let nan = ResultRow { top5: f64::NAN, ..good };
        let e = check_measured(table, &[nan]).unwrap_err().to_string();
        assert!(e.contains("has top5 = NaN"), "{e}");
    }

    /// CoOp rows of two shot counts or training datasets are never averaged as seeds of one run.
    #[test]
    fn rows_of_several_training_settings_are_refused() {
        let table = Path::new("r/results.parquet");
        let one = ResultRow::for_test("coop", Some(0.0), Some(1), "imagenet", 50.0, 75.0, None);
        let zs = ResultRow::for_test("zero-shot", None, None, "imagenet", 50.0, 75.0, None);
        check_one_training_setting(table, &[one.clone(), one.clone(), zs]).unwrap();
        let two = ResultRow {
            shots: Some(2),
            ..one.clone()
        };
        let e = check_one_training_setting(table, &[one.clone(), two]).unwrap_err().to_string();
        assert!(e.contains("2 training settings (imagenet 1-shot, imagenet 2-shot)"), "{e}");
        let other = ResultRow {
            train_dataset: Some("eurosat".into()),
            ..one.clone()
        };
        assert!(check_one_training_setting(table, &[one, other]).is_err());
    }
}
