//! Pillow's resampling filters on 8-bit rasters: the separable antialiased BICUBIC with 8-bit
//! fixed-point coefficients and Pillow's pass order (and its 16-bit `I;16` variant), NEAREST,
//! and the plain crop.

use std::ops::Range;

use super::Raster;

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

/// Pillow 13's pass order (`ImagingResampleInner`): the vertical pass runs first when the
/// height shrinks by more than twice what the width shrinks. Each pass rounds, so the order
/// changes pixels.
fn vertical_first(w: usize, h: usize, out_w: usize, out_h: usize) -> bool {
    let (dy, dx) = (h as i64 - out_h as i64, w as i64 - out_w as i64);
    dy > 0 && dy > dx * 2
}

/// Pillow's `I;16` resize (`ImagingResample*_16bpc`): float weights, round half up, clamp.
pub(super) fn resize_bicubic_u16(data: &[u16], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u16> {
    let round = |v: f64| -> u16 { (v + 0.5).floor().clamp(0.0, 65535.0) as u16 };
    let horizontal = |cur: &[u16], h: usize| -> Vec<u16> {
        let (bounds, kk, ksize) = coefficients_f64(w, out_w);
        let mut next = vec![0u16; out_w * h];
        for y in 0..h {
            for (xx, &(xmin, xmax)) in bounds.iter().enumerate() {
                let ss: f64 = (0..xmax).map(|x| cur[y * w + xmin + x] as f64 * kk[xx * ksize + x]).sum();
                next[y * out_w + xx] = round(ss);
            }
        }
        next
    };
    let vertical = |cur: &[u16], cw: usize| -> Vec<u16> {
        let (bounds, kk, ksize) = coefficients_f64(h, out_h);
        let mut next = vec![0u16; cw * out_h];
        for (yy, &(ymin, ymax)) in bounds.iter().enumerate() {
            for x in 0..cw {
                let ss: f64 = (0..ymax).map(|y| cur[(ymin + y) * cw + x] as f64 * kk[yy * ksize + y]).sum();
                next[yy * cw + x] = round(ss);
            }
        }
        next
    };
    let mut cur = data.to_vec();
    if vertical_first(w, h, out_w, out_h) {
        if out_h != h {
            cur = vertical(&cur, w);
        }
        if out_w != w {
            cur = horizontal(&cur, out_h);
        }
    } else {
        if out_w != w {
            cur = horizontal(&cur, h);
        }
        if out_h != h {
            cur = vertical(&cur, out_w);
        }
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

/// Rows transposed per block of the horizontal pass: the taps then run over `ROWS × channels`
/// contiguous lanes, which the compiler vectorises (Pillow's loop is one pixel at a time).
const ROWS: usize = 32;

/// Horizontal pass to `out_w` columns, only output columns `cols` of source rows `rows`.
/// Integer sums in any order equal Pillow's, so the block layout changes no pixel.
fn resample_horizontal(img: &Raster, out_w: usize, cols: Range<usize>, rows: Range<usize>) -> Raster {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { resample_horizontal_avx2(img, out_w, cols, rows) };
    }
    resample_horizontal_body(img, out_w, cols, rows)
}

/// The same code compiled for AVX2, where 32-bit multiplies are one instruction for 8 lanes
/// (the x86-64 baseline, SSE2, has none); the integer results are the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn resample_horizontal_avx2(img: &Raster, out_w: usize, cols: Range<usize>, rows: Range<usize>) -> Raster {
    resample_horizontal_body(img, out_w, cols, rows)
}

#[inline(always)]
fn resample_horizontal_body(img: &Raster, out_w: usize, cols: Range<usize>, rows: Range<usize>) -> Raster {
    // Fixed channel counts: the per-pixel copies below become plain moves, not memcpy calls.
    match img.channels {
        1 => horizontal_c::<1>(img, out_w, cols, rows),
        2 => horizontal_c::<2>(img, out_w, cols, rows),
        3 => horizontal_c::<3>(img, out_w, cols, rows),
        _ => horizontal_c::<4>(img, out_w, cols, rows),
    }
}

#[inline(always)]
fn horizontal_c<const C: usize>(img: &Raster, out_w: usize, cols: Range<usize>, rows: Range<usize>) -> Raster {
    assert_eq!(img.channels, C);
    let (bounds, kk, ksize) = coefficients(img.width, out_w);
    let c = C;
    let (ow, stride) = (cols.len(), img.width * c);
    let mut data = vec![0u8; ow * rows.len() * c];
    if ow > 0 && !rows.is_empty() {
        // Source columns the chosen outputs read.
        let x0 = bounds[cols.clone()].iter().map(|&(m, _)| m).min().unwrap_or(0);
        let x1 = bounds[cols.clone()].iter().map(|&(m, n)| m + n).max().unwrap_or(x0);
        let lanes = ROWS * c;
        let mut t = vec![0u8; (x1 - x0) * lanes];
        let mut acc = vec![0i32; lanes];
        let half: i32 = 1 << (PRECISION_BITS - 1);
        for y0 in rows.clone().step_by(ROWS) {
            let nb = ROWS.min(rows.end - y0);
            let lane = nb * c;
            for r in 0..nb {
                let src = &img.data[(y0 + r) * stride + x0 * c..(y0 + r) * stride + x1 * c];
                for (px, dst) in src.chunks_exact(C).zip(t[r * C..].chunks_mut(lanes)) {
                    dst[..C].copy_from_slice(px);
                }
            }
            for (j, xx) in cols.clone().enumerate() {
                let (xmin, xmax) = bounds[xx];
                let acc = &mut acc[..lane];
                acc.fill(half);
                for (i, &w) in kk[xx * ksize..xx * ksize + xmax].iter().enumerate() {
                    let col = &t[(xmin - x0 + i) * lanes..][..lane];
                    acc.iter_mut().zip(col).for_each(|(a, &v)| *a += v as i32 * w);
                }
                for (r, a) in acc.chunks_exact(C).enumerate() {
                    let o = ((y0 - rows.start + r) * ow + j) * C;
                    for ch in 0..C {
                        data[o + ch] = clip8(a[ch]);
                    }
                }
            }
        }
    }
    Raster {
        width: ow,
        height: rows.len(),
        channels: c,
        data,
    }
}

/// Vertical pass of a picture `in_h` rows high to `out_h` rows, only output rows `rows`; `img`
/// holds source rows `src_row0..` (the horizontal pass skips rows no output reads).
fn resample_vertical(img: &Raster, in_h: usize, src_row0: usize, out_h: usize, rows: Range<usize>) -> Raster {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { resample_vertical_avx2(img, in_h, src_row0, out_h, rows) };
    }
    resample_vertical_body(img, in_h, src_row0, out_h, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn resample_vertical_avx2(img: &Raster, in_h: usize, src_row0: usize, out_h: usize, rows: Range<usize>) -> Raster {
    resample_vertical_body(img, in_h, src_row0, out_h, rows)
}

#[inline(always)]
fn resample_vertical_body(img: &Raster, in_h: usize, src_row0: usize, out_h: usize, rows: Range<usize>) -> Raster {
    let (bounds, kk, ksize) = coefficients(in_h, out_h);
    let stride = img.width * img.channels;
    let mut data = vec![0u8; stride * rows.len()];
    let mut acc = vec![0i32; stride];
    for (yo, yy) in rows.clone().enumerate() {
        let (ymin, ymax) = bounds[yy];
        acc.iter_mut().for_each(|a| *a = 1 << (PRECISION_BITS - 1));
        // Row by row: contiguous, vectorisable, the same sums as Pillow's column loop.
        for (y, &w) in kk[yy * ksize..yy * ksize + ymax].iter().enumerate() {
            let r = ymin + y - src_row0;
            let row = &img.data[r * stride..(r + 1) * stride];
            acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as i32 * w);
        }
        data[yo * stride..(yo + 1) * stride]
            .iter_mut()
            .zip(&acc)
            .for_each(|(d, &a)| *d = clip8(a));
    }
    Raster {
        width: img.width,
        height: rows.len(),
        channels: img.channels,
        data,
    }
}

/// Pillow's `Image.resize(size, BICUBIC)` on an 8-bit image, both passes in Pillow's order.
pub fn resize_bicubic(img: &Raster, out_w: usize, out_h: usize) -> Raster {
    resize_bicubic_window(img, out_w, out_h, 0..out_w, 0..out_h)
}

/// The `cols` × `rows` window of [`resize_bicubic`]'s output, computing only what it needs (the
/// centre crop keeps 224 of 298 columns of a 4:3 photo).
pub fn resize_bicubic_window(img: &Raster, out_w: usize, out_h: usize, cols: Range<usize>, rows: Range<usize>) -> Raster {
    let (w, h) = (img.width, img.height);
    match (out_w != w, out_h != h) {
        (false, false) => crop(img, cols.start, rows.start, cols.len(), rows.len()),
        (true, false) => resample_horizontal(img, out_w, cols, rows),
        (false, true) => {
            let v = resample_vertical(img, h, 0, out_h, rows);
            crop(&v, cols.start, 0, cols.len(), v.height)
        }
        (true, true) if vertical_first(w, h, out_w, out_h) => {
            let v = resample_vertical(img, h, 0, out_h, rows);
            let all = 0..v.height;
            resample_horizontal(&v, out_w, cols, all)
        }
        (true, true) => {
            let (bounds, _, _) = coefficients(h, out_h);
            let y0 = bounds[rows.clone()].iter().map(|&(m, _)| m).min().unwrap_or(0);
            let y1 = bounds[rows.clone()].iter().map(|&(m, n)| m + n).max().unwrap_or(y0);
            let hz = resample_horizontal(img, out_w, cols, y0..y1);
            resample_vertical(&hz, h, y0, out_h, rows)
        }
    }
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

/// Pillow's `Image.crop` of an 8-bit raster (also the window of a picture no resize changes).
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

#[cfg(test)]
mod tests {
    use super::*;

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
