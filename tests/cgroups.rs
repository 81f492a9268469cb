//! cgroup v2: `linux.cgroupsPath` and `linux.resources`, through the real
//! binary, as root and as plain users.
//!
//! What is expected depends on whether the caller may make cgroups below
//! its own (root, or a user whose cgroup was delegated to it, as CI does
//! for each test user): then the container is placed, settings take
//! effect and delete removes what hutch made; otherwise hutch warns once
//! and the container runs without a cgroup. Which controllers cgroup2
//! holds differs between hosts: the tests look and expect what follows.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::cgroup as cg;
use common::*;
use serde_json::json;

/// Where cgroup2 is mounted, from this process's mountinfo.
fn cgroup2_root() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in info.lines() {
        let (left, right) = line.split_once(" - ").unwrap();
        if right.starts_with("cgroup2 ") {
            return PathBuf::from(left.split_whitespace().nth(4).unwrap());
        }
    }
    panic!("no cgroup2 mount in /proc/self/mountinfo");
}

/// The cgroup v2 path of process `pid` ("self" for the test itself).
fn cgroup_of(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string()
}

/// The test's own cgroup directory.
fn own_dir() -> PathBuf {
    cgroup2_root().join(cgroup_of("self").trim_start_matches('/'))
}

/// True when this caller may make cgroups below its own and move
/// processes into them: root on a writable cgroup2, or a user owning its
/// (delegated) cgroup.
fn delegated() -> bool {
    use nix::unistd::{access, AccessFlags};
    let dir = own_dir();
    access(&dir, AccessFlags::W_OK).is_ok()
        && access(&dir.join("cgroup.procs"), AccessFlags::W_OK).is_ok()
}

/// A cgroupsPath two levels deep for this bundle, and the directory it
/// names on the host: absolute for root, relative (to the caller's own
/// cgroup) for a plain user.
fn cgroups_path(b: &Bundle) -> (String, PathBuf) {
    let name = format!("hutch-test-{}/inner", b.id);
    if who() == Who::Root {
        (format!("/{name}"), cgroup2_root().join(&name))
    } else {
        (name.clone(), own_dir().join(&name))
    }
}

/// The top directory of `cgroups_path`, which hutch makes too.
fn top_of(dir: &Path) -> PathBuf {
    dir.parent().unwrap().to_path_buf()
}

/// A bundle with a new cgroup namespace, running `script`.
fn bundle(script: &str) -> Bundle {
    let mut b = Bundle::new(&["/bin/sh", "-c", script]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "cgroup"}))
    });
    b
}

/// Create and start `b`, whose program touches /tmp/ready; the output
/// of create.
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

fn warnings(out: &Output) -> Vec<String> {
    text(&out.stderr)
        .lines()
        .filter(|l| l.contains("warn:"))
        .map(str::to_string)
        .collect()
}

/// The one warning of a caller without a delegated subtree.
#[track_caller]
fn assert_ignored_for_lack_of_delegation(out: &Output, what: &str) {
    let w = warnings(out);
    assert_eq!(w.len(), 1, "expected one warning: {w:?}");
    assert!(w[0].contains(what), "{w:?}");
    assert!(w[0].contains("delegated cgroup v2 subtree"), "{w:?}");
}

#[test]
fn cgroups_path_places_the_container_and_delete_removes_it() {
    let mut b = bundle("cat /proc/self/cgroup > /tmp/cgroup; touch /tmp/ready; exec sleep 1000");
    let (path, dir) = cgroups_path(&b);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let out = start(&b);
    let pid = b.pid();
    let inside = std::fs::read_to_string(b.rootfs().join("tmp/cgroup")).unwrap();
    // In its own cgroup namespace the container is at the root, either way.
    assert!(inside.lines().any(|l| l == "0::/"), "{inside}");
    if delegated() {
        assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "{pid} not in {}: {procs}",
            dir.display()
        );
        // The host sees it there too (the test is in the initial cgroup
        // namespace).
        let host_view = cgroup2_root().join(cgroup_of(&pid.to_string()).trim_start_matches('/'));
        assert_eq!(host_view, dir);
        finish(&b);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            !top_of(&dir).exists(),
            "{} left behind",
            top_of(&dir).display()
        );
    } else {
        assert_ignored_for_lack_of_delegation(&out, &format!("linux.cgroupsPath `{path}`"));
        assert!(!dir.exists());
        assert_eq!(cgroup_of(&pid.to_string()), cgroup_of("self"));
        finish(&b);
    }
}

#[test]
fn a_unified_core_file_takes_effect() {
    let mut b = bundle("touch /tmp/ready; exec sleep 1000");
    let (path, dir) = cgroups_path(&b);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"unified": {"cgroup.max.descendants": "3"}});
    });
    let out = start(&b);
    if delegated() {
        assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
        let got = std::fs::read_to_string(dir.join("cgroup.max.descendants")).unwrap();
        assert_eq!(got.trim(), "3");
        // The limit holds: a fourth cgroup below the container's is refused
        // (the test's owner may make them, as the container's owner).
        for n in 0..3 {
            std::fs::create_dir(dir.join(format!("c{n}"))).unwrap();
        }
        let err = std::fs::create_dir(dir.join("c3")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EAGAIN), "{err}");
        // delete removes them with the cgroup hutch made.
        finish(&b);
        assert!(!dir.exists());
    } else {
        assert_ignored_for_lack_of_delegation(&out, &format!("linux.cgroupsPath `{path}`"));
        finish(&b);
    }
}

#[test]
fn limits_take_effect_or_are_warned_about_by_controller() {
    // No cgroupsPath: the cgroup is hutch-ID below the caller's own, in
    // each hierarchy. Each controller's limit goes to the hierarchy that
    // holds it (a v1 one, or cgroup2): read back there, or warned about
    // where the caller may not write it.
    let mut b = bundle("touch /tmp/ready; exec sleep 1000");
    b.edit(|c| {
        c["linux"]["resources"] = json!({
            "pids": {"limit": 20},
            "memory": {"limit": 268435456},
            "cpu": {"shares": 1024},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]
        })
    });
    let out = start(&b);
    let name = format!("hutch-{}", b.id);
    let dir = own_dir().join(&name);
    let w = warnings(&out);
    let v1_writable: Vec<cg::Hierarchy> = cg::hierarchies()
        .into_iter()
        .filter(|h| h.v1 && h.writable())
        .collect();
    if !delegated() && v1_writable.is_empty() {
        assert_ignored_for_lack_of_delegation(&out, "linux.resources are ignored");
        assert!(!dir.exists());
        finish(&b);
        return;
    }
    let pid = b.pid().to_string();
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    // CI names the controllers cgroup v2 holds for one run: they must be
    // there, and the limits in their files.
    for expected in std::env::var("HUTCH_EXPECT_CONTROLLERS")
        .unwrap_or_default()
        .split_whitespace()
    {
        assert!(
            controllers.split_whitespace().any(|c| c == expected),
            "{expected} not in {controllers:?}"
        );
    }
    let mut warned = 0;
    for (controller, field, v1_file, v1_want, v2_file, v2_want) in [
        (
            "pids",
            "linux.resources.pids.limit",
            "pids.max",
            "20",
            "pids.max",
            "20",
        ),
        (
            "memory",
            "linux.resources.memory.limit",
            "memory.limit_in_bytes",
            "268435456",
            "memory.max",
            "268435456",
        ),
        (
            "cpu",
            "linux.resources.cpu.shares",
            "cpu.shares",
            "1024",
            "cpu.weight",
            "39",
        ),
        (
            "hugetlb",
            "linux.resources.hugepageLimits",
            "hugetlb.2MB.limit_in_bytes",
            "4194304",
            "hugetlb.2MB.max",
            "4194304",
        ),
    ] {
        let mentioned = |l: &&String| l.contains(&format!("{field} is ignored"));
        match cg::v1_with(controller) {
            Some(h) if h.writable() => {
                let v1_dir = h.own_dir().join(&name);
                let got = std::fs::read_to_string(v1_dir.join(v1_file)).unwrap();
                assert_eq!(got.trim(), v1_want, "{}", v1_dir.join(v1_file).display());
                let procs = std::fs::read_to_string(v1_dir.join("cgroup.procs")).unwrap();
                assert!(
                    procs.lines().any(|l| l == pid),
                    "{pid} not in {}",
                    v1_dir.display()
                );
                assert!(!w.iter().any(|l| mentioned(&l)), "{w:?}");
            }
            Some(h) => {
                warned += 1;
                let point = h.point.display().to_string();
                assert!(
                    w.iter().any(|l| mentioned(&l)
                        && l.contains("cgroup v1 hierarchy")
                        && l.contains(&point)),
                    "no warning for {field} in {point}: {w:?}"
                );
            }
            None if controllers.split_whitespace().any(|c| c == controller) => {
                let got = std::fs::read_to_string(dir.join(v2_file)).unwrap();
                assert_eq!(got.trim(), v2_want, "{v2_file}");
                assert!(!w.iter().any(|l| mentioned(&l)), "{w:?}");
            }
            None => {
                warned += 1;
                assert!(
                    w.iter().any(|l| mentioned(&l) && l.contains(v2_file)),
                    "no warning for {field}: {w:?}"
                );
            }
        }
    }
    assert_eq!(w.len(), warned, "one warning per limit not applied: {w:?}");
    finish(&b);
    assert!(!dir.exists(), "{} left behind", dir.display());
    for h in &v1_writable {
        let d = h.own_dir().join(&name);
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn a_cgroups_path_with_dot_dot_is_an_error_leaving_nothing() {
    let mut b = bundle("echo ran");
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("hutch-x/../../escape"));
    let out = b.run();
    assert_one_line_error(
        &out,
        "linux.cgroupsPath `hutch-x/../../escape`: `..` is not allowed",
    );
    assert!(text(&out.stdout).is_empty());
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
    assert!(!own_dir().join("hutch-x").exists());
}

#[test]
fn a_value_the_kernel_refuses_fails_create_leaving_nothing() {
    let mut b = bundle("echo ran");
    let (path, dir) = cgroups_path(&b);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"unified": {"cgroup.max.descendants": "lots"}});
    });
    let out = b.run();
    if delegated() {
        assert_one_line_error(&out, "cgroup.max.descendants");
        let err = text(&out.stderr);
        assert!(err.contains("write `lots`"), "{err}");
        assert!(text(&out.stdout).is_empty());
        assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            !top_of(&dir).exists(),
            "{} left behind",
            top_of(&dir).display()
        );
    } else {
        // Nothing is written without a cgroup: the container runs.
        assert_ok(&out);
        assert_eq!(text(&out.stdout), "ran\n");
        assert_ignored_for_lack_of_delegation(&out, &format!("linux.cgroupsPath `{path}`"));
    }
}

#[test]
fn run_removes_its_cgroup_when_the_program_exits() {
    let mut b = bundle("cat /proc/self/cgroup");
    let (path, dir) = cgroups_path(&b);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let out = b.run();
    assert_ok(&out);
    assert!(
        text(&out.stdout).lines().any(|l| l == "0::/"),
        "{}",
        text(&out.stdout)
    );
    if delegated() {
        assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
    } else {
        assert_ignored_for_lack_of_delegation(&out, "linux.cgroupsPath");
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(!top_of(&dir).exists());
    assert!(b.state_entries().is_empty());
}

#[test]
fn exec_joins_the_containers_cgroup() {
    let mut b = bundle("touch /tmp/ready; exec sleep 1000");
    let (path, dir) = cgroups_path(&b);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let out = start(&b);
    let exec = b.hutch(&[
        "exec",
        &b.id,
        "/bin/sh",
        "-c",
        "cat /proc/self/cgroup; cat /proc/1/cgroup",
    ]);
    assert_ok(&exec);
    let lines: Vec<String> = text(&exec.stdout)
        .lines()
        .filter(|l| l.starts_with("0::"))
        .map(str::to_string)
        .collect();
    // The exec'd process is where the container's process is: at the
    // root of the container's cgroup namespace.
    assert_eq!(lines, ["0::/", "0::/"], "{}", text(&exec.stdout));
    if delegated() {
        assert!(dir.exists());
    } else {
        assert_ignored_for_lack_of_delegation(&out, "linux.cgroupsPath");
    }
    finish(&b);
}

#[test]
fn a_systemd_cgroups_path_is_ignored_with_a_warning() {
    let mut b = bundle("echo ran");
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("system.slice:hutch:test"));
    let out = b.run();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "ran\n");
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("linux.cgroupsPath `system.slice:hutch:test` is ignored"),
        "{w:?}"
    );
    assert!(w[0].contains("systemd"), "{w:?}");
}

#[test]
fn cgroup_manager_disabled_makes_no_cgroup() {
    // No cgroup namespace: the container shows the cgroup it is in.
    let mut b = Bundle::new(&["/bin/sh", "-c", "cat /proc/self/cgroup"]);
    let (path, dir) = cgroups_path(&b);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"pids": {"limit": 20}});
    });
    let bundle = b.dir.to_str().unwrap().to_string();
    let out = b.hutch(&[
        "--cgroup-manager",
        "disabled",
        "run",
        "--bundle",
        &bundle,
        &b.id,
    ]);
    assert_ok(&out);
    assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
    let want = format!("0::{}", cgroup_of("self"));
    assert!(
        text(&out.stdout).lines().any(|l| l == want),
        "not in {want}: {}",
        text(&out.stdout)
    );
    assert!(!dir.exists() && !top_of(&dir).exists());
}

/// Run `hutch ARGS` until it stops itself at the test point `point`,
/// then SIGKILL it.
fn kill_at(b: &Bundle, point: &str, args: &[&str]) {
    let mut child = b
        .cmd(args)
        .env("HUTCH_TEST_PAUSE", point)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        if stat
            .rsplit(')')
            .next()
            .unwrap()
            .trim_start()
            .starts_with('T')
        {
            break;
        }
        assert!(Instant::now() < deadline, "hutch never reached {point}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "hutch exited before {point}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_create_killed_midway_leaves_no_cgroup_once_deleted() {
    become_subreaper();
    for point in ["create:cloned", "create:ready"] {
        let mut b = bundle("exec sleep 1000");
        let (path, dir) = cgroups_path(&b);
        b.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
        let bundle = b.dir.to_str().unwrap().to_string();
        kill_at(&b, point, &["create", "--bundle", &bundle, &b.id]);
        let noted = b.state_dir().join(&b.id).join("cgroup.json");
        if delegated() {
            // Made and noted in the entry before the clone.
            assert!(dir.exists(), "{point}: no {}", dir.display());
            assert!(noted.exists(), "{point}: no {}", noted.display());
        } else {
            assert!(!dir.exists() && !noted.exists(), "{point}");
        }
        assert!(b.state().is_none(), "{point}: {:?}", b.state());
        assert_ok(&b.hutch(&["delete", "--force", &b.id]));
        assert!(!dir.exists(), "{point}: {} left behind", dir.display());
        assert!(!top_of(&dir).exists(), "{point}");
        assert!(
            b.state_entries().is_empty(),
            "{point}: {:?}",
            b.state_entries()
        );
    }
}

#[test]
fn delete_kills_what_is_left_in_the_cgroup() {
    let mut b = bundle("touch /tmp/ready; exec sleep 1000");
    let (path, dir) = cgroups_path(&b);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let out = start(&b);
    if delegated() {
        // A process of no namespace of the container's, moved into its
        // cgroup: only the cgroup can find it.
        let mut stray = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        std::fs::write(dir.join("cgroup.procs"), stray.id().to_string()).unwrap();
        finish(&b);
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = stray.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = stray.kill();
                panic!("delete left the stray process running");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        assert!(!dir.exists(), "{} left behind", dir.display());
    } else {
        assert_ignored_for_lack_of_delegation(&out, "linux.cgroupsPath");
        finish(&b);
    }
}
