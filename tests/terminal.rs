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

#[test]
fn a_terminal_container_gets_a_pty_through_the_console_socket() {
    become_subreaper();
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; stty size; tty",
    ]);
    b.edit(|c| {
        c["process"]["terminal"] = serde_json::json!(true);
        c["process"]["consoleSize"] = serde_json::json!({"height": 33, "width": 101});
    });
    let sock = b.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let dir = b.dir.to_str().unwrap().to_string();
    let pid_file = format!("{dir}/pid");
    // As buildah does: accept only after create returned.
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
    let got = text(&output).replace('\r', "");
    assert_eq!(got, "is-a-tty\n33 101\n/dev/console\n");
    drop(master);
    assert_ok(&b.hutch(&["delete", &b.id]));
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
