//! Token relevance of whole prompts for one image (`ntlb explain`): the same relevance as the
//! loss uses, for plain text prompts or for learned prompts of a class list.

use anyhow::Result;
use burn::tensor::Tensor;
use ntlb_clip::Clip;
use ntlb_core::host::to_f32_vec;
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
