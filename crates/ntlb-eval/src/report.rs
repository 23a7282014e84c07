//! `ntlb report`: tables (Markdown, LaTeX, CSV) and figures (PNG and SVG) from a sweep's results.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::results::{read_runs, read_table, ResultRow};

/// Mean and sample standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n.max(1.0);
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, s)
}

/// One line of the summary table: a method and its top-1 per dataset (mean, std, runs).
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryLine {
    pub model: String,
    pub method: String,
    pub cells: BTreeMap<String, (f64, f64, usize)>,
    /// CoOp lines: the class-name score on held-out val (mean, std, runs).
    pub name_score: Option<(f64, f64, usize)>,
}

const DATASET_ORDER: [&str; 5] = ["imagenet", "imagenet-v2", "imagenet-sketch", "imagenet-a", "imagenet-r"];

fn dataset_rank(d: &str) -> usize {
    DATASET_ORDER.iter().position(|x| *x == d).unwrap_or(DATASET_ORDER.len())
}

pub fn datasets_of(rows: &[ResultRow]) -> Vec<String> {
    let mut d: Vec<String> = rows.iter().map(|r| r.dataset.clone()).collect();
    d.sort_by_key(|x| (dataset_rank(x), x.clone()));
    d.dedup();
    d
}

/// The paper's comparison: zero-shot ensembles, single templates (mean and best), CoOp per λ
/// (mean ± std over seeds).
pub fn summarize(rows: &[ResultRow]) -> Vec<SummaryLine> {
    let mut groups: BTreeMap<(String, String), BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    let mut scores: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    // The starting context depends on the seed only: count it once per seed, not once per λ.
    let mut seen_init = std::collections::BTreeSet::new();
    for r in rows {
        if r.method == "coop-init" && !seen_init.insert((r.model.clone(), r.seed, r.dataset.clone())) {
            continue;
        }
        let method = match r.method.as_str() {
            "coop-init" => "CoOp start: random context, before training".to_string(),
            "coop" => {
                let l = r.lambda.unwrap_or(0.0);
                if l == 0.0 {
                    "CoOp (λ = 0)".to_string()
                } else {
                    format!("CoOp + explainability (λ = {l})")
                }
            }
            "zero-shot" => "zero-shot, single template: mean".to_string(),
            m => m.replace("zero-shot-ensemble-", "zero-shot, ensemble of ") + " templates",
        };
        if let (Some(v), "imagenet") = (r.name_score, r.dataset.as_str()) {
            scores.entry((r.model.clone(), method.clone())).or_default().push(v);
        }
        groups
            .entry((r.model.clone(), method))
            .or_default()
            .entry(r.dataset.clone())
            .or_default()
            .push(r.top1);
        if r.method == "zero-shot" {
            let best = groups
                .entry((r.model.clone(), "zero-shot, single template: best".into()))
                .or_default()
                .entry(r.dataset.clone())
                .or_default();
            let v = best.first().copied().unwrap_or(f64::MIN).max(r.top1);
            best.clear();
            best.push(v);
        }
    }
    let mut lines: Vec<SummaryLine> = groups
        .into_iter()
        .map(|((model, method), cells)| SummaryLine {
            name_score: scores.get(&(model.clone(), method.clone())).map(|v| {
                let (m, s) = mean_std(v);
                (m, s, v.len())
            }),
            model,
            method,
            cells: cells
                .into_iter()
                .map(|(d, v)| (d, (mean_std(&v).0, mean_std(&v).1, v.len())))
                .collect(),
        })
        .collect();
    // Zero-shot first, then CoOp's start, then CoOp by increasing λ (numerically: 3 before 10).
    let rank = |m: &str| -> (u8, f64) {
        if m.starts_with("zero-shot") {
            (0, 0.0)
        } else if m.starts_with("CoOp start") {
            (1, 0.0)
        } else {
            let l = m.rsplit("λ = ").next().and_then(|t| t.trim_end_matches(')').parse::<f64>().ok());
            (2, l.unwrap_or(f64::MAX))
        }
    };
    lines.sort_by(|a, b| {
        let (ra, rb) = (rank(&a.method), rank(&b.method));
        (a.model.as_str(), ra.0)
            .cmp(&(b.model.as_str(), rb.0))
            .then(ra.1.total_cmp(&rb.1))
            .then(a.method.cmp(&b.method))
    });
    lines
}

fn cell(c: Option<&(f64, f64, usize)>, latex: bool) -> String {
    match c {
        None => "–".into(),
        Some((m, s, n)) if *n > 1 && !latex => format!("{m:.2} ± {s:.2}"),
        Some((m, s, n)) if *n > 1 => format!("{m:.2} $\\pm$ {s:.2}"),
        Some((m, _, _)) => format!("{m:.2}"),
    }
}

/// The paper's premises and effects as differences, per model and dataset: the spread of
/// single templates (max − min top-1), what CoOp training bought over its starting context,
/// and what λ > 0 changed against λ = 0 (top-1 and class-name score), mean ± std over seeds.
fn effects(rows: &[ResultRow], ds: &[String]) -> String {
    let mut models: Vec<&str> = rows.iter().map(|r| r.model.as_str()).collect();
    models.sort();
    models.dedup();
    let mut md = String::new();
    for m in models {
        let spread: Vec<String> = ds
            .iter()
            .map(|d| {
                let v: Vec<f64> = rows
                    .iter()
                    .filter(|r| r.model == m && r.method == "zero-shot" && &r.dataset == d)
                    .map(|r| r.top1)
                    .collect();
                if v.is_empty() {
                    "–".into()
                } else {
                    let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
                    format!("{:.2}", hi - lo)
                }
            })
            .collect();
        md += &format!(
            "\n{m}: effects in points of top-1 (mean ± std over seeds; class-name score in its own units)\n\n| quantity | {} | class-name score |\n|---|{}---|\n",
            ds.join(" | "),
            "---|".repeat(ds.len())
        );
        md += &format!("| zero-shot template spread (max − min) | {} | – |\n", spread.join(" | "));
        let coop = |l: f64, method: &str, seed: u64, d: &str| {
            rows.iter()
                .find(|r| r.model == m && r.method == method && r.lambda == Some(l) && r.seed == Some(seed) && r.dataset == d)
        };
        let lambdas = lambdas_of(rows, m);
        let mut seeds: Vec<u64> = rows
            .iter()
            .filter(|r| r.model == m && r.method == "coop")
            .filter_map(|r| r.seed)
            .collect();
        seeds.sort();
        seeds.dedup();
        let fmt = |v: &[f64], p: usize| match v.len() {
            0 => "–".to_string(),
            1 => format!("{:+.p$}", v[0]),
            _ => {
                let (a, s) = mean_std(v);
                format!("{a:+.p$} ± {s:.p$}")
            }
        };
        // One table row: (λ, method) minus (λ', method') per seed, top-1 per dataset and the
        // class-name score on ImageNet val.
        let gap_row = |label: String, (l, mth): (f64, &str), (l0, mth0): (f64, &str)| {
            let cells: Vec<String> = ds
                .iter()
                .map(|d| {
                    let v: Vec<f64> = seeds
                        .iter()
                        .filter_map(|&s| Some(coop(l, mth, s, d)?.top1 - coop(l0, mth0, s, d)?.top1))
                        .collect();
                    fmt(&v, 2)
                })
                .collect();
            let sc: Vec<f64> = seeds
                .iter()
                .filter_map(|&s| Some(coop(l, mth, s, "imagenet")?.name_score? - coop(l0, mth0, s, "imagenet")?.name_score?))
                .collect();
            format!("| {label} | {} | {} |\n", cells.join(" | "), fmt(&sc, 4))
        };
        for &l in &lambdas {
            md += &gap_row(format!("CoOp λ = {l}: trained − start"), (l, "coop"), (l, "coop-init"));
        }
        for &l in lambdas.iter().filter(|&&l| l > 0.0) {
            md += &gap_row(format!("λ = {l} − λ = 0 (same seed)"), (l, "coop"), (0.0, "coop"));
        }
    }
    md
}

/// Write `summary.md`, `summary.tex`, `summary.csv`; returns the Markdown.
pub fn write_tables(out: &Path, rows: &[ResultRow]) -> Result<String> {
    let lines = summarize(rows);
    let ds = datasets_of(rows);
    let mut md = format!(
        "Top-1 accuracy (%), mean ± std over seeds where there are several; class-name score: the paper's \
         relevance score of the true class, mean over held-out ImageNet val images (CoOp only).\n\n\
         | model | method | {} | class-name score |\n|---|---|{}---|\n",
        ds.join(" | "),
        "---|".repeat(ds.len())
    );
    let mut tex = format!(
        "\\begin{{tabular}}{{ll{}r}}\n\\toprule\nmodel & method & {} & class-name score \\\\\n\\midrule\n",
        "r".repeat(ds.len()),
        ds.join(" & ")
    );
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(["model", "method", "dataset", "top1_mean", "top1_std", "runs"])?;
    for l in &lines {
        let score = |latex: bool| match l.name_score {
            None => "–".to_string(),
            Some((m, s, n)) if n > 1 => format!("{m:.3} {} {s:.3}", if latex { "$\\pm$" } else { "±" }),
            Some((m, _, _)) => format!("{m:.3}"),
        };
        md += &format!(
            "| {} | {} | {} | {} |\n",
            l.model,
            l.method,
            ds.iter().map(|d| cell(l.cells.get(d), false)).collect::<Vec<_>>().join(" | "),
            score(false)
        );
        tex += &format!(
            "{} & {} & {} & {} \\\\\n",
            l.model.replace('_', "\\_"),
            l.method.replace('λ', "$\\lambda$").replace('±', "$\\pm$"),
            ds.iter().map(|d| cell(l.cells.get(d), true)).collect::<Vec<_>>().join(" & "),
            score(true)
        );
        for (d, (m, s, n)) in &l.cells {
            csv.write_record([
                l.model.clone(),
                l.method.clone(),
                d.clone(),
                format!("{m:.4}"),
                format!("{s:.4}"),
                n.to_string(),
            ])?;
        }
    }
    tex += "\\bottomrule\n\\end{tabular}\n";
    md += &effects(rows, &ds);
    ntlb_core::atomic::write_atomic(&out.join("summary.md"), md.as_bytes())?;
    ntlb_core::atomic::write_atomic(&out.join("summary.tex"), tex.as_bytes())?;
    ntlb_core::atomic::write_atomic(&out.join("summary.csv"), &csv.into_inner()?)?;
    Ok(md)
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Render one figure to `<stem>.png` and `<stem>.svg` (the same drawing code, two backends).
fn render(
    out: &Path,
    stem: &str,
    size: (u32, u32),
    png: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
    svg: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    let (p, s) = (out.join(format!("{stem}.png")), out.join(format!("{stem}.svg")));
    {
        let r = BitMapBackend::new(&p, size).into_drawing_area();
        r.fill(&WHITE)?;
        png(&r)?;
        r.present()?;
    }
    {
        let r = SVGBackend::new(&s, size).into_drawing_area();
        r.fill(&WHITE)?;
        svg(&r)?;
        r.present()?;
    }
    Ok(vec![p, s])
}

type Axes<'a, DB> = ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// A chart with one slot per dataset on the x axis (named at the slot centre) and top-1 on y.
fn dataset_axes<'a, DB: DrawingBackend>(root: &'a DrawingArea<DB, Shift>, caption: String, ds: &[String], ymax: f64) -> Result<Axes<'a, DB>>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..ds.len() as f64, 0f64..ymax)?;
    let names = ds.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(ds.len() * 2 + 1)
        .x_label_formatter(&|v| {
            let i = v.floor() as usize;
            if (v - i as f64 - 0.5).abs() < 0.26 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("top-1 (%)")
        .draw()?;
    Ok(chart)
}

/// Grouped bars: datasets on the x axis, one bar per method (error bars = std over seeds).
fn draw_methods<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, model: &str, lines: &[SummaryLine], ds: &[String]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let ymax = lines
        .iter()
        .flat_map(|l| l.cells.values().map(|c| c.0 + c.1))
        .fold(1.0f64, f64::max)
        * 1.15;
    let k = lines.len().max(1) as f64;
    let mut chart = dataset_axes(root, format!("{model}: top-1 by dataset and method"), ds, ymax)?;
    for (j, l) in lines.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let bars: Vec<(f64, f64, f64)> = ds
            .iter()
            .enumerate()
            .filter_map(|(i, d)| l.cells.get(d).map(|c| (i as f64 + 0.1 + 0.8 * j as f64 / k, c.0, c.1)))
            .collect();
        let w = 0.8 / k;
        chart
            .draw_series(
                bars.iter()
                    .map(|&(x, m, _)| Rectangle::new([(x, 0.0), (x + w * 0.9, m)], color.filled())),
            )?
            .label(l.method.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        chart.draw_series(bars.iter().filter(|b| b.2 > 0.0).map(|&(x, m, s)| {
            let c = x + w * 0.45;
            PathElement::new(vec![(c, m - s), (c, m + s)], BLACK.stroke_width(1))
        }))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// Accuracy of every single template, per dataset (points, with the ensembles as lines).
fn draw_templates<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, model: &str, rows: &[ResultRow], ds: &[String]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let single: Vec<&ResultRow> = rows.iter().filter(|r| r.model == model && r.method == "zero-shot").collect();
    let ymax = single.iter().map(|r| r.top1).fold(1.0f64, f64::max) * 1.15;
    let mut chart = dataset_axes(
        root,
        format!("{model}: zero-shot top-1 of each template (dots) and ensembles (bars)"),
        ds,
        ymax,
    )?;
    for (i, d) in ds.iter().enumerate() {
        let pts: Vec<f64> = single.iter().filter(|r| &r.dataset == d).map(|r| r.top1).collect();
        // Deterministic horizontal spread so that equal accuracies stay visible.
        chart.draw_series(pts.iter().enumerate().map(|(j, &a)| {
            Circle::new(
                (i as f64 + 0.3 + 0.4 * ((j * 37) % 100) as f64 / 100.0, a),
                3,
                PALETTE[0].mix(0.6).filled(),
            )
        }))?;
        for (k, e) in rows
            .iter()
            .filter(|r| r.model == model && &r.dataset == d && r.method.starts_with("zero-shot-ensemble"))
            .enumerate()
        {
            let c = PALETTE[(k + 1) % PALETTE.len()];
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(i as f64 + 0.2, e.top1), (i as f64 + 0.8, e.top1)],
                c.stroke_width(3),
            )))?;
        }
    }
    Ok(())
}

/// The series legend, drawn the same way on every chart.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(chart: &mut ChartContext<'a, DB, CT>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The λ values of a model's CoOp runs, ascending.
fn lambdas_of(rows: &[ResultRow], model: &str) -> Vec<f64> {
    let mut l: Vec<f64> = rows
        .iter()
        .filter(|r| r.model == model && r.method == "coop")
        .filter_map(|r| r.lambda)
        .collect();
    l.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    l.dedup();
    l
}

/// Mean ± std over seeds of `value` for the rows of one λ.
fn over_seeds<'a>(rows: impl Iterator<Item = &'a ResultRow>, value: impl Fn(&ResultRow) -> Option<f64>) -> Option<(f64, f64)> {
    let v: Vec<f64> = rows.filter_map(value).collect();
    (!v.is_empty()).then(|| mean_std(&v))
}

/// A chart whose x axis is the index of λ in `lambdas` (the values are spread unevenly: 0, 0.3,
/// 1, 3, 10), labelled with the values.
fn lambda_axes<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    caption: String,
    lambdas: &[f64],
    y: std::ops::Range<f64>,
    y_desc: &str,
) -> Result<Axes<'a, DB>>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.5f64..lambdas.len() as f64 - 0.5, y)?;
    let ls = lambdas.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * ls.len() + 1)
        .x_label_formatter(&|v| {
            let i = v.round();
            if (v - i).abs() < 0.01 && i >= 0.0 {
                ls.get(i as usize).map(|l| format!("λ = {l}")).unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}

fn draw_points<DB: DrawingBackend>(chart: &mut Axes<'_, DB>, pts: &[(f64, f64, f64)], color: RGBColor, label: &str) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), color.stroke_width(2)))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], color.stroke_width(2)));
    chart.draw_series(
        pts.iter()
            .map(|&(x, m, s)| PathElement::new(vec![(x, m - s), (x, m + s)], color.stroke_width(2))),
    )?;
    chart.draw_series(pts.iter().map(|&(x, m, _)| Circle::new((x, m), 4, color.filled())))?;
    Ok(())
}

/// Top-1 against λ per dataset (mean ± std over seeds as error bars).
fn draw_lambda<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, model: &str, rows: &[ResultRow], ds: &[String]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let coop: Vec<&ResultRow> = rows.iter().filter(|r| r.model == model && r.method == "coop").collect();
    let lambdas = lambdas_of(rows, model);
    let ymax = coop.iter().map(|r| r.top1).fold(1.0f64, f64::max) * 1.15;
    let mut chart = lambda_axes(
        root,
        format!("{model}: CoOp top-1 against λ (mean ± std over seeds)"),
        &lambdas,
        0f64..ymax,
        "top-1 (%)",
    )?;
    for (i, d) in ds.iter().enumerate() {
        let pts: Vec<(f64, f64, f64)> = lambdas
            .iter()
            .enumerate()
            .filter_map(|(x, &l)| {
                over_seeds(coop.iter().copied().filter(|r| &r.dataset == d && r.lambda == Some(l)), |r| {
                    Some(r.top1)
                })
                .map(|(m, s)| (x as f64, m, s))
            })
            .collect();
        draw_points(&mut chart, &pts, PALETTE[i % PALETTE.len()], d)?;
    }
    legend(&mut chart)?;
    Ok(())
}

/// The class-name score of the true class on held-out val against λ: before training (the
/// starting context) and after.
fn draw_name_score<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, model: &str, rows: &[ResultRow]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let lambdas = lambdas_of(rows, model);
    let of = |method: &str| -> Vec<(f64, f64, f64)> {
        lambdas
            .iter()
            .enumerate()
            .filter_map(|(x, &l)| {
                over_seeds(
                    rows.iter()
                        .filter(|r| r.model == model && r.method == method && r.dataset == "imagenet" && r.lambda == Some(l)),
                    |r| r.name_score,
                )
                .map(|(m, s)| (x as f64, m, s))
            })
            .collect()
    };
    let (before, after) = (of("coop-init"), of("coop"));
    let ymax = before.iter().chain(&after).map(|p| p.1 + p.2).fold(0.05f64, f64::max) * 1.2;
    let mut chart = lambda_axes(
        root,
        format!("{model}: class-name score of the true class, held-out val (mean ± std over seeds)"),
        &lambdas,
        0f64..ymax,
        "class-name score",
    )?;
    draw_points(&mut chart, &before, PALETTE[7], "before training")?;
    draw_points(&mut chart, &after, PALETTE[3], "after training")?;
    legend(&mut chart)?;
    Ok(())
}

/// Training curves per epoch (mean over seeds), one line per λ: total loss, cross-entropy,
/// explainability term, training-batch accuracy.
fn draw_curves<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, model: &str, runs: &[crate::results::RunRecord]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    // λ → epoch → values over seeds.
    let mut by_lambda: BTreeMap<String, (f64, BTreeMap<usize, Vec<crate::results::EpochPoint>>)> = BTreeMap::new();
    for r in runs {
        if let (crate::sweep::Job::Coop { model: m, lambda, .. }, Some(curve)) = (&r.job, &r.curve) {
            if m.name == model {
                let e = by_lambda.entry(format!("{lambda:08.3}")).or_insert((*lambda, BTreeMap::new()));
                for p in curve {
                    e.1.entry(p.epoch).or_default().push(p.clone());
                }
            }
        }
    }
    let panels = root.split_evenly((2, 2));
    type Metric = (&'static str, fn(&crate::results::EpochPoint) -> f64);
    let metrics: [Metric; 4] = [
        ("total loss", |p| p.loss),
        ("cross-entropy", |p| p.ce),
        ("explainability term (−score + others)", |p| p.expl),
        ("training-batch top-1 (%)", |p| p.acc),
    ];
    let epochs = by_lambda.values().flat_map(|v| v.1.keys().copied()).max().unwrap_or(1) as f64;
    for (panel, (name, get)) in panels.iter().zip(metrics) {
        let all: Vec<f64> = by_lambda.values().flat_map(|v| v.1.values().flatten().map(get)).collect();
        let lo = all.iter().copied().fold(f64::INFINITY, f64::min).min(0.0);
        let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(lo + 1e-3);
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{model}: {name}"), ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(1f64..epochs.max(2.0), lo..hi + 0.05 * (hi - lo))?;
        chart.configure_mesh().x_desc("epoch").draw()?;
        for (i, (lambda, curve)) in by_lambda.values().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let line: Vec<(f64, f64)> = curve
                .iter()
                .map(|(e, ps)| (*e as f64, ps.iter().map(get).sum::<f64>() / ps.len() as f64))
                .collect();
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))?
                .label(format!("λ = {lambda}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], color.stroke_width(2)));
        }
        legend(&mut chart)?;
    }
    Ok(())
}

/// Token relevance of class prompts before and after training (first CoOp run with λ > 0,
/// else the first CoOp run).
fn draw_relevance<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    maps: &[crate::relevance_maps::RelevanceMap],
    title: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let panels = root.split_evenly((maps.len().max(1), 1));
    for (panel, m) in panels.iter().zip(maps) {
        let n = m.tokens.len();
        let ymax = m.before.iter().chain(&m.after).copied().fold(1e-6f32, f32::max) * 1.15;
        let name = m.image.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{title}: {name}, class \"{}\"", m.class), ("sans-serif", 15))
            .margin(6)
            .x_label_area_size(60)
            .y_label_area_size(45)
            .build_cartesian_2d(0f32..n as f32, 0f32..ymax)?;
        let toks = m.tokens.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(2 * n + 1)
            .x_label_formatter(&|v| {
                let i = v.floor() as usize;
                if (v - i as f32 - 0.5).abs() < 0.2 {
                    toks.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_label_style(("sans-serif", 11).into_font().transform(FontTransform::Rotate90))
            .y_desc("relevance")
            .draw()?;
        let (b, a) = (PALETTE[7], PALETTE[3]);
        chart
            .draw_series(
                m.before
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| Rectangle::new([(i as f32 + 0.1, 0.0), (i as f32 + 0.48, v)], b.filled())),
            )?
            .label("before training")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], b.filled()));
        chart
            .draw_series(
                m.after
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| Rectangle::new([(i as f32 + 0.52, 0.0), (i as f32 + 0.9, v)], a.filled())),
            )?
            .label("after training")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], a.filled()));
        legend(&mut chart)?;
    }
    Ok(())
}

/// Write every table and figure of a results folder into `out`; returns the files written.
pub fn run_report(results: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let rows = read_table(results)?;
    if rows.is_empty() {
        anyhow::bail!("{}: the results table is empty", results.display());
    }
    let md = write_tables(out, &rows)?;
    let mut files = vec![out.join("summary.md"), out.join("summary.tex"), out.join("summary.csv")];
    let ds = datasets_of(&rows);
    let mut models: Vec<String> = rows.iter().map(|r| r.model.clone()).collect();
    models.sort();
    models.dedup();
    let lines = summarize(&rows);
    // Only the runs of the table (stale records of an edited sweep stay out of the figures too).
    let keys: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.run_key.as_str()).collect();
    let runs: Vec<crate::results::RunRecord> = read_runs(results)?.into_iter().filter(|r| keys.contains(r.key.as_str())).collect();
    for model in &models {
        let slug: String = model
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
            .collect();
        let ml: Vec<SummaryLine> = lines
            .iter()
            .filter(|l| &l.model == model && !l.method.contains("single template"))
            .cloned()
            .collect();
        files.extend(render(
            out,
            &format!("{slug}_methods_by_dataset"),
            (1000, 560),
            |r| draw_methods(r, model, &ml, &ds),
            |r| draw_methods(r, model, &ml, &ds),
        )?);
        if rows.iter().any(|r| &r.model == model && r.method == "zero-shot") {
            files.extend(render(
                out,
                &format!("{slug}_template_sensitivity"),
                (1000, 520),
                |r| draw_templates(r, model, &rows, &ds),
                |r| draw_templates(r, model, &rows, &ds),
            )?);
        }
        if rows.iter().any(|r| &r.model == model && r.method == "coop") {
            files.extend(render(
                out,
                &format!("{slug}_accuracy_vs_lambda"),
                (900, 520),
                |r| draw_lambda(r, model, &rows, &ds),
                |r| draw_lambda(r, model, &rows, &ds),
            )?);
            if rows.iter().any(|r| &r.model == model && r.name_score.is_some()) {
                files.extend(render(
                    out,
                    &format!("{slug}_name_score_vs_lambda"),
                    (900, 520),
                    |r| draw_name_score(r, model, &rows),
                    |r| draw_name_score(r, model, &rows),
                )?);
            }
            if runs.iter().any(|r| r.curve.is_some()) {
                files.extend(render(
                    out,
                    &format!("{slug}_training_curves"),
                    (1100, 760),
                    |r| draw_curves(r, model, &runs),
                    |r| draw_curves(r, model, &runs),
                )?);
            }
        }
    }
    let pick = runs
        .iter()
        .filter(|r| r.relevance.as_ref().is_some_and(|m| !m.is_empty()))
        .max_by_key(|r| matches!(r.job, crate::sweep::Job::Coop { lambda, .. } if lambda > 0.0));
    if let Some(run) = pick {
        let maps = run.relevance.clone().unwrap_or_default();
        let title = match &run.job {
            crate::sweep::Job::Coop { model, lambda, seed, .. } => format!("{} CoOp λ={lambda} seed {seed}", model.name),
            _ => String::new(),
        };
        let h = 300 * maps.len() as u32;
        files.extend(render(
            out,
            "relevance_before_after",
            (1000, h),
            |r| draw_relevance(r, &maps, &title),
            |r| draw_relevance(r, &maps, &title),
        )?);
    }
    println!("{md}");
    Ok(files)
}
