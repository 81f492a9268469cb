//! The last steps before the container program runs: limits, identity,
//! capabilities, working directory, file descriptors, and `execve`.
//! Everything here runs inside the container's root, after `pivot_root`.

use std::convert::Infallible;
use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use caps::{CapSet, Capability};
use nix::errno::Errno;
use nix::unistd::{Gid, Uid};

use crate::error::{Error, Result};
use crate::spec::{CapSets, ProcessPlan};
use crate::sys;

/// PATH used when the config's environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Make the terminal `slave` the program's stdio and controlling terminal.
pub fn attach_terminal(slave: &OwnedFd, size: Option<(u16, u16)>) -> Result<()> {
    sys::set_controlling_terminal(slave.as_fd())
        .map_err(|e| Error::call("make the pty the controlling terminal", e))?;
    if let Some((rows, cols)) = size {
        sys::set_window_size(slave.as_fd(), rows, cols)
            .map_err(|e| Error::call("set the terminal size", e))?;
    }
    let use_as = |what: &str, r: nix::Result<()>| {
        r.map_err(|e| Error::call(format!("use the pty as {what}"), e))
    };
    use_as("stdin", nix::unistd::dup2_stdin(slave))?;
    use_as("stdout", nix::unistd::dup2_stdout(slave))?;
    use_as("stderr", nix::unistd::dup2_stderr(slave))
}

/// Set the resource limits, each both soft and hard.
pub fn set_rlimits(p: &ProcessPlan) -> Result<()> {
    for &(res, soft, hard) in &p.rlimits {
        nix::sys::resource::setrlimit(res, soft, hard)
            .map_err(|e| Error::call(format!("set rlimit {res:?} to {soft}/{hard}"), e))?;
    }
    Ok(())
}

/// Scheduling policy, I/O priority and CPU affinity, as the config asks.
pub fn set_scheduling(p: &ProcessPlan) -> Result<()> {
    if let Some(attr) = &p.scheduler {
        sys::sched_setattr(attr).map_err(|e| Error::call("set the scheduling policy", e))?;
    }
    if let Some((class, level)) = p.io_priority {
        sys::ioprio_set(class, level).map_err(|e| Error::call("set the I/O priority", e))?;
    }
    if let Some(cpus) = &p.cpu_affinity {
        let mut set = nix::sched::CpuSet::new();
        for &cpu in cpus {
            set.set(cpu)
                .map_err(|e| Error::call(format!("use CPU {cpu}"), e))?;
        }
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
            .map_err(|e| Error::call("set the CPU affinity", e))?;
    }
    Ok(())
}

/// Set the NUMA memory policy (`linux.memoryPolicy`). Children and
/// `execve` keep it. A node the host lacks is an error of the kernel's
/// (EINVAL); the message then says which nodes the host has.
pub fn set_memory_policy(policy: Option<&crate::spec::MemoryPolicy>) -> Result<()> {
    let Some(p) = policy else {
        return Ok(());
    };
    sys::set_mempolicy(p.mode, &p.nodemask).map_err(|e| {
        let online = std::fs::read_to_string("/sys/devices/system/node/online")
            .map(|s| format!(" (this host has nodes {})", s.trim()))
            .unwrap_or_default();
        Error::call(format!("set linux.memoryPolicy {}{online}", p.text), e)
    })
}

/// Write `oom_score_adj`, through a `/proc` checked to be a procfs.
pub fn set_oom_score_adj(value: i32) -> Result<()> {
    let path = Path::new("/proc/self/oom_score_adj");
    let mut f = open_procfs_file(path)?;
    f.write_all(value.to_string().as_bytes())
        .map_err(|e| Error::io("write", path, e))
}

/// Open a file under `/proc` for writing, refusing anything that is not on
/// a procfs (a `/proc` the image replaced, or a bind mount over it).
pub fn open_procfs_file(path: &Path) -> Result<std::fs::File> {
    // Non-blocking: a FIFO in an image's /proc must not hang the start.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    let st = nix::sys::statfs::fstatfs(&f).map_err(|e| Error::sys("statfs", path, e))?;
    if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(Error::sys("write (not on procfs)", path, Errno::EXDEV));
    }
    Ok(f)
}

/// The environment to run with: the config's, plus `HOME` from the
/// container's `/etc/passwd` when the config sets none (as runc does).
pub fn environment(p: &ProcessPlan) -> Vec<CString> {
    let mut env = p.env.clone();
    if !env.iter().any(|e| e.as_bytes().starts_with(b"HOME=")) {
        let home = home_of(p.uid).unwrap_or_else(|| "/".to_string());
        if let Ok(c) = CString::new(format!("HOME={home}")) {
            env.push(c);
        }
    }
    env
}

fn home_of(uid: u32) -> Option<String> {
    // The image's: it may be anything, and must not hang the start.
    let text = crate::input::read(Path::new("/etc/passwd"), crate::input::Follow::Yes).ok()?;
    let text = String::from_utf8_lossy(&text);
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 6 && f[2].parse() == Ok(uid) && !f[5].is_empty()).then(|| f[5].to_string())
    })
}

/// Switch to the container user with exactly the capabilities asked for.
///
/// The bounding set is cut first (that needs CAP_SETPCAP, which we still
/// hold), then the ids change with PR_SET_KEEPCAPS so the permitted set
/// survives a switch away from uid 0, then the sets are set exactly.
/// Ambient capabilities need to be both permitted and inheritable; those
/// that are not cannot be raised and are skipped (the kernel's rule).
pub fn become_user(p: &ProcessPlan, setgroups_allowed: bool) -> Result<()> {
    // What hutch's own bounding set lacks (or the kernel does not know)
    // cannot be granted: it is left out, with a warning.
    let held = caps::read(None, CapSet::Bounding)
        .map_err(|e| Error::call("read the bounding set", errno_of(&e)))?;
    let c = &within(&p.capabilities, &held);
    for cap in caps::all() {
        if !c.bounding.contains(&cap) && held.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                Error::call(format!("drop {cap} from the bounding set"), errno_of(&e))
            })?;
        }
    }
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| Error::call("clear ambient capabilities", errno_of(&e)))?;
    nix::sys::prctl::set_keepcaps(true)
        .map_err(|e| Error::call("keep capabilities across setuid", e))?;

    let gids: Vec<Gid> = p
        .additional_gids
        .iter()
        .map(|&g| Gid::from_raw(g))
        .collect();
    if setgroups_allowed {
        nix::unistd::setgroups(&gids).map_err(|e| {
            Error::call(format!("set additional groups {:?}", p.additional_gids), e)
        })?;
    } else if p.additional_gids.iter().any(|&g| g != p.gid) {
        tracing::warn!(
            "process.user.additionalGids {:?} ignored: the user namespace denies setgroups",
            p.additional_gids
        );
    }
    let gid = Gid::from_raw(p.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| id_error("gid", p.gid, e))?;
    let uid = Uid::from_raw(p.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| id_error("uid", p.uid, e))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| Error::call("reset keep-capabilities", e))?;

    // Leaving uid 0 emptied the effective set; take the permitted set back
    // into it for the moment, to be allowed to shape the others.
    let permitted_now = caps::read(None, CapSet::Permitted)
        .map_err(|e| Error::call("read capabilities", errno_of(&e)))?;
    caps::set(None, CapSet::Effective, &permitted_now)
        .map_err(|e| Error::call("raise capabilities", errno_of(&e)))?;

    let set = |which: CapSet, list: &[Capability], what: &str| -> Result<()> {
        let wanted: caps::CapsHashSet = list.iter().copied().collect();
        caps::set(None, which, &wanted)
            .map_err(|e| Error::call(format!("set {what} capabilities"), errno_of(&e)))
    };
    // Effective must stay within permitted at every step: shrink it first.
    set(CapSet::Inheritable, &c.inheritable, "inheritable")?;
    let effective: Vec<Capability> = c
        .effective
        .iter()
        .copied()
        .filter(|cap| c.permitted.contains(cap))
        .collect();
    if effective.len() != c.effective.len() {
        tracing::warn!("process.capabilities.effective lists capabilities that are not permitted; they are not raised");
    }
    set(CapSet::Effective, &effective, "effective")?;
    set(CapSet::Permitted, &c.permitted, "permitted")?;
    for cap in &c.ambient {
        if c.inheritable.contains(cap) && c.permitted.contains(cap) {
            caps::raise(None, CapSet::Ambient, *cap)
                .map_err(|e| Error::call(format!("raise ambient {cap}"), errno_of(&e)))?;
        }
    }
    Ok(())
}

/// `c` without the capabilities that are not in `held`, warning once about
/// those the config asked for.
fn within(c: &CapSets, held: &caps::CapsHashSet) -> CapSets {
    let mut missing: Vec<Capability> = Vec::new();
    let mut keep = |list: &[Capability]| -> Vec<Capability> {
        list.iter()
            .copied()
            .filter(|cap| {
                let ok = held.contains(cap);
                if !ok && !missing.contains(cap) {
                    missing.push(*cap);
                }
                ok
            })
            .collect()
    };
    let out = CapSets {
        bounding: keep(&c.bounding),
        effective: keep(&c.effective),
        permitted: keep(&c.permitted),
        inheritable: keep(&c.inheritable),
        ambient: keep(&c.ambient),
    };
    if !missing.is_empty() {
        missing.sort_by_key(|cap| cap.index());
        let names: Vec<String> = missing.iter().map(|cap| cap.to_string()).collect();
        tracing::warn!(
            "process.capabilities: {} not in hutch's own bounding set: left out",
            names.join(", ")
        );
    }
    out
}

/// The error of a failed switch to `id`: EINVAL means the id has no
/// mapping in the user namespace (a user without subordinate ids has only
/// its own), which the bare errno does not say.
fn id_error(kind: &str, id: u32, e: Errno) -> Error {
    if e == Errno::EINVAL {
        Error::call(
            format!("set {kind} to {id} ({kind} {id} is not mapped in the user namespace)"),
            e,
        )
    } else {
        Error::call(format!("set {kind} to {id}"), e)
    }
}

fn errno_of(e: &caps::errors::CapsError) -> Errno {
    let text = e.to_string();
    if text.contains("Operation not permitted") {
        Errno::EPERM
    } else {
        Errno::EINVAL
    }
}

/// Enter the working directory and check that it is inside the root (a
/// directory reached through a leaked fd would show as "(unreachable)").
pub fn enter_cwd(cwd: &Path) -> Result<()> {
    nix::unistd::chdir(cwd).map_err(|e| Error::sys("enter working directory", cwd, e))?;
    match nix::unistd::getcwd() {
        Ok(p) if p.as_os_str().as_bytes().starts_with(b"/") => Ok(()),
        _ => Err(Error::sys(
            "working directory is outside the root",
            cwd,
            Errno::EXDEV,
        )),
    }
}

/// `execvp` with the container's environment: `args[0]` is looked up in
/// the `PATH` of `env`, not hutch's.
pub fn exec(args: &[CString], env: &[CString]) -> Result<Infallible> {
    let prog = &args[0];
    if prog.as_bytes().contains(&b'/') {
        let e = nix::unistd::execve(prog, args, env).unwrap_err();
        return Err(exec_error(prog, e));
    }
    let path = env
        .iter()
        .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
        .map(|p| p.to_vec())
        .unwrap_or_else(|| DEFAULT_PATH.as_bytes().to_vec());
    let mut denied = false;
    for dir in path.split(|&b| b == b':') {
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let mut full = dir.to_vec();
        full.push(b'/');
        full.extend_from_slice(prog.as_bytes());
        let Ok(full) = CString::new(full) else {
            continue;
        };
        match nix::unistd::execve(&full, args, env).unwrap_err() {
            Errno::ENOENT | Errno::ENOTDIR | Errno::ESTALE | Errno::ELOOP | Errno::ENAMETOOLONG => {
            }
            Errno::EACCES => denied = true,
            e => return Err(exec_error(&full, e)),
        }
    }
    Err(exec_error(
        prog,
        if denied { Errno::EACCES } else { Errno::ENOENT },
    ))
}

fn exec_error(prog: &CStr, e: Errno) -> Error {
    let name = String::from_utf8_lossy(prog.to_bytes()).into_owned();
    match e {
        Errno::ENOENT => Error::Container(format!(
            "exec `{name}`: executable file not found in $PATH: No such file or directory"
        )),
        Errno::EACCES => Error::Container(format!("exec `{name}`: permission denied")),
        e => Error::Container(format!("exec `{name}`: {}", e.desc())),
    }
}

/// The exit status of a container process whose start path failed, by the
/// shell's conventions: 127 for a program not found, 126 for one that
/// cannot run, 1 otherwise.
pub fn failure_status(err: &Error) -> i32 {
    match err {
        Error::Container(msg) if msg.contains("not found") => 127,
        Error::Container(msg) if msg.starts_with("exec ") => 126,
        _ => 1,
    }
}

/// At `create`: look the program up in the root file system the way
/// [`exec`] will at `start`, and fail now when it is surely missing or not
/// executable.
///
/// runc and crun find the program at `create`, and podman and docker turn
/// the text of that error into exit status 127 ("executable file not
/// found") or 126 ("permission denied"); a failed `start` is only a failed
/// start to them (126). hutch mounts at `start`, so this sees the image's
/// files only, and lets `create` go on whenever a mount of the config may
/// change the answer: when a path it looks at, or where a symlink on the
/// way leads, is at or under a mount destination, or a symlink dangles.
pub fn check_program(plan: &crate::spec::Plan) -> Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let Some(prog) = plan.process.args.first().filter(|_| plan.has_process) else {
        return Ok(());
    };
    // A root that cannot be opened fails later with its own message.
    let Ok(root) = crate::mount::resolve::Root::open(&plan.rootfs) else {
        return Ok(());
    };
    let Ok(root_real) = crate::mount::resolve::fd_path(root.fd.as_fd()) else {
        return Ok(());
    };
    let look = Lookup {
        root: &root,
        root_real: &root_real,
        mounts: plan
            .mounts
            .iter()
            .flat_map(|m| mount_targets(&root, &root_real, &m.destination))
            .collect(),
    };
    let bytes = prog.as_bytes();
    let candidates: Vec<std::path::PathBuf> = if bytes.contains(&b'/') {
        vec![plan.process.cwd.join(std::ffi::OsStr::from_bytes(bytes))]
    } else {
        let path = plan
            .process
            .env
            .iter()
            .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
            .unwrap_or(DEFAULT_PATH.as_bytes());
        path.split(|&b| b == b':')
            .map(|dir| {
                let dir = if dir.is_empty() { &b"."[..] } else { dir };
                plan.process
                    .cwd
                    .join(std::ffi::OsStr::from_bytes(dir))
                    .join(std::ffi::OsStr::from_bytes(bytes))
            })
            .collect()
    };
    let mut denied = false;
    for c in &candidates {
        match look.probe(c) {
            Probe::Unknown | Probe::Runs => return Ok(()),
            Probe::Denied => denied = true,
            Probe::Missing => {}
        }
    }
    Err(exec_error(
        prog,
        if denied { Errno::EACCES } else { Errno::ENOENT },
    ))
}

enum Probe {
    Runs,
    Denied,
    Missing,
    Unknown,
}

struct Lookup<'a> {
    root: &'a crate::mount::resolve::Root,
    root_real: &'a Path,
    /// Where the config's mounts land, as paths in the container.
    mounts: Vec<std::path::PathBuf>,
}

impl Lookup<'_> {
    fn covered(&self, p: &Path) -> bool {
        self.mounts.iter().any(|m| p.starts_with(m))
    }

    /// Where `fd` is, as a path in the container.
    fn inside(&self, fd: &OwnedFd) -> Option<std::path::PathBuf> {
        let real = crate::mount::resolve::fd_path(fd.as_fd()).ok()?;
        let rel = real.strip_prefix(self.root_real).ok()?;
        Some(Path::new("/").join(rel))
    }

    /// Walk `c` one component at a time, as execve would after the mounts.
    fn probe(&self, c: &Path) -> Probe {
        use nix::fcntl::OFlag;
        use nix::sys::stat::{fstat, SFlag};
        if self.covered(c) {
            return Probe::Unknown;
        }
        let mut sofar = std::path::PathBuf::from("/");
        let mut last = None;
        for comp in c.components().skip(1) {
            sofar.push(comp);
            let fd = match self.root.open_in(&sofar, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
                Ok(fd) => fd,
                Err(Errno::ENOENT | Errno::ENOTDIR) => return Probe::Missing,
                Err(_) => return Probe::Unknown,
            };
            let Ok(st) = fstat(&fd) else {
                return Probe::Unknown;
            };
            let fd = if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
                // Where the symlink leads within the root; a dangling one
                // may lead to a mount destination made at start.
                match self.root.open_in(&sofar, OFlag::O_PATH) {
                    Ok(fd) => fd,
                    Err(_) => return Probe::Unknown,
                }
            } else {
                fd
            };
            match self.inside(&fd) {
                Some(p) if !self.covered(&p) => {}
                _ => return Probe::Unknown,
            }
            last = Some(fd);
        }
        let Some(fd) = last else {
            return Probe::Unknown;
        };
        let Ok(st) = fstat(&fd) else {
            return Probe::Unknown;
        };
        let regular = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
        if regular && st.st_mode & 0o111 != 0 {
            Probe::Runs
        } else {
            Probe::Denied
        }
    }
}

/// The paths in the container a mount at `dest` may cover: `dest` as
/// written, and where it resolves in the root (or its parent does, when it
/// is yet to be made).
fn mount_targets(
    root: &crate::mount::resolve::Root,
    root_real: &Path,
    dest: &Path,
) -> Vec<std::path::PathBuf> {
    use nix::fcntl::OFlag;
    let mut out = vec![dest.to_path_buf()];
    let inside = |fd: OwnedFd| {
        let real = crate::mount::resolve::fd_path(fd.as_fd()).ok()?;
        Some(Path::new("/").join(real.strip_prefix(root_real).ok()?))
    };
    if let Some(p) = root.open_in(dest, OFlag::O_PATH).ok().and_then(inside) {
        out.push(p);
    } else if let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) {
        if let Some(p) = root.open_in(parent, OFlag::O_PATH).ok().and_then(inside) {
            out.push(p.join(name));
        }
    }
    out
}
