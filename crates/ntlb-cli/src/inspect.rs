//! `ntlb inspect`: how a checkpoint will be computed — its architecture, each tower's
//! activation and the test-time normalisation, each with where it was read — before any run.

use std::path::PathBuf;

use anyhow::Result;
use ntlb_clip::config::{Activation, VisionConfig};
use ntlb_clip::{Clip, LoadOptions};

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Checkpoint: a Hugging Face folder, a state-dict file, or a model in the local Hugging
    /// Face cache (org/name, hf-hub:org/name).
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
    let path = ntlb_clip::hub::resolve_path(&a.model, a.revision.as_deref())?;
    let clip = Clip::load_with(
        &path,
        LoadOptions {
            expected: None,
            activation: a.activation,
        },
        &burn::tensor::Device::flex(),
    )?;
    let c = &clip.config;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"path": path, "config": c, "numerics": clip.numerics, "identity": clip.numerics.identity()})
        );
        return Ok(0);
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
    println!("checkpoint     {}", path.display());
    println!("image tower    {vision}");
    println!(
        "text tower     width {}, {} layers, {} heads, context {}, vocabulary {}, {}",
        t.width, t.layers, t.heads, t.context_length, t.vocab_size, t.activation
    );
    println!("embedding      {}", c.embed_dim);
    println!("activation     {}", clip.numerics.activation_source);
    let n = &clip.numerics.normalization;
    println!(
        "normalisation  mean {:?} std {:?} ({})",
        n.mean, n.std, clip.numerics.normalization_source
    );
    Ok(0)
}
