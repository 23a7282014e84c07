//! WebDataset shards and parquet files: read in place, labelled in the set's class space,
//! indexed once (cached, damaged index rebuilt), and every kind of bad input refused with an
//! error that names the shard or file and the member or row.

use std::path::{Path, PathBuf};

use ntlb_core::image::ImageBytes;
use ntlb_data::classes::ClassList;
use ntlb_data::image::ImageRef;
use ntlb_data::source::{Format, Layout, TrainSet};
use ntlb_data::split::FewShotSplit;
use ntlb_data::variants::{DatasetKind, EvalSet};
use ntlb_data::write::{write_parquet, write_parquet_split, write_wds, Written};

fn classes(n: usize) -> ClassList {
    ClassList {
        ids: (0..n).map(|i| format!("n{i:08}")).collect(),
        names: (0..n).map(|i| format!("class {i}")).collect(),
    }
}

/// `per_class` images of every class, in class order; bytes unique per image.
fn images(n_classes: usize, per_class: usize) -> Vec<Written> {
    (0..n_classes)
        .flat_map(|c| {
            (0..per_class).map(move |k| Written {
                bytes: format!("image of class {c}, number {k}: {}", "x".repeat(c * 7 + k)).into_bytes(),
                ext: if k % 2 == 0 { "png".into() } else { "jpg".into() },
                path: format!("n{c:08}_{k}.JPEG"),
                label: c,
            })
        })
        .collect()
}

fn wds(layout_split: Option<&str>) -> Layout {
    Layout {
        format: Format::Wds,
        split: layout_split.map(String::from),
        ..Layout::default()
    }
}

fn parquet() -> Layout {
    Layout {
        format: Format::Parquet,
        ..Layout::default()
    }
}

fn open(root: &Path, layout: &Layout, cl: &ClassList) -> anyhow::Result<EvalSet> {
    EvalSet::open_in(DatasetKind::Imagenet, root, layout, cl, None, None, None)
}

fn err<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.unwrap_err())
}

#[test]
fn shards_and_parquet_files_read_back_every_image_in_place() {
    let d = tempfile::tempdir().unwrap();
    let cl = classes(3);
    let imgs = images(3, 3);
    let names = cl.names.clone();
    let shards = write_wds(&d.path().join("wds"), "test", &imgs, Some(&names), 4).unwrap();
    assert_eq!(shards.len(), 3);
    write_parquet_split(&d.path().join("hf"), "validation", &imgs, 5, 2).unwrap();
    for (root, layout) in [(d.path().join("wds"), wds(None)), (d.path().join("hf"), parquet())] {
        let set = open(&root, &layout, &cl).unwrap();
        assert_eq!(set.items.len(), 9, "{}", root.display());
        let labels: Vec<usize> = set.items.iter().map(|(_, l)| *l).collect();
        assert_eq!(labels, imgs.iter().map(|w| w.label).collect::<Vec<_>>());
        // Read in any order (parquet rows across row groups and files).
        for i in [8, 0, 4, 5, 1, 7, 2, 6, 3] {
            assert_eq!(set.items[i].0.image_bytes().unwrap(), imgs[i].bytes, "{} item {i}", root.display());
        }
        let c = set.container.as_ref().unwrap();
        assert_eq!(c.samples, 9);
        assert!(set.empty_classes.is_empty());
    }
    // wds: the first of webp, png, jpg, jpeg; members named shard/member.
    let set = open(&d.path().join("wds"), &wds(None), &cl).unwrap();
    assert_eq!(set.items[1].0.image_name(), shards[0].join("s0000001.jpg"));
    let set = open(&d.path().join("hf"), &parquet(), &cl).unwrap();
    assert!(
        set.items[6].0.image_name().ends_with("validation-00001-of-00002.parquet#1"),
        "{:?}",
        set.items[6].0
    );
    // One file given as the root.
    let one = d.path().join("hf/data/validation-00000-of-00002.parquet");
    assert_eq!(open(&one, &parquet(), &cl).unwrap().items.len(), 5);
}

/// -A / -R shards are 200-way: labels over the wnid list, `classnames.txt` checked against its
/// names; the 1000-class names are refused, naming the first line that differs.
#[test]
fn subset_shards_are_labelled_over_the_wnid_list() {
    let d = tempfile::tempdir().unwrap();
    let cl = classes(6);
    let wnids: Vec<String> = ["n00000001", "n00000003", "n00000005"].map(String::from).to_vec();
    let sub_names: Vec<String> = ["class 1", "class 3", "class 5"].map(String::from).to_vec();
    let imgs = images(3, 2);
    write_wds(d.path(), "test", &imgs, Some(&sub_names), 10).unwrap();
    let set = EvalSet::open_in(DatasetKind::ImagenetR, d.path(), &wds(None), &cl, Some(&wnids), None, None).unwrap();
    assert_eq!(set.classes.ids, wnids);
    assert_eq!(set.items.iter().map(|x| x.1).collect::<Vec<_>>(), [0, 0, 1, 1, 2, 2]);
    let set = EvalSet::open_in(DatasetKind::ImagenetR, d.path(), &wds(None), &cl, Some(&wnids), Some(1), None).unwrap();
    assert_eq!(set.items.len(), 3, "max_per_class");
    // Labelled over the whole list: the names disagree at line 2.
    std::fs::write(d.path().join("classnames.txt"), "class 1\nclass 2\nclass 3\n").unwrap();
    let e = err(EvalSet::open_in(
        DatasetKind::ImagenetR,
        d.path(),
        &wds(None),
        &cl,
        Some(&wnids),
        None,
        None,
    ));
    assert!(
        e.contains("classnames.txt:2: class 1 is `class 2`, the class list says `class 3` (n00000003)"),
        "{e}"
    );
    std::fs::write(d.path().join("classnames.txt"), "class 1\nclass 3\n").unwrap();
    let e = err(EvalSet::open_in(
        DatasetKind::ImagenetR,
        d.path(),
        &wds(None),
        &cl,
        Some(&wnids),
        None,
        None,
    ));
    assert!(e.contains("classnames.txt: 2 class names, the class list has 3 classes"), "{e}");
}

fn tar_of(path: &Path, members: &[(&str, &[u8])]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o444);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.finish().unwrap();
}

fn one_shard(root: &Path, members: &[(&str, &[u8])]) -> PathBuf {
    let p = root.join("test/0.tar");
    tar_of(&p, members);
    std::fs::write(root.join("test/nshards.txt"), "1\n").unwrap();
    p
}

#[test]
fn bad_shards_are_refused_naming_the_shard_and_member() {
    let d = tempfile::tempdir().unwrap();
    let cl = classes(3);
    let root = d.path();
    let shard = one_shard(
        root,
        &[("s1.png", b"png bytes"), ("s1.cls", b"1"), ("s2.webp", b"x"), ("s2.cls", b"2")],
    );
    assert_eq!(open(root, &wds(None), &cl).unwrap().items.len(), 2);
    let shard_s = shard.display().to_string();

    // Truncated in the last member's data, then in a header.
    let whole = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &whole[..512 * 5]).unwrap();
    let e = err(open(root, &wds(None), &cl));
    assert!(e.contains(&shard_s) && e.contains("truncated: member `s2.webp`"), "{e}");
    std::fs::write(&shard, &whole[..512 * 2 + 100]).unwrap();
    let e = err(open(root, &wds(None), &cl));
    assert!(e.contains(&shard_s) && e.contains("after member `s1.png`"), "{e}");

    // A sample without an image, without a label; a label out of range, not a number.
    one_shard(
        root,
        &[("s1.png", b"p"), ("s1.cls", b"1"), ("s2.txt", b"caption"), ("s2.cls", b"0")],
    );
    let e = err(open(root, &wds(None), &cl));
    assert!(
        e.contains(&shard_s) && e.contains("sample `s2` has no image") && e.contains("s2.webp, s2.png, s2.jpg, s2.jpeg"),
        "{e}"
    );
    one_shard(root, &[("s1.png", b"p"), ("s1.cls", b"1"), ("s2.jpg", b"j")]);
    let e = err(open(root, &wds(None), &cl));
    assert!(
        e.contains(&shard_s) && e.contains("sample `s2` has no label (no member s2.cls"),
        "{e}"
    );
    one_shard(root, &[("s1.png", b"p"), ("s1.cls", b"3")]);
    let e = err(open(root, &wds(None), &cl));
    assert!(
        e.contains(&shard_s) && e.contains("member `s1.cls` holds class 3, the class list has 3 classes"),
        "{e}"
    );
    one_shard(root, &[("s1.png", b"p"), ("s1.cls", b"cat")]);
    let e = err(open(root, &wds(None), &cl));
    assert!(
        e.contains(&shard_s) && e.contains("member `s1.cls` holds \"cat\", not a class index"),
        "{e}"
    );
    // The image key and label key are settable.
    one_shard(root, &[("s1.png", b"p"), ("s1.jpg", b"j"), ("s1.label", b"2")]);
    let custom = Layout {
        image_key: Some("jpg".into()),
        label_key: Some("label".into()),
        ..wds(None)
    };
    let set = open(root, &custom, &cl).unwrap();
    assert_eq!((set.items[0].0.image_bytes().unwrap(), set.items[0].1), (b"j".to_vec(), 2));
}

#[test]
fn nshards_txt_must_agree_with_the_shards_present() {
    let d = tempfile::tempdir().unwrap();
    let cl = classes(3);
    write_wds(d.path(), "test", &images(3, 2), None, 2).unwrap();
    assert_eq!(open(d.path(), &wds(None), &cl).unwrap().items.len(), 6);
    let n = d.path().join("test/nshards.txt");
    std::fs::write(&n, "4\n").unwrap();
    let e = err(open(d.path(), &wds(None), &cl));
    assert!(e.contains("nshards.txt: says 4 shards, but 3.tar is not in"), "{e}");
    std::fs::write(&n, "2\n").unwrap();
    let e = err(open(d.path(), &wds(None), &cl));
    assert!(
        e.contains("says 2 shards (0.tar .. 1.tar), but") && e.contains("2.tar is also there"),
        "{e}"
    );
    std::fs::remove_file(&n).unwrap();
    let e = err(open(d.path(), &wds(None), &cl));
    assert!(e.contains("nshards.txt: cannot read"), "{e}");
    let e = err(open(d.path(), &wds(Some("train")), &cl));
    assert!(e.contains("train: shard folder not found"), "{e}");
}

#[test]
fn bad_parquet_files_are_refused_naming_the_file_and_row() {
    let d = tempfile::tempdir().unwrap();
    let cl = classes(3);
    let f = d.path().join("v.parquet");
    let mut imgs = images(3, 1);
    write_parquet(&f, &imgs, 10).unwrap();
    let fs = f.display().to_string();
    assert_eq!(open(&f, &parquet(), &cl).unwrap().items.len(), 3);
    let e = err(open(
        &f,
        &Layout {
            label_key: Some("wnid".into()),
            ..parquet()
        },
        &cl,
    ));
    assert!(
        e.contains(&fs) && e.contains("no column `wnid` (its columns: image, label)") && e.contains("label_key"),
        "{e}"
    );
    let e = err(open(
        &f,
        &Layout {
            image_key: Some("jpg".into()),
            ..parquet()
        },
        &cl,
    ));
    assert!(e.contains(&fs) && e.contains("no column `jpg`") && e.contains("image_key"), "{e}");
    let e = err(open(
        &f,
        &Layout {
            image_key: Some("label".into()),
            ..parquet()
        },
        &cl,
    ));
    assert!(e.contains(&fs) && e.contains("column `label` holds i64, not image bytes"), "{e}");
    imgs[2].label = 5;
    write_parquet(&f, &imgs, 10).unwrap();
    let e = err(open(&f, &parquet(), &cl));
    assert!(
        e.contains(&fs) && e.contains("row 2 (`label`) holds class 5, the class list has 3 classes"),
        "{e}"
    );
    std::fs::write(&f, b"PAR1 but not really a parquet file").unwrap();
    let e = err(open(&f, &parquet(), &cl));
    assert!(e.contains(&fs) && e.contains("not a parquet file"), "{e}");
    // Numbered files must all be there.
    let files = write_parquet_split(&d.path().join("hf"), "validation", &images(3, 2), 2, 2).unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    let e = err(open(&d.path().join("hf"), &parquet(), &cl));
    assert!(
        e.contains("the files say there are 3 of them, 2 are here; file 00001-of-00003 is missing"),
        "{e}"
    );
    let e = err(open(
        &d.path().join("hf"),
        &Layout {
            split: Some("test".into()),
            ..parquet()
        },
        &cl,
    ));
    assert!(e.contains("no parquet files of split `test`"), "{e}");
}

/// The index is built once and cached; a damaged cache file is reported, set aside and
/// rebuilt; a shard whose bytes changed is read as an error, never as another image.
#[test]
fn the_index_is_cached_and_a_damaged_one_rebuilt() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let cl = classes(3);
    let root = d.path().join("wds");
    write_wds(&root, "test", &images(3, 2), None, 4).unwrap();
    let first = EvalSet::open_in(DatasetKind::Imagenet, &root, &wds(None), &cl, None, None, Some(&cache)).unwrap();
    let index: Vec<PathBuf> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(index.len(), 1, "{index:?}");
    assert!(index[0].to_string_lossy().ends_with(".index.json"));
    let again = EvalSet::open_in(DatasetKind::Imagenet, &root, &wds(None), &cl, None, None, Some(&cache)).unwrap();
    assert_eq!(again.items, first.items);
    let text = std::fs::read(&index[0]).unwrap();
    std::fs::write(&index[0], &text[..text.len() / 2]).unwrap();
    let rebuilt = EvalSet::open_in(DatasetKind::Imagenet, &root, &wds(None), &cl, None, None, Some(&cache)).unwrap();
    assert_eq!(rebuilt.items, first.items);
    assert_eq!(std::fs::read(&index[0]).unwrap(), text, "rebuilt in place");
    assert!(index[0]
        .with_file_name(format!("{}.damaged", index[0].file_name().unwrap().to_string_lossy()))
        .exists());
    // A member read where the index says, in a shard that was rewritten: an error naming it.
    let ImageRef::Member { shard, offset, size, name } = &first.items[1].0 else {
        panic!()
    };
    let moved = ImageRef::Member {
        shard: shard.clone(),
        offset: offset + 512,
        size: *size,
        name: name.clone(),
    };
    let e = moved.image_bytes().unwrap_err();
    assert!(e.contains("member `s0000001.jpg`") && e.contains("shard changed"), "{e}");
}

/// Identity: the same shards under another root are the same set; re-sharded, another.
#[test]
fn a_resharded_copy_is_another_set() {
    let d = tempfile::tempdir().unwrap();
    let cl = classes(3);
    let imgs = images(3, 2);
    write_wds(&d.path().join("a"), "test", &imgs, None, 4).unwrap();
    write_wds(&d.path().join("b"), "test", &imgs, None, 4).unwrap();
    write_wds(&d.path().join("c"), "test", &imgs, None, 3).unwrap();
    let id = |dir: &str| {
        let s = open(&d.path().join(dir), &wds(None), &cl).unwrap();
        s.container.as_ref().unwrap().sha256(&s.root, &s.items)
    };
    assert_eq!(id("a"), id("b"));
    assert_ne!(id("a"), id("c"));
    // The same samples at the same offsets in a shard of another size (padded): another set.
    let mut t = std::fs::OpenOptions::new()
        .append(true)
        .open(d.path().join("b/test/0.tar"))
        .unwrap();
    std::io::Write::write_all(&mut t, &[0u8; 10240]).unwrap();
    assert_eq!(open(&d.path().join("b"), &wds(None), &cl).unwrap().items, {
        let s = open(&d.path().join("a"), &wds(None), &cl).unwrap();
        s.items
            .iter()
            .map(|(r, l)| (r.relative_to(&d.path().join("a")).under(&d.path().join("b")), *l))
            .collect::<Vec<_>>()
    });
    assert_ne!(id("a"), id("b"));
}

/// The one-shot split draws from the train shards, reads only what it drew, and draws what the
/// same images in folders give.
#[test]
fn the_split_draws_from_train_shards_as_from_folders() {
    let d = tempfile::tempdir().unwrap();
    let cl = classes(3);
    let imgs = images(3, 4);
    write_wds(&d.path().join("wds"), "train", &imgs, None, 5).unwrap();
    write_parquet_split(&d.path().join("hf"), "train", &imgs, 5, 2).unwrap();
    for (i, w) in imgs.iter().enumerate() {
        let dir = d.path().join("folder/train").join(&cl.ids[w.label]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{i:02}.{}", w.ext)), &w.bytes).unwrap();
    }
    let mut drawn = Vec::new();
    for (root, layout) in [
        ("folder", Layout::default()),
        (
            "wds",
            Layout {
                format: Format::Wds,
                ..Layout::default()
            },
        ),
        ("hf", parquet()),
    ] {
        let root = d.path().join(root);
        let set = TrainSet::open(&root, &layout, &cl, Some(&d.path().join("cache"))).unwrap();
        let path = d.path().join(format!("{}.split.json", root.display().to_string().len()));
        let s = FewShotSplit::load_or_draw(&path, &set, 2, 7).unwrap();
        let again = FewShotSplit::load_or_draw(&path, &set, 2, 7).unwrap();
        assert_eq!(s, again, "saved and reused");
        assert!(
            !std::fs::read_to_string(&path).unwrap().contains(&d.path().display().to_string()),
            "relative to the root"
        );
        drawn.push(s.items.iter().map(|(r, l)| (r.image_bytes().unwrap(), *l)).collect::<Vec<_>>());
    }
    assert_eq!(drawn[0], drawn[1]);
    assert_eq!(drawn[0], drawn[2]);
    assert_eq!(drawn[0].len(), 6);
}
