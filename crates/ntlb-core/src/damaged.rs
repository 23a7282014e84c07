//! Files that fail their check on read (truncated, unparseable, a digest that does not match):
//! moved aside to `<name>.damaged` (`.damaged.2`, … when that exists), never deleted, so the
//! caller can recompute in their place without losing what was there.

use std::path::{Path, PathBuf};

/// Rename `path` to the first free `<name>.damaged[.N]` beside it; returns the new path.
pub fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let mut n = 1;
    loop {
        let suffix = if n == 1 { String::new() } else { format!(".{n}") };
        let to = path.with_file_name(format!("{name}.damaged{suffix}"));
        if !to.exists() {
            std::fs::rename(path, &to)?;
            return Ok(to);
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_files_are_kept_side_by_side() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        std::fs::write(&p, b"one").unwrap();
        assert_eq!(set_aside(&p).unwrap(), d.path().join("x.json.damaged"));
        std::fs::write(&p, b"two").unwrap();
        assert_eq!(set_aside(&p).unwrap(), d.path().join("x.json.damaged.2"));
        assert!(!p.exists());
        assert_eq!(std::fs::read(d.path().join("x.json.damaged")).unwrap(), b"one");
        assert_eq!(std::fs::read(d.path().join("x.json.damaged.2")).unwrap(), b"two");
    }
}
