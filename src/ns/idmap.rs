//! Writing the uid and gid maps of the container's new user namespace.
//!
//! The order is fixed: `uid_map`, then `setgroups` = `deny` where the
//! kernel requires it (an unprivileged process mapping its own gid, see
//! CVE-2014-8989), then `gid_map`. Maps other than the caller's own single
//! id go through the setuid helpers `newuidmap` and `newgidmap`, which
//! check `/etc/subuid` and `/etc/subgid`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use std::os::fd::OwnedFd;

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::spec::{IdRange, MapWriter};
use crate::sys::{self, Forked};

/// Which map.
#[derive(Clone, Copy, Debug)]
pub enum IdKind {
    Uid,
    Gid,
}

impl IdKind {
    fn file(self) -> &'static str {
        match self {
            IdKind::Uid => "uid_map",
            IdKind::Gid => "gid_map",
        }
    }
    fn helper(self) -> &'static str {
        match self {
            IdKind::Uid => "newuidmap",
            IdKind::Gid => "newgidmap",
        }
    }
}

/// The text of a map file: one `inside outside count` line per range.
pub fn format_map(map: &[IdRange]) -> String {
    map.iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// Write both maps of the user namespace of `pid`.
pub fn write_maps(
    pid: Pid,
    uid_map: &[IdRange],
    gid_map: &[IdRange],
    writer: MapWriter,
) -> Result<()> {
    match writer {
        MapWriter::Direct { deny_setgroups } => {
            write_file(pid, IdKind::Uid.file(), &format_map(uid_map))?;
            if deny_setgroups {
                write_file(pid, "setgroups", "deny")?;
            }
            write_file(pid, IdKind::Gid.file(), &format_map(gid_map))
        }
        MapWriter::Helpers => {
            run_helper(pid, IdKind::Uid, uid_map)?;
            run_helper(pid, IdKind::Gid, gid_map)
        }
    }
}

/// A user namespace with these maps and no process left in it, for an
/// idmapped mount: a child is cloned into a new one, hutch (real root)
/// writes its maps and opens its `ns/user`, and the child is killed. The
/// fd keeps the namespace.
pub fn detached_userns(uid_map: &[IdRange], gid_map: &[IdRange]) -> Result<OwnedFd> {
    let pid = match sys::clone_process(CloneFlags::CLONE_NEWUSER).map_err(|e| {
        Error::call(
            "clone a process into a user namespace for an idmapped mount",
            e,
        )
    })? {
        Forked::Child => loop {
            // Killed by the parent once it holds the namespace.
            nix::unistd::pause();
        },
        Forked::Parent(pid) => pid,
    };
    let opened = write_maps(
        pid,
        uid_map,
        gid_map,
        MapWriter::Direct {
            deny_setgroups: false,
        },
    )
    .and_then(|()| {
        let path = PathBuf::from(format!("/proc/{}/ns/user", pid.as_raw()));
        std::fs::File::open(&path)
            .map(OwnedFd::from)
            .map_err(|e| Error::io("open user namespace", &path, e))
    });
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
    opened
}

fn write_file(pid: Pid, name: &str, text: &str) -> Result<()> {
    let path = PathBuf::from(format!("/proc/{}/{name}", pid.as_raw()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open user namespace map", &path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io("write user namespace map", &path, e))
}

fn run_helper(pid: Pid, kind: IdKind, map: &[IdRange]) -> Result<()> {
    let helper = kind.helper();
    let mut cmd = Command::new(helper);
    cmd.arg(pid.as_raw().to_string());
    for r in map {
        cmd.args([
            r.inside.to_string(),
            r.outside.to_string(),
            r.count.to_string(),
        ]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::Helper {
            what: format!("run {helper}"),
            detail: format!("{e} (install the uidmap package, or map only your own id)"),
        })?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Helper {
            what: format!(
                "{helper} {}",
                format_map(map).trim_end().replace('\n', ", ")
            ),
            detail: format!(
                "{} ({})",
                text.trim().lines().last().unwrap_or("failed"),
                out.status
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_formatted_one_range_per_line() {
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
        assert_eq!(format_map(&map), "0 1000 1\n1 100000 65536\n");
    }
}
