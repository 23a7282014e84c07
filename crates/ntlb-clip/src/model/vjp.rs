//! Hand-written backward of the text tower for *activations only*, batched over many cotangents
//! that share one forward.
//!
//! The explainability score needs G_l = ∂S_b/∂A_l for every image b against every prompt. The
//! forward of a prompt does not depend on the image; only the cotangent at the features does (it
//! is linear in the image feature). burn's autodiff takes one cotangent per graph, so the old pass 1
//! replicated each prompt B times through forward and backward. Here the forward runs once
//! (its activations come from [`TextTower::encode_embeddings_cached`]) and the B cotangents go
//! down together as a `[N, B, …]` batch: the weights are frozen, so only input gradients are
//! needed (LayerNorm, causal attention, the MLP's activation). The test `vjp_matches_autodiff` holds it
//! to burn's autodiff on the replicated graph.

use burn::tensor::{Tensor, TensorData};

use super::layers::{activation_derivative, BlockCache, LayerNorm, Linear};
use super::text::{TextCache, TextTower};

/// `dy · Wᵀ` for a linear `y = x W + b`, on the rows of a `[N, B, L, out]` cotangent.
fn linear_t(lin: &Linear, dy: Tensor<4>) -> Tensor<4> {
    let [n, b, l, d_out] = dy.dims();
    let w = lin.weight.clone().inner();
    let d_in = w.dims()[0];
    dy.reshape([n * b * l, d_out]).matmul(w.transpose()).reshape([n, b, l, d_in])
}

/// Input cotangent of a LayerNorm at input `x` `[N, 1, L, W]` (shared) for output cotangents `dy` `[N, B, L, W]`.
fn layer_norm_t(ln: &LayerNorm, x: Tensor<4>, dy: Tensor<4>) -> Tensor<4> {
    let (var, mean) = x.clone().var_mean_bias(3);
    let rstd = (var + ln.eps).sqrt().recip();
    let xhat = (x - mean) * rstd.clone();
    let g = dy * ln.weight.clone().inner().unsqueeze::<4>();
    let m1 = g.clone().mean_dim(3);
    let m2 = (g.clone() * xhat.clone()).mean_dim(3);
    (g - m1 - xhat * m2) * rstd
}

/// One block's backward for `dy` `[N, B, L, W]` at its output: returns ∂/∂A `[N, heads, B, L, L]`
/// and, unless `stop`, the cotangent at the block's input.
fn block_t(blk: &super::layers::ResidualBlock, c: &BlockCache, dy: Tensor<4>, stop: bool) -> (Tensor<5>, Option<Tensor<4>>) {
    let [n, b, l, w] = dy.dims();
    let h = blk.attn.heads;
    let dh = w / h;
    // MLP: y = c_proj(act(fc)), fc = c_fc(ln_2(x_mid)).
    let dact = activation_derivative(blk.mlp.act, c.fc.clone().unsqueeze_dim::<4>(1));
    let dfc = linear_t(&blk.mlp.c_proj, dy.clone()) * dact;
    let dmid = dy + layer_norm_t(&blk.ln_2, c.x_mid.clone().unsqueeze_dim(1), linear_t(&blk.mlp.c_fc, dfc));
    // Attention output o = A v per head, then out_proj.
    let d_o = linear_t(&blk.attn.out_proj, dmid.clone())
        .reshape([n, b, l, h, dh])
        .permute([0, 3, 1, 2, 4]); // [N, h, B, L, dh]
    let g = d_o
        .clone()
        .reshape([n, h, b * l, dh])
        .matmul(c.parts.v.clone().swap_dims(2, 3))
        .reshape([n, h, b, l, l]);
    if stop {
        return (g, None);
    }
    let a = c.parts.attn.clone();
    // Softmax: ∂scores = A ⊙ (G − Σ_j G⊙A); masked entries have A = 0.
    let a5 = a.clone().unsqueeze_dim::<5>(2);
    let ds = a5.clone() * (g.clone() - (g.clone() * a5).sum_dim(4));
    let scale = (dh as f64).powf(-0.5);
    let dq = ds.clone().reshape([n, h, b * l, l]).matmul(c.parts.k.clone()) * scale;
    let dk = ds.swap_dims(3, 4).reshape([n, h, b * l, l]).matmul(c.parts.q.clone());
    let dv = a
        .swap_dims(2, 3)
        .matmul(d_o.permute([0, 1, 3, 2, 4]).reshape([n, h, l, b * dh]))
        .reshape([n, h, l, b, dh])
        .permute([0, 3, 2, 1, 4])
        .reshape([n, b, l, w]);
    let heads_last = |t: Tensor<4>| t.reshape([n, h, b, l, dh]).permute([0, 2, 3, 1, 4]).reshape([n, b, l, w]);
    // The fused projection's columns are [q | k | v], each head-major.
    let dqkv = Tensor::cat(vec![heads_last(dq), heads_last(dk), dv], 3);
    let dx = dmid + layer_norm_t(&blk.ln_1, c.x_in.clone().unsqueeze_dim(1), linear_t(&blk.attn.in_proj, dqkv));
    (g, Some(dx))
}

impl TextTower {
    /// ∂(Σ_e d_features[n, b, e]·features[n, e])/∂A_l for every layer l, prompt n and cotangent b,
    /// from one forward's activations: `[N, heads, B, L, L]` per layer, first layer first.
    /// `d_features` is `[N, B, embed_dim]`.
    pub fn attention_vjp(&self, cache: &TextCache, d_features: Tensor<3>) -> Vec<Tensor<5>> {
        let d_features = d_features.inner();
        let [n, b, e] = d_features.dims();
        let (len, w) = (cache.len, self.config.width);
        let device = d_features.device();
        let proj = self.text_projection.clone().inner();
        let dln = d_features.reshape([n * b, e]).matmul(proj.transpose()).reshape([n, b, 1, w]);
        let dpooled = layer_norm_t(&self.ln_final, cache.pooled.clone().reshape([n, 1, 1, w]), dln);
        // The features read one position per prompt: its end-of-text row.
        let mut onehot = vec![0.0f32; n * len];
        for (i, &p) in cache.eot.iter().enumerate() {
            onehot[i * len + p] = 1.0;
        }
        let onehot = Tensor::<4>::from_data(TensorData::new(onehot, [n, 1, len, 1]), &device);
        let mut dy = onehot * dpooled;
        let mut grads = Vec::with_capacity(cache.blocks.len());
        for (i, (blk, c)) in self.transformer.resblocks.iter().zip(&cache.blocks).enumerate().rev() {
            let (g, dx) = block_t(blk, c, dy.clone(), i == 0);
            grads.push(g);
            if let Some(dx) = dx {
                dy = dx;
            }
        }
        grads.reverse();
        grads
    }
}
