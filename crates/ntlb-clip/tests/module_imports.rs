//! The modules of the crates listed here import one way: no two top-level modules reach each
//! other through `crate::` paths (tests excluded). Shared vocabulary lives in a leaf module
//! below its users (`files.rs`, `load_error.rs`, ntlb-data's `index.rs`); a new import that
//! closes a loop fails here, naming the modules of the loop and the files that import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level module a source file belongs to (`model/vit.rs` -> `model`); `None` for `lib.rs`.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(m) => Some(m.to_string()),
        None => Some(first),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules a file's code (before its `#[cfg(test)]` module, comments left out)
/// names through `crate::x` or `crate::{x, y}`.
fn imports(text: &str) -> BTreeSet<String> {
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|p| ident(p.trim())));
        } else {
            out.insert(ident(rest));
        }
    }
    // `crate::Clip`-style re-exports of lib.rs are not modules.
    out.retain(|m| m.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
    out
}

/// Every loop of the import graph of the crate whose sources are `src`, as the module names
/// in order plus the file behind each edge.
fn loops(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for f in &files {
        let Some(from) = top_module(src, f) else { continue };
        let text = std::fs::read_to_string(f).unwrap();
        for to in imports(&text) {
            if to != from {
                edges.entry(from.clone()).or_default().entry(to).or_insert_with(|| f.clone());
            }
        }
    }
    // A depth-first search from each module; a path back to a module on the stack is a loop.
    fn walk(
        m: &str,
        edges: &BTreeMap<String, BTreeMap<String, PathBuf>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<String>,
    ) {
        if let Some(at) = stack.iter().position(|s| s == m) {
            let cycle: Vec<String> = stack[at..]
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let next = stack.get(at + i + 1).map_or(m, |n| n.as_str());
                    format!("{s} -> {next} ({})", edges[s][next].display())
                })
                .collect();
            found.push(cycle.join(", "));
            return;
        }
        if !done.insert(m.to_string()) {
            return;
        }
        stack.push(m.to_string());
        for to in edges.get(m).into_iter().flat_map(|e| e.keys()) {
            walk(to, edges, stack, done, found);
        }
        stack.pop();
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        walk(m, &edges, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

fn assert_no_loops(krate: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(krate).join("src");
    let found = loops(&src);
    assert!(
        found.is_empty(),
        "{krate}: modules that import each other:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn ntlb_clip_modules_import_one_way() {
    assert_no_loops("ntlb-clip");
}

#[test]
fn ntlb_data_modules_import_one_way() {
    assert_no_loops("ntlb-data");
}

#[test]
fn a_loop_is_found() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("m")).unwrap();
    std::fs::write(dir.path().join("lib.rs"), "pub mod a; pub mod m;").unwrap();
    // A comment and a test module that name `c` close no loop: only code counts.
    std::fs::write(
        dir.path().join("a.rs"),
        "use crate::{m::x, b};\n// crate::c\n#[cfg(test)]\nmod tests { use crate::c; }",
    )
    .unwrap();
    std::fs::write(dir.path().join("m/mod.rs"), "pub mod x;").unwrap();
    std::fs::write(dir.path().join("m/x.rs"), "fn f() { crate::a::g() }").unwrap();
    std::fs::write(dir.path().join("c.rs"), "use crate::a;").unwrap();
    let found = loops(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("a -> m (") && found[0].contains("m -> a ("), "{}", found[0]);
}
