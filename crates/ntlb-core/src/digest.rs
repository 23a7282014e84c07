//! File identity for manifests and cache keys.

use std::path::Path;

use sha2::{Digest, Sha256};

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

/// Hex SHA-256 of bytes in memory (the same digest [`sha256_file`] gives for a file holding them).
pub fn sha256_bytes(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}
