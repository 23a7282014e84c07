//! The sets read through split lists, as the reference reads them: one reader for CoOp's
//! `split_zhou_<Name>.json` (nine sets) and one for FGVCAircraft's official variant files. Each
//! split (`train`, `val`, `test`) comes back in file order with the labels and class names the
//! files state; the class list is the train split's labels in ascending order (Dassl's
//! `get_lab2cname`), never rebuilt from folder names. Everything the reference would trip on
//! later (a listed image that is not on disk, a label outside the class list, two names for one
//! label, a class without a train image) is refused here, naming the file and the entry.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use crate::classes::ClassList;
use crate::registry::{DatasetKind, Source, COOP_DATASETS_MD};
use crate::split_item::SplitItem;

/// The three splits of a split-list set.
pub const SPLITS: [&str; 3] = ["train", "val", "test"];

/// A set read from its split lists.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSet {
    pub kind: DatasetKind,
    /// The dataset folder (`…/oxford_pets`).
    pub dir: PathBuf,
    /// The folder split paths are relative to (`…/oxford_pets/images`; the dataset folder for
    /// StanfordCars; `…/fgvc_aircraft/images`).
    pub image_dir: PathBuf,
    /// The file the labels come from: the split JSON, or FGVCAircraft's `variants.txt`.
    pub source: PathBuf,
    /// Class names in label order, as the split lists state them.
    pub classnames: Vec<String>,
    pub train: Vec<SplitItem>,
    pub val: Vec<SplitItem>,
    pub test: Vec<SplitItem>,
}

impl SplitSet {
    /// Read `kind` from `root`: its dataset folder (`…/oxford_pets`) or the data root holding
    /// it (CoOp's `--root`, `…/data` with `oxford_pets/` inside).
    pub fn read(kind: DatasetKind, root: &Path) -> Result<SplitSet> {
        let dir = dataset_dir(kind, root)?;
        let set = match kind.spec().source {
            Source::SplitFile { file, prefix } => read_split_json(kind, &dir, file, prefix)?,
            Source::AircraftVariants => read_aircraft(kind, &dir)?,
            Source::ClassFolders => bail!("{kind} is read from class folders, not from split lists"),
        };
        set.check()?;
        Ok(set)
    }

    pub fn split(&self, name: &str) -> Option<&[SplitItem]> {
        match name {
            "train" => Some(&self.train),
            "val" => Some(&self.val),
            "test" => Some(&self.test),
            _ => None,
        }
    }

    /// The file of an item on this machine.
    pub fn path_of(&self, item: &SplitItem) -> PathBuf {
        self.image_dir.join(&item.path)
    }

    /// The class list: ids and names are the split list's names (underscores kept; prompts
    /// turn them into spaces).
    pub fn class_list(&self) -> ClassList {
        ClassList {
            ids: self.classnames.clone(),
            names: self.classnames.clone(),
        }
    }

    /// The count line Dassl prints at start-up, with the published sizes beside it.
    pub fn counts_line(&self) -> String {
        let p = self.kind.spec().sizes;
        let show = |n: Option<usize>| n.map_or("–".to_string(), |n| n.to_string());
        format!(
            "{}: # classes {} / # train_x {} / # val {} / # test {} (published: {} / {} / {} / {})",
            self.kind,
            self.classnames.len(),
            self.train.len(),
            self.val.len(),
            self.test.len(),
            p.classes,
            show(p.train),
            show(p.val),
            p.test
        )
    }

    /// Whether the counts are the published ones (a full download with the reference's split).
    pub fn matches_published(&self) -> bool {
        let p = self.kind.spec().sizes;
        self.classnames.len() == p.classes
            && Some(self.train.len()) == p.train
            && Some(self.val.len()) == p.val
            && self.test.len() == p.test
    }

    /// The reference's checks, made up front: every label in the class list, one name per
    /// label, every class with a train image, every listed image on disk.
    fn check(&self) -> Result<()> {
        let src = self.source.display();
        let n = self.classnames.len();
        for split in SPLITS {
            let items = self.split(split).expect("a split");
            if items.is_empty() {
                bail!("{src}: the `{split}` split lists no image");
            }
            for (i, it) in items.iter().enumerate() {
                if it.label >= n {
                    bail!(
                        "{src}: `{split}` entry {i} ({:?}) has label {}, outside the class list (labels 0..{} from the train split)",
                        it.path,
                        it.label,
                        n - 1
                    );
                }
                if it.classname != self.classnames[it.label] {
                    bail!(
                        "{src}: `{split}` entry {i} ({:?}) names label {} {:?}, the train split names it {:?}: the classes of the entries disagree",
                        it.path,
                        it.label,
                        it.classname,
                        self.classnames[it.label]
                    );
                }
            }
        }
        if !self.image_dir.is_dir() {
            bail!(
                "{}: the image folder of {} is missing (the split lists' paths are relative to it; see {COOP_DATASETS_MD})",
                self.image_dir.display(),
                self.kind
            );
        }
        let mut missing: Vec<(usize, usize)> = SPLITS
            .par_iter()
            .enumerate()
            .flat_map(|(s, split)| {
                let items = self.split(split).expect("a split");
                items
                    .par_iter()
                    .enumerate()
                    .filter(|(_, it)| !self.path_of(it).is_file())
                    .map(move |(i, _)| (s, i))
                    .collect::<Vec<_>>()
            })
            .collect();
        missing.sort();
        if let Some(&(s, i)) = missing.first() {
            let it = &self.split(SPLITS[s]).expect("a split")[i];
            bail!(
                "{src}: {} listed image(s) are not on disk (the reference asserts each exists); first: `{}` entry {i}, {}",
                missing.len(),
                SPLITS[s],
                self.path_of(it).display()
            );
        }
        Ok(())
    }
}

/// The dataset folder of `kind` under `root`: `root` itself when it holds the set's split
/// source, else `root/<folder>`; both holding one is refused, naming both.
pub fn dataset_dir(kind: DatasetKind, root: &Path) -> Result<PathBuf> {
    let spec = kind.spec();
    let marker = match spec.source {
        Source::SplitFile { file, .. } => file,
        Source::AircraftVariants => "variants.txt",
        Source::ClassFolders => bail!("{kind} is read from class folders, not from split lists"),
    };
    if !root.is_dir() {
        bail!("{}: {kind} folder not found", root.display());
    }
    let here = root.join(marker);
    let below = root.join(spec.folder).join(marker);
    match (here.is_file(), below.is_file()) {
        (true, true) => bail!(
            "{} and {} both exist: point the dataset's root at one of them",
            here.display(),
            below.display()
        ),
        (true, false) => Ok(root.to_path_buf()),
        (false, true) => Ok(root.join(spec.folder)),
        (false, false) => {
            let dir = if root.join(spec.folder).is_dir() {
                root.join(spec.folder)
            } else {
                root.to_path_buf()
            };
            bail!("{}", absent_message(kind, &dir.join(marker)))
        }
    }
}

/// Why a split source is needed and where it comes from.
fn absent_message(kind: DatasetKind, path: &Path) -> String {
    let spec = kind.spec();
    match spec.split_from {
        Some(url) => format!(
            "{}: the split file of {kind} is missing. CoOp distributes it: download it from {url} (listed in {COOP_DATASETS_MD}) into {}. \
             ntlb does not generate a split: the reference's random split depends on the seed and the directory listing, and the run \
             that generates it draws its few-shot set after the split's shuffles, so a generated split would also shift that run's draw",
            path.display(),
            path.parent().unwrap_or(Path::new(".")).display()
        ),
        None => format!(
            "{}: {kind}'s split files are missing: the dataset folder is the `data/` folder of {} (see {COOP_DATASETS_MD})",
            path.display(),
            spec.images_from
        ),
    }
}

fn read_split_json(kind: DatasetKind, dir: &Path, file: &str, prefix: &str) -> Result<SplitSet> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let obj = json
        .as_object()
        .with_context(|| format!("{}: expected an object with `train`, `val`, `test`", path.display()))?;
    let mut splits: Vec<Vec<SplitItem>> = Vec::new();
    for split in SPLITS {
        let list = obj
            .get(split)
            .with_context(|| format!("{}: no `{split}` list (expected `train`, `val`, `test`)", path.display()))?
            .as_array()
            .with_context(|| format!("{}: `{split}` is not a list", path.display()))?;
        let mut items = Vec::with_capacity(list.len());
        for (i, e) in list.iter().enumerate() {
            let bad = || format!("{}: `{split}` entry {i} is not [impath, label, classname]: {e}", path.display());
            let a = e.as_array().filter(|a| a.len() == 3).with_context(bad)?;
            let (p, l, c) = (a[0].as_str(), a[1].as_u64(), a[2].as_str());
            let (Some(p), Some(l), Some(c)) = (p, l, c) else {
                bail!("{}", bad());
            };
            items.push(SplitItem {
                path: p.to_string(),
                label: l as usize,
                classname: c.to_string(),
            });
        }
        splits.push(items);
    }
    let test = splits.pop().expect("three splits");
    let val = splits.pop().expect("three splits");
    let train = splits.pop().expect("three splits");
    let classnames = classes_of_train(&path, &train)?;
    Ok(SplitSet {
        kind,
        dir: dir.to_path_buf(),
        image_dir: if prefix.is_empty() { dir.to_path_buf() } else { dir.join(prefix) },
        source: path,
        classnames,
        train,
        val,
        test,
    })
}

/// Dassl's class list: the train split's names by ascending label; `max(label) + 1` classes.
/// A label with no train image would shift every later name onto the wrong label there: refused.
fn classes_of_train(path: &Path, train: &[SplitItem]) -> Result<Vec<String>> {
    let n = train.iter().map(|it| it.label + 1).max().unwrap_or(0);
    let mut names: Vec<Option<&str>> = vec![None; n];
    for (i, it) in train.iter().enumerate() {
        match names[it.label] {
            None => names[it.label] = Some(&it.classname),
            Some(c) if c == it.classname => {}
            Some(c) => bail!(
                "{}: `train` entry {i} ({:?}) names label {} {:?}, an earlier entry names it {c:?}: the classes of the entries disagree",
                path.display(),
                it.path,
                it.label,
                it.classname
            ),
        }
    }
    if let Some(l) = names.iter().position(Option::is_none) {
        bail!(
            "{}: class {l} has no train image (train labels run 0..{}): the class list would be renumbered, not read",
            path.display(),
            n - 1
        );
    }
    Ok(names.into_iter().map(|c| c.expect("checked").to_string()).collect())
}

/// FGVCAircraft as the reference reads it: class = a `variants.txt` line, label = its index;
/// split lines `<id> <variant words…>`, image `images/<id>.jpg`.
fn read_aircraft(kind: DatasetKind, dir: &Path) -> Result<SplitSet> {
    let variants = dir.join("variants.txt");
    let text = std::fs::read_to_string(&variants).with_context(|| format!("{}: cannot read", variants.display()))?;
    let mut classnames: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() {
            bail!("{}:{}: an empty line (every line is a class)", variants.display(), i + 1);
        }
        if let Some(j) = classnames.iter().position(|c| c == name) {
            bail!(
                "{}:{}: variant {name:?} already listed on line {}",
                variants.display(),
                i + 1,
                j + 1
            );
        }
        classnames.push(name.to_string());
    }
    let mut splits = Vec::new();
    for split in SPLITS {
        let file = dir.join(format!("images_variant_{split}.txt"));
        if !file.is_file() {
            bail!("{}", absent_message(kind, &file));
        }
        let text = std::fs::read_to_string(&file).with_context(|| format!("{}: cannot read", file.display()))?;
        let mut items = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (id, name) = line
                .split_once(' ')
                .with_context(|| format!("{}:{}: expected `<id> <variant>`: {line:?}", file.display(), i + 1))?;
            let label = classnames.iter().position(|c| c == name).with_context(|| {
                format!(
                    "{}:{}: variant {name:?} is not a line of {} ({} classes)",
                    file.display(),
                    i + 1,
                    variants.display(),
                    classnames.len()
                )
            })?;
            items.push(SplitItem {
                path: format!("{id}.jpg"),
                label,
                classname: name.to_string(),
            });
        }
        splits.push(items);
    }
    let test = splits.pop().expect("three splits");
    let val = splits.pop().expect("three splits");
    let train = splits.pop().expect("three splits");
    let mut seen = vec![false; classnames.len()];
    train.iter().for_each(|it| seen[it.label] = true);
    if let Some(l) = seen.iter().position(|s| !s) {
        bail!(
            "{}: class {l} ({:?}) has no train image in images_variant_train.txt",
            variants.display(),
            classnames[l]
        );
    }
    Ok(SplitSet {
        kind,
        dir: dir.to_path_buf(),
        image_dir: dir.join("images"),
        source: variants,
        classnames,
        train,
        val,
        test,
    })
}
