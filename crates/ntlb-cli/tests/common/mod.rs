//! What the CLI's integration tests share: the repository root, the committed tiny model and
//! edited copies of it.
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The committed tiny CLIP of the demo.
pub fn synth() -> PathBuf {
    repo().join("models/synth-clip")
}

/// A copy of the committed model in `dir/model` with its tensors edited by `edit`.
pub fn edited(dir: &Path, edit: impl Fn(&mut ntlb_core::store::NamedTensors)) -> PathBuf {
    let out = dir.join("model");
    std::fs::create_dir_all(&out).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(synth().join(f), out.join(f)).unwrap();
    }
    let mut t = ntlb_core::store::read_tensors(&synth().join("model.safetensors")).unwrap();
    edit(&mut t);
    let list: Vec<(String, Vec<usize>, Vec<f32>)> = t.into_iter().map(|(n, (s, d))| (n, s, d)).collect();
    ntlb_core::store::write_tensors(&out.join("model.safetensors"), &list).unwrap();
    out
}
