//! Our outputs against a case's expected outputs, field by field, with a tolerance per field.

use serde_json::{Map, Value};

use crate::case::{deviation, Deviation};

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
/// quantities 1e-4 (a backward pass through softmax and the relevance recursion). Over a
/// trajectory the learning rate is exact (the schedule is arithmetic on the settings) and the
/// explainability loss, a small difference of two near-equal terms, 1e-3 (the golden README's
/// noise study: 6e-6 of gradient noise moves it 9e-6).
pub fn tolerance(experiment: &str, field: &str) -> f64 {
    match experiment {
        "tokenize" => 0.0,
        "encode_text" | "encode_image" => 1e-5,
        crate::trajectory::EXPERIMENT => match field {
            "lr" => 0.0,
            "expl" => 1e-3,
            _ => 1e-4,
        },
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
