//! Bad checkpoints are refused with an error naming the file, the key and the shapes.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ntlb_clip::Clip;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rn/model.safetensors")
}

type Edit = dyn Fn(&mut Vec<(String, Vec<usize>, Vec<u8>)>);

/// Rewrite the fixture checkpoint with `edit` applied to its (name, shape, f32 bytes) list.
fn rewritten(dir: &Path, edit: &Edit) -> PathBuf {
    let bytes = std::fs::read(fixture()).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut items: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut items);
    let views: Vec<(String, TensorView<'_>)> = items
        .iter()
        .map(|(n, s, d)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    let out = dir.join("edited.safetensors");
    std::fs::write(&out, safetensors::serialize(views, None).unwrap()).unwrap();
    out
}

fn load_err(path: &Path) -> String {
    match Clip::load(path, None, &Device::flex()) {
        Ok(_) => panic!("{} loaded but should be refused", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = rewritten(dir.path(), &|items| {
        items.retain(|(n, _, _)| n != "transformer.resblocks.0.attn.in_proj_weight")
    });
    let e = load_err(&p);
    assert!(e.contains("missing tensor `transformer.resblocks.0.attn.in_proj_weight"), "{e}");
    assert!(e.contains("edited.safetensors"), "{e}");
}

#[test]
fn unexpected_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = rewritten(dir.path(), &|items| {
        items.push(("visual.extra_head.weight".into(), vec![2], vec![0; 8]))
    });
    let e = load_err(&p);
    assert!(e.contains("unexpected") && e.contains("visual.extra_head.weight"), "{e}");
}

#[test]
fn wrong_shape_names_key_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let p = rewritten(dir.path(), &|items| {
        let it = items.iter_mut().find(|(n, _, _)| n == "visual.attnpool.c_proj.weight").unwrap();
        // [32, 256] stored as [64, 128]: same bytes, wrong shape.
        it.1 = vec![64, 128];
    });
    let e = load_err(&p);
    assert!(
        e.contains("visual.attnpool.c_proj.weight") && e.contains("[64, 128]") && e.contains("[32, 256]"),
        "{e}"
    );
}

#[test]
fn checkpoint_of_another_architecture_is_refused_against_a_preset() {
    let rn50 = ntlb_clip::ClipConfig::preset("RN50").unwrap();
    let Err(e) = Clip::load(&fixture(), Some(&rn50), &Device::flex()) else {
        panic!("tiny RN is not RN50")
    };
    let e = e.to_string();
    assert!(e.contains("has shape") && e.contains("model expects"), "{e}");
}

#[test]
fn not_a_checkpoint_is_refused_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.safetensors");
    std::fs::write(&p, b"this is not a safetensors file").unwrap();
    let e = load_err(&p);
    assert!(e.contains("broken.safetensors") && e.contains("not a valid safetensors"), "{e}");
    let e = load_err(&dir.path().join("absent.safetensors"));
    assert!(e.contains("absent.safetensors") && e.contains("cannot read"), "{e}");
}

#[test]
fn fused_projection_with_bad_rows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = rewritten(dir.path(), &|items| {
        let it = items
            .iter_mut()
            .find(|(n, _, _)| n == "transformer.resblocks.0.attn.in_proj_bias")
            .unwrap();
        it.1 = vec![191];
        it.2.truncate(191 * 4);
    });
    let e = load_err(&p);
    assert!(e.contains("in_proj_bias") && e.contains("divisible by 3"), "{e}");
}

/// A copy of the synthetic Hugging Face folder with its tensors edited by `edit`.
fn synth_hf_with(edit: &Edit) -> tempfile::TempDir {
    let synth = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/synth-clip");
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(synth.join(f), dir.path().join(f)).unwrap();
    }
    let bytes = std::fs::read(synth.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut items: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut items);
    let views: Vec<(String, TensorView<'_>)> = items
        .iter()
        .map(|(n, s, d)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    std::fs::write(dir.path().join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
    dir
}

/// A Hugging Face file lacking a tensor names it by the file's own key and shape (the
/// projections are stored transposed there), never by the OpenAI-layout name it is read as.
#[test]
fn a_missing_hugging_face_tensor_is_named_by_the_files_own_key() {
    for (key, shape) in [
        ("text_model.encoder.layers.1.self_attn.k_proj.weight", "[128, 128]"),
        ("vision_model.encoder.layers.0.mlp.fc1.bias", "[512]"),
        ("text_projection.weight", ""),
        ("visual_projection.weight", ""),
        ("text_model.final_layer_norm.weight", ""),
        ("vision_model.pre_layrnorm.weight", "[128]"),
    ] {
        let dir = synth_hf_with(&move |items| items.retain(|(n, _, _)| n != key));
        let e = load_err(dir.path());
        assert!(e.contains(&format!("missing tensor `{key}`")), "{key}: {e}");
        assert!(e.contains(shape), "{key}: the file's shape {shape}: {e}");
        assert!(e.contains("model.safetensors"), "{key}: {e}");
        for canonical in ["canonical", "resblocks", "visual.proj", "ln_final", "ln_pre"] {
            assert!(!e.contains(canonical), "{key}: `{canonical}` is not a name in this file: {e}");
        }
    }
    // Renamed: the old and the new name, both as the file spells them.
    let dir = synth_hf_with(&|items| {
        let it = items
            .iter_mut()
            .find(|(n, _, _)| n == "vision_model.post_layernorm.weight")
            .unwrap();
        it.0 = "vision_model.post_layernorm.gamma".into();
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("`vision_model.post_layernorm.weight` [128]") && e.contains("vision_model.post_layernorm.gamma"),
        "{e}"
    );
    // A mis-shaped projection: both shapes as the file holds them ([E, W], transposed).
    let dir = synth_hf_with(&|items| {
        let it = items.iter_mut().find(|(n, _, _)| n == "visual_projection.weight").unwrap();
        it.1 = vec![32, 256];
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("visual_projection.weight") && e.contains("[32, 256]") && e.contains("[64, 128]"),
        "{e}"
    );
}
