//! The one table of OCI runtime-spec features and what hutch does with each.
//!
//! `spec/` consults this table for every config field it meets through
//! [`gate`], so the table is not documentation beside the code: it *is* the
//! code path that decides whether a field works, fails, or is ignored with a
//! warning. The man page and `hutch features` are generated from it.

use crate::error::{Error, Result};

pub use crate::feature_table::{Feature, Support, TABLE};
use Support::{Error as Err_, Ignored, Works};

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
            config_warning(format_args!("{key} is ignored: {note}"));
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

/// Set in the environment of the sealed copy of hutch that `exe::protect`
/// re-executes, so it does not loop. It lives here, below `spec`, because
/// [`config_warning`] reads it and `exe` (which reads the plan) is above.
pub const SEALED: &str = "_HUTCH_SEALED";

/// True in the re-executed copy. The config's warnings were printed by
/// the process that made the copy, from the same config; the copy does
/// not print them again.
pub fn is_sealed_copy() -> bool {
    std::env::var_os(SEALED).is_some()
}

/// A warning about the config, printed once: not again by the sealed copy
/// of hutch (`exe::protect`), which reads the same config.
pub fn config_warning(msg: std::fmt::Arguments<'_>) {
    if !is_sealed_copy() {
        tracing::warn!("{msg}");
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

/// The newest runtime-spec version hutch implements (`--version`, `features`).
pub const OCI_VERSION_MAX: &str = "1.3.0";

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
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": hooks,
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": works("linux.cgroupsPath"), "v2": works("linux.cgroupsPath"), "systemd": works("linux.cgroupsPath"), "systemdUser": works("linux.cgroupsPath"), "rdma": works("linux.resources.rdma")},
            "seccomp": {"enabled": works("linux.seccomp")},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": works("mounts.uidMappings")}},
            "netDevices": {"enabled": works("linux.netDevices")},
            "memoryPolicy": if works("linux.memoryPolicy") {
                serde_json::json!({
                    "modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                              "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
                    "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
                })
            } else {
                serde_json::json!({})
            }
        },
        "annotations": {
            "org.hutch.version": env!("CARGO_PKG_VERSION"),
            // The default: on where one uid and one gid are mapped.
            "org.hutch.root-emulation": "true"
        }
    })
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
        let err = gate("linux.intelRdt").unwrap_err().to_string();
        assert!(err.contains("linux.intelRdt is not supported"), "{err}");
        assert!(gate("no.such.field").is_err());
    }
}
