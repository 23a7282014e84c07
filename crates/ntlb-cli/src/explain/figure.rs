//! The relevance bar chart of `ntlb explain`.

use anyhow::Result;
use ntlb_prompt::explain::TokenRelevance;

/// A bar chart of each prompt's token relevance (tokens on the x axis), PNG or SVG by extension.
pub fn plot_relevance(path: &std::path::Path, image_name: &str, items: &[TokenRelevance]) -> Result<()> {
    use plotters::prelude::*;
    let height = 260 * items.len().max(1) as u32;
    let width = 60 + 46 * items.iter().map(|t| t.tokens.len()).max().unwrap_or(1) as u32;
    fn draw<DB: DrawingBackend>(root: DrawingArea<DB, plotters::coord::Shift>, image_name: &str, items: &[TokenRelevance]) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let panels = root.split_evenly((items.len().max(1), 1));
        for (panel, item) in panels.iter().zip(items) {
            let n = item.tokens.len();
            let ymax = item.relevance.iter().copied().fold(0.0f32, f32::max).max(1e-6) * 1.15;
            let caption = format!(
                "{image_name} vs \"{}\" (logit {:.2}{})",
                item.prompt,
                item.logit,
                item.class_name_score
                    .map_or(String::new(), |s| format!(", class-name score {s:.3}"))
            );
            let mut chart = ChartBuilder::on(panel)
                .caption(caption, ("sans-serif", 15))
                .margin(8)
                .x_label_area_size(70)
                .y_label_area_size(50)
                .build_cartesian_2d((0..n).into_segmented(), 0f32..ymax)?;
            let tokens = item.tokens.clone();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n)
                .x_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) => tokens.get(*i).cloned().unwrap_or_default(),
                    _ => String::new(),
                })
                .x_label_style(("sans-serif", 12).into_font().transform(FontTransform::Rotate90))
                .y_desc("relevance")
                .draw()?;
            chart.draw_series(item.relevance.iter().enumerate().map(|(i, &r)| {
                let mut bar = Rectangle::new(
                    [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), r)],
                    BLUE.mix(0.7).filled(),
                );
                bar.set_margin(0, 0, 4, 4);
                bar
            }))?;
        }
        root.present()?;
        Ok(())
    }
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg")) {
        draw(SVGBackend::new(path, (width, height)).into_drawing_area(), image_name, items)
    } else {
        draw(BitMapBackend::new(path, (width, height)).into_drawing_area(), image_name, items)
    }
}
