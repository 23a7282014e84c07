//! Preprocessing against Pillow 13.0.0 (+ torchvision's transform), fixtures from
//! scripts/make_preprocess_fixtures.py: every PNG and JPEG case, in both conversion orders.

mod common;

use std::path::{Path, PathBuf};

use ntlb_clip::preprocess::{load_image, load_image_bytes, load_image_with, ConvertOrder, Normalization};
use safetensors::SafeTensors;

use common::expect_decode_error;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess")
}

/// One 8-bit level after normalisation is 1/255/std ≈ 0.0146.
const LEVEL: f32 = 1.0 / 255.0 / 0.26;

/// (name, max, mean) of |ours - Pillow| per fixture image, in normalised units.
fn deviations(expected: &str, order: ConvertOrder) -> Vec<(String, f32, f32)> {
    let bytes = std::fs::read(dir().join(expected)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let expected: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let ours = load_image_with(&dir().join(&name), 32, order, &Normalization::OPENAI).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ours.len(), expected.len(), "{name}");
        let d: Vec<f32> = ours.iter().zip(&expected).map(|(a, b)| (a - b).abs()).collect();
        let max = d.iter().copied().fold(0.0f32, f32::max);
        let mean = d.iter().sum::<f32>() / d.len() as f32;
        eprintln!("{name:<24} max {:.3} levels, mean {:.2e} levels", max / LEVEL, mean / LEVEL);
        out.push((name.to_string(), max, mean));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// PNG and JPEG alike: the same 8-bit picture as Pillow, so only float32 rounding of
/// ToTensor/Normalize remains (< 1e-5).
fn assert_exact(expected: &str, order: ConvertOrder) {
    let devs = deviations(expected, order);
    assert!(devs.len() >= 35, "{expected}: only {} fixtures", devs.len());
    let off: Vec<String> = devs
        .iter()
        .filter(|(_, max, mean)| *max > 1e-5 || *mean > 1e-6)
        .map(|(name, max, mean)| format!("{name}: max {:.2} levels, mean {:.2e} levels", max / LEVEL, mean / LEVEL))
        .collect();
    assert!(off.is_empty(), "{expected}: not Pillow's pixels:\n{}", off.join("\n"));
}

#[test]
fn matches_pillow_in_clips_order() {
    assert_exact("expected.safetensors", ConvertOrder::Clip);
}

#[test]
fn matches_pillow_in_dassls_order() {
    assert_exact("expected_dassl.safetensors", ConvertOrder::Dassl);
}

#[test]
fn the_default_order_is_the_references() {
    assert_eq!(ConvertOrder::default(), ConvertOrder::Dassl);
    let p = dir().join("palette.png");
    assert_eq!(
        load_image(&p, 32).unwrap(),
        load_image_with(&p, 32, ConvertOrder::Dassl, &Normalization::OPENAI).unwrap()
    );
    // Palette images are where the two orders part (NEAREST vs bicubic): the setting matters.
    assert_ne!(
        load_image_with(&p, 32, ConvertOrder::Clip, &Normalization::OPENAI).unwrap(),
        load_image_with(&p, 32, ConvertOrder::Dassl, &Normalization::OPENAI).unwrap()
    );
}

fn scan_start(bytes: &[u8]) -> usize {
    let sos = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).expect("SOS");
    sos + 2 + u16::from_be_bytes([bytes[sos + 2], bytes[sos + 3]]) as usize
}

#[test]
fn undecodable_and_truncated_files_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.JPEG");
    std::fs::write(&garbage, b"definitely not an image").unwrap();
    expect_decode_error(&garbage, "garbage");
    for src in ["rgb_down.png", "rgb.jpg", "progressive.jpg", "gray.jpg"] {
        let bytes = std::fs::read(dir().join(src)).unwrap();
        let cut = tmp.path().join(format!("truncated_{src}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        expect_decode_error(&cut, &format!("truncated {src}"));
    }
    expect_decode_error(&tmp.path().join("missing.png"), "a missing file");
}

#[test]
fn a_damaged_scan_is_an_error_not_a_grey_picture() {
    let tmp = tempfile::tempdir().unwrap();
    for src in ["gray.jpg", "rgb_420.jpg", "progressive.jpg"] {
        let mut bytes = std::fs::read(dir().join(src)).unwrap();
        // A marker in the middle of the entropy-coded data: libjpeg stops the segment there
        // and would fill the rest of the image with zero coefficients (grey).
        let s = scan_start(&bytes);
        let mid = s + (bytes.len() - s) / 3;
        bytes[mid] = 0xFF;
        bytes[mid + 1] = 0xD3;
        let p = tmp.path().join(format!("damaged_{src}"));
        std::fs::write(&p, &bytes).unwrap();
        expect_decode_error(&p, &format!("damaged {src}"));
    }
}

#[test]
fn a_jpeg_without_end_marker_is_truncated_as_for_pillow() {
    // Pillow: "image file is truncated (58 bytes not processed)" for this very file.
    let bytes = std::fs::read(dir().join("rgb_420.jpg")).unwrap();
    assert_eq!(&bytes[bytes.len() - 2..], [0xFF, 0xD9]);
    let e = load_image_bytes(&bytes[..bytes.len() - 2], Path::new("no_eoi.jpg"), 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no_eoi.jpg") && e.contains("truncated"), "{e}");
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"trailing bytes after the end marker are ignored, as by Pillow");
    assert_eq!(
        load_image_bytes(&trailing, Path::new("trailing.jpg"), 32).unwrap(),
        load_image(&dir().join("rgb_420.jpg"), 32).unwrap()
    );
}

#[test]
fn png_bytes_under_a_jpeg_name_decode_by_content() {
    let bytes = std::fs::read(dir().join("rgb_down.png")).unwrap();
    let a = load_image_bytes(&bytes, Path::new("really_png.JPEG"), 32).unwrap();
    let b = load_image(&dir().join("rgb_down.png"), 32).unwrap();
    assert_eq!(a, b);
}
