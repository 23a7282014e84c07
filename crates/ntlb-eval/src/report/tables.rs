//! The summary tables: `summary.md` (with the effects table), `summary.tex`, `summary.csv`.

use std::path::Path;

use anyhow::Result;

use super::aggregate::{datasets_of, effects, Stat, SummaryLine};
use crate::results::ResultRow;

fn cell(c: Option<&Stat>, latex: bool) -> String {
    match c {
        None => "–".into(),
        Some((m, s, n)) if *n > 1 && !latex => format!("{m:.2} ± {s:.2}"),
        Some((m, s, n)) if *n > 1 => format!("{m:.2} $\\pm$ {s:.2}"),
        Some((m, _, _)) => format!("{m:.2}"),
    }
}

/// A difference: "–" without a pair, the signed value for one seed, else mean ± std.
fn signed(c: Option<&Stat>, p: usize) -> String {
    match c {
        None => "–".to_string(),
        Some((m, _, 1)) => format!("{m:+.p$}"),
        Some((m, s, _)) => format!("{m:+.p$} ± {s:.p$}"),
    }
}

/// The paper's premises and effects as differences, per model and dataset: the spread of
/// single templates (max − min top-1), what CoOp training bought over its starting context,
/// and what λ > 0 changed against λ = 0 (top-1 and class-name score), mean ± std over seeds.
fn effects_md(rows: &[ResultRow], ds: &[String]) -> Result<String> {
    let mut md = String::new();
    for e in effects(rows)? {
        let spread: Vec<String> = ds
            .iter()
            .map(|d| e.spread.get(d).map_or("–".into(), |v| format!("{v:.2}")))
            .collect();
        md += &format!(
            "\n{}: effects in points of top-1 (mean ± std over seeds; class-name score in its own units)\n\n| quantity | {} | class-name score |\n|---|{}---|\n",
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
    Ok(md)
}

/// Write `summary.md`, `summary.tex`, `summary.csv` of `lines`; returns the Markdown.
pub(super) fn write_tables(out: &Path, rows: &[ResultRow], lines: &[SummaryLine]) -> Result<String> {
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
    md += &effects_md(rows, &ds)?;
    ntlb_core::atomic::write_atomic(&out.join("summary.md"), md.as_bytes())?;
    ntlb_core::atomic::write_atomic(&out.join("summary.tex"), tex.as_bytes())?;
    ntlb_core::atomic::write_atomic(&out.join("summary.csv"), &csv.into_inner()?)?;
    Ok(md)
}
