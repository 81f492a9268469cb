//! Preparing the container's root: the steps `init.rs` calls, in its order.
//!
//! Every target under the root is resolved by fd (see `resolve.rs`) and the
//! mount is made onto that fd. Bind mounts use the new mount API
//! (`open_tree` + `move_mount`), and their flags are set with
//! `mount_setattr`, which changes only the flags asked for and so never
//! trips over the flags the kernel locks in a user namespace. Read-only
//! flags are applied last ([`Deferred`]), after every mount point exists.

pub mod cgroup;
pub mod console;
pub mod dev;
pub mod fuse;
pub mod idmap;
pub mod resolve;

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

use crate::error::{Error, Result};
use crate::spec::{MountKind, MountPlan};
use crate::sys::{self, attr};
use resolve::{proc_fd, Kind, Root};

/// Read-only flags waiting to be applied once every mount exists.
#[derive(Default)]
pub struct Deferred {
    /// The mount, its name for messages, and whether the mounts under it
    /// turn read-only too.
    readonly: Vec<(OwnedFd, PathBuf, bool)>,
}

impl Deferred {
    /// Make every recorded mount read-only.
    pub fn apply(self) -> Result<()> {
        for (fd, path, recursive) in self.readonly {
            sys::mount_setattr(fd.as_fd(), recursive, attr::RDONLY, 0, 0)
                .map_err(|e| Error::sys("remount read-only", &path, e))?;
        }
        Ok(())
    }
}

/// `mount(NULL, "/", NULL, propagation, NULL)`: before the pivot, cut the
/// new mount namespace off from the host's (slave, so nothing mounted for
/// the container shows on the host); after it, the container root's
/// `linux.rootfsPropagation`.
pub fn set_root_propagation(propagation: MsFlags) -> Result<()> {
    nix::mount::mount(None::<&str>, "/", None::<&str>, propagation, None::<&str>)
        .map_err(|e| Error::sys("set mount propagation of", "/", e))
}

/// Bind the root directory onto itself (pivot_root needs a mount point) and
/// open it.
pub fn bind_root(rootfs: &Path) -> Result<Root> {
    nix::mount::mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| Error::sys("bind mount root", rootfs, e))?;
    Root::open(rootfs)
}

/// Mount one entry of `mounts`. Returns nothing; read-only flags go to
/// `deferred`. `prepared` is the detached tree `create` made for an
/// idmapped bind mount (see `idmap.rs`), or the devpts of the terminal
/// (see `console.rs`).
pub fn apply(
    root: &Root,
    m: &MountPlan,
    prepared: Option<&OwnedFd>,
    deferred: &mut Deferred,
) -> Result<()> {
    let dest = &m.destination;
    // A host tree bound in place of a new filesystem: `ro` must cover the
    // mounts in it too (the new filesystem would have had none).
    let mut bound_tree = false;
    match &m.kind {
        MountKind::Bind { source, recursive } => {
            let own;
            let tree = match prepared {
                Some(tree) => tree,
                None => {
                    own = bind_tree(source, *recursive, m.flags)?;
                    &own
                }
            };
            let st = nix::sys::stat::fstat(tree)
                .map_err(|e| Error::sys("bind mount source", source, e))?;
            let kind = match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
                SFlag::S_IFDIR => Kind::Dir,
                _ => Kind::File,
            };
            let target = root.ensure(dest, kind)?;
            attach(tree, &target, root, dest)?;
        }
        MountKind::Proc => bound_tree = fs_or_rbind(root, m, "proc", "/proc")?,
        MountKind::Sysfs => bound_tree = fs_or_rbind(root, m, "sysfs", "/sys")?,
        MountKind::Mqueue => bound_tree = fs_or_rbind(root, m, "mqueue", "/dev/mqueue")?,
        MountKind::Cgroup => {
            cgroup::mount(root, m)?;
            // `ro` covers each hierarchy mounted under a v1 host's tmpfs.
            bound_tree = true;
        }
        MountKind::Tmpfs => {
            let target = root.ensure(dest, Kind::Dir)?;
            let old = m
                .copy_up
                .then(|| root.open_in(dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY))
                .transpose()
                .map_err(|e| Error::sys("open for tmpcopyup", root.display(dest), e))?;
            mount_fs(&target, &m.fs_source, "tmpfs", m.flags, &m.data)
                .map_err(|e| fs_error("tmpfs", root, dest, &m.data, e))?;
            if let Some(old) = old {
                let new = root
                    .open_in(dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                    .map_err(|e| Error::sys("open for tmpcopyup", root.display(dest), e))?;
                copy_tree(old.as_fd(), new.as_fd())
                    .map_err(|e| Error::sys("tmpcopyup into", root.display(dest), e))?;
            }
        }
        // The terminal's devpts, made at create (see `console.rs`).
        MountKind::Devpts if prepared.is_some() => {
            let target = root.ensure(dest, Kind::Dir)?;
            if let Some(devpts) = prepared {
                attach(devpts, &target, root, dest)?;
            }
        }
        MountKind::Devpts => {
            let target = root.ensure(dest, Kind::Dir)?;
            match mount_fs(&target, &m.fs_source, "devpts", m.flags, &m.data) {
                // A gid= that is not mapped in the user namespace is refused;
                // drop it (buildah does the same before calling a runtime).
                Err(Errno::EINVAL) if m.data.contains("gid=") => {
                    let data: Vec<&str> = m
                        .data
                        .split(',')
                        .filter(|o| !o.starts_with("gid="))
                        .collect();
                    mount_fs(&target, &m.fs_source, "devpts", m.flags, &data.join(","))
                }
                other => other,
            }
            .map_err(|e| fs_error("devpts", root, dest, &m.data, e))?;
        }
        MountKind::Other { fstype, source } => {
            let target = root.ensure(dest, Kind::Dir)?;
            mount_fs(&target, source, fstype, m.flags, &m.data)
                .map_err(|e| fs_error(fstype, root, dest, &m.data, e))?;
        }
    }
    finish_mount(root, m, deferred, bound_tree)
}

/// Propagation, recursive attributes and (deferred) read-only for the mount
/// now at `m.destination`.
fn finish_mount(
    root: &Root,
    m: &MountPlan,
    deferred: &mut Deferred,
    readonly_tree: bool,
) -> Result<()> {
    let dest = &m.destination;
    let needs_fd =
        !m.propagation.is_empty() || m.recursive_set != 0 || m.recursive_clear != 0 || m.readonly;
    if !needs_fd {
        return Ok(());
    }
    let fd = root
        .open_in(dest, OFlag::O_PATH)
        .map_err(|e| Error::sys("reopen mount", root.display(dest), e))?;
    root.check_inside(&fd, dest)?;
    if !m.propagation.is_empty() {
        nix::mount::mount(
            None::<&str>,
            &proc_fd(fd.as_fd()),
            None::<&str>,
            m.propagation,
            None::<&str>,
        )
        .map_err(|e| Error::sys("set propagation of", root.display(dest), e))?;
    }
    if m.recursive_set != 0 || m.recursive_clear != 0 {
        sys::mount_setattr(fd.as_fd(), true, m.recursive_set, m.recursive_clear, 0)
            .map_err(|e| Error::sys("set recursive flags of", root.display(dest), e))?;
    }
    if m.readonly {
        deferred
            .readonly
            .push((fd, root.display(dest), readonly_tree));
    }
    Ok(())
}

/// A new filesystem of `fstype`, or, where the kernel refuses one (a user
/// namespace that does not own the pid/network/ipc namespace), an rbind of
/// the host's `host_path`. Returns true when it bound the host's tree.
/// Not when the config gives filesystem options: the host's tree would not
/// have them. Nor for EINVAL: that is the options' fault.
fn fs_or_rbind(root: &Root, m: &MountPlan, fstype: &str, host_path: &str) -> Result<bool> {
    let dest = &m.destination;
    let target = root.ensure(dest, Kind::Dir)?;
    match mount_fs(&target, &m.fs_source, fstype, m.flags, &m.data) {
        Ok(()) => Ok(false),
        Err(Errno::EPERM | Errno::EACCES | Errno::EBUSY | Errno::ENODEV) if m.data.is_empty() => {
            tracing::debug!(
                "new {fstype} refused on {}; binding the host's {host_path}",
                dest.display()
            );
            let tree = open_tree(Path::new(host_path), true)?;
            let (set, clear) = bind_attrs(m.flags);
            sys::mount_setattr(tree.as_fd(), true, set, clear, 0)
                .map_err(|e| Error::sys("set flags of bind mount", host_path, e))?;
            attach(&tree, &target, root, dest).map(|()| true)
        }
        Err(e) => Err(fs_error(fstype, root, dest, &m.data, e)),
    }
}

/// The error of a new filesystem's mount, naming its options when it had
/// some (the kernel refuses a bad one with EINVAL, without naming it).
fn fs_error(fstype: &str, root: &Root, dest: &Path, data: &str, e: Errno) -> Error {
    let at = root.display(dest);
    if data.is_empty() {
        Error::call(format!("mount {fstype} on `{}`", at.display()), e)
    } else {
        Error::call(
            format!("mount {fstype} on `{}` with options `{data}`", at.display()),
            e,
        )
    }
}

/// `mount(source, /proc/self/fd/N, fstype, flags, data)`.
fn mount_fs(
    target: &OwnedFd,
    source: &str,
    fstype: &str,
    flags: MsFlags,
    data: &str,
) -> nix::Result<()> {
    let data = (!data.is_empty()).then_some(data);
    nix::mount::mount(
        Some(source),
        &proc_fd(target.as_fd()),
        Some(fstype),
        flags,
        data,
    )
}

/// A detached copy of the mount (tree) at `source` with the bind mount's
/// flags set on its top mount (read-only comes later, see [`Deferred`]).
pub(crate) fn bind_tree(source: &Path, recursive: bool, flags: MsFlags) -> Result<OwnedFd> {
    let tree = open_tree(source, recursive)?;
    let (set, clear) = bind_attrs(flags);
    sys::mount_setattr(tree.as_fd(), false, set, clear, 0)
        .map_err(|e| Error::sys("set flags of bind mount", source, e))?;
    Ok(tree)
}

/// A detached copy of the mount tree at `source` (on the host side).
fn open_tree(source: &Path, recursive: bool) -> Result<OwnedFd> {
    let c = CString::new(source.as_os_str().as_bytes())
        .map_err(|_| Error::sys("bind mount source", source, Errno::EINVAL))?;
    sys::open_tree_clone(&c, recursive).map_err(|e| Error::sys("bind mount source", source, e))
}

/// Attach a detached tree on top of `target`.
fn attach(tree: &OwnedFd, target: &OwnedFd, root: &Root, dest: &Path) -> Result<()> {
    sys::move_mount_to_fd(tree.as_fd(), target.as_fd())
        .map_err(|e| Error::sys("bind mount onto", root.display(dest), e))
}

/// Bind mounts take their flags after the fact: the atime mode and
/// nosuid/nodev/noexec (read-only is deferred).
fn bind_attrs(flags: MsFlags) -> (u64, u64) {
    let mut set = 0;
    let mut clear = 0;
    for (flag, a) in [
        (MsFlags::MS_NOSUID, attr::NOSUID),
        (MsFlags::MS_NODEV, attr::NODEV),
        (MsFlags::MS_NOEXEC, attr::NOEXEC),
        (MsFlags::MS_NODIRATIME, attr::NODIRATIME),
        (
            MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
            attr::NOSYMFOLLOW,
        ),
    ] {
        if flags.contains(flag) {
            set |= a;
        }
    }
    for (flag, a) in [
        (MsFlags::MS_NOATIME, attr::NOATIME),
        (MsFlags::MS_STRICTATIME, attr::STRICTATIME),
        (MsFlags::MS_RELATIME, attr::RELATIME),
    ] {
        if flags.contains(flag) {
            set |= a;
            clear |= attr::ATIME_MASK;
        }
    }
    (set, clear)
}

/// Hide each of `paths`: a file under the host's `/dev/null` (checked to be
/// the real character device 1:3, so a look-alike cannot unmask anything),
/// a directory under an empty read-only tmpfs. Missing paths are skipped.
pub fn mask_paths(root: &Root, paths: &[PathBuf]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let null = open_tree(Path::new("/dev/null"), false)?;
    let st = nix::sys::stat::fstat(&null).map_err(|e| Error::sys("check", "/dev/null", e))?;
    let is_null = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
        && nix::sys::stat::major(st.st_rdev) == 1
        && nix::sys::stat::minor(st.st_rdev) == 3;
    if !is_null {
        return Err(Error::sys(
            "mask paths with (not the null device)",
            "/dev/null",
            Errno::EINVAL,
        ));
    }
    for p in paths {
        let fd = match root.open_in(p, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(Error::sys("resolve masked path", root.display(p), e)),
        };
        root.check_inside(&fd, p)?;
        let st = nix::sys::stat::fstat(&fd)
            .map_err(|e| Error::sys("stat masked path", root.display(p), e))?;
        // Read-only mounts, as runc's and crun's masks are: an empty tmpfs
        // over a directory, the null device over anything else.
        let cover = if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            sys::new_fs_mount(
                c"tmpfs",
                &[
                    (c"source", Some(c"tmpfs")),
                    (c"nr_blocks", Some(c"1")),
                    (c"nr_inodes", Some(c"1")),
                ],
                attr::RDONLY,
            )
            .map_err(|(step, e)| Error::sys(step, root.display(p), e))?
        } else {
            let copy = sys::open_tree_clone(c"/dev/null", false)
                .map_err(|e| Error::sys("bind mount source", "/dev/null", e))?;
            sys::mount_setattr(copy.as_fd(), false, attr::RDONLY, 0, 0)
                .map_err(|e| Error::sys("make read-only", "/dev/null", e))?;
            copy
        };
        attach(&cover, &fd, root, p)?;
    }
    Ok(())
}

/// Make each of `paths` read-only by binding it onto itself. Missing paths
/// are skipped.
pub fn readonly_paths(root: &Root, paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        let fd = match root.open_in(p, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(Error::sys("resolve read-only path", root.display(p), e)),
        };
        root.check_inside(&fd, p)?;
        let tree = open_tree(&proc_fd(fd.as_fd()), true)?;
        // Read-only only: the other flags stay those of the mount it
        // covers, as with runc and crun.
        sys::mount_setattr(tree.as_fd(), true, attr::RDONLY, 0, 0)
            .map_err(|e| Error::sys("make read-only", root.display(p), e))?;
        attach(&tree, &fd, root, p)?;
    }
    Ok(())
}

/// Make the root itself read-only (not the mounts under it).
pub fn root_readonly(root: &Root) -> Result<()> {
    sys::mount_setattr(root.fd.as_fd(), false, attr::RDONLY, 0, 0)
        .map_err(|e| Error::sys("remount root read-only", &root.path, e))
}

/// `pivot_root(".", ".")` from inside the root, then detach the old root
/// that now sits on top of it, so nothing of the host stays reachable.
pub fn pivot_into(root: &Root) -> Result<()> {
    nix::unistd::fchdir(&root.fd).map_err(|e| Error::sys("enter root", &root.path, e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| Error::sys("pivot_root into", &root.path, e))?;
    // The old root is stacked on "."; keep its unmount from reaching the host.
    nix::mount::mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| Error::sys("make old root a slave", &root.path, e))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| Error::sys("detach old root", &root.path, e))?;
    nix::unistd::chdir("/").map_err(|e| Error::sys("enter root", "/", e))
}

/// `--no-pivot`: move the root onto `/` and chroot into it. The old root
/// stays reachable to a process that can escape a chroot; use only where
/// pivot_root is impossible (a root on ramfs).
pub fn chroot_into(root: &Root) -> Result<()> {
    nix::unistd::fchdir(&root.fd).map_err(|e| Error::sys("enter root", &root.path, e))?;
    nix::mount::mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| Error::sys("move root onto /", &root.path, e))?;
    nix::unistd::chroot(".").map_err(|e| Error::sys("chroot into", &root.path, e))?;
    nix::unistd::chdir("/").map_err(|e| Error::sys("enter root", "/", e))
}

/// Copy the tree under `from` into `to` (crun's `tmpcopyup`): directories,
/// regular files, symlinks, with their modes and (where permitted) owners.
fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()> {
    use nix::dir::{Dir, Type};
    let mut dir = Dir::openat(
        from,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let names: Vec<(CString, Option<Type>)> = dir
        .iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != c"." && e.file_name() != c"..")
        .map(|e| (e.file_name().to_owned(), e.file_type()))
        .collect();
    for (name, _) in names {
        let st = nix::sys::stat::fstatat(
            from,
            name.as_c_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFDIR => {
                nix::sys::stat::mkdirat(to, name.as_c_str(), mode)?;
                let src = nix::fcntl::openat(
                    from,
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                let dst = nix::fcntl::openat(
                    to,
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                copy_tree(src.as_fd(), dst.as_fd())?;
            }
            SFlag::S_IFREG => {
                // Non-blocking: a FIFO swapped in since the stat opens
                // at once (and reads nothing) instead of waiting.
                let src = nix::fcntl::openat(
                    from,
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
                    Mode::empty(),
                )?;
                let dst = nix::fcntl::openat(
                    to,
                    name.as_c_str(),
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    mode,
                )?;
                let mut s = std::fs::File::from(src);
                let mut d = std::fs::File::from(dst);
                std::io::copy(&mut s, &mut d)
                    .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(from, name.as_c_str())?;
                nix::unistd::symlinkat(target.as_os_str(), to, name.as_c_str())?;
            }
            _ => continue,
        }
        let _ = nix::unistd::fchownat(
            to,
            name.as_c_str(),
            Some(nix::unistd::Uid::from_raw(st.st_uid)),
            Some(nix::unistd::Gid::from_raw(st.st_gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        );
    }
    Ok(())
}
