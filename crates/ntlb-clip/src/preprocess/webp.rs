//! WebP as Pillow's `WebPImagePlugin` decodes it: libwebp (the 1.6.0 sources that libwebp-sys
//! builds with the `cc` crate, the version Pillow 13's wheels bundle) through the same API,
//! `WebPAnimDecoder` with its default options (`MODE_RGBA`, not premultiplied, no threads), and
//! the first frame of its canvas (what `Image.open` shows for an animation).
//!
//! The mode is Pillow's: RGBA when `WebPGetFeatures` reports alpha (a VP8X alpha flag, an ALPH
//! chunk, VP8L's alpha bit), else RGB (Pillow's `RGBX` rawmode drops the fourth byte). RGBA is
//! [`Kind::Alpha`], as an RGBA PNG: resized premultiplied, alpha dropped by `convert("RGB")`.
//! Colours under alpha 0 are the file's (Pillow does not touch them either).

use std::os::raw::c_int;

use libwebp_sys as ffi;

use super::{Kind, Raster};

/// Pillow's decompression-bomb error threshold (`2 × MAX_IMAGE_PIXELS`), which its WebP plugin
/// checks on the header before the decoder allocates the canvas.
const MAX_PIXELS: u64 = 2 * 89_478_485;

/// `RIFF <size> WEBP`: the container every WebP file starts with.
pub(super) fn is_webp(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP"
}

/// Owns the animation decoder; it reads from the caller's bytes, which outlive it.
struct AnimDecoder(*mut ffi::WebPAnimDecoder);

impl Drop for AnimDecoder {
    fn drop(&mut self) {
        unsafe { ffi::WebPAnimDecoderDelete(self.0) };
    }
}

fn status(s: ffi::VP8StatusCode) -> &'static str {
    use ffi::VP8StatusCode as S;
    match s {
        S::VP8_STATUS_OK => "ok",
        S::VP8_STATUS_OUT_OF_MEMORY => "out of memory",
        S::VP8_STATUS_INVALID_PARAM => "invalid parameter",
        S::VP8_STATUS_BITSTREAM_ERROR => "corrupt bitstream",
        S::VP8_STATUS_UNSUPPORTED_FEATURE => "unsupported feature",
        S::VP8_STATUS_SUSPENDED => "suspended",
        S::VP8_STATUS_USER_ABORT => "aborted",
        S::VP8_STATUS_NOT_ENOUGH_DATA => "truncated (not enough data)",
    }
}

/// `(raster, Kind::Plain)` for RGB, `(raster, Kind::Alpha)` for RGBA.
pub(super) fn decode(bytes: &[u8]) -> Result<(Raster, Kind), String> {
    let mut features: ffi::WebPBitstreamFeatures = unsafe { std::mem::zeroed() };
    let s = unsafe { ffi::WebPGetFeatures(bytes.as_ptr(), bytes.len(), &mut features) };
    if s != ffi::VP8StatusCode::VP8_STATUS_OK {
        return Err(format!("WebP: {}", status(s)));
    }
    let (w, h) = (features.width as u64, features.height as u64);
    if w * h > MAX_PIXELS {
        return Err(format!(
            "WebP: {w}x{h} = {} pixels exceeds Pillow's limit of {MAX_PIXELS} (a decompression bomb)",
            w * h
        ));
    }
    let channels = if features.has_alpha != 0 { 4 } else { 3 };

    let mut opts: ffi::WebPAnimDecoderOptions = unsafe { std::mem::zeroed() };
    if unsafe { ffi::WebPAnimDecoderOptionsInit(&mut opts) } == 0 {
        return Err("WebP: libwebp's demux ABI does not match".into());
    }
    // The defaults Pillow gets by passing no options; spelled out so that they stay so.
    opts.color_mode = ffi::WEBP_CSP_MODE::MODE_RGBA;
    opts.use_threads = 0;
    let data = ffi::WebPData {
        bytes: bytes.as_ptr(),
        size: bytes.len(),
    };
    let dec = unsafe { ffi::WebPAnimDecoderNew(&data, &opts) };
    if dec.is_null() {
        // Pillow: "could not create decoder object" (a truncated file lands here: the demuxer
        // wants the whole RIFF payload).
        return Err("WebP: cannot parse the file (truncated or corrupt container)".into());
    }
    let dec = AnimDecoder(dec);
    let mut info: ffi::WebPAnimInfo = unsafe { std::mem::zeroed() };
    if unsafe { ffi::WebPAnimDecoderGetInfo(dec.0, &mut info) } == 0 {
        return Err("WebP: cannot read the canvas size".into());
    }
    let (cw, ch) = (info.canvas_width as usize, info.canvas_height as usize);
    if cw == 0 || ch == 0 {
        return Err("image has no pixels".into());
    }
    let mut buf: *mut u8 = std::ptr::null_mut();
    let mut timestamp: c_int = 0;
    if unsafe { ffi::WebPAnimDecoderGetNext(dec.0, &mut buf, &mut timestamp) } == 0 || buf.is_null() {
        // Pillow: "failed to read next frame" (corrupt or cut image data).
        return Err("WebP: cannot decode the image data (truncated or corrupt bitstream)".into());
    }
    // The canvas belongs to the decoder, valid until the next call on it.
    let rgba = unsafe { std::slice::from_raw_parts(buf, cw * ch * 4) };
    let data = if channels == 4 {
        rgba.to_vec()
    } else {
        rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect()
    };
    let kind = if channels == 4 { Kind::Alpha } else { Kind::Plain };
    Ok((
        Raster {
            width: cw,
            height: ch,
            channels,
            data,
        },
        kind,
    ))
}

/// A WebP file of an 8-bit RGB (3 channels) or RGBA (4) raster: lossy at `quality` (0..=100, as
/// Pillow's `quality=`), lossless for `None`; libwebp's simple encoder (method 4, Pillow's default
/// too; colours under alpha 0 may be rewritten, as Pillow's `exact=False`). For benchmarks and
/// tests that need WebP images (the decoder is what must be Pillow's).
pub fn encode(img: &Raster, quality: Option<f32>) -> Result<Vec<u8>, String> {
    let (w, h, c) = (img.width, img.height, img.channels);
    if !(c == 3 || c == 4) || img.data.len() != w * h * c || w == 0 || h == 0 || w > 16383 || h > 16383 {
        return Err(format!("WebP: cannot encode a {w}x{h}x{c} raster"));
    }
    let (wi, hi, stride) = (w as c_int, h as c_int, (w * c) as c_int);
    let mut out: *mut u8 = std::ptr::null_mut();
    let p = img.data.as_ptr();
    let size = unsafe {
        match (c, quality) {
            (3, Some(q)) => ffi::WebPEncodeRGB(p, wi, hi, stride, q, &mut out),
            (4, Some(q)) => ffi::WebPEncodeRGBA(p, wi, hi, stride, q, &mut out),
            (3, None) => ffi::WebPEncodeLosslessRGB(p, wi, hi, stride, &mut out),
            _ => ffi::WebPEncodeLosslessRGBA(p, wi, hi, stride, &mut out),
        }
    };
    if size == 0 || out.is_null() {
        return Err("WebP: the encoder failed".into());
    }
    let bytes = unsafe { std::slice::from_raw_parts(out, size) }.to_vec();
    unsafe { ffi::WebPFree(out.cast()) };
    Ok(bytes)
}
