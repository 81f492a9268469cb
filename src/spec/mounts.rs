//! `mounts` (with idmapped mounts), `linux.maskedPaths` and
//! `linux.readonlyPaths` → the plan's [`MountPlan`]s and paths.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::{Mount, Spec};

use super::namespaces::{check_ranges, ranges};
use super::{container_path, Host, IdRange, UserNs};
use crate::error::{Error, Result};
use crate::features::gate;
use crate::sys::attr;

/// What kind of filesystem a mount is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// A bind mount of `source` (resolved on the host, relative to the bundle).
    Bind {
        source: PathBuf,
        recursive: bool,
    },
    Proc,
    Sysfs,
    Tmpfs,
    Devpts,
    Mqueue,
    Cgroup,
    /// Any other filesystem type, handed to mount(2) as it is.
    Other {
        fstype: String,
        source: String,
    },
}

/// One mount, ready to apply.
#[derive(Clone, Debug)]
pub struct MountPlan {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    pub kind: MountKind,
    /// Flags given to mount(2) (fs mounts) or applied after the bind.
    pub flags: MsFlags,
    /// `ro`: applied after every mount exists.
    pub readonly: bool,
    /// Propagation to set on the new mount (`MS_SHARED`, … with `MS_REC`).
    pub propagation: MsFlags,
    /// `r*` options: attributes to set and clear on the whole tree.
    pub recursive_set: u64,
    pub recursive_clear: u64,
    /// Filesystem-specific options (`mode=755,size=65536k`).
    pub data: String,
    /// crun's `tmpcopyup`: copy the image's files into a new tmpfs.
    pub copy_up: bool,
    /// The source a new filesystem is mounted with (what mountinfo shows):
    /// the config's `source`, else the type.
    pub fs_source: String,
    /// An idmapped bind mount (`uidMappings`, `idmap`, `ridmap`).
    pub idmap: Option<MountIdMap>,
}

/// The id mapping of an idmapped bind mount: the maps of the user
/// namespace given to `mount_setattr(MOUNT_ATTR_IDMAP)`. An id of the
/// source file system (`inside`, the config's `containerID`) shows through
/// the mount as `outside` (`hostID`), which the container's own user
/// namespace, if any, then maps as it maps every id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountIdMap {
    pub uid_map: Vec<IdRange>,
    pub gid_map: Vec<IdRange>,
    /// `ridmap`: the mounts under the source (with `rbind`) too.
    pub recursive: bool,
}

/// `mounts`, in the config's order.
pub(super) fn plan_mounts(
    spec: &Spec,
    bundle: &Path,
    userns: &UserNs,
    host: Host,
) -> Result<Vec<MountPlan>> {
    spec.mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|m| plan_mount(m, bundle, userns, host))
        .collect()
}

/// `linux.rootfsPropagation` (`MS_SLAVE|MS_REC` when not given).
pub(super) fn plan_rootfs_propagation(linux: &oci_spec::runtime::Linux) -> Result<MsFlags> {
    let Some(p) = linux.rootfs_propagation().as_deref() else {
        return Ok(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    };
    gate("linux.rootfsPropagation")?;
    Ok(match p {
        "shared" | "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" | "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "private" | "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "unbindable" | "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        other => {
            return Err(Error::Config(format!(
                "linux.rootfsPropagation: unknown value `{other}`"
            )))
        }
    })
}

/// One entry of `mounts`.
fn plan_mount(m: &Mount, bundle: &Path, userns: &UserNs, host: Host) -> Result<MountPlan> {
    gate("mounts")?;
    let destination = container_path("mounts.destination", m.destination())?;
    let has_maps = m.uid_mappings().is_some() || m.gid_mappings().is_some();
    if has_maps {
        gate("mounts.uidMappings")?;
    }
    let fstype = m.typ().clone().unwrap_or_default();
    let options = m.options().clone().unwrap_or_default();
    let opts = parse_options(&options, fstype == "bind")?;

    let kind = mount_kind(m, &fstype, &opts, &destination, bundle)?;
    gate(kind_key(&kind))?;
    check_data(&kind, &opts.data, &destination)?;
    if opts.copy_up && kind != MountKind::Tmpfs {
        return Err(Error::Config(format!(
            "mounts: tmpcopyup on `{}` needs a tmpfs",
            destination.display()
        )));
    }
    if destination == Path::new("/") {
        return Err(Error::Config(
            "mounts: a mount on `/` is not supported; use root.path".into(),
        ));
    }
    let fs_source = match m.source() {
        Some(s) if !s.as_os_str().is_empty() => s.display().to_string(),
        _ => fstype.clone(),
    };
    let idmap = if has_maps || opts.idmap.is_some() {
        Some(plan_mount_idmap(
            m,
            &destination,
            &kind,
            opts.idmap.unwrap_or(false),
            userns,
            host,
        )?)
    } else {
        None
    };
    // A bind mount takes no filesystem data.
    let data = if opts.bind {
        String::new()
    } else {
        opts.data.join(",")
    };
    Ok(MountPlan {
        destination,
        kind,
        flags: opts.flags,
        readonly: opts.readonly,
        propagation: opts.propagation,
        recursive_set: opts.recursive_set,
        recursive_clear: opts.recursive_clear,
        data,
        copy_up: opts.copy_up,
        fs_source,
        idmap,
    })
}

/// A mount's `options`, sorted by what hutch does with them.
struct Options<'a> {
    /// `bind` or `rbind` (or the type `bind`).
    bind: bool,
    /// `rbind`.
    recursive: bool,
    flags: MsFlags,
    readonly: bool,
    propagation: MsFlags,
    recursive_set: u64,
    recursive_clear: u64,
    copy_up: bool,
    /// None, `idmap` (false) or `ridmap` (true): the last one given wins.
    idmap: Option<bool>,
    /// Anything else, handed to the filesystem.
    data: Vec<&'a str>,
}

fn parse_options(options: &[String], bind: bool) -> Result<Options<'_>> {
    let mut opts = Options {
        bind,
        recursive: false,
        flags: MsFlags::empty(),
        readonly: false,
        propagation: MsFlags::empty(),
        recursive_set: 0,
        recursive_clear: 0,
        copy_up: false,
        idmap: None,
        data: Vec::new(),
    };
    for o in options.iter().map(String::as_str) {
        match o {
            "bind" => opts.bind = true,
            "rbind" => {
                opts.bind = true;
                opts.recursive = true;
            }
            "ro" => opts.readonly = true,
            "rw" => opts.readonly = false,
            "idmap" | "ridmap" => {
                gate("mounts.options.idmap")?;
                opts.idmap = Some(o == "ridmap");
            }
            "tmpcopyup" => {
                gate("mounts.options.tmpcopyup")?;
                opts.copy_up = true;
            }
            _ => {
                if let Some(flag) = flag_option(o) {
                    opts.flags |= flag;
                } else if let Some(propagation) = propagation_option(o) {
                    opts.propagation = propagation;
                } else if let Some((set, clear)) = o.strip_prefix('r').and_then(recursive_attr) {
                    gate("mounts.options.recursive")?;
                    opts.recursive_set = (opts.recursive_set & !clear) | set;
                    opts.recursive_clear = (opts.recursive_clear & !set) | clear;
                } else {
                    opts.data.push(o);
                }
            }
        }
    }
    Ok(opts)
}

/// The mount(2) flag an option sets: empty for the options that are the
/// default anyway (and `remount`), `None` for options that are not flags.
fn flag_option(o: &str) -> Option<MsFlags> {
    Some(match o {
        "defaults" | "async" | "loud" | "suid" | "dev" | "exec" | "atime" | "diratime"
        | "norelatime" | "nostrictatime" | "nolazytime" | "noiversion" | "nomand" | "symfollow"
        | "remount" => MsFlags::empty(),
        "nosuid" => MsFlags::MS_NOSUID,
        "nodev" => MsFlags::MS_NODEV,
        "noexec" => MsFlags::MS_NOEXEC,
        "sync" => MsFlags::MS_SYNCHRONOUS,
        "dirsync" => MsFlags::MS_DIRSYNC,
        "mand" => MsFlags::MS_MANDLOCK,
        "noatime" => MsFlags::MS_NOATIME,
        "nodiratime" => MsFlags::MS_NODIRATIME,
        "relatime" => MsFlags::MS_RELATIME,
        "strictatime" => MsFlags::MS_STRICTATIME,
        "lazytime" => MsFlags::MS_LAZYTIME,
        "iversion" => MsFlags::MS_I_VERSION,
        "silent" => MsFlags::MS_SILENT,
        "nosymfollow" => MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
        _ => return None,
    })
}

/// The propagation an option asks for.
fn propagation_option(o: &str) -> Option<MsFlags> {
    Some(match o {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// A bind mount of the source (relative to the bundle), or a filesystem
/// of the mount's type.
fn mount_kind(
    m: &Mount,
    fstype: &str,
    opts: &Options<'_>,
    destination: &Path,
    bundle: &Path,
) -> Result<MountKind> {
    if opts.bind {
        gate("mounts.bind")?;
        let source = m.source().as_ref().ok_or_else(|| {
            Error::Config(format!(
                "mounts: bind mount on `{}` has no source",
                destination.display()
            ))
        })?;
        return Ok(MountKind::Bind {
            source: bundle.join(source),
            recursive: opts.recursive,
        });
    }
    Ok(match fstype {
        "proc" => MountKind::Proc,
        "sysfs" => MountKind::Sysfs,
        "tmpfs" => MountKind::Tmpfs,
        "devpts" => MountKind::Devpts,
        "mqueue" => MountKind::Mqueue,
        "cgroup" | "cgroup2" => MountKind::Cgroup,
        "" | "none" => {
            return Err(Error::Config(format!(
                "mounts: `{}` has no type and is not a bind mount",
                destination.display()
            )))
        }
        other => MountKind::Other {
            fstype: other.to_string(),
            source: m
                .source()
                .as_ref()
                .map(|s| s.display().to_string())
                .unwrap_or_else(|| other.to_string()),
        },
    })
}

/// The filesystem options (`data`) each kind of mount hutch makes itself
/// takes: `None` for the types whose options only the kernel knows (tmpfs,
/// devpts and any other type get theirs checked by mount(2), and an error
/// names them). A bind mount takes none: it makes no filesystem.
fn data_options(kind: &MountKind) -> Option<&'static [&'static str]> {
    Some(match kind {
        MountKind::Bind { .. } | MountKind::Sysfs | MountKind::Mqueue => &[],
        MountKind::Proc => &["hidepid=", "gid=", "subset="],
        MountKind::Cgroup => &[
            "nsdelegate",
            "favordynmods",
            "memory_localevents",
            "memory_recursiveprot",
            "memory_hugetlb_accounting",
            "pids_localevents",
        ],
        MountKind::Tmpfs | MountKind::Devpts | MountKind::Other { .. } => return None,
    })
}

/// Every option of a mount is applied or refused: an option that is not a
/// flag hutch applies nor one the filesystem takes is an error naming it
/// (the kernel refuses it too; hutch would otherwise bind the host's tree
/// in place of sysfs or proc without it).
fn check_data(kind: &MountKind, data: &[&str], destination: &Path) -> Result<()> {
    let Some(known) = data_options(kind) else {
        return Ok(());
    };
    let takes = |o: &str| {
        known.iter().any(|k| {
            if k.ends_with('=') {
                o.starts_with(k) && o.len() > k.len()
            } else {
                o == *k
            }
        })
    };
    let Some(bad) = data.iter().find(|o| !takes(o)) else {
        return Ok(());
    };
    let what = match kind {
        MountKind::Bind { .. } => "a bind mount takes no filesystem options".to_string(),
        MountKind::Sysfs | MountKind::Mqueue => {
            format!("{} takes no filesystem options", kind_name(kind))
        }
        _ => format!("{} takes only {}", kind_name(kind), known.join(" ")),
    };
    Err(Error::Config(format!(
        "mounts: unknown option `{bad}` on `{}` ({what})",
        destination.display()
    )))
}

/// The type a kind of mount makes, for messages.
fn kind_name(kind: &MountKind) -> &str {
    match kind {
        MountKind::Bind { .. } => "bind",
        MountKind::Proc => "proc",
        MountKind::Sysfs => "sysfs",
        MountKind::Tmpfs => "tmpfs",
        MountKind::Devpts => "devpts",
        MountKind::Mqueue => "mqueue",
        MountKind::Cgroup => "cgroup2",
        MountKind::Other { fstype, .. } => fstype,
    }
}

/// The feature-table key of a kind of mount.
fn kind_key(kind: &MountKind) -> &'static str {
    match kind {
        MountKind::Bind { .. } => "mounts.bind",
        MountKind::Proc => "mounts.proc",
        MountKind::Sysfs => "mounts.sysfs",
        MountKind::Tmpfs => "mounts.tmpfs",
        MountKind::Devpts => "mounts.devpts",
        MountKind::Mqueue => "mounts.mqueue",
        MountKind::Cgroup => "mounts.cgroup",
        MountKind::Other { .. } => "mounts.other",
    }
}

/// The mapping of an idmapped mount: the mount's own maps, or, for `idmap`
/// or `ridmap` without them, those of the container's new user namespace
/// (as runtime-spec 1.1 allows). Only bind mounts, and only as real root:
/// `MOUNT_ATTR_IDMAP` needs CAP_SYS_ADMIN in the user namespace that owns
/// the source's file system, the initial one for the host's.
fn plan_mount_idmap(
    m: &Mount,
    destination: &Path,
    kind: &MountKind,
    recursive: bool,
    userns: &UserNs,
    host: Host,
) -> Result<MountIdMap> {
    let dest = destination.display();
    if !matches!(kind, MountKind::Bind { .. }) {
        return Err(Error::Config(format!(
            "mounts: idmapped mount on `{dest}`: only bind mounts can be idmapped"
        )));
    }
    if host.euid != 0 || !host.initial_userns {
        return Err(Error::Config(format!(
            "mounts: idmapped mount on `{dest}` needs real root (CAP_SYS_ADMIN over the source's file system)"
        )));
    }
    let (uid_map, gid_map) = match (m.uid_mappings(), m.gid_mappings()) {
        (Some(_), Some(_)) => (ranges(m.uid_mappings()), ranges(m.gid_mappings())),
        (None, None) => match userns {
            UserNs::New {
                uid_map, gid_map, ..
            } => (uid_map.clone(), gid_map.clone()),
            _ => {
                return Err(Error::Config(format!(
                    "mounts: idmapped mount on `{dest}` has no uidMappings and gidMappings, and the container has no new user namespace whose maps it could use"
                )))
            }
        },
        _ => {
            return Err(Error::Config(format!(
                "mounts: idmapped mount on `{dest}`: uidMappings and gidMappings must be given together"
            )))
        }
    };
    if uid_map.is_empty() || gid_map.is_empty() {
        return Err(Error::Config(format!(
            "mounts: idmapped mount on `{dest}` has an empty uidMappings or gidMappings"
        )));
    }
    check_ranges(&format!("mounts: uidMappings of `{dest}`"), &uid_map)?;
    check_ranges(&format!("mounts: gidMappings of `{dest}`"), &gid_map)?;
    Ok(MountIdMap {
        uid_map,
        gid_map,
        recursive,
    })
}

/// `ro` → set RDONLY, `rw` → clear it, and so on, for the `r*` options.
fn recursive_attr(name: &str) -> Option<(u64, u64)> {
    Some(match name {
        "ro" => (attr::RDONLY, 0),
        "rw" => (0, attr::RDONLY),
        "nosuid" => (attr::NOSUID, 0),
        "suid" => (0, attr::NOSUID),
        "nodev" => (attr::NODEV, 0),
        "dev" => (0, attr::NODEV),
        "noexec" => (attr::NOEXEC, 0),
        "exec" => (0, attr::NOEXEC),
        "relatime" => (attr::RELATIME, attr::ATIME_MASK),
        "noatime" => (attr::NOATIME, attr::ATIME_MASK),
        "strictatime" => (attr::STRICTATIME, attr::ATIME_MASK),
        "nodiratime" => (attr::NODIRATIME, 0),
        "diratime" => (0, attr::NODIRATIME),
        "nosymfollow" => (attr::NOSYMFOLLOW, 0),
        "symfollow" => (0, attr::NOSYMFOLLOW),
        _ => return None,
    })
}

/// `linux.maskedPaths` or `linux.readonlyPaths`: absolute container paths.
pub(super) fn plan_paths(field: &'static str, list: &Option<Vec<String>>) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in list.as_deref().unwrap_or_default() {
        gate(field)?;
        if !p.starts_with('/') {
            return Err(Error::Config(format!("{field}: `{p}` is not absolute")));
        }
        out.push(container_path(field, Path::new(p))?);
    }
    Ok(out)
}
