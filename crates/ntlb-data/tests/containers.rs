//! WebDataset shards and parquet files: read in place, labelled in the set's class space,
//! indexed once (cached, damaged index rebuilt), and every kind of bad input refused with an
//! error that names the shard or file and the member or row.

mod common;

use std::path::{Path, PathBuf};

use common::classes;
use ntlb_core::image::ImageBytes;
use ntlb_data::classes::ClassList;
use ntlb_data::image::ImageRef;
use ntlb_data::source::{Format, Layout, TrainSet};
use ntlb_data::split::FewShotSplit;
use ntlb_data::variants::{DatasetKind, EvalSet};
use ntlb_data::write::{write_parquet, write_parquet_split, write_wds, Written};

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
    let index: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("digests.json"))
        .collect();
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

fn default_keys() -> Vec<String> {
    ntlb_data::wds::IMAGE_KEYS.iter().map(|k| k.to_string()).collect()
}

/// A shard cut at any byte is refused naming the shard and where it ends, a cut at a member
/// boundary included: a tar reader stops at the end of the file as at the end of the archive,
/// and only the missing end-of-archive blocks tell the two apart.
#[test]
fn a_shard_cut_anywhere_is_refused_as_truncated() {
    let d = tempfile::tempdir().unwrap();
    let big = vec![7u8; 700];
    let shard = one_shard(
        d.path(),
        &[
            ("s1.png", b"png bytes"),
            ("s1.cls", b"1"),
            ("s2.webp", big.as_slice()),
            ("s2.cls", b"2"),
            ("s3.jpg", b"jpg"),
            ("s3.cls", b"0"),
        ],
    );
    let whole = std::fs::read(&shard).unwrap();
    assert_eq!(ntlb_data::wds::index_shard(&shard, 0, &default_keys(), "cls").unwrap().len(), 3);
    let cut = d.path().join("cut.tar");
    let cut_s = cut.display().to_string();
    for n in 0..whole.len() {
        std::fs::write(&cut, &whole[..n]).unwrap();
        let e = format!("{:#}", ntlb_data::wds::index_shard(&cut, 0, &default_keys(), "cls").unwrap_err());
        let ends = if n == 0 {
            "empty file (0 bytes)".to_string()
        } else {
            format!("truncated: the file ends at byte {n}")
        };
        let member = format!("the file ends at byte {n}");
        assert!(
            e.contains(&cut_s) && (e.contains(&ends) || (e.contains("truncated: member") && e.contains(&member))),
            "cut at {n}: {e}"
        );
    }
    // One lone zero block and members after it: a reader would stop at the block.
    let mut joined = whole[..whole.len() - 1024].to_vec();
    joined.extend_from_slice(&[0u8; 512]);
    joined.extend_from_slice(&whole[..whole.len() - 1024]);
    joined.extend_from_slice(&[0u8; 1024]);
    std::fs::write(&cut, &joined).unwrap();
    let e = format!("{:#}", ntlb_data::wds::index_shard(&cut, 0, &default_keys(), "cls").unwrap_err());
    assert!(e.contains(&cut_s) && e.contains("a lone zero block at byte"), "{e}");
}

/// Through a set: the second shard cut where a sample ends reads 4 of 6 images and leaves class 2
/// without one, unless the cut is named.
#[test]
fn a_set_with_a_shard_cut_between_samples_names_the_shard() {
    let d = tempfile::tempdir().unwrap();
    let cl = classes(3);
    let shards = write_wds(d.path(), "test", &images(3, 2), None, 3).unwrap();
    let whole = std::fs::read(&shards[1]).unwrap();
    // Where sample s0000004 (class 2) starts: the header of its first member.
    let mut ar = tar::Archive::new(std::fs::File::open(&shards[1]).unwrap());
    let at = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_string_lossy().starts_with("s0000004"))
        .unwrap()
        .raw_header_position() as usize;
    std::fs::write(&shards[1], &whole[..at]).unwrap();
    let e = err(open(d.path(), &wds(None), &cl));
    assert!(
        e.contains(&shards[1].display().to_string()) && e.contains(&format!("truncated: the file ends at byte {at}")),
        "{e}"
    );
}

#[test]
fn a_sample_holding_one_member_twice_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let cl = classes(3);
    let cases: [(&[(&str, &[u8])], &str, &str); 3] = [
        (&[("s1.png", b"a"), ("s1.cls", b"1"), ("s1.png", b"b")], "s1.png", "s1.png"),
        (&[("s1.png", b"a"), ("s1.cls", b"1"), ("s1.cls", b"2")], "s1.cls", "s1.cls"),
        // WebDataset lowercases extensions: `jpg` and `JPG` are one member.
        (&[("s1.jpg", b"a"), ("s1.JPG", b"b"), ("s1.cls", b"0")], "s1.JPG", "s1.jpg"),
    ];
    for (members, twice, first) in cases {
        let shard = one_shard(d.path(), &[&[("s0.png", b"p" as &[u8]), ("s0.cls", b"0")], members].concat());
        let e = err(open(d.path(), &wds(None), &cl));
        assert!(
            e.contains(&shard.display().to_string())
                && e.contains("duplicate file name in sample `s1`")
                && e.contains(&format!("member `{twice}`"))
                && e.contains(&format!("after `{first}`")),
            "{e}"
        );
    }
}

/// A label beyond 64 bits is named out of range; a negative one, outside the class list.
#[test]
fn a_cls_label_out_of_range_is_named() {
    let d = tempfile::tempdir().unwrap();
    let cl = classes(3);
    for (text, says) in [
        (
            "18446744073709551615",
            "member `s1.cls` holds class 18446744073709551615, out of range",
        ),
        (
            "-99999999999999999999",
            "member `s1.cls` holds class -99999999999999999999, out of range",
        ),
        ("-1", "member `s1.cls` holds class -1, the class list has 3 classes"),
    ] {
        let shard = one_shard(d.path(), &[("s1.png", b"p"), ("s1.cls", text.as_bytes())]);
        let e = err(open(d.path(), &wds(None), &cl));
        assert!(e.contains(&shard.display().to_string()) && e.contains(says), "{e}");
    }
}

/// `classnames.txt` saved with a byte-order mark names the same classes.
#[test]
fn classnames_with_a_byte_order_mark_are_the_same_classes() {
    let d = tempfile::tempdir().unwrap();
    let cl = classes(3);
    write_wds(d.path(), "test", &images(3, 1), Some(&cl.names), 3).unwrap();
    let plain = open(d.path(), &wds(None), &cl).unwrap();
    let names = d.path().join("classnames.txt");
    let text = std::fs::read_to_string(&names).unwrap();
    std::fs::write(&names, format!("\u{feff}{text}")).unwrap();
    assert_eq!(open(d.path(), &wds(None), &cl).unwrap().items, plain.items);
}

/// Rewrites `path` with `bytes` (the same length) and puts its modification time back.
fn rewrite_keeping_time(path: &Path, bytes: &[u8]) {
    let before = std::fs::metadata(path).unwrap();
    assert_eq!(before.len(), bytes.len() as u64, "the same size, or the test proves nothing");
    std::fs::write(path, bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), before.modified().unwrap());
}

/// The cached index is found by the files' content: a shard or parquet file rewritten with other
/// labels, its size and modification time kept, is indexed again, never read with the old labels.
#[test]
fn a_file_rewritten_with_its_time_kept_is_indexed_again() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let cl = classes(3);
    let imgs = images(3, 2);
    // The same images, class 0 and 2 swapped: labels of one digit, so the sizes stay.
    let mut swapped = imgs.clone();
    for w in &mut swapped {
        w.label = 2 - w.label;
    }
    // Which label each image has, whatever the order the set lists them in.
    let labels = |set: &EvalSet| {
        let mut v: Vec<(Vec<u8>, usize)> = set.items.iter().map(|(r, l)| (r.image_bytes().unwrap(), *l)).collect();
        v.sort();
        v
    };
    let first = |v: &[Written]| {
        let mut v: Vec<(Vec<u8>, usize)> = v.iter().map(|w| (w.bytes.clone(), w.label)).collect();
        v.sort();
        v
    };

    let root = d.path().join("wds");
    let shards = write_wds(&root, "test", &imgs, None, 6).unwrap();
    let open_cached = |root: &Path, layout: &Layout| EvalSet::open_in(DatasetKind::Imagenet, root, layout, &cl, None, None, Some(&cache));
    let before = open_cached(&root, &wds(None)).unwrap();
    assert_eq!(labels(&before), first(&imgs));
    let other = d.path().join("other");
    let rewritten = write_wds(&other, "test", &swapped, None, 6).unwrap();
    rewrite_keeping_time(&shards[0], &std::fs::read(&rewritten[0]).unwrap());
    let after = open_cached(&root, &wds(None)).unwrap();
    assert_eq!(labels(&after), first(&swapped));
    let id = |s: &EvalSet| s.container.as_ref().unwrap().sha256(&s.root, &s.items);
    assert_ne!(id(&before), id(&after));

    let f = d.path().join("hf/v.parquet");
    write_parquet(&f, &imgs, 4).unwrap();
    assert_eq!(labels(&open_cached(&f, &parquet()).unwrap()), first(&imgs));
    let g = d.path().join("hf2/v.parquet");
    write_parquet(&g, &swapped, 4).unwrap();
    rewrite_keeping_time(&f, &std::fs::read(&g).unwrap());
    assert_eq!(labels(&open_cached(&f, &parquet()).unwrap()), first(&swapped));
}

fn label_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Label columns of every integer width read as class indexes (pyarrow keeps a column's width:
/// `datasets` writes ClassLabel as int64, other writers int8 to uint64); a negative or
/// beyond-64-bit label, and a null, are refused naming the file, column and row. The files are
/// written by scripts/make_parquet_label_fixture.py, with and without pyarrow's stored schema.
#[test]
fn parquet_labels_of_every_integer_width() {
    let cl = classes(3);
    for file in ["parquet_label_widths.parquet", "parquet_label_widths_no_arrow_schema.parquet"] {
        let f = label_fixture(file);
        let fs = f.display().to_string();
        let with = |key: &str| Layout {
            label_key: Some(key.into()),
            ..parquet()
        };
        for key in ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"] {
            let set = open(&f, &with(key), &cl).unwrap_or_else(|e| panic!("{file} `{key}`: {e:#}"));
            let mut got: Vec<(Vec<u8>, usize)> = set.items.iter().map(|(r, l)| (r.image_bytes().unwrap(), *l)).collect();
            got.sort();
            let want: Vec<(Vec<u8>, usize)> = [0, 1, 2, 1]
                .iter()
                .enumerate()
                .map(|(row, &l)| (format!("image {row}").into_bytes(), l))
                .collect();
            assert_eq!(got, want, "{file} `{key}`");
        }
        for (key, says) in [
            ("negative_int8", "row 1: `negative_int8` holds -1, a negative class index"),
            (
                "negative_int64",
                "row 1: `negative_int64` holds -9223372036854775808, a negative class index",
            ),
            (
                "huge_uint64",
                "row 1: `huge_uint64` holds 18446744073709551615, out of range for a class index",
            ),
            (
                "huge_uint32",
                "row 1 (`huge_uint32`) holds class 4294967295, the class list has 3 classes",
            ),
            ("null_uint8", "row 1: no label (null `null_uint8`)"),
        ] {
            let e = err(open(&f, &with(key), &cl));
            assert!(e.contains(&fs) && e.contains(says), "{file}: {e}");
        }
    }
}
