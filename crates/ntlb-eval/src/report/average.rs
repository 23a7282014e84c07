//! Top-1 averaged over the datasets of a sweep, per model and method (the "Average" column of
//! CoOp's eleven-dataset tables): the mean of each dataset's mean over seeds, each dataset
//! weighing the same. A line without a number on every dataset gets no average (an average
//! over fewer sets would not compare with the others); the table says which it lacks.

use anyhow::Result;

use super::aggregate::SummaryLine;

/// The Markdown section and `average.csv` of `lines` over the datasets `ds`.
pub(super) fn average_tables(lines: &[SummaryLine], ds: &[String]) -> Result<(String, Vec<u8>)> {
    let mut md = format!(
        "\nTop-1 (%) averaged over the {} datasets, each weighing the same (mean over seeds first):\n\n\
         | model | method | average | datasets |\n|---|---|---|---|\n",
        ds.len()
    );
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(["model", "method", "datasets", "top1_average", "missing"])?;
    for l in lines {
        let missing: Vec<&str> = ds.iter().filter(|d| !l.cells.contains_key(*d)).map(String::as_str).collect();
        let avg = missing
            .is_empty()
            .then(|| ds.iter().map(|d| l.cells[d].0).sum::<f64>() / ds.len() as f64);
        let shown = avg.map_or("–".to_string(), |a| format!("{a:.2}"));
        let which = if missing.is_empty() {
            format!("all {}", ds.len())
        } else {
            format!("{} of {} (no {})", ds.len() - missing.len(), ds.len(), missing.join(", "))
        };
        md += &format!("| {} | {} | {shown} | {which} |\n", l.model, l.method);
        csv.write_record([
            l.model.clone(),
            l.method.clone(),
            (ds.len() - missing.len()).to_string(),
            avg.map_or(String::new(), |a| format!("{a:.4}")),
            missing.join(" "),
        ])?;
    }
    Ok((md, csv.into_inner()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(method: &str, cells: &[(&str, f64)]) -> SummaryLine {
        SummaryLine {
            model: "m".into(),
            method: method.into(),
            cells: cells.iter().map(|(d, v)| (d.to_string(), (*v, 0.0, 1))).collect(),
            name_score: None,
        }
    }

    /// Each dataset weighs the same; a line missing a dataset has no average and says which.
    #[test]
    fn the_average_is_over_every_dataset() {
        let ds: Vec<String> = ["imagenet", "dtd", "eurosat"].iter().map(|s| s.to_string()).collect();
        let lines = [
            line("a", &[("imagenet", 60.0), ("dtd", 40.0), ("eurosat", 50.0)]),
            line("b", &[("imagenet", 60.0), ("dtd", 40.0)]),
        ];
        let (md, csv) = average_tables(&lines, &ds).unwrap();
        assert!(md.contains("| m | a | 50.00 | all 3 |"), "{md}");
        assert!(md.contains("| m | b | – | 2 of 3 (no eurosat) |"), "{md}");
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.contains("m,a,3,50.0000,\n") && csv.contains("m,b,2,,eurosat\n"), "{csv}");
    }
}
