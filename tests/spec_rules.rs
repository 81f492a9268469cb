//! Rules of the runtime spec that the runtime-tools validation suite checks
//! and hutch once broke: filesystem mounts keep their source, the root's
//! propagation, the mount namespace exists from `create` (and can be
//! joined), `process` may be missing until `start`, `delete` refuses what
//! is not stopped (lifecycle.rs), capabilities hutch cannot grant.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn sh(script: &str) -> Bundle {
    Bundle::new(&["/bin/sh", "-c", script])
}

#[test]
fn filesystem_mounts_show_the_configs_source() {
    let b = sh(
        "awk '$5 == \"/dev/shm\" || $5 == \"/dev/pts\" {print $5, $(NF-1)}' /proc/self/mountinfo",
    );
    let out = b.run();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "/dev/pts devpts\n/dev/shm shm\n");
}

/// The optional fields of the container root's line in mountinfo.
fn root_propagation(value: &str) -> String {
    let mut b = sh(
        "awk '$5 == \"/\" {for (i = 7; $i != \"-\"; i++) printf \"%s \", $i}' /proc/self/mountinfo",
    );
    b.edit(|c| c["linux"]["rootfsPropagation"] = json!(value));
    let out = b.run();
    assert_ok(&out);
    text(&out.stdout)
}

#[test]
fn root_propagation_is_the_configs() {
    let shared = root_propagation("shared");
    assert!(shared.contains("shared:"), "shared: {shared:?}");
    let private = root_propagation("private");
    assert!(
        !private.contains("shared:") && !private.contains("master:"),
        "private: {private:?}"
    );
    let unbindable = root_propagation("unbindable");
    assert!(
        unbindable.contains("unbindable"),
        "unbindable: {unbindable:?}"
    );
    // A slave receives from the host (when the host's mount is shared) and
    // never sends: it is not shared.
    let slave = root_propagation("slave");
    assert!(!slave.contains("shared:"), "slave: {slave:?}");
}

#[test]
fn the_mount_namespace_exists_once_create_returns() {
    become_subreaper();
    let b = Bundle::new(&["/bin/true"]);
    assert_ok(&b.create());
    let pid = b.pid();
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_ne!(theirs, ours);
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert_eq!(wait_exit(pid), 137);
}

/// A process in a mount namespace of its own (and, for a plain user, a
/// user namespace that owns it), killed when dropped.
struct Holder(Child);

impl Holder {
    fn new() -> Holder {
        let mut cmd = Command::new("unshare");
        if who() != Who::Root {
            cmd.arg("--user").arg("--map-root-user");
        }
        cmd.args(["--mount", "--propagation", "private", "sleep", "1000"]);
        let child = cmd.stdin(Stdio::null()).spawn().unwrap();
        let h = Holder(child);
        let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.ns("mnt") == ours.to_string_lossy() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_ne!(
            h.ns("mnt"),
            ours.to_string_lossy(),
            "unshare did not settle"
        );
        h
    }

    fn path(&self, kind: &str) -> String {
        format!("/proc/{}/ns/{kind}", self.0.id())
    }

    fn ns(&self, kind: &str) -> String {
        std::fs::read_link(self.path(kind))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_mount_namespace_named_by_path_is_joined_at_create() {
    become_subreaper();
    let holder = Holder::new();
    let mut b = sh("readlink /proc/self/ns/mnt; cat /etc/hostname 2>/dev/null; ls /bin/busybox");
    b.edit(|c| {
        let mut list = vec![
            json!({"type": "mount", "path": holder.path("mnt")}),
            json!({"type": "pid"}),
            json!({"type": "uts"}),
            json!({"type": "ipc"}),
        ];
        if who() != Who::Root {
            list.push(json!({"type": "user", "path": holder.path("user")}));
            c["linux"].as_object_mut().unwrap().remove("uidMappings");
            c["linux"].as_object_mut().unwrap().remove("gidMappings");
        }
        c["linux"]["namespaces"] = json!(list);
    });
    assert_ok(&b.create());
    let pid = b.pid();
    // Joined by the container process at create, not at start.
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
            .unwrap()
            .to_string_lossy(),
        holder.ns("mnt")
    );
    assert_ok(&b.hutch(&["start", &b.id]));
    assert_eq!(wait_exit(pid), 0);
    assert_eq!(
        std::fs::read_to_string(b.dir.join("stdout")).unwrap(),
        format!("{}\n/bin/busybox\n", holder.ns("mnt"))
    );
    assert_ok(&b.hutch(&["delete", &b.id]));
}

#[test]
fn without_process_create_works_and_start_fails() {
    become_subreaper();
    let mut b = Bundle::new(&["/bin/true"]);
    b.edit(|c| {
        c.as_object_mut().unwrap().remove("process");
    });
    assert_ok(&b.create());
    assert_eq!(b.status(), "created");
    let pid = b.pid();
    assert_one_line_error(&b.hutch(&["start", &b.id]), "process is not set");
    assert_ne!(wait_exit(pid), 0);
    assert_eq!(b.status(), "stopped");
    assert_ok(&b.hutch(&["delete", &b.id]));
    assert!(b.state_entries().is_empty());
}

/// The capability mask of a `/proc/PID/status` line (`CapBnd:` ...).
fn cap_mask(status: &str, field: &str) -> u64 {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

#[test]
fn capabilities_hutch_lacks_are_left_out_with_a_warning() {
    // Ask for every capability the kernel knows in every set; the
    // container gets exactly those in its bounding set when it starts.
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let all: Vec<String> = (0..=last)
        .map(|i| {
            caps::all()
                .into_iter()
                .find(|c| c.index() as u32 == i)
                .map(|c| c.to_string())
                .unwrap()
        })
        .collect();
    let mut b = sh("grep -E '^Cap(Bnd|Prm|Eff)' /proc/self/status");
    b.edit(|c| {
        c["process"]["capabilities"] = json!({"bounding": all, "effective": all,
            "permitted": all, "inheritable": all});
        c["process"]["noNewPrivileges"] = json!(false);
    });
    let out = b.run();
    assert_ok(&out);
    let inside = text(&out.stdout);
    let ours = cap_mask(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "CapBnd:",
    );
    let known = if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    };
    // A new user namespace starts with a full bounding set (its
    // capabilities act only on what that namespace owns): a plain user's
    // container gets them all; root's, without one, only what root holds.
    let granted = if who() == Who::Root {
        ours & known
    } else {
        known
    };
    for field in ["CapBnd:", "CapPrm:", "CapEff:"] {
        assert_eq!(cap_mask(&inside, field), granted, "{field} in {inside}");
    }
    let warned = text(&out.stderr).contains("not in hutch's own bounding set");
    assert_eq!(
        warned,
        granted != known,
        "bounding {ours:x}; stderr: {}",
        text(&out.stderr)
    );
}

/// `unshare --user sleep` with maps that send 0 to the caller's
/// subordinate range (root: any range; a user without one: its own id).
fn user_namespace_holder() -> Child {
    let child = Command::new("unshare")
        .args(["--user", "sleep", "1000"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{pid}/ns/user")).ok() == Some(ours.clone())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/{pid}/{file}"), text).unwrap();
    };
    match who() {
        Who::Root => {
            write("uid_map", "0 100000 65536".into());
            write("gid_map", "0 100000 65536".into());
        }
        Who::UserWithSubids => {
            for (tool, file) in [("newuidmap", "/etc/subuid"), ("newgidmap", "/etc/subgid")] {
                let (start, count) = subid_range(file);
                let st = Command::new(tool)
                    .args([
                        pid.to_string(),
                        "0".into(),
                        start.to_string(),
                        count.to_string(),
                    ])
                    .status()
                    .unwrap();
                assert!(st.success(), "{tool}");
            }
        }
        Who::UserSingle => {
            write("uid_map", format!("0 {} 1", uid()));
            write("setgroups", "deny".into());
            write("gid_map", format!("0 {} 1", gid()));
        }
    }
    child
}

#[test]
fn in_a_joined_user_namespace_the_setup_runs_as_its_root() {
    let mut holder = user_namespace_holder();
    let path = format!("/proc/{}/ns/user", holder.id());
    // Without becoming 0 there, root (whose host id the namespace does not
    // map) made mount points as the overflow id and failed (EOVERFLOW).
    let mut b = sh("id -u; id -g");
    b.edit(|c| {
        c["linux"]["namespaces"] = json!([{"type": "user", "path": path}, {"type": "mount"},
            {"type": "pid"}, {"type": "uts"}, {"type": "ipc"}]);
        c["linux"].as_object_mut().unwrap().remove("uidMappings");
        c["linux"].as_object_mut().unwrap().remove("gidMappings");
    });
    let out = b.run();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "0\n0\n");
}
