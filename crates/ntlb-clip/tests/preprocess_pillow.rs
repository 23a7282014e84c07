//! Preprocessing against Pillow + torchvision (fixtures from scripts/make_preprocess_fixtures.py).

use std::path::PathBuf;

use ntlb_clip::preprocess::{load_image, load_image_bytes};
use safetensors::SafeTensors;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess")
}

/// Largest |ours - Pillow| per fixture image, in normalised units (1/255/std ≈ 0.015 per level).
fn deviations() -> Vec<(String, f32)> {
    let bytes = std::fs::read(dir().join("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let expected: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let ours = load_image(&dir().join(&name), 32).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ours.len(), expected.len(), "{name}");
        let d = ours.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let mean = ours.iter().zip(&expected).map(|(a, b)| (a - b).abs()).sum::<f32>() / ours.len() as f32;
        eprintln!("{name:<18} mean |ours - pillow| = {mean:.2e}");
        out.push((name.to_string(), d));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn matches_pillow() {
    // One 8-bit level is 1/255/0.27 ≈ 0.0146 after normalisation.
    const LEVEL: f32 = 1.0 / 255.0 / 0.26;
    for (name, d) in deviations() {
        eprintln!("{name:<18} max |ours - pillow| = {d:.2e} ({:.2} levels)", d / LEVEL);
        // Lossless files go through our port of Pillow's resampler: float32 rounding only.
        // JPEG: zune-jpeg and Pillow's libjpeg-turbo differ in IDCT rounding (1 level) and in
        // chroma upsampling at sharp colour edges of 4:2:0 files (up to ~4 levels); README records it.
        let tol = if name.ends_with(".jpg") { 5.0 * LEVEL } else { 1e-5 };
        assert!(d <= tol, "{name}: deviation {d} > {tol}");
    }
}

#[test]
fn undecodable_and_truncated_files_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.JPEG");
    std::fs::write(&garbage, b"definitely not an image").unwrap();
    let e = load_image(&garbage, 32).unwrap_err().to_string();
    assert!(e.contains("garbage.JPEG"), "{e}");
    for src in ["rgb_down.png", "rgb.jpg"] {
        let bytes = std::fs::read(dir().join(src)).unwrap();
        let cut = tmp.path().join(format!("truncated_{src}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = match load_image(&cut, 32) {
            Ok(_) => panic!("truncated {src} decoded without an error"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(&format!("truncated_{src}")), "{e}");
    }
    let e = load_image(&tmp.path().join("missing.png"), 32).unwrap_err().to_string();
    assert!(e.contains("missing.png"), "{e}");
}

#[test]
fn png_bytes_under_a_jpeg_name_decode_by_content() {
    let bytes = std::fs::read(dir().join("rgb_down.png")).unwrap();
    let a = load_image_bytes(&bytes, std::path::Path::new("really_png.JPEG"), 32).unwrap();
    let b = load_image(&dir().join("rgb_down.png"), 32).unwrap();
    assert_eq!(a, b);
}
