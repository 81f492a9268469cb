//! The OCI operations, one public function each. They check the state
//! first (`Status::can_*`), then act, and leave no state entry and no
//! process behind when they fail.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cgroup;
use crate::error::{Error, Result};
use crate::fault;
use crate::hooks;
use crate::spec::Host;
use crate::squashfs;
use crate::state::{self, check_id, Entry, Record, StateRoot, Status, CTL_SOCKET};
use crate::sync::{self, Msg};
use crate::sys::{self};

mod create;

pub use create::create;
pub(crate) use create::{join_keyring, setgroups_allowed_here};
use create::{spawn, Spawned};

/// Options every operation shares.
pub struct Globals {
    /// The state directory.
    pub root: PathBuf,
    pub host: Host,
    /// `--cgroup-manager disabled`: make and join no cgroup.
    pub cgroups_disabled: bool,
    /// `--systemd-cgroup`: the cgroup is a scope systemd makes.
    pub systemd_cgroup: bool,
}

/// Options of `create` (and `run`).
#[derive(Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// `--no-new-keyring`: the container keeps the caller's session keyring.
    pub no_new_keyring: bool,
    /// The program dies with this hutch (`run` without `--detach`).
    pub die_with_parent: bool,
}

/// `start`: release the waiting process; return once the program runs.
pub fn start(g: &Globals, id: &str) -> Result<()> {
    let entry = open_acting(g, id)?;
    let (record, status) = entry.status()?;
    if !status.can_start() {
        return Err(Error::WrongState {
            id: id.to_string(),
            op: "start",
            status: status.as_str(),
        });
    }
    release(&entry, &record)?;
    poststart(&record)
}

/// Run the poststart hooks. From runtime-spec 1.3 a failing one stops the
/// container and fails `start`; before, it is a warning.
fn poststart(record: &Record) -> Result<()> {
    let state = record.oci_state(Status::Running);
    let fatal = !["1.0.", "1.1.", "1.2."]
        .iter()
        .any(|v| record.oci_version.starts_with(v));
    if !fatal {
        hooks::run_all_warning("poststart", &record.poststart, &state);
        return Ok(());
    }
    hooks::run_all("poststart", &record.poststart, &state).inspect_err(|_| {
        let _ = stop(record, None);
    })
}

/// Run the poststop hooks; a failure is a warning and the rest still run,
/// as the spec says.
fn poststop(record: &Record) {
    hooks::run_all_warning(
        "poststop",
        &record.poststop,
        &record.oci_state(Status::Stopped),
    );
}

/// Tell the waiting process to go on, and return once the program runs.
/// When its start path fails, return only after the process is gone, so a
/// `delete` right after the failed `start` finds it stopped, not running.
fn release(entry: &Entry, record: &Record) -> Result<()> {
    let not_created = || Error::WrongState {
        id: entry.id.clone(),
        op: "start",
        status: "not created",
    };
    let pidfd = open_verified(record).ok_or_else(not_created)?;
    let failed = |text: String| {
        let _ = wait_exit(pidfd.as_fd(), Duration::from_secs(10));
        Err(Error::Container(text))
    };
    let conn = match sync::connect(&entry.short_path(CTL_SOCKET)) {
        Ok(c) => c,
        Err(Errno::ENOENT | Errno::ECONNREFUSED) => return Err(not_created()),
        Err(e) => return Err(Error::sys("connect to", entry.path.join(CTL_SOCKET), e)),
    };
    fault::point("start:connected");
    sync::send(conn.as_fd(), &Msg::Go).map_err(|_| not_created())?;
    fault::point("start:released");
    match sync::recv(conn.as_fd()) {
        Ok(Some(Msg::Accepted)) => {}
        _ => return Err(not_created()),
    }
    match sync::recv(conn.as_fd()) {
        Ok(None) => Ok(()),
        Ok(Some(Msg::Error(text))) => failed(text),
        Ok(Some(other)) => failed(format!(
            "unexpected message {other:?} from the container process"
        )),
        Err(e) => Err(Error::call("wait for the container process", e)),
    }
}

/// Open an existing container's entry to act on it, as its owner when
/// root acts on another user's entry (see `Entry::assume_owner`). Every
/// operation that signals or changes a container goes through here.
pub(crate) fn open_acting(g: &Globals, id: &str) -> Result<Entry> {
    let entry = StateRoot::open(&g.root)?.entry(id)?;
    entry.assume_owner()?;
    Ok(entry)
}

/// `state`: the OCI state document.
pub fn state(g: &Globals, id: &str) -> Result<serde_json::Value> {
    let root = StateRoot::open(&g.root)?;
    let entry = root.entry(id)?;
    let (record, status) = entry.status()?;
    Ok(record.oci_state(status))
}

/// `kill`: send `signal` to the container process (to every process of
/// the container with `all`).
pub fn kill(g: &Globals, id: &str, signal: Signal, all: bool) -> Result<()> {
    let entry = open_acting(g, id)?;
    let (record, status) = entry.status()?;
    if !status.can_kill() {
        return Err(Error::WrongState {
            id: id.to_string(),
            op: "kill",
            status: status.as_str(),
        });
    }
    let pidfd = match open_verified(&record) {
        Some(fd) => fd,
        None => {
            return Err(Error::WrongState {
                id: id.to_string(),
                op: "kill",
                status: "stopped",
            })
        }
    };
    let sent = if all {
        signal_all(&record, pidfd.as_fd(), signal)
    } else {
        sys::pidfd_send_signal(pidfd.as_fd(), signal)
    };
    match sent {
        Ok(()) | Err(Errno::ESRCH) if all => Ok(()),
        Ok(()) => Ok(()),
        Err(Errno::ESRCH) => Err(Error::WrongState {
            id: id.to_string(),
            op: "kill",
            status: "stopped",
        }),
        Err(e) => Err(Error::call(format!("send {signal} to container `{id}`"), e)),
    }
}

/// A pidfd for the recorded process, or `None` if it is gone or the pid now
/// names another process. The start time is checked after the pidfd is
/// open, so the pidfd cannot refer to a stranger.
fn open_verified(record: &Record) -> Option<OwnedFd> {
    let fd = sys::pidfd_open(record.pid).ok()?;
    state::is_alive(record).then_some(fd)
}

/// The processes of the container besides its own process: those in its
/// pid namespace, or (without one of its own) those in its mount
/// namespace. Never any of hutch's own namespace.
pub(crate) fn members(record: &Record) -> Vec<Pid> {
    let ns_of = |pid: &str, kind: &str| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok();
    let me = record.pid.as_raw().to_string();
    let kind = if ns_of(&me, "pid") != ns_of("self", "pid") {
        "pid"
    } else {
        "mnt"
    };
    let Some(target) = ns_of(&me, kind) else {
        return Vec::new();
    };
    if ns_of("self", kind).as_ref() == Some(&target) {
        return Vec::new();
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            pid != record.pid.as_raw() && ns_of(&pid.to_string(), kind).as_ref() == Some(&target)
        })
        .map(Pid::from_raw)
        .collect()
}

/// Signal the container's process, then every other process of the
/// container. The others are found through the container process's
/// namespaces, which go with it: they are listed before it is signalled.
/// The result is that of signalling the container's process.
fn signal_all(
    record: &Record,
    pidfd: std::os::fd::BorrowedFd<'_>,
    signal: Signal,
) -> std::result::Result<(), Errno> {
    let others = members(record);
    let sent = sys::pidfd_send_signal(pidfd, signal);
    for pid in others {
        if let Ok(fd) = sys::pidfd_open(pid) {
            let _ = sys::pidfd_send_signal(fd.as_fd(), signal);
        }
    }
    sent
}

/// `delete`: remove a stopped container; with `force`, kill a created or
/// running one first, and succeed for an id that does not exist. What dead
/// creates left goes too, whatever the outcome: with unique ids (Slurm,
/// CI) nobody else would ever name it.
pub fn delete(g: &Globals, id: &str, force: bool) -> Result<()> {
    let deleted = delete_one(g, id, force);
    if let Ok(root) = StateRoot::open(&g.root) {
        root.collect_dead();
    }
    deleted
}

fn delete_one(g: &Globals, id: &str, force: bool) -> Result<()> {
    check_id(id)?;
    let mut entry = match open_acting(g, id) {
        Ok(e) => e,
        Err(Error::NotFound { .. }) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    if entry.is_creating() && !force {
        return Err(Error::WrongState {
            id: id.to_string(),
            op: "delete",
            status: "creating",
        });
    }
    let (record, status) = match entry.status() {
        Ok(rs) => rs,
        // No record: a create under way (with --force). It ends soon:
        // then the container exists, or its create removed the entry.
        Err(Error::NotFound { .. }) => {
            if !entry.lock_within(Duration::from_secs(10))? {
                return Err(Error::WrongState {
                    id: id.to_string(),
                    op: "delete",
                    status: "creating",
                });
            }
            match entry.status() {
                Ok(rs) => rs,
                Err(Error::NotFound { .. }) => {
                    entry.remove();
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        // A record that cannot be read (its owner can write anything
        // there): --force still removes the entry, and its cgroup.
        Err(e) if force => {
            tracing::warn!("{e}; removing the entry");
            entry.lock_wait()?;
            entry.remove();
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if !status.can_delete() && !force {
        return Err(Error::WrongState {
            id: id.to_string(),
            op: "delete",
            status: status.as_str(),
        });
    }
    if status != Status::Stopped {
        stop(&record, Some(&entry))?;
    }
    server_gone(&record);
    fault::point("delete:stopped");
    entry.lock_wait()?;
    entry.remove();
    poststop(&record);
    Ok(())
}

/// Once the container is gone, wait (briefly) for the server of its
/// SquashFS root, which ends when the container's mount namespace does.
fn server_gone(record: &Record) {
    if let Some((pid, start_time)) = record.server {
        squashfs::wait_gone(pid, start_time, Duration::from_secs(3));
    }
}

/// SIGKILL the container and wait (up to 10 s) until its process is gone.
/// A paused container's cgroup (from `entry`) is thawed after the signal:
/// a task frozen by the cgroup v1 freezer dies only once thawed.
fn stop(record: &Record, entry: Option<&Entry>) -> Result<()> {
    let Some(pidfd) = open_verified(record) else {
        return Ok(());
    };
    match signal_all(record, pidfd.as_fd(), Signal::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => return Err(Error::call(format!("kill container `{}`", record.id), e)),
    }
    let frozen = entry
        .and_then(Entry::load_cgroup)
        .and_then(|r| cgroup::reopen(&r).ok())
        .filter(|cg| cg.is_frozen().unwrap_or(false));
    if let Some(cg) = frozen {
        cg.thaw()?;
    }
    wait_exit(pidfd.as_fd(), Duration::from_secs(10))
        .map_err(|e| Error::call(format!("wait for container `{}` to die", record.id), e))
}

/// Wait (up to `limit`) until the process of `pidfd` has exited; ETIMEDOUT
/// when it has not.
fn wait_exit(pidfd: BorrowedFd<'_>, limit: Duration) -> std::result::Result<(), Errno> {
    let deadline = Instant::now() + limit;
    loop {
        let mut fds = [nix::poll::PollFd::new(pidfd, nix::poll::PollFlags::POLLIN)];
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Errno::ETIMEDOUT);
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(n) if n > 0 => return Ok(()),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// `run`: create, start, wait; returns the program's exit status (128+N
/// for a signal N), forwarding the signals hutch receives meanwhile. The
/// state entry goes when the program exits, unless `keep`.
pub fn run(g: &Globals, id: &str, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    // Block the signals to forward before the container process exists, so
    // none is lost; the container process unblocks them before execve.
    let forwarded = forwarded_signals();
    let mut blocked = forwarded;
    blocked.add(Signal::SIGCHLD);
    if !detach {
        blocked
            .thread_block()
            .map_err(|e| Error::call("block signals", e))?;
    }
    let Spawned { entry, record } = spawn(g, id, opts)?;
    if let Err(e) = release(&entry, &record).and_then(|()| poststart(&record)) {
        let _ = nix::sys::signal::kill(record.pid, Signal::SIGKILL);
        let _ = waitpid(record.pid, None);
        server_gone(&record);
        entry.remove();
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let status = wait_forwarding(record.pid, &blocked);
    server_gone(&record);
    if !keep {
        entry.remove();
        poststop(&record);
    }
    status
}

/// The signals `run` and `exec` pass on to the program they wait for.
pub(crate) fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCONT,
        Signal::SIGALRM,
    ] {
        set.add(s);
    }
    set
}

/// Wait for our child `pid`, passing on the (blocked) signals that arrive;
/// its exit status, or 128+N for a signal N.
pub(crate) fn wait_forwarding(pid: Pid, blocked: &SigSet) -> Result<i32> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::call("wait for the container", e)),
        }
        match blocked.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(sig) => {
                let _ = nix::sys::signal::kill(pid, sig);
            }
            Err(e) => return Err(Error::call("wait for signals", e)),
        }
    }
}

/// One line of `list`.
pub struct Listed {
    pub record: Record,
    pub status: Status,
}

/// `list`: every container in the state directory (what dead creates left
/// is collected first).
pub fn list(g: &Globals) -> Result<Vec<Listed>> {
    let root = StateRoot::open(&g.root)?;
    root.collect_dead();
    let mut out = Vec::new();
    for id in root.ids()? {
        match root.entry(&id).and_then(|entry| entry.status()) {
            Ok((record, status)) => out.push(Listed { record, status }),
            // Gone meanwhile, being created, or not hutch's.
            Err(Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }
    Ok(out)
}
