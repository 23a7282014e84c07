//! JSON files that carry the SHA-256 of their own text (run records, cache manifests, split
//! files, sweep plans): a file whose bytes changed after it was written, in any way that still
//! parses, is told from a good one on read.
//!
//! The file is the pretty JSON of the value with one member added last, `"sha256"`: the hex
//! SHA-256 of the same text without that member (the pretty JSON exactly as first serialised).
//! The check works on the bytes, not on a re-serialisation, so it does not depend on how
//! numbers print.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

const MEMBER: &str = ",\n  \"sha256\": \"";

/// The start of the error of a file without a digest (told apart by readers that accept
/// files written before digests were kept, under conditions of their own).
pub const NO_DIGEST: &str = "no digest of its text";

/// The sealed text of `value` (a struct or map: a JSON object with at least one member).
pub fn to_sealed_json<T: Serialize>(value: &T) -> Result<String> {
    let body = serde_json::to_string_pretty(value)?;
    let Some(open) = body.strip_suffix("\n}") else {
        bail!("only a non-empty JSON object can be sealed");
    };
    Ok(format!("{open}{MEMBER}{}\"\n}}", crate::digest::sha256_bytes(body.as_bytes())))
}

/// Why a sealed file does not check.
fn unseal(text: &str) -> std::result::Result<String, &'static str> {
    let Some(at) = text.rfind(MEMBER) else {
        return Err(concat!(
            "no digest of its text",
            " (written before digests were kept, or the digest was damaged)"
        ));
    };
    let tail = &text[at + MEMBER.len()..];
    let Some(hex) = tail.strip_suffix("\"\n}") else {
        return Err("its digest is not where it is written (the end of the file changed)");
    };
    let body = format!("{}\n}}", &text[..at]);
    if crate::digest::sha256_bytes(body.as_bytes()) != hex {
        return Err("its text does not match its SHA-256 (the file changed after it was written)");
    }
    Ok(body)
}

/// Check `text`'s digest and parse it; errors name `path`.
pub fn from_sealed_json<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    let body = unseal(text).map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
    serde_json::from_str(&body).with_context(|| format!("{}: checks, but does not parse as expected", path.display()))
}

/// Write `value` sealed, atomically.
pub fn write_sealed_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    crate::atomic::write_atomic(path, to_sealed_json(value)?.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Read and check a sealed file. A file that is not there is an I/O error of kind `NotFound`
/// (see [`is_not_found`]); every other failure names the file.
pub fn read_sealed_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| anyhow::anyhow!("{}: not UTF-8 text ({e})", path.display()))?;
    from_sealed_json(text, path)
}

/// Whether `e` (from [`read_sealed_json`]) says the file does not exist.
pub fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct R {
        name: String,
        top1: f64,
        rows: Vec<u32>,
    }

    #[test]
    fn every_change_of_a_sealed_file_is_caught() {
        let r = R {
            name: "x".into(),
            top1: 70.833_333_333_333_33,
            rows: vec![1, 2, 3],
        };
        let text = to_sealed_json(&r).unwrap();
        let p = Path::new("r.json");
        assert_eq!(from_sealed_json::<R>(&text, p).unwrap(), r);
        // The body is the plain pretty JSON: other readers parse the file as before.
        let plain: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(plain["top1"], serde_json::json!(70.833_333_333_333_33));
        // Each single-byte change, and each cut, is refused with the file's name.
        for i in 0..text.len() {
            let mut b = text.clone().into_bytes();
            b[i] = if b[i] == b'7' { b'6' } else { b'7' };
            if let Ok(t) = String::from_utf8(b) {
                if t != text {
                    let e = from_sealed_json::<R>(&t, p).unwrap_err().to_string();
                    assert!(e.starts_with("r.json: "), "byte {i}: {e}");
                }
            }
        }
        for n in 0..text.len() {
            assert!(from_sealed_json::<R>(&text[..n], p).is_err(), "cut at {n}");
        }
        let unsealed = serde_json::to_string_pretty(&r).unwrap();
        assert!(from_sealed_json::<R>(&unsealed, p).unwrap_err().to_string().contains("no digest"));
        assert!(to_sealed_json(&std::collections::BTreeMap::<String, u8>::new()).is_err());
    }

    #[test]
    fn files_round_trip_and_absence_is_told_apart() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        let e = read_sealed_json::<R>(&p).unwrap_err();
        assert!(is_not_found(&e) && e.to_string().contains("a.json"), "{e:#}");
        let r = R {
            name: "y".into(),
            top1: 1.0,
            rows: vec![],
        };
        write_sealed_json(&p, &r).unwrap();
        assert_eq!(read_sealed_json::<R>(&p).unwrap(), r);
        std::fs::write(&p, b"{").unwrap();
        assert!(!is_not_found(&read_sealed_json::<R>(&p).unwrap_err()));
    }
}
