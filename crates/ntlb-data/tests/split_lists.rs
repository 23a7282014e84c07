//! The ten split-list sets of CoOp's benchmark read from trees generated in their download
//! layouts (never downloaded), the ImageNet layouts, and every refusal of bad input by name.

use std::path::Path;

use ntlb_data::classes::ClassList;
use ntlb_data::registry::DatasetKind;
use ntlb_data::source::{Format, Layout};
use ntlb_data::split_file::SplitSet;
use ntlb_data::split_item::SplitItem;
use ntlb_data::variants::EvalSet;
use ntlb_data::write_split::write_split_tree;

fn png(label: usize, k: usize) -> Vec<u8> {
    let img = image::RgbImage::from_fn(4 + k as u32 % 3, 3, |x, y| {
        image::Rgb([(label * 50) as u8, (x * 40) as u8, (y * 60) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Class names in each set's own style, as its split file states them (underscores kept).
fn names(kind: DatasetKind) -> Vec<&'static str> {
    match kind {
        DatasetKind::Caltech101 => vec!["face", "leopard", "accordion"],
        DatasetKind::OxfordPets => vec!["abyssinian", "american_bulldog", "yorkshire_terrier"],
        DatasetKind::StanfordCars => vec![
            "2012 Tesla Model S",
            "1991 Volkswagen Golf Hatchback",
            "2012 smart fortwo Convertible",
        ],
        DatasetKind::OxfordFlowers => vec!["pink primrose", "hard-leaved pocket orchid", "canterbury bells"],
        DatasetKind::Food101 => vec!["apple_pie", "baby_back_ribs", "waffles"],
        DatasetKind::FgvcAircraft => vec!["707-320", "A300B4", "Cessna 172"],
        DatasetKind::Sun397 => vec!["abbey", "outdoor apartment_building", "indoor bistro"],
        DatasetKind::Dtd => vec!["banded", "blotchy", "zigzagged"],
        DatasetKind::Eurosat => vec!["Annual Crop Land", "Forest", "Sea or Lake"],
        DatasetKind::Ucf101 => vec!["Apply_Eye_Makeup", "Baby_Crawling", "Yo_Yo"],
        k => panic!("{k} has no split list"),
    }
}

/// Train lists label 2 first (first appearance is not label order), then interleaves classes;
/// val and test run the other way.
fn images(n_classes: usize) -> [Vec<(usize, Vec<u8>)>; 3] {
    let train: Vec<(usize, Vec<u8>)> = (0..3).flat_map(|k| (0..n_classes).rev().map(move |c| (c, png(c, k)))).collect();
    let val = (0..n_classes).map(|c| (c, png(c, 7))).collect();
    let test = (0..2).flat_map(|k| (0..n_classes).map(move |c| (c, png(c, k + 3)))).collect();
    [train, val, test]
}

fn write(root: &Path, kind: DatasetKind) -> (std::path::PathBuf, [Vec<SplitItem>; 3]) {
    write_split_tree(root, kind, &names(kind), &images(names(kind).len())).unwrap()
}

fn err(r: anyhow::Result<SplitSet>) -> String {
    format!("{:#}", r.unwrap_err())
}

/// Every split-list kind reads back exactly the lists written: paths as listed, labels, class
/// names with their underscores, in file order; the class list in label order; the evaluation
/// set is the `test` split with those classes (not ImageNet's).
#[test]
fn every_split_list_kind_reads_its_download_layout() {
    let kinds: Vec<DatasetKind> = DatasetKind::split_list_kinds().collect();
    assert_eq!(kinds.len(), 10);
    let imagenet = ClassList {
        ids: vec!["n0".into()],
        names: vec!["unused".into()],
    };
    for kind in kinds {
        let d = tempfile::tempdir().unwrap();
        let (dir, lists) = write(d.path(), kind);
        assert_eq!(dir, d.path().join(kind.spec().folder));
        // The dataset folder and the data root holding it read the same.
        for root in [dir.as_path(), d.path()] {
            let s = SplitSet::read(kind, root).unwrap();
            assert_eq!(s.dir, dir, "{kind}");
            assert_eq!(s.classnames, names(kind), "{kind}");
            assert_eq!([&s.train, &s.val, &s.test], [&lists[0], &lists[1], &lists[2]], "{kind}");
            assert_eq!(s.train[0].label, 2, "{kind}: file order kept");
            for it in s.train.iter().chain(&s.val).chain(&s.test) {
                assert!(s.path_of(it).is_file(), "{kind}: {}", it.path);
            }
            assert!(
                s.counts_line().contains("# classes 3 / # train_x 9 / # val 3 / # test 6"),
                "{}",
                s.counts_line()
            );
            assert!(!s.matches_published());
        }
        let set = EvalSet::open(kind, &dir, &imagenet, None, None).unwrap();
        assert_eq!(set.classes.names, names(kind), "{kind}");
        assert_eq!(set.items.len(), 6);
        let labels: Vec<usize> = set.items.iter().map(|(_, l)| *l).collect();
        assert_eq!(labels, [0, 1, 2, 0, 1, 2]);
        assert!(set.empty_classes.is_empty());
        assert_eq!(
            set.items[0].0.as_file().unwrap(),
            SplitSet::read(kind, &dir).unwrap().path_of(&lists[2][0])
        );
        let two = EvalSet::open(kind, &dir, &imagenet, None, Some(1)).unwrap();
        assert_eq!(two.items.len(), 3, "max_per_class keeps the first of each class in file order");
        let e = format!(
            "{:#}",
            EvalSet::open_in(
                kind,
                &dir,
                &Layout {
                    format: Format::Wds,
                    ..Layout::default()
                },
                &imagenet,
                None,
                None,
                None
            )
            .unwrap_err()
        );
        assert!(e.contains("download layout"), "{e}");
    }
}

/// StanfordCars lists paths relative to the dataset folder (`cars_train/…`), the others
/// relative to their image folder; FGVCAircraft lists ids (`images/<id>.jpg`).
#[test]
fn path_prefixes_are_the_references() {
    let d = tempfile::tempdir().unwrap();
    let (dir, lists) = write(d.path(), DatasetKind::StanfordCars);
    assert!(lists[0][0].path.starts_with("cars_train/") && lists[2][0].path.starts_with("cars_test/"));
    assert_eq!(SplitSet::read(DatasetKind::StanfordCars, &dir).unwrap().image_dir, dir);
    let (dir, _) = write(d.path(), DatasetKind::OxfordPets);
    assert_eq!(SplitSet::read(DatasetKind::OxfordPets, &dir).unwrap().image_dir, dir.join("images"));
    let (dir, _) = write(d.path(), DatasetKind::FgvcAircraft);
    let s = SplitSet::read(DatasetKind::FgvcAircraft, &dir).unwrap();
    assert_eq!(s.source, dir.join("variants.txt"));
    let line = std::fs::read_to_string(dir.join("images_variant_train.txt")).unwrap();
    let first = line.lines().next().unwrap();
    assert_eq!(first, format!("{} Cessna 172", s.train[0].path.trim_end_matches(".jpg")));
    assert!(dir.join("images").join(&s.train[0].path).is_file());
}

fn edit_json(dir: &Path, file: &str, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join(file);
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
}

/// Bad input, each refused naming the file and the entry.
#[test]
fn bad_split_files_are_refused_by_name() {
    let kind = DatasetKind::OxfordPets;
    let file = "split_zhou_OxfordPets.json";
    let fresh = || {
        let d = tempfile::tempdir().unwrap();
        let (dir, lists) = write(d.path(), kind);
        (d, dir, lists)
    };

    // A listed image that is not on disk.
    let (_d, dir, lists) = fresh();
    std::fs::remove_file(dir.join("images").join(&lists[1][2].path)).unwrap();
    let e = err(SplitSet::read(kind, &dir));
    assert!(
        e.contains(file) && e.contains("not on disk") && e.contains("`val` entry 2") && e.contains(&lists[1][2].path),
        "{e}"
    );

    // A label outside the class list.
    let (_d, dir, _) = fresh();
    edit_json(&dir, file, |v| v["test"][1][1] = 5.into());
    let e = err(SplitSet::read(kind, &dir));
    assert!(
        e.contains("`test` entry 1") && e.contains("label 5") && e.contains("outside the class list"),
        "{e}"
    );

    // Two names for one label, across splits and within train.
    let (_d, dir, _) = fresh();
    edit_json(&dir, file, |v| v["val"][0][2] = "american bulldog".into());
    let e = err(SplitSet::read(kind, &dir));
    assert!(
        e.contains("`val` entry 0") && e.contains("\"american bulldog\"") && e.contains("disagree"),
        "{e}"
    );
    let (_d, dir, _) = fresh();
    edit_json(&dir, file, |v| v["train"][4][2] = "pug".into());
    let e = err(SplitSet::read(kind, &dir));
    assert!(
        e.contains("`train` entry 4") && e.contains("\"pug\"") && e.contains("disagree"),
        "{e}"
    );

    // A class with no train image.
    let (_d, dir, _) = fresh();
    edit_json(&dir, file, |v| {
        let train = v["train"].as_array_mut().unwrap();
        train.retain(|e| e[1] != 1);
    });
    let e = err(SplitSet::read(kind, &dir));
    assert!(e.contains(file) && e.contains("class 1 has no train image"), "{e}");

    // An entry that is not [impath, label, classname].
    let (_d, dir, _) = fresh();
    edit_json(&dir, file, |v| v["train"][3] = serde_json::json!(["a.jpg", "1", "abyssinian"]));
    let e = err(SplitSet::read(kind, &dir));
    assert!(e.contains("`train` entry 3 is not [impath, label, classname]"), "{e}");

    // The split file absent: refused with where CoOp distributes it, and why none is generated.
    let (_d, dir, _) = fresh();
    std::fs::remove_file(dir.join(file)).unwrap();
    let e = err(SplitSet::read(kind, &dir));
    assert!(e.contains(&dir.join(file).display().to_string()), "{e}");
    assert!(e.contains(kind.spec().split_from.unwrap()) && e.contains("DATASETS.md"), "{e}");
    assert!(e.contains("does not generate") && e.contains("shift that run's draw"), "{e}");
    let e = err(SplitSet::read(kind, _d.path()));
    assert!(
        e.contains(&dir.join(file).display().to_string()),
        "looked for under the data root: {e}"
    );

    // The image folder absent.
    let (_d, dir, _) = fresh();
    std::fs::rename(dir.join("images"), dir.join("imgs")).unwrap();
    let e = err(SplitSet::read(kind, &dir));
    assert!(
        e.contains("image folder") && e.contains(&dir.join("images").display().to_string()),
        "{e}"
    );

    // Both the data root and the dataset folder holding a split file.
    let (d, dir, _) = fresh();
    std::fs::copy(dir.join(file), d.path().join(file)).unwrap();
    let e = err(SplitSet::read(kind, d.path()));
    assert!(e.contains("both exist"), "{e}");
}

/// FGVCAircraft: a missing split file, a variant not in `variants.txt`, a class without a
/// train image, a missing image.
#[test]
fn bad_aircraft_files_are_refused_by_name() {
    let kind = DatasetKind::FgvcAircraft;
    let d = tempfile::tempdir().unwrap();
    let (dir, lists) = write(d.path(), kind);
    let train = dir.join("images_variant_train.txt");
    let text = std::fs::read_to_string(&train).unwrap();

    std::fs::write(&train, text.replacen("Cessna 172", "Cessna 208", 1)).unwrap();
    let e = err(SplitSet::read(kind, &dir));
    assert!(
        e.contains("images_variant_train.txt:1") && e.contains("\"Cessna 208\"") && e.contains("variants.txt"),
        "{e}"
    );

    std::fs::write(
        &train,
        text.lines()
            .filter(|l| !l.ends_with(" A300B4"))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let e = err(SplitSet::read(kind, &dir));
    assert!(e.contains("class 1 (\"A300B4\") has no train image"), "{e}");

    std::fs::write(&train, &text).unwrap();
    std::fs::remove_file(dir.join("images").join(&lists[2][0].path)).unwrap();
    let e = err(SplitSet::read(kind, &dir));
    assert!(e.contains("not on disk") && e.contains("`test` entry 0"), "{e}");

    std::fs::remove_file(dir.join("images_variant_val.txt")).unwrap();
    let e = err(SplitSet::read(kind, &dir));
    assert!(e.contains("images_variant_val.txt") && e.contains("fgvc-aircraft-2013b"), "{e}");
}

/// A test class without an image is an empty class of the evaluation set, named (not a folder).
#[test]
fn a_class_without_test_images_is_named() {
    let kind = DatasetKind::Dtd;
    let d = tempfile::tempdir().unwrap();
    let (dir, _) = write(d.path(), kind);
    edit_json(&dir, "split_zhou_DescribableTextures.json", |v| {
        v["test"].as_array_mut().unwrap().retain(|e| e[1] != 2);
    });
    let imagenet = ClassList {
        ids: vec![],
        names: vec![],
    };
    let set = EvalSet::open(kind, &dir, &imagenet, None, None).unwrap();
    assert_eq!(set.empty_classes, ["zigzagged"]);
    let e = set.check_empty_classes(false).unwrap_err().to_string();
    assert!(e.contains("1 of its 3 classes hold no image: zigzagged"), "{e}");
}

/// ImageNet in the NTLB reference's own layout (`data/raw/{training,validation}/<wnid>/`)
/// opens as it is; two layouts at one root are refused, naming both.
#[test]
fn imagenet_in_the_reference_layout() {
    let d = tempfile::tempdir().unwrap();
    let classes = ClassList {
        ids: vec!["n01".into(), "n02".into()],
        names: vec!["a".into(), "b".into()],
    };
    for split in ["training", "validation"] {
        for w in &classes.ids {
            let c = d.path().join("data/raw").join(split).join(w);
            std::fs::create_dir_all(&c).unwrap();
            std::fs::write(c.join("x.JPEG"), png(0, 0)).unwrap();
        }
    }
    let set = EvalSet::open(DatasetKind::Imagenet, d.path(), &classes, None, None).unwrap();
    assert_eq!(set.root, d.path().join("data/raw/validation"));
    assert_eq!(set.items.len(), 2);
    let train = ntlb_data::source::TrainSet::open(d.path(), &Layout::default(), &classes, None).unwrap();
    assert_eq!(train.root, d.path().join("data/raw/training"));
    std::fs::create_dir_all(d.path().join("images/val")).unwrap();
    let e = format!(
        "{:#}",
        EvalSet::open(DatasetKind::Imagenet, d.path(), &classes, None, None).unwrap_err()
    );
    assert!(
        e.contains("more than one layout") && e.contains("images/val") && e.contains("data/raw/validation"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        EvalSet::open(DatasetKind::Imagenet, &d.path().join("data"), &classes, None, None).unwrap_err()
    );
    assert!(e.contains("no ImageNet `val` split") && e.contains("NTLB reference layout"), "{e}");
}
