//! File operations shared by the backends: directories opened by fd,
//! made one component at a time, never through a symlink; small files
//! read and written whole; a cgroup removed with what still runs in it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::statfs::{FsType, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};

use crate::error::{Error, Result};

/// Which kind of cgroup file system a directory is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fs {
    V1,
    V2,
}

impl Fs {
    fn magic(self) -> FsType {
        match self {
            Fs::V1 => CGROUP_SUPER_MAGIC,
            Fs::V2 => CGROUP2_SUPER_MAGIC,
        }
    }
}

/// What a directory is on (`None`: not a cgroup file system).
pub fn fs_of(fd: BorrowedFd<'_>) -> nix::Result<Option<Fs>> {
    let t = nix::sys::statfs::fstatfs(fd)?.filesystem_type();
    Ok(if t == CGROUP2_SUPER_MAGIC {
        Some(Fs::V2)
    } else if t == CGROUP_SUPER_MAGIC {
        Some(Fs::V1)
    } else {
        None
    })
}

pub fn open_dir(at: BorrowedFd<'_>, name: &Path) -> nix::Result<OwnedFd> {
    openat(
        at,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Open the directory at `path`, checking it is on `fs`.
pub fn open_cgroup(path: &Path, fs: Fs) -> Result<OwnedFd> {
    let dir =
        open_dir(nix::fcntl::AT_FDCWD, path).map_err(|e| Error::sys("open cgroup", path, e))?;
    match nix::sys::statfs::fstatfs(&dir) {
        Ok(s) if s.filesystem_type() == fs.magic() => Ok(dir),
        Ok(_) => Err(Error::sys(
            match fs {
                Fs::V1 => "open cgroup (not on cgroup v1)",
                Fs::V2 => "open cgroup (not on cgroup2)",
            },
            path,
            Errno::EXDEV,
        )),
        Err(e) => Err(Error::sys("statfs", path, e)),
    }
}

/// Open file `name` in `dir` for writing.
pub fn open_file(dir: BorrowedFd<'_>, name: &str) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Write `value` to file `name` in `dir` in one write(2), as the kernel
/// wants a cgroup file written.
pub fn write(dir: BorrowedFd<'_>, name: &str, value: &str) -> nix::Result<()> {
    let fd = open_file(dir, name)?;
    nix::unistd::write(&fd, value.as_bytes()).map(drop)
}

/// The whole of file `name` in `dir`.
pub fn read(dir: BorrowedFd<'_>, name: &str) -> nix::Result<String> {
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    std::io::read_to_string(std::fs::File::from(fd))
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// A number file (`max` and a missing file are `None`).
pub fn read_u64(dir: BorrowedFd<'_>, name: &str) -> Option<u64> {
    read(dir, name).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat, memory.events).
pub fn read_keyed(dir: BorrowedFd<'_>, name: &str) -> Vec<(String, u64)> {
    read(dir, name)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Why a cgroup could not be had without it being an error.
/// Freeze or thaw (`on`) the cgroup at `path`: call `reached` until it
/// says the freezer got there, for at most 5 s (then ETIMEDOUT naming the
/// step and the cgroup). Both backends ask the kernel and wait the same way.
pub fn wait_for_freezer(
    path: &Path,
    on: bool,
    mut reached: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if reached()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            let step = if on { "freeze" } else { "thaw" };
            return Err(Error::sys(step, path, Errno::ETIMEDOUT));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn not_delegated(e: Errno) -> bool {
    matches!(e, Errno::EACCES | Errno::EPERM | Errno::EROFS)
}

/// A cgroup directory made (or found) and open.
#[derive(Debug)]
pub struct Dir {
    pub fd: OwnedFd,
    /// Its path in the file system (`/sys/fs/cgroup/memory/a/b`).
    pub path: PathBuf,
    /// The directories made for it, deepest first.
    pub made: Vec<PathBuf>,
}

/// Why a cgroup could not be made.
pub enum Made {
    /// The caller may not: the step, its path and the errno.
    Denied(&'static str, PathBuf, Errno),
    Failed(Error),
}

/// Open (making what is missing) `below` under the mount of `fs` at
/// `point`, one component at a time, and check that the caller may move
/// processes into it. On failure what was made is removed.
pub fn make(point: &Path, below: &Path, fs: Fs) -> std::result::Result<Dir, Made> {
    let failed = |step: &'static str, p: &Path, e: Errno| Made::Failed(Error::sys(step, p, e));
    let mut dir =
        open_dir(nix::fcntl::AT_FDCWD, point).map_err(|e| failed("open cgroup mount", point, e))?;
    match nix::sys::statfs::fstatfs(&dir) {
        Ok(s) if s.filesystem_type() == fs.magic() => {}
        Ok(_) => return Err(failed("open cgroup mount", point, Errno::EXDEV)),
        Err(e) => return Err(failed("statfs", point, e)),
    }
    let mut path = point.to_path_buf();
    let mut made: Vec<PathBuf> = Vec::new();
    let undo = |made: &[PathBuf], m: Made| {
        let mut deepest_first = made.to_vec();
        deepest_first.reverse();
        discard(&deepest_first);
        m
    };
    for comp in below.components() {
        let Component::Normal(name) = comp else {
            continue;
        };
        path.push(name);
        let name = Path::new(name);
        let next = match open_dir(dir.as_fd(), name) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(&dir, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) => made.push(path.clone()),
                    Err(Errno::EEXIST) => {}
                    Err(e) if not_delegated(e) => {
                        return Err(undo(&made, Made::Denied("make cgroup", path, e)))
                    }
                    Err(e) => return Err(undo(&made, failed("make cgroup", &path, e))),
                }
                open_dir(dir.as_fd(), name)
                    .map_err(|e| undo(&made, failed("open cgroup", &path, e)))?
            }
            Err(e) if not_delegated(e) => {
                return Err(undo(&made, Made::Denied("open cgroup", path, e)))
            }
            Err(e) => return Err(undo(&made, failed("open cgroup", &path, e))),
        };
        dir = next;
    }
    // The check that the caller may move processes in (the clone into a
    // cgroup2 directory makes the same one): a denial is not an error.
    match open_file(dir.as_fd(), "cgroup.procs") {
        Ok(_) => {}
        Err(e) if not_delegated(e) => {
            return Err(undo(
                &made,
                Made::Denied("open", path.join("cgroup.procs"), e),
            ))
        }
        Err(e) => return Err(undo(&made, failed("open", &path.join("cgroup.procs"), e))),
    };
    made.reverse();
    Ok(Dir {
        fd: dir,
        path,
        made,
    })
}

/// Best-effort removal of `made` (deepest first), for a failed create.
pub fn discard(made: &[PathBuf]) {
    for p in made {
        let _ = std::fs::remove_dir(p);
    }
}

/// The pids in cgroup `dir` and the cgroups below it.
pub fn pids_below(dir: BorrowedFd<'_>) -> nix::Result<Vec<i32>> {
    let mut out: Vec<i32> = read(dir, "cgroup.procs")?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for child in children(dir) {
        if let Ok(fd) = open_dir(dir, &child) {
            out.extend(pids_below(fd.as_fd())?);
        }
    }
    Ok(out)
}

/// The cgroups directly below `dir`.
fn children(dir: BorrowedFd<'_>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(mut list) = nix::dir::Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        for e in list.iter().flatten() {
            let n = e.file_name().to_bytes();
            if e.file_type() == Some(nix::dir::Type::Directory) && n != b"." && n != b".." {
                out.push(PathBuf::from(std::ffi::OsStr::from_bytes(n)));
            }
        }
    }
    out
}

/// Remove the directory at `path` (cgroup v1 or v2), killing whatever
/// still runs in it and removing the cgroups made below it.
pub fn remove(path: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let parent_fd = match open_dir(nix::fcntl::AT_FDCWD, parent) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys("open cgroup", parent, e)),
    };
    let fs = match fs_of(parent_fd.as_fd()) {
        Ok(Some(fs)) => fs,
        Ok(None) => {
            return Err(Error::sys(
                "remove cgroup (not on a cgroup file system)",
                path,
                Errno::EXDEV,
            ))
        }
        Err(e) => return Err(Error::sys("statfs", parent, e)),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    remove_tree(parent_fd.as_fd(), Path::new(name), fs, deadline)
        .map_err(|e| Error::sys("remove cgroup", path, e))
}

/// rmdir `name` in `parent`. While it is busy: kill what runs in it
/// (v2: `cgroup.kill` takes the whole subtree; v1: each pid listed, again
/// each round), remove the cgroups below it, and retry until `deadline`.
fn remove_tree(parent: BorrowedFd<'_>, name: &Path, fs: Fs, deadline: Instant) -> nix::Result<()> {
    let rmdir = || nix::unistd::unlinkat(parent, name, nix::unistd::UnlinkatFlags::RemoveDir);
    let mut killed = false;
    loop {
        match rmdir() {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) if Instant::now() < deadline => {}
            Err(e) => return Err(e),
        }
        let dir = open_dir(parent, name)?;
        match fs {
            Fs::V2 if !killed => {
                killed = true;
                let _ = write(dir.as_fd(), "cgroup.kill", "1");
            }
            Fs::V2 => {}
            Fs::V1 => {
                // A frozen cgroup's processes cannot die: thaw it first.
                let _ = write(dir.as_fd(), "freezer.state", "THAWED");
                for pid in read(dir.as_fd(), "cgroup.procs")
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok())
                {
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        for child in children(dir.as_fd()) {
            remove_tree(dir.as_fd(), &child, fs, deadline)?;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
