//! Few-shot splits of a training set: the reference's draw ([`crate::fewshot`]) over the set's
//! canonical order, or upstream CoOp's cached draw when the set has one; saved as JSON and reused.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::fewshot::DrawSource;
use crate::image::ImageRef;
use crate::source::TrainSet;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewShotSplit {
    pub seed: u64,
    pub shots: usize,
    pub classes: Vec<String>,
    /// (image, class index): a file, a shard member or a parquet row.
    pub items: Vec<(ImageRef, usize)>,
    /// The upstream CoOp pickle the split was read from; absent for a fresh draw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<CachedFrom>,
}

/// A cached draw's file, as found on this machine, and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedFrom {
    pub file: PathBuf,
    pub sha256: String,
}

impl FewShotSplit {
    /// The reference's draw of `shots` images per class with `seed` over the set's canonical
    /// order (a class with fewer images gives all it has). Seed 0 is refused: the reference
    /// leaves its generator unseeded for it. A class without any image is an error naming it.
    pub fn draw(folder: &TrainSet, shots: usize, seed: u64) -> Result<FewShotSplit> {
        let mut count = vec![0usize; folder.classes.len()];
        folder.items.iter().for_each(|(_, l)| count[*l] += 1);
        if let Some(c) = count.iter().position(|&n| n == 0) {
            bail!(
                "{}: class `{}` ({:?}) has no training image",
                folder.root.display(),
                folder.classes.ids[c],
                folder.classes.names[c]
            );
        }
        let (items, _) = crate::fewshot::draw_train_val(&folder.items, None, |x| x.1, shots, seed)
            .with_context(|| format!("{}: {shots}-shot split", folder.root.display()))?;
        Ok(FewShotSplit {
            seed,
            shots,
            classes: folder.classes.ids.clone(),
            items,
            cached: None,
        })
    }

    /// The split a run uses: upstream CoOp's cached draw
    /// `<dataset root>/split_fewshot/shot_<shots>-seed_<seed>.pkl` when it exists (it wins over
    /// a fresh draw: it is how an earlier CoOp run's images are trained on again), else
    /// [`FewShotSplit::draw`].
    pub fn choose(folder: &TrainSet, shots: usize, seed: u64) -> Result<FewShotSplit> {
        let cache = crate::coop_pickle::cache_file(&folder.dataset_root, shots, seed);
        if seed == 0 || shots == 0 || !cache.exists() {
            return FewShotSplit::draw(folder, shots, seed);
        }
        if let Some(c) = &folder.container {
            bail!(
                "{}: a cached draw names image files; {} is stored as {} (move the pickle away to draw afresh)",
                cache.display(),
                folder.root.display(),
                c.describe()
            );
        }
        let rel = |x: &(ImageRef, usize)| {
            x.0.relative_to(&folder.root)
                .container()
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        };
        let d = crate::fewshot::draw_or_cached(&folder.dataset_root, &folder.root, &folder.items, None, |x| x.1, rel, shots, seed)?;
        let DrawSource::Cache { file, sha256 } = d.source else {
            unreachable!("the cache file exists")
        };
        Ok(FewShotSplit {
            seed,
            shots,
            classes: folder.classes.ids.clone(),
            items: d.train,
            cached: Some(CachedFrom { file, sha256 }),
        })
    }

    /// Reuse `path` if it exists (it must be for the same classes, shots and seed), else choose
    /// the split ([`FewShotSplit::choose`]) and save it atomically, sealed with the SHA-256 of its text (`ntlb_core::sealed`). Files
    /// are saved relative to the folder's root, so a run resumed on a node that mounts the data
    /// elsewhere reads the same images. A file whose text does not match its digest, or that
    /// does not parse (truncated, damaged), is reported, moved aside to `<name>.damaged` and
    /// drawn again (the same draw: it depends on the folder, shots and seed only). A file
    /// without a digest is used only when it is that draw: anything else would be a split
    /// nobody can tell from a damaged one.
    pub fn load_or_draw(path: &Path, folder: &TrainSet, shots: usize, seed: u64) -> Result<FewShotSplit> {
        let unsealed = |e: &anyhow::Error| e.to_string().contains(ntlb_core::sealed::NO_DIGEST);
        let parsed = match ntlb_core::sealed::read_sealed_json::<FewShotSplit>(path) {
            Ok(s) => Some(s),
            Err(e) if ntlb_core::sealed::is_not_found(&e) => None,
            Err(e) if unsealed(&e) => {
                let plain = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|t| serde_json::from_str::<FewShotSplit>(&t).ok())
                    .map(|mut s| {
                        for (p, _) in &mut s.items {
                            *p = p.under(&folder.root);
                        }
                        s
                    });
                match plain {
                    Some(s) if s == FewShotSplit::choose(folder, shots, seed)? => Some(s),
                    Some(_) => bail!(
                        "{}: a split file without a digest that is not the draw of this folder, {shots} shot(s) and seed {seed} \
                         (edited, damaged, or for other images); delete it or pick another path",
                        path.display()
                    ),
                    None => Self::set_aside(path, &e)?,
                }
            }
            Err(e) => Self::set_aside(path, &e)?,
        };
        if let Some(mut s) = parsed {
            if s.classes != folder.classes.ids || s.shots != shots || s.seed != seed {
                bail!(
                    "{}: split file is for other classes, shots or seed (shots {}, seed {}); delete it or pick another path",
                    path.display(),
                    s.shots,
                    s.seed
                );
            }
            for (p, _) in &mut s.items {
                *p = p.under(&folder.root);
            }
            return Ok(s);
        }
        let s = FewShotSplit::choose(folder, shots, seed)?;
        let mut on_disk = s.clone();
        for (p, _) in &mut on_disk.items {
            *p = p.relative_to(&folder.root);
        }
        ntlb_core::sealed::write_sealed_json(path, &on_disk)?;
        Ok(s)
    }

    fn set_aside(path: &Path, e: &anyhow::Error) -> Result<Option<FewShotSplit>> {
        let to = ntlb_core::damaged::set_aside(path).with_context(|| format!("{}: cannot move the damaged split aside", path.display()))?;
        eprintln!("damaged split file ({e:#}): moved to {}; drawing it again", to.display());
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classes::ClassList;

    #[test]
    fn a_saved_split_follows_the_data_to_another_mount() {
        let tmp = tempfile::tempdir().unwrap();
        let classes = ClassList {
            ids: vec!["a".into(), "b".into()],
            names: vec!["a".into(), "b".into()],
        };
        let folder_at = |root: &Path| {
            for c in ["a", "b"] {
                std::fs::create_dir_all(root.join(c)).unwrap();
                for i in 0..3 {
                    std::fs::write(root.join(c).join(format!("{i}.jpg")), b"x").unwrap();
                }
            }
            TrainSet::from(crate::folder::ImageFolder::read(root, &classes).unwrap())
        };
        let (fa, fb) = (
            folder_at(&tmp.path().join("node-a/train")),
            folder_at(&tmp.path().join("node-b/x/train")),
        );
        let split = tmp.path().join("split.json");
        let drawn = FewShotSplit::load_or_draw(&split, &fa, 2, 7).unwrap();
        assert!(drawn.items.iter().all(|(p, _)| p.container().starts_with(&fa.root)));
        assert!(
            !std::fs::read_to_string(&split).unwrap().contains("node-a"),
            "saved relative to the root"
        );
        let again = FewShotSplit::load_or_draw(&split, &fb, 2, 7).unwrap();
        assert_eq!(again.items.len(), 4);
        for ((a, la), (b, lb)) in drawn.items.iter().zip(&again.items) {
            assert_eq!((a.relative_to(&fa.root), la), (b.relative_to(&fb.root), lb));
        }
        // A truncated split file is moved aside and drawn again: the same split.
        let whole = std::fs::read(&split).unwrap();
        std::fs::write(&split, &whole[..whole.len() / 2]).unwrap();
        assert_eq!(FewShotSplit::load_or_draw(&split, &fa, 2, 7).unwrap(), drawn);
        assert_eq!(
            std::fs::read(tmp.path().join("split.json.damaged")).unwrap(),
            &whole[..whole.len() / 2]
        );
        assert_eq!(std::fs::read(&split).unwrap(), whole);
        // Another image of the same class, the file still valid JSON: its digest tells.
        let text = String::from_utf8(whole.clone()).unwrap();
        let (a0, a1) = (r#""a/0.jpg""#, r#""a/1.jpg""#);
        let swapped = if text.contains(a0) {
            text.replacen(a0, a1, 1)
        } else {
            text.replacen(a1, a0, 1)
        };
        assert_ne!(swapped, text);
        std::fs::remove_file(tmp.path().join("split.json.damaged")).unwrap();
        std::fs::write(&split, &swapped).unwrap();
        assert_eq!(FewShotSplit::load_or_draw(&split, &fa, 2, 7).unwrap(), drawn);
        assert_eq!(std::fs::read(tmp.path().join("split.json.damaged")).unwrap(), swapped.as_bytes());
        // Without a digest (written before digests were kept): used when it is the draw,
        // refused by name when it is not.
        let mut plain = drawn.clone();
        plain.items.iter_mut().for_each(|(p, _)| *p = p.relative_to(&fa.root));
        std::fs::write(&split, serde_json::to_string_pretty(&plain).unwrap()).unwrap();
        assert_eq!(FewShotSplit::load_or_draw(&split, &fa, 2, 7).unwrap(), drawn);
        plain.items.swap(0, 1);
        std::fs::write(&split, serde_json::to_string_pretty(&plain).unwrap()).unwrap();
        let e = FewShotSplit::load_or_draw(&split, &fa, 2, 7).unwrap_err().to_string();
        assert!(e.contains("split.json") && e.contains("without a digest"), "{e}");
    }
}
