//! The JSON case schema of the golden fixtures (`../shared/golden/README.md`): tensors are
//! `{shape, dtype, description, data}` with nested lists; float32 values round-trip exactly.

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct GoldenTensor {
    pub shape: Vec<usize>,
    pub dtype: String,
    pub data: Vec<f64>,
}

fn flatten(v: &Value, out: &mut Vec<f64>) -> Result<()> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|x| flatten(x, out)),
        Value::Number(n) => {
            out.push(n.as_f64().ok_or_else(|| anyhow!("non-finite number"))?);
            Ok(())
        }
        Value::String(s) if s == "NaN" || s == "Infinity" || s == "-Infinity" => {
            out.push(s.replace("Infinity", "inf").parse::<f64>().unwrap_or(f64::NAN));
            Ok(())
        }
        other => bail!("tensor data holds {other}, expected numbers"),
    }
}

impl GoldenTensor {
    pub fn parse(v: &Value) -> Result<GoldenTensor> {
        let shape: Vec<usize> =
            serde_json::from_value(v.get("shape").cloned().ok_or_else(|| anyhow!("tensor without `shape`"))?).context("tensor `shape`")?;
        let dtype = v.get("dtype").and_then(Value::as_str).unwrap_or("float32").to_string();
        let mut data = Vec::new();
        flatten(v.get("data").ok_or_else(|| anyhow!("tensor without `data`"))?, &mut data)?;
        let n: usize = shape.iter().product();
        if data.len() != n {
            bail!("tensor of shape {shape:?} holds {} values, expected {n}", data.len());
        }
        Ok(GoldenTensor { shape, dtype, data })
    }

    pub fn f32s(&self) -> Vec<f32> {
        self.data.iter().map(|&x| x as f32).collect()
    }

    pub fn to_json(&self, description: &str) -> Value {
        fn nest(shape: &[usize], data: &[f64], int: bool) -> Value {
            if shape.is_empty() {
                return if int { json!(data[0] as i64) } else { json!(data[0]) };
            }
            let step = shape[1..].iter().product::<usize>();
            Value::Array(
                (0..shape[0])
                    .map(|i| nest(&shape[1..], &data[i * step..(i + 1) * step], int))
                    .collect(),
            )
        }
        let int = self.dtype.starts_with("int");
        json!({"shape": self.shape, "dtype": self.dtype, "description": description, "data": nest(&self.shape, &self.data, int)})
    }
}

/// A 4-d case tensor (images) on the device.
pub fn tensor_from(g: &GoldenTensor, device: &Device) -> Tensor<4> {
    let s = &g.shape;
    assert_eq!(s.len(), 4, "expected a 4-d tensor");
    Tensor::from_data(TensorData::new(g.f32s(), [s[0], s[1], s[2], s[3]]), device)
}

pub fn float_tensor(shape: Vec<usize>, data: &[f32]) -> GoldenTensor {
    GoldenTensor {
        shape,
        dtype: "float32".into(),
        data: data.iter().map(|&x| x as f64).collect(),
    }
}

pub fn int_tensor(shape: Vec<usize>, data: &[i64]) -> GoldenTensor {
    GoldenTensor {
        shape,
        dtype: "int64".into(),
        data: data.iter().map(|&x| x as f64).collect(),
    }
}

/// Follow a dotted path (`outputs.ids`) into a case.
pub fn at<'a>(case: &'a Value, path: &str) -> Result<&'a Value> {
    path.split('.')
        .try_fold(case, |v, k| v.get(k).ok_or_else(|| anyhow!("case has no `{path}` (missing `{k}`)")))
}

/// A tensor field, or its `data` when the field is a `{description, data}` wrapper.
pub fn tensor_at(case: &Value, path: &str) -> Result<GoldenTensor> {
    let v = at(case, path)?;
    if v.get("shape").is_some() {
        return GoldenTensor::parse(v).with_context(|| format!("`{path}`"));
    }
    let data = v.get("data").unwrap_or(v);
    let mut flat = Vec::new();
    flatten(data, &mut flat).with_context(|| format!("`{path}`"))?;
    let shape = if data.is_array() { vec![flat.len()] } else { vec![] };
    Ok(GoldenTensor {
        shape,
        dtype: "float32".into(),
        data: flat,
    })
}

/// Error figures of one field against its reference.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Deviation {
    pub max_abs: f64,
    /// ‖ours − ref‖₂ / ‖ref‖₂ (0 when both are 0).
    pub rel: f64,
}

pub fn deviation(ours: &[f64], reference: &[f64]) -> Deviation {
    assert_eq!(ours.len(), reference.len(), "compared tensors differ in length");
    let mut max_abs = 0.0f64;
    let (mut d2, mut r2) = (0.0f64, 0.0f64);
    for (a, b) in ours.iter().zip(reference) {
        let d = a - b;
        max_abs = max_abs.max(if d.is_nan() { f64::INFINITY } else { d.abs() });
        d2 += d * d;
        r2 += b * b;
    }
    let rel = if r2 == 0.0 {
        if d2 == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (d2 / r2).sqrt()
    };
    Deviation {
        max_abs,
        rel: if rel.is_nan() { f64::INFINITY } else { rel },
    }
}
