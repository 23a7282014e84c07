//! What a checkpoint declares besides its tensors, read where its library writes it: the MLP
//! activation of each tower and the test-time normalisation.
//!
//! | checkpoint | activation from | normalisation from |
//! |---|---|---|
//! | Hugging Face folder | `config.json` `text_config.hidden_act` / `vision_config.hidden_act` (absent: transformers' default, `quick_gelu`) | `preprocessor_config.json` beside it |
//! | state-dict file with `open_clip_config.json` beside it | `model_cfg.quick_gelu` (true: QuickGELU; absent or false: erf GELU, as open_clip builds it) | its `preprocess_cfg` |
//! | bare state-dict file | OpenAI's: QuickGELU | OpenAI's mean and std |
//!
//! Shapes cannot tell QuickGELU from GELU (LAION and DataComp weights have OpenAI's names and
//! shapes), so a value ntlb does not implement is refused by name, and an explicit setting that
//! contradicts the file is an error, never a silent pick.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::architecture::{self, DeclaredArchitecture, DeclaredHeads};
use crate::config::Activation;
use crate::files::{FOLDER_WEIGHTS, HF_CONFIG, HF_PREPROCESSOR, OPEN_CLIP_CONFIG};
use crate::names::{pair_of_file, OPEN_CLIP, OPEN_CLIP_SOURCE};
pub use crate::preprocess::Normalization;
use crate::weights::LoadError;

/// How a loaded model computes, and why: what the run record and `ntlb explain` / `ntlb parity`
/// print, and (through [`ModelNumerics::identity`]) what the cache and job keys hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelNumerics {
    pub text_activation: Activation,
    /// The image transformer's; a ResNet image tower has none (ReLU) and ignores it.
    pub vision_activation: Activation,
    /// Where the activation was read, or why it was assumed.
    pub activation_source: String,
    pub normalization: Normalization,
    pub normalization_source: String,
    /// The attention heads a config beside the weights declares (`crate::architecture`);
    /// `None`: no config, 64-wide heads as OpenAI's `build_model` (and every record written
    /// before heads were read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<DeclaredHeads>,
}

impl ModelNumerics {
    /// Path-free text naming every setting that moves a number (for keys). The heads are in it
    /// only where a config declares a split other than OpenAI's 64-wide heads: the key of every
    /// other model stays what it was before heads were read.
    pub fn identity(&self) -> String {
        let n = &self.normalization;
        let mut id = format!(
            "text_act={},vision_act={},mean={:?},std={:?}",
            self.text_activation.name(),
            self.vision_activation.name(),
            n.mean,
            n.std
        );
        if let Some(h) = self.heads.as_ref().filter(|h| !h.sixty_four_wide) {
            id += &format!(",heads={}", h.identity());
        }
        id
    }

    /// One line for logs.
    pub fn describe(&self) -> String {
        let heads = match &self.heads {
            Some(h) => format!("attention text {} / vision {} ({})", h.text, h.vision, h.source),
            None => "attention heads 64 wide (no config: OpenAI's build_model)".to_string(),
        };
        format!(
            "activation text {} / vision {} ({}); normalisation mean {:?} std {:?} ({}); {heads}",
            self.text_activation,
            self.vision_activation,
            self.activation_source,
            self.normalization.mean,
            self.normalization.std,
            self.normalization_source
        )
    }
}

/// The two towers' activations as the checkpoint declares them, with where.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredActivation {
    pub text: Activation,
    pub vision: Activation,
    pub source: String,
}

/// What the files beside the weights declare; `None` where nothing is declared.
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    pub activation: Option<DeclaredActivation>,
    /// Normalisation with its source, and the declared resize/crop size when one is given.
    pub normalization: Option<(Normalization, String)>,
    pub size: Option<(usize, String)>,
    /// The text context (rows of the position table), with where it was read.
    pub context_length: Option<(usize, String)>,
    /// Sizes and heads, checked against the tensors at load ([`DeclaredArchitecture::apply`]).
    pub architecture: Option<DeclaredArchitecture>,
}

/// The text context a config file declares at `pointer` (its library's default, 77, when
/// absent).
fn context_length(path: &Path, v: &Value, pointer: &str) -> Result<(usize, String), LoadError> {
    let key = pointer.trim_start_matches('/').replace('/', ".");
    match v.pointer(pointer) {
        None | Some(Value::Null) => Ok((77, format!("{}: `{key}` absent: 77", path.display()))),
        Some(n) => match n.as_u64() {
            Some(c) if c > 0 => Ok((c as usize, format!("{}: `{key}` = {c}", path.display()))),
            _ => Err(bad(path, format!("`{key}` = {n}: expected a positive integer"))),
        },
    }
}

fn bad(path: &Path, msg: String) -> LoadError {
    LoadError::Layout {
        path: path.to_path_buf(),
        msg,
    }
}

/// A config file: a JSON object, as every library writes one (anything else declares nothing
/// ntlb could read, and is not taken for "nothing declared").
fn read_json(path: &Path) -> Result<Value, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|error| LoadError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(path, format!("not valid JSON: {e}")))?;
    if !v.is_object() {
        let kind = match &v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => unreachable!("checked"),
        };
        return Err(bad(path, format!("a config file must be a JSON object; this one is {kind}")));
    }
    Ok(v)
}

/// The folder holding the files that describe `path` (the folder itself, or a file's parent).
fn folder_of(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

/// Read what the checkpoint at `path` declares (see the module table). A Hugging Face
/// folder's weights file named directly (`model.safetensors` beside `config.json`) is that
/// folder.
pub fn declared(path: &Path) -> Result<Declaration, LoadError> {
    let dir = folder_of(path);
    let oc = dir.join(OPEN_CLIP_CONFIG);
    let hf_file = !path.is_dir()
        && path.file_name().is_some_and(|n| FOLDER_WEIGHTS.iter().any(|f| n == *f))
        && dir.join(HF_CONFIG).exists()
        && !oc.exists();
    if path.is_dir() || hf_file {
        let cfg_path = dir.join(HF_CONFIG);
        let (activation, context_length, architecture) = if cfg_path.exists() {
            let v = read_json(&cfg_path)?;
            // The architecture first: a SigLIP config is refused as such, not for its activation.
            let arch = architecture::from_hf(&cfg_path, &v)?;
            (
                Some(hf_activation(&cfg_path, &v)?),
                Some(context_length(&cfg_path, &v, "/text_config/max_position_embeddings")?),
                Some(arch),
            )
        } else {
            (None, None, None)
        };
        let pre = dir.join(HF_PREPROCESSOR);
        let (normalization, size) = if pre.exists() {
            hf_preprocess(&pre, &read_json(&pre)?)?
        } else {
            (None, None)
        };
        return Ok(Declaration {
            activation,
            normalization,
            size,
            context_length,
            architecture,
        });
    }
    if oc.exists() {
        let v = read_json(&oc)?;
        let activation = Some(open_clip_activation(&oc, &v)?);
        let architecture = Some(architecture::from_open_clip(&oc, &v)?);
        let (normalization, size) = open_clip_preprocess(&oc, &v)?;
        let context_length = Some(context_length(&oc, &v, "/model_cfg/text_cfg/context_length")?);
        return Ok(Declaration {
            activation,
            normalization,
            size,
            context_length,
            architecture,
        });
    }
    // A weights file of an open_clip pair's repository, downloaded as open_clip does (no config
    // beside it): what open_clip computes it with, by the pair table.
    if let Some(d) = declared_for_file(path) {
        return Ok(d);
    }
    Ok(Declaration {
        activation: None,
        normalization: None,
        size: None,
        context_length: None,
        architecture: None,
    })
}

fn hf_activation(path: &Path, v: &Value) -> Result<DeclaredActivation, LoadError> {
    let tower = |section: &str| -> Result<(Activation, String), LoadError> {
        let cfg = v.get(section);
        if let Some(eps) = cfg.and_then(|c| c.get("layer_norm_eps")) {
            if eps.as_f64() != Some(1e-5) {
                return Err(bad(
                    path,
                    format!("`{section}.layer_norm_eps` = {eps}: ntlb's LayerNorm uses CLIP's 1e-5 and implements no other"),
                ));
            }
        }
        match cfg.and_then(|c| c.get("hidden_act")) {
            None => Ok((
                Activation::QuickGelu,
                format!("{section}.hidden_act absent: transformers' default quick_gelu"),
            )),
            Some(Value::String(s)) => s.parse().map(|a| (a, format!("{section}.hidden_act = \"{s}\""))).map_err(|_| {
                bad(
                    path,
                    format!("`{section}.hidden_act` = \"{s}\": ntlb implements \"quick_gelu\" and \"gelu\" (erf) only"),
                )
            }),
            Some(other) => Err(bad(path, format!("`{section}.hidden_act` = {other}: expected a string"))),
        }
    };
    let (text, ts) = tower("text_config")?;
    let (vision, vs) = tower("vision_config")?;
    Ok(DeclaredActivation {
        text,
        vision,
        source: format!("{}: {ts}, {vs}", path.display()),
    })
}

/// open_clip settings that change the computation and that ntlb does not implement, with the
/// value that means "as CLIP" (`Null`: the key must be absent or null).
const OPEN_CLIP_FIXED: &[(&str, &str, fn(&Value) -> bool)] = &[
    ("text_cfg", "hf_model_name", |v| v.is_null()),
    ("text_cfg", "ls_init_value", |v| v.is_null()),
    ("text_cfg", "pool_type", |v| v.is_null() || v.as_str() == Some("argmax")),
    ("text_cfg", "no_causal_mask", |v| v.is_null() || v.as_bool() == Some(false)),
    ("text_cfg", "proj_bias", |v| v.is_null() || v.as_bool() == Some(false)),
    ("text_cfg", "embed_cls", |v| v.is_null() || v.as_bool() == Some(false)),
    ("text_cfg", "mlp_ratio", |v| v.is_null() || v.as_f64() == Some(4.0)),
    ("text_cfg", "norm_kwargs", |v| {
        v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
    }),
    ("text_cfg", "act_kwargs", |v| {
        v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
    }),
    ("vision_cfg", "timm_model_name", |v| v.is_null()),
    ("vision_cfg", "ls_init_value", |v| v.is_null()),
    ("vision_cfg", "mlp_ratio", |v| v.is_null() || v.as_f64() == Some(4.0)),
    ("vision_cfg", "attentional_pool", |v| v.is_null() || v.as_bool() == Some(false)),
    ("vision_cfg", "global_average_pool", |v| v.is_null() || v.as_bool() == Some(false)),
    ("vision_cfg", "pool_type", |v| v.is_null() || v.as_str() == Some("tok")),
    ("vision_cfg", "final_ln_after_pool", |v| v.is_null() || v.as_bool() == Some(false)),
    ("vision_cfg", "input_patchnorm", |v| v.is_null() || v.as_bool() == Some(false)),
    ("vision_cfg", "no_ln_pre", |v| v.is_null() || v.as_bool() == Some(false)),
    ("vision_cfg", "pos_embed_type", |v| v.is_null() || v.as_str() == Some("learnable")),
    ("vision_cfg", "norm_kwargs", |v| {
        v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
    }),
    ("vision_cfg", "act_kwargs", |v| {
        v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
    }),
];

fn open_clip_activation(path: &Path, v: &Value) -> Result<DeclaredActivation, LoadError> {
    let cfg = v
        .get("model_cfg")
        .ok_or_else(|| bad(path, "no `model_cfg` (not an open_clip hub config)".into()))?;
    if !cfg.is_object() {
        return Err(bad(path, format!("`model_cfg` = {cfg}: expected a JSON object")));
    }
    for (section, key, fine) in OPEN_CLIP_FIXED {
        let value = cfg.get(section).and_then(|s| s.get(key)).unwrap_or(&Value::Null);
        if !fine(value) {
            return Err(bad(
                path,
                format!(
                    "`model_cfg.{section}.{key}` = {value}: ntlb computes OpenAI's CLIP architecture and does not implement this setting"
                ),
            ));
        }
    }
    if let Some(b) = cfg.get("init_logit_bias").filter(|b| !b.is_null()) {
        return Err(bad(
            path,
            format!("`model_cfg.init_logit_bias` = {b}: a SigLIP model, which ntlb does not implement"),
        ));
    }
    let (act, why) = match cfg.get("quick_gelu") {
        None | Some(Value::Null) => (
            Activation::Gelu,
            "model_cfg.quick_gelu absent: open_clip builds nn.GELU".to_string(),
        ),
        Some(Value::Bool(true)) => (Activation::QuickGelu, "model_cfg.quick_gelu = true".to_string()),
        Some(Value::Bool(false)) => (Activation::Gelu, "model_cfg.quick_gelu = false: nn.GELU".to_string()),
        Some(other) => return Err(bad(path, format!("`model_cfg.quick_gelu` = {other}: expected true or false"))),
    };
    Ok(DeclaredActivation {
        text: act,
        vision: act,
        source: format!("{}: {why}", path.display()),
    })
}

type Preprocess = (Option<(Normalization, String)>, Option<(usize, String)>);

fn triple(path: &Path, key: &str, v: &Value) -> Result<[f32; 3], LoadError> {
    let a: Vec<f64> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    if a.len() != 3 || v.as_array().map(Vec::len) != Some(3) {
        return Err(bad(path, format!("`{key}` = {v}: expected three numbers (R, G, B)")));
    }
    Ok([a[0] as f32, a[1] as f32, a[2] as f32])
}

fn normalization_from(
    path: &Path,
    mean: Option<&Value>,
    std: Option<&Value>,
    mk: &str,
    sk: &str,
) -> Result<Option<(Normalization, String)>, LoadError> {
    match (mean, std) {
        (None, None) => Ok(None),
        (Some(m), Some(s)) => Ok(Some((
            Normalization {
                mean: triple(path, mk, m)?,
                std: triple(path, sk, s)?,
            },
            format!("{}: {mk}, {sk}", path.display()),
        ))),
        _ => Err(bad(path, format!("`{mk}` and `{sk}` must be given together"))),
    }
}

fn open_clip_preprocess(path: &Path, v: &Value) -> Result<Preprocess, LoadError> {
    let Some(p) = v.get("preprocess_cfg").filter(|p| !p.is_null()) else {
        return Ok((None, None));
    };
    // open_clip's test transform: Resize(shortest, bicubic) + CenterCrop, as ntlb's.
    if let Some(i) = p.get("interpolation").filter(|i| !i.is_null() && i.as_str() != Some("bicubic")) {
        return Err(bad(
            path,
            format!("`preprocess_cfg.interpolation` = {i}: ntlb resizes with Pillow's bicubic only"),
        ));
    }
    if let Some(r) = p.get("resize_mode").filter(|r| !r.is_null() && r.as_str() != Some("shortest")) {
        return Err(bad(
            path,
            format!("`preprocess_cfg.resize_mode` = {r}: ntlb implements \"shortest\" (resize, then centre crop) only"),
        ));
    }
    let norm = normalization_from(path, p.get("mean"), p.get("std"), "preprocess_cfg.mean", "preprocess_cfg.std")?;
    let size = match p.get("size").filter(|s| !s.is_null()) {
        None => None,
        Some(s) => Some((
            square(path, "preprocess_cfg.size", s)?,
            format!("{}: preprocess_cfg.size", path.display()),
        )),
    };
    Ok((norm, size))
}

/// A size given as `n`, `[n, n]` or `{"height": n, "width": n}` / `{"shortest_edge": n}`.
fn square(path: &Path, key: &str, v: &Value) -> Result<usize, LoadError> {
    let as_n = |x: &Value| x.as_u64().map(|n| n as usize);
    let n = match v {
        Value::Number(_) => as_n(v),
        Value::Array(a) if a.len() == 2 && a[0] == a[1] => as_n(&a[0]),
        Value::Object(o) => match (o.get("height"), o.get("width"), o.get("shortest_edge")) {
            (Some(h), Some(w), None) if h == w => as_n(h),
            (None, None, Some(s)) => as_n(s),
            _ => None,
        },
        _ => None,
    };
    n.ok_or_else(|| bad(path, format!("`{key}` = {v}: ntlb implements a square resize and crop only")))
}

fn hf_preprocess(path: &Path, v: &Value) -> Result<Preprocess, LoadError> {
    let flag = |k: &str| v.get(k).and_then(Value::as_bool);
    for k in ["do_resize", "do_center_crop", "do_normalize", "do_rescale"] {
        if flag(k) == Some(false) {
            return Err(bad(path, format!("`{k}` = false: ntlb's test transform always does it (CLIP's)")));
        }
    }
    // PIL.Image.BICUBIC = 3.
    if let Some(r) = v.get("resample").filter(|r| r.as_u64() != Some(3)) {
        return Err(bad(path, format!("`resample` = {r}: ntlb resizes with Pillow's bicubic (3) only")));
    }
    if let Some(r) = v
        .get("rescale_factor")
        .filter(|r| r.as_f64().is_none_or(|f| (f - 1.0 / 255.0).abs() > 1e-12))
    {
        return Err(bad(path, format!("`rescale_factor` = {r}: ntlb rescales by 1/255 only")));
    }
    let norm = normalization_from(path, v.get("image_mean"), v.get("image_std"), "image_mean", "image_std")?;
    let size = v.get("size").map(|s| square(path, "size", s)).transpose()?;
    let crop = v.get("crop_size").map(|s| square(path, "crop_size", s)).transpose()?;
    let size = match (size, crop) {
        (Some(s), Some(c)) if s != c => {
            return Err(bad(
                path,
                format!("`size` {s} differs from `crop_size` {c}: ntlb resizes the shorter side to the crop size (CLIP's)"),
            ))
        }
        (s, c) => s.or(c).map(|n| (n, format!("{}: size / crop_size", path.display()))),
    };
    Ok((norm, size))
}

/// An explicit activation (`--activation`, a sweep's `[[models]] activation`) against the
/// declaration: the same value or no declaration is fine; a contradiction is an error.
pub fn resolve(path: &Path, declared: &Declaration, explicit: Option<Activation>) -> Result<DeclaredActivation, LoadError> {
    match (&declared.activation, explicit) {
        (Some(d), Some(e)) if d.text != e || d.vision != e => Err(bad(
            path,
            format!(
                "the activation was set to {e}, but the checkpoint declares text {} / vision {} ({}); remove the setting or fix the file",
                d.text, d.vision, d.source
            ),
        )),
        (Some(d), _) => Ok(d.clone()),
        (None, Some(e)) => Ok(DeclaredActivation {
            text: e,
            vision: e,
            source: format!("set explicitly to {e}; no config beside {}", path.display()),
        }),
        (None, None) => Ok(DeclaredActivation {
            text: Activation::QuickGelu,
            vision: Activation::QuickGelu,
            source: format!(
                "no {HF_CONFIG} / {OPEN_CLIP_CONFIG} beside {}: an OpenAI checkpoint, QuickGELU",
                path.display()
            ),
        }),
    }
}

/// What a model loaded from `path` computes with (the activation resolved against `explicit`),
/// read from the small files beside the weights only: the job keys need it before any load.
pub fn numerics(path: &Path, explicit: Option<Activation>) -> Result<ModelNumerics, LoadError> {
    let declared = declared(path)?;
    numerics_from(path, &declared, explicit)
}

pub(crate) fn numerics_from(path: &Path, declared: &Declaration, explicit: Option<Activation>) -> Result<ModelNumerics, LoadError> {
    let act = resolve(path, declared, explicit)?;
    let (normalization, normalization_source) = declared.normalization.clone().unwrap_or_else(|| {
        (
            Normalization::OPENAI,
            format!("none declared beside {}: OpenAI's mean and std", path.display()),
        )
    });
    Ok(ModelNumerics {
        text_activation: act.text,
        vision_activation: act.vision,
        activation_source: act.source,
        normalization,
        normalization_source,
        heads: declared.architecture.as_ref().map(|a| a.heads.clone()),
    })
}

/// What open_clip computes a pair's weights file with, by the pair table of [`crate::names`],
/// for [`declared`] where no config sits beside the file.
pub fn declared_for_file(path: &Path) -> Option<Declaration> {
    let p = pair_of_file(path)?;
    let pairs: Vec<String> = OPEN_CLIP.iter().filter(|q| q.repo == p.repo).map(|q| q.name()).collect();
    let source = format!(
        "open_clip's pair {} ({} -> {}; {OPEN_CLIP_SOURCE})",
        pairs.join(" / "),
        p.repo,
        path.display()
    );
    let a = p.activation();
    Some(Declaration {
        activation: Some(DeclaredActivation {
            text: a,
            vision: a,
            source: format!("{source}: {}", if p.quick_gelu { "QuickGELU" } else { "nn.GELU" }),
        }),
        normalization: Some((p.normalization(), source)),
        size: None,
        context_length: None,
        architecture: None,
    })
}
