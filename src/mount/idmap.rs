//! Idmapped bind mounts (`mounts[].uidMappings`, `idmap`, `ridmap`).
//!
//! `MOUNT_ATTR_IDMAP` needs CAP_SYS_ADMIN in the user namespace that owns
//! the source's file system, which for the host's file systems is the
//! initial one: only hutch itself, as real root, has it, and the container
//! process (in a user namespace of its own) does not. So `create` makes
//! each such mount on the host side, before the clone, as a detached mount
//! (`open_tree(OPEN_TREE_CLONE)` then `mount_setattr`); the container
//! process inherits its fd and attaches it inside its new mount namespace
//! with `move_mount` on the start path, like any other bind mount.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::ns::idmap::detached_userns;
use crate::spec::{IdRange, MountKind, Plan};
use crate::sys;

/// One entry per mount of the plan: the detached idmapped tree of each
/// idmapped bind mount, `None` for the others.
pub fn prepare(plan: &Plan) -> Result<Vec<Option<OwnedFd>>> {
    // One user namespace per distinct mapping.
    let mut namespaces: Vec<(&[IdRange], &[IdRange], OwnedFd)> = Vec::new();
    let mut out = Vec::with_capacity(plan.mounts.len());
    for m in &plan.mounts {
        let (Some(map), MountKind::Bind { source, recursive }) = (&m.idmap, &m.kind) else {
            out.push(None);
            continue;
        };
        let known = namespaces
            .iter()
            .position(|(u, g, _)| *u == map.uid_map && *g == map.gid_map);
        let i = match known {
            Some(i) => i,
            None => {
                let fd = detached_userns(&map.uid_map, &map.gid_map)?;
                namespaces.push((&map.uid_map, &map.gid_map, fd));
                namespaces.len() - 1
            }
        };
        let tree = super::bind_tree(source, *recursive, m.flags)?;
        sys::mount_setattr_idmap(tree.as_fd(), map.recursive, namespaces[i].2.as_fd()).map_err(
            |e| {
                let why = match e {
                    Errno::EINVAL => " (its file system does not support idmapped mounts)",
                    Errno::EPERM => " (it needs CAP_SYS_ADMIN over the source's file system)",
                    _ => "",
                };
                Error::call(
                    format!(
                        "make the idmapped mount of `{}` for `{}`{why}",
                        source.display(),
                        m.destination.display()
                    ),
                    e,
                )
            },
        )?;
        out.push(Some(tree));
    }
    Ok(out)
}
