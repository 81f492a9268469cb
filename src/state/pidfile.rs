//! The caller's `--pid-file`.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::error::{Error, Result};

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
