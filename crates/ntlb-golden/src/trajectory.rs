//! The golden `coop_trajectory` cases: several steps of the reference trainer (its
//! `forward_backward` with Dassl's SGD and warm-up + cosine schedule) on fixed images. They are
//! run through ntlb's own training loop ([`ntlb_prompt::train::run_epochs`], the loop `ntlb
//! train` runs) fed the case's batches instead of augmented pictures: nothing of the update,
//! the schedule or the loop order is re-implemented here.

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::Device;
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::Clip;
use ntlb_prompt::objective::LossConfig;
use ntlb_prompt::prompt::{ClassPosition, PromptConfig, PromptLayout};
use ntlb_prompt::train::{initial_state, run_epochs, Batch, EpochPlan, OptimConfig, StopAt, TrainConfig};
use serde_json::{json, Map, Value};

use crate::case::{at, float_tensor, tensor_at};

pub const EXPERIMENT: &str = "coop_trajectory";

/// `inputs.<key>.data` (or `inputs.<key>` when it is not wrapped).
fn input<'a>(case: &'a Value, key: &str) -> Result<&'a Value> {
    let v = at(case, &format!("inputs.{key}"))?;
    Ok(v.get("data").unwrap_or(v))
}

fn num(v: &Value, key: &str) -> Result<f64> {
    v.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| anyhow!("`{key}` missing or not a number"))
}

fn wrap(v: impl Into<Value>, description: &str) -> Value {
    json!({"description": description, "data": v.into()})
}

/// The training settings a case describes.
fn train_config(case: &Value, n_batch: usize) -> Result<TrainConfig> {
    let o = input(case, "optim").context("inputs.optim")?;
    let l = input(case, "loss").context("inputs.loss")?;
    let position: ClassPosition = input(case, "class_position")?
        .as_str()
        .ok_or_else(|| anyhow!("inputs.class_position is not a string"))?
        .parse()?;
    let n_ctx = input(case, "n_ctx")?
        .as_u64()
        .ok_or_else(|| anyhow!("inputs.n_ctx is not an integer"))? as usize;
    let class_specific = match case.pointer("/inputs/csc") {
        Some(v) => v
            .get("data")
            .unwrap_or(v)
            .as_bool()
            .ok_or_else(|| anyhow!("inputs.csc is not a boolean"))?,
        None => false,
    };
    let epochs = num(o, "epochs").context("inputs.optim")? as usize;
    Ok(TrainConfig {
        prompt: PromptConfig {
            n_ctx,
            class_position: position,
            class_specific,
            init_words: None,
            allow_duplicate_names: false,
        },
        loss: LossConfig {
            expl_weight: num(l, "expl_weight").context("inputs.loss")?,
            also_minimize: l.get("also_minimize").and_then(Value::as_bool).unwrap_or(true),
            ce_weight: l.get("ce_weight").and_then(Value::as_f64).unwrap_or(1.0),
            ..LossConfig::default()
        },
        optim: OptimConfig {
            lr: num(o, "lr").context("inputs.optim")?,
            momentum: num(o, "momentum").context("inputs.optim")?,
            weight_decay: num(o, "weight_decay").context("inputs.optim")?,
            epochs,
            batch_size: n_batch,
            warmup_epochs: o.get("warmup_epochs").and_then(Value::as_u64).unwrap_or(0) as usize,
            warmup_lr: o.get("warmup_lr").and_then(Value::as_f64).unwrap_or(0.0),
        },
        ..TrainConfig::default()
    })
}

/// Outputs of a `coop_trajectory` case, or `None` for other experiments. `clip` must live on an
/// autodiff device.
pub fn compute_trajectory_case(case: &Value, clip: &Clip, tok: &ClipTokenizer, device: &Device) -> Result<Option<Map<String, Value>>> {
    if at(case, "experiment")?.as_str() != Some(EXPERIMENT) {
        return Ok(None);
    }
    if !device.is_autodiff() {
        bail!("the trajectory cases need gradients: load the model on an autodiff device");
    }
    let classnames: Vec<String> = serde_json::from_value(input(case, "classnames")?.clone()).context("inputs.classnames")?;
    let ctx = tensor_at(case, "inputs.ctx")?;
    if ctx.shape.len() != 2 {
        bail!("inputs.ctx must be [rows, width], got {:?}", ctx.shape);
    }
    let ctx_shape = [ctx.shape[0], ctx.shape[1]];
    let images = tensor_at(case, "inputs.images")?;
    let n = clip.config.vision.image_resolution();
    if images.shape.len() != 4 || images.shape[1..] != [3, n, n] {
        bail!("inputs.images must be [P, 3, {n}, {n}] for this model, got {:?}", images.shape);
    }
    let pool = images.f32s();
    let per_image = 3 * n * n;
    let batches: Vec<(Vec<usize>, Vec<usize>)> =
        serde_json::from_value(input(case, "batches")?.clone()).context("inputs.batches: expected [[image indices], [labels]] per step")?;
    let steps_per_epoch = input(case, "steps_per_epoch")?
        .as_u64()
        .ok_or_else(|| anyhow!("inputs.steps_per_epoch is not an integer"))? as usize;
    let cfg = train_config(case, batches.first().map_or(0, |b| b.0.len()))?;
    if batches.len() != cfg.optim.epochs * steps_per_epoch {
        bail!(
            "inputs.batches has {} steps, the schedule {} epochs × {steps_per_epoch}",
            batches.len(),
            cfg.optim.epochs
        );
    }
    for (i, (idx, labels)) in batches.iter().enumerate() {
        if idx.len() != labels.len() {
            bail!("inputs.batches[{i}]: {} images, {} labels", idx.len(), labels.len());
        }
        if let Some(bad) = idx.iter().find(|&&j| j >= images.shape[0]) {
            bail!("inputs.batches[{i}]: image {bad} is not in the pool of {}", images.shape[0]);
        }
    }
    let layout = PromptLayout::new(tok, &classnames, &cfg.prompt)?;
    let expected_rows = if cfg.prompt.class_specific {
        classnames.len() * cfg.prompt.n_ctx
    } else {
        cfg.prompt.n_ctx
    };
    if ctx_shape != [expected_rows, clip.config.text.width] {
        bail!(
            "inputs.ctx is {ctx_shape:?}, the prompt needs [{expected_rows}, {}]",
            clip.config.text.width
        );
    }
    let initial = ctx.f32s();
    let mut state = initial_state(&cfg, &classnames, initial.clone(), ctx_shape, ("case", ""));
    let mut after: Vec<f32> = Vec::new();
    let mut momentum: Vec<f32> = Vec::new();
    let fixed = |epoch: usize, s: usize| -> Result<Batch> {
        let (idx, labels) = &batches[epoch * steps_per_epoch + s];
        Ok(Batch {
            pixels: idx
                .iter()
                .flat_map(|&j| pool[j * per_image..(j + 1) * per_image].iter().copied())
                .collect(),
            labels: labels.clone(),
        })
    };
    run_epochs(
        clip,
        &layout,
        &cfg,
        &mut state,
        EpochPlan {
            steps_per_epoch,
            stop: StopAt::default(),
        },
        fixed,
        None,
        |e| {
            after.extend_from_slice(e.ctx);
            momentum = e.momentum.to_vec();
        },
    )?;
    let steps = state.manifest.loss_curve.len();
    let displacement: Vec<f32> = after
        .chunks(initial.len())
        .flat_map(|c| c.iter().zip(&initial).map(|(a, b)| a - b))
        .collect();
    let curve = &state.manifest.loss_curve;
    let mut out = Map::new();
    out.insert(
        "lr".into(),
        wrap(
            json!(curve.iter().map(|p| p.lr).collect::<Vec<_>>()),
            "learning rate used at each step",
        ),
    );
    out.insert(
        "loss".into(),
        wrap(
            json!(curve.iter().map(|p| p.loss).collect::<Vec<_>>()),
            "total loss at each step (before its update)",
        ),
    );
    out.insert(
        "ce".into(),
        wrap(json!(curve.iter().map(|p| p.ce).collect::<Vec<_>>()), "cross-entropy at each step"),
    );
    out.insert(
        "expl".into(),
        wrap(
            json!(curve.iter().map(|p| p.expl).collect::<Vec<_>>()),
            "explainability loss at each step",
        ),
    );
    let shape = vec![steps, ctx_shape[0], ctx_shape[1]];
    out.insert(
        "ctx_after".into(),
        float_tensor(shape.clone(), &after).to_json("context after each step"),
    );
    out.insert("displacement".into(), float_tensor(shape, &displacement).to_json("ctx_after − ctx"));
    out.insert(
        "momentum_final".into(),
        float_tensor(ctx_shape.to_vec(), &momentum).to_json("SGD momentum buffer after the last step"),
    );
    Ok(Some(out))
}
