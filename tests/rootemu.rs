//! Root emulation (issue 13) in the busybox root, in each mode: a plain
//! user's default config maps one uid and one gid (emulation on); real
//! root without a user namespace and a config with subordinate ids get
//! the kernel's real answers. integration/rootemu.sh does the same with
//! Debian's dpkg, apt-get and friends.

mod common;

use common::*;
use serde_json::json;

const CAPS: [&str; 4] = ["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"];

fn sh(script: &str) -> Bundle {
    let mut b = Bundle::new(&["/bin/sh", "-c", script]);
    b.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(CAPS);
        }
    });
    b
}

fn output_of(b: &Bundle) -> String {
    let out = b.run();
    assert_ok(&out);
    text(&out.stdout)
}

/// Does the default config get root emulation here?
fn emulated() -> bool {
    who() != Who::Root
}

#[test]
fn chown_to_another_id() {
    let b = sh("touch /tmp/f; chown 1234:1234 /tmp/f; echo $?; stat -c %u:%g /tmp/f");
    let want = if emulated() {
        "0\n0:0\n"
    } else {
        "0\n1234:1234\n"
    };
    assert_eq!(output_of(&b), want);
    // Nothing is left in the state directory, not even a seccomp cache (a
    // shared one, as Slurm's, is checked to be empty).
    let left: Vec<_> = std::fs::read_dir(b.state_dir())
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    if emulated() {
        // On the host, the file is still the caller's.
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(b.rootfs().join("tmp/f")).unwrap();
        assert_eq!((md.uid(), md.gid()), (uid(), gid()));
    }
}

#[test]
fn real_errors_stay_real() {
    let b = sh(
        "chown 1234 /missing 2>&1; echo $?; mknod /tmp/null c 1 3; echo $?; \
                mknod /tmp/null c 1 3 2>&1; echo $?; mknod /no/dir c 1 3 2>&1; echo $?",
    );
    let out = output_of(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("No such file or directory"), "{out}");
    assert_eq!(lines[1], "1", "{out}");
    if emulated() {
        // Succeeds and makes nothing: the second one meets no file either.
        assert_eq!(lines[2..4], ["0", "0"], "{out}");
    }
    assert!(
        out.contains("/no/dir") && out.contains("No such file or directory"),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&"1"), "{out}");
}

#[test]
fn su_switches_the_reported_identity() {
    // busybox su as root asks for no password.
    let b = sh("su app -c 'id -u; id -g; id -G'; id -u");
    let out = output_of(&b);
    assert_eq!(out, "1000\n1000\n1000\n0\n");
}

#[test]
fn a_sigterm_to_every_process_leaves_the_supervisor() {
    // As a job manager's cleanup or a shutdown does: the program's last id
    // calls still get their answers.
    let b = sh("for p in /proc/[0-9]*; do \
                  [ \"$(cat $p/comm 2>/dev/null)\" = hutch-rootemu ] && kill -TERM ${p#/proc/}; done; \
                sleep 0.2; su app -c 'id -u'");
    assert_eq!(output_of(&b), "1000\n");
}

#[test]
fn the_configs_capabilities_still_apply() {
    // Without CAP_CHOWN and CAP_SETUID, root emulation refuses what the
    // kernel would refuse root: EPERM, after the lookup's own errors.
    let mut b = sh("touch /tmp/f; chown 1234 /tmp/f 2>&1; echo $?; chown 1234 /missing 2>&1; su app -c true 2>&1; echo $?");
    b.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(["CAP_KILL"]);
        }
    });
    let out = output_of(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("Operation not permitted"), "{out}");
    assert_eq!(lines[1], "1", "{out}");
    assert!(lines[2].contains("No such file or directory"), "{out}");
    assert_ne!(lines.last(), Some(&"0"), "{out}");
}

#[test]
fn the_annotation_turns_it_off() {
    let mut b = sh("touch /tmp/f; chown 1234 /tmp/f 2>&1; echo $?");
    b.edit(|c| c["annotations"] = json!({"org.hutch.root-emulation": "false"}));
    let out = output_of(&b);
    if emulated() {
        assert!(
            out.contains("Invalid argument") && out.ends_with("1\n"),
            "{out}"
        );
    } else {
        assert_eq!(out, "0\n");
    }
}

#[test]
fn a_bad_annotation_is_refused() {
    let mut b = sh("true");
    b.edit(|c| c["annotations"] = json!({"org.hutch.root-emulation": "yes"}));
    assert_one_line_error(&b.run(), "org.hutch.root-emulation");
    assert!(b.state_entries().is_empty());
}

#[test]
fn more_than_one_id_changes_nothing() {
    let script = "touch /tmp/f; chown 1234:1234 /tmp/f; stat -c %u:%g /tmp/f; \
                  ps -o comm | grep -c hutch-rootemu; true";
    let ranges = match who() {
        Who::Root => (200_000, 200_000),
        Who::UserWithSubids => (subid_range("/etc/subuid").0, subid_range("/etc/subgid").0),
        // It cannot map more than one id: its default config is emulated,
        // with one supervisor.
        Who::UserSingle => return assert_eq!(output_of(&sh(script)), "0:0\n1\n"),
    };
    let (u, g) = ranges;
    let mut b = sh(script);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid(), "size": 1},
                                           {"containerID": 1, "hostID": u, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid(), "size": 1},
                                           {"containerID": 1, "hostID": g, "size": 65536}]);
    });
    assert_eq!(output_of(&b), "1234:1234\n0\n");
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(b.rootfs().join("tmp/f")).unwrap();
    assert_eq!((md.uid(), md.gid()), (u + 1233, g + 1233));
}

#[test]
fn exec_is_emulated_too() {
    become_subreaper();
    let b = sh("touch /tmp/ready; exec sleep 1000");
    assert_ok(&b.create());
    assert_ok(&b.hutch(&["start", &b.id]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.rootfs().join("tmp/ready").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = b.hutch(&["exec", &b.id, "/bin/sh", "-c", "su app -c 'id -u'"]);
    assert_ok(&out);
    // With one id, su works only through the emulation.
    assert_eq!(text(&out.stdout), "1000\n");
    let out = b.hutch(&[
        "exec",
        &b.id,
        "/bin/sh",
        "-c",
        "chown 1234 /tmp/ready; echo $?",
    ]);
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "0\n");
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert_eq!(wait_exit(b.pid()), 137);
}
