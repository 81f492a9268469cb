//! `--systemd-cgroup` where no systemd answers, as root and as plain
//! users: create fails with one line naming the bus (or the call), and
//! leaves nothing. The driver against a real systemd is in
//! integration/systemd.sh, which boots one.
//!
//! The bus here is a real one: a private `dbus-daemon` the test starts,
//! on which nothing owns `org.freedesktop.systemd1`; so the client's
//! authentication, `Hello`, `AddMatch` and the call itself go through a
//! real bus, as the caller (root or a plain user).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::*;
use serde_json::json;

/// The environment variable naming the bus this caller's hutch uses.
fn bus_variable() -> &'static str {
    match who() {
        Who::Root => "DBUS_SYSTEM_BUS_ADDRESS",
        _ => "DBUS_SESSION_BUS_ADDRESS",
    }
}

fn bundle() -> Bundle {
    let mut b = Bundle::new(&["/bin/sh", "-c", "echo ran"]);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:hutch:{}", "t"));
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    });
    b
}

/// `hutch --systemd-cgroup run` with the bus at `address`.
fn run_with_bus(b: &Bundle, address: &str) -> Output {
    let dir = b.dir.to_str().unwrap().to_string();
    let mut c = b.cmd(&["--systemd-cgroup", "run", "--bundle", &dir, &b.id]);
    c.env_remove("DBUS_SYSTEM_BUS_ADDRESS")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env(bus_variable(), address);
    c.output().unwrap()
}

#[track_caller]
fn assert_left_nothing(b: &Bundle, out: &Output) {
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
}

#[test]
fn without_a_bus_create_fails_naming_its_address() {
    let b = bundle();
    let address = format!("unix:path={}", b.dir.join("no-bus").display());
    let out = run_with_bus(&b, &address);
    assert_one_line_error(&out, &format!("`{address}`"));
    let err = text(&out.stderr);
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(err.contains("systemd cgroup driver"), "{err}");
    assert_eq!(out.status.code(), Some(1));
    assert_left_nothing(&b, &out);
}

#[test]
fn a_plain_user_without_any_session_bus_is_told_so() {
    let b = bundle();
    if who() == Who::Root {
        // Root uses the system bus, whatever XDG_RUNTIME_DIR says.
        let out = run_with_bus(&b, "unix:path=/nonexistent/system_bus_socket");
        assert_one_line_error(&out, "unix:path=/nonexistent/system_bus_socket");
        assert_left_nothing(&b, &out);
        return;
    }
    let dir = b.dir.to_str().unwrap().to_string();
    let out = b
        .cmd(&["--systemd-cgroup", "run", "--bundle", &dir, &b.id])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("XDG_RUNTIME_DIR", &b.dir)
        .output()
        .unwrap();
    // $XDG_RUNTIME_DIR/bus, where systemd --user's bus would be.
    assert_one_line_error(&out, &format!("unix:path={}/bus", b.dir.display()));
    assert_left_nothing(&b, &out);
}

/// A private bus; killed when dropped.
struct PrivateBus {
    child: Child,
    address: String,
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn private_bus(dir: &Path) -> PrivateBus {
    let socket: PathBuf = dir.join("bus");
    let conf = dir.join("bus.conf");
    std::fs::write(
        &conf,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            socket.display()
        ),
    )
    .unwrap();
    let mut child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", conf.display()))
        .args(["--nofork", "--nopidfile", "--print-address"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon (Debian's dbus-daemon package)");
    // It prints its address once it listens.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("unix:"), "dbus-daemon printed `{line}`");
    PrivateBus {
        child,
        address: line.trim().to_string(),
    }
}

#[test]
fn a_bus_without_systemd_fails_create_with_the_bus_error() {
    let b = bundle();
    let bus = private_bus(&b.dir);
    let out = run_with_bus(&b, &bus.address);
    // The bus answered the call: nothing provides systemd's name there.
    assert_one_line_error(&out, "org.freedesktop.DBus.Error.ServiceUnknown");
    let err = text(&out.stderr);
    assert!(
        err.contains("start unit hutch-t.scope in system.slice"),
        "{err}"
    );
    assert!(err.contains("org.freedesktop.systemd1"), "{err}");
    assert_left_nothing(&b, &out);
}

#[test]
fn with_systemd_cgroup_a_path_must_be_slice_prefix_name() {
    let mut b = bundle();
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("/hutch/x"));
    let out = run_with_bus(&b, "unix:path=/nonexistent");
    assert_one_line_error(
        &out,
        "linux.cgroupsPath `/hutch/x`: with --systemd-cgroup it must be slice:prefix:name",
    );
    assert_left_nothing(&b, &out);
}

#[test]
fn a_malformed_slice_is_a_config_error() {
    let mut b = bundle();
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("system:hutch:x"));
    let out = run_with_bus(&b, "unix:path=/nonexistent");
    assert_one_line_error(&out, "the slice must be a systemd slice unit name");
    assert_left_nothing(&b, &out);
}

#[test]
fn cgroup_manager_systemd_is_the_systemd_driver() {
    let b = bundle();
    let address = format!("unix:path={}", b.dir.join("no-bus").display());
    let dir = b.dir.to_str().unwrap().to_string();
    let out = b
        .cmd(&[
            "--cgroup-manager",
            "systemd",
            "run",
            "--bundle",
            &dir,
            &b.id,
        ])
        .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env(bus_variable(), &address)
        .output()
        .unwrap();
    assert_one_line_error(&out, &format!("`{address}`"));
    assert_left_nothing(&b, &out);
}
