//! Resolving and creating paths inside the container's root by fd.
//!
//! Every lookup is `openat2(root, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`:
//! `..` and absolute symlinks stop at the root, so no component of a mount
//! destination can lead out of it, whatever the image holds. Missing
//! components are made one at a time with `mkdirat` on the fd of their
//! parent, each re-resolved the same way, so a symlink swapped in meanwhile
//! cannot redirect the creation. The result is an `O_PATH` fd that mounts
//! are made onto; its real path is checked to be under the root, which
//! catches a directory renamed out of the root after it was resolved.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

/// What to create at a missing destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// The container's root, open, with the host path it was opened at (for
/// messages and for the escape check).
pub struct Root {
    pub fd: OwnedFd,
    pub path: PathBuf,
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

impl Root {
    /// Open `path` (a directory) as the root.
    pub fn open(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("open root", path, e))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// A host-side name for `inside`, for messages.
    pub fn display(&self, inside: &Path) -> PathBuf {
        self.path.join(inside.strip_prefix("/").unwrap_or(inside))
    }

    /// Open `inside` (a path in the container) with `flags`, resolved in
    /// the root.
    pub fn open_in(&self, inside: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        let rel = inside.strip_prefix("/").unwrap_or(inside);
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        nix::fcntl::openat2(self.fd.as_fd(), rel, how(flags))
    }

    /// Open `inside` as an `O_PATH` fd, creating it (and its parents) when
    /// missing, and check that it is inside the root.
    pub fn ensure(&self, inside: &Path, kind: Kind) -> Result<OwnedFd> {
        self.refuse_special_links(inside)?;
        let fd = match self.open_in(inside, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => self.create(inside, kind)?,
            Err(e) => {
                return Err(Error::sys(
                    "resolve mount destination",
                    self.display(inside),
                    e,
                ))
            }
        };
        self.check_inside(&fd, inside)?;
        Ok(fd)
    }

    fn create(&self, inside: &Path, kind: Kind) -> Result<OwnedFd> {
        let mut parent = self
            .fd
            .try_clone()
            .map_err(|e| Error::io("resolve mount destination", self.display(inside), e))?;
        let mut sofar = PathBuf::from("/");
        let names: Vec<&OsStr> = inside.iter().filter(|c| *c != OsStr::new("/")).collect();
        for (i, name) in names.iter().enumerate() {
            sofar.push(name);
            let last = i + 1 == names.len();
            match self.open_in(&sofar, OFlag::O_PATH) {
                Ok(fd) => {
                    parent = fd;
                    continue;
                }
                Err(Errno::ENOENT) => {}
                Err(e) => {
                    return Err(Error::sys(
                        "resolve mount destination",
                        self.display(&sofar),
                        e,
                    ))
                }
            }
            let made = if last && kind == Kind::File {
                nix::fcntl::openat(
                    &parent,
                    *name,
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_CLOEXEC
                        | OFlag::O_NOFOLLOW,
                    Mode::from_bits_truncate(0o644),
                )
                .map(drop)
            } else {
                nix::sys::stat::mkdirat(&parent, *name, Mode::from_bits_truncate(0o755))
            };
            match made {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => {
                    return Err(Error::sys(
                        "create mount destination",
                        self.display(&sofar),
                        e,
                    ))
                }
            }
            parent = self
                .open_in(&sofar, OFlag::O_PATH)
                .map_err(|e| Error::sys("resolve mount destination", self.display(&sofar), e))?;
        }
        Ok(parent)
    }

    /// hutch writes into the container's `/dev`, `/proc` and `/sys` (devices,
    /// masks, sysctls) trusting them to be what it mounted there; an image
    /// whose `/dev`, `/proc` or `/sys` is a symlink could redirect those
    /// writes, so such an image is refused outright.
    fn refuse_special_links(&self, inside: &Path) -> Result<()> {
        let Some(first) = inside.iter().find(|c| *c != OsStr::new("/")) else {
            return Ok(());
        };
        if ![OsStr::new("dev"), OsStr::new("proc"), OsStr::new("sys")].contains(&first) {
            return Ok(());
        }
        match nix::sys::stat::fstatat(&self.fd, first, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st)
                if nix::sys::stat::SFlag::from_bits_truncate(st.st_mode)
                    & nix::sys::stat::SFlag::S_IFMT
                    == nix::sys::stat::SFlag::S_IFLNK =>
            {
                Err(Error::sys(
                    "refuse a root whose top-level entry is a symlink",
                    self.display(Path::new(first)),
                    Errno::ELOOP,
                ))
            }
            _ => Ok(()),
        }
    }

    /// Check that the object `fd` names is (still) under the root.
    pub fn check_inside(&self, fd: &OwnedFd, inside: &Path) -> Result<()> {
        let real = fd_path(fd.as_fd())
            .map_err(|e| Error::sys("check mount destination", self.display(inside), e))?;
        if real.starts_with(&self.path) {
            Ok(())
        } else {
            Err(Error::sys(
                "mount destination escapes the root",
                self.display(inside),
                Errno::EXDEV,
            ))
        }
    }
}

/// The path the kernel has for `fd` (`readlink /proc/self/fd/N`).
pub fn fd_path(fd: BorrowedFd<'_>) -> nix::Result<PathBuf> {
    nix::fcntl::readlink(&proc_fd(fd)).map(PathBuf::from)
}

/// `/proc/self/fd/N` for `fd`: a name for the very object `fd` holds, used
/// as the target of mount(2).
pub fn proc_fd(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
}
