//! Root emulation: when the container's user namespace maps exactly one
//! uid and one gid, the calls that need privilege over other ids (the
//! chown family to another id, mknod of a device, the set*id family and
//! setgroups) succeed without effect, and the get*id family reports the
//! identity a process switched to, so package managers and the tools their
//! scripts run (dpkg, apt-get, useradd, chown, install -o, su, runuser,
//! tar, cpio) work for a user without subordinate ids.
//!
//! How: a seccomp filter whose rules `SECCOMP_RET_USER_NOTIF` those calls,
//! and a supervisor process that answers them (`supervisor.rs`). The
//! supervisor is forked by the container process before any filter goes
//! in, gets the filter's listener fd over a socket, and answers:
//! - chown family: the same call, made by the supervisor from the caller's
//!   root, working directory or fd, with the ids the namespace does not
//!   map left unchanged (`-1`): a missing file still gives ENOENT, a bad
//!   fd EBADF, a read-only file system EROFS;
//! - mknod of a device: the errors the kernel would check first (EEXIST,
//!   ENOENT, ENOTDIR, EROFS), else success, and nothing is made;
//! - set*id: the kernel's rules applied to the identity the process
//!   believes it has (`ids.rs`), kept per thread and inherited by the
//!   threads and children the supervisor later hears from;
//! - get*id: that identity, or the real call while the process never
//!   changed it.
//!
//! Why not `SECCOMP_RET_ERRNO(0)` (Charliecloud's way): measured with a
//! debootstrapped bookworm, it skips the kernel's own checks (a chown of a
//! missing file "succeeds"), and apt-get fails anyway: its methods check
//! getuid/getgid after dropping to `_apt` ("Could not switch group").
//!
//! The filter's calls, architecture: only the native one is filtered;
//! 32-bit programs get the kernel's real answers.

pub mod ids;
mod supervisor;

use std::os::fd::{AsFd, OwnedFd};

use libseccomp::{ScmpAction, ScmpCompareOp, ScmpSyscall};

use crate::error::{Error, Result};
use crate::seccomp::{self, ArgCheck, RulePlan, SeccompPlan};
use crate::spec::{IdRange, Plan, UserNs};
use crate::sys::{self, Forked};

/// The one uid and gid the container's user namespace maps, as seen
/// inside: what root emulation works for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Single {
    pub uid: u32,
    pub gid: u32,
}

/// Does the container of `plan` get one uid and one gid? Its own new user
/// namespace's maps say; without one, the namespace hutch runs in (root
/// inside somebody's single-id namespace, as buildah's). A namespace
/// joined by path is not looked at.
pub fn applies(plan: &Plan) -> Option<Single> {
    if !plan.root_emulation {
        return None;
    }
    match &plan.userns {
        UserNs::New {
            uid_map, gid_map, ..
        } => single(uid_map, gid_map),
        UserNs::Inherit => of_process("self"),
        UserNs::Join(_) => None,
    }
}

/// The maps of a running process (`exec` into a container).
pub fn of_process(pid: &str) -> Option<Single> {
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).ok();
    single(&parse_map(&read("uid_map")?), &parse_map(&read("gid_map")?))
}

fn parse_map(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|l| {
            let v: Vec<u32> = l
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            (v.len() == 3).then(|| IdRange {
                inside: v[0],
                outside: v[1],
                count: v[2],
            })
        })
        .collect()
}

fn single(uid_map: &[IdRange], gid_map: &[IdRange]) -> Option<Single> {
    match (uid_map, gid_map) {
        ([u], [g]) if u.count == 1 && g.count == 1 => Some(Single {
            uid: u.inside,
            gid: g.inside,
        }),
        _ => None,
    }
}

/// The calls the filter sends to the supervisor.
const ALWAYS: &[&str] = &[
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setfsuid",
    "setfsgid",
    "setgroups",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "getgroups",
];

/// The filter: the set*id and get*id families always notify; a chown
/// notifies only for an id other than the mapped one (a chown to it, the
/// common case in dpkg and tar, stays a plain call); mknod only for a
/// character or block device (fifos and sockets need no privilege).
pub fn filter(ids: Single) -> SeccompPlan {
    let nr = |n: &str| ScmpSyscall::from_name(n).map(|s| (n.to_string(), s)).ok();
    let mut rules = Vec::new();
    let always: Vec<_> = ALWAYS.iter().filter_map(|n| nr(n)).collect();
    rules.push(RulePlan {
        syscalls: always,
        action: ScmpAction::Notify,
        args: vec![],
    });
    let ne = |index: u32, id: u32| ArgCheck {
        index,
        op: ScmpCompareOp::NotEqual,
        datum: u64::from(id),
    };
    // (name, index of the uid argument)
    for (name, at) in [("chown", 1), ("lchown", 1), ("fchown", 1), ("fchownat", 2)] {
        let Some(sc) = nr(name) else { continue };
        for check in [ne(at, ids.uid), ne(at + 1, ids.gid)] {
            rules.push(RulePlan {
                syscalls: vec![sc.clone()],
                action: ScmpAction::Notify,
                args: vec![check],
            });
        }
    }
    let fmt = u64::from(libc::S_IFMT);
    for (name, at) in [("mknod", 1), ("mknodat", 2)] {
        let Some(sc) = nr(name) else { continue };
        for kind in [libc::S_IFCHR, libc::S_IFBLK] {
            rules.push(RulePlan {
                syscalls: vec![sc.clone()],
                action: ScmpAction::Notify,
                args: vec![ArgCheck {
                    index: at,
                    op: ScmpCompareOp::MaskedEqual(fmt),
                    datum: u64::from(kind),
                }],
            });
        }
    }
    SeccompPlan {
        default_action: ScmpAction::Allow,
        arches: vec![],
        log: false,
        tsync: false,
        spec_allow: false,
        rules,
        other_arches_allowed: true,
    }
}

/// The container process's side once the supervisor runs: dropping it
/// (at `execve`, where it is closed) tells the supervisor that what
/// follows is the program's, not hutch's own setup.
pub struct Armed {
    _sock: OwnedFd,
}

/// Fork the supervisor, then install the filter on this process and hand
/// the supervisor its listener. Called before any other filter goes in
/// (the supervisor must not be under any), while this process may still
/// install one (CAP_SYS_ADMIN in its user namespace, or no_new_privs).
pub fn start(filter: &seccomp::Compiled, ids: Single) -> Result<Armed> {
    let (ours, theirs) =
        crate::sync::pair().map_err(|e| Error::call("make the root emulation socket", e))?;
    match sys::clone_process(nix::sched::CloneFlags::empty())
        .map_err(|e| Error::call("fork the root emulation supervisor", e))?
    {
        Forked::Child => {
            drop(ours);
            supervisor::run(theirs, ids)
        }
        Forked::Parent(_) => {
            drop(theirs);
            let listener = seccomp::load_with_listener(filter)?;
            crate::sync::send_fd(ours.as_fd(), &listener, "listener").map_err(|e| {
                Error::call("hand the listener to the root emulation supervisor", e)
            })?;
            Ok(Armed { _sock: ours })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_each_applies() {
        assert_eq!(
            single(&parse_map("0 1002 1\n"), &parse_map("0 1002 1\n")),
            Some(Single { uid: 0, gid: 0 })
        );
        // Subordinate ids: more than one.
        assert_eq!(
            single(
                &parse_map("0 1001 1\n1 100000 65536\n"),
                &parse_map("0 1001 1\n")
            ),
            None
        );
        assert_eq!(
            single(
                &parse_map("0 100000 65536\n"),
                &parse_map("0 100000 65536\n")
            ),
            None
        );
        // The initial namespace.
        assert_eq!(
            single(
                &parse_map("0 0 4294967295\n"),
                &parse_map("0 0 4294967295\n")
            ),
            None
        );
    }

    #[test]
    fn the_filter_compiles() {
        let p = filter(Single { uid: 0, gid: 0 });
        assert!(p.rules.len() > 8);
        seccomp::compile_uncached(&p).unwrap();
    }
}
