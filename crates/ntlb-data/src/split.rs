//! Few-shot splits: `shots` images per class drawn with a seed, saved as JSON and reused.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::folder::ImageFolder;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewShotSplit {
    pub seed: u64,
    pub shots: usize,
    pub classes: Vec<String>,
    /// (file, class index)
    pub items: Vec<(PathBuf, usize)>,
}

impl FewShotSplit {
    /// Draw `shots` files per class; every class needs at least that many.
    pub fn draw(folder: &ImageFolder, shots: usize, seed: u64) -> Result<FewShotSplit> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut items = Vec::new();
        for (label, id) in folder.classes.ids.iter().enumerate() {
            let mut files: Vec<&PathBuf> = folder.items.iter().filter(|(_, l)| *l == label).map(|(f, _)| f).collect();
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
    /// and save it atomically.
    pub fn load_or_draw(path: &Path, folder: &ImageFolder, shots: usize, seed: u64) -> Result<FewShotSplit> {
        if path.exists() {
            let s: FewShotSplit =
                serde_json::from_str(&std::fs::read_to_string(path)?).with_context(|| format!("{}: not a split file", path.display()))?;
            if s.classes != folder.classes.ids || s.shots != shots || s.seed != seed {
                bail!(
                    "{}: split file is for other classes, shots or seed (shots {}, seed {}); delete it or pick another path",
                    path.display(),
                    s.shots,
                    s.seed
                );
            }
            return Ok(s);
        }
        let s = FewShotSplit::draw(folder, shots, seed)?;
        ntlb_clip::io::write_atomic(path, serde_json::to_string_pretty(&s)?.as_bytes())?;
        Ok(s)
    }
}
