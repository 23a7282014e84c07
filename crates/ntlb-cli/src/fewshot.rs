//! `ntlb fewshot`: the few-shot lists a run of `--shots` and `--seed` trains on, made by the
//! functions the trainer calls (a fresh draw as the reference makes it, or upstream CoOp's
//! cached pickle when the dataset folder holds one).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ntlb_data::classes::ClassList;
use ntlb_data::fewshot::{draw_or_cached, DrawSource};
use ntlb_data::registry::DatasetKind;
use ntlb_data::source::{Layout, TrainSet};
use ntlb_data::split::FewShotSplit;
use ntlb_data::split_file::SplitSet;

#[derive(clap::Args)]
pub struct FewshotArgs {
    /// Dataset kind: imagenet, or a set of CoOp's benchmark (caltech101, oxford-pets, …).
    #[arg(long)]
    dataset: String,
    /// The dataset folder (or, for the split-list sets, the data root holding it).
    #[arg(long)]
    root: PathBuf,
    /// Images per class of the train list (val: at most 4).
    #[arg(long)]
    shots: usize,
    /// The reference's seed (>= 1).
    #[arg(long)]
    seed: u64,
    /// ImageNet's class list (wnid, name per line).
    #[arg(long, default_value = "datasets/imagenet_classnames.tsv")]
    classes: PathBuf,
    /// Print one JSON object: classnames, train, val ([path, label, classname]) and source.
    #[arg(long)]
    json: bool,
}

/// The lists as printed: paths as the split file lists them (ImageNet: relative to `--root`).
struct Shown {
    classnames: Vec<String>,
    train: Vec<(String, usize)>,
    val: Vec<(String, usize)>,
    test: Option<usize>,
    source: DrawSource,
}

pub fn run(a: FewshotArgs) -> Result<i32> {
    let kind = DatasetKind::from_name(&a.dataset).with_context(|| {
        let names: Vec<&str> = DatasetKind::ALL
            .iter()
            .map(|k| k.name())
            .filter(|n| *n == "imagenet" || !n.starts_with("imagenet"))
            .collect();
        format!("--dataset {}: not a dataset kind ({})", a.dataset, names.join(", "))
    })?;
    let shown = if kind.has_split_list() {
        split_list(kind, &a)?
    } else if kind == DatasetKind::Imagenet {
        imagenet(&a)?
    } else {
        bail!("--dataset {kind}: an evaluation set only; few-shot training draws from imagenet or a set of CoOp's benchmark");
    };
    let row = |(p, l): &(String, usize)| serde_json::json!([p, l, shown.classnames[*l]]);
    if a.json {
        let j = serde_json::json!({
            "dataset": kind.name(),
            "shots": a.shots,
            "seed": a.seed,
            "classnames": shown.classnames,
            "train": shown.train.iter().map(row).collect::<Vec<_>>(),
            "val": shown.val.iter().map(row).collect::<Vec<_>>(),
            "source": shown.source,
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(0);
    }
    println!("{kind}, {} shot(s), seed {}: {}", a.shots, a.seed, shown.source);
    println!(
        "# classes {} / # train_x {} / # val {} / # test {}",
        shown.classnames.len(),
        shown.train.len(),
        shown.val.len(),
        shown.test.map_or("–".into(), |n| n.to_string())
    );
    for (name, list) in [("train", &shown.train), ("val", &shown.val)] {
        if list.is_empty() {
            continue;
        }
        println!("\n{name}:\n{:>5}  {:<30}  path", "label", "class");
        for (p, l) in list {
            println!("{l:>5}  {:<30}  {p}", shown.classnames[*l]);
        }
    }
    Ok(0)
}

fn split_list(kind: DatasetKind, a: &FewshotArgs) -> Result<Shown> {
    let set = SplitSet::read(kind, &a.root)?;
    let d = draw_or_cached(
        &set.dir,
        &set.image_dir,
        &set.train,
        Some(set.val.as_slice()),
        |x| x.label,
        |x| x.path.clone(),
        a.shots,
        a.seed,
    )?;
    let pairs = |l: Vec<ntlb_data::split_item::SplitItem>| -> Vec<(String, usize)> { l.into_iter().map(|x| (x.path, x.label)).collect() };
    Ok(Shown {
        test: Some(set.test.len()),
        classnames: set.classnames.clone(),
        train: pairs(d.train),
        val: pairs(d.val),
        source: d.source,
    })
}

/// ImageNet: the draw of `ntlb train` and the sweep (its val is its test: no val list).
fn imagenet(a: &FewshotArgs) -> Result<Shown> {
    let classes = ClassList::read(&a.classes)?;
    let set = TrainSet::open(&a.root, &Layout::default(), &classes, None)?;
    let split = FewShotSplit::choose(&set, a.shots, a.seed)?;
    let test = ntlb_data::folder::ImageFolder::imagenet(&a.root, "val", &classes)
        .ok()
        .map(|f| f.items.len());
    let rel = |p: &Path| p.strip_prefix(&a.root).unwrap_or(p).display().to_string();
    Ok(Shown {
        classnames: classes.names.clone(),
        train: split
            .items
            .iter()
            .map(|(r, l)| (rel(&ntlb_core::image::ImageBytes::image_name(r)), *l))
            .collect(),
        val: Vec::new(),
        test,
        source: match split.cached {
            Some(c) => DrawSource::Cache {
                file: c.file,
                sha256: c.sha256,
            },
            None => DrawSource::Fresh { seed: a.seed },
        },
    })
}
