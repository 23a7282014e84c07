//! The CoOp training sets of a sweep: ImageNet's `train` split at `coop.train_root`, and the
//! `train` list of each split-list dataset that `coop.train` names.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use ntlb_data::classes::ClassList;
use ntlb_data::image::ImageRef;
use ntlb_data::source::TrainSet;
use ntlb_data::split_file::SplitSet;

use super::{DatasetEntry, SweepConfig, IMAGENET_TRAIN};

/// A split-list dataset's `train` images as a training set, in the split file's order (the
/// order the reference's draw walks), labelled by the file's class list, with upstream CoOp's
/// cached draws looked for in the dataset folder (`<dataset>/split_fewshot/`), as CoOp does.
pub fn split_train_set(d: &DatasetEntry) -> Result<TrainSet> {
    let set = SplitSet::read(d.kind, &d.root).with_context(|| format!("training dataset `{}`", d.name()))?;
    Ok(TrainSet {
        root: set.image_dir.clone(),
        dataset_root: set.dir.clone(),
        classes: set.class_list(),
        items: set.train.iter().map(|i| (ImageRef::File(set.path_of(i)), i.label)).collect(),
        unreadable: Vec::new(),
        container: None,
    })
}

/// Every training set `coop.train` names, by its name there (`imagenet`: the set at
/// `coop.train_root` in `coop.train_format`).
pub fn open_train_sets(cfg: &SweepConfig, classes: &ClassList) -> Result<BTreeMap<String, TrainSet>> {
    let Some(co) = &cfg.coop else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for name in co.train_sets() {
        let set = if name == IMAGENET_TRAIN {
            TrainSet::open(co.imagenet_root()?, &co.train_layout(), classes, Some(&cfg.cache_dir()))?
        } else {
            let d = cfg
                .datasets
                .iter()
                .find(|d| d.name() == name)
                .with_context(|| format!("`coop.train` names `{name}`, which is not a [[datasets]] entry"))?;
            split_train_set(d)?
        };
        out.insert(name, set);
    }
    Ok(out)
}
