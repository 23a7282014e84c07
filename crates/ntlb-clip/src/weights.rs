//! Checkpoint reading: both supported layouts are turned into one canonical naming, the
//! OpenAI state-dict names with the fused attention projection split into q/k/v. Which file of
//! a folder holds the weights: [`crate::files`]; its tensors, in any format it may have:
//! [`crate::tensor_file`]; the Hugging Face names: [`crate::key_names`].
//!
//! OpenAI / open_clip files: `*.attn.in_proj_weight` `[3W, W]` and `in_proj_bias` `[3W]` are split
//! row-wise into `attn.q_proj`, `attn.k_proj`, `attn.v_proj` (torch's MultiheadAttention order).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;

use crate::key_names::{hf_to_canonical, openai_ignored};
use crate::tensor_file::{is_safetensors, open_torch, TensorFile};

pub use crate::files::weights_file;
pub use crate::key_names::canonical_to_hf;
pub use crate::load_error::LoadError;
pub use crate::tensor_file::token_rows;

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

/// "`name` [shape]" as errors print a tensor ("`name`" for a scalar).
fn quoted(name: &str, shape: &[usize]) -> String {
    if shape.is_empty() {
        return format!("`{name}`");
    }
    format!("`{name}` {shape:?}")
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

impl WeightMap {
    /// Open a checkpoint: a model folder ([`weights_file`] picks its file) or a safetensors /
    /// `torch.save` file, in Hugging Face or OpenAI / open_clip naming, recognised from the key
    /// names.
    pub fn open(path: &Path) -> Result<WeightMap, LoadError> {
        let file = weights_file(path)?;
        let bytes;
        let src = if is_safetensors(&file)? {
            bytes = std::fs::read(&file).map_err(|error| LoadError::Io { path: file.clone(), error })?;
            TensorFile::SafeTensors(SafeTensors::deserialize(&bytes).map_err(|e| LoadError::Format {
                path: file.clone(),
                msg: e.to_string(),
            })?)
        } else if let Some(archive) = crate::torchscript::Archive::open_if_torchscript(&file)? {
            TensorFile::TorchScript(archive)
        } else {
            TensorFile::Torch(open_torch(&file)?)
        };
        let names = src.names();
        let layout = if names.iter().any(|n| n.starts_with("text_model.")) {
            Layout::HuggingFace
        } else if names.iter().any(|n| n == "token_embedding.weight") {
            Layout::OpenAi
        } else {
            let what = match &src {
                TensorFile::TorchScript(a) => format!(
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
