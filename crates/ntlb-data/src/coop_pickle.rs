//! Upstream CoOp's cached few-shot draws, `<dataset folder>/split_fewshot/shot_K-seed_S.pkl`: a
//! pickle (protocol 2 to 5) of `{"train": [...], "val": [...]}` (ImageNet: `train` only), lists
//! of Dassl `Datum` objects holding the absolute image paths of the machine that wrote it. Read
//! here without Python: the workspace's pickle reader (`ntlb_core::pickle`) gives the value
//! tree (an opcode such a file never holds is an error naming it and its offset), the lists
//! and `Datum` attributes are read off it, then the paths mapped onto this machine's copy of
//! the set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ntlb_core::pickle::{self, Made, Value};

/// The module and class a cached draw's items must be.
pub const DATUM_CLASS: (&str, &str) = ("dassl.data.datasets.base_dataset", "Datum");

/// One pickled `Datum`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datum {
    pub impath: String,
    pub label: i64,
    pub domain: Option<i64>,
    pub classname: String,
}

/// A cached draw as read: its file and SHA-256 (what a run record names), and its lists.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedDraw {
    pub file: PathBuf,
    pub sha256: String,
    pub train: Vec<Datum>,
    /// `None` when the file holds no `val` list (upstream writes none for ImageNet).
    pub val: Option<Vec<Datum>>,
}

/// Where upstream CoOp keeps the draw of `shots` and `seed` for the set in `dataset_dir`.
pub fn cache_file(dataset_dir: &Path, shots: usize, seed: u64) -> PathBuf {
    dataset_dir.join("split_fewshot").join(format!("shot_{shots}-seed_{seed}.pkl"))
}

impl CachedDraw {
    pub fn read(file: &Path) -> Result<CachedDraw> {
        let bytes = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
        let v = pickle::read(&bytes).map_err(|e| {
            let e = match e {
                pickle::Error::Opcode { op, at } => format!("opcode 0x{op:02x} at byte {at}, which a cached draw does not hold"),
                e => e.to_string(),
            };
            anyhow!("{}: not a pickle this reader takes: {e}", file.display())
        })?;
        let what = || {
            format!(
                "{}: not a cached few-shot draw (a dict of `train`/`val` lists of Dassl Datum objects)",
                file.display()
            )
        };
        let Value::Dict(d) = &v else {
            bail!("{}; it holds {}", what(), v.kind())
        };
        let list = |key: &str| -> Result<Option<Vec<Datum>>> {
            let Some(l) = v.get(key) else { return Ok(None) };
            let Value::List(items) = &l else {
                bail!("{}; its `{key}` is {}", what(), l.kind())
            };
            let items = items.borrow();
            items
                .iter()
                .enumerate()
                .map(|(i, x)| datum(x).map_err(|e| anyhow!("{}; `{key}`[{i}]: {e}", what())))
                .collect::<Result<Vec<_>>>()
                .map(Some)
        };
        let train = list("train")?.with_context(|| format!("{}; it has no `train` list", what()))?;
        for (k, _) in d.borrow().iter() {
            match k {
                Value::Str(k) if k == "train" || k == "val" => {}
                Value::Str(k) => bail!("{}; it holds an unexpected key `{k}`", what()),
                k => bail!("{}; it holds a key that is {}", what(), k.kind()),
            }
        }
        Ok(CachedDraw {
            file: file.to_path_buf(),
            sha256: ntlb_core::digest::sha256_bytes(&bytes),
            val: list("val")?,
            train,
        })
    }
}

fn datum(x: &Value) -> Result<Datum, String> {
    let Value::Object(o) = x else {
        return Err(format!("{}, not a Datum", x.kind()));
    };
    let o = o.borrow();
    if o.made != Made::New || (o.module.as_str(), o.name.as_str()) != DATUM_CLASS {
        return Err(format!("{}, not a {}.{}", x.kind(), DATUM_CLASS.0, DATUM_CLASS.1));
    }
    let Some(attrs @ Value::Dict(d)) = &o.state else {
        return Err("a Datum without its attributes".into());
    };
    if let Some((k, _)) = d.borrow().iter().find(|(k, _)| !matches!(k, Value::Str(_))) {
        return Err(format!("a Datum attribute named by {}", k.kind()));
    }
    let text = |k: &str| match attrs.get(k) {
        Some(Value::Str(s)) => Ok(s),
        Some(o) => Err(format!("Datum `{k}` is {}, not a str", o.kind())),
        None => Err(format!("Datum has no `{k}`")),
    };
    let int = |k: &str| match attrs.get(k) {
        Some(Value::Int(i)) => Ok(Some(i)),
        Some(o) => Err(format!("Datum `{k}` is {}, not an int", o.kind())),
        None => Ok(None),
    };
    Ok(Datum {
        impath: text("_impath")?,
        label: int("_label")?.ok_or("Datum has no `_label`")?,
        domain: int("_domain")?,
        classname: text("_classname")?,
    })
}

/// Map a cached list onto this machine's items: each `impath` becomes the item whose relative
/// path (`rel`, `/`-separated) is the longest ending of it, and must carry the same label. A
/// path that maps onto nothing, or onto an image of another class, is an error naming the
/// pickle and the path.
pub fn map_onto<T: Clone>(
    file: &Path,
    datums: &[Datum],
    local: &[T],
    rel: impl Fn(&T) -> String,
    label: impl Fn(&T) -> usize,
    root: &Path,
) -> Result<Vec<T>> {
    let by_path: HashMap<String, usize> = local.iter().enumerate().map(|(i, t)| (rel(t), i)).collect();
    datums
        .iter()
        .map(|d| {
            let parts: Vec<&str> = d.impath.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
            let hit = (0..parts.len()).find_map(|i| by_path.get(&parts[i..].join("/")));
            let Some(&i) = hit else {
                bail!(
                    "{}: `{}` is no image of {} (no ending of the path is a listed image{}): a draw cached for another copy of the set",
                    file.display(),
                    d.impath,
                    root.display(),
                    local.first().map(|t| format!(", such as `{}`", rel(t))).unwrap_or_default()
                );
            };
            if label(&local[i]) as i64 != d.label {
                bail!(
                    "{}: `{}` is class {} in the pickle, class {} here ({}): the classes disagree",
                    file.display(),
                    d.impath,
                    d.label,
                    label(&local[i]),
                    rel(&local[i])
                );
            }
            Ok(local[i].clone())
        })
        .collect()
}
