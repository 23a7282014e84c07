//! Python pickles read without Python, into a generic value tree: the one reader of the
//! workspace, for TorchScript's `data.pkl` (ntlb-clip) and upstream CoOp's cached few-shot
//! draws (ntlb-data). What a file's values mean (a tensor rebuilt from a storage, a Dassl
//! `Datum`) is read off the tree by its caller; nothing here calls or imports anything.
//!
//! One reader rather than one per format: the opcodes, the memo and the stack are the same for
//! both, and the edge cases (a memoized list appended to afterwards, protocol 4 framing, an
//! int of a few bytes with its sign bit set) are then right, and tested, once. Not
//! `pytorch-reader`'s: that crate keeps its unpickler private, and refuses objects holding
//! tensors, which is all a TorchScript module is.
//!
//! The opcodes read are those of protocols 2 to 5 that such files hold: no Python 2 text
//! protocol beyond `GLOBAL`, no sets, no out-of-band buffers, no ints past 64 bits. Any other
//! opcode is an error naming it and its offset, so a file of another kind fails where it starts
//! to differ, not later with a confusing value.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// A value of the pickle machine. Lists, dicts and objects are shared, as Python's are, so
/// one memoized before it is filled (as the pickler always does) reads back whole wherever the
/// memo gives it again.
#[derive(Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Rc<[Value]>),
    List(Rc<RefCell<Vec<Value>>>),
    /// In the order written; a key written twice is kept twice (see [`Value::get`]).
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// `module.name` as `GLOBAL` / `STACK_GLOBAL` name it.
    Global(String, String),
    Object(Rc<RefCell<Object>>),
    /// What `BINPERSID` was given: the pickler's reference to data kept outside the pickle.
    PersistentId(Rc<Value>),
}

/// How an [`Object`] came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// `NEWOBJ` / `NEWOBJ_EX`: `cls.__new__(cls, *args, **kwargs)`, a class instance.
    New,
    /// `REDUCE`: `module.name(*args)`, a function's result.
    Call,
}

/// An instance or call result, with the state `BUILD` gave it.
#[derive(Debug, Clone)]
pub struct Object {
    pub module: String,
    pub name: String,
    pub made: Made,
    /// The tuple of positional arguments.
    pub args: Value,
    /// `NEWOBJ_EX`'s keyword arguments.
    pub kwargs: Option<Value>,
    pub state: Option<Value>,
}

impl Value {
    /// What the value is, for messages: `the int 3`, `a list`, `an object of m.C`.
    pub fn kind(&self) -> String {
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
            Value::Object(o) => {
                let o = o.borrow();
                match o.made {
                    Made::New => format!("an object of {}.{}", o.module, o.name),
                    Made::Call => format!("the result of {}.{}", o.module, o.name),
                }
            }
            Value::PersistentId(_) => "a persistent id".into(),
        }
    }

    /// The value of the str key `key` of a dict: the last written, as Python keeps.
    pub fn get(&self, key: &str) -> Option<Value> {
        let Value::Dict(d) = self else { return None };
        let d = d.borrow();
        d.iter()
            .rev()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
            .map(|(_, v)| v.clone())
    }
}

/// Only the kind: a value may hold itself (a list appended to itself), which a derived `Debug`
/// would print forever.
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind())
    }
}

/// Why a pickle was not read. Offsets count from the pickle's first byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// An opcode this reader does not take (or a byte that is none).
    Opcode { op: u8, at: usize },
    /// The stream ends inside an opcode's argument, or before `STOP`.
    Truncated { at: usize, wanted: usize },
    /// The opcode at `at` does not fit the stack, the memo or its argument.
    Bad { at: usize, msg: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Opcode { op, at } => write!(f, "opcode 0x{op:02x} at byte {at}, which this pickle reader does not take"),
            Error::Truncated { at, wanted } => write!(f, "truncated at byte {at} (wanted {wanted} more)"),
            Error::Bad { at, msg } => write!(f, "{msg} (the opcode at byte {at})"),
        }
    }
}

impl std::error::Error for Error {}

/// The value a pickle's `STOP` returns.
pub fn read(bytes: &[u8]) -> Result<Value, Error> {
    let mut m = Machine {
        data: bytes,
        pos: 0,
        op_at: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
    };
    m.run()
}

enum Slot {
    Mark,
    V(Value),
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Where the opcode being run starts, for messages.
    op_at: usize,
    stack: Vec<Slot>,
    memo: HashMap<u64, Value>,
}

fn shared<T>(x: T) -> Rc<RefCell<T>> {
    Rc::new(RefCell::new(x))
}

impl<'a> Machine<'a> {
    fn bad<T>(&self, msg: impl Into<String>) -> Result<T, Error> {
        Err(Error::Bad {
            at: self.op_at,
            msg: msg.into(),
        })
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or(Error::Truncated {
            at: self.pos,
            wanted: n - (self.data.len() - self.pos).min(n),
        })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.bytes(1)?[0])
    }

    /// An unsigned little-endian int of `n` (at most 8) bytes.
    fn le(&mut self, n: usize) -> Result<u64, Error> {
        Ok(self.bytes(n)?.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64))
    }

    /// A length of `n` bytes, checked to fit in the pickle before anything is allocated.
    fn len(&mut self, n: usize) -> Result<usize, Error> {
        let len = self.le(n)?;
        let left = (self.data.len() - self.pos) as u64;
        if len > left {
            return Err(Error::Truncated {
                at: self.pos,
                wanted: (len - left).try_into().unwrap_or(usize::MAX),
            });
        }
        Ok(len as usize)
    }

    fn line(&mut self) -> Result<String, Error> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(Error::Truncated {
                at: self.data.len(),
                wanted: 1,
            });
        };
        let s = String::from_utf8(rest[..n].to_vec());
        self.pos += n + 1;
        s.or_else(|_| self.bad("a GLOBAL name that is not UTF-8"))
    }

    fn text(&mut self, n: usize) -> Result<Value, Error> {
        let b = self.bytes(n)?;
        match String::from_utf8(b.to_vec()) {
            Ok(s) => Ok(Value::Str(s)),
            Err(_) => self.bad(format!("a string of {n} bytes that is not UTF-8")),
        }
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Slot::V(v));
    }

    fn pop(&mut self) -> Result<Value, Error> {
        match self.stack.pop() {
            Some(Slot::V(v)) => Ok(v),
            Some(Slot::Mark) => self.bad("a mark where a value was expected"),
            None => self.bad("stack underflow"),
        }
    }

    fn top(&self) -> Result<&Value, Error> {
        match self.stack.last() {
            Some(Slot::V(v)) => Ok(v),
            Some(Slot::Mark) => self.bad("a mark where a value was expected"),
            None => self.bad("stack underflow"),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, Error> {
        let Some(at) = self.stack.iter().rposition(|s| matches!(s, Slot::Mark)) else {
            return self.bad("no mark on the stack");
        };
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

    fn pairs(&self, items: Vec<Value>) -> Result<Vec<(Value, Value)>, Error> {
        if items.len() % 2 != 0 {
            return self.bad("a key without a value");
        }
        let mut it = items.into_iter();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
        Ok(out)
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), Error> {
        let new = self.pairs(items)?;
        match self.top()? {
            Value::Dict(d) => {
                d.borrow_mut().extend(new);
                Ok(())
            }
            other => self.bad(format!("SETITEM on {}", other.kind())),
        }
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), Error> {
        match self.top()? {
            Value::List(l) => {
                l.borrow_mut().extend(items);
                Ok(())
            }
            other => self.bad(format!("APPEND to {}", other.kind())),
        }
    }

    fn memo_put(&mut self, i: u64) -> Result<(), Error> {
        let v = self.top()?.clone();
        self.memo.insert(i, v);
        Ok(())
    }

    fn memo_get(&mut self, i: u64) -> Result<(), Error> {
        match self.memo.get(&i) {
            Some(v) => {
                let v = v.clone();
                self.push(v);
                Ok(())
            }
            None => self.bad(format!("memo {i} read before it was written")),
        }
    }

    /// `cls.__new__(cls, *args)` or `f(*args)`: an object naming its class or function.
    /// `collections.OrderedDict` is a dict (its items follow by `SETITEMS`, or are its
    /// argument), so it is read as one.
    fn object(&mut self, made: Made, callable: Value, args: Value, kwargs: Option<Value>) -> Result<Value, Error> {
        let Value::Global(module, name) = callable else {
            return self.bad(format!("a call of {}", callable.kind()));
        };
        if !matches!(args, Value::Tuple(_)) {
            return self.bad(format!("{module}.{name} called with {}", args.kind()));
        }
        if (module.as_str(), name.as_str()) == ("collections", "OrderedDict") && made == Made::Call {
            let Value::Tuple(a) = &args else { unreachable!("checked above") };
            let pairs = match &a[..] {
                [] => Vec::new(),
                [Value::List(items)] => {
                    let items = items.borrow();
                    let mut pairs = Vec::with_capacity(items.len());
                    for p in items.iter() {
                        match p {
                            Value::Tuple(kv) if kv.len() == 2 => pairs.push((kv[0].clone(), kv[1].clone())),
                            Value::List(kv) if kv.borrow().len() == 2 => {
                                let kv = kv.borrow();
                                pairs.push((kv[0].clone(), kv[1].clone()))
                            }
                            other => return self.bad(format!("an OrderedDict item that is {}", other.kind())),
                        }
                    }
                    pairs
                }
                _ => return self.bad("an OrderedDict of arguments other than a list of pairs"),
            };
            return Ok(Value::Dict(shared(pairs)));
        }
        Ok(Value::Object(shared(Object {
            module,
            name,
            made,
            args,
            kwargs,
            state: None,
        })))
    }

    fn run(&mut self) -> Result<Value, Error> {
        loop {
            self.op_at = self.pos;
            let op = self.u8()?;
            match op {
                // PROTO
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return self.bad(format!("pickle protocol {p}"));
                    }
                }
                // FRAME: a length hint for buffered readers; the bytes follow inline.
                0x95 => {
                    self.le(8)?;
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Slot::Mark),
                b'0' => {
                    if self.stack.pop().is_none() {
                        return self.bad("stack underflow");
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.le(4)? as u32 as i32;
                    self.push(Value::Int(v as i64))
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))
                }
                b'M' => {
                    let v = self.le(2)?;
                    self.push(Value::Int(v as i64))
                }
                // LONG1: two's complement, little-endian, of n bytes.
                0x8a => {
                    let n = self.u8()? as usize;
                    if n > 8 {
                        return self.bad(format!("an int of {n} bytes"));
                    }
                    let raw = self.le(n)?;
                    let v = if n > 0 && n < 8 && raw & (1 << (8 * n - 1)) != 0 {
                        (raw | (!0u64 << (8 * n))) as i64
                    } else {
                        raw as i64
                    };
                    self.push(Value::Int(v))
                }
                b'G' => {
                    let b = self.bytes(8)?;
                    self.push(Value::Float(f64::from_be_bytes(b.try_into().expect("8 bytes"))))
                }
                // SHORT_BINSTRING (a Python 2 str), SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
                b'U' | 0x8c => {
                    let n = self.len(1)?;
                    let v = self.text(n)?;
                    self.push(v)
                }
                b'X' => {
                    let n = self.len(4)?;
                    let v = self.text(n)?;
                    self.push(v)
                }
                0x8d => {
                    let n = self.len(8)?;
                    let v = self.text(n)?;
                    self.push(v)
                }
                // SHORT_BINBYTES, BINBYTES, BINBYTES8
                b'C' | b'B' | 0x8e => {
                    let n = match op {
                        b'C' => self.len(1)?,
                        b'B' => self.len(4)?,
                        _ => self.len(8)?,
                    };
                    let b = self.bytes(n)?.to_vec();
                    self.push(Value::Bytes(b))
                }
                b')' => self.push(Value::Tuple(Rc::from(Vec::new()))),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(Rc::from(items)))
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
                    items.reverse();
                    self.push(Value::Tuple(Rc::from(items)))
                }
                b']' => self.push(Value::List(shared(Vec::new()))),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(shared(items)))
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?
                }
                b'}' => self.push(Value::Dict(shared(Vec::new()))),
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push(Value::Dict(shared(pairs)))
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?
                }
                // BINPUT, LONG_BINPUT, MEMOIZE
                b'q' => {
                    let i = self.le(1)?;
                    self.memo_put(i)?
                }
                b'r' => {
                    let i = self.le(4)?;
                    self.memo_put(i)?
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    self.memo_put(i)?
                }
                // BINGET, LONG_BINGET
                b'h' => {
                    let i = self.le(1)?;
                    self.memo_get(i)?
                }
                b'j' => {
                    let i = self.le(4)?;
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
                        (m, n) => return self.bad(format!("STACK_GLOBAL of {} and {}", m.kind(), n.kind())),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(Value::PersistentId(Rc::new(pid)))
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.object(Made::Call, f, args, None)?;
                    self.push(v)
                }
                // NEWOBJ, NEWOBJ_EX
                0x81 | 0x92 => {
                    let kwargs = if op == 0x92 { Some(self.pop()?) } else { None };
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    if !matches!(cls, Value::Global(..)) {
                        return self.bad(format!("NEWOBJ of {}", cls.kind()));
                    }
                    let v = self.object(Made::New, cls, args, kwargs)?;
                    self.push(v)
                }
                b'b' => {
                    let st = self.pop()?;
                    match self.top()? {
                        Value::Object(o) => o.borrow_mut().state = Some(st),
                        other => return self.bad(format!("BUILD on {}", other.kind())),
                    }
                }
                other => return Err(Error::Opcode { op: other, at: self.op_at }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &Value) -> Vec<i64> {
        let items: Vec<Value> = match v {
            Value::List(l) => l.borrow().clone(),
            Value::Tuple(t) => t.to_vec(),
            other => panic!("{}", other.kind()),
        };
        items
            .iter()
            .map(|x| match x {
                Value::Int(i) => *i,
                other => panic!("{}", other.kind()),
            })
            .collect()
    }

    /// `pickle.dumps({"a": 1, "b": [2, -3, 70000, -2**40]}, protocol=2)` as CPython writes it:
    /// `BINPUT` after each container, `MARK` ... `SETITEMS`, `APPENDS`, `BININT`, `LONG1`.
    #[test]
    fn protocol_2_dict_of_list() {
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03(K\x02J\xfd\xff\xff\xffJp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\xffeu.";
        let v = read(p).unwrap();
        assert!(matches!(v.get("a"), Some(Value::Int(1))), "{v:?}");
        assert_eq!(ints(&v.get("b").unwrap()), [2, -3, 70000, -(1 << 40)]);
        assert!(v.get("c").is_none());
    }

    /// Protocol 4 (5 frames the same): `FRAME`, `MEMOIZE`, `STACK_GLOBAL`, `NEWOBJ`, `BUILD`,
    /// `BINUNICODE8` and `BINBYTES8`; as `pickle.dumps(c, protocol=4)` writes an instance of a
    /// class `m.C` holding `x = -1` and `y = b"z"`.
    #[test]
    fn protocol_4_framed_object() {
        for proto in [4u8, 5] {
            let body: &[u8] = b"\x8c\x01m\x94\x8c\x01C\x94\x93\x94)\x81\x94}\x94(\x8d\x01\x00\x00\x00\x00\x00\x00\x00x\x94J\xff\xff\xff\xff\x8c\x01y\x94\x8e\x01\x00\x00\x00\x00\x00\x00\x00zub.";
            let mut p = vec![0x80, proto, 0x95];
            p.extend((body.len() as u64).to_le_bytes());
            p.extend(body);
            let v = read(&p).unwrap();
            let Value::Object(o) = &v else { panic!("{v:?}") };
            let o = o.borrow();
            assert_eq!((o.module.as_str(), o.name.as_str(), o.made), ("m", "C", Made::New));
            assert!(matches!(&o.args, Value::Tuple(a) if a.is_empty()));
            let state = o.state.clone().unwrap();
            assert!(matches!(state.get("x"), Some(Value::Int(-1))));
            assert!(matches!(state.get("y"), Some(Value::Bytes(b)) if b == b"z"));
        }
    }

    /// A list memoized empty, then filled, then read back from the memo by each of `BINGET`
    /// and `LONG_BINGET` (after `BINPUT` / `LONG_BINPUT`): every copy sees the items, as in
    /// Python, where they are one list.
    #[test]
    fn memo_put_and_get_share_containers() {
        // [l, l2, l, l2] where l = [7] stored by BINPUT 1 and l2 = [8] by LONG_BINPUT 300.
        let p = b"\x80\x02](]q\x01K\x07a]r\x2c\x01\x00\x00K\x08ah\x01j\x2c\x01\x00\x00e.";
        let v = read(p).unwrap();
        let Value::List(outer) = &v else { panic!("{v:?}") };
        let outer = outer.borrow();
        let got: Vec<Vec<i64>> = outer.iter().map(ints).collect();
        assert_eq!(got, [vec![7], vec![8], vec![7], vec![8]]);
        let (Value::List(a), Value::List(b)) = (&outer[0], &outer[2]) else {
            panic!()
        };
        assert!(Rc::ptr_eq(a, b), "a memo GET gives the same list, not a copy");
        // MEMOIZE numbers from the memo's size; a GET of a slot never written is refused.
        let v = read(b"\x80\x04K\x05\x94K\x06\x94\x86\x94h\x00h\x01h\x02\x87.").unwrap();
        let Value::Tuple(t) = &v else { panic!("{v:?}") };
        assert!(matches!((&t[0], &t[1]), (Value::Int(5), Value::Int(6))));
        assert_eq!(ints(&t[2]), [5, 6]);
        let e = read(b"\x80\x02h\x03.").unwrap_err();
        assert_eq!(e.to_string(), "memo 3 read before it was written (the opcode at byte 2)");
    }

    /// `REDUCE` of a global gives a call result naming it; `OrderedDict()` with its items set
    /// after is a dict; `BINPERSID` keeps the id; `GLOBAL` reads its two lines.
    #[test]
    fn reduce_ordered_dict_and_persistent_id() {
        let p = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00kcm\nf\n(X\x07\x00\x00\x00storagecm\nS\nX\x01\x00\x00\x000K\x04tQ\x85Rsh\x01\x85.";
        let v = read(p).unwrap();
        let Value::Tuple(t) = &v else { panic!("{v:?}") };
        let Value::Object(o) = t[0].get("k").unwrap() else { panic!() };
        let o = o.borrow();
        assert_eq!((o.module.as_str(), o.name.as_str(), o.made), ("m", "f", Made::Call));
        let Value::Tuple(args) = &o.args else { panic!() };
        let Value::PersistentId(pid) = &args[0] else {
            panic!("{:?}", args[0])
        };
        let Value::Tuple(f) = &**pid else { panic!() };
        assert!(
            matches!(&f[..], [Value::Str(s), Value::Global(m, n), Value::Str(k), Value::Int(4)] if s == "storage" && m == "m" && n == "S" && k == "0")
        );
    }

    #[test]
    fn an_unknown_opcode_is_refused_with_its_offset() {
        // EMPTY_SET (protocol 4) after a frame: a real opcode, not one these files hold.
        let p = b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00K\x01\x8f.";
        assert_eq!(read(p).unwrap_err(), Error::Opcode { op: 0x8f, at: 13 });
        assert_eq!(
            read(p).unwrap_err().to_string(),
            "opcode 0x8f at byte 13, which this pickle reader does not take"
        );
        // JSON is no pickle: refused at its first byte.
        assert_eq!(read(b"{\"a\": 1}").unwrap_err(), Error::Opcode { op: b'{', at: 0 });
        assert!(matches!(read(b"\x80\x06N.").unwrap_err(), Error::Bad { at: 0, msg } if msg == "pickle protocol 6"));
    }

    #[test]
    fn a_truncated_stream_is_refused() {
        let whole = b"\x80\x02X\x05\x00\x00\x00helloq\x00.";
        assert!(read(whole).is_ok());
        for cut in 0..whole.len() {
            let e = read(&whole[..cut]).unwrap_err();
            assert!(matches!(e, Error::Truncated { .. }), "cut at {cut}: {e}");
        }
        assert_eq!(read(&whole[..5]).unwrap_err(), Error::Truncated { at: 3, wanted: 2 });
        assert_eq!(read(&whole[..9]).unwrap_err().to_string(), "truncated at byte 7 (wanted 3 more)");
        // A length beyond the file is refused before anything that long is allocated.
        let e = read(b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f").unwrap_err();
        assert!(matches!(e, Error::Truncated { at: 11, .. }), "{e}");
    }

    #[test]
    fn values_that_do_not_fit_their_opcode_are_refused() {
        assert_eq!(
            read(b"\x80\x02K\x01K\x02a.").unwrap_err().to_string(),
            "APPEND to the int 1 (the opcode at byte 6)"
        );
        assert_eq!(
            read(b"\x80\x02.").unwrap_err().to_string(),
            "stack underflow (the opcode at byte 2)"
        );
        assert!(matches!(read(b"(K\x01t\x81.").unwrap_err(), Error::Bad { at: 4, .. }));
    }
}
