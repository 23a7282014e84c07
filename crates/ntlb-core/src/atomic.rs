//! Atomic file writes that clean up after killed writers.

use std::io::Write;
use std::path::Path;

/// Write through a temporary file in the same directory and rename it into place, so a killed
/// run never leaves a half-written file where a finished one is expected.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    // Host and pid in the name let a later writer tell a dead writer's temporary from a live one.
    let ours = temps_prefix(&name);
    remove_dead_writers_temps(dir, &ours);
    let prefix = format!("{ours}{}-", std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    // tempfile's default is 0600; results and shared caches are read by other users, so the
    // mode is what `File::create` gives (0666 less the umask).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

/// The start of the names of this host's temporaries for target `name`; the writer's pid and
/// `-` follow it.
fn temps_prefix(name: &str) -> String {
    format!(".{name}.tmp.{}.", host())
}

/// Remove temporary files named `prefix` + pid + … left by writers that were killed: those whose
/// process id is no longer running. Temporaries of other hosts (a cache folder shared over the
/// network: another prefix) and of live writers are left alone.
fn remove_dead_writers_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().to_string();
        let Some(rest) = file.strip_prefix(prefix) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temps_of_dead_writers_go_and_others_stay() {
        let d = tempfile::tempdir().unwrap();
        // A pid above the kernel's maximum is never running.
        let dead = d.path().join(format!("{}{}-abc123", temps_prefix("x.json"), 4294967290u32));
        let live = d.path().join(format!("{}{}-abc123", temps_prefix("x.json"), std::process::id()));
        let other_host = d.path().join(".x.json.tmp.elsewhere.4294967290-abc123");
        let other_file = d.path().join(format!("{}{}-abc123", temps_prefix("y.json"), 4294967290u32));
        for p in [&dead, &live, &other_host, &other_file] {
            std::fs::write(p, b"partial").unwrap();
        }
        write_atomic(&d.path().join("x.json"), b"{}").unwrap();
        assert_eq!(std::fs::read(d.path().join("x.json")).unwrap(), b"{}");
        assert!(!dead.exists(), "a dead writer's temporary stays");
        assert!(live.exists() && other_host.exists() && other_file.exists());
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 4, "the write left its own temporary behind: {left:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
            std::fs::File::create(d.path().join("plain")).unwrap();
            assert_eq!(
                mode(&d.path().join("x.json")),
                mode(&d.path().join("plain")),
                "not the mode File::create gives"
            );
        }
    }
}
