//! TOML config files that may start from another: `extends = "base.toml"` (relative to the
//! file that names it) takes every key of the base, then the file's own keys on top — tables
//! merged key by key, everything else (numbers, strings, arrays such as `[[models]]`) replaced
//! whole. A chain of any length is followed; a file met twice is a cycle, refused by name.
//!
//! A file without `extends` is deserialised straight from its text, so its errors keep their
//! line and column; a merged one names every file of its chain, the key at fault and the file
//! that set it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;

/// The key that names the base file.
pub const EXTENDS: &str = "extends";

/// Read a config of type `T` from `path`, following `extends`.
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read config", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if !table.contains_key(EXTENDS) {
        return toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let mut chain = vec![path.to_path_buf()];
    let mut layers = Vec::new();
    let merged = resolve(path, table, &mut chain, &mut layers)?;
    let names: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
    serde_path_to_error::deserialize(toml::Value::Table(merged)).map_err(|e| {
        let mut key: Vec<serde_path_to_error::Segment> = e.path().iter().cloned().collect();
        let inner = e.inner().to_string();
        // An unknown key is reported at the table that holds it: the key itself is in the text.
        if let Some(field) = inner.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
            if !matches!(key.last(), Some(serde_path_to_error::Segment::Map { key }) if key == field) {
                key.push(serde_path_to_error::Segment::Map { key: field.to_string() });
            }
        }
        let shown = dotted(&key);
        let at = match (shown.is_empty(), set_in(&layers, &key)) {
            (true, _) => String::new(),
            (false, Some(file)) => format!("`{shown}` (set in {}): ", file.display()),
            (false, None) => format!("`{shown}`: "),
        };
        anyhow::anyhow!("{} (extending {}): {at}{inner}", names[0], names[1..].join(" → "))
    })
}

/// A key path as written in TOML: `optim.epochs`, `models[1].tokenizer`.
fn dotted(key: &[serde_path_to_error::Segment]) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for s in key {
        match s {
            Segment::Seq { index } => out += &format!("[{index}]"),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out += key;
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// The file whose value of `key` the merge kept: the first of `layers` (the file itself, then
/// its bases) holding it. Arrays are replaced whole, so the file holding an array holds every
/// element of it.
fn set_in<'a>(layers: &'a [(PathBuf, toml::Table)], key: &[serde_path_to_error::Segment]) -> Option<&'a Path> {
    use serde_path_to_error::Segment;
    'layers: for (file, table) in layers {
        let mut at: Option<&toml::Value> = None;
        for s in key {
            let next = match (at, s) {
                (None, Segment::Map { key }) => table.get(key),
                (Some(toml::Value::Table(t)), Segment::Map { key }) => t.get(key),
                (Some(toml::Value::Array(_)), _) => return Some(file),
                _ => None,
            };
            match next {
                Some(v) => at = Some(v),
                None => continue 'layers,
            }
        }
        return Some(file);
    }
    None
}

/// `table` (read from `path`) on top of its base chain; `chain` gains each base file, `layers`
/// each file's own keys (the file first, then its bases).
fn resolve(path: &Path, mut table: toml::Table, chain: &mut Vec<PathBuf>, layers: &mut Vec<(PathBuf, toml::Table)>) -> Result<toml::Table> {
    let base = table.remove(EXTENDS);
    layers.push((path.to_path_buf(), table.clone()));
    let Some(base) = base else { return Ok(table) };
    let Some(base) = base.as_str() else {
        bail!("{}: `{EXTENDS}` must be a file name (a string), not {base}", path.display());
    };
    let base_path = path.parent().unwrap_or(Path::new(".")).join(base);
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    if chain.iter().any(|p| canonical(p) == canonical(&base_path)) {
        let names: Vec<String> = chain.iter().chain([&base_path]).map(|p| p.display().to_string()).collect();
        bail!("{}: `{EXTENDS}` makes a cycle: {}", path.display(), names.join(" → "));
    }
    let text = std::fs::read_to_string(&base_path)
        .with_context(|| format!("{}: `{EXTENDS} = {base:?}`: cannot read {}", path.display(), base_path.display()))?;
    let base_table: toml::Table = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", base_path.display()))?;
    chain.push(base_path.clone());
    let mut merged = resolve(&base_path, base_table, chain, layers)?;
    merge(&mut merged, table);
    Ok(merged)
}

/// `over`'s keys onto `base`: tables merged recursively, other values replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        name: String,
        lambdas: Vec<f64>,
        optim: Optim,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Optim {
        lr: f64,
        epochs: u32,
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_file_takes_its_bases_keys_and_overrides_them() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "base.toml",
            "name = \"base\"\nlambdas = [0.0, 1.0]\n[optim]\nlr = 0.002\nepochs = 50\n",
        );
        write(d.path(), "sub/mid.toml", "extends = \"../base.toml\"\n[optim]\nepochs = 20\n");
        let top = write(
            d.path(),
            "sub/top.toml",
            "extends = \"mid.toml\"\nname = \"top\"\nlambdas = [3.0]\n",
        );
        let c: Cfg = read_toml(&top).unwrap();
        assert_eq!(
            c,
            Cfg {
                name: "top".into(),
                lambdas: vec![3.0],
                optim: Optim { lr: 0.002, epochs: 20 },
            }
        );
        // Without `extends`: straight from the text (line and column in errors).
        let plain = write(
            d.path(),
            "plain.toml",
            "name = \"p\"\nlambdas = []\n[optim]\nlr = 1.0\nepochs = \"x\"\n",
        );
        let e = read_toml::<Cfg>(&plain).unwrap_err().to_string();
        assert!(e.contains("plain.toml") && e.contains("line 5"), "{e}");
    }

    #[test]
    fn cycles_missing_bases_and_bad_keys_are_named() {
        let d = tempfile::tempdir().unwrap();
        let a = write(d.path(), "a.toml", "extends = \"b.toml\"\nname = \"a\"\n");
        write(d.path(), "b.toml", "extends = \"a.toml\"\n");
        let e = read_toml::<Cfg>(&a).unwrap_err().to_string();
        assert!(e.contains("cycle") && e.contains("a.toml → ") && e.contains("b.toml"), "{e}");
        let own = write(d.path(), "self.toml", "extends = \"self.toml\"\n");
        assert!(read_toml::<Cfg>(&own).unwrap_err().to_string().contains("cycle"));
        let gone = write(d.path(), "gone.toml", "extends = \"absent.toml\"\n");
        let e = format!("{:#}", read_toml::<Cfg>(&gone).unwrap_err());
        assert!(e.contains("gone.toml") && e.contains("absent.toml"), "{e}");
        write(d.path(), "base.toml", "name = \"b\"\nlambdas = []\n[optim]\nlr = 0.1\nepochs = 1\n");
        let bad = write(d.path(), "bad.toml", "extends = \"base.toml\"\n[optim]\nlearning_rate = 0.1\n");
        let e = read_toml::<Cfg>(&bad).unwrap_err().to_string();
        assert!(
            e.contains("bad.toml (extending ") && e.contains("base.toml") && e.contains("learning_rate"),
            "{e}"
        );
        // A value of the wrong type names its key and the file that set it, in the file itself
        // or in a base.
        let typed = write(d.path(), "typed.toml", "extends = \"base.toml\"\n[optim]\nepochs = \"ten\"\n");
        let e = read_toml::<Cfg>(&typed).unwrap_err().to_string();
        assert!(
            e.contains("`optim.epochs` (set in ") && e.contains("typed.toml): invalid type: string \"ten\""),
            "{e}"
        );
        write(
            d.path(),
            "wrong-base.toml",
            "name = 3\nlambdas = [0.5, \"x\"]\n[optim]\nlr = 0.1\nepochs = 1\n",
        );
        let top = write(d.path(), "top.toml", "extends = \"wrong-base.toml\"\nlambdas = [1.0]\n");
        let e = read_toml::<Cfg>(&top).unwrap_err().to_string();
        assert!(
            e.contains("`name` (set in ") && e.contains("wrong-base.toml): invalid type: integer"),
            "{e}"
        );
        let arr = write(d.path(), "arr.toml", "extends = \"base.toml\"\nlambdas = [1.0, \"x\"]\n");
        let e = read_toml::<Cfg>(&arr).unwrap_err().to_string();
        assert!(
            e.contains("`lambdas[1]` (set in ") && e.contains("arr.toml): invalid type: string"),
            "{e}"
        );
        let e = read_toml::<Cfg>(&bad).unwrap_err().to_string();
        assert!(
            e.contains("`optim.learning_rate` (set in ") && e.contains("bad.toml): unknown field"),
            "{e}"
        );
        let num = write(d.path(), "num.toml", "extends = 3\n");
        assert!(read_toml::<Cfg>(&num).unwrap_err().to_string().contains("must be a file name"));
    }
}
