//! CLIP's test-time preprocessing, reproducing Pillow + torchvision:
//! `Resize(n, BICUBIC)` (shorter side to n, Pillow's separable antialiased bicubic with 8-bit
//! fixed-point coefficients), `CenterCrop(n)`, `convert("RGB")`, `ToTensor`, `Normalize`.
//!
//! Pillow's mode rules are followed because they change the pixels: palette and 1-bit images are
//! resized with NEAREST; RGBA/LA are resized premultiplied by alpha; 16-bit RGB(A) PNGs keep
//! the high byte; the conversion to RGB happens after the crop.

use std::io::Read;
use std::path::{Path, PathBuf};

use image::DynamicImage;

// CLIP's constants exactly as published (torchvision rounds them to float32 the same way).
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

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

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` for the whole input range: bounds and normalised weights.
fn coefficients_f64(in_size: usize, out_size: usize) -> (Vec<(usize, usize)>, Vec<f64>, usize) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0f64; out_size * ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut k: Vec<f64> = (0..xmax).map(|x| bicubic((x as f64 + xmin as f64 - center + 0.5) * ss)).collect();
        let ww: f64 = k.iter().sum();
        if ww != 0.0 {
            k.iter_mut().for_each(|w| *w /= ww);
        }
        kk[xx * ksize..xx * ksize + xmax].copy_from_slice(&k);
        bounds.push((xmin, xmax));
    }
    (bounds, kk, ksize)
}

/// The same weights in Pillow's 8-bit fixed point (`normalize_coeffs_8bpc`).
fn coefficients(in_size: usize, out_size: usize) -> (Vec<(usize, usize)>, Vec<i32>, usize) {
    let (bounds, kk, ksize) = coefficients_f64(in_size, out_size);
    let scale = (1u32 << PRECISION_BITS) as f64;
    let kk = kk
        .iter()
        .map(|&w| {
            if w < 0.0 {
                (-0.5 + w * scale) as i32
            } else {
                (0.5 + w * scale) as i32
            }
        })
        .collect();
    (bounds, kk, ksize)
}

/// Pillow's `I;16` resize (`ImagingResample*_16bpc`): float weights, round half up, clamp.
fn resize_bicubic_u16(data: &[u16], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u16> {
    let round = |v: f64| -> u16 { (v + 0.5).floor().clamp(0.0, 65535.0) as u16 };
    let mut cur = data.to_vec();
    let mut cw = w;
    if out_w != w {
        let (bounds, kk, ksize) = coefficients_f64(w, out_w);
        let mut next = vec![0u16; out_w * h];
        for y in 0..h {
            for (xx, &(xmin, xmax)) in bounds.iter().enumerate() {
                let ss: f64 = (0..xmax).map(|x| cur[y * cw + xmin + x] as f64 * kk[xx * ksize + x]).sum();
                next[y * out_w + xx] = round(ss);
            }
        }
        cur = next;
        cw = out_w;
    }
    if out_h != h {
        let (bounds, kk, ksize) = coefficients_f64(h, out_h);
        let mut next = vec![0u16; cw * out_h];
        for (yy, &(ymin, ymax)) in bounds.iter().enumerate() {
            for x in 0..cw {
                let ss: f64 = (0..ymax).map(|y| cur[(ymin + y) * cw + x] as f64 * kk[yy * ksize + y]).sum();
                next[yy * cw + x] = round(ss);
            }
        }
        cur = next;
    }
    cur
}

fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

fn resample_horizontal(img: &Raster, out_w: usize) -> Raster {
    let (bounds, kk, ksize) = coefficients(img.width, out_w);
    let c = img.channels;
    let mut data = vec![0u8; out_w * img.height * c];
    let half: i32 = 1 << (PRECISION_BITS - 1);
    for (row, out) in img.data.chunks_exact(img.width * c).zip(data.chunks_exact_mut(out_w * c)) {
        for (xx, &(xmin, xmax)) in bounds.iter().enumerate() {
            let k = &kk[xx * ksize..xx * ksize + xmax];
            let src = &row[xmin * c..(xmin + xmax) * c];
            // All channels of a pixel at once: the same taps, one pass over the source.
            let mut ss = [half; 4];
            for (px, &w) in src.chunks_exact(c).zip(k) {
                for ch in 0..c {
                    ss[ch] += px[ch] as i32 * w;
                }
            }
            for ch in 0..c {
                out[xx * c + ch] = clip8(ss[ch]);
            }
        }
    }
    Raster {
        width: out_w,
        height: img.height,
        channels: c,
        data,
    }
}

fn resample_vertical(img: &Raster, out_h: usize) -> Raster {
    let (bounds, kk, ksize) = coefficients(img.height, out_h);
    let stride = img.width * img.channels;
    let mut data = vec![0u8; stride * out_h];
    let mut acc = vec![0i32; stride];
    for (yy, &(ymin, ymax)) in bounds.iter().enumerate() {
        let k = &kk[yy * ksize..yy * ksize + ymax];
        acc.iter_mut().for_each(|a| *a = 1 << (PRECISION_BITS - 1));
        // Row by row: contiguous, vectorisable, the same sums as Pillow's column loop.
        for (y, &w) in k.iter().enumerate() {
            let row = &img.data[(ymin + y) * stride..(ymin + y + 1) * stride];
            acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as i32 * w);
        }
        data[yy * stride..(yy + 1) * stride]
            .iter_mut()
            .zip(&acc)
            .for_each(|(d, &a)| *d = clip8(a));
    }
    Raster {
        width: img.width,
        height: out_h,
        channels: img.channels,
        data,
    }
}

/// Pillow's `Image.resize(size, BICUBIC)` on an 8-bit image: horizontal pass, then vertical.
pub fn resize_bicubic(img: &Raster, out_w: usize, out_h: usize) -> Raster {
    let mut cur = img.clone();
    if out_w != img.width {
        cur = resample_horizontal(&cur, out_w);
    }
    if out_h != img.height {
        cur = resample_vertical(&cur, out_h);
    }
    cur
}

/// Pillow's NEAREST resize (`ImagingScaleAffine`): source positions accumulated in double
/// precision from `scale / 2` in steps of `scale`, then truncated, as Pillow does; the
/// accumulation's rounding decides exact ties, so it is reproduced rather than `(x + 0.5) * scale`.
pub fn resize_nearest(img: &Raster, out_w: usize, out_h: usize) -> Raster {
    let c = img.channels;
    let positions = |n_in: usize, n_out: usize| -> Vec<usize> {
        let a = n_in as f64 / n_out as f64;
        let mut o = a * 0.5;
        (0..n_out)
            .map(|_| {
                let p = (o as usize).min(n_in - 1);
                o += a;
                p
            })
            .collect()
    };
    let (xs, ys) = (positions(img.width, out_w), positions(img.height, out_h));
    let mut data = Vec::with_capacity(out_w * out_h * c);
    for &yi in &ys {
        for &xi in &xs {
            let p = (yi * img.width + xi) * c;
            data.extend_from_slice(&img.data[p..p + c]);
        }
    }
    Raster {
        width: out_w,
        height: out_h,
        channels: c,
        data,
    }
}

fn muldiv255(a: u32, b: u32) -> u8 {
    let t = a * b + 128;
    (((t >> 8) + t) >> 8) as u8
}

/// RGBA -> RGBa (Pillow's premultiplication), alpha in the last channel.
fn premultiply(img: &mut Raster) {
    let c = img.channels;
    for px in img.data.chunks_exact_mut(c) {
        let a = px[c - 1] as u32;
        for v in &mut px[..c - 1] {
            *v = muldiv255(*v as u32, a);
        }
    }
}

/// RGBa -> RGBA (Pillow's integer un-premultiplication).
fn unpremultiply(img: &mut Raster) {
    let c = img.channels;
    for px in img.data.chunks_exact_mut(c) {
        let a = px[c - 1] as u32;
        if a != 0 && a != 255 {
            for v in &mut px[..c - 1] {
                *v = ((255 * *v as u32) / a).min(255) as u8;
            }
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

pub fn crop(img: &Raster, left: usize, top: usize, w: usize, h: usize) -> Raster {
    let c = img.channels;
    let mut data = Vec::with_capacity(w * h * c);
    for y in top..top + h {
        let s = (y * img.width + left) * c;
        data.extend_from_slice(&img.data[s..s + w * c]);
    }
    Raster {
        width: w,
        height: h,
        channels: c,
        data,
    }
}

/// Pillow's view of a decoded file: 8-bit channels and how it would be resized.
fn to_raster(img: DynamicImage, png_header: Option<(u8, u8)>) -> (Raster, Kind) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    // PNG colour type 3 = palette; bit depth 1 with colour type 0 = Pillow mode "1".
    let nearest = matches!(png_header, Some((_, 3)) | Some((1, 0)));
    let (channels, data) = match img {
        // Gray PNGs of 1, 2 or 4 bits: Pillow's unpackers stretch the levels to 0..255.
        DynamicImage::ImageLuma8(b) if matches!(png_header, Some((d, 0)) if d < 8) => {
            let max = (1u32 << png_header.expect("checked").0) - 1;
            (
                1,
                b.into_raw()
                    .iter()
                    .map(|&v| if v as u32 <= max { (v as u32 * 255 / max) as u8 } else { v })
                    .collect(),
            )
        }
        DynamicImage::ImageLuma8(b) => (1, b.into_raw()),
        DynamicImage::ImageLumaA8(b) => (2, b.into_raw()),
        DynamicImage::ImageRgb8(b) => (3, b.into_raw()),
        DynamicImage::ImageRgba8(b) => (4, b.into_raw()),
        // 16-bit colour PNGs: Pillow unpacks the high byte (rawmodes `RGB;16B`, `RGBA;16B`, `LA;16B`).
        DynamicImage::ImageLumaA16(b) => (2, b.into_raw().iter().map(|v| (v >> 8) as u8).collect()),
        DynamicImage::ImageRgb16(b) => (3, b.into_raw().iter().map(|v| (v >> 8) as u8).collect()),
        DynamicImage::ImageRgba16(b) => (4, b.into_raw().iter().map(|v| (v >> 8) as u8).collect()),
        other => (3, other.to_rgb8().into_raw()),
    };
    let kind = if nearest {
        Kind::Nearest
    } else if channels == 2 || channels == 4 {
        Kind::Alpha
    } else {
        Kind::Plain
    };
    (
        Raster {
            width: w,
            height: h,
            channels,
            data,
        },
        kind,
    )
}

/// Decode a file into Pillow's 8-bit view.
fn decode(path: &Path) -> Result<(Raster, Kind), PreprocessError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| PreprocessError::Read {
            path: path.into(),
            msg: e.to_string(),
        })?;
    decode_bytes(&bytes).map_err(|msg| PreprocessError::Decode { path: path.into(), msg })
}

fn decode_bytes(bytes: &[u8]) -> Result<(Raster, Kind), String> {
    let png_header = (bytes.len() > 26 && bytes.starts_with(b"\x89PNG\r\n\x1a\n")).then(|| (bytes[24], bytes[25]));
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("unknown image format (expected JPEG or PNG)".into());
    }
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_has_end(bytes) {
        // zune-jpeg fills a cut-off scan with grey; Pillow refuses it ("image file is truncated").
        return Err("JPEG data is truncated (no end-of-image marker after the scan)".into());
    }
    if reader.format() == Some(image::ImageFormat::Jpeg) {
        if let Some(cmyk) = decode_cmyk_jpeg(bytes)? {
            return Ok((cmyk, Kind::Cmyk));
        }
    }
    let img = reader.decode().map_err(|e| e.to_string())?;
    if img.width() == 0 || img.height() == 0 {
        return Err("image has no pixels".into());
    }
    if let DynamicImage::ImageLuma16(b) = img {
        return Ok((
            Raster {
                width: b.width() as usize,
                height: b.height() as usize,
                channels: 1,
                data: Vec::new(),
            },
            Kind::Gray16(b.into_raw()),
        ));
    }
    Ok(to_raster(img, png_header))
}

/// A four-component JPEG as Pillow reads it (mode CMYK; Adobe files store inverted inks, which
/// Pillow's `CMYK;I` raw mode undoes); `None` for other JPEGs.
fn decode_cmyk_jpeg(bytes: &[u8]) -> Result<Option<Raster>, String> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let mut probe = zune_jpeg::JpegDecoder::new(ZCursor::new(bytes));
    probe.decode_headers().map_err(|e| format!("{e:?}"))?;
    if !matches!(probe.input_colorspace(), Some(ColorSpace::CMYK) | Some(ColorSpace::YCCK)) {
        return Ok(None);
    }
    let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::CMYK);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), opts);
    let mut data = dec.decode().map_err(|e| format!("{e:?}"))?;
    let info = dec.info().ok_or("JPEG without a frame header")?;
    let adobe = bytes.windows(5).any(|w| w == b"Adobe");
    if adobe {
        data.iter_mut().for_each(|v| *v = 255 - *v);
    }
    Ok(Some(Raster {
        width: info.width as usize,
        height: info.height as usize,
        channels: 4,
        data,
    }))
}

/// Whether a JPEG stream has an end-of-image marker after its last start-of-scan.
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        Some(s) => bytes[s..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

/// Resize + centre-crop to `n`, then `convert("RGB")`: the 8-bit picture CLIP sees.
pub fn clip_rgb(raster: Raster, kind: Kind, n: usize) -> Raster {
    let (w, h) = (raster.width, raster.height);
    let (nw, nh) = resized_size(w, h, n);
    let resized = if let Kind::Gray16(samples) = &kind {
        let r = if (nw, nh) == (w, h) {
            samples.clone()
        } else {
            resize_bicubic_u16(samples, w, h, nw, nh)
        };
        Raster {
            width: nw,
            height: nh,
            channels: 1,
            data: r.iter().map(|&v| v.min(255) as u8).collect(),
        }
    } else if (nw, nh) == (w, h) {
        raster
    } else {
        match kind {
            Kind::Nearest => resize_nearest(&raster, nw, nh),
            Kind::Plain | Kind::Cmyk | Kind::Gray16(_) => resize_bicubic(&raster, nw, nh),
            Kind::Alpha => {
                let mut r = raster;
                premultiply(&mut r);
                let mut r = resize_bicubic(&r, nw, nh);
                unpremultiply(&mut r);
                r
            }
        }
    };
    let top = py_round_half(nh - n.min(nh));
    let left = py_round_half(nw - n.min(nw));
    let cropped = crop(&resized, left, top, n.min(nw), n.min(nh));
    convert_rgb(cropped, &kind)
}

/// Pillow's `convert("RGB")` of a raster decoded as `kind`.
pub fn convert_rgb(img: Raster, kind: &Kind) -> Raster {
    if let Kind::Gray16(samples) = kind {
        if img.data.is_empty() {
            let data = samples.iter().flat_map(|&v| [v.min(255) as u8; 3]).collect();
            return Raster {
                width: img.width,
                height: img.height,
                channels: 3,
                data,
            };
        }
    }
    let c = img.channels;
    let data = img
        .data
        .chunks_exact(c)
        .flat_map(|px| match (c, kind) {
            (1 | 2, _) => [px[0], px[0], px[0]],
            (4, Kind::Cmyk) => {
                // Pillow's cmyk2rgb: (255 - k) - c * (255 - k) / 255 per channel.
                let nk = 255 - px[3] as u32;
                [0, 1, 2].map(|i| (nk - muldiv255(px[i] as u32, nk) as u32) as u8)
            }
            _ => [px[0], px[1], px[2]],
        })
        .collect();
    Raster {
        width: img.width,
        height: img.height,
        channels: 3,
        data,
    }
}

/// A file as the RGB picture Pillow's `open(...).convert("RGB")` gives (training reads images
/// this way before augmenting, as Dassl's `read_image` does).
pub fn load_rgb(path: &Path) -> Result<Raster, PreprocessError> {
    let (raster, kind) = decode(path)?;
    Ok(convert_rgb(raster, &kind))
}

/// `ToTensor` + `Normalize` in float32: `[3, n, n]`, channel-major.
pub fn to_normalized_chw(rgb: &Raster) -> Vec<f32> {
    let (w, h) = (rgb.width, rgb.height);
    let mut out = vec![0.0f32; 3 * w * h];
    for (i, px) in rgb.data.chunks_exact(3).enumerate() {
        for ch in 0..3 {
            out[ch * w * h + i] = (px[ch] as f32 / 255.0 - CLIP_MEAN[ch]) / CLIP_STD[ch];
        }
    }
    out
}

/// A file -> the normalised `[3, n, n]` tensor data CLIP's `preprocess` gives.
pub fn load_image(path: &Path, n: usize) -> Result<Vec<f32>, PreprocessError> {
    let (raster, kind) = decode(path)?;
    Ok(to_normalized_chw(&clip_rgb(raster, kind, n)))
}

/// The same from bytes already in memory (`name` is used in errors).
pub fn load_image_bytes(bytes: &[u8], name: &Path, n: usize) -> Result<Vec<f32>, PreprocessError> {
    let (raster, kind) = decode_bytes(bytes).map_err(|msg| PreprocessError::Decode { path: name.into(), msg })?;
    Ok(to_normalized_chw(&clip_rgb(raster, kind, n)))
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

    #[test]
    fn bicubic_is_identity_at_unit_scale_and_preserves_constants() {
        let img = Raster {
            width: 5,
            height: 4,
            channels: 1,
            data: (0..20).map(|v| (v * 12) as u8).collect(),
        };
        assert_eq!(resize_bicubic(&img, 5, 4), img);
        let flat = Raster {
            width: 9,
            height: 7,
            channels: 3,
            data: vec![77; 9 * 7 * 3],
        };
        let r = resize_bicubic(&flat, 4, 3);
        assert!(r.data.iter().all(|&v| v == 77), "{:?}", r.data);
    }
}
