//! The explainability score of NTLB: gradient-weighted attention relevance (Chefer et al.) over
//! the text transformer, for an image against every class prompt.
//!
//! For image x and classes c: s_c = τ·cos(f_img(x), f_txt(p_c)), S = Σ_c s_c. Per text layer l,
//! A_l are the prompts' attention probabilities and G_l = ∂S/∂A_l (a constant: the reference
//! takes it with `autograd.grad` without a graph). Ā_l = mean_heads max(G_l ⊙ A_l, 0);
//! R = I, R ← R + Ā_l R for l = 1..L; r_c = row of R at c's end-of-text position with that entry
//! zeroed, divided by its sum; score(x, c) = max of r_c over c's class-name positions (the paper's;
//! [`NameScore`] also offers their mean and minimum, which make the encoder read every token).
//!
//! Two passes, both exact:
//! - pass 1 gets G for all images and classes of a chunk. [`attention_gradients_shared`] (the
//!   default) runs the prompts' forward once and sends the B images' cotangents down together
//!   through the tower's activation-only backward (`TextTower::attention_vjp`): ≈ (B + 1) text
//!   forwards of work. [`attention_gradients`] (`--pass1 replicated`, kept to compare) replicates
//!   the prompts once per image through burn's autodiff, with a zero leaf added to each layer's
//!   probabilities receiving ∂S_b/∂A_l (each copy only feeds its own image's sum): ≈ 2B forwards;
//! - pass 2 ([`relevance_rows`]) rebuilds Ā_l from the differentiable A_l and the constant G,
//!   and needs only the end-of-text row of R: e_eotᵀ R = e_eotᵀ (I + Ā_L) … (I + Ā_1), a
//!   row-vector recursion from the last layer down (O(L²) per layer instead of O(L³)).

use burn::tensor::{Bool, Device, Tensor, TensorData};
use ntlb_clip::model::{Probe, TextCache};
use ntlb_clip::{l2_normalize, Clip};
use serde::{Deserialize, Serialize};

/// G_l for every (image, class) pair: `[B, K, heads, len, len]` per layer, by replicating the
/// prompts per image. `prompts` `[K, len, W]` are treated as constants; `image_feats` `[B, E]`
/// are normalised.
pub fn attention_gradients(clip: &Clip, prompts: Tensor<3>, eot: &[usize], image_feats: Tensor<2>, logit_scale: f32) -> Vec<Tensor<5>> {
    let [k, len, w] = prompts.dims();
    let [b, e] = image_feats.dims();
    let device = prompts.device();
    let heads = clip.config.text.heads;
    let rep = prompts.detach().unsqueeze::<4>().expand([b, k, len, w]).reshape([b * k, len, w]);
    let eot_rep: Vec<usize> = (0..b).flat_map(|_| eot.iter().copied()).collect();
    let leaves: Vec<Tensor<4>> = (0..clip.config.text.layers)
        .map(|_| Tensor::<4>::zeros([b * k, heads, len, len], &device).require_grad())
        .collect();
    let out = clip.text.encode_embeddings(rep, &eot_rep, Probe::RecordWithLeaves(&leaves));
    let t = l2_normalize(out.features).reshape([b, k, e]);
    let s = (t * image_feats.detach().unsqueeze_dim::<3>(1)).sum() * logit_scale;
    let grads = s.backward();
    leaves
        .iter()
        .map(|z| {
            z.grad(&grads)
                .expect("every layer's probabilities reach the score")
                .reshape([b, k, heads, len, len])
        })
        .collect()
}

/// The same G_l `[B, K, heads, len, len]` from the activations of one forward of the K prompts
/// (`cache`). S_b = τ Σ_c ⟨u_b, f_c/|f_c|⟩, so the cotangent at f_c for image b is
/// τ (u_b − ⟨u_b, n_c⟩ n_c) / |f_c| with n_c = f_c/|f_c|.
pub fn attention_gradients_shared(clip: &Clip, cache: &TextCache, image_feats: Tensor<2>, logit_scale: f32) -> Vec<Tensor<5>> {
    let f = cache.features.clone().inner();
    let u = image_feats.inner();
    let inv_norm = f.clone().powi_scalar(2).sum_dim(1).sqrt().recip(); // [K, 1]
    let n = f * inv_norm.clone();
    let dot = n.clone().matmul(u.clone().transpose()); // [K, B]
    let d = (u.unsqueeze::<3>() - dot.unsqueeze_dim::<3>(2) * n.unsqueeze_dim::<3>(1)) * (inv_norm * logit_scale).unsqueeze_dim::<3>(2);
    clip.text
        .attention_vjp(cache, d)
        .into_iter()
        .map(|g| g.permute([2, 0, 1, 3, 4]))
        .collect()
}

/// Normalised end-of-text relevance rows `[B, K, len]` from the differentiable attention
/// `attn[l]` `[K, heads, len, len]` and the constant gradients `grads[l]` `[B, K, heads, len, len]`.
pub fn relevance_rows(attn: &[Tensor<4>], grads: &[Tensor<5>], eot: &[usize], b: usize) -> Tensor<3> {
    let [k, _heads, len, _] = attn[0].dims();
    let device = attn[0].device();
    let mut onehot = vec![0.0f32; b * k * len];
    for bi in 0..b {
        for (ki, &e) in eot.iter().enumerate() {
            onehot[(bi * k + ki) * len + e] = 1.0;
        }
    }
    let eot_rows = Tensor::<3>::from_data(TensorData::new(onehot, [b * k, 1, len]), &device);
    let mut v = eot_rows.clone();
    for (a, g) in attn.iter().zip(grads).rev() {
        // The gradient comes back without an autodiff link: on the autodiff device it is a
        // constant (no copy, no host round trip).
        let g = g.clone().autodiff();
        let cam = (g * a.clone().unsqueeze::<5>())
            .clamp_min(0.0)
            .mean_dim(2)
            .reshape([b * k, len, len]);
        v = v.clone() + v.matmul(cam);
    }
    let v = v * (eot_rows.neg() + 1.0);
    let v = v.clone() / v.sum_dim(2);
    v.reshape([b, k, len])
}

/// How a class's score aggregates the normalised end-of-text relevance row over the class-name
/// positions (`[loss] name_score`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NameScore {
    /// The paper's: the maximum over the name's positions (one token of the name suffices).
    #[default]
    Max,
    /// The average over the name's positions (mask-weighted sum / number of name positions).
    Mean,
    /// The minimum over the name's positions (every token of the name must be relevant).
    Min,
}

impl NameScore {
    /// The spellings configs and the command line use.
    pub const NAMES: [&'static str; 3] = ["max", "mean", "min"];

    pub fn name(self) -> &'static str {
        match self {
            NameScore::Max => "max",
            NameScore::Mean => "mean",
            NameScore::Min => "min",
        }
    }

    /// The paper's aggregation (left out of serialised configs, so older keys hold).
    pub fn is_max(&self) -> bool {
        *self == NameScore::Max
    }
}

impl std::fmt::Display for NameScore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for NameScore {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        serde_json::from_value(serde_json::Value::String(s.into()))
            .map_err(|_| anyhow::anyhow!("name score `{s}`: expected one of {}", Self::NAMES.join(", ")))
    }
}

/// Score per (image, class): the maximum relevance over the class-name positions (the paper's).
pub fn name_scores(rows: Tensor<3>, name_mask: &[Vec<f32>], device: &Device) -> Tensor<2> {
    name_scores_with(rows, name_mask, NameScore::Max, device)
}

/// Score per (image, class) `[B, K]` from the relevance rows `[B, K, len]`, aggregated over
/// each class's name positions (`name_mask[k]`, 0/1, at least one position per class) by `agg`.
/// The gradient is burn's: max/min route it to the one selected position (on `flex`, the first
/// of equal extrema), mean spreads it evenly over the name.
pub fn name_scores_with(rows: Tensor<3>, name_mask: &[Vec<f32>], agg: NameScore, device: &Device) -> Tensor<2> {
    let [b, k, len] = rows.dims();
    let mask: Vec<f32> = name_mask.iter().flat_map(|m| m[..len].to_vec()).collect();
    match agg {
        NameScore::Max => {
            let mask = Tensor::<2>::from_data(TensorData::new(mask, [k, len]), device).unsqueeze::<3>();
            // Relevance is non-negative, so masking by multiplication keeps the maximum on the name.
            (rows * mask).max_dim(2).reshape([b, k])
        }
        NameScore::Mean => {
            let counts: Vec<f32> = mask.chunks(len).map(|m| m.iter().sum::<f32>().max(1.0)).collect();
            let mask = Tensor::<2>::from_data(TensorData::new(mask, [k, len]), device).unsqueeze::<3>();
            let counts = Tensor::<2>::from_data(TensorData::new(counts, [1, k]), device);
            (rows * mask).sum_dim(2).reshape([b, k]) / counts
        }
        NameScore::Min => {
            // Multiplying by the mask would put zeros (the smallest relevance) outside the name:
            // +∞ there instead, which the minimum never picks (mask_fill passes no gradient to it).
            let outside: Vec<bool> = (0..b).flat_map(|_| mask.iter().map(|&m| m == 0.0)).collect();
            let outside = Tensor::<3, Bool>::from_data(TensorData::new(outside, [b, k, len]), device);
            rows.mask_fill(outside, f32::INFINITY).min_dim(2).reshape([b, k])
        }
    }
}
