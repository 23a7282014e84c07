//! The cost of a sweep for `--dry-run`: matmul FLOP per model size and template count, the
//! image encodings once per (model, dataset) as the shared cache does them, and the Slurm
//! array to submit.

use std::collections::BTreeSet;

use ntlb_clip::ClipConfig;
use ntlb_data::classes::ClassList;
use ntlb_data::registry::ClassRule;
use ntlb_data::variants::{DatasetKind, EvalSet};

use crate::sweep::{Job, ModelEntry, SweepConfig};
use crate::zeroshot::{read_templates, templates_path};

/// Tokens a text encoding runs over (the encoder stops at the longest end-of-text of a batch):
/// templates with ImageNet class names, and CoOp's prompts (context + name + end).
const TEMPLATE_TOKENS: usize = 24;
const PROMPT_TOKENS: usize = 24;

/// Modelled matmul FLOP of one prompt-learning step (not counted ones), the one model the dry
/// run and `ntlb bench train-step` share: `batch` image encodings, the all-class logits (one text
/// forward per class, skipped by the shared pass 1 when the classes fit in one chunk), pass 2 (C
/// prompts forward + backward) and, with λ ≠ 0, pass 1: replicated, B·C prompts forward +
/// backward; shared (the default), the B cotangents through the activation-only backward of
/// pass 2's forward. The weights are frozen, so a backward computes input gradients only: about
/// one forward. `text_tokens`: the mean prompt length the encoder runs over.
pub fn coop_step_flop(
    c: &ClipConfig,
    batch: usize,
    classes: usize,
    chunk: usize,
    text_tokens: usize,
    expl: bool,
    pass1: ntlb_prompt::objective::Pass1,
) -> f64 {
    use ntlb_prompt::objective::Pass1;
    let text = 2.0 * c.text_macs(text_tokens) as f64;
    let img = 2.0 * c.image_macs() as f64;
    let pass1_work = match pass1 {
        Pass1::Replicated => 2.0 * batch as f64,
        Pass1::Shared => batch as f64,
    };
    let relevance_passes = if expl { pass1_work + 2.0 } else { 2.0 };
    let logits_pass = if pass1 == Pass1::Shared && classes <= chunk { 0.0 } else { 1.0 };
    img * batch as f64 + text * classes as f64 * (logits_pass + relevance_passes)
}

/// The architecture of a model entry: its name or file name when it names a preset, else
/// `None` (the caller says it assumed one).
pub fn architecture(m: &ModelEntry) -> Option<ClipConfig> {
    ClipConfig::preset(&m.name).or_else(|| {
        let stem = m.path.file_stem()?.to_string_lossy().to_string();
        ClipConfig::preset(&stem)
    })
}

#[derive(Debug, Default, Clone)]
pub struct ModelCost {
    pub jobs: usize,
    pub tflop: f64,
    /// The costliest single job (what a one-job-per-task array needs as time limit).
    pub max_job_tflop: f64,
    pub assumed: bool,
}

/// Images and class count of each dataset, from the opened sets or (not downloaded yet) the
/// published ones.
pub struct Workload<'a> {
    /// The kind of each dataset (their per-dataset templates).
    pub kinds: &'a [DatasetKind],
    pub images: &'a [usize],
    pub classes: &'a [usize],
    /// Classes of the ImageNet training set.
    pub train_classes: usize,
    /// The dataset entries' names (a CoOp job trained on one is evaluated on it alone, with its
    /// classes); empty where no job trains on one.
    pub names: &'a [String],
}

/// Training steps of a CoOp job: epochs × batches per epoch, where an epoch of
/// `classes × shots` images drops its last partial batch unless it holds less than one batch
/// (the trainer's rule, [`ntlb_prompt::train::steps_per_epoch`]). A class with fewer images
/// than `shots` gives all it has, so this is an upper bound there.
pub fn coop_steps(classes: usize, shots: usize, batch: usize, epochs: usize) -> usize {
    epochs * ntlb_prompt::train::steps_per_epoch(classes * shots, batch)
}

/// TFLOP of every job to run, grouped by model (in plan order).
pub fn estimate(jobs: &[&Job], w: &Workload) -> Vec<(String, ModelCost)> {
    let mut out: Vec<(String, ModelCost)> = Vec::new();
    let mut encoded: BTreeSet<String> = BTreeSet::new();
    let fallback = ClipConfig::preset("ViT-B/32").expect("preset");
    for j in jobs {
        let m = j.model();
        let arch = architecture(m);
        let cfg = arch.clone().unwrap_or_else(|| fallback.clone());
        let (f_img, e) = (2.0 * cfg.image_macs() as f64, cfg.embed_dim as f64);
        let f_txt = |l| 2.0 * cfg.text_macs(l) as f64;
        let mut t = 0.0;
        // The cache encodes each dataset once per model, whichever job gets there first.
        if encoded.insert(m.name.clone()) {
            t += w.images.iter().sum::<usize>() as f64 * f_img;
        }
        let distinct_lists: BTreeSet<usize> = w.classes.iter().copied().collect();
        let score = |classifiers: f64| -> f64 {
            w.images
                .iter()
                .zip(w.classes)
                .map(|(&n, &c)| classifiers * 2.0 * n as f64 * c as f64 * e)
                .sum()
        };
        match j {
            Job::ZeroShot { zero_shot, .. } => {
                // Texts are encoded once per template and class list; a `{dataset}` path gives
                // each dataset its own list. An unreadable file is costed as 80 templates.
                let count = |p: &std::path::Path| read_templates(p).map(|t| t.len()).unwrap_or(80);
                let mut encoded_texts: BTreeSet<(usize, String)> = BTreeSet::new();
                let mut unknown: BTreeSet<(usize, std::path::PathBuf)> = BTreeSet::new();
                let mut scored = 0.0;
                for (i, &c) in w.classes.iter().enumerate() {
                    let kind = w.kinds[i];
                    let files: Vec<std::path::PathBuf> = std::iter::once(&zero_shot.templates)
                        .filter(|_| zero_shot.per_template)
                        .chain(zero_shot.ensembles.values())
                        .map(|p| templates_path(p, kind))
                        .collect();
                    for p in &files {
                        match read_templates(p) {
                            Ok(ts) => encoded_texts.extend(ts.into_iter().map(|t| (c, t))),
                            Err(_) => {
                                unknown.insert((c, p.clone()));
                            }
                        }
                    }
                    let per = if zero_shot.per_template {
                        count(&templates_path(&zero_shot.templates, kind))
                    } else {
                        0
                    };
                    let classifiers = (per + zero_shot.ensembles.len()) as f64;
                    scored += classifiers * 2.0 * w.images[i] as f64 * c as f64 * e;
                }
                let texts: usize =
                    encoded_texts.iter().map(|(c, _)| c).sum::<usize>() + unknown.iter().map(|(c, p)| c * count(p)).sum::<usize>();
                t += texts as f64 * f_txt(TEMPLATE_TOKENS) + scored;
            }
            Job::Coop { train, train_dataset, .. } => {
                let b = train.optim.batch_size.max(1);
                // Trained on a dataset entry: its classes, scored on its test split alone.
                let own = train_dataset.as_ref().and_then(|t| w.names.iter().position(|n| n == t));
                let c = own.map_or(w.train_classes, |i| w.classes[i]);
                let steps = coop_steps(c, train.shots, b, train.optim.epochs) as f64;
                // The trainer's pass 1 is the shared one (`Pass1::default()`).
                let step = coop_step_flop(
                    &cfg,
                    b,
                    c,
                    train.chunk,
                    PROMPT_TOKENS,
                    train.loss.expl_weight != 0.0,
                    Default::default(),
                );
                t += steps * step;
                t += match own {
                    Some(i) => c as f64 * f_txt(PROMPT_TOKENS) + 2.0 * w.images[i] as f64 * c as f64 * e,
                    None => distinct_lists.iter().sum::<usize>() as f64 * f_txt(PROMPT_TOKENS) + score(1.0),
                };
            }
        }
        if out.last().is_none_or(|(n, _)| *n != m.name) {
            out.push((m.name.clone(), ModelCost::default()));
        }
        let entry = &mut out.last_mut().expect("pushed").1;
        entry.jobs += 1;
        entry.tflop += t / 1e12;
        entry.max_job_tflop = entry.max_job_tflop.max(t / 1e12);
        entry.assumed |= arch.is_none();
    }
    out
}

/// Effective f32 rate assumed for the GPU-hour figure: the shared-pass-1 step at 1000 classes ×
/// batch 32 measured 33 modelled TFLOP/s on an H200 (docs/, GPU check); half precision is faster.
pub const ASSUMED_GPU_TFLOPS: f64 = 33.0;
/// Two busy CPU cores (measured: burn-flex matmuls at ~50 GFLOP/s on a quiet pair).
pub const ASSUMED_CPU_TFLOPS: f64 = 0.05;

/// Images and classes per dataset: the opened sets', or before the data is downloaded the
/// published sizes of the registry (images evaluated, classes; a set labelled through the
/// sweep's class list has that list's length).
fn dataset_sizes(cfg: &SweepConfig, classes: &ClassList, sets: &[EvalSet]) -> (Vec<usize>, Vec<usize>) {
    if !sets.is_empty() {
        return (
            sets.iter().map(|s| s.items.len()).collect(),
            sets.iter().map(|s| s.classes.len()).collect(),
        );
    }
    let images = cfg.datasets.iter().map(|d| d.kind.spec().sizes.test).collect();
    let n_classes = cfg
        .datasets
        .iter()
        .map(|d| match d.kind.spec().classes {
            ClassRule::ImagenetList => classes.len(),
            _ => d.kind.spec().sizes.classes,
        })
        .collect();
    (images, n_classes)
}

/// The `--dry-run` cost table of the jobs to run, per model, and the Slurm array to submit.
pub(crate) fn print_estimate(cfg: &SweepConfig, classes: &ClassList, sets: &[EvalSet], todo: &[&Job], plan_len: usize) {
    let (images, n_classes) = dataset_sizes(cfg, classes, sets);
    let kinds: Vec<DatasetKind> = cfg.datasets.iter().map(|d| d.kind).collect();
    let names: Vec<String> = cfg.datasets.iter().map(|d| d.name().to_string()).collect();
    let w = Workload {
        kinds: &kinds,
        images: &images,
        classes: &n_classes,
        train_classes: classes.len(),
        names: &names,
    };
    let costs = estimate(todo, &w);
    let gpu_h = |t: f64| t / ASSUMED_GPU_TFLOPS / 3600.0;
    println!(
        "estimated cost of the {} job(s) to run (matmul FLOP; each dataset encoded once per model through the shared cache):",
        todo.len()
    );
    println!(
        "  {:<14} {:>5} {:>10} {:>8} {:>16}",
        "model", "jobs", "TFLOP", "GPU-h", "largest job GPU-h"
    );
    let (mut total, mut largest) = (0.0, 0.0f64);
    for (name, c) in &costs {
        println!(
            "  {:<14} {:>5} {:>10.1} {:>8.2} {:>16.2}{}",
            name,
            c.jobs,
            c.tflop,
            gpu_h(c.tflop),
            gpu_h(c.max_job_tflop),
            if c.assumed { "  (size unknown: costed as ViT-B/32)" } else { "" }
        );
        total += c.tflop;
        largest = largest.max(c.max_job_tflop);
    }
    println!(
        "  {:<14} {:>5} {:>10.1} {:>8.2}   (GPU-h at an effective {ASSUMED_GPU_TFLOPS} TFLOP/s in f32; {:.0} h at {ASSUMED_CPU_TFLOPS} TFLOP/s on 2 CPU cores)",
        "total",
        todo.len(),
        total,
        gpu_h(total),
        total / ASSUMED_CPU_TFLOPS / 3600.0
    );
    if plan_len > 0 {
        println!(
            "Slurm: sbatch --array=0-{} scripts/slurm/sweep-array.sbatch CONFIG   ({plan_len} tasks, one job each; the longest needs ≈ {:.2} GPU-h plus image decoding; fewer tasks: any --array=0-(n-1))",
            plan_len - 1,
            gpu_h(largest)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zero_shot(model: &str, templates: &std::path::Path) -> Job {
        Job::ZeroShot {
            model: ModelEntry {
                name: model.into(),
                path: format!("{model}.safetensors").into(),
                tokenizer: None,
                revision: None,
                activation: None,
            },
            zero_shot: crate::sweep::ZeroShotSweep {
                templates: templates.to_path_buf(),
                per_template: true,
                ensembles: Default::default(),
                allow_duplicate_names: false,
            },
        }
    }

    #[test]
    fn zero_shot_cost_follows_template_count_and_model_size() {
        let dir = tempfile::tempdir().unwrap();
        let (t2, t8) = (dir.path().join("t2.txt"), dir.path().join("t8.txt"));
        std::fs::write(&t2, "a {}.\nthe {}.\n").unwrap();
        std::fs::write(&t8, (0..8).map(|i| format!("photo {i} of a {{}}.\n")).collect::<String>()).unwrap();
        let w = Workload {
            kinds: &[DatasetKind::Imagenet, DatasetKind::ImagenetA],
            images: &[50_000, 7_500],
            classes: &[1000, 200],
            train_classes: 1000,
            names: &[],
        };
        let cost = |jobs: &[&Job]| estimate(jobs, &w).iter().map(|(_, c)| c.tflop).sum::<f64>();
        let (b32_2, b32_8) = (zero_shot("ViT-B/32", &t2), zero_shot("ViT-B/32", &t8));
        let images = 57_500.0 * 2.0 * ClipConfig::preset("ViT-B/32").unwrap().image_macs() as f64 / 1e12;
        let per_template = (cost(&[&b32_8]) - cost(&[&b32_2])) / 6.0;
        assert!(per_template > 0.0);
        assert!(
            (cost(&[&b32_2]) - images - 2.0 * per_template).abs() < 1e-6 * images,
            "images + templates"
        );
        // A second job of the same model reuses the cached features: no second image pass.
        assert!((cost(&[&b32_2, &b32_8]) - cost(&[&b32_2]) - 8.0 * per_template).abs() < 1e-6 * images);
        // ViT-B/16 images cost ~4× B/32; an unknown model is costed as B/32 and flagged.
        let b16 = zero_shot("ViT-B/16", &t2);
        assert!(cost(&[&b16]) > 3.5 * images);
        let odd = estimate(&[&zero_shot("my-model", &t2)], &w);
        assert!(odd[0].1.assumed && !estimate(&[&b16], &w)[0].1.assumed);
    }

    /// Before the data is downloaded, each dataset is costed at the registry's published size
    /// (its images evaluated and its own classes; ImageNet's list for the ImageNet kinds), and
    /// a `{dataset}` template path costs each dataset's own list.
    #[test]
    fn sets_not_downloaded_are_costed_at_their_published_sizes() {
        let toml = "name = \"t\"\nresults = \"r\"\nclasses = \"c\"\n\
                    [[models]]\nname = \"ViT-B/32\"\npath = \"m\"\n\
                    [[datasets]]\nkind = \"imagenet\"\nroot = \"a\"\n\
                    [[datasets]]\nkind = \"caltech101\"\nroot = \"b\"\n\
                    [[datasets]]\nkind = \"food101\"\nroot = \"c\"\n";
        let cfg: SweepConfig = toml::from_str(toml).unwrap();
        let imagenet = ClassList {
            ids: vec![String::new(); 1000],
            names: vec![String::new(); 1000],
        };
        assert_eq!(
            dataset_sizes(&cfg, &imagenet, &[]),
            (vec![50_000, 2_465, 30_300], vec![1000, 100, 101])
        );
        let dir = tempfile::tempdir().unwrap();
        for (kind, n) in [("imagenet", 1), ("caltech101", 5)] {
            std::fs::create_dir_all(dir.path().join(kind)).unwrap();
            std::fs::write(
                dir.path().join(kind).join("t.txt"),
                (0..n).map(|i| format!("photo {i} of a {{}}.\n")).collect::<String>(),
            )
            .unwrap();
        }
        let job = zero_shot("ViT-B/32", &dir.path().join("{dataset}/t.txt"));
        let w = |kinds: &'static [DatasetKind]| Workload {
            kinds,
            images: &[0, 0],
            classes: &[1000, 100],
            train_classes: 1000,
            names: &[],
        };
        let cost = |kinds| estimate(&[&job], &w(kinds))[0].1.tflop;
        let per_class_template = 2.0 * ClipConfig::preset("ViT-B/32").unwrap().text_macs(TEMPLATE_TOKENS) as f64 / 1e12;
        let own = cost(&[DatasetKind::Imagenet, DatasetKind::Caltech101]);
        assert!((own - (1000.0 + 5.0 * 100.0) * per_class_template).abs() < 1e-9, "{own}");
    }

    #[test]
    fn resnet_sizes_follow_depth_and_vit_b16_costs_about_four_b32() {
        let rn50 = ClipConfig::preset("RN50").unwrap().image_macs() as f64 / 1e9;
        let rn101 = ClipConfig::preset("RN101").unwrap().image_macs() as f64 / 1e9;
        let b32 = ClipConfig::preset("ViT-B/32").unwrap().image_macs() as f64 / 1e9;
        let b16 = ClipConfig::preset("ViT-B/16").unwrap().image_macs() as f64 / 1e9;
        // ResNet-50 is 4.1 GMAC; CLIP's 3-conv stem (+0.24), 3×3 convs before the stride in
        // each first block (+1.04) and attention pooling (+0.73) make ≈ 6.1. ViT-B/32 4.4, B/16 17.6.
        assert!((5.8..6.4).contains(&rn50), "RN50 {rn50}");
        assert!((9.4..10.2).contains(&rn101), "RN101 {rn101}");
        assert!((4.0..4.8).contains(&b32), "ViT-B/32 {b32}");
        assert!((16.5..18.5).contains(&b16), "ViT-B/16 {b16}");
    }

    /// Steps follow the trainer's batching: a 1-shot EuroSAT epoch (10 images, batch 32) is one
    /// short batch, a 1-shot ImageNet epoch 31 steps (8 images dropped), a 16-shot ImageNet
    /// epoch 500; a job trained on a dataset entry is costed with its classes.
    #[test]
    fn coop_steps_follow_drop_last_and_the_training_dataset() {
        assert_eq!(coop_steps(10, 1, 32, 50), 50);
        assert_eq!(coop_steps(1000, 1, 32, 50), 31 * 50);
        assert_eq!(coop_steps(1000, 16, 32, 50), 500 * 50);
        assert_eq!(coop_steps(47, 1, 32, 50), 50);
        let job = |train_dataset: Option<&str>, shots: usize| {
            let mut train = ntlb_prompt::train::TrainConfig::default();
            train.shots = shots;
            Job::Coop {
                model: ModelEntry {
                    name: "ViT-B/32".into(),
                    path: "ViT-B/32.safetensors".into(),
                    tokenizer: None,
                    revision: None,
                    activation: None,
                },
                lambda: 0.0,
                seed: 1,
                train,
                train_root: "t".into(),
                train_dataset: train_dataset.map(String::from),
            }
        };
        let names = ["imagenet".to_string(), "eurosat".to_string()];
        let w = Workload {
            kinds: &[DatasetKind::Imagenet, DatasetKind::Eurosat],
            images: &[0, 0],
            classes: &[1000, 10],
            train_classes: 1000,
            names: &names,
        };
        let cost = |j: &Job| estimate(&[j], &w)[0].1.tflop;
        assert!(cost(&job(Some("eurosat"), 1)) < cost(&job(None, 1)) / 10.0);
        assert!(cost(&job(None, 2)) > 1.9 * cost(&job(None, 1)));
    }
}
