//! The numbers of the report, aggregated with polars: top-1 and the class-name score per model,
//! method and dataset (mean ± std over seeds), the zero-shot template spread, the paired CoOp
//! gaps (trained − start, λ > 0 − λ = 0, same seed), the points of the λ figures and the
//! training curves (mean over seeds per epoch).

use std::collections::BTreeMap;

use anyhow::Result;
use polars::prelude::*;
use polars_lazy::prelude::*;

use ntlb_prompt::objective::NameScore;

use crate::method::{Method, COOP_START};
use crate::results::{EpochPoint, ResultRow, RunRecord};

/// Mean, sample standard deviation (0 for a single value) and number of values.
pub(crate) type Stat = (f64, f64, usize);

/// The two-sided 95 % Student-t interval of a mean, `mean ± t(0.975, n − 1) · std / √n`;
/// `None` under two values. Over paired differences (same seed: same split, same initial
/// context) this is the paired t interval.
pub(crate) fn t_interval95(s: &Stat) -> Option<(f64, f64)> {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let (m, sd, n) = *s;
    if n < 2 {
        return None;
    }
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?.inverse_cdf(0.975);
    let half = t * sd / (n as f64).sqrt();
    Some((m - half, m + half))
}

/// One line of the summary table: a method and its top-1 per dataset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SummaryLine {
    pub model: String,
    pub method: String,
    pub cells: BTreeMap<String, Stat>,
    /// CoOp lines: the class-name score on held-out val.
    pub name_score: Option<Stat>,
}

/// A kind's column: its place in the dataset registry (the paper's five, then CoOp's ten).
fn dataset_rank(d: &str) -> usize {
    let all = ntlb_data::registry::DatasetKind::ALL;
    all.iter().position(|k| k.name() == d).unwrap_or(all.len())
}

/// The datasets of the rows (the entries' names), in the paper's order of their kinds, by
/// name within a kind (others after, by name).
pub(crate) fn datasets_of(rows: &[ResultRow]) -> Vec<String> {
    let mut d: Vec<(usize, String)> = rows.iter().map(|r| (dataset_rank(&r.dataset_kind), r.dataset.clone())).collect();
    d.sort();
    d.dedup();
    d.into_iter().map(|(_, name)| name).collect()
}

/// The set whose rows the class-name score is read from: a run's score is measured on held-out
/// ImageNet val and written on each of its dataset rows, so one set's rows count it once per
/// run, whatever the sets are named; the first set (in [`datasets_of`] order) with a score.
fn score_set(rows: &[ResultRow]) -> String {
    datasets_of(rows)
        .into_iter()
        .find(|d| rows.iter().any(|r| &r.dataset == d && r.name_score.is_some()))
        .unwrap_or_default()
}

/// The models of the rows, by name.
pub(crate) fn models_of(rows: &[ResultRow]) -> Vec<String> {
    let mut m: Vec<String> = rows.iter().map(|r| r.model.clone()).collect();
    m.sort();
    m.dedup();
    m
}

/// The λ values of a model's CoOp runs, ascending.
pub(crate) fn lambdas_of(rows: &[ResultRow], model: &str) -> Vec<f64> {
    lambdas_of_method(rows, model, &Method::COOP)
}

/// The λ of one model's rows of `method`, ascending.
fn lambdas_of_method(rows: &[ResultRow], model: &str, method: &Method) -> Vec<f64> {
    let mut l: Vec<f64> = rows
        .iter()
        .filter(|r| r.model == model && &r.method == method)
        .filter_map(|r| r.lambda)
        .collect();
    l.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    l.dedup();
    l
}

/// The class-name score aggregations one model's CoOp runs trained with, the paper's (max) first.
fn aggregations_of(rows: &[ResultRow], model: &str) -> Vec<NameScore> {
    let mut a: Vec<NameScore> = rows
        .iter()
        .filter(|r| r.model == model)
        .filter_map(|r| match r.method {
            Method::Coop(agg) => Some(agg),
            _ => None,
        })
        .collect();
    a.sort_by_key(|agg| NameScore::NAMES.iter().position(|n| *n == agg.name()));
    a.dedup();
    a
}

/// The rows as a frame: the columns the aggregations read, and `label` (the summary method).
fn frame(rows: &[ResultRow]) -> PolarsResult<LazyFrame> {
    let df = df!(
        "model" => rows.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(),
        "method" => rows.iter().map(|r| r.method.to_string()).collect::<Vec<_>>(),
        "label" => rows.iter().map(|r| r.method.label(r.lambda)).collect::<Vec<_>>(),
        "dataset" => rows.iter().map(|r| r.dataset.as_str()).collect::<Vec<_>>(),
        "lambda" => rows.iter().map(|r| r.lambda).collect::<Vec<_>>(),
        "seed" => rows.iter().map(|r| r.seed).collect::<Vec<_>>(),
        "top1" => rows.iter().map(|r| r.top1).collect::<Vec<_>>(),
        "name_score" => rows.iter().map(|r| r.name_score).collect::<Vec<_>>(),
    )?;
    Ok(df.lazy())
}

/// Mean, sample std and count of `value` per group of `keys`, groups in order of first appearance.
fn mean_std_by(lf: LazyFrame, keys: &[&str], value: &str) -> PolarsResult<DataFrame> {
    lf.group_by_stable(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
        .agg([
            col(value).mean().alias("mean"),
            // One value: no spread (polars gives null).
            col(value).std(1).fill_null(lit(0.0)).alias("std"),
            col(value).len().cast(DataType::UInt64).alias("n"),
        ])
        .collect()
}

fn strs(df: &DataFrame, c: &str) -> PolarsResult<Vec<String>> {
    Ok(df.column(c)?.str()?.iter().map(|v| v.unwrap_or_default().to_string()).collect())
}

fn f64s(df: &DataFrame, c: &str) -> PolarsResult<Vec<Option<f64>>> {
    Ok(df.column(c)?.f64()?.iter().collect())
}

/// The (mean, std, n) columns of a [`mean_std_by`] result.
fn stats(df: &DataFrame) -> PolarsResult<Vec<Stat>> {
    let (m, s) = (f64s(df, "mean")?, f64s(df, "std")?);
    let n: Vec<Option<u64>> = df.column("n")?.u64()?.iter().collect();
    Ok((0..df.height())
        .map(|i| (m[i].unwrap_or(f64::NAN), s[i].unwrap_or(f64::NAN), n[i].unwrap_or(0) as usize))
        .collect())
}

/// The paper's comparison: zero-shot ensembles, single templates (mean and best), CoOp's
/// start and CoOp per λ (mean ± std over seeds), in that order per model.
pub(crate) fn summarize(rows: &[ResultRow]) -> Result<Vec<SummaryLine>> {
    let lf = frame(rows)?;
    // The starting context depends on the seed only: count it once per seed, not once per λ
    // (or name-score aggregation).
    let init = lf
        .clone()
        .filter(col("label").eq(lit(COOP_START)))
        .unique_stable_generic(Some(vec![col("model"), col("seed"), col("dataset")]), UniqueKeepStrategy::First);
    let counted = concat([lf.filter(col("label").neq(lit(COOP_START))), init], UnionArgs::default())?;
    let mut groups: BTreeMap<(String, String), BTreeMap<String, Stat>> = BTreeMap::new();
    let cells = mean_std_by(counted.clone(), &["model", "label", "dataset"], "top1")?;
    let (model, label, dataset) = (strs(&cells, "model")?, strs(&cells, "label")?, strs(&cells, "dataset")?);
    for (i, s) in stats(&cells)?.into_iter().enumerate() {
        groups
            .entry((model[i].clone(), label[i].clone()))
            .or_default()
            .insert(dataset[i].clone(), s);
    }
    let best = counted
        .clone()
        .filter(col("method").eq(lit(Method::ZeroShot.to_string())))
        .group_by_stable([col("model"), col("dataset")])
        .agg([col("top1").max()])
        .collect()?;
    let (model, dataset, top1) = (strs(&best, "model")?, strs(&best, "dataset")?, f64s(&best, "top1")?);
    for i in 0..best.height() {
        groups
            .entry((model[i].clone(), "zero-shot, single template: best".into()))
            .or_default()
            .insert(dataset[i].clone(), (top1[i].unwrap_or(f64::NAN), 0.0, 1));
    }
    let scores = mean_std_by(
        counted.filter(col("dataset").eq(lit(score_set(rows))).and(col("name_score").is_not_null())),
        &["model", "label"],
        "name_score",
    )?;
    let (model, label) = (strs(&scores, "model")?, strs(&scores, "label")?);
    let scores: BTreeMap<(String, String), Stat> = model.into_iter().zip(label).zip(stats(&scores)?).collect();
    let mut lines: Vec<SummaryLine> = groups
        .into_iter()
        .map(|(key, cells)| SummaryLine {
            name_score: scores.get(&key).copied(),
            model: key.0,
            method: key.1,
            cells,
        })
        .collect();
    // Each line's place from the method and λ of its rows ([`Method::order`]); the best single
    // template is zero-shot.
    let order: BTreeMap<String, (u8, f64)> = rows.iter().map(|r| (r.method.label(r.lambda), r.method.order(r.lambda))).collect();
    let rank = |m: &str| -> (u8, f64) { order.get(m).copied().unwrap_or((0, 0.0)) };
    lines.sort_by(|a, b| {
        let (ra, rb) = (rank(&a.method), rank(&b.method));
        (a.model.as_str(), ra.0)
            .cmp(&(b.model.as_str(), rb.0))
            .then(ra.1.total_cmp(&rb.1))
            .then(a.method.cmp(&b.method))
    });
    Ok(lines)
}

/// One row of the effects table: (λ, method) minus (λ', method') of the same seed.
pub(crate) struct Gap {
    pub label: String,
    /// `Some(λ)` for λ − (λ = 0) on the same seed, the effect of the explainability loss.
    pub lambda_vs_zero: Option<f64>,
    /// Top-1 difference per dataset (datasets without a pair are absent).
    pub top1: BTreeMap<String, Stat>,
    /// Class-name score difference on ImageNet val.
    pub name_score: Option<Stat>,
    /// The figure legend of a λ effect (λ and the aggregation).
    pub legend: String,
}

/// The paper's premises and effects for one model.
pub(crate) struct Effects {
    pub model: String,
    /// Spread of the single templates' top-1 (max − min) per dataset.
    pub spread: BTreeMap<String, f64>,
    /// CoOp trained − start per λ, then λ − 0 per λ > 0.
    pub gaps: Vec<Gap>,
}

/// The differences of (λ, method) and (λ0, method0) of one model, paired by seed and dataset,
/// over seeds in ascending order; the class-name score's on the rows of `score_set`.
fn gap(lf: &LazyFrame, score_set: &str, model: &str, label: String, (l, mth): (f64, &Method), (l0, mth0): (f64, &Method)) -> Result<Gap> {
    let side = |l: f64, m: &Method| {
        lf.clone().filter(
            col("model")
                .eq(lit(model))
                .and(col("method").eq(lit(m.to_string())))
                .and(col("lambda").eq(lit(l))),
        )
    };
    let other = side(l0, mth0).select([
        col("seed"),
        col("dataset"),
        col("top1").alias("top1_0"),
        col("name_score").alias("name_score_0"),
    ]);
    let paired = side(l, mth)
        .join(
            other,
            [col("seed"), col("dataset")],
            [col("seed"), col("dataset")],
            JoinArgs::new(JoinType::Inner),
        )
        .with_columns([
            (col("top1") - col("top1_0")).alias("d_top1"),
            (col("name_score") - col("name_score_0")).alias("d_score"),
        ])
        .sort(["seed"], SortMultipleOptions::default().with_maintain_order(true));
    let top1 = mean_std_by(paired.clone(), &["dataset"], "d_top1")?;
    let score = mean_std_by(
        paired.filter(col("dataset").eq(lit(score_set)).and(col("d_score").is_not_null())),
        &["dataset"],
        "d_score",
    )?;
    Ok(Gap {
        label,
        lambda_vs_zero: (*mth0 == Method::COOP && l0 == 0.0 && l != 0.0).then_some(l),
        top1: strs(&top1, "dataset")?.into_iter().zip(stats(&top1)?).collect(),
        name_score: stats(&score)?.into_iter().next(),
        legend: format!("λ = {l}"),
    })
}

/// Per model: the template spread, what CoOp training bought over its starting context, and
/// what λ > 0 changed against λ = 0.
pub(crate) fn effects(rows: &[ResultRow]) -> Result<Vec<Effects>> {
    let lf = frame(rows)?;
    let score_set = score_set(rows);
    let spread = lf
        .clone()
        .filter(col("method").eq(lit(Method::ZeroShot.to_string())))
        .group_by_stable([col("model"), col("dataset")])
        .agg([(col("top1").max() - col("top1").min()).alias("spread")])
        .collect()?;
    let (s_model, s_dataset, s_value) = (strs(&spread, "model")?, strs(&spread, "dataset")?, f64s(&spread, "spread")?);
    let mut out = Vec::new();
    for model in models_of(rows) {
        let mut gaps = Vec::new();
        let aggs = aggregations_of(rows, &model);
        // "", or the aggregation when it is not the paper's max.
        let suffix = |agg: NameScore| {
            if agg == NameScore::Max {
                String::new()
            } else {
                format!(", name_score = {agg}")
            }
        };
        for &agg in &aggs {
            let (trained, start) = (Method::Coop(agg), Method::CoopInit(agg));
            for l in lambdas_of_method(rows, &model, &trained) {
                gaps.push(gap(
                    &lf,
                    &score_set,
                    &model,
                    format!("CoOp λ = {l}{}: trained − start", suffix(agg)),
                    (l, &trained),
                    (l, &start),
                )?);
            }
        }
        // λ = 0 has no class-name score in its loss: one run, the reference of every aggregation.
        for &agg in &aggs {
            let trained = Method::Coop(agg);
            for l in lambdas_of_method(rows, &model, &trained).into_iter().filter(|&l| l > 0.0) {
                let mut g = gap(
                    &lf,
                    &score_set,
                    &model,
                    format!("λ = {l}{} − λ = 0 (same seed)", suffix(agg)),
                    (l, &trained),
                    (0.0, &Method::COOP),
                )?;
                g.legend = format!("λ = {l}{}", suffix(agg));
                gaps.push(g);
            }
        }
        let spread = (0..spread.height())
            .filter(|&i| s_model[i] == model)
            .map(|i| (s_dataset[i].clone(), s_value[i].unwrap_or(f64::NAN)))
            .collect();
        out.push(Effects { model, spread, gaps });
    }
    Ok(out)
}

/// Mean ± std over seeds of `value` ("top1" or "name_score") for one model's rows of
/// `method`, per dataset and λ: (dataset, λ) → (mean, std).
pub(crate) fn over_seeds(rows: &[ResultRow], model: &str, method: &Method, value: &str) -> Result<BTreeMap<(String, u64), (f64, f64)>> {
    let lf = frame(rows)?.filter(
        col("model")
            .eq(lit(model))
            .and(col("method").eq(lit(method.to_string())))
            .and(col("lambda").is_not_null())
            .and(col(value).is_not_null()),
    );
    let df = mean_std_by(lf, &["dataset", "lambda"], value)?;
    let (dataset, lambda) = (strs(&df, "dataset")?, f64s(&df, "lambda")?);
    Ok(stats(&df)?
        .into_iter()
        .enumerate()
        .map(|(i, (m, s, _))| ((dataset[i].clone(), lambda[i].unwrap_or(f64::NAN).to_bits()), (m, s)))
        .collect())
}

/// A model's CoOp training curves (the paper's max name score), mean over seeds per λ and
/// epoch; λ in the order of its `{:08.3}` text, each with its epochs ascending.
pub(crate) fn mean_curves(runs: &[RunRecord], model: &str) -> Result<Vec<(f64, Vec<EpochPoint>)>> {
    let points: Vec<(f64, &EpochPoint)> = runs
        .iter()
        .filter_map(|r| match (&r.job, &r.curve) {
            (
                crate::sweep::Job::Coop {
                    model: m, lambda, train, ..
                },
                Some(curve),
            ) if m.name == model && train.loss.name_score.is_max() => Some((*lambda, curve)),
            _ => None,
        })
        .flat_map(|(l, curve)| curve.iter().map(move |p| (l, p)))
        .collect();
    let col_of = |f: fn(&EpochPoint) -> f64| points.iter().map(|(_, p)| f(p)).collect::<Vec<_>>();
    let df = df!(
        "key" => points.iter().map(|(l, _)| format!("{l:08.3}")).collect::<Vec<_>>(),
        "lambda" => points.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        "epoch" => points.iter().map(|(_, p)| p.epoch as u64).collect::<Vec<_>>(),
        "loss" => col_of(|p| p.loss),
        "ce" => col_of(|p| p.ce),
        "expl" => col_of(|p| p.expl),
        "acc" => col_of(|p| p.acc),
    )?;
    let means = df
        .lazy()
        .group_by_stable([col("key"), col("epoch")])
        .agg([
            col("lambda").first(),
            col("loss").mean(),
            col("ce").mean(),
            col("expl").mean(),
            col("acc").mean(),
        ])
        .sort(["key", "epoch"], SortMultipleOptions::default())
        .collect()?;
    let key = strs(&means, "key")?;
    let epoch: Vec<Option<u64>> = means.column("epoch")?.u64()?.iter().collect();
    let [lambda, loss, ce, expl, acc] = ["lambda", "loss", "ce", "expl", "acc"].map(|c| f64s(&means, c));
    let (lambda, loss, ce, expl, acc) = (lambda?, loss?, ce?, expl?, acc?);
    let mut out: Vec<(String, f64, Vec<EpochPoint>)> = Vec::new();
    for i in 0..means.height() {
        if out.last().is_none_or(|(k, _, _)| *k != key[i]) {
            out.push((key[i].clone(), lambda[i].unwrap_or(f64::NAN), Vec::new()));
        }
        out.last_mut().expect("pushed").2.push(EpochPoint {
            epoch: epoch[i].unwrap_or(0) as usize,
            loss: loss[i].unwrap_or(f64::NAN),
            ce: ce[i].unwrap_or(f64::NAN),
            expl: expl[i].unwrap_or(f64::NAN),
            acc: acc[i].unwrap_or(f64::NAN),
        });
    }
    Ok(out.into_iter().map(|(_, l, c)| (l, c)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paired_interval_is_students_t() {
        // t(0.975, 3) = 3.182446305284263 and t(0.975, 7) = 2.364624251592785 (scipy.stats.t.ppf).
        let (lo, hi) = t_interval95(&(2.5, 1.2909944487358056, 4)).unwrap();
        let half = 3.182446305284263 * 1.2909944487358056 / 2.0;
        assert!((lo - (2.5 - half)).abs() < 1e-9 && (hi - (2.5 + half)).abs() < 1e-9, "{lo} {hi}");
        let (lo, _) = t_interval95(&(0.0, 1.0, 8)).unwrap();
        assert!((lo + 2.364624251592785 / 8f64.sqrt()).abs() < 1e-9, "{lo}");
        assert_eq!(t_interval95(&(1.0, 0.0, 1)), None);
    }

    fn row(method: &str, lambda: Option<f64>, seed: Option<u64>, dataset: &str, top1: f64, name_score: Option<f64>) -> ResultRow {
        ResultRow::for_test(method, lambda, seed, dataset, top1, 0.0, name_score)
    }

    fn rows() -> Vec<ResultRow> {
        let mut r = vec![
            row("zero-shot", None, None, "imagenet", 10.0, None),
            row("zero-shot", None, None, "imagenet", 30.0, None),
            row("zero-shot-ensemble-all", None, None, "imagenet", 25.0, None),
        ];
        for (l, seed, top1, score) in [
            (10.0, 1, 20.0, 0.25),
            (0.0, 1, 40.0, 0.5),
            (0.0, 2, 50.0, 0.75),
            (3.0, 2, 44.0, 1.0),
        ] {
            // The starting context is the seed's, the same for every λ.
            r.push(row(
                "coop-init",
                Some(l),
                Some(seed),
                "imagenet",
                30.0 + seed as f64,
                Some(0.125 * seed as f64),
            ));
            r.push(row("coop", Some(l), Some(seed), "imagenet", top1, Some(score)));
        }
        r.push(row("coop", Some(0.0), Some(1), "imagenet-a", 8.0, None));
        r
    }

    #[test]
    fn summary_lines_aggregate_over_seeds_in_the_papers_order() {
        let lines = summarize(&rows()).unwrap();
        let methods: Vec<&str> = lines.iter().map(|l| l.method.as_str()).collect();
        assert_eq!(
            methods,
            [
                "zero-shot, ensemble of all templates",
                "zero-shot, single template: best",
                "zero-shot, single template: mean",
                "CoOp start: random context, before training",
                "CoOp (λ = 0)",
                "CoOp + explainability (λ = 3)",
                "CoOp + explainability (λ = 10)",
            ]
        );
        let cell = |i: usize| lines[i].cells["imagenet"];
        assert_eq!(cell(1), (30.0, 0.0, 1));
        assert_eq!((cell(2).0, cell(2).2), (20.0, 2));
        assert!((cell(2).1 - 200f64.sqrt()).abs() < 1e-12);
        // The start is counted once per seed (seeds 1 and 2), not once per (λ, seed).
        assert_eq!((cell(3).0, cell(3).2), (31.5, 2));
        let s = lines[3].name_score.unwrap();
        assert_eq!((s.0, s.2), (0.1875, 2));
        assert_eq!((cell(4).0, cell(4).2), (45.0, 2));
        assert!((cell(4).1 - 50f64.sqrt()).abs() < 1e-12);
        assert_eq!(lines[4].cells["imagenet-a"], (8.0, 0.0, 1));
        assert_eq!(lines[4].name_score.map(|s| (s.0, s.2)), Some((0.625, 2)));
        assert_eq!(cell(6), (20.0, 0.0, 1));
        assert!(lines[0].name_score.is_none());
    }

    /// Runs trained with another class-name score: their own line, the start still counted
    /// once per seed, and the max runs' gaps as they were.
    #[test]
    fn other_name_scores_get_their_own_line() {
        let mut r = rows();
        for (seed, top1) in [(1, 42.0), (2, 46.0)] {
            let init = 30.0 + seed as f64;
            r.push(row(
                "coop-init name_score=mean",
                Some(3.0),
                Some(seed),
                "imagenet",
                init,
                Some(0.125 * seed as f64),
            ));
            r.push(row("coop name_score=mean", Some(3.0), Some(seed), "imagenet", top1, Some(0.5)));
        }
        let lines = summarize(&r).unwrap();
        let methods: Vec<&str> = lines.iter().map(|l| l.method.as_str()).collect();
        assert_eq!(
            methods[3..],
            [
                "CoOp start: random context, before training",
                "CoOp (λ = 0)",
                "CoOp + explainability (λ = 3)",
                "CoOp + explainability, name score = mean (λ = 3)",
                "CoOp + explainability (λ = 10)",
            ]
        );
        assert_eq!((lines[3].cells["imagenet"].0, lines[3].cells["imagenet"].2), (31.5, 2));
        assert_eq!((lines[6].cells["imagenet"].0, lines[6].cells["imagenet"].2), (44.0, 2));
        let gaps = |r: &[ResultRow]| -> Vec<(String, Vec<(String, Stat)>)> {
            effects(r).unwrap()[0]
                .gaps
                .iter()
                .map(|g| (g.label.clone(), g.top1.clone().into_iter().collect()))
                .collect()
        };
        // The max runs' gaps as they were; the mean runs' own, paired with the one λ = 0 run.
        let (with, without) = (gaps(&r), gaps(&rows()));
        let (mean, max): (Vec<_>, Vec<_>) = with.into_iter().partition(|(l, _)| l.contains("name_score = mean"));
        assert_eq!(max, without);
        let labels: Vec<&str> = mean.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "CoOp λ = 3, name_score = mean: trained − start",
                "λ = 3, name_score = mean − λ = 0 (same seed)"
            ]
        );
        // Trained − start: 42 − 31, 46 − 32; against λ = 0: 42 − 40, 46 − 50.
        assert_eq!((mean[0].1[0].1 .0, mean[0].1[0].1 .2), (12.5, 2));
        assert_eq!((mean[1].1[0].1 .0, mean[1].1[0].1 .2), (-1.0, 2));
        let e = effects(&r).unwrap();
        let g = e[0].gaps.iter().find(|g| g.label.starts_with("λ = 3, name_score = mean")).unwrap();
        assert_eq!((g.lambda_vs_zero, g.legend.as_str()), (Some(3.0), "λ = 3, name_score = mean"));
    }

    #[test]
    fn effects_pair_runs_by_seed() {
        let e = effects(&rows()).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].spread["imagenet"], 20.0);
        let labels: Vec<&str> = e[0].gaps.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "CoOp λ = 0: trained − start",
                "CoOp λ = 3: trained − start",
                "CoOp λ = 10: trained − start",
                "λ = 3 − λ = 0 (same seed)",
                "λ = 10 − λ = 0 (same seed)",
            ]
        );
        // λ = 0: seed 1 40 − 31, seed 2 50 − 32.
        let g = &e[0].gaps[0];
        assert_eq!((g.top1["imagenet"].0, g.top1["imagenet"].2), (13.5, 2));
        assert!((g.top1["imagenet"].1 - 4.5 * 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(g.name_score.map(|s| (s.0, s.2)), Some((0.4375, 2)));
        // ImageNet-A has no starting row to pair with.
        assert!(!g.top1.contains_key("imagenet-a"));
        // λ = 3 − λ = 0 pairs seed 2 only; λ = 10 seed 1 only.
        assert_eq!(e[0].gaps[3].top1["imagenet"], (-6.0, 0.0, 1));
        assert_eq!(e[0].gaps[4].top1["imagenet"], (-20.0, 0.0, 1));
        assert_eq!(e[0].gaps[4].name_score, Some((-0.25, 0.0, 1)));
    }

    #[test]
    fn over_seeds_and_curves_average_per_lambda() {
        let s = over_seeds(&rows(), "m", &Method::COOP, "top1").unwrap();
        assert_eq!(s[&("imagenet".to_string(), 0f64.to_bits())].0, 45.0);
        assert_eq!(s[&("imagenet".to_string(), 10f64.to_bits())], (20.0, 0.0));
        assert!(!s.contains_key(&("imagenet-a".to_string(), 3f64.to_bits())));
        let run = |model: &str, lambda: f64, seed: u64, losses: &[f64]| RunRecord {
            key: format!("{model}-{lambda}-{seed}"),
            job: crate::sweep::Job::Coop {
                model: crate::sweep::ModelEntry {
                    name: model.into(),
                    path: "m.safetensors".into(),
                    tokenizer: None,
                    revision: None,
                    activation: None,
                },
                lambda,
                seed,
                train: Default::default(),
                train_root: "train".into(),
                train_dataset: None,
            },
            sweep: "s".into(),
            git_commit: None,
            checkpoint_sha256: String::new(),
            checkpoint_name: None,
            seconds: 0.0,
            rows: Vec::new(),
            failed_images: Vec::new(),
            relevance: None,
            model_numerics: None,
            empty_classes: Default::default(),
            content: None,
            cached_draw: None,
            curve: Some(
                losses
                    .iter()
                    .enumerate()
                    .map(|(e, &loss)| EpochPoint {
                        epoch: e + 1,
                        loss,
                        ce: 2.0 * loss,
                        expl: -loss,
                        acc: 10.0 * seed as f64,
                    })
                    .collect(),
            ),
            preprocessing: Vec::new(),
        };
        let runs = [
            run("m", 10.0, 1, &[4.0, 3.0]),
            run("m", 3.0, 1, &[2.0, 1.0]),
            run("other", 3.0, 1, &[100.0, 100.0]),
            run("m", 3.0, 2, &[4.0, 2.0]),
        ];
        let c = mean_curves(&runs, "m").unwrap();
        // λ in the order of their `{:08.3}` text: 0003.000 before 0010.000.
        assert_eq!(c.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [3.0, 10.0]);
        let p = &c[0].1;
        assert_eq!(p.iter().map(|p| p.epoch).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((p[0].loss, p[0].ce, p[0].expl, p[0].acc), (3.0, 6.0, -3.0, 15.0));
        assert_eq!(p[1].loss, 1.5);
        assert_eq!(c[1].1[1].loss, 3.0);
    }
}
