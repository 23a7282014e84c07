use std::path::PathBuf;

/// `../shared/golden` (or `$NTLB_GOLDEN`); `None` with a loud message when it is absent.
pub fn golden_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("NTLB_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden"));
    if dir.join("index.json").exists() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED {test}: golden fixtures not found at {} (set NTLB_GOLDEN); CI has them",
            dir.display()
        );
        None
    }
}

pub fn read_case(dir: &std::path::Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(name)).expect("golden case readable");
    serde_json::from_str(&text).expect("golden case is JSON")
}
