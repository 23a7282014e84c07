//! Small file helpers shared by every crate.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Write through a temporary file in the same directory and rename it into place, so a killed
/// run never leaves a half-written file where a finished one is expected.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile_in(dir, path)?;
    tmp.1.write_all(bytes)?;
    tmp.1.sync_all()?;
    drop(tmp.1);
    std::fs::rename(&tmp.0, path)
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

/// Remove temporary files of `target` left by writers that were killed: those named with this
/// host and a process id that is no longer running. Temporaries of other hosts (a cache folder
/// shared over the network) and of live writers are left alone.
fn remove_dead_writers_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp.{}.", host());
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().to_string();
        let Some(rest) = file.strip_prefix(&prefix) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn tempfile_in(dir: &Path, target: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let name = target.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    remove_dead_writers_temps(dir, &name);
    for i in 0..1000u32 {
        let p = dir.join(format!(".{name}.tmp.{}.{}-{i}", host(), std::process::id()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary file name"))
}

/// Hex SHA-256 of a file (checkpoint identity in manifests and caches).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temps_of_dead_writers_go_and_others_stay() {
        let d = tempfile::tempdir().unwrap();
        let h = host();
        // A pid above the kernel's maximum is never running.
        let dead = d.path().join(format!(".x.json.tmp.{h}.4294967290-0"));
        let live = d.path().join(format!(".x.json.tmp.{h}.{}-7", std::process::id()));
        let other_host = d.path().join(".x.json.tmp.elsewhere.4294967290-0");
        let other_file = d.path().join(format!(".y.json.tmp.{h}.4294967290-0"));
        for p in [&dead, &live, &other_host, &other_file] {
            std::fs::write(p, b"partial").unwrap();
        }
        write_atomic(&d.path().join("x.json"), b"{}").unwrap();
        assert_eq!(std::fs::read(d.path().join("x.json")).unwrap(), b"{}");
        assert!(!dead.exists(), "a dead writer's temporary stays");
        assert!(live.exists() && other_host.exists() && other_file.exists());
    }
}
