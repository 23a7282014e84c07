//! TorchScript archives (`torch.jit.save`; OpenAI's released `.pt` files that `clip.load` keeps
//! in `~/.cache/clip`) read as the state dict `torch.jit.load(f).state_dict()` gives.
//!
//! The archive is a zip under one root folder: `data.pkl` pickles the module tree, `data/<key>`
//! hold the tensors' storages, `constants.pkl` (tensors baked into the traced graph, such as the
//! attention mask), `code/` (the TorchScript source) and `version` sit beside them. Only
//! `data.pkl` and the storages it names are read.
//!
//! Why a reader of its own rather than `pytorch-reader`'s: that crate keeps its unpickler
//! private, and reads a module only in `torch.save`'s Python form (`__dict__` with
//! `_parameters` / `_buffers` / `_modules`). TorchScript's C++ pickler writes each module as
//! `GLOBAL __torch__.<class>`, `NEWOBJ`, then `BUILD` with a dict of its attributes (submodules,
//! parameters and buffers by name, `training`), which that crate refuses as an object holding
//! tensors. The pickle here is the small protocol-2 subset that pickler emits (the opcodes
//! torch's own C++ unpickler accepts), tensors are `_rebuild_tensor_v2` over `BINPERSID`
//! storages, and a module's state dict is its tensor attributes, submodules' prefixed with their
//! attribute name. A traced module (what `torch.jit.trace` makes, as OpenAI's archives are)
//! holds only parameters, buffers, submodules and `training`, so that is exactly its
//! `state_dict()`; a scripted module's plain tensor attributes would also be listed, and a
//! loader that checks every name refuses them.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::weights::LoadError;

/// The largest `data.pkl` read (module metadata only: the storages are separate entries).
const MAX_PICKLE: u64 = 256 << 20;

/// Element types of the storages TorchScript writes (`torch.<T>Storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    fn from_storage(name: &str) -> Option<Dtype> {
        Some(match name {
            "FloatStorage" => Dtype::F32,
            "HalfStorage" => Dtype::F16,
            "BFloat16Storage" => Dtype::BF16,
            "DoubleStorage" => Dtype::F64,
            "LongStorage" => Dtype::I64,
            "IntStorage" => Dtype::I32,
            "ShortStorage" => Dtype::I16,
            "CharStorage" => Dtype::I8,
            "ByteStorage" => Dtype::U8,
            "BoolStorage" => Dtype::Bool,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }
}

/// A tensor of the archive: a view into one storage.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    stride: Vec<usize>,
    offset: usize,
    storage: String,
    storage_numel: usize,
}

/// One opened archive: the tensors by state-dict name, their bytes read when asked for.
pub struct Archive {
    file: PathBuf,
    root: String,
    /// The class of the top module (`__torch__.<module path>.CLIP` for a traced CLIP).
    pub class: String,
    tensors: BTreeMap<String, TensorInfo>,
    zip: Mutex<zip::ZipArchive<File>>,
}

fn torch_err(file: &Path, msg: impl Into<String>) -> LoadError {
    LoadError::Torch {
        path: file.into(),
        msg: msg.into(),
    }
}

/// The zip of `file`, if it is one (by its magic); a zip that cannot be read (a truncated
/// download) is an error naming the file.
fn open_zip(file: &Path) -> Result<Option<zip::ZipArchive<File>>, LoadError> {
    let mut f = File::open(file).map_err(|error| LoadError::Io { path: file.into(), error })?;
    let mut head = [0u8; 4];
    if f.read_exact(&mut head).is_err() || &head != b"PK\x03\x04" {
        return Ok(None);
    }
    zip::ZipArchive::new(f)
        .map(Some)
        .map_err(|e| torch_err(file, format!("not a complete zip archive (a truncated download?): {e}")))
}

/// The root folder (with its `/`) of the archive's `data.pkl`, and whether TorchScript's
/// `code/` or `constants.pkl` sit beside it.
fn layout(zip: &zip::ZipArchive<File>) -> (Option<String>, bool) {
    let mut root = None;
    let mut script = false;
    for raw in zip.file_names_raw() {
        let raw = String::from_utf8_lossy(raw);
        let (dir, rest) = raw.split_once('/').unwrap_or(("", &raw));
        if rest == "data.pkl" {
            root = Some(format!("{dir}/"));
        }
        script |= rest.starts_with("code/") || rest == "constants.pkl";
    }
    (root, script)
}

impl Archive {
    /// The archive at `file` when it is a TorchScript archive; `None` for any other file (a
    /// `torch.save` zip has no `code/`).
    pub fn open_if_torchscript(file: &Path) -> Result<Option<Archive>, LoadError> {
        let Some(mut zip) = open_zip(file)? else {
            return Ok(None);
        };
        let (root, script) = layout(&zip);
        if !script {
            return Ok(None);
        }
        let root = root.ok_or_else(|| torch_err(file, "a TorchScript archive without data.pkl"))?;
        let pickle = {
            let name = format!("{root}data.pkl");
            let entry = zip
                .by_name(&name)
                .map_err(|e| torch_err(file, format!("TorchScript archive: {name}: {e}")))?;
            if entry.size() > MAX_PICKLE {
                return Err(torch_err(file, format!("TorchScript archive: {name} holds {} bytes", entry.size())));
            }
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry
                .take(MAX_PICKLE)
                .read_to_end(&mut bytes)
                .map_err(|e| torch_err(file, format!("TorchScript archive: {name}: {e}")))?;
            bytes
        };
        if let Some(order) = read_text(&mut zip, &format!("{root}byteorder")) {
            if order != "little" {
                return Err(torch_err(
                    file,
                    format!("TorchScript archive: byteorder `{order}`: only little-endian files are read"),
                ));
            }
        }
        let top = Unpickler::new(&pickle)
            .run()
            .map_err(|e| torch_err(file, format!("TorchScript archive: {root}data.pkl: {e}")))?;
        let (class, state) = match top {
            Value::Object { class, state } => (class, state),
            other => {
                return Err(torch_err(
                    file,
                    format!("TorchScript archive: {root}data.pkl holds {}, not a module", other.kind()),
                ))
            }
        };
        let mut tensors = BTreeMap::new();
        collect(&state, "", 0, &mut tensors).map_err(|e| torch_err(file, format!("TorchScript archive: {e}")))?;
        let archive = Archive {
            file: file.into(),
            root,
            class,
            tensors,
            zip: Mutex::new(zip),
        };
        archive.check_storages()?;
        Ok(Some(archive))
    }

    /// Every storage a tensor reads is in the archive, as long as its declared size, and the
    /// tensor lies inside it: a damaged archive fails at open, naming the tensor.
    fn check_storages(&self) -> Result<(), LoadError> {
        let mut zip = self.zip.lock().expect("zip lock");
        for (name, t) in &self.tensors {
            let entry = format!("{}data/{}", self.root, t.storage);
            let Some(i) = zip.index_for_name(&entry) else {
                return Err(torch_err(
                    &self.file,
                    format!("tensor `{name}`: storage {entry} is not in the archive"),
                ));
            };
            let size = zip.by_index_raw(i).map(|f| f.size()).unwrap_or(0) as usize;
            if size != t.storage_numel * t.dtype.size() {
                return Err(torch_err(
                    &self.file,
                    format!(
                        "tensor `{name}`: storage {entry} holds {size} bytes, {} declared ({} × {:?})",
                        t.storage_numel * t.dtype.size(),
                        t.storage_numel,
                        t.dtype
                    ),
                ));
            }
            if let Some(last) = last_index(t) {
                if last >= t.storage_numel {
                    return Err(torch_err(
                        &self.file,
                        format!(
                            "tensor `{name}` (shape {:?}, stride {:?}, offset {}) reaches element {last} of a storage of {}",
                            t.shape, t.stride, t.offset, t.storage_numel
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// State-dict names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// The tensor's elements in row-major order, little-endian bytes of its dtype.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, LoadError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| torch_err(&self.file, format!("no tensor `{name}` in the archive")))?;
        let entry = format!("{}data/{}", self.root, t.storage);
        let mut storage = Vec::with_capacity(t.storage_numel * t.dtype.size());
        {
            let mut zip = self.zip.lock().expect("zip lock");
            let mut f = zip
                .by_name(&entry)
                .map_err(|e| torch_err(&self.file, format!("tensor `{name}`: {entry}: {e}")))?;
            f.read_to_end(&mut storage)
                .map_err(|e| torch_err(&self.file, format!("tensor `{name}`: {entry}: {e}")))?;
        }
        Ok(gather(t, &storage))
    }
}

fn read_text(zip: &mut zip::ZipArchive<File>, name: &str) -> Option<String> {
    let mut s = String::new();
    zip.by_name(name).ok()?.take(64).read_to_string(&mut s).ok()?;
    Some(s.trim().to_string())
}

/// The largest storage index a view reaches; `None` for an empty tensor.
fn last_index(t: &TensorInfo) -> Option<usize> {
    if t.shape.contains(&0) {
        return None;
    }
    Some(t.offset + t.shape.iter().zip(&t.stride).map(|(n, s)| (n - 1) * s).sum::<usize>())
}

/// The view's elements, row-major, out of its storage (checked to hold them at open).
fn gather(t: &TensorInfo, storage: &[u8]) -> Vec<u8> {
    let es = t.dtype.size();
    let numel: usize = t.shape.iter().product();
    let contiguous = {
        let mut expect = 1;
        t.shape.iter().zip(&t.stride).rev().all(|(&n, &s)| {
            let ok = n == 1 || s == expect;
            expect *= n;
            ok
        })
    };
    if contiguous {
        return storage[t.offset * es..(t.offset + numel) * es].to_vec();
    }
    let mut out = Vec::with_capacity(numel * es);
    let mut idx = vec![0usize; t.shape.len()];
    for _ in 0..numel {
        let at = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        out.extend_from_slice(&storage[at * es..(at + 1) * es]);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < t.shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// The state dict of a module object: its tensor attributes, and its submodules' under
/// `<attribute>.`; other attributes (`training`, ints, `None` for an absent bias) are not
/// tensors of the state dict.
fn collect(state: &Value, prefix: &str, depth: usize, out: &mut BTreeMap<String, TensorInfo>) -> Result<(), String> {
    if depth > 64 {
        return Err(format!("modules nested more than 64 deep at `{prefix}`"));
    }
    let Value::Dict(items) = state else {
        return Err(format!(
            "module `{}` has {} as its state, not a dict of attributes (a module with __getstate__ is not read)",
            prefix.trim_end_matches('.'),
            state.kind()
        ));
    };
    for (k, v) in items {
        let Value::Str(name) = k else {
            return Err(format!(
                "module `{}` has an attribute named by {}",
                prefix.trim_end_matches('.'),
                k.kind()
            ));
        };
        let full = format!("{prefix}{name}");
        match v {
            Value::Tensor(t) => {
                if out.insert(full.clone(), t.clone()).is_some() {
                    return Err(format!("tensor `{full}` named twice"));
                }
            }
            Value::Object { state, .. } => collect(state, &format!("{full}."), depth + 1, out)?,
            other if other.holds_tensor() => {
                return Err(format!(
                    "attribute `{full}` holds tensors inside {}, which no state dict has",
                    other.kind()
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A pickled value, as far as a module tree needs.
#[derive(Debug, Clone)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    Storage {
        dtype: Dtype,
        key: String,
        numel: usize,
    },
    Tensor(TensorInfo),
    /// An instance of a TorchScript class (a module), with the state `BUILD` gave it.
    Object {
        class: String,
        state: Box<Value>,
    },
    /// A call this reader does not interpret, by the name of its callable (no tensor in it).
    Opaque(String),
}

impl Value {
    fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("the bool {b}"),
            Value::Int(i) => format!("the int {i}"),
            Value::Float(f) => format!("the float {f}"),
            Value::Str(s) => format!("the str {s:?}"),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::Tuple(_) => "a tuple".into(),
            Value::List(_) => "a list".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Global(m, n) => format!("the global {m}.{n}"),
            Value::Storage { .. } => "a storage".into(),
            Value::Tensor(_) => "a tensor".into(),
            Value::Object { class, .. } => format!("an object of {class}"),
            Value::Opaque(n) => format!("the result of {n}"),
        }
    }

    fn holds_tensor(&self) -> bool {
        match self {
            Value::Tensor(_) | Value::Storage { .. } | Value::Object { .. } => true,
            Value::Tuple(v) | Value::List(v) => v.iter().any(Value::holds_tensor),
            Value::Dict(v) => v.iter().any(|(k, v)| k.holds_tensor() || v.holds_tensor()),
            _ => false,
        }
    }
}

enum Slot {
    Mark,
    V(Value),
}

/// Protocol-2 unpickler for the opcodes TorchScript's pickler writes.
struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Slot>,
    memo: HashMap<u32, Value>,
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8]) -> Self {
        Unpickler {
            data,
            pos: 0,
            stack: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| format!("truncated at byte {} (wanted {n} more)", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.bytes(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.bytes(N)?.try_into().expect("N bytes"))
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or("unterminated line")?;
        let s = String::from_utf8(rest[..n].to_vec()).map_err(|e| e.to_string())?;
        self.pos += n + 1;
        Ok(s)
    }

    fn utf8(&mut self, n: usize) -> Result<Value, String> {
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map(Value::Str).map_err(|e| e.to_string())
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Slot::V(v));
    }

    fn pop(&mut self) -> Result<Value, String> {
        match self.stack.pop() {
            Some(Slot::V(v)) => Ok(v),
            Some(Slot::Mark) => Err("a mark where a value was expected".into()),
            None => Err("stack underflow".into()),
        }
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        match self.stack.last_mut() {
            Some(Slot::V(v)) => Ok(v),
            _ => Err("no value on the stack".into()),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let at = self
            .stack
            .iter()
            .rposition(|s| matches!(s, Slot::Mark))
            .ok_or("no mark on the stack")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .map(|s| match s {
                Slot::V(v) => v,
                Slot::Mark => unreachable!("the last mark was found above"),
            })
            .collect())
    }

    fn memo_put(&mut self, i: u32) -> Result<(), String> {
        let v = self.top()?.clone();
        self.memo.insert(i, v);
        Ok(())
    }

    fn memo_get(&mut self, i: u32) -> Result<(), String> {
        let v = self
            .memo
            .get(&i)
            .cloned()
            .ok_or_else(|| format!("memo {i} read before it was written"))?;
        self.push(v);
        Ok(())
    }

    fn run(mut self) -> Result<Value, String> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?;
                }
                0x95 => {
                    self.le::<8>()?;
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Slot::Mark),
                b'0' => {
                    self.stack.pop().ok_or("stack underflow")?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.push(Value::Int(v as i64))
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.push(Value::Int(v as i64))
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.bytes(n)?;
                    if n > 8 {
                        return Err(format!("an int of {n} bytes"));
                    }
                    let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xff; 8]
                    } else {
                        [0; 8]
                    };
                    buf[..n].copy_from_slice(b);
                    self.push(Value::Int(i64::from_le_bytes(buf)))
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.push(Value::Float(v))
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let v = self.utf8(n)?;
                    self.push(v)
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.utf8(n)?;
                    self.push(v)
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.le()?) as usize;
                    let v = self.utf8(n)?;
                    self.push(v)
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let b = self.bytes(n)?;
                    self.push(Value::Str(String::from_utf8_lossy(b).into_owned()))
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let b = self.bytes(n)?.to_vec();
                    self.push(Value::Bytes(b))
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.bytes(n)?.to_vec();
                    self.push(Value::Bytes(b))
                }
                0x8e => {
                    let n = u64::from_le_bytes(self.le()?) as usize;
                    let b = self.bytes(n)?.to_vec();
                    self.push(Value::Bytes(b))
                }
                b')' => self.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items))
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
                    items.reverse();
                    self.push(Value::Tuple(items))
                }
                b']' => self.push(Value::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items))
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.push(v),
                        other => return Err(format!("APPEND to {}", other.kind())),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.extend(items),
                        other => return Err(format!("APPENDS to {}", other.kind())),
                    }
                }
                b'}' => self.push(Value::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items)?;
                    self.push(Value::Dict(pairs))
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        Value::Dict(d) => d.push((k, v)),
                        other => return Err(format!("SETITEM on {}", other.kind())),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let new = pairs(items)?;
                    match self.top()? {
                        Value::Dict(d) => d.extend(new),
                        other => return Err(format!("SETITEMS on {}", other.kind())),
                    }
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    self.memo_put(i)?
                }
                b'r' => {
                    let i = u32::from_le_bytes(self.le()?);
                    self.memo_put(i)?
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.memo_put(i)?
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    self.memo_get(i)?
                }
                b'j' => {
                    let i = u32::from_le_bytes(self.le()?);
                    self.memo_get(i)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(module, name))
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.push(Value::Global(m, n)),
                        _ => return Err("STACK_GLOBAL of non-strings".into()),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = storage(pid)?;
                    self.push(v)
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = reduce(f, args)?;
                    self.push(v)
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let (m, n) = match cls {
                        Value::Global(m, n) => (m, n),
                        other => return Err(format!("NEWOBJ of {}", other.kind())),
                    };
                    if args.holds_tensor() {
                        return Err(format!("{m}.{n} constructed from tensors"));
                    }
                    self.push(Value::Object {
                        class: format!("{m}.{n}"),
                        state: Box::new(Value::None),
                    })
                }
                b'b' => {
                    let st = self.pop()?;
                    match self.top()? {
                        Value::Object { state, .. } => **state = st,
                        other => return Err(format!("BUILD on {}", other.kind())),
                    }
                }
                other => {
                    return Err(format!(
                        "opcode 0x{other:02x} at byte {at}, which TorchScript's pickler does not write"
                    ))
                }
            }
        }
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>, String> {
    if items.len() % 2 != 0 {
        return Err("a dict with an odd number of items".into());
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn int(v: &Value, what: &str) -> Result<usize, String> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        other => Err(format!("{what}: expected a non-negative int, got {}", other.kind())),
    }
}

fn ints(v: &Value, what: &str) -> Result<Vec<usize>, String> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(|i| int(i, what)).collect(),
        other => Err(format!("{what}: expected a tuple, got {}", other.kind())),
    }
}

/// A persistent id `('storage', torch.<T>Storage, key, location, numel)`.
fn storage(pid: Value) -> Result<Value, String> {
    let Value::Tuple(f) = pid else {
        return Err(format!("a persistent id that is {}", pid.kind()));
    };
    match f.as_slice() {
        [Value::Str(tag), Value::Global(_, ty), key, _location, numel] if tag == "storage" => {
            let dtype = Dtype::from_storage(ty).ok_or_else(|| format!("storage type torch.{ty}, which is not read"))?;
            let key = match key {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                other => return Err(format!("a storage key that is {}", other.kind())),
            };
            Ok(Value::Storage {
                dtype,
                key,
                numel: int(numel, "storage size")?,
            })
        }
        _ => Err(format!("a persistent id of {} fields that is not a storage", f.len())),
    }
}

fn reduce(f: Value, args: Value) -> Result<Value, String> {
    let Value::Global(m, n) = &f else {
        return Err(format!("a call of {}", f.kind()));
    };
    let mut args = match args {
        Value::Tuple(a) => a,
        other => return Err(format!("{m}.{n} called with {}", other.kind())),
    };
    match (m.as_str(), n.as_str()) {
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") if args.len() >= 4 => {
            let Value::Storage { dtype, key, numel } = &args[0] else {
                return Err(format!("{n} of {}", args[0].kind()));
            };
            let shape = ints(&args[2], "tensor size")?;
            let stride = ints(&args[3], "tensor stride")?;
            if shape.len() != stride.len() {
                return Err(format!("a tensor of size {shape:?} with stride {stride:?}"));
            }
            Ok(Value::Tensor(TensorInfo {
                dtype: *dtype,
                shape,
                stride,
                offset: int(&args[1], "storage offset")?,
                storage: key.clone(),
                storage_numel: *numel,
            }))
        }
        ("torch._utils", "_rebuild_parameter") if !args.is_empty() => Ok(args.swap_remove(0)),
        ("collections", "OrderedDict") => match args.pop() {
            None => Ok(Value::Dict(Vec::new())),
            Some(Value::List(items)) => items
                .into_iter()
                .map(|p| match p {
                    Value::Tuple(mut kv) | Value::List(mut kv) if kv.len() == 2 => {
                        let v = kv.pop().expect("2");
                        Ok((kv.pop().expect("2"), v))
                    }
                    other => Err(format!("OrderedDict item {}", other.kind())),
                })
                .collect::<Result<_, _>>()
                .map(Value::Dict),
            Some(other) => Err(format!("OrderedDict of {}", other.kind())),
        },
        // Typed containers: the value is the first argument.
        ("torch.jit._pickle", "restore_type_tag") if !args.is_empty() => Ok(args.swap_remove(0)),
        ("torch.jit._pickle", name) if name.starts_with("build_") && args.len() == 1 => Ok(args.swap_remove(0)),
        _ => {
            let name = format!("{m}.{n}");
            if args.iter().any(Value::holds_tensor) {
                // A quantized or sparse tensor, a packed parameter: data a state dict of float
                // tensors cannot hold, refused rather than dropped.
                return Err(format!("{name} over tensors, which is not read"));
            }
            Ok(Value::Opaque(name))
        }
    }
}
