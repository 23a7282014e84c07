//! A file to the picture Pillow decodes, recognised by content (PNG, JPEG or WebP), in its own mode.

use std::io::Read;
use std::path::Path;

use super::{jpeg, png, webp, Kind, PreprocessError, Raster};

/// Decode a file into Pillow's 8-bit view.
pub(super) fn decode(path: &Path) -> Result<(Raster, Kind), PreprocessError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| PreprocessError::Read {
            path: path.into(),
            msg: e.to_string(),
        })?;
    decode_bytes(&bytes).map_err(|msg| PreprocessError::Decode { path: path.into(), msg })
}

pub(super) fn decode_bytes(bytes: &[u8]) -> Result<(Raster, Kind), String> {
    // By content, not by name: ImageNet-style trees hold PNGs named .JPEG.
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        png::decode(bytes)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        jpeg::decode(bytes)
    } else if webp::is_webp(bytes) {
        webp::decode(bytes)
    } else {
        Err("unknown image format (expected JPEG, PNG or WebP)".into())
    }
}
