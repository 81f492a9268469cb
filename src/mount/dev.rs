//! The container's `/dev`: a minimal one when the config mounts none, the
//! default devices the runtime spec requires, the config's `linux.devices`,
//! and the standard links (`/dev/console` is `console.rs`'s).
//!
//! Inside a user namespace device nodes cannot be made, so devices are bind
//! mounts of the host's nodes; as real root they are made with `mknod`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};

use super::resolve::{proc_fd, Kind, Root};
use crate::error::{Error, Result};
use crate::spec::DevicePlan;
use crate::sys;

/// The devices every container gets: name, major, minor.
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Mount a tmpfs on `/dev` with `pts` (a new devpts instance) and `shm`,
/// for configs that mount nothing there.
pub fn mount_minimal(root: &Root, devpts: Option<&OwnedFd>) -> Result<()> {
    let dev = root.ensure(Path::new("/dev"), Kind::Dir)?;
    nix::mount::mount(
        Some("tmpfs"),
        &proc_fd(dev.as_fd()),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| Error::sys("mount tmpfs on", root.display(Path::new("/dev")), e))?;
    let pts = root.ensure(Path::new("/dev/pts"), Kind::Dir)?;
    // The terminal's, when it has one; else a new one. A devpts the kernel
    // refuses (an old kernel in a user namespace) only costs the container
    // its ptys; nothing else depends on it.
    if let Some(devpts) = devpts {
        sys::move_mount_to_fd(devpts.as_fd(), pts.as_fd())
            .map_err(|e| Error::sys("attach devpts on", root.display(Path::new("/dev/pts")), e))?;
    } else if let Err(e) = nix::mount::mount(
        Some("devpts"),
        &proc_fd(pts.as_fd()),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(super::console::MINIMAL_DEVPTS),
    ) {
        tracing::warn!("cannot mount devpts on /dev/pts: {}", e.desc());
    }
    let dev_fd = root
        .open_in(Path::new("/dev"), OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| Error::sys("open", root.display(Path::new("/dev")), e))?;
    make_dir(dev_fd.as_fd(), "shm", 0o1777, root)?;
    make_dir(dev_fd.as_fd(), "mqueue", 0o755, root)?;
    Ok(())
}

fn make_dir(dev: BorrowedFd<'_>, name: &str, mode: u32, root: &Root) -> Result<()> {
    match nix::sys::stat::mkdirat(dev, name, Mode::from_bits_truncate(mode)) {
        Ok(()) => {
            // mkdir applies the umask; set the mode the directory must have.
            let fd = nix::fcntl::openat(
                dev,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::sys("open", root.display(&Path::new("/dev").join(name)), e))?;
            nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))
                .map_err(|e| Error::sys("chmod", root.display(&Path::new("/dev").join(name)), e))
        }
        Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(Error::sys(
            "create",
            root.display(&Path::new("/dev").join(name)),
            e,
        )),
    }
}

/// Provide the config's devices, then the default ones the config did not
/// name, then the links (`/dev/fd`, `/dev/stdin`, …, `/dev/ptmx`,
/// `/dev/core`).
pub fn populate(root: &Root, devices: &[DevicePlan], in_userns: bool) -> Result<()> {
    for d in devices {
        provide(root, d, in_userns)?;
    }
    for (name, major, minor) in DEFAULT_DEVICES {
        let path = PathBuf::from("/dev").join(name);
        if devices.iter().any(|d| d.path == path) {
            continue;
        }
        let d = DevicePlan {
            path,
            kind: SFlag::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        provide(root, &d, in_userns)?;
    }
    let dev = root
        .open_in(Path::new("/dev"), OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| Error::sys("open", root.display(Path::new("/dev")), e))?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        match nix::unistd::symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(Error::sys(
                    "create link",
                    root.display(&Path::new("/dev").join(name)),
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// One device: an existing node that matches is kept, one that does not
/// is an error (as the runtime spec says); a missing one is made.
fn provide(root: &Root, d: &DevicePlan, in_userns: bool) -> Result<()> {
    let shown = root.display(&d.path);
    let want = nix::sys::stat::makedev(d.major, d.minor);
    if let Ok(fd) = root.open_in(&d.path, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
        let st = nix::sys::stat::fstat(&fd).map_err(|e| Error::sys("stat device", &shown, e))?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == d.kind && (kind == SFlag::S_IFIFO || st.st_rdev == want) {
            return Ok(());
        }
        return Err(Error::sys(
            "provide device (a different file is there)",
            &shown,
            Errno::EEXIST,
        ));
    }
    // A FIFO needs no privilege; a device node does.
    if in_userns && d.kind != SFlag::S_IFIFO {
        let host = &d.path;
        let target = root.ensure(&d.path, Kind::File)?;
        let c = std::ffi::CString::new(host.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::sys("bind device", host, Errno::EINVAL))?;
        let tree = sys::open_tree_clone(&c, false)
            .map_err(|e| Error::sys("bind device from host", host, e))?;
        let st = nix::sys::stat::fstat(&tree).map_err(|e| Error::sys("stat device", host, e))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != d.kind
            || (d.kind != SFlag::S_IFIFO && st.st_rdev != want)
        {
            return Err(Error::sys(
                "bind device from host (not the device asked for)",
                host,
                Errno::ENODEV,
            ));
        }
        // No set-uid program and no program at all runs from a device
        // node (as crun binds them).
        sys::mount_setattr(
            tree.as_fd(),
            false,
            sys::attr::NOSUID | sys::attr::NOEXEC,
            0,
            0,
        )
        .map_err(|e| Error::sys("make nosuid,noexec", &shown, e))?;
        sys::move_mount_to_fd(tree.as_fd(), target.as_fd())
            .map_err(|e| Error::sys("bind device onto", &shown, e))?;
        return Ok(());
    }
    let parent = d.path.parent().unwrap_or(Path::new("/dev"));
    let name = d
        .path
        .file_name()
        .ok_or_else(|| Error::sys("provide device", &shown, Errno::EINVAL))?;
    let dir = root.ensure(parent, Kind::Dir)?;
    let dir = nix::fcntl::openat(
        &dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open", root.display(parent), e))?;
    nix::sys::stat::mknodat(&dir, name, d.kind, Mode::from_bits_truncate(d.mode), want)
        .map_err(|e| Error::sys("make device", &shown, e))?;
    nix::sys::stat::fchmodat(
        &dir,
        name,
        Mode::from_bits_truncate(d.mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| Error::sys("chmod device", &shown, e))?;
    nix::unistd::fchownat(
        &dir,
        name,
        Some(nix::unistd::Uid::from_raw(d.uid)),
        Some(nix::unistd::Gid::from_raw(d.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::sys("chown device", &shown, e))
}
