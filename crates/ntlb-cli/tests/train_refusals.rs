//! `ntlb train` refuses settings no training can run with before it reads any data or prints
//! its dry run, naming the flag or the file and key; a class list shorter
//! than the training folders names the folder it lacks.

mod common;

use std::path::Path;
use std::process::Command;

use common::repo;

/// `ntlb train --dry-run` on `data` with `args`: (exit code, stdout, stderr).
fn train(data: &Path, classes: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ntlb"))
        .arg("train")
        .arg("--model")
        .arg(repo().join("models/synth-clip"))
        .arg("--data")
        .arg(data)
        .arg("--classes")
        .arg(classes)
        .arg("--out")
        .arg(data.join("out"))
        .arg("--dry-run")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_settings_are_named_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, classes) = (tmp.path().join("no-data"), tmp.path().join("no-classes.tsv"));
    for (args, want) in [
        (
            &["--lambda", "-1"][..],
            "--lambda -1: must be a finite number ≥ 0 (it sets `loss.expl_weight`)",
        ),
        (&["--expl-weight", "nan"][..], "--lambda NaN"),
        (&["--n-ctx", "0"][..], "--n-ctx 0: must be at least 1 (it sets `prompt.n_ctx`)"),
        (&["--batch-size", "0"][..], "--batch-size 0"),
        (&["--epochs", "0"][..], "--epochs 0"),
        (&["--shots", "0"][..], "--shots 0: must be at least 1 (it sets `shots`)"),
    ] {
        let (rc, stdout, stderr) = train(&data, &classes, args);
        assert_eq!(rc, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?} printed a dry run: {stdout}");
    }
    let cfg = tmp.path().join("bad.toml");
    for (text, key) in [
        ("[loss]\nexpl_weight = -2.0\n", "loss.expl_weight"),
        ("[optim]\nlr = nan\n", "optim.lr"),
        ("[optim]\nmomentum = -1.0\n", "optim.momentum"),
        ("[optim]\nweight_decay = inf\n", "optim.weight_decay"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let (rc, stdout, stderr) = train(&data, &classes, &["--config", cfg.to_str().unwrap()]);
        assert_eq!(rc, 2, "{text}: {stderr}");
        assert!(stderr.contains(&format!("{}: `{key}` = ", cfg.display())), "{text}: {stderr}");
        assert!(stdout.is_empty());
    }
}

#[test]
fn a_class_list_shorter_than_the_folders_names_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("imagenet");
    for w in ["n01", "n02", "n03"] {
        std::fs::create_dir_all(data.join("images/train").join(w)).unwrap();
        std::fs::write(data.join("images/train").join(w).join("a.jpg"), b"x").unwrap();
    }
    let classes = tmp.path().join("classes.tsv");
    std::fs::write(&classes, "n01\tred circle\nn03\tgreen square\n").unwrap();
    let (rc, _, stderr) = train(&data, &classes, &[]);
    assert_eq!(rc, 2, "{stderr}");
    assert!(stderr.contains("folder `n02` is not a class of the list (2 classes)"), "{stderr}");
}
