//! The root emulation supervisor: a fork of the container process, made
//! before any filter goes in, that answers the filter's notifications until
//! no process is left under the filter (its listener then reports POLLHUP).
//!
//! It is single-threaded, holds no fd but its listener, its socket, and
//! `/dev/null` on stdio, is not dumpable (the program cannot ptrace it or
//! open its memory), sits in its own process group (a terminal's ^C is
//! for the program) and ignores the signals that ask a process to end
//! (a job manager or a shutdown that signals every process of the
//! container would otherwise take it away from the program's last id
//! calls; it ends with the last process under the filter, and SIGKILL
//! still works). Until the container process execs (its end of the
//! socket closes then), the calls it hears are hutch's own setup: they run
//! as they are.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::poll::{PollFd, PollFlags};
use nix::sys::stat::Mode;
use nix::sys::uio::RemoteIoVec;
use nix::unistd::Pid;

use super::ids::{Four, Ids, Kind, SetId, UNCHANGED};
use super::Single;
use crate::sys;

/// Run the supervisor; never returns.
pub fn run(sock: OwnedFd, mapped: Single) -> ! {
    let code = match serve(sock, mapped) {
        Ok(()) => 0,
        Err(_) => 1,
    };
    sys::exit_now(code)
}

/// One known process (thread): what it believes, and when it started (a
/// reused pid is not the same process).
struct Entry {
    ids: Ids,
    start: u64,
}

struct Supervisor {
    mapped: Single,
    /// Threads whose identity differs from, or once differed from, the real one.
    known: HashMap<u32, Entry>,
    /// Our own root, to come back to after answering from a chroot.
    root: OwnedFd,
    root_id: (u64, u64),
    handled: u64,
}

fn serve(sock: OwnedFd, mapped: Single) -> nix::Result<()> {
    sys::close_from_except(3, sock.as_raw_fd())?;
    if let Ok(null) = nix::fcntl::open("/dev/null", OFlag::O_RDWR, Mode::empty()) {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    {
        use nix::sys::signal::Signal::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
        sys::ignore_signals(&[SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2]);
    }
    // /proc/self/mem belongs to root while the process is not dumpable
    // (exec's process is not): dumpable for that write, not after it.
    // The supervisor is a fork of hutch, whose arguments name host paths
    // (the bundle, the state directory); the container's `ps` would show them.
    sys::set_command_line(b"hutch-rootemu", c"hutch-rootemu");

    let Some(listener) = sys::recv_fd(sock.as_fd())? else {
        return Ok(());
    };
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let st = nix::sys::stat::fstat(&root)?;
    let mut s = Supervisor {
        mapped,
        known: HashMap::new(),
        root,
        root_id: (st.st_dev, st.st_ino),
        handled: 0,
    };
    let mut armed = false;
    loop {
        let mut fds = vec![PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        if !armed {
            fds.push(PollFd::new(sock.as_fd(), PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            r => r?,
        };
        let ev = |i: usize| fds[i].revents().unwrap_or(PollFlags::empty());
        let (lev, sev) = (ev(0), if armed { PollFlags::empty() } else { ev(1) });
        if !sev.is_empty() {
            // The container process closed its end: it exec'd (or died).
            armed = true;
        }
        if lev.contains(PollFlags::POLLIN) {
            let Ok(req) = ScmpNotifReq::receive(listener.as_raw_fd()) else {
                continue;
            };
            if !armed {
                armed = sock_closed(sock.as_fd());
            }
            let resp = if armed {
                s.answer(&req)
            } else {
                Answer::Continue
            };
            let resp = match resp {
                Answer::Value(v) => ScmpNotifResp::new_val(req.id, v, ScmpNotifRespFlags::empty()),
                Answer::Errno(e) => {
                    ScmpNotifResp::new_error(req.id, -e, ScmpNotifRespFlags::empty())
                }
                Answer::Continue => {
                    ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::empty())
                }
            };
            // The caller may be gone (killed meanwhile): nothing to answer.
            let _ = resp.respond(listener.as_raw_fd());
            s.handled += 1;
            if s.handled % 512 == 0 {
                s.prune();
            }
        } else if lev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
            // No process is left under the filter.
            return Ok(());
        }
    }
}

/// True once the container process's end of the socket is closed.
fn sock_closed(sock: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(sock, PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0)
}

enum Answer {
    Value(i64),
    Errno(i32),
    /// Let the kernel run the call as it is.
    Continue,
}

fn result(r: std::result::Result<i64, i32>) -> Answer {
    match r {
        Ok(v) => Answer::Value(v),
        Err(e) => Answer::Errno(e),
    }
}

/// What `/proc/PID/status` says about a thread.
struct Status {
    tgid: u32,
    ppid: u32,
    uid: Four,
    gid: Four,
    cap_eff: u64,
}

fn status(tid: u32) -> Option<Status> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
    };
    let num = |name: &str| field(name)?.first()?.parse::<u32>().ok();
    let four = |name: &str| {
        let v: Vec<u32> = field(name)?.iter().filter_map(|w| w.parse().ok()).collect();
        (v.len() == 4).then(|| Four {
            real: v[0],
            effective: v[1],
            saved: v[2],
            fs: v[3],
        })
    };
    Some(Status {
        tgid: num("Tgid:")?,
        ppid: num("PPid:")?,
        uid: four("Uid:")?,
        gid: four("Gid:")?,
        cap_eff: u64::from_str_radix(field("CapEff:")?.first()?, 16).ok()?,
    })
}

/// The start time of a thread (`/proc/PID/stat` field 22).
fn start_time(tid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

impl Supervisor {
    fn answer(&mut self, req: &ScmpNotifReq) -> Answer {
        let a = req.data.args;
        let arg32 = |i: usize| a[i] as u32;
        let tid = req.pid;
        let nr = i64::from(req.data.syscall.as_raw_syscall());
        use Kind::{Group, User};
        let set = match nr {
            libc::SYS_setuid => Some(SetId::Set(User, arg32(0))),
            libc::SYS_setgid => Some(SetId::Set(Group, arg32(0))),
            libc::SYS_setreuid => Some(SetId::SetRe(User, arg32(0), arg32(1))),
            libc::SYS_setregid => Some(SetId::SetRe(Group, arg32(0), arg32(1))),
            libc::SYS_setresuid => Some(SetId::SetRes(User, arg32(0), arg32(1), arg32(2))),
            libc::SYS_setresgid => Some(SetId::SetRes(Group, arg32(0), arg32(1), arg32(2))),
            libc::SYS_setfsuid => Some(SetId::SetFs(User, arg32(0))),
            libc::SYS_setfsgid => Some(SetId::SetFs(Group, arg32(0))),
            libc::SYS_setgroups => {
                let n = a[0] as i32;
                if !(0..=super::ids::NGROUPS_MAX as i32).contains(&n) {
                    return Answer::Errno(libc::EINVAL);
                }
                match read_ids(tid, a[1], n as usize) {
                    Ok(list) => Some(SetId::Groups(list)),
                    Err(e) => return Answer::Errno(e),
                }
            }
            _ => None,
        };
        if let Some(call) = set {
            return self.set_ids(tid, &call);
        }
        match nr {
            libc::SYS_getuid => self.get(tid, |i| i64::from(i.uid.real)),
            libc::SYS_geteuid => self.get(tid, |i| i64::from(i.uid.effective)),
            libc::SYS_getgid => self.get(tid, |i| i64::from(i.gid.real)),
            libc::SYS_getegid => self.get(tid, |i| i64::from(i.gid.effective)),
            libc::SYS_getresuid | libc::SYS_getresgid => {
                let Some(ids) = self.believed(tid) else {
                    return Answer::Continue;
                };
                let f = if nr == libc::SYS_getresuid {
                    ids.uid
                } else {
                    ids.gid
                };
                for (addr, v) in a[..3].iter().zip([f.real, f.effective, f.saved]) {
                    if let Err(e) = write_mem(tid, *addr, &v.to_ne_bytes()) {
                        return Answer::Errno(e);
                    }
                }
                Answer::Value(0)
            }
            libc::SYS_getgroups => {
                let Some(list) = self.believed(tid).and_then(|i| i.groups) else {
                    return Answer::Continue;
                };
                let size = a[0] as i32;
                if size < 0 {
                    return Answer::Errno(libc::EINVAL);
                }
                if size == 0 {
                    return Answer::Value(list.len() as i64);
                }
                if (size as usize) < list.len() {
                    return Answer::Errno(libc::EINVAL);
                }
                let bytes: Vec<u8> = list.iter().flat_map(|g| g.to_ne_bytes()).collect();
                match write_mem(tid, a[1], &bytes) {
                    Ok(()) => Answer::Value(list.len() as i64),
                    Err(e) => Answer::Errno(e),
                }
            }
            libc::SYS_chown => self.chown(tid, libc::AT_FDCWD, a[0], arg32(1), arg32(2), 0),
            libc::SYS_lchown => self.chown(
                tid,
                libc::AT_FDCWD,
                a[0],
                arg32(1),
                arg32(2),
                libc::AT_SYMLINK_NOFOLLOW,
            ),
            libc::SYS_fchownat => {
                self.chown(tid, a[0] as i32, a[1], arg32(2), arg32(3), a[4] as i32)
            }
            libc::SYS_fchown => self.fchown(tid, a[0] as i32, arg32(1), arg32(2)),
            libc::SYS_mknod => self.mknod(tid, libc::AT_FDCWD, a[0]),
            libc::SYS_mknodat => self.mknod(tid, a[0] as i32, a[1]),
            _ => Answer::Continue,
        }
    }

    /// What `tid` believes, `None` while it is what it really is. An
    /// unknown thread believes what its thread group leader, else its
    /// nearest known ancestor, believes.
    fn believed(&mut self, tid: u32) -> Option<Ids> {
        if self.known.is_empty() {
            return None;
        }
        if let Some(e) = self.known.get(&tid) {
            return Some(e.ids.clone());
        }
        let mut cur = tid;
        for _ in 0..64 {
            let st = status(cur)?;
            let up = if st.tgid != cur { st.tgid } else { st.ppid };
            if up == 0 {
                return None;
            }
            let found = self
                .known
                .get(&up)
                .filter(|e| start_time(up) == Some(e.start))
                .map(|e| e.ids.clone());
            if let Some(ids) = found {
                if let Some(start) = start_time(tid) {
                    self.known.insert(
                        tid,
                        Entry {
                            ids: ids.clone(),
                            start,
                        },
                    );
                }
                return Some(ids);
            }
            cur = up;
        }
        None
    }

    fn get(&mut self, tid: u32, f: impl Fn(&Ids) -> i64) -> Answer {
        match self.believed(tid) {
            Some(ids) => Answer::Value(f(&ids)),
            None => Answer::Continue,
        }
    }

    fn set_ids(&mut self, tid: u32, call: &SetId) -> Answer {
        let Some(st) = status(tid) else {
            return Answer::Errno(libc::ESRCH);
        };
        let mut ids = self.believed(tid).unwrap_or(Ids {
            uid: st.uid,
            gid: st.gid,
            groups: None,
        });
        // CAP_SETUID is bit 7, CAP_SETGID bit 6.
        let cap = |bit: u32| st.cap_eff & (1 << bit) != 0;
        let out = ids.apply(call, cap(7), cap(6));
        if out.is_ok() {
            if let Some(start) = start_time(tid) {
                self.known.insert(tid, Entry { ids, start });
            }
        }
        result(out)
    }

    /// An id the namespace maps goes through; any other is left as it is.
    fn through(&self, uid: u32, gid: u32) -> (u32, u32) {
        let keep = |id: u32, mapped: u32| if id == mapped { id } else { UNCHANGED };
        (keep(uid, self.mapped.uid), keep(gid, self.mapped.gid))
    }

    /// May `tid` give files away: CAP_CHOWN really held, and root as far
    /// as it knows (not after an emulated switch to another user).
    fn may_chown(&mut self, tid: u32) -> bool {
        let believed_root = self.believed(tid).is_none_or(|i| i.uid.effective == 0);
        // CAP_CHOWN is bit 0.
        believed_root && status(tid).is_some_and(|st| st.cap_eff & 1 != 0)
    }

    fn fchown(&mut self, tid: u32, fd: RawFd, uid: u32, gid: u32) -> Answer {
        let theirs = match their_fd(tid, fd) {
            Ok(f) => f,
            Err(e) => return Answer::Errno(e),
        };
        if !self.may_chown(tid) {
            return Answer::Errno(libc::EPERM);
        }
        let (u, g) = self.through(uid, gid);
        let r = nix::unistd::fchown(
            &theirs,
            (u != UNCHANGED).then(|| nix::unistd::Uid::from_raw(u)),
            (g != UNCHANGED).then(|| nix::unistd::Gid::from_raw(g)),
        );
        result(r.map(|()| 0).map_err(|e| e as i32))
    }

    fn chown(&mut self, tid: u32, dirfd: i32, path: u64, uid: u32, gid: u32, flags: i32) -> Answer {
        let (dir, path) = match self.resolve_args(tid, dirfd, path) {
            Ok(v) => v,
            Err(e) => return Answer::Errno(e),
        };
        if !self.may_chown(tid) {
            // The kernel's lookup errors first, then EPERM.
            let at = AtFlags::from_bits_truncate(flags);
            let r = self.in_root_of(tid, || {
                nix::sys::stat::fstatat(dir.as_fd(), path.as_c_str(), at)
            });
            return Answer::Errno(r.err().map_or(libc::EPERM, |e| e as i32));
        }
        let (u, g) = self.through(uid, gid);
        let r = self.in_root_of(tid, || sys::fchownat(dir.as_fd(), &path, u, g, flags));
        result(r.map(|()| 0).map_err(|e| e as i32))
    }

    /// A device is not made: the answer is what the kernel would check
    /// before its permission check, else success.
    fn mknod(&mut self, tid: u32, dirfd: i32, path: u64) -> Answer {
        let (dir, path) = match self.resolve_args(tid, dirfd, path) {
            Ok(v) => v,
            Err(e) => return Answer::Errno(e),
        };
        let r = self.in_root_of(tid, || check_new_name(dir.as_fd(), &path));
        result(r.map(|()| 0).map_err(|e| e as i32))
    }

    /// The directory a path argument starts from (a copy of the caller's
    /// fd, or its working directory) and the path, read from its memory.
    fn resolve_args(
        &self,
        tid: u32,
        dirfd: i32,
        path: u64,
    ) -> std::result::Result<(OwnedFd, CString), i32> {
        let path = read_path(tid, path)?;
        let dir = if dirfd == libc::AT_FDCWD {
            nix::fcntl::open(
                format!("/proc/{tid}/cwd").as_str(),
                OFlag::O_PATH | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| e as i32)?
        } else {
            their_fd(tid, dirfd)?
        };
        Ok((dir, path))
    }

    /// Run `f` with the caller's root as ours when it differs (a chroot
    /// inside the container), and come back.
    fn in_root_of<T>(&self, tid: u32, f: impl FnOnce() -> T) -> T {
        let theirs = nix::fcntl::open(
            format!("/proc/{tid}/root").as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        let other = theirs.as_ref().ok().filter(|r| {
            nix::sys::stat::fstat(r).is_ok_and(|st| (st.st_dev, st.st_ino) != self.root_id)
        });
        let Some(r) = other else { return f() };
        if nix::unistd::fchdir(r)
            .and_then(|()| nix::unistd::chroot("."))
            .is_err()
        {
            return f();
        }
        let out = f();
        let _ = nix::unistd::fchdir(&self.root).and_then(|()| nix::unistd::chroot("."));
        out
    }

    /// Forget threads that are gone.
    fn prune(&mut self) {
        self.known
            .retain(|tid, e| start_time(*tid) == Some(e.start));
    }
}

/// A copy of the caller's fd `fd`: EBADF when it has none.
fn their_fd(tid: u32, fd: RawFd) -> std::result::Result<OwnedFd, i32> {
    if fd < 0 {
        return Err(libc::EBADF);
    }
    let pidfd = match sys::pidfd_open(Pid::from_raw(tid as i32)) {
        Ok(p) => p,
        // A thread other than the leader: its process's fd table.
        Err(Errno::EINVAL) => {
            let tgid = status(tid).ok_or(libc::ESRCH)?.tgid;
            sys::pidfd_open(Pid::from_raw(tgid as i32)).map_err(|e| e as i32)?
        }
        Err(e) => return Err(e as i32),
    };
    sys::pidfd_getfd(pidfd.as_fd(), fd).map_err(|e| e as i32)
}

/// mknod's checks of the new name: it must not exist (EEXIST), its parent
/// must be a directory (ENOENT, ENOTDIR) on a writable file system (EROFS).
fn check_new_name(dir: BorrowedFd<'_>, path: &CString) -> nix::Result<()> {
    let bytes = path.as_bytes();
    if bytes.is_empty() {
        return Err(Errno::ENOENT);
    }
    match nix::sys::stat::fstatat(dir, path.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(_) => return Err(Errno::EEXIST),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let trimmed = {
        let mut b = bytes;
        while b.len() > 1 && b.ends_with(b"/") {
            b = &b[..b.len() - 1];
        }
        b
    };
    let parent: &[u8] = match trimmed.iter().rposition(|&c| c == b'/') {
        Some(0) => b"/",
        Some(i) => &trimmed[..i],
        None => b".",
    };
    let parent = CString::new(parent).map_err(|_| Errno::EINVAL)?;
    let pfd = nix::fcntl::openat(
        dir,
        parent.as_c_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let vfs = nix::sys::statvfs::fstatvfs(&pfd)?;
    if vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Err(Errno::EROFS);
    }
    Ok(())
}

/// Read a NUL-terminated path from the caller's memory, a page at a time
/// (EFAULT as the kernel gives it; ENAMETOOLONG past PATH_MAX).
fn read_path(tid: u32, addr: u64) -> std::result::Result<CString, i32> {
    const PAGE: u64 = 4096;
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < libc::PATH_MAX as usize {
        let len = (PAGE - at % PAGE) as usize;
        let mut buf = vec![0u8; len];
        read_mem(tid, at, &mut buf)?;
        if let Some(end) = buf.iter().position(|&c| c == 0) {
            out.extend_from_slice(&buf[..end]);
            return CString::new(out).map_err(|_| libc::EINVAL);
        }
        out.extend_from_slice(&buf);
        at += len as u64;
    }
    Err(libc::ENAMETOOLONG)
}

fn read_ids(tid: u32, addr: u64, n: usize) -> std::result::Result<Vec<u32>, i32> {
    let mut buf = vec![0u8; n * 4];
    if n > 0 {
        read_mem(tid, addr, &mut buf)?;
    }
    Ok(buf
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn read_mem(tid: u32, addr: u64, buf: &mut [u8]) -> std::result::Result<(), i32> {
    let len = buf.len();
    let remote = [RemoteIoVec {
        base: addr as usize,
        len,
    }];
    let mut local = [std::io::IoSliceMut::new(buf)];
    match nix::sys::uio::process_vm_readv(Pid::from_raw(tid as i32), &mut local, &remote) {
        Ok(n) if n == len => Ok(()),
        Ok(_) | Err(Errno::EFAULT) => Err(libc::EFAULT),
        Err(e) => Err(e as i32),
    }
}

fn write_mem(tid: u32, addr: u64, bytes: &[u8]) -> std::result::Result<(), i32> {
    let remote = [RemoteIoVec {
        base: addr as usize,
        len: bytes.len(),
    }];
    let local = [std::io::IoSlice::new(bytes)];
    match nix::sys::uio::process_vm_writev(Pid::from_raw(tid as i32), &local, &remote) {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(_) | Err(Errno::EFAULT) => Err(libc::EFAULT),
        Err(e) => Err(e as i32),
    }
}
