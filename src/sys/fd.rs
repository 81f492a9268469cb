//! File descriptors: pidfds, close_range, fds passed over sockets, ptys
//! and terminals, fchownat with raw ids.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// `pidfd_open(pid, 0)`: a handle on the process that stays valid (and keeps
/// naming the same process) even after the pid is reused.
pub fn pidfd_open(pid: Pid) -> nix::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    let fd = Errno::result(ret)? as RawFd;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: Signal) -> nix::Result<()> {
    // SAFETY: the siginfo pointer is NULL, which the call allows.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// `close_range(first, ~0U, CLOSE_RANGE_CLOEXEC)`: mark every fd from `first`
/// up close-on-exec, so none of them reaches the container program.
pub fn cloexec_from(first: u32) -> nix::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    Errno::result(ret).map(drop)
}

/// Take ownership of an fd this process holds by number, placed there on
/// purpose (a forked server's fds, put in place with dup2 before the rest
/// was closed): `None` if it is not open.
pub fn take_fd(fd: RawFd) -> Option<OwnedFd> {
    if !fd_is_open(fd) {
        return None;
    }
    // SAFETY: the fd is open, and by the caller's contract nothing else in
    // the process owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `close_range(first, ~0U, 0)`: close every fd from `first` up.
pub fn close_from(first: u32) -> nix::Result<()> {
    // SAFETY: plain integer arguments; the caller owns no fd from `first`
    // up that it uses afterwards.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
    Errno::result(ret).map(drop)
}

/// `close_range` over every fd from `first` up except `keep`.
pub fn close_from_except(first: u32, keep: RawFd) -> nix::Result<()> {
    let keep = keep as u32;
    if keep < first {
        return close_from(first);
    }
    // SAFETY: plain integer arguments; the caller uses none of these fds
    // afterwards.
    if keep > first {
        let ret = unsafe { libc::syscall(libc::SYS_close_range, first, keep - 1, 0) };
        Errno::result(ret)?;
    }
    close_from(keep + 1)
}

/// True if `fd` is open.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on any integer is harmless.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// `recvmsg(sock, buf, MSG_CMSG_CLOEXEC)` with room for one `SCM_RIGHTS`
/// fd: the bytes received and the fd, if one came (any more are closed).
pub fn recv_with_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> nix::Result<(usize, Option<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut received = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for raw in fds {
                // SAFETY: the kernel just installed this fd in this process
                // for us; nothing else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                received.get_or_insert(owned);
            }
        }
    }
    Ok((msg.bytes, received))
}

/// `recvmsg` of one fd sent with `SCM_RIGHTS` (close-on-exec); `None` at
/// EOF or when the message carries no fd.
pub fn recv_fd(sock: BorrowedFd<'_>) -> nix::Result<Option<OwnedFd>> {
    let mut buf = [0u8; 64];
    recv_with_fd(sock, &mut buf).map(|(_, fd)| fd)
}

/// `pidfd_getfd(pidfd, fd, 0)`: a copy of another process's fd
/// (close-on-exec).
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: RawFd) -> nix::Result<OwnedFd> {
    // SAFETY: integer arguments; the result is a new fd we own.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    let fd = Errno::result(ret)?;
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `fchownat(dirfd, path, uid, gid, flags)` with raw ids (`u32::MAX`
/// leaves one unchanged) and any `AT_*` flags (nix has no `AT_EMPTY_PATH`
/// here).
pub fn fchownat(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    uid: u32,
    gid: u32,
    flags: i32,
) -> nix::Result<()> {
    // SAFETY: `path` is a valid C string alive across the call.
    let ret = unsafe { libc::fchownat(dirfd.as_raw_fd(), path.as_ptr(), uid, gid, flags) };
    Errno::result(ret).map(drop)
}

/// `dup2(old, new)`: make fd `new` (not close-on-exec) a copy of `old`,
/// for a child about to exec (the server of a SquashFS root). When both
/// are the same fd, its close-on-exec flag is cleared instead.
pub fn dup_to(old: RawFd, new: RawFd) -> nix::Result<()> {
    if old == new {
        // SAFETY: F_SETFD with an integer argument.
        return Errno::result(unsafe { libc::fcntl(old, libc::F_SETFD, 0) }).map(drop);
    }
    // SAFETY: plain integer arguments; `new` is replaced, which the caller
    // (a child about to exec) intends.
    Errno::result(unsafe { libc::dup2(old, new) }).map(drop)
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, min)`: a close-on-exec copy of `fd` numbered
/// `min` or above (clear of the fds a child is about to `dup_to`).
pub fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> nix::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC with an integer argument.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    let new = Errno::result(ret)?;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// `ioctl(fd, TIOCSCTTY, 0)`: make the terminal `fd` the controlling terminal
/// of this (session leader) process.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(ret).map(drop)
}

/// `ioctl(fd, TIOCSWINSZ, {rows, cols})`.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> nix::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `size` outlives the call and has the type TIOCSWINSZ expects.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ,
            &size as *const libc::winsize,
        )
    };
    Errno::result(ret).map(drop)
}

/// `posix_openpt(O_RDWR | O_NOCTTY)`, `grantpt`, `unlockpt`: a new pty from
/// this mount namespace's `/dev/ptmx`; its master (close-on-exec) and the
/// slave's path.
pub fn open_pty() -> nix::Result<(OwnedFd, std::path::PathBuf)> {
    use nix::pty::{grantpt, posix_openpt, unlockpt};
    let master = posix_openpt(nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: `buf` is writable for its whole length, which is passed.
    let ret = unsafe { libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if ret != 0 {
        return Err(Errno::from_raw(ret));
    }
    // SAFETY: ptsname_r wrote a NUL-terminated string into `buf`.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    let path = std::path::PathBuf::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name.to_bytes()),
    );
    // SAFETY: `master` owns the fd; we take it over.
    let fd = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) };
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    Ok((fd, path))
}

/// `openat(devpts, "ptmx")`, `ioctl(TIOCSPTLCK, 0)` and
/// `ioctl(TIOCGPTPEER)`: a new pty of the devpts instance `devpts` (its
/// root directory, or a detached mount of it), as (master, slave). The
/// slave is opened through the master, without a path.
pub fn open_pty_in(devpts: BorrowedFd<'_>) -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    let master = nix::fcntl::openat(
        devpts,
        "ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer, which is valid.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    Errno::result(ret)?;
    let flags = (libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) as libc::c_ulong;
    // SAFETY: TIOCGPTPEER takes the open flags by value and returns a new fd.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let slave = Errno::result(ret)?;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}
