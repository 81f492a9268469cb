//! A read-only FUSE server: the kernel's protocol on a `/dev/fuse` fd,
//! answered from a [`Filesystem`]. Single-threaded, no libfuse: hutch forks
//! it (without exec) to serve a SquashFS root (`squashfs/`).
//!
//! `proto.rs` is the wire format, `server.rs` the loop that answers the
//! kernel.

use nix::errno::Errno;

mod proto;
pub mod server;

pub use server::{serve, serve_with, Options};

/// The node id the kernel gives the mount's root directory.
pub const ROOT: u64 = 1;

/// What `stat` shows of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attr {
    /// The inode number `stat` shows (not the FUSE node id).
    pub ino: u64,
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    /// Seconds since the epoch (atime = ctime = mtime on an image).
    pub mtime: u64,
    /// Type and permission bits, as in `st_mode` (`S_IFREG | 0o755`).
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device number of a block or character device (`makedev` encoding).
    pub rdev: u32,
}

/// The answer to a lookup: the child's node id (stable for the life of the
/// mount, never 0; the same inode gets the same id by any name) and its
/// attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub node: u64,
    pub attr: Attr,
}

/// One directory entry, as `readdir` hands it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// The inode number `readdir` shows (`d_ino`).
    pub ino: u64,
    /// The cookie that resumes the listing *after* this entry.
    pub next: u64,
    /// The `S_IF*` type bits of the entry shifted down by 12 (`DT_*`).
    pub kind: u32,
    pub name: &'a [u8],
}

/// Filesystem statistics for `statfs`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub files: u64,
    pub block_size: u32,
    pub name_max: u32,
}

/// A read-only tree to serve. Errors are the errno the caller sees.
pub trait Filesystem {
    /// The child `name` of directory `parent`; `ENOENT` if absent,
    /// `ENOTDIR` if `parent` is not a directory.
    fn lookup(&mut self, parent: u64, name: &[u8]) -> Result<Entry, Errno>;
    fn getattr(&mut self, node: u64) -> Result<Attr, Errno>;
    /// The target of a symbolic link (`EINVAL` for anything else).
    fn readlink(&mut self, node: u64) -> Result<Vec<u8>, Errno>;
    /// Append up to `size` bytes of the file from `offset` to `out`
    /// (fewer only at the end of the file). `EISDIR` for a directory.
    fn read(&mut self, node: u64, offset: u64, size: u32, out: &mut Vec<u8>) -> Result<(), Errno>;
    /// Hand the entries of directory `node` after cookie `offset` (0: from
    /// the start, `.` and `..` first) to `add`, in a stable order, until it
    /// returns false (the reply is full) or the listing ends.
    fn readdir(
        &mut self,
        node: u64,
        offset: u64,
        add: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> Result<(), Errno>;
    /// The value of extended attribute `name` (full name, `user.x`);
    /// `ENODATA` if absent.
    fn getxattr(&mut self, node: u64, name: &[u8]) -> Result<Vec<u8>, Errno>;
    /// The names of the node's extended attributes, each NUL-terminated.
    fn listxattr(&mut self, node: u64) -> Result<Vec<u8>, Errno>;
    /// False when no node has any extended attribute: the server then
    /// tells the kernel once, and it stops asking (one round trip less per
    /// `execve`, which looks for `security.capability`).
    fn has_xattrs(&self) -> bool;
    fn statfs(&mut self) -> StatFs;
}

#[cfg(test)]
mod tests;
