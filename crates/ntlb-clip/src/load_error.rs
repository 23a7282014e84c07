//! The one error of reading a checkpoint, whichever step (finding its file, reading a
//! format, naming or shaping a tensor) refuses it.

use std::path::PathBuf;

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
