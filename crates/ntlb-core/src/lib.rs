//! What every ntlb crate shares and none owns: reading tensors back to the host, safetensors
//! files of named float32 tensors, atomic file writes, and file digests.

pub mod atomic;
pub mod digest;
pub mod host;
pub mod store;
