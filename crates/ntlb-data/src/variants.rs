//! The evaluation sets of the paper: ImageNet val, ImageNet-V2, -Sketch, -A, -R. Each opens
//! with a check that names the folder and what was expected.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::classes::ClassList;
use crate::folder::{is_image, ImageFolder};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// ImageNet validation (`images/val/<wnid>/` or `val/<wnid>/`).
    Imagenet,
    /// ImageNet-V2 matched-frequency: folders `0..999` named by class index.
    ImagenetV2,
    /// ImageNet-Sketch: `<wnid>/` folders (also under `sketch/`).
    ImagenetSketch,
    /// ImageNet-A: 200 `<wnid>/` folders, 200-way.
    ImagenetA,
    /// ImageNet-R: 200 `<wnid>/` folders, 200-way.
    ImagenetR,
}

impl DatasetKind {
    pub fn name(&self) -> &'static str {
        match self {
            DatasetKind::Imagenet => "imagenet",
            DatasetKind::ImagenetV2 => "imagenet-v2",
            DatasetKind::ImagenetSketch => "imagenet-sketch",
            DatasetKind::ImagenetA => "imagenet-a",
            DatasetKind::ImagenetR => "imagenet-r",
        }
    }
}

/// A labelled evaluation set over its own class space.
#[derive(Debug, Clone)]
pub struct EvalSet {
    pub kind: DatasetKind,
    pub root: PathBuf,
    /// Class names of the label space (200 for -A/-R).
    pub classes: ClassList,
    pub items: Vec<(PathBuf, usize)>,
    pub empty_classes: Vec<String>,
}

fn sorted_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    files.sort();
    Ok(files)
}

/// The first of `candidates` that is a folder.
fn first_dir(root: &Path, candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(|c| if c.is_empty() { root.to_path_buf() } else { root.join(c) })
        .find(|p| p.is_dir())
}

impl EvalSet {
    fn from_folder(kind: DatasetKind, f: ImageFolder) -> EvalSet {
        EvalSet {
            kind,
            root: f.root,
            classes: f.classes,
            items: f.items,
            empty_classes: f.empty_classes,
        }
    }

    /// Open `kind` at `root`. `imagenet` is the 1000-class list (wnid, name); `subset` the
    /// 200 wnids of -A or -R. `max_per_class` keeps the first N files of each class (the
    /// reference reads 2 per class of ImageNet-V2); `None` reads everything.
    pub fn open(
        kind: DatasetKind,
        root: &Path,
        imagenet: &ClassList,
        subset: Option<&[String]>,
        max_per_class: Option<usize>,
    ) -> Result<EvalSet> {
        if !root.is_dir() {
            bail!("{}: {} folder not found", root.display(), kind.name());
        }
        let mut set = match kind {
            DatasetKind::Imagenet => {
                let f = ImageFolder::imagenet(root, "val", imagenet)?;
                EvalSet::from_folder(kind, f)
            }
            DatasetKind::ImagenetSketch => {
                let dir = first_dir(root, &["sketch", "images", ""]).expect("root exists");
                let f = ImageFolder::read(&dir, imagenet)?;
                EvalSet::from_folder(kind, f)
            }
            DatasetKind::ImagenetV2 => {
                let dir = first_dir(root, &["imagenetv2-matched-frequency-format-val", ""]).expect("root exists");
                let mut items = Vec::new();
                let mut empty = Vec::new();
                // Folder i is class i: read by number, never sorted as strings.
                for label in 0..imagenet.len() {
                    let cdir = dir.join(label.to_string());
                    if !cdir.is_dir() {
                        bail!(
                            "{}: ImageNet-V2 class folder `{label}` is missing (expected folders 0..{})",
                            dir.display(),
                            imagenet.len() - 1
                        );
                    }
                    let files = sorted_images(&cdir)?;
                    if files.is_empty() {
                        empty.push(label.to_string());
                    }
                    items.extend(files.into_iter().map(|f| (f, label)));
                }
                EvalSet {
                    kind,
                    root: dir,
                    classes: imagenet.clone(),
                    items,
                    empty_classes: empty,
                }
            }
            DatasetKind::ImagenetA | DatasetKind::ImagenetR => {
                let wnids = subset.with_context(|| {
                    format!(
                        "{} needs its 200-wnid list (datasets/{}_wnids.txt)",
                        kind.name(),
                        kind.name().replace('-', "_")
                    )
                })?;
                let mut ids = Vec::new();
                let mut names = Vec::new();
                for w in wnids {
                    let i = imagenet
                        .ids
                        .iter()
                        .position(|x| x == w)
                        .with_context(|| format!("wnid {w} of {} is not in the ImageNet class list", kind.name()))?;
                    ids.push(w.clone());
                    names.push(imagenet.names[i].clone());
                }
                let sub = ClassList { ids, names };
                let dir = first_dir(root, &[kind.name(), ""]).expect("root exists");
                let f = ImageFolder::read(&dir, &sub)?;
                EvalSet::from_folder(kind, f)
            }
        };
        if let Some(m) = max_per_class {
            let mut count = vec![0usize; set.classes.len()];
            set.items.retain(|(_, l)| {
                count[*l] += 1;
                count[*l] <= m
            });
        }
        if set.items.is_empty() {
            bail!("{}: {} holds no images", set.root.display(), kind.name());
        }
        Ok(set)
    }
}

/// Read a wnid list (one per line), as `datasets/imagenet_a_wnids.txt`.
pub fn read_wnids(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read wnid list", path.display()))?;
    let w: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if w.is_empty() {
        bail!("{}: no wnids", path.display());
    }
    Ok(w)
}
