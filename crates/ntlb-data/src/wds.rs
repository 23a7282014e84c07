//! WebDataset shards in CLIP_benchmark's layout (`clip_benchmark/datasets/builder.py`,
//! `build_wds_dataset`; written by `webdataset_builder.py`):
//!
//! ```text
//! <root>/classnames.txt                       one class name per line, label order
//! <root>/zeroshot_classification_templates.txt
//! <root>/<split>/nshards.txt                  the number of shards, n
//! <root>/<split>/{0..n-1}.tar                 samples `s0000000.webp` + `s0000000.cls`, ...
//! ```
//!
//! A sample is the run of consecutive members sharing a key (WebDataset's rule: the member name
//! up to the first `.` of its file name); its image is the first of `webp`, `png`, `jpg`, `jpeg`
//! it holds (CLIP_benchmark's `to_tuple` order), its label the decimal class index in `cls`.
//! Indexing reads the headers (seeking over the images) and the label members only.
//!
//! Refused as WebDataset refuses them: a sample holding one member twice (its "duplicate file
//! name"; extensions compared as it lowercases them). Refused beyond it: a shard without tar's
//! end-of-archive blocks. A tar reader stops at the end of the file as at the end of the archive,
//! so a shard cut at a member boundary would otherwise read as a shorter set.

use std::io::{Read, Seek, SeekFrom};
use std::num::IntErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::index::{Label, Sample};

/// The image extensions CLIP_benchmark reads, in its order of preference.
pub const IMAGE_KEYS: [&str; 4] = ["webp", "png", "jpg", "jpeg"];
pub const LABEL_KEY: &str = "cls";
/// CLIP_benchmark's evaluation split.
pub const EVAL_SPLIT: &str = "test";

/// The shards of `<root>/<split>`, as `nshards.txt` lists them: `0.tar .. n-1.tar`, every one
/// present and no other `.tar` beside them.
pub fn shard_files(split_dir: &Path) -> Result<Vec<PathBuf>> {
    if !split_dir.is_dir() {
        bail!(
            "{}: shard folder not found (WebDataset layout: <root>/<split>/nshards.txt and {{0..n-1}}.tar)",
            split_dir.display()
        );
    }
    let nfile = split_dir.join("nshards.txt");
    let text =
        std::fs::read_to_string(&nfile).with_context(|| format!("{}: cannot read (the WebDataset layout needs it)", nfile.display()))?;
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{}: holds {:?}, not a number of shards", nfile.display(), text.trim()))?;
    if n == 0 {
        bail!("{}: says 0 shards", nfile.display());
    }
    let mut present: Vec<String> = std::fs::read_dir(split_dir)
        .with_context(|| format!("{}: cannot list", split_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".tar"))
        .collect();
    present.sort();
    let expected: Vec<String> = (0..n).map(|i| format!("{i}.tar")).collect();
    if let Some(missing) = expected.iter().find(|e| !present.contains(e)) {
        bail!(
            "{}: says {n} shards, but {missing} is not in {} ({} .tar files there)",
            nfile.display(),
            split_dir.display(),
            present.len()
        );
    }
    if let Some(extra) = present.iter().find(|p| !expected.contains(p)) {
        bail!(
            "{}: says {n} shards (0.tar .. {}.tar), but {} is also there: nshards.txt and the shards disagree",
            nfile.display(),
            n - 1,
            split_dir.join(extra).display()
        );
    }
    Ok(expected.into_iter().map(|e| split_dir.join(e)).collect())
}

/// WebDataset's split of a member name into sample key and extension: the key runs to the
/// first `.` of the file name (directories included), the extension is the rest.
pub fn split_name(name: &str) -> Option<(&str, &str)> {
    let base = name.rfind('/').map_or(0, |i| i + 1);
    let dot = name[base..].find('.')? + base;
    Some((&name[..dot], &name[dot + 1..]))
}

struct Member {
    ext: String,
    name: String,
    offset: u64,
    size: u64,
    /// The bytes of a label member.
    content: Option<Vec<u8>>,
}

const BLOCK: u64 = 512;
/// tar's end-of-archive marker: two zero blocks after the last member.
const END_MARKER: u64 = 2 * BLOCK;

/// The class index a label member holds: decimal text (white space around it allowed).
fn class_index(path: &Path, member: &Member) -> Result<i64> {
    let text = String::from_utf8_lossy(member.content.as_deref().unwrap_or_default())
        .trim()
        .to_string();
    match text.parse::<i64>() {
        Ok(i) => Ok(i),
        Err(e) if matches!(e.kind(), IntErrorKind::PosOverflow | IntErrorKind::NegOverflow) => bail!(
            "{}: member `{}` holds class {text}, out of range (no class list is that long)",
            path.display(),
            member.name
        ),
        Err(_) => bail!("{}: member `{}` holds {text:?}, not a class index", path.display(), member.name),
    }
}

/// Every sample of one shard: its image member (offset and size of the data) and its label.
/// `image_keys` in order of preference; `file` is the shard's number in the set.
pub fn index_shard(path: &Path, file: u32, image_keys: &[String], label_key: &str) -> Result<Vec<Sample>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read", path.display()))?
        .len();
    if len == 0 {
        bail!("{}: empty file (0 bytes), not a tar shard", path.display());
    }
    let f = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut ar = tar::Archive::new(std::io::BufReader::new(f));
    let mut samples = Vec::new();
    let mut current: Option<(String, Vec<Member>)> = None;
    let mut last = String::from("(none: the first header)");
    // Where the header after the last member read starts.
    let mut next_header = 0u64;
    let finish = |key: String, members: Vec<Member>, samples: &mut Vec<Sample>| -> Result<()> {
        let listed = || members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ");
        let Some(img) = image_keys
            .iter()
            .find_map(|k| members.iter().find(|m| m.ext.eq_ignore_ascii_case(k)))
        else {
            let wanted: Vec<String> = image_keys.iter().map(|k| format!("{key}.{k}")).collect();
            bail!(
                "{}: sample `{key}` has no image (none of {}; its members: {})",
                path.display(),
                wanted.join(", "),
                listed()
            );
        };
        let Some(lab) = members.iter().find(|m| m.ext.eq_ignore_ascii_case(label_key)) else {
            bail!(
                "{}: sample `{key}` has no label (no member {key}.{label_key}; its members: {})",
                path.display(),
                listed()
            );
        };
        samples.push(Sample {
            file,
            at: img.offset,
            size: img.size,
            name: img.name.clone(),
            label: Label::Index(class_index(path, lab)?),
        });
        Ok(())
    };
    let entries = ar
        .entries_with_seek()
        .with_context(|| format!("{}: not a tar file", path.display()))?;
    for e in entries {
        let mut e = e.map_err(|err| {
            if len < next_header + BLOCK {
                anyhow::anyhow!(
                    "{}: truncated: the file ends at byte {len}, inside the tar header at {next_header} (after member `{last}`)",
                    path.display()
                )
            } else {
                anyhow::anyhow!(
                    "{}: cannot read the tar after member `{last}` (header at byte {next_header}, the file ends at {len}): {err} (truncated or damaged shard)",
                    path.display()
                )
            }
        })?;
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let (offset, size) = (e.raw_file_position(), e.size());
        if offset + size > len {
            bail!(
                "{}: truncated: member `{name}` holds {size} bytes at {offset}, the file ends at byte {len}",
                path.display()
            );
        }
        next_header = (offset + size).div_ceil(BLOCK) * BLOCK;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let Some((key, ext)) = split_name(&name) else {
            bail!(
                "{}: member `{name}` has no extension: no sample key and kind (WebDataset names members <key>.<ext>)",
                path.display()
            );
        };
        let (key, ext) = (key.to_string(), ext.to_string());
        let content = if ext.eq_ignore_ascii_case(label_key) {
            let mut b = Vec::new();
            e.read_to_end(&mut b)
                .map_err(|err| anyhow::anyhow!("{}: cannot read member `{name}`: {err}", path.display()))?;
            Some(b)
        } else {
            None
        };
        last = name.clone();
        let m = Member {
            ext,
            name,
            offset,
            size,
            content,
        };
        match &mut current {
            Some((k, members)) if *k == key => {
                if let Some(prev) = members.iter().find(|p| p.ext.eq_ignore_ascii_case(&m.ext)) {
                    bail!(
                        "{}: duplicate file name in sample `{key}`: member `{}` (at byte {}) after `{}` (at byte {}); WebDataset refuses a sample holding one member twice",
                        path.display(),
                        m.name,
                        m.offset,
                        prev.name,
                        prev.offset
                    );
                }
                members.push(m)
            }
            _ => {
                if let Some((k, members)) = current.take() {
                    finish(k, members, &mut samples)?;
                }
                current = Some((key, vec![m]));
            }
        }
    }
    // The reader stops at the end of the file as at the marker: without the marker, the shard
    // may have lost any number of whole members.
    if len < next_header + END_MARKER {
        bail!(
            "{}: truncated: the file ends at byte {len} without tar's end-of-archive marker (two zero 512-byte blocks at {next_header}, after member `{last}`)",
            path.display()
        );
    }
    let mut marker = vec![0u8; END_MARKER as usize];
    let mut r = ar.into_inner();
    r.seek(SeekFrom::Start(next_header))
        .and_then(|_| r.read_exact(&mut marker))
        .with_context(|| format!("{}: cannot read the end of the tar at byte {next_header}", path.display()))?;
    if marker.iter().any(|&b| b != 0) {
        // One zero block, then more data: a reader would stop there and lose what follows.
        bail!(
            "{}: a lone zero block at byte {next_header} (after member `{last}`) and data after it: not tar's end-of-archive marker (two zero blocks); damaged, or tar files joined end to end",
            path.display()
        );
    }
    if let Some((k, members)) = current.take() {
        finish(k, members, &mut samples)?;
    }
    if samples.is_empty() {
        bail!("{}: holds no sample", path.display());
    }
    Ok(samples)
}

/// The data of a tar member, checked against the header in front of it (its size and checksum):
/// a shard rewritten since it was indexed is an error, not another image.
pub fn read_member(shard: &Path, offset: u64, size: u64, name: &str) -> Result<Vec<u8>, String> {
    let header_at = offset
        .checked_sub(512)
        .ok_or_else(|| format!("offset {offset} of member `{name}` leaves no room for its tar header"))?;
    let mut f = std::fs::File::open(shard).map_err(|e| e.to_string())?;
    f.seek(SeekFrom::Start(header_at)).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 512 + size as usize];
    f.read_exact(&mut buf)
        .map_err(|e| format!("cannot read member `{name}` ({size} bytes at {offset}): {e}"))?;
    let h = tar::Header::from_byte_slice(&buf[..512]);
    let sum: u32 = buf[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { b' ' as u32 } else { b as u32 })
        .sum();
    if h.cksum().ok() != Some(sum) || h.entry_size().ok() != Some(size) {
        return Err(format!(
            "member `{name}`: the tar header at {header_at} is not that of a {size}-byte member (the shard changed since it was indexed; its index is rebuilt when the shard's content changes)"
        ));
    }
    buf.drain(..512);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_split_as_webdataset_does() {
        assert_eq!(split_name("s0000001.webp"), Some(("s0000001", "webp")));
        assert_eq!(split_name("dir.x/s1.seg.png"), Some(("dir.x/s1", "seg.png")));
        assert_eq!(split_name("noext"), None);
    }
}
