//! torchvision's test-time geometry: `Resize(n)` (shorter side to n) then `CenterCrop(n)`, and
//! where `convert("RGB")` happens relative to them ([`ConvertOrder`]).

use super::mode::{convert_rgb, resize_decoded_window};
use super::{Kind, Raster};

/// When `convert("RGB")` happens, a setting because it changes the pixels of every image that
/// is not already RGB/L (palette and 1-bit images get bicubic instead of NEAREST, RGBA loses its
/// premultiplied resize, CMYK is resized as RGB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvertOrder {
    /// Dassl's `read_image` (the NTLB/CoOp reference, zero-shot and training alike): right after
    /// `Image.open`, before any resize.
    #[default]
    Dassl,
    /// CLIP's own `preprocess`: after Resize + CenterCrop.
    Clip,
}

impl ConvertOrder {
    pub fn name(self) -> &'static str {
        match self {
            ConvertOrder::Dassl => "dassl",
            ConvertOrder::Clip => "clip",
        }
    }
}

impl std::str::FromStr for ConvertOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dassl" => Ok(ConvertOrder::Dassl),
            "clip" => Ok(ConvertOrder::Clip),
            _ => Err(format!("unknown conversion order {s:?} (expected \"dassl\" or \"clip\")")),
        }
    }
}

/// torchvision's `Resize(int)` output size: shorter side to `n`, longer side truncated.
pub fn resized_size(w: usize, h: usize, n: usize) -> (usize, usize) {
    if w <= h {
        (n, (n as f64 * h as f64 / w as f64) as usize)
    } else {
        ((n as f64 * w as f64 / h as f64) as usize, n)
    }
}

/// Python's `round` (half to even) of a non-negative half-integer or integer.
fn py_round_half(x2: usize) -> usize {
    // x2 = 2 * value
    let (q, r) = (x2 / 2, x2 % 2);
    // Exact halves go to the even neighbour.
    if r == 0 || q % 2 == 0 {
        q
    } else {
        q + 1
    }
}

/// Resize + centre-crop to `n`, then `convert("RGB")`: the 8-bit picture CLIP's `preprocess` sees.
pub fn clip_rgb(raster: Raster, kind: Kind, n: usize) -> Raster {
    let (nw, nh) = resized_size(raster.width, raster.height, n);
    let top = py_round_half(nh - n.min(nh));
    let left = py_round_half(nw - n.min(nw));
    let cropped = resize_decoded_window(raster, &kind, nw, nh, left..left + n.min(nw), top..top + n.min(nh));
    convert_rgb(cropped, &kind)
}

/// The 8-bit `n`×`n` RGB picture of a decoded file, converted in `order`.
pub fn test_rgb(raster: Raster, kind: Kind, n: usize, order: ConvertOrder) -> Raster {
    match order {
        ConvertOrder::Clip => clip_rgb(raster, kind, n),
        ConvertOrder::Dassl => clip_rgb(convert_rgb(raster, &kind), Kind::Plain, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_size_and_rounding_follow_torchvision() {
        assert_eq!(resized_size(640, 480, 224), (298, 224));
        assert_eq!(resized_size(37, 50, 32), (32, 43));
        // (43 - 32) / 2 = 5.5 rounds to 6 (half to even); (45 - 32) / 2 = 6.5 rounds to 6.
        assert_eq!(py_round_half(11), 6);
        assert_eq!(py_round_half(13), 6);
    }
}
