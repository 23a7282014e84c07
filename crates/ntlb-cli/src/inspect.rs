//! `ntlb inspect`: how a checkpoint will be computed — its architecture, each tower's
//! activation and the test-time normalisation, each with where it was read — before any run.

use std::path::PathBuf;

use anyhow::{bail, Result};
use burn::tensor::{Tensor, TensorData};
use ntlb_clip::config::{Activation, VisionConfig};
use ntlb_clip::{l2_normalize, Clip, LoadOptions};

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Checkpoint: a Hugging Face folder, a state-dict or TorchScript file, a model in the
    /// local Hugging Face cache (org/name, hf-hub:org/name), a clip.load name (ViT-B/32: its
    /// file in --clip-cache) or an open_clip pair (ViT-B-32/laion2b_s34b_b79k).
    #[arg(long)]
    model: PathBuf,
    /// Revision of a model name (branch, tag or commit hash).
    #[arg(long)]
    revision: Option<String>,
    /// quick_gelu or gelu; an error where the checkpoint declares the other.
    #[arg(long)]
    activation: Option<Activation>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: InspectArgs) -> Result<i32> {
    // A name of clip.load's or open_clip's tables: where it resolved and what was checked.
    let named = match a.model.to_str().filter(|s| !a.model.exists() && ntlb_clip::names::is_name(s)) {
        Some(spec) => ntlb_clip::names::resolve_in(spec, a.revision.as_deref(), &ntlb_clip::hub::HubEnv::from_process(), &[])?,
        None => None,
    };
    let path = match &named {
        Some(n) => n.path.clone(),
        None => ntlb_clip::hub::resolve_path(&a.model, a.revision.as_deref())?,
    };
    let tokenizer = ntlb_clip::tokenizer::ClipTokenizer::for_model(&path, None).map_or_else(|e| format!("none found: {e}"), |t| t.source);
    let clip = Clip::load_with(
        &path,
        LoadOptions {
            expected: None,
            activation: a.activation,
        },
        &burn::tensor::Device::flex(),
    )?;
    let c = &clip.config;
    let probe = probe(&clip);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"path": path, "name": named, "tokenizer": tokenizer, "config": c, "numerics": clip.numerics, "identity": clip.numerics.identity(),
                "finite_features": probe.is_ok()})
        );
        return probe.map(|_| 0);
    }
    let vision = match &c.vision {
        VisionConfig::Vit {
            width,
            layers,
            heads,
            patch_size,
            image_resolution,
            activation,
        } => format!("ViT width {width}, {layers} layers, {heads} heads, patch {patch_size}, {image_resolution} px, {activation}"),
        VisionConfig::ResNet {
            width,
            layers,
            image_resolution,
            ..
        } => format!("ModifiedResNet width {width}, blocks {layers:?}, {image_resolution} px, ReLU"),
    };
    let t = &c.text;
    if let Some(n) = &named {
        println!("name           {} ({}): {}", n.name, n.library, n.entry);
        println!("resolved       {} ({})", n.path.display(), n.located);
        println!("checked        {}", n.checked);
    }
    println!("checkpoint     {}", path.display());
    println!("image tower    {vision}");
    println!(
        "text tower     width {}, {} layers, {} heads, context {}, vocabulary {}, {}",
        t.width, t.layers, t.heads, t.context_length, t.vocab_size, t.activation
    );
    println!("embedding      {}", c.embed_dim);
    println!("tokenizer      {tokenizer}");
    println!("activation     {}", clip.numerics.activation_source);
    let n = &clip.numerics.normalization;
    println!(
        "normalisation  mean {:?} std {:?} ({})",
        n.mean, n.std, clip.numerics.normalization_source
    );
    probe?;
    println!("features       finite (a blank picture and an empty prompt)");
    Ok(0)
}

/// Both towers on a blank picture and an empty prompt: a checkpoint whose numbers overflow
/// (finite weights, non-finite features) would score every image NaN, so it is named here,
/// before any run, with the tower at fault.
fn probe(clip: &Clip) -> Result<()> {
    let device = clip.text.token_embedding.device();
    let n = clip.config.vision.image_resolution();
    let image = l2_normalize(clip.encode_image(Tensor::<4>::from_data(
        TensorData::new(vec![0f32; 3 * n * n], [1, 3, n, n]),
        &device,
    )));
    // Start and end of text are the last two ids of CLIP's vocabularies; any id would do.
    let v = clip.config.text.vocab_size as u32;
    let text = l2_normalize(clip.encode_text(&[vec![v - 2, v - 1]], &[1]));
    for (tower, f, input) in [("image", image, "a blank picture"), ("text", text, "an empty prompt")] {
        let f = ntlb_core::host::to_f32_vec(f);
        let bad = f.iter().filter(|x| !x.is_finite()).count();
        if bad > 0 {
            bail!(
                "{tower} tower: the features of {input} are not finite ({bad} of {} values): the checkpoint's numbers overflow, \
                 and every score computed with it would be NaN",
                f.len()
            );
        }
    }
    Ok(())
}
