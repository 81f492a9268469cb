//! The state directory: one subdirectory per container, holding
//!
//! - `state.json`: what `create` recorded (pid, its start time, bundle,
//!   annotations), written to a temporary name and renamed into place;
//! - `ctl`: the socket the waiting container process listens on; it exists
//!   exactly while the container is `created`.
//!
//! The directory itself is the lock: `mkdir` decides which of two callers
//! racing on one id wins, and `flock` on it tells a `create` in progress
//! (status `creating`) from one that died half-way.
//!
//! Status is never stored; it is read from the kernel each time: a pid that
//! is gone, a zombie, or a pid whose start time differs from the recorded
//! one (the pid was reused) is `stopped`; a live one whose cgroup is frozen
//! (`pause`) is `paused`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::spec::Host;

/// The OCI status of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    /// Its cgroup is frozen (`pause`); `resume` thaws it.
    Paused,
    Stopped,
}

impl Status {
    /// The OCI name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
    /// `start` needs a created container.
    pub fn can_start(self) -> bool {
        self == Status::Created
    }
    /// `kill` needs a container whose process exists.
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
    /// `pause` takes a created or running container (as runc does: a
    /// created one is frozen where it waits for `start`).
    pub fn can_pause(self) -> bool {
        matches!(self, Status::Created | Status::Running)
    }
    /// `resume` takes only a paused container.
    pub fn can_resume(self) -> bool {
        self == Status::Paused
    }
    /// `update`, `events` and `ps` need the container's processes (runc
    /// refuses a stopped container).
    pub fn has_processes(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
    /// `delete` without `--force` takes only a stopped container, as the
    /// runtime spec requires (runc and crun also take a created one).
    pub fn can_delete(self) -> bool {
        self == Status::Stopped
    }
}

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

/// What `create` records about a container.
#[derive(Clone, Debug)]
pub struct Record {
    pub id: String,
    pub oci_version: String,
    pub pid: Pid,
    /// Field 22 of `/proc/PID/stat` when the process was made.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub annotations: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub created: u64,
    /// Hooks later operations run: poststart (by `start`), poststop (by `delete`).
    pub poststart: Vec<crate::hooks::Hook>,
    pub poststop: Vec<crate::hooks::Hook>,
}

impl Record {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "ociVersion": self.oci_version,
            "pid": self.pid.as_raw(),
            "startTime": self.start_time,
            "bundle": self.bundle,
            "annotations": self.annotations,
            "created": self.created,
            "poststart": crate::hooks::to_json(&self.poststart),
            "poststop": crate::hooks::to_json(&self.poststop),
        })
    }

    fn from_json(v: &serde_json::Value) -> Option<Record> {
        Some(Record {
            id: v.get("id")?.as_str()?.to_string(),
            oci_version: v.get("ociVersion")?.as_str()?.to_string(),
            pid: Pid::from_raw(i32::try_from(v.get("pid")?.as_i64()?).ok()?),
            start_time: v.get("startTime")?.as_u64()?,
            bundle: PathBuf::from(v.get("bundle")?.as_str()?),
            annotations: v
                .get("annotations")?
                .as_object()?
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
            created: v.get("created")?.as_u64()?,
            poststart: v
                .get("poststart")
                .map(crate::hooks::from_json)
                .unwrap_or_default(),
            poststop: v
                .get("poststop")
                .map(crate::hooks::from_json)
                .unwrap_or_default(),
        })
    }

    /// The OCI state document for this record with `status`.
    pub fn oci_state(&self, status: Status) -> serde_json::Value {
        let mut v = serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": status.as_str(),
            "bundle": self.bundle,
            "annotations": self.annotations,
        });
        if status != Status::Stopped {
            v["pid"] = self.pid.as_raw().into();
        }
        v
    }
}

/// Facts about a process read from `/proc/PID/stat`.
#[derive(Clone, Copy, Debug)]
pub struct ProcStat {
    /// The state letter (`R`, `S`, `Z`, …).
    pub state: u8,
    /// The kernel's `PF_*` flags.
    pub flags: u64,
    pub start_time: u64,
}

/// `PF_EXITING`: the process is on its way out (its memory may already be
/// gone) but is not a zombie yet.
const PF_EXITING: u64 = 0x4;

/// Read `/proc/PID/stat`; `None` when there is no such process.
pub fn proc_stat(pid: Pid) -> Option<ProcStat> {
    let text = std::fs::read(format!("/proc/{}/stat", pid.as_raw())).ok()?;
    // The command name is in parentheses and may itself hold ") ", so parse
    // from the last ')'.
    let end = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[end + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.bytes().next()?;
    let flags = fields.nth(5)?.parse().ok()?;
    let start_time = fields.nth(12)?.parse().ok()?;
    Some(ProcStat {
        state,
        flags,
        start_time,
    })
}

/// True if `pid` is the live process `record` describes (not gone, not a
/// zombie, not a reused pid).
pub fn is_alive(record: &Record) -> bool {
    match proc_stat(record.pid) {
        Some(s) => {
            s.start_time == record.start_time
                && !matches!(s.state, b'Z' | b'X' | b'x')
                && s.flags & PF_EXITING == 0
        }
        None => false,
    }
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
    /// locked, and renamed into place without replacing anything, so it is
    /// locked from the moment it is visible. A leftover of a `create` that
    /// died before recording anything (no record, no lock) is cleared, under
    /// the state directory's lock so that two callers cannot both clear it.
    pub fn reserve(&self, id: &str) -> Result<Entry> {
        check_id(id)?;
        let tmp = format!(".new-{}-{}", std::process::id(), id.len());
        let _ = nix::unistd::unlinkat(
            &self.dir,
            tmp.as_str(),
            nix::unistd::UnlinkatFlags::RemoveDir,
        );
        nix::sys::stat::mkdirat(&self.dir, tmp.as_str(), Mode::from_bits_truncate(0o700))
            .map_err(|e| Error::sys("create state entry", self.path.join(&tmp), e))?;
        let mut entry = self.open_entry(&tmp)?;
        entry.lock_exclusive()?;
        for _ in 0..2 {
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
                Err(Errno::EEXIST | Errno::ENOTEMPTY) => {
                    let _guard = self.lock()?;
                    let existing = self.open_entry(id)?;
                    if existing.has(STATE_FILE) || existing.is_locked() {
                        break;
                    }
                    existing.remove();
                }
                Err(e) => {
                    entry.remove();
                    return Err(Error::sys("create state entry", self.path.join(id), e));
                }
            }
        }
        entry.remove();
        Err(Error::Exists { id: id.to_string() })
    }

    /// The state directory's own lock (taken only to clear leftovers).
    fn lock(&self) -> Result<Flock<OwnedFd>> {
        let fd = nix::fcntl::openat(
            &self.dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("lock state directory", &self.path, e))?;
        Flock::lock(fd, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::sys("lock state directory", &self.path, e))
    }

    /// Open the entry of an existing container.
    pub fn entry(&self, id: &str) -> Result<Entry> {
        check_id(id)?;
        self.open_entry(id).map_err(|e| match e {
            Error::Sys {
                errno: Errno::ENOENT,
                ..
            } => Error::NotFound { id: id.to_string() },
            other => other,
        })
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

    /// Take the entry's lock, waiting for a holder to finish.
    pub fn lock_wait(&mut self) -> Result<()> {
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
        let fd = nix::fcntl::openat(
            &self.dir,
            CGROUP_FILE,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .ok()?;
        let text = std::io::read_to_string(std::fs::File::from(fd)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The copy of `config.json` kept at create.
    pub fn load_config(&self) -> Result<Vec<u8>> {
        let fd = nix::fcntl::openat(
            &self.dir,
            CONFIG_FILE,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("read", self.path.join(CONFIG_FILE), e))?;
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut text)
            .map_err(|e| Error::io("read", self.path.join(CONFIG_FILE), e))?;
        Ok(text)
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
        let fd = nix::fcntl::openat(
            &self.dir,
            STATE_FILE,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("read state", &path, e))?;
        let mut text = Vec::with_capacity(512);
        std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut text)
            .map_err(|e| Error::io("read state", &path, e))?;
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

    /// Remove the entry and everything in it. Best effort: what cannot be
    /// removed is left for `delete --force`.
    pub fn remove(self) {
        // The cgroups hutch made go first (their processes are gone, or
        // are killed there); a failure is a warning.
        if let Some(record) = self.load_cgroup() {
            if let Err(e) = crate::cgroup::remove(&record) {
                tracing::warn!("{e}");
            }
        }
        for name in [
            STATE_FILE,
            ".state.json.tmp",
            CTL_SOCKET,
            CONFIG_FILE,
            ".config.json.tmp",
            CGROUP_FILE,
            ".cgroup.json.tmp",
        ] {
            let _ = nix::unistd::unlinkat(&self.dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// The caller's `--pid-file`, with its directory opened when the command
/// starts (a joining `exec` no longer sees the host's paths when it writes).
pub struct PidFile {
    dir: OwnedFd,
    name: std::ffi::OsString,
    path: PathBuf,
}

impl PidFile {
    /// Open the directory `path` will be written in.
    pub fn prepare(path: &Path) -> Result<PidFile> {
        let path = std::path::absolute(path).map_err(|e| Error::io("write pid file", path, e))?;
        let name = path
            .file_name()
            .ok_or_else(|| Error::Usage(format!("--pid-file `{}` names no file", path.display())))?
            .to_os_string();
        let parent = path.parent().unwrap_or(Path::new("/"));
        let dir = nix::fcntl::open(
            parent,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("open the pid file's directory", parent, e))?;
        Ok(PidFile { dir, name, path })
    }

    /// Write `pid`: to a temporary file beside it, then renamed, so a reader
    /// never sees an empty file.
    pub fn write(&self, pid: Pid) -> Result<()> {
        let mut tmp = std::ffi::OsString::from(".");
        tmp.push(&self.name);
        tmp.push(format!(".hutch-{}", std::process::id()));
        let fail = |e: Errno| Error::sys("write pid file", &self.path, e);
        let fd = nix::fcntl::openat(
            &self.dir,
            tmp.as_os_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(fail)?;
        let written = std::fs::File::from(fd).write_all(pid.as_raw().to_string().as_bytes());
        let renamed = written
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
            .and_then(|()| {
                nix::fcntl::renameat(&self.dir, tmp.as_os_str(), &self.dir, self.name.as_os_str())
            });
        if let Err(e) = renamed {
            let _ = nix::unistd::unlinkat(
                &self.dir,
                tmp.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            return Err(fail(e));
        }
        Ok(())
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

    #[rstest]
    #[case(Status::Creating, false, false, false, false, false)]
    #[case(Status::Created, true, true, false, true, false)]
    #[case(Status::Running, false, true, false, true, false)]
    #[case(Status::Paused, false, true, false, false, true)]
    #[case(Status::Stopped, false, false, true, false, false)]
    fn transitions(
        #[case] s: Status,
        #[case] start: bool,
        #[case] kill: bool,
        #[case] delete: bool,
        #[case] pause: bool,
        #[case] resume: bool,
    ) {
        assert_eq!(
            (
                s.can_start(),
                s.can_kill(),
                s.can_delete(),
                s.can_pause(),
                s.can_resume()
            ),
            (start, kill, delete, pause, resume)
        );
    }

    #[test]
    fn record_round_trips() {
        let r = Record {
            id: "x".into(),
            oci_version: "1.0.2".into(),
            pid: Pid::from_raw(42),
            start_time: 7,
            bundle: "/b".into(),
            annotations: [("k".to_string(), "v".to_string())].into(),
            created: 1,
            poststart: Vec::new(),
            poststop: Vec::new(),
        };
        let back = Record::from_json(&r.to_json()).unwrap();
        assert_eq!(
            (&back.id, back.pid, back.start_time, &back.annotations),
            (&r.id, r.pid, r.start_time, &r.annotations)
        );
        let s = r.oci_state(Status::Stopped);
        assert_eq!(s["status"], "stopped");
        assert!(s.get("pid").is_none());
    }

    #[test]
    fn own_process_stat_is_readable() {
        let me = proc_stat(nix::unistd::getpid()).unwrap();
        assert!(me.start_time > 0);
        assert!(b"RSD".contains(&me.state), "state {}", me.state as char);
    }
}
