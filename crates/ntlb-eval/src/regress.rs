//! Regression against a committed baseline (`results/baselines/demo.csv`). A rerun fails when
//! any of these moves past its tolerance:
//! - every row's top-1 and top-5 (zero-shot per template, ensembles, CoOp start and learned);
//! - every CoOp row's class-name score (the paper's relevance score of the true class);
//! - the CoOp − start gap in top-1 per (λ, seed, dataset): what training bought;
//! - the λ > 0 − λ = 0 gap in class-name score per seed: what the explainability loss bought.
//!
//! CoOp rows of every class-name score aggregation (`max`, `mean`, `min`) are checked alike,
//! each against its own baseline rows (the method names the aggregation).
//!
//! The two gaps are differences of checked values, so a change that shifts both ends together
//! still passes the first checks only if it leaves the method's effect alone.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use ntlb_prompt::objective::NameScore;

use crate::method::Method;
use crate::results::{ResultRow, RowIdentity};

/// Allowed moves, set from measured noise (docs/demo.md, "Regression check"). The rerun is deterministic
/// on one machine; what another machine can change is float rounding. Measured on the demo's
/// seed-1 rerun: 1 vs 2 threads moved nothing; a different float summation order in the
/// objective (chunk 64 → 16, a stand-in for other CPUs' kernels) moved no top-1 or top-5 and
/// no class-name score by more than 1e-6. So top-1/top-5 may not move by one image on any set
/// (0.21 points on val is the smallest step), and a score by 100× the measured 1e-6.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Percentage points of top-1 / top-5.
    pub top1: f64,
    /// Absolute class-name score (the score is a share of relevance, in [0, 1]).
    pub name_score: f64,
}

pub const DEFAULT_TOLERANCES: Tolerances = Tolerances {
    top1: 0.1,
    name_score: 1e-4,
};

fn identity(r: &ResultRow) -> RowIdentity {
    r.identity()
}

/// A baseline file; one written before dataset entries had names (no `dataset_kind` column)
/// reads with each row's kind its `dataset`.
pub fn read_baseline(path: &Path) -> Result<Vec<ResultRow>> {
    let mut rdr = csv::Reader::from_path(path).with_context(|| format!("{}: cannot read baseline", path.display()))?;
    rdr.deserialize()
        .enumerate()
        .map(|(i, r)| {
            let mut r: ResultRow = r.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
            r.fill_defaults();
            Ok(r)
        })
        .collect()
}

/// The rows of several results folders for one baseline, in folder order, each row once: a
/// row (same identity) in two folders must be the same row, else the error names both.
pub fn merge_baselines(dirs: &[std::path::PathBuf]) -> Result<Vec<ResultRow>> {
    let tables = dirs
        .iter()
        .map(|d| Ok((d.as_path(), crate::results::read_table(d)?)))
        .collect::<Result<Vec<_>>>()?;
    merge_rows(tables)
}

fn merge_rows(tables: Vec<(&Path, Vec<ResultRow>)>) -> Result<Vec<ResultRow>> {
    let mut out: Vec<ResultRow> = Vec::new();
    let mut from: BTreeMap<RowIdentity, (usize, &Path)> = BTreeMap::new();
    for (dir, rows) in tables {
        for r in rows {
            match from.get(&identity(&r)) {
                Some(&(i, first)) if out[i] != r => anyhow::bail!(
                    "{:?}: {} and {} disagree ({:?} vs {:?}): not results of one code and machine",
                    identity(&r),
                    first.display(),
                    dir.display(),
                    out[i],
                    r
                ),
                Some(_) => {}
                None => {
                    from.insert(identity(&r), (out.len(), dir));
                    out.push(r);
                }
            }
        }
    }
    Ok(out)
}

fn differs(a: f64, b: f64, tol: f64) -> bool {
    !(a - b).is_finite() || (a - b).abs() > tol
}

/// top-1 of CoOp minus its starting context, per (model, method, λ, seed, dataset): the method
/// names the class-name score aggregation, so each aggregation's training is checked.
fn training_gaps(rows: &[ResultRow]) -> BTreeMap<(String, String, String, u64, String), f64> {
    let mut out = BTreeMap::new();
    for r in rows.iter() {
        let Method::Coop(agg) = r.method else { continue };
        let init = Method::CoopInit(agg);
        let start = rows
            .iter()
            .find(|s| s.method == init && s.model == r.model && s.lambda == r.lambda && s.seed == r.seed && s.dataset == r.dataset);
        if let (Some(s), Some(l), Some(seed)) = (start, r.lambda, r.seed) {
            out.insert(
                (r.model.clone(), r.method.to_string(), format!("{l}"), seed, r.dataset.clone()),
                r.top1 - s.top1,
            );
        }
    }
    out
}

/// Class-name score of λ > 0 (each aggregation) minus λ = 0 (trained once, with no score in
/// its loss), per (model, method, λ, seed) (ImageNet val rows).
fn score_gaps(rows: &[ResultRow]) -> BTreeMap<(String, String, String, u64), f64> {
    let trained = |r: &&ResultRow| r.dataset_kind == "imagenet" && matches!(r.method, Method::Coop(_));
    let mut out = BTreeMap::new();
    for r in rows.iter().filter(trained).filter(|r| r.lambda.is_some_and(|l| l > 0.0)) {
        let zero = rows
            .iter()
            .filter(trained)
            .find(|z| z.model == r.model && z.seed == r.seed && z.lambda == Some(0.0));
        if let (Some(a), Some(b), Some(seed)) = (r.name_score, zero.and_then(|z| z.name_score), r.seed) {
            out.insert(
                (r.model.clone(), r.method.to_string(), format!("{}", r.lambda.unwrap_or(0.0)), seed),
                a - b,
            );
        }
    }
    out
}

/// What moved past the tolerances, one line each (empty: the rerun passes).
pub fn compare(baseline: &[ResultRow], rerun: &[ResultRow], tol: Tolerances) -> Vec<String> {
    let mut problems = Vec::new();
    if rerun.is_empty() {
        problems.push("the rerun produced no rows".into());
    }
    for r in rerun {
        let Some(b) = baseline.iter().find(|b| identity(b) == identity(r)) else {
            problems.push(format!("no baseline row for {:?}", identity(r)));
            continue;
        };
        for (what, x, y) in [("top-1", r.top1, b.top1), ("top-5", r.top5, b.top5)] {
            if differs(x, y, tol.top1) {
                problems.push(format!(
                    "{:?}: {what} {x:.2} vs baseline {y:.2} ({:+.2} points, tolerance {})",
                    identity(r),
                    x - y,
                    tol.top1
                ));
            }
        }
        match (r.name_score, b.name_score) {
            (None, None) => {}
            (Some(x), Some(y)) if !differs(x, y, tol.name_score) => {}
            (x, y) => problems.push(format!(
                "{:?}: class-name score {x:?} vs baseline {y:?} (tolerance {})",
                identity(r),
                tol.name_score
            )),
        }
    }
    let base_gaps = training_gaps(baseline);
    for (k, g) in training_gaps(rerun) {
        match base_gaps.get(&k) {
            Some(&bg) if !differs(g, bg, 2.0 * tol.top1) => {}
            bg => problems.push(format!(
                "{k:?}: CoOp − start top-1 gap {g:+.2} vs baseline {bg:?} (tolerance {})",
                2.0 * tol.top1
            )),
        }
    }
    let base_scores = score_gaps(baseline);
    let rerun_scores = score_gaps(rerun);
    let trained_with_score = |r: &ResultRow| matches!(r.method, Method::Coop(_)) && r.lambda.is_some_and(|l| l > 0.0);
    if rerun.iter().any(trained_with_score) && rerun_scores.is_empty() {
        problems.push("the rerun has CoOp with λ > 0 but no λ = 0 run to compare its class-name score with".into());
    }
    for (k, g) in rerun_scores {
        match base_scores.get(&k) {
            Some(&bg) if !differs(g, bg, 2.0 * tol.name_score) => {}
            bg => problems.push(format!(
                "{k:?}: class-name score gap λ > 0 − λ = 0 {g:+.4} vs baseline {bg:?} (tolerance {})",
                2.0 * tol.name_score
            )),
        }
    }
    problems
}

/// The short rerun of `make regress`: the sweep `cfg` restricted to `seeds`, `lambdas` and the
/// class-name score aggregations `name_scores` (crossed with λ > 0), written to `cfg.results`;
/// returns its rows.
pub fn rerun(
    mut cfg: crate::sweep::SweepConfig,
    seeds: &[u64],
    lambdas: &[f64],
    name_scores: &[NameScore],
    progress: bool,
) -> Result<Vec<ResultRow>> {
    if let Some(c) = &mut cfg.coop {
        c.seeds = seeds.to_vec();
        c.lambdas = lambdas.to_vec();
        c.name_scores = Some(name_scores.to_vec());
    }
    crate::sweep::run_sweep(
        &cfg,
        &crate::sweep::SweepOptions {
            shard: None,
            dry_run: false,
            progress,
            max_jobs: None,
        },
    )?;
    crate::results::read_table(&cfg.results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, lambda: f64, top1: f64, score: Option<f64>) -> ResultRow {
        ResultRow::for_test(method, Some(lambda), Some(1), "imagenet", top1, 90.0, score)
    }

    fn base() -> Vec<ResultRow> {
        vec![
            row("coop-init", 0.0, 40.0, Some(0.2)),
            row("coop", 0.0, 60.0, Some(0.3)),
            row("coop-init", 1.0, 40.0, Some(0.2)),
            row("coop", 1.0, 61.0, Some(0.5)),
        ]
    }

    const T: Tolerances = Tolerances {
        top1: 0.5,
        name_score: 0.01,
    };

    #[test]
    fn an_identical_rerun_passes_and_missing_or_nan_rows_fail() {
        assert!(compare(&base(), &base(), T).is_empty());
        assert!(!compare(&base(), &[], T).is_empty());
        let mut r = base();
        r[1].top1 = f64::NAN;
        assert!(!compare(&base(), &r, T).is_empty());
        r = base();
        r[0].method = Method::ZeroShot;
        assert!(compare(&base(), &r, T).iter().any(|p| p.contains("no baseline row")));
    }

    /// Rows of another aggregation are checked against their own baseline rows, with their own
    /// training and score gaps (λ = 0 is one run, whatever the aggregation).
    #[test]
    fn each_name_score_aggregation_is_checked_on_its_own() {
        let mut b = base();
        b.push(row("coop-init name_score=mean", 1.0, 40.0, Some(0.2)));
        b.push(row("coop name_score=mean", 1.0, 62.0, Some(0.6)));
        assert!(compare(&b, &b, T).is_empty());
        assert_eq!(training_gaps(&b).len(), 3);
        assert_eq!(score_gaps(&b).len(), 2);
        // The mean run trains as the max run would: its rows move, the max rows do not.
        let mut r = b.clone();
        r[5].top1 = 60.0;
        r[5].name_score = Some(0.5);
        let p = compare(&b, &r, T);
        assert!(
            p.iter().all(|p| p.contains("name_score=mean")) && p.iter().any(|p| p.contains("λ > 0 − λ = 0")),
            "{p:?}"
        );
        assert!(p.iter().any(|p| p.contains("CoOp − start")), "{p:?}");
        // A rerun with an aggregation the baseline lacks fails by name.
        assert!(compare(&base(), &b, T)
            .iter()
            .any(|p| p.contains("no baseline row") && p.contains("name_score=mean")));
    }

    #[test]
    fn baselines_merge_each_row_once_and_refuse_disagreeing_copies() {
        let (demo, rerun) = (Path::new("results/demo"), Path::new("results/regress"));
        let mut more = base()[2..].to_vec();
        more.push(row("coop name_score=min", 1.0, 59.0, Some(0.4)));
        let merged = merge_rows(vec![(demo, base()), (rerun, more.clone())]).unwrap();
        assert_eq!(merged.len(), 5);
        assert_eq!(merged[4].method.to_string(), "coop name_score=min");
        more[0].top1 += 1e-9;
        let e = merge_rows(vec![(demo, base()), (rerun, more)]).unwrap_err().to_string();
        assert!(e.contains("results/demo and results/regress disagree"), "{e}");
    }

    #[test]
    fn each_checked_quantity_fails_on_its_own() {
        // A context that never moves: CoOp equals its start.
        let mut r = base();
        r[1].top1 = 40.0;
        r[3].top1 = 40.0;
        assert!(compare(&base(), &r, T).iter().any(|p| p.contains("CoOp − start")));
        // The explainability term ignored: λ = 1 scores as λ = 0.
        r = base();
        r[3].name_score = Some(0.3);
        let p = compare(&base(), &r, T);
        assert!(p.iter().any(|p| p.contains("λ > 0 − λ = 0")), "{p:?}");
        // A score that is no longer measured.
        r = base();
        r[1].name_score = None;
        assert!(compare(&base(), &r, T).iter().any(|p| p.contains("class-name score")));
        // top-5 alone.
        r = base();
        r[2].top5 = 80.0;
        assert!(compare(&base(), &r, T).iter().any(|p| p.contains("top-5")));
        // Within tolerance.
        r = base();
        r[1].top1 += 0.4;
        r[1].name_score = Some(0.305);
        assert!(compare(&base(), &r, T).is_empty());
    }

    /// A baseline written before the few-shot axes (no `shots` / `train_dataset` columns) reads
    /// its CoOp rows as 1-shot ImageNet: today's rows of those jobs match them, a 2-shot or
    /// another training set's row is another row.
    #[test]
    fn old_baselines_read_as_one_shot_imagenet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.csv");
        std::fs::write(
            &path,
            "sweep,run_key,model,method,template,lambda,seed,dataset,top1,top5,mean_per_class,n_images,n_failed,name_score\n\
             s,k,m,coop,,1.0,1,imagenet,61.0,90.0,0.0,1,0,0.5\n\
             s,k,m,zero-shot,a {}.,,,imagenet,50.0,90.0,0.0,1,0,\n",
        )
        .unwrap();
        let old = read_baseline(&path).unwrap();
        assert_eq!((old[0].shots, old[0].train_dataset.as_deref()), (Some(1), Some("imagenet")));
        assert_eq!(
            (old[1].shots, old[1].train_dataset.as_deref()),
            (None, None),
            "zero-shot trains on nothing"
        );
        let now = ResultRow {
            mean_per_class: 0.0,
            ..row("coop", 1.0, 61.0, Some(0.5))
        };
        assert_eq!(old[0].identity(), now.identity());
        assert!(!compare(&old[..1], std::slice::from_ref(&now), T)
            .iter()
            .any(|p| p.contains("no baseline row")));
        for other in [
            ResultRow {
                shots: Some(2),
                ..now.clone()
            },
            ResultRow {
                train_dataset: Some("eurosat".into()),
                ..now.clone()
            },
        ] {
            assert!(compare(&old[..1], &[other], T).iter().any(|p| p.contains("no baseline row")));
        }
    }
}
