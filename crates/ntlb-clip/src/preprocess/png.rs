//! PNG as Pillow's `PngImagePlugin` holds it. The raw samples are unpacked here rather than
//! through a decoder's "expand" transform, because Pillow never turns a tRNS chunk into alpha:
//! an RGB / L / 16-bit gray PNG with tRNS stays mode RGB / L / I;16 and `convert("RGB")` ignores
//! the transparency.

use super::{Kind, Raster};

/// Pillow's decompression-bomb error threshold is 2 × 89.5 MP; a 16-bit RGBA frame of that size
/// is about 1.4 GiB. Anything the png crate would allocate beyond this is refused.
const MAX_BYTES: usize = 1 << 31;

pub(super) fn decode(bytes: &[u8]) -> Result<(Raster, Kind), String> {
    let mut dec = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), png::Limits { bytes: MAX_BYTES });
    dec.set_transformations(png::Transformations::IDENTITY);
    let mut reader = dec.read_info().map_err(|e| format!("PNG: {e}"))?;
    let size = reader.output_buffer_size().ok_or("PNG: image too large")?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(|e| format!("PNG: {e}"))?;
    let (w, h, line) = (info.width as usize, info.height as usize, info.line_size);
    if w == 0 || h == 0 {
        return Err("image has no pixels".into());
    }
    let depth = info.bit_depth as u32;
    let rows = buf.chunks_exact(line).take(h);
    let raster = |channels: usize, data: Vec<u8>| Raster {
        width: w,
        height: h,
        channels,
        data,
    };
    use png::ColorType as C;
    Ok(match (info.color_type, depth) {
        // Mode "1": 0 / 255, resized with NEAREST.
        (C::Grayscale, 1) => (
            raster(1, rows.flat_map(|r| unpack(r, 1, w)).map(|v| v * 255).collect()),
            Kind::Nearest,
        ),
        // "L;2" / "L;4": levels stretched to 0..255 (× 0x55, × 0x11).
        (C::Grayscale, 2 | 4) => {
            let scale = (255 / ((1u32 << depth) - 1)) as u8;
            (
                raster(1, rows.flat_map(|r| unpack(r, depth, w)).map(|v| v * scale).collect()),
                Kind::Plain,
            )
        }
        (C::Grayscale, 8) => (raster(1, rows.flatten().copied().collect()), Kind::Plain),
        // "I;16B": all 16 bits kept; the conversion to RGB clips at 255.
        (C::Grayscale, 16) => {
            let samples = rows
                .flat_map(|r| r.chunks_exact(2).map(|b| u16::from_be_bytes([b[0], b[1]])))
                .collect();
            (raster(1, Vec::new()), Kind::Gray16(samples))
        }
        (C::Indexed, d) => {
            let palette = reader.info().palette.as_deref().ok_or("PNG: palette image without a PLTE chunk")?;
            // Indices past the end of a short palette read black, as in Pillow's zero-filled palette.
            let colour = |i: u8| -> [u8; 3] {
                let p = i as usize * 3;
                palette.get(p..p + 3).map(|c| [c[0], c[1], c[2]]).unwrap_or([0; 3])
            };
            let data = rows.flat_map(|r| unpack(r, d, w)).flat_map(colour).collect();
            (raster(3, data), Kind::Nearest)
        }
        // 16-bit colour: Pillow's rawmodes `RGB;16B`, `LA;16B`, `RGBA;16B` keep the high byte.
        (C::Rgb, 8) | (C::GrayscaleAlpha, 8) | (C::Rgba, 8) => {
            let c = info.color_type.samples();
            (raster(c, rows.flat_map(|r| r[..w * c].iter().copied()).collect()), alpha_kind(c))
        }
        (C::Rgb | C::GrayscaleAlpha | C::Rgba, 16) => {
            let c = info.color_type.samples();
            (
                raster(c, rows.flat_map(|r| r[..w * c * 2].iter().step_by(2).copied()).collect()),
                alpha_kind(c),
            )
        }
        (t, d) => return Err(format!("PNG: unsupported colour type {t:?} at {d} bits")),
    })
}

fn alpha_kind(channels: usize) -> Kind {
    if channels == 2 || channels == 4 {
        Kind::Alpha
    } else {
        Kind::Plain
    }
}

/// The first `w` samples of a row packed at `depth` bits (most significant first).
fn unpack(row: &[u8], depth: u32, w: usize) -> impl Iterator<Item = u8> + '_ {
    let per_byte = 8 / depth as usize;
    let mask = ((1u16 << depth) - 1) as u8;
    (0..w).map(move |x| {
        let shift = 8 - depth as usize * (x % per_byte + 1);
        if depth == 8 {
            row[x]
        } else {
            (row[x / per_byte] >> shift) & mask
        }
    })
}
