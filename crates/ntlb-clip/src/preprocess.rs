//! CLIP's test-time preprocessing, reproducing Pillow + torchvision:
//! `Resize(n, BICUBIC)` (shorter side to n, Pillow's separable antialiased bicubic with 8-bit
//! fixed-point coefficients), `CenterCrop(n)`, `convert("RGB")`, `ToTensor`, `Normalize`.
//!
//! Pillow's mode rules are followed because they change the pixels: palette and 1-bit images are
//! resized with NEAREST; RGBA/LA are resized premultiplied by alpha; 16-bit RGB(A) PNGs keep
//! the high byte; the conversion to RGB happens after the crop.
//!
//! One role per file: `decode` (with `png`, `jpeg`, `webp`) reads a file in its Pillow mode,
//! `resample` holds Pillow's filters, `mode` the per-mode resize / crop / `convert("RGB")`,
//! `transform` the Resize + CenterCrop geometry and the conversion order, `normalize` ToTensor +
//! Normalize. This file chains them: a file to the model's input.

use std::path::{Path, PathBuf};

mod decode;
mod jpeg;
mod mode;
mod normalize;
mod png;
mod resample;
mod transform;
mod webp;

use decode::{decode, decode_bytes};
pub use mode::{convert_rgb, crop_decoded, resize_decoded};
pub use normalize::{to_normalized_chw, Normalization, CLIP_MEAN, CLIP_STD};
pub use ntlb_core::image::ImageBytes;
pub use resample::{crop, resize_bicubic, resize_bicubic_window, resize_nearest};
pub use transform::{clip_rgb, resized_size, test_rgb, ConvertOrder};
pub use webp::encode as encode_webp;

#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("{path}: cannot read image: {msg}")]
    Read { path: PathBuf, msg: String },
    #[error("{path}: cannot decode image: {msg}")]
    Decode { path: PathBuf, msg: String },
}

/// An 8-bit interleaved image with 1..=4 channels, as Pillow holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

/// How Pillow would treat the decoded image.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// L, RGB: plain bicubic.
    Plain,
    /// LA, RGBA: bicubic on premultiplied alpha.
    Alpha,
    /// P and 1-bit: NEAREST.
    Nearest,
    /// 16-bit gray (`I;16`): resized in 16 bits, then clipped at 255 by the conversion to RGB
    /// (the raster's `data` is empty; the samples are here).
    Gray16(Vec<u16>),
    /// CMYK JPEG: bicubic on the four ink channels, Pillow's `cmyk2rgb` after the crop.
    Cmyk,
}

/// A file as the RGB picture Pillow's `open(...).convert("RGB")` gives (training reads images
/// this way before augmenting, as Dassl's `read_image` does).
pub fn load_rgb(path: &Path) -> Result<Raster, PreprocessError> {
    let (raster, kind) = decode(path)?;
    Ok(convert_rgb(raster, &kind))
}

/// A file -> the `[3, n, n]` test-time tensor with OpenAI's normalisation, in the default (the
/// reference's) conversion order. Code that holds a model uses [`load_image_with`] and the
/// model's `numerics.normalization`.
pub fn load_image(path: &Path, n: usize) -> Result<Vec<f32>, PreprocessError> {
    load_image_with(path, n, ConvertOrder::default(), &Normalization::OPENAI)
}

pub fn load_image_with(path: &Path, n: usize, order: ConvertOrder, norm: &Normalization) -> Result<Vec<f32>, PreprocessError> {
    let (raster, kind) = decode(path)?;
    Ok(to_normalized_chw(&test_rgb(raster, kind, n, order), norm))
}

/// A file decoded as Pillow holds it (mode rules in [`Kind`]), for augmentations that must
/// convert in either order.
pub fn load_decoded(path: &Path) -> Result<(Raster, Kind), PreprocessError> {
    decode(path)
}

/// An image of any source (a file, a shard member, a parquet row: [`ImageBytes`]) decoded as
/// Pillow holds it, as [`load_decoded`] decodes a file (the same decoder, the same errors).
pub fn load_decoded_from<S: ImageBytes + ?Sized>(src: &S) -> Result<(Raster, Kind), PreprocessError> {
    let bytes = src.image_bytes().map_err(|msg| PreprocessError::Read {
        path: src.image_name(),
        msg,
    })?;
    decode_bytes(&bytes).map_err(|msg| PreprocessError::Decode {
        path: src.image_name(),
        msg,
    })
}

/// [`load_image_with`] for an image of any source ([`ImageBytes`]).
pub fn load_image_from<S: ImageBytes + ?Sized>(
    src: &S,
    n: usize,
    order: ConvertOrder,
    norm: &Normalization,
) -> Result<Vec<f32>, PreprocessError> {
    let (raster, kind) = load_decoded_from(src)?;
    Ok(to_normalized_chw(&test_rgb(raster, kind, n, order), norm))
}

/// [`load_image`] from bytes already in memory (`name` is used in errors).
pub fn load_image_bytes(bytes: &[u8], name: &Path, n: usize) -> Result<Vec<f32>, PreprocessError> {
    let (raster, kind) = decode_bytes(bytes).map_err(|msg| PreprocessError::Decode { path: name.into(), msg })?;
    Ok(to_normalized_chw(
        &test_rgb(raster, kind, n, ConvertOrder::default()),
        &Normalization::OPENAI,
    ))
}
