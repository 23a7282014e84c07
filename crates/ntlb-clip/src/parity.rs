//! Recompute a golden case's outputs from its inputs alone, and compare them with the case's
//! expected outputs. The computation never reads `outputs`.

use anyhow::{bail, Result};
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::{json, Map, Value};

use crate::golden::{at, deviation, float_tensor, int_tensor, tensor_at, Deviation, GoldenTensor};
use crate::tokenizer::ClipTokenizer;
use crate::Clip;

/// Read a float tensor back from the device as f32.
pub fn to_f32_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("float32 data")
}

pub fn tensor_from(g: &GoldenTensor, device: &Device) -> Tensor<4> {
    let s = &g.shape;
    assert_eq!(s.len(), 4, "expected a 4-d tensor");
    Tensor::from_data(TensorData::new(g.f32s(), [s[0], s[1], s[2], s[3]]), device)
}

/// The pooled position of each id row: the first maximum, as torch's `argmax` on CPU.
pub fn argmax_rows(ids: &[Vec<u32>]) -> Vec<usize> {
    ids.iter()
        .map(|r| {
            let m = r.iter().copied().max().unwrap_or(0);
            r.iter().position(|&t| t == m).unwrap_or(0)
        })
        .collect()
}

fn id_rows(g: &GoldenTensor) -> Result<Vec<Vec<u32>>> {
    if g.shape.len() != 2 {
        bail!("ids must be 2-d, got {:?}", g.shape);
    }
    Ok(g.data.chunks(g.shape[1]).map(|r| r.iter().map(|&x| x as u32).collect()).collect())
}

fn strings(case: &Value, path: &str) -> Result<Vec<String>> {
    let v = at(case, path)?;
    let v = v.get("data").unwrap_or(v);
    Ok(serde_json::from_value(v.clone())?)
}

/// Outputs of the `tokenize`, `encode_text` and `encode_image` experiments; `None` for other
/// experiments. Truncation is on: the reference generated these cases with `truncate=True`.
pub fn compute_clip_case(case: &Value, clip: &Clip, tok: Option<&ClipTokenizer>, device: &Device) -> Result<Option<Map<String, Value>>> {
    let experiment = at(case, "experiment")?.as_str().unwrap_or_default().to_string();
    let mut out = Map::new();
    match experiment.as_str() {
        "tokenize" => {
            let tok = tok.ok_or_else(|| anyhow::anyhow!("the tokenize case needs a tokenizer.json"))?;
            let texts = strings(case, "inputs.strings")?;
            let mut ids = Vec::new();
            let (mut eots, mut n_tokens, mut pieces, mut cleaned) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for t in &texts {
                let tk = tok.tokenize(t, true)?;
                eots.push(tk.eot as i64);
                n_tokens.push(tk.eot + 1);
                pieces.push(
                    tk.ids[..=tk.eot]
                        .iter()
                        .map(|&i| tok.id_to_token(i).unwrap_or_default())
                        .collect::<Vec<_>>(),
                );
                cleaned.push(crate::text_clean::clean_text(t));
                ids.extend(tk.ids.iter().map(|&i| i as i64));
            }
            let n = texts.len();
            out.insert(
                "ids".into(),
                int_tensor(vec![n, tok.context_length], &ids).to_json("token ids [N,77]"),
            );
            out.insert("eot_positions".into(), int_tensor(vec![n], &eots).to_json("index of <|endoftext|>"));
            out.insert(
                "n_tokens".into(),
                json!({"description": "non-pad tokens incl. SOT/EOT", "data": n_tokens}),
            );
            out.insert(
                "pieces".into(),
                json!({"description": "vocab strings of ids[:eot+1]", "data": pieces}),
            );
            out.insert(
                "cleaned_text".into(),
                json!({"description": "whitespace_clean(basic_clean(s)).lower()", "data": cleaned}),
            );
            out.insert(
                "special_ids".into(),
                json!({"description": "special ids", "data": {"sot": tok.sot, "eot": tok.eot, "pad": 0}}),
            );
        }
        "encode_text" => {
            let ids = id_rows(&tensor_at(case, "inputs.ids")?)?;
            let eot = argmax_rows(&ids);
            let f = to_f32_vec(clip.encode_text(&ids, &eot));
            out.insert(
                "text_features".into(),
                float_tensor(vec![ids.len(), clip.config.embed_dim], &f).to_json("encode_text(ids), unnormalised"),
            );
        }
        "encode_image" => {
            let images = tensor_at(case, "inputs.images")?;
            let f = to_f32_vec(clip.encode_image(tensor_from(&images, device)));
            out.insert(
                "image_features".into(),
                float_tensor(vec![images.shape[0], clip.config.embed_dim], &f).to_json("encode_image(images), unnormalised"),
            );
        }
        _ => return Ok(None),
    }
    Ok(Some(out))
}

/// One compared field.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FieldCheck {
    pub field: String,
    pub deviation: Deviation,
    pub tolerance: f64,
}

impl FieldCheck {
    pub fn ok(&self) -> bool {
        self.deviation.rel <= self.tolerance
    }
}

/// Relative tolerance per field: ids and strings exact, features 1e-5, prompt-learning
/// quantities 1e-4 (a backward pass through softmax and the relevance recursion).
pub fn tolerance(experiment: &str, field: &str) -> f64 {
    match experiment {
        "tokenize" => 0.0,
        "encode_text" | "encode_image" => 1e-5,
        _ if field.contains("position")
            || field.contains("tokenized")
            || field.contains("name_lens")
            || field.contains("idx")
            || field.contains("source") =>
        {
            0.0
        }
        _ => 1e-4,
    }
}

fn numeric_leaves(v: &Value, out: &mut Vec<f64>) -> bool {
    match v {
        Value::Number(n) => {
            out.push(n.as_f64().unwrap_or(f64::NAN));
            true
        }
        Value::Bool(b) => {
            out.push(*b as u8 as f64);
            true
        }
        Value::Array(a) => a.iter().all(|x| numeric_leaves(x, out)),
        _ => false,
    }
}

/// Compare every field of `ours` that `expected` also has, recursing into objects (the coop
/// cases' `variants`); tensors and numbers by deviation, anything else by equality.
pub fn compare(experiment: &str, ours: &Map<String, Value>, expected: &Value, prefix: &str) -> Vec<FieldCheck> {
    let mut checks = Vec::new();
    for (k, v) in ours {
        if k == "description" {
            continue;
        }
        if let Some(e) = expected.get(k) {
            let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            walk(experiment, k, v, e, &name, &mut checks);
        }
    }
    checks
}

fn walk(experiment: &str, key: &str, ours: &Value, expected: &Value, name: &str, checks: &mut Vec<FieldCheck>) {
    let is_tensor = ours.get("shape").is_some();
    if !is_tensor {
        if let Some(inner) = ours.get("data") {
            return walk(experiment, key, inner, expected.get("data").unwrap_or(expected), name, checks);
        }
        if let Some(map) = ours.as_object() {
            checks.extend(compare(experiment, map, expected, name));
            return;
        }
    }
    let (ov, ev) = (ours.get("data").unwrap_or(ours), expected.get("data").unwrap_or(expected));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let deviation = if numeric_leaves(ov, &mut a) && numeric_leaves(ev, &mut b) && a.len() == b.len() {
        deviation(&a, &b)
    } else if ov == ev {
        Deviation { max_abs: 0.0, rel: 0.0 }
    } else {
        Deviation {
            max_abs: f64::INFINITY,
            rel: f64::INFINITY,
        }
    };
    checks.push(FieldCheck {
        tolerance: tolerance(experiment, key),
        field: name.to_string(),
        deviation,
    });
}
