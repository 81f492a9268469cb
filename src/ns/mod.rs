//! Namespaces: which ones the container process is cloned into, joining
//! existing ones by path, and the id maps of a new user namespace.
//!
//! These are steps; the order they run in is decided by `container/create.rs`
//! (create) and `init.rs` (the start path).

pub mod idmap;
pub mod netdev;

use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sched::CloneFlags;

use crate::error::{Error, Result};
use crate::spec::{NsAction, Plan, UserNs};

/// The namespaces to create with `clone` at `create`: the user namespace
/// (everything else must belong to it) and the pid namespace (only a new
/// process can enter one, and the container process must be its pid 1),
/// then network, uts and ipc, so that a caller can configure them between
/// `create` and `start` through `/proc/PID/ns/*`, as buildah and podman
/// do. Not the cgroup namespace: `clone` would root it at the cgroup of
/// `create`, even with `CLONE_INTO_CGROUP`, so the container process makes
/// it ([`new_cgroup_namespace`]) in its own cgroup. The mount namespace is
/// new too (the container's mounts are made in it on the start path),
/// unless the config names one to join.
pub fn clone_flags(plan: &Plan) -> CloneFlags {
    let mut flags = CloneFlags::empty();
    if matches!(plan.userns, UserNs::New { .. }) {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    if plan.namespaces.mount == NsAction::New {
        flags |= CloneFlags::CLONE_NEWNS;
    }
    for (action, flag) in others(plan) {
        if *action == NsAction::New && flag != CloneFlags::CLONE_NEWCGROUP {
            flags |= flag;
        }
    }
    flags
}

/// `unshare(CLONE_NEWCGROUP)` when the config asks for a new cgroup
/// namespace: rooted at the cgroup this process is in now.
pub fn new_cgroup_namespace(plan: &Plan) -> Result<()> {
    if plan.namespaces.cgroup != NsAction::New {
        return Ok(());
    }
    nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| Error::call("unshare the cgroup namespace", e))
}

/// Join the namespaces the config names by path. Runs in hutch itself,
/// before the clone, so the container process starts inside them (a pid
/// namespace can only be entered that way) and new namespaces are owned by
/// a joined user namespace. The user namespace goes first for that reason.
pub fn join_by_path(plan: &Plan) -> Result<()> {
    if let UserNs::Join(path) = &plan.userns {
        setns(path, CloneFlags::CLONE_NEWUSER)?;
    }
    for (action, flag) in others(plan) {
        if let NsAction::Join(path) = action {
            setns(path, flag)?;
        }
    }
    if let NsAction::Join(path) = &plan.namespaces.time {
        setns(path, CLONE_NEWTIME)?;
    }
    Ok(())
}

/// Join the mount namespace the config names, in the container process at
/// create (hutch itself must stay in its own: its state directory is there).
pub fn join_mount(plan: &Plan) -> Result<()> {
    match &plan.namespaces.mount {
        NsAction::Join(path) => setns(path, CloneFlags::CLONE_NEWNS),
        _ => Ok(()),
    }
}

/// `CLONE_NEWTIME` (nix has no constant for it).
pub const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

/// Make the time namespace the program will run in: `unshare` puts it in
/// place for the children and for this process's next `execve`, and its
/// clock offsets can be set until a process runs in it.
pub fn new_time_namespace(offsets: &str) -> Result<()> {
    nix::sched::unshare(CLONE_NEWTIME).map_err(|e| Error::call("unshare the time namespace", e))?;
    if offsets.is_empty() {
        return Ok(());
    }
    let path = Path::new("/proc/self/timens_offsets");
    std::fs::write(path, offsets).map_err(|e| Error::io("write time offsets to", path, e))
}

/// The namespaces besides user and mount, with their clone flags.
fn others(plan: &Plan) -> [(&NsAction, CloneFlags); 5] {
    let ns = &plan.namespaces;
    [
        (&ns.pid, CloneFlags::CLONE_NEWPID),
        (&ns.net, CloneFlags::CLONE_NEWNET),
        (&ns.uts, CloneFlags::CLONE_NEWUTS),
        (&ns.ipc, CloneFlags::CLONE_NEWIPC),
        (&ns.cgroup, CloneFlags::CLONE_NEWCGROUP),
    ]
}

/// `setns(open(path), kind)`: the kernel checks that `path` is a namespace
/// of that kind.
fn setns(path: &Path, kind: CloneFlags) -> Result<()> {
    // Non-blocking: a FIFO named in the config opens at once (and setns
    // refuses it) instead of waiting for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io("open namespace", path, e))?;
    nix::sched::setns(file.as_fd(), kind).map_err(|e| Error::sys("join namespace", path, e))
}
