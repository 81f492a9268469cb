//! One test per OCI feature not covered elsewhere, checked from inside the
//! container: sysctl, oomScoreAdj, personality, domainname, devices,
//! rlimits the caller cannot grant, ignored fields' warnings, and joining
//! another container's namespaces by path.

mod common;

use common::*;
use serde_json::json;

fn sh(script: &str) -> Bundle {
    Bundle::new(&["/bin/sh", "-c", script])
}

#[test]
fn sysctls_of_the_containers_own_namespaces_are_set() {
    let mut b = sh("cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward");
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "network"}));
        c["linux"]["sysctl"] = json!({"kernel.shmmax": "123456", "net.ipv4.ip_forward": "1"});
    });
    let out = b.run();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "123456\n1\n");
}

#[test]
fn oom_score_adj_personality_and_domainname() {
    let mut b = sh("cat /proc/self/oom_score_adj; uname -m; cat /proc/sys/kernel/domainname");
    b.edit(|c| {
        c["process"]["oomScoreAdj"] = json!(500);
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
        c["domainname"] = json!("hutch.test");
    });
    let out = b.run();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "500\ni686\nhutch.test\n");
}

#[test]
fn a_new_network_namespace_has_its_loopback_up() {
    let mut b = sh("ip link show lo; ip addr show lo");
    b.edit(|c| {
        c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                                          {"type": "mount"}, {"type": "network"}]);
    });
    let out = b.run();
    assert_ok(&out);
    let s = text(&out.stdout);
    assert!(s.contains("<LOOPBACK,UP"), "{s}");
    assert!(s.contains("inet 127.0.0.1/8"), "{s}");
}

#[test]
fn configured_devices_are_provided() {
    let mut b = sh("stat -c '%F %t:%T' /dev/full; head -c 3 /dev/full | wc -c");
    b.edit(|c| {
        c["linux"]["devices"] =
            json!([{"path": "/dev/full", "type": "c", "major": 1, "minor": 7, "fileMode": 438}])
    });
    let out = b.run();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "character special file 1:7\n3\n");
}

#[test]
fn a_read_only_cgroup_mount_is_read_only_all_through() {
    // Without a cgroup namespace of its own a plain user cannot mount
    // cgroup2: hutch binds the host's tree, whose hierarchies must be
    // read-only too (podman's config on a cgroup v1 or hybrid host).
    let mut b = sh("awk '$5 ~ \"^/sys/fs/cgroup\" {print $5, $6}' /proc/self/mountinfo");
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        // Nothing else under /sys/fs/cgroup: /sys is an empty tmpfs.
        mounts.retain(|m| m["destination"] != "/sys");
        mounts.push(json!({"destination": "/sys", "type": "tmpfs", "source": "tmpfs"}));
        mounts.push(json!({"destination": "/sys/fs/cgroup",
            "type": "cgroup", "source": "cgroup",
            "options": ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"]}));
    });
    let out = b.run();
    assert_ok(&out);
    let s = text(&out.stdout);
    assert!(!s.trim().is_empty(), "nothing mounted on /sys/fs/cgroup");
    for line in s.lines() {
        assert!(
            line.split(' ').nth(1).unwrap_or("").starts_with("ro"),
            "{s}"
        );
    }
}

#[test]
fn an_rlimit_the_caller_cannot_grant_is_an_error() {
    let mut b = sh("ulimit -Hn");
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    let want = hard.saturating_add(1000);
    b.edit(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 64, "hard": want}])
    });
    let out = b.run();
    if has_cap_sys_resource() {
        // Raising a hard limit needs CAP_SYS_RESOURCE (root has it, except
        // where root itself is confined, as in some sandboxes).
        assert_ok(&out);
        assert_eq!(text(&out.stdout).trim(), want.to_string());
    } else {
        assert_one_line_error(&out, "set rlimit RLIMIT_NOFILE");
        assert!(b.state_entries().is_empty());
    }
}

#[test]
fn ignored_fields_are_accepted_with_a_warning() {
    let mut b = sh("echo ran");
    b.edit(|c| {
        c["process"]["apparmorProfile"] = json!("some-profile");
        c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
        c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
    });
    let out = b.run();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "ran\n");
    let err = text(&out.stderr);
    for key in [
        "process.apparmorProfile",
        "process.selinuxLabel",
        "linux.mountLabel",
    ] {
        // Once, also where hutch re-executes from a sealed copy (root).
        assert_eq!(
            err.matches(&format!("warn: {key} is ignored")).count(),
            1,
            "not one warning for {key}: {err}"
        );
    }
}

#[test]
fn a_second_container_joins_the_first_ones_namespaces_by_path() {
    become_subreaper();
    let mut a = Bundle::new(&["/bin/sh", "-c", "touch /tmp/ready; exec sleep 1000"]);
    a.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "network"}))
    });
    assert_ok(&a.create());
    assert_ok(&a.hutch(&["start", &a.id]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !a.rootfs().join("tmp/ready").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let apid = a.pid();
    let ns = |kind: &str| {
        std::fs::read_link(format!("/proc/{apid}/ns/{kind}"))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };

    let mut b = sh("readlink /proc/self/ns/net; readlink /proc/self/ns/uts; hostname");
    b.edit(|c| {
        let mut list = vec![
            json!({"type": "mount"}),
            json!({"type": "pid"}),
            json!({"type": "ipc"}),
            json!({"type": "network", "path": format!("/proc/{apid}/ns/net")}),
            json!({"type": "uts", "path": format!("/proc/{apid}/ns/uts")}),
        ];
        if who() != Who::Root {
            // A plain user enters the first container's user namespace
            // first: its other namespaces belong to that one.
            list.push(json!({"type": "user", "path": format!("/proc/{apid}/ns/user")}));
        }
        c["linux"]["namespaces"] = json!(list);
        c.as_object_mut().unwrap().remove("hostname");
    });
    let out = b.run();
    assert_ok(&out);
    assert_eq!(
        text(&out.stdout),
        format!("{}\n{}\nhutchbox\n", ns("net"), ns("uts"))
    );
    assert_ok(&a.hutch(&["delete", "--force", &a.id]));
    assert_eq!(wait_exit(apid), 137);
}

fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    u64::from_str_radix(eff, 16).unwrap() & (1 << 24) != 0
}

/// Field 19 (nice) and the policy (field 41) of /proc/self/stat, and the
/// allowed CPUs, as the container's program sees them.
const SCHED_PROBE: &str = "s=$(cat /proc/self/stat); set -- ${s##*) }; echo nice=${17} policy=${39}; ionice -p $$; grep Cpus_allowed_list /proc/self/status | tr -d '\\t'";

#[test]
fn scheduler_io_priority_and_cpu_affinity_are_applied() {
    let mut b = sh(SCHED_PROBE);
    b.edit(|c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
        c["process"]["execCPUAffinity"] = json!({"final": "0"});
    });
    let out = b.run();
    assert_ok(&out);
    // SCHED_BATCH is policy 3.
    assert_eq!(
        text(&out.stdout),
        "nice=7 policy=3\nbest-effort: prio 6\nCpus_allowed_list:0\n"
    );
}

#[test]
fn a_scheduler_the_caller_cannot_have_is_an_error() {
    let mut b = sh("true");
    b.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 10}));
    let out = b.run();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = u64::from_str_radix(
        status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .unwrap()
            .trim(),
        16,
    )
    .unwrap();
    // A real-time policy needs CAP_SYS_NICE (bit 23) in the initial user
    // namespace; a container in a user namespace of its own never has it.
    if who() == Who::Root && eff & (1 << 23) != 0 {
        assert_ok(&out);
    } else {
        assert_one_line_error(&out, "set the scheduling policy");
    }
    assert!(b.state_entries().is_empty());
}

#[test]
fn a_time_namespace_gets_its_clock_offsets() {
    let mut b = sh("cut -d' ' -f1 /proc/uptime; readlink /proc/self/ns/time");
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] =
            json!({"boottime": {"secs": 1_000_000, "nanosecs": 0}, "monotonic": {"secs": 500}});
    });
    let out = b.run();
    assert_ok(&out);
    let got = text(&out.stdout);
    let mut lines = got.lines();
    let uptime: f64 = lines.next().unwrap().parse().unwrap();
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(uptime > host + 999_000.0, "uptime {uptime} vs host {host}");
    let ours = std::fs::read_link("/proc/self/ns/time").unwrap();
    assert_ne!(
        lines.next().unwrap(),
        ours.to_str().unwrap(),
        "the program is not in a time namespace of its own"
    );
}

#[test]
fn time_offsets_need_a_new_time_namespace() {
    let mut b = sh("true");
    b.edit(|c| c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1}}));
    assert_one_line_error(&b.run(), "linux.timeOffsets needs a new time namespace");
    assert!(b.state_entries().is_empty());
}
