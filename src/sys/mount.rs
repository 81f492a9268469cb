//! The new mount API (mount_setattr, open_tree, fsopen/fsmount,
//! move_mount) and loop devices.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// Mount attributes for [`mount_setattr`] (`MOUNT_ATTR_*`).
pub mod attr {
    pub const RDONLY: u64 = 0x0000_0001;
    pub const NOSUID: u64 = 0x0000_0002;
    pub const NODEV: u64 = 0x0000_0004;
    pub const NOEXEC: u64 = 0x0000_0008;
    pub const ATIME_MASK: u64 = 0x0000_0070;
    pub const RELATIME: u64 = 0x0000_0000;
    pub const NOATIME: u64 = 0x0000_0010;
    pub const STRICTATIME: u64 = 0x0000_0020;
    pub const NODIRATIME: u64 = 0x0000_0080;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
    pub const IDMAP: u64 = 0x0010_0000;
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], attr)`: change the
/// flags of the mount `fd` is the root of, leaving the others (including those
/// the kernel locks in a user namespace) as they are. `propagation` is one of
/// `MS_SHARED`, `MS_SLAVE`, `MS_PRIVATE`, `MS_UNBINDABLE`, or 0.
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    propagation: u64,
) -> nix::Result<()> {
    setattr(
        fd,
        recursive,
        &MountAttr {
            attr_set: set,
            attr_clr: clear,
            propagation,
            userns_fd: 0,
        },
    )
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], {IDMAP, userns})`:
/// make the detached mount `fd` (and with `recursive` the mounts under it)
/// an idmapped mount with the id maps of the user namespace `userns`.
pub fn mount_setattr_idmap(
    fd: BorrowedFd<'_>,
    recursive: bool,
    userns: BorrowedFd<'_>,
) -> nix::Result<()> {
    // The user namespace fd is borrowed: it stays open across the call.
    setattr(
        fd,
        recursive,
        &MountAttr {
            attr_set: attr::IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.as_raw_fd() as u64,
        },
    )
}

fn setattr(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> nix::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the path is a valid NUL-terminated empty string, `attr` lives
    // across the call and its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// `open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC [| AT_RECURSIVE])`:
/// a detached copy of the mount (tree) at `path`, to be attached with
/// [`move_mount_to_fd`].
pub fn open_tree_clone(path: &CStr, recursive: bool) -> nix::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    let fd = Errno::result(ret)? as RawFd;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fsopen(fstype, FSOPEN_CLOEXEC)`, the `fsconfig` calls that set each of
/// `options` (`key=value` or a flag `key`) and create the superblock, then
/// `fsmount(fd, FSMOUNT_CLOEXEC, attrs)`: a new, detached instance of the
/// file system `fstype` with the mount attributes `attrs` (`attr::*`), to
/// be attached with [`move_mount_to_fd`]. On error, the step that failed.
pub fn new_fs_mount(
    fstype: &CStr,
    options: &[(&CStr, Option<&CStr>)],
    attrs: u64,
) -> std::result::Result<OwnedFd, (&'static str, Errno)> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: `fstype` is NUL-terminated and outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    let fs = Errno::result(ret).map_err(|e| ("fsopen", e))? as RawFd;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    let fs = unsafe { OwnedFd::from_raw_fd(fs) };
    let config = |cmd: libc::c_uint, key: Option<&CStr>, value: Option<&CStr>| {
        let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
        // SAFETY: key and value are NUL-terminated strings that outlive the
        // call, or NULL where the command takes none; aux is 0.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                cmd,
                ptr(key),
                ptr(value),
                0 as libc::c_int,
            )
        };
        Errno::result(ret).map(drop)
    };
    for (key, value) in options {
        let cmd = if value.is_some() {
            FSCONFIG_SET_STRING
        } else {
            FSCONFIG_SET_FLAG
        };
        config(cmd, Some(key), *value).map_err(|e| ("fsconfig", e))?;
    }
    config(FSCONFIG_CMD_CREATE, None, None).map_err(|e| ("fsconfig create", e))?;
    // SAFETY: plain integer arguments on an fd we own.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    };
    let fd = Errno::result(ret).map_err(|e| ("fsmount", e))? as RawFd;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `move_mount(from, "", to, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)`:
/// attach the detached mount `from` on top of the file or directory `to`
/// refers to. Mounting onto an fd means no path is resolved a second time.
pub fn move_mount_to_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()> {
    const F_EMPTY_PATH: libc::c_uint = 0x4;
    const T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: both paths are valid empty C strings; the fds are borrowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            F_EMPTY_PATH | T_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop)
}

/// `ioctl(loop_control, LOOP_CTL_GET_FREE)`: the number of a free loop
/// device (made if need be).
pub fn loop_get_free(control: BorrowedFd<'_>) -> nix::Result<u32> {
    const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
    // SAFETY: LOOP_CTL_GET_FREE takes no argument.
    let ret = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
    Errno::result(ret).map(|n| n as u32)
}

/// `ioctl(loop_dev, LOOP_CONFIGURE, {fd: backing, lo_flags: READ_ONLY |
/// AUTOCLEAR})`: back the loop device with the file `backing`, read-only,
/// detached by the kernel when its last user (the mount) goes (Linux 5.8).
pub fn loop_configure(dev: BorrowedFd<'_>, backing: BorrowedFd<'_>) -> nix::Result<()> {
    const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
    const LO_FLAGS_READ_ONLY: u32 = 1;
    const LO_FLAGS_AUTOCLEAR: u32 = 4;
    /// The kernel's `struct loop_info64`.
    #[repr(C)]
    struct LoopInfo64 {
        device: u64,
        inode: u64,
        rdevice: u64,
        offset: u64,
        sizelimit: u64,
        number: u32,
        encrypt_type: u32,
        encrypt_key_size: u32,
        flags: u32,
        file_name: [u8; 64],
        crypt_name: [u8; 64],
        encrypt_key: [u8; 32],
        init: [u64; 2],
    }
    /// The kernel's `struct loop_config`.
    #[repr(C)]
    struct LoopConfig {
        fd: u32,
        block_size: u32,
        info: LoopInfo64,
        reserved: [u64; 8],
    }
    let config = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size: 0,
        info: LoopInfo64 {
            device: 0,
            inode: 0,
            rdevice: 0,
            offset: 0,
            sizelimit: 0,
            number: 0,
            encrypt_type: 0,
            encrypt_key_size: 0,
            flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
            file_name: [0; 64],
            crypt_name: [0; 64],
            encrypt_key: [0; 32],
            init: [0; 2],
        },
        reserved: [0; 8],
    };
    // SAFETY: `config` is a valid loop_config, alive across the call.
    let ret = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_CONFIGURE as _,
            &config as *const LoopConfig,
        )
    };
    Errno::result(ret).map(drop)
}
