//! WebP against Pillow 13.0.0 (libwebp 1.6.0), fixtures from scripts/make_webp_fixtures.py:
//! lossless and lossy (three qualities, two methods), alpha (lossless and quantised), odd and
//! 1x1 sizes, a VP8X file with EXIF/ICC, an animation. The decoded pixels byte for byte, then
//! the test-time tensor in both conversion orders; broken files are errors naming the file.

mod common;

use std::path::{Path, PathBuf};

use ntlb_clip::preprocess::{load_decoded, load_image, load_image_bytes, load_image_with, load_rgb, ConvertOrder, Kind, Normalization};
use safetensors::SafeTensors;

use common::expect_decode_error;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webp")
}

fn fixtures(file: &str) -> Vec<u8> {
    std::fs::read(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e} (run scripts/make_webp_fixtures.py)"))
}

/// Every case the script wrote, so that a fixture dropped from the script is noticed.
const CASES: usize = 16;

#[test]
fn decodes_the_pixels_pillow_decodes() {
    let bytes = fixtures("decoded.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    names.sort();
    assert_eq!(names.len(), CASES, "{names:?}");
    let mut off = Vec::new();
    for name in &names {
        let view = st.tensor(name).unwrap();
        let (h, w, c) = (view.shape()[0], view.shape()[1], view.shape()[2]);
        let (raster, kind) = load_decoded(&dir().join(name)).unwrap_or_else(|e| panic!("{e}"));
        // Pillow's mode: RGBA (resized premultiplied, as an RGBA PNG) or RGB.
        assert_eq!((raster.width, raster.height, raster.channels), (w, h, c), "{name}: size / mode");
        assert_eq!(kind, if c == 4 { Kind::Alpha } else { Kind::Plain }, "{name}");
        let differ = raster.data.iter().zip(view.data()).filter(|(a, b)| a != b).count();
        let max = raster
            .data
            .iter()
            .zip(view.data())
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .max()
            .unwrap_or(0);
        eprintln!(
            "{name:<28} {w}x{h}x{c}: {differ} of {} samples differ (max {max})",
            raster.data.len()
        );
        if differ > 0 {
            off.push(format!("{name}: {differ} samples differ, max {max} levels"));
        }
        // convert("RGB") drops the alpha channel and nothing else.
        let rgb = load_rgb(&dir().join(name)).unwrap();
        let want: Vec<u8> = view.data().chunks_exact(c).flat_map(|p| [p[0], p[1], p[2]]).collect();
        assert!(rgb.data == want, "{name}: convert('RGB')");
    }
    assert!(off.is_empty(), "not Pillow's pixels:\n{}", off.join("\n"));
}

fn assert_tensors(expected: &str, order: ConvertOrder) {
    let bytes = fixtures(expected);
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.len(), CASES);
    let mut off = Vec::new();
    for (name, view) in st.tensors() {
        let want: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let ours = load_image_with(&dir().join(&name), 32, order, &Normalization::OPENAI).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ours.len(), want.len(), "{name}");
        let max = ours.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        // The same 8-bit picture as Pillow's: only float32 rounding of ToTensor/Normalize remains.
        if max > 1e-5 {
            off.push(format!("{name}: max {max:.4} (one level is {:.4})", 1.0 / 255.0 / 0.26));
        }
    }
    assert!(off.is_empty(), "{expected}: not Pillow's tensors:\n{}", off.join("\n"));
}

#[test]
fn matches_pillow_in_clips_order() {
    assert_tensors("expected.safetensors", ConvertOrder::Clip);
}

#[test]
fn matches_pillow_in_dassls_order() {
    assert_tensors("expected_dassl.safetensors", ConvertOrder::Dassl);
}

#[test]
fn truncated_and_corrupt_webp_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    for src in ["lossless_rgb.webp", "lossy_q75.webp", "lossy_alpha.webp", "animated_2frames.webp"] {
        let bytes = fixtures(src);
        for (what, cut) in [("half", bytes.len() / 2), ("the header", 20), ("the last byte", bytes.len() - 1)] {
            let p = tmp.path().join(format!("cut_{what}_{src}").replace(' ', "_"));
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let e = expect_decode_error(&p, &format!("{src} cut to {what}"));
            assert!(e.contains("WebP"), "{e}");
        }
        // A damaged header: the RIFF container, then garbage in place of the image chunk.
        let mut bad = bytes.clone();
        bad[12..20].copy_from_slice(b"XXXXXXXX");
        let p = tmp.path().join(format!("bad_chunk_{src}"));
        std::fs::write(&p, &bad).unwrap();
        expect_decode_error(&p, &format!("{src} with a damaged chunk header"));
    }
    // Damaged VP8L data (the lossless bitstream is checked as it is read).
    let mut bytes = fixtures("lossless_rgb.webp");
    for b in &mut bytes[30..60] {
        *b = 0xFF;
    }
    let p = tmp.path().join("garbled.webp");
    std::fs::write(&p, &bytes).unwrap();
    expect_decode_error(&p, "garbled lossless data");
    // A WebP extension on something else, and a RIFF that is not WebP.
    let p = tmp.path().join("not_really.webp");
    std::fs::write(&p, b"RIFF\x10\x00\x00\x00WAVEfmt ").unwrap();
    let e = expect_decode_error(&p, "a RIFF WAVE file");
    assert!(e.contains("unknown image format"), "{e}");
}

#[test]
fn webp_is_recognised_by_content_not_by_name() {
    let bytes = fixtures("lossy_q95.webp");
    let a = load_image_bytes(&bytes, Path::new("n01440764_10026.JPEG"), 32).unwrap();
    assert_eq!(a, load_image(&dir().join("lossy_q95.webp"), 32).unwrap());
    // Bytes after the RIFF payload are ignored, as by Pillow (the same demuxer).
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"trailing bytes");
    assert_eq!(load_image_bytes(&trailing, Path::new("t.webp"), 32).unwrap(), a);
}

#[test]
fn the_benchmark_encoder_round_trips_losslessly() {
    use ntlb_clip::preprocess::{encode_webp, Raster};
    let (w, h) = (23, 9);
    // No alpha 0: libwebp's simple lossless encoder rewrites the colours under it.
    let data: Vec<u8> = (0..w * h * 4).map(|i| (i * 37 % 251) as u8 | 1).collect();
    for c in [3, 4] {
        let img = Raster {
            width: w,
            height: h,
            channels: c,
            data: data[..w * h * c].to_vec(),
        };
        let bytes = encode_webp(&img, None).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.webp");
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(load_decoded(&p).unwrap().0, img, "{c} channels");
        // Lossy: the size and mode survive (the pixels are the encoder's).
        std::fs::write(&p, encode_webp(&img, Some(80.0)).unwrap()).unwrap();
        let (r, _) = load_decoded(&p).unwrap();
        assert_eq!((r.width, r.height, r.channels), (w, h, c));
    }
}

#[test]
fn a_decompression_bomb_is_refused_before_decoding_as_by_pillow() {
    // A VP8L header declaring 16383 x 16383 (268 M pixels, over Pillow's 2 x 89.5 M), no data.
    let bits: u32 = 16382 | (16382 << 14);
    let mut chunk = vec![0x2f];
    chunk.extend_from_slice(&bits.to_le_bytes());
    chunk.extend_from_slice(&[0; 16]);
    let mut b = b"RIFF".to_vec();
    b.extend_from_slice(&((4 + 8 + chunk.len()) as u32).to_le_bytes());
    b.extend_from_slice(b"WEBPVP8L");
    b.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    b.extend_from_slice(&chunk);
    let e = load_image_bytes(&b, Path::new("bomb.webp"), 32).unwrap_err().to_string();
    assert!(e.contains("bomb.webp") && e.contains("decompression bomb"), "{e}");
}
