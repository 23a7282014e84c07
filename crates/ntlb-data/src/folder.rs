//! Image folders in the ImageNet layouts: `<root>/images/<split>/<wnid>/` (CoOp) or
//! `<root>/<split>/<wnid>/` (torchvision). Listing is sorted, so item order is reproducible.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::classes::ClassList;

/// Extensions read as images (case-insensitive); other files (README.txt, …) are ignored.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

pub fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

#[derive(Debug, Clone)]
pub struct ImageFolder {
    pub root: PathBuf,
    pub classes: ClassList,
    /// (file, class index), sorted by class then file name.
    pub items: Vec<(PathBuf, usize)>,
    /// Class folders that hold no image.
    pub empty_classes: Vec<String>,
}

impl ImageFolder {
    /// Read `<dir>/<class id>/*` for every class of `classes`; a missing class folder is an error
    /// naming it.
    pub fn read(dir: &Path, classes: &ClassList) -> Result<ImageFolder> {
        if !dir.is_dir() {
            bail!("{}: dataset folder not found", dir.display());
        }
        let mut items = Vec::new();
        let mut empty = Vec::new();
        for (label, id) in classes.ids.iter().enumerate() {
            let cdir = dir.join(id);
            if !cdir.is_dir() {
                bail!(
                    "{}: class folder `{id}` (class {label}, {:?}) is missing",
                    dir.display(),
                    classes.names[label]
                );
            }
            let mut files: Vec<PathBuf> = std::fs::read_dir(&cdir)
                .with_context(|| format!("{}: cannot list", cdir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            files.sort();
            if files.is_empty() {
                empty.push(id.clone());
            }
            items.extend(files.into_iter().map(|f| (f, label)));
        }
        Ok(ImageFolder {
            root: dir.to_path_buf(),
            classes: classes.clone(),
            items,
            empty_classes: empty,
        })
    }

    /// An ImageNet split in the CoOp layout (`images/<split>`) or the torchvision one (`<split>`).
    pub fn imagenet(root: &Path, split: &str, classes: &ClassList) -> Result<ImageFolder> {
        let coop = root.join("images").join(split);
        let plain = root.join(split);
        let dir = if coop.is_dir() {
            coop
        } else if plain.is_dir() {
            plain
        } else {
            bail!(
                "{}: no ImageNet `{split}` split: expected {} (CoOp layout) or {} (torchvision layout)",
                root.display(),
                coop.display(),
                plain.display()
            );
        };
        ImageFolder::read(&dir, classes)
    }
}
