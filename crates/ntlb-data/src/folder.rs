//! Image folders in the ImageNet layouts: `<root>/images/<split>/<wnid>/` (CoOp),
//! `<root>/<split>/<wnid>/` (torchvision) or `<root>/data/raw/{training,validation}/<wnid>/`
//! (the NTLB reference). Listing is sorted, so item order is reproducible.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::classes::ClassList;

/// Extensions read as images (case-insensitive); other files (README.txt, …) are ignored.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp"];

pub fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// An entry of a class folder that could not be read (a symlink loop, a dangling link, no
/// permission to look at it): its path and why. Counted with the images that fail to decode
/// (`failed_images`), never dropped.
pub type Unreadable = (PathBuf, String);

/// The images of one class folder, sorted, and the entries that could not be read. Files that
/// are not images by name (README.txt, …) and sub-folders are not read.
pub fn list_images(dir: &Path) -> Result<(Vec<PathBuf>, Vec<Unreadable>)> {
    let (mut files, mut unreadable) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))? {
        let p = match e {
            Ok(e) => e.path(),
            Err(err) => {
                unreadable.push((dir.to_path_buf(), format!("cannot list an entry: {err}")));
                continue;
            }
        };
        // Followed through symlinks, as the images are read.
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => {
                if is_image(&p) {
                    files.push(p);
                }
            }
            Ok(_) => {}
            Err(err) => unreadable.push((p, format!("cannot read: {err}"))),
        }
    }
    files.sort();
    unreadable.sort();
    Ok((files, unreadable))
}

/// Every folder in `dir` must be a class of the list (`is_class`): a class list shorter than
/// the folders would leave a class out in silence. Hidden entries (`.name`) are not classes.
pub fn check_no_other_folders(dir: &Path, n_classes: usize, is_class: impl Fn(&str) -> bool) -> Result<()> {
    // An entry the listing cannot read might be a folder the list lacks: an error, not skipped.
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))? {
        let n = e
            .with_context(|| format!("{}: cannot list an entry", dir.display()))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !n.starts_with('.') && !is_class(&n) {
            names.push(n);
        }
    }
    names.sort();
    let mut other = Vec::new();
    for n in names {
        match std::fs::metadata(dir.join(&n)) {
            Ok(m) if m.is_dir() => other.push(n),
            Ok(_) => {}
            Err(err) => bail!("{}: cannot read ({err}), and it is not a class of the list", dir.join(&n).display()),
        }
    }
    if let Some(first) = other.first() {
        bail!(
            "{}: folder `{first}` is not a class of the list ({n_classes} classes){}: the class list and the folders disagree",
            dir.display(),
            match other.len() {
                1 => String::new(),
                k => format!(", nor are {} more", k - 1),
            }
        );
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct ImageFolder {
    pub root: PathBuf,
    pub classes: ClassList,
    /// (file, class index), sorted by class then file name.
    pub items: Vec<(PathBuf, usize)>,
    /// Class folders that hold no image.
    pub empty_classes: Vec<String>,
    /// Entries of the class folders that could not be read.
    pub unreadable: Vec<Unreadable>,
}

impl ImageFolder {
    /// Read `<dir>/<class id>/*` for every class of `classes`; a missing class folder, or a
    /// folder that is no class of the list, is an error naming it.
    pub fn read(dir: &Path, classes: &ClassList) -> Result<ImageFolder> {
        if !dir.is_dir() {
            bail!("{}: dataset folder not found", dir.display());
        }
        let mut items = Vec::new();
        let mut empty = Vec::new();
        let mut unreadable = Vec::new();
        for (label, id) in classes.ids.iter().enumerate() {
            let cdir = dir.join(id);
            if !cdir.is_dir() {
                bail!(
                    "{}: class folder `{id}` (class {label}, {:?}) is missing",
                    dir.display(),
                    classes.names[label]
                );
            }
            let (files, bad) = list_images(&cdir)?;
            if files.is_empty() {
                empty.push(id.clone());
            }
            items.extend(files.into_iter().map(|f| (f, label)));
            unreadable.extend(bad);
        }
        let ids: std::collections::HashSet<&str> = classes.ids.iter().map(String::as_str).collect();
        check_no_other_folders(dir, classes.len(), |n| ids.contains(n))?;
        Ok(ImageFolder {
            root: dir.to_path_buf(),
            classes: classes.clone(),
            items,
            empty_classes: empty,
            unreadable,
        })
    }

    /// An ImageNet split (`train` or `val`) in the layout it is found in: upstream CoOp's
    /// `images/<split>`, torchvision's `<split>`, or the NTLB reference's
    /// `data/raw/{training,validation}`. Two of them at one root are refused, naming both: which
    /// one a run read would otherwise depend on an order of preference nobody sees.
    pub fn imagenet(root: &Path, split: &str, classes: &ClassList) -> Result<ImageFolder> {
        let reference = match split {
            "train" => "training",
            "val" => "validation",
            other => other,
        };
        let candidates = [
            (root.join("images").join(split), "upstream CoOp layout"),
            (root.join(split), "torchvision layout"),
            (root.join("data/raw").join(reference), "NTLB reference layout"),
        ];
        let found: Vec<&(PathBuf, &str)> = candidates.iter().filter(|(p, _)| p.is_dir()).collect();
        let dir = match found.as_slice() {
            [(p, _)] => p.clone(),
            [] => bail!(
                "{}: no ImageNet `{split}` split: expected {}",
                root.display(),
                candidates
                    .iter()
                    .map(|(p, what)| format!("{} ({what})", p.display()))
                    .collect::<Vec<_>>()
                    .join(", or ")
            ),
            more => bail!(
                "{}: the ImageNet `{split}` split is in more than one layout: {}; keep one (or point the root at one)",
                root.display(),
                more.iter()
                    .map(|(p, what)| format!("{} ({what})", p.display()))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        };
        ImageFolder::read(&dir, classes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(ids: &[&str]) -> ClassList {
        ClassList {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            names: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn tree(root: &Path, ids: &[&str]) {
        for c in ids {
            std::fs::create_dir_all(root.join(c)).unwrap();
            std::fs::write(root.join(c).join("0.jpg"), b"x").unwrap();
        }
    }

    #[test]
    fn webp_files_are_images_as_jpeg_and_png_are() {
        for name in ["a.webp", "b.WEBP", "c.jpg", "d.JPEG", "e.png"] {
            assert!(is_image(Path::new(name)), "{name}");
        }
        assert!(!is_image(Path::new("README.txt")));
    }

    /// A class list shorter than the folders names the first folder it lacks; a longer one
    /// names the class without a folder.
    #[test]
    fn the_class_list_and_the_folders_agree() {
        let d = tempfile::tempdir().unwrap();
        tree(d.path(), &["a", "b", "c"]);
        std::fs::create_dir_all(d.path().join(".hidden")).unwrap();
        std::fs::write(d.path().join("README.txt"), b"x").unwrap();
        assert_eq!(ImageFolder::read(d.path(), &classes(&["a", "b", "c"])).unwrap().items.len(), 3);
        let e = format!("{:#}", ImageFolder::read(d.path(), &classes(&["a", "c"])).unwrap_err());
        assert!(e.contains("folder `b` is not a class of the list (2 classes)"), "{e}");
        let e = format!("{:#}", ImageFolder::read(d.path(), &classes(&["a"])).unwrap_err());
        assert!(e.contains("folder `b`") && e.contains("nor are 1 more"), "{e}");
        let e = format!("{:#}", ImageFolder::read(d.path(), &classes(&["a", "b", "c", "d"])).unwrap_err());
        assert!(e.contains("class folder `d`") && e.contains("missing"), "{e}");
    }

    /// A symlink loop or a dangling link in a class folder is counted as unreadable, not dropped.
    #[cfg(unix)]
    #[test]
    fn unreadable_entries_are_counted() {
        let d = tempfile::tempdir().unwrap();
        tree(d.path(), &["a", "b"]);
        let lp = d.path().join("a/loop.jpg");
        std::os::unix::fs::symlink(&lp, &lp).unwrap();
        std::os::unix::fs::symlink(d.path().join("nowhere.png"), d.path().join("b/dangling.png")).unwrap();
        let f = ImageFolder::read(d.path(), &classes(&["a", "b"])).unwrap();
        assert_eq!(f.items.len(), 2);
        let bad: Vec<&PathBuf> = f.unreadable.iter().map(|(p, _)| p).collect();
        assert_eq!(bad, [&lp, &d.path().join("b/dangling.png")], "{:?}", f.unreadable);
    }
}
