//! Messages between hutch and the container process it forked, over a
//! `SOCK_SEQPACKET` unix socket (one message per packet, EOF when the other
//! side is gone).
//!
//! The container process's end is close-on-exec, so a successful `execve`
//! shows up on hutch's side as EOF: that is how `start` knows the program
//! runs. A failure arrives as an `Error` message naming the step.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

/// One message.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// create → container: the id maps are written; go on.
    MapsWritten,
    /// container → create: create-time setup is done.
    Ready,
    /// create → container: the state is recorded; wait for start (until
    /// then, losing `create` means the container process exits).
    Recorded,
    /// start → container: run the start path.
    Go,
    /// container → start: this connection is the one that starts it.
    Accepted,
    /// container → create: the `/dev/fuse` fd of a SquashFS root comes
    /// with this message (see [`recv_with_fd`]).
    Fd,
    /// container → hutch: a step failed; the text says which.
    Error(String),
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        match self {
            Msg::MapsWritten => vec![b'M'],
            Msg::Ready => vec![b'R'],
            Msg::Recorded => vec![b'C'],
            Msg::Go => vec![b'G'],
            Msg::Accepted => vec![b'A'],
            Msg::Fd => vec![b'F'],
            Msg::Error(text) => {
                let mut v = vec![b'E'];
                v.extend_from_slice(text.as_bytes());
                v
            }
        }
    }

    fn decode(buf: &[u8]) -> Option<Msg> {
        let (tag, rest) = buf.split_first()?;
        Some(match tag {
            b'M' => Msg::MapsWritten,
            b'R' => Msg::Ready,
            b'C' => Msg::Recorded,
            b'G' => Msg::Go,
            b'A' => Msg::Accepted,
            b'F' => Msg::Fd,
            b'E' => Msg::Error(String::from_utf8_lossy(rest).into_owned()),
            _ => return None,
        })
    }
}

/// A connected pair of close-on-exec seqpacket sockets.
pub fn pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// Send one message.
pub fn send(fd: BorrowedFd<'_>, msg: &Msg) -> nix::Result<()> {
    let bytes = msg.encode();
    let mut bytes = &bytes[..];
    // An error text longer than a packet is cut, not split.
    bytes = &bytes[..bytes.len().min(4096)];
    loop {
        match socket::send(fd.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Send one message with `fd` attached (`SCM_RIGHTS`): the container
/// process hands `create` the pty master of its terminal with `Ready`.
pub fn send_with_fd(sock: BorrowedFd<'_>, msg: &Msg, fd: BorrowedFd<'_>) -> nix::Result<()> {
    let bytes = msg.encode();
    let fds = [fd.as_raw_fd()];
    let cmsg = [socket::ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(&bytes)];
    loop {
        match socket::sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Receive one message and the fd attached to it, if any; `Ok(None)` at
/// EOF. Received fds are close-on-exec.
pub fn recv_with_fd(fd: BorrowedFd<'_>) -> nix::Result<Option<(Msg, Option<OwnedFd>)>> {
    let mut buf = [0u8; 4096];
    loop {
        match crate::sys::recv_with_fd(fd, &mut buf) {
            Ok((0, _)) => return Ok(None),
            Ok((n, received)) => return Ok(Msg::decode(&buf[..n]).map(|m| (m, received))),
            Err(Errno::EINTR) => continue,
            Err(Errno::ECONNRESET) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Receive one message; `Ok(None)` at EOF (the other side exited or exec'd).
pub fn recv(fd: BorrowedFd<'_>) -> nix::Result<Option<Msg>> {
    let mut buf = [0u8; 4096];
    loop {
        match socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => return Ok(None),
            Ok(n) => return Ok(Msg::decode(&buf[..n])),
            Err(Errno::EINTR) => continue,
            Err(Errno::ECONNRESET) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// True when the other end of the connection `fd` is closed.
pub fn peer_gone(fd: BorrowedFd<'_>) -> bool {
    // POLLHUP is reported whatever is asked for.
    let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::empty())];
    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.contains(nix::poll::PollFlags::POLLHUP)),
        Err(_) => false,
    }
}

/// A close-on-exec seqpacket socket, not yet bound or connected.
fn seqpacket() -> nix::Result<OwnedFd> {
    socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
}

/// Make a listening seqpacket socket at `path` (a short path, see
/// `Entry::short_path`).
pub fn listen(path: &std::path::Path) -> nix::Result<OwnedFd> {
    let fd = seqpacket()?;
    socket::bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    socket::listen(&fd, socket::Backlog::new(4)?)?;
    Ok(fd)
}

/// Accept one connection.
pub fn accept(listener: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    loop {
        match socket::accept4(listener, SockFlag::SOCK_CLOEXEC) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Connect to the listening socket at `path`.
pub fn connect(path: &std::path::Path) -> nix::Result<OwnedFd> {
    let fd = seqpacket()?;
    socket::connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}

/// Connect a stream socket to the caller's `--console-socket`.
pub fn connect_console(path: &std::path::Path) -> nix::Result<OwnedFd> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    socket::connect(fd.as_raw_fd(), &addr)?;
    Ok(fd)
}

/// Send `fd` over the console socket with `SCM_RIGHTS`, with the JSON
/// payload runc-compatible callers log.
pub fn send_fd(sock: BorrowedFd<'_>, fd: impl AsFd, payload: &str) -> nix::Result<()> {
    let fds = [fd.as_fd().as_raw_fd()];
    let cmsg = [socket::ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(payload.as_bytes())];
    socket::sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().unwrap();
        for m in [
            Msg::MapsWritten,
            Msg::Ready,
            Msg::Go,
            Msg::Accepted,
            Msg::Error("mount `/x`: denied".into()),
        ] {
            send(a.as_fd(), &m).unwrap();
            assert_eq!(recv(b.as_fd()).unwrap(), Some(m));
        }
        drop(a);
        assert_eq!(recv(b.as_fd()).unwrap(), None);
    }
}
