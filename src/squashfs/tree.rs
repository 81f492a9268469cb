//! A SquashFS image as the FUSE server's [`Filesystem`].
//!
//! Node ids are stateless: the root directory is [`ROOT`], any other inode
//! is its inode reference + 2 (so never 0 or 1). Nothing grows with
//! lookups, and FORGET has nothing to do. A node id is decoded and checked
//! on every call: a bad one is `EIO`.

use std::ops::ControlFlow;

use nix::errno::Errno;

use super::dir::Position;
use super::image::Image;
use super::inode::{Inode, Kind};
use crate::fuse::{Attr, DirEntry, Entry, Filesystem, StatFs, ROOT};

/// The served image.
pub struct Tree {
    image: Image,
    /// Where the last `readdir` stopped: its directory, the cookie it
    /// handed out last and the listing position after that entry. The
    /// next call for that cookie goes on from there.
    resume: Option<(u64, u64, Position)>,
}

impl Tree {
    pub fn new(image: Image) -> Tree {
        Tree {
            image,
            resume: None,
        }
    }

    /// The inode reference of node `node`.
    fn inode_ref(&self, node: u64) -> Result<u64, Errno> {
        match node {
            ROOT => Ok(self.image.sb.root),
            0 => Err(Errno::EIO),
            n => Ok(n - 2),
        }
    }

    /// The node id of inode reference `r`.
    fn node(&self, r: u64) -> u64 {
        if r == self.image.sb.root {
            ROOT
        } else {
            r + 2
        }
    }

    fn inode(&mut self, node: u64) -> Result<(u64, Inode), Errno> {
        let r = self.inode_ref(node)?;
        Ok((r, self.image.inode(r)?))
    }

    fn attr(&mut self, inode: &Inode) -> Result<Attr, Errno> {
        let (size, rdev) = match &inode.kind {
            Kind::Dir(d) => (u64::from(d.size), 0),
            Kind::File(f) => (f.size, 0),
            Kind::Symlink { len, .. } => (u64::from(*len), 0),
            // The image stores Linux's 32-bit encoding, FUSE's as well.
            Kind::BlockDev { rdev } | Kind::CharDev { rdev } => (0, *rdev),
            Kind::Fifo | Kind::Socket => (0, 0),
        };
        Ok(Attr {
            ino: u64::from(inode.number),
            size,
            blocks: size.div_ceil(512),
            mtime: u64::from(inode.mtime),
            mode: inode.kind.type_bits() | u32::from(inode.permissions),
            nlink: inode.nlink,
            uid: self.image.id(inode.uid_index)?,
            gid: self.image.id(inode.gid_index)?,
            rdev,
        })
    }
}

impl Filesystem for Tree {
    fn lookup(&mut self, parent: u64, name: &[u8]) -> Result<Entry, Errno> {
        let (_, dir) = self.inode(parent)?;
        let Kind::Dir(d) = &dir.kind else {
            return Err(Errno::ENOTDIR);
        };
        let Some(e) = self.image.dir_lookup(d, name)? else {
            return Err(Errno::ENOENT);
        };
        let child = self.image.inode(e.inode)?;
        // The listing and the inode must agree on the type.
        if child.kind.type_bits() != e.type_bits {
            return Err(Errno::EIO);
        }
        Ok(Entry {
            node: self.node(e.inode),
            attr: self.attr(&child)?,
        })
    }

    fn getattr(&mut self, node: u64) -> Result<Attr, Errno> {
        let (_, inode) = self.inode(node)?;
        self.attr(&inode)
    }

    fn readlink(&mut self, node: u64) -> Result<Vec<u8>, Errno> {
        match self.inode(node)?.1.kind {
            Kind::Symlink { len, target } => self.image.symlink_target(len, target),
            _ => Err(Errno::EINVAL),
        }
    }

    fn read(&mut self, node: u64, offset: u64, size: u32, out: &mut Vec<u8>) -> Result<(), Errno> {
        match self.inode(node)? {
            (
                r,
                Inode {
                    kind: Kind::File(f),
                    ..
                },
            ) => self.image.read_file(r, &f, offset, size, out),
            (
                _,
                Inode {
                    kind: Kind::Dir(_), ..
                },
            ) => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    fn readdir(
        &mut self,
        node: u64,
        offset: u64,
        add: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> Result<(), Errno> {
        let (_, dir) = self.inode(node)?;
        let Kind::Dir(d) = &dir.kind else {
            return Err(Errno::ENOTDIR);
        };
        let dt = libc::S_IFDIR >> 12;
        let parent = if node == ROOT { dir.number } else { d.parent };
        let dots: [(&[u8], u32); 2] = [(b".", dir.number), (b"..", parent)];
        for (i, (name, ino)) in dots.into_iter().enumerate() {
            let next = i as u64 + 1;
            if offset < next {
                let e = DirEntry {
                    ino: u64::from(ino),
                    next,
                    kind: dt,
                    name,
                };
                if !add(e) {
                    return Ok(());
                }
            }
        }
        // Entry i of the listing resumes at cookie i + 3: go on from the
        // last call's position, or skip from the top to the cookie.
        let (from, mut position) = match self.resume {
            Some((n, cookie, pos)) if n == node && cookie == offset && offset >= 3 => {
                (pos, offset - 2)
            }
            _ => (self.image.dir_start(d)?, 0),
        };
        let skip = offset.saturating_sub(2);
        let mut last = None;
        let walked = self.image.dir_entries(from, &mut |e, after| {
            position += 1;
            if position <= skip {
                return ControlFlow::Continue(());
            }
            let entry = DirEntry {
                ino: u64::from(e.number),
                next: position + 2,
                kind: e.type_bits >> 12,
                name: e.name(),
            };
            if add(entry) {
                last = Some((node, position + 2, after));
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        });
        if last.is_some() {
            self.resume = last;
        }
        walked
    }

    fn getxattr(&mut self, node: u64, name: &[u8]) -> Result<Vec<u8>, Errno> {
        let (_, inode) = self.inode(node)?;
        self.image.xattr_value(inode.xattr, name)
    }

    fn listxattr(&mut self, node: u64) -> Result<Vec<u8>, Errno> {
        let (_, inode) = self.inode(node)?;
        self.image.xattr_names(inode.xattr)
    }

    fn has_xattrs(&self) -> bool {
        self.image.has_xattrs()
    }

    fn statfs(&mut self) -> StatFs {
        let sb = &self.image.sb;
        StatFs {
            blocks: sb.bytes_used.div_ceil(u64::from(sb.block_size)),
            files: u64::from(sb.inode_count),
            block_size: sb.block_size,
            name_max: 256,
        }
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
