//! The eleven datasets of CoOp's benchmark in a sweep: the shipped config plans them, a dry run
//! opens generated trees of all eleven in their download layouts, and zero-shot on split-list
//! sets gives a row per template and per ensemble with each set's own templates and classes.

use std::path::{Path, PathBuf};

use ntlb_data::registry::DatasetKind;
use ntlb_data::write_split::write_split_tree;
use ntlb_eval::sweep::{open_datasets, plan, run_sweep, Job, SweepConfig, SweepOptions};
use ntlb_eval::zeroshot::{read_templates, templates_path};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped config with its repository-relative paths made absolute.
fn benchmark_config() -> SweepConfig {
    let mut c = SweepConfig::read(&repo().join("configs/coop-benchmark.toml")).unwrap();
    c.classes = repo().join(&c.classes);
    let z = c.zero_shot.as_mut().unwrap();
    z.templates = repo().join(&z.templates);
    for p in z.ensembles.values_mut() {
        *p = repo().join(&*p);
    }
    c
}

fn eleven() -> Vec<DatasetKind> {
    std::iter::once(DatasetKind::Imagenet)
        .chain(DatasetKind::split_list_kinds())
        .collect()
}

fn jpeg(label: usize, k: usize) -> Vec<u8> {
    let img = image::RgbImage::from_fn(24 + k as u32, 20, |x, y| {
        image::Rgb([(label * 70 % 256) as u8, (x * 9 + k as u32 * 20) as u8, (y * 11) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// Names the committed tiny model's tokenizer knows, with CoOp's underscores.
const NAMES: [&str; 3] = ["red_circle", "green_square", "blue_triangle"];

fn split_images(n: usize, per_split: [usize; 3]) -> [Vec<(usize, Vec<u8>)>; 3] {
    let list = |s: usize| {
        (0..per_split[s])
            .flat_map(|k| (0..n).map(move |c| (c, jpeg(c, k + 3 * s))))
            .collect()
    };
    [list(0), list(1), list(2)]
}

/// Every split-list set under `data` in its download layout, and ImageNet in the NTLB
/// reference's `data/raw/validation/<wnid>/`; returns the class list file.
fn write_trees(data: &Path) -> PathBuf {
    for kind in DatasetKind::split_list_kinds() {
        write_split_tree(data, kind, &NAMES, &split_images(NAMES.len(), [2, 1, 2])).unwrap();
    }
    let mut tsv = String::new();
    for (c, name) in ["red circle", "green square"].iter().enumerate() {
        let wnid = format!("n0000000{c}");
        let dir = data.join("imagenet/data/raw/validation").join(&wnid);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.JPEG"), jpeg(c, 0)).unwrap();
        tsv += &format!("{wnid}\t{name}\n");
    }
    let classes = data.join("classes.tsv");
    std::fs::write(&classes, tsv).unwrap();
    classes
}

/// The shipped config names the eleven kinds, one zero-shot job over them; every kind has its
/// CLIP templates and CoOp's prompt (the registry's) under datasets/templates/, and the dry
/// run plans without the data.
#[test]
fn the_benchmark_config_plans_the_eleven() {
    let c = benchmark_config();
    assert_eq!(c.datasets.iter().map(|d| d.kind).collect::<Vec<_>>(), eleven());
    let jobs = plan(&c).unwrap();
    assert!(matches!(jobs.as_slice(), [Job::ZeroShot { .. }]));
    let z = c.zero_shot.as_ref().unwrap();
    for kind in DatasetKind::ALL {
        let clip = read_templates(&templates_path(&z.templates, *kind)).unwrap();
        assert!(!clip.is_empty(), "{kind}");
        let coop = read_templates(&templates_path(&z.ensembles["coop"], *kind)).unwrap();
        assert_eq!(coop, [kind.spec().prompt], "{kind}: coop.txt is the registry's prompt");
    }
    // A `wnids` list on a set that takes its classes from its split list is refused by name.
    let mut wnids = c.clone();
    wnids.datasets = vec![c.datasets[1].clone()];
    wnids.datasets[0].wnids = Some(repo().join("datasets/imagenet_a_wnids.txt"));
    let e = format!("{:#}", open_datasets(&wnids).unwrap_err());
    assert!(
        e.contains("dataset caltech101") && e.contains("`wnids`") && e.contains("its split list"),
        "{e}"
    );
    let mut no_data = c.clone();
    no_data.data_root = Some(std::env::temp_dir().join("ntlb-no-such-data"));
    assert_eq!(ntlb_eval::sweep::dry_run(&no_data, None).unwrap(), 1);
}

/// A dry run over generated trees of the eleven opens each in its layout: the split-list sets
/// with their own class lists and test splits, ImageNet from the reference's `data/raw`.
#[test]
fn a_dry_run_opens_the_eleven_in_their_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut c = benchmark_config();
    c.classes = write_trees(&data);
    c.data_root = Some(data.clone());
    c.results = tmp.path().join("results");
    c.models[0].path = repo().join("models/synth-clip");
    let (_, sets) = open_datasets(&c.resolved()).unwrap();
    assert_eq!(sets.iter().map(|s| s.kind).collect::<Vec<_>>(), eleven());
    for s in &sets[1..] {
        assert_eq!(s.classes.names, NAMES, "{}", s.kind);
        assert_eq!(s.items.len(), 2 * NAMES.len(), "{}: the test split", s.kind);
    }
    assert_eq!((sets[0].classes.len(), sets[0].items.len()), (2, 2));
    assert_eq!(ntlb_eval::sweep::dry_run(&c, None).unwrap(), 1);
}

/// Zero-shot on split-list sets: per-template and ensemble rows for each, each set with its
/// own template list (`{dataset}`) and class names (underscores become spaces in the prompts,
/// so the tiny model's tokenizer reads them); the report averages over the sets.
#[test]
fn zero_shot_rows_per_dataset_with_its_own_templates() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let classes = write_trees(&data);
    let t = tmp.path().join("templates");
    for (kind, lines) in [("eurosat", "a photo of a {}.\na sketch of a {}.\n"), ("dtd", "a photo of a {}.\n")] {
        std::fs::create_dir_all(t.join(kind)).unwrap();
        std::fs::write(t.join(kind).join("all.txt"), lines).unwrap();
        std::fs::write(t.join(kind).join("one.txt"), "a photo of a {}.\n").unwrap();
    }
    let toml = format!(
        r#"name = "sets"
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

[[datasets]]
kind = "dtd"
root = "dtd"

[zero_shot]
templates = "{t}/{{dataset}}/all.txt"
ensembles = {{ all = "{t}/{{dataset}}/all.txt", one = "{t}/{{dataset}}/one.txt" }}
"#,
        results = tmp.path().join("results").display(),
        classes = classes.display(),
        data = data.display(),
        model = repo().join("models/synth-clip").display(),
        t = t.display()
    );
    let c: SweepConfig = toml::from_str(&toml).unwrap();
    assert_eq!(run_sweep(&c, &SweepOptions::default()).unwrap(), 1, "one zero-shot job");
    let rows = ntlb_eval::results::read_table(&c.results).unwrap();
    let of = |d: &str| rows.iter().filter(|r| r.dataset == d).collect::<Vec<_>>();
    let (eurosat, dtd) = (of("eurosat"), of("dtd"));
    assert_eq!((eurosat.len(), dtd.len()), (2 + 2, 1 + 2), "per template, then the two ensembles");
    assert!(rows.iter().all(|r| r.n_images == 2 * NAMES.len()));
    let templates: Vec<Option<&str>> = eurosat.iter().map(|r| r.template.as_deref()).collect();
    assert_eq!(
        templates,
        [
            Some("a photo of a {}."),
            Some("a sketch of a {}."),
            Some("ensemble-all"),
            Some("ensemble-one")
        ]
    );
    // The one-template ensemble is the single template's classifier.
    assert_eq!(eurosat[0].top1, eurosat[3].top1);
    let files = ntlb_eval::report::run_report(&c.results, &tmp.path().join("report")).unwrap();
    assert!(files.contains(&tmp.path().join("report/average.csv")));
    let md = std::fs::read_to_string(tmp.path().join("report/summary.md")).unwrap();
    assert!(md.contains("averaged over the 2 datasets"), "{md}");
    let mean = (eurosat[2].top1 + dtd[1].top1) / 2.0;
    assert!(
        md.contains(&format!("| zero-shot, ensemble of all templates | {mean:.2} | all 2 |")),
        "{md}"
    );

    // Another dataset's template file changes this job's key: the `{dataset}` files are hashed.
    std::fs::write(t.join("dtd/all.txt"), "a sketch of a {}.\n").unwrap();
    assert_eq!(ntlb_eval::sweep::dry_run(&c, None).unwrap(), 1);
}
