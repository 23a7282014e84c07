//! The training objective and its gradient with respect to the context:
//! loss = w_ce·CE(logits, y) + λ·L_expl, with
//! L_expl = −mean_b score(x_b, y_b) [+ Σ_{c≠y_b} score(x_b, c) / (B·C) when `also_minimize`],
//! the reference's normalisation (over all B·C entries, not B·(C−1)). score(x, c) aggregates the
//! relevance over c's name positions by `LossConfig::name_score` (the paper's max, or mean /
//! min); its gradient treats the pass-1 gradients G as constants, as the reference does.
//!
//! Classes are processed in chunks so that 1000 classes fit in bounded memory. The cross-entropy
//! couples all classes through its softmax, so its gradient enters each chunk as the linear term
//! Σ (∂CE/∂logits)·logits with ∂CE/∂logits = (softmax − onehot)/B computed beforehand from
//! all logits: the chain rule, so the summed gradient is exact.

use anyhow::{bail, Result};
use burn::tensor::{Tensor, TensorData};
use ntlb_clip::model::Probe;
use ntlb_clip::{l2_normalize, Clip};
use ntlb_core::host::to_f32_vec;
use serde::{Deserialize, Serialize};

use crate::class_text::{ClassChunk, ClassTextEncoder};
use crate::prompt::PromptLayout;
pub use crate::relevance::NameScore;
use crate::relevance::{attention_gradients, attention_gradients_shared, name_scores_with, relevance_rows};

/// Loss settings; defaults are the reference's (`EXPL_WEIGHT` = 1, `ALSO_MINIMIZE` = true).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// λ, the weight of the explainability loss (0 = plain CoOp).
    pub expl_weight: f64,
    pub also_minimize: bool,
    /// Weight of the cross-entropy (1; 0 isolates the explainability gradient).
    pub ce_weight: f64,
    /// How score(x, c) aggregates the relevance over the class-name positions: `max` (the
    /// paper's), `mean` or `min`. Left out of the serialised config at `max`, so the job keys
    /// and records made before it existed still match.
    #[serde(skip_serializing_if = "NameScore::is_max")]
    pub name_score: NameScore,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            expl_weight: 1.0,
            also_minimize: true,
            ce_weight: 1.0,
            name_score: NameScore::Max,
        }
    }
}

/// What one step computed.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub batch: usize,
    pub classes: usize,
    /// `[B·C]` logits τ·cos.
    pub logits: Vec<f32>,
    /// `[B·C]` explainability scores (empty when neither λ ≠ 0 nor scores were asked for).
    pub scores: Vec<f32>,
    /// `[B·C]` the name position each score comes from: that of the maximum (`max`, and `mean`,
    /// where it is the most relevant name token, for reporting) or of the minimum (`min`), the
    /// first of equal values.
    pub score_positions: Vec<usize>,
    /// `[B·C·L]` normalised relevance rows (L: the model's context length), zero past each
    /// end-of-text (when asked for).
    pub relevance: Vec<f32>,
    pub ce: f64,
    pub expl: f64,
    pub total: f64,
    pub accuracy: f64,
    /// ∂total/∂ctx, the shape of the context.
    pub grad_ctx: Vec<f32>,
}

/// How pass 1 gets ∂S_b/∂A_l (same values to float32 rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass1 {
    /// One forward per chunk, the B images' cotangents through a batched activation-only backward.
    #[default]
    Shared,
    /// Every prompt replicated B times through burn's autodiff forward and backward: the reference's algorithm, what
    /// `ntlb bench train-step` times the shared path against.
    Replicated,
}

/// Options that change the work, not the result.
#[derive(Debug, Clone, Copy)]
pub struct StepOptions {
    /// Classes per chunk (memory bound); classes are grouped by prompt length.
    pub chunk: usize,
    /// Compute the scores even when λ = 0 (evaluation, parity).
    pub want_scores: bool,
    /// Keep the full relevance rows (parity, `ntlb explain`).
    pub want_rows: bool,
    /// Compute ∂loss/∂ctx.
    pub want_grad: bool,
    pub pass1: Pass1,
    /// The objective is multiplied by this before its backward and the gradient divided by it
    /// after (`crate::scaler`; 1 = none). A power of two, so the result is exact when finite.
    pub loss_scale: f32,
}

impl Default for StepOptions {
    fn default() -> Self {
        StepOptions {
            chunk: 64,
            want_scores: false,
            want_rows: false,
            want_grad: true,
            pass1: Pass1::Shared,
            loss_scale: 1.0,
        }
    }
}

fn log_softmax_row(row: &[f32]) -> Vec<f64> {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
    row.iter().map(|&v| v as f64 - lse).collect()
}

/// Copy a chunk's `[B, K]` values into their places of a `[B, C]` table.
fn scatter_chunk(table: &mut [f32], values: &[f32], chunk: &[usize], b: usize, c_total: usize) {
    for bi in 0..b {
        for (ki, &c) in chunk.iter().enumerate() {
            table[bi * c_total + c] = values[bi * chunk.len() + ki];
        }
    }
}

/// Mean cross-entropy of `[B, C]` logits, its gradient w.r.t. the logits, and the number correct.
fn cross_entropy(logits: &[f32], labels: &[usize], c_total: usize) -> (f64, Vec<f32>, usize) {
    let b = labels.len();
    let mut ce = 0.0;
    let mut dce = vec![0.0f32; b * c_total];
    let mut correct = 0usize;
    for bi in 0..b {
        let row = &logits[bi * c_total..(bi + 1) * c_total];
        let ls = log_softmax_row(row);
        ce -= ls[labels[bi]] / b as f64;
        for c in 0..c_total {
            dce[bi * c_total + c] = ((ls[c].exp() - f64::from(c == labels[bi])) / b as f64) as f32;
        }
        let argmax = (0..c_total).fold(0, |best, c| if row[c] > row[best] { c } else { best });
        correct += usize::from(argmax == labels[bi]);
    }
    (ce, dce, correct)
}

/// The per-(image, class) tables a step fills chunk by chunk, `[B·C]` (relevance `[B·C·L]`, L the
/// model's context length).
struct ScoreTables {
    /// The stride of a relevance row: the model's context length.
    row_len: usize,
    scores: Vec<f32>,
    positions: Vec<usize>,
    /// Empty unless the rows were asked for.
    relevance: Vec<f32>,
}

/// Copy a chunk's scores `[B, K]` and relevance rows `[B, K, len]` (host values) into their
/// places of the tables, with the position of each score's maximum (the first of equal maxima;
/// with `min`, of its minimum).
#[allow(clippy::too_many_arguments)]
fn record_chunk(
    t: &mut ScoreTables,
    ch: &ClassChunk,
    s: &[f32],
    rows: &[f32],
    name_mask: &[Vec<f32>],
    agg: NameScore,
    b: usize,
    c_total: usize,
) {
    let (k, len) = (ch.classes.len(), ch.len);
    // `q` stays the pick over `p` (later) when it is at least as good.
    let keep = |q: f32, p: f32| if agg == NameScore::Min { q <= p } else { q >= p };
    for bi in 0..b {
        for (ki, &c) in ch.classes.iter().enumerate() {
            let entry = bi * c_total + c;
            t.scores[entry] = s[bi * k + ki];
            let r = &rows[(bi * k + ki) * len..(bi * k + ki + 1) * len];
            t.positions[entry] = (0..len)
                .filter(|&p| name_mask[c][p] > 0.0)
                .fold(None, |best: Option<usize>, p| match best {
                    Some(q) if keep(r[q], r[p]) => Some(q),
                    _ => Some(p),
                })
                .unwrap_or(0);
            if !t.relevance.is_empty() {
                t.relevance[entry * t.row_len..entry * t.row_len + len].copy_from_slice(r);
            }
        }
    }
}

/// Weight of each (image, class) entry `[B, K]` of a chunk in the explainability loss: −1/B for
/// the true class, 1/(B·C) for the others when `also_minimize` (the reference's normalisation).
fn expl_entry_weights(chunk: &[usize], labels: &[usize], loss: &LossConfig, c_total: usize) -> Vec<f32> {
    let b = labels.len();
    labels
        .iter()
        .flat_map(|&y| {
            chunk.iter().map(move |&c| {
                if c == y {
                    -1.0 / b as f32
                } else if loss.also_minimize {
                    1.0 / (b * c_total) as f32
                } else {
                    0.0
                }
            })
        })
        .collect()
}

/// One forward (and, if asked, backward) of the objective for a batch of images whose
/// normalised features are `image_feats` `[B, E]`, on the device of `clip` (autodiff for
/// gradients). `ctx` holds the context values.
#[allow(clippy::too_many_arguments)]
pub fn step(
    clip: &Clip,
    layout: &PromptLayout,
    ctx: &[f32],
    ctx_shape: [usize; 2],
    image_feats: Tensor<2>,
    labels: &[usize],
    loss: &LossConfig,
    opts: &StepOptions,
) -> Result<StepResult> {
    let device = image_feats.device();
    let [b, _e] = image_feats.dims();
    let c_total = layout.n_classes();
    if labels.len() != b {
        bail!("{} labels for {b} images", labels.len());
    }
    if let Some(&bad) = labels.iter().find(|&&y| y >= c_total) {
        bail!("label {bad} is not one of the {c_total} classes");
    }
    let tau = clip.logit_scale_exp();
    let enc = ClassTextEncoder::new(clip, layout);
    let chunks = enc.chunks(opts.chunk);
    let need_scores = opts.want_scores || opts.want_rows || loss.expl_weight != 0.0;
    let ctx_const = Tensor::<2>::from_data(TensorData::new(ctx.to_vec(), ctx_shape), &device);
    let img = image_feats.detach();

    // Phase A: all logits (no graph), the cross-entropy and its gradient w.r.t. the logits. With
    // one chunk, pass 2's own forward gives the logits before its backward: no separate forward
    // (the replicated path runs its own forward: it is the reference's algorithm, a baseline).
    let one_pass = chunks.len() == 1 && (need_scores || opts.want_grad) && opts.pass1 == Pass1::Shared;
    let mut logits = vec![0.0f32; b * c_total];
    if !one_pass {
        for ch in &chunks {
            let t = l2_normalize(enc.encode(ch, ctx_const.clone(), Probe::Off).features.detach());
            scatter_chunk(
                &mut logits,
                &to_f32_vec(img.clone().matmul(t.transpose()) * tau),
                &ch.classes,
                b,
                c_total,
            );
        }
    }
    let (mut ce, mut dce, mut correct) = if one_pass {
        (0.0, Vec::new(), 0)
    } else {
        cross_entropy(&logits, labels, c_total)
    };

    // Phase B: per chunk, the relevance gradients (pass 1) and the differentiable loss (pass 2).
    let mut grad_ctx = vec![0.0f32; ctx.len()];
    let row_len = clip.config.text.context_length;
    let mut tables = ScoreTables {
        row_len,
        scores: if need_scores { vec![0.0f32; b * c_total] } else { Vec::new() },
        positions: if need_scores { vec![0usize; b * c_total] } else { Vec::new() },
        relevance: if opts.want_rows {
            vec![0.0f32; b * c_total * row_len]
        } else {
            Vec::new()
        },
    };
    let name_mask = layout.name_mask();
    if need_scores || opts.want_grad {
        for ch in &chunks {
            let (chunk, k, eot) = (&ch.classes, ch.classes.len(), &ch.eot);
            let replicated = (need_scores && opts.pass1 == Pass1::Replicated)
                .then(|| attention_gradients(clip, enc.prompts(ch, ctx_const.clone()), eot, img.clone(), tau));
            let ctx_var = if opts.want_grad {
                ctx_const.clone().require_grad()
            } else {
                ctx_const.clone()
            };
            let probe = if need_scores { Probe::Record } else { Probe::Off };
            // The shared pass 1 reads this (pass 2's) forward: the activations are the same values.
            let (out, grads) = if need_scores && opts.pass1 == Pass1::Shared {
                let (out, cache) = enc.encode_cached(ch, ctx_var.clone(), probe);
                let g = attention_gradients_shared(clip, &cache, img.clone(), tau);
                (out, Some(g))
            } else {
                (enc.encode(ch, ctx_var.clone(), probe), replicated)
            };
            let t = l2_normalize(out.features);
            let chunk_logits = img.clone().matmul(t.transpose()) * tau;
            if one_pass {
                scatter_chunk(&mut logits, &to_f32_vec(chunk_logits.clone().detach()), chunk, b, c_total);
                (ce, dce, correct) = cross_entropy(&logits, labels, c_total);
            }
            let dce_chunk: Vec<f32> = (0..b)
                .flat_map(|bi| chunk.iter().map(move |&c| (bi, c)))
                .map(|(bi, c)| dce[bi * c_total + c])
                .collect();
            let dce_chunk = Tensor::<2>::from_data(TensorData::new(dce_chunk, [b, k]), &device);
            let mut objective = (chunk_logits * dce_chunk).sum() * loss.ce_weight;
            if let Some(grads) = grads {
                let rows = relevance_rows(&out.attention, &grads, eot, b);
                let chunk_mask: Vec<Vec<f32>> = chunk.iter().map(|&c| name_mask[c].clone()).collect();
                let s = name_scores_with(rows.clone(), &chunk_mask, loss.name_score, &device);
                let (s_vals, rows_vals) = (to_f32_vec(s.clone()), to_f32_vec(rows.clone()));
                record_chunk(&mut tables, ch, &s_vals, &rows_vals, &name_mask, loss.name_score, b, c_total);
                if loss.expl_weight != 0.0 {
                    let wts = expl_entry_weights(chunk, labels, loss, c_total);
                    let wts = Tensor::<2>::from_data(TensorData::new(wts, [b, k]), &device);
                    objective = objective + (s * wts).sum() * loss.expl_weight;
                }
            }
            if opts.want_grad {
                let g = (objective * opts.loss_scale as f64).backward();
                let gc = to_f32_vec(ctx_var.grad(&g).expect("the context reaches the loss"));
                grad_ctx.iter_mut().zip(gc).for_each(|(a, v)| *a += v / opts.loss_scale);
            }
        }
    }
    let ScoreTables {
        scores,
        positions,
        relevance,
        ..
    } = tables;
    let mut expl = 0.0;
    if need_scores {
        for bi in 0..b {
            expl -= scores[bi * c_total + labels[bi]] as f64 / b as f64;
            if loss.also_minimize {
                let others: f64 = (0..c_total)
                    .filter(|&c| c != labels[bi])
                    .map(|c| scores[bi * c_total + c] as f64)
                    .sum();
                expl += others / (b * c_total) as f64;
            }
        }
    }
    let total = loss.ce_weight * ce + loss.expl_weight * expl;
    Ok(StepResult {
        batch: b,
        classes: c_total,
        logits,
        scores,
        score_positions: positions,
        relevance,
        ce,
        expl,
        total,
        accuracy: 100.0 * correct as f64 / b as f64,
        grad_ctx,
    })
}
