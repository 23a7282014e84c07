//! The reference's few-shot draw (Dassl's `generate_fewshot_dataset` as CoOp calls it), over
//! any list of items with a label: a split file's `train` and `val` lists, or a set's images in
//! their canonical order ([`crate::canonical`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::pyrandom::PyRandom;

/// Val draws take at most this many images per class (CoOp: `min(num_shots, 4)`).
pub const VAL_SHOTS_MAX: usize = 4;

/// Why seed 0 is refused, for every message that refuses it.
pub const SEED_ZERO: &str = "seed 0 cannot reproduce the reference's draw: its train.py sets the seed only when `--seed` is \
     non-zero, so with 0 Python's generator is left unseeded (a different draw every run); use a seed >= 1";

/// One list's draw: items grouped by label in the order labels first appear (list order kept
/// within a group); from each group `random.sample(group, k)` in selection order, or the whole
/// group (no draw) when it holds fewer than `k`. `k = 0` returns the list unchanged, as the
/// reference does for `num_shots < 1`.
pub fn fewshot_draw<T: Clone>(items: &[T], label: impl Fn(&T) -> usize, k: usize, rng: &mut PyRandom) -> Vec<T> {
    if k == 0 {
        return items.to_vec();
    }
    let mut order: Vec<usize> = Vec::new();
    let mut groups: std::collections::HashMap<usize, Vec<&T>> = std::collections::HashMap::new();
    for it in items {
        let l = label(it);
        groups
            .entry(l)
            .or_insert_with(|| {
                order.push(l);
                Vec::new()
            })
            .push(it);
    }
    let mut out = Vec::new();
    for l in order {
        let g = &groups[&l];
        if g.len() >= k {
            out.extend(rng.sample(g.len(), k).into_iter().map(|i| g[i].clone()));
        } else {
            out.extend(g.iter().map(|&x| x.clone()));
        }
    }
    out
}

/// A dataset's draw as CoOp makes it: `random.seed(seed)`, the train list with `shots`, then
/// (when the set has a val list to draw from; not ImageNet, whose val is its test) the val
/// list with `min(shots, 4)` on the same stream. Seed 0 is refused ([`SEED_ZERO`]).
pub fn draw_train_val<T: Clone>(
    train: &[T],
    val: Option<&[T]>,
    label: impl Fn(&T) -> usize + Copy,
    shots: usize,
    seed: u64,
) -> Result<(Vec<T>, Vec<T>)> {
    if seed == 0 {
        bail!("{SEED_ZERO}");
    }
    let mut rng = PyRandom::seed(seed);
    let t = fewshot_draw(train, label, shots, &mut rng);
    let v = match val {
        Some(v) => fewshot_draw(v, label, shots.min(VAL_SHOTS_MAX), &mut rng),
        None => Vec::new(),
    };
    Ok((t, v))
}

/// Where a draw came from: drawn here with a seed, or read from upstream CoOp's cache file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DrawSource {
    Fresh { seed: u64 },
    Cache { file: PathBuf, sha256: String },
}

impl std::fmt::Display for DrawSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrawSource::Fresh { seed } => write!(f, "drawn with seed {seed}"),
            DrawSource::Cache { file, sha256 } => write!(f, "read from {} (sha256 {sha256})", file.display()),
        }
    }
}

/// A dataset's few-shot lists and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn<T> {
    pub train: Vec<T>,
    pub val: Vec<T>,
    pub source: DrawSource,
}

/// The split a run uses: upstream CoOp's cached draw
/// `<dataset_dir>/split_fewshot/shot_<shots>-seed_<seed>.pkl` when it exists and `shots >= 1`
/// (the file wins over a fresh draw, as upstream reuses it; its paths mapped onto `items` by
/// `rel`, the items' paths relative to `image_root`), else [`draw_train_val`]. `val` is `None`
/// for a set without a val list to draw from (ImageNet). Seed 0 is refused either way.
#[allow(clippy::too_many_arguments)]
pub fn draw_or_cached<T: Clone>(
    dataset_dir: &Path,
    image_root: &Path,
    train: &[T],
    val: Option<&[T]>,
    label: impl Fn(&T) -> usize + Copy,
    rel: impl Fn(&T) -> String + Copy,
    shots: usize,
    seed: u64,
) -> Result<Drawn<T>> {
    if seed == 0 {
        bail!("{SEED_ZERO}");
    }
    let file = crate::coop_pickle::cache_file(dataset_dir, shots, seed);
    if shots == 0 || !file.exists() {
        let (train, val) = draw_train_val(train, val, label, shots, seed)?;
        return Ok(Drawn {
            train,
            val,
            source: DrawSource::Fresh { seed },
        });
    }
    let cached = crate::coop_pickle::CachedDraw::read(&file)?;
    let map = |d: &[crate::coop_pickle::Datum], local: &[T]| crate::coop_pickle::map_onto(&file, d, local, rel, label, image_root);
    let train = map(cached.train.as_slice(), train)?;
    let val = match (val, &cached.val) {
        (None, _) => Vec::new(),
        (Some(v), Some(c)) => map(c.as_slice(), v)?,
        (Some(_), None) => bail!("{}: holds no `val` list, and this set draws one", file.display()),
    };
    Ok(Drawn {
        train,
        val,
        source: DrawSource::Cache {
            file: cached.file,
            sha256: cached.sha256,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_groups_are_taken_whole_without_drawing() {
        let items: Vec<(char, usize)> = vec![('a', 2), ('b', 0), ('c', 2), ('d', 0), ('e', 1)];
        let mut r = PyRandom::seed(1);
        let got = fewshot_draw(&items, |x| x.1, 3, &mut r);
        // Groups in first-appearance order (2, 0, 1), each smaller than 3: all kept, no draw.
        assert_eq!(got.iter().map(|x| x.0).collect::<String>(), "acbde");
        assert_eq!(r.next_u32(), PyRandom::seed(1).next_u32(), "no RNG use");
        assert_eq!(fewshot_draw(&items, |x| x.1, 0, &mut r), items);
        let e = draw_train_val(&items, None, |x| x.1, 1, 0).unwrap_err().to_string();
        assert!(e.contains("seed 0") && e.contains("unseeded"), "{e}");
    }
}
