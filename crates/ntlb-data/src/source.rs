//! How a dataset is stored: a folder tree (CoOp's and torchvision's layouts), WebDataset shards
//! (CLIP_benchmark's layout, [`crate::wds`]) or Hugging Face parquet files ([`crate::parquet`]).
//! Containers are indexed once (member → shard, offset, size; row → file; labels), the index
//! cached under the feature cache by the files' names, sizes and content digests; their samples
//! are [`ImageRef`]s read in place.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::classes::ClassList;
use crate::folder::{ImageFolder, Unreadable};
use crate::image::ImageRef;
use crate::index::INDEX_SCHEME;
use ntlb_core::image::ImageBytes;

pub use crate::index::{Format, Index, IndexedFile, Label, Sample};

/// The storage settings of a dataset entry; every one has the layout's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Layout {
    pub format: Format,
    /// The split to read: wds `test` / `train`, parquet `validation` / `train` by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// wds: the image extension (default: the first of webp, png, jpg, jpeg the sample holds);
    /// parquet: the image column (default `image`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_key: Option<String>,
    /// wds: the label extension (default `cls`); parquet: the label column (default `label`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_key: Option<String>,
}

impl Layout {
    pub fn is_folder(&self) -> bool {
        *self == Layout::default()
    }

    /// Settings that a folder tree has no use for are refused rather than ignored.
    pub fn check(&self) -> Result<()> {
        if self.format == Format::Folder {
            for (k, v) in [
                ("split", &self.split),
                ("image_key", &self.image_key),
                ("label_key", &self.label_key),
            ] {
                if v.is_some() {
                    bail!("`{k}` is set but the format is `folder` (it applies to format = \"wds\" or \"parquet\")");
                }
            }
        }
        Ok(())
    }

    pub fn split(&self, train: bool) -> String {
        if let Some(s) = &self.split {
            return s.clone();
        }
        match (self.format, train) {
            (_, true) => "train".into(),
            (Format::Parquet, false) => crate::parquet::EVAL_SPLIT.into(),
            _ => crate::wds::EVAL_SPLIT.into(),
        }
    }

    fn image_keys(&self) -> Vec<String> {
        match (&self.image_key, self.format) {
            (Some(k), _) => vec![k.clone()],
            (None, Format::Parquet) => vec![crate::parquet::IMAGE_KEY.into()],
            (None, _) => crate::wds::IMAGE_KEYS.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn label_key(&self) -> String {
        match (&self.label_key, self.format) {
            (Some(k), _) => k.clone(),
            (None, Format::Parquet) => crate::parquet::LABEL_KEY.into(),
            (None, _) => crate::wds::LABEL_KEY.into(),
        }
    }
}

/// A container set by content: its format, files (names relative to its root, sizes, digests)
/// and sample count. With the (sample, label) list it enters the feature-cache and job keys, so a
/// re-sharded copy is never taken for another set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub format: Format,
    pub files: Vec<IndexedFile>,
    pub samples: usize,
}

impl Container {
    /// SHA-256 over the format, the files, the sample count, then every item (its name
    /// relative to `root`, label, and a member's size), in order.
    pub fn sha256(&self, root: &Path, items: &[(ImageRef, usize)]) -> String {
        let mut text = format!("{}\n{} files\n", self.format.name(), self.files.len());
        for f in &self.files {
            text += &format!("{}\t{}\t{}\n", f.name, f.size, f.sha256);
        }
        text += &format!("{} samples\n", self.samples);
        for (r, l) in items {
            let name = r.relative_to(root).image_name();
            let name: Vec<String> = name.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            let size = match r {
                ImageRef::Member { size, .. } => size.to_string(),
                _ => "-".into(),
            };
            text += &format!("{}\t{l}\t{size}\n", name.join("/"));
        }
        ntlb_core::digest::sha256_bytes(text.as_bytes())
    }

    pub fn describe(&self) -> String {
        let unit = if self.format == Format::Wds { "shard" } else { "file" };
        format!("{} {} {unit}(s), {} samples", self.format.name(), self.files.len(), self.samples)
    }
}

fn rel_name(root: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(root).unwrap_or(p);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The index of `files` (under `root`), from the cache in `cache` when it holds one for these
/// files (names, sizes, content digests) and settings, else built and saved atomically. A
/// cached index that does not parse is reported, moved aside to `<name>.damaged` and rebuilt.
pub fn load_index(root: &Path, files: &[PathBuf], layout: &Layout, cache: Option<&Path>) -> Result<Index> {
    let image_keys = layout.image_keys();
    let label_key = layout.label_key();
    // By content, not by size and time: a file rewritten in place with its time kept (a copy
    // that preserves times, a tool that restores them) would be read with another's labels.
    // Hashing reads each file once, far less than decoding its images (datasets/README.md); the
    // digests are remembered beside the cache by the files' stamps, so a set is read in full
    // again only where a file changed.
    let mut memo = ntlb_core::digest::DigestMemo::open(cache.map(|c| c.join("digests.json")).as_deref());
    let hashed: Vec<(IndexedFile, _)> = files
        .par_iter()
        .map(|f| {
            let size = std::fs::metadata(f).with_context(|| format!("{}: cannot read", f.display()))?.len();
            let (sha256, fresh) = memo.sha256(f).with_context(|| format!("{}: cannot read", f.display()))?;
            Ok((
                IndexedFile {
                    name: rel_name(root, f),
                    size,
                    sha256,
                },
                (f, fresh),
            ))
        })
        .collect::<Result<_>>()?;
    let mut indexed = Vec::with_capacity(hashed.len());
    for (file, (f, fresh)) in hashed {
        memo.remember(f, &file.sha256, fresh);
        indexed.push(file);
    }
    memo.save()?;
    let id = ntlb_core::digest::sha256_bytes(
        serde_json::to_string(&(INDEX_SCHEME, layout.format, &image_keys, &label_key, &indexed))?.as_bytes(),
    );
    let path = cache.map(|c| c.join(format!("{}.index.json", &id[..20])));
    if let Some(p) = path.as_ref().filter(|p| p.exists()) {
        let read = std::fs::read(p)
            .map_err(anyhow::Error::from)
            .and_then(|b| serde_json::from_slice::<Index>(&b).map_err(anyhow::Error::from));
        match read {
            Ok(ix) if ix.scheme == INDEX_SCHEME && ix.format == layout.format && ix.files == indexed => return Ok(ix),
            Ok(_) => {}
            Err(e) => {
                let to =
                    ntlb_core::damaged::set_aside(p).with_context(|| format!("{}: cannot move the damaged index aside", p.display()))?;
                eprintln!(
                    "{}: damaged dataset index ({e}); moved to {}, indexing {} again",
                    p.display(),
                    to.display(),
                    root.display()
                );
            }
        }
    }
    let per_file: Vec<Vec<Sample>> = files
        .par_iter()
        .enumerate()
        .map(|(i, f)| match layout.format {
            Format::Wds => crate::wds::index_shard(f, i as u32, &image_keys, &label_key),
            Format::Parquet => {
                let mut samples = crate::parquet::index_file(f, i as u32, &image_keys[0], &label_key)?;
                let sizes = row_sizes(f, &image_keys[0])?;
                if sizes.len() != samples.len() {
                    bail!("{}: {} labels but {} images", f.display(), samples.len(), sizes.len());
                }
                for (s, n) in samples.iter_mut().zip(sizes) {
                    s.size = n;
                }
                Ok(samples)
            }
            Format::Folder => unreachable!("folders are walked, not indexed"),
        })
        .collect::<Result<_>>()?;
    let ix = Index {
        scheme: INDEX_SCHEME,
        format: layout.format,
        files: indexed,
        samples: per_file.into_iter().flatten().collect(),
    };
    if let Some(p) = &path {
        std::fs::create_dir_all(p.parent().expect("in the cache folder"))?;
        ntlb_core::atomic::write_atomic(p, &serde_json::to_vec(&ix)?).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(ix)
}

/// The size in bytes of every row's image in `file` (0 for a null image: it fails when read).
/// The image column is read whole, once, when the file is indexed.
fn row_sizes(file: &Path, column: &str) -> Result<Vec<u64>> {
    use polars::prelude::*;
    let f = std::fs::File::open(file).with_context(|| format!("{}: cannot open", file.display()))?;
    let df = ParquetReader::new(f)
        .read_parallel(ParallelStrategy::None)
        .with_columns(Some(vec![column.to_string()]))
        .finish()
        .map_err(|e| anyhow::anyhow!("{}: cannot read column `{column}`: {e}", file.display()))?;
    let s = df.column(column)?.as_materialized_series().clone();
    let bytes = match s.dtype() {
        DataType::Struct(_) => s.struct_()?.field_by_name("bytes")?,
        _ => s,
    };
    let b = bytes
        .binary()
        .map_err(|e| anyhow::anyhow!("{}: column `{column}`: {e}", file.display()))?;
    Ok((0..b.len()).map(|i| b.get(i).map_or(0, |x| x.len() as u64)).collect())
}

/// A container's `classnames.txt` (one name per line, label order) must be the class list's
/// names, in count and order: a shard labelled in another order would be scored against the
/// wrong classes. The error names the first line that differs.
pub fn check_classnames(file: &Path, classes: &ClassList) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let names: Vec<&str> = crate::classes::without_bom(&text)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if names.len() != classes.len() {
        bail!(
            "{}: {} class names, the class list has {} classes: the shards are labelled over another class list",
            file.display(),
            names.len(),
            classes.len()
        );
    }
    if let Some(i) = (0..names.len()).find(|&i| names[i] != classes.names[i]) {
        bail!(
            "{}:{}: class {i} is `{}`, the class list says `{}` ({}): labels and class list disagree",
            file.display(),
            i + 1,
            names[i],
            classes.names[i],
            classes.ids[i]
        );
    }
    Ok(())
}

/// The samples of a container set, labelled in the space of `classes`.
#[derive(Debug, Clone)]
pub struct Opened {
    pub items: Vec<(ImageRef, usize)>,
    pub container: Container,
}

/// Open the `train` (or evaluation) split of a wds or parquet set at `root`, labels checked
/// against `classes` (an index out of range, or a class id not in the list, is an error naming
/// the shard or file and the member or row); items in the canonical order
/// ([`crate::canonical`]), not in storage order.
pub fn open_container(root: &Path, layout: &Layout, train: bool, classes: &ClassList, cache: Option<&Path>) -> Result<Opened> {
    let split = layout.split(train);
    let files = match layout.format {
        Format::Wds => crate::wds::shard_files(&root.join(&split))?,
        Format::Parquet => crate::parquet::parquet_files(root, &split)?,
        Format::Folder => bail!("{}: a folder tree is not a container", root.display()),
    };
    let base = if root.is_file() {
        root.parent().unwrap_or(Path::new(""))
    } else {
        root
    };
    if layout.format == Format::Wds {
        let names = root.join("classnames.txt");
        if names.exists() {
            check_classnames(&names, classes)?;
        }
    }
    let ix = load_index(base, &files, layout, cache)?;
    let column = layout.image_keys()[0].clone();
    let label_key = layout.label_key();
    let n = classes.len();
    let mut items = Vec::with_capacity(ix.samples.len());
    let sizes: Vec<u64> = ix.samples.iter().map(|s| s.size).collect();
    for s in &ix.samples {
        let file = &files[s.file as usize];
        let r = sample_ref(s, file, layout.format, &column);
        let what = match layout.format {
            Format::Wds => {
                let key = crate::wds::split_name(&s.name).map_or(s.name.as_str(), |(k, _)| k);
                format!("member `{key}.{label_key}`")
            }
            _ => format!("row {} (`{label_key}`)", s.at),
        };
        let label = match &s.label {
            Label::Index(i) if *i >= 0 && (*i as usize) < n => *i as usize,
            Label::Index(i) => bail!(
                "{}: {what} holds class {i}, the class list has {n} classes (0..{})",
                file.display(),
                n - 1
            ),
            Label::Name(id) => classes.ids.iter().position(|x| x == id).with_context(|| {
                format!(
                    "{}: {what} holds `{id}`, which is no class id of the list ({n} classes)",
                    file.display()
                )
            })?,
        };
        items.push((r, label));
    }
    crate::canonical::sort_items_sized(&mut items, sizes);
    Ok(Opened {
        container: Container {
            format: layout.format,
            files: ix.files.clone(),
            samples: ix.samples.len(),
        },
        items,
    })
}

fn sample_ref(s: &Sample, file: &Path, format: Format, column: &str) -> ImageRef {
    match format {
        Format::Wds => ImageRef::Member {
            shard: file.to_path_buf(),
            offset: s.at,
            size: s.size,
            name: s.name.clone(),
        },
        _ => ImageRef::Row {
            file: file.to_path_buf(),
            row: s.at,
            column: column.to_string(),
        },
    }
}

/// Every image of a container's split, unlabelled (for tools that read images only, as
/// `ntlb bench pipeline`).
pub fn container_images(root: &Path, layout: &Layout) -> Result<Vec<ImageRef>> {
    let split = layout.split(false);
    let files = match layout.format {
        Format::Wds => crate::wds::shard_files(&root.join(&split))?,
        Format::Parquet => crate::parquet::parquet_files(root, &split)?,
        Format::Folder => bail!("{}: a folder tree is not a container", root.display()),
    };
    let base = if root.is_file() {
        root.parent().unwrap_or(Path::new(""))
    } else {
        root
    };
    let ix = load_index(base, &files, layout, None)?;
    let column = layout.image_keys()[0].clone();
    Ok(ix
        .samples
        .iter()
        .map(|s| sample_ref(s, &files[s.file as usize], layout.format, &column))
        .collect())
}

/// The images one-shot (few-shot) training draws from: the `train` split of a folder tree or
/// of a container set.
#[derive(Debug, Clone)]
pub struct TrainSet {
    pub root: PathBuf,
    /// The dataset's folder as given (`root` is its training images' folder): upstream CoOp's
    /// cached draws are in its `split_fewshot/`.
    pub dataset_root: PathBuf,
    pub classes: ClassList,
    /// (image, class index), in the canonical order ([`crate::canonical`]) whatever the storage.
    pub items: Vec<(ImageRef, usize)>,
    /// Entries of the class folders that could not be read (folders only).
    pub unreadable: Vec<Unreadable>,
    /// The container's identity; `None` for a folder tree.
    pub container: Option<Container>,
}

impl From<ImageFolder> for TrainSet {
    fn from(f: ImageFolder) -> TrainSet {
        TrainSet {
            dataset_root: f.root.clone(),
            root: f.root,
            classes: f.classes,
            items: f.items.into_iter().map(|(p, l)| (ImageRef::File(p), l)).collect(),
            unreadable: f.unreadable,
            container: None,
        }
    }
}

impl TrainSet {
    /// The ImageNet `train` split at `root` in `layout`; container indexes cached in `cache`.
    pub fn open(root: &Path, layout: &Layout, classes: &ClassList, cache: Option<&Path>) -> Result<TrainSet> {
        layout.check()?;
        if layout.format == Format::Folder {
            let mut t: TrainSet = ImageFolder::imagenet(root, "train", classes)?.into();
            t.dataset_root = root.to_path_buf();
            crate::canonical::sort_items(&mut t.items)?;
            return Ok(t);
        }
        let o = open_container(root, layout, true, classes, cache)?;
        Ok(TrainSet {
            dataset_root: root.to_path_buf(),
            root: root.to_path_buf(),
            classes: classes.clone(),
            items: o.items,
            unreadable: Vec::new(),
            container: Some(o.container),
        })
    }
}
