//! The summary tables: `summary.md` (with the effects table), `summary.tex`, `summary.csv`.

use std::path::Path;

use anyhow::Result;

use super::aggregate::{datasets_of, effects, t_interval95, Effects, Stat, SummaryLine};
use crate::results::ResultRow;

fn cell(c: Option<&Stat>, latex: bool) -> String {
    match c {
        None => "–".into(),
        Some((m, s, n)) if *n > 1 && !latex => format!("{m:.2} ± {s:.2}"),
        Some((m, s, n)) if *n > 1 => format!("{m:.2} $\\pm$ {s:.2}"),
        Some((m, _, _)) => format!("{m:.2}"),
    }
}

/// A paired difference: "–" without a pair, the signed value for one seed, else the mean, its
/// 95 % t interval and the number of seeds.
fn signed(c: Option<&Stat>, p: usize) -> String {
    match c {
        None => "–".to_string(),
        Some((m, _, 1)) => format!("{m:+.p$}"),
        Some(s) => {
            let (lo, hi) = t_interval95(s).expect("n > 1");
            format!("{:+.p$} [{lo:+.p$}, {hi:+.p$}] (n={})", s.0, s.2)
        }
    }
}

/// Every paired effect as CSV: per model, quantity and dataset the mean difference, its
/// standard deviation, the number of seeds and the 95 % t interval (empty under two seeds).
fn effects_csv(all: &[Effects]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "model", "quantity", "dataset", "metric", "mean", "std", "seeds", "ci95_lo", "ci95_hi",
    ])?;
    for e in all {
        for g in &e.gaps {
            let cells = g
                .top1
                .iter()
                .map(|(d, s)| (d.as_str(), "top1", s))
                .chain(g.name_score.iter().map(|s| ("imagenet", "name_score", s)));
            for (d, metric, s) in cells {
                let (lo, hi) = t_interval95(s).map_or((String::new(), String::new()), |(l, h)| (format!("{l:.6}"), format!("{h:.6}")));
                w.write_record([
                    e.model.clone(),
                    g.label.clone(),
                    d.to_string(),
                    metric.to_string(),
                    format!("{:.6}", s.0),
                    format!("{:.6}", s.1),
                    s.2.to_string(),
                    lo,
                    hi,
                ])?;
            }
        }
    }
    Ok(w.into_inner()?)
}

/// The paper's premises and effects as differences, per model and dataset: the spread of
/// single templates (max − min top-1), what CoOp training bought over its starting context,
/// and what λ > 0 changed against λ = 0 (top-1 and class-name score), mean ± std over seeds.
fn effects_md(all: &[Effects], ds: &[String]) -> String {
    let mut md = String::new();
    for e in all {
        let spread: Vec<String> = ds
            .iter()
            .map(|d| e.spread.get(d).map_or("–".into(), |v| format!("{v:.2}")))
            .collect();
        md += &format!(
            "\n{}: effects in points of top-1, paired by seed (same split, same initial context): mean \
             difference [95 % Student-t interval] (n = seeds); class-name score in its own units\n\n\
             | quantity | {} | class-name score |\n|---|{}---|\n",
            e.model,
            ds.join(" | "),
            "---|".repeat(ds.len())
        );
        md += &format!("| zero-shot template spread (max − min) | {} | – |\n", spread.join(" | "));
        for g in &e.gaps {
            let cells: Vec<String> = ds.iter().map(|d| signed(g.top1.get(d), 2)).collect();
            md += &format!("| {} | {} | {} |\n", g.label, cells.join(" | "), signed(g.name_score.as_ref(), 4));
        }
    }
    md
}

/// Write `summary.md`, `summary.tex`, `summary.csv` of `lines`; returns the Markdown.
/// `notes`: what the numbers were computed without (empty class folders, unreadable images),
/// one line each under the table.
pub(super) fn write_tables(out: &Path, rows: &[ResultRow], lines: &[SummaryLine], notes: &[String]) -> Result<String> {
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
        ds.iter().map(|d| d.replace('_', "\\_")).collect::<Vec<_>>().join(" & ")
    );
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(["model", "method", "dataset", "top1_mean", "top1_std", "runs"])?;
    for l in lines {
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
    if !notes.is_empty() {
        md += "\n";
        for n in notes {
            md += &format!("Note: {n}.\n");
        }
    }
    let all = effects(rows)?;
    let (average_md, average_csv) = super::average::average_tables(lines, &ds)?;
    md += &average_md;
    ntlb_core::atomic::write_atomic(&out.join("average.csv"), &average_csv)?;
    md += &effects_md(&all, &ds);
    ntlb_core::atomic::write_atomic(&out.join("effects.csv"), &effects_csv(&all)?)?;
    ntlb_core::atomic::write_atomic(&out.join("summary.md"), md.as_bytes())?;
    ntlb_core::atomic::write_atomic(&out.join("summary.tex"), tex.as_bytes())?;
    ntlb_core::atomic::write_atomic(&out.join("summary.csv"), &csv.into_inner()?)?;
    Ok(md)
}
