//! The protocol byte by byte: requests written to one end of a
//! `SOCK_SEQPACKET` socket pair (which keeps message boundaries, as
//! `/dev/fuse` does), the server run on the other end until it reads the
//! end of the stream, its replies read back.

use std::os::fd::{AsFd as _, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, Shutdown, SockFlag, SockType};

use super::memfs::{Data, MemFs};
use crate::fuse::proto::{init, op, Put as _};
use crate::fuse::{serve_with, Options, ROOT};

/// `unique` of the `INIT` request in these tests.
const INIT_ID: u64 = 1;

/// A request: `fuse_in_header` then `body`.
fn request(opcode: u32, unique: u64, node: u64, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.u32(40 + body.len() as u32);
    r.u32(opcode);
    r.u64(unique);
    r.u64(node);
    r.u32(0); // uid
    r.u32(0); // gid
    r.u32(1); // pid
    r.u16(0); // total_extlen
    r.u16(0); // padding
    r.extend_from_slice(body);
    r
}

/// `INIT` from a kernel that speaks `major.minor`, offers `flags` and a
/// readahead of 128 KiB: a 7.36+ `fuse_init_in` (64 bytes).
fn init_request(major: u32, minor: u32, flags: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.u32(major);
    b.u32(minor);
    b.u32(128 * 1024);
    b.u32(flags);
    b.resize(64, 0); // flags2, unused[11]
    request(op::INIT, INIT_ID, 0, &b)
}

/// A `fuse_read_in` for `READ` or `READDIR`.
fn read_body(offset: u64, size: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.u64(0); // fh
    b.u64(offset);
    b.u32(size);
    b.resize(40, 0); // read_flags, lock_owner, flags, padding
    b
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

#[derive(Debug)]
struct Reply {
    unique: u64,
    /// 0 or a negative errno.
    error: i32,
    body: Vec<u8>,
}

/// Root, `/etc` (node 2) with `hosts` (node 3, xattr `user.color`), and
/// `/data` (node 4): 3000 bytes.
fn small_tree() -> MemFs {
    let mut fs = MemFs::new(true);
    let etc = fs.add(ROOT, "etc", libc::S_IFDIR | 0o755, Data::Dir(Vec::new()));
    let hosts = fs.add(
        etc,
        "hosts",
        libc::S_IFREG | 0o644,
        Data::File(b"hi\n".to_vec()),
    );
    fs.set_xattr(hosts, "user.color", b"blue");
    let data = (0..3000u32).map(|i| (i % 256) as u8).collect();
    fs.add(ROOT, "data", libc::S_IFREG | 0o644, Data::File(data));
    fs
}

/// Serve `requests` to `fs` and return the replies, in order. The server
/// must end with `Ok` when the requests run out, having read them all.
fn exchange(fs: &mut MemFs, options: &Options, requests: &[Vec<u8>]) -> Vec<Reply> {
    let (replies, unread) = exchange_until_end(fs, options, requests);
    assert!(!unread, "the server stopped before the last request");
    replies
}

/// As [`exchange`], and whether the server left requests unread (it
/// closed its end with messages queued: the socket reports a reset).
fn exchange_until_end(
    fs: &mut MemFs,
    options: &Options,
    requests: &[Vec<u8>],
) -> (Vec<Reply>, bool) {
    let (ours, theirs): (OwnedFd, OwnedFd) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    for r in requests {
        nix::unistd::write(ours.as_fd(), r).unwrap();
    }
    socket::shutdown(std::os::fd::AsRawFd::as_raw_fd(&ours), Shutdown::Write).unwrap();
    serve_with(theirs, fs, options).expect("the server ends with Ok");
    let mut replies = Vec::new();
    let mut unread = false;
    let mut buf = vec![0u8; 2 << 20];
    loop {
        let n = match nix::unistd::read(ours.as_fd(), &mut buf) {
            // Reported once, before the replies still queued.
            Err(Errno::ECONNRESET) => {
                unread = true;
                continue;
            }
            Ok(0) => return (replies, unread),
            n => n.unwrap(),
        };
        assert!(n >= 16, "a reply of {n} bytes");
        assert_eq!(u32_at(&buf, 0) as usize, n, "the header's length");
        replies.push(Reply {
            error: u32_at(&buf, 4) as i32,
            unique: u64_at(&buf, 8),
            body: buf[16..n].to_vec(),
        });
    }
}

/// `requests` after an `INIT` of a 7.40 kernel offering every flag; the
/// replies after the `INIT`'s, each checked to answer its request.
fn after_init(fs: &mut MemFs, requests: &[Vec<u8>]) -> Vec<Reply> {
    let mut all = vec![init_request(7, 40, u32::MAX)];
    all.extend_from_slice(requests);
    let mut replies = exchange(fs, &Options::default(), &all);
    assert_eq!(replies.remove(0).error, 0, "INIT");
    replies
}

fn errno(e: Errno) -> i32 {
    -(e as i32)
}

#[test]
fn init_agrees_on_version_and_flags() {
    let options = Options {
        max_readahead: Some(64 * 1024),
    };
    let replies = exchange(
        &mut small_tree(),
        &options,
        &[init_request(7, 40, u32::MAX)],
    );
    let r = &replies[0];
    assert_eq!((r.unique, r.error, r.body.len()), (INIT_ID, 0, 64));
    assert_eq!((u32_at(&r.body, 0), u32_at(&r.body, 4)), (7, 38), "version");
    assert_eq!(u32_at(&r.body, 8), 64 * 1024, "max_readahead");
    let flags = u32_at(&r.body, 12);
    let wanted = init::ASYNC_READ
        | init::PARALLEL_DIROPS
        | init::CACHE_SYMLINKS
        | init::NO_OPEN_SUPPORT
        | init::NO_OPENDIR_SUPPORT
        | init::MAX_PAGES;
    assert_eq!(flags, wanted);
    assert_eq!(u32_at(&r.body, 20), 4096, "max_write");
    assert_eq!(u32_at(&r.body, 24), 1, "time_gran");
    assert_eq!(u32_at(&r.body, 28) & 0xffff, 256, "max_pages");

    // Only what the kernel offers; its readahead when none is asked for.
    let posix_locks = 1 << 1;
    let offered = init::ASYNC_READ | posix_locks;
    let replies = exchange(
        &mut small_tree(),
        &Options::default(),
        &[init_request(7, 40, offered)],
    );
    let r = &replies[0];
    assert_eq!(u32_at(&r.body, 8), 128 * 1024, "max_readahead");
    assert_eq!(u32_at(&r.body, 12), init::ASYNC_READ, "flags");
    assert_eq!(
        u32_at(&r.body, 28) & 0xffff,
        0,
        "max_pages without MAX_PAGES"
    );
}

#[test]
fn an_older_kernel_gets_its_minor_and_reply_size() {
    let replies = exchange(
        &mut small_tree(),
        &Options::default(),
        &[init_request(7, 22, 0)],
    );
    assert_eq!(replies[0].body.len(), 24);
    assert_eq!(u32_at(&replies[0].body, 4), 22);
}

#[test]
fn a_newer_major_gets_ours_and_may_ask_again() {
    let requests = [init_request(8, 0, 0), init_request(7, 38, 0)];
    let replies = exchange(&mut small_tree(), &Options::default(), &requests);
    assert_eq!(replies[0].error, 0);
    assert_eq!(replies[0].body.len(), 8);
    assert_eq!(u32_at(&replies[0].body, 0), 7);
    assert_eq!(replies[1].body.len(), 64);
}

#[test]
fn lookup_answers_an_absent_name_with_a_cacheable_node_0() {
    let replies = after_init(
        &mut small_tree(),
        &[
            request(op::LOOKUP, 2, ROOT, b"etc\0"),
            request(op::LOOKUP, 3, ROOT, b"nope\0"),
            request(op::LOOKUP, 4, 3, b"x\0"),
        ],
    );
    let etc = &replies[0];
    assert_eq!((etc.unique, etc.error, etc.body.len()), (2, 0, 128));
    assert_eq!(u64_at(&etc.body, 0), 2, "nodeid");
    assert_eq!(u64_at(&etc.body, 40), super::memfs::ino(2), "attr.ino");
    assert_eq!(
        u32_at(&etc.body, 40 + 60),
        libc::S_IFDIR | 0o755,
        "attr.mode"
    );
    let nope = &replies[1];
    assert_eq!((nope.error, nope.body.len()), (0, 128));
    assert_eq!(u64_at(&nope.body, 0), 0, "nodeid");
    assert!(u64_at(&nope.body, 16) >= 24 * 3600, "entry_valid");
    // A lookup in a file is an error, not a negative entry.
    assert_eq!(replies[2].error, errno(Errno::ENOTDIR));
}

#[test]
fn a_malformed_request_gets_eio() {
    let mut wrong_len = request(op::GETATTR, 5, ROOT, &[0; 16]);
    wrong_len[0] += 1;
    let replies = after_init(
        &mut small_tree(),
        &[
            request(op::LOOKUP, 2, ROOT, b"no-nul"),
            request(op::READ, 3, 4, &[0; 10]),
            request(op::GETXATTR, 4, 3, &[0; 4]),
            wrong_len,
            request(op::GETATTR, 6, ROOT, &[0; 16]),
        ],
    );
    let got: Vec<_> = replies.iter().map(|r| (r.unique, r.error)).collect();
    let eio = errno(Errno::EIO);
    assert_eq!(got, [(2, eio), (3, eio), (4, eio), (5, eio), (6, 0)]);
    // And before INIT, nothing but INIT is answered.
    let replies = exchange(
        &mut small_tree(),
        &Options::default(),
        &[request(op::GETATTR, 9, ROOT, &[0; 16])],
    );
    assert_eq!(replies[0].error, eio);
}

#[test]
fn forget_and_interrupt_get_no_reply_and_destroy_ends_the_loop() {
    let mut forget = Vec::new();
    forget.u64(1);
    let mut batch = Vec::new();
    batch.u32(1);
    batch.u32(0);
    batch.u64(2);
    batch.u64(1);
    let requests = [
        init_request(7, 40, u32::MAX),
        request(op::FORGET, 2, 2, &forget),
        request(op::BATCH_FORGET, 3, 0, &batch),
        request(op::INTERRUPT, 4, 0, &7u64.to_ne_bytes()),
        request(op::GETATTR, 5, ROOT, &[0; 16]),
        request(op::DESTROY, 6, 0, &[]),
        request(op::GETATTR, 7, ROOT, &[0; 16]),
    ];
    let (replies, unread) = exchange_until_end(&mut small_tree(), &Options::default(), &requests);
    let got: Vec<_> = replies
        .iter()
        .map(|r| (r.unique, r.error, r.body.len()))
        .collect();
    assert_eq!(got, [(INIT_ID, 0, 64), (5, 0, 104), (6, 0, 0)]);
    assert!(unread, "the request after DESTROY was read");
}

#[test]
fn writes_are_refused_and_unknown_ops_unsupported() {
    let replies = after_init(
        &mut small_tree(),
        &[
            request(op::MKDIR, 2, ROOT, b"\0\0\0\0\0\0\0\0d\0"),
            request(op::WRITE, 3, 4, &[0; 44]),
            request(op::SETXATTR, 4, 3, &[0; 20]),
            request(op::UNLINK, 5, ROOT, b"data\0"),
            request(op::FLUSH, 6, 4, &[0; 24]),
            request(op::ACCESS, 7, 4, &[0; 8]),
            request(9999, 8, ROOT, &[]),
        ],
    );
    let got: Vec<_> = replies.iter().map(|r| r.error).collect();
    let (rofs, nosys) = (errno(Errno::EROFS), errno(Errno::ENOSYS));
    assert_eq!(got, [rofs, rofs, rofs, rofs, nosys, nosys, nosys]);
}

#[test]
fn open_is_declined_only_when_the_kernel_can_do_without() {
    let open = |flags| {
        let requests = [
            init_request(7, 38, flags),
            request(op::OPEN, 2, 4, &[0; 8]),
            request(op::OPENDIR, 3, ROOT, &[0; 8]),
        ];
        exchange(&mut small_tree(), &Options::default(), &requests)
    };
    let declined = open(init::NO_OPEN_SUPPORT | init::NO_OPENDIR_SUPPORT);
    assert_eq!(declined[1].error, errno(Errno::ENOSYS));
    assert_eq!(declined[2].error, errno(Errno::ENOSYS));
    let opened = open(0);
    assert_eq!((opened[1].error, opened[1].body.len()), (0, 16));
    assert_eq!(u32_at(&opened[1].body, 8), 1 << 1, "FOPEN_KEEP_CACHE");
    assert_eq!(
        u32_at(&opened[2].body, 8),
        1 << 1 | 1 << 3,
        "and FOPEN_CACHE_DIR"
    );
}

#[test]
fn read_returns_at_most_the_size_asked_for() {
    let replies = after_init(
        &mut small_tree(),
        &[
            request(op::READ, 2, 4, &read_body(1000, 100)),
            request(op::READ, 3, 4, &read_body(2900, 4096)),
            request(op::READ, 4, 4, &read_body(5000, 4096)),
            request(op::READ, 5, 2, &read_body(0, 4096)),
        ],
    );
    let want: Vec<u8> = (1000..1100u32).map(|i| (i % 256) as u8).collect();
    assert_eq!(replies[0].body, want);
    assert_eq!(replies[1].body.len(), 100, "short at the end");
    assert_eq!(replies[2].body.len(), 0, "past the end");
    assert_eq!(replies[3].error, errno(Errno::EISDIR));
}

/// The names and cookies of a `READDIR` reply's records.
fn dirents(body: &[u8]) -> Vec<(String, u64)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < body.len() {
        let off = u64_at(body, at + 8);
        let len = u32_at(body, at + 16) as usize;
        out.push((
            String::from_utf8_lossy(&body[at + 24..at + 24 + len]).into(),
            off,
        ));
        at += (24 + len + 7) & !7;
    }
    out
}

#[test]
fn readdir_fills_the_size_and_resumes_at_a_cookie() {
    // `.` and `..` take 32 bytes each, `etc` 32, `data` 32: 80 bytes hold two.
    let first = after_init(
        &mut small_tree(),
        &[request(op::READDIR, 2, ROOT, &read_body(0, 80))],
    );
    let names = dirents(&first[0].body);
    assert_eq!(names, [(".".to_string(), 1), ("..".to_string(), 2)]);
    let rest = after_init(
        &mut small_tree(),
        &[request(op::READDIR, 2, ROOT, &read_body(2, 4096))],
    );
    let names = dirents(&rest[0].body);
    assert_eq!(names, [("etc".to_string(), 3), ("data".to_string(), 4)]);
}

#[test]
fn xattrs_are_sized_then_read() {
    let get = |size: u32, name: &[u8]| {
        let mut b = Vec::new();
        b.u32(size);
        b.u32(0);
        b.extend_from_slice(name);
        b
    };
    let replies = after_init(
        &mut small_tree(),
        &[
            request(op::GETXATTR, 2, 3, &get(0, b"user.color\0")),
            request(op::GETXATTR, 3, 3, &get(2, b"user.color\0")),
            request(op::GETXATTR, 4, 3, &get(64, b"user.color\0")),
            request(op::GETXATTR, 5, 3, &get(64, b"user.nope\0")),
            request(op::LISTXATTR, 6, 3, &[0; 8]),
            request(op::LISTXATTR, 7, 3, &get(64, b"")),
        ],
    );
    assert_eq!((replies[0].error, u32_at(&replies[0].body, 0)), (0, 4));
    assert_eq!(replies[0].body.len(), 8, "fuse_getxattr_out");
    assert_eq!(replies[1].error, errno(Errno::ERANGE));
    assert_eq!(replies[2].body, b"blue");
    assert_eq!(replies[3].error, errno(Errno::ENODATA));
    assert_eq!(u32_at(&replies[4].body, 0), 11);
    assert_eq!(replies[5].body, b"user.color\0");
}

#[test]
fn statfs_and_readlink() {
    let mut fs = small_tree();
    let link = fs.add(
        ROOT,
        "l",
        libc::S_IFLNK | 0o777,
        Data::Link(b"etc/hosts".to_vec()),
    );
    let replies = after_init(
        &mut fs,
        &[
            request(op::STATFS, 2, ROOT, &[]),
            request(op::READLINK, 3, link, &[]),
            request(op::READLINK, 4, 4, &[]),
        ],
    );
    assert_eq!(replies[0].body.len(), 80);
    assert_eq!(u64_at(&replies[0].body, 0), 1234, "blocks");
    assert_eq!(u32_at(&replies[0].body, 40), 4096, "bsize");
    assert_eq!(u32_at(&replies[0].body, 44), 255, "namelen");
    assert_eq!(replies[1].body, b"etc/hosts");
    assert_eq!(replies[2].error, errno(Errno::EINVAL));
}
