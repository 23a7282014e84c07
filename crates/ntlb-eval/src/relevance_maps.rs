//! Token-relevance maps of class prompts before and after training, kept with each CoOp run
//! for the report's figure.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::{Tensor, TensorData};
use ntlb_clip::preprocess::ConvertOrder;
use ntlb_clip::{l2_normalize, Clip};
use ntlb_prompt::class_text::ClassTextEncoder;
use ntlb_prompt::explain::prompt_relevance;
use ntlb_prompt::prompt::PromptLayout;
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
    items: &[(ntlb_data::image::ImageRef, usize)],
    learned: &LearnedPrompt,
    seed: u64,
) -> Result<Vec<RelevanceMap>> {
    let device = clip.text.token_embedding.device();
    let n = clip.config.vision.image_resolution();
    let shape = learned.manifest.ctx_shape;
    let initial = layout.initial_context(clip, seed);
    let enc = ClassTextEncoder::new(clip, layout);
    let mut out = Vec::new();
    for (path, label) in items.iter().take(3) {
        let px = ntlb_clip::preprocess::load_image_from(path, n, ConvertOrder::default(), &clip.numerics.normalization)?;
        let img = l2_normalize(
            clip.encode_image(Tensor::<4>::from_data(TensorData::new(px, [1, 3, n, n]), &device))
                .detach(),
        );
        let chunk = enc.chunk(&[*label]);
        let rows = |ctx: &[f32]| -> Result<Vec<f32>> {
            let ctx = Tensor::<2>::from_data(TensorData::new(ctx.to_vec(), shape), &device);
            Ok(prompt_relevance(clip, enc.prompts(&chunk, ctx), &chunk.eot, img.clone())?
                .0
                .remove(0))
        };
        let tokens = layout.token_strings(tok, *label);
        out.push(RelevanceMap {
            image: ntlb_clip::preprocess::ImageBytes::image_name(path),
            class: classes[*label].clone(),
            tokens,
            before: rows(&initial)?,
            after: rows(&learned.ctx)?,
        });
    }
    Ok(out)
}

/// Images per class of the held-out set on which [`mean_name_score`] is measured.
pub const NAME_SCORE_PER_CLASS: usize = 2;

/// The first `per_class` images of every class: (rows into `labels`), in the set's item order,
/// which is its canonical order ([`ntlb_data::canonical`]: a split file's order, else class,
/// size, digest), so the held-out images are the same whatever container holds the set.
pub fn held_out_subset(labels: &[usize], per_class: usize) -> Vec<usize> {
    let mut seen = std::collections::HashMap::new();
    (0..labels.len())
        .filter(|&i| {
            let n = seen.entry(labels[i]).or_insert(0usize);
            *n += 1;
            *n <= per_class
        })
        .collect()
}

/// The paper's class-name score of the true class (max relevance over the class-name tokens
/// of the end-of-text row), averaged over held-out images given by their normalised features
/// `[N, dim]`, with context `ctx`. Built from the loss's own pieces (pass 1, pass 2, the
/// name mask), one class at a time against that class's images only: the score of a pair does
/// not depend on the other classes, so this equals the true-class entries of
/// `objective::step`'s scores at 1/C of its work.
#[allow(clippy::too_many_arguments)]
pub fn mean_name_score(
    clip: &Clip,
    layout: &PromptLayout,
    ctx: &[f32],
    ctx_shape: [usize; 2],
    feats: &[f32],
    labels: &[usize],
    dim: usize,
) -> Result<f64> {
    use ntlb_prompt::relevance::{attention_gradients, name_scores, relevance_rows};
    let device = clip.text.token_embedding.device();
    let tau = clip.logit_scale_exp();
    let ctx = Tensor::<2>::from_data(TensorData::new(ctx.to_vec(), ctx_shape), &device);
    let mask = layout.name_mask();
    let enc = ClassTextEncoder::new(clip, layout);
    let mut sum = 0.0;
    for (c, class_mask) in mask.iter().enumerate() {
        let rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        if rows.is_empty() {
            continue;
        }
        let x: Vec<f32> = rows.iter().flat_map(|&i| feats[i * dim..(i + 1) * dim].to_vec()).collect();
        let img = Tensor::<2>::from_data(TensorData::new(x, [rows.len(), dim]), &device);
        let chunk = enc.chunk(&[c]);
        let prompts = enc.prompts(&chunk, ctx.clone());
        let grads = attention_gradients(clip, prompts.clone(), &chunk.eot, img, tau);
        let out = clip.text.encode_embeddings(prompts, &chunk.eot, ntlb_clip::model::Probe::Record);
        let r = relevance_rows(&out.attention, &grads, &chunk.eot, rows.len());
        let s = ntlb_core::host::to_f32_vec(name_scores(r, std::slice::from_ref(class_mask), &device));
        sum += s.iter().map(|&v| v as f64).sum::<f64>();
    }
    Ok(sum / labels.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::held_out_subset;

    #[test]
    fn held_out_subset_takes_the_first_images_of_each_class() {
        assert_eq!(held_out_subset(&[0, 0, 0, 1, 2, 1, 1, 2], 2), vec![0, 1, 3, 4, 5, 7]);
        assert_eq!(held_out_subset(&[3, 3, 3], 1), vec![0]);
    }
}
