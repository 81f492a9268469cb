//! The only module with `unsafe`: thin wrappers over the system calls that
//! `nix` does not cover, or covers in a form that does not fit (a `clone` that
//! behaves like `fork`, the new mount API, pidfds, `close_range`).
//!
//! Each wrapper does one system call, says which in its first doc line, and
//! returns `nix::Result`. Callers add the context (which step, which path).
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Which side of a [`clone_process`] we are on.
pub enum Forked {
    /// The new process.
    Child,
    /// The caller; holds the new process's pid.
    Parent(Pid),
}

/// `clone(flags | SIGCHLD, NULL, ...)`: a `fork` that can also create
/// namespaces (a pid namespace can only be entered by a new process).
///
/// The child runs on a copy of the caller's stack, as after `fork`. The caller
/// must be single-threaded (hutch always is), so no lock can be held by a
/// thread that does not exist in the child.
pub fn clone_process(flags: CloneFlags) -> nix::Result<Forked> {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: a NULL stack makes clone(2) behave as fork(2): the child gets a
    // copy-on-write copy of the address space. No pointers are passed.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match Errno::result(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as libc::pid_t))),
    }
}

/// `clone3({flags, exit_signal: SIGCHLD, cgroup, flags: CLONE_INTO_CGROUP})`:
/// as [`clone_process`], and the child starts in the cgroup v2 directory
/// `cgroup` (Linux 5.7). Unlike a later write of its pid to
/// `cgroup.procs`, this takes no RCU grace period (about 10 ms).
pub fn clone_process_into(flags: CloneFlags, cgroup: BorrowedFd<'_>) -> nix::Result<Forked> {
    /// The kernel's `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.as_raw_fd() as u64,
    };
    // SAFETY: `args` is a valid clone_args of the size passed, alive across
    // the call. A zero stack makes the child run on a copy of the caller's
    // stack, as after fork(2) (see clone_process).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as libc::pid_t))),
    }
}

/// `_exit(code)`: leave at once, without running destructors or atexit
/// handlers that belong to the parent's copy of the process.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Mount attributes for [`mount_setattr`] (`MOUNT_ATTR_*`).
pub mod attr {
    pub const RDONLY: u64 = 0x0000_0001;
    pub const NOSUID: u64 = 0x0000_0002;
    pub const NODEV: u64 = 0x0000_0004;
    pub const NOEXEC: u64 = 0x0000_0008;
    pub const ATIME_MASK: u64 = 0x0000_0070;
    pub const RELATIME: u64 = 0x0000_0000;
    pub const NOATIME: u64 = 0x0000_0010;
    pub const STRICTATIME: u64 = 0x0000_0020;
    pub const NODIRATIME: u64 = 0x0000_0080;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
    pub const IDMAP: u64 = 0x0010_0000;
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], attr)`: change the
/// flags of the mount `fd` is the root of, leaving the others (including those
/// the kernel locks in a user namespace) as they are. `propagation` is one of
/// `MS_SHARED`, `MS_SLAVE`, `MS_PRIVATE`, `MS_UNBINDABLE`, or 0.
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    propagation: u64,
) -> nix::Result<()> {
    setattr(
        fd,
        recursive,
        &MountAttr {
            attr_set: set,
            attr_clr: clear,
            propagation,
            userns_fd: 0,
        },
    )
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], {IDMAP, userns})`:
/// make the detached mount `fd` (and with `recursive` the mounts under it)
/// an idmapped mount with the id maps of the user namespace `userns`.
pub fn mount_setattr_idmap(
    fd: BorrowedFd<'_>,
    recursive: bool,
    userns: BorrowedFd<'_>,
) -> nix::Result<()> {
    // The user namespace fd is borrowed: it stays open across the call.
    setattr(
        fd,
        recursive,
        &MountAttr {
            attr_set: attr::IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.as_raw_fd() as u64,
        },
    )
}

fn setattr(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> nix::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the path is a valid NUL-terminated empty string, `attr` lives
    // across the call and its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// `open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC [| AT_RECURSIVE])`:
/// a detached copy of the mount (tree) at `path`, to be attached with
/// [`move_mount_to_fd`].
pub fn open_tree_clone(path: &CStr, recursive: bool) -> nix::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    let fd = Errno::result(ret)? as RawFd;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fsopen(fstype, FSOPEN_CLOEXEC)`, the `fsconfig` calls that set each of
/// `options` (`key=value` or a flag `key`) and create the superblock, then
/// `fsmount(fd, FSMOUNT_CLOEXEC, attrs)`: a new, detached instance of the
/// file system `fstype` with the mount attributes `attrs` (`attr::*`), to
/// be attached with [`move_mount_to_fd`]. On error, the step that failed.
pub fn new_fs_mount(
    fstype: &CStr,
    options: &[(&CStr, Option<&CStr>)],
    attrs: u64,
) -> std::result::Result<OwnedFd, (&'static str, Errno)> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: `fstype` is NUL-terminated and outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    let fs = Errno::result(ret).map_err(|e| ("fsopen", e))? as RawFd;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    let fs = unsafe { OwnedFd::from_raw_fd(fs) };
    let config = |cmd: libc::c_uint, key: Option<&CStr>, value: Option<&CStr>| {
        let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
        // SAFETY: key and value are NUL-terminated strings that outlive the
        // call, or NULL where the command takes none; aux is 0.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                cmd,
                ptr(key),
                ptr(value),
                0 as libc::c_int,
            )
        };
        Errno::result(ret).map(drop)
    };
    for (key, value) in options {
        let cmd = if value.is_some() {
            FSCONFIG_SET_STRING
        } else {
            FSCONFIG_SET_FLAG
        };
        config(cmd, Some(key), *value).map_err(|e| ("fsconfig", e))?;
    }
    config(FSCONFIG_CMD_CREATE, None, None).map_err(|e| ("fsconfig create", e))?;
    // SAFETY: plain integer arguments on an fd we own.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    };
    let fd = Errno::result(ret).map_err(|e| ("fsmount", e))? as RawFd;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `move_mount(from, "", to, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)`:
/// attach the detached mount `from` on top of the file or directory `to`
/// refers to. Mounting onto an fd means no path is resolved a second time.
pub fn move_mount_to_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()> {
    const F_EMPTY_PATH: libc::c_uint = 0x4;
    const T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: both paths are valid empty C strings; the fds are borrowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            F_EMPTY_PATH | T_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop)
}

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

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)`: make the calling process's
/// session keyring the one called `name` of its user, made when there is
/// none (or none it may search). Returns the keyring's serial number.
pub fn join_session_keyring(name: &CStr) -> nix::Result<i32> {
    /// From `linux/keyctl.h` (the libc crate keeps it private).
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: `name` is a NUL-terminated string that outlives the call; the
    // kernel only reads it. The unused arguments are zero.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            name.as_ptr(),
            0usize,
            0usize,
            0usize,
        )
    };
    Errno::result(ret).map(|serial| serial as i32)
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

/// `ioctl(SIOCGIFFLAGS)` then `ioctl(SIOCSIFFLAGS)` on `lo`: bring the
/// loopback interface of the current network namespace up.
pub fn loopback_up() -> nix::Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: both ioctls read and write only the ifreq passed, which lives
    // across the calls.
    unsafe {
        Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req))?;
        if req.ifr_ifru.ifru_flags & libc::IFF_UP as libc::c_short != 0 {
            return Ok(());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req))?;
    }
    Ok(())
}

/// Reset every catchable signal to its default action and unblock all
/// signals, so the container program does not inherit what the caller of
/// hutch ignored or blocked.
pub fn reset_signals() {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

/// `signal(sig, SIG_IGN)` for each of `sigs`.
pub fn ignore_signals(sigs: &[Signal]) {
    for &sig in sigs {
        // SAFETY: SIG_IGN runs no code of ours in signal context.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn) };
    }
}

/// `personality(persona)`.
pub fn set_personality(persona: libc::c_ulong) -> nix::Result<()> {
    // SAFETY: plain integer argument.
    let ret = unsafe { libc::personality(persona) };
    Errno::result(ret).map(drop)
}

/// True if `fd` is open.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on any integer is harmless.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Re-execute this program from a sealed in-memory copy of itself:
/// `memfd_create`, copy `/proc/self/exe` in, seal it against every
/// change, `fexecve`. From then on `/proc/self/exe` names the copy, so a
/// container that reaches it (CVE-2019-5736) cannot rewrite the binary on
/// disk. Returns only on failure.
pub fn reexec_sealed(
    args: &[std::ffi::CString],
    env: &[std::ffi::CString],
) -> nix::Result<std::convert::Infallible> {
    // SAFETY: the name is a valid C string; the flags are plain integers.
    let fd = unsafe {
        libc::memfd_create(
            c"hutch".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    let fd = Errno::result(fd)?;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut src = std::fs::File::open("/proc/self/exe").map_err(io_errno)?;
    let mut dst = std::fs::File::from(memfd);
    std::io::copy(&mut src, &mut dst).map_err(io_errno)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS takes an integer argument.
    Errno::result(unsafe { libc::fcntl(dst.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    nix::unistd::fexecve(dst.as_fd(), args, env)
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)`, returning what the
/// kernel returns.
fn set_filter(program: &[u8], flags: u32) -> nix::Result<libc::c_long> {
    if program.is_empty() || program.len() % 8 != 0 || program.len() / 8 > u16::MAX as usize {
        return Err(Errno::EINVAL);
    }
    // The kernel wants the filters aligned as `sock_filter`s: copy them.
    let filters: Vec<libc::sock_filter> = program
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let prog = libc::sock_fprog {
        len: filters.len() as u16,
        filter: filters.as_ptr() as *mut libc::sock_filter,
    };
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    // SAFETY: `prog` points at `filters`, both alive across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    Errno::result(ret)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)`: install a compiled
/// BPF program (an array of 8-byte `sock_filter`s) on this thread.
pub fn seccomp_set_filter(program: &[u8], flags: u32) -> nix::Result<()> {
    set_filter(program, flags).map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags | SECCOMP_FILTER_FLAG_NEW_LISTENER,
/// &prog)`: as [`seccomp_set_filter`], returning the filter's user
/// notification fd (close-on-exec).
pub fn seccomp_set_filter_listener(program: &[u8], flags: u32) -> nix::Result<OwnedFd> {
    const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;
    let fd = set_filter(program, flags | SECCOMP_FILTER_FLAG_NEW_LISTENER)?;
    // SAFETY: the kernel just returned this new fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
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

/// `recvmsg` of one fd sent with `SCM_RIGHTS` (close-on-exec); `None` at
/// EOF or when the message carries no fd.
pub fn recv_fd(sock: BorrowedFd<'_>) -> nix::Result<Option<OwnedFd>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(v) = c {
            fds.extend(v);
        }
    }
    // SAFETY: SCM_RIGHTS just installed these fds in this process; each is
    // owned once here.
    let mut owned: Vec<OwnedFd> = fds
        .into_iter()
        .map(|f| unsafe { OwnedFd::from_raw_fd(f) })
        .collect();
    Ok(if owned.is_empty() {
        None
    } else {
        Some(owned.swap_remove(0))
    })
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

/// `setdomainname(name, len)`.
pub fn set_domainname(name: &str) -> nix::Result<()> {
    // SAFETY: the pointer and length describe `name`, alive across the call.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(ret).map(drop)
}

/// The kernel's `struct sched_attr` (sched_setattr(2)).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// `sched_setattr(0, attr, 0)`: this thread's scheduling policy, nice value
/// and real-time or deadline parameters.
pub fn sched_setattr(attr: &SchedAttr) -> nix::Result<()> {
    let mut a = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        ..Default::default()
    };
    a.policy = attr.policy;
    a.flags = attr.flags;
    a.nice = attr.nice;
    a.priority = attr.priority;
    a.runtime = attr.runtime;
    a.deadline = attr.deadline;
    a.period = attr.period;
    // SAFETY: `a` is a valid sched_attr whose size field says its size.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0) };
    Errno::result(ret).map(drop)
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level)`.
pub fn ioprio_set(class: u32, level: u32) -> nix::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    // SAFETY: plain integer arguments.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            (class << 13) | level,
        )
    };
    Errno::result(ret).map(drop)
}

/// `set_mempolicy(mode, nodemask, maxnode)`: this thread's NUMA memory
/// policy (`mode` with its `MPOL_F_*` flags), which children and `execve`
/// keep. An empty `nodemask` passes NULL.
pub fn set_mempolicy(mode: libc::c_int, nodemask: &[libc::c_ulong]) -> nix::Result<()> {
    let (ptr, maxnode) = if nodemask.is_empty() {
        (std::ptr::null(), 0)
    } else {
        // The kernel reads maxnode - 1 bits of the mask (libnuma passes
        // its size + 1 for that reason).
        (
            nodemask.as_ptr(),
            nodemask.len() * libc::c_ulong::BITS as usize + 1,
        )
    };
    // SAFETY: `ptr` is NULL or points at `nodemask`, alive across the call,
    // whose length in bits is maxnode - 1.
    let ret = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    Errno::result(ret).map(drop)
}

/// `bpf(BPF_PROG_LOAD)` of a `BPF_PROG_TYPE_CGROUP_DEVICE` program, each
/// instruction as its 8 bytes (`struct bpf_insn`). The verifier's log goes
/// to `log` (empty on success).
pub fn bpf_load_device_program(insns: &[[u8; 8]], log: &mut [u8]) -> nix::Result<OwnedFd> {
    /// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
    #[repr(C)]
    #[derive(Default)]
    struct Load {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
    }
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    const BPF_CGROUP_DEVICE: u32 = 6;
    let license = b"Apache-2.0\0";
    let mut name = [0u8; 16];
    name[..5].copy_from_slice(b"hutch");
    let attr = Load {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        // No log: a null buffer (an empty slice's pointer is not null).
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Load::default()
    };
    // SAFETY: `attr` and what it points to (insns, license, log) outlive
    // the call; the size passed is the struct's.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const Load,
            std::mem::size_of::<Load>() as u32,
        )
    };
    // SAFETY: on success bpf(2) returned a new fd that nothing else owns.
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `bpf(BPF_PROG_ATTACH)` of device program `prog` to the cgroup2
/// directory `cgroup` (`BPF_CGROUP_DEVICE`, `BPF_F_ALLOW_MULTI`).
pub fn bpf_attach_device_program(prog: BorrowedFd<'_>, cgroup: BorrowedFd<'_>) -> nix::Result<()> {
    #[repr(C)]
    struct Attach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
    }
    const BPF_PROG_ATTACH: libc::c_long = 8;
    const BPF_CGROUP_DEVICE: u32 = 6;
    const BPF_F_ALLOW_MULTI: u32 = 2;
    let attr = Attach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` outlives the call; the size passed is the struct's.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const Attach,
            std::mem::size_of::<Attach>() as u32,
        )
    };
    Errno::result(r).map(drop)
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

/// `ioctl(loop_control, LOOP_CTL_GET_FREE)`: the number of a free loop
/// device (made if need be).
pub fn loop_get_free(control: BorrowedFd<'_>) -> nix::Result<u32> {
    const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
    // SAFETY: LOOP_CTL_GET_FREE takes no argument.
    let ret = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
    Errno::result(ret).map(|n| n as u32)
}

/// `ioctl(loop_dev, LOOP_CONFIGURE, {fd: backing, lo_flags: READ_ONLY |
/// AUTOCLEAR})`: back the loop device with the file `backing`, read-only,
/// detached by the kernel when its last user (the mount) goes (Linux 5.8).
pub fn loop_configure(dev: BorrowedFd<'_>, backing: BorrowedFd<'_>) -> nix::Result<()> {
    const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
    const LO_FLAGS_READ_ONLY: u32 = 1;
    const LO_FLAGS_AUTOCLEAR: u32 = 4;
    /// The kernel's `struct loop_info64`.
    #[repr(C)]
    struct LoopInfo64 {
        device: u64,
        inode: u64,
        rdevice: u64,
        offset: u64,
        sizelimit: u64,
        number: u32,
        encrypt_type: u32,
        encrypt_key_size: u32,
        flags: u32,
        file_name: [u8; 64],
        crypt_name: [u8; 64],
        encrypt_key: [u8; 32],
        init: [u64; 2],
    }
    /// The kernel's `struct loop_config`.
    #[repr(C)]
    struct LoopConfig {
        fd: u32,
        block_size: u32,
        info: LoopInfo64,
        reserved: [u64; 8],
    }
    let config = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size: 0,
        info: LoopInfo64 {
            device: 0,
            inode: 0,
            rdevice: 0,
            offset: 0,
            sizelimit: 0,
            number: 0,
            encrypt_type: 0,
            encrypt_key_size: 0,
            flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
            file_name: [0; 64],
            crypt_name: [0; 64],
            encrypt_key: [0; 32],
            init: [0; 2],
        },
        reserved: [0; 8],
    };
    // SAFETY: `config` is a valid loop_config, alive across the call.
    let ret = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_CONFIGURE as _,
            &config as *const LoopConfig,
        )
    };
    Errno::result(ret).map(drop)
}
