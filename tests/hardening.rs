//! Attacks from inside the container (or a hostile bundle) that must fail:
//! each test tries one and checks that nothing outside the root changed.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;

#[test]
fn the_runtime_binary_cannot_be_rewritten_through_proc_exe() {
    become_subreaper();
    let mut b = Bundle::new(&["/bin/sleep", "1000"]);
    if who() == Who::Root {
        // Real root without a user namespace could write any binary.
        b.edit(|c| {
            c["linux"]["namespaces"] =
                json!([{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}])
        });
    }
    assert_ok(&b.create());
    let pid = b.pid();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let bin = std::fs::metadata(hutch_bin()).unwrap();
    let container_can_write = who() == Who::Root || bin.uid() == uid();
    if container_can_write {
        // hutch runs from a sealed copy: what the container could reach
        // through /proc/PID/exe is that copy, and it cannot be written.
        assert!(exe.to_string_lossy().starts_with("/memfd:hutch"), "{exe:?}");
        let held = std::fs::File::open(format!("/proc/{pid}/exe")).unwrap();
        assert_ok(&b.hutch(&["delete", "--force", &b.id]));
        assert_eq!(wait_exit(pid), 137);
        // Opening for writing works on a memfd; the seals refuse the write.
        let mut reopened = std::fs::OpenOptions::new()
            .write(true)
            .open(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&held)
            ))
            .unwrap();
        let write = std::io::Write::write_all(&mut reopened, b"\x7fELF evil");
        assert_eq!(
            write.unwrap_err().raw_os_error(),
            Some(libc::EPERM),
            "the sealed copy took a write"
        );
    } else {
        // The binary belongs to someone the container cannot be: no copy.
        assert_eq!(exe, std::fs::canonicalize(hutch_bin()).unwrap());
        let write = std::fs::OpenOptions::new().write(true).open(&exe);
        assert!(write.is_err(), "the container's user can write the runtime");
        assert_ok(&b.hutch(&["delete", "--force", &b.id]));
        assert_eq!(wait_exit(pid), 137);
    }
}

#[test]
fn a_root_whose_dev_or_proc_is_a_symlink_is_refused() {
    become_subreaper();
    for dir in ["dev", "proc", "sys"] {
        let b = Bundle::new(&["/bin/true"]);
        let path = b.rootfs().join(dir);
        std::fs::remove_dir(&path).unwrap();
        // Even a link that stays inside the root is refused.
        std::os::unix::fs::symlink("tmp", &path).unwrap();
        assert_ok(&b.create());
        assert_one_line_error(&b.hutch(&["start", &b.id]), "symlink");
        assert_ne!(wait_exit(b.pid()), 0);
        assert!(
            std::fs::read_dir(b.rootfs().join("tmp"))
                .unwrap()
                .next()
                .is_none(),
            "{dir}: something was made through the link"
        );
    }
}

#[test]
fn a_cwd_through_a_leaked_fd_cannot_leave_the_root() {
    // CVE-2024-21626: cwd = /proc/self/fd/N naming one of hutch's fds.
    for n in 3..12 {
        let mut b = Bundle::new(&["/bin/sh", "-c", "pwd; ls"]);
        b.edit(|c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{n}")));
        let out = b.run();
        if out.status.success() {
            let cwd = text(&out.stdout);
            assert!(
                cwd.starts_with('/') && !cwd.contains("hutch-test"),
                "fd {n}: cwd {cwd}"
            );
        }
        assert!(b.state_entries().is_empty());
    }
}

#[test]
fn masked_files_are_the_real_null_device() {
    // The image's own /dev/null is a link to a secret: masks must not use it.
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "stat -c %t:%T /proc/keys; cat /proc/keys | wc -c",
    ]);
    std::fs::write(b.rootfs().join("secret"), "secret\n").unwrap();
    std::os::unix::fs::symlink("/secret", b.rootfs().join("dev/null")).unwrap();
    b.edit(|c| c["linux"]["maskedPaths"] = json!(["/proc/keys"]));
    let out = b.run();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "1:3\n0\n");
}

#[test]
fn masks_and_read_only_paths_are_read_only_mounts_as_with_crun() {
    // The flags of each mount over these paths, from mountinfo: masks are
    // read-only (through a read-write bind of /dev/null, real root in the
    // container could change the host's node: its times, its mode), and
    // read-only paths keep the flags of the mount they cover.
    let b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "touch -c /proc/timer_list 2>/dev/null && echo wrote; \
         awk '$5 ~ /^\\/(proc\\/(keys|timer_list|acpi|sys)|sys\\/firmware)$/ { print $5, $6 }' /proc/self/mountinfo",
    ]);
    let out = b.run();
    assert_ok(&out);
    let got = text(&out.stdout);
    assert!(!got.contains("wrote"), "{got}");
    let mut lines: Vec<&str> = got.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "/proc/acpi ro,relatime",
            "/proc/keys ro,relatime",
            "/proc/sys ro,relatime",
            "/proc/timer_list ro,relatime",
            "/sys/firmware ro,relatime",
        ],
        "{got}"
    );
}

#[test]
fn devices_are_nosuid_noexec_and_dev_core_links_to_kcore() {
    let b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "readlink /dev/core; awk '$5 == \"/dev/null\" || $5 == \"/dev/tty\" { print $5, $6 }' /proc/self/mountinfo",
    ]);
    let out = b.run();
    assert_ok(&out);
    let got = text(&out.stdout);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "/proc/kcore", "{got}");
    // Real root makes the nodes on /dev's tmpfs (nosuid, and no program
    // there); in a user namespace they are binds of the host's nodes.
    if who() == Who::Root {
        assert_eq!(lines.len(), 1, "{got}");
    } else {
        for l in &lines[1..] {
            let flags: Vec<&str> = l.split_whitespace().nth(1).unwrap().split(',').collect();
            assert!(
                flags.contains(&"nosuid") && flags.contains(&"noexec"),
                "{got}"
            );
        }
        assert_eq!(lines.len(), 3, "{got}");
    }
}

#[test]
fn the_pid_file_never_follows_a_symlink() {
    become_subreaper();
    let b = Bundle::new(&["/bin/true"]);
    let target = b.dir.join("target");
    std::fs::write(&target, "precious\n").unwrap();
    let link = b.dir.join("pidlink");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let dir = b.dir.to_str().unwrap().to_string();
    let out = b
        .cmd(&[
            "create",
            "--bundle",
            &dir,
            "--pid-file",
            link.to_str().unwrap(),
            &b.id,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    let pid: i32 = std::fs::read_to_string(&link)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert_eq!(wait_exit(pid), 137);
}

#[test]
fn a_bind_mount_over_a_symlinked_destination_stays_inside() {
    // The destination's parent is a link to the host's /etc, written
    // absolutely and relatively; the bind lands in the root's /etc.
    let host = std::env::temp_dir().join(format!("hutch-src-{}", unique_id("s")));
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "x").unwrap();
    let mut b = Bundle::new(&["/bin/true"]);
    std::os::unix::fs::symlink("/etc", b.rootfs().join("link")).unwrap();
    let src = host.to_str().unwrap().to_string();
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/link/hutch-bind-target", "type": "bind", "source": src, "options": ["bind"]}));
    });
    assert_ok(&b.run());
    assert!(b.rootfs().join("etc/hutch-bind-target").is_dir());
    assert!(!std::path::Path::new("/etc/hutch-bind-target").exists());
    std::fs::remove_dir_all(&host).unwrap();
}

#[test]
fn no_new_privileges_and_capabilities_end_as_configured_for_setuid_programs() {
    // A setuid-root copy of busybox in the image gains nothing with
    // noNewPrivileges, and the process never holds more than its sets.
    let mut b = Bundle::new(&["/bin/sh", "-c", "su -c 'grep -E \"^(CapEff|NoNewPrivs)\" /proc/self/status' app 2>&1 || true; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"]);
    b.edit(|c| {
        c["process"]["capabilities"] = json!({"bounding": [], "effective": [], "permitted": []});
        c["process"]["noNewPrivileges"] = json!(true);
    });
    let out = b.run();
    assert_ok(&out);
    let got = text(&out.stdout);
    assert!(got.contains("CapEff:\t0000000000000000"), "{got}");
    assert!(
        !got.lines()
            .any(|l| l.starts_with("CapEff:") && !l.ends_with("0000000000000000")),
        "{got}"
    );
}

#[test]
fn a_forged_entry_cannot_make_hutch_signal_a_stranger() {
    // In a shared state directory a user can write an entry naming any
    // pid, with its true start time. Acting on it, hutch must not signal
    // a process the entry's owner could not (Slurm's root cleanup).
    use std::os::unix::fs::PermissionsExt;
    become_subreaper();
    let b = Bundle::new(&["/bin/true"]);
    let shared = b.dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    // The victim: a process the forger cannot signal. As root, our own
    // child, with the entry handed to nobody; as a user, init (pid 1).
    let mut victim_child = None;
    let victim = if who() == Who::Root {
        let c = std::process::Command::new("/bin/sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let pid = c.id() as i32;
        victim_child = Some(c);
        pid
    } else {
        1
    };
    let stat = std::fs::read_to_string(format!("/proc/{victim}/stat")).unwrap();
    let start: u64 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let entry = shared.join("forged");
    std::fs::create_dir(&entry).unwrap();
    let record = json!({"id": "forged", "ociVersion": "1.0.2", "pid": victim, "startTime": start,
        "bundle": "/", "annotations": {}, "created": 0});
    std::fs::write(entry.join("state.json"), record.to_string()).unwrap();
    if who() == Who::Root {
        nix::unistd::chown(
            &entry,
            Some(nix::unistd::Uid::from_raw(65534)),
            Some(nix::unistd::Gid::from_raw(65534)),
        )
        .unwrap();
    }
    let root = shared.to_str().unwrap();
    let out = std::process::Command::new(hutch_bin())
        .args(["--root", root, "kill", "forged", "KILL"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "kill of a forged entry succeeded");
    let out = std::process::Command::new(hutch_bin())
        .args(["--root", root, "delete", "--force", "forged"])
        .output()
        .unwrap();
    assert!(
        alive(victim),
        "the stranger was killed ({})",
        text(&out.stderr)
    );
    if let Some(mut c) = victim_child {
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

#[test]
fn a_bundle_reached_through_a_symlink_works() {
    let b = Bundle::new(&["/bin/sh", "-c", "echo ok"]);
    let link = b.dir.with_extension("link");
    std::os::unix::fs::symlink(&b.dir, &link).unwrap();
    let out = b.hutch(&["run", "--bundle", link.to_str().unwrap(), &b.id]);
    std::fs::remove_file(&link).unwrap();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "ok\n");
}

#[test]
fn a_destination_swapped_for_a_symlink_during_setup_stays_inside() {
    // CVE-2021-30465/CVE-2024-45310: while hutch makes the container, a
    // process (here, a thread of the test) keeps swapping the directory a
    // mount destination goes through for a symlink pointing out of the
    // root. Whatever hutch sees, nothing may be made or mounted outside.
    let outside = std::env::temp_dir().join(format!("hutch-outside-{}", unique_id("o")));
    std::fs::create_dir_all(&outside).unwrap();
    let mut b = Bundle::new(&["/bin/true"]);
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/race/sub/mnt", "type": "tmpfs", "source": "tmpfs"}));
    });
    let race = b.rootfs().join("race");
    let real = b.rootfs().join("race.real");
    let link = b.rootfs().join("race.link");
    std::fs::create_dir_all(real.join("sub")).unwrap();
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    std::fs::rename(&real, &race).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, race, real, link) = (stop.clone(), race.clone(), real.clone(), link.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // race is the real directory, then the link, and back.
                let _ = std::fs::rename(&race, &real);
                let _ = std::fs::rename(&link, &race);
                let _ = std::fs::rename(&race, &link);
                let _ = std::fs::rename(&real, &race);
            }
        })
    };
    let mut ran = 0;
    for _ in 0..100 {
        let out = b.run();
        ran += usize::from(out.status.success());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    let escaped: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(escaped.is_empty(), "made outside the root: {escaped:?}");
    assert!(
        b.state_entries().is_empty(),
        "left: {:?}",
        b.state_entries()
    );
    // The mount was really made (the directory was in place) some of the
    // time; the other runs failed cleanly.
    assert!(ran > 0, "no run succeeded");
    std::fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn a_cgroup_mount_shows_only_the_containers_own_cgroups() {
    // Without a cgroup namespace a plain user's container cannot mount a
    // new cgroup2; hutch then bound the host's whole /sys/fs/cgroup (every
    // other user's and job's cgroups). Now, as runc and crun, it binds
    // the process's own cgroups only: each cgroup mount's root is the
    // process's cgroup in that hierarchy.
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "cat /proc/self/cgroup; echo --; \
         awk '$5 ~ /^\\/sys\\/fs\\/cgroup/ { for (i = 7; $i != \"-\"; i++); print $(i + 1), $4, $5 }' /proc/self/mountinfo",
    ]);
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        // No /sys bind: its submounts would be the host's hierarchies.
        mounts.retain(|m| m["destination"] != "/sys");
        mounts.push(json!({
            "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
        }));
    });
    let out = b.run();
    assert_ok(&out);
    let got = text(&out.stdout);
    let (own, mounts) = got.split_once("--\n").unwrap();
    // controllers (`memory`, `cpu,cpuacct`, `systemd`; "" for v2) -> path
    let own: std::collections::HashMap<String, String> = own
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':').skip(1);
            let (c, p) = (f.next()?, f.next()?);
            Some((c.trim_start_matches("name=").to_string(), p.to_string()))
        })
        .collect();
    let cgroup_mounts: Vec<Vec<&str>> = mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f[0] == "cgroup" || f[0] == "cgroup2")
        .collect();
    assert!(!cgroup_mounts.is_empty(), "{got}");
    // Root too: a new mount where the process is at the root of a
    // hierarchy, else a bind of its cgroup there (each hierarchy on a v1
    // or hybrid host, as crun mounts them as root).
    for f in &cgroup_mounts {
        let key = match f[0] {
            "cgroup2" => "",
            _ => f[2].rsplit('/').next().unwrap(),
        };
        assert_eq!(Some(&f[1].to_string()), own.get(key), "{f:?}: {got}");
    }
}
