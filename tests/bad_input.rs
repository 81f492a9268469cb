//! Bad input (issue 11): files a caller controls that are not what they
//! should be fail at once, with one line naming the file and what is wrong,
//! and leave nothing behind; every mount option is applied or refused with
//! an error naming it, compared case by case with crun.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Run `cmd` to completion, failing the test if it takes more than a few
/// seconds (what was fixed here is hutch hanging). Its output goes through
/// files: a container that `create` made keeps create's stdio open.
fn within(mut cmd: Command) -> Output {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = std::env::var_os("HUTCH_TEST_TMP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("hutch-within-{}-{n}", std::process::id()));
    let (out, err) = (base.with_extension("out"), base.with_extension("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hutch hung: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    };
    let _ = std::fs::remove_file(out);
    let _ = std::fs::remove_file(err);
    output
}

fn create_within(b: &Bundle) -> Output {
    let dir = b.dir.to_str().unwrap();
    within(b.cmd(&["create", "--bundle", dir, &b.id]))
}

/// Nothing of a failed create is left: no entry, no process.
fn nothing_left(b: &Bundle) {
    assert!(
        b.state_entries().is_empty(),
        "left: {:?}",
        b.state_entries()
    );
    assert!(b.state().is_none());
}

#[test]
fn a_config_json_that_is_not_a_bounded_regular_file_fails_at_once() {
    type Make = fn(&std::path::Path);
    let cases: [(&str, Make, &str); 5] = [
        (
            "symlink to /dev/zero",
            |p| std::os::unix::fs::symlink("/dev/zero", p).unwrap(),
            "a character device, not a regular file",
        ),
        (
            "FIFO",
            |p| nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap(),
            "a FIFO, not a regular file",
        ),
        (
            "directory",
            |p| std::fs::create_dir(p).unwrap(),
            "a directory, not a regular file",
        ),
        (
            "9 MiB",
            |p| std::fs::File::create(p).unwrap().set_len(9 << 20).unwrap(),
            "larger than the 8 MiB hutch reads",
        ),
        (
            "dangling symlink",
            |p| std::os::unix::fs::symlink("nowhere.json", p).unwrap(),
            "no config.json in bundle",
        ),
    ];
    for (what, make, error) in cases {
        let b = Bundle::new(&["/bin/true"]);
        let config = b.dir.join("config.json");
        std::fs::remove_file(&config).unwrap();
        make(&config);
        let out = create_within(&b);
        assert_one_line_error(&out, error);
        if !error.starts_with("no config.json") {
            assert_one_line_error(&out, &config.display().to_string());
        }
        nothing_left(&b);
        eprintln!("{what}: {}", text(&out.stderr).trim());
    }
}

#[test]
fn a_config_json_symlinked_to_a_regular_file_is_read_as_runc_and_crun_do() {
    let b = Bundle::new(&["/bin/sh", "-c", "echo linked"]);
    let config = b.dir.join("config.json");
    std::fs::rename(&config, b.dir.join("real.json")).unwrap();
    std::os::unix::fs::symlink("real.json", &config).unwrap();
    let out = b.run();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "linked\n");
}

#[test]
fn exec_process_json_that_is_a_fifo_fails_at_once() {
    become_subreaper();
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    assert_ok(&b.create());
    assert_ok(&b.hutch(&["start", &b.id]));
    let fifo = b.dir.join("process.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let out = within(b.cmd(&["exec", "--process", fifo.to_str().unwrap(), &b.id]));
    assert_one_line_error(&out, "a FIFO, not a regular file");
    assert_one_line_error(&out, "process.json");
    assert_eq!(b.status(), "running");
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert_eq!(wait_exit(b.pid()), 137);
}

/// In a shared state directory an entry's owner controls its files: a
/// record that is a FIFO must not hang `state` (root's, under Slurm), and
/// `delete --force` still removes the entry.
#[test]
fn a_state_record_that_is_a_fifo_fails_at_once_and_delete_force_removes_it() {
    become_subreaper();
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    assert_ok(&b.create());
    let pid = b.pid();
    let record = b.state_dir().join(&b.id).join("state.json");
    std::fs::remove_file(&record).unwrap();
    nix::unistd::mkfifo(&record, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let out = within(b.cmd(&["state", &b.id]));
    assert_one_line_error(&out, "a FIFO, not a regular file");
    let out = within(b.cmd(&["list"]));
    assert_ok(&out);
    let out = within(b.cmd(&["delete", "--force", &b.id]));
    assert_ok(&out);
    assert!(
        b.state_entries().is_empty(),
        "left: {:?}",
        b.state_entries()
    );
    // Its process: the record that named it is gone, so nothing says
    // which it is; the test kills it.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    wait_exit(pid);
}

/// crun, as the test's user, with the same bundle (its own state
/// directory; no cgroup, which crun 1.8 refuses on this hybrid host).
fn crun(b: &Bundle) -> Output {
    let id = format!("{}-crun", b.id);
    let state = b.dir.join("crun-state");
    let mut c = Command::new("crun");
    c.arg("--cgroup-manager=disabled")
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    let out = within(c);
    let mut rm = Command::new("crun");
    rm.arg("--root")
        .arg(&state)
        .args(["delete", "--force", &id]);
    let _ = rm.output();
    out
}

/// A bundle whose program prints the mount options of `/mnt` and its
/// filesystem's, with a user namespace for a plain user (crun makes none
/// by itself) and a network namespace (sysfs needs one it owns).
fn mount_bundle(mount: Value) -> Bundle {
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        r"sed -n 's|^[^ ]* [^ ]* [^ ]* [^ ]* /mnt \([^ ]*\) .* - \(.*\)$|\1 \2|p' /proc/self/mountinfo",
    ]);
    std::fs::create_dir(b.rootfs().join("mnt")).unwrap();
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(mount);
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "network"}));
        if who() != Who::Root {
            ns.push(json!({"type": "user"}));
            c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid(), "size": 1}]);
            c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid(), "size": 1}]);
            // No gid 5 (tty) in a single mapping.
            for m in c["mounts"].as_array_mut().unwrap() {
                if m["type"] == "devpts" {
                    m["options"] = json!([
                        "nosuid",
                        "noexec",
                        "newinstance",
                        "ptmxmode=0666",
                        "mode=0620"
                    ]);
                }
            }
        }
    });
    b
}

/// Options of the filesystems hutch makes, against crun: where crun's
/// mount succeeds hutch's does with the same flags and filesystem options;
/// where the kernel refuses crun's (crun hands options it does not know to
/// it), hutch refuses too, with one line naming the option (at create for
/// the types whose options hutch knows, at start for the others).
#[test]
fn mount_options_are_applied_or_refused_naming_them_as_with_crun() {
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        ("sysfs", &["nosuid", "nodev", "noexec", "ro"], None),
        ("sysfs", &["nosuid", "bogus=1"], Some("bogus=1")),
        ("sysfs", &["remount-nonsense"], Some("remount-nonsense")),
        ("proc", &["nosuid", "hidepid=2"], None),
        ("proc", &["bogus=1"], Some("bogus=1")),
        ("mqueue", &["nodev", "bogus=1"], Some("bogus=1")),
        ("tmpfs", &["size=1m", "mode=700", "noexec"], None),
        ("tmpfs", &["bogus=1"], Some("bogus=1")),
        ("tmpfs", &["remount-nonsense"], Some("remount-nonsense")),
    ];
    for (fstype, options, refused) in cases {
        let case = format!("{fstype} {options:?}");
        let b = mount_bundle(json!({
            "destination": "/mnt", "type": fstype, "source": fstype, "options": options,
        }));
        let ours = within(b.cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &b.id]));
        let theirs = crun(&b);
        match refused {
            None => {
                assert_ok(&ours);
                assert_ok(&theirs);
                assert_eq!(text(&ours.stdout), text(&theirs.stdout), "{case}");
            }
            Some(option) => {
                assert_one_line_error(&ours, option);
                assert!(!theirs.status.success(), "{case}: crun accepted it");
                assert!(
                    text(&theirs.stderr).contains("Invalid argument"),
                    "{case}: crun: {}",
                    text(&theirs.stderr)
                );
            }
        }
        nothing_left(&b);
        eprintln!(
            "{case}: hutch `{}`, crun `{}`",
            text(&ours.stderr).trim(),
            text(&theirs.stderr).trim()
        );
    }
}

/// Where crun silently drops an option (a bind mount's filesystem options
/// as root, any option of a `cgroup` mount, for which it makes a tmpfs),
/// hutch refuses it: it cannot be applied (README, differences).
#[test]
fn options_that_cannot_be_applied_are_refused() {
    let cases: [(Value, &str); 3] = [
        (
            json!({"destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["rbind", "bogus=1"]}),
            "a bind mount takes no filesystem options",
        ),
        (
            json!({"destination": "/mnt", "type": "none", "source": "/tmp", "options": ["bind", "mode=755"]}),
            "a bind mount takes no filesystem options",
        ),
        (
            json!({"destination": "/mnt", "type": "cgroup", "source": "cgroup", "options": ["bogus=1"]}),
            "cgroup2 takes only",
        ),
    ];
    for (mount, error) in cases {
        let b = mount_bundle(mount);
        let out = create_within(&b);
        assert_one_line_error(&out, error);
        nothing_left(&b);
    }
}
