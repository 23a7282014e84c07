//! What every ntlb crate shares and none owns: reading tensors back to the host, safetensors
//! files of named float32 tensors, atomic file writes, file digests, and
//! setting damaged files aside.

pub mod atomic;
pub mod damaged;
pub mod digest;
pub mod host;
pub mod store;
