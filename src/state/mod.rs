//! The state directory: one subdirectory per container, holding
//!
//! - `state.json`: what `create` recorded (pid, its start time, bundle,
//!   annotations), written to a temporary name and renamed into place;
//! - `ctl`: the socket the waiting container process listens on; it exists
//!   exactly while the container is `created`.
//!
//! An entry is made under a private name (`.hutch-new-PID-NANOS`), locked
//! (`flock` on the directory) and marked as hutch's (`.hutch-entry`), then
//! renamed to its id without replacing anything: exactly one of two callers
//! racing on one id wins, and the entry is locked from the moment it is
//! visible. Its `create` holds the lock until it exits, and writes
//! `state.json` before that: an entry without a record whose lock is free
//! belongs to a `create` that died, and is collected (by `list`, `create`,
//! `delete`, and any operation naming it). An entry is removed by renaming
//! it away (`.hutch-gone-PID-NANOS`) under its lock, then emptying it, so a
//! remover that dies leaves nothing under the id; what dead makers and
//! removers leave under those private names is collected too.
//!
//! The state directory may be shared (Slurm's, or `--root=/tmp/`): a
//! directory without the mark and without a record is not hutch's and is
//! never touched.
//!
//! Status is never stored; it is read from the kernel each time: a pid that
//! is gone, a zombie, or a pid whose start time differs from the recorded
//! one (the pid was reused) is `stopped`; a live one whose cgroup is frozen
//! (`pause`) is `paused`.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::input::{self, Follow};
use crate::spec::Host;

mod collect;
mod pidfile;
mod record;

use collect::{private_name, STAGING};
pub use pidfile::PidFile;
pub use record::{is_alive, proc_stat, ProcStat, Record, Status};

/// Longest id hutch accepts.
pub const MAX_ID_LEN: usize = 1024;

/// Check a container id: letters, digits and `_+-.`, not starting with `.`,
/// at most [`MAX_ID_LEN`] bytes. No id can name anything but one entry of
/// the state directory.
pub fn check_id(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_+-.".contains(c);
    if id.is_empty() || id.len() > MAX_ID_LEN || id.starts_with('.') || !id.chars().all(ok_char) {
        return Err(Error::Usage(format!(
            "invalid container id `{}`: use 1 to {MAX_ID_LEN} letters, digits or `_+-.`, not starting with `.`",
            id.escape_debug()
        )));
    }
    Ok(())
}

/// The state directory.
pub struct StateRoot {
    path: PathBuf,
    dir: OwnedFd,
}

/// Where the state lives when `--root` is not given: `/run/hutch` for real
/// root, `$XDG_RUNTIME_DIR/hutch` for anyone else, and a private
/// `/tmp/hutch-UID` when that variable is unset.
pub fn default_root(host: Host) -> PathBuf {
    if host.euid == 0 && host.initial_userns {
        return PathBuf::from("/run/hutch");
    }
    if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        return Path::new(&xdg).join("hutch");
    }
    // Inside a user namespace uid 0 is somebody else on the host: name the
    // fallback after the host uid so users do not collide.
    let host_uid = std::fs::read_to_string("/proc/self/uid_map")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                let f: Vec<u32> = l
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                (f.len() == 3 && host.euid >= f[0] && host.euid - f[0] < f[2])
                    .then(|| f[1] + (host.euid - f[0]))
            })
        })
        .unwrap_or(host.euid);
    PathBuf::from(format!("/tmp/hutch-{host_uid}"))
}

impl StateRoot {
    /// Open the state directory, creating it (mode 0700) when missing. An
    /// existing directory must belong to the caller and not be a symlink.
    pub fn open(path: &Path) -> Result<StateRoot> {
        let path =
            std::path::absolute(path).map_err(|e| Error::io("resolve state directory", path, e))?;
        match std::fs::DirBuilder::new()
            .recursive(false)
            .mode(0o700)
            .create(&path)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&path)
                    .map_err(|e| Error::io("create state directory", &path, e))?;
            }
            Err(e) => return Err(Error::io("create state directory", &path, e)),
        }
        let dir = nix::fcntl::open(
            &path,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("open state directory", &path, e))?;
        let st = nix::sys::stat::fstat(&dir)
            .map_err(|e| Error::sys("stat state directory", &path, e))?;
        // Another user's directory could be made to lie about our containers;
        // root's is trusted (Slurm passes `--root=/tmp/`).
        if st.st_uid != nix::unistd::geteuid().as_raw() && st.st_uid != 0 {
            return Err(Error::sys(
                "use state directory (owned by another user)",
                &path,
                Errno::EPERM,
            ));
        }
        Ok(StateRoot { path, dir })
    }

    /// Claim `id` for a new container: exactly one of several callers
    /// racing on one id succeeds. The entry is made under a private name,
    /// locked and marked, and renamed into place without replacing
    /// anything, so it is locked from the moment it is visible. An entry of
    /// the same id whose `create` died is collected first.
    pub fn reserve(&self, id: &str) -> Result<Entry> {
        check_id(id)?;
        let tmp = private_name(STAGING);
        nix::sys::stat::mkdirat(&self.dir, tmp.as_str(), Mode::from_bits_truncate(0o700))
            .map_err(|e| Error::sys("create state entry", self.path.join(&tmp), e))?;
        let staged = self.open_entry(&tmp).and_then(|mut entry| {
            entry.lock_exclusive()?;
            entry.mark()?;
            Ok(entry)
        });
        crate::fault::point("create:staged");
        let mut entry = match staged {
            Ok(entry) => entry,
            Err(e) => {
                let _ = nix::unistd::unlinkat(
                    &self.dir,
                    format!("{tmp}/{MARK_FILE}").as_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
                let _ = nix::unistd::unlinkat(
                    &self.dir,
                    tmp.as_str(),
                    nix::unistd::UnlinkatFlags::RemoveDir,
                );
                return Err(e);
            }
        };
        for attempt in 0..2 {
            match nix::fcntl::renameat2(
                &self.dir,
                tmp.as_str(),
                &self.dir,
                id,
                nix::fcntl::RenameFlags::RENAME_NOREPLACE,
            ) {
                Ok(()) => {
                    entry.id = id.to_string();
                    entry.path = self.path.join(id);
                    return Ok(entry);
                }
                Err(Errno::EEXIST | Errno::ENOTEMPTY) if attempt == 0 && self.collect(id) => {}
                Err(Errno::EEXIST | Errno::ENOTEMPTY) => break,
                Err(e) => {
                    entry.remove();
                    return Err(Error::sys("create state entry", self.path.join(id), e));
                }
            }
        }
        entry.remove();
        Err(Error::Exists { id: id.to_string() })
    }

    /// Open the entry of an existing container. An entry whose `create`
    /// died is collected, and a directory that is not hutch's is not an
    /// entry: both do not exist.
    pub fn entry(&self, id: &str) -> Result<Entry> {
        check_id(id)?;
        let not_found = || Error::NotFound { id: id.to_string() };
        let mut entry = self.open_entry(id).map_err(|e| match e {
            Error::Sys {
                errno: Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP,
                ..
            } => not_found(),
            other => other,
        })?;
        if entry.has(STATE_FILE) {
            return Ok(entry);
        }
        if !entry.has(MARK_FILE) {
            return Err(not_found());
        }
        if entry.is_abandoned() {
            entry.remove();
            return Err(not_found());
        }
        Ok(entry)
    }

    fn open_entry(&self, id: &str) -> Result<Entry> {
        let dir = nix::fcntl::openat(
            &self.dir,
            id,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("open state entry", self.path.join(id), e))?;
        Ok(Entry {
            id: id.to_string(),
            path: self.path.join(id),
            dir,
            lock: None,
        })
    }

    /// Ids of all entries, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.path)
            .map_err(|e| Error::io("list state directory", &self.path, e))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| check_id(n).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// One container's directory in the state directory.
pub struct Entry {
    pub id: String,
    pub path: PathBuf,
    dir: OwnedFd,
    lock: Option<Flock<OwnedFd>>,
}

/// Name of the record file.
const STATE_FILE: &str = "state.json";
/// Name of the copy of config.json.
const CONFIG_FILE: &str = "config.json";
/// Name of the file naming the container's cgroup and the directories
/// hutch made for it (only for a container in a cgroup).
const CGROUP_FILE: &str = "cgroup.json";
/// Name of the control socket.
pub const CTL_SOCKET: &str = "ctl";
/// Where a SquashFS root is mounted (in the container's mount namespace).
pub const ROOT_MOUNT: &str = "rootfs";
/// Where the tmpfs under the overlay on a SquashFS root is mounted.
pub const ROOT_UPPER: &str = "rootfs.rw";
/// Name of the empty file that marks a directory as a hutch entry: made
/// before the entry is visible, removed last.
const MARK_FILE: &str = ".hutch-entry";
impl Entry {
    /// The entry's directory fd.
    pub fn dir(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// A path to `name` in this entry that stays short whatever the state
    /// directory's length (socket addresses hold at most 107 bytes).
    pub fn short_path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}/{name}", self.dir.as_raw_fd()))
    }

    /// A new open file of the entry's directory: flock locks belong to open
    /// files, and this one is never shared with the container process.
    fn lock_file(&self) -> Result<OwnedFd> {
        nix::fcntl::openat(
            &self.dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("lock state entry", &self.path, e))
    }

    fn lock_exclusive(&mut self) -> Result<()> {
        let fd = self.lock_file()?;
        let lock = Flock::lock(fd, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| Error::sys("lock state entry", &self.path, e))?;
        self.lock = Some(lock);
        Ok(())
    }

    /// When root acts on an entry another user made (a shared state
    /// directory such as Slurm's, where root cleans up users' containers),
    /// act as that user from here on: whoever can write an entry can forge
    /// its pid, and that pid must not make root signal a process the user
    /// could not.
    pub fn assume_owner(&self) -> Result<()> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(());
        }
        let st = nix::sys::stat::fstat(&self.dir)
            .map_err(|e| Error::sys("stat state entry", &self.path, e))?;
        if st.st_uid == 0 {
            return Ok(());
        }
        let (uid, gid) = (
            nix::unistd::Uid::from_raw(st.st_uid),
            nix::unistd::Gid::from_raw(st.st_gid),
        );
        nix::unistd::setgroups(&[])
            .map_err(|e| Error::call("drop groups to act as the entry's owner", e))?;
        nix::unistd::setresgid(gid, gid, gid)
            .map_err(|e| Error::call(format!("act as the entry's group {gid}"), e))?;
        nix::unistd::setresuid(uid, uid, uid)
            .map_err(|e| Error::call(format!("act as the entry's owner {uid}"), e))
    }

    /// Take the entry's lock, waiting for a holder to finish (at once when
    /// this process holds it already).
    pub fn lock_wait(&mut self) -> Result<()> {
        if self.lock.is_some() {
            return Ok(());
        }
        let fd = self.lock_file()?;
        let lock = Flock::lock(fd, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::sys("lock state entry", &self.path, e))?;
        self.lock = Some(lock);
        Ok(())
    }

    /// In the freshly cloned container process: close our copy of the
    /// lock's fd without unlocking (an unlock would release the lock of the
    /// `create` that still runs: flock locks belong to the shared open file).
    pub fn forget_lock_in_child(&self) {
        if let Some(lock) = &self.lock {
            let _ = nix::unistd::close(lock.as_raw_fd());
        }
    }

    /// Take the entry's lock, waiting at most `limit` for a holder to
    /// finish; false when it did not in time.
    pub fn lock_within(&mut self, limit: std::time::Duration) -> Result<bool> {
        let deadline = std::time::Instant::now() + limit;
        while self.lock.is_none() {
            let fd = self.lock_file()?;
            match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => self.lock = Some(lock),
                Err((_, Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err((_, Errno::EWOULDBLOCK)) => return Ok(false),
                Err((_, e)) => return Err(Error::sys("lock state entry", &self.path, e)),
            }
        }
        Ok(true)
    }

    /// Mark the (new, private) directory as a hutch entry.
    fn mark(&self) -> Result<()> {
        nix::fcntl::openat(
            &self.dir,
            MARK_FILE,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map(drop)
        .map_err(|e| Error::sys("create", self.path.join(MARK_FILE), e))
    }

    /// True while another process holds the entry's lock (a `create` or
    /// `delete` is under way).
    pub fn is_locked(&self) -> bool {
        let Ok(fd) = self.lock_file() else {
            return false;
        };
        Flock::lock(fd, FlockArg::LockSharedNonblock).is_err()
    }

    /// Write the record: to a temporary file, then renamed over the old one,
    /// so a reader sees the old record or the new, never a part.
    pub fn save(&self, record: &Record) -> Result<()> {
        self.write_atomically(STATE_FILE, record.to_json().to_string().as_bytes())
    }

    /// Keep a copy of the container's `config.json`: later operations
    /// (`exec`) work from what `create` saw, whatever the bundle holds now.
    pub fn save_config(&self, text: &[u8]) -> Result<()> {
        self.write_atomically(CONFIG_FILE, text)
    }

    /// Note the container's cgroup and the directories hutch made for it
    /// (deepest first), before the container process exists: whatever
    /// becomes of `create`, removing the entry removes them.
    pub fn save_cgroup(&self, record: &serde_json::Value) -> Result<()> {
        self.write_atomically(CGROUP_FILE, record.to_string().as_bytes())
    }

    /// The record of the container's cgroup (`cgroup::reopen` takes it);
    /// `None` for a container without one.
    pub fn load_cgroup(&self) -> Option<serde_json::Value> {
        let text = self.read(CGROUP_FILE).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// The copy of `config.json` kept at create.
    pub fn load_config(&self) -> Result<Vec<u8>> {
        self.read(CONFIG_FILE)
    }

    /// Read a file of the entry (bounded, never blocking: in a shared
    /// state directory its owner could have put anything there).
    fn read(&self, name: &str) -> Result<Vec<u8>> {
        input::read_at(self.dir.as_fd(), name, &self.path.join(name), Follow::No)
    }

    fn write_atomically(&self, name: &str, text: &[u8]) -> Result<()> {
        let tmp = format!(".{name}.tmp");
        let fd = nix::fcntl::openat(
            &self.dir,
            tmp.as_str(),
            OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_TRUNC
                | OFlag::O_CLOEXEC
                | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| Error::sys("write", self.path.join(&tmp), e))?;
        std::fs::File::from(fd)
            .write_all(text)
            .map_err(|e| Error::io("write", self.path.join(&tmp), e))?;
        nix::fcntl::renameat(&self.dir, tmp.as_str(), &self.dir, name)
            .map_err(|e| Error::sys("write", self.path.join(name), e))
    }

    /// Read the record.
    pub fn load(&self) -> Result<Record> {
        let path = self.path.join(STATE_FILE);
        let text = self.read(STATE_FILE)?;
        let v: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| Error::io("parse state", &path, std::io::Error::other(e)))?;
        Record::from_json(&v).ok_or_else(|| {
            Error::io(
                "parse state",
                &path,
                std::io::Error::other("missing fields"),
            )
        })
    }

    /// The record and the current status. An entry without a record is
    /// `creating` while its `create` runs; one whose `create` died is
    /// reported as not existing.
    pub fn status(&self) -> Result<(Record, Status)> {
        match self.load() {
            Ok(record) => {
                let status = if !is_alive(&record) {
                    Status::Stopped
                } else if self.is_frozen() {
                    Status::Paused
                } else if self.has(CTL_SOCKET) {
                    Status::Created
                } else {
                    Status::Running
                };
                Ok((record, status))
            }
            Err(Error::Sys {
                errno: Errno::ENOENT,
                ..
            }) => Err(Error::NotFound {
                id: self.id.clone(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Whether the container's cgroup (if it has one) is frozen. A cgroup
    /// that cannot be read counts as not frozen: the status is for
    /// reporting, and `resume` reads it again to act.
    fn is_frozen(&self) -> bool {
        self.load_cgroup()
            .and_then(|r| crate::cgroup::reopen(&r).ok())
            .is_some_and(|cg| cg.is_frozen().unwrap_or(false))
    }

    /// True while the entry is being created (no record yet, lock held).
    pub fn is_creating(&self) -> bool {
        !self.has(STATE_FILE) && self.is_locked()
    }

    fn has(&self, name: &str) -> bool {
        nix::unistd::faccessat(
            &self.dir,
            name,
            nix::unistd::AccessFlags::F_OK,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok()
    }
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("abc", true)]
    #[case("buildah-buildah123", true)]
    #[case("node.user.1.0.0", true)]
    #[case("a_b+c-d.e", true)]
    #[case("", false)]
    #[case(".hidden", false)]
    #[case("..", false)]
    #[case("a/b", false)]
    #[case("../etc", false)]
    #[case("a b", false)]
    #[case("a\nb", false)]
    fn ids(#[case] id: &str, #[case] ok: bool) {
        assert_eq!(check_id(id).is_ok(), ok, "{id:?}");
    }

    #[test]
    fn long_ids_are_refused() {
        assert!(check_id(&"a".repeat(MAX_ID_LEN)).is_ok());
        assert!(check_id(&"a".repeat(MAX_ID_LEN + 1)).is_err());
    }
}
