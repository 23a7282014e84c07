//! `ntlb fewshot` prints the reference's draw: over a split file, the very lists CPython draws
//! (the whole-draw vectors of crates/ntlb-data/tests/fixtures/pyrandom.json, written by
//! scripts/make_pyrandom_vectors.py with Dassl's algorithm), and upstream CoOp's cached pickle
//! instead when the dataset folder holds one.

use std::path::Path;
use std::process::Command;

fn ntlb(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ntlb")).args(args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn vectors() -> serde_json::Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../ntlb-data/tests/fixtures/pyrandom.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// An Oxford Pets folder whose split file holds the fixture's fake split (and a test list).
fn pets(root: &Path, split: &serde_json::Value) -> std::path::PathBuf {
    let dir = root.join("oxford_pets");
    let mut s = split.clone();
    s["test"] = s["val"].clone();
    for list in ["train", "val"] {
        for e in s[list].as_array().unwrap() {
            let p = dir.join("images").join(e[0].as_str().unwrap());
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
    }
    std::fs::write(dir.join("split_zhou_OxfordPets.json"), serde_json::to_string(&s).unwrap()).unwrap();
    dir
}

#[test]
fn the_printed_draw_is_cpythons_over_the_split_file() {
    let v = vectors();
    let d = tempfile::tempdir().unwrap();
    pets(d.path(), &v["split"]);
    let root = d.path().to_str().unwrap();
    let mut checked = 0;
    for want in v["draws"].as_array().unwrap() {
        let (seed, shots) = (want["seed"].as_u64().unwrap(), want["shots"].as_u64().unwrap());
        if ![1, 2, 4294967297].contains(&seed) || ![1, 4, 16, 20].contains(&shots) {
            continue;
        }
        let (ok, out, err) = ntlb(&[
            "fewshot",
            "--dataset",
            "oxford-pets",
            "--root",
            root,
            "--shots",
            &shots.to_string(),
            "--seed",
            &seed.to_string(),
            "--json",
        ]);
        assert!(ok, "{err}");
        let got: serde_json::Value = serde_json::from_str(&out).unwrap();
        for list in ["train", "val"] {
            let paths: Vec<&str> = got[list].as_array().unwrap().iter().map(|e| e[0].as_str().unwrap()).collect();
            let expected: Vec<&str> = want[list].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
            assert_eq!(paths, expected, "seed {seed}, {shots} shots, {list}");
        }
        let first = &got["train"][0];
        assert_eq!(
            first[2],
            got["classnames"][first[1].as_u64().unwrap() as usize],
            "[path, label, classname]"
        );
        assert_eq!(got["source"], serde_json::json!({"kind": "fresh", "seed": seed}));
        checked += 1;
    }
    assert_eq!(checked, 12);
    // The table: Dassl's count line after the draw.
    let (ok, out, err) = ntlb(&["fewshot", "--dataset", "oxford-pets", "--root", root, "--shots", "2", "--seed", "1"]);
    assert!(ok, "{err}");
    assert!(out.contains("# classes 6 / # train_x 11 / # val 11 / # test 49"), "{out}");
    // Seed 0: refused with the reason.
    let (ok, _, err) = ntlb(&["fewshot", "--dataset", "oxford-pets", "--root", root, "--shots", "2", "--seed", "0"]);
    assert!(!ok && err.contains("seed 0") && err.contains("unseeded"), "{err}");
}

/// A cached pickle in `split_fewshot/` wins and is named with its digest; one whose paths are
/// not this copy's images is refused naming it.
#[test]
fn a_cached_pickle_wins_and_is_named() {
    let v = vectors();
    let d = tempfile::tempdir().unwrap();
    let dir = pets(d.path(), &v["split"]);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ntlb-data/tests/fixtures/coop_pickle/pets.pkl");
    let pkl = dir.join("split_fewshot/shot_2-seed_1.pkl");
    std::fs::create_dir_all(pkl.parent().unwrap()).unwrap();
    std::fs::copy(&fixture, &pkl).unwrap();
    let root = d.path().to_str().unwrap();
    let (ok, _, err) = ntlb(&[
        "fewshot",
        "--dataset",
        "oxford-pets",
        "--root",
        root,
        "--shots",
        "2",
        "--seed",
        "1",
        "--json",
    ]);
    assert!(!ok && err.contains("shot_2-seed_1.pkl") && err.contains("beagle_3.jpg"), "{err}");
    // The fixture's images, added to this copy's split list, make it map.
    let mut split = v["split"].clone();
    let pick =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(fixture.with_file_name("expected.json")).unwrap()).unwrap();
    let mut names = vec![String::new(); 6];
    for list in ["train", "val"] {
        for e in pick["pets.pkl"][list].as_array().unwrap() {
            let file = Path::new(e[0].as_str().unwrap()).file_name().unwrap().to_str().unwrap().to_string();
            let label = e[1].as_u64().unwrap();
            let classname = format!("class_{label}");
            names[label as usize] = classname.clone();
            split[list]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!([file, label, classname]));
        }
    }
    pets(d.path(), &split);
    let (ok, out, err) = ntlb(&[
        "fewshot",
        "--dataset",
        "oxford-pets",
        "--root",
        root,
        "--shots",
        "2",
        "--seed",
        "1",
        "--json",
    ]);
    assert!(ok, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    let paths = |l: &str| {
        got[l]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[0].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        paths("train"),
        [
            "beagle_3.jpg",
            "beagle_1.jpg",
            "Abyssinian_2.jpg",
            "Abyssinian_5.jpg",
            "Bengal_7.jpg"
        ]
    );
    assert_eq!(paths("val"), ["Abyssinian_9.jpg", "beagle_8.jpg"]);
    assert_eq!(got["source"]["kind"], "cache");
    assert_eq!(got["source"]["file"], pkl.display().to_string());
    assert_eq!(got["source"]["sha256"], ntlb_core::digest::sha256_file(&pkl).unwrap());
}
