//! What the start path sets up, checked from inside the container: user
//! namespace modes, mounts, /dev, the root, the process, and what bad
//! input does (one line, non-zero, nothing left behind).

mod common;

use common::*;
use serde_json::json;

/// Run the bundle and return its stdout, asserting success.
#[track_caller]
fn output_of(b: &Bundle) -> String {
    let out = b.run();
    assert_ok(&out);
    text(&out.stdout)
}

fn sh(script: &str) -> Bundle {
    Bundle::new(&["/bin/sh", "-c", script])
}

fn uid_map_line(inside: u32, outside: u32, count: u32) -> String {
    format!("{inside} {outside} {count}")
}

fn squeeze(s: &str) -> String {
    s.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn user_namespace_is_made_for_a_plain_user_even_if_the_config_has_none() {
    let b = sh("cat /proc/self/uid_map; cat /proc/self/gid_map; id -u");
    let out = squeeze(&output_of(&b));
    match who() {
        // Real root with no user namespace asked for stays in the host's.
        Who::Root => assert_eq!(out, "0 0 4294967295\n0 0 4294967295\n0"),
        _ => assert_eq!(
            out,
            format!(
                "{}\n{}\n0",
                uid_map_line(0, uid(), 1),
                uid_map_line(0, gid(), 1)
            )
        ),
    }
}

#[test]
fn a_single_mapping_is_written_as_asked() {
    let mut b = sh("cat /proc/self/uid_map /proc/self/gid_map; cat /proc/self/setgroups");
    let (u, g) = if who() == Who::Root {
        (5000, 6000)
    } else {
        (uid(), gid())
    };
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": u, "size": 1}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": g, "size": 1}]);
    });
    let out = squeeze(&output_of(&b));
    // An unprivileged single mapping needs setgroups denied; root's does not.
    let setgroups = if who() == Who::Root { "allow" } else { "deny" };
    assert_eq!(
        out,
        format!(
            "{}\n{}\n{setgroups}",
            uid_map_line(0, u, 1),
            uid_map_line(0, g, 1)
        )
    );
}

#[test]
fn multi_range_maps_go_through_newuidmap() {
    let mut b = sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/f; chown 1234:1234 /tmp/f; stat -c %u:%g /tmp/f");
    let (su, sg) = match who() {
        Who::UserWithSubids => (subid_range("/etc/subuid").0, subid_range("/etc/subgid").0),
        _ => (100000, 100000),
    };
    let (u, g) = if who() == Who::Root {
        (0, 0)
    } else {
        (uid(), gid())
    };
    b.edit(|c| {
        c["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": u, "size": 1}, {"containerID": 1, "hostID": su, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": g, "size": 1}, {"containerID": 1, "hostID": sg, "size": 65536}]);
        c["process"]["capabilities"] = json!({"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]});
    });
    match who() {
        Who::UserSingle => {
            // No subordinate ids: newuidmap refuses, and nothing is left.
            assert_one_line_error(&b.run(), "newuidmap");
            assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
        }
        _ => {
            let out = squeeze(&output_of(&b));
            let want = format!(
                "{}\n{}\n{}\n{}\n0\n1234:1234",
                uid_map_line(0, u, 1),
                uid_map_line(1, su, 65536),
                uid_map_line(0, g, 1),
                uid_map_line(1, sg, 65536)
            );
            assert_eq!(out, want);
        }
    }
}

#[test]
fn process_user_must_be_mapped() {
    let mut b = sh("id");
    b.edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    match who() {
        // Real root without a user namespace: uid 1000 is just uid 1000.
        Who::Root => assert_eq!(output_of(&b).trim(), "uid=1000(app) gid=1000(app)"),
        _ => {
            assert_one_line_error(&b.run(), "process.user.uid 1000 is not mapped");
            assert!(b.state_entries().is_empty());
        }
    }
}

#[test]
fn pid_namespace_makes_the_program_pid_1() {
    let b = sh("echo $$; ps -o pid,comm | grep -vc hutch-rootemu; ps -o comm | grep -c hutch-rootemu; true");
    let out = output_of(&b);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"));
    // Only sh, ps and grep are visible (plus the header line)...
    assert!(
        lines.next().unwrap().trim().parse::<u32>().unwrap() <= 4,
        "{out}"
    );
    // ... and, with one id mapped (a plain user's default), root
    // emulation's supervisor (README).
    let supervisors = if who() == Who::Root { "0" } else { "1" };
    assert_eq!(lines.next(), Some(supervisors), "{out}");
}

#[test]
fn hostname_home_cwd_env_umask_are_applied() {
    let mut b = sh("hostname; echo $HOME; pwd; echo $PATH; echo $A; umask");
    b.edit(|c| {
        c["process"]["cwd"] = json!("/new/work/dir");
        c["process"]["env"] = json!(["PATH=/bin", "A=1", "PATH=/usr/bin:/bin", "A=2"]);
        c["process"]["user"]["umask"] = json!(0o027);
    });
    assert_eq!(
        output_of(&b),
        "hutchbox\n/root\n/new/work/dir\n/usr/bin:/bin\n2\n0027\n"
    );
    // The directory was made in the root, not on the host.
    assert!(b.rootfs().join("new/work/dir").is_dir());
}

#[test]
fn home_comes_from_the_containers_passwd_for_other_users() {
    if who() == Who::UserSingle {
        return assert_ok(&sh("true").run()); // uid 1000 cannot be mapped without subordinate ids
    }
    let mut b = sh("echo $HOME; id -u");
    b.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        if who() != Who::Root {
            let (su, _) = subid_range("/etc/subuid");
            let (sg, _) = subid_range("/etc/subgid");
            c["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
            c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid(), "size": 1}, {"containerID": 1, "hostID": su, "size": 65536}]);
            c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid(), "size": 1}, {"containerID": 1, "hostID": sg, "size": 65536}]);
        }
    });
    assert_eq!(output_of(&b), "/home/app\n1000\n");
}

#[test]
fn limits_nnp_and_capabilities_are_exactly_as_asked() {
    let mut b = sh(
        "ulimit -n; grep -E '^(NoNewPrivs|CapInh|CapPrm|CapEff|CapBnd|CapAmb)' /proc/self/status",
    );
    b.edit(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]);
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_CHOWN"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL"],
            "ambient": ["CAP_CHOWN"]
        });
    });
    let out = squeeze(&output_of(&b));
    // CAP_KILL is bit 5, CAP_CHOWN bit 0. Ambient CHOWN is neither permitted
    // nor inheritable, so it cannot be raised.
    assert_eq!(
        out,
        "123\nCapInh: 0000000000000000\nCapPrm: 0000000000000020\nCapEff: 0000000000000020\nCapBnd: 0000000000000021\nCapAmb: 0000000000000000\nNoNewPrivs: 1"
    );
}

#[test]
fn dev_holds_the_default_devices_and_links() {
    let b = sh("ls /dev | tr '\\n' ' '; echo; echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 8 /dev/urandom | wc -c; for l in fd stdin ptmx; do readlink /dev/$l; done");
    let out = output_of(&b);
    let mut lines = out.lines();
    let ls = lines.next().unwrap();
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "stdout", "stderr",
        "ptmx", "pts", "shm", "mqueue",
    ] {
        assert!(
            ls.split_whitespace().any(|x| x == d),
            "/dev lacks {d}: {ls}"
        );
    }
    assert_eq!(
        lines.collect::<Vec<_>>(),
        ["4", "8", "/proc/self/fd", "/proc/self/fd/0", "pts/ptmx"]
    );
}

#[test]
fn a_minimal_dev_is_made_when_the_config_mounts_none() {
    let mut b = sh("ls /dev | tr '\\n' ' '; grep ' /dev ' /proc/mounts | cut -d' ' -f3");
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    });
    let out = output_of(&b);
    for d in ["null", "zero", "urandom", "tty", "pts", "shm", "ptmx"] {
        assert!(
            out.split_whitespace().any(|x| x == d),
            "/dev lacks {d}: {out}"
        );
    }
    assert!(out.trim_end().ends_with("tmpfs"), "{out}");
    // Nothing was written into the image's own /dev.
    assert_eq!(
        std::fs::read_dir(b.rootfs().join("dev")).unwrap().count(),
        0
    );
}

#[test]
fn mounts_of_each_type_work_with_their_options() {
    let b_host = tempdir("hostdir");
    std::fs::write(b_host.join("file"), "from host\n").unwrap();
    let mut b = sh(concat!(
        "cat /mnt/ro/file; (echo x > /mnt/ro/file) 2>/dev/null && echo ro-writable; ",
        "echo new > /mnt/rw/new; cat /mnt/single; (echo x > /mnt/single) 2>/dev/null && echo file-writable; ",
        "grep -E ' /(scratch|mnt/ro|mnt/rw|proc|sys|dev/pts|dev/mqueue) ' /proc/mounts | cut -d' ' -f2,3 | sort; ",
        "grep ' /scratch ' /proc/mounts | grep -o 'size=[0-9]*k'; grep ' /scratch ' /proc/mounts | grep -c noexec"
    ));
    let host = b_host.to_str().unwrap().to_string();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/mnt/ro", "type": "bind", "source": host, "options": ["bind", "ro"]}));
        m.push(json!({"destination": "/mnt/rw", "type": "none", "source": host, "options": ["rbind", "rw"]}));
        m.push(json!({"destination": "/mnt/single", "type": "none", "source": format!("{host}/file"), "options": ["bind", "ro"]}));
        m.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1024k", "noexec", "mode=700"]}));
    });
    let out = output_of(&b);
    assert_eq!(
        out,
        "from host\nfrom host\n/dev/mqueue mqueue\n/dev/pts devpts\n/mnt/ro ext4\n/mnt/rw ext4\n/proc proc\n/scratch tmpfs\n/sys sysfs\nsize=1024k\n1\n"
            .replace("ext4", &fs_type_of(&b_host)),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(b_host.join("new")).unwrap(),
        "new\n"
    );
    let _ = std::fs::remove_dir_all(&b_host);
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let base = std::env::var_os("HUTCH_TEST_TMP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let d = base.join(format!("hutch-{tag}-{}", unique_id("d")));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fs_type_of(p: &std::path::Path) -> String {
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(p)
        .output()
        .unwrap();
    match text(&out.stdout).trim() {
        "ext2/ext3" => "ext4".to_string(),
        other => other.to_string(),
    }
}

#[test]
fn a_symlink_out_of_the_root_cannot_redirect_a_mount() {
    // The image holds links that point out of the root, absolutely and by
    // `..`; mounts through them must land inside the root.
    let mut b =
        sh("ls -d /etc/hutch-escape-a /hutch-escape-b 2>&1; grep -c hutch-escape /proc/mounts");
    let marker = format!("hutch-escape-{}", b.id);
    std::os::unix::fs::symlink("/etc", b.rootfs().join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../..", b.rootfs().join("rel")).unwrap();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/abs/hutch-escape-a", "type": "tmpfs", "source": "tmpfs"}));
        m.push(json!({"destination": "/rel/hutch-escape-b", "type": "tmpfs", "source": "tmpfs"}));
    });
    let out = output_of(&b);
    assert_eq!(out, "/etc/hutch-escape-a\n/hutch-escape-b\n2\n");
    assert!(b.rootfs().join("etc/hutch-escape-a").is_dir());
    assert!(b.rootfs().join("hutch-escape-b").is_dir());
    assert!(
        !std::path::Path::new("/etc/hutch-escape-a").exists(),
        "a directory was made on the host"
    );
    assert!(
        !std::path::Path::new("/hutch-escape-b").exists(),
        "a directory was made on the host"
    );
    let _ = marker;
}

#[test]
fn readonly_root_masked_and_readonly_paths() {
    let mut b = sh(concat!(
        "(touch /x) 2>/dev/null && echo root-writable; touch /tmp/ok && echo tmp-ok; ",
        "wc -c < /proc/keys; ls /sys/firmware | wc -l; ",
        "(echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null && echo sys-writable; echo done"
    ));
    b.edit(|c| {
        c["root"]["readonly"] = json!(true);
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    });
    assert_eq!(output_of(&b), "tmp-ok\n0\n0\ndone\n");
}

#[test]
fn only_stdio_and_preserved_fds_reach_the_program() {
    use std::os::fd::AsRawFd;
    // An fd hutch inherits without close-on-exec (as from buildah).
    let leaked = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let b = sh("ls /proc/self/fd | tr '\\n' ' '");
    let dir = b.dir.to_str().unwrap().to_string();
    let out = b.hutch(&["run", "--bundle", &dir, &b.id]);
    assert_ok(&out);
    // ls itself holds one fd (3) on the directory it lists.
    assert_eq!(
        text(&out.stdout).trim(),
        "0 1 2 3",
        "leaked fd {}",
        leaked.as_raw_fd()
    );

    // --preserve-fds 1 passes fd 3 through.
    let b2 = sh("cat <&3");
    let dir2 = b2.dir.to_str().unwrap().to_string();
    std::fs::write(b2.dir.join("input"), "via fd 3\n").unwrap();
    let mut cmd = b2.cmd(&["run", "--preserve-fds", "1", "--bundle", &dir2, &b2.id]);
    let input = std::fs::File::open(b2.dir.join("input")).unwrap();
    unsafe_free_dup_to_3(&mut cmd, input);
    let out2 = cmd.output().unwrap();
    assert_ok(&out2);
    assert_eq!(text(&out2.stdout), "via fd 3\n");
}

/// Arrange for `file` to be fd 3 of the command, without unsafe code: the
/// shell does the dup.
fn unsafe_free_dup_to_3(cmd: &mut std::process::Command, file: std::fs::File) {
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut sh = std::process::Command::new("/bin/sh");
    sh.arg("-c")
        .arg("exec \"$@\" 3<&0 </dev/null")
        .arg("sh")
        .arg(prog)
        .args(args);
    sh.stdin(file);
    *cmd = sh;
}

#[test]
fn bad_configs_fail_with_one_line_and_leave_nothing() {
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "unsupported ociVersion `2.0.0`",
            Box::new(|c| c["ociVersion"] = json!("2.0.0")),
        ),
        (
            "root.path",
            Box::new(|c| c["root"]["path"] = json!("no-such-rootfs")),
        ),
        (
            "process.args is empty",
            Box::new(|c| c["process"]["args"] = json!([])),
        ),
        (
            "unknown variant `foo`",
            Box::new(|c| c["linux"]["namespaces"] = json!([{"type": "foo"}])),
        ),
        (
            "linux.intelRdt is not supported",
            Box::new(|c| c["linux"]["intelRdt"] = json!({"closID": "x"})),
        ),
        (
            "process.cwd `rel` is not absolute",
            Box::new(|c| c["process"]["cwd"] = json!("rel")),
        ),
        (
            "has no type and is not a bind mount",
            Box::new(|c| c["mounts"] = json!([{"destination": "/x", "source": "y"}])),
        ),
        (
            "CAP_BOGUS",
            Box::new(|c| c["process"]["capabilities"] = json!({"bounding": ["CAP_BOGUS"]})),
        ),
        (
            "invalid type",
            Box::new(|c| c["process"]["args"] = json!("not-a-list")),
        ),
        (
            "listed twice",
            Box::new(|c| c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "pid"}])),
        ),
        (
            "hostname and domainname need a private uts namespace",
            Box::new(|c| c["linux"]["namespaces"] = json!([{"type": "mount"}])),
        ),
        (
            "is not in a namespace the container has of its own",
            Box::new(|c| c["linux"]["sysctl"] = json!({"kernel.panic": "1"})),
        ),
    ];
    for (needle, edit) in cases {
        let mut b = sh("true");
        b.edit(|c| edit(c));
        let out = b.run();
        assert_one_line_error(&out, needle);
        assert!(
            b.state_entries().is_empty(),
            "{needle}: left {:?}",
            b.state_entries()
        );
    }
    // Not JSON at all.
    let b = sh("true");
    std::fs::write(b.dir.join("config.json"), "{ not json").unwrap();
    assert_one_line_error(&b.run(), "config.json");
    assert!(b.state_entries().is_empty());
}

#[test]
fn bad_ids_are_refused_before_anything_happens() {
    let b = sh("true");
    let dir = b.dir.to_str().unwrap().to_string();
    for id in ["../escape", ".hidden", "a/b", "", "x y", &"a".repeat(2000)] {
        let out = b.hutch(&["create", "--bundle", &dir, id]);
        assert_one_line_error(&out, "invalid container id");
        let out = b.hutch(&["state", id]);
        assert_one_line_error(&out, "invalid container id");
    }
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
    assert!(!b.dir.join("escape").exists());
}

#[test]
fn missing_bundle_and_unknown_container() {
    let b = sh("true");
    assert_one_line_error(
        &b.hutch(&["create", "--bundle", "/nonexistent/bundle", &b.id]),
        "no config.json",
    );
    for op in ["start", "state", "kill", "delete"] {
        assert_one_line_error(&b.hutch(&[op, "nosuch"]), "does not exist");
    }
}
