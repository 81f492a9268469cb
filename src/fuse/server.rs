//! The server loop: read a request from the `/dev/fuse` connection,
//! answer it from the [`Filesystem`], write the reply, until the
//! filesystem is unmounted.
//!
//! One process, one thread, one request at a time. The request buffer and
//! the reply body are allocated once and reused, so a steady state
//! allocates nothing of its own. Every reply is a single `write`/`writev`
//! (the kernel takes a reply only whole).
//!
//! The tree is an immutable image, so everything the kernel may cache it
//! is told to cache for a long time: entries, attributes, negative
//! lookups, symlink targets, file pages and directory listings.

use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;

use super::proto::{self, init, op, Body, InHeader, InitOut};
use super::{Attr, Filesystem};

/// How long the kernel may trust an entry or attribute (seconds): a year,
/// as the image never changes under the mount.
const TTL: u64 = 365 * 24 * 3600;

/// The largest write the kernel may send. Writes are refused (`EROFS`), so
/// the smallest the kernel accepts.
const MAX_WRITE: u32 = 4096;

/// The largest read, in pages: 256 pages = 1 MiB per `READ` request.
const MAX_PAGES: u16 = 256;

/// The request buffer: the kernel wants room for a header, a
/// `fuse_write_in` and `max_write` bytes, and at least 8 KiB; names and
/// xattr names are far shorter than this.
const REQUEST_BUFFER: usize = 64 * 1024 + 4096;

/// The `FUSE_INIT` flags this server asks for, when the kernel offers them.
const WANTED: u32 = init::ASYNC_READ
    | init::PARALLEL_DIROPS
    | init::CACHE_SYMLINKS
    | init::NO_OPEN_SUPPORT
    | init::NO_OPENDIR_SUPPORT
    | init::MAX_PAGES;

/// Tunables of a connection.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The readahead to ask for, in bytes; `None` keeps what the kernel
    /// offers (it never takes more).
    pub max_readahead: Option<u32>,
}

/// Serve `fs` on the mounted FUSE connection `fuse` with default
/// [`Options`] until the filesystem is unmounted.
pub fn serve(fuse: OwnedFd, fs: &mut impl Filesystem) -> std::io::Result<()> {
    serve_with(fuse, fs, &Options::default())
}

/// Serve `fs` on the mounted FUSE connection `fuse` until it ends: the
/// filesystem is unmounted or the connection aborted (`ENODEV`), or the
/// kernel sends `DESTROY`. Returns an error only when the connection
/// itself fails.
pub fn serve_with(
    fuse: OwnedFd,
    fs: &mut impl Filesystem,
    options: &Options,
) -> std::io::Result<()> {
    let mut session = Session {
        fuse,
        options: options.clone(),
        minor: None,
        flags: 0,
        out: Vec::new(),
    };
    let mut request = vec![0u8; REQUEST_BUFFER];
    loop {
        let n = match nix::unistd::read(session.fuse.as_fd(), &mut request) {
            // Unmounted or aborted: the end of the connection. (A read of
            // 0 never comes from /dev/fuse; a socket's end, in tests.)
            Err(Errno::ENODEV) | Ok(0) => return Ok(()),
            // A signal, or a request withdrawn (interrupted) before it
            // could be read.
            Err(Errno::EINTR | Errno::ENOENT | Errno::EAGAIN) => continue,
            Err(e) => return Err(std::io::Error::other(format!("read from /dev/fuse: {e}"))),
            Ok(n) => n,
        };
        if session.handle(fs, &request[..n])? == Flow::Stop {
            return Ok(());
        }
    }
}

/// Whether the loop goes on after a request.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// What a request is answered with, when it is not an error.
enum Answer {
    /// A reply with the body built in `Session::out` (maybe empty).
    Body,
    /// No reply: the kernel expects none (`FORGET`, `INTERRUPT`, ...).
    None,
    /// A reply with the body in `Session::out`, then the end (`DESTROY`).
    Last,
}

/// A malformed request (too short for its operation) is answered `EIO`.
fn need<T>(field: Option<T>) -> Result<T, Errno> {
    field.ok_or(Errno::EIO)
}

/// One connection's state.
struct Session {
    fuse: OwnedFd,
    options: Options,
    /// The negotiated minor version, once `INIT` is answered.
    minor: Option<u32>,
    /// The negotiated `FUSE_INIT` flags.
    flags: u32,
    /// The reply body, reused for every request (`READ` data goes here).
    out: Vec<u8>,
}

impl Session {
    /// Answer one request.
    fn handle(&mut self, fs: &mut impl Filesystem, request: &[u8]) -> std::io::Result<Flow> {
        let Some(h) = InHeader::parse(request) else {
            // Without a header there is no `unique` to answer; the kernel
            // never sends this.
            return Err(std::io::Error::other(format!(
                "a FUSE request of {} bytes, shorter than its header",
                request.len()
            )));
        };
        self.out.clear();
        let answer = if h.len as usize != request.len() {
            Err(Errno::EIO)
        } else {
            self.dispatch(fs, &h, Body::new(&request[proto::IN_HEADER_LEN..]))
        };
        match answer {
            Ok(Answer::None) => Ok(Flow::Continue),
            Ok(Answer::Body) => self.reply(h.unique, 0).map(|()| Flow::Continue),
            Ok(Answer::Last) => self.reply(h.unique, 0).map(|()| Flow::Stop),
            Err(e) => {
                self.out.clear();
                self.reply(h.unique, -(e as i32)).map(|()| Flow::Continue)
            }
        }
    }

    /// Write the reply to request `unique`: `error` (0 or a negative
    /// errno) and the body in `self.out`, in one `writev`.
    fn reply(&self, unique: u64, error: i32) -> std::io::Result<()> {
        let header = proto::out_header(unique, error, self.out.len());
        let iov = [IoSlice::new(&header), IoSlice::new(&self.out)];
        let iov = if self.out.is_empty() {
            &iov[..1]
        } else {
            &iov[..]
        };
        match nix::sys::uio::writev(self.fuse.as_fd(), iov) {
            // ENOENT: the request was interrupted and is gone. ENODEV:
            // the connection ended; the next read says so.
            Ok(_) | Err(Errno::ENOENT | Errno::ENODEV) => Ok(()),
            Err(e) => Err(std::io::Error::other(format!(
                "write a reply to /dev/fuse: {e}"
            ))),
        }
    }

    /// The negotiated minor version; `EIO` for a request before `INIT`.
    fn minor(&self) -> Result<u32, Errno> {
        self.minor.ok_or(Errno::EIO)
    }

    fn dispatch(
        &mut self,
        fs: &mut impl Filesystem,
        h: &InHeader,
        mut body: Body<'_>,
    ) -> Result<Answer, Errno> {
        // Before INIT, nothing but INIT is answered (and what needs no
        // answer is not).
        let unanswered = matches!(
            h.opcode,
            op::FORGET | op::BATCH_FORGET | op::INTERRUPT | op::NOTIFY_REPLY
        );
        if self.minor.is_none() && h.opcode != op::INIT && !unanswered {
            return Err(Errno::EIO);
        }
        match h.opcode {
            op::INIT => self.init(&mut body),
            op::LOOKUP => self.lookup(fs, h.node, &mut body),
            op::GETATTR => self.getattr(fs, h.node),
            op::READLINK => {
                self.out.extend_from_slice(&fs.readlink(h.node)?);
                Ok(Answer::Body)
            }
            op::READ => self.read(fs, h.node, &mut body),
            op::READDIR => self.readdir(fs, h.node, &mut body),
            op::STATFS => {
                proto::put_statfs(&mut self.out, &fs.statfs());
                Ok(Answer::Body)
            }
            op::GETXATTR => self.getxattr(fs, h.node, &mut body),
            op::LISTXATTR => self.listxattr(fs, h.node, &mut body),
            op::OPEN => self.open(init::NO_OPEN_SUPPORT, proto::FOPEN_KEEP_CACHE),
            op::OPENDIR => self.open(
                init::NO_OPENDIR_SUPPORT,
                proto::FOPEN_KEEP_CACHE | proto::FOPEN_CACHE_DIR,
            ),
            // Nothing is held per open file.
            op::RELEASE | op::RELEASEDIR => Ok(Answer::Body),
            // ENOSYS: the kernel stops sending flushes (there is nothing
            // to flush) and, with default_permissions, access checks.
            op::FLUSH | op::ACCESS => Err(Errno::ENOSYS),
            // The kernel expects no reply to these. Node ids are never
            // reused, so forgetting one needs nothing; a request is never
            // long enough to be worth interrupting.
            _ if unanswered => Ok(Answer::None),
            op::DESTROY => Ok(Answer::Last),
            op::SETATTR
            | op::SYMLINK
            | op::MKNOD
            | op::MKDIR
            | op::UNLINK
            | op::RMDIR
            | op::RENAME
            | op::RENAME2
            | op::LINK
            | op::WRITE
            | op::CREATE
            | op::SETXATTR
            | op::REMOVEXATTR
            | op::FALLOCATE
            | op::COPY_FILE_RANGE
            | op::SETUPMAPPING
            | op::REMOVEMAPPING
            | op::TMPFILE => Err(Errno::EROFS),
            // fsync, locks, ioctl, poll, bmap, lseek, statx, ...: the
            // kernel has a fallback for each, or the caller gets ENOSYS.
            _ => Err(Errno::ENOSYS),
        }
    }

    /// `INIT`: agree on a protocol version and on the features both sides
    /// have. A kernel with a newer major gets only ours and asks again.
    fn init(&mut self, body: &mut Body<'_>) -> Result<Answer, Errno> {
        let major = need(body.u32())?;
        let minor = need(body.u32())?;
        let max_readahead = need(body.u32())?;
        let offered = need(body.u32())?;
        if major > proto::MAJOR {
            use proto::Put as _;
            self.out.u32(proto::MAJOR);
            self.out.u32(proto::MINOR);
            return Ok(Answer::Body);
        }
        if major < proto::MAJOR {
            return Err(Errno::EPROTO);
        }
        let minor = minor.min(proto::MINOR);
        let flags = offered & WANTED;
        let max_readahead = self
            .options
            .max_readahead
            .map_or(max_readahead, |want| want.min(max_readahead));
        InitOut {
            minor,
            max_readahead,
            flags,
            max_write: MAX_WRITE,
            time_gran: 1,
            max_pages: if flags & init::MAX_PAGES != 0 {
                MAX_PAGES
            } else {
                0
            },
        }
        .encode(&mut self.out);
        self.minor = Some(minor);
        self.flags = flags;
        Ok(Answer::Body)
    }

    /// `LOOKUP`: the child `name` of `parent`. An absent name is answered
    /// with node id 0 and a timeout, which the kernel caches as a negative
    /// entry: the next lookup of the name (`PATH` searches, the dynamic
    /// linker probing library directories) does not come here.
    fn lookup(
        &mut self,
        fs: &mut impl Filesystem,
        parent: u64,
        body: &mut Body<'_>,
    ) -> Result<Answer, Errno> {
        let minor = self.minor()?;
        let name = need(body.cstr())?;
        match fs.lookup(parent, name) {
            Ok(entry) => proto::put_entry_out(&mut self.out, minor, entry.node, &entry.attr, TTL),
            Err(Errno::ENOENT) => {
                proto::put_entry_out(&mut self.out, minor, 0, &Attr::default(), TTL)
            }
            Err(e) => return Err(e),
        }
        Ok(Answer::Body)
    }

    /// `GETATTR`: the node's attributes (its `fuse_getattr_in` names a
    /// file handle, which this server has none of).
    fn getattr(&mut self, fs: &mut impl Filesystem, node: u64) -> Result<Answer, Errno> {
        let minor = self.minor()?;
        let attr = fs.getattr(node)?;
        proto::put_attr_out(&mut self.out, minor, &attr, TTL);
        Ok(Answer::Body)
    }

    /// The offset and size of a `fuse_read_in` (`READ`, `READDIR`); its
    /// file handle and flags mean nothing here.
    fn read_in(body: &mut Body<'_>) -> Result<(u64, u32), Errno> {
        need(body.u64())?; // fh
        let offset = need(body.u64())?;
        let size = need(body.u32())?;
        Ok((offset, size))
    }

    /// `READ`: up to `size` bytes from `offset`, straight into the reply
    /// body (short only at the end of the file).
    fn read(
        &mut self,
        fs: &mut impl Filesystem,
        node: u64,
        body: &mut Body<'_>,
    ) -> Result<Answer, Errno> {
        let (offset, size) = Self::read_in(body)?;
        fs.read(node, offset, size, &mut self.out)?;
        // The kernel refuses a reply longer than it asked for.
        self.out.truncate(size as usize);
        Ok(Answer::Body)
    }

    /// `READDIR`: `fuse_dirent` records from cookie `offset` on, as many as
    /// fit in `size` bytes. Each record's `off` is the cookie after it,
    /// where the kernel's next `READDIR` resumes.
    fn readdir(
        &mut self,
        fs: &mut impl Filesystem,
        node: u64,
        body: &mut Body<'_>,
    ) -> Result<Answer, Errno> {
        let (offset, size) = Self::read_in(body)?;
        let size = size as usize;
        let out = &mut self.out;
        fs.readdir(node, offset, &mut |entry| {
            if out.len() + proto::dirent_len(entry.name.len()) > size {
                return false;
            }
            proto::put_dirent(out, &entry);
            true
        })?;
        Ok(Answer::Body)
    }

    /// The answer to `GETXATTR` and `LISTXATTR` for `value`: asked with
    /// size 0, the size it needs; too small a size, `ERANGE`; else the
    /// value.
    fn xattr_reply(&mut self, size: u32, value: &[u8]) -> Result<Answer, Errno> {
        let len = u32::try_from(value.len()).map_err(|_| Errno::E2BIG)?;
        if size == 0 {
            proto::put_getxattr_out(&mut self.out, len);
        } else if len > size {
            return Err(Errno::ERANGE);
        } else {
            self.out.extend_from_slice(value);
        }
        Ok(Answer::Body)
    }

    /// `GETXATTR`: one extended attribute's value. On an image without
    /// any, `ENOSYS`: the kernel then answers every later `getxattr` with
    /// `EOPNOTSUPP` itself, as a filesystem without xattrs does, and
    /// `execve`'s look for `security.capability` costs no round trip.
    fn getxattr(
        &mut self,
        fs: &mut impl Filesystem,
        node: u64,
        body: &mut Body<'_>,
    ) -> Result<Answer, Errno> {
        if !fs.has_xattrs() {
            return Err(Errno::ENOSYS);
        }
        let size = need(body.u32())?;
        need(body.u32())?; // padding
        let name = need(body.cstr())?;
        let value = fs.getxattr(node, name)?;
        self.xattr_reply(size, &value)
    }

    /// `LISTXATTR`: the NUL-terminated names of the node's extended
    /// attributes; `ENOSYS` on an image without any (as for `GETXATTR`).
    fn listxattr(
        &mut self,
        fs: &mut impl Filesystem,
        node: u64,
        body: &mut Body<'_>,
    ) -> Result<Answer, Errno> {
        if !fs.has_xattrs() {
            return Err(Errno::ENOSYS);
        }
        let size = need(body.u32())?;
        let names = fs.listxattr(node)?;
        self.xattr_reply(size, &names)
    }

    /// `OPEN` and `OPENDIR`: with `no_open` negotiated, `ENOSYS`, after
    /// which the kernel opens by itself (keeping the page cache, and for a
    /// directory its cached listing). Otherwise a handle-less open that
    /// keeps the same caches.
    fn open(&mut self, no_open: u32, open_flags: u32) -> Result<Answer, Errno> {
        if self.flags & no_open != 0 {
            return Err(Errno::ENOSYS);
        }
        proto::put_open_out(&mut self.out, open_flags);
        Ok(Answer::Body)
    }
}
