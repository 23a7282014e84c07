//! Hugging Face parquet files (`ILSVRC/imagenet-1k`: `data/{train,validation}-NNNNN-of-NNNNN.parquet`,
//! an `image` struct {`bytes`, `path`} holding the original file and an integer `label` in
//! ILSVRC order), read through polars. Indexing reads the label column only; an image is read
//! with the row group that holds it (a few row groups are kept, so a pass in file order decodes
//! each group once).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{bail, Context, Result};
use polars::prelude::*;
use polars_arrow::array::PrimitiveArray;

use crate::index::{Label, Sample};

pub const IMAGE_KEY: &str = "image";
pub const LABEL_KEY: &str = "label";
/// The Hugging Face name of the evaluation split.
pub const EVAL_SPLIT: &str = "validation";

/// `-NNNNN-of-NNNNN` at the end of a file stem: (index, count).
fn numbered(stem: &str) -> Option<(usize, usize)> {
    let (head, total) = stem.rsplit_once("-of-")?;
    let (_, index) = head.rsplit_once('-')?;
    Some((index.parse().ok()?, total.parse().ok()?))
}

/// The parquet files of a split: `root` itself when it is a file, else the first of
/// `<root>/data/<split>-*.parquet`, `<root>/<split>-*.parquet`, `<root>/<split>/*.parquet`,
/// `<root>/data/<split>/*.parquet` that holds any, sorted. Files numbered `-i-of-n` must be
/// all n of them.
pub fn parquet_files(root: &Path, split: &str) -> Result<Vec<PathBuf>> {
    if root.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    if !root.is_dir() {
        bail!("{}: parquet dataset not found", root.display());
    }
    let prefix = format!("{split}-");
    let candidates = [
        (root.join("data"), Some(prefix.as_str())),
        (root.to_path_buf(), Some(prefix.as_str())),
        (root.join(split), None),
        (root.join("data").join(split), None),
    ];
    for (dir, prefix) in &candidates {
        let Ok(rd) = std::fs::read_dir(dir) else { continue };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                name.ends_with(".parquet") && prefix.is_none_or(|pre| name.starts_with(pre))
            })
            .collect();
        if files.is_empty() {
            continue;
        }
        files.sort();
        check_numbering(dir, &files)?;
        return Ok(files);
    }
    bail!(
        "{}: no parquet files of split `{split}` (looked for {})",
        root.display(),
        candidates
            .iter()
            .map(|(d, p)| d.join(format!("{}*.parquet", p.unwrap_or(""))).display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn check_numbering(dir: &Path, files: &[PathBuf]) -> Result<()> {
    let nums: Vec<Option<(usize, usize)>> = files
        .iter()
        .map(|p| numbered(&p.file_stem().unwrap_or_default().to_string_lossy()))
        .collect();
    let Some(Some((_, total))) = nums.first() else { return Ok(()) };
    for (p, n) in files.iter().zip(&nums) {
        match n {
            Some((_, t)) if t == total => {}
            _ => bail!(
                "{}: {} does not belong to the {total} files numbered -NNNNN-of-{total:05} beside it",
                dir.display(),
                p.display()
            ),
        }
    }
    if let Some(i) = (0..*total).find(|i| !nums.iter().any(|n| n.is_some_and(|(j, _)| j == *i))) {
        bail!(
            "{}: the files say there are {total} of them, {} are here; file {i:05}-of-{total:05} is missing",
            dir.display(),
            files.len()
        );
    }
    Ok(())
}

fn reader(path: &Path) -> Result<ParquetReader<File>> {
    Ok(ParquetReader::new(
        File::open(path).with_context(|| format!("{}: cannot open", path.display()))?,
    ))
}

/// The polars schema of a parquet file; a file that is no parquet file is an error naming it.
fn schema(path: &Path) -> Result<Schema> {
    let arrow = reader(path)?
        .schema()
        .map_err(|e| anyhow::anyhow!("{}: not a parquet file ({e})", path.display()))?;
    Ok(Schema::from_arrow_schema(&arrow))
}

fn missing_column(path: &Path, schema: &Schema, key: &str, setting: &str) -> anyhow::Error {
    let cols: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
    anyhow::anyhow!(
        "{}: no column `{key}` (its columns: {}); name it with `{setting}` in the dataset entry",
        path.display(),
        cols.join(", ")
    )
}

/// The values of an integer column of any width (8 to 64 bits, signed or not), row by row. polars
/// is built without its 8- and 16-bit types, so the column is decoded to arrow arrays here, as
/// its reader does, and widened without it.
fn integer_column(path: &Path, column: &str) -> Result<Vec<Option<i128>>> {
    let mut r = reader(path)?;
    let arrow = r
        .schema()
        .map_err(|e| anyhow::anyhow!("{}: not a parquet file ({e})", path.display()))?;
    let field = arrow
        .get(column)
        .with_context(|| format!("{}: no column `{column}`", path.display()))?
        .clone();
    let meta = r
        .get_metadata()
        .map_err(|e| anyhow::anyhow!("{}: not a parquet file ({e})", path.display()))?
        .clone();
    let mut f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut values = Vec::with_capacity(meta.num_rows);
    for (g, rg) in meta.row_groups.iter().enumerate() {
        let chunks = rg
            .columns_under_root_iter(column)
            .with_context(|| format!("{}: row group {g} has no column `{column}`", path.display()))?;
        let mut columns = Vec::new();
        for c in chunks {
            let range = c.byte_range();
            let mut bytes = vec![0u8; (range.end - range.start) as usize];
            f.seek(SeekFrom::Start(range.start))
                .and_then(|_| f.read_exact(&mut bytes))
                .with_context(|| format!("{}: cannot read column `{column}` of row group {g}", path.display()))?;
            columns.push((c, polars_buffer::Buffer::from(bytes)));
        }
        let (arrays, _) = polars::io::parquet::read::_internal::to_deserializer(columns, field.clone(), None)
            .map_err(|e| anyhow::anyhow!("{}: cannot read column `{column}` of row group {g}: {e}", path.display()))?;
        for a in arrays {
            macro_rules! widen {
                ($($t:ty),*) => {
                    $(if let Some(p) = a.as_any().downcast_ref::<PrimitiveArray<$t>>() {
                        values.extend(p.iter().map(|v| v.map(|&v| v as i128)));
                        continue;
                    })*
                };
            }
            widen!(i8, i16, i32, i64, u8, u16, u32, u64);
            bail!(
                "{}: column `{column}` holds {:?}: class indexes are integers of 8 to 64 bits",
                path.display(),
                a.dtype()
            );
        }
    }
    if values.len() != meta.num_rows {
        bail!(
            "{}: column `{column}` holds {} values, the file {} rows",
            path.display(),
            values.len(),
            meta.num_rows
        );
    }
    Ok(values)
}

/// Every row of one file: its row number and label (the label column only is read). The image
/// column must exist and hold binary data or a struct with a binary `bytes` field. An integer
/// label of any width is a class index: one that is negative or beyond 64 bits is refused
/// naming the row.
pub fn index_file(path: &Path, file: u32, image_key: &str, label_key: &str) -> Result<Vec<Sample>> {
    let schema = schema(path)?;
    match schema.get(image_key) {
        None => return Err(missing_column(path, &schema, image_key, "image_key")),
        Some(DataType::Binary) => {}
        Some(DataType::Struct(fields)) if fields.iter().any(|f| f.name() == "bytes" && *f.dtype() == DataType::Binary) => {}
        Some(other) => bail!(
            "{}: column `{image_key}` holds {other}, not image bytes (binary, or a struct with a binary `bytes` field)",
            path.display()
        ),
    }
    let dtype = schema
        .get(label_key)
        .ok_or_else(|| missing_column(path, &schema, label_key, "label_key"))?
        .clone();
    let null = |row: usize| anyhow::anyhow!("{}: row {row}: no label (null `{label_key}`)", path.display());
    let labels: Vec<Label> = if dtype.is_integer() {
        integer_column(path, label_key)?
            .into_iter()
            .enumerate()
            .map(|(row, v)| match v {
                None => Err(null(row)),
                Some(v) if v < 0 => bail!("{}: row {row}: `{label_key}` holds {v}, a negative class index", path.display()),
                Some(v) => i64::try_from(v).map(Label::Index).map_err(|_| {
                    anyhow::anyhow!(
                        "{}: row {row}: `{label_key}` holds {v}, out of range for a class index (no class list is that long)",
                        path.display()
                    )
                }),
            })
            .collect::<Result<_>>()?
    } else if dtype == DataType::String {
        let df = reader(path)?
            .with_columns(Some(vec![label_key.to_string()]))
            .finish()
            .map_err(|e| anyhow::anyhow!("{}: cannot read column `{label_key}`: {e}", path.display()))?;
        let col = df.column(label_key)?.as_materialized_series().clone();
        let c = col.str()?;
        (0..c.len())
            .map(|row| c.get(row).map(|s| Label::Name(s.to_string())).ok_or_else(|| null(row)))
            .collect::<Result<_>>()?
    } else {
        bail!(
            "{}: column `{label_key}` holds {dtype}, not class labels (integers, or class ids such as wnids)",
            path.display()
        );
    };
    Ok(labels
        .into_iter()
        .enumerate()
        .map(|(row, label)| Sample {
            file,
            at: row as u64,
            size: 0,
            name: String::new(),
            label,
        })
        .collect())
}

type Group = Arc<Vec<Option<Vec<u8>>>>;
type GroupCell = Arc<OnceLock<std::result::Result<Group, String>>>;

/// Row groups read lately (decoded image column), and each file's row-group starts.
struct RowGroups {
    starts: HashMap<PathBuf, Arc<(Vec<u64>, FileMetadataRef)>>,
    groups: VecDeque<((PathBuf, usize, String), GroupCell)>,
}

/// Row groups kept: a batch spans at most a few, and decoding threads read neighbouring rows.
const KEPT_GROUPS: usize = 8;

static ROW_GROUPS: Mutex<Option<RowGroups>> = Mutex::new(None);

fn file_layout(path: &Path) -> std::result::Result<Arc<(Vec<u64>, FileMetadataRef)>, String> {
    let mut r = ParquetReader::new(File::open(path).map_err(|e| e.to_string())?);
    let meta = r.get_metadata().map_err(|e| format!("not a parquet file ({e})"))?.clone();
    let mut starts = vec![0u64];
    for g in &meta.row_groups {
        starts.push(starts.last().copied().unwrap_or(0) + g.num_rows() as u64);
    }
    Ok(Arc::new((starts, meta)))
}

fn read_group(path: &Path, column: &str, start: u64, len: u64, meta: FileMetadataRef) -> std::result::Result<Group, String> {
    let mut r = ParquetReader::new(File::open(path).map_err(|e| e.to_string())?);
    r.set_metadata(meta);
    // One group on this thread: the decoding threads read groups side by side.
    let df = r
        .read_parallel(ParallelStrategy::None)
        .with_columns(Some(vec![column.to_string()]))
        .with_slice(Some((start as usize, len as usize)))
        .finish()
        .map_err(|e| format!("cannot read column `{column}`: {e}"))?;
    let s = df.column(column).map_err(|e| e.to_string())?.as_materialized_series().clone();
    let bytes = match s.dtype() {
        DataType::Struct(_) => s.struct_().and_then(|st| st.field_by_name("bytes")).map_err(|e| e.to_string())?,
        _ => s,
    };
    let b = bytes.binary().map_err(|e| format!("column `{column}`: {e}"))?;
    Ok(Arc::new((0..b.len()).map(|i| b.get(i).map(<[u8]>::to_vec)).collect()))
}

/// The image bytes of one row, read with its row group (kept for the next rows).
pub fn read_row(path: &Path, row: u64, column: &str) -> std::result::Result<Vec<u8>, String> {
    let layout = {
        let mut g = ROW_GROUPS.lock().map_err(|_| "row-group cache poisoned".to_string())?;
        let cache = g.get_or_insert_with(|| RowGroups {
            starts: HashMap::new(),
            groups: VecDeque::new(),
        });
        match cache.starts.get(path) {
            Some(l) => l.clone(),
            None => {
                let l = file_layout(path)?;
                cache.starts.insert(path.to_path_buf(), l.clone());
                l
            }
        }
    };
    let (starts, meta) = &*layout;
    let total = *starts.last().unwrap_or(&0);
    if row >= total {
        return Err(format!(
            "row {row} is beyond the file's {total} rows (the file changed since it was indexed)"
        ));
    }
    let gi = starts.partition_point(|&s| s <= row) - 1;
    let key = (path.to_path_buf(), gi, column.to_string());
    let cell: GroupCell = {
        let mut g = ROW_GROUPS.lock().map_err(|_| "row-group cache poisoned".to_string())?;
        let cache = g.as_mut().expect("made above");
        match cache.groups.iter().find(|(k, _)| *k == key) {
            Some((_, c)) => c.clone(),
            None => {
                let c: GroupCell = Arc::new(OnceLock::new());
                cache.groups.push_back((key, c.clone()));
                while cache.groups.len() > KEPT_GROUPS {
                    cache.groups.pop_front();
                }
                c
            }
        }
    };
    // Read outside the cache's lock: other groups load meanwhile; readers of this one wait. The
    // read runs on a thread of its own: polars works on its own pool, and a rayon worker waiting
    // for it there would take other work of its pool meanwhile, such as another row of this
    // group, and wait on this cell from inside its own initialisation.
    let group = cell
        .get_or_init(|| {
            let (path, column, meta) = (path.to_path_buf(), column.to_string(), meta.clone());
            let (start, len) = (starts[gi], starts[gi + 1] - starts[gi]);
            std::thread::spawn(move || read_group(&path, &column, start, len, meta))
                .join()
                .unwrap_or_else(|_| Err("the parquet reader panicked".into()))
        })
        .clone()?;
    match group.get((row - starts[gi]) as usize) {
        Some(Some(b)) => Ok(b.clone()),
        Some(None) => Err(format!("no image bytes (null `{column}`)")),
        None => Err(format!("row {row} is not in its row group")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugging_face_file_numbers() {
        assert_eq!(numbered("validation-00003-of-00014"), Some((3, 14)));
        assert_eq!(numbered("train"), None);
    }
}
