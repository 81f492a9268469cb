//! Kernel filters: seccomp programs (with and without a listener) and
//! eBPF cgroup device programs.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)`, returning what the
/// kernel returns.
fn set_filter(program: &[u8], flags: u32) -> nix::Result<libc::c_long> {
    if program.is_empty() || program.len() % 8 != 0 || program.len() / 8 > u16::MAX as usize {
        return Err(Errno::EINVAL);
    }
    // The kernel wants the filters aligned as `sock_filter`s: copy them.
    let filters: Vec<libc::sock_filter> = program
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let prog = libc::sock_fprog {
        len: filters.len() as u16,
        filter: filters.as_ptr() as *mut libc::sock_filter,
    };
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    // SAFETY: `prog` points at `filters`, both alive across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    Errno::result(ret)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)`: install a compiled
/// BPF program (an array of 8-byte `sock_filter`s) on this thread.
pub fn seccomp_set_filter(program: &[u8], flags: u32) -> nix::Result<()> {
    set_filter(program, flags).map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags | SECCOMP_FILTER_FLAG_NEW_LISTENER,
/// &prog)`: as [`seccomp_set_filter`], returning the filter's user
/// notification fd (close-on-exec).
pub fn seccomp_set_filter_listener(program: &[u8], flags: u32) -> nix::Result<OwnedFd> {
    const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;
    let fd = set_filter(program, flags | SECCOMP_FILTER_FLAG_NEW_LISTENER)?;
    // SAFETY: the kernel just returned this new fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `bpf(BPF_PROG_LOAD)` of a `BPF_PROG_TYPE_CGROUP_DEVICE` program, each
/// instruction as its 8 bytes (`struct bpf_insn`). The verifier's log goes
/// to `log` (empty on success).
pub fn bpf_load_device_program(insns: &[[u8; 8]], log: &mut [u8]) -> nix::Result<OwnedFd> {
    /// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
    #[repr(C)]
    #[derive(Default)]
    struct Load {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
    }
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    const BPF_CGROUP_DEVICE: u32 = 6;
    let license = b"Apache-2.0\0";
    let mut name = [0u8; 16];
    name[..5].copy_from_slice(b"hutch");
    let attr = Load {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        // No log: a null buffer (an empty slice's pointer is not null).
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Load::default()
    };
    // SAFETY: `attr` and what it points to (insns, license, log) outlive
    // the call; the size passed is the struct's.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const Load,
            std::mem::size_of::<Load>() as u32,
        )
    };
    // SAFETY: on success bpf(2) returned a new fd that nothing else owns.
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `bpf(BPF_PROG_ATTACH)` of device program `prog` to the cgroup2
/// directory `cgroup` (`BPF_CGROUP_DEVICE`, `BPF_F_ALLOW_MULTI`).
pub fn bpf_attach_device_program(prog: BorrowedFd<'_>, cgroup: BorrowedFd<'_>) -> nix::Result<()> {
    #[repr(C)]
    struct Attach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
    }
    const BPF_PROG_ATTACH: libc::c_long = 8;
    const BPF_CGROUP_DEVICE: u32 = 6;
    const BPF_F_ALLOW_MULTI: u32 = 2;
    let attr = Attach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` outlives the call; the size passed is the struct's.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const Attach,
            std::mem::size_of::<Attach>() as u32,
        )
    };
    Errno::result(r).map(drop)
}
