//! Checkpoint reading: both supported layouts are turned into one canonical naming, the
//! OpenAI state-dict names with the fused attention projection split into q/k/v.
//!
//! Hugging Face `CLIPModel` <-> canonical: one table, `KEY_TABLE` below, read in both
//! directions. Besides renames, `text_projection` and `visual_projection` are stored `[E, W]`
//! there (transposed), `pre_layrnorm` is spelled so, and the `position_ids` index buffers are
//! ignored.
//!
//! OpenAI / open_clip files: `*.attn.in_proj_weight` `[3W, W]` and `in_proj_bias` `[3W]` are split
//! row-wise into `attn.q_proj`, `attn.k_proj`, `attn.v_proj` (torch's MultiheadAttention order);
//! the integer entries `input_resolution`, `context_length`, `vocab_size` of the TorchScript state
//! dict and BatchNorm's `num_batches_tracked` are ignored, as `build_model` does.
//!
//! Files: safetensors, or a `torch.save`'d state dict (`pytorch_model.bin`,
//! `open_clip_pytorch_model.bin`, any `.bin` / `.pt` / `.pth`; zip and pre-1.6 legacy formats)
//! read by `pytorch-reader`, or a TorchScript archive (OpenAI's original `.pt`, as `clip.load`
//! keeps it) read as its state dict by [`crate::torchscript`]; no Python. Every way f16 / bf16 /
//! f64 tensors become f32 exactly.
//! Which file of a folder holds the weights: [`weights_file`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::hub::probe;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `error` is in the message, not the error's source: printed with its chain (`{:#}`) it
    /// would read twice.
    #[error("{path}: cannot read checkpoint: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: not a valid safetensors file: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("{path}: tensor `{key}` has dtype {dtype}, expected a floating-point tensor")]
    Dtype { path: PathBuf, key: String, dtype: String },
    #[error("{path}: missing tensor `{key}` (model expects shape {expected:?})")]
    Missing { path: PathBuf, key: String, expected: Vec<usize> },
    #[error("{path}: tensor `{key}` has shape {found:?}, model expects {expected:?}")]
    Shape {
        path: PathBuf,
        key: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{path}: unexpected tensor(s) the model does not use: {}", keys.join(", "))]
    Unexpected { path: PathBuf, keys: Vec<String> },
    /// Names the model lacks and names it does not use, together: a renamed tensor is both.
    #[error("{path}: the tensor names do not match the model (a renamed tensor?): missing {}; unexpected tensor(s) the model does not use: {}", missing.join(", "), unexpected.join(", "))]
    Names {
        path: PathBuf,
        missing: Vec<String>,
        unexpected: Vec<String>,
    },
    #[error("{path}: {msg}")]
    Layout { path: PathBuf, msg: String },
    /// `value` as float32 (a float64 beyond float32's range reads as an infinity).
    #[error("{path}: tensor `{key}` holds {count} non-finite value(s) of {len} (first: {value} at flat index {index}); a checkpoint's weights must be finite")]
    NonFinite {
        path: PathBuf,
        key: String,
        value: f32,
        index: usize,
        count: usize,
        len: usize,
    },
    #[error("{path}: not a readable PyTorch checkpoint: {msg}")]
    Torch { path: PathBuf, msg: String },
}

/// The files a model folder (Hugging Face `CLIPModel` layout) may hold its weights in, in the
/// order they are looked for. An open_clip checkpoint is named by its file, so that the
/// `open_clip_config.json` beside it is what declares its numerics (`checkpoint.rs`).
pub const FOLDER_WEIGHTS: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// The file that holds the weights of a model path: a file is itself; a folder's is the first
/// of [`FOLDER_WEIGHTS`] it holds. A symlink to nothing (a blob missing from the Hugging Face
/// cache) is an error, not a skipped candidate.
pub fn weights_file(path: &Path) -> Result<PathBuf, LoadError> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    for name in FOLDER_WEIGHTS {
        let p = path.join(name);
        match probe(&p) {
            Ok(true) => return Ok(p),
            Ok(false) => {}
            Err(target) => {
                return Err(LoadError::Io {
                    error: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("a symlink to {}, which does not exist (an incomplete download?)", target.display()),
                    ),
                    path: p,
                })
            }
        }
    }
    Err(LoadError::Io {
        path: path.into(),
        error: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            if ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
                .iter()
                .any(|f| path.join(f).exists())
            {
                format!(
                    "the folder holds none of {}; an open_clip checkpoint is named by its file (open_clip_model.safetensors or open_clip_pytorch_model.bin)",
                    FOLDER_WEIGHTS.join(", ")
                )
            } else {
                format!("the folder holds none of {}", FOLDER_WEIGHTS.join(", "))
            },
        ),
    })
}

/// Which naming a checkpoint file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Layout {
    /// OpenAI / open_clip state-dict names (safetensors or `torch.save`).
    OpenAi,
    /// Hugging Face `CLIPModel` (`model.safetensors` or `pytorch_model.bin` beside `config.json`).
    HuggingFace,
}

#[derive(Debug, Clone)]
pub struct WeightEntry {
    /// Key in the file (with a row range for split fused tensors), for error messages.
    pub source_key: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Canonically named float32 tensors read from one checkpoint, handed out once each.
pub struct WeightMap {
    pub path: PathBuf,
    pub layout: Layout,
    entries: BTreeMap<String, WeightEntry>,
    taken: BTreeSet<String>,
    /// Names of the file that map to no tensor of any model (Hugging Face layout), refused by
    /// [`WeightMap::finish`] or listed with what is missing ([`WeightMap::explain_missing`]).
    unknown: Vec<String>,
}

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
enum Source<'a> {
    SafeTensors(SafeTensors<'a>),
    Torch(std::collections::HashMap<String, pytorch_reader::Tensor>),
    TorchScript(crate::torchscript::Archive),
}

impl Source<'_> {
    /// Every tensor name, sorted (so that error messages list them in one order).
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = match self {
            Source::SafeTensors(st) => st.names().into_iter().map(|s| s.to_string()).collect(),
            Source::Torch(t) => t.keys().cloned().collect(),
            Source::TorchScript(a) => a.names(),
        };
        names.sort();
        names
    }

    fn shape(&self, file: &Path, name: &str) -> Result<Vec<usize>, LoadError> {
        match self {
            Source::SafeTensors(st) => st.tensor(name).map(|v| v.shape().to_vec()).map_err(|e| LoadError::Format {
                path: file.into(),
                msg: e.to_string(),
            }),
            Source::Torch(t) => Ok(t[name].shape().to_vec()),
            Source::TorchScript(a) => Ok(a.info(name).map(|t| t.shape.clone()).unwrap_or_default()),
        }
    }

    fn f32(&self, file: &Path, name: &str) -> Result<Vec<f32>, LoadError> {
        let bad = |dtype: String| LoadError::Dtype {
            path: file.into(),
            key: name.into(),
            dtype,
        };
        match self {
            Source::SafeTensors(st) => {
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
            Source::Torch(t) => {
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
            Source::TorchScript(a) => {
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
fn is_safetensors(file: &Path) -> Result<bool, LoadError> {
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
fn open_torch(file: &Path) -> Result<std::collections::HashMap<String, pytorch_reader::Tensor>, LoadError> {
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

/// "`name` [shape]" as errors print a tensor ("`name`" for a scalar).
fn quoted(name: &str, shape: &[usize]) -> String {
    if shape.is_empty() {
        return format!("`{name}`");
    }
    format!("`{name}` {shape:?}")
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

/// Row-major `[rows, cols]` -> `[cols, rows]`.
pub fn transpose2(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// The two-way key table, the one place the Hugging Face remap is written: (canonical,
/// Hugging Face, stored transposed in Hugging Face). Read left to right when loading a Hugging
/// Face file, right to left when writing one (`ntlb pretrain-synth`). `{i}` is a layer index; a
/// pattern ending in `.` covers every tensor of that module (`weight`, `bias`).
#[rustfmt::skip]
const KEY_TABLE: &[(&str, &str, bool)] = &[
    ("token_embedding.weight",                          "text_model.embeddings.token_embedding.weight",         false),
    ("positional_embedding",                            "text_model.embeddings.position_embedding.weight",      false),
    ("transformer.resblocks.{i}.ln_1.",                 "text_model.encoder.layers.{i}.layer_norm1.",           false),
    ("transformer.resblocks.{i}.attn.q_proj.",          "text_model.encoder.layers.{i}.self_attn.q_proj.",      false),
    ("transformer.resblocks.{i}.attn.k_proj.",          "text_model.encoder.layers.{i}.self_attn.k_proj.",      false),
    ("transformer.resblocks.{i}.attn.v_proj.",          "text_model.encoder.layers.{i}.self_attn.v_proj.",      false),
    ("transformer.resblocks.{i}.attn.out_proj.",        "text_model.encoder.layers.{i}.self_attn.out_proj.",    false),
    ("transformer.resblocks.{i}.ln_2.",                 "text_model.encoder.layers.{i}.layer_norm2.",           false),
    ("transformer.resblocks.{i}.mlp.c_fc.",             "text_model.encoder.layers.{i}.mlp.fc1.",               false),
    ("transformer.resblocks.{i}.mlp.c_proj.",           "text_model.encoder.layers.{i}.mlp.fc2.",               false),
    ("ln_final.weight",                                 "text_model.final_layer_norm.weight",                   false),
    ("ln_final.bias",                                   "text_model.final_layer_norm.bias",                     false),
    ("text_projection",                                 "text_projection.weight",                               true),
    ("visual.class_embedding",                          "vision_model.embeddings.class_embedding",              false),
    ("visual.conv1.weight",                             "vision_model.embeddings.patch_embedding.weight",       false),
    ("visual.positional_embedding",                     "vision_model.embeddings.position_embedding.weight",    false),
    ("visual.ln_pre.weight",                            "vision_model.pre_layrnorm.weight",                     false),
    ("visual.ln_pre.bias",                              "vision_model.pre_layrnorm.bias",                       false),
    ("visual.transformer.resblocks.{i}.ln_1.",          "vision_model.encoder.layers.{i}.layer_norm1.",         false),
    ("visual.transformer.resblocks.{i}.attn.q_proj.",   "vision_model.encoder.layers.{i}.self_attn.q_proj.",    false),
    ("visual.transformer.resblocks.{i}.attn.k_proj.",   "vision_model.encoder.layers.{i}.self_attn.k_proj.",    false),
    ("visual.transformer.resblocks.{i}.attn.v_proj.",   "vision_model.encoder.layers.{i}.self_attn.v_proj.",    false),
    ("visual.transformer.resblocks.{i}.attn.out_proj.", "vision_model.encoder.layers.{i}.self_attn.out_proj.",  false),
    ("visual.transformer.resblocks.{i}.ln_2.",          "vision_model.encoder.layers.{i}.layer_norm2.",         false),
    ("visual.transformer.resblocks.{i}.mlp.c_fc.",      "vision_model.encoder.layers.{i}.mlp.fc1.",             false),
    ("visual.transformer.resblocks.{i}.mlp.c_proj.",    "vision_model.encoder.layers.{i}.mlp.fc2.",             false),
    ("visual.ln_post.weight",                           "vision_model.post_layernorm.weight",                   false),
    ("visual.ln_post.bias",                             "vision_model.post_layernorm.bias",                     false),
    ("visual.proj",                                     "visual_projection.weight",                             true),
    ("logit_scale",                                     "logit_scale",                                          false),
];

/// `key` rewritten from table pattern `from` to pattern `to`, if it matches.
fn rewrite(key: &str, from: &str, to: &str) -> Option<String> {
    let (to, rest) = match from.split_once("{i}") {
        Some((before, after)) => {
            let r = key.strip_prefix(before)?;
            let digits = r.len() - r.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                return None;
            }
            (to.replacen("{i}", &r[..digits], 1), r[digits..].strip_prefix(after)?)
        }
        None => (to.to_string(), key.strip_prefix(from)?),
    };
    (rest.is_empty() || from.ends_with('.')).then(|| format!("{to}{rest}"))
}

/// The other layout's name of `key` by [`KEY_TABLE`], and whether Hugging Face stores it transposed.
fn remap(key: &str, to_hf: bool) -> Option<(String, bool)> {
    KEY_TABLE.iter().find_map(|&(canonical, hf, transposed)| {
        let (from, to) = if to_hf { (canonical, hf) } else { (hf, canonical) };
        rewrite(key, from, to).map(|k| (k, transposed))
    })
}

/// The canonical name of a Hugging Face key; `None` = ignored key, `Err` = a key no CLIP
/// checkpoint has.
fn hf_to_canonical(key: &str) -> Result<Option<(String, bool)>, ()> {
    if key.ends_with("position_ids") {
        return Ok(None);
    }
    remap(key, false).map(Some).ok_or(())
}

/// The Hugging Face key of a canonical key (ViT models only), and whether the tensor is stored
/// transposed there.
pub fn canonical_to_hf(key: &str) -> Option<(String, bool)> {
    remap(key, true)
}

/// Integer metadata or BatchNorm counters that OpenAI's `build_model` drops.
fn openai_ignored(key: &str) -> bool {
    matches!(key, "input_resolution" | "context_length" | "vocab_size") || key.ends_with("num_batches_tracked")
}

impl WeightMap {
    /// Open a checkpoint: a model folder ([`weights_file`] picks its file) or a safetensors /
    /// `torch.save` file, in Hugging Face or OpenAI / open_clip naming, recognised from the key
    /// names.
    pub fn open(path: &Path) -> Result<WeightMap, LoadError> {
        let file = weights_file(path)?;
        let bytes;
        let src = if is_safetensors(&file)? {
            bytes = std::fs::read(&file).map_err(|error| LoadError::Io { path: file.clone(), error })?;
            Source::SafeTensors(SafeTensors::deserialize(&bytes).map_err(|e| LoadError::Format {
                path: file.clone(),
                msg: e.to_string(),
            })?)
        } else if let Some(archive) = crate::torchscript::Archive::open_if_torchscript(&file)? {
            Source::TorchScript(archive)
        } else {
            Source::Torch(open_torch(&file)?)
        };
        let names = src.names();
        let layout = if names.iter().any(|n| n.starts_with("text_model.")) {
            Layout::HuggingFace
        } else if names.iter().any(|n| n == "token_embedding.weight") {
            Layout::OpenAi
        } else {
            let what = match &src {
                Source::TorchScript(a) => format!(
                    "a TorchScript archive of `{}` (tensors {}), not of CLIP: no `token_embedding.weight`",
                    a.class,
                    names.iter().take(6).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
                _ => "neither an OpenAI/open_clip CLIP state dict (no `token_embedding.weight`) nor a Hugging Face CLIPModel (no `text_model.*` keys)".into(),
            };
            return Err(LoadError::Layout { path: file, msg: what });
        };
        let mut entries = BTreeMap::new();
        let mut unknown = Vec::new();
        for name in &names {
            let shape = src.shape(&file, name)?;
            match layout {
                Layout::HuggingFace => match hf_to_canonical(name) {
                    Ok(None) => {}
                    Err(()) => unknown.push(name.clone()),
                    Ok(Some((canon, transpose))) => {
                        let mut data = src.f32(&file, name)?;
                        let mut shape = shape;
                        if transpose {
                            if shape.len() != 2 {
                                return Err(LoadError::Shape {
                                    path: file,
                                    key: name.clone(),
                                    found: shape,
                                    expected: vec![0, 0],
                                });
                            }
                            data = transpose2(&data, shape[0], shape[1]);
                            shape = vec![shape[1], shape[0]];
                        }
                        entries.insert(
                            canon,
                            WeightEntry {
                                source_key: name.clone(),
                                shape,
                                data,
                            },
                        );
                    }
                },
                Layout::OpenAi => {
                    if openai_ignored(name) {
                        continue;
                    }
                    let data = src.f32(&file, name)?;
                    if let Some(base) = name
                        .strip_suffix("attn.in_proj_weight")
                        .or_else(|| name.strip_suffix("attn.in_proj_bias"))
                    {
                        let is_weight = name.ends_with("weight");
                        if shape.is_empty() || shape[0] % 3 != 0 {
                            return Err(LoadError::Layout {
                                path: file,
                                msg: format!(
                                    "tensor `{name}` has shape {shape:?}: a fused attention projection needs a first dimension divisible by 3"
                                ),
                            });
                        }
                        let rows = shape[0] / 3;
                        let row_len: usize = shape[1..].iter().product();
                        for (i, part) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
                            let mut part_shape = shape.clone();
                            part_shape[0] = rows;
                            let canon = format!("{base}attn.{part}.{}", if is_weight { "weight" } else { "bias" });
                            entries.insert(
                                canon,
                                WeightEntry {
                                    source_key: format!("{name} (rows {}..{} of {:?})", i * rows, (i + 1) * rows, shape),
                                    shape: part_shape,
                                    data: data[i * rows * row_len..(i + 1) * rows * row_len].to_vec(),
                                },
                            );
                        }
                    } else {
                        entries.insert(
                            name.clone(),
                            WeightEntry {
                                source_key: name.clone(),
                                shape,
                                data,
                            },
                        );
                    }
                }
            }
        }
        Ok(WeightMap {
            path: file,
            layout,
            entries,
            taken: BTreeSet::new(),
            unknown,
        })
    }

    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.entries.get(key).map(|e| e.shape.as_slice())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|s| s.as_str())
    }

    /// Hand out one tensor, checking its shape; each key can be taken once.
    pub fn take(&mut self, key: &str, expected: &[usize]) -> Result<Vec<f32>, LoadError> {
        let Some(entry) = self.entries.get(key) else {
            return Err(self.missing(key, expected));
        };
        // A scalar stored as [1] is the same value as a 0-d tensor.
        let same = entry.shape == expected
            || (entry.shape.iter().product::<usize>() == 1
                && expected.iter().product::<usize>() == 1
                && expected.len() <= 1
                && entry.shape.len() <= 1);
        if !same {
            // Both shapes as the file holds them (Hugging Face stores the projections transposed).
            let (_, found) = self.file_spelling(key, &entry.shape);
            let (_, expected) = self.file_spelling(key, expected);
            return Err(LoadError::Shape {
                path: self.path.clone(),
                key: entry.source_key.clone(),
                found,
                expected,
            });
        }
        self.taken.insert(key.to_string());
        Ok(self.entries.get(key).expect("checked above").data.clone())
    }

    /// A tensor the model needs (canonical `key`, canonical shape `expected`) that the file
    /// lacks, named and shaped as this file would spell it.
    pub fn missing(&self, key: &str, expected: &[usize]) -> LoadError {
        let (key, expected) = self.file_spelling(key, expected);
        LoadError::Missing {
            path: self.path.clone(),
            key,
            expected,
        }
    }

    /// A tensor the file holds, as the file spells it: "`name` [shape]" (`None`: not held).
    pub fn describe(&self, key: &str) -> Option<String> {
        self.entries.get(key).map(|e| self.file_key(key, &e.shape))
    }

    /// The name a missing canonical key would have in this file's layout.
    fn source_name(&self, key: &str) -> String {
        match self.layout {
            Layout::OpenAi => {
                for part in ["q_proj", "k_proj", "v_proj"] {
                    for wb in ["weight", "bias"] {
                        if let Some(base) = key.strip_suffix(&format!("attn.{part}.{wb}")) {
                            return format!("{base}attn.in_proj_{wb} ({part} part)");
                        }
                    }
                }
                key.to_string()
            }
            Layout::HuggingFace => match canonical_to_hf(key) {
                Some((hf, _)) => hf,
                None => format!("{key} (no Hugging Face name: an OpenAI-layout tensor)"),
            },
        }
    }

    /// The name a canonical key has in this file, with the shape the model expects there
    /// (where known: not empty).
    fn file_key(&self, key: &str, shape: &[usize]) -> String {
        let (name, shape) = self.file_spelling(key, shape);
        quoted(&name, &shape)
    }

    /// The name and shape a canonical key and shape have in this file.
    fn file_spelling(&self, key: &str, shape: &[usize]) -> (String, Vec<usize>) {
        match (self.layout, canonical_to_hf(key)) {
            (Layout::HuggingFace, Some((hf, transposed))) => {
                let mut shape = shape.to_vec();
                if transposed {
                    shape.reverse();
                }
                (hf, shape)
            }
            _ => (self.source_name(key), shape.to_vec()),
        }
    }

    /// A missing tensor (`e`, from loading `expected`'s tensors or reading the architecture)
    /// where the file also holds names the model does not use: both lists in one error, so
    /// that a renamed tensor shows its old and its new name. `expected`: every (key, shape) the
    /// model takes, when known.
    pub fn explain_missing(&self, e: LoadError, expected: Option<&[(String, Vec<usize>)]>) -> LoadError {
        let LoadError::Missing { key, expected: shape, .. } = &e else {
            return e;
        };
        let mut unexpected = self.unknown.clone();
        // Already spelled as the file would ([`WeightMap::missing`]).
        let mut missing = vec![quoted(key, shape)];
        if let Some(expected) = expected {
            let keys: BTreeSet<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
            unexpected.extend(
                self.entries
                    .iter()
                    .filter(|(k, _)| !keys.contains(k.as_str()))
                    .map(|(_, e)| e.source_key.clone()),
            );
            missing = expected
                .iter()
                .filter(|(k, _)| !self.entries.contains_key(k))
                .map(|(k, s)| self.file_key(k, s))
                .collect();
            missing.dedup();
        }
        unexpected.sort();
        unexpected.dedup();
        if unexpected.is_empty() || missing.is_empty() {
            return e;
        }
        LoadError::Names {
            path: self.path.clone(),
            missing,
            unexpected,
        }
    }

    /// Refuse a checkpoint that holds tensors the model did not use.
    pub fn finish(self) -> Result<(), LoadError> {
        let mut left: Vec<String> = self
            .entries
            .iter()
            .filter(|(k, _)| !self.taken.contains(*k))
            .map(|(_, e)| e.source_key.clone())
            .collect();
        left.extend(self.unknown.iter().cloned());
        left.sort();
        left.dedup();
        if left.is_empty() {
            Ok(())
        } else {
            Err(LoadError::Unexpected {
                path: self.path,
                keys: left,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClipConfig, TextConfig, VisionConfig};

    /// Every tensor of a ViT CLIP gets a Hugging Face name no other tensor gets, and reads back
    /// as itself: the one table is consistent in both directions.
    #[test]
    fn key_table_round_trips_every_vit_tensor() {
        let config = ClipConfig {
            embed_dim: 8,
            vision: VisionConfig::Vit {
                width: 16,
                layers: 2,
                heads: 2,
                patch_size: 8,
                image_resolution: 16,
                activation: crate::config::Activation::QuickGelu,
            },
            text: TextConfig {
                context_length: 5,
                vocab_size: 10,
                width: 16,
                layers: 11,
                heads: 2,
                activation: crate::config::Activation::QuickGelu,
            },
        };
        let keys = crate::Clip::parameter_shapes(&config);
        let mut seen = BTreeSet::new();
        for (key, _) in &keys {
            let (hf, transposed) = canonical_to_hf(key).unwrap_or_else(|| panic!("no Hugging Face name for `{key}`"));
            assert!(seen.insert(hf.clone()), "`{hf}` named twice");
            assert_eq!(hf_to_canonical(&hf), Ok(Some((key.clone(), transposed))), "{key} -> {hf}");
        }
        assert_eq!(
            canonical_to_hf("transformer.resblocks.10.mlp.c_fc.bias").unwrap().0,
            "text_model.encoder.layers.10.mlp.fc1.bias"
        );
        assert_eq!(hf_to_canonical("text_model.encoder.layers.x.mlp.fc1.bias"), Err(()));
        assert_eq!(hf_to_canonical("text_model.final_layer_norm.weight.extra"), Err(()));
    }
}
