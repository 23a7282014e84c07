//! TorchScript archives as `clip.load` keeps them, read in Rust (fixtures made by
//! scripts/make_torchscript_fixture.py from OpenAI's own `clip.model.CLIP`, traced and saved with
//! torch; in repo): the all-float32 archive is its safetensors twin bit for bit, the float16 mix
//! of `convert_weights` is the twin rounded to float16 and upcast exactly, and both give the
//! features torch computed; a truncated archive and an archive of another model are refused by
//! name.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use ntlb_clip::weights::{Layout, WeightMap};
use ntlb_clip::Clip;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torchscript")
        .join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

fn floats(v: &Value) -> (Vec<usize>, Vec<f32>) {
    let shape = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    let data = v["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    (shape, data)
}

/// Every canonical tensor of a checkpoint, by name.
fn tensors(path: &std::path::Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut w = WeightMap::open(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.layout, Layout::OpenAi);
    let keys: Vec<String> = w.keys().map(String::from).collect();
    keys.into_iter()
        .map(|k| {
            let shape = w.shape(&k).unwrap().to_vec();
            let data = w.take(&k, &shape).unwrap();
            (k, shape, data)
        })
        .collect()
}

/// The OpenAI state-dict name a canonical name was split from.
fn stored_name(canonical: &str) -> String {
    for part in ["q_proj", "k_proj", "v_proj"] {
        for wb in ["weight", "bias"] {
            if let Some(base) = canonical.strip_suffix(&format!("attn.{part}.{wb}")) {
                return format!("{base}attn.in_proj_{wb}");
            }
        }
    }
    canonical.to_string()
}

#[test]
fn the_fp32_archive_is_its_safetensors_twin_bit_for_bit() {
    let twin = tensors(&fixture("tiny.safetensors"));
    let archive = tensors(&fixture("tiny_fp32.pt"));
    assert_eq!(twin.len(), archive.len());
    for ((k, s, d), (ka, sa, da)) in twin.iter().zip(&archive) {
        assert_eq!((k, s), (ka, sa));
        assert!(d.iter().zip(da).all(|(a, b)| a.to_bits() == b.to_bits()), "{k} differs");
    }
}

#[test]
fn the_fp16_archive_holds_the_twin_rounded_to_fp16_upcast_exactly() {
    let e = expected();
    let rounded: Vec<&str> = e["fp16_keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert!(rounded.contains(&"visual.conv1.weight") && rounded.contains(&"text_projection"));
    assert!(rounded.contains(&"transformer.resblocks.0.attn.in_proj_weight") && rounded.contains(&"visual.proj"));
    let twin = tensors(&fixture("tiny.safetensors"));
    let archive = tensors(&fixture("tiny_fp16.pt"));
    let mut changed = 0;
    for ((k, s, d), (ka, sa, da)) in twin.iter().zip(&archive) {
        assert_eq!((k, s), (ka, sa));
        let half = rounded.contains(&stored_name(k).as_str());
        for (x, y) in d.iter().zip(da) {
            let want = if half { half::f16::from_f32(*x).to_f32() } else { *x };
            assert_eq!(want.to_bits(), y.to_bits(), "{k}: {x} stored as {y}, expected {want}");
            changed += (want != *x) as usize;
        }
    }
    assert!(changed > 1000, "the rounding must show: {changed} values changed");
}

fn features(path: &std::path::Path, e: &Value) -> (Vec<f32>, Vec<f32>) {
    let device = Device::flex();
    let clip = Clip::load(path, None, &device).unwrap_or_else(|err| panic!("{err}"));
    let (ishape, idata) = floats(&e["image"]);
    let image = Tensor::<4>::from_data(TensorData::new(idata, [ishape[0], ishape[1], ishape[2], ishape[3]]), &device);
    let (tshape, tdata) = floats(&e["text"]);
    let ids: Vec<Vec<u32>> = tdata.chunks(tshape[1]).map(|r| r.iter().map(|&x| x as u32).collect()).collect();
    let eot: Vec<usize> = e["eot_positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    (
        ntlb_core::host::to_f32_vec(clip.encode_image(image)),
        ntlb_core::host::to_f32_vec(clip.encode_text(&ids, &eot)),
    )
}

fn assert_close(what: &str, ours: &[f32], torch: &[f32]) {
    assert_eq!(ours.len(), torch.len(), "{what}");
    let max = ours.iter().zip(torch).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let scale = torch.iter().map(|x| x.abs()).fold(0f32, f32::max);
    eprintln!("{what}: max abs difference {max:.3e} (largest value {scale:.3})");
    assert!(max <= 1e-5 * scale.max(1.0), "{what}: {max:e}");
}

#[test]
fn both_archives_give_the_features_torch_computed() {
    let e = expected();
    for (file, precision) in [("tiny_fp32.pt", "fp32"), ("tiny_fp16.pt", "fp16")] {
        let (img, txt) = features(&fixture(file), &e);
        assert_close(&format!("{file} image"), &img, &floats(&e[precision]["image_features"]).1);
        assert_close(&format!("{file} text"), &txt, &floats(&e[precision]["text_features"]).1);
    }
    // Same weights, same graph: the fp32 archive and its twin agree bit for bit.
    let twin = features(&fixture("tiny.safetensors"), &e);
    let fp32 = features(&fixture("tiny_fp32.pt"), &e);
    assert_eq!(twin, fp32);
    // And the precisions differ (the fp16 expectation is not the fp32 one).
    assert_ne!(floats(&e["fp16"]["text_features"]).1, floats(&e["fp32"]["text_features"]).1);
}

#[test]
fn the_architecture_is_inferred_from_the_archive_as_from_the_state_dict() {
    let device = Device::flex();
    let twin = Clip::load(&fixture("tiny.safetensors"), None, &device).unwrap();
    for f in ["tiny_fp32.pt", "tiny_fp16.pt"] {
        let a = Clip::load(&fixture(f), None, &device).unwrap();
        assert_eq!(a.config, twin.config, "{f}");
        assert_eq!(a.numerics.identity(), twin.numerics.identity(), "{f}");
    }
}

#[test]
fn a_truncated_archive_is_refused_by_name() {
    let bytes = std::fs::read(fixture("tiny_fp16.pt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 10, 100] {
        let p = dir.path().join(format!("ViT-cut{cut}.pt"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = WeightMap::open(&p).err().unwrap_or_else(|| panic!("cut at {cut} read")).to_string();
        assert!(e.contains(&p.display().to_string()) && e.contains("truncated"), "cut at {cut}: {e}");
    }
}

#[test]
fn a_damaged_storage_is_refused_naming_the_tensor() {
    // Storage entries are stored uncompressed, so renaming one in place (local header and
    // central directory) leaves a valid zip whose data.pkl names a storage it lacks.
    let bytes = std::fs::read(fixture("tiny_fp32.pt")).unwrap();
    let needle = b"tiny_fp32/data/7";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("storage 7 named in the zip");
    let mut damaged = bytes.clone();
    let mut i = at;
    while let Some(j) = damaged[i..].windows(needle.len()).position(|w| w == needle) {
        damaged[i + j + needle.len() - 1] = b'X';
        i += j + needle.len();
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("damaged.pt");
    std::fs::write(&p, &damaged).unwrap();
    let e = match WeightMap::open(&p) {
        Ok(_) => panic!("an archive missing a storage was read"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("damaged.pt") && e.contains("data/7") && e.contains("tensor `"), "{e}");
}

#[test]
fn a_torchscript_archive_of_another_model_is_refused_by_name() {
    let p = fixture("mlp.pt");
    let e = match Clip::load(&p, None, &Device::flex()) {
        Ok(_) => panic!("a traced MLP was read as a CLIP"),
        Err(e) => format!("{e:#}"),
    };
    eprintln!("{e}");
    assert!(e.contains("mlp.pt") && e.contains("TorchScript archive of `__torch__."), "{e}");
    assert!(
        e.contains("Sequential") && e.contains("`0.weight`") && e.contains("not of CLIP"),
        "{e}"
    );
}
