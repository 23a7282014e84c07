//! Zero-shot classifiers from templates: one per template, and ensembles (mean of the
//! normalised text features over templates, renormalised), as CLIP's notebook does.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ntlb_clip::parity::to_f32_vec;
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::{l2_normalize, Clip};

/// Templates with `{}` for the class name, one per line.
pub fn read_templates(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read templates", path.display()))?;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        if l.matches("{}").count() != 1 {
            bail!("{}:{}: a template needs exactly one `{{}}`: {l:?}", path.display(), i + 1);
        }
        out.push(l.to_string());
    }
    if out.is_empty() {
        bail!("{}: no templates", path.display());
    }
    Ok(out)
}

/// Normalised text features `[C, E]` of one template over the class names.
pub fn template_weights(clip: &Clip, tok: &ClipTokenizer, template: &str, classnames: &[String]) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(classnames.len() * clip.config.embed_dim);
    for chunk in classnames.chunks(256) {
        let texts: Vec<String> = chunk.iter().map(|c| template.replace("{}", &c.replace('_', " "))).collect();
        let toks = tok.tokenize_all(&texts, true)?;
        let ids: Vec<Vec<u32>> = toks.iter().map(|t| t.ids.clone()).collect();
        let eot: Vec<usize> = toks.iter().map(|t| t.eot).collect();
        out.extend(to_f32_vec(l2_normalize(clip.encode_text(&ids, &eot))));
    }
    Ok(out)
}

/// Mean of per-template normalised weights, renormalised per class.
pub fn ensemble(per_template: &[Vec<f32>], dim: usize) -> Vec<f32> {
    let n = per_template[0].len();
    let mut m = vec![0f32; n];
    for w in per_template {
        m.iter_mut().zip(w).for_each(|(a, b)| *a += b / per_template.len() as f32);
    }
    for row in m.chunks_mut(dim) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= norm);
    }
    m
}
