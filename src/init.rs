//! The container process: what the process hutch clones does, in order.
//!
//! This is the only place that decides the order of the setup steps; the
//! steps themselves live in `ns/`, `mount/` and `process.rs`.
//!
//! The process is cloned by `create` into its new user and pid namespaces
//! (and mount, network, uts and ipc ones; into its cgroup when it has
//! one), waits there for `create` to write its id maps, makes its cgroup
//! namespace (and its terminal, whose master goes back with "ready"),
//! reports ready, and waits for `start`. The start path then
//! makes the container's mounts, `pivot_root`s,
//! sets up the process and `execve`s the program, which keeps this pid.
//! Errors go back to whoever waits (create or start) as one line of text,
//! and the process exits.

use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::unistd::{Gid, Uid};

use crate::error::{Error, Result};
use crate::hooks;
use crate::mount::console::{self, DevptsAt, Terminal};
use crate::mount::{self, dev, Deferred};
use crate::process;
use crate::seccomp;
use crate::spec::{Plan, UserNs};
use crate::state::CTL_SOCKET;
use crate::sync::{self, Msg};
use crate::sys;

/// What the container process is given besides the plan.
pub struct InitArgs {
    /// The container id (for the state hooks see).
    pub id: String,
    /// Connected to `create` until the process is ready.
    pub sync: OwnedFd,
    /// The `ctl` socket `start` connects to.
    pub listener: OwnedFd,
    /// The state entry's directory, to remove `ctl` once started.
    pub entry_dir: OwnedFd,
    /// `process.terminal` with a console socket: make the terminal at
    /// create and hand its master to `create` with `Ready`.
    pub terminal: bool,
    /// `--preserve-fds`: fds 3 to 3+N-1 reach the program.
    pub preserve_fds: u32,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// True when the container ends up in a user namespace other than the
    /// initial one (devices are then bound, not made).
    pub in_userns: bool,
    /// True when `setgroups` may be called in the container's user namespace.
    pub setgroups_allowed: bool,
    /// The seccomp filter, compiled at create.
    pub seccomp: Option<seccomp::Compiled>,
    /// Root emulation's filter and the ids it is for, when it applies.
    pub rootemu: Option<(seccomp::Compiled, crate::rootemu::Single)>,
    /// Per mount of the plan, the detached idmapped tree `create` made.
    pub idmapped: Vec<Option<OwnedFd>>,
    /// `run` without `--detach`: the program dies with the hutch that waits
    /// for it (a job scheduler that SIGKILLs it must not leave it behind).
    pub die_with_parent: bool,
}

/// Run the container process. Never returns: it execs the program or exits.
pub fn run(plan: &Plan, args: InitArgs) -> ! {
    let InitArgs {
        sync,
        listener,
        entry_dir,
        ..
    } = &args;
    // A session of its own from the start: callers (Slurm) kill the process
    // group of `create` once it returns, and that must not reach the
    // container; nor may the program push input into the caller's terminal.
    if nix::unistd::setsid().is_err() {
        sys::exit_now(1);
    }
    // create-time part: failures go back to `create`. The cgroup this
    // process was cloned into becomes the root of the cgroup namespace
    // made here (one made by the clone would be rooted at create's). The
    // memory policy is set here, not on the start path, so that a node the
    // host lacks fails `create`; the program inherits it.
    // The terminal is made here too, in the container's mount namespace:
    // the caller gets its master when `create` returns.
    let prepared = wait_for_maps(sync.as_fd())
        .and_then(|()| crate::ns::join_mount(plan))
        .and_then(|()| mount::fuse::mount_image(plan, sync.as_fd()))
        .and_then(|()| crate::ns::new_cgroup_namespace(plan))
        .and_then(|()| loopback(plan))
        .and_then(|()| process::set_memory_policy(plan.memory_policy.as_ref()))
        .and_then(|()| args.terminal.then(|| new_terminal(plan)).transpose());
    let (terminal, master) = match prepared {
        Ok(Some((t, m))) => (Some(t), Some(m)),
        Ok(None) => (None, None),
        Err(e) => {
            let _ = sync::send(sync.as_fd(), &Msg::Error(e.to_string()));
            sys::exit_now(1);
        }
    };
    let ready = match &master {
        Some(m) => sync::send_with_fd(sync.as_fd(), &Msg::Ready, m.as_fd()),
        None => sync::send(sync.as_fd(), &Msg::Ready),
    };
    drop(master);
    if ready.is_err() {
        sys::exit_now(1);
    }
    // A create that dies before recording the container must not leave
    // this process waiting for a start that cannot come.
    if !matches!(sync::recv(sync.as_fd()), Ok(Some(Msg::Recorded))) {
        sys::exit_now(1);
    }

    // Wait for `start`. A start whose connection drops before it says Go
    // is not the one: wait for the next.
    let conn = loop {
        let conn = match sync::accept(listener.as_fd()) {
            Ok(c) => c,
            Err(_) => sys::exit_now(1),
        };
        if let Ok(Some(Msg::Go)) = sync::recv(conn.as_fd()) {
            break conn;
        }
    };
    // From here the container is running: `ctl` goes, so `state` says so
    // and no second `start` can connect.
    let _ = nix::unistd::unlinkat(
        entry_dir,
        CTL_SOCKET,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    // Go released it: a `start` that dies before reading this (killed
    // right after sending Go) must not undo the start.
    let _ = sync::send(conn.as_fd(), &Msg::Accepted);
    let err = match start_path(plan, &args, terminal.as_ref(), &conn) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = sync::send(conn.as_fd(), &Msg::Error(err.to_string()));
    sys::exit_now(process::failure_status(&err));
}

/// A new network namespace gets its loopback interface up, as runc and
/// crun do: without it `podman run --network=none` has no 127.0.0.1. Done
/// at create, so that whoever configures the namespace before `start`
/// finds it as with those runtimes. The process holds every capability in
/// the user namespace that owns the new network namespace.
fn loopback(plan: &Plan) -> Result<()> {
    if plan.namespaces.net != crate::spec::NsAction::New {
        return Ok(());
    }
    sys::loopback_up().map_err(|e| Error::call("bring up the loopback interface", e))
}

/// The terminal, made as the user namespace's root where that is mapped:
/// the devpts and the pty then belong to ids the container knows.
fn new_terminal(plan: &Plan) -> Result<(Terminal, OwnedFd)> {
    if let UserNs::New {
        uid_map, gid_map, ..
    } = &plan.userns
    {
        if crate::spec::is_mapped(gid_map, 0) {
            nix::unistd::setfsgid(Gid::from_raw(0));
        }
        if crate::spec::is_mapped(uid_map, 0) {
            nix::unistd::setfsuid(Uid::from_raw(0));
        }
    }
    console::new_terminal(plan)
}

/// Wait until `create` has written the id maps (or gone away).
fn wait_for_maps(sync: std::os::fd::BorrowedFd<'_>) -> Result<()> {
    match sync::recv(sync) {
        Ok(Some(Msg::MapsWritten)) => Ok(()),
        Ok(_) => Err(Error::Container(
            "create went away before writing the id maps".into(),
        )),
        Err(e) => Err(Error::call("wait for the id maps", e)),
    }
}

/// The start path, top to bottom. Returns only on failure.
fn start_path(
    plan: &Plan,
    args: &InitArgs,
    terminal: Option<&Terminal>,
    conn: &OwnedFd,
) -> Result<Infallible> {
    if !plan.has_process {
        return Err(Error::Config(
            "process is not set: there is nothing to start".into(),
        ));
    }
    // Become root of the user namespace: files and mounts made below then
    // belong to the container's root, not to an unmapped id.
    let (zero_gid, zero_uid) = (Gid::from_raw(0), Uid::from_raw(0));
    match &plan.userns {
        UserNs::New {
            uid_map, gid_map, ..
        } => {
            if crate::spec::is_mapped(gid_map, 0) {
                nix::unistd::setresgid(zero_gid, zero_gid, zero_gid)
                    .map_err(|e| Error::call("become gid 0 in the user namespace", e))?;
            }
            if crate::spec::is_mapped(uid_map, 0) {
                nix::unistd::setresuid(zero_uid, zero_uid, zero_uid)
                    .map_err(|e| Error::call("become uid 0 in the user namespace", e))?;
            }
        }
        // A joined one's maps are its own: where 0 is not mapped (EINVAL)
        // the process keeps the ids it has.
        UserNs::Join(_) => {
            let _ = nix::unistd::setresgid(zero_gid, zero_gid, zero_gid);
            let _ = nix::unistd::setresuid(zero_uid, zero_uid, zero_uid);
        }
        _ => {}
    }
    // The time namespace: made before any process runs in it, so its
    // offsets can still be set; the program enters it at execve.
    if plan.namespaces.time == crate::spec::NsAction::New {
        crate::ns::new_time_namespace(&plan.time_offsets)?;
    }
    // In the mount namespace made (or joined) at create: cut it off from
    // the host's first (slave: nothing mounted here shows on the host).
    mount::set_root_propagation(MsFlags::MS_SLAVE | MsFlags::MS_REC)?;

    // The root, then the mounts in the order the config lists them (a
    // minimal /dev first when the config has none).
    mount::fuse::writable_top(plan)?;
    let root = mount::bind_root(&plan.rootfs)?;
    if plan.minimal_dev {
        dev::mount_minimal(
            &root,
            terminal.and_then(|t| t.devpts_for(DevptsAt::Minimal)),
        )?;
    }
    let mut deferred = Deferred::default();
    for (i, m) in plan.mounts.iter().enumerate() {
        let prepared = args
            .idmapped
            .get(i)
            .and_then(Option::as_ref)
            .or_else(|| terminal.and_then(|t| t.devpts_for(DevptsAt::Mount(i))));
        mount::apply(&root, m, prepared, &mut deferred)?;
    }
    dev::populate(&root, &plan.devices, args.in_userns)?;
    if let Some(t) = terminal {
        console::bind_console(&root, t, plan.process.uid)?;
    }
    // Sysctls go through the container's own procfs, before read-only
    // paths cover /proc/sys.
    for (key, value) in &plan.sysctl {
        write_sysctl(&root, key, value)?;
    }
    // Masks and read-only paths sit on top of the mounts they protect.
    mount::mask_paths(&root, &plan.masked_paths)?;
    mount::readonly_paths(&root, &plan.readonly_paths)?;
    // createContainer hooks see the container's mounts but still the host's
    // root (their paths are host paths).
    hooks::run_all(
        "createContainer",
        &plan.hooks.create_container,
        &hook_state(plan, &args.id),
    )?;
    // The working directory must exist before the root may turn read-only.
    root.ensure(&plan.process.cwd, mount::resolve::Kind::Dir)?;
    deferred.apply()?;
    if plan.root_readonly {
        mount::root_readonly(&root)?;
    }

    // Into the root; the host's tree is detached and out of reach.
    if args.no_pivot {
        mount::chroot_into(&root)?;
    } else {
        mount::pivot_into(&root)?;
    }
    drop(root);
    // linux.rootfsPropagation applies to the container's own root; set on
    // the host's before the pivot, `shared` would make pivot_root fail and
    // `unbindable` the bind of the root.
    mount::set_root_propagation(plan.rootfs_propagation)?;

    // startContainer hooks run in the container, paths resolved in it.
    hooks::run_all(
        "startContainer",
        &plan.hooks.start_container,
        &hook_state(plan, &args.id),
    )?;

    if let Some(name) = &plan.hostname {
        nix::unistd::sethostname(name)
            .map_err(|e| Error::call(format!("set hostname `{name}`"), e))?;
    }
    if let Some(name) = &plan.domainname {
        sys::set_domainname(name)
            .map_err(|e| Error::call(format!("set domainname `{name}`"), e))?;
    }

    // The process: its terminal, limits, identity, directory.
    if let Some(t) = terminal {
        process::attach_terminal(&t.slave, plan.process.console_size)?;
    }
    if let Some(persona) = plan.personality {
        sys::set_personality(persona).map_err(|e| Error::call("set personality", e))?;
    }
    debug_assert!(conn.as_raw_fd() >= 3);
    let armed = || -> Result<()> {
        // Changing credentials clears the parent-death signal: set it after.
        if args.die_with_parent {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(|e| Error::call("set the parent-death signal", e))?;
            // `run` may have died before the signal was armed: its end of
            // the start connection tells (as pid 1 of a namespace, getppid
            // cannot).
            if sync::peer_gone(conn.as_fd()) {
                sys::exit_now(1);
            }
        }
        Ok(())
    };
    // Our sync socket is close-on-exec: `start` sees EOF exactly when
    // execve succeeds.
    become_program(
        &plan.process,
        args.seccomp.as_ref(),
        args.rootemu.as_ref(),
        args.setgroups_allowed,
        args.preserve_fds,
        armed,
    )
}

/// The last steps before the program runs, in this order; the container's
/// program and `exec`'s go through the same. `armed` runs right after the
/// switch of identity.
pub(crate) fn become_program(
    p: &crate::spec::ProcessPlan,
    filter: Option<&seccomp::Compiled>,
    rootemu: Option<&(seccomp::Compiled, crate::rootemu::Single)>,
    setgroups_allowed: bool,
    preserve_fds: u32,
    armed: impl FnOnce() -> Result<()>,
) -> Result<Infallible> {
    process::set_rlimits(p)?;
    process::set_scheduling(p)?;
    let env = process::environment(p);
    if let Some(mask) = p.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    // A working directory only the container user may enter is entered
    // after the switch; try first while still root.
    let cwd_early = process::enter_cwd(&p.cwd);
    // Only stdio and the preserved fds reach the program. Done before any
    // filter goes in: an older profile may not allow close_range (runtime
    // tools' default profile does not), and every fd opened from here on
    // is close-on-exec anyway.
    sys::reset_signals();
    sys::cloexec_from(3 + preserve_fds)
        .map_err(|e| Error::call("close inherited file descriptors", e))?;
    if p.no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(|e| Error::call("set no_new_privs", e))?;
    }
    // Root emulation's supervisor is forked before any filter, and its
    // filter goes in first, while this process may still install one. The
    // calls this process makes until execve run as they are.
    let _armed = rootemu
        .map(|(f, ids)| crate::rootemu::start(f, *ids))
        .transpose()?;
    // Installing a filter without no_new_privs takes CAP_SYS_ADMIN, which
    // become_user may drop: then it goes in now, and the filter must allow
    // the calls that follow (as runc does). With no_new_privs it waits for
    // the last moment, so it constrains as little of hutch as possible.
    if let (Some(f), false) = (filter, p.no_new_privileges) {
        seccomp::load(f)?;
    }
    process::become_user(p, setgroups_allowed)?;
    armed()?;
    if cwd_early.is_err() {
        process::enter_cwd(&p.cwd)?;
    }
    if let (Some(f), true) = (filter, p.no_new_privileges) {
        seccomp::load(f)?;
    }
    process::exec(&p.args, &env)
}

/// Write one sysctl through the container's `/proc/sys`, resolved inside
/// the root and checked to be on a procfs.
fn write_sysctl(root: &mount::resolve::Root, key: &str, value: &str) -> Result<()> {
    let inside = Path::new("/proc/sys").join(key.replace('.', "/"));
    let fd = root
        .open_in(&inside, nix::fcntl::OFlag::O_WRONLY)
        .map_err(|e| Error::sys("open sysctl", root.display(&inside), e))?;
    let st = nix::sys::statfs::fstatfs(&fd)
        .map_err(|e| Error::sys("statfs", root.display(&inside), e))?;
    if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(Error::sys(
            "write sysctl (not on procfs)",
            root.display(&inside),
            Errno::EXDEV,
        ));
    }
    nix::unistd::write(&fd, value.as_bytes())
        .map_err(|e| Error::sys("write sysctl", root.display(&inside), e))?;
    Ok(())
}

/// The state the in-container hooks get: the pid as the container sees it.
fn hook_state(plan: &Plan, id: &str) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": plan.oci_version,
        "id": id,
        "status": "created",
        "pid": nix::unistd::getpid().as_raw(),
        "bundle": plan.bundle,
        "annotations": plan.annotations,
    })
}
