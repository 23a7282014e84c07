//! CLIP's text tower: token + positional embedding, causal pre-LN transformer, `ln_final`,
//! pooling at the end-of-text position, `text_projection`.

use burn::tensor::module::embedding;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::layers::{causal_mask, load, LayerNorm, Probe, Transformer, WeightSource};
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

impl TextTower {
    pub fn load(src: &mut dyn WeightSource, c: &TextConfig, embed_dim: usize, device: &Device) -> Result<Self, LoadError> {
        Ok(TextTower {
            config: c.clone(),
            token_embedding: load(src, "token_embedding.weight", [c.vocab_size, c.width], device)?,
            positional_embedding: load(src, "positional_embedding", [c.context_length, c.width], device)?,
            transformer: Transformer::load(src, "transformer", c.width, c.layers, c.heads, device)?,
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
        let (x, attention) = self.transformer.forward(x, Some(&mask), probe);
        let rows: Vec<i64> = eot.iter().enumerate().map(|(i, &e)| (i * len + e) as i64).collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device);
        let pooled = x.reshape([n * len, width]).select(0, rows);
        // LayerNorm acts per position, so normalising only the pooled rows is the same.
        let features = self.ln_final.forward(pooled).matmul(self.text_projection.clone());
        TextOutput { features, attention }
    }
}
