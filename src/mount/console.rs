//! The terminal of a `process.terminal` container: a pty of the
//! container's own devpts, so that `tty` names `/dev/pts/0` as with runc
//! and crun, bound onto `/dev/console` too.
//!
//! The caller gets the pty master at `create` (buildah and conmon accept
//! on the console socket only after `create` returns), when the container
//! has no mounts yet. So the container process makes its devpts then, as a
//! detached mount (`fsopen`/`fsmount`) with the options of the config's
//! `/dev/pts` mount, opens the pty in it, and the start path attaches that
//! mount at `/dev/pts` in place of a new one. A config that mounts no
//! devpts at `/dev/pts` gets a pty of the devpts hutch started in, as
//! before: it is only `/dev/console` in the container.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;

use super::resolve::{proc_fd, Kind, Root};
use crate::error::{Error, Result};
use crate::spec::{MountKind, Plan};
use crate::sys;

/// The devpts options of the minimal `/dev` (see `dev::mount_minimal`).
pub const MINIMAL_DEVPTS: &str = "newinstance,ptmxmode=0666,mode=0620";

/// Which mount of the start path the terminal's devpts takes the place of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevptsAt {
    /// The devpts of the minimal `/dev`.
    Minimal,
    /// The config's mount with this index.
    Mount(usize),
}

/// The container's terminal, made at create.
pub struct Terminal {
    /// The pty's slave: the program's stdio and controlling terminal.
    pub slave: OwnedFd,
    /// The devpts instance the pty belongs to (detached until the start
    /// path attaches it), or none when the pty is the host's.
    pub devpts: Option<(DevptsAt, OwnedFd)>,
}

impl Terminal {
    /// The detached devpts to attach in place of mount `at`, if it is the
    /// terminal's.
    pub fn devpts_for(&self, at: DevptsAt) -> Option<&OwnedFd> {
        match &self.devpts {
            Some((want, fd)) if *want == at => Some(fd),
            _ => None,
        }
    }
}

/// Make the terminal: a devpts instance as the config mounts it at
/// `/dev/pts` and a pty in it. Returns the terminal and the pty master,
/// which goes to the caller's console socket.
pub fn new_terminal(plan: &Plan) -> Result<(Terminal, OwnedFd)> {
    let wanted = if plan.minimal_dev {
        Some((
            DevptsAt::Minimal,
            "devpts",
            MINIMAL_DEVPTS,
            sys::attr::NOSUID | sys::attr::NOEXEC,
        ))
    } else {
        plan.mounts
            .iter()
            .rposition(|m| {
                m.destination == Path::new("/dev/pts") && matches!(m.kind, MountKind::Devpts)
            })
            .map(|i| {
                let m = &plan.mounts[i];
                let attrs = super::bind_attrs(m.flags).0;
                (
                    DevptsAt::Mount(i),
                    m.fs_source.as_str(),
                    m.data.as_str(),
                    attrs,
                )
            })
    };
    let Some((at, source, data, attrs)) = wanted else {
        let (master, slave) = host_pty()?;
        return Ok((
            Terminal {
                slave,
                devpts: None,
            },
            master,
        ));
    };
    let devpts = match new_devpts(source, data, attrs) {
        // A gid= that is not mapped in the user namespace is refused; drop
        // it, as the start path does for a devpts it mounts.
        Err((_, Errno::EINVAL)) if data.split(',').any(|o| o.starts_with("gid=")) => {
            let data: Vec<&str> = data.split(',').filter(|o| !o.starts_with("gid=")).collect();
            new_devpts(source, &data.join(","), attrs)
        }
        other => other,
    }
    .map_err(|(step, e)| Error::sys(step, "devpts for /dev/pts", e))?;
    let (master, slave) =
        sys::open_pty_in(devpts.as_fd()).map_err(|e| Error::sys("open a pty in", "/dev/pts", e))?;
    Ok((
        Terminal {
            slave,
            devpts: Some((at, devpts)),
        },
        master,
    ))
}

/// A detached devpts mount with the options `data` (`key=value` or flags,
/// comma-separated) and the mount attributes `attrs`.
fn new_devpts(
    source: &str,
    data: &str,
    attrs: u64,
) -> std::result::Result<OwnedFd, (&'static str, Errno)> {
    let c = |s: &str| CString::new(s).map_err(|_| ("devpts option", Errno::EINVAL));
    let mut options = vec![(c("source")?, Some(c(source)?))];
    for o in data.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some((k, v)) => options.push((c(k)?, Some(c(v)?))),
            None => options.push((c(o)?, None)),
        }
    }
    let refs: Vec<(&std::ffi::CStr, Option<&std::ffi::CStr>)> = options
        .iter()
        .map(|(k, v)| (k.as_c_str(), v.as_deref()))
        .collect();
    sys::new_fs_mount(c"devpts", &refs, attrs)
}

/// A pty of the devpts hutch runs with (`/dev/ptmx`), as (master, slave).
fn host_pty() -> Result<(OwnedFd, OwnedFd)> {
    let (master, slave_path) = sys::open_pty().map_err(|e| Error::call("open a pty", e))?;
    let slave = nix::fcntl::open(
        &slave_path,
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open pty", &slave_path, e))?;
    Ok((master, slave))
}

/// Bind the terminal `slave` onto `/dev/console`, and give it to the
/// process's user (the container's devpts only: the host's pty is not the
/// container's to change), as runc and crun do.
///
/// The slave is cloned by its path, which names its mount in this
/// namespace (a pty opened in another mount namespace cannot be cloned by
/// fd: EINVAL), and checked to be the same file.
pub fn bind_console(root: &Root, terminal: &Terminal, uid: u32) -> Result<()> {
    let slave = terminal.slave.as_fd();
    let target = root.ensure(Path::new("/dev/console"), Kind::File)?;
    let path = super::resolve::fd_path(slave)
        .map_err(|e| Error::sys("find the pty of", proc_fd(slave), e))?;
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::sys("bind console", &path, Errno::EINVAL))?;
    let tree =
        sys::open_tree_clone(&c, false).map_err(|e| Error::sys("bind console from", &path, e))?;
    same_file(slave, tree.as_fd(), &path)?;
    // A plain bind, whatever the flags of the devpts mount (as crun's).
    sys::mount_setattr(
        tree.as_fd(),
        false,
        0,
        sys::attr::NOSUID | sys::attr::NOEXEC | sys::attr::NODEV,
        0,
    )
    .map_err(|e| Error::sys("set flags of console bind", &path, e))?;
    sys::move_mount_to_fd(tree.as_fd(), target.as_fd()).map_err(|e| {
        Error::sys(
            "bind console onto",
            root.display(Path::new("/dev/console")),
            e,
        )
    })?;
    if terminal.devpts.is_some() {
        nix::unistd::fchown(slave, Some(nix::unistd::Uid::from_raw(uid)), None)
            .map_err(|e| Error::sys("give the pty to the process's user", &path, e))?;
    }
    Ok(())
}

fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let want = nix::sys::stat::fstat(a).map_err(|e| Error::sys("stat pty", path, e))?;
    let got = nix::sys::stat::fstat(b).map_err(|e| Error::sys("stat pty", path, e))?;
    if (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino) {
        return Err(Error::sys(
            "bind console from (not the container's pty)",
            path,
            Errno::ENODEV,
        ));
    }
    Ok(())
}
