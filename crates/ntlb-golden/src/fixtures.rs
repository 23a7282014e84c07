//! Where the golden fixtures are, and what a test does when they are not there.

/// Where the shared golden folder is expected: `$NTLB_GOLDEN`, else `../shared/golden` from
/// the repository root (it may be absent).
pub fn golden_dir() -> std::path::PathBuf {
    std::env::var_os("NTLB_GOLDEN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden"))
}

/// [`golden_dir`] for tests. Absent: a panic when `CI` or `NTLB_REQUIRE_GOLDEN` is set, else
/// `None` after a SKIPPED line naming `test`.
pub fn golden_dir_or_skip(test: &str) -> Option<std::path::PathBuf> {
    let dir = golden_dir();
    if dir.join("index.json").exists() {
        return Some(dir);
    }
    // libtest hides a passing test's output, so a skip is invisible: where the fixtures must
    // be there (CI sets CI=true), their absence fails the test instead.
    let required = |v: &str| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0" && s != "false");
    if required("CI") || required("NTLB_REQUIRE_GOLDEN") {
        panic!(
            "{test}: golden fixtures not found at {} and CI / NTLB_REQUIRE_GOLDEN is set (set NTLB_GOLDEN)",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED {test}: golden fixtures not found at {} (set NTLB_GOLDEN); CI has them",
        dir.display()
    );
    None
}
