//! Where an image's encoded bytes come from: a file, or a sample of a container (a member of a
//! tar shard, a row of a parquet file) that the decoder reads in place, never extracted to disk.
//! The decoder (`ntlb_clip::preprocess::load_image_from`) and the trainer take any of them.

use std::path::{Path, PathBuf};

/// An image the decoder can read the bytes of.
pub trait ImageBytes: Sync {
    /// The encoded image (PNG, JPEG, WebP, ...), or why it cannot be read.
    fn image_bytes(&self) -> Result<Vec<u8>, String>;
    /// How errors and the failed-image lists name it: a file's path, `<shard>.tar/<member>`,
    /// `<file>.parquet#<row>`.
    fn image_name(&self) -> PathBuf;
}

impl ImageBytes for Path {
    fn image_bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(self).map_err(|e| e.to_string())
    }

    fn image_name(&self) -> PathBuf {
        self.to_path_buf()
    }
}

impl ImageBytes for PathBuf {
    fn image_bytes(&self) -> Result<Vec<u8>, String> {
        self.as_path().image_bytes()
    }

    fn image_name(&self) -> PathBuf {
        self.clone()
    }
}
