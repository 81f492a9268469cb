//! Reading files a caller controls (`config.json`, `--process`, the state
//! entry's files, the container's `/etc/passwd`): never blocking, never
//! without bound. The file is opened with `O_NONBLOCK` (a FIFO then opens
//! at once), must be a regular file, and is read up to [`MAX_INPUT`] bytes;
//! anything else fails at once with one line naming the file and what is
//! wrong with it. Symlinks are followed where the caller asks (a bundle's
//! `config.json` may be one, as with runc and crun).

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use crate::error::{Error, Result};

/// The most hutch reads of one such file: 8 MiB. The largest configs
/// seen (buildah's and podman's, with a seccomp profile of every
/// syscall) are about 100 KiB; an argument list and environment larger
/// than the kernel's 2 MiB `ARG_MAX` cannot be executed anyway.
pub const MAX_INPUT: u64 = 8 << 20;

/// Whether to follow a symlink in the last component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    Yes,
    No,
}

/// Read the regular file at `path` (of at most [`MAX_INPUT`] bytes).
pub fn read(path: &Path, follow: Follow) -> Result<Vec<u8>> {
    let fd = nix::fcntl::open(path, flags(follow), Mode::empty())
        .map_err(|e| Error::sys("read", path, e))?;
    read_fd(fd, path)
}

/// Read the regular file `name` in `dir` (of at most [`MAX_INPUT`]
/// bytes); `path` names it in errors.
pub fn read_at(dir: BorrowedFd<'_>, name: &str, path: &Path, follow: Follow) -> Result<Vec<u8>> {
    let fd = nix::fcntl::openat(dir, name, flags(follow), Mode::empty())
        .map_err(|e| Error::sys("read", path, e))?;
    read_fd(fd, path)
}

fn flags(follow: Follow) -> OFlag {
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    match follow {
        Follow::Yes => flags,
        Follow::No => flags | OFlag::O_NOFOLLOW,
    }
}

fn read_fd(fd: OwnedFd, path: &Path) -> Result<Vec<u8>> {
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| Error::sys("read", path, e))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        return Err(Error::io(
            "read",
            path,
            std::io::Error::other(format!("{}, not a regular file", kind_name(kind))),
        ));
    }
    let too_big = || {
        Error::io(
            "read",
            path,
            std::io::Error::other(format!(
                "larger than the {} MiB hutch reads",
                MAX_INPUT >> 20
            )),
        )
    };
    if st.st_size as u64 > MAX_INPUT {
        return Err(too_big());
    }
    // The size may change while it is read (a file being written): the
    // bound holds whatever fstat said.
    let mut text = Vec::with_capacity(st.st_size as usize);
    std::fs::File::from(fd)
        .take(MAX_INPUT + 1)
        .read_to_end(&mut text)
        .map_err(|e| Error::io("read", path, e))?;
    if text.len() as u64 > MAX_INPUT {
        return Err(too_big());
    }
    Ok(text)
}

fn kind_name(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFLNK => "a symlink",
        _ => "not a file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(path: &Path) -> String {
        read(path, Follow::Yes).unwrap_err().to_string()
    }

    #[test]
    fn only_bounded_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("hutch-input-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, b"{}").unwrap();
        assert_eq!(read(&file, Follow::Yes).unwrap(), b"{}");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read(&link, Follow::Yes).unwrap(), b"{}");
        assert!(read(&link, Follow::No).is_err());
        let zero = dir.join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(err(&zero).ends_with("a character device, not a regular file"));
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        assert!(
            err(&fifo).ends_with("a FIFO, not a regular file"),
            "{}",
            err(&fifo)
        );
        assert!(err(&dir).ends_with("a directory, not a regular file"));
        let big = dir.join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_INPUT + 1)
            .unwrap();
        assert!(err(&big).contains("larger than the 8 MiB"), "{}", err(&big));
        let edge = dir.join("edge");
        std::fs::File::create(&edge)
            .unwrap()
            .set_len(MAX_INPUT)
            .unwrap();
        assert_eq!(read(&edge, Follow::Yes).unwrap().len() as u64, MAX_INPUT);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
