//! A small in-memory tree behind the `Filesystem` trait, for the server's
//! tests: directories, files, symlinks and extended attributes, and a log
//! of what the server asked of it.

use nix::errno::Errno;

use crate::fuse::{Attr, DirEntry, Entry, Filesystem, StatFs, ROOT};

/// The mtime of every node.
pub const MTIME: u64 = 1_700_000_000;

/// `stat`'s inode number of node `id` (not the node id, so that a test
/// sees which of the two reached it).
pub fn ino(id: u64) -> u64 {
    id + 100
}

pub enum Data {
    Dir(Vec<(Vec<u8>, u64)>),
    File(Vec<u8>),
    Link(Vec<u8>),
}

struct Node {
    parent: u64,
    mode: u32,
    data: Data,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub struct MemFs {
    /// Node `id` is `nodes[id - 1]`.
    nodes: Vec<Node>,
    with_xattrs: bool,
    /// The names the server looked up, in order.
    pub lookups: Vec<Vec<u8>>,
    /// How many times the server asked for an xattr or their list.
    pub xattr_calls: usize,
}

impl MemFs {
    /// An empty root directory; `with_xattrs` is what `has_xattrs` says.
    pub fn new(with_xattrs: bool) -> MemFs {
        MemFs {
            nodes: vec![Node {
                parent: ROOT,
                mode: libc::S_IFDIR | 0o755,
                data: Data::Dir(Vec::new()),
                xattrs: Vec::new(),
            }],
            with_xattrs,
            lookups: Vec::new(),
            xattr_calls: 0,
        }
    }

    /// Add `name` to directory `parent`; returns its node id.
    pub fn add(&mut self, parent: u64, name: &str, mode: u32, data: Data) -> u64 {
        self.nodes.push(Node {
            parent,
            mode,
            data,
            xattrs: Vec::new(),
        });
        let id = self.nodes.len() as u64;
        match &mut self.nodes[parent as usize - 1].data {
            Data::Dir(children) => children.push((name.as_bytes().to_vec(), id)),
            _ => panic!("{name}: the parent is not a directory"),
        }
        id
    }

    pub fn set_xattr(&mut self, id: u64, name: &str, value: &[u8]) {
        self.nodes[id as usize - 1]
            .xattrs
            .push((name.as_bytes().to_vec(), value.to_vec()));
    }

    fn node(&self, id: u64) -> Result<&Node, Errno> {
        id.checked_sub(1)
            .and_then(|i| self.nodes.get(i as usize))
            .ok_or(Errno::ENOENT)
    }

    fn attr(&self, id: u64) -> Result<Attr, Errno> {
        let node = self.node(id)?;
        let size = match &node.data {
            Data::Dir(_) => 4096,
            Data::File(d) | Data::Link(d) => d.len() as u64,
        };
        Ok(Attr {
            ino: ino(id),
            size,
            blocks: size.div_ceil(512),
            mtime: MTIME,
            mode: node.mode,
            nlink: if matches!(node.data, Data::Dir(_)) {
                2
            } else {
                1
            },
            uid: 0,
            gid: 0,
            rdev: 0,
        })
    }
}

impl Filesystem for MemFs {
    fn lookup(&mut self, parent: u64, name: &[u8]) -> Result<Entry, Errno> {
        self.lookups.push(name.to_vec());
        let Data::Dir(children) = &self.node(parent)?.data else {
            return Err(Errno::ENOTDIR);
        };
        let node = children
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, id)| id)
            .ok_or(Errno::ENOENT)?;
        Ok(Entry {
            node,
            attr: self.attr(node)?,
        })
    }

    fn getattr(&mut self, node: u64) -> Result<Attr, Errno> {
        self.attr(node)
    }

    fn readlink(&mut self, node: u64) -> Result<Vec<u8>, Errno> {
        match &self.node(node)?.data {
            Data::Link(target) => Ok(target.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn read(&mut self, node: u64, offset: u64, size: u32, out: &mut Vec<u8>) -> Result<(), Errno> {
        match &self.node(node)?.data {
            Data::File(data) => {
                let start = (offset as usize).min(data.len());
                let end = start.saturating_add(size as usize).min(data.len());
                out.extend_from_slice(&data[start..end]);
                Ok(())
            }
            Data::Dir(_) => Err(Errno::EISDIR),
            Data::Link(_) => Err(Errno::EINVAL),
        }
    }

    fn readdir(
        &mut self,
        node: u64,
        offset: u64,
        add: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> Result<(), Errno> {
        let dir = self.node(node)?;
        let Data::Dir(children) = &dir.data else {
            return Err(Errno::ENOTDIR);
        };
        let dots = [(&b"."[..], node), (&b".."[..], dir.parent)];
        let all = dots
            .into_iter()
            .chain(children.iter().map(|(n, id)| (&n[..], *id)));
        for (i, (name, id)) in all.enumerate().skip(offset as usize) {
            let entry = DirEntry {
                ino: ino(id),
                next: i as u64 + 1,
                kind: (self.node(id)?.mode & libc::S_IFMT) >> 12,
                name,
            };
            if !add(entry) {
                break;
            }
        }
        Ok(())
    }

    fn getxattr(&mut self, node: u64, name: &[u8]) -> Result<Vec<u8>, Errno> {
        self.xattr_calls += 1;
        self.node(node)?
            .xattrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or(Errno::ENODATA)
    }

    fn listxattr(&mut self, node: u64) -> Result<Vec<u8>, Errno> {
        self.xattr_calls += 1;
        let mut names = Vec::new();
        for (n, _) in &self.node(node)?.xattrs {
            names.extend_from_slice(n);
            names.push(0);
        }
        Ok(names)
    }

    fn has_xattrs(&self) -> bool {
        self.with_xattrs
    }

    fn statfs(&mut self) -> StatFs {
        StatFs {
            blocks: 1234,
            files: self.nodes.len() as u64,
            block_size: 4096,
            name_max: 255,
        }
    }
}
