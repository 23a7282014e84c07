//! CLIP architecture description: read from a checkpoint's tensor shapes (as OpenAI's
//! `build_model` does) or taken from a named preset.

use serde::{Deserialize, Serialize};

/// The residual MLP's nonlinearity. It is part of the model, not of the weights: OpenAI's CLIP
/// was trained with QuickGELU, open_clip's LAION / DataComp checkpoints with exact (erf) GELU,
/// and both store the same tensor names and shapes. Read from the checkpoint's declaration
/// ([`crate::checkpoint`]), never assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x * sigmoid(1.702 x)` (OpenAI's `QuickGELU`, transformers' `quick_gelu`).
    QuickGelu,
    /// `x * Φ(x)` with the erf form of Φ (torch's `nn.GELU()`, transformers' `gelu`); never the
    /// tanh approximation.
    Gelu,
}

impl Activation {
    /// What a serialised config without the field meant: every model before the field existed
    /// was OpenAI's (records and caches written then stay readable).
    pub fn before_declared() -> Activation {
        Activation::QuickGelu
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::QuickGelu => "quick_gelu",
            Activation::Gelu => "gelu",
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "quick_gelu" => Ok(Activation::QuickGelu),
            "gelu" => Ok(Activation::Gelu),
            _ => Err(format!("unknown activation {s:?} (expected \"quick_gelu\" or \"gelu\")")),
        }
    }
}

/// Which image tower a CLIP model uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VisionConfig {
    /// Vision transformer (ViT-B/32, ViT-B/16, ViT-L/14).
    Vit {
        width: usize,
        layers: usize,
        heads: usize,
        patch_size: usize,
        image_resolution: usize,
        #[serde(default = "Activation::before_declared")]
        activation: Activation,
    },
    /// ModifiedResNet with attention pooling (RN50, RN101).
    ResNet {
        /// Stem width; stage widths are width, 2w, 4w, 8w (x4 after the bottleneck expansion).
        width: usize,
        layers: [usize; 4],
        heads: usize,
        image_resolution: usize,
    },
}

impl VisionConfig {
    pub fn image_resolution(&self) -> usize {
        match self {
            VisionConfig::Vit { image_resolution, .. } | VisionConfig::ResNet { image_resolution, .. } => *image_resolution,
        }
    }

    /// Attention heads: the transformer's, or the ResNet's attention pool's.
    pub fn heads(&self) -> usize {
        match self {
            VisionConfig::Vit { heads, .. } | VisionConfig::ResNet { heads, .. } => *heads,
        }
    }

    /// The transformer MLP's activation; `None` for the ResNet tower (ReLU, fixed by the architecture).
    pub fn activation(&self) -> Option<Activation> {
        match self {
            VisionConfig::Vit { activation, .. } => Some(*activation),
            VisionConfig::ResNet { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    pub context_length: usize,
    pub vocab_size: usize,
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    #[serde(default = "Activation::before_declared")]
    pub activation: Activation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    pub embed_dim: usize,
    pub vision: VisionConfig,
    pub text: TextConfig,
}

/// Named presets with the sizes of OpenAI's released checkpoints.
pub const PRESETS: &[&str] = &["ViT-B/32", "ViT-B/16", "ViT-L/14", "RN50", "RN101"];

impl ClipConfig {
    /// The same architecture with both towers' activations set (the ResNet tower has none).
    pub fn with_activations(mut self, text: Activation, vision: Activation) -> ClipConfig {
        self.text.activation = text;
        if let VisionConfig::Vit { activation, .. } = &mut self.vision {
            *activation = vision;
        }
        self
    }

    pub fn preset(name: &str) -> Option<ClipConfig> {
        let text = |width: usize| TextConfig {
            context_length: 77,
            vocab_size: 49408,
            width,
            layers: 12,
            heads: width / 64,
            activation: Activation::QuickGelu,
        };
        let vit = |width: usize, layers: usize, patch_size: usize| VisionConfig::Vit {
            width,
            layers,
            heads: width / 64,
            patch_size,
            image_resolution: 224,
            activation: Activation::QuickGelu,
        };
        let rn = |layers: [usize; 4]| VisionConfig::ResNet {
            width: 64,
            layers,
            heads: 64 * 32 / 64,
            image_resolution: 224,
        };
        let normalized = name.to_ascii_lowercase().replace(['-', '/', '_'], "");
        Some(match normalized.as_str() {
            "vitb32" => ClipConfig {
                embed_dim: 512,
                vision: vit(768, 12, 32),
                text: text(512),
            },
            "vitb16" => ClipConfig {
                embed_dim: 512,
                vision: vit(768, 12, 16),
                text: text(512),
            },
            "vitl14" => ClipConfig {
                embed_dim: 768,
                vision: vit(1024, 24, 14),
                text: text(768),
            },
            "rn50" => ClipConfig {
                embed_dim: 1024,
                vision: rn([3, 4, 6, 3]),
                text: text(512),
            },
            "rn101" => ClipConfig {
                embed_dim: 512,
                vision: rn([3, 4, 23, 3]),
                text: text(512),
            },
            _ => return None,
        })
    }

    /// Multiply-accumulate count of one text encoding over `len` positions (matmuls only).
    pub fn text_macs(&self, len: usize) -> u64 {
        let w = self.text.width as u64;
        let l = len as u64;
        let per_layer = l * w * 3 * w + 2 * l * l * w + l * w * w + 2 * l * w * 4 * w;
        per_layer * self.text.layers as u64 + w * self.embed_dim as u64
    }

    /// Multiply-accumulate count of one image encoding (ViT: matmuls and the patch conv;
    /// ResNet: convolutions and projections).
    pub fn image_macs(&self) -> u64 {
        match &self.vision {
            VisionConfig::Vit {
                width,
                layers,
                patch_size,
                image_resolution,
                ..
            } => {
                let w = *width as u64;
                let g = (*image_resolution / *patch_size) as u64;
                let l = g * g + 1;
                let patch = (g * g) * w * 3 * (*patch_size as u64).pow(2);
                let per_layer = l * w * 3 * w + 2 * l * l * w + l * w * w + 2 * l * w * 4 * w;
                patch + per_layer * *layers as u64 + w * self.embed_dim as u64
            }
            VisionConfig::ResNet {
                layers,
                width,
                image_resolution,
                ..
            } => resnet_image_macs(*layers, *width, *image_resolution, self.embed_dim),
        }
    }
}

/// Multiply-accumulates of one image through CLIP's modified ResNet (3-conv stem, anti-aliased
/// bottlenecks, attention pooling), convolutions and projections only.
fn resnet_image_macs(layers: [usize; 4], width: usize, resolution: usize, embed_dim: usize) -> u64 {
    let conv = |hw: usize, cin: usize, cout: usize, k: usize| (hw * hw * cin * cout * k * k) as u64;
    let mut r = resolution / 2;
    let mut macs = conv(r, 3, width / 2, 3) + conv(r, width / 2, width / 2, 3) + conv(r, width / 2, width, 3);
    r /= 2;
    let mut inplanes = width;
    for (i, &blocks) in layers.iter().enumerate() {
        let planes = width << i;
        for b in 0..blocks {
            let stride = if i > 0 && b == 0 { 2 } else { 1 };
            let out = r / stride;
            macs += conv(r, inplanes, planes, 1) + conv(r, planes, planes, 3) + conv(out, planes, planes * 4, 1);
            if stride > 1 || inplanes != planes * 4 {
                macs += conv(out, inplanes, planes * 4, 1);
            }
            inplanes = planes * 4;
            r = out;
        }
    }
    // Attention pooling over r² + 1 tokens of width 32·width: q, k, v, and the output projection.
    let (t, e) = ((r * r + 1) as u64, (width * 32) as u64);
    macs + 3 * t * e * e + 2 * t * t * e + t * e * embed_dim as u64
}

/// Read the architecture from canonical tensor shapes, as OpenAI's `build_model` does
/// (heads = width / 64 in both towers: what an OpenAI state dict without a config means; a
/// config's heads replace them, `crate::architecture`).
pub fn infer_config(w: &crate::weights::WeightMap) -> Result<ClipConfig, crate::weights::LoadError> {
    use crate::weights::LoadError;
    let need = |key: &str| -> Result<Vec<usize>, LoadError> { w.shape(key).map(|s| s.to_vec()).ok_or_else(|| w.missing(key, &[])) };
    let count_blocks = |prefix: &str| -> usize {
        let mut idx = std::collections::BTreeSet::new();
        for k in w.keys() {
            if let Some(rest) = k.strip_prefix(prefix) {
                if let Some((i, _)) = rest.split_once('.') {
                    if let Ok(i) = i.parse::<usize>() {
                        idx.insert(i);
                    }
                }
            }
        }
        idx.len()
    };
    let tp = need("text_projection")?;
    let tok = need("token_embedding.weight")?;
    let pos = need("positional_embedding")?;
    let lnf = need("ln_final.weight")?;
    let bad = |key: &str, found: Vec<usize>, what: &str| LoadError::Layout {
        path: w.path.clone(),
        msg: format!("tensor `{key}` has shape {found:?}: {what}"),
    };
    if tp.len() != 2 || tok.len() != 2 || pos.len() != 2 || lnf.len() != 1 {
        return Err(bad("text_projection", tp, "text tower tensors have unexpected ranks"));
    }
    let width = lnf[0];
    let text = TextConfig {
        context_length: pos[0],
        vocab_size: tok[0],
        width,
        layers: count_blocks("transformer.resblocks."),
        heads: width / 64,
        // Shapes cannot tell: the caller sets what the checkpoint declares (`crate::checkpoint`).
        activation: Activation::QuickGelu,
    };
    let embed_dim = tp[1];
    let vision = if w.contains("visual.proj") {
        let conv = need("visual.conv1.weight")?;
        let vpos = need("visual.positional_embedding")?;
        if conv.len() != 4 || vpos.len() != 2 {
            return Err(bad("visual.conv1.weight", conv, "expected a 4-d patch convolution"));
        }
        let grid = (((vpos[0] - 1) as f64).sqrt()).round() as usize;
        VisionConfig::Vit {
            width: conv[0],
            layers: count_blocks("visual.transformer.resblocks."),
            heads: conv[0] / 64,
            patch_size: conv[3],
            image_resolution: conv[3] * grid,
            activation: Activation::QuickGelu,
        }
    } else if w.contains("visual.attnpool.positional_embedding") {
        let mut layers = [0usize; 4];
        for (b, l) in layers.iter_mut().enumerate() {
            *l = count_blocks(&format!("visual.layer{}.", b + 1));
        }
        let width = need("visual.layer1.0.conv1.weight")?[0];
        let apos = need("visual.attnpool.positional_embedding")?;
        let out_width = (((apos[0] - 1) as f64).sqrt()).round() as usize;
        VisionConfig::ResNet {
            width,
            layers,
            heads: width * 32 / 64,
            image_resolution: out_width * 32,
        }
    } else if w.layout == crate::weights::Layout::HuggingFace {
        // Its image tower is a ViT: what it lacks is the projection, by its own name.
        return Err(w.missing("visual.proj", &[]));
    } else {
        return Err(LoadError::Layout {
            path: w.path.clone(),
            msg: "no image tower found (neither `visual.proj` nor `visual.attnpool.positional_embedding`)".into(),
        });
    };
    Ok(ClipConfig { embed_dim, vision, text })
}
