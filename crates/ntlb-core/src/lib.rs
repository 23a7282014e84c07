//! What every ntlb crate shares and none owns: reading tensors back to the host, safetensors
//! files of named float32 tensors, atomic file writes, file digests,
//! setting damaged files aside, where an image's bytes come from, and Python pickles read into a
//! generic value tree.

pub mod atomic;
pub mod damaged;
pub mod digest;
pub mod host;
pub mod image;
pub mod pickle;
pub mod sealed;
pub mod store;
pub mod toml_config;
