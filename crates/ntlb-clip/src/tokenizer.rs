//! CLIP's BPE tokenizer: `tokenizer.json` through the `tokenizers` crate, after the reference's
//! text clean-up ([`crate::text_clean`]); `<|startoftext|>` ids `<|endoftext|>`, zero-padded.

use std::path::{Path, PathBuf};

use crate::files::TOKENIZER;
use crate::text_clean::clean_text;

#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error("{path}: cannot load tokenizer: {msg}")]
    Load { path: PathBuf, msg: String },
    #[error("text has {n} tokens with start/end markers, more than the context length {max}: {text:?} (ask for truncation to cut it)")]
    TooLong { text: String, n: usize, max: usize },
    #[error("tokenizer failed on {text:?}: {msg}")]
    Encode { text: String, msg: String },
    #[error("the vocabulary has no piece for {missing:?} in {text:?} (the tokenizer would drop it silently)")]
    Uncovered { text: String, missing: String },
}

/// Tokens in CLIP's vocabulary (`SimpleTokenizer`'s, the shipped one).
pub const CLIP_VOCAB: usize = 49408;

pub struct ClipTokenizer {
    inner: tokenizers::Tokenizer,
    pub sot: u32,
    pub eot: u32,
    pub context_length: usize,
    /// Where the vocabulary came from: the tokenizer.json read, or CLIP's shipped BPE file.
    pub source: String,
}

/// One tokenized text: ids padded with 0 to the context length.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    /// Index of the first `<|endoftext|>` (where CLIP pools).
    pub eot: usize,
}

/// The pooled position of each id row as the reference finds it, `text.argmax(dim=-1)`: the
/// first maximum, which is `<|endoftext|>` because it has the largest id of the vocabulary.
pub fn pooled_positions(ids: &[Vec<u32>]) -> Vec<usize> {
    ids.iter()
        .map(|r| {
            let m = r.iter().copied().max().unwrap_or(0);
            r.iter().position(|&t| t == m).unwrap_or(0)
        })
        .collect()
}

impl ClipTokenizer {
    pub fn from_file(path: &Path) -> Result<Self, TokenizeError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TokenizeError::Load {
            path: path.into(),
            msg: e.to_string(),
        })?;
        Self::from_tokenizer(inner, path, path.display().to_string())
    }

    /// CLIP's own tokenizer, from the BPE vocabulary shipped with ntlb ([`crate::bpe_vocab`]).
    pub fn openai() -> Result<Self, TokenizeError> {
        let path = Path::new(crate::bpe_vocab::FILE);
        let load = |msg: String| TokenizeError::Load { path: path.into(), msg };
        let json = crate::bpe_vocab::tokenizer_json().map_err(load)?;
        let inner: tokenizers::Tokenizer = json.parse().map_err(|e: tokenizers::Error| load(e.to_string()))?;
        Self::from_tokenizer(
            inner,
            path,
            format!(
                "CLIP's BPE vocabulary shipped with ntlb ({}, sha256 {})",
                crate::bpe_vocab::FILE,
                crate::bpe_vocab::SHA256
            ),
        )
    }

    fn from_tokenizer(mut inner: tokenizers::Tokenizer, path: &Path, source: String) -> Result<Self, TokenizeError> {
        // Hugging Face's CLIP tokenizer.json pads to 77 itself; padding and truncation are done
        // here, the reference's way.
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| TokenizeError::Load {
            path: path.into(),
            msg: e.to_string(),
        })?;
        let id = |t: &str| {
            inner.token_to_id(t).ok_or_else(|| TokenizeError::Load {
                path: path.into(),
                msg: format!("no `{t}` token in the vocabulary"),
            })
        };
        let (sot, eot) = (id("<|startoftext|>")?, id("<|endoftext|>")?);
        Ok(ClipTokenizer {
            inner,
            sot,
            eot,
            context_length: 77,
            source,
        })
    }

    /// Pad and refuse at the context the model declares (`TextConfig::context_length`), not
    /// CLIP's 77: a model with another position table would otherwise get prompts it cannot hold
    /// or rows laid out at the wrong stride.
    pub fn with_context_length(mut self, context_length: usize) -> Self {
        self.context_length = context_length;
        self
    }

    /// Find `tokenizer.json` for a checkpoint: inside an HF directory or beside a `.safetensors`.
    pub fn beside(model: &Path) -> Option<PathBuf> {
        let dir = if model.is_dir() {
            model.to_path_buf()
        } else {
            model.parent()?.to_path_buf()
        };
        [dir.join(TOKENIZER), dir.join("hf").join(TOKENIZER)]
            .into_iter()
            .find(|p| p.exists())
    }

    /// The tokenizer of a checkpoint: `explicit` if given, else the `tokenizer.json` beside it,
    /// else, for an OpenAI / open_clip checkpoint file with CLIP's 49408-token embedding (an
    /// OpenAI `.pt` carries no tokenizer), CLIP's shipped vocabulary ([`Self::openai`]).
    pub fn for_model(model: &Path, explicit: Option<&Path>) -> Result<Self, TokenizeError> {
        if let Some(p) = explicit.map(Path::to_path_buf).or_else(|| Self::beside(model)) {
            return Self::from_file(&p);
        }
        let rows = if model.is_dir() {
            None
        } else {
            crate::weights::token_rows(model).map_err(|e| TokenizeError::Load {
                path: model.into(),
                msg: e.to_string(),
            })?
        };
        match rows {
            Some(CLIP_VOCAB) => Self::openai(),
            Some(n) => Err(TokenizeError::Load {
                path: model.into(),
                msg: format!(
                    "no tokenizer.json beside the model, and its token embedding has {n} rows, not CLIP's {CLIP_VOCAB} (the shipped vocabulary would not fit): pass --tokenizer"
                ),
            }),
            None => Err(TokenizeError::Load {
                path: model.into(),
                msg: "no tokenizer.json beside the model: pass --tokenizer".into(),
            }),
        }
    }

    /// BPE ids of a text without start/end markers (`SimpleTokenizer.encode`).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, TokenizeError> {
        let cleaned = clean_text(text);
        let enc = self.inner.encode(cleaned.as_str(), false).map_err(|e| TokenizeError::Encode {
            text: text.into(),
            msg: e.to_string(),
        })?;
        // CLIP's byte-level BPE has a piece for every character. A small vocabulary (the demo
        // world's) has not: its unknown token is `<|endoftext|>`, which would end the prompt
        // there, and a vocabulary without one drops the character. Either way the prompt would
        // silently lose part of its class name.
        let mut covered = vec![false; cleaned.len()];
        let mut unknown = vec![false; cleaned.len()];
        for (&(a, b), &id) in enc.get_offsets().iter().zip(enc.get_ids()) {
            let span = a.min(cleaned.len())..b.min(cleaned.len());
            covered[span.clone()].iter_mut().for_each(|c| *c = true);
            if id == self.eot || id == self.sot {
                unknown[span].iter_mut().for_each(|c| *c = true);
            }
        }
        let missing: String = cleaned
            .char_indices()
            .filter(|&(i, ch)| !ch.is_whitespace() && (!covered[i] || unknown[i]))
            .map(|(_, ch)| ch)
            .collect();
        if !missing.is_empty() {
            return Err(TokenizeError::Uncovered {
                text: text.into(),
                missing,
            });
        }
        Ok(enc.get_ids().to_vec())
    }

    /// `clip.tokenize(text, truncate)`: an error past the context unless `truncate`, which keeps
    /// the first tokens and puts `<|endoftext|>` last, as the reference does.
    pub fn tokenize(&self, text: &str, truncate: bool) -> Result<Tokens, TokenizeError> {
        let mut ids = Vec::with_capacity(self.context_length);
        ids.push(self.sot);
        ids.extend(self.encode_plain(text)?);
        ids.push(self.eot);
        if ids.len() > self.context_length {
            if !truncate {
                return Err(TokenizeError::TooLong {
                    text: text.into(),
                    n: ids.len(),
                    max: self.context_length,
                });
            }
            ids.truncate(self.context_length);
            *ids.last_mut().expect("non-empty") = self.eot;
        }
        let eot = ids.iter().position(|&t| t == self.eot).expect("eot pushed");
        ids.resize(self.context_length, 0);
        Ok(Tokens { ids, eot })
    }

    pub fn tokenize_all(&self, texts: &[String], truncate: bool) -> Result<Vec<Tokens>, TokenizeError> {
        texts.iter().map(|t| self.tokenize(t, truncate)).collect()
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo world's BPE (committed with its model) knows only the world's words and has no
    /// unknown token: what it cannot cover must be an error, not a shorter prompt.
    #[test]
    fn text_the_vocabulary_cannot_cover_is_an_error() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/synth-clip/tokenizer.json");
        let tok = ClipTokenizer::from_file(&path).unwrap();
        let ok = tok.tokenize("a photo of a red circle.", false).unwrap();
        assert!(ok.eot > 5, "{ok:?}");
        match tok.tokenize("a photo of an electric ray.", false) {
            Err(TokenizeError::Uncovered { text, missing }) => {
                assert_eq!(text, "a photo of an electric ray.");
                assert!(!missing.is_empty());
            }
            other => panic!("expected an Uncovered error, got {other:?}"),
        }
    }
}
