//! The tensors of one checkpoint file, whatever its format: safetensors, or a `torch.save`'d
//! state dict (`pytorch_model.bin`, `open_clip_pytorch_model.bin`, any `.bin` / `.pt` / `.pth`;
//! zip and pre-1.6 legacy formats) read by `pytorch-reader`, or a TorchScript archive (OpenAI's
//! original `.pt`, as `clip.load` keeps it) read as its state dict by [`crate::torchscript`]; no
//! Python. Every way f16 / bf16 / f64 tensors become f32 exactly.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::files::weights_file;
use crate::load_error::LoadError;

/// The floating-point element types read (as f32).
#[derive(Clone, Copy)]
enum Float {
    F32,
    F16,
    BF16,
    F64,
}

/// Elements of `dtype` to f32; safetensors stores little-endian, `pytorch-reader` hands out
/// native-endian bytes. Every floating tensor of every format is read through here, so this is
/// where a NaN or an infinity is refused, naming `key` as the file spells it: one such weight
/// makes every score NaN, and a NaN score ranks first in no comparison (top-1 = 100).
fn floats(file: &Path, key: &str, bytes: &[u8], dtype: Float, little_endian: bool) -> Result<Vec<f32>, LoadError> {
    // The check rides along the conversion: one pass over the data, no copy.
    let mut finite = true;
    macro_rules! conv {
        ($n:literal, $f:expr) => {
            bytes
                .chunks_exact($n)
                .map(|b| {
                    let b: [u8; $n] = b.try_into().expect("exact chunk");
                    let v: f32 = $f(b);
                    finite &= v.is_finite();
                    v
                })
                .collect()
        };
    }
    let le = little_endian;
    let data: Vec<f32> = match dtype {
        Float::F32 => conv!(4, |b| if le { f32::from_le_bytes(b) } else { f32::from_ne_bytes(b) }),
        Float::F16 => conv!(2, |b| if le {
            half::f16::from_le_bytes(b)
        } else {
            half::f16::from_ne_bytes(b)
        }
        .to_f32()),
        Float::BF16 => conv!(2, |b| if le {
            half::bf16::from_le_bytes(b)
        } else {
            half::bf16::from_ne_bytes(b)
        }
        .to_f32()),
        Float::F64 => conv!(8, |b| (if le { f64::from_le_bytes(b) } else { f64::from_ne_bytes(b) }) as f32),
    };
    if finite {
        return Ok(data);
    }
    let index = data.iter().position(|v| !v.is_finite()).expect("a non-finite element");
    Err(LoadError::NonFinite {
        path: file.into(),
        key: key.into(),
        value: data[index],
        index,
        count: data.iter().filter(|v| !v.is_finite()).count(),
        len: data.len(),
    })
}

/// The tensors of one checkpoint file, read when asked for (integer buffers that are ignored
/// are never converted).
pub(crate) enum TensorFile<'a> {
    SafeTensors(SafeTensors<'a>),
    Torch(std::collections::HashMap<String, pytorch_reader::Tensor>),
    TorchScript(crate::torchscript::Archive),
}

impl TensorFile<'_> {
    /// Every tensor name, sorted (so that error messages list them in one order).
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = match self {
            TensorFile::SafeTensors(st) => st.names().into_iter().map(|s| s.to_string()).collect(),
            TensorFile::Torch(t) => t.keys().cloned().collect(),
            TensorFile::TorchScript(a) => a.names(),
        };
        names.sort();
        names
    }

    pub(crate) fn shape(&self, file: &Path, name: &str) -> Result<Vec<usize>, LoadError> {
        match self {
            TensorFile::SafeTensors(st) => st.tensor(name).map(|v| v.shape().to_vec()).map_err(|e| LoadError::Format {
                path: file.into(),
                msg: e.to_string(),
            }),
            TensorFile::Torch(t) => Ok(t[name].shape().to_vec()),
            TensorFile::TorchScript(a) => Ok(a.info(name).map(|t| t.shape.clone()).unwrap_or_default()),
        }
    }

    pub(crate) fn f32(&self, file: &Path, name: &str) -> Result<Vec<f32>, LoadError> {
        let bad = |dtype: String| LoadError::Dtype {
            path: file.into(),
            key: name.into(),
            dtype,
        };
        match self {
            TensorFile::SafeTensors(st) => {
                let view = st.tensor(name).map_err(|e| LoadError::Format {
                    path: file.into(),
                    msg: e.to_string(),
                })?;
                let dtype = match view.dtype() {
                    Dtype::F32 => Float::F32,
                    Dtype::F16 => Float::F16,
                    Dtype::BF16 => Float::BF16,
                    Dtype::F64 => Float::F64,
                    other => return Err(bad(format!("{other:?}"))),
                };
                floats(file, name, view.data(), dtype, true)
            }
            TensorFile::Torch(t) => {
                use pytorch_reader::DType;
                let tensor = &t[name];
                let dtype = match tensor.dtype() {
                    DType::F32 => Float::F32,
                    DType::F16 => Float::F16,
                    DType::BF16 => Float::BF16,
                    DType::F64 => Float::F64,
                    other => return Err(bad(format!("{other:?}"))),
                };
                let bytes = tensor.read().map_err(|e| LoadError::Torch {
                    path: file.into(),
                    msg: e.to_string(),
                })?;
                floats(file, name, &bytes, dtype, false)
            }
            TensorFile::TorchScript(a) => {
                use crate::torchscript::Dtype as T;
                let dtype = match a.info(name).map(|t| t.dtype) {
                    Some(T::F32) => Float::F32,
                    Some(T::F16) => Float::F16,
                    Some(T::BF16) => Float::BF16,
                    Some(T::F64) => Float::F64,
                    other => return Err(bad(other.map_or_else(|| "absent".into(), |d| format!("{d:?}")))),
                };
                // TorchScript storages are little-endian (a big-endian archive is refused at open).
                floats(file, name, &a.read(name)?, dtype, true)
            }
        }
    }
}

/// Whether a checkpoint file is safetensors (by its name, else by its header: a little-endian
/// JSON length, then `{`) rather than a `torch.save` file.
pub(crate) fn is_safetensors(file: &Path) -> Result<bool, LoadError> {
    if file.extension().is_some_and(|e| e == "safetensors") {
        return Ok(true);
    }
    let mut head = Vec::with_capacity(9);
    std::fs::File::open(file)
        .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 9), &mut head))
        .map_err(|error| LoadError::Io { path: file.into(), error })?;
    Ok(head.len() == 9 && u64::from_le_bytes(head[..8].try_into().expect("8 bytes")) <= 100_000_000 && head[8] == b'{')
}

/// The tensors of a `torch.save` file: a state dict, or a training checkpoint holding one under
/// `state_dict`; a `module.` prefix on every key (a model saved inside DataParallel) is dropped.
pub(crate) fn open_torch(file: &Path) -> Result<std::collections::HashMap<String, pytorch_reader::Tensor>, LoadError> {
    let torch_err = |e: pytorch_reader::PytorchError| LoadError::Torch {
        path: file.into(),
        msg: e.to_string(),
    };
    let mut tensors = pytorch_reader::PytorchReader::new(file).map_err(torch_err)?.into_tensors();
    let clip_keys = |t: &std::collections::HashMap<String, pytorch_reader::Tensor>| {
        t.keys()
            .any(|k| k.ends_with("token_embedding.weight") || k.starts_with("text_model."))
    };
    let top_clip = tensors
        .keys()
        .any(|k| k == "token_embedding.weight" || k.starts_with("text_model."));
    if !top_clip && clip_keys(&tensors) && tensors.keys().any(|k| k.starts_with("state_dict.")) {
        tensors = pytorch_reader::PytorchReader::with_top_level_key(file, "state_dict")
            .map_err(torch_err)?
            .into_tensors();
    }
    if !tensors.is_empty() && tensors.keys().all(|k| k.starts_with("module.")) {
        tensors = tensors.into_iter().map(|(k, t)| (k["module.".len()..].to_string(), t)).collect();
    }
    Ok(tensors)
}

/// Rows of `token_embedding.weight` (the vocabulary) of an OpenAI / open_clip checkpoint, read
/// from the file's header alone (a safetensors header, a TorchScript or `torch.save` pickle);
/// `None` when the file has no such tensor.
pub fn token_rows(path: &Path) -> Result<Option<usize>, LoadError> {
    const KEY: &str = "token_embedding.weight";
    let file = weights_file(path)?;
    let shape: Option<Vec<usize>> = if is_safetensors(&file)? {
        let io = |error| LoadError::Io { path: file.clone(), error };
        let mut f = std::fs::File::open(&file).map_err(io)?;
        let mut len = [0u8; 8];
        std::io::Read::read_exact(&mut f, &mut len).map_err(io)?;
        let mut header = vec![0u8; u64::from_le_bytes(len).min(100_000_000) as usize];
        std::io::Read::read_exact(&mut f, &mut header).map_err(io)?;
        let v: serde_json::Value = serde_json::from_slice(&header).map_err(|e| LoadError::Format {
            path: file.clone(),
            msg: e.to_string(),
        })?;
        v.get(KEY)
            .and_then(|t| t.get("shape"))
            .and_then(|s| s.as_array())
            .map(|s| s.iter().filter_map(|d| d.as_u64().map(|d| d as usize)).collect())
    } else if let Some(a) = crate::torchscript::Archive::open_if_torchscript(&file)? {
        a.info(KEY).map(|t| t.shape.clone())
    } else {
        open_torch(&file)?.get(KEY).map(|t| t.shape().to_vec())
    };
    Ok(shape.and_then(|s| s.first().copied()))
}
