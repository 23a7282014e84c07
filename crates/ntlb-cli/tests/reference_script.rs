//! scripts/bench_reference_step.py, the denominator of the speed claims, reproduces the golden
//! coop_middle case before it times anything, and refuses to time when it does not.
//!
//! Opt-in (CI has no torch): `NTLB_PYTHON=<python with torch + safetensors> cargo test --release
//! -p ntlb-cli --test reference_script -- --ignored`. Asked for without torch it fails, loudly.

use std::path::{Path, PathBuf};
use std::process::Command;

fn golden() -> PathBuf {
    let dir = ntlb_golden::fixtures::golden_dir();
    assert!(
        dir.join("coop_middle.json").exists(),
        "golden cases not found at {} (set NTLB_GOLDEN)",
        dir.display()
    );
    dir
}

fn python() -> String {
    let py = std::env::var("NTLB_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import torch, safetensors"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{py}` cannot import torch and safetensors: set NTLB_PYTHON (this test was asked for with --ignored)"
    );
    py
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench_reference_step.py")
}

#[test]
#[ignore = "needs a Python with torch (NTLB_PYTHON); run with --ignored"]
fn reference_step_reproduces_the_golden_case_before_timing() {
    let out = Command::new(python())
        .arg(script())
        .args(["--classes", "2", "--batch", "1", "--golden"])
        .arg(golden())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = &r["golden_check"];
    assert!(check["loss_abs_err"].as_f64().unwrap() <= 1e-4, "{check}");
    assert!(check["grad_ctx_max_abs_err"].as_f64().unwrap() <= 1e-4, "{check}");
    assert!(r["seconds_per_step"].as_f64().unwrap() > 0.0);
}

#[test]
#[ignore = "needs a Python with torch (NTLB_PYTHON); run with --ignored"]
fn reference_step_refuses_to_time_against_a_wrong_golden_loss() {
    let dir = golden();
    let tmp = tempfile::tempdir().unwrap();
    let mut case: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("coop_middle.json")).unwrap()).unwrap();
    let loss = case["outputs"]["total_loss"]["data"].as_f64().unwrap();
    case["outputs"]["total_loss"]["data"] = serde_json::json!(loss + 1e-3);
    std::fs::write(tmp.path().join("coop_middle.json"), case.to_string()).unwrap();
    std::os::unix::fs::symlink(dir.join("tiny-clip"), tmp.path().join("tiny-clip")).unwrap();
    let out = Command::new(python())
        .arg(script())
        .args(["--classes", "2", "--batch", "1", "--golden"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "timed against a wrong golden loss");
    assert!(out.stdout.is_empty(), "printed a time: {}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not reproduce the golden case"));
}
