//! Dataset trees generated for the tests: small real JPEG/PNG files in every layout.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub const WNIDS: [&str; 6] = ["n00000001", "n00000002", "n00000003", "n00000004", "n00000005", "n00000006"];
/// Class names in the committed model's vocabulary (its tokenizer refuses other words).
pub const NAMES: [&str; 6] = [
    "red circle",
    "green square",
    "blue triangle",
    "yellow star",
    "purple cross",
    "orange ring",
];

/// The committed tiny CLIP of the synthetic demo world: the harness tests need a real checkpoint
/// (keys hash its bytes, the pipeline runs it), not a good one, so they never depend on ../shared.
pub fn synth_clip() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/synth-clip")
}

fn picture(path: &Path, class: usize, k: usize) {
    let img = image::RgbImage::from_fn(40 + 3 * k as u32, 36, |x, y| {
        image::Rgb([
            (class * 40 % 256) as u8,
            ((x * 5 + y * k as u32) % 256) as u8,
            ((y * 7 + class as u32 * 30) % 256) as u8,
        ])
    });
    img.save(path).unwrap();
}

fn class_dir(dir: &Path, class: usize, n: usize, ext: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for k in 0..n {
        picture(&dir.join(format!("img{k}.{ext}")), class, k);
    }
}

/// Writes the class list, the -A/-R wnid list and every dataset layout under `root`.
pub fn make_world(root: &Path) -> PathBuf {
    let tsv: String = WNIDS.iter().zip(NAMES).map(|(w, n)| format!("{w}\t{n}\n")).collect();
    std::fs::write(root.join("classes.tsv"), tsv).unwrap();
    std::fs::write(root.join("subset_wnids.txt"), "n00000002\nn00000004\nn00000006\n").unwrap();
    for (c, w) in WNIDS.iter().enumerate() {
        class_dir(&root.join("imagenet/images/train").join(w), c, 2, "JPEG");
        class_dir(&root.join("imagenet/images/val").join(w), c, 2, "png");
        class_dir(&root.join("sketch/sketch").join(w), c, 1, "png");
    }
    // ImageNet-V2: folders by class index, including 10+ style ordering checks via names.
    for c in 0..WNIDS.len() {
        class_dir(
            &root.join("v2/imagenetv2-matched-frequency-format-val").join(c.to_string()),
            c,
            3,
            "jpeg",
        );
    }
    for (sub, n) in [("imagenet-a", 2), ("imagenet-r", 1)] {
        for w in ["n00000002", "n00000004", "n00000006"] {
            let c = WNIDS.iter().position(|x| *x == w).unwrap();
            class_dir(&root.join(sub).join(sub).join(w), c, n, "jpg");
        }
        std::fs::write(root.join(sub).join(sub).join("README.txt"), "not an image").unwrap();
    }
    root.to_path_buf()
}

/// A corrupt file, a truncated JPEG, a PNG named .JPEG and a CMYK JPEG in the val split.
pub fn add_bad_and_odd_files(root: &Path) {
    let val = root.join("imagenet/images/val");
    std::fs::write(val.join(WNIDS[0]).join("corrupt.png"), b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    let jpg = root.join("imagenet/images/train").join(WNIDS[1]).join("img0.JPEG");
    let bytes = std::fs::read(&jpg).unwrap();
    std::fs::write(val.join(WNIDS[1]).join("truncated.jpg"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::copy(val.join(WNIDS[2]).join("img0.png"), val.join(WNIDS[2]).join("png_inside.JPEG")).unwrap();
    let cmyk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ntlb-clip/tests/fixtures/preprocess/cmyk.jpg");
    std::fs::copy(cmyk, val.join(WNIDS[3]).join("cmyk.jpg")).unwrap();
}

pub fn sweep_toml(root: &Path, model: &Path, results: &Path, coop: bool) -> String {
    let templates = root.join("templates.txt");
    std::fs::write(&templates, "a photo of a {}.\na sketch of a {}.\n").unwrap();
    let mut s = format!(
        r#"name = "test"
results = "{results}"
classes = "{root}/classes.tsv"
batch_size = 3

[[models]]
name = "tiny"
path = "{model}"

[[datasets]]
kind = "imagenet"
root = "{root}/imagenet"

[[datasets]]
kind = "imagenet-v2"
root = "{root}/v2"

[[datasets]]
kind = "imagenet-sketch"
root = "{root}/sketch"

[[datasets]]
kind = "imagenet-a"
root = "{root}/imagenet-a"
wnids = "{root}/subset_wnids.txt"

[[datasets]]
kind = "imagenet-r"
root = "{root}/imagenet-r"
wnids = "{root}/subset_wnids.txt"

[zero_shot]
templates = "{t}"
ensembles = {{ "2" = "{t}" }}
"#,
        results = results.display(),
        root = root.display(),
        model = model.display(),
        t = templates.display()
    );
    if coop {
        s += &format!(
            "\n[coop]\ntrain_root = \"{}/imagenet\"\nlambdas = [0.0, 1.0]\nseeds = [1]\nepochs = 1\n",
            root.display()
        );
    }
    s
}
