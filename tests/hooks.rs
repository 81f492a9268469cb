//! OCI hooks: each kind runs at its point of the lifecycle, in the right
//! namespaces, with the state on stdin; failures fail (or warn) as the
//! runtime spec says.

mod common;

use common::*;
use serde_json::{json, Value};

/// A hook that appends `NAME STATUS PID` to `log` (a path valid where the
/// hook runs) and keeps its stdin in `log.NAME.json`.
fn recorder(name: &str, log: &str) -> Value {
    let script = format!("s=$(cat); echo \"$s\" > {log}.{name}.json; echo \"{name} $X\" >> {log}");
    json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": [format!("X={name}-env")]})
}

fn read_state(path: &std::path::Path) -> Value {
    serde_json::from_str(std::fs::read_to_string(path).unwrap().trim()).unwrap()
}

#[test]
fn every_hook_runs_at_its_point_with_the_state_on_stdin() {
    become_subreaper();
    let mut b = Bundle::new(&["/bin/sh", "-c", "echo program >> /tmp/log"]);
    let host_log = b.dir.join("log").to_str().unwrap().to_string();
    b.edit(|c| {
        c["hooks"] = json!({
            "prestart": [recorder("prestart", &host_log)],
            "createRuntime": [recorder("createRuntime", &host_log)],
            "createContainer": [recorder("createContainer", &host_log)],
            // Runs in the container: its paths are the container's.
            "startContainer": [recorder("startContainer", "/tmp/log")],
            "poststart": [recorder("poststart", &host_log)],
            "poststop": [recorder("poststop", &host_log)]
        });
    });
    assert_ok(&b.create());
    let pid = b.pid();
    let log = || std::fs::read_to_string(b.dir.join("log")).unwrap_or_default();
    assert_eq!(
        log(),
        "prestart prestart-env\ncreateRuntime createRuntime-env\n"
    );
    let pre = read_state(&b.dir.join("log.prestart.json"));
    assert_eq!(
        (
            pre["status"].as_str(),
            pre["pid"].as_i64(),
            pre["id"].as_str()
        ),
        (Some("created"), Some(pid as i64), Some(b.id.as_str()))
    );

    assert_ok(&b.hutch(&["start", &b.id]));
    assert_eq!(wait_exit(pid), 0);
    assert_eq!(
        log(),
        "prestart prestart-env\ncreateRuntime createRuntime-env\ncreateContainer createContainer-env\npoststart poststart-env\n"
    );
    // The in-container hooks see the container's pid namespace.
    assert_eq!(
        read_state(&b.dir.join("log.createContainer.json"))["pid"],
        1
    );
    assert_eq!(
        read_state(&b.dir.join("log.poststart.json"))["status"],
        "running"
    );
    let inside = std::fs::read_to_string(b.rootfs().join("tmp/log")).unwrap();
    assert_eq!(inside, "startContainer startContainer-env\nprogram\n");

    assert_ok(&b.hutch(&["delete", &b.id]));
    assert!(log().ends_with("poststop poststop-env\n"));
    assert_eq!(
        read_state(&b.dir.join("log.poststop.json"))["status"],
        "stopped"
    );
}

fn failing(kind: &str) -> Value {
    json!({kind: [{"path": "/bin/sh", "args": ["sh", "-c", "exit 9"]}]})
}

/// A failing hook of `kind`, then one that appends `after` to `log`.
fn failing_then_logging(kind: &str, log: &std::path::Path) -> Value {
    let line = format!("echo after >> {}", log.display());
    json!({kind: [{"path": "/bin/sh", "args": ["sh", "-c", "exit 9"]},
                  {"path": "/bin/sh", "args": ["sh", "-c", line]}]})
}

#[test]
fn a_failing_prestart_or_create_runtime_hook_fails_create_and_leaves_nothing() {
    for kind in ["prestart", "createRuntime"] {
        let mut b = Bundle::new(&["/bin/true"]);
        b.edit(|c| c["hooks"] = failing(kind));
        let out = b.create();
        assert_one_line_error(&out, &format!("{kind} hook `/bin/sh`: failed"));
        assert!(
            b.state_entries().is_empty(),
            "{kind}: {:?}",
            b.state_entries()
        );
    }
}

#[test]
fn a_failing_in_container_hook_fails_start_and_stops_the_container() {
    become_subreaper();
    for kind in ["createContainer", "startContainer"] {
        let mut b = Bundle::new(&["/bin/true"]);
        b.edit(|c| c["hooks"] = failing(kind));
        assert_ok(&b.create());
        assert_one_line_error(
            &b.hutch(&["start", &b.id]),
            &format!("{kind} hook `/bin/sh`: failed"),
        );
        assert_ne!(wait_exit(b.pid()), 0);
        assert_eq!(b.status(), "stopped");
    }
}

#[test]
fn poststart_failure_stops_the_container_from_spec_1_3_and_warns_before() {
    become_subreaper();
    for (version, fatal) in [("1.3.0", true), ("1.2.0", false)] {
        let mut b = Bundle::new(&["/bin/sleep", "5"]);
        let log = b.dir.join("after");
        b.edit(|c| {
            c["ociVersion"] = json!(version);
            c["hooks"] = failing_then_logging("poststart", &log);
        });
        assert_ok(&b.create());
        let out = b.hutch(&["start", &b.id]);
        if fatal {
            assert_one_line_error(&out, "poststart hook `/bin/sh`: failed");
            assert_eq!(wait_exit(b.pid()), 137);
            assert!(!log.exists(), "a hook after the failed one ran");
        } else {
            assert_ok(&out);
            // The hooks after the failed one still run.
            assert_eq!(std::fs::read_to_string(&log).unwrap(), "after\n");
            assert!(
                text(&out.stderr).contains("warn: poststart hook"),
                "{}",
                text(&out.stderr)
            );
            assert_ok(&b.hutch(&["delete", "--force", &b.id]));
            assert_eq!(wait_exit(b.pid()), 137);
        }
    }
}

#[test]
fn a_failing_poststop_hook_is_a_warning() {
    let mut b = Bundle::new(&["/bin/true"]);
    let log = b.dir.join("after");
    b.edit(|c| c["hooks"] = failing_then_logging("poststop", &log));
    let out = b.run();
    assert_ok(&out);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "after\n");
    assert!(
        text(&out.stderr).contains("warn: poststop hook `/bin/sh`: failed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_hook_that_outlives_its_timeout_fails() {
    let mut b = Bundle::new(&["/bin/true"]);
    b.edit(|c| c["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}));
    let started = std::time::Instant::now();
    assert_one_line_error(&b.run(), "timed out after 1s");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(b.state_entries().is_empty());
}

#[test]
fn invalid_hooks_are_refused_at_create() {
    for (hooks, needle) in [
        (
            json!({"prestart": [{"path": "relative/path"}]}),
            "is not absolute",
        ),
        (
            json!({"poststop": [{"path": "/bin/true", "timeout": 0}]}),
            "timeout 0 must be above 0",
        ),
        (
            json!({"poststart": [{"path": "/bin/true", "env": ["NOEQUALS"]}]}),
            "is not NAME=value",
        ),
    ] {
        let mut b = Bundle::new(&["/bin/true"]);
        b.edit(|c| c["hooks"] = hooks.clone());
        assert_one_line_error(&b.run(), needle);
        assert!(b.state_entries().is_empty());
    }
}
