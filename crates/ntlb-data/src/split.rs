//! Few-shot splits: `shots` images per class drawn with a seed, saved as JSON and reused.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::image::ImageRef;
use crate::source::TrainSet;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewShotSplit {
    pub seed: u64,
    pub shots: usize,
    pub classes: Vec<String>,
    /// (image, class index): a file, a shard member or a parquet row.
    pub items: Vec<(ImageRef, usize)>,
}

impl FewShotSplit {
    /// Draw `shots` images per class; every class needs at least that many. The draw depends on
    /// the images' order within each class only, not on where they are stored.
    pub fn draw(folder: &TrainSet, shots: usize, seed: u64) -> Result<FewShotSplit> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut items = Vec::new();
        for (label, id) in folder.classes.ids.iter().enumerate() {
            let mut files: Vec<&ImageRef> = folder.items.iter().filter(|(_, l)| *l == label).map(|(f, _)| f).collect();
            if files.len() < shots {
                bail!(
                    "{}: class `{id}` has {} image(s), {shots}-shot training needs {shots}",
                    folder.root.display(),
                    files.len()
                );
            }
            files.shuffle(&mut rng);
            items.extend(files.into_iter().take(shots).map(|f| (f.clone(), label)));
        }
        Ok(FewShotSplit {
            seed,
            shots,
            classes: folder.classes.ids.clone(),
            items,
        })
    }

    /// Reuse `path` if it exists (it must be for the same classes, shots and seed), else draw
    /// and save it atomically, sealed with the SHA-256 of its text (`ntlb_core::sealed`). Files
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
                    Some(s) if s == FewShotSplit::draw(folder, shots, seed)? => Some(s),
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
        let s = FewShotSplit::draw(folder, shots, seed)?;
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
