//! `ntlb train`: one-shot (few-shot) CoOp prompt learning, with or without the explainability loss.

use std::path::PathBuf;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::Clip;
use ntlb_data::classes::ClassList;
use ntlb_data::source::{Format, Layout, TrainSet};
use ntlb_data::split::FewShotSplit;
use ntlb_prompt::objective::NameScore;
use ntlb_prompt::prompt::{ClassPosition, PromptLayout};
use ntlb_prompt::train::{train, StopAt, TrainConfig};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Checkpoint: a Hugging Face folder, a .safetensors or torch.save (.bin/.pt/.pth) state
    /// dict, or a model in the local Hugging Face cache: org/name (transformers) or
    /// hf-hub:org/name (open_clip).
    #[arg(long)]
    model: PathBuf,
    /// Revision of a model name: branch, tag or commit hash (default: main).
    #[arg(long)]
    revision: Option<String>,
    /// quick_gelu or gelu for both towers (default: what the checkpoint declares; an error
    /// where it declares the other).
    #[arg(long)]
    activation: Option<ntlb_clip::config::Activation>,
    /// tokenizer.json (default: the one beside the model).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// ImageNet root (`images/train/<wnid>/` or `train/<wnid>/`); with `--format wds` a
    /// WebDataset root (`train/nshards.txt`, `train/{0..n-1}.tar`), with `--format parquet` a
    /// Hugging Face dataset folder (`data/train-*.parquet`) or one parquet file.
    #[arg(long)]
    data: PathBuf,
    /// How `--data` is stored: folder, wds or parquet (its index is kept in `--out`).
    #[arg(long, default_value = "folder", value_parser = clap::builder::TypedValueParser::map(
        clap::builder::PossibleValuesParser::new(["folder", "wds", "parquet"]),
        |s: String| match s.as_str() { "wds" => Format::Wds, "parquet" => Format::Parquet, _ => Format::Folder }))]
    format: Format,
    /// Class list: `wnid<TAB>name` lines (datasets/imagenet_classnames.tsv) or one name per line.
    #[arg(long)]
    classes: PathBuf,
    /// Output folder: prompt.safetensors, manifest.json, split.json, resumable state.
    #[arg(long)]
    out: PathBuf,
    /// TOML training config (defaults: the paper's); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed of the split, the initial context and the augmentation.
    #[arg(long)]
    seed: Option<u64>,
    /// λ, the weight of the explainability loss (0 = plain CoOp): `loss.expl_weight`.
    #[arg(long, visible_alias = "expl-weight", allow_negative_numbers = true)]
    lambda: Option<f64>,
    /// How the explainability score aggregates the relevance over the class-name tokens: max
    /// (the paper's), mean or min.
    #[arg(long, value_parser = clap::builder::TypedValueParser::map(clap::builder::PossibleValuesParser::new(NameScore::NAMES),
        |s| s.parse::<NameScore>().expect("a listed name parses")))]
    name_score: Option<NameScore>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    shots: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    n_ctx: Option<usize>,
    #[arg(long, value_parser = clap::builder::TypedValueParser::map(clap::builder::PossibleValuesParser::new(ClassPosition::NAMES),
        |s| s.parse::<ClassPosition>().expect("a listed name parses")))]
    position: Option<ClassPosition>,
    /// Split file to reuse or create (default: OUT/split.json).
    #[arg(long)]
    split_file: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the resolved configuration and the plan, train nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn load_config(path: Option<&PathBuf>) -> Result<TrainConfig> {
    match path {
        None => Ok(TrainConfig::default()),
        Some(p) => ntlb_core::toml_config::read_toml(p),
    }
}

pub fn run(mut a: TrainArgs) -> Result<i32> {
    a.model = ntlb_clip::hub::resolve_path(&a.model, a.revision.as_deref())?;
    let mut cfg = load_config(a.config.as_ref())?;
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if let Some(v) = a.lambda {
        cfg.loss.expl_weight = v;
    }
    if let Some(v) = a.name_score {
        cfg.loss.name_score = v;
    }
    if let Some(v) = a.epochs {
        cfg.optim.epochs = v;
    }
    if let Some(v) = a.shots {
        cfg.shots = v;
    }
    if let Some(v) = a.batch_size {
        cfg.optim.batch_size = v;
    }
    if let Some(v) = a.n_ctx {
        cfg.prompt.n_ctx = v;
    }
    if let Some(v) = a.position {
        cfg.prompt.class_position = v;
    }
    // Every setting checked at once, before any data is read or the dry run prints (the rules
    // are TrainConfig::validate's), named where it was set: the flag, or the file and key.
    cfg.validate().map_err(|e| {
        let flag = match e.key {
            "loss.expl_weight" if a.lambda.is_some() => Some("--lambda"),
            "optim.epochs" if a.epochs.is_some() => Some("--epochs"),
            "shots" if a.shots.is_some() => Some("--shots"),
            "optim.batch_size" if a.batch_size.is_some() => Some("--batch-size"),
            "prompt.n_ctx" if a.n_ctx.is_some() => Some("--n-ctx"),
            _ => None,
        };
        match (flag, &a.config) {
            (Some(f), _) => anyhow::anyhow!("{f} {}: {} (it sets `{}`)", e.value, e.rule, e.key),
            (None, Some(p)) => anyhow::anyhow!("{}: {e}", p.display()),
            (None, None) => anyhow::anyhow!("{e}"),
        }
    })?;
    let classes = ClassList::read(&a.classes)?;
    let layout = Layout {
        format: a.format,
        ..Layout::default()
    };
    let folder = TrainSet::open(&a.data, &layout, &classes, Some(&a.out))?;
    if let Some((p, why)) = folder.unreadable.first() {
        eprintln!(
            "{} entries of the training folders cannot be read and are left out of the split (first: {}: {why})",
            folder.unreadable.len(),
            p.display()
        );
    }
    let split_path = a.split_file.clone().unwrap_or_else(|| a.out.join("split.json"));
    let split = FewShotSplit::load_or_draw(&split_path, &folder, cfg.shots, cfg.seed)?;
    check_split(&split, &split_path, &folder, a.split_file.is_none(), &a.data, &a.out, &cfg)?;
    let tok = ClipTokenizer::for_model(&a.model, a.tokenizer.as_deref())?;
    // Every class prompt fits CLIP's context, checked before the dry run; the layout trained on
    // is built at the model's own context once the model is loaded.
    PromptLayout::new(&tok, &classes.names, &cfg.prompt)?;
    if a.dry_run {
        println!("{}", toml::to_string_pretty(&cfg)?);
        println!(
            "{} classes, {} training images ({}-shot, split {}), {} epochs",
            classes.len(),
            split.items.len(),
            cfg.shots,
            split_path.display(),
            cfg.optim.epochs
        );
        return Ok(0);
    }
    let device = ntlb_clip::device::parse_device(&a.device)?.autodiff();
    let clip = Clip::load_with(
        &a.model,
        ntlb_clip::LoadOptions {
            expected: None,
            activation: a.activation,
        },
        &device,
    )?;
    eprintln!("model: {}", clip.numerics.describe());
    // The dry run checked the prompts at CLIP's 77 positions; train at the model's own.
    let layout = PromptLayout::new(
        &tok.with_context_length(clip.config.text.context_length),
        &classes.names,
        &cfg.prompt,
    )?;
    let weights = ntlb_clip::weights::weights_file(&a.model)?;
    let sha = ntlb_core::digest::sha256_file(&weights)?;
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} steps {elapsed}<{eta} {msg}").expect("valid template"));
    let learned = train(
        &clip,
        &layout,
        &classes.names,
        &split.items,
        &cfg,
        &a.out,
        (&weights.display().to_string(), &sha),
        StopAt::default(),
        |p, total| {
            bar.set_length(total as u64);
            bar.set_position(p.step as u64);
            bar.set_message(format!(
                "epoch {} lr {:.2e} loss {:.4} (ce {:.4}, expl {:.4}) acc {:.1}%",
                p.epoch, p.lr, p.loss, p.ce, p.expl, p.acc
            ));
        },
    )?;
    bar.finish();
    println!(
        "trained {} epochs; prompt in {}",
        learned.manifest.epochs_done,
        a.out.join(ntlb_prompt::train::PROMPT_FILE).display()
    );
    Ok(0)
}

/// A split file read back must be of this data: `--out`'s own `split.json` the draw of `--data`
/// with these shots and seed (another one is the split of another run, which the state in
/// `--out` would resume), a `--split-file` images that `--data` holds. Each refusal names the file.
fn check_split(
    split: &FewShotSplit,
    path: &std::path::Path,
    folder: &TrainSet,
    own: bool,
    data: &std::path::Path,
    out: &std::path::Path,
    cfg: &TrainConfig,
) -> Result<()> {
    if own {
        if *split != FewShotSplit::choose(folder, cfg.shots, cfg.seed)? {
            anyhow::bail!(
                "{}: holds the split of another run (other images than the draw of --data {} with {} shot(s) and seed {}): \
                 train into a new --out, or delete {} and the rest of {}",
                path.display(),
                data.display(),
                cfg.shots,
                cfg.seed,
                path.display(),
                out.display()
            );
        }
        return Ok(());
    }
    let held: std::collections::HashSet<_> = folder.items.iter().collect();
    if let Some((img, label)) = split.items.iter().find(|it| !held.contains(it)) {
        anyhow::bail!(
            "{}: image {} (class {label}) is not an image of --data {}: the split is of other data",
            path.display(),
            ntlb_core::image::ImageBytes::image_name(img).display(),
            data.display()
        );
    }
    Ok(())
}
