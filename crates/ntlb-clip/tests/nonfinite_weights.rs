//! A NaN or an infinity in any floating tensor of a checkpoint is refused at load, naming the
//! tensor as the file spells it and the file, whatever the format: one such weight makes every
//! score NaN, and a NaN score ranks first in no comparison (top-1 = 100). Runs on the committed
//! `models/synth-clip` and `tests/fixtures/pytorch` (nothing from ../shared).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ntlb_clip::weights::WeightMap;
use ntlb_clip::Clip;
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;

fn synth() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/synth-clip")
}

fn pytorch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch").join(name)
}

/// `src` (safetensors) written to `out` with element `index` of tensor `key` set to `value`.
fn poisoned_safetensors(src: &Path, out: &Path, key: &str, index: usize, value: f32) {
    let bytes = std::fs::read(src).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut items: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let it = items
        .iter_mut()
        .find(|(n, ..)| n == key)
        .unwrap_or_else(|| panic!("no `{key}` in {}", src.display()));
    let bytes = as_stored(it.1, value);
    it.3[bytes.len() * index..bytes.len() * (index + 1)].copy_from_slice(&bytes);
    let views: Vec<(String, TensorView<'_>)> = items
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(out, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// `value` in `dtype`'s little-endian bytes.
fn as_stored(dtype: safetensors::Dtype, value: f32) -> Vec<u8> {
    match dtype {
        safetensors::Dtype::F32 => value.to_le_bytes().to_vec(),
        safetensors::Dtype::F16 => half::f16::from_f32(value).to_le_bytes().to_vec(),
        safetensors::Dtype::BF16 => half::bf16::from_f32(value).to_le_bytes().to_vec(),
        other => panic!("no {other:?} here"),
    }
}

/// A copy of the synthetic Hugging Face folder with one value of `key` replaced.
fn synth_with(key: &str, index: usize, value: f32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(synth().join(f), dir.path().join(f)).unwrap();
    }
    poisoned_safetensors(
        &synth().join("model.safetensors"),
        &dir.path().join("model.safetensors"),
        key,
        index,
        value,
    );
    dir
}

fn load_err(path: &Path) -> String {
    match Clip::load(path, None, &Device::flex()) {
        Ok(_) => panic!("{} loaded but should be refused", path.display()),
        Err(e) => e.to_string(),
    }
}

fn assert_names(e: &str, key: &str, file: &Path, value: &str) {
    assert!(e.contains(&format!("tensor `{key}`")), "names the tensor `{key}`: {e}");
    assert!(e.contains(&file.display().to_string()), "names the file {}: {e}", file.display());
    assert!(e.contains(value) && e.contains("non-finite"), "says what was found ({value}): {e}");
}

#[test]
fn a_nan_in_a_hugging_face_projection_is_refused_naming_it() {
    let dir = synth_with("visual_projection.weight", 17, f32::NAN);
    let e = load_err(dir.path());
    assert_names(&e, "visual_projection.weight", &dir.path().join("model.safetensors"), "NaN");
    assert!(e.contains("flat index 17"), "{e}");
    for (value, shown) in [(f32::INFINITY, "inf"), (f32::NEG_INFINITY, "-inf")] {
        let dir = synth_with("text_projection.weight", 0, value);
        assert_names(
            &load_err(dir.path()),
            "text_projection.weight",
            &dir.path().join("model.safetensors"),
            shown,
        );
    }
    // Any tensor, not only the projections; and the weights file named directly.
    let dir = synth_with("text_model.encoder.layers.1.mlp.fc2.bias", 3, f32::NAN);
    let file = dir.path().join("model.safetensors");
    assert_names(&load_err(&file), "text_model.encoder.layers.1.mlp.fc2.bias", &file, "NaN");
    // Reading the tensors alone (inspect, pretraining) refuses it too.
    assert!(WeightMap::open(&file).is_err());
}

#[test]
fn a_nan_in_an_openai_state_dict_is_refused_naming_the_file_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("openai.safetensors");
    poisoned_safetensors(&pytorch("tiny_openai.safetensors"), &out, "visual.proj", 5, f32::NAN);
    assert_names(&load_err(&out), "visual.proj", &out, "NaN");
    // A fused projection is named as stored, not by the q/k/v part it is split into; float16
    // and bfloat16 are checked as read.
    let key = "transformer.resblocks.0.attn.in_proj_weight";
    poisoned_safetensors(&pytorch("tiny_openai.safetensors"), &out, key, 1, f32::INFINITY);
    assert_names(&load_err(&out), key, &out, "inf");
    let key = "visual.transformer.resblocks.0.mlp.c_fc.weight";
    poisoned_safetensors(&pytorch("tiny_openai.safetensors"), &out, key, 7, f32::NAN);
    assert_names(&load_err(&out), key, &out, "NaN");
}

/// A tensor's storage bytes as the torch fixtures hold them (the safetensors twin's values;
/// `visual.proj` is saved as a transposed view, its storage the transpose), and a NaN in its dtype.
fn storage_of(key: &str) -> (Vec<u8>, Vec<u8>) {
    let bytes = std::fs::read(pytorch("tiny_openai.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let v = st.tensor(key).unwrap();
    let nan = as_stored(v.dtype(), f32::NAN);
    let data = v.data().to_vec();
    if key != "visual.proj" {
        return (data, nan);
    }
    let (rows, cols) = (v.shape()[0], v.shape()[1]);
    let mut t = vec![0u8; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[4 * (c * rows + r)..4 * (c * rows + r) + 4].copy_from_slice(&data[4 * (r * cols + c)..4 * (r * cols + c) + 4]);
        }
    }
    (t, nan)
}

/// The first element of the only occurrence of `needle` in `hay` set to `nan`.
fn poison_in_place(hay: &mut [u8], needle: &[u8], nan: &[u8]) -> bool {
    let at: Vec<usize> = hay
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    match at.as_slice() {
        [i] => {
            hay[*i..*i + nan.len()].copy_from_slice(nan);
            true
        }
        [] => false,
        _ => panic!("the storage occurs {} times", at.len()),
    }
}

/// The zip-format fixture rewritten with `key`'s storage poisoned (each entry's checksum is
/// then the new bytes').
fn poisoned_zip(out: &Path, key: &str) {
    let (needle, nan) = storage_of(key);
    let mut src = zip::ZipArchive::new(std::fs::File::open(pytorch("tiny_openai.bin")).unwrap()).unwrap();
    let mut w = zip::ZipWriter::new(std::fs::File::create(out).unwrap());
    let mut poisoned = 0;
    for i in 0..src.len() {
        let mut entry = src.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if poison_in_place(&mut data, &needle, &nan) {
            poisoned += 1;
        }
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        w.start_file(name, opts).unwrap();
        w.write_all(&data).unwrap();
    }
    w.finish().unwrap();
    assert_eq!(poisoned, 1, "`{key}`'s storage found once in the archive");
}

#[test]
fn a_nan_in_a_torch_save_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // The zip format (torch >= 1.6).
    for key in [
        "visual.proj",
        "transformer.resblocks.0.attn.in_proj_weight",
        "visual.transformer.resblocks.0.mlp.c_fc.weight",
    ] {
        let out = dir.path().join("tiny_openai.bin");
        poisoned_zip(&out, key);
        assert_names(&load_err(&out), key, &out, "NaN");
    }
    // The legacy (pre-1.6) format stores the raw bytes in the file itself.
    let out = dir.path().join("tiny_openai_legacy.bin");
    let mut bytes = std::fs::read(pytorch("tiny_openai_legacy.bin")).unwrap();
    let (needle, nan) = storage_of("visual.proj");
    assert!(
        poison_in_place(&mut bytes, &needle, &nan),
        "`visual.proj`'s storage found in the legacy file"
    );
    std::fs::write(&out, bytes).unwrap();
    assert_names(&load_err(&out), "visual.proj", &out, "NaN");
}

/// A value beyond float32's range in a float64 tensor is an infinity once read: refused too.
#[test]
fn a_float64_too_large_for_float32_is_refused() {
    let bytes = std::fs::read(pytorch("tiny_openai.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let items: Vec<(String, Vec<usize>, Vec<u8>, safetensors::Dtype)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            if n == "ln_final.bias" {
                let wide: Vec<u8> = v
                    .data()
                    .chunks_exact(4)
                    .enumerate()
                    .flat_map(|(i, b)| {
                        let x = f32::from_le_bytes(b.try_into().unwrap()) as f64;
                        (if i == 2 { 1e300 } else { x }).to_le_bytes()
                    })
                    .collect();
                (n.to_string(), v.shape().to_vec(), wide, safetensors::Dtype::F64)
            } else {
                (n.to_string(), v.shape().to_vec(), v.data().to_vec(), v.dtype())
            }
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = items
        .iter()
        .map(|(n, s, b, d)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f64.safetensors");
    std::fs::write(&out, safetensors::serialize(views, None).unwrap()).unwrap();
    assert_names(&load_err(&out), "ln_final.bias", &out, "inf");
}
