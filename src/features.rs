//! The one table of OCI runtime-spec features and what hutch does with each.
//!
//! `spec.rs` consults this table for every config field it meets through
//! [`gate`], so the table is not documentation beside the code: it *is* the
//! code path that decides whether a field works, fails, or is ignored with a
//! warning. The man page and `hutch features` are generated from it.

use crate::error::{Error, Result};

/// What hutch does with a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Honoured as the runtime spec says.
    Works,
    /// Refused: a config that uses it fails at `create`, leaving nothing behind.
    Error,
    /// Accepted, not applied; hutch prints a warning naming it.
    Ignored,
}

/// One row of the table.
#[derive(Debug)]
pub struct Feature {
    /// The config field (dotted path) or command-line flag.
    pub key: &'static str,
    pub support: Support,
    /// How it really behaves, in a sentence.
    pub note: &'static str,
}

use Support::{Error as Err_, Ignored, Works};

/// Every OCI feature hutch knows about, in spec order.
pub static TABLE: &[Feature] = &[
    Feature { key: "ociVersion", support: Works, note: "1.0.0 through 1.3.x; any other version is an error naming it" },
    Feature { key: "root.path", support: Works, note: "absolute or relative to the bundle; must be an existing directory" },
    Feature { key: "root.readonly", support: Works, note: "the root is remounted read-only after all mounts, keeping locked flags" },
    Feature { key: "mounts", support: Works, note: "mounted in listed order; destinations resolved inside the root without following symlinks out of it, created when missing" },
    Feature { key: "mounts.bind", support: Works, note: "bind and rbind, files and directories, with ro, nosuid, nodev, noexec, atime flags and propagation" },
    Feature { key: "mounts.proc", support: Works, note: "a new procfs; an rbind of the host's /proc where the kernel refuses one (no private pid namespace in a user namespace)" },
    Feature { key: "mounts.sysfs", support: Works, note: "a new sysfs; an rbind of the host's /sys where the kernel refuses one (no private network namespace in a user namespace)" },
    Feature { key: "mounts.tmpfs", support: Works, note: "with size=, mode= and the other tmpfs options" },
    Feature { key: "mounts.devpts", support: Works, note: "a new instance; gid= is dropped when that group is not mapped" },
    Feature { key: "mounts.mqueue", support: Works, note: "a new mqueue; an rbind of the host's where the kernel refuses one" },
    Feature { key: "mounts.cgroup", support: Works, note: "cgroup2 (or an rbind of the host's /sys/fs/cgroup where the kernel refuses a new mount), read-only unless rw is asked for" },
    Feature { key: "mounts.other", support: Works, note: "any other filesystem type is passed to mount(2) with its options as data" },
    Feature { key: "mounts.options.recursive", support: Works, note: "rro, rnosuid, rnodev, rnoexec, ratime family and rnosymfollow through mount_setattr(AT_RECURSIVE)" },
    Feature { key: "mounts.options.idmap", support: Err_, note: "idmap and ridmap mounts are refused" },
    Feature { key: "mounts.uidMappings", support: Err_, note: "per-mount id mappings are refused" },
    Feature { key: "mounts.options.tmpcopyup", support: Works, note: "the image's files at the destination are copied into the new tmpfs" },
    Feature { key: "process.args", support: Works, note: "execvp semantics, searching the PATH of process.env" },
    Feature { key: "process.commandLine", support: Err_, note: "Windows only; refused" },
    Feature { key: "process.env", support: Works, note: "the complete environment; a repeated name keeps its last value; HOME comes from the container's /etc/passwd when absent" },
    Feature { key: "process.cwd", support: Works, note: "must be absolute; created when missing; checked to be inside the root" },
    Feature { key: "process.user", support: Works, note: "uid, gid, umask and additionalGids (additionalGids are ignored with a warning where the user namespace denies setgroups)" },
    Feature { key: "process.user.username", support: Ignored, note: "Windows only" },
    Feature { key: "process.terminal", support: Works, note: "a pty whose master goes to --console-socket with SCM_RIGHTS; its slave is the controlling terminal and /dev/console" },
    Feature { key: "process.consoleSize", support: Works, note: "set on the pty" },
    Feature { key: "process.rlimits", support: Works, note: "set with setrlimit; a limit the caller cannot raise is an error" },
    Feature { key: "process.capabilities", support: Works, note: "the five sets exactly as given; an absent list is empty" },
    Feature { key: "process.noNewPrivileges", support: Works, note: "PR_SET_NO_NEW_PRIVS" },
    Feature { key: "process.oomScoreAdj", support: Works, note: "written to /proc/self/oom_score_adj; lowering it needs privilege" },
    Feature { key: "process.apparmorProfile", support: Ignored, note: "AppArmor profiles are not applied" },
    Feature { key: "process.selinuxLabel", support: Ignored, note: "SELinux labels are not applied" },
    Feature { key: "process.scheduler", support: Ignored, note: "the scheduling policy is not changed" },
    Feature { key: "process.ioPriority", support: Ignored, note: "the I/O priority is not changed" },
    Feature { key: "process.execCPUAffinity", support: Ignored, note: "the CPU affinity is not changed" },
    Feature { key: "hostname", support: Works, note: "needs a private UTS namespace (error otherwise)" },
    Feature { key: "domainname", support: Works, note: "needs a private UTS namespace (error otherwise)" },
    Feature { key: "annotations", support: Works, note: "kept and reported by state" },
    Feature { key: "hooks", support: Err_, note: "OCI hooks are refused" },
    Feature { key: "linux.namespaces", support: Works, note: "pid, network, ipc, uts, mount, user, cgroup: new or joined by path; a mount namespace is always made" },
    Feature { key: "linux.namespaces.time", support: Err_, note: "time namespaces are refused" },
    Feature { key: "linux.namespaces.mount.path", support: Err_, note: "joining an existing mount namespace is refused" },
    Feature { key: "linux.uidMappings", support: Works, note: "a single mapping of the caller's own id is written directly; other maps go through newuidmap/newgidmap" },
    Feature { key: "linux.timeOffsets", support: Err_, note: "time namespaces are refused" },
    Feature { key: "linux.devices", support: Works, note: "bound from the host inside a user namespace, made with mknod as real root" },
    Feature { key: "linux.netDevices", support: Err_, note: "moving network devices is refused" },
    Feature { key: "linux.cgroupsPath", support: Ignored, note: "hutch does not manage cgroups" },
    Feature { key: "linux.resources", support: Ignored, note: "hutch does not manage cgroups; a deny-all device rule is what hutch's /dev gives anyway and is not warned about" },
    Feature { key: "linux.intelRdt", support: Err_, note: "Intel RDT is refused" },
    Feature { key: "linux.memoryPolicy", support: Ignored, note: "the NUMA memory policy is not changed" },
    Feature { key: "linux.sysctl", support: Works, note: "namespaced keys only, written through the container's procfs after it is verified" },
    Feature { key: "linux.seccomp", support: Works, note: "built with libseccomp: every action but NOTIFY, errnoRet, architectures, argument checks, the LOG, TSYNC and SPEC_ALLOW flags; unknown syscall names are skipped; loaded last before execve with noNewPrivileges, else before capabilities are dropped" },
    Feature { key: "linux.seccomp.notify", support: Err_, note: "seccomp notify (SCMP_ACT_NOTIFY, listenerPath) is refused" },
    Feature { key: "linux.rootfsPropagation", support: Works, note: "shared, slave, private or unbindable; slave by default" },
    Feature { key: "linux.maskedPaths", support: Works, note: "files hidden under the host's /dev/null (verified to be the real device), directories under an empty read-only tmpfs" },
    Feature { key: "linux.readonlyPaths", support: Works, note: "bound onto themselves read-only" },
    Feature { key: "linux.mountLabel", support: Ignored, note: "SELinux mount labels are not applied" },
    Feature { key: "linux.personality", support: Works, note: "LINUX and LINUX32 domains" },
];

/// Look a feature up; an unknown key is a bug in hutch, reported as an error
/// rather than a panic.
pub fn lookup(key: &str) -> Option<&'static Feature> {
    TABLE.iter().find(|f| f.key == key)
}

/// Decide what to do with a config field that is present: nothing for a
/// working feature, a warning for an ignored one, an error for a refused one.
pub fn gate(key: &str) -> Result<()> {
    match lookup(key) {
        Some(Feature { support: Works, .. }) => Ok(()),
        Some(Feature {
            support: Ignored,
            note,
            ..
        }) => {
            tracing::warn!("{key} is ignored: {note}");
            Ok(())
        }
        Some(Feature {
            support: Err_,
            note,
            ..
        }) => Err(Error::Config(format!("{key} is not supported: {note}"))),
        None => Err(Error::Config(format!("{key} is not supported"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique() {
        for (i, f) in TABLE.iter().enumerate() {
            assert!(
                TABLE[i + 1..].iter().all(|g| g.key != f.key),
                "duplicate key {}",
                f.key
            );
        }
    }

    #[test]
    fn gate_follows_the_table() {
        assert!(gate("process.args").is_ok());
        assert!(gate("linux.seccomp").is_ok());
        let err = gate("hooks").unwrap_err().to_string();
        assert!(err.contains("hooks is not supported"), "{err}");
        assert!(gate("no.such.field").is_err());
    }
}

/// Mount options hutch interprets itself (anything else is handed to the
/// filesystem as data).
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "unbindable",
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rrelatime",
    "rnoatime",
    "rstrictatime",
    "rnodiratime",
    "rdiratime",
    "rnosymfollow",
    "rsymfollow",
    "tmpcopyup",
];

/// The runtime-spec `features` document, derived from [`TABLE`].
pub fn document() -> serde_json::Value {
    let works = |key: &str| lookup(key).is_some_and(|f| f.support == Works);
    let hooks: Vec<&str> = if works("hooks") {
        vec![
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ]
    } else {
        Vec::new()
    };
    let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": hooks,
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": false, "v2": false, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {"enabled": works("linux.seccomp")},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        "annotations": {"org.hutch.version": env!("CARGO_PKG_VERSION")}
    })
}
