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
use serde_json::{json, Value};

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
fn a_huge_page_size_the_kernel_lacks_is_an_error_leaving_nothing() {
    // 3MB is no huge page size on any kernel (they are powers of two):
    // crun and runc fail create (no file hugetlb.3MB.*), and so does
    // hutch, before anything is made, for any caller.
    let kernel_has_huge_pages = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|d| d.count() > 0)
        .unwrap_or(false);
    let mut b = bundle("echo ran");
    let (path, dir) = cgroups_path(&b);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] =
            json!({"hugepageLimits": [{"pageSize": "3MB", "limit": 314572800}]});
    });
    let out = b.run();
    if kernel_has_huge_pages {
        assert_one_line_error(
            &out,
            "linux.resources.hugepageLimits: pageSize `3MB` is not a huge page size of this kernel",
        );
        assert!(text(&out.stdout).is_empty());
        assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            !top_of(&dir).exists(),
            "{} left behind",
            top_of(&dir).display()
        );
    } else {
        // A kernel without huge pages: the limit goes nowhere, with a warning.
        assert_ok(&out);
        assert_eq!(text(&out.stdout), "ran\n");
        assert!(
            warnings(&out).iter().any(|l| l.contains("hugepageLimits")),
            "{:?}",
            warnings(&out)
        );
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

/// A block device the kernel has (`MAJ:MIN`), for throttle rules.
fn a_block_device() -> String {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .collect();
    names.sort();
    let name = names.first().expect("no block device in /sys/block");
    std::fs::read_to_string(format!("/sys/block/{name}/dev"))
        .unwrap()
        .trim()
        .to_string()
}

/// Every linux.resources field cgroup v1 takes, with the value it leaves
/// in which file (as crun 1.8.1 leaves them: checked side by side below
/// where crun runs), and the config field named in a warning.
fn v1_config(dev: &str) -> (Value, Vec<(&'static str, &'static str, String)>) {
    let (major, minor) = dev.split_once(':').unwrap();
    let (major, minor): (i64, i64) = (major.parse().unwrap(), minor.parse().unwrap());
    let resources = json!({
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"}
        ],
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728,
                   "swappiness": 30, "disableOOMKiller": true},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000,
                "realtimeRuntime": 0, "realtimePeriod": 1000000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
        "blockIO": {
            "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
            "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]
        },
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "network": {"classID": 1048577}
    });
    let files = vec![
        (
            "linux.resources.memory.limit",
            "memory.limit_in_bytes",
            "67108864".into(),
        ),
        (
            "linux.resources.memory.reservation",
            "memory.soft_limit_in_bytes",
            "33554432".into(),
        ),
        (
            "linux.resources.memory.swap",
            "memory.memsw.limit_in_bytes",
            "134217728".into(),
        ),
        (
            "linux.resources.memory.swappiness",
            "memory.swappiness",
            "30".into(),
        ),
        (
            "linux.resources.memory.disableOOMKiller",
            "memory.oom_control",
            "oom_kill_disable 1".into(),
        ),
        ("linux.resources.cpu.shares", "cpu.shares", "512".into()),
        (
            "linux.resources.cpu.quota",
            "cpu.cfs_quota_us",
            "50000".into(),
        ),
        (
            "linux.resources.cpu.period",
            "cpu.cfs_period_us",
            "100000".into(),
        ),
        (
            "linux.resources.cpu.realtimeRuntime",
            "cpu.rt_runtime_us",
            "0".into(),
        ),
        (
            "linux.resources.cpu.realtimePeriod",
            "cpu.rt_period_us",
            "1000000".into(),
        ),
        ("linux.resources.cpu.cpus", "cpuset.cpus", "0".into()),
        ("linux.resources.cpu.mems", "cpuset.mems", "0".into()),
        ("linux.resources.pids.limit", "pids.max", "42".into()),
        (
            "linux.resources.blockIO.throttleReadBpsDevice",
            "blkio.throttle.read_bps_device",
            format!("{dev} 1048576"),
        ),
        (
            "linux.resources.blockIO.throttleWriteIOPSDevice",
            "blkio.throttle.write_iops_device",
            format!("{dev} 100"),
        ),
        (
            "linux.resources.hugepageLimits",
            "hugetlb.2MB.limit_in_bytes",
            "4194304".into(),
        ),
        (
            "linux.resources.network.classID",
            "net_cls.classid",
            "1048577".into(),
        ),
        (
            "linux.resources.devices",
            "devices.list",
            "c 10:200 rw".into(),
        ),
    ];
    (resources, files)
}

/// The part of a v1 file a test compares (memory.oom_control: its first
/// line; devices.list: the first rule, the config's own).
fn v1_value(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().next().unwrap_or_default().trim().to_string()
}

#[test]
fn every_v1_setting_is_in_its_file_or_warned_about() {
    let dev = a_block_device();
    let (resources, files) = v1_config(&dev);
    let mut b = bundle("touch /tmp/ready; exec sleep 1000");
    let path = if who() == Who::Root {
        format!("/hutch-test-{}/v1", b.id)
    } else {
        format!("hutch-test-{}/v1", b.id)
    };
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = resources.clone();
    });
    let out = start(&b);
    let w = warnings(&out);
    let all = cg::hierarchies();
    if !all.iter().any(|h| h.writable()) {
        assert_ignored_for_lack_of_delegation(&out, &format!("linux.cgroupsPath `{path}`"));
        finish(&b);
        return;
    }
    // crun with the same config, where it runs (as root, and not while
    // cgroup2 holds a controller: "cgroups in hybrid mode not supported").
    let crun_path = format!("/hutch-test-{}/crun", b.id);
    let crun = (who() == Who::Root)
        .then(|| crun_create(&b, &crun_path))
        .flatten();
    let mut checked = 0;
    for (field, file, want) in &files {
        let controller = file.split('.').next().unwrap();
        let mentioned = |l: &String| l.contains(&format!("{field} is ignored"));
        match cg::v1_with(controller) {
            Some(h) if h.writable() => {
                let dir = cg::dir_in(&h, &path);
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
                assert!(
                    procs.lines().any(|l| l == b.pid().to_string()),
                    "not in {}",
                    dir.display()
                );
                if dir.join(file).exists() {
                    assert_eq!(
                        &v1_value(&dir.join(file)),
                        want,
                        "{}",
                        dir.join(file).display()
                    );
                    assert!(!w.iter().any(mentioned), "{w:?}");
                    if let Some(crun_dirs) = &crun {
                        let theirs = cg::dir_in(&h, &crun_path).join(file);
                        assert_eq!(
                            v1_value(&theirs),
                            v1_value(&dir.join(file)),
                            "crun and hutch differ in {file}"
                        );
                        let _ = crun_dirs;
                    }
                    checked += 1;
                } else {
                    // This kernel lacks the file (no CONFIG_RT_GROUP_SCHED…).
                    assert!(
                        w.iter().any(|l| mentioned(l) && l.contains(file)),
                        "{field}: {w:?}"
                    );
                }
            }
            Some(h) if controller != "devices" => {
                let point = h.point.display().to_string();
                assert!(
                    w.iter().any(|l| mentioned(l)
                        && l.contains("cgroup v1 hierarchy")
                        && l.contains(&point)),
                    "no warning for {field}: {w:?}"
                );
            }
            Some(_) => {}
            // Not a v1 controller here: v1-only files are warned about; the
            // others went to cgroup v2 (the limits test checks those).
            None if [
                "memory.swappiness",
                "memory.oom_control",
                "cpu.rt_runtime_us",
                "cpu.rt_period_us",
                "net_cls.classid",
            ]
            .contains(file) =>
            {
                assert!(
                    w.iter()
                        .any(|l| mentioned(l) && l.contains("cgroup v1 file")),
                    "{field}: {w:?}"
                );
            }
            None => {}
        }
    }
    if who() == Who::Root && all.iter().any(|h| h.v1) {
        assert!(checked >= 10, "only {checked} v1 files checked");
    }
    if crun.is_some() {
        crun_delete(&b);
    }
    finish(&b);
    for h in all.iter().filter(|h| h.writable()) {
        let d = cg::dir_in(h, &path);
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

/// `crun create` of `b`'s config with cgroupsPath `path`, in a state root
/// of its own; `None` where crun refuses this host's cgroups (hybrid with
/// a controller on cgroup2), said on stderr.
fn crun_create(b: &Bundle, path: &str) -> Option<()> {
    let dir = b.dir.join("crun-bundle");
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = b.config.clone();
    config["linux"]["cgroupsPath"] = json!(path);
    // crun fails where net_cls is not mounted (hutch warns).
    config["linux"]["resources"]
        .as_object_mut()
        .unwrap()
        .remove("network");
    config["root"]["path"] = json!(b.rootfs());
    config["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]);
    config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("uidMappings");
    config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("gidMappings");
    config["process"]["args"] = json!(["/bin/sleep", "1000"]);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    // The container keeps create's stdout and stderr: files, not pipes.
    let log = dir.join("stderr");
    let status = std::process::Command::new("crun")
        .arg("--root")
        .arg(b.dir.join("crun-state"))
        .args(["create", "--bundle"])
        .arg(&dir)
        .arg(format!("crun-{}", b.id))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    if !status.success() {
        let err = std::fs::read_to_string(&log).unwrap();
        assert!(
            err.contains("hybrid mode not supported"),
            "crun failed: {err}"
        );
        eprintln!("crun refuses this host's cgroups ({err}): hutch's values are checked against the config only");
        return None;
    }
    Some(())
}

fn crun_delete(b: &Bundle) {
    let out = std::process::Command::new("crun")
        .arg("--root")
        .arg(b.dir.join("crun-state"))
        .args(["delete", "--force"])
        .arg(format!("crun-{}", b.id))
        .output()
        .unwrap();
    assert_ok(&out);
}

#[test]
fn exec_joins_every_hierarchy() {
    // In its own cgroup namespace, made after joining each hierarchy, the
    // container is at `/` of every one; an exec'd process too, only if it
    // joined each before entering that namespace.
    let mut b = bundle("touch /tmp/ready; exec sleep 1000");
    let (path, _) = cgroups_path(&b);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"pids": {"limit": 100}});
    });
    start(&b);
    let exec = b.hutch(&[
        "exec",
        &b.id,
        "/bin/cat",
        "/proc/self/cgroup",
        "/proc/1/cgroup",
    ]);
    assert_ok(&exec);
    let out = text(&exec.stdout);
    let lines: Vec<&str> = out.lines().collect();
    // Each file has a line per hierarchy the kernel has (one mounted
    // elsewhere only too).
    assert!(lines.len() >= 2 * cg::hierarchies().len(), "{out}");
    for l in &lines {
        assert!(
            l.ends_with(":/"),
            "not at the root of its namespace: {l}\n{out}"
        );
    }
    finish(&b);
}

/// The mounts at and below `/sys/fs/cgroup` in a mountinfo: mount point,
/// root, type and mount options, in order (a later one hides an earlier).
fn cgroup_mounts(mountinfo: &str) -> Vec<(String, String, String, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split_whitespace().collect();
            let fstype = right.split_whitespace().next()?;
            f[4].starts_with("/sys/fs/cgroup").then(|| {
                (
                    f[4].to_string(),
                    f[3].to_string(),
                    fstype.to_string(),
                    f[5].to_string(),
                )
            })
        })
        .collect()
}

#[test]
fn the_cgroup_mount_shows_the_containers_own_cgroups_read_only() {
    let script = "cat /proc/self/mountinfo >/tmp/mi; cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/unified/pids.max /sys/fs/cgroup/pids.max >/tmp/pids 2>/dev/null; touch /sys/fs/cgroup/x 2>/tmp/ro; touch /tmp/ready; exec sleep 1000";
    // With a cgroup namespace of its own (new mounts, rooted there) and
    // without (Docker on v1: binds of its cgroups' directories).
    for own_ns in [true, false] {
        let mut b = if own_ns {
            bundle(script)
        } else {
            Bundle::new(&["/bin/sh", "-c", script])
        };
        let (path, _) = cgroups_path(&b);
        b.edit(|c| {
            c["linux"]["cgroupsPath"] = json!(path);
            c["linux"]["resources"] = json!({"pids": {"limit": 33}});
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
            }));
        });
        start(&b);
        let mounts = cgroup_mounts(&std::fs::read_to_string(b.rootfs().join("tmp/mi")).unwrap());
        let all = cg::hierarchies();
        let v1_host = all.iter().any(|h| h.v1);
        let find = |point: &str| {
            mounts
                .iter()
                .rev()
                .find(|m| m.0 == point)
                .unwrap_or_else(|| panic!("own_ns {own_ns}: no mount at {point}: {mounts:?}"))
                .clone()
        };
        if v1_host {
            let top = find("/sys/fs/cgroup");
            assert_eq!(top.2, "tmpfs", "{mounts:?}");
        }
        // The cgroup the container is in, in hierarchy h, as the host names it.
        let container_cgroup = |h: &cg::Hierarchy| -> String {
            if !h.writable() {
                return h.own.clone();
            }
            match path.strip_prefix('/') {
                Some(_) => path.clone(),
                None => format!("{}/{path}", h.own.trim_end_matches('/')),
            }
        };
        for h in &all {
            let point = if v1_host {
                format!(
                    "/sys/fs/cgroup/{}",
                    h.point.file_name().unwrap().to_string_lossy()
                )
            } else {
                "/sys/fs/cgroup".to_string()
            };
            let (_, root, fstype, opts) = find(&point);
            assert_eq!(fstype, if h.v1 { "cgroup" } else { "cgroup2" }, "{point}");
            assert!(
                opts.split(',').any(|o| o == "ro"),
                "{point} not read-only: {opts}"
            );
            let want = if own_ns {
                "/".to_string()
            } else {
                container_cgroup(h)
            };
            assert_eq!(root, want, "own_ns {own_ns}: {point} shows {root}");
        }
        let ro = std::fs::read_to_string(b.rootfs().join("tmp/ro")).unwrap();
        assert!(ro.contains("Read-only"), "{ro}");
        // The limit is in the container's own view where it applies.
        let pids_here = match cg::v1_with("pids") {
            Some(h) => h.writable(),
            None => delegated() && cg::v2_holds("pids", &own_dir()),
        };
        if pids_here {
            let got = std::fs::read_to_string(b.rootfs().join("tmp/pids")).unwrap();
            assert_eq!(got.trim(), "33", "own_ns {own_ns}");
        }
        finish(&b);
    }
}

/// `hutch run` of `b`; with `hide_v1_devices`, in a mount namespace of its
/// own without the v1 devices hierarchy, as on a cgroup v2 host (root).
fn run_maybe_without_v1_devices(b: &Bundle, hide_v1_devices: bool) -> Output {
    let dir = b.dir.to_str().unwrap().to_string();
    if !hide_v1_devices {
        return b.run();
    }
    let state = b.state_dir();
    std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("umount -l /sys/fs/cgroup/devices 2>/dev/null; exec \"$0\" \"$@\"")
        .arg(hutch_bin())
        .arg("--root")
        .arg(state)
        .args(["run", "--bundle", &dir, &b.id])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn device_rules_decide_what_the_container_may_open() {
    // /dev/fuse is bound in (a device node the container may reach), but
    // only the config's rule lets it be opened: on cgroup v1 through the
    // devices hierarchy, on cgroup v2 through the eBPF device program.
    let script = "if (exec 3<>/dev/fuse) 2>/tmp/e; then echo fuse-open; else echo fuse-denied; fi; (exec 3</dev/null) && echo null-open";
    let v1_devices = cg::v1_with("devices").is_some();
    let variants: &[bool] = if who() == Who::Root && v1_devices {
        &[false, true]
    } else {
        &[false]
    };
    for &hide in variants {
        for allow in [false, true] {
            let mut b = bundle(script);
            let (path, _) = cgroups_path(&b);
            let mut rules = vec![json!({"allow": false, "access": "rwm"})];
            if allow {
                rules.push(
                    json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}),
                );
            }
            b.edit(|c| {
                c["linux"]["cgroupsPath"] = json!(path);
                c["linux"]["resources"] = json!({"devices": rules});
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": "/dev/fuse", "type": "bind", "source": "/dev/fuse", "options": ["bind"]
                }));
            });
            let out = run_maybe_without_v1_devices(&b, hide);
            assert_ok(&out);
            let got = text(&out.stdout);
            if who() == Who::Root {
                let want = if allow {
                    "fuse-open\nnull-open\n"
                } else {
                    "fuse-denied\nnull-open\n"
                };
                assert_eq!(got, want, "hide_v1_devices {hide}, allow {allow}");
                assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
            } else {
                // No device cgroup for a plain user: its rule is warned about
                // when it allows a device.
                let w = warnings(&out);
                assert!(got.ends_with("null-open\n"), "{got}");
                if allow {
                    assert!(
                        w.iter()
                            .any(|l| l.contains("linux.resources.devices is ignored")
                                || l.contains("linux.cgroupsPath")),
                        "{w:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn deleting_a_container_leaves_a_sibling_in_a_parent_it_made_alone() {
    // A makes /P/a (and /P); B then is made in /P/b. Deleting A must not
    // touch B (as Docker's /docker/ID, all below one parent).
    let a = bundle("touch /tmp/ready; exec sleep 1000");
    let mut a = a;
    let parent = format!("hutch-test-{}-p", a.id);
    let under = |name: &str| {
        if who() == Who::Root {
            format!("/{parent}/{name}")
        } else {
            format!("{parent}/{name}")
        }
    };
    a.edit(|c| c["linux"]["cgroupsPath"] = json!(under("a")));
    start(&a);
    let mut b = bundle("touch /tmp/ready; exec sleep 1000");
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(under("b")));
    start(&b);
    finish(&a);
    assert!(alive(b.pid()), "deleting a killed b");
    let writable: Vec<cg::Hierarchy> = cg::hierarchies()
        .into_iter()
        .filter(|h| h.writable())
        .collect();
    for h in &writable {
        let bdir = cg::dir_in(h, &under("b"));
        assert!(bdir.exists(), "{} went with a", bdir.display());
        let procs = std::fs::read_to_string(bdir.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l == b.pid().to_string()),
            "{}",
            bdir.display()
        );
        assert!(!cg::dir_in(h, &under("a")).exists());
    }
    finish(&b);
    // The parent a made stays (b's entry did not make it), as runc leaves
    // parents: empty, it is removed here.
    for h in &writable {
        let p = cg::dir_in(h, &under("b"));
        assert!(!p.exists(), "{} left behind", p.display());
        let _ = std::fs::remove_dir(p.parent().unwrap());
    }
}
