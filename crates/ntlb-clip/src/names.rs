//! Model names as the reference's libraries take them, resolved to the files those libraries
//! downloaded; no network.
//!
//! - `clip.load` names (`ViT-B/32`, `RN50`, ...): the file `clip.load` keeps,
//!   `<download_root>/<the URL's file name>` (`ViT-B-32.pt`), `download_root` being
//!   `--clip-cache`, else `$NTLB_CLIP_CACHE`, else clip.load's default `~/.cache/clip`. The file's
//!   SHA-256 must be the one `clip.load` checks: the 64 hex digits in its URL ([`CLIP_LOAD`]).
//! - open_clip's `model/tag` pairs (`ViT-B-32/laion2b_s34b_b79k`, as `create_model_and_transforms`
//!   takes them): the weights file open_clip downloads from the pair's Hugging Face repository
//!   (`open_clip_model.safetensors`, else `open_clip_pytorch_model.bin`) in the local Hugging Face
//!   cache ([`OPEN_CLIP`]). open_clip builds a pair from its own model config and the tag's
//!   preprocessing, not from any file beside the weights, so the activation and normalisation
//!   of the pair come from the table (`checkpoint::declared` reads it when
//!   no config sits beside the file).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Activation;
use crate::files::OPEN_CLIP_WEIGHTS;
use crate::hf_cache::{HubEnv, HubError};
use crate::preprocess::Normalization;

/// Where [`CLIP_LOAD`] is copied from.
pub const CLIP_LOAD_SOURCE: &str = "`_MODELS` of clip/clip.py in github.com/openai/CLIP (identical in the PyPI package openai-clip 1.0.1)";

/// One name of `clip.load`: its release URL's file name and SHA-256 (the URL's last folder).
#[derive(Debug, Clone, Copy)]
pub struct ClipLoadModel {
    pub name: &'static str,
    pub sha256: &'static str,
    pub file: &'static str,
}

/// `clip.load`'s table: every name it offers, with the digest its `_download` checks.
#[rustfmt::skip]
pub const CLIP_LOAD: &[ClipLoadModel] = &[
    ClipLoadModel { name: "RN50",           sha256: "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", file: "RN50.pt" },
    ClipLoadModel { name: "RN101",          sha256: "8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599", file: "RN101.pt" },
    ClipLoadModel { name: "RN50x4",         sha256: "7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd", file: "RN50x4.pt" },
    ClipLoadModel { name: "RN50x16",        sha256: "52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa", file: "RN50x16.pt" },
    ClipLoadModel { name: "RN50x64",        sha256: "be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c", file: "RN50x64.pt" },
    ClipLoadModel { name: "ViT-B/32",       sha256: "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", file: "ViT-B-32.pt" },
    ClipLoadModel { name: "ViT-B/16",       sha256: "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", file: "ViT-B-16.pt" },
    ClipLoadModel { name: "ViT-L/14",       sha256: "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", file: "ViT-L-14.pt" },
    ClipLoadModel { name: "ViT-L/14@336px", sha256: "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02", file: "ViT-L-14-336px.pt" },
];

/// Where [`OPEN_CLIP`] is copied from.
pub const OPEN_CLIP_SOURCE: &str = "open_clip/pretrained.py and open_clip/model_configs/*.json of the PyPI package open_clip_torch 3.3.0";

/// One pretrained pair of open_clip: the repository its weights come from, and what open_clip
/// computes with for it.
#[derive(Debug, Clone, Copy)]
pub struct OpenClipPair {
    pub model: &'static str,
    pub tag: &'static str,
    /// `hf_hub` of the tag's entry (without its trailing `/`).
    pub repo: &'static str,
    pub quick_gelu: bool,
    /// The tag's `mean` / `std` (open_clip's default: OpenAI's); every pair here resizes the
    /// shorter side with bicubic and centre-crops, ntlb's (and CLIP's) test transform.
    pub inception_mean_std: bool,
}

const fn pair(model: &'static str, tag: &'static str, repo: &'static str, quick_gelu: bool) -> OpenClipPair {
    OpenClipPair {
        model,
        tag,
        repo,
        quick_gelu,
        inception_mean_std: false,
    }
}

/// The common pairs. Activation: a `-quickgelu` model config sets `quick_gelu`, others build
/// nn.GELU; the tag's `quick_gelu` says how the weights were trained. Where the two disagree
/// open_clip builds the model config's activation and warns; of those pairs only the `openai`
/// tags are listed, with QuickGELU, as OpenAI's weights were trained and as open_clip's README
/// promises ("all OpenAI pretrained weights will always default to QuickGELU"; the `-quickgelu`
/// spelling of each is listed too). Pairs whose preprocessing ntlb does not implement (squash
/// resizing, bilinear), towers it does not implement (timm, Hugging Face text) and heads other
/// than 64 wide (ViT-H-14's 80, which no file of a pair declares) are left out.
#[rustfmt::skip]
pub const OPEN_CLIP: &[OpenClipPair] = &[
    pair("RN50",                 "openai",                "timm/resnet50_clip.openai",                    true),
    pair("RN50-quickgelu",       "openai",                "timm/resnet50_clip.openai",                    true),
    pair("RN101",                "openai",                "timm/resnet101_clip.openai",                   true),
    pair("RN101-quickgelu",      "openai",                "timm/resnet101_clip.openai",                   true),
    pair("RN50x4",               "openai",                "timm/resnet50x4_clip.openai",                  true),
    pair("RN50x4-quickgelu",     "openai",                "timm/resnet50x4_clip.openai",                  true),
    pair("RN50x16",              "openai",                "timm/resnet50x16_clip.openai",                 true),
    pair("RN50x16-quickgelu",    "openai",                "timm/resnet50x16_clip.openai",                 true),
    pair("RN50x64",              "openai",                "timm/resnet50x64_clip.openai",                 true),
    pair("RN50x64-quickgelu",    "openai",                "timm/resnet50x64_clip.openai",                 true),
    pair("ViT-B-32",             "openai",                "timm/vit_base_patch32_clip_224.openai",        true),
    pair("ViT-B-32-quickgelu",   "openai",                "timm/vit_base_patch32_clip_224.openai",        true),
    pair("ViT-B-32-quickgelu",   "laion400m_e31",         "timm/vit_base_patch32_clip_224.laion400m_e31", true),
    pair("ViT-B-32-quickgelu",   "laion400m_e32",         "timm/vit_base_patch32_clip_224.laion400m_e32", true),
    pair("ViT-B-32",             "laion2b_e16",           "timm/vit_base_patch32_clip_224.laion2b_e16",   false),
    pair("ViT-B-32",             "laion2b_s34b_b79k",     "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",        false),
    pair("ViT-B-32",             "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K",    false),
    pair("ViT-B-16",             "openai",                "timm/vit_base_patch16_clip_224.openai",        true),
    pair("ViT-B-16-quickgelu",   "openai",                "timm/vit_base_patch16_clip_224.openai",        true),
    pair("ViT-B-16",             "laion400m_e31",         "timm/vit_base_patch16_clip_224.laion400m_e31", false),
    pair("ViT-B-16",             "laion400m_e32",         "timm/vit_base_patch16_clip_224.laion400m_e32", false),
    pair("ViT-B-16",             "laion2b_s34b_b88k",     "laion/CLIP-ViT-B-16-laion2B-s34B-b88K",        false),
    pair("ViT-B-16",             "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K",    false),
    pair("ViT-L-14",             "openai",                "timm/vit_large_patch14_clip_224.openai",       true),
    pair("ViT-L-14-quickgelu",   "openai",                "timm/vit_large_patch14_clip_224.openai",       true),
    pair("ViT-L-14",             "laion400m_e31",         "timm/vit_large_patch14_clip_224.laion400m_e31", false),
    pair("ViT-L-14",             "laion400m_e32",         "timm/vit_large_patch14_clip_224.laion400m_e32", false),
    OpenClipPair { inception_mean_std: true, ..pair("ViT-L-14", "laion2b_s32b_b82k", "laion/CLIP-ViT-L-14-laion2B-s32B-b82K", false) },
    pair("ViT-L-14",             "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K",    false),
    pair("ViT-L-14-336",         "openai",                "timm/vit_large_patch14_clip_336.openai",       true),
    pair("ViT-L-14-336-quickgelu", "openai",              "timm/vit_large_patch14_clip_336.openai",       true),
];

/// open_clip's INCEPTION_MEAN / INCEPTION_STD (constants.py).
const INCEPTION: Normalization = Normalization {
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
};

impl OpenClipPair {
    pub fn name(&self) -> String {
        format!("{}/{}", self.model, self.tag)
    }

    pub fn activation(&self) -> Activation {
        if self.quick_gelu {
            Activation::QuickGelu
        } else {
            Activation::Gelu
        }
    }

    pub fn normalization(&self) -> Normalization {
        if self.inception_mean_std {
            INCEPTION
        } else {
            Normalization::OPENAI
        }
    }
}

/// The `clip.load` name `spec`, if it is one.
pub fn clip_load(spec: &str) -> Option<&'static ClipLoadModel> {
    CLIP_LOAD.iter().find(|m| m.name == spec)
}

/// The open_clip pair `spec` (`model/tag`), if the table has it. open_clip lower-cases the
/// tag and reads `-` in it as `_` (`_clean_tag`).
pub fn open_clip_pair(spec: &str) -> Option<&'static OpenClipPair> {
    let (model, tag) = spec.split_once('/')?;
    let tag = tag.to_lowercase().replace('-', "_");
    OPEN_CLIP.iter().find(|p| p.model == model && p.tag == tag)
}

/// Whether `spec` is a name of either table.
pub fn is_name(spec: &str) -> bool {
    clip_load(spec).is_some() || open_clip_pair(spec).is_some()
}

/// What a name resolved to, and what was checked: shown by `ntlb inspect`, kept in run records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameResolution {
    /// The name as written.
    pub name: String,
    /// `clip.load` or `open_clip`.
    pub library: String,
    pub path: PathBuf,
    /// How the path was found (the cache folder and where it came from).
    pub located: String,
    /// The table entry used, with the table's source.
    pub entry: String,
    /// What was verified about the file.
    pub checked: String,
    /// The file's SHA-256, where it was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// `clip.load`'s `download_root`, and where it came from.
pub fn clip_cache(env: &HubEnv) -> (PathBuf, String) {
    if let Some(v) = &env.clip_cache {
        return (PathBuf::from(v), "--clip-cache / NTLB_CLIP_CACHE".into());
    }
    let home = env.home.clone().map(PathBuf::from).unwrap_or_default();
    (home.join(".cache").join("clip"), "clip.load's default ~/.cache/clip".into())
}

/// SHA-256 of a file, once per process for a given path, size and modification time (a
/// checkpoint is hundreds of MB and a run resolves its name more than once).
fn sha256_file(path: &Path) -> std::io::Result<String> {
    type Stamp = (PathBuf, u64, Option<std::time::SystemTime>);
    static MEMO: std::sync::Mutex<Vec<(Stamp, String)>> = std::sync::Mutex::new(Vec::new());
    let meta = std::fs::metadata(path)?;
    let stamp = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some((_, h)) = MEMO.lock().expect("memo").iter().find(|(s, _)| *s == stamp) {
        return Ok(h.clone());
    }
    let h = ntlb_core::digest::sha256_file(path)?;
    MEMO.lock().expect("memo").push((stamp, h.clone()));
    Ok(h)
}

/// Resolve a name of either table; `Ok(None)`: `spec` is in neither (it may be a Hugging Face
/// name). `also_tried`: paths the caller looked at first, listed when nothing is found.
pub fn resolve_in(spec: &str, revision: Option<&str>, env: &HubEnv, also_tried: &[PathBuf]) -> Result<Option<NameResolution>, HubError> {
    if let Some(m) = clip_load(spec) {
        if revision.is_some() {
            return Err(HubError::NotAName {
                spec: format!("{spec}` with a revision (a clip.load name has none; revisions are for Hugging Face names)`"),
            });
        }
        return resolve_clip_load(m, env, also_tried).map(Some);
    }
    let Some(p) = open_clip_pair(spec) else {
        return Ok(None);
    };
    let path = crate::hf_cache::resolve_repo(crate::hf_cache::Kind::OpenClipPair, p.repo, spec, revision, env, also_tried)?;
    let (root, from) = env.cache_root();
    Ok(Some(NameResolution {
        name: spec.into(),
        library: "open_clip".into(),
        located: format!("hf-hub:{} in the Hugging Face cache {} (from {from})", p.repo, root.display()),
        entry: format!(
            "{} -> {} ({}); activation {}, normalisation {}",
            p.name(),
            p.repo,
            OPEN_CLIP_SOURCE,
            p.activation(),
            if p.inception_mean_std {
                "open_clip's INCEPTION mean/std (0.5)"
            } else {
                "OpenAI's mean/std"
            }
        ),
        checked: "the weights file is in the snapshot (open_clip's table carries no digest for Hugging Face downloads)".into(),
        sha256: None,
        path,
    }))
}

/// [`resolve_in`] of one `clip.load` entry.
pub fn resolve_clip_load(m: &ClipLoadModel, env: &HubEnv, also_tried: &[PathBuf]) -> Result<NameResolution, HubError> {
    let (root, from) = clip_cache(env);
    let path = root.join(m.file);
    let command = format!(
        "python -c \"import clip; clip.load('{}', device='cpu', download_root='{}')\"",
        m.name,
        root.display()
    );
    if !path.is_file() {
        let mut tried: Vec<(PathBuf, String)> = also_tried.iter().map(|p| (p.clone(), "no such file or folder".into())).collect();
        tried.push((
            path,
            format!(
                "no such file: `{}` is not in clip.load's download_root {} (from {from})",
                m.name,
                root.display()
            ),
        ));
        return Err(HubError::NotFound {
            spec: m.name.into(),
            tried,
            command,
        });
    }
    let got = sha256_file(&path).map_err(|error| HubError::Io { path: path.clone(), error })?;
    if got != m.sha256 {
        return Err(HubError::Digest {
            name: m.name.into(),
            path,
            expected: m.sha256.into(),
            found: got,
            command,
        });
    }
    Ok(NameResolution {
        name: m.name.into(),
        library: "clip.load".into(),
        located: format!("download_root {} (from {from}) / {}", root.display(), m.file),
        entry: format!("{} -> {}, sha256 {} ({})", m.name, m.file, m.sha256, CLIP_LOAD_SOURCE),
        checked: format!("SHA-256 of the file = {} (the digest clip.load checks)", m.sha256),
        sha256: Some(got),
        path,
    })
}

/// What a checkpoint file is by the tables, for run records: a `clip.load` file whose SHA-256
/// (`sha256`, computed by the caller) is the table's, or the weights file of an open_clip
/// pair's repository. `None`: neither.
pub fn identify(path: &Path, sha256: &str) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    if let Some(m) = CLIP_LOAD.iter().find(|m| m.file == file && m.sha256 == sha256) {
        return Some(format!(
            "clip.load's `{}` ({}): SHA-256 {} checked against {CLIP_LOAD_SOURCE}",
            m.name, m.file, m.sha256
        ));
    }
    let p = pair_of_file(path)?;
    let pairs: Vec<String> = OPEN_CLIP.iter().filter(|q| q.repo == p.repo).map(|q| q.name()).collect();
    Some(format!("open_clip's {} (hf-hub:{}, {OPEN_CLIP_SOURCE})", pairs.join(" / "), p.repo))
}

/// The pair of a weights file in the Hugging Face cache (`.../models--org--name/snapshots/<commit>/<file>`)
/// whose repository is in [`OPEN_CLIP`]: every pair of one repository computes alike.
pub fn pair_of_file(path: &Path) -> Option<&'static OpenClipPair> {
    let file = path.file_name()?.to_str()?;
    if !OPEN_CLIP_WEIGHTS.contains(&file) {
        return None;
    }
    let snapshots = path.parent()?.parent()?;
    if snapshots.file_name()? != "snapshots" {
        return None;
    }
    let repo_dir = snapshots.parent()?.file_name()?.to_str()?;
    let (org, name) = repo_dir.strip_prefix("models--")?.split_once("--")?;
    let repo = format!("{org}/{name}");
    OPEN_CLIP.iter().find(|p| p.repo == repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_consistent() {
        for m in CLIP_LOAD {
            assert_eq!(m.sha256.len(), 64);
            assert!(m.sha256.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
            assert_eq!(m.file, format!("{}.pt", m.name.replace('/', "-").replace("@336px", "-336px")));
        }
        for p in OPEN_CLIP {
            // One repository computes one way, whichever of its pairs named it.
            for q in OPEN_CLIP.iter().filter(|q| q.repo == p.repo) {
                assert_eq!(
                    (p.quick_gelu, p.inception_mean_std),
                    (q.quick_gelu, q.inception_mean_std),
                    "{}",
                    p.repo
                );
            }
            assert!(crate::hub::is_name(&format!("hf-hub:{}", p.repo)), "{}", p.repo);
            assert_eq!(p.model.ends_with("-quickgelu") || p.tag == "openai", p.quick_gelu, "{}", p.name());
        }
        assert_eq!(
            open_clip_pair("ViT-B-32/LAION2B-S34B-B79K").unwrap().repo,
            "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
        );
        assert!(
            open_clip_pair("ViT-B-32/laion400m_e32").is_none(),
            "trained with QuickGELU, built with GELU: not listed"
        );
    }

    #[test]
    fn a_pair_is_known_by_its_cache_path() {
        let p = Path::new("/c/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/snapshots/abc/open_clip_model.safetensors");
        assert_eq!(pair_of_file(p).unwrap().name(), "ViT-B-32/laion2b_s34b_b79k");
        let d = crate::checkpoint::declared_for_file(p).unwrap();
        assert_eq!(d.activation.unwrap().text, Activation::Gelu);
        let q = Path::new("/c/models--timm--vit_base_patch32_clip_224.openai/snapshots/abc/open_clip_pytorch_model.bin");
        assert_eq!(
            crate::checkpoint::declared_for_file(q).unwrap().activation.unwrap().text,
            Activation::QuickGelu
        );
        assert!(pair_of_file(Path::new(
            "/c/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/snapshots/abc/other.bin"
        ))
        .is_none());
        assert!(pair_of_file(Path::new("/elsewhere/open_clip_model.safetensors")).is_none());
    }
}
