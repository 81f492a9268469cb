//! The part of the D-Bus protocol the systemd cgroup driver needs, spoken
//! over the bus socket by hutch itself: no library, no thread, no helper
//! process (ARCHITECTURE.md says why, with the measurements).
//!
//! What it does: connect to a `unix:` address, authenticate with
//! `EXTERNAL` (the bus takes the uid from the socket's credentials, so it
//! also works from inside a user namespace), `Hello`, send method calls
//! and read their replies, and keep the messages that arrive meanwhile
//! for [`Bus::reply`] and [`Bus::wait_signal`]. Every read has a deadline,
//! so a bus that stops answering is an error, not a hang. The messages
//! themselves are in `wire.rs`.

mod wire;

use std::collections::VecDeque;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use wire::{marshal, parse, ERROR, MAX_MESSAGE, METHOD_RETURN, SIGNAL};
pub use wire::{Call, Message, Value};

/// What went wrong talking to the bus; the text names the step.
#[derive(Debug)]
pub enum BusError {
    /// The socket could not be reached, or broke.
    Io(String, std::io::Error),
    /// The peer did not speak D-Bus as expected.
    Protocol(String),
    /// The called method answered with a D-Bus error.
    Remote { name: String, message: String },
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::Io(step, e) => write!(f, "{step}: {e}"),
            BusError::Protocol(what) => write!(f, "{what}"),
            BusError::Remote { name, message } if message.is_empty() => write!(f, "{name}"),
            BusError::Remote { name, message } => write!(f, "{message} ({name})"),
        }
    }
}

impl BusError {
    /// The D-Bus error name of a [`BusError::Remote`].
    pub fn remote_name(&self) -> Option<&str> {
        match self {
            BusError::Remote { name, .. } => Some(name),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, BusError>;

fn proto<T>(what: impl Into<String>) -> Result<T> {
    Err(BusError::Protocol(what.into()))
}

/// A connection to a message bus.
pub struct Bus {
    stream: UnixStream,
    serial: u32,
    /// Messages read while waiting for something else.
    queue: VecDeque<Message>,
    deadline: Instant,
    /// Bytes read with the authentication's last line, not yet used.
    early: Vec<u8>,
    /// The bus's unique name for this connection (from `Hello`).
    pub unique_name: String,
}

/// The socket paths of a D-Bus address (`unix:path=…` or
/// `unix:abstract=…`, several separated by `;`), in order.
fn socket_paths(address: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for one in address.split(';') {
        let Some(params) = one.strip_prefix("unix:") else {
            continue;
        };
        for kv in params.split(',') {
            match kv.split_once('=') {
                Some(("path", p)) => out.push((false, unescape(p))),
                Some(("abstract", p)) => out.push((true, unescape(p))),
                _ => {}
            }
        }
    }
    out
}

/// D-Bus addresses escape bytes as `%xx`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn connect_one(abstract_name: bool, path: &str) -> std::io::Result<UnixStream> {
    if abstract_name {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(path.as_bytes())?;
        UnixStream::connect_addr(&addr)
    } else {
        UnixStream::connect(path)
    }
}

impl Bus {
    /// Connect to the bus at `address`, authenticate and say `Hello`.
    /// `timeout` bounds each later wait for an answer.
    pub fn connect(address: &str, timeout: Duration) -> Result<Bus> {
        let paths = socket_paths(address);
        if paths.is_empty() {
            return proto(format!(
                "bus address `{address}` has no unix socket (hutch speaks D-Bus over unix sockets only)"
            ));
        }
        let mut last = None;
        let mut stream = None;
        for (abs, p) in &paths {
            match connect_one(*abs, p) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(stream) = stream else {
            let e = last.unwrap_or_else(|| std::io::Error::other("no socket"));
            return Err(BusError::Io(
                format!("connect to the bus at `{address}`"),
                e,
            ));
        };
        let mut bus = Bus {
            stream,
            serial: 0,
            queue: VecDeque::new(),
            deadline: Instant::now() + timeout,
            early: Vec::new(),
            unique_name: String::new(),
        };
        // The whole handshake in one write, as sd-bus does: `EXTERNAL`
        // with no identity (the bus uses the socket's peer credentials,
        // so a caller in a user namespace is who the bus sees), then
        // BEGIN and `Hello`, which the bus reads once it said OK.
        let hello = bus.send_bytes_with(
            |serial| marshal(&bus_call("Hello", vec![]), serial),
            b"\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n",
        )?;
        bus.authenticate()?;
        let reply = bus.reply(hello, timeout)?;
        bus.unique_name = reply
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(bus)
    }

    /// Read the bus's answers to the handshake up to its OK; what comes
    /// after it (the start of the reply to `Hello`) is kept.
    fn authenticate(&mut self) -> Result<()> {
        let io = |e| BusError::Io("authenticate to the bus".into(), e);
        let mut got: Vec<u8> = Vec::new();
        loop {
            while let Some(end) = got.windows(2).position(|w| w == b"\r\n") {
                let text = String::from_utf8_lossy(&got[..end]).into_owned();
                got.drain(..end + 2);
                if text.starts_with("OK ") {
                    self.early = got;
                    return Ok(());
                }
                if text != "DATA" && !text.starts_with("DATA ") {
                    return proto(format!("the bus refused EXTERNAL authentication: `{text}`"));
                }
            }
            if got.len() > 512 {
                return proto("the bus sent an overlong authentication line");
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io(std::io::ErrorKind::TimedOut.into()));
            }
            self.stream.set_read_timeout(Some(left)).map_err(io)?;
            let mut b = [0u8; 256];
            match self.stream.read(&mut b) {
                Ok(0) => return proto("the bus closed the connection while authenticating"),
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(e) => return Err(io(e)),
            }
        }
    }

    fn next_serial(&mut self) -> u32 {
        self.serial += 1;
        self.serial
    }

    fn send_bytes_with(&mut self, make: impl FnOnce(u32) -> Vec<u8>, prefix: &[u8]) -> Result<u32> {
        let serial = self.next_serial();
        let mut bytes = prefix.to_vec();
        bytes.extend(make(serial));
        self.stream
            .write_all(&bytes)
            .map_err(|e| BusError::Io("write to the bus".into(), e))?;
        Ok(serial)
    }

    /// Send a method call; its serial, for [`Bus::reply`].
    pub fn send(&mut self, call: &Call<'_>) -> Result<u32> {
        self.send_bytes_with(|s| marshal(call, s), b"")
    }

    /// Call and wait for the reply's values (a D-Bus error is
    /// [`BusError::Remote`]).
    pub fn call(&mut self, call: &Call<'_>, timeout: Duration) -> Result<Vec<Value>> {
        let serial = self.send(call)?;
        self.reply(serial, timeout)
    }

    /// Wait for the reply to `serial`; other messages read meanwhile are
    /// kept (for [`Bus::reply`] and [`Bus::wait_signal`]).
    pub fn reply(&mut self, serial: u32, timeout: Duration) -> Result<Vec<Value>> {
        self.deadline = Instant::now() + timeout;
        let is_reply =
            |m: &Message| m.reply_serial == Some(serial) && matches!(m.kind, METHOD_RETURN | ERROR);
        let m = match self.queue.iter().position(is_reply) {
            Some(i) => self.queue.remove(i).unwrap_or_default(),
            None => loop {
                let m = self.read_message()?;
                if is_reply(&m) {
                    break m;
                }
                self.queue.push_back(m);
            },
        };
        if m.kind == ERROR {
            return Err(BusError::Remote {
                name: m.error_name.unwrap_or_default(),
                message: m
                    .body
                    .first()
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        Ok(m.body)
    }

    /// Wait for a signal `interface.member` for which `wanted` holds;
    /// other signals read meanwhile are dropped.
    pub fn wait_signal(
        &mut self,
        interface: &str,
        member: &str,
        timeout: Duration,
        mut wanted: impl FnMut(&[Value]) -> bool,
    ) -> Result<Vec<Value>> {
        self.deadline = Instant::now() + timeout;
        let is = |m: &Message| {
            m.kind == SIGNAL
                && m.interface.as_deref() == Some(interface)
                && m.member.as_deref() == Some(member)
        };
        if let Some(i) = self.queue.iter().position(|m| is(m) && wanted(&m.body)) {
            return Ok(self.queue.remove(i).unwrap_or_default().body);
        }
        loop {
            let m = self.read_message()?;
            if is(&m) && wanted(&m.body) {
                return Ok(m.body);
            }
        }
    }

    fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<()> {
        if !self.early.is_empty() {
            let n = buf.len().min(self.early.len());
            buf[..n].copy_from_slice(&self.early[..n]);
            self.early.drain(..n);
            buf = &mut buf[n..];
            if buf.is_empty() {
                return Ok(());
            }
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(BusError::Io(
                "wait for the bus".into(),
                std::io::ErrorKind::TimedOut.into(),
            ));
        }
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| BusError::Io("wait for the bus".into(), e))?;
        self.stream.read_exact(buf).map_err(|e| {
            let e = if e.kind() == std::io::ErrorKind::WouldBlock {
                std::io::ErrorKind::TimedOut.into()
            } else {
                e
            };
            BusError::Io("read from the bus".into(), e)
        })
    }

    fn read_message(&mut self) -> Result<Message> {
        let mut head = [0u8; 16];
        self.read_exact(&mut head)?;
        let word = |i: usize| {
            let b: [u8; 4] = head[i..i + 4].try_into().unwrap_or_default();
            if head[0] == b'B' {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let body_len = word(4) as usize;
        let fields_len = word(12) as usize;
        let total = fields_len.div_ceil(8) * 8 + body_len;
        if total > MAX_MESSAGE {
            return proto(format!("a message of {total} bytes is too large"));
        }
        let mut rest = vec![0u8; total];
        self.read_exact(&mut rest)?;
        parse(&head, &rest)
    }
}

/// A method call to `org.freedesktop.DBus` itself.
pub fn bus_call<'a>(member: &'a str, args: Vec<Value>) -> Call<'a> {
    Call {
        destination: "org.freedesktop.DBus",
        path: "/org/freedesktop/DBus",
        interface: "org.freedesktop.DBus",
        member,
        args,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            socket_paths("unix:path=/run/dbus/system_bus_socket"),
            [(false, "/run/dbus/system_bus_socket".to_string())]
        );
        assert_eq!(
            socket_paths("tcp:host=x;unix:abstract=/tmp/dbus-a%2cb,guid=1"),
            [(true, "/tmp/dbus-a,b".to_string())]
        );
        assert!(socket_paths("tcp:host=x,port=1").is_empty());
    }
}
