//! `exec` into a running container, `ps`, and `kill --all`.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// A started container running `sleep`, with the test as its subreaper.
fn running() -> Bundle {
    become_subreaper();
    let b = Bundle::new(&["/bin/sh", "-c", "echo ready > /tmp/ready; exec sleep 1000"]);
    assert_ok(&b.create());
    assert_ok(&b.hutch(&["start", &b.id]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.rootfs().join("tmp/ready").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    b
}

fn finish(b: &Bundle) {
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert_eq!(wait_exit(b.pid()), 137);
}

#[test]
fn exec_joins_the_containers_namespaces_and_returns_its_status() {
    let b = running();
    let container_ns =
        |kind: &str| std::fs::read_link(format!("/proc/{}/ns/{kind}", b.pid())).unwrap();
    let out = b.hutch(&[
        "exec",
        &b.id,
        "/bin/sh",
        "-c",
        "hostname; readlink /proc/self/ns/mnt /proc/self/ns/pid /proc/self/ns/uts; cat /tmp/ready",
    ]);
    assert_ok(&out);
    let got = text(&out.stdout);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "hutchbox");
    // busybox readlink prints one target per line only for one argument;
    // compare what we can: the file the container wrote is visible.
    assert_eq!(*lines.last().unwrap(), "ready");
    let out = b.hutch(&["exec", &b.id, "/bin/sh", "-c", "readlink /proc/self/ns/mnt"]);
    assert_eq!(
        text(&out.stdout).trim(),
        container_ns("mnt").to_str().unwrap()
    );
    let out = b.hutch(&["exec", &b.id, "/bin/sh", "-c", "exit 6"]);
    assert_eq!(out.status.code(), Some(6));
    finish(&b);
}

#[test]
fn exec_takes_env_cwd_user_and_a_process_file() {
    let b = running();
    let out = b.hutch(&[
        "exec",
        "-e",
        "FOO=bar",
        "--cwd",
        "/tmp",
        &b.id,
        "/bin/sh",
        "-c",
        "echo $FOO $(pwd) $HOME",
    ]);
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "bar /tmp /root\n");

    let process = serde_json::json!({
        "args": ["/bin/sh", "-c", "echo from-file $A; id -u"],
        "env": ["A=1", "PATH=/bin"],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0}
    });
    let file = b.dir.join("process.json");
    std::fs::write(&file, process.to_string()).unwrap();
    let out = b.hutch(&["exec", "--process", file.to_str().unwrap(), &b.id]);
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "from-file 1\n0\n");
    finish(&b);
}

#[test]
fn exec_detach_writes_the_pid_and_ps_lists_it() {
    let b = running();
    let pid_file = b.dir.join("exec.pid");
    // The detached program keeps the stdio it was given: not a pipe here.
    let status = b
        .cmd(&[
            "exec",
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &b.id,
            "sleep",
            "1000",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let exec_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(exec_pid));
    let ps = b.hutch(&["ps", "--format", "json", &b.id]);
    assert_ok(&ps);
    let pids: Vec<i64> = serde_json::from_slice(&ps.stdout).unwrap();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.contains(&(b.pid() as i64)) && pids.contains(&(exec_pid as i64)));
    // The detached process was reparented to us (the subreaper, as conmon
    // is for podman); the container's pid 1 finishes dying only once it is
    // reaped, so reap it as kill --all ends it.
    assert_ok(&b.hutch(&["kill", "--all", &b.id, "KILL"]));
    assert_eq!(wait_exit(exec_pid), 137);
    assert_eq!(wait_exit(b.pid()), 137);
    assert_ok(&b.hutch(&["delete", &b.id]));
}

#[test]
fn exec_errors_name_the_problem() {
    let b = running();
    assert_one_line_error(
        &b.hutch(&["exec", &b.id, "/no/such/program"]),
        "/no/such/program",
    );
    assert_one_line_error(&b.hutch(&["exec", "nosuch", "true"]), "does not exist");
    assert_one_line_error(&b.hutch(&["exec", &b.id]), "exec needs a command");
    finish(&b);
    let b2 = Bundle::new(&["/bin/true"]);
    assert_ok(&b2.run());
    assert_one_line_error(&b2.hutch(&["exec", &b2.id, "true"]), "does not exist");
}

#[test]
fn kill_all_reaches_every_process_of_the_container() {
    become_subreaper();
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "sleep 1000 & sleep 1000 & echo started > /tmp/ready; wait",
    ]);
    // Without a pid namespace of its own, the members are found by their
    // mount namespace.
    b.edit(|c| {
        c["linux"]["namespaces"] =
            serde_json::json!([{"type": "mount"}, {"type": "ipc"}, {"type": "uts"}])
    });
    assert_ok(&b.create());
    assert_ok(&b.hutch(&["start", &b.id]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.rootfs().join("tmp/ready").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let ps = b.hutch(&["ps", "--format", "json", &b.id]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert_ok(&b.hutch(&["kill", "--all", &b.id, "KILL"]));
    assert_eq!(wait_exit(b.pid()), 137);
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "left: {:?}",
        pids.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
    );
    assert_ok(&b.hutch(&["delete", &b.id]));
}

#[test]
fn exec_gives_the_process_its_oom_score_adj_for_every_user() {
    // Found by integration/differential.sh: a plain user's exec could not
    // open /proc/self/oom_score_adj once in the container's user namespace.
    let b = running();
    let file = b.dir.join("process.json");
    let mut p = b.config["process"].clone();
    p["args"] = serde_json::json!(["/bin/cat", "/proc/self/oom_score_adj"]);
    p["oomScoreAdj"] = serde_json::json!(123);
    std::fs::write(&file, serde_json::to_vec(&p).unwrap()).unwrap();
    let out = b.hutch(&["exec", "--process", file.to_str().unwrap(), &b.id]);
    assert_ok(&out);
    assert_eq!(text(&out.stdout).trim(), "123");
    finish(&b);
}
