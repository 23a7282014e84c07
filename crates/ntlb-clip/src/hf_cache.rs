//! The local Hugging Face cache, read as `huggingface_hub` lays it out; no network: a model not
//! in the cache is an error that says how to download it.
//!
//! The cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
//! else `~/.cache/huggingface/hub`. A repo is `models--org--name/`; `refs/<revision>` (default
//! `main`) holds a commit hash, whose files are `snapshots/<hash>/`, symlinks into `blobs/`. A
//! 40-hex revision is a commit: `snapshots/<hash>/` directly. The paths returned are the
//! snapshot's own (not the blobs they link to), so `tokenizer.json` and the configs are found
//! beside them.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use crate::files::{probe, HF_CONFIG, OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS, TOKENIZER};

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("`{0}` is an existing path: a revision only applies to a model name (org/name or hf-hub:org/name)")]
    RevisionWithPath(PathBuf),
    #[error("`{spec}` is neither an existing file or folder nor a model name (org/name, hf-hub:org/name)")]
    NotAName { spec: String },
    #[error("{}", not_found(spec, tried, command))]
    NotFound {
        spec: String,
        /// Every path looked at, with what was wrong with it.
        tried: Vec<(PathBuf, String)>,
        command: String,
    },
    /// The cache holds the model, but not all of it (or not what its layout needs).
    #[error("{msg}\ndownload it again with: {command}")]
    Incomplete { msg: String, command: String },
    /// `error` in the message, not as the source: printed with its chain it would read twice.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    /// A `clip.load` file whose SHA-256 is not the one `clip.load` checks.
    #[error("{path}: SHA-256 {found} does not match {expected}, the digest clip.load checks for `{name}` (a partial or altered download); remove the file and download it again with: {command}")]
    Digest {
        name: String,
        path: PathBuf,
        expected: String,
        found: String,
        command: String,
    },
    #[error("`{0}` is a clip.load name, which has no revision (a revision applies to Hugging Face names and open_clip pairs)")]
    ClipLoadRevision(String),
}

fn not_found(spec: &str, tried: &[(PathBuf, String)], command: &str) -> String {
    let mut s = format!("model `{spec}` not found; looked at:");
    for (p, why) in tried {
        let _ = write!(s, "\n  {} ({why})", p.display());
    }
    let _ = write!(s, "\ndownload it with: {command}");
    s
}

/// The environment variables that place the cache, passed in so that tests need not set the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct HubEnv {
    pub hf_hub_cache: Option<OsString>,
    /// The older name of `HF_HUB_CACHE`, which `huggingface_hub` still reads.
    pub huggingface_hub_cache: Option<OsString>,
    pub hf_home: Option<OsString>,
    pub xdg_cache_home: Option<OsString>,
    pub home: Option<OsString>,
    /// `clip.load`'s `download_root` (`--clip-cache`, `NTLB_CLIP_CACHE`); unset: `~/.cache/clip`.
    pub clip_cache: Option<OsString>,
}

impl HubEnv {
    pub fn from_process() -> HubEnv {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        HubEnv {
            hf_hub_cache: var("HF_HUB_CACHE"),
            huggingface_hub_cache: var("HUGGINGFACE_HUB_CACHE"),
            hf_home: var("HF_HOME"),
            xdg_cache_home: var("XDG_CACHE_HOME"),
            home: var("HOME").or_else(|| var("USERPROFILE")),
            clip_cache: var("NTLB_CLIP_CACHE"),
        }
    }

    /// `~` expanded as Python's `os.path.expanduser` does.
    fn expand(&self, v: &OsString) -> PathBuf {
        let p = PathBuf::from(v);
        match (p.strip_prefix("~"), &self.home) {
            (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ => p,
        }
    }

    /// The cache folder and the variable it came from.
    pub fn cache_root(&self) -> (PathBuf, &'static str) {
        if let Some(v) = &self.hf_hub_cache {
            return (self.expand(v), "HF_HUB_CACHE");
        }
        if let Some(v) = &self.huggingface_hub_cache {
            return (self.expand(v), "HUGGINGFACE_HUB_CACHE");
        }
        if let Some(v) = &self.hf_home {
            return (self.expand(v).join("hub"), "HF_HOME");
        }
        if let Some(v) = &self.xdg_cache_home {
            return (self.expand(v).join("huggingface").join("hub"), "XDG_CACHE_HOME");
        }
        let home = self.home.clone().map(PathBuf::from).unwrap_or_default();
        (
            home.join(".cache").join("huggingface").join("hub"),
            "the default ~/.cache/huggingface/hub",
        )
    }
}

/// Which layout a name asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `hf-hub:org/name`: open_clip's weights file.
    OpenClip,
    /// A repository named by an open_clip pair: its weights file, as open_clip downloads it
    /// (alone: open_clip reads no config for a pair).
    OpenClipPair,
    /// `org/name`: a transformers folder.
    Transformers,
}

/// The download command for a repo.
pub fn download_command(repo: &str, revision: Option<&str>) -> String {
    match revision {
        Some(r) => format!("huggingface-cli download {repo} --revision {r}"),
        None => format!("huggingface-cli download {repo}"),
    }
}

fn is_commit_hash(r: &str) -> bool {
    r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit())
}

pub(crate) fn resolve_repo(
    kind: Kind,
    repo: &str,
    spec: &str,
    revision: Option<&str>,
    env: &HubEnv,
    also_tried: &[PathBuf],
) -> Result<PathBuf, HubError> {
    let command = download_command(repo, revision);
    let (root, from) = env.cache_root();
    let repo_dir = root.join(format!("models--{}", repo.replace('/', "--")));
    let mut tried: Vec<(PathBuf, String)> = also_tried
        .iter()
        .map(|p| (p.clone(), "no such file or folder".to_string()))
        .collect();
    let not_found = |tried: Vec<(PathBuf, String)>| HubError::NotFound {
        spec: spec.into(),
        tried,
        command: command.clone(),
    };
    let rev = revision.unwrap_or("main");
    let bad_rev = Path::new(rev).components().any(|c| !matches!(c, Component::Normal(_)));
    if rev.is_empty() || bad_rev {
        return Err(not_found(vec![(repo_dir.join("refs"), format!("`{rev}` is not a revision name"))]));
    }
    let commit = if is_commit_hash(rev) {
        rev.to_string()
    } else {
        let ref_file = repo_dir.join("refs").join(rev);
        match std::fs::read_to_string(&ref_file) {
            Ok(s) => {
                let hash = s.trim().to_string();
                if hash.is_empty() || hash.contains(['/', '\\']) || hash.starts_with('.') {
                    return Err(HubError::Incomplete {
                        msg: format!("{}: holds {:?}, not a commit hash", ref_file.display(), s),
                        command,
                    });
                }
                hash
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let why = if repo_dir.is_dir() {
                    format!("no such file: no revision `{rev}` in the cache")
                } else {
                    format!("no such file: `{repo}` is not in the cache {} (from {from})", root.display())
                };
                tried.push((ref_file, why));
                return Err(not_found(tried));
            }
            Err(error) => return Err(HubError::Io { path: ref_file, error }),
        }
    };
    let snapshot = repo_dir.join("snapshots").join(&commit);
    if !snapshot.is_dir() {
        tried.push((
            snapshot,
            format!("no such folder: the snapshot of commit {commit} is not in the cache"),
        ));
        return Err(not_found(tried));
    }
    let incomplete = |msg: String| HubError::Incomplete {
        msg,
        command: command.clone(),
    };
    let dangling = |name: &str, target: PathBuf| {
        incomplete(format!(
            "{}: a symlink to {}, which does not exist (an incomplete download?)",
            snapshot.join(name).display(),
            target.display()
        ))
    };
    match kind {
        Kind::Transformers => {
            // The one rule for the weights file of a folder; a dangling link is an error there.
            crate::files::weights_file(&snapshot).map_err(|e| incomplete(e.to_string()))?;
            for name in [HF_CONFIG, TOKENIZER] {
                probe(&snapshot.join(name)).map_err(|t| dangling(name, t))?;
            }
            Ok(snapshot)
        }
        Kind::OpenClip | Kind::OpenClipPair => {
            let mut weights = None;
            for name in OPEN_CLIP_WEIGHTS {
                if probe(&snapshot.join(name)).map_err(|t| dangling(name, t))? {
                    weights = Some(snapshot.join(name));
                    break;
                }
            }
            let Some(weights) = weights else {
                return Err(incomplete(format!(
                    "{}: no {} or {}: not an open_clip repo? (a transformers repo is named without `hf-hub:`)",
                    snapshot.display(),
                    OPEN_CLIP_WEIGHTS[0],
                    OPEN_CLIP_WEIGHTS[1]
                )));
            };
            if kind == Kind::OpenClipPair {
                return Ok(weights);
            }
            if !probe(&snapshot.join(OPEN_CLIP_CONFIG)).map_err(|t| dangling(OPEN_CLIP_CONFIG, t))? {
                return Err(incomplete(format!(
                    "{}: no {OPEN_CLIP_CONFIG} beside the weights",
                    weights.display()
                )));
            }
            probe(&snapshot.join(TOKENIZER)).map_err(|t| dangling(TOKENIZER, t))?;
            Ok(weights)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_root_precedence() {
        let os = |s: &str| Some(OsString::from(s));
        let mut env = HubEnv {
            hf_hub_cache: os("/c"),
            huggingface_hub_cache: os("/old"),
            hf_home: os("/h"),
            xdg_cache_home: os("/x"),
            home: os("/home/u"),
            clip_cache: None,
        };
        assert_eq!(env.cache_root().0, PathBuf::from("/c"));
        env.hf_hub_cache = None;
        assert_eq!(env.cache_root().0, PathBuf::from("/old"));
        env.huggingface_hub_cache = None;
        assert_eq!(env.cache_root().0, PathBuf::from("/h/hub"));
        env.hf_home = os("~/hfh");
        assert_eq!(env.cache_root().0, PathBuf::from("/home/u/hfh/hub"));
        env.hf_home = None;
        assert_eq!(env.cache_root().0, PathBuf::from("/x/huggingface/hub"));
        env.xdg_cache_home = None;
        assert_eq!(env.cache_root().0, PathBuf::from("/home/u/.cache/huggingface/hub"));
    }
}
