//! Zero-shot classifiers from templates: one per template, and ensembles (mean of the
//! normalised text features over templates, renormalised), as CLIP's notebook does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::Tensor;
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::{l2_normalize, Clip};
use ntlb_data::variants::DatasetKind;
use ntlb_prompt::class_text::ClassTextEncoder;
use ntlb_prompt::prompt::PromptLayout;

/// Templates with `{}` for the class name, one per line.
pub fn read_templates(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read templates", path.display()))?;
    // A byte-order mark would become part of the first template's text, and so of its tokens.
    let text = ntlb_data::classes::without_bom(&text);
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

/// In a template path (`[zero_shot] templates`, an ensemble's file), the dataset's kind:
/// `datasets/templates/{dataset}/clip.txt` reads each dataset's own list.
pub const DATASET_PLACEHOLDER: &str = "{dataset}";

/// The template file of `path` for a dataset of `kind` (`path` itself without the placeholder).
pub fn templates_path(path: &Path, kind: DatasetKind) -> PathBuf {
    match path.to_str() {
        Some(p) if p.contains(DATASET_PLACEHOLDER) => PathBuf::from(p.replace(DATASET_PLACEHOLDER, kind.name())),
        _ => path.to_path_buf(),
    }
}

/// What a job key hashes of a template path: its templates; with the placeholder, every
/// dataset's, each line headed by the kind (a path without it hashes as it always has).
pub fn key_templates(path: &Path, kinds: &[DatasetKind]) -> Result<Vec<String>> {
    if templates_path(path, DatasetKind::Imagenet) == path {
        return read_templates(path);
    }
    let mut out = Vec::new();
    for k in kinds {
        out.extend(read_templates(&templates_path(path, *k))?.into_iter().map(|t| format!("{k}\t{t}")));
    }
    Ok(out)
}

/// Normalised text features `[C, E]` of one template, left on the model's device (detached:
/// a zero-shot classifier needs no graph). Encoded as learned prompts are
/// ([`ClassTextEncoder`]): chunks of similar length, each only as long as its longest prompt
/// (the causal mask makes positions past a prompt's end-of-text irrelevant to its features).
pub fn template_weights_on_device(clip: &Clip, tok: &ClipTokenizer, template: &str, classnames: &[String]) -> Result<Tensor<2>> {
    let texts: Vec<String> = classnames.iter().map(|c| template.replace("{}", &c.replace('_', " "))).collect();
    let ids = tok.tokenize_all(&texts, true)?.into_iter().map(|t| t.ids).collect();
    let layout = PromptLayout::fixed(ids);
    let device = clip.text.token_embedding.device();
    let no_context = Tensor::<2>::zeros([0, clip.config.text.width], &device);
    Ok(ClassTextEncoder::new(clip, &layout).features(no_context, TEXT_CHUNK))
}

/// Classes per text forward of a template (memory bound).
const TEXT_CHUNK: usize = 256;

/// The template ensemble: mean of the per-template normalised features, renormalised per
/// class (CLIP's notebook).
pub fn ensemble_on_device(per_template: &[Tensor<2>]) -> Tensor<2> {
    let stacked: Tensor<3> = Tensor::stack(per_template.to_vec(), 0);
    l2_normalize(stacked.mean_dim(0).squeeze_dim(0))
}

/// Template classifiers of one model, each encoded once per class list and reused by every
/// dataset over that list (ImageNet, -V2 and -Sketch share one; -A and -R another).
pub struct TemplateBank<'a> {
    clip: &'a Clip,
    tok: &'a ClipTokenizer,
    memo: HashMap<(String, Vec<String>), Tensor<2>>,
    /// Text encodings done (a test reads it).
    pub encoded: usize,
}

impl<'a> TemplateBank<'a> {
    pub fn new(clip: &'a Clip, tok: &'a ClipTokenizer) -> TemplateBank<'a> {
        TemplateBank {
            clip,
            tok,
            memo: HashMap::new(),
            encoded: 0,
        }
    }

    pub fn get(&mut self, template: &str, classnames: &[String]) -> Result<Tensor<2>> {
        let k = (template.to_string(), classnames.to_vec());
        if let Some(w) = self.memo.get(&k) {
            return Ok(w.clone());
        }
        let w = template_weights_on_device(self.clip, self.tok, template, classnames)?;
        self.encoded += 1;
        self.memo.insert(k, w.clone());
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A template file saved with a byte-order mark reads as the same templates (the mark would
    /// otherwise be tokenized into the first prompt and move its zero-shot number).
    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_template() {
        let d = tempfile::tempdir().unwrap();
        let (plain, marked) = (d.path().join("plain.txt"), d.path().join("marked.txt"));
        std::fs::write(&plain, "a photo of a {}.\nart of the {}.\n").unwrap();
        std::fs::write(&marked, "\u{feff}a photo of a {}.\nart of the {}.\n").unwrap();
        assert_eq!(read_templates(&marked).unwrap(), read_templates(&plain).unwrap());
    }
}
