//! The OCI lifecycle through the real binary: create, start, state, kill,
//! delete and run, exit statuses, stdio, and the state machine.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn wait_for_status(b: &Bundle, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = b.status();
        if s == want || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_returns_the_program_status() {
    for (cmd, want) in [("exit 0", 0), ("exit 3", 3), ("kill -9 $$", 137)] {
        let mut b = Bundle::new(&["/bin/sh", "-c", cmd]);
        // pid 1 of a pid namespace cannot SIGKILL itself: run that case
        // without one.
        b.edit(|c| {
            c["linux"]["namespaces"] =
                serde_json::json!([{"type": "mount"}, {"type": "ipc"}, {"type": "uts"}])
        });
        let out = b.run();
        assert_eq!(
            out.status.code(),
            Some(want),
            "{cmd}: {}",
            text(&out.stderr)
        );
        assert!(
            b.state_entries().is_empty(),
            "run left state: {:?}",
            b.state_entries()
        );
    }
}

#[test]
fn run_passes_stdio_through() {
    let b = Bundle::new(&["/bin/sh", "-c", "read x; echo out:$x; echo err >&2"]);
    let dir = b.dir.to_str().unwrap().to_string();
    let mut child = b
        .cmd(&["run", "--bundle", &dir, &b.id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "out:hi\n");
    assert_eq!(text(&out.stderr), "err\n");
}

#[test]
fn lifecycle_create_start_state_delete() {
    become_subreaper();
    let b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "echo started; read x < /dev/null; sleep 0.3; exit 7",
    ]);
    let out = b.create();
    assert_ok(&out);
    let pid = b.pid();
    let st = b.state().unwrap();
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"], pid);
    assert_eq!(st["id"], b.id.as_str());
    assert_eq!(st["bundle"], b.dir.to_str().unwrap());
    assert_eq!(st["ociVersion"], "1.0.2");
    assert!(alive(pid));
    // Nothing of the program ran before start.
    assert_eq!(std::fs::read_to_string(b.dir.join("stdout")).unwrap(), "");

    assert_ok(&b.hutch(&["start", &b.id]));
    assert_eq!(b.status(), "running");
    // A second start is refused.
    assert_one_line_error(&b.hutch(&["start", &b.id]), "cannot start");
    // delete refuses a running container without --force.
    assert_one_line_error(&b.hutch(&["delete", &b.id]), "running");

    // The exit status reaches the subreaper, as buildah takes it.
    assert_eq!(wait_exit(pid), 7);
    assert_eq!(b.status(), "stopped");
    assert!(b.state().unwrap().get("pid").is_none());
    assert_eq!(
        std::fs::read_to_string(b.dir.join("stdout")).unwrap(),
        "started\n"
    );
    assert_one_line_error(&b.hutch(&["kill", &b.id]), "stopped");
    assert_ok(&b.hutch(&["delete", &b.id]));
    assert!(b.state().is_none());
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
}

#[test]
fn create_keeps_no_copy_of_the_callers_stdout() {
    // The caller reads the container's stdout to EOF: that must come when
    // the program exits, not when hutch does (and not never).
    become_subreaper();
    let b = Bundle::new(&["/bin/sh", "-c", "echo one; exit 0"]);
    let dir = b.dir.to_str().unwrap().to_string();
    let pid_file = format!("{dir}/pid");
    let mut create = b
        .cmd(&["create", "--bundle", &dir, "--pid-file", &pid_file, &b.id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = create.stdout.take().unwrap();
    assert!(create.wait().unwrap().success());
    assert_ok(&b.hutch(&["start", &b.id]));
    let mut got = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut got).unwrap();
    assert_eq!(got, "one\n");
    assert_eq!(wait_exit(b.pid()), 0);
}

#[test]
fn kill_delivers_signals_by_name_and_number() {
    become_subreaper();
    for (sig, want) in [
        ("", 143),
        ("KILL", 137),
        ("SIGUSR1", 138),
        ("9", 137),
        ("sigterm", 143),
    ] {
        // sh as pid 1 of its namespace ignores signals it has no handler
        // for, so trap them and exit as the default action would.
        let b = Bundle::new(&[
            "/bin/sh",
            "-c",
            "trap 'exit 143' TERM; trap 'exit 138' USR1; touch /tmp/ready; while :; do sleep 0.05; done",
        ]);
        assert_ok(&b.create());
        assert_ok(&b.hutch(&["start", &b.id]));
        // Signal only once the traps are in place.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !b.rootfs().join("tmp/ready").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut args = vec!["kill", b.id.as_str()];
        if !sig.is_empty() {
            args.push(sig);
        }
        assert_ok(&b.hutch(&args));
        assert_eq!(wait_exit(b.pid()), want, "signal {sig:?}");
        assert_eq!(b.status(), "stopped");
        assert_ok(&b.hutch(&["delete", &b.id]));
    }
}

#[test]
fn kill_refuses_unknown_signals() {
    let b = Bundle::new(&["/bin/true"]);
    assert_one_line_error(&b.hutch(&["kill", &b.id, "SIGBOGUS"]), "unknown signal");
}

#[test]
fn delete_force_kills_a_running_container() {
    become_subreaper();
    let b = Bundle::new(&["/bin/sh", "-c", "sleep 1000 & sleep 1000"]);
    assert_ok(&b.create());
    assert_ok(&b.hutch(&["start", &b.id]));
    let pid = b.pid();
    assert_eq!(wait_for_status(&b, "running"), "running");
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert_eq!(wait_exit(pid), 137);
    assert!(b.state().is_none());
    assert!(b.state_entries().is_empty());
    // Deleting what does not exist succeeds only with --force.
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert_one_line_error(&b.hutch(&["delete", &b.id]), "does not exist");
}

#[test]
fn delete_of_a_created_container_needs_force_and_kills_its_process() {
    become_subreaper();
    let b = Bundle::new(&["/bin/true"]);
    assert_ok(&b.create());
    let pid = b.pid();
    // Not stopped: an error that changes nothing (runtime spec, delete).
    assert_one_line_error(&b.hutch(&["delete", &b.id]), "created");
    assert_eq!(b.status(), "created");
    assert!(alive(pid));
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert_eq!(wait_exit(pid), 137);
    assert!(b.state_entries().is_empty());
}

#[test]
fn kill_of_a_created_container_stops_it() {
    become_subreaper();
    let b = Bundle::new(&["/bin/true"]);
    assert_ok(&b.create());
    assert_ok(&b.hutch(&["kill", &b.id, "KILL"]));
    assert_eq!(wait_exit(b.pid()), 137);
    assert_eq!(b.status(), "stopped");
    assert_one_line_error(&b.hutch(&["start", &b.id]), "cannot start");
}

#[test]
fn a_second_create_with_the_same_id_fails_and_leaves_the_first() {
    become_subreaper();
    let b = Bundle::new(&["/bin/true"]);
    assert_ok(&b.create());
    let dir = b.dir.to_str().unwrap().to_string();
    let again = b.hutch(&["create", "--bundle", &dir, &b.id]);
    assert_one_line_error(&again, "already exists");
    assert_eq!(b.status(), "created");
    assert_ok(&b.hutch(&["start", &b.id]));
    assert_eq!(wait_exit(b.pid()), 0);
}

#[test]
fn racing_creates_on_one_id_have_one_winner() {
    become_subreaper();
    let b = Bundle::new(&["/bin/true"]);
    let dir = b.dir.to_str().unwrap().to_string();
    // The winner's container inherits its stdio, so errors go to files
    // (a pipe would stay open as long as the container).
    let children: Vec<_> = (0..6)
        .map(|i| {
            let err = std::fs::File::create(b.dir.join(format!("err{i}"))).unwrap();
            b.cmd(&["create", "--bundle", &dir, &b.id])
                .stdout(std::process::Stdio::null())
                .stderr(err)
                .spawn()
                .unwrap()
        })
        .collect();
    let results: Vec<_> = children
        .into_iter()
        .map(|mut c| c.wait().unwrap())
        .collect();
    let errors: Vec<String> = (0..6)
        .map(|i| std::fs::read_to_string(b.dir.join(format!("err{i}"))).unwrap())
        .collect();
    let winners = results.iter().filter(|s| s.success()).count();
    assert_eq!(winners, 1, "{errors:?}");
    assert_eq!(
        errors
            .iter()
            .filter(|e| e.contains("already exists"))
            .count(),
        5,
        "{errors:?}"
    );
    let st = b.state().unwrap();
    assert_eq!(st["status"], "created");
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert_eq!(wait_exit(st["pid"].as_i64().unwrap() as i32), 137);
}

#[test]
fn create_reports_a_missing_program() {
    // As runc and crun: podman maps this message to exit status 127.
    let b = Bundle::new(&["/no/such/program"]);
    let out = b.create();
    assert_one_line_error(&out, "/no/such/program");
    assert!(text(&out.stderr).contains("executable file not found"));
    assert_eq!(b.status(), "absent");
    let b = Bundle::new(&["no-such-program"]);
    assert_one_line_error(&b.create(), "no-such-program");
    assert_eq!(b.status(), "absent");
}

#[test]
fn create_reports_a_program_that_cannot_run() {
    // A directory: podman maps "permission denied" to exit status 126.
    let b = Bundle::new(&["/bin"]);
    let out = b.create();
    assert_one_line_error(&out, "permission denied");
    assert_eq!(b.status(), "absent");
}

#[test]
fn a_program_in_a_mount_is_looked_up_at_start() {
    become_subreaper();
    let mount = serde_json::json!({"destination": "/tools", "type": "bind",
        "source": "/bin", "options": ["rbind", "ro"]});
    let mut b = Bundle::new(&["/tools/busybox", "true"]);
    b.edit(|c| c["mounts"].as_array_mut().unwrap().push(mount.clone()));
    let out = b.run();
    assert_ok(&out);
    // Missing from the mount: only start can tell.
    let mut b = Bundle::new(&["/tools/no-such-program"]);
    b.edit(|c| c["mounts"].as_array_mut().unwrap().push(mount));
    assert_ok(&b.create());
    let out = b.hutch(&["start", &b.id]);
    assert_one_line_error(&out, "/tools/no-such-program");
    assert_eq!(wait_exit(b.pid()), 127);
    assert_eq!(b.status(), "stopped");
    assert_ok(&b.hutch(&["delete", &b.id]));
}

#[test]
fn delete_right_after_a_failed_start_succeeds() {
    // buildah runs `delete` as soon as `start` fails: the container process
    // must be gone by then (it was sometimes still exiting, 1 run in 20-50).
    become_subreaper();
    // The program is missing from a mount, so only start can tell.
    let mount = serde_json::json!({"destination": "/tools", "type": "bind",
        "source": "/bin", "options": ["rbind", "ro"]});
    for _ in 0..50 {
        let mut b = Bundle::new(&["/tools/no-such-program"]);
        b.edit(|c| c["mounts"].as_array_mut().unwrap().push(mount.clone()));
        assert_ok(&b.create());
        let pid = b.pid();
        let out = b.hutch(&["start", &b.id]);
        assert!(!out.status.success());
        assert_ok(&b.hutch(&["delete", &b.id]));
        assert_eq!(wait_exit(pid), 127);
    }
}

#[test]
fn list_shows_containers_and_their_status() {
    become_subreaper();
    let b = Bundle::new(&["/bin/true"]);
    assert_ok(&b.create());
    let out = b.hutch(&["list", "--format", "json"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], b.id.as_str());
    assert_eq!(v[0]["status"], "created");
    let quiet = b.hutch(&["list", "-q"]);
    assert_eq!(text(&quiet.stdout).trim(), b.id);
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert_eq!(wait_exit(b.pid()), 137);
}

#[test]
fn flags_after_the_id_and_runc_globals_are_accepted() {
    // Slurm writes `create ID -b BUNDLE`; callers pass runc's globals
    // (`--systemd-cgroup` asks for systemd, which tests/systemd.rs tests).
    let b = Bundle::new(&["/bin/sh", "-c", "exit 5"]);
    let dir = b.dir.to_str().unwrap().to_string();
    let out = b
        .cmd(&[
            "--rootless=true",
            "--cgroup-manager",
            "cgroupfs",
            "--log-format",
            "json",
            "run",
            &b.id,
            "-b",
            &dir,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
}

#[test]
fn errors_are_logged_as_json_lines_with_log_format_json() {
    let b = Bundle::new(&["/bin/true"]);
    let log = b.dir.join("log.json");
    let log_s = log.to_str().unwrap().to_string();
    let out = b.hutch(&["--log", &log_s, "--log-format", "json", "state", "nosuch"]);
    assert_one_line_error(&out, "does not exist");
    let line = std::fs::read_to_string(&log).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("does not exist"));
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn state_of_a_reused_pid_reads_stopped() {
    // Forge a record whose pid is alive but whose start time differs: the
    // process is a stranger and must not be reported or signalled.
    become_subreaper();
    let b = Bundle::new(&["/bin/true"]);
    assert_ok(&b.create());
    let pid = b.pid();
    let path = b.state_dir().join(&b.id).join("state.json");
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    rec["startTime"] = serde_json::json!(rec["startTime"].as_u64().unwrap() + 1);
    std::fs::write(&path, rec.to_string()).unwrap();
    assert_eq!(b.status(), "stopped");
    assert_one_line_error(&b.hutch(&["kill", &b.id, "KILL"]), "stopped");
    assert!(alive(pid), "kill hit the stranger");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(wait_exit(pid), 137);
}
