//! The `cgroup` mount: the container's own cgroups, as runc and crun show
//! them.
//!
//! On a cgroup v2 host, cgroup2 at the destination. On a v1 or hybrid
//! host, a tmpfs there with each hierarchy under the name the host mounts
//! it as (`memory`, `cpu,cpuacct`, `systemd`, `unified`), and a link per
//! controller of a combined hierarchy (`cpu` → `cpu,cpuacct`). Each
//! hierarchy shows the container's own cgroup: where the container is at
//! the root of its cgroup namespace there (it has one of its own, made
//! after it joined its cgroups), a new mount, whose root is that; else a
//! bind of its cgroup's directory from the host's mount (Docker on cgroup
//! v1 runs containers without a cgroup namespace). The caller makes the
//! whole tree read-only when the mount says `ro`.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use super::resolve::{Kind, Root};
use super::{bind_tree, mount_fs};
use crate::cgroup::{Fs, Hierarchy};
use crate::error::{Error, Result};
use crate::spec::MountPlan;

/// Mount the container's view of its cgroups at `m.destination`.
pub fn mount(root: &Root, m: &MountPlan) -> Result<()> {
    let dest = &m.destination;
    let target = root.ensure(dest, Kind::Dir)?;
    let all = crate::cgroup::hierarchies();
    let v1 = all.iter().any(|h| h.fs == Fs::V1);
    if !v1 {
        return match all.first() {
            Some(h) => mount_one(&target, h, m, &root.display(dest)),
            // Nothing mounted on the host: a new cgroup2 is all there is.
            None => mount_fs(&target, &m.fs_source, "cgroup2", m.flags, &m.data)
                .map_err(|e| Error::sys("mount cgroup2 on", root.display(dest), e)),
        };
    }
    let tmpfs_flags = m.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    mount_fs(&target, "tmpfs", "tmpfs", tmpfs_flags, "mode=755")
        .map_err(|e| Error::sys("mount tmpfs on", root.display(dest), e))?;
    let top = root
        .open_in(dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        .map_err(|e| Error::sys("open", root.display(dest), e))?;
    for h in &all {
        let Some(name) = h.point.file_name() else {
            continue;
        };
        let shown = root.display(&dest.join(name));
        match nix::sys::stat::mkdirat(&top, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) => {}
            // Two hierarchies mounted under one name: the first shows.
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(Error::sys("make directory", shown, e)),
        }
        let sub = nix::fcntl::openat(
            &top,
            name,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("open", &shown, e))?;
        mount_one(&sub, h, m, &shown)?;
        // cpu → cpu,cpuacct, as the host (systemd) and runc have them.
        let name = name.to_string_lossy();
        if name.contains(',') {
            for c in h.controllers.iter().filter(|c| !c.starts_with("name=")) {
                match nix::unistd::symlinkat(name.as_ref(), top.as_fd(), c.as_str()) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(Error::sys("make link", root.display(&dest.join(c)), e)),
                }
            }
        }
    }
    Ok(())
}

/// Hierarchy `h` on `target` (`shown` in messages), showing the
/// container's own cgroup.
fn mount_one(target: &OwnedFd, h: &Hierarchy, m: &MountPlan, shown: &Path) -> Result<()> {
    let own = h.own.as_deref().unwrap_or(Path::new("/"));
    if own == Path::new("/") {
        let (fstype, data) = match h.fs {
            Fs::V2 => ("cgroup2", m.data.clone()),
            Fs::V1 => ("cgroup", h.controllers.join(",")),
        };
        match mount_fs(target, "cgroup", fstype, m.flags, &data) {
            Ok(()) => return Ok(()),
            // Not the owner of the cgroup namespace: bind it instead.
            Err(Errno::EPERM | Errno::EACCES | Errno::EBUSY | Errno::EINVAL | Errno::ENODEV) => {}
            Err(e) => return Err(Error::sys("mount cgroup on", shown, e)),
        }
    }
    // Its directory in the host's mount (the mount itself where the
    // mount's root is not in this cgroup namespace's view).
    let dir = h.dir_of(own).unwrap_or_else(|| h.point.clone());
    let tree = bind_tree(&dir, false, m.flags)?;
    crate::sys::move_mount_to_fd(tree.as_fd(), target.as_fd())
        .map_err(|e| Error::sys("bind cgroup onto", shown, e))
}
