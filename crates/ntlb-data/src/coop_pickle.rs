//! Upstream CoOp's cached few-shot draws, `<dataset folder>/split_fewshot/shot_K-seed_S.pkl`: a
//! pickle (protocol 2 to 5) of `{"train": [...], "val": [...]}` (ImageNet: `train` only), lists
//! of Dassl `Datum` objects holding the absolute image paths of the machine that wrote it. Read
//! here without Python: a small unpickler for the opcodes such a file holds (anything else is an
//! error naming the opcode and its offset), then the paths mapped onto this machine's copy of
//! the set.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{anyhow, bail, Context, Result};

/// The module and class a cached draw's items must be.
pub const DATUM_CLASS: (&str, &str) = ("dassl.data.datasets.base_dataset", "Datum");

/// One pickled `Datum`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datum {
    pub impath: String,
    pub label: i64,
    pub domain: Option<i64>,
    pub classname: String,
}

/// A cached draw as read: its file and SHA-256 (what a run record names), and its lists.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedDraw {
    pub file: PathBuf,
    pub sha256: String,
    pub train: Vec<Datum>,
    /// `None` when the file holds no `val` list (upstream writes none for ImageNet).
    pub val: Option<Vec<Datum>>,
}

/// Where upstream CoOp keeps the draw of `shots` and `seed` for the set in `dataset_dir`.
pub fn cache_file(dataset_dir: &Path, shots: usize, seed: u64) -> PathBuf {
    dataset_dir.join("split_fewshot").join(format!("shot_{shots}-seed_{seed}.pkl"))
}

impl CachedDraw {
    pub fn read(file: &Path) -> Result<CachedDraw> {
        let bytes = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
        let v = unpickle(&bytes).map_err(|e| anyhow!("{}: not a pickle this reader takes: {e}", file.display()))?;
        let what = || {
            format!(
                "{}: not a cached few-shot draw (a dict of `train`/`val` lists of Dassl Datum objects)",
                file.display()
            )
        };
        let V::Dict(d) = &v else {
            bail!("{}; it holds a {}", what(), v.kind())
        };
        let d = d.borrow();
        let list = |key: &str| -> Result<Option<Vec<Datum>>> {
            let Some(l) = d.get(key) else { return Ok(None) };
            let V::List(items) = l else {
                bail!("{}; its `{key}` is a {}", what(), l.kind())
            };
            let items = items.borrow();
            items
                .iter()
                .enumerate()
                .map(|(i, x)| datum(x).map_err(|e| anyhow!("{}; `{key}`[{i}]: {e}", what())))
                .collect::<Result<Vec<_>>>()
                .map(Some)
        };
        let train = list("train")?.with_context(|| format!("{}; it has no `train` list", what()))?;
        if let Some(k) = d.keys().find(|k| *k != "train" && *k != "val") {
            bail!("{}; it holds an unexpected key `{k}`", what());
        }
        Ok(CachedDraw {
            file: file.to_path_buf(),
            sha256: ntlb_core::digest::sha256_bytes(&bytes),
            val: list("val")?,
            train,
        })
    }
}

fn datum(x: &V) -> Result<Datum, String> {
    let V::Object { module, name, state } = x else {
        return Err(format!("a {}, not a Datum", x.kind()));
    };
    if (module.as_str(), name.as_str()) != DATUM_CLASS {
        return Err(format!("a {module}.{name}, not a {}.{}", DATUM_CLASS.0, DATUM_CLASS.1));
    }
    let state = state.borrow();
    let Some(V::Dict(attrs)) = &*state else {
        return Err("a Datum without its attributes".into());
    };
    let attrs = attrs.borrow();
    let text = |k: &str| match attrs.get(k) {
        Some(V::Str(s)) => Ok(s.clone()),
        Some(o) => Err(format!("Datum `{k}` is a {}, not a str", o.kind())),
        None => Err(format!("Datum has no `{k}`")),
    };
    let int = |k: &str| match attrs.get(k) {
        Some(V::Int(i)) => Ok(Some(*i)),
        Some(o) => Err(format!("Datum `{k}` is a {}, not an int", o.kind())),
        None => Ok(None),
    };
    Ok(Datum {
        impath: text("_impath")?,
        label: int("_label")?.ok_or("Datum has no `_label`")?,
        domain: int("_domain")?,
        classname: text("_classname")?,
    })
}

/// Map a cached list onto this machine's items: each `impath` becomes the item whose relative
/// path (`rel`, `/`-separated) is the longest ending of it, and must carry the same label. A
/// path that maps onto nothing, or onto an image of another class, is an error naming the
/// pickle and the path.
pub fn map_onto<T: Clone>(
    file: &Path,
    datums: &[Datum],
    local: &[T],
    rel: impl Fn(&T) -> String,
    label: impl Fn(&T) -> usize,
    root: &Path,
) -> Result<Vec<T>> {
    let by_path: HashMap<String, usize> = local.iter().enumerate().map(|(i, t)| (rel(t), i)).collect();
    datums
        .iter()
        .map(|d| {
            let parts: Vec<&str> = d.impath.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
            let hit = (0..parts.len()).find_map(|i| by_path.get(&parts[i..].join("/")));
            let Some(&i) = hit else {
                bail!(
                    "{}: `{}` is no image of {} (no ending of the path is a listed image{}): a draw cached for another copy of the set",
                    file.display(),
                    d.impath,
                    root.display(),
                    local.first().map(|t| format!(", such as `{}`", rel(t))).unwrap_or_default()
                );
            };
            if label(&local[i]) as i64 != d.label {
                bail!(
                    "{}: `{}` is class {} in the pickle, class {} here ({}): the classes disagree",
                    file.display(),
                    d.impath,
                    d.label,
                    label(&local[i]),
                    rel(&local[i])
                );
            }
            Ok(local[i].clone())
        })
        .collect()
}

/// A value of the pickle machine. Containers are shared, as Python's objects are, so a list
/// memoized before its items are appended reads back whole. Scalars a `Datum` does not use are
/// kept as read all the same (a file holding them is parsed, then refused by what it holds).
#[derive(Debug, Clone)]
#[allow(dead_code)]
enum V {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<V>),
    List(Rc<RefCell<Vec<V>>>),
    Dict(Rc<RefCell<HashMap<String, V>>>),
    Class(String, String),
    Object {
        module: String,
        name: String,
        state: Rc<RefCell<Option<V>>>,
    },
    Mark,
}

impl V {
    fn kind(&self) -> String {
        match self {
            V::None => "None".into(),
            V::Bool(_) => "bool".into(),
            V::Int(_) => "int".into(),
            V::Float(_) => "float".into(),
            V::Str(_) => "str".into(),
            V::Bytes(_) => "bytes".into(),
            V::Tuple(_) => "tuple".into(),
            V::List(_) => "list".into(),
            V::Dict(_) => "dict".into(),
            V::Class(m, n) => format!("class {m}.{n}"),
            V::Object { module, name, .. } => format!("{module}.{name}"),
            V::Mark => "mark".into(),
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn le(&mut self, n: usize) -> Result<u64, String> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64))
    }
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.b[self.at..];
        let n = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let s = String::from_utf8(rest[..n].to_vec()).map_err(|_| format!("a line that is not UTF-8 at byte {}", self.at))?;
        self.at += n + 1;
        Ok(s)
    }
    fn text(&mut self, n: usize) -> Result<String, String> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| format!("a string that is not UTF-8 before byte {}", self.at))
    }
}

fn unpickle(bytes: &[u8]) -> Result<V, String> {
    let mut r = Reader { b: bytes, at: 0 };
    let mut stack: Vec<V> = Vec::new();
    let mut memo: HashMap<u64, V> = HashMap::new();
    let pop = |stack: &mut Vec<V>| stack.pop().ok_or_else(|| "stack underflow".to_string());
    let pop_mark = |stack: &mut Vec<V>| -> Result<Vec<V>, String> {
        let m = stack.iter().rposition(|v| matches!(v, V::Mark)).ok_or("no mark")?;
        let items = stack.split_off(m + 1);
        stack.pop();
        Ok(items)
    };
    let set_items = |d: &V, kv: Vec<V>| -> Result<(), String> {
        let V::Dict(d) = d else {
            return Err(format!("SETITEM on a {}", d.kind()));
        };
        let mut d = d.borrow_mut();
        for pair in kv.chunks(2) {
            match pair {
                [V::Str(k), v] => {
                    d.insert(k.clone(), v.clone());
                }
                [k, _] => return Err(format!("a dict key that is a {}, not a str", k.kind())),
                _ => return Err("a key without a value".into()),
            }
        }
        Ok(())
    };
    loop {
        let at = r.at;
        let op = r.u8()?;
        match op {
            0x80 => {
                let p = r.u8()?;
                if p > 5 {
                    return Err(format!("pickle protocol {p}"));
                }
            }
            0x95 => {
                r.take(8)?;
            }
            b'.' => return pop(&mut stack),
            b'(' => stack.push(V::Mark),
            b'}' => stack.push(V::Dict(Rc::new(RefCell::new(HashMap::new())))),
            b']' => stack.push(V::List(Rc::new(RefCell::new(Vec::new())))),
            b')' => stack.push(V::Tuple(Vec::new())),
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(V::Tuple(items));
            }
            b'l' => {
                let items = pop_mark(&mut stack)?;
                stack.push(V::List(Rc::new(RefCell::new(items))));
            }
            b'd' => {
                let kv = pop_mark(&mut stack)?;
                let d = V::Dict(Rc::new(RefCell::new(HashMap::new())));
                set_items(&d, kv)?;
                stack.push(d);
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err("stack underflow".into());
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(V::Tuple(items));
            }
            0x8c => {
                let n = r.u8()? as usize;
                stack.push(V::Str(r.text(n)?));
            }
            b'X' => {
                let n = r.le(4)? as usize;
                stack.push(V::Str(r.text(n)?));
            }
            0x8d => {
                let n = r.le(8)? as usize;
                stack.push(V::Str(r.text(n)?));
            }
            b'C' => {
                let n = r.u8()? as usize;
                stack.push(V::Bytes(r.take(n)?.to_vec()));
            }
            b'B' => {
                let n = r.le(4)? as usize;
                stack.push(V::Bytes(r.take(n)?.to_vec()));
            }
            0x94 => {
                let top = stack.last().ok_or("MEMOIZE on an empty stack")?.clone();
                memo.insert(memo.len() as u64, top);
            }
            b'q' | b'r' => {
                let i = if op == b'q' { r.u8()? as u64 } else { r.le(4)? };
                memo.insert(i, stack.last().ok_or("PUT on an empty stack")?.clone());
            }
            b'h' | b'j' => {
                let i = if op == b'h' { r.u8()? as u64 } else { r.le(4)? };
                stack.push(memo.get(&i).ok_or_else(|| format!("memo {i} was never stored"))?.clone());
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(V::Class(module, name));
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                match (module, name) {
                    (V::Str(m), V::Str(n)) => stack.push(V::Class(m, n)),
                    _ => return Err("STACK_GLOBAL of non-strings".into()),
                }
            }
            0x81 | 0x92 => {
                if op == 0x92 {
                    pop(&mut stack)?; // keyword arguments
                }
                let _args = pop(&mut stack)?;
                match pop(&mut stack)? {
                    V::Class(module, name) => stack.push(V::Object {
                        module,
                        name,
                        state: Rc::new(RefCell::new(None)),
                    }),
                    other => return Err(format!("NEWOBJ of a {}", other.kind())),
                }
            }
            b'b' => {
                let state = pop(&mut stack)?;
                match stack.last() {
                    Some(V::Object { state: s, .. }) => *s.borrow_mut() = Some(state),
                    Some(other) => return Err(format!("BUILD of a {}", other.kind())),
                    None => return Err("BUILD on an empty stack".into()),
                }
            }
            b's' => {
                let v = pop(&mut stack)?;
                let k = pop(&mut stack)?;
                set_items(stack.last().ok_or("SETITEM on an empty stack")?, vec![k, v])?;
            }
            b'u' => {
                let kv = pop_mark(&mut stack)?;
                set_items(stack.last().ok_or("SETITEMS on an empty stack")?, kv)?;
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![pop(&mut stack)?]
                } else {
                    pop_mark(&mut stack)?
                };
                match stack.last() {
                    Some(V::List(l)) => l.borrow_mut().extend(items),
                    Some(other) => return Err(format!("APPEND to a {}", other.kind())),
                    None => return Err("APPEND on an empty stack".into()),
                }
            }
            b'J' => stack.push(V::Int(r.le(4)? as u32 as i32 as i64)),
            b'K' => stack.push(V::Int(r.u8()? as i64)),
            b'M' => stack.push(V::Int(r.le(2)? as i64)),
            0x8a => {
                let n = r.u8()? as usize;
                if n > 8 {
                    return Err(format!("an int of {n} bytes at byte {at}"));
                }
                let raw = r.le(n)?;
                let v = if n == 0 {
                    0
                } else if n < 8 && raw & (1 << (8 * n - 1)) != 0 {
                    (raw | (!0u64 << (8 * n))) as i64
                } else {
                    raw as i64
                };
                stack.push(V::Int(v));
            }
            b'N' => stack.push(V::None),
            0x88 => stack.push(V::Bool(true)),
            0x89 => stack.push(V::Bool(false)),
            b'G' => {
                let b = r.take(8)?;
                stack.push(V::Float(f64::from_be_bytes(b.try_into().expect("8 bytes"))));
            }
            b'0' => {
                pop(&mut stack)?;
            }
            b'1' => {
                pop_mark(&mut stack)?;
            }
            b'2' => {
                let top = stack.last().ok_or("DUP on an empty stack")?.clone();
                stack.push(top);
            }
            other => return Err(format!("opcode 0x{other:02x} at byte {at}, which a cached draw does not hold")),
        }
    }
}
