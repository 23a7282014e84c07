//! Exclusive lock files (`O_EXCL` create) for work that several array tasks may reach at once
//! on a shared folder. The holder refreshes the file's mtime from a thread; a lock whose
//! holder died on this host, or that was not refreshed for `stale_after`, is taken over.
//! A takeover racing another takeover can at worst let two writers do the same work: every
//! result is written by atomic rename, so readers still see one whole file.
//!
//! [`each_when_free`] is the one way work under such locks is waited for (feature-cache entries,
//! sweep jobs): what another process holds is left for later while the rest is done.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into())
}

/// A held lock; dropping it removes the file.
pub struct FileLock {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Who holds a lock (the file's first line: `host pid`).
pub fn holder(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().and_then(|s| s.lines().next().map(String::from))
}

/// Who holds the lock at `path` and which file to delete should that holder be gone (a lock is
/// taken over by itself only once its holder is seen dead on this host, or silent for a while).
pub fn held_by(path: &Path) -> String {
    format!(
        "held by {}; if that process is gone, delete the lock file {}",
        holder(path)
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| "an unknown process".into()),
        path.display()
    )
}

fn holder_is_dead(path: &Path) -> bool {
    let Some(h) = holder(path) else { return false };
    let mut it = h.split_whitespace();
    match (it.next(), it.next().and_then(|p| p.parse::<u32>().ok())) {
        (Some(host), Some(pid)) if host == hostname() => !Path::new(&format!("/proc/{pid}")).exists(),
        _ => false,
    }
}

fn is_stale(path: &Path, stale_after: Duration) -> bool {
    if holder_is_dead(path) {
        return true;
    }
    match std::fs::metadata(path).and_then(|m| m.modified()) {
        Ok(t) => SystemTime::now().duration_since(t).unwrap_or_default() > stale_after,
        Err(_) => false,
    }
}

/// Take the lock if nobody holds it (or its holder is gone); `None` when someone else has it.
pub fn try_lock(path: &Path, stale_after: Duration) -> Result<Option<FileLock>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    for _ in 0..2 {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(mut f) => {
                writeln!(f, "{} {}", hostname(), std::process::id())?;
                f.sync_all()?;
                let stop = Arc::new(AtomicBool::new(false));
                let (p, s) = (path.to_path_buf(), stop.clone());
                let every = (stale_after / 4).max(Duration::from_millis(50));
                let heartbeat = std::thread::spawn(move || {
                    let mut last = std::time::Instant::now();
                    while !s.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50).min(every));
                        if last.elapsed() >= every {
                            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&p) {
                                let _ = f.set_modified(SystemTime::now());
                            }
                            last = std::time::Instant::now();
                        }
                    }
                });
                return Ok(Some(FileLock {
                    path: path.to_path_buf(),
                    stop,
                    heartbeat: Some(heartbeat),
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if !is_stale(path, stale_after) {
                    return Ok(None);
                }
                eprintln!(
                    "taking over the stale lock {} (holder {})",
                    path.display(),
                    holder(path).unwrap_or_else(|| "unknown".into())
                );
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("{}: a stale lock that cannot be removed: delete this file", path.display()))
                    }
                }
            }
            Err(e) => return Err(e).with_context(|| format!("{}: cannot create the lock", path.display())),
        }
    }
    Ok(None)
}

/// One try at a piece of work guarded by a lock.
pub enum Turn<T> {
    Done(T),
    /// Another process holds its lock: what it is and who holds it, for the waiting message.
    Busy(String),
}

/// Do items `0..n` with `attempt`, each once: an item whose lock another process holds is left
/// for later while the others are done, then tried again every 250 ms until it is done (by us,
/// or found done by the holder: `attempt` decides). With `progress`, who is waited for is
/// printed every minute. Results come back in item order.
pub fn each_when_free<T>(n: usize, progress: bool, mut attempt: impl FnMut(usize) -> Result<Turn<T>>) -> Result<Vec<T>> {
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let start = std::time::Instant::now();
    let mut said: Option<std::time::Instant> = None;
    loop {
        let mut busy = Vec::new();
        for (i, slot) in out.iter_mut().enumerate() {
            if slot.is_some() {
                continue;
            }
            match attempt(i)? {
                Turn::Done(t) => *slot = Some(t),
                Turn::Busy(what) => busy.push(what),
            }
        }
        if busy.is_empty() {
            return Ok(out.into_iter().map(|t| t.expect("every item done")).collect());
        }
        if progress && said.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            eprintln!(
                "waiting for other processes working on {} ({:.0} s so far)",
                busy.join(", "),
                start.elapsed().as_secs_f64()
            );
            said = Some(std::time::Instant::now());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_dead_or_silent_holders_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let a = try_lock(&p, Duration::from_secs(60)).unwrap().expect("free lock");
        assert!(try_lock(&p, Duration::from_secs(60)).unwrap().is_none(), "held by a live process");
        drop(a);
        assert!(!p.exists(), "dropping removes the file");
        // A holder on this host whose pid is gone.
        std::fs::write(&p, format!("{} 4000000000\n", hostname())).unwrap();
        assert!(try_lock(&p, Duration::from_secs(60)).unwrap().is_some());
        // A holder elsewhere that stopped refreshing.
        std::fs::write(&p, "another-host 1\n").unwrap();
        let old = SystemTime::now() - Duration::from_secs(120);
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_modified(old).unwrap();
        assert!(try_lock(&p, Duration::from_secs(600)).unwrap().is_none(), "still fresh enough");
        assert!(try_lock(&p, Duration::from_secs(60)).unwrap().is_some(), "stale");
    }

    /// A waiting message names the lock file to delete, and a stale lock that cannot be removed
    /// is an error naming it (not an endless wait).
    #[test]
    fn a_stale_lock_names_the_file_to_delete() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("z.lock");
        std::fs::write(&p, "other-host 12\n").unwrap();
        let note = held_by(&p);
        assert!(
            note.contains("other-host 12") && note.contains(&format!("delete the lock file {}", p.display())),
            "{note}"
        );
        std::fs::write(&p, "").unwrap();
        assert!(held_by(&p).contains("an unknown process"));
        // A stale lock in a folder this process may not write to (as root, every folder is
        // writable: nothing to check there).
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        let q = ro.join("q.lock");
        std::fs::write(&q, format!("{} 4000000000\n", hostname())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        if std::fs::write(ro.join("probe"), b"").is_err() {
            let e = format!("{:#}", try_lock(&q, Duration::from_secs(60)).err().expect("cannot take it over"));
            assert!(e.contains(&q.display().to_string()) && e.contains("delete this file"), "{e}");
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Free items are done first, busy ones after their holder lets go, each exactly once.
    #[test]
    fn busy_items_wait_for_their_holder_and_the_rest_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let lock = |i: usize| dir.path().join(format!("{i}.lock"));
        let held = try_lock(&lock(0), Duration::from_secs(60)).unwrap().unwrap();
        let mut order = Vec::new();
        let mut held = Some(held);
        let got = each_when_free(3, false, |i| {
            let Some(_l) = try_lock(&lock(i), Duration::from_secs(60))? else {
                // The holder finishes once the others are done.
                if order.len() == 2 {
                    held.take();
                }
                return Ok(Turn::Busy(format!("item {i}")));
            };
            order.push(i);
            Ok(Turn::Done(i * 10))
        })
        .unwrap();
        assert_eq!((got, order), (vec![0, 10, 20], vec![1, 2, 0]));
    }

    #[test]
    fn the_holder_keeps_its_lock_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("y.lock");
        let _held = try_lock(&p, Duration::from_millis(400)).unwrap().unwrap();
        std::thread::sleep(Duration::from_millis(900));
        // Another host can only tell a live holder by the file's mtime.
        let age = SystemTime::now()
            .duration_since(std::fs::metadata(&p).unwrap().modified().unwrap())
            .unwrap_or_default();
        assert!(age < Duration::from_millis(400), "refreshed by the heartbeat: {age:?} old");
        assert!(try_lock(&p, Duration::from_millis(400)).unwrap().is_none());
    }
}
