//! Token relevance of whole prompts for one image (`ntlb explain`): the same relevance as the
//! loss uses, for plain text prompts or for learned prompts of a class list.

use anyhow::Result;
use burn::tensor::Tensor;
use ntlb_clip::parity::to_f32_vec;
use ntlb_clip::Clip;
use serde::Serialize;

use crate::relevance::{attention_gradients_shared, relevance_rows};

#[derive(Debug, Clone, Serialize)]
pub struct TokenRelevance {
    pub prompt: String,
    /// Token strings up to the end-of-text token.
    pub tokens: Vec<String>,
    /// Normalised relevance per token (end-of-text entry 0; sums to 1).
    pub relevance: Vec<f32>,
    /// τ·cos(image, prompt).
    pub logit: f32,
    /// Max relevance over the class-name positions (learned prompts only).
    pub class_name_score: Option<f32>,
}

/// Relevance rows `[K, len]` and logits of the prompts `prompts` `[K, len, W]` for one image
/// (normalised features `[1, E]`), on an autodiff device.
pub fn prompt_relevance(clip: &Clip, prompts: Tensor<3>, eot: &[usize], image: Tensor<2>) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
    let [k, len, _] = prompts.dims();
    let tau = clip.logit_scale_exp();
    let (out, cache) = clip.text.encode_embeddings_cached(prompts, eot, ntlb_clip::model::Probe::Record);
    let grads = attention_gradients_shared(clip, &cache, image.clone(), tau);
    let logits = to_f32_vec(image.matmul(ntlb_clip::l2_normalize(out.features).transpose()) * tau);
    let rows = to_f32_vec(relevance_rows(&out.attention, &grads, eot, 1));
    Ok(((0..k).map(|i| rows[i * len..(i + 1) * len].to_vec()).collect(), logits))
}

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
