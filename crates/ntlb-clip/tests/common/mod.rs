use std::path::PathBuf;

/// `../shared/golden` (or `$NTLB_GOLDEN`); `None` with a loud message when it is absent.
pub fn golden_dir(test: &str) -> Option<PathBuf> {
    ntlb_golden::fixtures::golden_dir_or_skip(test)
}

pub fn read_case(dir: &std::path::Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(name)).expect("golden case readable");
    serde_json::from_str(&text).expect("golden case is JSON")
}
