//! Class lists: `wnid<TAB>name` lines (ImageNet's `imagenet_classnames.tsv`) or one name per line.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Text as read by line: a UTF-8 byte-order mark in front (Windows editors write one) is no part
/// of the first line, where it would make the first class name another string.
pub fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassList {
    /// Folder name of each class (the wnid, or the name itself for plain lists).
    pub ids: Vec<String>,
    /// The CLIP class name.
    pub names: Vec<String>,
}

impl ClassList {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Read a class list; every problem names the file and line.
    pub fn read(path: &Path) -> Result<ClassList> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read class list", path.display()))?;
        let (mut ids, mut names) = (Vec::new(), Vec::new());
        for (i, line) in without_bom(&text).lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, name) = match line.split_once('\t') {
                Some((id, name)) => (id.trim().to_string(), name.trim().to_string()),
                None => (line.trim().to_string(), line.trim().to_string()),
            };
            if id.is_empty() || name.is_empty() {
                bail!("{}:{}: empty class id or name", path.display(), i + 1);
            }
            if let Some(j) = ids.iter().position(|x| x == &id) {
                bail!("{}:{}: class `{id}` already listed (entry {})", path.display(), i + 1, j + 1);
            }
            ids.push(id);
            names.push(name);
        }
        if ids.is_empty() {
            bail!("{}: no classes listed", path.display());
        }
        Ok(ClassList { ids, names })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list saved with a byte-order mark reads as the same list without one.
    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_class() {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("tsv", "n01440764\ttench\nn01443537\tgoldfish\n"),
            ("plain", "tench\r\ngoldfish\r\n"),
        ] {
            let (plain, bom) = (d.path().join(name), d.path().join(format!("{name}.bom")));
            std::fs::write(&plain, text).unwrap();
            std::fs::write(&bom, format!("\u{feff}{text}")).unwrap();
            let a = ClassList::read(&plain).unwrap();
            assert_eq!(ClassList::read(&bom).unwrap(), a, "{name}");
            assert_eq!(a.names, ["tench", "goldfish"]);
        }
    }
}
