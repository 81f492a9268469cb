//! SquashFS roots: `root.path` naming an image file. The image is served
//! through FUSE by hutch itself (gzip, lz4, zstd) or by squashfuse_ll (the
//! other compressors), and for real root by the kernel; these tests check what the container
//! sees (a read-only root, the config's mounts on top), the errors of bad
//! images and of an unusable /dev/fuse, and that nothing of the image is
//! left (no server process, no mount) however the container ends.
//! Needs mksquashfs (squashfs-tools), squashfuse and a /dev/fuse the
//! user may open (integration/test.sh sees to all three).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A bundle whose root is a SquashFS image of the busybox tree, at
/// `BUNDLE/image.bin` (a name without `.sqfs`: hutch goes by content).
fn image_bundle(args: &[&str]) -> Bundle {
    image_bundle_comp(args, "gzip")
}

/// Replace the bundle's root tree by an image of it, `image.bin`.
fn pack(b: &mut Bundle, mksquashfs: &[&str]) {
    let out = Command::new("mksquashfs")
        .arg(b.rootfs())
        .arg(b.dir.join("image.bin"))
        .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
        .args(mksquashfs)
        .output()
        .expect("mksquashfs (squashfs-tools) is needed");
    assert_ok(&out);
    std::fs::remove_dir_all(b.rootfs()).unwrap();
    b.edit(|c| c["root"]["path"] = "image.bin".into());
}

fn image(b: &Bundle) -> PathBuf {
    std::fs::canonicalize(b.dir.join("image.bin")).unwrap()
}

/// Live (not zombie) processes whose command line names `path`: hutch's
/// own server shows `hutch-squashfs IMAGE`, squashfuse its arguments.
fn servers_of(path: &Path) -> Vec<i32> {
    let needle = path.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(&needle) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Mounts of `path` in any mount namespace this user can see.
fn mounts_of(path: &Path) -> Vec<String> {
    let needle = format!(" {} ", path.to_string_lossy());
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if e.file_name().to_string_lossy().parse::<i32>().is_err() {
            continue;
        }
        let text = std::fs::read_to_string(e.path().join("mountinfo")).unwrap_or_default();
        out.extend(
            text.lines()
                .filter(|l| l.contains(&needle))
                .map(String::from),
        );
    }
    out
}

/// Loop devices backed by `path` (real root's images go through the
/// kernel's squashfs on one).
fn loops_of(path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let backing =
            std::fs::read_to_string(e.path().join("loop/backing_file")).unwrap_or_default();
        if backing.trim() == path.to_string_lossy() {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// The images of these tests: the default (gzip), which hutch serves
/// itself, and xz, which it does not decode: real root without a user
/// namespace (the tests' config) mounts that one with the kernel's
/// squashfs, everyone else with squashfuse_ll.
const COMPRESSORS: [&str; 2] = ["gzip", "xz"];

/// [`image_bundle`] with the image made by compressor `comp`.
fn image_bundle_comp(args: &[&str], comp: &str) -> Bundle {
    let mut b = Bundle::new(args);
    std::fs::write(b.rootfs().join("etc/msg"), "from the image\n").unwrap();
    pack(&mut b, &["-comp", comp]);
    b
}

/// Whether an image made by `comp` goes through the kernel's squashfs.
fn kernel_path(comp: &str) -> bool {
    who() == Who::Root && comp == "xz"
}

/// Nothing of the image is left: no server, no mount, no loop device. The
/// server ends (and the loop device is released) when the container's
/// mount namespace does, so allow it a moment.
#[track_caller]
fn nothing_left(b: &Bundle) {
    let img = image(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(servers_of(&img).is_empty() && loops_of(&img).is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(servers_of(&img), Vec::<i32>::new(), "server left");
    assert_eq!(mounts_of(&img), Vec::<String>::new(), "mount left");
    assert_eq!(loops_of(&img), Vec::<String>::new(), "loop device left");
}

/// The config's mounts land on top of the image, on mount points it
/// lacks too (`/srv/shared`: made in a tmpfs overlay, then read-only).
#[test]
fn run_sees_the_image_read_only_with_the_config_mounts_on_top() {
    let shared = tempdir("shared");
    std::fs::write(shared.join("note"), "from the host\n").unwrap();
    let mut b = image_bundle(&[
        "sh",
        "-c",
        "cat /etc/msg /srv/shared/note; touch /x /srv/y 2>&1; echo w > /tmp/w && cat /tmp/w; \
         grep -c ' / overlay ro,' /proc/self/mounts",
    ]);
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
        mounts.push(serde_json::json!({
            "destination": "/srv/shared", "type": "bind",
            "source": shared.to_str().unwrap(), "options": ["rbind", "ro"]
        }));
    });
    let out = b.run();
    assert_ok(&out);
    assert_eq!(
        text(&out.stdout),
        "from the image\nfrom the host\ntouch: /x: Read-only file system\n\
         touch: /srv/y: Read-only file system\nw\n1\n"
    );
    nothing_left(&b);
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
    let _ = std::fs::remove_dir_all(&shared);
}

fn tempdir(tag: &str) -> PathBuf {
    let base = std::env::var_os("HUTCH_TEST_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let d = base.join(unique_id(tag));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn create_start_delete_from_an_image() {
    become_subreaper();
    for comp in COMPRESSORS {
        let b = image_bundle_comp(&["sh", "-c", "cat /etc/msg; exit 3"], comp);
        assert_ok(&b.create());
        assert_eq!(b.status(), "created");
        // Served while the container exists: by a process outside it, or
        // for real root by the kernel, from a loop device.
        let served = (servers_of(&image(&b)).len(), loops_of(&image(&b)).len());
        assert_eq!(
            served,
            if kernel_path(comp) { (0, 1) } else { (1, 0) },
            "{comp}"
        );
        assert_ok(&b.hutch(&["start", &b.id]));
        assert_eq!(wait_exit(b.pid()), 3);
        assert_eq!(
            std::fs::read_to_string(b.dir.join("stdout")).unwrap(),
            "from the image\n"
        );
        assert_ok(&b.hutch(&["delete", &b.id]));
        nothing_left(&b);
        assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
    }
}

#[test]
fn kill_and_delete_force_leave_nothing() {
    become_subreaper();
    for how in ["kill", "delete"] {
        let b = image_bundle(&["sleep", "1000"]);
        assert_ok(&b.create());
        assert_ok(&b.hutch(&["start", &b.id]));
        if how == "kill" {
            assert_ok(&b.hutch(&["kill", &b.id, "KILL"]));
            assert_eq!(wait_exit(b.pid()), 137);
            // Gone with the container, before any delete.
            nothing_left(&b);
            assert_ok(&b.hutch(&["delete", &b.id]));
        } else {
            assert_ok(&b.hutch(&["delete", "--force", &b.id]));
            nothing_left(&b);
        }
        assert!(
            b.state_entries().is_empty(),
            "{how}: {:?}",
            b.state_entries()
        );
    }
}

/// Run `hutch ARGS` with a pause point, and SIGKILL it there.
fn kill_hutch_at(b: &Bundle, point: &str, args: &[&str]) {
    let mut child = b
        .cmd(args)
        .env("HUTCH_TEST_PAUSE", point)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .unwrap_or("")
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
fn sigkill_of_hutch_at_any_point_leaves_nothing() {
    become_subreaper();
    for comp in COMPRESSORS {
        // (create:served: after the FUSE server starts; the kernel's
        // squashfs has none.)
        let points: &[&str] = if kernel_path(comp) {
            &["create:cloned", "create:ready", "create:saved"]
        } else {
            &[
                "create:cloned",
                "create:served",
                "create:ready",
                "create:saved",
            ]
        };
        for &point in points {
            let b = image_bundle_comp(&["sleep", "1000"], comp);
            let dir = b.dir.to_str().unwrap().to_string();
            kill_hutch_at(&b, point, &["create", "--bundle", &dir, &b.id]);
            // A container recorded before the kill is deleted as usual.
            assert_ok(&b.hutch(&["delete", "--force", &b.id]));
            nothing_left(&b);
            assert!(
                b.state_entries().is_empty(),
                "{comp} {point}: {:?}",
                b.state_entries()
            );
        }
    }
    // `run` SIGKILLed while its container runs: the container dies with
    // it, and the image's server and mount with the container.
    let b = image_bundle(&["sleep", "1000"]);
    let dir = b.dir.to_str().unwrap().to_string();
    let mut run = b.cmd(&["run", "--bundle", &dir, &b.id]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.status() != "running" {
        assert!(Instant::now() < deadline, "never running");
        std::thread::sleep(Duration::from_millis(10));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    nothing_left(&b);
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
}

#[test]
fn truncated_and_corrupt_images_fail_create_naming_the_image() {
    let b = image_bundle(&["true"]);
    let good = std::fs::read(b.dir.join("image.bin")).unwrap();
    let sb = |o: usize| u64::from_le_bytes(good[o..o + 8].try_into().unwrap()) as usize;
    // An interrupted copy.
    std::fs::write(b.dir.join("image.bin"), &good[..good.len() / 2]).unwrap();
    let out = b.run();
    assert_one_line_error(
        &out,
        &format!(
            "{}`: not a usable SquashFS image: truncated",
            image(&b).display()
        ),
    );
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
    // Garbage where the inode table is: squashfuse cannot read the root.
    let mut bad = good.clone();
    for byte in &mut bad[sb(64)..sb(72)] {
        *byte ^= 0x5a;
    }
    std::fs::write(b.dir.join("image.bin"), &bad).unwrap();
    let out = b.run();
    assert_one_line_error(&out, &format!("root.path `{}`", image(&b).display()));
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
    nothing_left(&b);
    // Not an image and not a directory.
    std::fs::write(b.dir.join("image.bin"), b"hsq").unwrap();
    assert_one_line_error(&b.run(), "is neither a directory nor a SquashFS image");
}

#[test]
fn an_unusable_dev_fuse_fails_create_naming_the_image() {
    // /dev/fuse replaced by /dev/null in a mount namespace hutch runs in
    // (as root, or as root of a user namespace for a plain user).
    let mut b = image_bundle(&["true"]);
    with_user_namespace(&mut b);
    let dir = b.dir.to_str().unwrap().to_string();
    let unshare = if uid() == 0 { "-m" } else { "-Urm" };
    let out = Command::new("unshare")
        .args([
            unshare,
            "sh",
            "-c",
            "mount --bind /dev/null /dev/fuse && exec \"$@\"",
            "sh",
        ])
        .arg(hutch_bin())
        .arg("--root")
        .arg(b.state_dir())
        .args(["run", "--bundle", &dir, &b.id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_one_line_error(&out, &format!("root.path `{}`", image(&b).display()));
    assert!(text(&out.stderr).contains("FUSE"), "{}", text(&out.stderr));
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
    nothing_left(&b);
}

/// Real root's xz images go through loop devices: without a usable
/// /dev/loop-control, create fails naming the image. Plain users go
/// through FUSE whatever /dev/loop-control is: their run works.
#[test]
fn no_usable_loop_control_fails_only_roots_create() {
    let b = image_bundle_comp(&["true"], "xz");
    let dir = b.dir.to_str().unwrap().to_string();
    let unshare = if uid() == 0 { "-m" } else { "-Urm" };
    let out = Command::new("unshare")
        .args([
            unshare,
            "sh",
            "-c",
            "mount --bind /dev/null /dev/loop-control && exec \"$@\"",
            "sh",
        ])
        .arg(hutch_bin())
        .arg("--root")
        .arg(b.state_dir())
        .args(["run", "--bundle", &dir, &b.id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if kernel_path("xz") {
        assert_one_line_error(
            &out,
            &format!(
                "root.path `{}`: find a free loop device",
                image(&b).display()
            ),
        );
    } else {
        assert_ok(&out);
    }
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
    nothing_left(&b);
}

/// Give root's container a user namespace (root of the container is
/// root, alone): the image's server then serves a mount made in a user
/// namespace, as for everyone else.
fn with_user_namespace(b: &mut Bundle) {
    if uid() == 0 {
        b.edit(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"type": "user"}));
            let map = serde_json::json!([{"containerID": 0, "hostID": 0, "size": 1}]);
            c["linux"]["uidMappings"] = map.clone();
            c["linux"]["gidMappings"] = map;
        });
    }
}

/// The name (`comm`) of a process.
fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// hutch serves the compressors it decodes itself and hands the others
/// (here xz and lzo) to squashfuse_ll, as it does every image with
/// `HUTCH_SQUASHFS_SERVER=squashfuse`. Whoever serves, the container reads
/// the same tree: a small file, the whole busybox binary (several
/// compressed blocks and a fragment tail), a directory of 300+ entries.
#[test]
fn hutch_serves_what_it_decodes_and_squashfuse_the_rest() {
    become_subreaper();
    let busybox_sum = {
        let b = Bundle::new(&["true"]);
        let out = Command::new("md5sum")
            .arg(b.rootfs().join("bin/busybox"))
            .output()
            .unwrap();
        text(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let cases: &[(&[&str], Option<&str>, &str)] = &[
        (&["-comp", "gzip"], None, "hutch-squashfs"),
        (&["-comp", "lz4"], None, "hutch-squashfs"),
        (&["-comp", "zstd"], None, "hutch-squashfs"),
        (&["-noD", "-noF"], None, "hutch-squashfs"),
        (&["-comp", "xz"], None, "squashfuse_ll"),
        (&["-comp", "lzo"], None, "squashfuse_ll"),
        (&["-comp", "gzip"], Some("squashfuse"), "squashfuse_ll"),
    ];
    for (opts, env, server) in cases {
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "cat /etc/msg; md5sum /bin/busybox; ls /many | wc -l",
        ]);
        std::fs::write(b.rootfs().join("etc/msg"), "from the image\n").unwrap();
        std::fs::create_dir(b.rootfs().join("many")).unwrap();
        for n in 0..321 {
            std::fs::write(b.rootfs().join(format!("many/entry-{n:04}")), n.to_string()).unwrap();
        }
        pack(&mut b, opts);
        with_user_namespace(&mut b);
        let dir = b.dir.to_str().unwrap().to_string();
        let pid_file = format!("{dir}/pid");
        let mut c = b.cmd(&["create", "--bundle", &dir, "--pid-file", &pid_file, &b.id]);
        if let Some(v) = env {
            c.env("HUTCH_SQUASHFS_SERVER", v);
        }
        // The container keeps these: files, not pipes that would not end.
        c.stdout(std::fs::File::create(b.dir.join("stdout")).unwrap());
        c.stderr(std::fs::File::create(b.dir.join("stderr")).unwrap());
        let status = c.status().unwrap();
        let errors = std::fs::read_to_string(b.dir.join("stderr")).unwrap();
        assert!(status.success(), "{opts:?} {env:?}: {errors}");
        let servers = servers_of(&image(&b));
        assert_eq!(servers.len(), 1, "{opts:?}: {servers:?}");
        assert_eq!(comm(servers[0]), *server, "{opts:?} {env:?}");
        if *server == "hutch-squashfs" {
            // Confined: no capabilities, a seccomp filter, no new privileges.
            let status = std::fs::read_to_string(format!("/proc/{}/status", servers[0])).unwrap();
            for line in [
                "CapEff:\t0000000000000000",
                "CapPrm:\t0000000000000000",
                "NoNewPrivs:\t1",
                "Seccomp:\t2",
            ] {
                assert!(status.lines().any(|l| l == line), "{line}: {status}");
            }
        }
        assert_ok(&b.hutch(&["start", &b.id]));
        assert_eq!(wait_exit(b.pid()), 0, "{opts:?}");
        let seen = std::fs::read_to_string(b.dir.join("stdout")).unwrap();
        let lines: Vec<&str> = seen.lines().collect();
        assert_eq!(lines.len(), 3, "{opts:?}: {seen}");
        assert_eq!(lines[0], "from the image", "{opts:?}");
        assert!(lines[1].starts_with(&busybox_sum), "{opts:?}: {seen}");
        assert_eq!(lines[2].trim(), "321", "{opts:?}");
        assert_ok(&b.hutch(&["delete", &b.id]));
        nothing_left(&b);
        assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
    }
}

/// A hostile image: the superblock and tables sound, a file's data
/// garbage. Reading that file fails in the container with EIO; the server
/// neither takes the container's root down nor hangs, and goes with it.
#[test]
fn damaged_data_blocks_fail_reads_not_the_container() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /etc/msg; cat /zz >/dev/null; echo status $?",
    ]);
    with_user_namespace(&mut b);
    std::fs::write(b.rootfs().join("etc/msg"), "from the image\n").unwrap();
    // 1 MiB of compressible text: several compressed blocks, which a sort
    // file puts first, right after the 96-byte superblock.
    let zz: String = (0..120_000).map(|n| format!("line {n}\n")).collect();
    std::fs::write(b.rootfs().join("zz"), &zz.as_bytes()[..1 << 20]).unwrap();
    std::fs::write(b.dir.join("sort"), "zz 32767\n").unwrap();
    let sort = b.dir.join("sort").to_str().unwrap().to_string();
    pack(&mut b, &["-sort", &sort]);
    let mut img = std::fs::read(image(&b)).unwrap();
    for byte in &mut img[104..600] {
        *byte = 0xa5;
    }
    std::fs::write(image(&b), &img).unwrap();
    let out = b.run();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "from the image\nstatus 1\n");
    assert!(
        text(&out.stderr).contains("Input/output error"),
        "{}",
        text(&out.stderr)
    );
    nothing_left(&b);
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
}

/// An xz image and no squashfuse in `PATH`: a plain user's create fails
/// with one line naming the image and what is missing, leaving nothing;
/// real root's goes through the kernel and needs no server.
#[test]
fn an_image_nobody_can_serve_fails_create_naming_it() {
    let b = image_bundle_comp(&["true"], "xz");
    let dir = b.dir.to_str().unwrap().to_string();
    let out = b
        .cmd(&["run", "--bundle", &dir, &b.id])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    if kernel_path("xz") {
        assert_ok(&out);
    } else {
        assert_one_line_error(
            &out,
            &format!(
                "root.path `{}` is a SquashFS image and its compressor (xz) is not one hutch decodes: no squashfuse_ll",
                image(&b).display()
            ),
        );
    }
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
    nothing_left(&b);
}
