//! Inputs that would give a confident wrong number fail the sweep, naming where: features that
//! are not finite (a checkpoint whose numbers overflow), a set with no readable image, a class
//! with none; settings that do not fit the data are named by their key, in the dry run too.

mod common;

use std::path::{Path, PathBuf};

use ntlb_eval::sweep::{run_sweep, SweepConfig, SweepOptions};

/// A copy of the committed tiny CLIP with its tensors edited by `edit` (`tokenizer`: copy its
/// tokenizer.json beside it).
fn edited_model(dir: &Path, tokenizer: bool, edit: impl Fn(&mut ntlb_core::store::NamedTensors)) -> PathBuf {
    let out = dir.join("model");
    std::fs::create_dir_all(&out).unwrap();
    let src = common::synth_clip();
    std::fs::copy(src.join("config.json"), out.join("config.json")).unwrap();
    if tokenizer {
        std::fs::copy(src.join("tokenizer.json"), out.join("tokenizer.json")).unwrap();
    }
    let mut t = ntlb_core::store::read_tensors(&src.join("model.safetensors")).unwrap();
    edit(&mut t);
    let list: Vec<(String, Vec<usize>, Vec<f32>)> = t.into_iter().map(|(n, (s, d))| (n, s, d)).collect();
    ntlb_core::store::write_tensors(&out.join("model.safetensors"), &list).unwrap();
    out
}

/// The world's sweep (zero-shot, or with CoOp) with `model`, written beside it and read back.
fn sweep(root: &Path, model: &Path, coop: bool, edit: impl Fn(String) -> String) -> SweepConfig {
    let toml = edit(common::sweep_toml(root, model, &root.join("results"), coop));
    let path = root.join("sweep.toml");
    std::fs::write(&path, toml).unwrap();
    SweepConfig::read(&path).unwrap()
}

fn run(cfg: &SweepConfig) -> anyhow::Result<usize> {
    run_sweep(cfg, &SweepOptions::default())
}

fn dry(cfg: &SweepConfig) -> anyhow::Result<usize> {
    run_sweep(
        cfg,
        &SweepOptions {
            dry_run: true,
            ..SweepOptions::default()
        },
    )
}

/// Every value of a projection at 3e38: finite weights (they load), features that overflow to
/// ±inf and normalise to NaN. Scored, NaN ranks the true class first (100 %); the job fails
/// instead, naming the model, the dataset and the image (or the class), and writes no row.
#[test]
fn features_that_are_not_finite_fail_the_job_naming_where() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let huge = |name: &'static str| move |t: &mut ntlb_core::store::NamedTensors| t.get_mut(name).unwrap().1.fill(3e38);
    let model = edited_model(&tmp.path().join("image"), true, huge("visual_projection.weight"));
    let e = format!("{:#}", run(&sweep(&root, &model, false, |t| t)).unwrap_err());
    assert!(
        e.contains("model `tiny`") && e.contains("imagenet: image ") && e.contains("image features are not finite"),
        "{e}"
    );
    assert!(!root.join("results/results.csv").exists(), "no table of a failed job");

    let model = edited_model(&tmp.path().join("text"), true, huge("text_projection.weight"));
    let e = format!("{:#}", run(&sweep(&root, &model, false, |t| t)).unwrap_err());
    assert!(
        e.contains("model `tiny`, dataset imagenet, template \"a photo of a {}.\"")
            && e.contains("class 0 `red circle`")
            && e.contains("text features are not finite"),
        "{e}"
    );
    assert!(!root.join("results/results.csv").exists());
}

/// A set whose every image fails to decode gives no row (not 0.00); a class whose every image
/// fails is an empty class: refused, or evaluated without under `allow_empty_classes`, and
/// listed in the run record.
#[test]
fn no_accuracy_over_no_image_and_unreadable_classes_are_empty_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let model = common::synth_clip();
    let garble = |dir: &Path| {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                for f in std::fs::read_dir(&p).unwrap() {
                    std::fs::write(f.unwrap().path(), b"not an image").unwrap();
                }
            }
        }
    };
    garble(&root.join("sketch/sketch"));
    let e = format!("{:#}", run(&sweep(&root, &model, false, |t| t)).unwrap_err());
    assert!(
        e.contains("dataset imagenet-sketch: none of its 6 images could be read (first: "),
        "{e}"
    );
    assert!(e.contains("no accuracy over no image"), "{e}");
    assert!(!root.join("results/results.csv").exists());

    // One class of ImageNet-V2 (folder `2`) unreadable, the sketches readable again.
    std::fs::remove_dir_all(root.join("sketch")).unwrap();
    common::make_world(&root);
    for f in std::fs::read_dir(root.join("v2/imagenetv2-matched-frequency-format-val/2")).unwrap() {
        std::fs::write(f.unwrap().path(), b"not an image").unwrap();
    }
    let e = format!("{:#}", run(&sweep(&root, &model, false, |t| t)).unwrap_err());
    assert!(
        e.contains("dataset imagenet-v2: 1 of its 6 classes have no image that could be read: n00000003")
            && e.contains("allow_empty_classes = true"),
        "{e}"
    );
    let allowed = sweep(&root, &model, false, |t| {
        t.replacen(
            "kind = \"imagenet-v2\"\n",
            "kind = \"imagenet-v2\"\nallow_empty_classes = true\n",
            1,
        )
    });
    assert_eq!(run(&allowed).unwrap(), 1);
    let rec = &ntlb_eval::results::read_runs(&root.join("results")).unwrap()[0];
    assert_eq!(rec.empty_classes.get("imagenet-v2"), Some(&vec!["n00000003".to_string()]));
    let v2 = rec.rows.iter().find(|r| r.dataset == "imagenet-v2").unwrap();
    assert_eq!((v2.n_images, v2.n_failed), (15, 3));
}

/// A model without a tokenizer names its `[[models]]` entry's `tokenizer` key, before any
/// job and in the dry run.
#[test]
fn a_model_without_a_tokenizer_names_the_models_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let model = edited_model(&tmp.path().join("m"), false, |_| {});
    let cfg = sweep(&root, &model, false, |t| t);
    for e in [dry(&cfg).unwrap_err(), run(&cfg).unwrap_err()] {
        let e = format!("{e:#}");
        assert!(
            e.contains("model `tiny`: no tokenizer.json beside") && e.contains("in its [[models]] entry") && e.contains("tokenizer = "),
            "{e}"
        );
    }
    let named = sweep(&root, &model, false, |t| {
        t.replacen("name = \"tiny\"\n", "name = \"tiny\"\ntokenizer = \"absent/tokenizer.json\"\n", 1)
    });
    let e = format!("{:#}", dry(&named).unwrap_err());
    assert!(
        e.contains("`tokenizer = \"absent/tokenizer.json\"` in its [[models]] entry: no such file"),
        "{e}"
    );
}

/// A training label column that is not there is named as `coop.train_label_key` by the dry
/// run, and by the real run before any job (the zero-shot job included) runs.
#[test]
fn a_missing_train_label_column_is_named_as_its_setting_by_the_dry_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let classes = ntlb_data::classes::ClassList::read(&root.join("classes.tsv")).unwrap();
    let train = ntlb_data::source::TrainSet::open(&root.join("imagenet"), &Default::default(), &classes, None).unwrap();
    let written: Vec<ntlb_data::write::Written> = train
        .items
        .iter()
        .map(|(r, l)| {
            let p = r.as_file().unwrap();
            ntlb_data::write::Written {
                bytes: std::fs::read(p).unwrap(),
                ext: "jpg".into(),
                path: p.file_name().unwrap().to_string_lossy().into_owned(),
                label: *l,
            }
        })
        .collect();
    ntlb_data::write::write_parquet_split(&root.join("hf"), "train", &written, 5, 2).unwrap();
    let cfg = sweep(&root, &common::synth_clip(), true, |t| {
        t.replace(
            &format!("train_root = \"{}/imagenet\"\n", root.display()),
            &format!(
                "train_root = \"{}/hf\"\ntrain_format = \"parquet\"\ntrain_label_key = \"lbl\"\n",
                root.display()
            ),
        )
    });
    for e in [dry(&cfg).unwrap_err(), run(&cfg).unwrap_err()] {
        let e = format!("{e:#}");
        assert!(
            e.contains("[coop] training set") && e.contains("no column `lbl`") && e.contains("`coop.train_label_key`"),
            "{e}"
        );
        assert!(!e.contains("in the dataset entry"), "{e}");
    }
    assert!(!root.join("results/runs").exists() || std::fs::read_dir(root.join("results/runs")).unwrap().count() == 0);
    // The right column plans.
    let good = sweep(&root, &common::synth_clip(), true, |t| {
        t.replace(
            &format!("train_root = \"{}/imagenet\"\n", root.display()),
            &format!("train_root = \"{}/hf\"\ntrain_format = \"parquet\"\n", root.display()),
        )
    });
    assert_eq!(dry(&good).unwrap(), 0);
}
