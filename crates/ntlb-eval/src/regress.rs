//! Regression against a committed baseline (`results/baselines/demo.csv`): every accuracy of a
//! rerun must stay within a stated tolerance of the baseline row with the same identity.

use std::path::Path;

use anyhow::{Context, Result};

use crate::results::ResultRow;

/// Percentage points of top-1 a rerun may move (float rounding across machines and thread
/// counts changes a handful of borderline images at most).
pub const DEFAULT_TOLERANCE: f64 = 1.5;

fn identity(r: &ResultRow) -> (String, String, Option<String>, Option<String>, Option<u64>, String) {
    (
        r.model.clone(),
        r.method.clone(),
        r.template.clone(),
        r.lambda.map(|l| format!("{l}")),
        r.seed,
        r.dataset.clone(),
    )
}

pub fn read_baseline(path: &Path) -> Result<Vec<ResultRow>> {
    let mut rdr = csv::Reader::from_path(path).with_context(|| format!("{}: cannot read baseline", path.display()))?;
    rdr.deserialize()
        .enumerate()
        .map(|(i, r)| r.with_context(|| format!("{}: row {}", path.display(), i + 2)))
        .collect()
}

/// Rows of `rerun` that moved more than `tolerance` points from the baseline, or that the
/// baseline lacks.
pub fn compare(baseline: &[ResultRow], rerun: &[ResultRow], tolerance: f64) -> Vec<String> {
    let mut problems = Vec::new();
    for r in rerun {
        match baseline.iter().find(|b| identity(b) == identity(r)) {
            None => problems.push(format!("no baseline row for {:?}", identity(r))),
            Some(b) => {
                let d = r.top1 - b.top1;
                if d.abs() > tolerance || !d.is_finite() {
                    problems.push(format!(
                        "{:?}: top-1 {:.2} vs baseline {:.2} ({:+.2} points, tolerance {tolerance})",
                        identity(r),
                        r.top1,
                        b.top1,
                        d
                    ));
                }
            }
        }
    }
    if rerun.is_empty() {
        problems.push("the rerun produced no rows".into());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, top1: f64) -> ResultRow {
        ResultRow {
            sweep: "s".into(),
            run_key: "k".into(),
            model: "m".into(),
            method: method.into(),
            template: None,
            lambda: Some(1.0),
            seed: Some(1),
            dataset: "imagenet".into(),
            top1,
            top5: 0.0,
            mean_per_class: 0.0,
            n_images: 1,
            n_failed: 0,
        }
    }

    #[test]
    fn moves_past_tolerance_and_missing_rows_are_flagged() {
        let base = vec![row("coop", 50.0)];
        assert!(compare(&base, &[row("coop", 51.0)], 1.5).is_empty());
        assert_eq!(compare(&base, &[row("coop", 52.0)], 1.5).len(), 1);
        assert_eq!(compare(&base, &[row("zero-shot", 50.0)], 1.5).len(), 1);
        assert_eq!(compare(&base, &[row("coop", f64::NAN)], 1.5).len(), 1);
        assert_eq!(compare(&base, &[], 1.5).len(), 1);
    }
}
