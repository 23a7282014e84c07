//! One order of a set's images whatever holds them: a folder tree, WebDataset shards shuffled
//! across shards, shuffled parquet files. Without a split file to give the order (those sets
//! keep their file's order), images are sorted by class index, then by their stored size in
//! bytes, then by the SHA-256 of their bytes; the digest is read only for images whose class
//! and size tie, so a folder costs one `stat` per file and a shard set nothing beyond its
//! index. The same bytes give the same place in any container. Every subset is taken from this
//! order: the few-shot draw, `max_per_class`, the held-out images of the class-name score.
//!
//! Images with equal bytes tie completely and keep their storage order (their pixels are the
//! same). An image whose bytes cannot be read while breaking a tie sorts after the readable
//! ones of its size, by its storage name: it is a failed image later, whatever its place.

use anyhow::{Context, Result};
use rayon::prelude::*;

use crate::image::ImageRef;
use ntlb_core::image::ImageBytes;

/// The stored size of an image: a file's length; a shard member's (from the index); a parquet
/// row's bytes as the index recorded them.
pub fn stored_size(r: &ImageRef, row_size: Option<u64>) -> Result<u64> {
    match r {
        ImageRef::File(p) => Ok(std::fs::metadata(p).with_context(|| format!("{}: cannot read", p.display()))?.len()),
        ImageRef::Member { size, .. } => Ok(*size),
        ImageRef::Row { file, row, .. } => {
            row_size.with_context(|| format!("{}#{row}: the size of the row's image was not indexed", file.display()))
        }
    }
}

/// Sort `items` into the canonical order; `sizes[i]` is the stored size of `items[i]`.
pub fn sort_items_sized(items: &mut Vec<(ImageRef, usize)>, sizes: Vec<u64>) {
    assert_eq!(items.len(), sizes.len());
    let mut keyed: Vec<((usize, u64), usize)> = items.iter().zip(&sizes).enumerate().map(|(i, ((_, l), s))| ((*l, *s), i)).collect();
    keyed.sort_by_key(|(k, i)| (*k, *i));
    // Digests for the runs that tie on (class, size) only.
    let mut tied = Vec::new();
    let mut a = 0;
    while a < keyed.len() {
        let mut b = a + 1;
        while b < keyed.len() && keyed[b].0 == keyed[a].0 {
            b += 1;
        }
        if b - a > 1 {
            tied.extend(keyed[a..b].iter().map(|(_, i)| *i));
        }
        a = b;
    }
    let digests: std::collections::HashMap<usize, std::result::Result<String, String>> = tied
        .par_iter()
        .map(|&i| {
            let d = items[i].0.image_bytes().map(|b| ntlb_core::digest::sha256_bytes(&b));
            (i, d.map_err(|_| items[i].0.image_name().display().to_string()))
        })
        .collect();
    let tie = |i: usize| -> (u8, String) {
        match digests.get(&i) {
            None => (0, String::new()),
            Some(Ok(d)) => (0, d.clone()),
            Some(Err(name)) => (1, name.clone()),
        }
    };
    keyed.sort_by_cached_key(|(k, i)| (*k, tie(*i), *i));
    let old = std::mem::take(items);
    let mut slots: Vec<Option<(ImageRef, usize)>> = old.into_iter().map(Some).collect();
    *items = keyed.into_iter().map(|(_, i)| slots[i].take().expect("each once")).collect();
}

/// [`sort_items_sized`] with the sizes of files and shard members read here (parquet rows
/// need theirs from the index: [`stored_size`]).
pub fn sort_items(items: &mut Vec<(ImageRef, usize)>) -> Result<()> {
    let sizes = items.par_iter().map(|(r, _)| stored_size(r, None)).collect::<Result<Vec<u64>>>()?;
    sort_items_sized(items, sizes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Class first, then size, then the digest of the bytes where sizes tie: the same order
    /// from the files in any listing order.
    #[test]
    fn files_sort_by_class_size_and_digest() {
        let d = tempfile::tempdir().unwrap();
        let files = [
            ("z.jpg", "bbbb", 0),
            ("y.jpg", "aaaa", 0),
            ("x.jpg", "ccccc", 0),
            ("w.jpg", "dd", 1),
            ("v.jpg", "cc", 0),
        ];
        let mut items = Vec::new();
        for (name, text, label) in files {
            let p = d.path().join(name);
            std::fs::write(&p, text).unwrap();
            items.push((ImageRef::File(p), label));
        }
        let mut a = items.clone();
        sort_items(&mut a).unwrap();
        let names: Vec<String> = a
            .iter()
            .map(|(r, _)| r.as_file().unwrap().file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        // "aaaa" and "bbbb" tie on size: their SHA-256 decides (aaaa's digest is smaller).
        let (da, db) = (ntlb_core::digest::sha256_bytes(b"aaaa"), ntlb_core::digest::sha256_bytes(b"bbbb"));
        let four = if da < db { ["y.jpg", "z.jpg"] } else { ["z.jpg", "y.jpg"] };
        assert_eq!(names, ["v.jpg", four[0], four[1], "x.jpg", "w.jpg"]);
        items.reverse();
        sort_items(&mut items).unwrap();
        assert_eq!(items, a);
    }
}
