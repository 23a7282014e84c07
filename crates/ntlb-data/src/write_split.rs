//! Writing a small set in its download layout (the split JSON or FGVCAircraft's files, and the
//! images they list, where the real set keeps them), for the tests and the demo world.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::registry::{DatasetKind, Source};
use crate::split_file::SPLITS;
use crate::split_item::SplitItem;

/// `images[s]`: the images of split `s` (train, val, test) as (label, encoded bytes), in the
/// order the split list gets them. Class names are written as given (underscores kept).
/// Returns the dataset folder (`root/<folder>`) and the three lists written.
pub fn write_split_tree(
    root: &Path,
    kind: DatasetKind,
    classnames: &[&str],
    images: &[Vec<(usize, Vec<u8>)>; 3],
) -> Result<(PathBuf, [Vec<SplitItem>; 3])> {
    let spec = kind.spec();
    let dir = root.join(spec.folder);
    let (image_dir, is_json) = match spec.source {
        Source::SplitFile { prefix, .. } => (if prefix.is_empty() { dir.clone() } else { dir.join(prefix) }, true),
        Source::AircraftVariants => (dir.join("images"), false),
        Source::ClassFolders => bail!("{kind} is a class-folder set, not a split-list set"),
    };
    let mut lists: [Vec<SplitItem>; 3] = Default::default();
    let mut n = 0usize;
    for (s, split) in images.iter().enumerate() {
        for (label, bytes) in split {
            let name = classnames[*label];
            let path = item_path(kind, name, n, SPLITS[s]);
            let file = image_dir.join(&path);
            std::fs::create_dir_all(file.parent().expect("in a folder"))?;
            std::fs::write(&file, bytes).with_context(|| format!("{}: cannot write", file.display()))?;
            lists[s].push(SplitItem {
                path,
                label: *label,
                classname: name.to_string(),
            });
            n += 1;
        }
    }
    if is_json {
        let Source::SplitFile { file, .. } = spec.source else {
            unreachable!()
        };
        let mut json = serde_json::Map::new();
        for (s, split) in SPLITS.iter().enumerate() {
            let entries: Vec<serde_json::Value> = lists[s]
                .iter()
                .map(|it| serde_json::json!([it.path, it.label, it.classname]))
                .collect();
            json.insert(split.to_string(), entries.into());
        }
        std::fs::write(dir.join(file), serde_json::to_string_pretty(&serde_json::Value::Object(json))?)?;
    } else {
        std::fs::write(
            dir.join("variants.txt"),
            classnames.iter().map(|c| format!("{c}\n")).collect::<String>(),
        )?;
        for (s, split) in SPLITS.iter().enumerate() {
            let lines: String = lists[s]
                .iter()
                .map(|it| format!("{} {}\n", it.path.trim_end_matches(".jpg"), it.classname))
                .collect();
            std::fs::write(dir.join(format!("images_variant_{split}.txt")), lines)?;
        }
    }
    Ok((dir, lists))
}

/// A file name in the set's own style: flat folders for Pets, Flowers and FGVCAircraft, Cars'
/// `cars_train/` and `cars_test/`, SUN397's letter folders, a folder per class elsewhere.
fn item_path(kind: DatasetKind, name: &str, n: usize, split: &str) -> String {
    let folder: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    match kind {
        DatasetKind::OxfordPets => format!("{folder}_{n}.jpg"),
        DatasetKind::OxfordFlowers => format!("image_{:05}.jpg", n + 1),
        DatasetKind::FgvcAircraft => format!("{:07}.jpg", 1_000_000 + n),
        DatasetKind::StanfordCars if split == "test" => format!("cars_test/{:05}.jpg", n + 1),
        DatasetKind::StanfordCars => format!("cars_train/{:05}.jpg", n + 1),
        DatasetKind::Sun397 => format!(
            "{}/{folder}/sun_{n:04}.jpg",
            folder.chars().next().unwrap_or('x').to_ascii_lowercase()
        ),
        _ => format!("{folder}/{folder}_{n:04}.jpg"),
    }
}
