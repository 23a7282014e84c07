//! Building blocks shared by the towers. Weights are plain tensors (the CLIP weights are frozen
//! everywhere in ntlb), created on the device the model runs on; on an autodiff device they
//! carry no gradient, so only what prompt learning marks (the context) is differentiated.

use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};

use crate::config::Activation;
use crate::weights::LoadError;

/// Where weights come from: a checkpoint, or a seeded random initialisation (benchmarks).
pub trait WeightSource {
    fn take(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError>;

    /// The same as a flat tensor on `device`; a trainable source returns graph leaves here.
    fn take_tensor(&mut self, key: &str, shape: &[usize], device: &Device) -> Result<Tensor<1>, LoadError> {
        let n = shape.iter().product();
        Ok(tensor(self.take(key, shape)?, [n], device))
    }

    /// Trainable sources keep every weight a leaf: layout changes happen on the device.
    fn trainable(&self) -> bool {
        false
    }
}

impl WeightSource for crate::weights::WeightMap {
    fn take(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        crate::weights::WeightMap::take(self, key, shape)
    }
}

pub(crate) fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

pub(crate) fn load<const D: usize>(
    src: &mut dyn WeightSource,
    key: &str,
    shape: [usize; D],
    device: &Device,
) -> Result<Tensor<D>, LoadError> {
    Ok(src.take_tensor(key, &shape, device)?.reshape(shape))
}

/// `y = x W + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[in, out]`, burn's `nn::Linear` layout: the checkpoint's `[out, in]` transposed once at load,
    /// so the forward is a plain matmul.
    pub weight: Tensor<2>,
    pub bias: Option<Tensor<1>>,
}

impl Linear {
    pub fn load(
        src: &mut dyn WeightSource,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
        device: &Device,
    ) -> Result<Self, LoadError> {
        let bias = if bias {
            Some(load(src, &format!("{prefix}.bias"), [d_out], device)?)
        } else {
            None
        };
        if src.trainable() {
            let w = src
                .take_tensor(&format!("{prefix}.weight"), &[d_out, d_in], device)?
                .reshape([d_out, d_in]);
            return Ok(Linear {
                weight: w.transpose(),
                bias,
            });
        }
        let w = src.take(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let t = crate::weights::transpose2(&w, d_out, d_in);
        Ok(Linear {
            weight: tensor(t, [d_in, d_out], device),
            bias,
        })
    }

    /// Concatenate the outputs of several linears into one (fused q/k/v): one matmul instead of three.
    pub fn fuse(parts: Vec<Linear>) -> Linear {
        let weight = Tensor::cat(parts.iter().map(|p| p.weight.clone()).collect(), 1);
        let bias = if parts.iter().all(|p| p.bias.is_some()) {
            Some(Tensor::cat(parts.iter().map(|p| p.bias.clone().expect("checked")).collect(), 0))
        } else {
            None
        };
        Linear { weight, bias }
    }

    pub fn d_out(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn forward2(&self, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.weight.clone());
        match &self.bias {
            Some(b) => y + b.clone().unsqueeze::<2>(),
            None => y,
        }
    }

    pub fn forward3(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, l, d] = x.dims();
        self.forward2(x.reshape([b * l, d])).reshape([b, l, self.d_out()])
    }
}

#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Tensor<1>,
    pub bias: Tensor<1>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn load(src: &mut dyn WeightSource, prefix: &str, d: usize, device: &Device) -> Result<Self, LoadError> {
        Ok(LayerNorm {
            weight: load(src, &format!("{prefix}.weight"), [d], device)?,
            bias: load(src, &format!("{prefix}.bias"), [d], device)?,
            eps: 1e-5,
        })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let (var, mean) = x.clone().var_mean_bias(D - 1);
        let x = (x - mean) / (var + self.eps).sqrt();
        x * self.weight.clone().unsqueeze::<D>() + self.bias.clone().unsqueeze::<D>()
    }
}

pub fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() * sigmoid(x * 1.702)
}

/// The MLP nonlinearity. burn's `gelu` is the erf form on every backend ntlb builds (flex:
/// libm's `erff`; LibTorch: `gelu(approximate="none")`), and so are their `gelu_backward`s;
/// burn's generic fallback backward is the tanh form, which `exact_gelu_gradient` (tests) would
/// catch on a backend that used it.
pub fn activate<const D: usize>(act: Activation, x: Tensor<D>) -> Tensor<D> {
    match act {
        Activation::QuickGelu => quick_gelu(x),
        Activation::Gelu => burn::tensor::activation::gelu(x),
    }
}

/// d act(x) / dx, for the hand-written activation-only backward (`super::vjp`).
pub fn activation_derivative<const D: usize>(act: Activation, x: Tensor<D>) -> Tensor<D> {
    match act {
        Activation::QuickGelu => {
            let s = sigmoid(x.clone() * 1.702);
            s.clone() + x * s.clone() * (s.neg() + 1.0) * 1.702
        }
        // Φ(x) + x φ(x), Φ(x) = (1 + erf(x/√2)) / 2, φ(x) = exp(−x²/2) / √(2π).
        Activation::Gelu => {
            let cdf = ((x.clone() * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0) * 0.5;
            let pdf = (x.clone().powi_scalar(2) * -0.5).exp() * (0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2);
            cdf + x * pdf
        }
    }
}

/// What the attention layers report besides their output.
#[derive(Clone, Copy)]
pub enum Probe<'a> {
    /// Plain inference: nothing is kept.
    Off,
    /// Return every layer's attention probabilities `[batch, heads, L, L]`, in the graph.
    Record,
    /// As `Record`, and add `leaves[l]` (zeros that require grad) to layer l's probabilities, so
    /// that a backward pass yields the gradient with respect to the probabilities.
    RecordWithLeaves(&'a [Tensor<4>]),
}

/// Multi-head self-attention as torch's `nn.MultiheadAttention` computes it (q scaled by
/// head_dim^-0.5 after its bias), with q/k/v fused into one projection.
#[derive(Debug, Clone)]
pub struct SelfAttention {
    /// q, k, v fused as OpenAI's `in_proj_weight`/`in_proj_bias` (the canonical keys split them
    /// into `q_proj`/`k_proj`/`v_proj`): one matmul instead of three.
    pub in_proj: Linear,
    pub out_proj: Linear,
    pub heads: usize,
}

impl SelfAttention {
    pub fn load(src: &mut dyn WeightSource, prefix: &str, width: usize, heads: usize, device: &Device) -> Result<Self, LoadError> {
        let q = Linear::load(src, &format!("{prefix}.q_proj"), width, width, true, device)?;
        let k = Linear::load(src, &format!("{prefix}.k_proj"), width, width, true, device)?;
        let v = Linear::load(src, &format!("{prefix}.v_proj"), width, width, true, device)?;
        let out_proj = Linear::load(src, &format!("{prefix}.out_proj"), width, width, true, device)?;
        Ok(SelfAttention {
            in_proj: Linear::fuse(vec![q, k, v]),
            out_proj,
            heads,
        })
    }

    /// `mask`: additive `[L, L]` (−inf where attention is forbidden).
    pub fn forward(
        &self,
        x: Tensor<3>,
        mask: Option<&Tensor<2>>,
        leaf: Option<&Tensor<4>>,
        record: bool,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let (out, parts) = self.forward_parts(x, mask, leaf);
        (out, record.then_some(parts.attn))
    }

    /// The output and the intermediate tensors (scaled q, k, v, probabilities), still in the graph.
    pub fn forward_parts(&self, x: Tensor<3>, mask: Option<&Tensor<2>>, leaf: Option<&Tensor<4>>) -> (Tensor<3>, AttentionParts) {
        let [b, l, c] = x.dims();
        let h = self.heads;
        let dh = c / h;
        let qkv = self.in_proj.forward3(x).reshape([b, l, 3, h, dh]).permute([2, 0, 3, 1, 4]);
        let q = qkv.clone().narrow(0, 0, 1).reshape([b, h, l, dh]) * ((dh as f64).powf(-0.5));
        let k = qkv.clone().narrow(0, 1, 1).reshape([b, h, l, dh]);
        let v = qkv.narrow(0, 2, 1).reshape([b, h, l, dh]);
        let mut scores = q.clone().matmul(k.clone().swap_dims(2, 3));
        if let Some(m) = mask {
            scores = scores + m.clone().unsqueeze::<4>();
        }
        let mut attn = softmax(scores, 3);
        if let Some(z) = leaf {
            attn = attn + z.clone();
        }
        let out = attn.clone().matmul(v.clone()).swap_dims(1, 2).reshape([b, l, c]);
        (self.out_proj.forward3(out), AttentionParts { q, k, v, attn })
    }
}

/// Per-head tensors of one attention forward, `[batch, heads, L, ·]`.
#[derive(Debug, Clone)]
pub struct AttentionParts {
    /// Queries after the bias and the head_dim^-0.5 scale.
    pub q: Tensor<4>,
    pub k: Tensor<4>,
    pub v: Tensor<4>,
    pub attn: Tensor<4>,
}

/// What the activation-only backward of one block needs from its forward, without autodiff links
/// (see `super::vjp`).
#[derive(Debug, Clone)]
pub struct BlockCache {
    /// Block input `[N, L, W]`.
    pub x_in: Tensor<3>,
    pub parts: AttentionParts,
    /// After the attention residual `[N, L, W]`.
    pub x_mid: Tensor<3>,
    /// `c_fc` output before the activation `[N, L, 4W]`.
    pub fc: Tensor<3>,
}

#[derive(Debug, Clone)]
pub struct ResidualBlock {
    pub ln_1: LayerNorm,
    pub attn: SelfAttention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
}

/// The block's feed-forward part: `c_fc`, the activation, `c_proj`.
#[derive(Debug, Clone)]
pub struct Mlp {
    pub c_fc: Linear,
    pub c_proj: Linear,
    /// Not a tensor of the checkpoint: what its config declares (`crate::checkpoint`).
    pub act: Activation,
}

impl ResidualBlock {
    pub fn load(
        src: &mut dyn WeightSource,
        prefix: &str,
        width: usize,
        heads: usize,
        act: Activation,
        device: &Device,
    ) -> Result<Self, LoadError> {
        Ok(ResidualBlock {
            ln_1: LayerNorm::load(src, &format!("{prefix}.ln_1"), width, device)?,
            attn: SelfAttention::load(src, &format!("{prefix}.attn"), width, heads, device)?,
            ln_2: LayerNorm::load(src, &format!("{prefix}.ln_2"), width, device)?,
            mlp: Mlp {
                c_fc: Linear::load(src, &format!("{prefix}.mlp.c_fc"), width, width * 4, true, device)?,
                c_proj: Linear::load(src, &format!("{prefix}.mlp.c_proj"), width * 4, width, true, device)?,
                act,
            },
        })
    }

    pub fn forward(
        &self,
        x: Tensor<3>,
        mask: Option<&Tensor<2>>,
        leaf: Option<&Tensor<4>>,
        record: bool,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        self.forward_cached(x, mask, leaf, record, None)
    }

    /// As `forward`, and push this block's activations to `cache` when given.
    pub fn forward_cached(
        &self,
        x: Tensor<3>,
        mask: Option<&Tensor<2>>,
        leaf: Option<&Tensor<4>>,
        record: bool,
        cache: Option<&mut Vec<BlockCache>>,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let (a, parts) = self.attn.forward_parts(self.ln_1.forward(x.clone()), mask, leaf);
        let probs = record.then(|| parts.attn.clone());
        let x_mid = x.clone() + a;
        let fc = self.mlp.c_fc.forward3(self.ln_2.forward(x_mid.clone()));
        let y = self.mlp.c_proj.forward3(activate(self.mlp.act, fc.clone()));
        if let Some(c) = cache {
            c.push(BlockCache {
                x_in: x.inner(),
                parts: AttentionParts {
                    q: parts.q.inner(),
                    k: parts.k.inner(),
                    v: parts.v.inner(),
                    attn: parts.attn.inner(),
                },
                x_mid: x_mid.clone().inner(),
                fc: fc.inner(),
            });
        }
        (x_mid + y, probs)
    }
}

#[derive(Debug, Clone)]
pub struct Transformer {
    pub resblocks: Vec<ResidualBlock>,
}

impl Transformer {
    pub fn load(
        src: &mut dyn WeightSource,
        prefix: &str,
        width: usize,
        layers: usize,
        heads: usize,
        act: Activation,
        device: &Device,
    ) -> Result<Self, LoadError> {
        let resblocks = (0..layers)
            .map(|i| ResidualBlock::load(src, &format!("{prefix}.resblocks.{i}"), width, heads, act, device))
            .collect::<Result<_, _>>()?;
        Ok(Transformer { resblocks })
    }

    pub fn forward(&self, x: Tensor<3>, mask: Option<&Tensor<2>>, probe: Probe<'_>) -> (Tensor<3>, Vec<Tensor<4>>) {
        self.forward_cached(x, mask, probe, None)
    }

    /// As `forward`, and keep every block's activations in `cache` when given.
    pub fn forward_cached(
        &self,
        mut x: Tensor<3>,
        mask: Option<&Tensor<2>>,
        probe: Probe<'_>,
        mut cache: Option<&mut Vec<BlockCache>>,
    ) -> (Tensor<3>, Vec<Tensor<4>>) {
        let mut recorded = Vec::new();
        for (i, blk) in self.resblocks.iter().enumerate() {
            let (leaf, record) = match probe {
                Probe::Off => (None, false),
                Probe::Record => (None, true),
                Probe::RecordWithLeaves(leaves) => (Some(&leaves[i]), true),
            };
            let (y, probs) = blk.forward_cached(x, mask, leaf, record, cache.as_deref_mut());
            x = y;
            recorded.extend(probs);
        }
        (x, recorded)
    }
}

/// Additive causal mask `[L, L]`: −inf strictly above the diagonal, as CLIP's `build_attention_mask`.
pub fn causal_mask(len: usize, device: &Device) -> Tensor<2> {
    let mut m = vec![0.0f32; len * len];
    for i in 0..len {
        for j in (i + 1)..len {
            m[i * len + j] = f32::NEG_INFINITY;
        }
    }
    tensor(m, [len, len], device)
}
