//! CoOp's prompt learner: `n_ctx` learned vectors around each class name.
//!
//! Every class is tokenized as `"X X … X <name>."` (or `"<init words> <name>."`), as the
//! reference does, so the end-of-text position is the same as in the assembled prompt; the
//! assembly then places the context rows at `end` (after the start token), `middle` (half
//! before, half after the name) or `front` (after the name).

use anyhow::{bail, Result};
use burn::tensor::{Int, Tensor, TensorData};
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::Clip;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassPosition {
    End,
    Middle,
    Front,
}

impl ClassPosition {
    /// The spellings configs and the command line use.
    pub const NAMES: [&'static str; 3] = ["end", "middle", "front"];
}

impl std::str::FromStr for ClassPosition {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        serde_json::from_value(serde_json::Value::String(s.into()))
            .map_err(|_| anyhow::anyhow!("class position `{s}`: expected one of {}", Self::NAMES.join(", ")))
    }
}

/// Prompt-learner settings; defaults are NTLB's ImageNet settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptConfig {
    pub n_ctx: usize,
    pub class_position: ClassPosition,
    /// Class-specific contexts (CSC) instead of one shared context.
    pub class_specific: bool,
    /// Initialise from these words (one token each, as CoOp assumes) instead of N(0, 0.02²).
    pub init_words: Option<String>,
    /// Accept repeated class names. Off by default (a repeated name is usually a mistake);
    /// CLIP's ImageNet list repeats `missile` and `sunglasses`, and the reference uses it as is.
    pub allow_duplicate_names: bool,
}

impl Default for PromptConfig {
    fn default() -> Self {
        PromptConfig {
            n_ctx: 16,
            class_position: ClassPosition::Middle,
            class_specific: false,
            init_words: None,
            allow_duplicate_names: false,
        }
    }
}

/// Where one position of an assembled prompt comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Context vector k (of the class's own context when class-specific).
    Ctx(usize),
    /// The embedding of this token id.
    Token(u32),
}

/// The fixed part of the prompts of a class list.
#[derive(Debug, Clone)]
pub struct PromptLayout {
    pub config: PromptConfig,
    /// Effective context length (the number of init words when initialised from words).
    pub n_ctx: usize,
    /// Token ids of `"X … X <name>."`, padded to the context length.
    pub tokenized: Vec<Vec<u32>>,
    pub eot: Vec<usize>,
    pub name_lens: Vec<usize>,
    /// First class-name position in the assembled prompt.
    pub name_start: usize,
    /// Per class, per position: where the row comes from.
    pub sources: Vec<Vec<Source>>,
    /// Token ids of the init words (when `init_words` is set).
    pub init_ids: Option<Vec<u32>>,
}

impl PromptLayout {
    /// Build from class names (`_` read as spaces, as the reference does).
    pub fn new(tok: &ClipTokenizer, classnames: &[String], config: &PromptConfig) -> Result<PromptLayout> {
        check_classnames(classnames, config.allow_duplicate_names)?;
        let (prefix, init_ids) = match &config.init_words {
            Some(words) => {
                let words = words.replace('_', " ");
                let ids = tok.encode_plain(&words)?;
                let n_words = words.split(' ').count();
                if ids.len() != n_words {
                    bail!(
                        "context init {words:?} has {n_words} words but {} tokens: each word must be one token",
                        ids.len()
                    );
                }
                (words, Some(ids))
            }
            None => (vec!["X"; config.n_ctx].join(" "), None),
        };
        let n_ctx = init_ids.as_ref().map_or(config.n_ctx, |i| i.len());
        let mut names = Vec::new();
        let mut tokenized = Vec::new();
        for name in classnames {
            let name = name.replace('_', " ");
            let name_ids = tok.encode_plain(&name)?;
            let prompt = format!("{prefix} {name}.");
            let t = tok
                .tokenize(&prompt, false)
                .map_err(|e| anyhow::anyhow!("class {name:?}: prompt with {n_ctx} context tokens is too long: {e}"))?;
            names.push(name_ids.len());
            tokenized.push(t.ids);
        }
        Ok(Self::from_tokens(config.clone(), n_ctx, tokenized, names, init_ids))
    }

    /// Fixed prompts with no context (zero-shot templates), from their tokenized rows: every
    /// position is a token, so [`Self::assemble`] is a plain embedding gather.
    pub fn fixed(tokenized: Vec<Vec<u32>>) -> PromptLayout {
        let config = PromptConfig {
            n_ctx: 0,
            class_position: ClassPosition::End,
            ..PromptConfig::default()
        };
        let n = tokenized.len();
        Self::from_tokens(config, 0, tokenized, vec![0; n], None)
    }

    /// Build from already tokenized `"X … X <name>."` rows and the name lengths (benchmarks).
    pub fn from_tokens(
        config: PromptConfig,
        n_ctx: usize,
        tokenized: Vec<Vec<u32>>,
        name_lens: Vec<usize>,
        init_ids: Option<Vec<u32>>,
    ) -> PromptLayout {
        let eot = ntlb_clip::tokenizer::pooled_positions(&tokenized);
        let half = n_ctx / 2;
        let name_start = match config.class_position {
            ClassPosition::End => 1 + n_ctx,
            ClassPosition::Middle => 1 + half,
            ClassPosition::Front => 1,
        };
        let sources = tokenized
            .iter()
            .zip(&name_lens)
            .map(|(ids, &nl)| {
                (0..ids.len())
                    .map(|p| {
                        let tok = |q: usize| Source::Token(ids[q]);
                        match config.class_position {
                            ClassPosition::End if (1..=n_ctx).contains(&p) => Source::Ctx(p - 1),
                            ClassPosition::Middle if (1..=half).contains(&p) => Source::Ctx(p - 1),
                            ClassPosition::Middle if p > half && p <= half + nl => tok(1 + n_ctx + (p - half - 1)),
                            ClassPosition::Middle if p > half + nl && p <= n_ctx + nl => Source::Ctx(half + (p - half - nl - 1)),
                            ClassPosition::Front if (1..=nl).contains(&p) => tok(1 + n_ctx + (p - 1)),
                            ClassPosition::Front if p > nl && p <= nl + n_ctx => Source::Ctx(p - 1 - nl),
                            _ => tok(p),
                        }
                    })
                    .collect()
            })
            .collect();
        PromptLayout {
            config,
            n_ctx,
            tokenized,
            eot,
            name_lens,
            name_start,
            sources,
            init_ids,
        }
    }

    pub fn n_classes(&self) -> usize {
        self.tokenized.len()
    }

    /// Readable tokens of class `c`'s prompt up to its end-of-text: `[ctxK]` for context
    /// position K, the vocabulary's token (without the end-of-word mark) otherwise.
    pub fn token_strings(&self, tok: &ntlb_clip::tokenizer::ClipTokenizer, c: usize) -> Vec<String> {
        self.sources[c][..=self.eot[c]]
            .iter()
            .map(|s| match s {
                Source::Ctx(k) => format!("[ctx{k}]"),
                Source::Token(t) => tok.id_to_token(*t).unwrap_or_default().replace("</w>", ""),
            })
            .collect()
    }

    /// 0/1 mask `[C][L]` of the class-name positions (the explainability target).
    pub fn name_mask(&self) -> Vec<Vec<f32>> {
        self.name_lens
            .iter()
            .zip(&self.tokenized)
            .map(|(&nl, ids)| {
                (0..ids.len())
                    .map(|p| f32::from(p >= self.name_start && p < self.name_start + nl))
                    .collect()
            })
            .collect()
    }

    /// Initial context `[n_ctx, W]` (or `[C·n_ctx, W]` class-specific): the init words'
    /// embeddings, or N(0, 0.02²) from `seed`.
    pub fn initial_context(&self, clip: &Clip, seed: u64) -> Vec<f32> {
        let w = clip.config.text.width;
        let copies = if self.config.class_specific { self.n_classes() } else { 1 };
        match &self.init_ids {
            Some(ids) => {
                let emb = ntlb_core::host::to_f32_vec(clip.text.token_embedding.clone());
                (0..copies)
                    .flat_map(|_| ids.iter().flat_map(|&i| emb[i as usize * w..(i as usize + 1) * w].to_vec()))
                    .collect()
            }
            None => {
                use rand::SeedableRng;
                use rand_distr::{Distribution, Normal};
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let normal = Normal::new(0.0f32, 0.02).expect("valid normal");
                (0..copies * self.n_ctx * w).map(|_| normal.sample(&mut rng)).collect()
            }
        }
    }

    /// Assembled prompt embeddings `[K, len, W]` of classes `classes`, with the context `ctx`
    /// (`[n_ctx, W]` or `[C·n_ctx, W]`) placed by a single row gather, so that the gradient
    /// reaches the context through one scatter-add.
    pub fn assemble(&self, clip: &Clip, ctx: Tensor<2>, classes: &[usize], len: usize) -> Tensor<3> {
        let device = ctx.device();
        let w = clip.config.text.width;
        let k = classes.len();
        // Row i·len + p holds the embedding of the token at assembled position p (0 for context
        // positions, whose rows are not used).
        let ids: Vec<i64> = classes
            .iter()
            .flat_map(|&c| {
                self.sources[c][..len].iter().map(|s| match s {
                    Source::Token(t) => *t as i64,
                    Source::Ctx(_) => 0,
                })
            })
            .collect();
        let tok_rows = k * len;
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [tok_rows]), &device);
        let token_rows = clip.text.token_embedding.clone().select(0, ids);
        let index: Vec<i64> = classes
            .iter()
            .enumerate()
            .flat_map(|(i, &c)| {
                self.sources[c][..len].iter().enumerate().map(move |(p, s)| match s {
                    Source::Token(_) => (i * len + p) as i64,
                    Source::Ctx(j) => {
                        let base = if self.config.class_specific { c * self.n_ctx } else { 0 };
                        (tok_rows + base + j) as i64
                    }
                })
            })
            .collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [k * len]), &device);
        // Without context (fixed prompts) no row comes from `ctx`, which may then be empty.
        let rows = if self.n_ctx == 0 {
            token_rows
        } else {
            Tensor::cat(vec![token_rows, ctx], 0)
        };
        rows.select(0, index).reshape([k, len, w])
    }
}

/// Refuse class lists the prompt learner cannot tell apart.
pub fn check_classnames(classnames: &[String], allow_duplicates: bool) -> Result<()> {
    if classnames.is_empty() {
        bail!("the class list is empty");
    }
    let mut seen = std::collections::HashMap::new();
    for (i, n) in classnames.iter().enumerate() {
        if n.trim().is_empty() {
            bail!("class {i} has an empty name");
        }
        if let Some(j) = seen.insert(n.trim().to_lowercase(), i) {
            if allow_duplicates {
                continue;
            }
            bail!("class name {n:?} appears twice (classes {j} and {i}); set allow_duplicate_names if that is intended");
        }
    }
    Ok(())
}
