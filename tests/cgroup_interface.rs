//! The cgroup interface the commands (pause, resume, update, events, ps)
//! build on, used as they use it: `hutch::cgroup::reopen` on the record a
//! real `hutch create` left in the state entry, against the real cgroup
//! files. As root on a hybrid host that is the v1 hierarchies (freezer,
//! memory, pids…) and cgroup2; as a user with a delegated cgroup v2
//! subtree, cgroup2 only; as a user with neither, there is no cgroup and
//! no record.

mod common;

use std::time::{Duration, Instant};

use common::cgroup as cg;
use common::*;
use serde_json::{json, Value};

/// A started container running `script` (which touches /tmp/ready)
/// with `resources`, in cgroup `hutch-if-ID` below the caller's own.
fn started(script: &str, resources: Value) -> Bundle {
    become_subreaper();
    let mut b = Bundle::new(&["/bin/sh", "-c", script]);
    let path = format!("hutch-if-{}", b.id);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = resources;
    });
    assert_ok(&b.create());
    assert_ok(&b.hutch(&["start", &b.id]));
    let ready = b.rootfs().join("tmp/ready");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ready.exists(), "the container did not start");
    b
}

/// The record `create` left, if it made a cgroup.
fn record(b: &Bundle) -> Option<Value> {
    let text = std::fs::read_to_string(b.state_dir().join(&b.id).join("cgroup.json")).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

/// Whether this caller gets a cgroup at all (some hierarchy writable).
fn gets_a_cgroup() -> bool {
    cg::hierarchies().iter().any(|h| h.writable())
}

fn finish(b: &Bundle) {
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert_eq!(wait_exit(b.pid()), 137);
}

/// The counter the container's loop writes, once it is there.
fn count(b: &Bundle) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(t) = std::fs::read_to_string(b.rootfs().join("tmp/n")) {
            if let Ok(n) = t.trim().parse() {
                return n;
            }
        }
        assert!(Instant::now() < deadline, "no counter");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn freeze_thaw_pids_stats_and_update_act_on_the_real_cgroup() {
    let b = started(
        "touch /tmp/ready; i=0; while :; do i=$((i+1)); echo $i >/tmp/n.new; mv /tmp/n.new /tmp/n; usleep 10000; done",
        json!({"pids": {"limit": 50}, "memory": {"limit": 67108864}}),
    );
    let Some(rec) = record(&b) else {
        assert!(
            !gets_a_cgroup(),
            "no cgroup.json although a hierarchy is writable"
        );
        finish(&b);
        return;
    };
    let cgroup = hutch::cgroup::reopen(&rec).unwrap();
    let pid = b.pid();

    // pids: the container's process is listed.
    assert!(cgroup.pids().unwrap().contains(&pid), "{:?}", cgroup.pids());

    // freeze: the loop stops; thaw: it goes on.
    let before = count(&b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(&b) == before {
        assert!(Instant::now() < deadline, "the loop does not run");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!cgroup.is_frozen().unwrap());
    cgroup.freeze().unwrap();
    assert!(cgroup.is_frozen().unwrap());
    let frozen_at = count(&b);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(&b), frozen_at, "the loop ran while frozen");
    cgroup.thaw().unwrap();
    assert!(!cgroup.is_frozen().unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(&b) == frozen_at {
        assert!(
            Instant::now() < deadline,
            "the loop did not resume after thaw"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // stats: cpu time always (cgroup2's cpu.stat or v1 cpuacct); memory
    // and pids where their controllers are the container's.
    let s = cgroup.stats().unwrap();
    assert!(s.cpu.total > 0, "{s:?}");
    let name = format!("hutch-if-{}", b.id);
    let v2_dir = cg::v2().own_dir().join(&name);
    let pids_file = match cg::v1_with("pids") {
        Some(h) if h.writable() => Some(h.own_dir().join(&name).join("pids.max")),
        Some(_) => None,
        None => cg::v2_holds("pids", &v2_dir).then(|| v2_dir.join("pids.max")),
    };
    if pids_file.is_some() {
        assert_eq!(s.pids.limit, 50, "{s:?}");
        assert!(s.pids.current >= 1, "{s:?}");
    }
    let memory_here = match cg::v1_with("memory") {
        Some(h) => h.writable(),
        None => cg::v2_holds("memory", &v2_dir),
    };
    if memory_here {
        assert_eq!(s.memory.usage.limit, 67108864, "{s:?}");
        assert!(s.memory.usage.usage > 0, "{s:?}");
    }
    let j = s.to_json();
    assert!(j["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{j}");

    // update: the new pids limit is in the file of the hierarchy that holds pids.
    let r: oci_spec::runtime::LinuxResources =
        serde_json::from_value(json!({"pids": {"limit": 30}})).unwrap();
    cgroup.update(&r).unwrap();
    if let Some(f) = &pids_file {
        assert_eq!(std::fs::read_to_string(f).unwrap().trim(), "30");
        assert_eq!(cgroup.stats().unwrap().pids.limit, 30);
    }
    // Memory limits in both directions: on v1 the limit may never be
    // above memory+swap, so raising both needs memsw first, lowering both
    // the limit first; update finds the order.
    if memory_here {
        for (limit, swap) in [(33554432, 50331648), (536870912, 1073741824)] {
            let r: oci_spec::runtime::LinuxResources =
                serde_json::from_value(json!({"memory": {"limit": limit, "swap": swap}})).unwrap();
            update_or_panic(&cgroup, &r);
            assert_eq!(cgroup.stats().unwrap().memory.usage.limit, limit);
        }
    }
    // A bad value is refused before anything is written.
    let bad: oci_spec::runtime::LinuxResources =
        serde_json::from_value(json!({"memory": {"limit": 1000, "swap": 10}})).unwrap();
    assert!(cgroup.update(&bad).is_err());

    drop(cgroup);
    finish(&b);
    for (_, p) in rec["v1"].as_object().unwrap() {
        assert!(
            !std::path::Path::new(p.as_str().unwrap()).exists(),
            "{p} left behind"
        );
    }
    if let Some(p) = rec["v2"].as_str() {
        assert!(!std::path::Path::new(p).exists(), "{p} left behind");
    }
}

fn update_or_panic(cgroup: &hutch::cgroup::Cgroup, r: &oci_spec::runtime::LinuxResources) {
    if let Err(e) = cgroup.update(r) {
        panic!("update {r:?}: {e}");
    }
}

#[test]
fn an_oom_kill_is_seen_by_the_watch() {
    // tail keeps all of a line in memory: /dev/zero has no newline.
    let b = started(
        "touch /tmp/ready; while [ ! -e /tmp/go ]; do usleep 10000; done; head -c 100000000 /dev/zero | tail; exec sleep 1000",
        json!({"memory": {"limit": 33554432, "swap": 33554432}}),
    );
    let Some(rec) = record(&b) else {
        assert!(!gets_a_cgroup());
        finish(&b);
        return;
    };
    let cgroup = hutch::cgroup::reopen(&rec).unwrap();
    let name = format!("hutch-if-{}", b.id);
    let v2_dir = cg::v2().own_dir().join(&name);
    let memory_here = match cg::v1_with("memory") {
        Some(h) => h.writable(),
        None => cg::v2_holds("memory", &v2_dir),
    };
    let watch = cgroup.oom_watch();
    if !memory_here {
        // No memory controller of the container's: nothing to watch.
        let err = watch.unwrap_err().to_string();
        assert!(err.contains("memory"), "{err}");
        finish(&b);
        return;
    }
    let mut watch = watch.unwrap();
    std::fs::write(b.rootfs().join("tmp/go"), "").unwrap();
    use nix::poll::{poll, PollFd, PollFlags};
    let flags = if watch.wants_pri() {
        PollFlags::POLLPRI
    } else {
        PollFlags::POLLIN
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut kills = 0;
    while kills == 0 {
        assert!(Instant::now() < deadline, "no OOM kill seen");
        {
            let mut fds = [PollFd::new(watch.fd(), flags)];
            let _ = poll(&mut fds, 1000u16).unwrap();
        }
        kills += watch.count().unwrap();
    }
    assert!(kills >= 1);
    drop(watch);
    drop(cgroup);
    finish(&b);
}
