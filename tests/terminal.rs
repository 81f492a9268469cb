//! Terminals: `process.terminal` with `--console-socket`, as buildah run -t
//! and podman run -it use it.

mod common;

use common::*;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

/// Receive the fd hutch sends over the console socket, and its payload.
fn receive_fd(listener: &UnixListener) -> (OwnedFd, String) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .unwrap();
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            fd = fds.first().copied();
        }
    }
    let n = msg.bytes;
    let payload = String::from_utf8_lossy(&buf[..n]).into_owned();
    (own(fd.expect("no fd received")), payload)
}

/// Take ownership of a received fd.
fn own(fd: std::os::fd::RawFd) -> OwnedFd {
    // SAFETY: the fd arrived with SCM_RIGHTS just now; nothing else owns it.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

/// Run `b` with a terminal as buildah does (create with a console socket
/// accepted only after create returned, start, read the master until the
/// program exits): what the program wrote to its terminal.
fn run_with_terminal(b: &mut Bundle) -> String {
    become_subreaper();
    b.edit(|c| {
        c["process"]["terminal"] = serde_json::json!(true);
        c["process"]["consoleSize"] = serde_json::json!({"height": 33, "width": 101});
    });
    let sock = b.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let dir = b.dir.to_str().unwrap().to_string();
    let pid_file = format!("{dir}/pid");
    // The waiting container holds create's stdio until start: not pipes.
    let status = b
        .cmd(&[
            "create",
            "--bundle",
            &dir,
            "--pid-file",
            &pid_file,
            "--console-socket",
            sock.to_str().unwrap(),
            &b.id,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let (master, payload) = receive_fd(&listener);
    let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(v["type"], "terminal");
    assert_ok(&b.hutch(&["start", &b.id]));
    let mut output = Vec::new();
    // Reading a pty master ends with EIO once the slave side is closed.
    let _ = std::fs::File::from(master.try_clone().unwrap()).read_to_end(&mut output);
    assert_eq!(wait_exit(b.pid()), 0);
    drop(master);
    assert_ok(&b.hutch(&["delete", &b.id]));
    text(&output).replace('\r', "")
}

/// What the program checks of its terminal: stdio is a tty, its size, its
/// name (`/dev/pts/0` of the container's own devpts, as with runc and
/// crun), that `/dev/console` is the same pty, and that the pty belongs to
/// the process's user.
const CHECK_TTY: &str = "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; stty size; tty; \
    [ \"$(stat -c %t:%T /dev/console)\" = \"$(stat -c %t:%T $(tty))\" ] && echo console-is-it; \
    [ \"$(stat -c %u $(tty))\" = \"$(id -u)\" ] && echo owned";

const EXPECTED: &str = "is-a-tty\n33 101\n/dev/pts/0\nconsole-is-it\nowned\n";

#[test]
fn a_terminal_container_gets_a_pty_of_its_own_devpts() {
    let mut b = Bundle::new(&["/bin/sh", "-c", CHECK_TTY]);
    assert_eq!(run_with_terminal(&mut b), EXPECTED);
}

#[test]
fn a_terminal_in_the_minimal_dev_is_of_its_devpts_too() {
    let mut b = Bundle::new(&["/bin/sh", "-c", CHECK_TTY]);
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    });
    assert_eq!(run_with_terminal(&mut b), EXPECTED);
}

#[test]
fn a_terminal_belongs_to_a_user_other_than_root() {
    let mut b = Bundle::new(&["/bin/sh", "-c", CHECK_TTY]);
    if who() == Who::Root {
        // A user namespace whose root is not the host's: the pty is made
        // as its root, and given to the process's user 1000.
        b.edit(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"type": "user"}));
            let map = serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
            c["linux"]["uidMappings"] = map.clone();
            c["linux"]["gidMappings"] = map;
            c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
        });
        let root = b.rootfs();
        std::process::Command::new("chown")
            .args(["-R", "200000:200000"])
            .arg(&root)
            .status()
            .unwrap();
    }
    assert_eq!(run_with_terminal(&mut b), EXPECTED);
}

#[test]
fn a_terminal_without_console_socket_is_refused_at_create() {
    let mut b = Bundle::new(&["/bin/true"]);
    b.edit(|c| c["process"]["terminal"] = serde_json::json!(true));
    let dir = b.dir.to_str().unwrap().to_string();
    assert_one_line_error(
        &b.hutch(&["create", "--bundle", &dir, &b.id]),
        "--console-socket",
    );
    assert!(b.state_entries().is_empty());
}
