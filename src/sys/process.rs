//! Processes: clone, exit, signals, personality, scheduling, the sealed
//! re-exec, the session keyring, NUMA policy, the loopback device.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

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
    // The kernel refuses F_SEAL_WRITE (EBUSY) while the copy's pages still
    // hold a passing extra reference (seen once in CI): try again shortly.
    let mut tries = 0;
    loop {
        // SAFETY: F_ADD_SEALS takes an integer argument.
        match Errno::result(unsafe { libc::fcntl(dst.as_raw_fd(), libc::F_ADD_SEALS, seals) }) {
            Err(Errno::EBUSY) if tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            r => {
                r?;
                break;
            }
        }
    }
    nix::unistd::fexecve(dst.as_fd(), args, env)
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
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

/// Show `line` (NUL-separated arguments) as this process's command line
/// and `name` as its name: a fork of hutch that lives on (root
/// emulation's supervisor, an image server) would otherwise show hutch's
/// arguments, which name host paths. The arguments are this process's own
/// memory, rewritten through `/proc/self/mem` between `arg_start` and
/// `arg_end` (`/proc/self/stat` fields 48 and 49), which needs no
/// privilege; a `line` longer than that area is cut. Best effort: without
/// a `/proc` the line stays. Leaves the process not dumpable.
pub fn set_command_line(line: &[u8], name: &std::ffi::CStr) {
    use std::os::unix::fs::FileExt;
    let _ = nix::sys::prctl::set_name(name);
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // After the command's `)` comes field 3; arg_start is field 48.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return;
    };
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let (Some(&start), Some(&end)) = (fields.get(45), fields.get(46)) else {
        return;
    };
    if end <= start {
        return;
    }
    let mut area = line.to_vec();
    area.resize((end - start) as usize, 0);
    let last = area.len() - 1;
    area[last] = 0;
    // /proc/self/mem belongs to root while the process is not dumpable
    // (exec's process is not): dumpable for that write, not after it.
    let _ = nix::sys::prctl::set_dumpable(true);
    if let Ok(mem) = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/mem")
    {
        let _ = mem.write_all_at(&area, start);
    }
    let _ = nix::sys::prctl::set_dumpable(false);
}
