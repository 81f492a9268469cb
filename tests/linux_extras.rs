//! linux.memoryPolicy, linux.netDevices and idmapped mounts, checked from
//! inside the container through the real binary, as root and as plain
//! users. Where a feature needs root, the plain users get a one-line error
//! at create and nothing is left behind.

mod common;

use common::*;
use serde_json::json;

fn sh(script: &str) -> Bundle {
    Bundle::new(&["/bin/sh", "-c", script])
}

/// The policies the container's program reports in its numa_maps (the
/// second field of every line), deduplicated.
fn numa_policies(out: &std::process::Output) -> Vec<String> {
    let mut p: Vec<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    p.sort();
    p.dedup();
    p
}

/// Create failed, and left no state entry and no process.
#[track_caller]
fn nothing_left(b: &Bundle) {
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
    assert!(
        !b.dir.join("pid").exists(),
        "a pid file was written for a failed create"
    );
}

#[test]
fn memory_policy_bind_is_what_the_program_runs_with() {
    // Node 0 exists on every Linux host.
    let mut b = sh("cat /proc/self/numa_maps");
    b.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"}));
    let out = b.run();
    assert_ok(&out);
    assert_eq!(numa_policies(&out), ["bind:0"], "{}", text(&out.stdout));
}

#[test]
fn memory_policy_interleave_with_a_flag_and_local() {
    let mut b = sh("cat /proc/self/numa_maps");
    b.edit(|c| {
        c["linux"]["memoryPolicy"] =
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]})
    });
    let out = b.run();
    assert_ok(&out);
    assert_eq!(numa_policies(&out), ["interleave=static:0"]);

    let mut b = sh("cat /proc/self/numa_maps");
    b.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_LOCAL"}));
    let out = b.run();
    assert_ok(&out);
    assert_eq!(numa_policies(&out), ["local"]);
}

#[test]
fn without_a_memory_policy_the_program_has_the_default() {
    let b = sh("cat /proc/self/numa_maps");
    let out = b.run();
    assert_ok(&out);
    assert_eq!(numa_policies(&out), ["default"]);
}

#[test]
fn exec_gets_the_containers_memory_policy() {
    become_subreaper();
    let mut b = Bundle::new(&["/bin/sleep", "1000"]);
    b.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"}));
    assert_ok(&b.create());
    let out = b.hutch(&["exec", &b.id, "cat", "/proc/self/numa_maps"]);
    assert_ok(&out);
    assert_eq!(numa_policies(&out), ["bind:0"]);
}

#[test]
fn bad_memory_policies_fail_create_naming_the_field() {
    let online = std::fs::read_to_string("/sys/devices/system/node/online").unwrap();
    let absent = online
        .trim()
        .split([',', '-'])
        .filter_map(|n| n.parse::<u32>().ok())
        .max()
        .unwrap()
        + 1;
    let absent = absent.to_string();
    let cases = [
        (json!({"mode": "MPOL_SOMETIMES"}), "linux.memoryPolicy: unknown variant `MPOL_SOMETIMES`"),
        (json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_LOUD"]}), "linux.memoryPolicy: unknown variant `MPOL_F_LOUD`"),
        (json!({"nodes": "0"}), "linux.memoryPolicy: missing field `mode`"),
        (json!({"mode": "MPOL_BIND", "nodes": "0-"}), "linux.memoryPolicy.nodes: `0-` is not a node list"),
        (json!({"mode": "MPOL_BIND", "nodes": "3-1"}), "linux.memoryPolicy.nodes: `3-1` is not a node list"),
        (json!({"mode": "MPOL_BIND"}), "linux.memoryPolicy.nodes: MPOL_BIND needs at least one node"),
        (json!({"mode": "MPOL_LOCAL", "nodes": "0"}), "linux.memoryPolicy.nodes: MPOL_LOCAL takes no nodes"),
        (json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}), "exclude each other"),
        // Valid syntax, a node this host does not have: the kernel says no.
        (json!({"mode": "MPOL_BIND", "nodes": absent}), &*format!("set linux.memoryPolicy MPOL_BIND nodes `{absent}` (this host has nodes {}): Invalid argument", online.trim())),
    ];
    for (policy, message) in cases {
        let mut b = sh("true");
        b.edit(|c| c["linux"]["memoryPolicy"] = policy.clone());
        let out = b.create();
        assert_one_line_error(&out, message);
        nothing_left(&b);
    }
}
