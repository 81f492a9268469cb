//! The FUSE wire format: the opcodes, flags and structures of the
//! kernel's `include/uapi/linux/fuse.h` that a read-only server needs,
//! read from and written to byte buffers field by field.
//!
//! The structures are in the host's byte order (the kernel and the server
//! share a machine), hence `from_ne_bytes`/`to_ne_bytes`.

use super::Attr;

/// The protocol version this server speaks: 7.38 (Linux 6.2). Later
/// minors add nothing a read-only server without extensions uses.
pub const MAJOR: u32 = 7;
pub const MINOR: u32 = 38;

/// `struct fuse_in_header`: the start of every request.
pub const IN_HEADER_LEN: usize = 40;
/// `struct fuse_out_header`: the start of every reply.
pub const OUT_HEADER_LEN: usize = 16;

/// Request opcodes (`enum fuse_opcode`).
pub mod op {
    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2;
    pub const GETATTR: u32 = 3;
    pub const SETATTR: u32 = 4;
    pub const READLINK: u32 = 5;
    pub const SYMLINK: u32 = 6;
    pub const MKNOD: u32 = 8;
    pub const MKDIR: u32 = 9;
    pub const UNLINK: u32 = 10;
    pub const RMDIR: u32 = 11;
    pub const RENAME: u32 = 12;
    pub const LINK: u32 = 13;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const SETXATTR: u32 = 21;
    pub const GETXATTR: u32 = 22;
    pub const LISTXATTR: u32 = 23;
    pub const REMOVEXATTR: u32 = 24;
    pub const FLUSH: u32 = 25;
    pub const INIT: u32 = 26;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const ACCESS: u32 = 34;
    pub const CREATE: u32 = 35;
    pub const INTERRUPT: u32 = 36;
    pub const DESTROY: u32 = 38;
    pub const NOTIFY_REPLY: u32 = 41;
    pub const BATCH_FORGET: u32 = 42;
    pub const FALLOCATE: u32 = 43;
    pub const RENAME2: u32 = 45;
    pub const COPY_FILE_RANGE: u32 = 47;
    pub const SETUPMAPPING: u32 = 48;
    pub const REMOVEMAPPING: u32 = 49;
    pub const TMPFILE: u32 = 51;
}

/// `FUSE_INIT` flags (`fuse_init_in.flags`, `fuse_init_out.flags`).
pub mod init {
    /// Reads of one file may be sent concurrently (readahead with
    /// several requests in flight).
    pub const ASYNC_READ: u32 = 1 << 0;
    /// `OPEN` answered with `ENOSYS` means "no open needed" from then on.
    pub const NO_OPEN_SUPPORT: u32 = 1 << 17;
    /// Lookups and readdirs in one directory need not be serialised.
    pub const PARALLEL_DIROPS: u32 = 1 << 18;
    /// `fuse_init_out.max_pages` is valid.
    pub const MAX_PAGES: u32 = 1 << 22;
    /// The kernel caches symlink targets in its page cache.
    pub const CACHE_SYMLINKS: u32 = 1 << 23;
    /// `OPENDIR` answered with `ENOSYS` means "no opendir needed".
    pub const NO_OPENDIR_SUPPORT: u32 = 1 << 24;
}

/// `fuse_open_out.open_flags`: keep the page cache of the file across
/// opens (the image never changes).
pub const FOPEN_KEEP_CACHE: u32 = 1 << 1;
/// `fuse_open_out.open_flags`: the kernel may cache the directory listing.
pub const FOPEN_CACHE_DIR: u32 = 1 << 3;

/// The reply sizes that depend on the negotiated minor version: older
/// minors had shorter structures, and the kernel checks the length.
pub fn init_out_len(minor: u32) -> usize {
    match minor {
        0..=4 => 8,
        5..=22 => 24,
        _ => 64,
    }
}

/// `struct fuse_entry_out`: 120 bytes before 7.9, 128 since.
pub fn entry_out_len(minor: u32) -> usize {
    if minor < 9 {
        120
    } else {
        128
    }
}

/// `struct fuse_attr_out`: 96 bytes before 7.9, 104 since.
pub fn attr_out_len(minor: u32) -> usize {
    if minor < 9 {
        96
    } else {
        104
    }
}

/// `struct fuse_in_header`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InHeader {
    /// The length of the whole request, header included.
    pub len: u32,
    pub opcode: u32,
    /// The id the reply must carry.
    pub unique: u64,
    /// The node the request is about.
    pub node: u64,
}

impl InHeader {
    /// The header at the start of `buf`, if it is long enough.
    pub fn parse(buf: &[u8]) -> Option<InHeader> {
        let mut r = Body::new(buf);
        let len = r.u32()?;
        let opcode = r.u32()?;
        let unique = r.u64()?;
        let node = r.u64()?;
        // uid, gid, pid, total_extlen, padding: nothing a read-only tree
        // with default_permissions looks at.
        r.take(IN_HEADER_LEN - 24)?;
        Some(InHeader {
            len,
            opcode,
            unique,
            node,
        })
    }
}

/// A cursor over a request's body: each read takes the next field, or
/// `None` when the body is too short (a malformed request).
pub struct Body<'a> {
    rest: &'a [u8],
}

impl<'a> Body<'a> {
    pub fn new(buf: &'a [u8]) -> Body<'a> {
        Body { rest: buf }
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_ne_bytes(self.take(4)?.try_into().ok()?))
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_ne_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A NUL-terminated name, without its NUL.
    pub fn cstr(&mut self) -> Option<&'a [u8]> {
        let end = self.rest.iter().position(|&b| b == 0)?;
        let name = self.take(end)?;
        self.take(1)?;
        Some(name)
    }
}

/// `struct fuse_out_header` for a reply of `body_len` bytes; `error` is 0
/// or a negative errno.
pub fn out_header(unique: u64, error: i32, body_len: usize) -> [u8; OUT_HEADER_LEN] {
    let mut h = [0u8; OUT_HEADER_LEN];
    let len = (OUT_HEADER_LEN + body_len) as u32;
    h[0..4].copy_from_slice(&len.to_ne_bytes());
    h[4..8].copy_from_slice(&error.to_ne_bytes());
    h[8..16].copy_from_slice(&unique.to_ne_bytes());
    h
}

/// Appending a field to a structure being built, in the host's byte order.
pub trait Put {
    fn u16(&mut self, v: u16);
    fn u32(&mut self, v: u32);
    fn u64(&mut self, v: u64);
}

impl Put for Vec<u8> {
    fn u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_ne_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_ne_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_ne_bytes());
    }
}

/// `struct fuse_init_out`, cut to the length the `minor` expects.
pub struct InitOut {
    pub minor: u32,
    pub max_readahead: u32,
    pub flags: u32,
    pub max_write: u32,
    pub time_gran: u32,
    pub max_pages: u16,
}

impl InitOut {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.u32(MAJOR);
        out.u32(self.minor);
        out.u32(self.max_readahead);
        out.u32(self.flags);
        out.u16(0); // max_background: the kernel's default
        out.u16(0); // congestion_threshold: the kernel's default
        out.u32(self.max_write);
        out.u32(self.time_gran);
        out.u16(self.max_pages);
        out.u16(0); // map_alignment (DAX only)
        out.u32(0); // flags2: none of the extended flags
        out.resize(start + 64, 0); // unused[7]
        out.truncate(start + init_out_len(self.minor));
    }
}

/// `struct fuse_attr` (88 bytes). atime = ctime = mtime: an image has one
/// time per inode.
pub fn put_attr(out: &mut Vec<u8>, a: &Attr) {
    out.u64(a.ino);
    out.u64(a.size);
    out.u64(a.blocks);
    for _ in 0..3 {
        out.u64(a.mtime);
    }
    for _ in 0..3 {
        out.u32(0); // atimensec, mtimensec, ctimensec
    }
    out.u32(a.mode);
    out.u32(a.nlink);
    out.u32(a.uid);
    out.u32(a.gid);
    out.u32(a.rdev);
    out.u32(0); // blksize: the kernel's default
    out.u32(0); // flags
}

/// `struct fuse_entry_out` for `node` (0: a negative entry, cached for
/// `valid` seconds like a positive one), cut to the minor's length.
pub fn put_entry_out(out: &mut Vec<u8>, minor: u32, node: u64, attr: &Attr, valid: u64) {
    let start = out.len();
    out.u64(node);
    out.u64(0); // generation: node ids are never reused
    out.u64(valid); // entry_valid
    out.u64(valid); // attr_valid
    out.u32(0); // entry_valid_nsec
    out.u32(0); // attr_valid_nsec
    put_attr(out, attr);
    out.truncate(start + entry_out_len(minor));
}

/// `struct fuse_attr_out`, cut to the minor's length.
pub fn put_attr_out(out: &mut Vec<u8>, minor: u32, attr: &Attr, valid: u64) {
    let start = out.len();
    out.u64(valid);
    out.u32(0); // attr_valid_nsec
    out.u32(0); // dummy
    put_attr(out, attr);
    out.truncate(start + attr_out_len(minor));
}

/// `struct fuse_open_out`: no file handle (the node id is enough).
pub fn put_open_out(out: &mut Vec<u8>, open_flags: u32) {
    out.u64(0); // fh
    out.u32(open_flags);
    out.u32(0); // padding
}

/// `struct fuse_getxattr_out`: the size a value or list would need.
pub fn put_getxattr_out(out: &mut Vec<u8>, size: u32) {
    out.u32(size);
    out.u32(0); // padding
}

/// `struct fuse_kstatfs` (80 bytes): nothing free on a read-only image.
pub fn put_statfs(out: &mut Vec<u8>, s: &super::StatFs) {
    out.u64(s.blocks);
    out.u64(0); // bfree
    out.u64(0); // bavail
    out.u64(s.files);
    out.u64(0); // ffree
    out.u32(s.block_size); // bsize
    out.u32(s.name_max); // namelen
    out.u32(s.block_size); // frsize
    out.u32(0); // padding
    out.resize(out.len() + 6 * 4, 0); // spare[6]
}

/// The length of a `struct fuse_dirent` record for a name of `name_len`
/// bytes: 24 bytes of fields, the name, padded to 8 bytes.
pub fn dirent_len(name_len: usize) -> usize {
    (24 + name_len + 7) & !7
}

/// Append a `struct fuse_dirent` record for `e`.
pub fn put_dirent(out: &mut Vec<u8>, e: &super::DirEntry<'_>) {
    let start = out.len();
    out.u64(e.ino);
    out.u64(e.next); // off: the cookie that resumes after this entry
    out.u32(e.name.len() as u32);
    out.u32(e.kind);
    out.extend_from_slice(e.name);
    out.resize(start + dirent_len(e.name.len()), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structures_have_the_kernels_sizes() {
        let a = Attr::default();
        let mut v = Vec::new();
        put_attr(&mut v, &a);
        assert_eq!(v.len(), 88);
        v.clear();
        put_entry_out(&mut v, MINOR, 5, &a, 1);
        assert_eq!(v.len(), 128);
        v.clear();
        put_entry_out(&mut v, 8, 5, &a, 1);
        assert_eq!(v.len(), 120);
        v.clear();
        put_attr_out(&mut v, MINOR, &a, 1);
        assert_eq!(v.len(), 104);
        v.clear();
        put_statfs(&mut v, &Default::default());
        assert_eq!(v.len(), 80);
        for (minor, len) in [(3, 8), (22, 24), (23, 64), (MINOR, 64)] {
            v.clear();
            InitOut {
                minor,
                max_readahead: 0,
                flags: 0,
                max_write: 4096,
                time_gran: 1,
                max_pages: 256,
            }
            .encode(&mut v);
            assert_eq!(v.len(), len, "minor {minor}");
        }
    }

    #[test]
    fn dirents_are_padded_to_8_bytes() {
        let mut v = Vec::new();
        let e = super::super::DirEntry {
            ino: 7,
            next: 3,
            kind: 4,
            name: b"abc",
        };
        put_dirent(&mut v, &e);
        assert_eq!(v.len(), 32);
        assert_eq!(&v[0..8], &7u64.to_ne_bytes());
        assert_eq!(&v[8..16], &3u64.to_ne_bytes());
        assert_eq!(&v[16..20], &3u32.to_ne_bytes());
        assert_eq!(&v[20..24], &4u32.to_ne_bytes());
        assert_eq!(&v[24..27], b"abc");
        assert_eq!(&v[27..], &[0; 5]);
        assert_eq!(dirent_len(8), 32);
        assert_eq!(dirent_len(9), 40);
    }

    #[test]
    fn a_short_body_reads_as_none() {
        let bytes = [&1u32.to_ne_bytes()[..], &[2, 0]].concat();
        let mut b = Body::new(&bytes);
        assert_eq!(b.u32(), Some(1));
        assert_eq!(b.u32(), None);
        let mut b = Body::new(b"name\0rest");
        assert_eq!(b.cstr(), Some(&b"name"[..]));
        assert_eq!(b.cstr(), None, "no NUL left");
        assert_eq!(InHeader::parse(&[0; 39]), None);
    }
}
