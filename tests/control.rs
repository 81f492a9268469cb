//! pause, resume, update, events and ps, through the real binary, as
//! root and as plain users.
//!
//! A container gets a cgroup when its config has a cgroupsPath and the
//! caller may make it: root, or a user whose own cgroup v2 was delegated
//! to it (CI delegates one to each test user). Then the operations act on
//! it, and the tests check what the container's processes do (a frozen
//! counter stops), not only files. Where a controller is not available
//! (this hybrid host keeps most in cgroup v1), a limit must be in the file
//! of whichever hierarchy holds it, or be warned about. A container
//! without a cgroup (a config without one, or a caller without a
//! delegated subtree) gets one error line from pause, resume, update and
//! events, and ps still lists its processes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Where cgroup2 is mounted, if it is.
fn cgroup2_root() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        right
            .starts_with("cgroup2 ")
            .then(|| PathBuf::from(left.split_whitespace().nth(4).unwrap()))
    })
}

/// True when the caller may make cgroups: root, or a user owning its own
/// (delegated) cgroup v2.
fn may_make_cgroups() -> bool {
    if who() == Who::Root {
        return true;
    }
    let Some(root) = cgroup2_root() else {
        return false;
    };
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        .unwrap_or_default();
    let dir = root.join(own.trim_start_matches('/'));
    use nix::unistd::{access, AccessFlags};
    access(&dir, AccessFlags::W_OK).is_ok()
        && access(&dir.join("cgroup.procs"), AccessFlags::W_OK).is_ok()
}

/// The directory of process `pid`'s own cgroup in the hierarchy that
/// holds `controller`: a cgroup v1 hierarchy that has it, else cgroup2
/// when the process's cgroup there offers it. `None` when neither does,
/// or when the process is where the test is in that hierarchy (it has
/// no cgroup of its own there).
fn controller_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in cgroups.lines() {
        if mine.lines().any(|l| l == line) {
            continue;
        }
        let mut f = line.splitn(3, ':');
        let (id, names, path) = (f.next()?, f.next()?, f.next()?);
        let path = path.trim_start_matches('/');
        if id == "0" {
            let dir = cgroup2_root()?.join(path);
            let offered = std::fs::read_to_string(dir.join("cgroup.controllers")).ok()?;
            if offered.split_whitespace().any(|c| c == controller) {
                return Some(dir);
            }
        } else if names.split(',').any(|c| c == controller) {
            // The v1 mount whose super options name the controller.
            for m in info.lines() {
                let (left, right) = m.split_once(" - ")?;
                let mut r = right.split_whitespace();
                if r.next() != Some("cgroup") {
                    continue;
                }
                let opts = r.nth(1).unwrap_or("");
                if opts.split(',').any(|o| o == controller) {
                    return Some(PathBuf::from(left.split_whitespace().nth(4)?).join(path));
                }
            }
        }
    }
    None
}

/// The directories of process `pid`'s cgroups that are not the test's own
/// (those hutch placed it in), in every hierarchy.
fn own_cgroup_dirs(pid: i32) -> Vec<PathBuf> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut dirs = Vec::new();
    for line in cgroups.lines().filter(|l| !mine.lines().any(|m| m == *l)) {
        let mut f = line.splitn(3, ':');
        let (id, names, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let path = path.trim_start_matches('/');
        if id == "0" {
            dirs.extend(cgroup2_root().map(|r| r.join(path)));
            continue;
        }
        let first = names.split(',').next().unwrap();
        for m in info.lines() {
            let (left, right) = m.split_once(" - ").unwrap();
            let mut r = right.split_whitespace();
            if r.next() == Some("cgroup") && r.nth(1).unwrap_or("").split(',').any(|o| o == first) {
                dirs.push(PathBuf::from(left.split_whitespace().nth(4).unwrap()).join(path));
            }
        }
    }
    dirs
}

/// A bundle whose program counts in /tmp/n, every 10 ms, after touching
/// /tmp/ready; with a cgroupsPath of its own.
fn counter() -> Bundle {
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "touch /tmp/ready; i=0; while :; do i=$((i+1)); echo $i > /tmp/n; usleep 10000; done",
    ]);
    let name = format!("hutch-test-{}", b.id);
    let path = if who() == Who::Root {
        format!("/{name}")
    } else {
        name
    };
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    b
}

/// Create and start `b` (a subreaper waits for it); the output of create.
fn start(b: &Bundle) -> Output {
    become_subreaper();
    let out = b.create();
    assert_ok(&out);
    assert_ok(&b.hutch(&["start", &b.id]));
    let ready = b.rootfs().join("tmp/ready");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ready.exists(), "the container did not start");
    out
}

fn finish(b: &Bundle) {
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert_eq!(wait_exit(b.pid()), 137);
}

/// The counter's value.
fn count(b: &Bundle) -> u64 {
    std::fs::read_to_string(b.rootfs().join("tmp/n"))
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Whether the counter moves within half a second.
fn counting(b: &Bundle) -> bool {
    let before = count(b);
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        if count(b) != before {
            return true;
        }
    }
    false
}

/// The one error line for a container without a cgroup.
#[track_caller]
fn assert_no_cgroup_error(out: &Output, op: &str, id: &str) {
    assert_one_line_error(
        out,
        &format!("cannot {op} container `{id}`: it has no cgroup"),
    );
}

#[test]
fn pause_freezes_and_resume_thaws_the_container() {
    let b = counter();
    start(&b);
    if !may_make_cgroups() {
        // The one warning at create; then pause says why it cannot.
        assert_no_cgroup_error(&b.hutch(&["pause", &b.id]), "pause", &b.id);
        assert_eq!(b.status(), "running");
        finish(&b);
        return;
    }
    assert!(counting(&b), "the counter does not count");
    let out = b.hutch(&["pause", &b.id]);
    assert_ok(&out);
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    assert_eq!(b.status(), "paused");
    assert_eq!(b.state().unwrap()["pid"], b.pid());
    // Frozen: nothing runs (wait past a write already under way).
    std::thread::sleep(Duration::from_millis(50));
    assert!(!counting(&b), "the counter still counts while paused");
    // `list` derives the status the same way.
    let list = text(&b.hutch(&["list", "--format", "json"]).stdout);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["status"], "paused", "{list}");

    assert_one_line_error(
        &b.hutch(&["pause", &b.id]),
        &format!("cannot pause container `{}`: it is paused", b.id),
    );
    assert_one_line_error(
        &b.hutch(&["exec", &b.id, "true"]),
        &format!("container `{}`: it is paused", b.id),
    );
    assert_one_line_error(
        &b.hutch(&["delete", &b.id]),
        &format!("cannot delete container `{}`: it is paused", b.id),
    );

    assert_ok(&b.hutch(&["resume", &b.id]));
    assert_eq!(b.status(), "running");
    assert!(counting(&b), "the counter does not count after resume");
    assert_one_line_error(
        &b.hutch(&["resume", &b.id]),
        &format!("cannot resume container `{}`: it is running", b.id),
    );
    finish(&b);
    assert_one_line_error(
        &b.hutch(&["pause", &b.id]),
        &format!("container `{}` does not exist", b.id),
    );
}

#[test]
fn a_created_container_can_be_paused_and_not_started_until_resumed() {
    let b = counter();
    become_subreaper();
    assert_ok(&b.create());
    if !may_make_cgroups() {
        assert_no_cgroup_error(&b.hutch(&["pause", &b.id]), "pause", &b.id);
        finish(&b);
        return;
    }
    assert_ok(&b.hutch(&["pause", &b.id]));
    assert_eq!(b.status(), "paused");
    assert_one_line_error(
        &b.hutch(&["start", &b.id]),
        &format!("cannot start container `{}`: it is paused", b.id),
    );
    assert_ok(&b.hutch(&["resume", &b.id]));
    assert_eq!(b.status(), "created");
    assert_ok(&b.hutch(&["start", &b.id]));
    assert!(counting(&b));
    finish(&b);
}

#[test]
fn delete_force_kills_a_paused_container() {
    let b = counter();
    start(&b);
    if !may_make_cgroups() {
        finish(&b);
        return;
    }
    assert_ok(&b.hutch(&["pause", &b.id]));
    let started = Instant::now();
    finish(&b);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
}

#[test]
fn deleting_a_container_leaves_its_siblings_running() {
    // Two containers below one parent cgroup, which the first one's create
    // makes (as Docker's /docker/ID): deleting the first must not touch
    // the second.
    let a = counter();
    let b = counter();
    let parent = format!("hutch-test-{}-shared", a.id);
    for (x, name) in [(&a, "a"), (&b, "b")] {
        let path = if who() == Who::Root {
            format!("/{parent}/{name}")
        } else {
            format!("{parent}/{name}")
        };
        let mut c = x.config.clone();
        c["linux"]["cgroupsPath"] = json!(path);
        std::fs::write(x.dir.join("config.json"), c.to_string()).unwrap();
    }
    start(&a);
    start(&b);
    let dirs = own_cgroup_dirs(b.pid());
    if may_make_cgroups() {
        assert!(!dirs.is_empty());
    }
    finish(&a);
    assert_eq!(b.status(), "running");
    assert!(counting(&b), "the sibling stopped counting");
    for d in &dirs {
        assert!(d.exists(), "{} was removed", d.display());
    }
    finish(&b);
    // The parent is left, as runc and crun leave /docker; the test
    // removes it.
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
        let _ = std::fs::remove_dir(d.parent().unwrap());
    }
}

#[test]
fn a_stopped_container_is_refused_with_one_line() {
    let b = counter();
    start(&b);
    assert_ok(&b.hutch(&["kill", &b.id, "KILL"]));
    assert_eq!(wait_exit(b.pid()), 137);
    assert_eq!(b.status(), "stopped");
    for (args, op) in [
        (vec!["pause"], "pause"),
        (vec!["resume"], "resume"),
        (vec!["update", "--pids-limit", "10"], "update"),
        (vec!["events", "--stats"], "report events of"),
    ] {
        let mut line = args.clone();
        line.push(&b.id);
        let out = b.hutch(&line);
        assert_one_line_error(
            &out,
            &format!("cannot {op} container `{}`: it is stopped", b.id),
        );
        assert!(out.stdout.is_empty());
    }
    // runc prints the header alone; json an empty list.
    let out = b.hutch(&["ps", "--format", "json", &b.id]);
    assert_ok(&out);
    assert_eq!(text(&out.stdout).trim(), "[]");
    assert_ok(&b.hutch(&["delete", &b.id]));
}

#[test]
fn without_a_cgroup_each_operation_says_so_and_ps_still_works() {
    // No cgroupsPath, no resources: hutch makes no cgroup for anyone.
    let b = Bundle::new(&["/bin/sh", "-c", "touch /tmp/ready; sleep 1000 & wait"]);
    let out = start(&b);
    assert!(!text(&out.stderr).contains("warn"), "{}", text(&out.stderr));
    for (args, op) in [
        (vec!["pause"], "pause"),
        (vec!["update", "--memory", "64m"], "update"),
        (vec!["events", "--stats"], "report events of"),
    ] {
        let mut line = args.clone();
        line.push(&b.id);
        let out = b.hutch(&line);
        assert_no_cgroup_error(&out, op, &b.id);
        assert!(out.stdout.is_empty());
    }
    assert_one_line_error(
        &b.hutch(&["resume", &b.id]),
        &format!("cannot resume container `{}`: it is running", b.id),
    );
    // ps: the container's process and its sleep, from its namespaces.
    let deadline = Instant::now() + Duration::from_secs(5);
    let pids = loop {
        let out = b.hutch(&["ps", "-f", "json", &b.id]);
        assert_ok(&out);
        let pids: Vec<i32> = serde_json::from_slice(&out.stdout).unwrap();
        if pids.len() == 2 || Instant::now() > deadline {
            break pids;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.contains(&b.pid()), "{pids:?}");
    finish(&b);
}

#[test]
fn ps_lists_the_cgroups_processes_and_passes_ps_arguments() {
    let mut b = counter();
    b.edit(|c| {
        c["process"]["args"] = json!(["/bin/sh", "-c", "touch /tmp/ready; sleep 1000 & wait"])
    });
    start(&b);
    let mut execs = Vec::new();
    // Wait for the sleep.
    let deadline = Instant::now() + Duration::from_secs(5);
    let pids = loop {
        let out = b.hutch(&["ps", "--format", "json", &b.id]);
        assert_ok(&out);
        let pids: Vec<i32> = serde_json::from_slice(&out.stdout).unwrap();
        // Where hutch emulates root (one id mapped), its supervisor is in
        // the container too; ps lists it, as it lists every process there.
        let pids: Vec<i32> = pids
            .into_iter()
            .filter(|p| !is_rootemu_supervisor(*p))
            .collect();
        if pids.len() >= 2 || Instant::now() > deadline {
            break pids;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.contains(&b.pid()));
    if may_make_cgroups() {
        // An exec'd process is in the cgroup too: ps lists it. (It ends
        // with the container, and its hutch then exits: waited for below.)
        let exec = b
            .cmd(&["exec", &b.id, "sleep", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut n = 0;
        while n != 3 && Instant::now() < deadline {
            let out = b.hutch(&["ps", "-f", "json", &b.id]);
            n = serde_json::from_slice::<Vec<i32>>(&out.stdout)
                .unwrap()
                .into_iter()
                .filter(|p| !is_rootemu_supervisor(*p))
                .count();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(n, 3, "the exec'd process is not listed");
        execs.push(exec);
    }
    // The table: ps's header and the container's lines only.
    let out = b.hutch(&["ps", &b.id]);
    assert_ok(&out);
    let table = text(&out.stdout);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().contains("PID"), "{table}");
    let rows: Vec<&str> = lines.collect();
    assert!(rows.len() >= 2, "{table}");
    assert!(rows.iter().any(|l| l.contains("sleep 1000")), "{table}");
    // Nothing of hutch's own command line (host paths): only the
    // root-emulation supervisor, by its name, where it runs.
    assert!(!table.contains("--root"), "{table}");
    assert!(!table.contains(&*b.dir.to_string_lossy()), "{table}");
    // ps arguments are passed through.
    let out = b.hutch(&["ps", &b.id, "-o", "pid,comm"]);
    assert_ok(&out);
    let table = text(&out.stdout);
    assert_eq!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["PID", "COMMAND"]
    );
    assert!(
        table.lines().any(|l| l.trim() == format!("{} sh", b.pid())),
        "{table}"
    );
    // Without a PID column nothing can be filtered: one error line.
    assert_one_line_error(&b.hutch(&["ps", &b.id, "-o", "comm"]), "no PID column");
    assert_one_line_error(
        &b.hutch(&["ps", "-f", "yaml", &b.id]),
        "unknown ps format `yaml`",
    );
    finish(&b);
}

#[test]
fn update_writes_limits_where_their_controller_is() {
    let b = counter();
    start(&b);
    if !may_make_cgroups() {
        assert_no_cgroup_error(
            &b.hutch(&["update", "--pids-limit", "10", &b.id]),
            "update",
            &b.id,
        );
        finish(&b);
        return;
    }
    let pid = b.pid();
    // Flags, as runc takes them.
    let out = b.hutch(&["update", "--pids-limit", "10", "--memory", "64m", &b.id]);
    assert_ok(&out);
    let err = text(&out.stderr);
    check_limit(pid, "pids", &["pids.max"], "10", &err, "pids.limit");
    check_limit(
        pid,
        "memory",
        &["memory.max", "memory.limit_in_bytes"],
        "67108864",
        &err,
        "memory.limit",
    );
    // A LinuxResources document on standard input, as containerd sends
    // it: zeros leave a limit as it is.
    let mut child = b
        .cmd(&["update", "--resources", "-", &b.id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let doc = json!({"memory": {"limit": 0, "swap": 0}, "pids": {"limit": 12},
                     "cpu": {"shares": 0, "cpus": ""}});
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), doc.to_string().as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    let err = text(&out.stderr);
    check_limit(pid, "pids", &["pids.max"], "12", &err, "pids.limit");
    // The memory limit of the first update stays.
    if controller_dir(pid, "memory").is_some() {
        check_limit(
            pid,
            "memory",
            &["memory.max", "memory.limit_in_bytes"],
            "67108864",
            "",
            "memory.limit",
        );
    }
    // A swap limit alone goes with the memory limit there is (v1 files:
    // memory plus swap; v2: swap only).
    let out = b.hutch(&["update", "--memory-swap", "128m", &b.id]);
    match controller_dir(pid, "memory") {
        Some(dir) if dir.join("memory.memsw.limit_in_bytes").exists() => {
            assert_ok(&out);
            let got = std::fs::read_to_string(dir.join("memory.memsw.limit_in_bytes")).unwrap();
            assert_eq!(got.trim(), "134217728");
        }
        Some(dir) if dir.join("memory.swap.max").exists() => {
            assert_ok(&out);
            let got = std::fs::read_to_string(dir.join("memory.swap.max")).unwrap();
            assert_eq!(got.trim(), "67108864");
        }
        _ => {}
    }
    assert_one_line_error(
        &b.hutch(&["update", "--memory", "64m", "--memory-swap", "32m", &b.id]),
        &format!(
            "cannot update container `{}`: linux.resources.memory.swap",
            b.id
        ),
    );
    // Bad input: one line, nothing changed.
    assert_one_line_error(
        &b.hutch(&["update", "--memory", "lots", &b.id]),
        "--memory `lots`",
    );
    let bad = b.dir.join("bad.json");
    std::fs::write(&bad, "{\"pids\": {\"limit\": \"many\"}}").unwrap();
    assert_one_line_error(
        &b.hutch(&["update", "-r", bad.to_str().unwrap(), &b.id]),
        "--resources",
    );
    check_limit(pid, "pids", &["pids.max"], "12", &err, "pids.limit");
    assert_eq!(b.status(), "running");
    finish(&b);
}

/// The limit `want` is in the file of the hierarchy holding `controller`,
/// or (no hierarchy holds it for the container) `stderr` warns about
/// `field`.
#[track_caller]
fn check_limit(pid: i32, controller: &str, files: &[&str], want: &str, stderr: &str, field: &str) {
    match controller_dir(pid, controller) {
        Some(dir) => {
            let file = files
                .iter()
                .map(|f| dir.join(f))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("none of {files:?} in {}", dir.display()));
            let got = std::fs::read_to_string(&file).unwrap();
            assert_eq!(got.trim(), want, "{}", file.display());
        }
        None => assert!(
            stderr.contains(field) && stderr.contains("warn"),
            "no {controller} controller for the container and no warning about {field}: {stderr}"
        ),
    }
}

#[test]
fn events_prints_stats_once_or_streams_until_the_container_stops() {
    let b = counter();
    start(&b);
    if !may_make_cgroups() {
        assert_no_cgroup_error(
            &b.hutch(&["events", "--stats", &b.id]),
            "report events of",
            &b.id,
        );
        finish(&b);
        return;
    }
    let out = b.hutch(&["events", "--stats", &b.id]);
    assert_ok(&out);
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let ev = &lines[0];
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], b.id.as_str());
    for key in ["cpu", "memory", "pids", "blkio", "hugetlb"] {
        assert!(ev["data"].get(key).is_some(), "no {key}: {ev}");
    }
    // The counter has used CPU time, wherever the cpu accounting is.
    let total = ev["data"]["cpu"]["usage"]["total"].as_u64().unwrap_or(0);
    assert!(total > 0, "no cpu usage: {ev}");
    if controller_dir(b.pid(), "pids").is_some() {
        assert!(ev["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{ev}");
    }

    assert_one_line_error(
        &b.hutch(&["events", "--interval", "soon", &b.id]),
        "--interval `soon`",
    );

    // Streaming: a line per interval, and the command ends when the
    // container does.
    let mut child = b
        .cmd(&["events", "--interval", "100ms", &b.id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..3 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "stats", "{line}");
    }
    finish(&b);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "events did not end with the container"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn events_reports_an_oom_kill() {
    let mut b = counter();
    b.edit(|c| {
        c["process"]["args"] = json!(["/bin/sh", "-c", "touch /tmp/ready; sleep 1000 & wait"]);
        c["linux"]["resources"] = json!({"memory": {"limit": 33554432, "swap": 33554432}});
    });
    let out = start(&b);
    if !may_make_cgroups() || controller_dir(b.pid(), "memory").is_none() {
        // No cgroup, or no memory controller for it: create warned.
        let err = text(&out.stderr);
        assert!(err.contains("warn") && err.contains("ignored"), "{err}");
        finish(&b);
        return;
    }
    let mut child = b
        .cmd(&["events", "--interval", "10s", &b.id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("\"stats\""), "{first}");
    // 64 MB in a shell variable, in a 32 MB cgroup: the kernel kills it.
    let out = b.hutch(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "a=$(head -c 67108864 /dev/zero | tr '\\0' x); echo ${#a}",
    ]);
    assert!(!out.status.success(), "the exec survived: {out:?}");
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v, json!({"type": "oom", "id": b.id}));
    finish(&b);
    let _ = child.wait();
}

#[test]
fn update_parses_runcs_flags_and_refuses_bad_ones_leaving_nothing() {
    // Checked before the container is looked up: a usage error, status 2.
    let b = Bundle::new(&["true"]);
    for (args, needle) in [
        (vec!["--memory", "12q"], "--memory `12q`"),
        (vec!["--l3-cache-schema", "L3:0=ff"], "Intel RDT"),
        (
            vec!["--resources", "/nonexistent/r.json"],
            "/nonexistent/r.json",
        ),
    ] {
        let mut line = vec!["update"];
        line.extend(args);
        line.push("nosuch");
        let out = b.hutch(&line);
        assert_one_line_error(&out, needle);
    }
    assert_one_line_error(
        &b.hutch(&["update", "--memory", "64m", "nosuch"]),
        "container `nosuch` does not exist",
    );
    assert!(b.state_entries().is_empty());
}

#[test]
fn the_commands_are_in_the_help_and_take_runcs_flags() {
    let b = Bundle::new(&["true"]);
    let help = text(&b.hutch(&["--help"]).stdout);
    for cmd in ["pause", "resume", "update", "events", "ps"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(cmd)),
            "{cmd} not in: {help}"
        );
    }
    let help = text(&b.hutch(&["update", "--help"]).stdout);
    for flag in [
        "--resources",
        "--memory",
        "--memory-swap",
        "--memory-reservation",
        "--kernel-memory",
        "--cpu-share",
        "--cpu-quota",
        "--cpu-period",
        "--cpu-rt-runtime",
        "--cpu-rt-period",
        "--cpuset-cpus",
        "--cpuset-mems",
        "--pids-limit",
        "--blkio-weight",
    ] {
        assert!(help.contains(flag), "{flag} not in: {help}");
    }
}

/// Whether `pid` is hutch's root-emulation supervisor (`hutch-rootemu`).
fn is_rootemu_supervisor(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "hutch-rootemu")
}
