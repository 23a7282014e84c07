//! What the binary says when the user got something wrong: the shape the
//! model expects, both names of a renamed tensor, the path of an `--out` that is a file, the
//! path of a missing model once, and an empty prompt refused.

mod common;

use std::path::Path;
use std::process::Command;

use common::{edited, repo, synth};

/// `ntlb explain` on `model` with `args`: (exit code, stderr).
fn explain(model: &Path, out: &Path, args: &[&str]) -> (i32, String) {
    let image = repo().join("crates/ntlb-clip/tests/fixtures/preprocess/rgb_up.png");
    let o = Command::new(env!("CARGO_BIN_EXE_ntlb"))
        .arg("explain")
        .arg("--model")
        .arg(model)
        .arg("--image")
        .arg(image)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn a_mis_shaped_position_table_is_reported_against_the_declared_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let model = edited(tmp.path(), |t| {
        let (s, d) = t.get_mut("text_model.embeddings.position_embedding.weight").unwrap();
        assert_eq!(*s, [77, 128]);
        *s = vec![128, 128];
        d.resize(128 * 128, 0.0);
    });
    let (rc, err) = explain(&model, &tmp.path().join("o"), &["--prompt", "a red circle"]);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains("tensor `text_model.embeddings.position_embedding.weight` has shape [128, 128], model expects [77, 128]"),
        "{err}"
    );
}

#[test]
fn a_renamed_tensor_is_named_as_missing_and_as_unexpected() {
    let tmp = tempfile::tempdir().unwrap();
    // One the architecture is read from, and one deep in a block.
    for (from, to) in [
        ("text_model.final_layer_norm.weight", "text_model.final_layer_norm.gamma"),
        ("text_model.encoder.layers.1.mlp.fc1.bias", "text_model.encoder.layers.1.mlp.fc1.b"),
    ] {
        let model = edited(&tmp.path().join(to), |t| {
            let v = t.remove(from).unwrap();
            t.insert(to.to_string(), v);
        });
        let (rc, err) = explain(&model, &tmp.path().join("o"), &["--prompt", "a red circle"]);
        assert_eq!(rc, 2, "{err}");
        assert!(
            err.contains(&format!("missing `{from}`")) && err.contains(&format!("unexpected tensor(s) the model does not use: {to}")),
            "{from}: {err}"
        );
    }
}

#[test]
fn explain_names_an_out_that_is_a_file_and_refuses_an_empty_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("taken");
    std::fs::write(&file, b"x").unwrap();
    let (rc, err) = explain(&synth(), &file, &["--prompt", "a red circle"]);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains(&file.display().to_string()) && err.contains("not a folder"), "{err}");
    for empty in ["", "  "] {
        let (rc, err) = explain(&synth(), &tmp.path().join("o"), &["--prompt", "a red circle", "--prompt", empty]);
        assert_eq!(rc, 2, "{empty:?}: {err}");
        assert!(err.contains(&format!("--prompt {empty:?}: an empty prompt")), "{err}");
    }
    assert!(!tmp.path().join("o").exists(), "a refused run wrote its output");
}

#[test]
fn a_missing_model_is_named_once() {
    let tmp = tempfile::tempdir().unwrap();
    let absent = tmp.path().join("absent");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for (model, why) in [
        (&absent, "neither an existing file or folder"),
        (&empty, "the folder holds none of model.safetensors"),
    ] {
        let (rc, err) = explain(model, &tmp.path().join("o"), &["--prompt", "a red circle"]);
        assert_eq!(rc, 2, "{err}");
        assert_eq!(err.matches(&model.display().to_string()).count(), 1, "the path, once: {err}");
        assert_eq!(err.matches(why).count(), 1, "the reason, once: {err}");
    }
}
