//! Shared helpers of the integration tests: busybox bundles the tests build
//! themselves, and a wrapper that runs the real `hutch` binary.
//!
//! The tests run unchanged as root and as a plain user (`.ci/run` runs them
//! both ways, and as a user without subordinate ids); where the expected
//! outcome depends on who runs them, [`Who`] says which it is. They never
//! skip.
#![allow(dead_code)]

pub mod cgroup;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

/// The binary under test: `$HUTCH_BIN`, else the one cargo built.
pub fn hutch_bin() -> PathBuf {
    std::env::var_os("HUTCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hutch")))
}

/// Who runs the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// Real root in the initial user namespace.
    Root,
    /// A plain user with a range in /etc/subuid and /etc/subgid.
    UserWithSubids,
    /// A plain user without one (only single-id maps are possible).
    UserSingle,
}

pub fn who() -> Who {
    let uid = nix::unistd::geteuid().as_raw();
    if uid == 0 {
        return Who::Root;
    }
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name);
    let has = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                let first = l.split(':').next().unwrap_or("");
                Some(first) == name.as_deref() || first == uid.to_string()
            })
    };
    let helpers =
        Path::new("/usr/bin/newuidmap").exists() && Path::new("/usr/bin/newgidmap").exists();
    if helpers && has("/etc/subuid") && has("/etc/subgid") {
        Who::UserWithSubids
    } else {
        Who::UserSingle
    }
}

pub fn uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}
pub fn gid() -> u32 {
    nix::unistd::getegid().as_raw()
}

/// The first range of `/etc/subuid` (or subgid) of the current user.
pub fn subid_range(file: &str) -> (u32, u32) {
    let name = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    for l in std::fs::read_to_string(file).unwrap_or_default().lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() == 3 && (f[0] == name || f[0] == uid().to_string()) {
            return (f[1].parse().unwrap(), f[2].parse().unwrap());
        }
    }
    panic!("no range for {name} in {file}");
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique container id for this test process.
pub fn unique_id(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A bundle in a private temporary directory, with its own state
/// directory, removed when dropped.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
    pub id: String,
}

fn busybox() -> &'static Path {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return Path::new(p);
        }
    }
    panic!("busybox not found: install busybox-static");
}

/// Make a busybox root file system at `rootfs`.
pub fn make_rootfs(rootfs: &Path) {
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "etc", "root",
        "home/app", "var/tmp",
    ] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::copy(busybox(), rootfs.join("bin/busybox")).unwrap();
    let list = Command::new(busybox()).arg("--list-full").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet == "bin/busybox" || applet.is_empty() {
            continue;
        }
        let _ = std::os::unix::fs::symlink("/bin/busybox", rootfs.join(applet));
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
    )
    .unwrap();
}

/// The config the tests start from: a shell command in a busybox root, with
/// the namespaces and mounts of a typical rootless bundle.
pub fn base_config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
                "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
                "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
            },
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "hutchbox",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/proc/acpi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

impl Bundle {
    /// A bundle running `args`.
    pub fn new(args: &[&str]) -> Bundle {
        let base = std::env::var_os("HUTCH_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let id = unique_id("t");
        let dir = base.join(format!("hutch-test-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        make_rootfs(&dir.join("rootfs"));
        let b = Bundle {
            dir,
            config: base_config(args),
            id,
        };
        b.write();
        b
    }

    /// Change the config with `f` and write it out.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.config);
        self.write();
        self
    }

    pub fn write(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// `hutch --root STATE ARGS...`, not yet run.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(hutch_bin());
        c.arg("--root").arg(self.state_dir()).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Run `hutch ARGS...` to completion.
    pub fn hutch(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `hutch run --bundle DIR ID`: the container's output and status.
    pub fn run(&self) -> Output {
        let dir = self.dir.to_str().unwrap().to_string();
        self.hutch(&["run", "--bundle", &dir, &self.id])
    }

    /// `hutch create --bundle DIR --pid-file DIR/pid ID`, with the
    /// container's stdout and stderr going to files in the bundle.
    pub fn create(&self) -> Output {
        let dir = self.dir.to_str().unwrap().to_string();
        let out = std::fs::File::create(self.dir.join("stdout")).unwrap();
        let err = std::fs::File::create(self.dir.join("stderr")).unwrap();
        let pid_file = format!("{dir}/pid");
        let mut c = self.cmd(&[
            "create",
            "--bundle",
            &dir,
            "--pid-file",
            &pid_file,
            &self.id,
        ]);
        // The container inherits these as its stdout and stderr; hutch's
        // own messages go there too, which the tests read.
        c.stdout(out).stderr(err);
        let status = c.status().unwrap();
        Output {
            status,
            stdout: Vec::new(),
            stderr: std::fs::read(self.dir.join("stderr")).unwrap_or_default(),
        }
    }

    pub fn pid(&self) -> i32 {
        std::fs::read_to_string(self.dir.join("pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// `hutch state ID` parsed, or `None` when it fails.
    pub fn state(&self) -> Option<Value> {
        let out = self.hutch(&["state", &self.id]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    pub fn status(&self) -> String {
        self.state()
            .map(|s| s["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "absent".into())
    }

    /// Entries in the state directory (hidden ones included).
    pub fn state_entries(&self) -> Vec<String> {
        match std::fs::read_dir(self.state_dir()) {
            Ok(d) => d
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                // The seccomp cache outlives containers on purpose.
                .filter(|n| !n.starts_with(".seccomp-"))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = self.cmd(&["delete", "--force", &self.id]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Text of an output stream.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Assert `out` succeeded, showing its streams otherwise.
#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Assert `out` failed with exactly one line on stderr containing `needle`.
#[track_caller]
pub fn assert_one_line_error(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got {:?}; stdout: {}",
        out.status,
        text(&out.stdout)
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains(": warn:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(
        err.contains(needle),
        "error `{}` does not mention `{needle}`",
        err.trim()
    );
}

/// Make this test process a child subreaper once, as buildah is, so the
/// container process is reparented to it when `create` exits.
pub fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| nix::sys::prctl::set_child_subreaper(true).unwrap());
}

/// Wait for the (reparented) container process and return its exit code,
/// or 128+N for signal N.
pub fn wait_exit(pid: i32) -> i32 {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => panic!("waitpid {pid}: {e}"),
        }
    }
}

/// True while a process with this pid exists (zombies count as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}
