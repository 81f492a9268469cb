//! D-Bus messages: values and their signatures, marshalling (always
//! little-endian) and unmarshalling (either byte order), the header.

use super::{proto, BusError, Result};

/// A D-Bus value, with what is needed to know its signature.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Str(String),
    Path(String),
    Sig(String),
    /// The element signature, then the elements.
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
    DictEntry(Box<Value>, Box<Value>),
}

impl Value {
    /// `(sv)`: a property as `StartTransientUnit` takes it.
    pub fn property(name: &str, v: Value) -> Value {
        Value::Struct(vec![Value::Str(name.into()), Value::Variant(Box::new(v))])
    }

    pub fn str(s: &str) -> Value {
        Value::Str(s.to_string())
    }

    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(el, _) => format!("a{el}"),
            Value::Struct(vs) => {
                format!("({})", vs.iter().map(Value::signature).collect::<String>())
            }
            Value::Variant(_) => "v".into(),
            Value::DictEntry(k, v) => format!("{{{}{}}}", k.signature(), v.signature()),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Byte(v) => Some(u64::from(*v)),
            Value::U32(v) => Some(u64::from(*v)),
            Value::U64(v) => Some(*v),
            Value::I32(v) => u64::try_from(*v).ok(),
            Value::I64(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// The value inside a variant (itself otherwise).
    pub fn unwrap_variant(&self) -> &Value {
        match self {
            Value::Variant(v) => v.unwrap_variant(),
            v => v,
        }
    }
}

/// Alignment of the type whose signature starts with `c`.
fn align_of(c: u8) -> usize {
    match c {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

/// Marshalling, little-endian; offsets count from the start of `buf`,
/// which starts at an 8-aligned place in the message.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, align: usize) {
        while self.buf.len() % align != 0 {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn sig(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn put(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::I32(i) => self.u32(*i as u32),
            Value::U32(u) => self.u32(*u),
            Value::I64(i) => {
                self.pad(8);
                self.buf.extend_from_slice(&i.to_le_bytes());
            }
            Value::U64(u) => {
                self.pad(8);
                self.buf.extend_from_slice(&u.to_le_bytes());
            }
            Value::Str(s) | Value::Path(s) => self.string(s),
            Value::Sig(s) => self.sig(s),
            Value::Array(el, items) => {
                self.pad(4);
                let at = self.buf.len();
                self.buf.extend_from_slice(&[0; 4]);
                self.pad(align_of(el.as_bytes().first().copied().unwrap_or(b'y')));
                let start = self.buf.len();
                for i in items {
                    self.put(i);
                }
                let len = (self.buf.len() - start) as u32;
                self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(vs) => {
                self.pad(8);
                for v in vs {
                    self.put(v);
                }
            }
            Value::Variant(inner) => {
                self.sig(&inner.signature());
                self.put(inner);
            }
            Value::DictEntry(k, v) => {
                self.pad(8);
                self.put(k);
                self.put(v);
            }
        }
    }
}

/// Unmarshalling of one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the message, for alignment.
    base: usize,
    big_endian: bool,
}

/// The first complete type of `sig`, and the rest.
fn split_type(sig: &str) -> Result<(&str, &str)> {
    let b = sig.as_bytes();
    let end = match b.first() {
        None => return proto("empty signature"),
        Some(b'a') => 1 + split_type(&sig[1..])?.0.len(),
        Some(&open @ (b'(' | b'{')) => {
            let close = if open == b'(' { b')' } else { b'}' };
            let mut i = 1;
            while b.get(i) != Some(&close) {
                if i >= b.len() {
                    return proto(format!("unbalanced signature `{sig}`"));
                }
                i += split_type(&sig[i..])?.0.len();
            }
            i + 1
        }
        Some(_) => 1,
    };
    Ok(sig.split_at(end))
}

impl Reader<'_> {
    fn align(&mut self, a: usize) -> Result<()> {
        while (self.base + self.pos) % a != 0 {
            self.pos += 1;
        }
        if self.pos > self.buf.len() {
            return proto("message truncated");
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.pos + n > self.buf.len() {
            return proto("message truncated");
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32> {
        self.align(4)?;
        let big = self.big_endian;
        let b: [u8; 4] = self.take(4)?.try_into().unwrap_or_default();
        Ok(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn u64(&mut self) -> Result<u64> {
        self.align(8)?;
        let big = self.big_endian;
        let b: [u8; 8] = self.take(8)?.try_into().unwrap_or_default();
        Ok(if big {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    fn text(&mut self, len: usize) -> Result<String> {
        let bytes = self.take(len + 1)?;
        String::from_utf8(bytes[..len].to_vec())
            .map_err(|_| BusError::Protocol("a string is not UTF-8".into()))
    }

    /// Read one value of the complete type `sig`.
    fn get(&mut self, sig: &str) -> Result<Value> {
        Ok(match sig.as_bytes()[0] {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => Value::Bool(self.u32()? != 0),
            b'n' | b'q' => {
                self.align(2)?;
                let b: [u8; 2] = self.take(2)?.try_into().unwrap_or_default();
                let v = if self.big_endian {
                    u16::from_be_bytes(b)
                } else {
                    u16::from_le_bytes(b)
                };
                Value::U32(u32::from(v))
            }
            b'i' => Value::I32(self.u32()? as i32),
            b'u' | b'h' => Value::U32(self.u32()?),
            b'x' => Value::I64(self.u64()? as i64),
            b't' | b'd' => Value::U64(self.u64()?),
            b's' => {
                let n = self.u32()? as usize;
                Value::Str(self.text(n)?)
            }
            b'o' => {
                let n = self.u32()? as usize;
                Value::Path(self.text(n)?)
            }
            b'g' => {
                let n = usize::from(self.take(1)?[0]);
                Value::Sig(self.text(n)?)
            }
            b'v' => {
                let n = usize::from(self.take(1)?[0]);
                let inner = self.text(n)?;
                let (one, rest) = split_type(&inner)?;
                if !rest.is_empty() {
                    return proto(format!("variant signature `{inner}` is not one type"));
                }
                Value::Variant(Box::new(self.get(one)?))
            }
            b'a' => {
                let el = &sig[1..];
                let len = self.u32()? as usize;
                self.align(align_of(el.as_bytes()[0]))?;
                let end = self.pos + len;
                if end > self.buf.len() {
                    return proto("array truncated");
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.get(el)?);
                }
                Value::Array(el.to_string(), items)
            }
            b'(' => {
                self.align(8)?;
                let mut inner = &sig[1..sig.len() - 1];
                let mut vs = Vec::new();
                while !inner.is_empty() {
                    let (one, rest) = split_type(inner)?;
                    vs.push(self.get(one)?);
                    inner = rest;
                }
                Value::Struct(vs)
            }
            b'{' => {
                self.align(8)?;
                let (k, v) = split_type(&sig[1..sig.len() - 1])?;
                let key = self.get(k)?;
                let val = self.get(v)?;
                Value::DictEntry(Box::new(key), Box::new(val))
            }
            c => return proto(format!("unknown type `{}` in a signature", c as char)),
        })
    }

    /// Read the values of a whole signature.
    fn get_all(&mut self, mut sig: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        while !sig.is_empty() {
            let (one, rest) = split_type(sig)?;
            out.push(self.get(one)?);
            sig = rest;
        }
        Ok(out)
    }
}

pub(super) const METHOD_CALL: u8 = 1;
pub(super) const METHOD_RETURN: u8 = 2;
pub(super) const ERROR: u8 = 3;
pub(super) const SIGNAL: u8 = 4;

/// A message read from the bus.
#[derive(Debug, Default)]
pub struct Message {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub body: Vec<Value>,
}

/// A method call to marshal.
pub struct Call<'a> {
    pub destination: &'a str,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
    pub args: Vec<Value>,
}

pub(super) fn marshal(c: &Call<'_>, serial: u32) -> Vec<u8> {
    let mut body = Writer::default();
    let mut sig = String::new();
    for a in &c.args {
        body.put(a);
        sig.push_str(&a.signature());
    }
    let field =
        |code: u8, v: Value| Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))]);
    let mut fields = vec![
        field(1, Value::Path(c.path.into())),
        field(2, Value::str(c.interface)),
        field(3, Value::str(c.member)),
        field(6, Value::str(c.destination)),
    ];
    if !sig.is_empty() {
        fields.push(field(8, Value::Sig(sig)));
    }
    let mut m = Writer::default();
    m.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    m.u32(body.buf.len() as u32);
    m.u32(serial);
    m.put(&Value::Array("(yv)".into(), fields));
    m.pad(8);
    m.buf.extend_from_slice(&body.buf);
    m.buf
}

/// The largest message hutch reads (the protocol allows 128 MiB; systemd's
/// answers to hutch are a few hundred bytes).
pub(super) const MAX_MESSAGE: usize = 16 << 20;

pub(super) fn parse(head: &[u8; 16], rest: &[u8]) -> Result<Message> {
    let big_endian = match head[0] {
        b'l' => false,
        b'B' => true,
        _ => return proto("bad byte order in a message"),
    };
    let mut r = Reader {
        buf: &head[12..16],
        pos: 0,
        base: 12,
        big_endian,
    };
    let fields_len = r.u32()? as usize;
    let mut r = Reader {
        buf: rest,
        pos: 0,
        base: 16,
        big_endian,
    };
    let fields_end = fields_len;
    let mut m = Message {
        kind: head[1],
        ..Message::default()
    };
    let mut signature = String::new();
    while r.pos < fields_end {
        let Value::Struct(f) = r.get("(yv)")? else {
            return proto("bad header field");
        };
        let (Some(Value::Byte(code)), Some(v)) = (f.first(), f.get(1)) else {
            return proto("bad header field");
        };
        let v = v.unwrap_variant();
        let s = v.as_str().map(str::to_string);
        match code {
            1 => m.path = s,
            2 => m.interface = s,
            3 => m.member = s,
            4 => m.error_name = s,
            5 => m.reply_serial = v.as_u64().map(|x| x as u32),
            8 => signature = s.unwrap_or_default(),
            _ => {}
        }
    }
    r.align(8)?;
    let mut body = Reader {
        buf: &rest[r.pos..],
        pos: 0,
        base: 0,
        big_endian,
    };
    m.body = body.get_all(&signature)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: Value) {
        let mut w = Writer::default();
        w.put(&v);
        let sig = v.signature();
        let mut r = Reader {
            buf: &w.buf,
            pos: 0,
            base: 0,
            big_endian: false,
        };
        assert_eq!(r.get_all(&sig).unwrap(), vec![v]);
        assert_eq!(r.pos, w.buf.len());
    }

    #[test]
    fn values_roundtrip() {
        roundtrip(Value::Str("hutch-a.scope".into()));
        roundtrip(Value::Array(
            "(sv)".into(),
            vec![
                Value::property("Delegate", Value::Bool(true)),
                Value::property("PIDs", Value::Array("u".into(), vec![Value::U32(42)])),
                Value::property("MemoryMax", Value::U64(1 << 30)),
                Value::property(
                    "AllowedCPUs",
                    Value::Array("y".into(), vec![Value::Byte(3)]),
                ),
            ],
        ));
        roundtrip(Value::Array("(sa(sv))".into(), vec![]));
        roundtrip(Value::Array(
            "{sv}".into(),
            vec![Value::DictEntry(
                Box::new(Value::str("a")),
                Box::new(Value::Variant(Box::new(Value::I64(-1)))),
            )],
        ));
    }

    #[test]
    fn layout_matches_the_specification() {
        // A u32 then a u64: the u64 starts at offset 8; an empty array of
        // structs still pads to the struct alignment.
        let mut w = Writer::default();
        w.put(&Value::U32(1));
        w.put(&Value::U64(2));
        assert_eq!(w.buf.len(), 16);
        assert_eq!(&w.buf[8..16], &2u64.to_le_bytes());
        let mut w = Writer::default();
        w.put(&Value::Array("(sv)".into(), vec![]));
        assert_eq!(w.buf, [0, 0, 0, 0, 0, 0, 0, 0]);
        // A string: length, bytes, NUL.
        let mut w = Writer::default();
        w.put(&Value::str("ab"));
        assert_eq!(w.buf, [2, 0, 0, 0, b'a', b'b', 0]);
    }

    #[test]
    fn a_marshalled_call_parses_back() {
        let call = Call {
            destination: "org.freedesktop.systemd1",
            path: "/org/freedesktop/systemd1",
            interface: "org.freedesktop.systemd1.Manager",
            member: "StartTransientUnit",
            args: vec![
                Value::str("x.scope"),
                Value::str("fail"),
                Value::Array(
                    "(sv)".into(),
                    vec![Value::property("Delegate", Value::Bool(true))],
                ),
                Value::Array("(sa(sv))".into(), vec![]),
            ],
        };
        let bytes = marshal(&call, 7);
        assert_eq!(bytes.len() % 8, 0);
        let head: [u8; 16] = bytes[..16].try_into().unwrap();
        let m = parse(&head, &bytes[16..]).unwrap();
        assert_eq!(m.kind, METHOD_CALL);
        assert_eq!(m.member.as_deref(), Some("StartTransientUnit"));
        assert_eq!(m.path.as_deref(), Some("/org/freedesktop/systemd1"));
        assert_eq!(m.body, call.args);
    }

    #[test]
    fn signatures_split() {
        assert_eq!(split_type("a(sv)s").unwrap(), ("a(sv)", "s"));
        assert_eq!(split_type("a{sv}").unwrap(), ("a{sv}", ""));
        assert_eq!(split_type("(sa(sv))u").unwrap(), ("(sa(sv))", "u"));
        assert!(split_type("(s").is_err());
    }
}
