//! Upstream CoOp's cached draws (`split_fewshot/shot_K-seed_S.pkl`) read without Python: the
//! fixtures are pickled by CPython with a `Datum` of Dassl's module
//! (scripts/make_coop_pickle_fixtures.py); paths of another machine map onto the local copy;
//! the file wins over a fresh draw and is named with its SHA-256.

use std::path::{Path, PathBuf};

use ntlb_data::classes::ClassList;
use ntlb_data::coop_pickle::{cache_file, map_onto, CachedDraw};
use ntlb_data::source::{Layout, TrainSet};
use ntlb_data::split::FewShotSplit;
use ntlb_data::split_item::SplitItem;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/coop_pickle").join(name)
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

fn triples(d: &[ntlb_data::coop_pickle::Datum]) -> serde_json::Value {
    serde_json::Value::Array(d.iter().map(|x| serde_json::json!([x.impath, x.label, x.classname])).collect())
}

#[test]
fn datum_lists_read_as_cpython_wrote_them() {
    let want = expected();
    let pets = CachedDraw::read(&fixture("pets.pkl")).unwrap();
    assert_eq!(triples(&pets.train), want["pets.pkl"]["train"]);
    assert_eq!(triples(pets.val.as_ref().unwrap()), want["pets.pkl"]["val"]);
    assert!(pets.train.iter().all(|d| d.domain == Some(0)));
    assert_eq!(pets.sha256, ntlb_core::digest::sha256_file(&fixture("pets.pkl")).unwrap());
    let imagenet = CachedDraw::read(&fixture("imagenet.pkl")).unwrap();
    assert_eq!(triples(&imagenet.train), want["imagenet.pkl"]["train"]);
    assert!(imagenet.val.is_none(), "ImageNet's cache holds train only");
}

#[test]
fn what_is_not_a_datum_list_is_refused_naming_the_file() {
    let e = format!("{:#}", CachedDraw::read(&fixture("other_class.pkl")).unwrap_err());
    assert!(
        e.contains("other_class.pkl") && e.contains("not a cached few-shot draw") && e.contains("tuple"),
        "{e}"
    );
    let d = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("pets.pkl")).unwrap();
    let cut = d.path().join("cut.pkl");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = format!("{:#}", CachedDraw::read(&cut).unwrap_err());
    assert!(e.contains("cut.pkl") && e.contains("truncated"), "{e}");
    let json = d.path().join("json.pkl");
    std::fs::write(&json, "{\"train\": []}").unwrap();
    let e = format!("{:#}", CachedDraw::read(&json).unwrap_err());
    assert!(e.contains("json.pkl") && e.contains("opcode"), "{e}");
}

/// Paths of another machine map onto a split list by the longest ending that is a listed
/// path; a path that maps onto nothing, or onto an image of another class, is refused.
#[test]
fn cached_paths_map_onto_the_split_list() {
    let pets = CachedDraw::read(&fixture("pets.pkl")).unwrap();
    let item = |path: &str, label: usize, classname: &str| SplitItem {
        path: path.into(),
        label,
        classname: classname.into(),
    };
    let mut local = vec![item("Abyssinian_9.jpg", 0, "Abyssinian"), item("beagle_8.jpg", 2, "beagle")];
    let root = Path::new("/data/oxford_pets/images");
    let f = fixture("pets.pkl");
    let val = map_onto(&f, pets.val.as_ref().unwrap(), &local, |x| x.path.clone(), |x| x.label, root).unwrap();
    assert_eq!(val, local);
    let e = map_onto(&f, &pets.train, &local, |x| x.path.clone(), |x| x.label, root)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pets.pkl") && e.contains("beagle_3.jpg") && e.contains("/data/oxford_pets/images"),
        "{e}"
    );
    local[1].label = 1;
    let e = map_onto(&f, pets.val.as_ref().unwrap(), &local, |x| x.path.clone(), |x| x.label, root)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("beagle_8.jpg") && e.contains("class 2 in the pickle, class 1 here"),
        "{e}"
    );
}

/// A training folder with `split_fewshot/shot_1-seed_2.pkl` trains on the pickle's images
/// (not the fresh draw), and the split names the file and its digest.
#[test]
fn the_cached_draw_wins_over_a_fresh_one() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("imagenet");
    let ids = ["n00000001", "n00000002", "n00000003"];
    for (c, w) in ids.iter().enumerate() {
        let dir = root.join("images/train").join(w);
        std::fs::create_dir_all(&dir).unwrap();
        for k in 0..3 {
            std::fs::write(dir.join(format!("img{k}.JPEG")), vec![c as u8; 10 + k]).unwrap();
        }
    }
    let classes = ClassList {
        ids: ids.iter().map(|s| s.to_string()).collect(),
        names: vec!["red circle".into(), "green square".into(), "blue triangle".into()],
    };
    let set = TrainSet::open(&root, &Layout::default(), &classes, None).unwrap();
    let fresh = FewShotSplit::choose(&set, 1, 2).unwrap();
    assert!(fresh.cached.is_none());
    let pkl = cache_file(&root, 1, 2);
    std::fs::create_dir_all(pkl.parent().unwrap()).unwrap();
    std::fs::copy(fixture("imagenet.pkl"), &pkl).unwrap();
    let s = FewShotSplit::choose(&set, 1, 2).unwrap();
    let names: Vec<String> = s.items.iter().map(|(r, l)| format!("{}:{l}", r.relative_to(&set.root))).collect();
    assert_eq!(names, ["n00000001/img1.JPEG:0", "n00000002/img0.JPEG:1", "n00000003/img1.JPEG:2"]);
    let c = s.cached.as_ref().unwrap();
    assert_eq!(
        (c.file.as_path(), c.sha256.clone()),
        (pkl.as_path(), ntlb_core::digest::sha256_file(&pkl).unwrap())
    );
    assert_ne!(s.items, fresh.items, "the fixture's picks differ from the fresh draw");
    // Saved with the split and reused from it.
    let saved = d.path().join("split.json");
    assert_eq!(FewShotSplit::load_or_draw(&saved, &set, 1, 2).unwrap(), s);
    assert!(std::fs::read_to_string(&saved).unwrap().contains("shot_1-seed_2.pkl"));
    assert_eq!(FewShotSplit::load_or_draw(&saved, &set, 1, 2).unwrap(), s);
    // An image the pickle names that this copy lacks: refused, naming both.
    std::fs::remove_file(root.join("images/train/n00000002/img0.JPEG")).unwrap();
    let set = TrainSet::open(&root, &Layout::default(), &classes, None).unwrap();
    let e = format!("{:#}", FewShotSplit::choose(&set, 1, 2).unwrap_err());
    assert!(e.contains("shot_1-seed_2.pkl") && e.contains("n00000002/img0.JPEG"), "{e}");
}
