//! Writing sets in the container layouts the readers take: WebDataset shards as CLIP_benchmark
//! writes them (`webdataset_builder.convert_dataset`: keys `s%07d`, label in `cls` as decimal
//! text, `nshards.txt`, `classnames.txt`) and parquet as Hugging Face writes images (`image`
//! struct {bytes, path}, integer `label`). The tests and `ntlb bench pipeline` write their
//! fixtures with these.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use polars::prelude::*;

/// One image of a set to write: its encoded bytes, the extension it is stored under (wds) or
/// the file name it came from (parquet `image.path`), and its class index.
#[derive(Debug, Clone)]
pub struct Written {
    pub bytes: Vec<u8>,
    pub ext: String,
    pub path: String,
    pub label: usize,
}

fn member(b: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o444);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data)
}

/// `<root>/<split>/{0..n-1}.tar` with `per_shard` samples each, `nshards.txt`, and
/// `<root>/classnames.txt` (when `classnames` is given). Returns the shards.
pub fn write_wds(root: &Path, split: &str, images: &[Written], classnames: Option<&[String]>, per_shard: usize) -> Result<Vec<PathBuf>> {
    let dir = root.join(split);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mut shards = Vec::new();
    for (i, chunk) in images.chunks(per_shard.max(1)).enumerate() {
        let p = dir.join(format!("{i}.tar"));
        let mut b = tar::Builder::new(std::fs::File::create(&p).with_context(|| format!("{}: cannot create", p.display()))?);
        for (j, w) in chunk.iter().enumerate() {
            let key = format!("s{:07}", i * per_shard + j);
            member(&mut b, &format!("{key}.{}", w.ext), &w.bytes)?;
            member(&mut b, &format!("{key}.cls"), w.label.to_string().as_bytes())?;
        }
        b.finish()?;
        shards.push(p);
    }
    std::fs::write(dir.join("nshards.txt"), format!("{}\n", shards.len()))?;
    if let Some(names) = classnames {
        std::fs::write(
            root.join("classnames.txt"),
            names.iter().map(|n| format!("{n}\n")).collect::<String>(),
        )?;
    }
    Ok(shards)
}

/// One parquet file in Hugging Face's image layout, `row_group` rows per row group.
pub fn write_parquet(path: &Path, images: &[Written], row_group: usize) -> Result<()> {
    let n = images.len();
    let bytes = Series::new("bytes".into(), images.iter().map(|w| w.bytes.as_slice()).collect::<Vec<_>>());
    let paths = Series::new("path".into(), images.iter().map(|w| w.path.as_str()).collect::<Vec<_>>());
    let image = StructChunked::from_series("image".into(), n, [bytes, paths].iter())?.into_series();
    let label = Series::new("label".into(), images.iter().map(|w| w.label as i64).collect::<Vec<_>>());
    let mut df = DataFrame::new(n, vec![image.into_column(), label.into_column()])?;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let f = std::fs::File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    ParquetWriter::new(f).with_row_group_size(Some(row_group.max(1))).finish(&mut df)?;
    Ok(())
}

/// `<root>/data/<split>-NNNNN-of-NNNNN.parquet`, `per_file` rows each.
pub fn write_parquet_split(root: &Path, split: &str, images: &[Written], per_file: usize, row_group: usize) -> Result<Vec<PathBuf>> {
    let chunks: Vec<&[Written]> = images.chunks(per_file.max(1)).collect();
    let mut files = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let p = root.join("data").join(format!("{split}-{i:05}-of-{:05}.parquet", chunks.len()));
        write_parquet(&p, c, row_group)?;
        files.push(p);
    }
    Ok(files)
}
