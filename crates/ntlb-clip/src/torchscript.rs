//! TorchScript archives (`torch.jit.save`; OpenAI's released `.pt` files that `clip.load` keeps
//! in `~/.cache/clip`) read as the state dict `torch.jit.load(f).state_dict()` gives.
//!
//! The archive is a zip under one root folder: `data.pkl` pickles the module tree, `data/<key>`
//! hold the tensors' storages, `constants.pkl` (tensors baked into the traced graph, such as the
//! attention mask), `code/` (the TorchScript source) and `version` sit beside them. Only
//! `data.pkl` and the storages it names are read.
//!
//! The pickle is read by the workspace's pickle reader (`ntlb_core::pickle`), not
//! `pytorch-reader`'s: that crate keeps its unpickler private, and reads a module only in
//! `torch.save`'s Python form (`__dict__` with `_parameters` / `_buffers` / `_modules`).
//! TorchScript's C++ pickler writes each module as `GLOBAL __torch__.<class>`, `NEWOBJ`, then
//! `BUILD` with a dict of its attributes (submodules, parameters and buffers by name,
//! `training`), which that crate refuses as an object holding tensors. What is torch's is read
//! here off the generic tree: tensors are `_rebuild_tensor_v2` calls over `BINPERSID`
//! storages, and a module's state dict is its tensor attributes, submodules' prefixed with their
//! attribute name. A traced module (what `torch.jit.trace` makes, as OpenAI's archives are)
//! holds only parameters, buffers, submodules and `training`, so that is exactly its
//! `state_dict()`; a scripted module's plain tensor attributes would also be listed, and a
//! loader that checks every name refuses them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Mutex;

use ntlb_core::pickle::{self, Made, Object, Value};

use crate::load_error::LoadError;

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
        let pkl = {
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
        let value = pickle::read(&pkl).map_err(|e| {
            let e = match e {
                pickle::Error::Opcode { op, at } => format!("opcode 0x{op:02x} at byte {at}, which TorchScript's pickler does not write"),
                e => e.to_string(),
            };
            torch_err(file, format!("TorchScript archive: {root}data.pkl: {e}"))
        })?;
        let top = match &value {
            Value::Object(o) if o.borrow().made == Made::New => o.borrow(),
            other => {
                return Err(torch_err(
                    file,
                    format!("TorchScript archive: {root}data.pkl holds {}, not a module", other.kind()),
                ))
            }
        };
        let class = format!("{}.{}", top.module, top.name);
        let mut tensors = BTreeMap::new();
        module(&top, "", 0, &mut tensors).map_err(|e| torch_err(file, format!("TorchScript archive: {e}")))?;
        drop(top);
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
fn module(o: &Object, prefix: &str, depth: usize, out: &mut BTreeMap<String, TensorInfo>) -> Result<(), String> {
    let name = prefix.trim_end_matches('.');
    if depth > 64 {
        return Err(format!("modules nested more than 64 deep at `{name}`"));
    }
    if holds_tensor(&o.args, 0)? {
        return Err(format!("module `{name}`: {}.{} constructed from tensors", o.module, o.name));
    }
    let state = o.state.clone().unwrap_or(Value::None);
    let Value::Dict(items) = &state else {
        return Err(format!(
            "module `{name}` has {} as its state, not a dict of attributes (a module with __getstate__ is not read)",
            state.kind()
        ));
    };
    for (k, v) in items.borrow().iter() {
        let Value::Str(attr) = k else {
            return Err(format!("module `{name}` has an attribute named by {}", k.kind()));
        };
        let full = format!("{prefix}{attr}");
        match attribute(v).map_err(|e| format!("attribute `{full}`: {e}"))? {
            Attr::Tensor(t) => {
                if out.insert(full.clone(), t).is_some() {
                    return Err(format!("tensor `{full}` named twice"));
                }
            }
            Attr::Module(o) => module(&o.borrow(), &format!("{full}."), depth + 1, out)?,
            // A quantized or sparse tensor, a packed parameter, tensors in a list: data a state
            // dict of plain tensors cannot hold, refused rather than dropped.
            Attr::Other if holds_tensor(v, 0)? => {
                return Err(format!(
                    "attribute `{full}` holds tensors inside {}, which no state dict has",
                    v.kind()
                ))
            }
            Attr::Other => {}
        }
    }
    Ok(())
}

/// What a module attribute is to the state dict.
enum Attr {
    Tensor(TensorInfo),
    Module(Rc<RefCell<Object>>),
    Other,
}

fn attribute(v: &Value) -> Result<Attr, String> {
    let Value::Object(rc) = v else { return Ok(Attr::Other) };
    let o = rc.borrow();
    if o.made == Made::New {
        return Ok(Attr::Module(rc.clone()));
    }
    let Value::Tuple(args) = &o.args else { return Ok(Attr::Other) };
    match (o.module.as_str(), o.name.as_str()) {
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") if args.len() >= 4 => tensor(args).map(Attr::Tensor),
        // A parameter is its tensor; typed containers are their first argument.
        ("torch._utils", "_rebuild_parameter") | ("torch.jit._pickle", "restore_type_tag") if !args.is_empty() => attribute(&args[0]),
        ("torch.jit._pickle", n) if n.starts_with("build_") && args.len() == 1 => attribute(&args[0]),
        _ => Ok(Attr::Other),
    }
}

/// Whether a value holds tensor data anywhere: a storage, or an object (a module, a tensor).
fn holds_tensor(v: &Value, depth: usize) -> Result<bool, String> {
    if depth > 64 {
        return Err(format!("{} nested more than 64 deep", v.kind()));
    }
    let any = |items: &[Value]| -> Result<bool, String> {
        for x in items {
            if holds_tensor(x, depth + 1)? {
                return Ok(true);
            }
        }
        Ok(false)
    };
    Ok(match v {
        Value::PersistentId(_) => true,
        Value::Object(o) => {
            let o = o.borrow();
            o.made == Made::New
                || holds_tensor(&o.args, depth + 1)?
                || match &o.state {
                    Some(s) => holds_tensor(s, depth + 1)?,
                    None => false,
                }
        }
        Value::Tuple(items) => any(items)?,
        Value::List(items) => any(&items.borrow())?,
        Value::Dict(items) => {
            let flat: Vec<Value> = items.borrow().iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect();
            any(&flat)?
        }
        _ => false,
    })
}

fn int(v: &Value, what: &str) -> Result<usize, String> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        other => Err(format!("{what}: expected a non-negative int, got {}", other.kind())),
    }
}

fn ints(v: &Value, what: &str) -> Result<Vec<usize>, String> {
    match v {
        Value::Tuple(items) => items.iter().map(|i| int(i, what)).collect(),
        Value::List(items) => items.borrow().iter().map(|i| int(i, what)).collect(),
        other => Err(format!("{what}: expected a tuple, got {}", other.kind())),
    }
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`: a view into a storage.
fn tensor(args: &[Value]) -> Result<TensorInfo, String> {
    let Value::PersistentId(pid) = &args[0] else {
        return Err(format!("a tensor rebuilt from {}, not a storage", args[0].kind()));
    };
    let (dtype, storage, storage_numel) = storage(pid)?;
    let shape = ints(&args[2], "tensor size")?;
    let stride = ints(&args[3], "tensor stride")?;
    if shape.len() != stride.len() {
        return Err(format!("a tensor of size {shape:?} with stride {stride:?}"));
    }
    Ok(TensorInfo {
        dtype,
        shape,
        stride,
        offset: int(&args[1], "storage offset")?,
        storage,
        storage_numel,
    })
}

/// A persistent id `('storage', torch.<T>Storage, key, location, numel)`: its element type,
/// its entry under `data/`, and its size in elements.
fn storage(pid: &Value) -> Result<(Dtype, String, usize), String> {
    let Value::Tuple(f) = pid else {
        return Err(format!("a persistent id that is {}", pid.kind()));
    };
    match &f[..] {
        [Value::Str(tag), Value::Global(_, ty), key, _location, numel] if tag == "storage" => {
            let dtype = Dtype::from_storage(ty).ok_or_else(|| format!("storage type torch.{ty}, which is not read"))?;
            let key = match key {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                other => return Err(format!("a storage key that is {}", other.kind())),
            };
            Ok((dtype, key, int(numel, "storage size")?))
        }
        _ => Err(format!("a persistent id of {} fields that is not a storage", f.len())),
    }
}
