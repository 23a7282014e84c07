//! The evaluation sets: ImageNet val, ImageNet-V2, -Sketch, -A, -R from their class folders,
//! and the sets of CoOp's benchmark from their split lists (their `test` split,
//! [`crate::split_file`]). Each opens with a check that names the folder and what was expected.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::classes::ClassList;
use crate::folder::{check_no_other_folders, list_images, ImageFolder, Unreadable};
use crate::image::ImageRef;
use crate::registry::EVAL_SPLIT;
use crate::source::{Container, Format, Layout};
use crate::split_file::SplitSet;

/// The kinds and everything about them are in [`crate::registry`].
pub use crate::registry::DatasetKind;

/// A labelled evaluation set over its own class space.
#[derive(Debug, Clone)]
pub struct EvalSet {
    pub kind: DatasetKind,
    pub root: PathBuf,
    /// Class names of the label space (200 for -A/-R).
    pub classes: ClassList,
    /// (image, class index): files of a folder tree, members of shards, rows of parquet files.
    pub items: Vec<(ImageRef, usize)>,
    /// Class folders that hold no image ([`EvalSet::check_empty_classes`]); for a container, the
    /// classes no sample is labelled with.
    pub empty_classes: Vec<String>,
    /// Entries of the class folders that could not be read (counted with the images that fail
    /// to decode).
    pub unreadable: Vec<Unreadable>,
    /// The shards or parquet files the items are in, by content; `None` for a folder tree.
    pub container: Option<Container>,
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
            items: files(f.items),
            empty_classes: f.empty_classes,
            unreadable: f.unreadable,
            container: None,
        }
    }

    /// A set of image files (a benchmark's folder, a test's list).
    pub fn of_files(kind: DatasetKind, root: &Path, classes: ClassList, items: Vec<(PathBuf, usize)>) -> EvalSet {
        EvalSet {
            kind,
            root: root.to_path_buf(),
            classes,
            items: files(items),
            empty_classes: Vec::new(),
            unreadable: Vec::new(),
            container: None,
        }
    }

    /// [`EvalSet::open`] for a set stored in `layout`: a folder tree, WebDataset shards or
    /// parquet files (their indexes cached in `index_cache`). Labels of a container are in the
    /// set's own class space (200-way for -A/-R, through the wnid list as the folders are).
    #[allow(clippy::too_many_arguments)]
    pub fn open_in(
        kind: DatasetKind,
        root: &Path,
        layout: &Layout,
        imagenet: &ClassList,
        subset: Option<&[String]>,
        max_per_class: Option<usize>,
        index_cache: Option<&Path>,
    ) -> Result<EvalSet> {
        layout.check()?;
        if layout.format == Format::Folder {
            return EvalSet::open(kind, root, imagenet, subset, max_per_class);
        }
        if kind.has_split_list() {
            bail!(
                "{}: {kind} is read from its download layout (its split list names the images); `format = \"{}\"` is for the class-folder sets",
                root.display(),
                layout.format.name()
            );
        }
        if !root.exists() {
            bail!("{}: {} {} not found", root.display(), kind.name(), layout.format.name());
        }
        let classes = match kind {
            DatasetKind::ImagenetA | DatasetKind::ImagenetR => subset_classes(kind, imagenet, subset)?,
            _ => imagenet.clone(),
        };
        let o = crate::source::open_container(root, layout, false, &classes, index_cache)?;
        let mut seen = vec![false; classes.len()];
        for (_, l) in &o.items {
            seen[*l] = true;
        }
        let set = EvalSet {
            kind,
            root: root.to_path_buf(),
            empty_classes: (0..classes.len()).filter(|&i| !seen[i]).map(|i| classes.ids[i].clone()).collect(),
            classes,
            items: o.items,
            unreadable: Vec::new(),
            container: Some(o.container),
        };
        set.finish(max_per_class)
    }

    fn finish(mut self, max_per_class: Option<usize>) -> Result<EvalSet> {
        // Containers come sorted from their index, split lists keep their file's order;
        // `max_per_class` and every later subset are taken from the canonical order.
        if self.container.is_none() && !self.kind.has_split_list() {
            crate::canonical::sort_items(&mut self.items)?;
        }
        if let Some(m) = max_per_class {
            let mut count = vec![0usize; self.classes.len()];
            self.items.retain(|(_, l)| {
                count[*l] += 1;
                count[*l] <= m
            });
        }
        if self.items.is_empty() {
            bail!("{}: {} holds no images", self.root.display(), self.kind.name());
        }
        Ok(self)
    }

    /// Open `kind` at `root`. `imagenet` is the 1000-class list (wnid, name); `subset` the
    /// 200 wnids of -A or -R. `max_per_class` keeps the first N images of each class in the
    /// canonical order ([`crate::canonical`]; the reference reads 2 per class of ImageNet-V2);
    /// `None` reads everything.
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
        let set = match kind {
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
                let mut unreadable = Vec::new();
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
                    let (files, bad) = list_images(&cdir)?;
                    if files.is_empty() {
                        empty.push(label.to_string());
                    }
                    items.extend(files.into_iter().map(|f| (f, label)));
                    unreadable.extend(bad);
                }
                let n = imagenet.len();
                check_no_other_folders(&dir, n, |f| f.parse::<usize>().is_ok_and(|i| i < n && i.to_string() == f))?;
                EvalSet {
                    kind,
                    root: dir,
                    classes: imagenet.clone(),
                    items: files(items),
                    empty_classes: empty,
                    unreadable,
                    container: None,
                }
            }
            DatasetKind::ImagenetA | DatasetKind::ImagenetR => {
                let sub = subset_classes(kind, imagenet, subset)?;
                let dir = first_dir(root, &[kind.name(), ""]).expect("root exists");
                let f = ImageFolder::read(&dir, &sub)?;
                EvalSet::from_folder(kind, f)
            }
            // The class-folder kinds each have their arm above; the rest are split-list sets.
            _ => EvalSet::from_split_list(kind, root)?,
        };
        set.finish(max_per_class)
    }

    /// A split-list set's evaluation split ([`crate::registry::EVAL_SPLIT`]), in the split
    /// file's order; its root is the folder the listed paths are relative to, and its classes
    /// those of the split list (not the sweep's ImageNet list).
    fn from_split_list(kind: DatasetKind, root: &Path) -> Result<EvalSet> {
        let s = SplitSet::read(kind, root)?;
        let listed = s.split(EVAL_SPLIT).expect("a split of every split-list set");
        let classes = s.class_list();
        let mut seen = vec![false; classes.len()];
        listed.iter().for_each(|it| seen[it.label] = true);
        Ok(EvalSet {
            kind,
            items: files(listed.iter().map(|it| (s.path_of(it), it.label)).collect()),
            empty_classes: (0..classes.len()).filter(|&i| !seen[i]).map(|i| classes.ids[i].clone()).collect(),
            root: s.image_dir,
            classes,
            unreadable: Vec::new(),
            container: None,
        })
    }

    /// An evaluation set that lost classes would be scored over the classes it kept, in silence:
    /// an empty class folder is an error naming the folders unless `allowed`
    /// (`allow_empty_classes = true` in the sweep's dataset entry).
    pub fn check_empty_classes(&self, allowed: bool) -> Result<()> {
        if self.empty_classes.is_empty() || allowed {
            return Ok(());
        }
        let shown: Vec<String> = self
            .empty_classes
            .iter()
            .take(10)
            .map(|c| match &self.container {
                None if !self.kind.has_split_list() => self.root.join(c).display().to_string(),
                _ => c.clone(),
            })
            .collect();
        bail!(
            "{}: {} of its {} {} hold no image: {}{} (set `allow_empty_classes = true` in its dataset entry to evaluate without them)",
            self.kind.name(),
            self.empty_classes.len(),
            self.classes.len(),
            if self.container.is_some() || self.kind.has_split_list() {
                "classes"
            } else {
                "class folders"
            },
            shown.join(", "),
            if self.empty_classes.len() > shown.len() {
                format!(" and {} more", self.empty_classes.len() - shown.len())
            } else {
                String::new()
            }
        );
    }
}

fn files(items: Vec<(PathBuf, usize)>) -> Vec<(ImageRef, usize)> {
    items.into_iter().map(|(p, l)| (ImageRef::File(p), l)).collect()
}

/// The 200 classes of -A / -R: the wnids of `subset`, named as in the ImageNet list.
fn subset_classes(kind: DatasetKind, imagenet: &ClassList, subset: Option<&[String]>) -> Result<ClassList> {
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
    Ok(ClassList { ids, names })
}

/// Read a wnid list (one per line), as `datasets/imagenet_a_wnids.txt`.
pub fn read_wnids(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read wnid list", path.display()))?;
    let w: Vec<String> = crate::classes::without_bom(&text)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if w.is_empty() {
        bail!("{}: no wnids", path.display());
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imagenet(n: usize) -> ClassList {
        let ids: Vec<String> = (0..n).map(|i| format!("n{i:08}")).collect();
        ClassList { names: ids.clone(), ids }
    }

    /// ImageNet-V2 folders beyond the class list are refused; empty class folders are refused
    /// unless allowed, naming them.
    #[test]
    fn v2_with_other_folders_and_empty_classes() {
        let d = tempfile::tempdir().unwrap();
        for c in 0..4 {
            let dir = d.path().join(c.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            if c != 2 {
                std::fs::write(dir.join("0.jpeg"), b"x").unwrap();
            }
        }
        let set = EvalSet::open(DatasetKind::ImagenetV2, d.path(), &imagenet(4), None, None).unwrap();
        assert_eq!(set.empty_classes, ["2"]);
        set.check_empty_classes(true).unwrap();
        let e = set.check_empty_classes(false).unwrap_err().to_string();
        assert!(
            e.contains(&d.path().join("2").display().to_string()) && e.contains("allow_empty_classes"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            EvalSet::open(DatasetKind::ImagenetV2, d.path(), &imagenet(3), None, None).unwrap_err()
        );
        assert!(e.contains("folder `3` is not a class of the list (3 classes)"), "{e}");
        std::fs::create_dir_all(d.path().join("04")).unwrap();
        let e = format!(
            "{:#}",
            EvalSet::open(DatasetKind::ImagenetV2, d.path(), &imagenet(4), None, None).unwrap_err()
        );
        assert!(e.contains("folder `04`"), "{e}");
    }
}
