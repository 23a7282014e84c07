//! The CoOp trainer with the reference's defaults: SGD (lr 0.002, momentum 0.9, weight decay
//! 5e-4), 50 epochs, batch 32 (drop_last when there are enough images), one constant warm-up
//! epoch at 1e-5 then a per-epoch cosine schedule, RandomResizedCrop + flip, all seeded.
//! Every epoch ends with an atomic checkpoint; a rerun resumes from it and ends on the same
//! context as an uninterrupted run.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::{Tensor, TensorData};
use ntlb_clip::preprocess::{convert_rgb, load_decoded_from, ConvertOrder, ImageBytes, Kind, Raster};
use ntlb_clip::{l2_normalize, Clip};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::augment::augment_decoded;
use crate::objective::{step, LossConfig, StepOptions};
use crate::prompt::{PromptConfig, PromptLayout};
use crate::scaler::{LossScaleConfig, LossScaler};
use ntlb_core::store::{read_tensors, read_tensors_checked, write_tensors, write_tensors_with_metadata};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub warmup_epochs: usize,
    pub warmup_lr: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 0.002,
            momentum: 0.9,
            weight_decay: 5e-4,
            epochs: 50,
            batch_size: 32,
            warmup_epochs: 1,
            warmup_lr: 1e-5,
        }
    }
}

impl OptimConfig {
    /// Learning rate of an epoch (0-based): Dassl's ConstantWarmupScheduler around
    /// CosineAnnealingLR(T_max = epochs, WARMUP_RECOUNT), stepped once per epoch, computed as
    /// torch computes it: the cosine's chained form, each epoch's rate from the last one's
    /// (`(1 + cos(π k/T)) / (1 + cos(π (k−1)/T)) · lr`), which differs from the closed form in
    /// the last bits. Parity with the reference's schedule is exact.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        if epoch < self.warmup_epochs {
            return self.warmup_lr;
        }
        let t_max = self.epochs as f64;
        let (base, pi) = (self.lr, std::f64::consts::PI);
        let mut lr = base;
        for k in 1..=(epoch - self.warmup_epochs) {
            let kf = k as f64;
            lr = if (k as i64 - 1 - self.epochs as i64).rem_euclid(2 * self.epochs as i64) == 0 {
                // torch's branch at the cosine's minimum (k = T + 1): restart upwards.
                lr + base * (1.0 - (pi / t_max).cos()) / 2.0
            } else {
                (1.0 + (pi * kf / t_max).cos()) / (1.0 + (pi * (kf - 1.0) / t_max).cos()) * lr
            };
        }
        lr
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub prompt: PromptConfig,
    pub loss: LossConfig,
    pub optim: OptimConfig,
    pub shots: usize,
    pub seed: u64,
    /// Classes per chunk of the objective (memory bound, not a setting of the method).
    pub chunk: usize,
    /// Smallest RandomResizedCrop area (fraction of the picture); CoOp's is 0.08.
    pub crop_min_scale: f64,
    /// When images are converted to RGB (default: Dassl's, before the augmentation).
    pub convert_order: ConvertOrder,
    /// Dynamic loss scaling (on by default for f16 models only).
    pub loss_scale: LossScaleConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            prompt: PromptConfig::default(),
            loss: LossConfig::default(),
            optim: OptimConfig::default(),
            shots: 1,
            seed: 1,
            chunk: 64,
            crop_min_scale: crate::augment::PAPER_MIN_SCALE,
            convert_order: ConvertOrder::default(),
            loss_scale: LossScaleConfig::default(),
        }
    }
}

/// A setting no training can run with: its key as a config file spells it, its value and the
/// rule it breaks. [`TrainConfig::validate`] returns it; callers add where the value came from
/// (the file, or the flag that set it).
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidSetting {
    pub key: &'static str,
    pub value: String,
    pub rule: &'static str,
}

impl std::fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` = {}: {}", self.key, self.value, self.rule)
    }
}

impl std::error::Error for InvalidSetting {}

impl TrainConfig {
    /// The one check of every training setting, before any work (`ntlb train`, the sweep plan
    /// and both dry runs call it): what would panic, fail at a late step, or train something
    /// other than what the config says.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        fn bad(key: &'static str, value: impl std::fmt::Display, rule: &'static str) -> Result<(), InvalidSetting> {
            Err(InvalidSetting {
                key,
                value: value.to_string(),
                rule,
            })
        }
        let finite_at_least_0 = |key, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                bad(key, v, "must be a finite number ≥ 0")
            }
        };
        let at_least_1 = |key, v: usize| if v >= 1 { Ok(()) } else { bad(key, v, "must be at least 1") };
        finite_at_least_0("loss.expl_weight", self.loss.expl_weight)?;
        finite_at_least_0("loss.ce_weight", self.loss.ce_weight)?;
        if !(self.optim.lr.is_finite() && self.optim.lr > 0.0) {
            return bad("optim.lr", self.optim.lr, "must be a finite number > 0");
        }
        finite_at_least_0("optim.momentum", self.optim.momentum)?;
        finite_at_least_0("optim.weight_decay", self.optim.weight_decay)?;
        finite_at_least_0("optim.warmup_lr", self.optim.warmup_lr)?;
        at_least_1("optim.epochs", self.optim.epochs)?;
        at_least_1("optim.batch_size", self.optim.batch_size)?;
        at_least_1("shots", self.shots)?;
        at_least_1("chunk", self.chunk)?;
        match &self.prompt.init_words {
            Some(w) if w.replace('_', " ").trim().is_empty() => bad("prompt.init_words", format!("{w:?}"), "must hold at least one word")?,
            Some(_) => {}
            None => at_least_1("prompt.n_ctx", self.prompt.n_ctx)?,
        }
        if !(self.crop_min_scale > 0.0 && self.crop_min_scale <= 1.0) {
            return bad("crop_min_scale", self.crop_min_scale, "must be in (0, 1]");
        }
        Ok(())
    }
}

/// torch's SGD step (dampening 0, no Nesterov): d = g + wd·p; buf = d on the first step, else
/// momentum·buf + d; p -= lr·buf.
pub fn sgd_update(params: &mut [f32], grad: &[f32], buf: &mut Option<Vec<f32>>, lr: f64, momentum: f64, weight_decay: f64) {
    let d: Vec<f32> = params.iter().zip(grad).map(|(p, g)| g + (weight_decay as f32) * p).collect();
    let b = match buf.take() {
        None => d,
        Some(mut b) => {
            b.iter_mut().zip(&d).for_each(|(b, d)| *b = (momentum as f32) * *b + d);
            b
        }
    };
    params.iter_mut().zip(&b).for_each(|(p, b)| *p -= (lr as f32) * b);
    *buf = Some(b);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    pub epoch: usize,
    pub step: usize,
    pub lr: f64,
    pub loss: f64,
    pub ce: f64,
    pub expl: f64,
    pub acc: f64,
}

/// What `ntlb train` saves beside the learned context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub ntlb_version: String,
    pub config: TrainConfig,
    pub classes: Vec<String>,
    pub checkpoint: String,
    pub checkpoint_sha256: String,
    pub ctx_shape: [usize; 2],
    pub epochs_done: usize,
    pub loss_curve: Vec<LossPoint>,
    pub split: Option<PathBuf>,
    /// The loss scaler's state when scaling is on (steps skipped, current scale).
    #[serde(default)]
    pub loss_scaler: Option<LossScaler>,
    /// The model's activations and normalisation, and where each was read.
    #[serde(default)]
    pub model_numerics: Option<ntlb_clip::checkpoint::ModelNumerics>,
}

/// A learned context and how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedPrompt {
    pub ctx: Vec<f32>,
    pub momentum: Option<Vec<f32>>,
    pub manifest: Manifest,
}

pub const PROMPT_FILE: &str = "prompt.safetensors";
pub const MANIFEST_FILE: &str = "manifest.json";
/// The resumable state: context, momentum and the manifest (epoch counter, curve) in ONE
/// file, so a kill can never pair the tensors of one epoch with the counters of another.
const STATE_FILE: &str = "state.safetensors";
const STATE_KEY: &str = "manifest";

impl LearnedPrompt {
    /// Write `prompt.safetensors` + `manifest.json` (or the resumable state) atomically.
    fn write(&self, dir: &Path, tensors_file: &str, manifest_file: &str) -> Result<()> {
        write_tensors(&dir.join(tensors_file), &self.tensors())?;
        ntlb_core::atomic::write_atomic(&dir.join(manifest_file), serde_json::to_string_pretty(&self.manifest)?.as_bytes())?;
        Ok(())
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        self.write(dir, PROMPT_FILE, MANIFEST_FILE)
    }

    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut tensors = vec![("ctx".to_string(), self.manifest.ctx_shape.to_vec(), self.ctx.clone())];
        if let Some(m) = &self.momentum {
            tensors.push(("momentum".to_string(), self.manifest.ctx_shape.to_vec(), m.clone()));
        }
        tensors
    }

    /// Write the resumable state as one atomic file.
    fn write_state(&self, dir: &Path) -> Result<()> {
        let meta = std::collections::HashMap::from([(STATE_KEY.to_string(), serde_json::to_string(&self.manifest)?)]);
        write_tensors_with_metadata(&dir.join(STATE_FILE), &self.tensors(), Some(meta))
    }

    fn read_state(dir: &Path) -> Result<LearnedPrompt> {
        let path = dir.join(STATE_FILE);
        // Checked against its digest: a changed byte would resume (and finish) another run.
        let (mut tensors, meta) = read_tensors_checked(&path)?;
        let manifest: Manifest = serde_json::from_str(
            meta.get(STATE_KEY)
                .with_context(|| format!("{}: no `{STATE_KEY}` in its metadata (not a resumable state)", path.display()))?,
        )
        .with_context(|| format!("{}: not a prompt manifest", path.display()))?;
        Self::from_parts(&mut tensors, manifest, &path)
    }

    /// The prompt of `manifest` from the tensors of `path`: `ctx` of the manifest's shape, and
    /// the momentum when the file holds one.
    fn from_parts(tensors: &mut ntlb_core::store::NamedTensors, manifest: Manifest, path: &Path) -> Result<LearnedPrompt> {
        let (shape, ctx) = tensors
            .remove("ctx")
            .with_context(|| format!("{}: no `ctx` tensor", path.display()))?;
        if shape != manifest.ctx_shape.to_vec() {
            bail!(
                "{}: ctx has shape {shape:?}, manifest says {:?}",
                path.display(),
                manifest.ctx_shape
            );
        }
        // A context that is not a number encodes every prompt to NaN: refused where it is read.
        if let Some(i) = ctx.iter().position(|v| !v.is_finite()) {
            let w = manifest.ctx_shape[1].max(1);
            bail!(
                "{}: ctx[{}, {}] is {}: a learned context must be finite ({} of its {} values are not)",
                path.display(),
                i / w,
                i % w,
                ctx[i],
                ctx.iter().filter(|v| !v.is_finite()).count(),
                ctx.len()
            );
        }
        let momentum = tensors.remove("momentum").map(|(_, m)| m);
        Ok(LearnedPrompt { ctx, momentum, manifest })
    }

    fn read(dir: &Path, tensors_file: &str, manifest_file: &str) -> Result<LearnedPrompt> {
        let mpath = dir.join(manifest_file);
        let manifest: Manifest =
            serde_json::from_str(&std::fs::read_to_string(&mpath).with_context(|| format!("{}: cannot read", mpath.display()))?)
                .with_context(|| format!("{}: not a prompt manifest", mpath.display()))?;
        let path = dir.join(tensors_file);
        Self::from_parts(&mut read_tensors(&path)?, manifest, &path)
    }

    /// Load a learned prompt written by `ntlb train`.
    pub fn load(dir: &Path) -> Result<LearnedPrompt> {
        Self::read(dir, PROMPT_FILE, MANIFEST_FILE)
    }
}

/// Training images, decoded once when few enough (one-shot ImageNet: 1000 pictures).
enum Pictures {
    Cached(Vec<(Raster, Kind)>),
    OnDemand,
}

/// A training picture as the augmentation takes it: converted to RGB at once in Dassl's order
/// (so the cache holds 3 channels), as decoded in CLIP's.
fn load_picture<P: ImageBytes>(p: &P, order: ConvertOrder) -> Result<(Raster, Kind), ntlb_clip::preprocess::PreprocessError> {
    let (img, kind) = load_decoded_from(p)?;
    Ok(match order {
        ConvertOrder::Dassl => (convert_rgb(img, &kind), Kind::Plain),
        ConvertOrder::Clip => (img, kind),
    })
}

fn epoch_rng(seed: u64, epoch: usize) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64 + 1))
}

/// Where the trainer is told to stop early (tests simulate a killed run with it).
#[derive(Debug, Clone, Copy, Default)]
pub struct StopAt {
    pub after_epochs: Option<usize>,
}

/// Train (or resume) a prompt on `data` ((image, label) pairs: files, or samples of shards or
/// parquet files, [`ImageBytes`]) and save it in `out`.
#[allow(clippy::too_many_arguments)]
pub fn train<P: ImageBytes>(
    clip: &Clip,
    layout: &PromptLayout,
    classes: &[String],
    data: &[(P, usize)],
    cfg: &TrainConfig,
    out: &Path,
    checkpoint: (&str, &str),
    stop: StopAt,
    mut on_step: impl FnMut(&LossPoint, usize),
) -> Result<LearnedPrompt> {
    let device = clip.text.token_embedding.device();
    if !device.is_autodiff() {
        bail!("training needs the model on an autodiff device");
    }
    if data.is_empty() {
        bail!("no training images");
    }
    let w = clip.config.text.width;
    let ctx_rows = if cfg.prompt.class_specific {
        layout.n_classes() * layout.n_ctx
    } else {
        layout.n_ctx
    };
    let ctx_shape = [ctx_rows, w];
    let n = clip.config.vision.image_resolution();
    let norm = &clip.numerics.normalization;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;

    // A state that does not read back (truncated, damaged) is reported and moved aside, and the
    // training starts again: it is deterministic, so it ends where the lost run would have.
    let resumed = if out.join(STATE_FILE).exists() {
        match LearnedPrompt::read_state(out) {
            Ok(s) => Some(s),
            Err(e) => {
                let path = out.join(STATE_FILE);
                let to = ntlb_core::damaged::set_aside(&path)
                    .with_context(|| format!("{}: cannot move the damaged state aside", path.display()))?;
                eprintln!(
                    "damaged trainer state ({e:#}): moved to {}; training from the first epoch",
                    to.display()
                );
                None
            }
        }
    } else {
        None
    };
    let mut state = if let Some(s) = resumed {
        let numerics_differ = s
            .manifest
            .model_numerics
            .as_ref()
            .is_some_and(|n| n.identity() != clip.numerics.identity());
        if s.manifest.config != *cfg || s.manifest.classes != classes || s.manifest.ctx_shape != ctx_shape || numerics_differ {
            bail!(
                "{}: holds a run with another configuration or class list; use a new output folder",
                out.display()
            );
        }
        s
    } else {
        let mut s = initial_state(cfg, classes, layout.initial_context(clip, cfg.seed), ctx_shape, checkpoint);
        s.manifest.model_numerics = Some(clip.numerics.clone());
        s
    };

    let pictures = if data.len() <= 4096 {
        Pictures::Cached(
            data.par_iter()
                .map(|(p, _)| load_picture(p, cfg.convert_order))
                .collect::<Result<Vec<_>, _>>()?,
        )
    } else {
        Pictures::OnDemand
    };
    let b = cfg.optim.batch_size.max(1);
    let steps_per_epoch = steps_per_epoch(data.len(), b);
    // Each epoch reshuffles with its own generator; the crops of a step draw from it in order.
    let mut epoch_state: Option<(usize, TrainRng, Vec<usize>)> = None;
    let batches = |epoch: usize, s: usize| -> Result<Batch> {
        if epoch_state.as_ref().is_none_or(|(e, _, _)| *e != epoch) {
            let mut rng = epoch_rng(cfg.seed, epoch);
            let mut order: Vec<usize> = (0..data.len()).collect();
            order.shuffle(&mut rng);
            epoch_state = Some((epoch, rng, order));
        }
        let (_, rng, order) = epoch_state.as_mut().expect("set above");
        let idx = &order[s * b..((s + 1) * b).min(order.len())];
        let seeds: Vec<u64> = idx.iter().map(|_| rng.random()).collect();
        let views: Vec<Vec<f32>> = idx
            .par_iter()
            .zip(&seeds)
            .map(|(&i, &sd)| -> Result<Vec<f32>> {
                let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(sd);
                Ok(match &pictures {
                    Pictures::Cached(p) => augment_decoded(&p[i].0, &p[i].1, n, cfg.crop_min_scale, cfg.convert_order, norm, &mut r),
                    Pictures::OnDemand => {
                        let (img, kind) = load_picture(&data[i].0, cfg.convert_order)?;
                        augment_decoded(&img, &kind, n, cfg.crop_min_scale, cfg.convert_order, norm, &mut r)
                    }
                })
            })
            .collect::<Result<_>>()?;
        Ok(Batch {
            pixels: views.into_iter().flatten().collect(),
            labels: idx.iter().map(|&i| data[i].1).collect(),
        })
    };
    run_epochs(
        clip,
        layout,
        cfg,
        &mut state,
        EpochPlan { steps_per_epoch, stop },
        batches,
        Some(out),
        |e| on_step(e.point, e.total_steps),
    )?;
    // Each step checked its loss and gradient; the last update could still overflow the context.
    if let Some(i) = state.ctx.iter().position(|v| !v.is_finite()) {
        bail!(
            "the learned context is not finite after step {} (epoch {}): ctx[{}, {}] is {}",
            state.manifest.loss_curve.last().map_or(0, |p| p.step),
            state.manifest.epochs_done,
            i / w,
            i % w,
            state.ctx[i]
        );
    }
    if state.manifest.epochs_done == cfg.optim.epochs {
        let done = LearnedPrompt {
            momentum: None,
            ..state.clone()
        };
        done.save(out)?;
    }
    Ok(state)
}

/// One step's images, already normalised `[B, 3, n, n]` flat, and their labels.
pub struct Batch {
    pub pixels: Vec<f32>,
    pub labels: Vec<usize>,
}

/// How many steps an epoch has, and where to stop early.
#[derive(Debug, Clone, Copy)]
pub struct EpochPlan {
    pub steps_per_epoch: usize,
    pub stop: StopAt,
}

/// What the trainer reports after each update.
pub struct StepEvent<'a> {
    pub point: &'a LossPoint,
    pub total_steps: usize,
    /// The context after this step's update.
    pub ctx: &'a [f32],
    /// SGD's momentum buffer after this step.
    pub momentum: &'a [f32],
}

/// The training loop itself: per epoch the learning rate of [`OptimConfig::lr_at`] (the
/// scheduler steps after the epoch's last batch), per step `batch(epoch, step)` → image
/// features → [`step`] → the non-finite checks (and loss scaling) → [`sgd_update`]; the state
/// is written to `out` after every epoch when given. `ntlb train` feeds it augmented pictures,
/// Batches per epoch by Dassl's rule (`build_data_loader`: `drop_last = len(data) >= batch_size`):
/// the last partial batch is dropped, unless the set holds less than one batch, which then
/// trains as one short batch (a 1-shot EuroSAT epoch: 10 images, one step; a 1-shot ImageNet
/// epoch: 31 steps of 32, 8 images unused).
pub fn steps_per_epoch(images: usize, batch: usize) -> usize {
    let b = batch.max(1);
    if images >= b {
        images / b
    } else {
        1
    }
}

/// `ntlb parity` a case's fixed batches: one loop, so parity pins what training does.
#[allow(clippy::too_many_arguments)]
pub fn run_epochs(
    clip: &Clip,
    layout: &PromptLayout,
    cfg: &TrainConfig,
    state: &mut LearnedPrompt,
    plan: EpochPlan,
    mut batch: impl FnMut(usize, usize) -> Result<Batch>,
    out: Option<&Path>,
    mut on_step: impl FnMut(&StepEvent),
) -> Result<()> {
    let device = clip.text.token_embedding.device();
    let n = clip.config.vision.image_resolution();
    let ctx_shape = state.manifest.ctx_shape;
    let steps_per_epoch = plan.steps_per_epoch;
    cfg.loss_scale.check()?;
    let scaling = cfg.loss_scale.enabled(&device);
    if scaling && state.manifest.loss_scaler.is_none() {
        state.manifest.loss_scaler = Some(LossScaler::new(&cfg.loss_scale));
    }
    let mut opts = StepOptions {
        chunk: cfg.chunk,
        want_scores: false,
        want_rows: false,
        want_grad: true,
        pass1: crate::objective::Pass1::Shared,
        loss_scale: 1.0,
    };
    let total_steps = cfg.optim.epochs * steps_per_epoch;
    // The context of the last step whose loss and gradient were finite.
    let mut last_good = state.ctx.clone();
    for epoch in state.manifest.epochs_done..cfg.optim.epochs {
        if plan.stop.after_epochs.is_some_and(|e| epoch >= e) {
            break;
        }
        let lr = cfg.optim.lr_at(epoch);
        for s in 0..steps_per_epoch {
            let Batch { pixels, labels } = batch(epoch, s)?;
            let images = Tensor::<4>::from_data(TensorData::new(pixels, [labels.len(), 3, n, n]), &device);
            let feats = l2_normalize(clip.encode_image(images).detach());
            if let Some(sc) = &state.manifest.loss_scaler {
                opts.loss_scale = sc.scale();
            }
            let r = step(clip, layout, &state.ctx, ctx_shape, feats, &labels, &cfg.loss, &opts)?;
            let global = epoch * steps_per_epoch + s + 1;
            let grad_finite = r.grad_ctx.iter().all(|g| g.is_finite());
            let mut scaler_note = String::new();
            if let Some(sc) = state.manifest.loss_scaler.as_mut() {
                // A finite loss with a non-finite gradient: skip the step at half the scale.
                if r.total.is_finite() && !grad_finite {
                    match sc.overflow(&cfg.loss_scale) {
                        Ok(()) => continue,
                        Err(e) => scaler_note = format!(" ({e})"),
                    }
                }
                if grad_finite {
                    sc.good(&cfg.loss_scale);
                }
            }
            if !r.total.is_finite() || !grad_finite {
                let bad_grads = r.grad_ctx.iter().filter(|g| !g.is_finite()).count();
                let what = if r.total.is_finite() {
                    format!(
                        "non-finite gradient ({bad_grads} of {} context entries; loss {})",
                        r.grad_ctx.len(),
                        r.total
                    )
                } else {
                    format!("non-finite loss ({}, ce {}, expl {})", r.total, r.ce, r.expl)
                };
                let where_ = format!("at epoch {} step {} (step {global} of {total_steps})", epoch + 1, s + 1);
                let Some(out) = out else {
                    bail!("{what}{scaler_note} {where_}");
                };
                let good = LearnedPrompt {
                    ctx: last_good,
                    momentum: None,
                    manifest: state.manifest.clone(),
                };
                good.write(out, "ctx.last_good.safetensors", "ctx.last_good.json")?;
                bail!(
                    "{what}{scaler_note} {where_}; the last good context is in {}",
                    out.join("ctx.last_good.safetensors").display()
                );
            }
            last_good.clone_from(&state.ctx);
            sgd_update(
                &mut state.ctx,
                &r.grad_ctx,
                &mut state.momentum,
                lr,
                cfg.optim.momentum,
                cfg.optim.weight_decay,
            );
            let point = LossPoint {
                epoch: epoch + 1,
                step: global,
                lr,
                loss: r.total,
                ce: r.ce,
                expl: r.expl,
                acc: r.accuracy,
            };
            on_step(&StepEvent {
                point: &point,
                total_steps,
                ctx: &state.ctx,
                momentum: state.momentum.as_deref().unwrap_or(&[]),
            });
            state.manifest.loss_curve.push(point);
        }
        state.manifest.epochs_done = epoch + 1;
        if let Some(out) = out {
            state.write_state(out)?;
        }
    }
    Ok(())
}

/// A fresh training state: `ctx` as the initial context, nothing trained yet.
pub fn initial_state(
    cfg: &TrainConfig,
    classes: &[String],
    ctx: Vec<f32>,
    ctx_shape: [usize; 2],
    checkpoint: (&str, &str),
) -> LearnedPrompt {
    LearnedPrompt {
        ctx,
        momentum: None,
        manifest: Manifest {
            ntlb_version: env!("CARGO_PKG_VERSION").into(),
            config: cfg.clone(),
            classes: classes.to_vec(),
            checkpoint: checkpoint.0.into(),
            checkpoint_sha256: checkpoint.1.into(),
            ctx_shape,
            epochs_done: 0,
            loss_curve: Vec::new(),
            split: None,
            loss_scaler: None,
            model_numerics: None,
        },
    }
}

/// Random crop parameters are drawn from this generator type (re-exported for callers).
pub type TrainRng = rand_chacha::ChaCha8Rng;

#[cfg(test)]
mod tests {
    use super::steps_per_epoch;

    /// Dassl's `drop_last = len(data) >= batch_size`: a set smaller than a batch trains as one
    /// short batch, a larger one drops its last partial batch.
    #[test]
    fn drop_last_only_when_the_set_holds_a_batch() {
        // 1-shot EuroSAT (10 classes): one step of 10 images.
        assert_eq!(steps_per_epoch(10, 32), 1);
        // 1-shot ImageNet: 31 steps of 32, the last 8 images unused.
        assert_eq!(steps_per_epoch(1000, 32), 31);
        assert_eq!(1000 - 31 * 32, 8);
        // 1-shot DTD (47 classes): one step, 15 dropped; exactly one batch: one step.
        assert_eq!(steps_per_epoch(47, 32), 1);
        assert_eq!(steps_per_epoch(32, 32), 1);
        assert_eq!(steps_per_epoch(31, 32), 1);
    }
}
