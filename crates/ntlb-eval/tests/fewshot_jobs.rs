//! CoOp jobs over the few-shot axes: a sweep trains on a split-list dataset's `train` list with
//! the reference's draw, at each count of `coop.shots`, and evaluates on that dataset's test
//! split; its rows and records say which dataset and how many shots.

use std::path::{Path, PathBuf};

use ntlb_data::registry::DatasetKind;
use ntlb_data::split::FewShotSplit;
use ntlb_data::write_split::write_split_tree;
use ntlb_eval::sweep::{plan, run_sweep, split_train_set, Job, SweepConfig, SweepOptions};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn jpeg(label: usize, k: usize) -> Vec<u8> {
    let img = image::RgbImage::from_fn(24 + k as u32, 20, |x, y| {
        image::Rgb([(label * 70 % 256) as u8, (x * 9 + k as u32 * 20) as u8, (y * 11) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// Names the committed tiny model's tokenizer knows.
const NAMES: [&str; 3] = ["red_circle", "green_square", "blue_triangle"];

/// EuroSAT in its download layout: 3 train images per class (file order: class by class within
/// each round), 1 val, 2 test; the sweep's ImageNet class list beside it.
fn write_data(data: &Path) -> PathBuf {
    let list = |per: usize, round: usize| -> Vec<(usize, Vec<u8>)> {
        (0..per)
            .flat_map(|k| (0..NAMES.len()).map(move |c| (c, jpeg(c, k + 4 * round))))
            .collect()
    };
    write_split_tree(data, DatasetKind::Eurosat, &NAMES, &[list(3, 0), list(1, 1), list(2, 2)]).unwrap();
    let classes = data.join("classes.tsv");
    std::fs::write(&classes, "n00000000\tred circle\nn00000001\tgreen square\n").unwrap();
    classes
}

#[test]
fn a_sweep_trains_on_a_split_list_dataset_at_each_shot_count() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let classes = write_data(&data);
    let toml = format!(
        r#"name = "fewshot"
results = "{results}"
classes = "{classes}"
data_root = "{data}"
batch_size = 4

[[models]]
name = "tiny"
path = "{model}"

[[datasets]]
kind = "eurosat"
root = "eurosat"

[coop]
train = ["eurosat"]
shots = [1, 2]
lambdas = [0.0]
seeds = [1]
epochs = 1
"#,
        results = tmp.path().join("results").display(),
        classes = classes.display(),
        data = data.display(),
        model = repo().join("models/synth-clip").display(),
    );
    let c: SweepConfig = toml::from_str(&toml).unwrap();
    let jobs = plan(&c).unwrap();
    let labels: Vec<String> = jobs.iter().map(Job::label).collect();
    assert_eq!(
        labels,
        ["tiny coop train=eurosat λ=0 seed=1", "tiny coop train=eurosat shots=2 λ=0 seed=1"]
    );
    assert_eq!(run_sweep(&c, &SweepOptions::default()).unwrap(), 2);

    let rows = ntlb_eval::results::read_table(&c.results).unwrap();
    assert_eq!(rows.len(), 4, "coop-init and coop, per shot count, on the one dataset");
    for r in &rows {
        assert_eq!(r.dataset, "eurosat");
        assert_eq!(r.train_dataset.as_deref(), Some("eurosat"));
        assert_eq!(r.n_images, 2 * NAMES.len(), "the test split");
        assert!(r.name_score.is_some(), "scored on the training dataset's held-out images");
    }
    let mut shots: Vec<Option<usize>> = rows.iter().map(|r| r.shots).collect();
    shots.sort();
    assert_eq!(shots, [Some(1), Some(1), Some(2), Some(2)]);

    // Each job trained on the reference's draw over the split file's train list.
    let train = split_train_set(&c.resolved().datasets[0]).unwrap();
    assert_eq!(train.classes.names, NAMES);
    for run in ntlb_eval::results::read_runs(&c.results).unwrap() {
        let Job::Coop {
            train: t, train_dataset, ..
        } = &run.job
        else {
            panic!("a coop job")
        };
        assert_eq!(train_dataset.as_deref(), Some("eurosat"));
        let saved: FewShotSplit = ntlb_core::sealed::read_sealed_json(&c.results.join("runs").join(&run.key).join("split.json")).unwrap();
        let drawn = FewShotSplit::draw(&train, t.shots, 1).unwrap();
        assert_eq!(saved.items.len(), NAMES.len() * t.shots);
        // Saved relative to the image folder: compared by file name.
        let names = |s: &FewShotSplit| -> Vec<(String, usize)> {
            s.items
                .iter()
                .map(|(p, l)| (p.to_string().rsplit('/').next().unwrap().to_string(), *l))
                .collect()
        };
        assert_eq!(names(&saved), names(&drawn));
    }
    // Done jobs are found again by their keys.
    assert_eq!(ntlb_eval::sweep::dry_run(&c, None).unwrap(), 0);
}
