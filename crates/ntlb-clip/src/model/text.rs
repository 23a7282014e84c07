//! CLIP's text tower: token + positional embedding, causal pre-LN transformer, `ln_final`,
//! pooling at the end-of-text position, `text_projection`.

use burn::tensor::module::embedding;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::layers::{causal_mask, load, BlockCache, LayerNorm, Probe, Transformer, WeightSource};
use crate::config::TextConfig;
use crate::weights::LoadError;

#[derive(Debug, Clone)]
pub struct TextTower {
    pub config: TextConfig,
    pub token_embedding: Tensor<2>,
    pub positional_embedding: Tensor<2>,
    pub transformer: Transformer,
    pub ln_final: LayerNorm,
    pub text_projection: Tensor<2>,
}

/// Text features plus, when asked for, every layer's attention probabilities.
pub struct TextOutput {
    /// `[N, embed_dim]`, unnormalised.
    pub features: Tensor<2>,
    /// Per layer `[N, heads, L, L]` with L = the longest end-of-text position + 1.
    pub attention: Vec<Tensor<4>>,
}

/// The forward activations the activation-only backward (`super::vjp`) reads, without autodiff links.
#[derive(Debug, Clone)]
pub struct TextCache {
    pub blocks: Vec<BlockCache>,
    /// Pooled rows before `ln_final` `[N, W]`.
    pub pooled: Tensor<2>,
    /// `[N, embed_dim]`, unnormalised.
    pub features: Tensor<2>,
    pub eot: Vec<usize>,
    /// Positions run: max(eot) + 1.
    pub len: usize,
}

impl TextTower {
    pub fn load(src: &mut dyn WeightSource, c: &TextConfig, embed_dim: usize, device: &Device) -> Result<Self, LoadError> {
        Ok(TextTower {
            config: c.clone(),
            token_embedding: load(src, "token_embedding.weight", [c.vocab_size, c.width], device)?,
            positional_embedding: load(src, "positional_embedding", [c.context_length, c.width], device)?,
            transformer: Transformer::load(src, "transformer", c.width, c.layers, c.heads, c.activation, device)?,
            ln_final: LayerNorm::load(src, "ln_final", c.width, device)?,
            text_projection: load(src, "text_projection", [c.width, embed_dim], device)?,
        })
    }

    /// Token embeddings `[N, L, width]` of id rows (each of the context length).
    pub fn embed(&self, ids: &[Vec<u32>]) -> Tensor<3> {
        let n = ids.len();
        let l = ids.first().map_or(0, |r| r.len());
        let flat: Vec<i64> = ids.iter().flat_map(|r| r.iter().map(|&t| t as i64)).collect();
        let device = self.token_embedding.device();
        let idx = Tensor::<2, Int>::from_data(TensorData::new(flat, [n, l]), &device);
        embedding(self.token_embedding.clone(), idx)
    }

    /// Encode token id rows; the pooled row is the first end-of-text token (the largest id, as
    /// CLIP's `argmax`), which the caller passes as `eot`.
    pub fn encode_ids(&self, ids: &[Vec<u32>], eot: &[usize]) -> Tensor<2> {
        self.encode_embeddings(self.embed(ids), eot, Probe::Off).features
    }

    /// Encode prompt embeddings `[N, L, width]` (prompt learning assembles them itself).
    ///
    /// Only the first `max(eot) + 1` positions are run: the attention is causal, so the pooled
    /// rows never see later positions and the result is exact.
    pub fn encode_embeddings(&self, x: Tensor<3>, eot: &[usize], probe: Probe<'_>) -> TextOutput {
        self.encode_inner(x, eot, probe, None)
    }

    /// As `encode_embeddings`, and return the activations for `TextTower::attention_vjp`.
    pub fn encode_embeddings_cached(&self, x: Tensor<3>, eot: &[usize], probe: Probe<'_>) -> (TextOutput, TextCache) {
        let mut blocks = Vec::with_capacity(self.transformer.resblocks.len());
        let mut pooled = None;
        let out = self.encode_inner(x, eot, probe, Some((&mut blocks, &mut pooled)));
        let len = eot.iter().copied().max().map_or(1, |m| m + 1);
        let cache = TextCache {
            blocks,
            pooled: pooled.expect("set by encode_inner"),
            features: out.features.clone().inner(),
            eot: eot.to_vec(),
            len,
        };
        (out, cache)
    }

    fn encode_inner(
        &self,
        x: Tensor<3>,
        eot: &[usize],
        probe: Probe<'_>,
        cache: Option<(&mut Vec<BlockCache>, &mut Option<Tensor<2>>)>,
    ) -> TextOutput {
        let [n, full_len, width] = x.dims();
        assert_eq!(eot.len(), n, "one end-of-text position per prompt");
        let len = eot.iter().copied().max().map_or(1, |m| m + 1);
        assert!(
            len <= full_len && len <= self.config.context_length,
            "end-of-text position past the context"
        );
        let device = x.device();
        let x = x.narrow(1, 0, len) + self.positional_embedding.clone().narrow(0, 0, len).unsqueeze::<3>();
        let mask = causal_mask(len, &device);
        let (blocks, pooled_out) = match cache {
            Some((b, p)) => (Some(b), Some(p)),
            None => (None, None),
        };
        let (x, attention) = self.transformer.forward_cached(x, Some(&mask), probe, blocks);
        let rows: Vec<i64> = eot.iter().enumerate().map(|(i, &e)| (i * len + e) as i64).collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device);
        let pooled = x.reshape([n * len, width]).select(0, rows);
        if let Some(p) = pooled_out {
            *p = Some(pooled.clone().inner());
        }
        // LayerNorm acts per position, so normalising only the pooled rows is the same.
        let features = self.ln_final.forward(pooled).matmul(self.text_projection.clone());
        TextOutput { features, attention }
    }
}
