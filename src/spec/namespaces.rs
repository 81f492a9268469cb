//! `linux.namespaces`, the user namespace and its id maps → the plan's
//! [`Namespaces`] and [`UserNs`].

use std::path::PathBuf;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType};

use super::Host;
use crate::error::{Error, Result};
use crate::features::gate;

/// What to do with one kind of namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NsAction {
    /// Stay in hutch's own namespace.
    Inherit,
    /// Make a new one.
    New,
    /// Join the one at this path (`/proc/PID/ns/TYPE` or a bind mount of it).
    Join(PathBuf),
}

/// The namespaces of the container, one field per kind.
#[derive(Clone, Debug)]
pub struct Namespaces {
    pub user: NsAction,
    pub pid: NsAction,
    pub net: NsAction,
    pub ipc: NsAction,
    pub uts: NsAction,
    pub cgroup: NsAction,
    /// New: made on the start path (the program enters it at execve).
    pub time: NsAction,
    /// Always new (cloned at create) unless the config names one to join,
    /// which the container process does at create.
    pub mount: NsAction,
}

/// One line of a uid or gid map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// How the id maps of a new user namespace get written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapWriter {
    /// hutch writes them itself: it maps only its own ids (then `setgroups`
    /// must be denied), or it has CAP_SETUID/CAP_SETGID where it runs.
    Direct { deny_setgroups: bool },
    /// Through the setuid helpers `newuidmap` and `newgidmap`, which check
    /// `/etc/subuid` and `/etc/subgid`.
    Helpers,
}

/// The user namespace the container gets.
#[derive(Clone, Debug)]
pub enum UserNs {
    /// None of its own: hutch runs as root and the config asks for none.
    Inherit,
    /// A new one with these maps.
    New {
        uid_map: Vec<IdRange>,
        gid_map: Vec<IdRange>,
        writer: MapWriter,
    },
    /// The existing one at this path.
    Join(PathBuf),
}

pub(super) fn plan_namespaces(linux: &oci_spec::runtime::Linux) -> Result<Namespaces> {
    let mut ns = Namespaces {
        user: NsAction::Inherit,
        pid: NsAction::Inherit,
        net: NsAction::Inherit,
        ipc: NsAction::Inherit,
        uts: NsAction::Inherit,
        cgroup: NsAction::Inherit,
        time: NsAction::Inherit,
        mount: NsAction::New,
    };
    let mut seen = Vec::new();
    let mut has_mount = false;
    for n in linux.namespaces().as_deref().unwrap_or_default() {
        gate("linux.namespaces")?;
        let typ = n.typ();
        if seen.contains(&typ) {
            return Err(Error::Config(format!(
                "linux.namespaces: `{typ}` is listed twice"
            )));
        }
        seen.push(typ);
        let action = match n.path() {
            None => NsAction::New,
            Some(p) if p.is_absolute() => NsAction::Join(p.clone()),
            Some(p) => {
                return Err(Error::Config(format!(
                    "linux.namespaces: path `{}` of `{typ}` must be absolute",
                    p.display()
                )))
            }
        };
        let slot = match typ {
            LinuxNamespaceType::User => &mut ns.user,
            LinuxNamespaceType::Pid => &mut ns.pid,
            LinuxNamespaceType::Network => &mut ns.net,
            LinuxNamespaceType::Ipc => &mut ns.ipc,
            LinuxNamespaceType::Uts => &mut ns.uts,
            LinuxNamespaceType::Cgroup => &mut ns.cgroup,
            LinuxNamespaceType::Mount => {
                has_mount = true;
                if matches!(action, NsAction::Join(_)) {
                    gate("linux.namespaces.mount.path")?;
                }
                &mut ns.mount
            }
            LinuxNamespaceType::Time => {
                gate("linux.namespaces.time")?;
                &mut ns.time
            }
        };
        *slot = action;
    }
    if !has_mount {
        tracing::debug!("linux.namespaces has no mount namespace; hutch makes one anyway");
    }
    Ok(ns)
}

pub(super) fn ranges(maps: &Option<Vec<LinuxIdMapping>>) -> Vec<IdRange> {
    maps.as_deref()
        .unwrap_or_default()
        .iter()
        .map(|m| IdRange {
            inside: m.container_id(),
            outside: m.host_id(),
            count: m.size(),
        })
        .collect()
}

/// A map the kernel takes: no empty or overflowing range, at most 340
/// ranges, none overlapping another on either side.
pub(super) fn check_ranges(field: &str, map: &[IdRange]) -> Result<()> {
    if map.iter().any(|r| {
        r.count == 0
            || r.inside.checked_add(r.count).is_none()
            || r.outside.checked_add(r.count).is_none()
    }) {
        return Err(Error::Config(format!(
            "{field}: a range is empty or overflows"
        )));
    }
    if map.len() > 340 {
        return Err(Error::Config(format!("{field}: more than 340 ranges")));
    }
    for (i, a) in map.iter().enumerate() {
        for b in &map[i + 1..] {
            let overlap = |x: u32, y: u32| x < y + b.count && y < x + a.count;
            if overlap(a.inside, b.inside) || overlap(a.outside, b.outside) {
                return Err(Error::Config(format!("{field}: ranges overlap")));
            }
        }
    }
    Ok(())
}

pub(super) fn plan_userns(
    linux: &oci_spec::runtime::Linux,
    action: &NsAction,
    host: Host,
) -> Result<UserNs> {
    let uid_map = ranges(linux.uid_mappings());
    let gid_map = ranges(linux.gid_mappings());
    if !uid_map.is_empty() || !gid_map.is_empty() {
        gate("linux.uidMappings")?;
    }
    check_ranges("linux.uidMappings", &uid_map)?;
    check_ranges("linux.gidMappings", &gid_map)?;

    match action {
        NsAction::Join(p) => {
            if !uid_map.is_empty() {
                return Err(Error::Config(
                    "linux.uidMappings cannot be used when joining a user namespace".into(),
                ));
            }
            return Ok(UserNs::Join(p.clone()));
        }
        NsAction::Inherit if host.euid == 0 => {
            if !uid_map.is_empty() || !gid_map.is_empty() {
                return Err(Error::Config(
                    "linux.uidMappings given without a user namespace".into(),
                ));
            }
            return Ok(UserNs::Inherit);
        }
        // A plain user always gets a user namespace: without one it could
        // not make any of the others.
        NsAction::Inherit | NsAction::New => {}
    }

    // No maps: the caller's own ids become root, as with crun (for real
    // root too: `crun spec --rootless` run as root maps 0 to 0).
    let (uid_map, gid_map) = match (uid_map.is_empty(), gid_map.is_empty()) {
        (true, true) => (
            vec![IdRange {
                inside: 0,
                outside: host.euid,
                count: 1,
            }],
            vec![IdRange {
                inside: 0,
                outside: host.egid,
                count: 1,
            }],
        ),
        (false, false) => (uid_map, gid_map),
        _ => {
            return Err(Error::Config(
                "linux.uidMappings and linux.gidMappings must be given together".into(),
            ))
        }
    };
    let writer = map_writer(&uid_map, &gid_map, host);
    Ok(UserNs::New {
        uid_map,
        gid_map,
        writer,
    })
}

/// Who can write these maps: root itself, a plain user itself when it maps
/// only its own ids, else the setuid helpers.
fn map_writer(uid_map: &[IdRange], gid_map: &[IdRange], host: Host) -> MapWriter {
    let own_single =
        |map: &[IdRange], id: u32| map.len() == 1 && map[0].count == 1 && map[0].outside == id;
    if host.euid == 0 {
        MapWriter::Direct {
            deny_setgroups: false,
        }
    } else if own_single(uid_map, host.euid) && own_single(gid_map, host.egid) {
        MapWriter::Direct {
            deny_setgroups: true,
        }
    } else {
        MapWriter::Helpers
    }
}

/// True if `id` is mapped by `map` (as an id inside the namespace).
pub fn is_mapped(map: &[IdRange], id: u32) -> bool {
    map.iter()
        .any(|r| id >= r.inside && id - r.inside < r.count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ids() {
        let map = [
            IdRange {
                inside: 0,
                outside: 1000,
                count: 1,
            },
            IdRange {
                inside: 1,
                outside: 100000,
                count: 65536,
            },
        ];
        assert!(is_mapped(&map, 0));
        assert!(is_mapped(&map, 65536));
        assert!(!is_mapped(&map, 65537));
    }
}
