//! The CLIP model: two towers and the logit scale.
//!
//! Field paths spell the canonical checkpoint keys (OpenAI's module tree, see `crate::weights`):
//! `visual.transformer.resblocks[3].attn.out_proj.weight` holds the tensor
//! `visual.transformer.resblocks.3.attn.out_proj.weight`; a module with one tensor is that tensor
//! (`token_embedding`, the ViT's `conv1`). Where a field departs from the checkpoint on purpose,
//! its doc line says why.

pub mod layers;
pub mod resnet;
pub mod text;
pub mod vit;
pub mod vjp;

use std::path::Path;

use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};

use crate::checkpoint::{self, ModelNumerics, Normalization};
use crate::config::{infer_config, Activation, ClipConfig, VisionConfig};
use crate::weights::{LoadError, WeightMap};
pub use layers::{Probe, WeightSource};
pub use text::{TextCache, TextOutput, TextTower};

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per model; never moved in a hot loop
pub enum ImageTower {
    Vit(vit::VitTower),
    ResNet(resnet::ResNetTower),
}

#[derive(Debug, Clone)]
pub struct Clip {
    pub config: ClipConfig,
    /// Its keys have no prefix (OpenAI's `CLIP` holds the text modules itself); one struct here,
    /// as the image tower is.
    pub text: TextTower,
    pub visual: ImageTower,
    /// ln of the softmax temperature's inverse, as stored (`logit_scale`).
    pub logit_scale: f32,
    /// Activations and normalisation, with where each was read (`crate::checkpoint`).
    pub numerics: ModelNumerics,
}

/// How to load a checkpoint beyond its path.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// The architecture the shapes must have (otherwise read from them). Its activations are
    /// not used: they come from the checkpoint's declaration or `activation`.
    pub expected: Option<&'a ClipConfig>,
    /// An explicit activation for both towers; an error where the checkpoint declares another.
    pub activation: Option<Activation>,
}

impl Clip {
    /// Build from any weight source whose tensors have the sizes `config` implies.
    pub fn from_source(src: &mut dyn WeightSource, config: &ClipConfig, device: &Device) -> Result<Clip, LoadError> {
        let e = config.embed_dim;
        let visual = match &config.vision {
            VisionConfig::Vit {
                width,
                layers,
                heads,
                patch_size,
                image_resolution,
                activation,
            } => ImageTower::Vit(vit::VitTower::load(
                src,
                *width,
                *layers,
                *heads,
                *patch_size,
                *image_resolution,
                e,
                *activation,
                device,
            )?),
            VisionConfig::ResNet {
                width,
                layers,
                heads,
                image_resolution,
            } => ImageTower::ResNet(resnet::ResNetTower::load(
                src,
                *width,
                *layers,
                *heads,
                *image_resolution,
                e,
                device,
            )?),
        };
        let text = TextTower::load(src, &config.text, e, device)?;
        let logit_scale = src.take("logit_scale", &[])?[0];
        Ok(Clip {
            config: config.clone(),
            text,
            visual,
            logit_scale,
            numerics: ModelNumerics {
                text_activation: config.text.activation,
                vision_activation: config.vision.activation().unwrap_or(config.text.activation),
                activation_source: "set by the caller's architecture".into(),
                normalization: Normalization::OPENAI,
                normalization_source: "OpenAI's mean and std (no checkpoint read)".into(),
                heads: None,
            },
        })
    }

    /// Every tensor a checkpoint of `config` holds, with its shape, in load order (the keys
    /// `ntlb pretrain-synth` trains and saves).
    pub fn parameter_shapes(config: &ClipConfig) -> Vec<(String, Vec<usize>)> {
        struct Lister(Vec<(String, Vec<usize>)>);
        impl WeightSource for Lister {
            fn take(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
                self.0.push((key.to_string(), shape.to_vec()));
                let n: usize = shape.iter().product();
                Ok(vec![1.0; n])
            }
        }
        let mut l = Lister(Vec::new());
        Clip::from_source(&mut l, config, &Device::flex()).expect("listing never fails");
        l.0
    }

    /// Load a checkpoint (HF directory or OpenAI-naming `.safetensors`) with the activation and
    /// normalisation it declares. With `expected`, its shapes must match that architecture;
    /// otherwise the architecture is read from the shapes.
    pub fn load(path: &Path, expected: Option<&ClipConfig>, device: &Device) -> Result<Clip, LoadError> {
        Clip::load_with(
            path,
            LoadOptions {
                expected,
                activation: None,
            },
            device,
        )
    }

    /// [`Clip::load`] with an explicit activation (checked against the checkpoint's declaration).
    pub fn load_with(path: &Path, opts: LoadOptions<'_>, device: &Device) -> Result<Clip, LoadError> {
        let declared = checkpoint::declared(path)?;
        let numerics = checkpoint::numerics_from(path, &declared, opts.activation)?;
        let mut w = WeightMap::open(path)?;
        let mut config = match opts.expected {
            Some(c) => c.clone(),
            None => infer_config(&w).map_err(|e| w.explain_missing(e, None))?,
        }
        .with_activations(numerics.text_activation, numerics.vision_activation);
        if let Some(arch) = &declared.architecture {
            let asked = (config.text.heads, config.vision.heads());
            arch.apply(&w, &mut config)?;
            let declared_heads = (config.text.heads, config.vision.heads());
            if opts.expected.is_some() && declared_heads != asked {
                return Err(LoadError::Layout {
                    path: arch.file.clone(),
                    msg: format!(
                        "declares text {} / vision {} heads ({}); the architecture asked for has {} / {}",
                        declared_heads.0, declared_heads.1, arch.heads.source, asked.0, asked.1
                    ),
                });
            }
        }
        // The declared context, not the position table's rows: a mis-shaped table is then
        // reported against the shape the model expects.
        if let Some((n, _)) = declared.context_length {
            config.text.context_length = n;
        }
        if let Some((n, source)) = &declared.size {
            let r = config.vision.image_resolution();
            if *n != r {
                return Err(LoadError::Layout {
                    path: path.to_path_buf(),
                    msg: format!("the preprocessing declares size {n} ({source}), the image tower takes {r} px"),
                });
            }
        }
        let mut clip =
            Clip::from_source(&mut w, &config, device).map_err(|e| w.explain_missing(e, Some(&Clip::parameter_shapes(&config))))?;
        w.finish()?;
        clip.numerics = numerics;
        Ok(clip)
    }

    /// Seeded random weights of the given architecture (benchmarks; the sizes are real).
    pub fn random(config: &ClipConfig, seed: u64, device: &Device) -> Clip {
        let mut src = RandomWeights {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        };
        Clip::from_source(&mut src, config, device).expect("random weights always have the requested shapes")
    }

    pub fn encode_image(&self, images: Tensor<4>) -> Tensor<2> {
        match &self.visual {
            ImageTower::Vit(v) => v.forward(images),
            ImageTower::ResNet(r) => r.forward(images),
        }
    }

    pub fn encode_text(&self, ids: &[Vec<u32>], eot: &[usize]) -> Tensor<2> {
        self.text.encode_ids(ids, eot)
    }

    /// `exp(logit_scale)` in float32, as the reference computes it.
    pub fn logit_scale_exp(&self) -> f32 {
        self.logit_scale.exp()
    }
}

/// Rows scaled to unit L2 norm.
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let n = x.clone().powi_scalar(2).sum_dim(1).sqrt();
    x / n
}

struct RandomWeights {
    rng: rand_chacha::ChaCha8Rng,
}

impl WeightSource for RandomWeights {
    fn take(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        let n: usize = shape.iter().product();
        if key == "logit_scale" {
            return Ok(vec![(100.0f32).ln()]);
        }
        let is_norm_scale = key.ends_with("running_var")
            || ((key.contains("ln_") || key.contains("bn") || key.contains("downsample.1")) && key.ends_with(".weight"));
        if is_norm_scale {
            return Ok(vec![1.0; n]);
        }
        if key.ends_with("running_mean") || key.ends_with(".bias") {
            return Ok(vec![0.0; n]);
        }
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let std = if shape.len() >= 2 && !key.contains("embedding") {
            (1.0 / fan_in as f32).sqrt()
        } else {
            0.02
        };
        Ok((0..n).map(|_| (self.rng.random::<f32>() * 2.0 - 1.0) * std * 1.732).collect())
    }
}
