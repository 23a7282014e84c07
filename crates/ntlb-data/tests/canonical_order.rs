//! One order of a set's images whatever holds them: a folder tree, WebDataset shards and parquet
//! files, the last two written shuffled across shards and files, give the same images in the
//! same order, hence the same few-shot split and the same `max_per_class` subset.

mod common;

use std::path::Path;

use common::classes;
use ntlb_core::image::ImageBytes;
use ntlb_data::classes::ClassList;
use ntlb_data::image::ImageRef;
use ntlb_data::source::{Format, Layout, TrainSet};
use ntlb_data::split::FewShotSplit;
use ntlb_data::variants::{DatasetKind, EvalSet};
use ntlb_data::write::{write_parquet_split, write_wds, Written};

/// Images of uneven sizes, two of each class of the same size (a tie the digest breaks).
fn images(n_classes: usize, per_class: usize) -> Vec<Written> {
    (0..n_classes)
        .flat_map(|c| {
            (0..per_class).map(move |k| Written {
                bytes: format!("class {c} image {k} {}", "x".repeat((k * 5 + c) % 7)).into_bytes(),
                ext: "jpg".into(),
                path: format!("img{k:02}.jpg"),
                label: c,
            })
        })
        .collect()
}

fn shuffled(w: &[Written]) -> Vec<Written> {
    let mut v: Vec<(usize, Written)> = w.iter().cloned().enumerate().map(|(i, x)| ((i * 7919 + 5) % 97, x)).collect();
    v.sort_by_key(|(k, _)| *k);
    v.into_iter().map(|(_, x)| x).collect()
}

fn bytes(items: &[(ImageRef, usize)]) -> Vec<(Vec<u8>, usize)> {
    items.iter().map(|(r, l)| (r.image_bytes().unwrap(), *l)).collect()
}

fn folder(root: &Path, split: &str, w: &[Written], cl: &ClassList) {
    for x in w {
        let d = root.join(split).join(&cl.ids[x.label]);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(&x.path), &x.bytes).unwrap();
    }
}

#[test]
fn folders_and_shuffled_containers_give_one_order() {
    let d = tempfile::tempdir().unwrap();
    let cl = classes(4);
    let imgs = images(4, 9);
    // Same-size pairs exist (the digest decides their order).
    assert!(imgs
        .iter()
        .enumerate()
        .any(|(i, a)| imgs[i + 1..].iter().any(|b| b.label == a.label && b.bytes.len() == a.bytes.len())));
    let mixed = shuffled(&imgs);
    folder(&d.path().join("folder"), "train", &imgs, &cl);
    folder(&d.path().join("folder"), "val", &imgs, &cl);
    for split in ["train", "test"] {
        write_wds(&d.path().join("wds"), split, &mixed, Some(&cl.names), 4).unwrap();
    }
    for split in ["train", "validation"] {
        write_parquet_split(&d.path().join("hf"), split, &mixed, 10, 3).unwrap();
    }
    let layouts = [
        ("folder", Layout::default()),
        (
            "wds",
            Layout {
                format: Format::Wds,
                ..Layout::default()
            },
        ),
        (
            "hf",
            Layout {
                format: Format::Parquet,
                ..Layout::default()
            },
        ),
    ];
    let mut seen = Vec::new();
    for (dir, layout) in &layouts {
        let root = d.path().join(dir);
        let train = TrainSet::open(&root, layout, &cl, Some(&d.path().join("cache"))).unwrap();
        let split = FewShotSplit::draw(&train, 2, 3).unwrap();
        let eval = EvalSet::open_in(
            DatasetKind::Imagenet,
            &root,
            layout,
            &cl,
            None,
            Some(2),
            Some(&d.path().join("cache")),
        )
        .unwrap();
        seen.push((dir, bytes(&train.items), bytes(&split.items), bytes(&eval.items)));
    }
    let (_, order, split, first_two) = &seen[0];
    assert_eq!(order.len(), 36);
    assert_eq!((split.len(), first_two.len()), (8, 8));
    for (dir, o, s, e) in &seen[1..] {
        assert_eq!(o, order, "{dir}: the training set's order");
        assert_eq!(s, split, "{dir}: the 2-shot split");
        assert_eq!(e, first_two, "{dir}: max_per_class = 2");
    }
}
