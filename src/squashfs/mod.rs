//! SquashFS root images: recognising one, checking its superblock, and the
//! FUSE server that serves it to the container.
//!
//! `root.path` may name a SquashFS file instead of a directory. The
//! container process mounts it with FUSE in its own user and mount
//! namespaces at `create` (`mount/fuse.rs`) and hands the `/dev/fuse` fd
//! back to `create`, which starts the server here: hutch itself, forked
//! without exec (`image.rs` reads the image lazily, `tree.rs` answers the
//! kernel through `fuse/`), or, for the compressors hutch does not decode
//! (lzma, lzo, xz), Debian's `squashfuse_ll`, given the fd as `/dev/fd/3`.
//! The server runs in hutch's namespaces, not the container's, so nothing
//! in the container can see or trace it, and it keeps no reference to the
//! container's mount namespace: when the last process of that namespace is
//! gone, the mount goes, the kernel aborts the FUSE connection and the
//! server's read gets ENODEV, and it exits. That holds however the
//! container ends (exit, `kill`, `delete`, a SIGKILLed hutch). Why a server
//! of hutch's own: ARCHITECTURE.md ("SquashFS images").

mod cache;
mod decompress;
mod dir;
pub mod image;
mod inode;
pub mod tree;
mod xattr;

use std::io::Read as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::spec::{NsAction, Plan};
use crate::sys::{self, Forked};

/// The programs that can serve an image hutch does not decode, best first.
const SERVERS: [&str; 2] = ["squashfuse_ll", "squashfuse"];
/// Chooses who serves every image, against the default (bench/ measures
/// each way in the same run): `hutch`, `squashfuse` (`squashfuse_ll`, as
/// before hutch had a server of its own), `kernel` (real root only).
const SERVER_ENV: &str = "HUTCH_SQUASHFS_SERVER";

/// Who serves an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Serve {
    /// The kernel's squashfs on a loop device (real root without a user
    /// namespace), no server.
    Kernel,
    /// hutch, forked, through FUSE (`image.rs`, `tree.rs`, `fuse/`).
    Builtin,
    /// A squashfuse program through FUSE, for the compressors hutch does
    /// not decode.
    Program(PathBuf),
}

/// True if `path` is a file that starts with the SquashFS magic.
pub fn is_image(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == image::MAGIC)
}

/// Check the superblock of the image at `path`: version 4.0, a sane block
/// size and compressor, and every table inside the file. A truncated
/// image (the usual corruption: an interrupted copy) fails here, at
/// `create`, not on the first read of a missing block.
pub fn check(path: &Path) -> Result<image::Superblock> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    image::Superblock::read(&f).map_err(|why| {
        Error::Config(format!(
            "root.path `{}`: not a usable SquashFS image: {why}",
            path.display()
        ))
    })
}

/// What an image root needs besides a good image: a mount namespace of the
/// container's own (the mount must go with the container), and someone to
/// serve it: hutch through FUSE, or for a compressor hutch does not
/// decode, the kernel (real root outside any user namespace, `real_root`)
/// or squashfuse (anyone else).
pub fn check_plan(plan: &Plan, image: &Path, real_root: bool) -> Result<Serve> {
    if plan.namespaces.mount != NsAction::New {
        return Err(Error::Config(format!(
            "root.path `{}` is a SquashFS image: the container needs a new mount namespace of its own",
            image.display()
        )));
    }
    let asked = std::env::var(SERVER_ENV).unwrap_or_default();
    let compressor = check(image)?.compressor;
    let decodes = decompress::supported(compressor);
    // hutch's own server wherever it decodes the image: it starts faster
    // than the kernel's squashfs on a loop device and reads faster than
    // either (bench/squashfs.md); real root falls back on the kernel,
    // anyone else on squashfuse.
    let why = match asked.as_str() {
        "" | "hutch" if decodes => return Ok(Serve::Builtin),
        "" | "kernel" if real_root => return Ok(Serve::Kernel),
        "kernel" => {
            return Err(Error::Usage(format!(
                "{SERVER_ENV}=kernel: only real root outside a user namespace mounts with the kernel's squashfs"
            )))
        }
        "" | "hutch" => format!(
            "its compressor ({}) is not one hutch decodes",
            decompress::name(compressor)
        ),
        "squashfuse" => format!("{SERVER_ENV}=squashfuse"),
        other => {
            return Err(Error::Usage(format!(
                "{SERVER_ENV}={other}: not hutch, squashfuse or kernel"
            )))
        }
    };
    server_program().map(Serve::Program).ok_or_else(|| {
        Error::Config(format!(
            "root.path `{}` is a SquashFS image and {why}: no squashfuse_ll or squashfuse in PATH (Debian's package squashfuse)",
            image.display()
        ))
    })
}

/// The first server program found in `$PATH` (or, when that is unset, in
/// the usual directories).
fn server_program() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into());
    SERVERS.iter().find_map(|name| {
        std::env::split_paths(&path)
            .filter(|d| d.is_absolute())
            .map(|d| d.join(name))
            .find(|p| {
                nix::unistd::access(p.as_path(), nix::unistd::AccessFlags::X_OK).is_ok()
                    && p.is_file()
            })
    })
}

/// A running FUSE server: hutch's child.
pub struct Server {
    pub pid: Pid,
    /// The read end of its stderr, for the reason it gives when it fails.
    errors: OwnedFd,
}

/// Start the server `how` serving `image` on the FUSE connection `fuse`
/// (already mounted by the container process). Its stdin and stdout are
/// `/dev/null`, its stderr a pipe only read when the image fails; it has a
/// session of its own (a terminal's ^C or a caller killing create's process
/// group must not take the container's root away) and the usual
/// termination signals blocked: it ends when its connection does.
pub fn start_server(how: &Serve, image: &Path, fuse: OwnedFd) -> Result<Server> {
    match how {
        Serve::Builtin => {
            // Opened here, so that a vanished image fails `create` by name.
            let file = std::fs::File::open(image).map_err(|e| Error::io("open", image, e))?;
            spawn(fuse, Some(OwnedFd::from(file)), |fds| {
                serve_builtin(fds, image)
            })
        }
        Serve::Kernel => Err(Error::Container(format!(
            "root.path `{}`: the kernel's squashfs has no server to start",
            image.display()
        ))),
        Serve::Program(program) => {
            use std::os::unix::ffi::OsStrExt as _;
            let cstr = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).ok();
            let (Some(prog), Some(img)) = (cstr(program), cstr(image)) else {
                return Err(Error::Config(format!(
                    "root.path `{}`: a NUL in the path",
                    image.display()
                )));
            };
            let name = std::ffi::CString::new(
                program
                    .file_name()
                    .map(|n| n.as_bytes().to_vec())
                    .unwrap_or_default(),
            )
            .unwrap_or_default();
            let argv = [name, c"-f".into(), c"-s".into(), img, c"/dev/fd/3".into()];
            spawn(fuse, None, move |_| {
                let _ = nix::unistd::execv(&prog, &argv);
                127
            })
        }
    }
}

/// The fds a server child finds: the FUSE connection at 3, the image (for
/// hutch's own server) at 4; 0 and 1 are `/dev/null`, 2 the error pipe.
struct ServerFds;

impl ServerFds {
    const FUSE: i32 = 3;
    const IMAGE: i32 = 4;
}

/// Fork a server child with its fds in place ([`ServerFds`]) and
/// everything else closed, and run `body` in it; its return value is the
/// child's exit status.
fn spawn(
    fuse: OwnedFd,
    image: Option<OwnedFd>,
    body: impl FnOnce(ServerFds) -> i32,
) -> Result<Server> {
    let null = nix::fcntl::open(
        "/dev/null",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open", "/dev/null", e))?;
    let (errors, err_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::call("make a pipe", e))?;
    // Above the stdio, 3 and 4, so the dup2s below cannot clobber them.
    let high = |fd: &OwnedFd| {
        sys::dup_at_least(fd.as_fd(), 10).map_err(|e| Error::call("duplicate a server fd", e))
    };
    let fuse_hi = high(&fuse)?;
    let image_hi = image.as_ref().map(high).transpose()?;
    match sys::clone_process(nix::sched::CloneFlags::empty())
        .map_err(|e| Error::call("fork the SquashFS server", e))?
    {
        Forked::Child => {
            let _ = nix::unistd::setsid();
            let mut blocked = SigSet::empty();
            for s in [
                Signal::SIGHUP,
                Signal::SIGINT,
                Signal::SIGQUIT,
                Signal::SIGTERM,
                Signal::SIGPIPE,
                Signal::SIGUSR1,
                Signal::SIGUSR2,
                Signal::SIGALRM,
            ] {
                blocked.add(s);
            }
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&blocked), None);
            let fd = |f: &OwnedFd| f.as_raw_fd();
            let ok = sys::dup_to(fd(&null), 0).is_ok()
                && sys::dup_to(fd(&null), 1).is_ok()
                && sys::dup_to(fd(&err_w), 2).is_ok()
                && sys::dup_to(fd(&fuse_hi), ServerFds::FUSE).is_ok()
                && image_hi
                    .as_ref()
                    .is_none_or(|i| sys::dup_to(fd(i), ServerFds::IMAGE).is_ok());
            // Nothing of create's but these: hutch's own server does not
            // exec, so close-on-exec would not take the rest away.
            let first = if image_hi.is_some() { 5 } else { 4 };
            if !ok || sys::close_from(first).is_err() {
                sys::exit_now(127)
            }
            // The fds above are closed now; forget them without closing.
            std::mem::forget((fuse, image, fuse_hi, image_hi, err_w, null, errors));
            sys::exit_now(body(ServerFds))
        }
        Forked::Parent(pid) => {
            drop((fuse, image, fuse_hi, image_hi, err_w, null));
            Ok(Server { pid, errors })
        }
    }
}

/// hutch's own server, in the forked child: read the image lazily and
/// answer the kernel until the connection ends. Returns the exit status;
/// a reason it cannot serve goes to stderr (create's error pipe).
fn serve_builtin(_: ServerFds, image: &Path) -> i32 {
    use std::io::Write as _;
    use std::os::unix::ffi::OsStrExt as _;
    // `ps` shows what it serves, not create's arguments.
    let line = [b"hutch-squashfs\0", image.as_os_str().as_bytes()].concat();
    sys::set_command_line(&line, c"hutch-squashfs");
    // Fds 3 and 4 were placed by `spawn`; nothing else here refers to them.
    let (fuse, file) = match (
        sys::take_fd(ServerFds::FUSE),
        sys::take_fd(ServerFds::IMAGE),
    ) {
        (Some(f), Some(i)) => (f, std::fs::File::from(i)),
        _ => return 127,
    };
    let tree = image::Image::open(file).map(tree::Tree::new);
    let mut tree = match tree {
        Ok(t) => t,
        Err(why) => {
            let _ = writeln!(std::io::stderr(), "{why}");
            return 1;
        }
    };
    // The image is untrusted and the server outside the container: it
    // keeps nothing but the calls that serve it.
    if let Err(e) = confine() {
        let _ = writeln!(std::io::stderr(), "{e}");
        return 1;
    }
    match crate::fuse::serve(fuse, &mut tree) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "serving the image: {e}");
            1
        }
    }
}

impl Server {
    /// Stop the server (if it still runs), reap it and return the last
    /// line it wrote to stderr: why it could not serve the image.
    pub fn stop(self) -> String {
        let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        let status = nix::sys::wait::waitpid(self.pid, None);
        let mut text = String::new();
        let _ = std::fs::File::from(self.errors).read_to_string(&mut text);
        let line = text
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or_default()
            .to_string();
        match (line.is_empty(), status) {
            (false, _) => line,
            (true, Ok(nix::sys::wait::WaitStatus::Exited(_, 127))) => {
                "the server could not be started".into()
            }
            _ => String::new(),
        }
    }

    /// Let the server run on its own: its stderr pipe is closed (what it
    /// writes later is lost) and it is no longer waited for here.
    pub fn detach(self) -> Pid {
        drop(self.errors);
        self.pid
    }
}

/// What hutch's own server may still do once it serves: read requests and
/// the image, write replies, manage its memory, exit (and abort).
const SERVER_CALLS: &[&str] = &[
    "read",
    "write",
    "writev",
    "pread64",
    "preadv",
    "preadv2",
    "close",
    "lseek",
    "fstat",
    "newfstatat",
    "statx",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "brk",
    "futex",
    "getrandom",
    "clock_gettime",
    "clock_nanosleep",
    "sched_yield",
    "rt_sigreturn",
    "rt_sigprocmask",
    "rt_sigaction",
    "sigaltstack",
    "restart_syscall",
    "getpid",
    "gettid",
    "tgkill",
    "exit",
    "exit_group",
];

/// Drop every capability (root's server needs none: its fds are open) and
/// confine the server to [`SERVER_CALLS`].
fn confine() -> Result<()> {
    for set in [
        caps::CapSet::Bounding,
        caps::CapSet::Inheritable,
        caps::CapSet::Ambient,
    ] {
        let _ = caps::clear(None, set);
    }
    for set in [caps::CapSet::Effective, caps::CapSet::Permitted] {
        caps::clear(None, set)
            .map_err(|e| Error::Container(format!("drop the image server's capabilities: {e}")))?;
    }
    crate::seccomp::confine(SERVER_CALLS)
}

/// Wait (up to `limit`) for a server recorded at `create` to end, once the
/// container is gone: `delete` and `run` return only when nothing of the
/// container is left. `start_time` guards against a reused pid.
pub fn wait_gone(pid: Pid, start_time: u64, limit: std::time::Duration) {
    let Ok(fd) = sys::pidfd_open(pid) else {
        return;
    };
    if crate::state::proc_stat(pid).is_none_or(|s| s.start_time != start_time) {
        return;
    }
    let deadline = std::time::Instant::now() + limit;
    loop {
        let mut fds = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(n) if n > 0 => break,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
    // Our own child (`run`): reap it. Anyone else's is reaped by its parent.
    let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
}

#[cfg(test)]
mod tests {
    use super::image::{ABSENT, MAGIC};
    use super::*;

    fn image(tweak: impl FnOnce(&mut Vec<u8>)) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let mut sb = vec![0u8; 4096];
        sb[..4].copy_from_slice(MAGIC);
        sb[12..16].copy_from_slice(&(1u32 << 17).to_le_bytes());
        sb[20..22].copy_from_slice(&1u16.to_le_bytes());
        sb[22..24].copy_from_slice(&17u16.to_le_bytes());
        sb[28..30].copy_from_slice(&4u16.to_le_bytes());
        sb[40..48].copy_from_slice(&4096u64.to_le_bytes());
        for (o, v) in [
            (48, 4000u64),
            (56, ABSENT),
            (64, 100),
            (72, 200),
            (80, ABSENT),
            (88, ABSENT),
        ] {
            sb[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
        tweak(&mut sb);
        let path = dir.path().join("img");
        std::fs::write(&path, &sb).unwrap();
        (dir, path)
    }

    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "hutch-sqfs-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn a_sound_superblock_passes() {
        let (_d, p) = image(|_| {});
        assert!(is_image(&p));
        check(&p).unwrap();
    }

    #[test]
    fn truncation_and_bad_fields_are_named() {
        let (_d, p) = image(|sb| sb.truncate(2048));
        let e = check(&p).unwrap_err().to_string();
        assert!(
            e.contains("truncated: the superblock says 4096 bytes, the file has 2048"),
            "{e}"
        );
        let (_d, p) = image(|sb| sb.truncate(50));
        assert!(check(&p)
            .unwrap_err()
            .to_string()
            .contains("shorter than the superblock"));
        let (_d, p) = image(|sb| sb[28] = 3);
        assert!(check(&p).unwrap_err().to_string().contains("version 3.0"));
        let (_d, p) = image(|sb| sb[20] = 9);
        assert!(check(&p)
            .unwrap_err()
            .to_string()
            .contains("unknown compressor 9"));
        let (_d, p) = image(|sb| sb[72..80].copy_from_slice(&9000u64.to_le_bytes()));
        assert!(check(&p)
            .unwrap_err()
            .to_string()
            .contains("directory table starts at 9000"));
        let (_d, p) = image(|sb| sb[0] = b'x');
        assert!(!is_image(&p));
    }
}
