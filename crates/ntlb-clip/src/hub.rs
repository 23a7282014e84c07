//! Model specs resolved to local paths: models by name from the local Hugging Face cache
//! ([`crate::hf_cache`]); no network: a model not in the cache is an error that says how to
//! download it.
//!
//! - a spec naming an existing file or folder is that path;
//! - `hf-hub:org/name` (open_clip's naming) is the weights file of the snapshot,
//!   `open_clip_model.safetensors`, else `open_clip_pytorch_model.bin`, with
//!   `open_clip_config.json` beside it;
//! - `org/name` (transformers) is the snapshot folder (`config.json`, `model.safetensors` or
//!   `pytorch_model.bin`, `tokenizer.json`);
//! - a `clip.load` name (`ViT-B/32`) or an open_clip pair (`ViT-B-32/laion2b_s34b_b79k`) is the
//!   file that library downloaded, by the tables of [`crate::names`].

use std::path::{Path, PathBuf};

use crate::hf_cache::{resolve_repo, Kind};

pub use crate::hf_cache::{download_command, HubEnv, HubError};

/// A Hugging Face repo id, `org/name`: two parts of letters, digits, `-`, `_`, `.`.
fn repo_id(s: &str) -> Option<&str> {
    let (org, name) = s.split_once('/')?;
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !p.starts_with(['.', '-'])
            && !p.contains("..")
            && !p.contains("--")
    };
    (part(org) && part(name)).then_some(s)
}

fn parse(spec: &str) -> Option<(Kind, &str)> {
    match spec.strip_prefix("hf-hub:") {
        Some(rest) => repo_id(rest).map(|r| (Kind::OpenClip, r)),
        None => repo_id(spec).map(|r| (Kind::Transformers, r)),
    }
}

/// Whether `spec` is written as a model name (`org/name` or `hf-hub:org/name`); it may also be
/// a relative path of that shape, which [`resolve`] prefers when it exists.
pub fn is_name(spec: &str) -> bool {
    parse(spec).is_some() || crate::names::is_name(spec)
}

/// [`resolve`] of a command-line path argument: an existing path is taken as it is (even one
/// that is not UTF-8), anything else is read as a name.
pub fn resolve_path(spec: &Path, revision: Option<&str>) -> Result<PathBuf, HubError> {
    match (spec.exists(), revision, spec.to_str()) {
        (true, None, _) => Ok(spec.into()),
        (true, Some(_), _) => Err(HubError::RevisionWithPath(spec.into())),
        (false, _, Some(s)) => resolve(s, revision),
        (false, _, None) => Err(HubError::NotAName {
            spec: spec.display().to_string(),
        }),
    }
}

/// [`resolve_in`] with the process environment.
pub fn resolve(spec: &str, revision: Option<&str>) -> Result<PathBuf, HubError> {
    resolve_in(spec, revision, &HubEnv::from_process())
}

/// The local path of a model spec (see the module doc): an existing path unchanged, or the
/// snapshot path of a name in the cache `env` points at.
pub fn resolve_in(spec: &str, revision: Option<&str>, env: &HubEnv) -> Result<PathBuf, HubError> {
    let as_path = Path::new(spec);
    if as_path.exists() {
        return match revision {
            Some(_) => Err(HubError::RevisionWithPath(as_path.into())),
            None => Ok(as_path.into()),
        };
    }
    let also_tried: &[PathBuf] = if spec.starts_with("hf-hub:") {
        &[]
    } else {
        &[as_path.to_path_buf()]
    };
    resolve_name_in(spec, revision, env, also_tried)
}

/// A model name (`org/name`, `hf-hub:org/name`) in the cache, not looked for as a path;
/// `also_tried` are the paths the caller looked at first, listed in the not-found error.
pub fn resolve_name_in(spec: &str, revision: Option<&str>, env: &HubEnv, also_tried: &[PathBuf]) -> Result<PathBuf, HubError> {
    if let Some(r) = crate::names::resolve_in(spec, revision, env, also_tried)? {
        return Ok(r.path);
    }
    let Some((kind, repo)) = parse(spec) else {
        return Err(HubError::NotAName { spec: spec.into() });
    };
    resolve_repo(kind, repo, spec, revision, env, also_tried)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert!(is_name("openai/clip-vit-base-patch32"));
        assert!(is_name("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"));
        assert!(is_name("timm/vit_base_patch16_clip_224.openai"));
        for not in [
            "ViT-B-32.safetensors",
            "a/b/c",
            "/abs/x",
            "../x",
            "./x",
            "a/",
            "hf-hub:x",
            "a--b/c",
            "",
        ] {
            assert!(!is_name(not), "{not}");
        }
    }
}
