//! The file names a checkpoint and its companions are written under by their libraries, and
//! which file of a model folder holds the weights: the one vocabulary the hub lookup, the
//! declaration reader and the weight reader share.

use std::path::{Path, PathBuf};

use crate::load_error::LoadError;

/// The files a model folder (Hugging Face `CLIPModel` layout) may hold its weights in, in the
/// order they are looked for. An open_clip checkpoint is named by its file, so that the
/// `open_clip_config.json` beside it is what declares its numerics (`checkpoint.rs`).
pub const FOLDER_WEIGHTS: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];
/// The weights file of an open_clip repository, in the order open_clip looks for them.
pub const OPEN_CLIP_WEIGHTS: [&str; 2] = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"];
/// A Hugging Face folder's model config (activation, heads, context length).
pub const HF_CONFIG: &str = "config.json";
/// A Hugging Face folder's image preprocessing (normalisation, size).
pub const HF_PREPROCESSOR: &str = "preprocessor_config.json";
/// open_clip's config beside its weights file (model and preprocessing).
pub const OPEN_CLIP_CONFIG: &str = "open_clip_config.json";
/// A Hugging Face tokenizer, beside the weights of both layouts.
pub const TOKENIZER: &str = "tokenizer.json";

/// Where `p` stands: `Ok(true)` it is (or links to) a file or folder, `Ok(false)` nothing is
/// there, `Err(target)` it is a symlink to nothing: a blob missing from the cache.
pub(crate) fn probe(p: &Path) -> Result<bool, PathBuf> {
    if p.exists() {
        return Ok(true);
    }
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_symlink() => Err(std::fs::read_link(p).unwrap_or_default()),
        _ => Ok(false),
    }
}

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
            if OPEN_CLIP_WEIGHTS.iter().any(|f| path.join(f).exists()) {
                format!(
                    "the folder holds none of {}; an open_clip checkpoint is named by its file ({} or {})",
                    FOLDER_WEIGHTS.join(", "),
                    OPEN_CLIP_WEIGHTS[0],
                    OPEN_CLIP_WEIGHTS[1]
                )
            } else {
                format!("the folder holds none of {}", FOLDER_WEIGHTS.join(", "))
            },
        ),
    })
}
