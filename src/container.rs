//! The OCI operations, one public function each. They check the state
//! first (`Status::can_*`), then act, and leave no state entry and no
//! process behind when they fail.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cgroup;
use crate::error::{Error, Result};
use crate::fault;
use crate::hooks;
use crate::init::{self, InitArgs};
use crate::ns::{self, idmap};
use crate::spec::{self, Host, Plan, UserNs};
use crate::squashfs;
use crate::state::{self, check_id, Entry, Record, StateRoot, Status, CTL_SOCKET};
use crate::sync::{self, Msg};
use crate::sys::{self, Forked};

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

/// A container whose process exists and waits for `start`.
struct Spawned {
    entry: Entry,
    record: Record,
}

/// `create`: validate, record, and fork the container process, which waits.
pub fn create(g: &Globals, id: &str, opts: &CreateOptions) -> Result<()> {
    spawn(g, id, opts).map(drop)
}

fn spawn(g: &Globals, id: &str, opts: &CreateOptions) -> Result<Spawned> {
    check_id(id)?;
    for fd in 3..3 + opts.preserve_fds as i32 {
        if !sys::fd_is_open(fd) {
            return Err(Error::Usage(format!(
                "--preserve-fds {}: fd {fd} is not open",
                opts.preserve_fds
            )));
        }
    }
    let (mut plan, config_text) = spec::load(&opts.bundle, g.host)?;
    crate::exe::protect(&plan, g.host)?;
    // A missing program fails `create`, as with runc and crun (podman's
    // exit statuses 127 and 126 depend on it). (Not seen in an image, which
    // is mounted later.)
    crate::process::check_program(&plan)?;
    // Real root without a user namespace mounts an image with the
    // kernel's squashfs; anyone else through FUSE and a server.
    plan.root_kernel = plan.root_image.is_some()
        && g.host.euid == 0
        && g.host.initial_userns
        && matches!(plan.userns, UserNs::Inherit)
        && Path::new("/dev/loop-control").exists();
    let server = plan
        .root_image
        .as_deref()
        .map(|image| squashfs::check_plan(&plan, image))
        .transpose()?;
    let pid_file = opts
        .pid_file
        .as_deref()
        .map(state::PidFile::prepare)
        .transpose()?;
    if plan.process.terminal && opts.console_socket.is_none() {
        return Err(Error::Usage(
            "process.terminal is set: --console-socket is required".into(),
        ));
    }
    let root = StateRoot::open(&g.root)?;
    root.collect_dead();
    let entry = root.reserve(id)?;
    fault::point("create:reserved");
    // An image is mounted by the container process on a directory of the
    // entry, which is then the root the start path works on.
    if let Some(program) = server {
        plan.rootfs = entry.path.join(state::ROOT_MOUNT);
        plan.root_server = (!plan.root_kernel).then_some(program);
        plan.root_readonly = true;
    }
    match entry
        .save_config(&config_text)
        .and_then(|()| make_root_mount(&plan, &entry))
        .and_then(|()| spawn_in(g, id, opts, &plan, &entry, pid_file.as_ref()))
    {
        Ok(record) => Ok(Spawned { entry, record }),
        Err(e) => {
            entry.remove();
            Err(e)
        }
    }
}

/// The mount point of an image root, in the entry.
fn make_root_mount(plan: &Plan, entry: &Entry) -> Result<()> {
    if plan.root_image.is_none() {
        return Ok(());
    }
    for dir in [state::ROOT_MOUNT, state::ROOT_UPPER] {
        nix::sys::stat::mkdirat(
            entry.dir(),
            dir,
            nix::sys::stat::Mode::from_bits_truncate(0o700),
        )
        .map_err(|e| Error::sys("make the image mount point", entry.path.join(dir), e))?;
    }
    Ok(())
}

/// The part of `create` that can leave things behind: on error the caller
/// removes the entry; the cgroup and the container process go here.
fn spawn_in(
    g: &Globals,
    id: &str,
    opts: &CreateOptions,
    plan: &Plan,
    entry: &Entry,
    pid_file: Option<&state::PidFile>,
) -> Result<Record> {
    // The cgroup is made from the host's view of the tree, before any
    // namespace is joined; with no cgroup in the plan nothing is read.
    let manager = if g.systemd_cgroup {
        cgroup::Manager::Systemd
    } else {
        cgroup::Manager::Cgroupfs
    };
    // With --systemd-cgroup every container gets its scope, as with runc
    // and crun (`hutch-ID.scope` without a cgroupsPath).
    let default_scope;
    let wanted = match (&plan.cgroup, manager) {
        (None, cgroup::Manager::Systemd) => {
            default_scope = cgroup::CgroupPlan::default_place();
            Some(&default_scope)
        }
        (c, _) => c.as_ref(),
    };
    let mut cgroup = match wanted {
        Some(c) if !g.cgroups_disabled => cgroup::prepare(c, id, manager)?,
        Some(_) | None => None,
    };
    let spawned = match &cgroup {
        Some(cg) => entry.save_cgroup(&cg.record()),
        None => Ok(()),
    }
    .and_then(|()| clone_container(g, id, opts, plan, entry, pid_file, cgroup.as_mut()));
    if let (Err(_), Some(cg)) = (&spawned, cgroup) {
        cg.discard();
    }
    spawned
}

/// Clone the container process and see it through create; on error it is
/// killed and reaped.
fn clone_container(
    g: &Globals,
    id: &str,
    opts: &CreateOptions,
    plan: &Plan,
    entry: &Entry,
    pid_file: Option<&state::PidFile>,
    mut cgroup: Option<&mut cgroup::Cgroup>,
) -> Result<Record> {
    let listener = sync::listen(&entry.short_path(CTL_SOCKET))
        .map_err(|e| Error::sys("listen on", entry.path.join(CTL_SOCKET), e))?;
    // Connected now, so a bad socket fails before anything is made; the
    // pty master arrives with the container process's `Ready`.
    let console = match &opts.console_socket {
        Some(path) if plan.process.terminal => Some(
            sync::connect_console(path)
                .map_err(|e| Error::sys("connect to console socket", path, e))?,
        ),
        _ => None,
    };
    let entry_dir = entry
        .dir()
        .try_clone_to_owned()
        .map_err(|e| Error::io("open", &entry.path, e))?;
    let (parent_sock, child_sock) =
        sync::pair().map_err(|e| Error::call("make a socket pair", e))?;
    // Idmapped mounts need real root over the source's file system: made
    // here, on the host side (before joining a user namespace by path,
    // which would take that away), and attached by the container process.
    let idmapped = crate::mount::idmap::prepare(plan)?;
    // A session keyring of its own, named after the container (as crun
    // names it), which the clone inherits: the caller's keys (Kerberos,
    // AFS tokens) stay out of reach. Joined in the initial user namespace,
    // where `exec` finds it by name again.
    if !opts.no_new_keyring {
        join_keyring(id)?;
    }
    ns::join_by_path(plan)?;

    let in_userns = !g.host.initial_userns || !matches!(plan.userns, UserNs::Inherit);
    let setgroups_allowed = match &plan.userns {
        UserNs::New { writer, .. } => !matches!(
            writer,
            spec::MapWriter::Direct {
                deny_setgroups: true
            }
        ),
        UserNs::Inherit | UserNs::Join(_) => setgroups_allowed_here(),
    };

    // Compiled before the clone (through the cache in the state directory,
    // which the container process cannot see once it has pivoted).
    let compiled = plan
        .seccomp
        .as_ref()
        .map(|p| crate::seccomp::compile(p, &g.root))
        .transpose()?;
    let rootemu = crate::rootemu::applies(plan)
        .map(|ids| {
            Ok::<_, Error>((
                crate::seccomp::compile_uncached(&crate::rootemu::filter(ids))?,
                ids,
            ))
        })
        .transpose()?;
    // Born in its cgroup, when it has one: it never runs outside it, and
    // makes its cgroup namespace (after the id maps) rooted there.
    let cloned = match cgroup.as_deref().and_then(cgroup::Cgroup::clone_into) {
        Some(dir) => sys::clone_process_into(ns::clone_flags(plan), dir),
        None => sys::clone_process(ns::clone_flags(plan)),
    };
    let pid = match cloned.map_err(|e| Error::call("clone the container process", e))? {
        Forked::Child => {
            drop(parent_sock);
            entry.forget_lock_in_child();
            init::run(
                plan,
                InitArgs {
                    id: id.to_string(),
                    sync: child_sock,
                    listener,
                    entry_dir,
                    terminal: console.is_some(),
                    preserve_fds: opts.preserve_fds,
                    no_pivot: opts.no_pivot,
                    in_userns,
                    setgroups_allowed,
                    die_with_parent: opts.die_with_parent,
                    seccomp: compiled,
                    rootemu,
                    idmapped,
                },
            )
        }
        Forked::Parent(pid) => pid,
    };
    drop((child_sock, listener, entry_dir, idmapped));
    fault::point("create:cloned");

    let mut server: Option<squashfs::Server> = None;
    let mut finish = || -> Result<Record> {
        // Into the cgroups the clone did not place it in (cgroup v1, a
        // systemd scope), before it runs anything: it waits for the maps,
        // and makes its cgroup namespace after them.
        if let Some(cg) = cgroup.as_deref_mut() {
            cg.start_unit(pid.as_raw(), &plan.annotations)?;
            if cg.is_systemd() {
                entry.save_cgroup(&cg.record())?;
            }
            cg.enter(pid.as_raw())?;
        }
        if let UserNs::New {
            uid_map,
            gid_map,
            writer,
        } = &plan.userns
        {
            idmap::write_maps(pid, uid_map, gid_map, *writer)?;
        }
        // Into the network namespace the clone made (root only, see spec/linux.rs).
        ns::netdev::move_devices(pid, &plan.net_devices)?;
        // From outside: the container process, once it has switched to its
        // user namespace's root, may no longer own its /proc files.
        if let Some(adj) = plan.process.oom_score_adj {
            let path = PathBuf::from(format!("/proc/{}/oom_score_adj", pid.as_raw()));
            std::fs::write(&path, adj.to_string()).map_err(|e| Error::io("write", &path, e))?;
        }
        sync::send(parent_sock.as_fd(), &Msg::MapsWritten)
            .map_err(|e| Error::call("signal the container process", e))?;
        if let (Some(image), Some(program)) = (&plan.root_image, &plan.root_server) {
            server = Some(serve_image(parent_sock.as_fd(), program, image)?);
            fault::point("create:served");
        }
        match sync::recv_with_fd(parent_sock.as_fd()) {
            Ok(Some((Msg::Ready, master))) => {
                if let Some(sock) = &console {
                    send_console(sock, master, opts, id)?;
                }
            }
            Ok(Some((Msg::Error(text), _))) => {
                // The server's own reason, when it gave up on the image.
                return Err(Error::Container(
                    match server.take().map(squashfs::Server::stop) {
                        Some(why) if !why.is_empty() => format!("{text} ({why})"),
                        _ => text,
                    },
                ));
            }
            Ok(_) => {
                return Err(Error::Container(
                    "the container process exited during create".into(),
                ))
            }
            Err(e) => return Err(Error::call("wait for the container process", e)),
        }
        fault::point("create:ready");
        let start_time = state::proc_stat(pid)
            .ok_or_else(|| Error::Container("the container process exited during create".into()))?
            .start_time;
        let record = Record {
            id: id.to_string(),
            oci_version: plan.oci_version.clone(),
            pid,
            start_time,
            bundle: plan.bundle.clone(),
            annotations: plan.annotations.clone(),
            created: state::now(),
            poststart: plan.hooks.poststart.clone(),
            poststop: plan.hooks.poststop.clone(),
            server: server
                .as_ref()
                .and_then(|s| Some((s.pid, state::proc_stat(s.pid)?.start_time))),
        };
        // prestart and createRuntime: the container exists, the program
        // does not run yet; a failure undoes the create.
        // They see the container as `created`, as the runtime-tools
        // validation suite expects (runc says `creating`).
        let created = record.oci_state(Status::Created);
        hooks::run_all("prestart", &plan.hooks.prestart, &created)?;
        hooks::run_all("createRuntime", &plan.hooks.create_runtime, &created)?;
        entry.save(&record)?;
        fault::point("create:saved");
        if let Some(f) = pid_file {
            f.write(pid)?;
        }
        sync::send(parent_sock.as_fd(), &Msg::Recorded)
            .map_err(|e| Error::call("signal the container process", e))?;
        Ok(record)
    };
    let finished = finish();
    if finished.is_err() {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }
    match (server, &finished) {
        (Some(s), Ok(_)) => drop(s.detach()),
        (Some(s), Err(_)) => drop(s.stop()),
        (None, _) => {}
    }
    finished
}

/// Take the `/dev/fuse` fd the container process mounted the image with,
/// and start the server on it.
fn serve_image(sock: BorrowedFd<'_>, program: &Path, image: &Path) -> Result<squashfs::Server> {
    match sync::recv_with_fd(sock) {
        Ok(Some((Msg::Fd, Some(fuse)))) => squashfs::start_server(program, image, fuse),
        Ok(Some((Msg::Error(text), _))) => Err(Error::Container(text)),
        Ok(_) => Err(Error::Container(
            "the container process exited during create".into(),
        )),
        Err(e) => Err(Error::call("wait for the container process", e)),
    }
}

/// Whether this process's user namespace lets `setgroups` be called (it
/// does not after an unprivileged `setgroups` = `deny`, as in buildah's
/// namespace for a user without subordinate ids).
pub(crate) fn setgroups_allowed_here() -> bool {
    std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true)
}

/// Make the session keyring called `id` this process's (and its children's).
pub(crate) fn join_keyring(id: &str) -> Result<()> {
    let name = std::ffi::CString::new(id)
        .map_err(|_| Error::Usage(format!("container id `{id}` has a NUL")))?;
    sys::join_session_keyring(&name)
        .map(drop)
        .map_err(|e| Error::call(format!("join a new session keyring `{id}`"), e))
}

/// Send the pty master the container process made to the caller's console
/// socket (the caller may accept only after `create` returns, so this does
/// not wait for it).
fn send_console(
    sock: &OwnedFd,
    master: Option<OwnedFd>,
    opts: &CreateOptions,
    id: &str,
) -> Result<()> {
    let path = opts.console_socket.as_deref().unwrap_or(Path::new(""));
    let master =
        master.ok_or_else(|| Error::Container("the container process sent no terminal".into()))?;
    let payload = serde_json::json!({"type": "terminal", "container": id}).to_string();
    sync::send_fd(sock.as_fd(), &master, &payload)
        .map_err(|e| Error::sys("send pty to console socket", path, e))
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
