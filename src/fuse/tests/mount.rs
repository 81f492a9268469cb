//! The server behind a real FUSE mount. The test forks a child that makes
//! its own mount namespace (and user namespace, when not root), mounts
//! `/dev/fuse` as hutch's container process does, and forks the server;
//! the child then checks the tree with `std::fs` and unmounts, and the
//! server must end with `Ok`. Failures come back over a pipe.

use std::ffi::CString;
use std::io::Read as _;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::sys::wait::WaitStatus;

use super::memfs::{self, Data, MemFs};
use crate::fuse::ROOT;
use crate::sys::{self, Forked};

type Check = std::result::Result<(), String>;

/// Fail the check with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// How long a child may take before `SIGALRM` ends it (a hung server).
const TIMEOUT_SECS: u32 = 60;

const HOSTS: &[u8] = b"127.0.0.1 localhost\n";

/// The bytes of `/big`: 1.5 MiB and a bit, more than one 1 MiB `READ`.
fn big() -> Vec<u8> {
    (0..1_572_864 + 123).map(|i| (i * 7 % 251) as u8).collect()
}

fn many_name(i: usize) -> String {
    format!("file-{i:03}-{}", "x".repeat(i % 40))
}

/// `/etc/hosts` (with two xattrs), `/big`, `/empty`, `/link` ->
/// `etc/hosts`, and `/many` with 300 files (more than one `READDIR`).
fn tree(with_xattrs: bool) -> MemFs {
    let mut fs = MemFs::new(with_xattrs);
    let etc = fs.add(ROOT, "etc", libc::S_IFDIR | 0o755, Data::Dir(Vec::new()));
    let hosts = fs.add(
        etc,
        "hosts",
        libc::S_IFREG | 0o644,
        Data::File(HOSTS.to_vec()),
    );
    fs.set_xattr(hosts, "user.color", b"blue");
    fs.set_xattr(hosts, "user.empty", b"");
    fs.add(ROOT, "big", libc::S_IFREG | 0o755, Data::File(big()));
    fs.add(ROOT, "empty", libc::S_IFREG | 0o600, Data::File(Vec::new()));
    fs.add(
        ROOT,
        "link",
        libc::S_IFLNK | 0o777,
        Data::Link(b"etc/hosts".to_vec()),
    );
    let many = fs.add(ROOT, "many", libc::S_IFDIR | 0o755, Data::Dir(Vec::new()));
    for i in 0..300 {
        fs.add(
            many,
            &many_name(i),
            libc::S_IFREG | 0o644,
            Data::File(Vec::new()),
        );
    }
    fs
}

fn names(dir: &Path) -> std::result::Result<Vec<String>, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .and_then(|d| {
            d.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .map_err(|e| format!("read_dir {}: {e}", dir.display()))?;
    names.sort();
    Ok(names)
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// What the kernel shows of `tree(true)`.
fn check_tree(mnt: &Path) -> Check {
    let top = names(mnt)?;
    ensure!(top == ["big", "empty", "etc", "link", "many"], "/: {top:?}");
    let many = names(&mnt.join("many"))?;
    let mut want: Vec<String> = (0..300).map(many_name).collect();
    want.sort();
    ensure!(many == want, "/many: {} names, not the 300", many.len());

    let stat =
        |p: &str| std::fs::symlink_metadata(mnt.join(p)).map_err(|e| format!("stat {p}: {e}"));
    let hosts = stat("etc/hosts")?;
    ensure!(
        hosts.is_file() && hosts.mode() & 0o7777 == 0o644,
        "etc/hosts: mode {:o}",
        hosts.mode()
    );
    ensure!(
        hosts.len() == HOSTS.len() as u64,
        "etc/hosts: size {}",
        hosts.len()
    );
    ensure!(
        hosts.nlink() == 1 && hosts.uid() == 0 && hosts.gid() == 0,
        "etc/hosts: {hosts:?}"
    );
    ensure!(
        hosts.mtime() == memfs::MTIME as i64,
        "etc/hosts: mtime {}",
        hosts.mtime()
    );
    ensure!(
        hosts.ino() == memfs::ino(3),
        "etc/hosts: ino {}",
        hosts.ino()
    );
    let root = stat("")?;
    ensure!(
        root.is_dir() && root.ino() == memfs::ino(ROOT),
        "/: {root:?}"
    );
    let dotdot = stat("etc/..")?;
    ensure!(dotdot.ino() == root.ino(), "etc/..: ino {}", dotdot.ino());
    ensure!(
        stat("empty")?.permissions().mode() & 0o777 == 0o600,
        "empty: mode"
    );

    let big = big();
    let read = std::fs::read(mnt.join("big")).map_err(|e| format!("read big: {e}"))?;
    ensure!(
        read == big,
        "big: {} bytes read, not the {} written",
        read.len(),
        big.len()
    );
    let file = std::fs::File::open(mnt.join("big")).map_err(|e| format!("open big: {e}"))?;
    let mut buf = vec![0u8; 300_000];
    for offset in [0u64, 4095, 1_000_000, big.len() as u64 - 1000] {
        let n = file
            .read_at(&mut buf, offset)
            .map_err(|e| format!("read big at {offset}: {e}"))?;
        let o = offset as usize;
        let want = &big[o..(o + buf.len()).min(big.len())];
        ensure!(
            n > 0 && buf[..n] == want[..n],
            "big at {offset}: wrong bytes"
        );
    }
    let empty = std::fs::read(mnt.join("empty")).map_err(|e| format!("read empty: {e}"))?;
    ensure!(empty.is_empty(), "empty: {} bytes", empty.len());

    let target = std::fs::read_link(mnt.join("link")).map_err(|e| format!("readlink: {e}"))?;
    ensure!(
        target == Path::new("etc/hosts"),
        "link -> {}",
        target.display()
    );
    ensure!(
        stat("link")?.file_type().is_symlink(),
        "link: not a symlink"
    );
    let via = std::fs::read(mnt.join("link")).map_err(|e| format!("read link: {e}"))?;
    ensure!(via == HOSTS, "read through link: {via:?}");

    check_xattrs(&mnt.join("etc/hosts"))?;

    for _ in 0..3 {
        let e = std::fs::metadata(mnt.join("nope")).err();
        ensure!(
            e.as_ref().map(errno_of) == Some(Errno::ENOENT),
            "stat nope: {e:?}"
        );
    }

    let new = std::fs::File::create(mnt.join("new")).err();
    ensure!(
        new.as_ref().map(errno_of) == Some(Errno::EROFS),
        "create new: {new:?}"
    );
    let w = std::fs::OpenOptions::new()
        .write(true)
        .open(mnt.join("etc/hosts"))
        .err();
    ensure!(
        w.as_ref().map(errno_of) == Some(Errno::EROFS),
        "open hosts to write: {w:?}"
    );
    let d = std::fs::create_dir(mnt.join("etc/d")).err();
    ensure!(
        d.as_ref().map(errno_of) == Some(Errno::EROFS),
        "mkdir: {d:?}"
    );

    let st = nix::sys::statvfs::statvfs(mnt).map_err(|e| format!("statvfs: {e}"))?;
    ensure!(
        st.blocks() == 1234 && st.block_size() == 4096 && st.name_max() == 255,
        "statvfs: {st:?}"
    );
    ensure!(
        st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "statvfs: not read-only"
    );
    Ok(())
}

/// `user.color` = `blue` and an empty `user.empty`, read as `getfattr`
/// does: size first, then the value.
fn check_xattrs(path: &Path) -> Check {
    let p = cpath(path);
    let mut buf = [0u8; 64];
    let n = sys::getxattr(&p, c"user.color", &mut []);
    ensure!(n == Ok(4), "getxattr user.color size: {n:?}");
    let n = sys::getxattr(&p, c"user.color", &mut buf);
    ensure!(
        n == Ok(4) && &buf[..4] == b"blue",
        "getxattr user.color: {n:?}"
    );
    let n = sys::getxattr(&p, c"user.color", &mut buf[..2]);
    ensure!(n == Err(Errno::ERANGE), "getxattr into 2 bytes: {n:?}");
    let n = sys::getxattr(&p, c"user.empty", &mut buf);
    ensure!(n == Ok(0), "getxattr user.empty: {n:?}");
    let n = sys::getxattr(&p, c"user.nope", &mut buf);
    ensure!(n == Err(Errno::ENODATA), "getxattr user.nope: {n:?}");
    let list = b"user.color\0user.empty\0";
    let n = sys::listxattr(&p, &mut []);
    ensure!(n == Ok(list.len()), "listxattr size: {n:?}");
    let n = sys::listxattr(&p, &mut buf);
    ensure!(
        n == Ok(list.len()) && &buf[..list.len()] == list,
        "listxattr: {n:?}"
    );
    let n = sys::listxattr(&p, &mut buf[..3]);
    ensure!(n == Err(Errno::ERANGE), "listxattr into 3 bytes: {n:?}");
    Ok(())
}

#[test]
fn serves_a_tree_through_the_kernel() {
    let after = |fs: &MemFs| -> Check {
        let nope = fs
            .lookups
            .iter()
            .filter(|n| n.as_slice() == b"nope")
            .count();
        ensure!(
            nope == 1,
            "`nope` looked up {nope} times: its negative entry was not cached"
        );
        Ok(())
    };
    if let Err(e) = with_mount(tree(true), check_tree, after) {
        panic!("{e}");
    }
}

#[test]
fn without_xattrs_getxattr_is_not_supported() {
    let check = |mnt: &Path| -> Check {
        let p = cpath(&mnt.join("etc/hosts"));
        for _ in 0..2 {
            let n = sys::getxattr(&p, c"user.color", &mut [0u8; 16]);
            ensure!(n == Err(Errno::EOPNOTSUPP), "getxattr: {n:?}");
            let n = sys::listxattr(&p, &mut [0u8; 64]);
            ensure!(n == Err(Errno::EOPNOTSUPP), "listxattr: {n:?}");
        }
        let hosts = std::fs::read(mnt.join("etc/hosts")).map_err(|e| format!("read: {e}"))?;
        ensure!(hosts == HOSTS, "etc/hosts: {hosts:?}");
        Ok(())
    };
    let after = |fs: &MemFs| -> Check {
        ensure!(
            fs.xattr_calls == 0,
            "{} xattr calls reached the tree",
            fs.xattr_calls
        );
        Ok(())
    };
    if let Err(e) = with_mount(tree(false), check, after) {
        panic!("{e}");
    }
}

/// A fresh directory for a mount point.
fn mount_point() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hutch-fuse-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("make a mount point");
    dir
}

/// Mount a FUSE connection served by `fs` in a child, run `check` on it
/// there, unmount, and require the server to end with `Ok` and `after` to
/// hold for what it was asked.
fn with_mount(mut fs: MemFs, check: fn(&Path) -> Check, after: fn(&MemFs) -> Check) -> Check {
    let mnt = mount_point();
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    let (errors, err_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(|e| e.to_string())?;
    let forked = sys::clone_process(CloneFlags::empty()).map_err(|e| format!("fork: {e}"))?;
    let Forked::Parent(pid) = forked else {
        // The child: never return into the test harness.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            nix::unistd::alarm::set(TIMEOUT_SECS);
            enter_namespaces(uid.as_raw(), gid.as_raw())?;
            let fuse = mount_fuse(&mnt)?;
            mount_and_check(fuse, &mnt, &mut fs, check, after, &err_w)
        }));
        let code = match result {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => report(&err_w, &format!("check: {e}")),
            Err(_) => report(&err_w, "check: panicked"),
        };
        sys::exit_now(code);
    };
    drop(err_w);
    let status = nix::sys::wait::waitpid(pid, None);
    let _ = std::fs::remove_dir(&mnt);
    let mut text = String::new();
    let _ = std::fs::File::from(errors).read_to_string(&mut text);
    match status {
        Ok(WaitStatus::Exited(_, 0)) if text.is_empty() => Ok(()),
        status => Err(format!("{status:?}: {text}")),
    }
}

/// Write a failure for the test to read; the exit code to end with.
fn report(err_w: &OwnedFd, msg: &str) -> i32 {
    let _ = nix::unistd::write(err_w.as_fd(), format!("{msg}\n").as_bytes());
    1
}

/// A mount namespace of our own; as a plain user, inside a user namespace
/// where we are root (uid 0 is us), as hutch's container process is.
fn enter_namespaces(uid: u32, gid: u32) -> Check {
    let step = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    if uid == 0 {
        nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| step("unshare", &e))?;
    } else {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .map_err(|e| step("unshare", &e))?;
        for (file, text) in [
            ("/proc/self/setgroups", "deny".to_string()),
            ("/proc/self/uid_map", format!("0 {uid} 1")),
            ("/proc/self/gid_map", format!("0 {gid} 1")),
        ] {
            std::fs::write(file, text).map_err(|e| step(file, &e))?;
        }
    }
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| step("make / private", &e))
}

/// Open `/dev/fuse` and mount it read-only on `mnt`, with the options
/// hutch's container process uses.
fn mount_fuse(mnt: &Path) -> std::result::Result<OwnedFd, String> {
    let fuse = nix::fcntl::open("/dev/fuse", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("open /dev/fuse: {e}"))?;
    let opts = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions",
        fuse.as_raw_fd()
    );
    nix::mount::mount(
        Some("hutch-test"),
        mnt,
        Some("fuse.hutch-test"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(|e| format!("mount FUSE on {}: {e}", mnt.display()))?;
    Ok(fuse)
}

/// Fork the server onto `fuse`, check the mount, unmount it, and collect
/// the server's end.
fn mount_and_check(
    fuse: OwnedFd,
    mnt: &Path,
    fs: &mut MemFs,
    check: fn(&Path) -> Check,
    after: fn(&MemFs) -> Check,
    err_w: &OwnedFd,
) -> Check {
    let forked = sys::clone_process(CloneFlags::empty()).map_err(|e| format!("fork: {e}"))?;
    let Forked::Parent(server) = forked else {
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
        nix::unistd::alarm::set(TIMEOUT_SECS);
        let code = match crate::fuse::serve(fuse, fs) {
            Err(e) => report(err_w, &format!("serve: {e}")),
            Ok(()) => match after(fs) {
                Ok(()) => 0,
                Err(e) => report(err_w, &format!("after serve: {e}")),
            },
        };
        sys::exit_now(code);
    };
    drop(fuse);
    let checked = check(mnt);
    let unmounted = nix::mount::umount2(mnt, MntFlags::MNT_DETACH)
        .map_err(|e| format!("unmount {}: {e}", mnt.display()));
    let served = nix::sys::wait::waitpid(server, None);
    checked?;
    unmounted?;
    match served {
        Ok(WaitStatus::Exited(_, 0)) => Ok(()),
        status => Err(format!("the server ended with {status:?}")),
    }
}
