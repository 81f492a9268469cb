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

/// A host directory (beside the bundle) holding a file owned by 1234:1234
/// (as root; a plain user cannot give files away) and a bind mount of it
/// on `/mnt` with `options`.
fn idmapped_bundle(script: &str, options: &[&str]) -> Bundle {
    let mut b = sh(script);
    let src = b.dir.join("shared");
    std::fs::create_dir(&src).unwrap();
    // The image has the mount point: a container root mapped to another id
    // could not make it in a root-owned image.
    std::fs::create_dir(b.rootfs().join("mnt")).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    if who() == Who::Root {
        std::os::unix::fs::chown(src.join("f"), Some(1234), Some(1234)).unwrap();
    }
    let src = src.to_str().unwrap().to_string();
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "bind", "source": src,
            "options": options,
        }))
    });
    b
}

fn mount_maps(b: &mut Bundle, inside: u32, outside: u32, size: u32) {
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap().last_mut().unwrap();
        m["uidMappings"] = json!([{"containerID": inside, "hostID": outside, "size": size}]);
        m["gidMappings"] = json!([{"containerID": inside, "hostID": outside, "size": size}]);
    });
}

#[test]
fn an_idmapped_mount_shows_the_mapped_owner() {
    let mut b = idmapped_bundle("stat -c '%u:%g' /mnt/f", &["bind", "idmap"]);
    mount_maps(&mut b, 1234, 4321, 1);
    let out = b.run();
    if who() == Who::Root {
        assert_ok(&out);
        assert_eq!(text(&out.stdout), "4321:4321\n");
        // The file itself is not changed.
        let st = std::fs::metadata(b.dir.join("shared/f")).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&st), 1234);
    } else {
        assert_one_line_error(
            &out,
            "mounts: idmapped mount on `/mnt` needs real root (CAP_SYS_ADMIN over the source's file system)",
        );
        nothing_left(&b);
    }
}

#[test]
fn an_idmapped_mount_without_its_own_maps_uses_the_containers() {
    // Root's container in a user namespace (0 → 100000): through an
    // idmapped mount the host's root-owned files belong to the container's
    // root, and what it writes is owned by root on the host.
    let mut b = idmapped_bundle(
        "stat -c '%u:%g' /mnt/g /mnt/f; touch /mnt/new; stat -c '%u:%g' /mnt/new",
        &["bind", "idmap"],
    );
    if who() == Who::Root {
        std::fs::write(b.dir.join("shared/g"), "y").unwrap();
    }
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let out = b.run();
    if who() == Who::Root {
        assert_ok(&out);
        // 1234 on disk shows as 1234 too: the same map applies to every id.
        assert_eq!(text(&out.stdout), "0:0\n1234:1234\n0:0\n");
        let st = std::fs::metadata(b.dir.join("shared/new")).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&st), 0);
    } else {
        // A plain user's maps are its own; they stop at the privilege.
        assert_one_line_error(&out, "mounts: idmapped mount on `/mnt` needs real root");
        nothing_left(&b);
    }
}

#[test]
fn without_idmap_the_same_container_sees_the_overflow_id() {
    // The control for the test above: the same bundle and user namespace,
    // no idmap, and the root-owned file belongs to nobody.
    let mut b = idmapped_bundle("stat -c '%u' /mnt/g", &["bind"]);
    std::fs::write(b.dir.join("shared/g"), "y").unwrap();
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        if who() == Who::Root {
            c["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        }
    });
    let out = b.run();
    assert_ok(&out);
    // As root the file's owner (0) is outside the map; as a plain user it
    // is the user itself, which the container sees as root.
    let want = if who() == Who::Root { "65534\n" } else { "0\n" };
    assert_eq!(text(&out.stdout), want);
}

#[test]
fn ridmap_maps_the_mounts_under_the_source_and_idmap_does_not() {
    if who() != Who::Root {
        let mut b = idmapped_bundle("true", &["rbind", "ridmap"]);
        mount_maps(&mut b, 1234, 4321, 1);
        assert_one_line_error(&b.run(), "mounts: idmapped mount on `/mnt` needs real root");
        nothing_left(&b);
        return;
    }
    for (option, want) in [("ridmap", "4321\n4321\n"), ("idmap", "4321\n1234\n")] {
        let mut b = idmapped_bundle("stat -c '%u' /mnt/f /mnt/sub/g", &["rbind", option]);
        mount_maps(&mut b, 1234, 4321, 1);
        // A tmpfs (which supports idmapping) mounted under the source.
        let sub = b.dir.join("shared/sub");
        std::fs::create_dir(&sub).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&sub)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::write(sub.join("g"), "z").unwrap();
        std::os::unix::fs::chown(sub.join("g"), Some(1234), Some(1234)).unwrap();
        let out = b.run();
        let _ = std::process::Command::new("umount").arg(&sub).status();
        assert_ok(&out);
        assert_eq!(text(&out.stdout), want, "{option}");
    }
}

#[test]
fn idmapped_mounts_hutch_cannot_make_fail_create_naming_the_mount() {
    let root = who() == Who::Root;
    // The kernel refuses to idmap a procfs: as root, that is the error.
    let mut b = sh("true");
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "bind", "source": "/proc",
            "options": ["rbind", "idmap"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        }))
    });
    let out = b.create();
    if root {
        assert_one_line_error(&out, "make the idmapped mount of `/proc` for `/mnt` (its file system does not support idmapped mounts): Invalid argument");
    } else {
        assert_one_line_error(&out, "mounts: idmapped mount on `/mnt` needs real root");
    }
    nothing_left(&b);

    // Mistakes in the config, whoever runs it (checked before the
    // privilege as root, after it as a plain user).
    let cases: [(serde_json::Value, &str); 3] = [
        (
            json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
                   "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                   "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
            "mounts: idmapped mount on `/mnt`: only bind mounts can be idmapped",
        ),
        (
            json!({"destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"],
                   "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
            "uidMappings and gidMappings must be given together",
        ),
        (
            // The base config has no user namespace of its own for root.
            json!({"destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]}),
            "has no uidMappings and gidMappings, and the container has no new user namespace",
        ),
    ];
    for (i, (mount, message)) in cases.into_iter().enumerate() {
        let mut b = sh("true");
        b.edit(|c| c["mounts"].as_array_mut().unwrap().push(mount.clone()));
        let out = b.create();
        if root || i == 0 {
            assert_one_line_error(&out, message);
        } else {
            assert_one_line_error(&out, "needs real root");
        }
        nothing_left(&b);
    }
}

/// A veth pair on the host (root only), with a permanent global IPv4 and
/// IPv6 address on its first end; whatever is left of it goes when dropped.
struct Veth {
    a: String,
    b: String,
}

impl Veth {
    fn new() -> Veth {
        let tag = unique_id("").replace('-', "");
        // Interface names have at most 15 bytes.
        let tag = &tag[tag.len().saturating_sub(10)..];
        let v = Veth {
            a: format!("hx{tag}a"),
            b: format!("hx{tag}b"),
        };
        ip(&["link", "add", &v.a, "type", "veth", "peer", "name", &v.b]);
        ip(&["addr", "add", "10.213.7.1/24", "dev", &v.a]);
        ip(&[
            "-6",
            "addr",
            "add",
            "fd00:213:7::1/64",
            "dev",
            &v.a,
            "nodad",
        ]);
        v
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for n in [&self.a, &self.b] {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", n])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// `ip ARGS` on the host, which must succeed; its output.
fn ip(args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert_ok(&out);
    text(&out.stdout)
}

/// True while the host has a link called `name`.
fn host_has_link(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

fn with_netns(b: &mut Bundle) {
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "network"}))
    });
}

#[test]
fn a_net_device_moves_into_the_container_renamed_up_with_its_addresses() {
    if who() != Who::Root {
        let mut b = sh("true");
        with_netns(&mut b);
        b.edit(|c| c["linux"]["netDevices"] = json!({"hxdev0": {"name": "ctr0"}}));
        assert_one_line_error(
            &b.create(),
            "linux.netDevices: moving `hxdev0` needs real root (CAP_NET_ADMIN in the host's network namespace)",
        );
        nothing_left(&b);
        return;
    }
    become_subreaper();
    let veth = Veth::new();
    let mut b = sh("ip -o link show ctr0; ip -o addr show ctr0 scope global");
    with_netns(&mut b);
    b.edit(|c| c["linux"]["netDevices"] = json!({veth.a.clone(): {"name": "ctr0"}}));
    assert_ok(&b.create());
    // Moved at create: gone from the host, its peer still there.
    assert!(!host_has_link(&veth.a));
    assert!(host_has_link(&veth.b));
    assert_ok(&b.hutch(&["start", &b.id]));
    assert_eq!(wait_exit(b.pid()), 0);
    let inside = std::fs::read_to_string(b.dir.join("stdout")).unwrap();
    assert!(inside.contains(": ctr0@"), "{inside}");
    let flags = inside.split(['<', '>']).nth(1).unwrap_or("");
    assert!(flags.split(',').any(|f| f == "UP"), "{inside}");
    assert!(inside.contains("inet 10.213.7.1/24"), "{inside}");
    assert!(inside.contains("inet6 fd00:213:7::1/64"), "{inside}");
    assert_ok(&b.hutch(&["delete", &b.id]));
    // The namespace is gone: the kernel destroys a veth in it, and its peer
    // with it (asynchronously).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while host_has_link(&veth.b) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !host_has_link(&veth.b),
        "the veth pair outlived the container"
    );
    assert!(!host_has_link(&veth.a));
}

#[test]
fn a_net_device_without_a_new_name_keeps_its_own() {
    if who() != Who::Root {
        let mut b = sh("true");
        with_netns(&mut b);
        b.edit(|c| c["linux"]["netDevices"] = json!({"hxdev1": {}}));
        assert_one_line_error(
            &b.create(),
            "linux.netDevices: moving `hxdev1` needs real root",
        );
        nothing_left(&b);
        return;
    }
    let veth = Veth::new();
    let mut b = sh(&format!("cat /sys/class/net/{}/operstate", veth.a));
    with_netns(&mut b);
    // sysfs shows the container's network namespace only when mounted in it.
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/sys");
        mounts.push(json!({"destination": "/sys", "type": "sysfs", "source": "sysfs"}));
        c["linux"]["netDevices"] = json!({veth.a.clone(): {}});
    });
    let out = b.run();
    assert_ok(&out);
    // Up on the container's side; its peer on the host is down, so the
    // carrier is not: "lowerlayerdown".
    assert_eq!(text(&out.stdout), "lowerlayerdown\n");
}

#[test]
fn net_devices_that_cannot_move_fail_create_and_leave_the_host_as_it_was() {
    let root = who() == Who::Root;
    let veth = root.then(Veth::new);
    let dev = veth.as_ref().map_or("hxdev2".to_string(), |v| v.a.clone());
    let cases: Vec<(serde_json::Value, bool, String)> = vec![
        // (netDevices, needs a network namespace, message as root)
        (
            json!({"hxnosuchdev": {}}),
            true,
            "find network device `hxnosuchdev` on the host: No such device".into(),
        ),
        (
            json!({&dev: {"name": "lo"}}),
            true,
            format!("move network device `{dev}` into the container as `lo` (a device there has that name): File exists"),
        ),
        (
            json!({&dev: {"name": "ctr0"}}),
            false,
            format!("linux.netDevices: moving `{dev}` needs a new network namespace"),
        ),
        (
            json!({&dev: {"name": "ctr0"}, "hxother": {"name": "ctr0"}}),
            true,
            format!("linux.netDevices: `{dev}` and `hxother` would both be `ctr0` in the container"),
        ),
        (
            json!({&dev: {"name": "a/b"}}),
            true,
            format!("linux.netDevices: `a/b` (for `{dev}`) is not a network interface name"),
        ),
    ];
    for (devices, netns, message) in cases {
        let mut b = sh("true");
        if netns {
            with_netns(&mut b);
        }
        b.edit(|c| c["linux"]["netDevices"] = devices.clone());
        let out = b.create();
        if root || !netns || message.contains("not a network interface name") {
            assert_one_line_error(&out, &message);
        } else {
            assert_one_line_error(&out, "needs real root");
        }
        nothing_left(&b);
        if let Some(v) = &veth {
            // Still on the host, with its address.
            assert!(ip(&["-o", "addr", "show", &v.a]).contains("inet 10.213.7.1/24"));
        }
    }
}

#[test]
fn a_templated_name_is_numbered_by_the_kernel() {
    if who() != Who::Root {
        let mut b = sh("true");
        with_netns(&mut b);
        b.edit(|c| c["linux"]["netDevices"] = json!({"hxdev3": {"name": "hxe%d"}}));
        assert_one_line_error(
            &b.create(),
            "linux.netDevices: moving `hxdev3` needs real root",
        );
        nothing_left(&b);
        return;
    }
    let veth = Veth::new();
    let mut b = sh("ls /sys/class/net");
    with_netns(&mut b);
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/sys");
        mounts.push(json!({"destination": "/sys", "type": "sysfs", "source": "sysfs"}));
        c["linux"]["netDevices"] = json!({veth.a.clone(): {"name": "hxe%d"}});
    });
    let out = b.run();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "hxe0\nlo\n");
}

#[test]
fn an_idmapped_mount_in_a_container_that_joins_a_user_namespace_by_path() {
    // create makes the idmapped mount before it enters the joined user
    // namespace, where it would no longer have CAP_SYS_ADMIN over /tmp's
    // file system. The mount is read-only too. The joined namespace maps
    // host root to itself (hutch, joining as root, stays uid 0, and must be
    // mapped to make mount points) and 1000 to 101000.
    if who() != Who::Root {
        let mut b = idmapped_bundle("true", &["bind", "idmap", "ro"]);
        mount_maps(&mut b, 0, 100000, 65536);
        assert_one_line_error(&b.run(), "mounts: idmapped mount on `/mnt` needs real root");
        nothing_left(&b);
        return;
    }
    become_subreaper();
    let maps = json!([{"containerID": 0, "hostID": 0, "size": 1},
                      {"containerID": 1000, "hostID": 101000, "size": 1}]);
    let mut a = Bundle::new(&["/bin/sleep", "1000"]);
    a.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = maps.clone();
        c["linux"]["gidMappings"] = maps.clone();
    });
    assert_ok(&a.create());
    let apid = a.pid();

    let mut b = idmapped_bundle(
        "stat -c '%u:%g' /mnt/g; touch /mnt/new 2>&1 | grep -c Read-only",
        &["bind", "idmap", "ro"],
    );
    std::fs::write(b.dir.join("shared/g"), "y").unwrap();
    // Host root's files show as 101000, which is 1000 in the container.
    mount_maps(&mut b, 0, 101000, 1);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user", "path": format!("/proc/{apid}/ns/user")}));
    });
    let out = b.run();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "1000:1000\n1\n");
    assert!(!b.dir.join("shared/new").exists());
    assert_ok(&a.hutch(&["delete", "--force", &a.id]));
    assert_eq!(wait_exit(apid), 137);
}
