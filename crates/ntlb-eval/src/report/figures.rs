//! The report's figures (PNG and SVG, one drawing code for both): methods by dataset, template
//! sensitivity, top-1 and class-name score against λ, training curves, relevance maps.

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use ntlb_prompt::objective::NameScore;

use crate::method::Method;

use super::aggregate::{effects, lambdas_of, mean_curves, models_of, over_seeds, t_interval95, Gap, SummaryLine};
use crate::results::{EpochPoint, ResultRow, RunRecord};
use crate::sweep::Job;

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
    let single: Vec<&ResultRow> = rows.iter().filter(|r| r.model == model && r.method == Method::ZeroShot).collect();
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
            .filter(|r| r.model == model && &r.dataset == d && matches!(r.method, Method::Ensemble(_)))
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
    let lambdas = lambdas_of(rows, model);
    let ymax = rows
        .iter()
        .filter(|r| r.model == model && r.method == Method::COOP)
        .map(|r| r.top1)
        .fold(1.0f64, f64::max)
        * 1.15;
    let mut chart = lambda_axes(
        root,
        format!("{model}: CoOp top-1 against λ (mean ± std over seeds)"),
        &lambdas,
        0f64..ymax,
        "top-1 (%)",
    )?;
    let stats = over_seeds(rows, model, &Method::COOP, "top1")?;
    for (i, d) in ds.iter().enumerate() {
        let pts: Vec<(f64, f64, f64)> = lambdas
            .iter()
            .enumerate()
            .filter_map(|(x, &l)| stats.get(&(d.clone(), l.to_bits())).map(|&(m, s)| (x as f64, m, s)))
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
    let of = |method: &Method| -> Result<Vec<(f64, f64, f64)>> {
        let stats = over_seeds(rows, model, method, "name_score")?;
        Ok(lambdas
            .iter()
            .enumerate()
            .filter_map(|(x, &l)| stats.get(&("imagenet".to_string(), l.to_bits())).map(|&(m, s)| (x as f64, m, s)))
            .collect())
    };
    let (before, after) = (of(&Method::CoopInit(NameScore::Max))?, of(&Method::COOP)?);
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
fn draw_curves<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, model: &str, runs: &[RunRecord]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    // Per λ: the seeds' curves (the axes span every seed's points) and their mean.
    let seeds: Vec<&EpochPoint> = runs
        .iter()
        .filter_map(|r| match (&r.job, &r.curve) {
            (Job::Coop { model: m, .. }, Some(curve)) if m.name == model => Some(curve),
            _ => None,
        })
        .flatten()
        .collect();
    let means = mean_curves(runs, model)?;
    let panels = root.split_evenly((2, 2));
    type Metric = (&'static str, fn(&EpochPoint) -> f64);
    let metrics: [Metric; 4] = [
        ("total loss", |p| p.loss),
        ("cross-entropy", |p| p.ce),
        ("explainability term (−score + others)", |p| p.expl),
        ("training-batch top-1 (%)", |p| p.acc),
    ];
    let epochs = seeds.iter().map(|p| p.epoch).max().unwrap_or(1) as f64;
    for (panel, (name, get)) in panels.iter().zip(metrics) {
        let lo = seeds.iter().map(|p| get(p)).fold(f64::INFINITY, f64::min).min(0.0);
        let hi = seeds.iter().map(|p| get(p)).fold(f64::NEG_INFINITY, f64::max).max(lo + 1e-3);
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{model}: {name}"), ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(1f64..epochs.max(2.0), lo..hi + 0.05 * (hi - lo))?;
        chart.configure_mesh().x_desc("epoch").draw()?;
        for (i, (lambda, curve)) in means.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let line: Vec<(f64, f64)> = curve.iter().map(|p| (p.epoch as f64, get(p))).collect();
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

/// The explainability loss's effect: per dataset, λ − (λ = 0) on the same seed, the mean and
/// its 95 % t interval (a dot without a bar where there is one seed), one colour per λ.
fn draw_paired<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, model: &str, gaps: &[&Gap], ds: &[String]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let pts = |g: &Gap| -> Vec<(usize, f64, Option<(f64, f64)>)> {
        ds.iter()
            .enumerate()
            .filter_map(|(i, d)| g.top1.get(d).map(|s| (i, s.0, t_interval95(s))))
            .collect()
    };
    let reach = gaps
        .iter()
        .flat_map(|g| pts(g))
        .map(|(_, m, ci)| ci.map_or(m.abs(), |(lo, hi)| lo.abs().max(hi.abs())))
        .fold(1.0f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("{model}: top-1 of λ − top-1 of λ = 0, same seed (mean, 95 % t interval)"),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..ds.len() as f64, -reach..reach)?;
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
        .y_desc("paired difference (points of top-1)")
        .draw()?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 0.0), (ds.len() as f64, 0.0)],
        BLACK.stroke_width(1),
    )))?;
    let k = gaps.len().max(1) as f64;
    for (j, g) in gaps.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let x = |i: usize| i as f64 + 0.2 + 0.6 * (j as f64 + 0.5) / k;
        let p = pts(g);
        chart
            .draw_series(p.iter().map(|&(i, m, _)| Circle::new((x(i), m), 4, color.filled())))?
            .label(g.legend.clone())
            .legend(move |(x, y)| Circle::new((x + 6, y), 4, color.filled()));
        chart.draw_series(
            p.iter()
                .filter_map(|&(i, _, ci)| ci.map(|(lo, hi)| PathElement::new(vec![(x(i), lo), (x(i), hi)], color.stroke_width(2)))),
        )?;
    }
    // Upper right: the intervals are symmetric about the axis and the top of the range holds
    // only the widest (a legend in the middle would cover the last dataset's).
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Draw every figure of the report into `out`; returns the files written.
pub(super) fn write_figures(
    out: &Path,
    rows: &[ResultRow],
    lines: &[SummaryLine],
    ds: &[String],
    runs: &[RunRecord],
) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for model in &models_of(rows) {
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
            |r| draw_methods(r, model, &ml, ds),
            |r| draw_methods(r, model, &ml, ds),
        )?);
        if rows.iter().any(|r| &r.model == model && r.method == Method::ZeroShot) {
            files.extend(render(
                out,
                &format!("{slug}_template_sensitivity"),
                (1000, 520),
                |r| draw_templates(r, model, rows, ds),
                |r| draw_templates(r, model, rows, ds),
            )?);
        }
        if rows.iter().any(|r| &r.model == model && r.method == Method::COOP) {
            files.extend(render(
                out,
                &format!("{slug}_accuracy_vs_lambda"),
                (900, 520),
                |r| draw_lambda(r, model, rows, ds),
                |r| draw_lambda(r, model, rows, ds),
            )?);
            if rows.iter().any(|r| &r.model == model && r.name_score.is_some()) {
                files.extend(render(
                    out,
                    &format!("{slug}_name_score_vs_lambda"),
                    (900, 520),
                    |r| draw_name_score(r, model, rows),
                    |r| draw_name_score(r, model, rows),
                )?);
            }
            let all = effects(rows)?;
            let gaps: Vec<&Gap> = all
                .iter()
                .filter(|e| &e.model == model)
                .flat_map(|e| e.gaps.iter())
                .filter(|g| g.lambda_vs_zero.is_some() && !g.top1.is_empty())
                .collect();
            if !gaps.is_empty() {
                files.extend(render(
                    out,
                    &format!("{slug}_paired_lambda_effect"),
                    (1000, 520),
                    |r| draw_paired(r, model, &gaps, ds),
                    |r| draw_paired(r, model, &gaps, ds),
                )?);
            }
            if runs.iter().any(|r| r.curve.is_some()) {
                files.extend(render(
                    out,
                    &format!("{slug}_training_curves"),
                    (1100, 760),
                    |r| draw_curves(r, model, runs),
                    |r| draw_curves(r, model, runs),
                )?);
            }
        }
    }
    let pick = runs
        .iter()
        .filter(|r| r.relevance.as_ref().is_some_and(|m| !m.is_empty()))
        .max_by_key(|r| matches!(r.job, Job::Coop { lambda, .. } if lambda > 0.0));
    if let Some(run) = pick {
        let maps = run.relevance.clone().unwrap_or_default();
        let title = match &run.job {
            Job::Coop { model, lambda, seed, .. } => format!("{} CoOp λ={lambda} seed {seed}", model.name),
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
    Ok(files)
}
