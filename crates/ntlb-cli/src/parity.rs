//! `ntlb parity`: recompute a case in the golden schema from its inputs, write it, compare.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::Clip;
use ntlb_golden::{clip_cases::compute_clip_case, compare::compare};
use serde_json::{Map, Value};

#[derive(clap::Args)]
pub struct ParityArgs {
    /// Case file in the schema of ../shared/golden (its `outputs` may be absent).
    #[arg(long)]
    case: PathBuf,
    /// Checkpoint: a Hugging Face folder, a .safetensors or torch.save (.bin/.pt/.pth) state
    /// dict, or a model in the local Hugging Face cache: org/name (transformers) or
    /// hf-hub:org/name (open_clip).
    #[arg(long)]
    model: PathBuf,
    /// Revision of a model name: branch, tag or commit hash (default: main).
    #[arg(long)]
    revision: Option<String>,
    /// quick_gelu or gelu for both towers (default: what the checkpoint declares; an error
    /// where it declares the other).
    #[arg(long)]
    activation: Option<ntlb_clip::config::Activation>,
    /// tokenizer.json (default: the one beside the model).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Where to write the recomputed case.
    #[arg(long)]
    out: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, bf16 or f16; half precision is compared with `--tolerance-scale`.
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Multiply every tolerance (half precision cannot meet float32's).
    #[arg(long, default_value_t = 1.0)]
    tolerance_scale: f64,
}

pub fn run(mut a: ParityArgs) -> Result<i32> {
    a.model = ntlb_clip::hub::resolve_path(&a.model, a.revision.as_deref())?;
    let device = ntlb_clip::device::parse_device_with(&a.device, &a.precision)?;
    let text = std::fs::read_to_string(&a.case).with_context(|| format!("reading case {}", a.case.display()))?;
    let case: Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", a.case.display()))?;
    let experiment = case.get("experiment").and_then(Value::as_str).unwrap_or("").to_string();
    let tok = ClipTokenizer::for_model(&a.model, a.tokenizer.as_deref())?;
    // Prompt-learning cases need gradients: their model lives on the autodiff device.
    let device = if experiment.starts_with("coop") {
        device.autodiff()
    } else {
        device
    };
    let clip = Clip::load_with(
        &a.model,
        ntlb_clip::LoadOptions {
            expected: None,
            activation: a.activation,
        },
        &device,
    )?;
    eprintln!("model: {}", clip.numerics.describe());
    let tok = tok.with_context_length(clip.config.text.context_length);
    // The computation sees the case without its outputs, except the variants' settings.
    let inputs_only = strip_outputs(&case);
    let ours: Map<String, Value> = match compute_clip_case(&inputs_only, &clip, Some(&tok), &device)? {
        Some(o) => o,
        None => match ntlb_golden::coop_cases::compute_coop_case(&inputs_only, &clip, &tok, &device)? {
            Some(o) => o,
            None => match ntlb_golden::trajectory::compute_trajectory_case(&inputs_only, &clip, &tok, &device)? {
                Some(o) => o,
                None => bail!("{}: experiment `{experiment}` is not one ntlb computes", a.case.display()),
            },
        },
    };
    let mut written = case.as_object().cloned().unwrap_or_default();
    written.insert("outputs".into(), Value::Object(ours.clone()));
    written.insert(
        "provenance".into(),
        serde_json::json!({"generator": "ntlb parity", "version": env!("CARGO_PKG_VERSION"), "model": a.model.display().to_string(), "device": a.device, "model_numerics": clip.numerics}),
    );
    ntlb_core::atomic::write_atomic(&a.out, serde_json::to_string(&Value::Object(written))?.as_bytes())
        .with_context(|| format!("writing {}", a.out.display()))?;
    let Some(expected) = case.get("outputs") else {
        println!(
            "{experiment}: computed {} fields, written to {}; the case has no outputs to compare",
            ours.len(),
            a.out.display()
        );
        return Ok(0);
    };
    let mut checks = compare(&experiment, &ours, expected, "");
    for c in &mut checks {
        if c.tolerance > 0.0 {
            c.tolerance *= a.tolerance_scale;
        }
    }
    let mut failed = 0;
    println!("{:<44} {:>12} {:>12} {:>10}  ok", "field", "max_abs", "rel", "tol");
    for c in &checks {
        println!(
            "{:<44} {:>12.3e} {:>12.3e} {:>10.0e}  {}",
            c.field,
            c.deviation.max_abs,
            c.deviation.rel,
            c.tolerance,
            if c.ok() { "yes" } else { "NO" }
        );
        failed += usize::from(!c.ok());
    }
    if checks.is_empty() {
        bail!("no field in common with the case's outputs");
    }
    if failed > 0 {
        eprintln!("{failed} field(s) past tolerance");
        return Ok(1);
    }
    Ok(0)
}

/// A copy of the case whose `outputs` keep only `variants.data.<name>.config_changes`.
pub fn strip_outputs(case: &Value) -> Value {
    let mut c = case.clone();
    if let Some(obj) = c.as_object_mut() {
        let variants = case.pointer("/outputs/variants/data").and_then(Value::as_object).map(|vs| {
            let kept: Map<String, Value> = vs
                .iter()
                .map(|(name, v)| {
                    (
                        name.clone(),
                        serde_json::json!({"config_changes": v.get("config_changes").cloned().unwrap_or(Value::Null)}),
                    )
                })
                .collect();
            serde_json::json!({"variants": {"data": kept}})
        });
        match variants {
            Some(v) => obj.insert("outputs".into(), v),
            None => obj.remove("outputs"),
        };
    }
    c
}
