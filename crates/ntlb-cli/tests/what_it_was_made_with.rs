//! Outputs only from inputs that belong together: `explain --learned` refuses a prompt with
//! another class list, checkpoint or numerics than it was trained with, or a context that is not
//! finite; `explain` and `inspect` name features that are not finite instead of printing NaN
//! logits; `ntlb train` refuses an `--out` whose split.json is the split of other data.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ntlb_prompt::train::{initial_state, TrainConfig};

use common::{edited, repo, synth};

const NAMES: [&str; 3] = ["red circle", "green square", "blue triangle"];

/// `ntlb <args>`: (exit code, stdout, stderr).
fn ntlb(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ntlb")).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `ntlb explain` of the committed test picture on `model` with `args`: (exit code, stderr).
fn explain(model: &Path, out: &Path, args: &[&str]) -> (i32, String) {
    let image = repo().join("crates/ntlb-clip/tests/fixtures/preprocess/rgb_up.png");
    let mut all: Vec<&std::ffi::OsStr> = vec![
        "explain".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--image".as_ref(),
        image.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    let (rc, _, err) = ntlb(&all);
    (rc, err)
}

/// A learned prompt for `NAMES` on the committed model, as `ntlb train` saves it, edited by `edit`.
fn learned(dir: &Path, class_specific: bool, edit: impl Fn(&mut ntlb_prompt::train::LearnedPrompt)) -> PathBuf {
    let mut cfg = TrainConfig::default();
    cfg.prompt.class_specific = class_specific;
    cfg.prompt.n_ctx = 4;
    let rows = if class_specific { NAMES.len() * 4 } else { 4 };
    let weights = synth().join("model.safetensors");
    let sha = ntlb_core::digest::sha256_file(&weights).unwrap();
    let names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    let mut p = initial_state(
        &cfg,
        &names,
        (0..rows * 128).map(|i| (i % 7) as f32 * 0.01).collect(),
        [rows, 128],
        (&weights.display().to_string(), &sha),
    );
    p.manifest.model_numerics = Some(ntlb_clip::checkpoint::numerics(&synth(), None).unwrap());
    edit(&mut p);
    p.save(dir).unwrap();
    dir.to_path_buf()
}

fn class_list(dir: &Path, names: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("classes.txt");
    std::fs::write(&p, names.join("\n") + "\n").unwrap();
    p
}

#[test]
fn class_specific_contexts_are_used_only_with_their_class_list() {
    let tmp = tempfile::tempdir().unwrap();
    let prompt = learned(&tmp.path().join("prompt"), true, |_| {});
    let same = class_list(&tmp.path().join("same"), &NAMES);
    let reversed = class_list(&tmp.path().join("reversed"), &[NAMES[2], NAMES[1], NAMES[0]]);
    let run = |classes: &Path| {
        explain(
            &synth(),
            &tmp.path().join("o"),
            &["--learned", prompt.to_str().unwrap(), "--classes", classes.to_str().unwrap()],
        )
    };
    let (rc, err) = run(&same);
    assert_eq!(rc, 0, "{err}");
    let (rc, err) = run(&reversed);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains(&prompt.join("manifest.json").display().to_string())
            && err.contains(&format!("--classes {}", reversed.display()))
            && err.contains("class 0 is `blue triangle`")
            && err.contains("`red circle` in the manifest"),
        "{err}"
    );
    // A shared context fits any class list.
    let shared = learned(&tmp.path().join("shared"), false, |_| {});
    let (rc, err) = explain(
        &synth(),
        &tmp.path().join("o2"),
        &["--learned", shared.to_str().unwrap(), "--classes", reversed.to_str().unwrap()],
    );
    assert_eq!(rc, 0, "{err}");
}

#[test]
fn a_prompt_is_used_only_with_the_checkpoint_and_numerics_it_was_trained_with() {
    let tmp = tempfile::tempdir().unwrap();
    let classes = class_list(&tmp.path().join("c"), &NAMES);
    let other = learned(&tmp.path().join("other"), false, |p| p.manifest.checkpoint_sha256 = "ab".repeat(32));
    let (rc, err) = explain(
        &synth(),
        &tmp.path().join("o"),
        &["--learned", other.to_str().unwrap(), "--classes", classes.to_str().unwrap()],
    );
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains(&"ab".repeat(32))
            && err.contains(&format!("--model {}", synth().display()))
            && err.contains(&ntlb_core::digest::sha256_file(&synth().join("model.safetensors")).unwrap()),
        "{err}"
    );
    let gelu = learned(&tmp.path().join("gelu"), false, |p| {
        let n = p.manifest.model_numerics.as_mut().unwrap();
        n.text_activation = ntlb_clip::config::Activation::Gelu;
    });
    let (rc, err) = explain(
        &synth(),
        &tmp.path().join("o"),
        &["--learned", gelu.to_str().unwrap(), "--classes", classes.to_str().unwrap()],
    );
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("trained with the numerics") && err.contains("manifest.json"), "{err}");
    let nan = learned(&tmp.path().join("nan"), false, |p| p.ctx[130] = f32::NAN);
    let (rc, err) = explain(
        &synth(),
        &tmp.path().join("o"),
        &["--learned", nan.to_str().unwrap(), "--classes", classes.to_str().unwrap()],
    );
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("prompt.safetensors: ctx[1, 2] is NaN"), "{err}");
}

/// Finite weights whose products overflow: every feature of the image tower is NaN after
/// normalisation. `explain` and `inspect` name it instead of printing NaN logits.
#[test]
fn features_that_are_not_finite_are_named_by_explain_and_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    let model = edited(tmp.path(), |t| t.get_mut("visual_projection.weight").unwrap().1.fill(3e38));
    let out = tmp.path().join("o");
    let (rc, err) = explain(&model, &out, &["--prompt", "a red circle"]);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains("rgb_up.png: its image features") && err.contains("are not finite"),
        "{err}"
    );
    assert!(!out.join("relevance.json").exists());
    let (rc, stdout, err) = ntlb(&["inspect".as_ref(), "--model".as_ref(), model.as_os_str()]);
    assert_eq!(rc, 2, "{stdout}{err}");
    assert!(err.contains("image tower: the features of a blank picture are not finite"), "{err}");
    let (rc, stdout, err) = ntlb(&["inspect".as_ref(), "--model".as_ref(), synth().as_os_str()]);
    assert_eq!(rc, 0, "{err}");
    assert!(stdout.contains("features       finite"), "{stdout}");
}

/// `--out` keeps the split of the run it holds: a second run on other images names split.json.
#[test]
fn train_into_an_out_holding_another_split_names_split_json() {
    let tmp = tempfile::tempdir().unwrap();
    let classes = tmp.path().join("classes.tsv");
    std::fs::write(&classes, "n01\tred circle\nn02\tgreen square\n").unwrap();
    let out = tmp.path().join("out");
    let data = |name: &str, files: &[&str]| {
        let root = tmp.path().join(name);
        for w in ["n01", "n02"] {
            for f in files {
                let d = root.join("images/train").join(w);
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join(f), b"x").unwrap();
            }
        }
        root
    };
    let run = |root: &Path| {
        ntlb(&[
            "train".as_ref(),
            "--model".as_ref(),
            synth().as_os_str(),
            "--data".as_ref(),
            root.as_os_str(),
            "--classes".as_ref(),
            classes.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--dry-run".as_ref(),
        ])
    };
    let (rc, _, err) = run(&data("a", &["a1.jpg", "a2.jpg"]));
    assert_eq!(rc, 0, "{err}");
    let (rc, _, err) = run(&data("a", &["a1.jpg", "a2.jpg"]));
    assert_eq!(rc, 0, "the same data again: {err}");
    let (rc, stdout, err) = run(&data("b", &["b1.jpg", "b2.jpg"]));
    assert_eq!(rc, 2, "{stdout}{err}");
    assert!(
        err.contains(&format!("{}: holds the split of another run", out.join("split.json").display())),
        "{err}"
    );
}
