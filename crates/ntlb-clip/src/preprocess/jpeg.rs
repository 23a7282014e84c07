//! JPEG through libjpeg-turbo's decoder (the copy mozjpeg-sys builds from source with the `cc`
//! crate), with the settings Pillow's `JpegDecode.c` uses: ISLOW DCT, fancy upsampling, the
//! library's own colour-space guess (JFIF / Adobe transform flag), output L / RGB / CMYK by the
//! number of components, and Pillow's `CMYK;I` inversion of every four-component file.
//!
//! Pillow ignores libjpeg's warnings; here a warning that means the decoder made pixels up
//! (corrupt entropy data, a premature end of the file) is an error, so that a broken scan is
//! never read as a half-grey picture.

use std::os::raw::{c_int, c_ulong};

use mozjpeg_sys as ffi;

use super::{Kind, Raster};

/// Warnings after which libjpeg fills blocks with zeros (grey) and carries on. (The arithmetic
/// decoder's "bad arithmetic code" has no stable number in this build's message table; it is
/// recognised by its text.)
const MADE_UP_PIXELS: [(ffi::J_MESSAGE_CODE, &str); 5] = [
    (ffi::JWRN_HIT_MARKER, "corrupt JPEG data: premature end of data segment"),
    (ffi::JWRN_HUFF_BAD_CODE, "corrupt JPEG data: bad Huffman code"),
    (ffi::JWRN_MUST_RESYNC, "corrupt JPEG data: a marker where a restart marker belongs"),
    (ffi::JWRN_JPEG_EOF, "JPEG data is truncated (premature end of file)"),
    (ffi::JWRN_BOGUS_PROGRESSION, "corrupt JPEG data: inconsistent progression sequence"),
];

/// libjpeg's error exit must not return: unwind (mozjpeg-sys builds the C code to allow it) to
/// the `catch_unwind` in [`decode`], carrying the library's message.
unsafe extern "C-unwind" fn error_exit(cinfo: &mut ffi::jpeg_common_struct) {
    let msg = unsafe { message(cinfo) };
    std::panic::resume_unwind(Box::new(msg));
}

unsafe extern "C-unwind" fn emit_message(cinfo: &mut ffi::jpeg_common_struct, level: c_int) {
    if level >= 0 {
        return;
    }
    let code = unsafe { (*cinfo.err).msg_code };
    if let Some((_, text)) = MADE_UP_PIXELS.iter().find(|(c, _)| *c == code) {
        std::panic::resume_unwind(Box::new(text.to_string()));
    }
    let msg = unsafe { message(cinfo) };
    if msg.contains("bad arithmetic code") {
        std::panic::resume_unwind(Box::new(msg));
    }
}

unsafe fn message(cinfo: &mut ffi::jpeg_common_struct) -> String {
    let err = unsafe { &*cinfo.err };
    let mut buf = [0u8; 80];
    if let Some(f) = err.format_message {
        // mozjpeg-sys declares the buffer as `&[u8; 80]`, but libjpeg writes into it.
        let f: unsafe extern "C-unwind" fn(&mut ffi::jpeg_common_struct, *mut u8) = unsafe { std::mem::transmute(f) };
        unsafe { f(cinfo, buf.as_mut_ptr()) };
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(s) if !s.is_empty() => s.to_string(),
        _ => format!("libjpeg error {}", err.msg_code),
    }
}

/// Owns the decompressor; dropping it (also while unwinding) releases libjpeg's memory.
struct Decompress {
    cinfo: Box<ffi::jpeg_decompress_struct>,
    _err: Box<ffi::jpeg_error_mgr>,
}

impl Drop for Decompress {
    fn drop(&mut self) {
        unsafe { ffi::jpeg_destroy_decompress(&mut self.cinfo) };
    }
}

/// Decode as Pillow does: `(raster, Kind::Plain)` for L / RGB, `(raster, Kind::Cmyk)` for CMYK
/// and YCCK files (inks inverted, Adobe convention, whatever the markers say).
pub(super) fn decode(bytes: &[u8]) -> Result<(Raster, Kind), String> {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { decode_unwinding(bytes) }));
    match r {
        Ok(r) => r,
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "JPEG decoder failed".into())),
    }
}

unsafe fn decode_unwinding(bytes: &[u8]) -> Result<(Raster, Kind), String> {
    let mut err: Box<ffi::jpeg_error_mgr> = Box::new(unsafe { std::mem::zeroed() });
    unsafe { ffi::jpeg_std_error(&mut err) };
    err.error_exit = Some(error_exit);
    err.emit_message = Some(emit_message);
    let mut d = Decompress {
        cinfo: Box::new(unsafe { std::mem::zeroed() }),
        _err: err,
    };
    d.cinfo.common.err = &mut *d._err;
    unsafe {
        ffi::jpeg_create_decompress(&mut *d.cinfo);
        ffi::jpeg_mem_src(&mut d.cinfo, bytes.as_ptr(), bytes.len() as c_ulong);
        ffi::jpeg_read_header(&mut d.cinfo, 1);
    }
    // 12-bit files stop in `jpeg_read_header` (this build, like Pillow, reads 8-bit samples only).
    let cinfo = &mut *d.cinfo;
    let (channels, kind) = match cinfo.num_components {
        1 => (1, Kind::Plain),
        3 => (3, Kind::Plain),
        4 => (4, Kind::Cmyk),
        n => return Err(format!("cannot handle {n}-component JPEG images")),
    };
    cinfo.out_color_space = match channels {
        1 => ffi::J_COLOR_SPACE::JCS_GRAYSCALE,
        3 => ffi::J_COLOR_SPACE::JCS_RGB,
        _ => ffi::J_COLOR_SPACE::JCS_CMYK,
    };
    cinfo.dct_method = ffi::J_DCT_METHOD::JDCT_ISLOW;
    cinfo.do_fancy_upsampling = 1;
    unsafe { ffi::jpeg_start_decompress(cinfo) };
    let (w, h) = (cinfo.output_width as usize, cinfo.output_height as usize);
    if w == 0 || h == 0 {
        return Err("image has no pixels".into());
    }
    let stride = w * channels;
    let mut data = vec![0u8; stride * h];
    let mut rows: Vec<*mut u8> = data.chunks_exact_mut(stride).map(|r| r.as_mut_ptr()).collect();
    while (cinfo.output_scanline as usize) < h {
        let y = cinfo.output_scanline as usize;
        let n = unsafe { ffi::jpeg_read_scanlines(cinfo, rows[y..].as_mut_ptr(), (h - y) as u32) };
        if n == 0 {
            return Err("JPEG decoder stopped before the last row".into());
        }
    }
    // Pillow reads on to the end-of-image marker and calls a file without one truncated; so does
    // this (`jpeg_mem_src` reports the missing end as JWRN_JPEG_EOF, an error above).
    unsafe { ffi::jpeg_finish_decompress(cinfo) };
    if matches!(kind, Kind::Cmyk) {
        data.iter_mut().for_each(|v| *v = 255 - *v);
    }
    Ok((
        Raster {
            width: w,
            height: h,
            channels,
            data,
        },
        kind,
    ))
}
