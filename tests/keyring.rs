//! The session keyring: a container gets one of its own, named after it,
//! as with runc and crun, and cannot read the keys of its caller's
//! (Kerberos and AFS tokens live there on HPC machines);
//! `--no-new-keyring` keeps the caller's, as with those runtimes.
//!
//! Each test runs hutch under `keyctl session -` (Debian's keyutils): a
//! shell in a new session keyring of its own, which adds a key there first.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Copy `program` and the libraries `ldd` names for it into the root.
fn copy_with_libraries(rootfs: &Path, program: &str) {
    let out = Command::new("ldd").arg(program).output().unwrap();
    assert_ok(&out);
    let mut files = vec![program.to_string()];
    for line in text(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"
        if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
            files.push(path.to_string());
        }
    }
    for f in files {
        let to = rootfs.join(f.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        // The rootfs's /bin and /lib may be links in the host's layout:
        // copy the file's content, whatever its name's path.
        std::fs::copy(&f, &to).unwrap();
    }
}

/// A busybox bundle with `keyctl` running `args`.
fn bundle(args: &[&str]) -> Bundle {
    let b = Bundle::new(args);
    copy_with_libraries(&b.rootfs(), "/usr/bin/keyctl");
    b
}

/// What the container's program runs: try to read the caller's key (its
/// serial number in `/key`), then describe its own session keyring.
const PROBE: &str = "keyctl print $(cat /key) 2>&1; keyctl rdescribe @s";

#[test]
fn the_container_cannot_read_the_callers_session_keys() {
    let b = bundle(&["/bin/sh", "-c", PROBE]);
    let dir = b.dir.to_str().unwrap().to_string();
    let out = with_key_file(&b, &["run", "--bundle", &dir, &b.id]);
    assert_ok(&out);
    let got = text(&out.stdout);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 2, "{got}");
    assert!(
        lines[0].contains("Permission denied"),
        "the container read the caller's key: {got}"
    );
    // Its own keyring: "keyring;UID;GID;PERM;ID".
    assert!(
        lines[1].starts_with("keyring;") && lines[1].ends_with(&format!(";{}", b.id)),
        "{got}"
    );
}

#[test]
fn no_new_keyring_keeps_the_callers_session_keyring() {
    let b = bundle(&["/bin/sh", "-c", PROBE]);
    let dir = b.dir.to_str().unwrap().to_string();
    let out = with_key_file(&b, &["run", "--no-new-keyring", "--bundle", &dir, &b.id]);
    assert_ok(&out);
    let got = text(&out.stdout);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 2, "{got}");
    assert_eq!(lines[0], "s3cret");
    // `keyctl session -` names its keyring `_ses`.
    assert!(lines[1].ends_with(";_ses"), "{got}");
}

#[test]
fn exec_joins_the_containers_keyring_not_the_callers() {
    become_subreaper();
    let b = bundle(&["/bin/sleep", "1000"]);
    assert_ok(&b.create());
    assert_ok(&b.hutch(&["start", &b.id]));
    let out = with_key_file(&b, &["exec", &b.id, "/bin/sh", "-c", PROBE]);
    assert_ok(&out);
    let got = text(&out.stdout);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 2, "{got}");
    assert!(lines[0].contains("Permission denied"), "{got}");
    assert!(lines[1].ends_with(&format!(";{}", b.id)), "{got}");
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
}

/// In a new session keyring holding the user key `hutch-secret`, run
/// `hutch ARGS...` with `b`'s state directory; the key's serial number is
/// written to `/key` in the root first.
fn with_key_file(b: &Bundle, args: &[&str]) -> Output {
    let script = r#"KEY=$(keyctl add user hutch-secret s3cret @s) || exit 99
        echo "$KEY" >"$0" || exit 98; exec "$@""#;
    let mut c = Command::new("keyctl");
    c.args(["session", "-", "sh", "-c", script])
        .arg(b.rootfs().join("key"));
    c.arg(hutch_bin())
        .arg("--root")
        .arg(b.state_dir())
        .args(args);
    c.stdin(Stdio::null());
    c.output().unwrap()
}
