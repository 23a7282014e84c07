//! Token-relevance maps of class prompts before and after training, kept with each CoOp run
//! for the report's figure.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::{Tensor, TensorData};
use ntlb_clip::{l2_normalize, Clip};
use ntlb_prompt::explain::prompt_relevance;
use ntlb_prompt::prompt::{PromptLayout, Source};
use ntlb_prompt::train::LearnedPrompt;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelevanceMap {
    pub image: PathBuf,
    pub class: String,
    pub tokens: Vec<String>,
    pub before: Vec<f32>,
    pub after: Vec<f32>,
}

/// Relevance of each of the first three training images against its own class prompt, with
/// the initial and the learned context.
pub fn before_after(
    clip: &Clip,
    tok: &ntlb_clip::tokenizer::ClipTokenizer,
    layout: &PromptLayout,
    classes: &[String],
    items: &[(PathBuf, usize)],
    learned: &LearnedPrompt,
    seed: u64,
) -> Result<Vec<RelevanceMap>> {
    let device = clip.text.token_embedding.device();
    let n = clip.config.vision.image_resolution();
    let shape = learned.manifest.ctx_shape;
    let initial = layout.initial_context(clip, seed);
    let mut out = Vec::new();
    for (path, label) in items.iter().take(3) {
        let px = ntlb_clip::preprocess::load_image(path, n)?;
        let img = l2_normalize(
            clip.encode_image(Tensor::<4>::from_data(TensorData::new(px, [1, 3, n, n]), &device))
                .detach(),
        );
        let e = layout.eot[*label];
        let rows = |ctx: &[f32]| -> Result<Vec<f32>> {
            let ctx = Tensor::<2>::from_data(TensorData::new(ctx.to_vec(), shape), &device);
            let p = layout.assemble(clip, ctx, &[*label], e + 1);
            Ok(prompt_relevance(clip, p, &[e], img.clone())?.0.remove(0))
        };
        let tokens = layout.sources[*label][..=e]
            .iter()
            .map(|s| match s {
                Source::Ctx(k) => format!("[ctx{k}]"),
                Source::Token(t) => tok.id_to_token(*t).unwrap_or_default().replace("</w>", ""),
            })
            .collect();
        out.push(RelevanceMap {
            image: path.clone(),
            class: classes[*label].clone(),
            tokens,
            before: rows(&initial)?,
            after: rows(&learned.ctx)?,
        });
    }
    Ok(out)
}
