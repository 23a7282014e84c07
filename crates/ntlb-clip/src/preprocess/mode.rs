//! Pillow's mode rules, which change the pixels: how a picture in its decoded mode ([`Kind`]) is
//! resized (palette and 1-bit with NEAREST, RGBA/LA premultiplied by alpha, `I;16` in 16 bits),
//! cropped and converted to RGB (CMYK by `cmyk2rgb`).

use std::ops::Range;

use super::resample::{crop, resize_bicubic_u16, resize_bicubic_window, resize_nearest};
use super::{Kind, Raster};

/// Pillow's `resize((w, h), BICUBIC)` of a picture in its decoded mode, 8 bits out (`I;16` is
/// resized in 16 bits and clipped at 255 as its conversion to RGB does).
pub fn resize_decoded(raster: Raster, kind: &Kind, nw: usize, nh: usize) -> Raster {
    let (w, h) = (raster.width, raster.height);
    if let Kind::Gray16(samples) = kind {
        let r = if (nw, nh) == (w, h) {
            samples.clone()
        } else {
            resize_bicubic_u16(samples, w, h, nw, nh)
        };
        return Raster {
            width: nw,
            height: nh,
            channels: 1,
            data: r.iter().map(|&v| v.min(255) as u8).collect(),
        };
    }
    if (nw, nh) == (w, h) {
        return raster;
    }
    if *kind == Kind::Nearest {
        return resize_nearest(&raster, nw, nh);
    }
    resize_decoded_window(raster, kind, nw, nh, 0..nw, 0..nh)
}

/// The `cols` × `rows` window of [`resize_decoded`], computing only what it needs.
pub(super) fn resize_decoded_window(raster: Raster, kind: &Kind, nw: usize, nh: usize, cols: Range<usize>, rows: Range<usize>) -> Raster {
    let whole = (raster.width, raster.height) == (nw, nh);
    match kind {
        Kind::Plain | Kind::Cmyk if !whole => resize_bicubic_window(&raster, nw, nh, cols, rows),
        Kind::Alpha if !whole => {
            let mut r = raster;
            premultiply(&mut r);
            let mut r = resize_bicubic_window(&r, nw, nh, cols, rows);
            unpremultiply(&mut r);
            r
        }
        _ => {
            let r = resize_decoded(raster, kind, nw, nh);
            crop(&r, cols.start, rows.start, cols.len(), rows.len())
        }
    }
}

/// `Image.crop` of a picture in its decoded mode.
pub fn crop_decoded(raster: &Raster, kind: &Kind, left: usize, top: usize, w: usize, h: usize) -> (Raster, Kind) {
    if let Kind::Gray16(samples) = kind {
        let data = (top..top + h)
            .flat_map(|y| &samples[y * raster.width + left..y * raster.width + left + w])
            .copied()
            .collect();
        let r = Raster {
            width: w,
            height: h,
            channels: 1,
            data: Vec::new(),
        };
        return (r, Kind::Gray16(data));
    }
    (crop(raster, left, top, w, h), kind.clone())
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
    if c == 3 {
        return img;
    }
    if c == 1 {
        let data = img.data.iter().flat_map(|&v| [v; 3]).collect();
        return Raster {
            width: img.width,
            height: img.height,
            channels: 3,
            data,
        };
    }
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
