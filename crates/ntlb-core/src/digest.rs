//! File identity for manifests and cache keys.

use std::path::Path;

use sha2::{Digest, Sha256};

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

/// Hex SHA-256 of bytes in memory (the same digest [`sha256_file`] gives for a file holding them).
pub fn sha256_bytes(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// What identifies a file's bytes without reading them. The status-change time is set by the
/// kernel on every write and no tool can restore it, so a file rewritten in place (with its
/// modification time kept) never shows its old stamp.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
    pub dev: u64,
}

#[cfg(unix)]
pub fn file_stamp(path: &Path) -> std::io::Result<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(FileStamp {
        size: m.len(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        ino: m.ino(),
        dev: m.dev(),
    })
}

/// Digests of files remembered by their stamps (a JSON file beside a cache), so that data sets of
/// hundreds of gigabytes are hashed once, not at every open. A remembered digest is used only when
/// the stamp is unchanged and the file's last change is older than the hashing by a margin (the
/// kernel's timestamps are coarse: a rewrite within the same tick keeps the stamp, git's "racy"
/// case), else the file is hashed again.
pub struct DigestMemo {
    path: Option<std::path::PathBuf>,
    entries: std::collections::BTreeMap<String, (FileStamp, String, i128)>,
    changed: bool,
}

/// Changes closer than this to the moment a file was hashed are not trusted to show in its stamp.
const RACY_NS: i128 = 2_000_000_000;

impl DigestMemo {
    /// The memo at `path` (none: every file is hashed). An unreadable memo is only a cost: it is
    /// reported and started afresh.
    pub fn open(path: Option<&Path>) -> DigestMemo {
        let entries = path
            .filter(|p| p.exists())
            .and_then(|p| {
                match std::fs::read(p)
                    .map_err(anyhow::Error::from)
                    .and_then(|b| Ok(serde_json::from_slice(&b)?))
                {
                    Ok(e) => Some(e),
                    Err(e) => {
                        eprintln!("{}: unreadable digest memo ({e}); hashing the files again", p.display());
                        None
                    }
                }
            })
            .unwrap_or_default();
        DigestMemo {
            path: path.map(Path::to_path_buf),
            entries,
            changed: false,
        }
    }

    /// The SHA-256 of `file`, remembered when its stamp vouches for it, else hashed.
    #[cfg(unix)]
    pub fn sha256(&self, file: &Path) -> std::io::Result<(String, Option<(FileStamp, i128)>)> {
        let key = file.display().to_string();
        let stamp = file_stamp(file)?;
        if let Some((s, sha, hashed_at)) = self.entries.get(&key) {
            if *s == stamp && stamp.ctime_ns.max(stamp.mtime_ns) + RACY_NS < *hashed_at {
                return Ok((sha.clone(), None));
            }
        }
        let hashed_at = now_ns();
        let sha = sha256_file(file)?;
        // A write during the hashing would leave a digest of neither version: not remembered.
        let fresh = (file_stamp(file)? == stamp).then_some((stamp, hashed_at));
        Ok((sha, fresh))
    }

    /// Remember a digest [`Self::sha256`] computed.
    pub fn remember(&mut self, file: &Path, sha: &str, fresh: Option<(FileStamp, i128)>) {
        if let Some((stamp, at)) = fresh {
            self.entries.insert(file.display().to_string(), (stamp, sha.to_string(), at));
            self.changed = true;
        }
    }

    /// Write the memo back (atomically) when it learnt something.
    pub fn save(&self) -> anyhow::Result<()> {
        if let (Some(p), true) = (&self.path, self.changed) {
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d)?;
            }
            crate::atomic::write_atomic(p, &serde_json::to_vec(&self.entries)?)?;
        }
        Ok(())
    }
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_with_its_time_kept_changes_the_stamp_or_is_too_recent_to_trust() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("shard.tar");
        std::fs::write(&f, b"aaaa").unwrap();
        let mut memo = DigestMemo::open(Some(&dir.path().join("memo.json")));
        let (sha_a, fresh) = memo.sha256(&f).unwrap();
        assert!(fresh.is_some(), "a first digest is computed");
        memo.remember(&f, &sha_a, fresh);
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        std::fs::write(&f, b"bbbb").unwrap();
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(mtime).unwrap();
        let (sha_b, _) = memo.sha256(&f).unwrap();
        assert_ne!(sha_a, sha_b, "the rewritten bytes are hashed again");
        assert_eq!(sha_b, sha256_file(&f).unwrap());
    }

    #[test]
    fn an_old_unchanged_file_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("shard.tar");
        std::fs::write(&f, b"aaaa").unwrap();
        let mut memo = DigestMemo::open(Some(&dir.path().join("memo.json")));
        // As if hashed long after its last change: the remembered digest is used as it is (a
        // planted digest shows it was not recomputed).
        let stamp = file_stamp(&f).unwrap();
        memo.remember(&f, "planted", Some((stamp, now_ns() + 10 * RACY_NS)));
        memo.save().unwrap();
        let memo = DigestMemo::open(Some(&dir.path().join("memo.json")));
        assert_eq!(memo.sha256(&f).unwrap().0, "planted");
        // Touched since: hashed again.
        std::fs::write(&f, b"aaaaa").unwrap();
        assert_eq!(memo.sha256(&f).unwrap().0, sha256_file(&f).unwrap());
    }
}
