//! The Slurm path end to end on a real single-node Slurm: `scripts/slurm/test-local.sh` stands
//! up munge + slurmctld + slurmd in a scratch folder, submits a demo-like sweep as one array task
//! per job of its plan plus the dependent merge + report, compares the merged table with a
//! single-machine run and checks that a failing array cancels its merge.
//!
//! Under `CI` (CI runs `cargo test --release --workspace`, see `.ci/run`) a missing Slurm is
//! installed from Debian's packages when running as root (about a minute), and a Slurm that is
//! missing or does not start is a failure. Elsewhere a machine without Slurm (or not root: the
//! daemons run as root) skips with a line saying so.

mod common;

use std::process::Command;

use common::repo;

const BINARIES: [&str; 7] = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo"];
const INSTALL: &str = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm slurmctld slurmd slurm-client munge";

fn flag(v: &str) -> bool {
    std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0" && s != "false")
}

fn missing() -> Vec<&'static str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    BINARIES
        .into_iter()
        .filter(|b| !std::env::split_paths(&path).any(|d| d.join(b).is_file()))
        .collect()
}

#[cfg(unix)]
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[cfg(unix)]
#[test]
fn a_sweep_as_a_slurm_array_merges_to_the_single_machine_table() {
    let ci = flag("CI");
    if !is_root() {
        assert!(!ci, "CI: the Slurm end-to-end test needs root (its daemons run as root)");
        eprintln!("SKIPPED: the Slurm end-to-end test needs root (its daemons run as root); CI runs it");
        return;
    }
    let absent = missing();
    if !absent.is_empty() {
        if !ci {
            eprintln!("SKIPPED: {} not installed ({INSTALL}); CI installs and runs it", absent.join(", "));
            return;
        }
        eprintln!("CI: installing Slurm and munge: {INSTALL}");
        let s = Command::new("sh").arg("-c").arg(INSTALL).status().expect("sh");
        assert!(s.success(), "CI: installing Slurm failed ({s}): {INSTALL}");
        let still = missing();
        assert!(still.is_empty(), "CI: {} still missing after {INSTALL}", still.join(", "));
    }
    // Two λ (three jobs: three array tasks) keep it to about a minute on two cores; the script
    // reads every count from the plan, whatever it is.
    let o = Command::new("bash")
        .arg(repo().join("scripts/slurm/test-local.sh"))
        .current_dir(repo())
        .env("NTLB", env!("CARGO_BIN_EXE_ntlb"))
        .env("LAMBDAS", "[0.0, 1.0]")
        .env_remove("SLURM_CONF")
        .output()
        .expect("bash");
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let fails: Vec<&str> = err.lines().chain(out.lines()).filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        o.status.success() && out.lines().any(|l| l.starts_with("PASS")) && fails.is_empty(),
        "scripts/slurm/test-local.sh: {}\n{}\n--- stdout\n{out}\n--- stderr\n{err}",
        o.status,
        fails.join("\n")
    );
    eprintln!("{out}");
}
