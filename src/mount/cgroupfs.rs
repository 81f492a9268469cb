//! A `cgroup` mount the kernel refuses as a new cgroup2 (a user namespace
//! without a cgroup namespace of its own): the container's own cgroups,
//! bound from the host's hierarchies, as runc and crun bind them. Never
//! the whole host tree, which would show every other cgroup of the host
//! (other users' sessions, other jobs) to the container.
//!
//! - cgroup v2 at `/sys/fs/cgroup`: the process's cgroup directory.
//! - v1 or a v1/v2 hybrid: a tmpfs, and in it, per v1 hierarchy, the
//!   process's cgroup directory of that hierarchy (named as the host's
//!   mount point is: `memory`, `cpu,cpuacct`, `systemd`).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};

use super::resolve::{Kind, Root};
use super::{attach, bind_attrs, mount_fs, open_tree};
use crate::error::{Error, Result};
use crate::spec::MountPlan;
use crate::sys;

const HOST: &str = "/sys/fs/cgroup";

/// Bind the process's own cgroups at `m.destination` (see the module).
pub fn bind_own(root: &Root, m: &MountPlan) -> Result<()> {
    let dest = &m.destination;
    let target = root.ensure(dest, Kind::Dir)?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| Error::io("read", "/proc/self/cgroup", e))?;
    let unified = statfs(HOST)
        .map(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
        .unwrap_or(false);
    if unified {
        let path = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| {
                Error::sys("find the cgroup v2 of", "/proc/self/cgroup", Errno::ENOENT)
            })?;
        return bind_one(
            &Path::new(HOST).join(path.trim_start_matches('/')),
            &target,
            root,
            dest,
            m,
        );
    }
    mount_fs(&target, "cgroup", "tmpfs", m.flags, "mode=755")
        .map_err(|e| Error::sys("mount tmpfs on", root.display(dest), e))?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
    for (controllers, path) in own.lines().filter_map(v1_line) {
        let Some(at) = v1_mount_point(&mounts, controllers) else {
            continue;
        };
        let Some(name) = at.file_name() else { continue };
        let inside = dest.join(name);
        let dir = root.ensure(&inside, Kind::Dir)?;
        bind_one(
            &at.join(path.trim_start_matches('/')),
            &dir,
            root,
            &inside,
            m,
        )?;
    }
    Ok(())
}

/// A non-recursive bind of `source` onto `target`, with the mount's flags.
fn bind_one(
    source: &Path,
    target: &std::os::fd::OwnedFd,
    root: &Root,
    dest: &Path,
    m: &MountPlan,
) -> Result<()> {
    let tree = open_tree(source, false)?;
    let (set, clear) = bind_attrs(m.flags);
    sys::mount_setattr(tree.as_fd(), false, set, clear, 0)
        .map_err(|e| Error::sys("set flags of bind mount", source, e))?;
    attach(&tree, target, root, dest)
}

/// `N:controllers:path` of a v1 hierarchy (N > 0) in `/proc/self/cgroup`.
fn v1_line(line: &str) -> Option<(&str, &str)> {
    let mut f = line.splitn(3, ':');
    let (id, controllers, path) = (f.next()?, f.next()?, f.next()?);
    (id != "0" && !controllers.is_empty()).then_some((controllers, path))
}

/// Where the host mounts the v1 hierarchy of `controllers` (its super
/// options name each of them, `name=` ones included), under `/sys/fs/cgroup`.
fn v1_mount_point(mountinfo: &str, controllers: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut r = right.split_whitespace();
        if r.next()? != "cgroup" {
            return None;
        }
        let options: Vec<&str> = r.nth(1)?.split(',').collect();
        let at = Path::new(left.split_whitespace().nth(4)?);
        (at.parent() == Some(Path::new(HOST))
            && controllers.split(',').all(|c| options.contains(&c)))
        .then(|| at.to_path_buf())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory";

    #[test]
    fn v1_hierarchies_are_found_by_their_controllers() {
        assert_eq!(
            v1_line("4:memory:/user.slice"),
            Some(("memory", "/user.slice"))
        );
        assert_eq!(v1_line("0::/user.slice"), None);
        assert_eq!(
            v1_mount_point(MOUNTINFO, "cpu,cpuacct"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(
            v1_mount_point(MOUNTINFO, "name=systemd"),
            Some(PathBuf::from("/sys/fs/cgroup/systemd"))
        );
        assert_eq!(v1_mount_point(MOUNTINFO, "pids"), None);
    }
}
