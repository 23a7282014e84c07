//! `ntlb explain`: per-token relevance of prompts for one image, as JSON and a bar chart.

mod figure;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::{Tensor, TensorData};
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::{l2_normalize, Clip};
use ntlb_prompt::class_text::ClassTextEncoder;
use ntlb_prompt::explain::{prompt_relevance, TokenRelevance};
use ntlb_prompt::prompt::PromptLayout;
use ntlb_prompt::train::LearnedPrompt;

#[derive(clap::Args)]
pub struct ExplainArgs {
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
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Image file (JPEG, PNG or WebP).
    #[arg(long)]
    image: PathBuf,
    /// Text prompts (repeat the flag for several).
    #[arg(long = "prompt")]
    prompts: Vec<String>,
    /// Class list; with --learned the learned prompts, else "a photo of a {name}.".
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Folder written by `ntlb train`.
    #[arg(long)]
    learned: Option<PathBuf>,
    /// Output folder: relevance.json and relevance.png.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(mut a: ExplainArgs) -> Result<i32> {
    // Arguments that can only fail are refused before the model is read.
    if let Some(p) = a.prompts.iter().find(|p| p.trim().is_empty()) {
        bail!("--prompt {p:?}: an empty prompt has nothing to explain");
    }
    if a.out.exists() && !a.out.is_dir() {
        bail!(
            "--out {}: exists and is not a folder (the output folder for relevance.json and relevance.png)",
            a.out.display()
        );
    }
    a.model = ntlb_clip::hub::resolve_path(&a.model, a.revision.as_deref())?;
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
    let tok = ClipTokenizer::for_model(&a.model, a.tokenizer.as_deref())?.with_context_length(clip.config.text.context_length);
    let n = clip.config.vision.image_resolution();
    let pixels = ntlb_clip::preprocess::load_image_with(&a.image, n, Default::default(), &clip.numerics.normalization)?;
    let image = l2_normalize(
        clip.encode_image(Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, n, n]), &device))
            .detach(),
    );
    let bad = ntlb_core::host::to_f32_vec(image.clone()).iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        bail!(
            "{}: its image features under {} are not finite ({bad} values): the model's numbers overflow on it; no logit or relevance to show",
            a.image.display(),
            a.model.display()
        );
    }
    let names = match &a.classes {
        Some(p) => ntlb_data::classes::ClassList::read(p)?.names,
        None => Vec::new(),
    };
    let mut items = Vec::new();
    if let Some(dir) = &a.learned {
        if names.is_empty() {
            bail!("--learned needs --classes");
        }
        let learned = LearnedPrompt::load(dir)?;
        check_learned(
            dir,
            &learned,
            a.classes.as_deref().unwrap_or(Path::new("")),
            &names,
            &a.model,
            &clip,
        )?;
        let layout = PromptLayout::new(&tok, &names, &learned.manifest.config.prompt)?;
        let ctx = Tensor::<2>::from_data(TensorData::new(learned.ctx.clone(), learned.manifest.ctx_shape), &device);
        let all: Vec<usize> = (0..names.len()).collect();
        let enc = ClassTextEncoder::new(&clip, &layout);
        let chunk = enc.chunk(&all);
        let (rows, logits) = prompt_relevance(&clip, enc.prompts(&chunk, ctx), &chunk.eot, image)?;
        let mask = layout.name_mask();
        for (c, name) in names.iter().enumerate() {
            let e = layout.eot[c];
            let tokens = layout.token_strings(&tok, c);
            let score = (0..=e).filter(|&p| mask[c][p] > 0.0).map(|p| rows[c][p]).fold(0.0f32, f32::max);
            items.push(TokenRelevance {
                prompt: format!("[learned] {name}"),
                tokens,
                relevance: rows[c][..=e].to_vec(),
                logit: logits[c],
                class_name_score: Some(score),
            });
        }
    } else {
        let mut texts = a.prompts.clone();
        texts.extend(names.iter().map(|n| format!("a photo of a {}.", n.replace('_', " "))));
        if texts.is_empty() {
            bail!("give --prompt TEXT, or --classes FILE");
        }
        let toks = tok.tokenize_all(&texts, false)?;
        let ids: Vec<Vec<u32>> = toks.iter().map(|t| t.ids.clone()).collect();
        let eot: Vec<usize> = toks.iter().map(|t| t.eot).collect();
        let len = eot.iter().max().copied().unwrap_or(0) + 1;
        let prompts = clip.text.embed(&ids).narrow(1, 0, len);
        let (rows, logits) = prompt_relevance(&clip, prompts, &eot, image)?;
        for (i, text) in texts.iter().enumerate() {
            let tokens = ids[i][..=eot[i]]
                .iter()
                .map(|&t| tok.id_to_token(t).unwrap_or_default().replace("</w>", ""))
                .collect();
            items.push(TokenRelevance {
                prompt: text.clone(),
                tokens,
                relevance: rows[i][..=eot[i]].to_vec(),
                logit: logits[i],
                class_name_score: None,
            });
        }
    }
    // A NaN logit or relevance is not an explanation: named, never printed.
    if let Some(it) = items
        .iter()
        .find(|it| !it.logit.is_finite() || it.relevance.iter().any(|r| !r.is_finite()))
    {
        bail!(
            "prompt {:?}: its logit ({}) or relevance is not finite: the model's numbers overflow on this image or prompt",
            it.prompt,
            it.logit
        );
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("--out {}: cannot create the folder", a.out.display()))?;
    let json = serde_json::json!({"image": a.image.display().to_string(), "model": a.model.display().to_string(), "prompts": items});
    ntlb_core::atomic::write_atomic(&a.out.join("relevance.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    let name = a.image.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    figure::plot_relevance(&a.out.join("relevance.png"), &name, &items)?;
    for it in &items {
        let best = it
            .relevance
            .iter()
            .enumerate()
            .fold((0, 0.0f32), |b, (i, &r)| if r > b.1 { (i, r) } else { b });
        println!(
            "{:<48} logit {:>7.3}  most relevant token: {:?} ({:.3})",
            it.prompt, it.logit, it.tokens[best.0], best.1
        );
    }
    println!("wrote {} and relevance.png", a.out.join("relevance.json").display());
    Ok(0)
}

/// A learned prompt is used only with what it was trained with: class-specific contexts belong
/// to the classes of its manifest in their order (another order would give each class another
/// class's context), and every context to the checkpoint it was trained on, by digest and by
/// the numerics it was computed with. Each refusal names both sides.
fn check_learned(dir: &Path, learned: &LearnedPrompt, classes_file: &Path, names: &[String], model: &Path, clip: &Clip) -> Result<()> {
    let m = &learned.manifest;
    let manifest = dir.join(ntlb_prompt::train::MANIFEST_FILE);
    if m.config.prompt.class_specific && m.classes != names {
        let why = match (0..names.len().min(m.classes.len())).find(|&i| names[i] != m.classes[i]) {
            Some(i) => format!(
                "class {i} is `{}` in {}, `{}` in the manifest",
                names[i],
                classes_file.display(),
                m.classes[i]
            ),
            None => format!(
                "{} classes in {}, {} in the manifest",
                names.len(),
                classes_file.display(),
                m.classes.len()
            ),
        };
        bail!(
            "--learned {}: class-specific contexts were learned for the class list of {}, not for --classes {} ({why}): \
             each class would be given another class's context",
            dir.display(),
            manifest.display(),
            classes_file.display()
        );
    }
    if m.ctx_shape[1] != clip.config.text.width {
        bail!(
            "--learned {}: its context is {} wide, the text tower of --model {} is {} wide",
            dir.display(),
            m.ctx_shape[1],
            model.display(),
            clip.config.text.width
        );
    }
    let weights = ntlb_clip::weights::weights_file(model)?;
    let sha = ntlb_core::digest::sha256_file(&weights)?;
    if sha != m.checkpoint_sha256 {
        bail!(
            "--learned {}: trained on {} (SHA-256 {}, {}), --model {} is {} (SHA-256 {sha}): a context only means something to the model it was learned with",
            dir.display(),
            m.checkpoint,
            m.checkpoint_sha256,
            manifest.display(),
            model.display(),
            weights.display()
        );
    }
    if let Some(n) = m.model_numerics.as_ref().filter(|n| n.identity() != clip.numerics.identity()) {
        bail!(
            "--learned {}: trained with the numerics {} ({}), --model {} is loaded as {}: pass the activation it was trained with",
            dir.display(),
            n.describe(),
            manifest.display(),
            model.display(),
            clip.numerics.describe()
        );
    }
    Ok(())
}
