//! Recompute a golden case's outputs from its inputs alone, and compare them with the case's
//! expected outputs. The computation never reads `outputs`.

use anyhow::{bail, Result};
use burn::tensor::Device;
use serde_json::{json, Map, Value};

use ntlb_clip::tokenizer::{pooled_positions, ClipTokenizer};
use ntlb_clip::Clip;
use ntlb_core::host::to_f32_vec;

use crate::case::{at, float_tensor, int_tensor, tensor_at, tensor_from, GoldenTensor};

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
                cleaned.push(ntlb_clip::text_clean::clean_text(t));
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
            let eot = pooled_positions(&ids);
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
