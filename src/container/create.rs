//! `create`: validate the config into a plan, claim the id, clone the
//! container process into its namespaces (and cgroup), write its maps,
//! hand its terminal to the console socket, and leave it waiting for
//! `start`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;

use crate::cgroup;
use crate::error::{Error, Result};
use crate::fault;
use crate::hooks;
use crate::init::{self, InitArgs};
use crate::ns::{self, idmap};
use crate::spec::{self, Plan, UserNs};
use crate::squashfs;
use crate::state::{self, check_id, Entry, Record, StateRoot, Status, CTL_SOCKET};
use crate::sync::{self, Msg};
use crate::sys::{self, Forked};

use super::{CreateOptions, Globals};

/// A container whose process exists and waits for `start`.
pub(super) struct Spawned {
    pub(super) entry: Entry,
    pub(super) record: Record,
}

/// `create`: validate, record, and fork the container process, which waits.
pub fn create(g: &Globals, id: &str, opts: &CreateOptions) -> Result<()> {
    spawn(g, id, opts).map(drop)
}

pub(super) fn spawn(g: &Globals, id: &str, opts: &CreateOptions) -> Result<Spawned> {
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
    // Real root without a user namespace may mount an image with the
    // kernel's squashfs; anyone else goes through FUSE and a server.
    let real_root = g.host.euid == 0
        && g.host.initial_userns
        && matches!(plan.userns, UserNs::Inherit)
        && Path::new("/dev/loop-control").exists();
    let server = plan
        .root_image
        .as_deref()
        .map(|image| squashfs::check_plan(&plan, image, real_root))
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
    if let Some(serve) = server {
        plan.rootfs = entry.path.join(state::ROOT_MOUNT);
        plan.root_server = Some(serve);
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
        let fuse_server = plan
            .root_server
            .as_ref()
            .filter(|s| **s != squashfs::Serve::Kernel);
        if let (Some(image), Some(how)) = (&plan.root_image, fuse_server) {
            server = Some(serve_image(parent_sock.as_fd(), how, image)?);
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
fn serve_image(
    sock: BorrowedFd<'_>,
    how: &squashfs::Serve,
    image: &Path,
) -> Result<squashfs::Server> {
    match sync::recv_with_fd(sock) {
        Ok(Some((Msg::Fd, Some(fuse)))) => squashfs::start_server(how, image, fuse),
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
