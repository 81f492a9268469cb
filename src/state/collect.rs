//! Collecting what dead `hutch` processes left in the state directory, and
//! removing entries so that a remover that dies leaves nothing under the
//! id (see the module documentation of `state`).

use std::os::fd::AsFd;

use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use super::{
    check_id, proc_stat, Entry, StateRoot, CGROUP_FILE, CONFIG_FILE, CTL_SOCKET, MARK_FILE,
    ROOT_MOUNT, ROOT_UPPER, STATE_FILE,
};
use crate::error::Error;

/// Prefix of an entry being made: `.hutch-new-PID-NANOS`.
pub(super) const STAGING: &str = ".hutch-new-";
/// Prefix of an entry being removed: `.hutch-gone-PID-NANOS`.
const GOING: &str = ".hutch-gone-";

/// A name no other process uses: `PREFIX` + our pid + the time.
pub(super) fn private_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}{}-{nanos}", std::process::id())
}

/// True when the process that named a staging entry `PID-NANOS` is gone
/// (or the name is not one hutch makes). While it lives, the entry may be
/// in the moment between `mkdir` and `flock`, unlocked but not abandoned.
fn maker_is_gone(pid_nanos: &str) -> bool {
    let Some(pid) = pid_nanos
        .split_once('-')
        .and_then(|(pid, _)| pid.parse::<i32>().ok())
    else {
        return false;
    };
    match proc_stat(Pid::from_raw(pid)) {
        Some(s) => matches!(s.state, b'Z' | b'X' | b'x'),
        None => true,
    }
}

impl StateRoot {
    /// Remove the entry `name` if it is one a dead `create` left; true
    /// when it was, and is gone now.
    pub(super) fn collect(&self, name: &str) -> bool {
        let Ok(mut entry) = self.open_entry(name) else {
            return false;
        };
        if !entry.is_abandoned() {
            return false;
        }
        entry.remove();
        true
    }

    /// Collect what dead `hutch` processes left in the state directory:
    /// entries whose `create` died before recording the container, and
    /// entries being made or removed when their maker or remover died. Best
    /// effort: nothing here fails the operation that calls it. Only
    /// hutch's own names and marked entries are looked at, and only the
    /// caller's own (root's: any); an entry under its id that has a record
    /// is never removed here.
    pub fn collect_dead(&self) {
        let Ok(mut dir) = nix::dir::Dir::openat(
            &self.dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        let names: Vec<String> = dir
            .iter()
            .filter_map(|e| {
                let e = e.ok()?;
                if !matches!(e.file_type(), Some(nix::dir::Type::Directory) | None) {
                    return None;
                }
                e.file_name().to_str().ok().map(str::to_string)
            })
            .collect();
        let me = nix::unistd::geteuid();
        for name in names {
            let candidate = if let Some(rest) = name.strip_prefix(STAGING) {
                maker_is_gone(rest)
            } else {
                name.starts_with(GOING) || (check_id(&name).is_ok() && !self.has_record(&name))
            };
            if !candidate {
                continue;
            }
            let Ok(mut entry) = self.open_entry(&name) else {
                continue;
            };
            let ours = me.is_root()
                || nix::sys::stat::fstat(&entry.dir).is_ok_and(|st| st.st_uid == me.as_raw());
            if ours && entry.is_abandoned() {
                tracing::debug!("collecting {}: its hutch died", entry.path.display());
                entry.remove();
            }
        }
    }

    /// True if `name` (an entry's id) has a record; a cheap test made on
    /// every entry of the state directory.
    fn has_record(&self, name: &str) -> bool {
        nix::unistd::faccessat(
            &self.dir,
            format!("{name}/{STATE_FILE}").as_str(),
            nix::unistd::AccessFlags::F_OK,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok()
    }
}

impl Entry {
    /// True when the hutch that made or was removing this entry died: no
    /// record (for an entry under its id: marked as hutch's), and nobody
    /// holds the lock. A `create` holds it from before the entry is visible
    /// until it exits, and writes the record before that; so does a
    /// remover. When true, this process holds the lock.
    pub(super) fn is_abandoned(&mut self) -> bool {
        let by_id = check_id(&self.id).is_ok();
        if by_id && (self.has(STATE_FILE) || !self.has(MARK_FILE)) {
            return false;
        }
        let Ok(fd) = self.lock_file() else {
            return false;
        };
        let Ok(lock) = Flock::lock(fd, FlockArg::LockExclusiveNonblock) else {
            return false;
        };
        self.lock = Some(lock);
        // The record may have come just before the lock went.
        if by_id && self.has(STATE_FILE) {
            self.lock = None;
            return false;
        }
        true
    }

    /// Remove the entry and everything in it, under its lock (taken here if
    /// this process does not hold it). The entry leaves its id first,
    /// renamed to a private name, so the id is free at once and a remover
    /// that dies half-way leaves a `.hutch-gone-*` for the next collector.
    /// Best effort: what cannot be removed is a warning.
    pub fn remove(mut self) {
        if let Err(e) = self.lock_wait() {
            tracing::warn!("{e}");
        }
        let parent = nix::fcntl::openat(
            &self.dir,
            "..",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        let name = parent.as_ref().ok().and_then(|p| self.unname(p.as_fd()));
        crate::fault::point("remove:unnamed");
        // The cgroups hutch made go first (their processes are gone, or
        // are killed there); a failure is a warning.
        self.remove_cgroups();
        for name in [
            STATE_FILE,
            ".state.json.tmp",
            CTL_SOCKET,
            CONFIG_FILE,
            ".config.json.tmp",
            CGROUP_FILE,
            ".cgroup.json.tmp",
            MARK_FILE,
        ] {
            let _ = nix::unistd::unlinkat(&self.dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        // The mount points of a SquashFS root (mounted only in the
        // container's mount namespace).
        for dir in [ROOT_MOUNT, ROOT_UPPER] {
            let _ = nix::unistd::unlinkat(&self.dir, dir, nix::unistd::UnlinkatFlags::RemoveDir);
        }
        if let (Ok(parent), Some(name)) = (parent, name) {
            let _ = nix::unistd::unlinkat(
                &parent,
                name.as_str(),
                nix::unistd::UnlinkatFlags::RemoveDir,
            );
        }
    }

    /// Move the entry from its name to a private `.hutch-gone-*` one (kept
    /// when it has one already) and return that; `None` when it is not
    /// under its name any more (removed, or a dead remover's). Under the
    /// lock, which whoever moves an entry holds, the name cannot change
    /// between the check and the rename.
    fn unname(&self, parent: std::os::fd::BorrowedFd<'_>) -> Option<String> {
        let me = nix::sys::stat::fstat(&self.dir).ok()?;
        let there = nix::sys::stat::fstatat(
            parent,
            self.id.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ok()?;
        if me.st_nlink == 0 || (there.st_dev, there.st_ino) != (me.st_dev, me.st_ino) {
            return None;
        }
        if self.id.starts_with(GOING) {
            return Some(self.id.clone());
        }
        let gone = private_name(GOING);
        nix::fcntl::renameat2(
            parent,
            self.id.as_str(),
            parent,
            gone.as_str(),
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        )
        .ok()?;
        Some(gone)
    }

    /// Remove the cgroups hutch made for the container. When root removes
    /// another user's entry, it does so as that user, in a child process:
    /// whoever can write the entry can name any cgroup in it.
    fn remove_cgroups(&self) {
        let Some(record) = self.load_cgroup() else {
            return;
        };
        let owner = nix::sys::stat::fstat(&self.dir)
            .map(|st| st.st_uid)
            .unwrap_or(0);
        if !nix::unistd::geteuid().is_root() || owner == 0 {
            if let Err(e) = crate::cgroup::remove(&record) {
                tracing::warn!("{e}");
            }
            return;
        }
        match crate::sys::clone_process(nix::sched::CloneFlags::empty()) {
            Ok(crate::sys::Forked::Child) => {
                let removed = self
                    .assume_owner()
                    .and_then(|()| crate::cgroup::remove(&record));
                if let Err(e) = removed {
                    tracing::warn!("{e}");
                }
                crate::sys::exit_now(0);
            }
            Ok(crate::sys::Forked::Parent(pid)) => {
                let _ = nix::sys::wait::waitpid(pid, None);
            }
            Err(e) => tracing::warn!(
                "{}",
                Error::call("fork to remove the cgroups as the entry's owner", e)
            ),
        }
    }
}
