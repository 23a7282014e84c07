//! The architecture a checkpoint's config declares, checked against its tensors.
//!
//! The tensor shapes give every size of a CLIP but one: how the attention width is split into
//! heads. OpenAI's `build_model` assumes 64-wide heads, which is right for OpenAI's checkpoints
//! and wrong for others (open_clip's ViT-H-14 has 80-wide heads: 16, not 20). So the heads
//! are read where the checkpoint's library writes them, with that library's default where the
//! key is absent:
//!
//! | config | text heads | image heads |
//! |---|---|---|
//! | `config.json` (transformers) | `text_config.num_attention_heads` (absent: 8) | `vision_config.num_attention_heads` (absent: 12) |
//! | `open_clip_config.json` | `model_cfg.text_cfg.heads` (absent: 8) | width / `model_cfg.vision_cfg.head_width` (absent: 64; a ModifiedResNet: 32 × width / head_width) |
//! | none (an OpenAI state dict) | width / 64 | width / 64 (ModifiedResNet: 32 × width / 64) |
//!
//! Every size a config declares is checked against the tensors, and a contradiction is refused
//! naming the file, the key, the declared value and the tensor with its shape: a config that
//! does not describe its weights describes nothing reliably, heads included. A size that is not
//! declared is read from the shapes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ClipConfig, VisionConfig};
use crate::weights::{LoadError, WeightMap};

/// How a tower's attention width is split into heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadRule {
    /// This many heads (transformers, open_clip's text tower).
    Heads(usize),
    /// Heads this wide (open_clip's image tower; OpenAI's `build_model`, 64).
    HeadWidth(usize),
}

impl std::fmt::Display for HeadRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadRule::Heads(n) => write!(f, "{n} heads"),
            HeadRule::HeadWidth(w) => write!(f, "head width {w}"),
        }
    }
}

/// Both towers' head rules as a config declares them, with where (what the run record keeps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeclaredHeads {
    pub text: HeadRule,
    pub vision: HeadRule,
    pub source: String,
    /// Whether the config's own widths make both splits OpenAI's 64-wide heads: the split every
    /// model had before heads were read, so its keys and records stay valid.
    #[serde(default)]
    pub sixty_four_wide: bool,
}

impl DeclaredHeads {
    /// Path-free, for the cache and job keys.
    pub fn identity(&self) -> String {
        let rule = |r: HeadRule| match r {
            HeadRule::Heads(n) => format!("{n}"),
            HeadRule::HeadWidth(w) => format!("w{w}"),
        };
        format!("text:{},vision:{}", rule(self.text), rule(self.vision))
    }
}

/// What a declared size is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    EmbedDim,
    TextWidth,
    TextLayers,
    TextMlp,
    VocabSize,
    VisionWidth,
    /// One number for a ViT, four (the stages' block counts) for a ModifiedResNet.
    VisionLayers,
    VisionMlp,
    PatchSize,
    ImageSize,
    Channels,
}

/// One size a config declares: `key` (dotted, as in the file) = `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredSize {
    pub key: String,
    pub value: Vec<usize>,
    pub measure: Measure,
}

/// Sizes and heads a config file declares.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredArchitecture {
    pub file: PathBuf,
    pub sizes: Vec<DeclaredSize>,
    pub heads: DeclaredHeads,
    /// Where each head rule came from (for errors), text then vision.
    head_sources: [String; 2],
}

fn bad(path: &Path, msg: String) -> LoadError {
    LoadError::Layout {
        path: path.to_path_buf(),
        msg,
    }
}

/// `v[section]` as an object; absent or null is an empty one (the library's defaults).
fn section<'a>(path: &Path, v: &'a Value, prefix: &str, name: &str) -> Result<Option<&'a serde_json::Map<String, Value>>, LoadError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(bad(path, format!("`{prefix}{name}` = {other}: expected a JSON object"))),
    }
}

/// A positive integer at `obj[key]`; absent or null is `None`.
fn positive(path: &Path, obj: Option<&serde_json::Map<String, Value>>, dotted: &str, key: &str) -> Result<Option<usize>, LoadError> {
    match obj.and_then(|o| o.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(n) => match n.as_u64() {
            Some(x) if x > 0 => Ok(Some(x as usize)),
            _ => Err(bad(path, format!("`{dotted}` = {n}: expected a positive integer"))),
        },
    }
}

/// A positive integer at `obj[key]`, if there, as a size to check.
fn declare(
    path: &Path,
    sizes: &mut Vec<DeclaredSize>,
    obj: Option<&serde_json::Map<String, Value>>,
    prefix: &str,
    key: &str,
    measure: Measure,
) -> Result<(), LoadError> {
    let dotted = format!("{prefix}{key}");
    if let Some(n) = positive(path, obj, &dotted, key)? {
        sizes.push(DeclaredSize {
            key: dotted,
            value: vec![n],
            measure,
        });
    }
    Ok(())
}

/// `model_type` values of the CLIP family; anything else (SigLIP, ...) computes otherwise.
fn check_model_type(path: &Path, obj: Option<&serde_json::Map<String, Value>>, dotted: &str, want: &str) -> Result<(), LoadError> {
    match obj.and_then(|o| o.get("model_type")) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s == want => Ok(()),
        Some(other) => Err(bad(
            path,
            format!("`{dotted}` = {other}: ntlb implements CLIP (\"{want}\") only, not this architecture"),
        )),
    }
}

/// A transformers `CLIPConfig` (`config.json`), a JSON object.
pub fn from_hf(path: &Path, v: &Value) -> Result<DeclaredArchitecture, LoadError> {
    let top = v.as_object();
    check_model_type(path, top, "model_type", "clip")?;
    let text = section(path, v, "", "text_config")?;
    let vision = section(path, v, "", "vision_config")?;
    check_model_type(path, text, "text_config.model_type", "clip_text_model")?;
    check_model_type(path, vision, "vision_config.model_type", "clip_vision_model")?;
    let mut sizes = Vec::new();
    let mut add = |obj: Option<&serde_json::Map<String, Value>>, prefix: &str, key: &str, measure: Measure| {
        declare(path, &mut sizes, obj, prefix, key, measure)
    };
    add(top, "", "projection_dim", Measure::EmbedDim)?;
    add(text, "text_config.", "hidden_size", Measure::TextWidth)?;
    add(text, "text_config.", "intermediate_size", Measure::TextMlp)?;
    add(text, "text_config.", "num_hidden_layers", Measure::TextLayers)?;
    add(text, "text_config.", "vocab_size", Measure::VocabSize)?;
    add(vision, "vision_config.", "hidden_size", Measure::VisionWidth)?;
    add(vision, "vision_config.", "intermediate_size", Measure::VisionMlp)?;
    add(vision, "vision_config.", "num_hidden_layers", Measure::VisionLayers)?;
    add(vision, "vision_config.", "image_size", Measure::ImageSize)?;
    add(vision, "vision_config.", "patch_size", Measure::PatchSize)?;
    add(vision, "vision_config.", "num_channels", Measure::Channels)?;
    // transformers' CLIPTextConfig / CLIPVisionConfig defaults.
    let heads = |obj, prefix: &str, default: usize| -> Result<(HeadRule, String), LoadError> {
        let key = format!("{prefix}num_attention_heads");
        Ok(match positive(path, obj, &key, "num_attention_heads")? {
            Some(n) => (HeadRule::Heads(n), format!("{key} = {n}")),
            None => (HeadRule::Heads(default), format!("{key} absent: transformers' default {default}")),
        })
    };
    let (t, ts) = heads(text, "text_config.", 8)?;
    let (vh, vs) = heads(vision, "vision_config.", 12)?;
    let width = |obj, prefix: &str| positive(path, obj, &format!("{prefix}hidden_size"), "hidden_size");
    let sixty_four_wide = wide_64(t, width(text, "text_config.")?) && wide_64(vh, width(vision, "vision_config.")?);
    Ok(DeclaredArchitecture {
        file: path.to_path_buf(),
        sizes,
        heads: DeclaredHeads {
            text: t,
            vision: vh,
            source: format!("{}: {ts}, {vs}", path.display()),
            sixty_four_wide,
        },
        head_sources: [ts, vs],
    })
}

/// open_clip's `open_clip_config.json` (`model_cfg` an object: checked by the caller).
pub fn from_open_clip(path: &Path, v: &Value) -> Result<DeclaredArchitecture, LoadError> {
    let cfg = v.get("model_cfg").unwrap_or(&Value::Null);
    let text = section(path, cfg, "model_cfg.", "text_cfg")?;
    let vision = section(path, cfg, "model_cfg.", "vision_cfg")?;
    let mut sizes = Vec::new();
    declare(path, &mut sizes, cfg.as_object(), "model_cfg.", "embed_dim", Measure::EmbedDim)?;
    declare(path, &mut sizes, text, "model_cfg.text_cfg.", "width", Measure::TextWidth)?;
    declare(path, &mut sizes, text, "model_cfg.text_cfg.", "layers", Measure::TextLayers)?;
    declare(path, &mut sizes, text, "model_cfg.text_cfg.", "vocab_size", Measure::VocabSize)?;
    declare(path, &mut sizes, vision, "model_cfg.vision_cfg.", "width", Measure::VisionWidth)?;
    // A list of four block counts is a ModifiedResNet (open_clip decides the tower so).
    match vision.and_then(|o| o.get("layers")) {
        Some(Value::Array(a)) => {
            let counts: Option<Vec<usize>> = a.iter().map(|x| x.as_u64().map(|n| n as usize)).collect();
            match counts {
                Some(c) if c.len() == 4 => sizes.push(DeclaredSize {
                    key: "model_cfg.vision_cfg.layers".into(),
                    value: c,
                    measure: Measure::VisionLayers,
                }),
                _ => {
                    return Err(bad(
                        path,
                        format!(
                            "`model_cfg.vision_cfg.layers` = {}: expected a block count or four stage block counts",
                            Value::Array(a.clone())
                        ),
                    ))
                }
            }
        }
        _ => declare(path, &mut sizes, vision, "model_cfg.vision_cfg.", "layers", Measure::VisionLayers)?,
    }
    let resnet = matches!(vision.and_then(|o| o.get("layers")), Some(Value::Array(_)));
    if !resnet {
        declare(path, &mut sizes, vision, "model_cfg.vision_cfg.", "patch_size", Measure::PatchSize)?;
    }
    // open_clip accepts a square size as `n` or `[n, n]`.
    match vision.and_then(|o| o.get("image_size")) {
        Some(Value::Array(a)) => match (a.len(), a.first().and_then(Value::as_u64)) {
            (2, Some(n)) if n > 0 && a[0] == a[1] => sizes.push(DeclaredSize {
                key: "model_cfg.vision_cfg.image_size".into(),
                value: vec![n as usize],
                measure: Measure::ImageSize,
            }),
            _ => {
                return Err(bad(
                    path,
                    format!(
                        "`model_cfg.vision_cfg.image_size` = {}: ntlb implements a square image only",
                        Value::Array(a.clone())
                    ),
                ))
            }
        },
        _ => declare(path, &mut sizes, vision, "model_cfg.vision_cfg.", "image_size", Measure::ImageSize)?,
    }
    // open_clip's CLIPTextCfg / CLIPVisionCfg defaults.
    let (t, ts) = match positive(path, text, "model_cfg.text_cfg.heads", "heads")? {
        Some(n) => (HeadRule::Heads(n), format!("model_cfg.text_cfg.heads = {n}")),
        None => (
            HeadRule::Heads(8),
            "model_cfg.text_cfg.heads absent: open_clip's default 8".to_string(),
        ),
    };
    let (vh, vs) = match positive(path, vision, "model_cfg.vision_cfg.head_width", "head_width")? {
        Some(w) => (HeadRule::HeadWidth(w), format!("model_cfg.vision_cfg.head_width = {w}")),
        None => (
            HeadRule::HeadWidth(64),
            "model_cfg.vision_cfg.head_width absent: open_clip's default 64".to_string(),
        ),
    };
    let text_width = positive(path, text, "model_cfg.text_cfg.width", "width")?;
    let sixty_four_wide = wide_64(t, text_width) && wide_64(vh, None);
    Ok(DeclaredArchitecture {
        file: path.to_path_buf(),
        sizes,
        heads: DeclaredHeads {
            text: t,
            vision: vh,
            source: format!("{}: {ts}, {vs}", path.display()),
            sixty_four_wide,
        },
        head_sources: [ts, vs],
    })
}

/// Whether `rule` over a declared `width` is 64-wide heads (a head width needs no width).
fn wide_64(rule: HeadRule, width: Option<usize>) -> bool {
    match (rule, width) {
        (HeadRule::HeadWidth(w), _) => w == 64,
        (HeadRule::Heads(n), Some(w)) => w == 64 * n,
        (HeadRule::Heads(_), None) => false,
    }
}

/// Block indices under `prefix` (`transformer.resblocks.` -> 0, 1, ...), counted.
fn count_blocks(w: &WeightMap, prefix: &str) -> usize {
    let mut idx = BTreeSet::new();
    for k in w.keys() {
        if let Some((i, _)) = k.strip_prefix(prefix).and_then(|rest| rest.split_once('.')) {
            if let Ok(i) = i.parse::<usize>() {
                idx.insert(i);
            }
        }
    }
    idx.len()
}

/// How many blocks `prefix` holds, named by the first block's `first` tensor as the file spells it.
fn blocks(w: &WeightMap, prefix: &str, first: &str) -> String {
    let n = count_blocks(w, prefix);
    match w.describe(&format!("{prefix}0.{first}")) {
        Some(d) => format!("{n} blocks, the first holding {d}"),
        None => format!("{n} blocks under `{prefix}`"),
    }
}

/// One dimension of a tensor, with the tensor as the file spells it.
fn dim(w: &WeightMap, key: &str, axis: usize) -> Option<(Vec<usize>, String)> {
    let d = *w.shape(key)?.get(axis)?;
    Some((vec![d], w.describe(key)?))
}

/// Whether the image tower is a ModifiedResNet (by its tensors, as `config::infer_config`).
fn is_resnet(w: &WeightMap) -> bool {
    !w.contains("visual.proj") && w.contains("visual.attnpool.positional_embedding")
}

/// The grid side of a position table with a class row (`[g² + 1, W]`).
fn grid(w: &WeightMap, key: &str) -> Option<usize> {
    let rows = *w.shape(key)?.first()?;
    let g = ((rows.saturating_sub(1)) as f64).sqrt().round() as usize;
    (g * g + 1 == rows).then_some(g)
}

/// What the tensors say for `m`, with the tensor(s) it was read from; `None` where they do not
/// hold it (the loader then names what is missing).
fn measured(w: &WeightMap, m: Measure) -> Option<(Vec<usize>, String)> {
    let resnet = is_resnet(w);
    match m {
        Measure::EmbedDim => dim(w, "text_projection", 1),
        Measure::TextWidth => dim(w, "ln_final.weight", 0),
        Measure::VocabSize => dim(w, "token_embedding.weight", 0),
        Measure::TextMlp => dim(w, "transformer.resblocks.0.mlp.c_fc.weight", 0),
        Measure::TextLayers => Some((
            vec![count_blocks(w, "transformer.resblocks.")],
            blocks(w, "transformer.resblocks.", "ln_1.weight"),
        )),
        Measure::VisionWidth if resnet => dim(w, "visual.layer1.0.conv1.weight", 0),
        Measure::VisionWidth => dim(w, "visual.conv1.weight", 0),
        Measure::VisionMlp if resnet => None,
        Measure::VisionMlp => dim(w, "visual.transformer.resblocks.0.mlp.c_fc.weight", 0),
        Measure::VisionLayers if resnet => Some((
            (1..=4).map(|i| count_blocks(w, &format!("visual.layer{i}."))).collect(),
            format!("a ModifiedResNet, stage 1: {}", blocks(w, "visual.layer1.", "conv1.weight")),
        )),
        Measure::VisionLayers => Some((
            vec![count_blocks(w, "visual.transformer.resblocks.")],
            blocks(w, "visual.transformer.resblocks.", "ln_1.weight"),
        )),
        Measure::PatchSize if resnet => None,
        Measure::PatchSize => dim(w, "visual.conv1.weight", 3),
        Measure::Channels => dim(w, "visual.conv1.weight", 1),
        Measure::ImageSize if resnet => {
            let g = grid(w, "visual.attnpool.positional_embedding")?;
            Some((vec![32 * g], w.describe("visual.attnpool.positional_embedding")?))
        }
        Measure::ImageSize => {
            let p = *w.shape("visual.conv1.weight")?.get(3)?;
            let g = grid(w, "visual.positional_embedding")?;
            Some((
                vec![p * g],
                format!(
                    "{} with {}",
                    w.describe("visual.positional_embedding")?,
                    w.describe("visual.conv1.weight")?
                ),
            ))
        }
    }
}

fn shown(v: &[usize]) -> String {
    match v {
        [n] => n.to_string(),
        _ => format!("{v:?}"),
    }
}

impl DeclaredArchitecture {
    /// Check every declared size against the tensors of `w`, then set the heads of `config`
    /// (the architecture read from those tensors) as declared.
    pub fn apply(&self, w: &WeightMap, config: &mut ClipConfig) -> Result<(), LoadError> {
        let file = &self.file;
        for s in &self.sizes {
            let Some((found, tensor)) = measured(w, s.measure) else {
                continue;
            };
            if found != s.value {
                return Err(bad(
                    file,
                    format!(
                        "`{}` = {} contradicts the weights in {}: {} (that is {})",
                        s.key,
                        shown(&s.value),
                        w.path.display(),
                        tensor,
                        shown(&found)
                    ),
                ));
            }
        }
        let text_width = measured(w, Measure::TextWidth).map_or((config.text.width, "the text width".into()), |(v, t)| (v[0], t));
        config.text.heads = self.heads_of(self.heads.text, text_width, 1, 0)?;
        let vision_width = measured(w, Measure::VisionWidth);
        match &mut config.vision {
            VisionConfig::Vit { width, heads, .. } => {
                let wd = vision_width.map_or((*width, "the image width".into()), |(v, t)| (v[0], t));
                *heads = self.heads_of(self.heads.vision, wd, 1, 1)?;
            }
            // The attention pool is 32 × the stem width wide (OpenAI's and open_clip's ModifiedResNet).
            VisionConfig::ResNet { width, heads, .. } => {
                let wd = vision_width.map_or((*width, "the stem width".into()), |(v, t)| (v[0], t));
                *heads = self.heads_of(self.heads.vision, wd, 32, 1)?;
            }
        }
        Ok(())
    }

    /// The head count of an attention `scale` × `width.0` wide, by `rule`; it must divide it.
    fn heads_of(&self, rule: HeadRule, width: (usize, String), scale: usize, which: usize) -> Result<usize, LoadError> {
        let (w, tensor) = width;
        let attn = w * scale;
        let wide = if scale == 1 {
            format!("{attn} ({tensor})")
        } else {
            format!("{attn} ({scale} × {w}, {tensor})")
        };
        match rule {
            HeadRule::Heads(n) if attn % n == 0 => Ok(n),
            HeadRule::HeadWidth(hw) if attn % hw == 0 => Ok(attn / hw),
            _ => {
                let into = match rule {
                    HeadRule::Heads(n) => format!("{n} equal heads"),
                    HeadRule::HeadWidth(hw) => format!("heads {hw} wide"),
                };
                Err(bad(
                    &self.file,
                    format!(
                        "{}: the attention width {wide} does not split into {into}",
                        self.head_sources[which]
                    ),
                ))
            }
        }
    }
}
