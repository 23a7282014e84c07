//! `ToTensor` + `Normalize` with the model's mean and standard deviation (OpenAI's unless its
//! checkpoint declares others, `crate::checkpoint`).

use super::Raster;

// CLIP's constants exactly as published (torchvision rounds them to float32 the same way).
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// `Normalize(mean, std)` of the test-time transform.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// OpenAI CLIP's constants (also open_clip's `OPENAI_DATASET_MEAN/STD`).
    pub const OPENAI: Normalization = Normalization {
        mean: CLIP_MEAN,
        std: CLIP_STD,
    };
}

/// `ToTensor` + `Normalize` in float32: `[3, n, n]`, channel-major.
pub fn to_normalized_chw(rgb: &Raster, norm: &Normalization) -> Vec<f32> {
    let (mean, std) = (norm.mean, norm.std);
    let (w, h) = (rgb.width, rgb.height);
    let mut out = vec![0.0f32; 3 * w * h];
    for (i, px) in rgb.data.chunks_exact(3).enumerate() {
        for ch in 0..3 {
            out[ch * w * h + i] = (px[ch] as f32 / 255.0 - mean[ch]) / std[ch];
        }
    }
    out
}
