//! The golden `coop_*` cases: one CoOp + explainability training step of the reference,
//! recomputed from the case's inputs (class names, context, images, labels, config).

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::{Device, Tensor};
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::{l2_normalize, Clip};
use ntlb_core::host::to_f32_vec;
use ntlb_prompt::objective::{step, LossConfig, Pass1, StepOptions};
use ntlb_prompt::prompt::{ClassPosition, PromptConfig, PromptLayout, Source};
use serde_json::{json, Map, Value};

use crate::case::{at, float_tensor, int_tensor, tensor_at, tensor_from};

fn cfg<'a>(case: &'a Value, key: &str) -> Result<&'a Value> {
    at(case, "config")?.get(key).ok_or_else(|| anyhow!("case config has no `{key}`"))
}

fn loss_from(changes: &Value, base: LossConfig) -> LossConfig {
    LossConfig {
        expl_weight: changes.get("EXPL_WEIGHT").and_then(Value::as_f64).unwrap_or(base.expl_weight),
        also_minimize: changes.get("ALSO_MINIMIZE").and_then(Value::as_bool).unwrap_or(base.also_minimize),
        ce_weight: 1.0,
        ..base
    }
}

fn wrap(v: impl Into<Value>, description: &str) -> Value {
    json!({"description": description, "data": v.into()})
}

/// Outputs of a `coop_*` case, or `None` for other experiments. `clip` must live on an
/// autodiff device.
pub fn compute_coop_case(case: &Value, clip: &Clip, tok: &ClipTokenizer, device: &Device) -> Result<Option<Map<String, Value>>> {
    compute_coop_case_with(case, clip, tok, device, Pass1::default())
}

/// As [`compute_coop_case`] with pass 1 chosen (the parity test runs both).
pub fn compute_coop_case_with(
    case: &Value,
    clip: &Clip,
    tok: &ClipTokenizer,
    device: &Device,
    pass1: Pass1,
) -> Result<Option<Map<String, Value>>> {
    let experiment = at(case, "experiment")?.as_str().unwrap_or_default();
    if !experiment.starts_with("coop") || experiment == crate::trajectory::EXPERIMENT {
        return Ok(None);
    }
    if !device.is_autodiff() {
        bail!("the coop cases need gradients: load the model on an autodiff device");
    }
    let classnames: Vec<String> = serde_json::from_value(at(case, "inputs.classnames")?.get("data").cloned().unwrap_or_default())
        .context("inputs.classnames.data")?;
    let position = match cfg(case, "TRAINER.COOP.CLASS_TOKEN_POSITION")?.as_str() {
        Some("end") => ClassPosition::End,
        Some("middle") => ClassPosition::Middle,
        Some("front") => ClassPosition::Front,
        other => bail!("unknown CLASS_TOKEN_POSITION {other:?}"),
    };
    let init = cfg(case, "TRAINER.COOP.CTX_INIT")?.as_str().unwrap_or("").trim().to_string();
    let pconf = PromptConfig {
        n_ctx: cfg(case, "TRAINER.COOP.N_CTX")?.as_u64().ok_or_else(|| anyhow!("N_CTX"))? as usize,
        class_position: position,
        class_specific: cfg(case, "TRAINER.COOP.CSC")?.as_bool().unwrap_or(false),
        init_words: (!init.is_empty()).then_some(init),
        allow_duplicate_names: false,
    };
    let base_loss = LossConfig {
        expl_weight: cfg(case, "TRAINER.COOP.EXPL_WEIGHT")?.as_f64().unwrap_or(1.0),
        also_minimize: cfg(case, "TRAINER.COOP.ALSO_MINIMIZE")?.as_bool().unwrap_or(true),
        ce_weight: 1.0,
        // The reference's score: the maximum over the name.
        ..LossConfig::default()
    };
    let layout = PromptLayout::new(tok, &classnames, &pconf)?;
    let ctx = tensor_at(case, "inputs.ctx")?;
    if ctx.shape.len() != 2 {
        bail!("inputs.ctx must be [n_ctx, width], got {:?}", ctx.shape);
    }
    let ctx_shape = [ctx.shape[0], ctx.shape[1]];
    let ctx = ctx.f32s();
    let images = tensor_from(&tensor_at(case, "inputs.images")?, device);
    let labels: Vec<usize> = tensor_at(case, "inputs.labels")?.data.iter().map(|&v| v as usize).collect();
    let (c, b, l) = (layout.n_classes(), labels.len(), clip.config.text.context_length);

    let img = l2_normalize(clip.encode_image(images).detach());
    let full = StepOptions {
        chunk: 64,
        want_scores: true,
        want_rows: true,
        want_grad: true,
        pass1,
        loss_scale: 1.0,
    };
    // Every step of this case differs only in the loss settings and what is kept.
    let run = |loss: &LossConfig, opts: &StepOptions| step(clip, &layout, &ctx, ctx_shape, img.clone(), &labels, loss, opts);
    let main = run(&base_loss, &full)?;
    let parts = StepOptions { want_rows: false, ..full };
    let ce_part = run(
        &LossConfig {
            expl_weight: 0.0,
            ..base_loss
        },
        &parts,
    )?;
    let expl_part = run(
        &LossConfig {
            ce_weight: 0.0,
            ..base_loss
        },
        &parts,
    )?;

    let ctx_t = Tensor::<2>::from_data(burn::tensor::TensorData::new(ctx.clone(), ctx_shape), device);
    let all: Vec<usize> = (0..c).collect();
    let prompts_full = layout.assemble(clip, ctx_t, &all, l);
    let row_norms = to_f32_vec(prompts_full.clone().powi_scalar(2).sum_dim(2).sqrt());
    let text = clip
        .text
        .encode_embeddings(prompts_full, &layout.eot, ntlb_clip::model::Probe::Off)
        .features;
    let text_n = l2_normalize(text.clone());

    let mut out = Map::new();
    out.insert("name_lens".into(), wrap(json!(layout.name_lens), "len(encode(name)) per class"));
    out.insert("classnames_idx".into(), wrap(json!(layout.name_start), "first class-name position"));
    let tokenized: Vec<i64> = layout.tokenized.iter().flatten().map(|&t| t as i64).collect();
    out.insert(
        "tokenized_prompts".into(),
        int_tensor(vec![c, l], &tokenized).to_json("tokenized prompts"),
    );
    let eot: Vec<i64> = layout.eot.iter().map(|&e| e as i64).collect();
    out.insert("eot_positions".into(), int_tensor(vec![c], &eot).to_json("end-of-text positions"));
    let sources: Vec<Vec<Value>> = layout
        .sources
        .iter()
        .map(|row| {
            row.iter()
                .map(|s| match s {
                    Source::Ctx(k) => json!(format!("ctx{k}")),
                    Source::Token(t) => json!(t),
                })
                .collect()
        })
        .collect();
    out.insert("prompt_token_source".into(), wrap(json!(sources), "source of each assembled row"));
    out.insert(
        "prompt_embedding_row_norms".into(),
        float_tensor(vec![c, l], &row_norms).to_json("row norms of the assembled prompts"),
    );
    let mask: Vec<f32> = layout.name_mask().into_iter().flatten().collect();
    out.insert(
        "classname_explainability_weights".into(),
        float_tensor(vec![c, l], &mask).to_json("class-name mask"),
    );
    out.insert(
        "image_features_normalized".into(),
        float_tensor(vec![b, clip.config.embed_dim], &to_f32_vec(img.clone())).to_json("normalised image features"),
    );
    out.insert(
        "text_features_normalized".into(),
        float_tensor(vec![c, clip.config.embed_dim], &to_f32_vec(text_n)).to_json("normalised text features"),
    );
    out.insert(
        "text_features".into(),
        float_tensor(vec![c, clip.config.embed_dim], &to_f32_vec(text)).to_json("text features"),
    );
    out.insert("logits".into(), float_tensor(vec![b, c], &main.logits).to_json("logits"));
    out.insert(
        "expl_scores".into(),
        float_tensor(vec![b, c], &main.scores).to_json("explainability scores"),
    );
    out.insert(
        "text_relevance_full".into(),
        float_tensor(vec![b, c, l], &main.relevance).to_json("normalised end-of-text relevance rows"),
    );
    let pos: Vec<i64> = main.score_positions.iter().map(|&p| p as i64).collect();
    out.insert(
        "expl_argmax_position".into(),
        int_tensor(vec![b, c], &pos).to_json("argmax position of each score"),
    );
    out.insert("ce_loss".into(), wrap(json!(main.ce), "cross-entropy"));
    out.insert("expl_loss".into(), wrap(json!(main.expl), "explainability loss"));
    out.insert("total_loss".into(), wrap(json!(main.total), "total loss"));
    out.insert(
        "total_loss_tensor".into(),
        float_tensor(vec![], &[main.total as f32]).to_json("total loss"),
    );
    out.insert("acc".into(), wrap(json!(main.accuracy), "top-1 accuracy (percent)"));
    out.insert(
        "grad_ctx".into(),
        float_tensor(ctx_shape.to_vec(), &main.grad_ctx).to_json("d(total)/d(ctx)"),
    );
    out.insert(
        "grad_ctx_ce_part".into(),
        float_tensor(ctx_shape.to_vec(), &ce_part.grad_ctx).to_json("d(ce)/d(ctx)"),
    );
    out.insert(
        "grad_ctx_expl_part".into(),
        float_tensor(ctx_shape.to_vec(), &expl_part.grad_ctx).to_json("d(λ·expl)/d(ctx)"),
    );

    if let Some(vs) = case.pointer("/outputs/variants/data").and_then(Value::as_object) {
        let mut variants = Map::new();
        for (name, v) in vs {
            let changes = v.get("config_changes").cloned().unwrap_or(Value::Null);
            let lc = loss_from(&changes, base_loss);
            let r = run(&lc, &parts)?;
            variants.insert(
                name.clone(),
                json!({"config_changes": changes, "loss": r.total, "ce_loss": r.ce, "expl_loss": r.expl,
                       "grad_ctx": float_tensor(ctx_shape.to_vec(), &r.grad_ctx).to_json("d(total)/d(ctx) for this variant")}),
            );
        }
        out.insert("variants".into(), wrap(Value::Object(variants), "same inputs, other loss settings"));
    }
    Ok(Some(out))
}
