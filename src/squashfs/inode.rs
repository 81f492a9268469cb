//! Inodes: the inode table holds one record per file, packed in metadata
//! blocks and named by an inode reference (the metadata block's position
//! relative to the table's start << 16 | the offset in its decoded bytes).
//!
//! Every inode starts with a 16-byte header (type, permissions, uid and
//! gid id-table indices, mtime, inode number); its type says what follows.
//! Types 1-7 are the basic forms (directory, file, symlink, block device,
//! char device, fifo, socket), 8-14 the extended ones of the same kinds,
//! which add a link count, 64-bit sizes, an xattr index or a directory
//! index.

use std::rc::Rc;

use nix::errno::Errno;

use super::image::{Cursor, Image, METADATA_SIZE};

/// No fragment, or no xattrs.
pub const NONE: u32 = u32::MAX;
/// The longest symlink target hutch reads (Linux's `PATH_MAX`).
const SYMLINK_MAX: u32 = 4096;

/// A directory: where its listing is in the directory table.
#[derive(Clone, Debug)]
pub struct Dir {
    /// The listing's first metadata block, relative to the table's start.
    pub start_block: u32,
    /// The listing's offset in that block's decoded bytes.
    pub offset: u16,
    /// The listing's size plus 3 (for `.` and `..`, which are not stored).
    pub size: u32,
    /// The parent directory's inode number.
    pub parent: u32,
    /// The number of entries of the directory index (extended form only).
    pub index_count: u16,
    /// Where the directory index starts, after the inode.
    pub index: Cursor,
}

/// A regular file: where its data is.
#[derive(Clone, Debug)]
pub struct File {
    pub size: u64,
    /// The disk position of its first data block.
    pub blocks_start: u64,
    /// The fragment holding its tail, or `NONE`.
    pub fragment: u32,
    /// The tail's offset in the fragment block.
    pub fragment_offset: u32,
    /// Where the list of block sizes starts, after the inode.
    pub list: Cursor,
}

/// What an inode is, with what each kind adds.
#[derive(Clone, Debug)]
pub enum Kind {
    Dir(Dir),
    File(File),
    /// A symlink: its target's length and where the target is.
    Symlink {
        len: u32,
        target: Cursor,
    },
    BlockDev {
        rdev: u32,
    },
    CharDev {
        rdev: u32,
    },
    Fifo,
    Socket,
}

/// One inode.
#[derive(Clone, Debug)]
pub struct Inode {
    pub kind: Kind,
    /// Permission bits (the low 12 bits of `st_mode`).
    pub permissions: u16,
    pub uid_index: u16,
    pub gid_index: u16,
    pub mtime: u32,
    pub number: u32,
    pub nlink: u32,
    /// The xattr id-table index, or `NONE`.
    pub xattr: u32,
}

impl Kind {
    /// The `S_IF*` bits of this kind.
    pub fn type_bits(&self) -> u32 {
        type_bits(match self {
            Kind::Dir(_) => 1,
            Kind::File(_) => 2,
            Kind::Symlink { .. } => 3,
            Kind::BlockDev { .. } => 4,
            Kind::CharDev { .. } => 5,
            Kind::Fifo => 6,
            Kind::Socket => 7,
        })
        .unwrap_or(0)
    }
}

/// The `S_IF*` bits of basic inode type `t` (as directory entries give
/// it), or `None` for no such type.
pub fn type_bits(t: u16) -> Option<u32> {
    Some(match t {
        1 => libc::S_IFDIR,
        2 => libc::S_IFREG,
        3 => libc::S_IFLNK,
        4 => libc::S_IFBLK,
        5 => libc::S_IFCHR,
        6 => libc::S_IFIFO,
        7 => libc::S_IFSOCK,
        _ => return None,
    })
}

/// A file's data blocks: the disk position and size field of each
/// (size 0 is a hole of zeros).
pub struct Blocks {
    pub blocks: Vec<(u64, u32)>,
}

impl Image {
    /// Where inode reference `r` points, if it can point into the inode
    /// table at all.
    pub fn inode_cursor(&self, r: u64) -> Result<Cursor, Errno> {
        let block = r >> 16;
        let offset = (r & 0xffff) as usize;
        let table = self.sb.directory_table - self.sb.inode_table;
        if r >> 48 != 0 || block >= table || offset >= METADATA_SIZE {
            return Err(Errno::EIO);
        }
        Ok(Cursor {
            block: self.sb.inode_table + block,
            offset,
        })
    }

    /// The inode at reference `r`.
    pub fn inode(&mut self, r: u64) -> Result<Inode, Errno> {
        let mut cur = self.inode_cursor(r)?;
        let mut h = [0u8; 16];
        self.read_meta(&mut cur, &mut h)?;
        let u16_at = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]);
        let kind = u16_at(0);
        let mut inode = Inode {
            kind: Kind::Fifo,
            permissions: u16_at(2) & 0o7777,
            uid_index: u16_at(4),
            gid_index: u16_at(6),
            mtime: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
            number: u32::from_le_bytes([h[12], h[13], h[14], h[15]]),
            nlink: 1,
            xattr: NONE,
        };
        let c = &mut cur;
        inode.kind = match kind {
            1 => {
                let start_block = self.meta_u32(c)?;
                inode.nlink = self.meta_u32(c)?;
                let size = u32::from(self.meta_u16(c)?);
                let offset = self.meta_u16(c)?;
                let parent = self.meta_u32(c)?;
                Kind::Dir(Dir {
                    start_block,
                    offset,
                    size,
                    parent,
                    index_count: 0,
                    index: *c,
                })
            }
            8 => {
                inode.nlink = self.meta_u32(c)?;
                let size = self.meta_u32(c)?;
                let start_block = self.meta_u32(c)?;
                let parent = self.meta_u32(c)?;
                let index_count = self.meta_u16(c)?;
                let offset = self.meta_u16(c)?;
                inode.xattr = self.meta_u32(c)?;
                Kind::Dir(Dir {
                    start_block,
                    offset,
                    size,
                    parent,
                    index_count,
                    index: *c,
                })
            }
            2 => {
                let blocks_start = u64::from(self.meta_u32(c)?);
                let fragment = self.meta_u32(c)?;
                let fragment_offset = self.meta_u32(c)?;
                let size = u64::from(self.meta_u32(c)?);
                Kind::File(File {
                    size,
                    blocks_start,
                    fragment,
                    fragment_offset,
                    list: *c,
                })
            }
            9 => {
                let blocks_start = self.meta_u64(c)?;
                let size = self.meta_u64(c)?;
                let _sparse = self.meta_u64(c)?;
                inode.nlink = self.meta_u32(c)?;
                let fragment = self.meta_u32(c)?;
                let fragment_offset = self.meta_u32(c)?;
                inode.xattr = self.meta_u32(c)?;
                Kind::File(File {
                    size,
                    blocks_start,
                    fragment,
                    fragment_offset,
                    list: *c,
                })
            }
            3 | 10 => {
                inode.nlink = self.meta_u32(c)?;
                let len = self.meta_u32(c)?;
                if len > SYMLINK_MAX {
                    return Err(Errno::EIO);
                }
                let target = *c;
                if kind == 10 {
                    self.skip_meta(c, u64::from(len))?;
                    inode.xattr = self.meta_u32(c)?;
                }
                Kind::Symlink { len, target }
            }
            4 | 5 | 11 | 12 => {
                inode.nlink = self.meta_u32(c)?;
                let rdev = self.meta_u32(c)?;
                if kind >= 11 {
                    inode.xattr = self.meta_u32(c)?;
                }
                if kind % 7 == 4 {
                    Kind::BlockDev { rdev }
                } else {
                    Kind::CharDev { rdev }
                }
            }
            6 | 7 | 13 | 14 => {
                inode.nlink = self.meta_u32(c)?;
                if kind >= 13 {
                    inode.xattr = self.meta_u32(c)?;
                }
                if kind % 7 == 6 {
                    Kind::Fifo
                } else {
                    Kind::Socket
                }
            }
            _ => return Err(Errno::EIO),
        };
        Ok(inode)
    }

    /// A symlink's target.
    pub fn symlink_target(&mut self, len: u32, at: Cursor) -> Result<Vec<u8>, Errno> {
        let mut target = vec![0u8; len as usize];
        let mut cur = at;
        self.read_meta(&mut cur, &mut target)?;
        Ok(target)
    }

    /// The data blocks of the file at inode reference `r` (cached: a file
    /// is usually read in many calls).
    pub fn file_blocks(&mut self, r: u64, file: &File) -> Result<Rc<Blocks>, Errno> {
        if let Some(b) = self.files.get(r) {
            return Ok(b);
        }
        let bs = u64::from(self.sb.block_size);
        let count = if file.fragment == NONE {
            file.size.div_ceil(bs)
        } else {
            file.size / bs
        };
        // The list is in the inode table: a size that needs a longer list
        // is corrupt (and must not size an allocation).
        if count > (self.sb.directory_table - self.sb.inode_table) / 4 {
            return Err(Errno::EIO);
        }
        let mut blocks = Vec::with_capacity(count as usize);
        let mut cur = file.list;
        let mut pos = file.blocks_start;
        for _ in 0..count {
            let size = self.meta_u32(&mut cur)?;
            blocks.push((pos, size));
            pos = pos
                .checked_add(Image::stored_size(size))
                .ok_or(Errno::EIO)?;
        }
        let b = Rc::new(Blocks { blocks });
        self.files.insert(r, Rc::clone(&b));
        Ok(b)
    }

    /// Append the bytes `offset..offset + size` of the file at inode
    /// reference `r` to `out` (fewer at the end of the file).
    pub fn read_file(
        &mut self,
        r: u64,
        file: &File,
        offset: u64,
        size: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), Errno> {
        let end = offset.saturating_add(u64::from(size)).min(file.size);
        if offset >= end {
            return Ok(());
        }
        let blocks = self.file_blocks(r, file)?;
        let bs = u64::from(self.sb.block_size);
        out.reserve((end - offset) as usize);
        let mut at = offset;
        while at < end {
            let index = at / bs;
            let block_start = index * bs;
            // The bytes of this block the file has (the last may be short).
            let block_len = (file.size - block_start).min(bs) as usize;
            let from = (at - block_start) as usize;
            let to = ((end - block_start) as usize).min(block_len);
            match blocks.blocks.get(index as usize) {
                Some(&(_, 0)) => out.resize(out.len() + (to - from), 0),
                Some(&(pos, size)) => {
                    let data = self.block(pos, size)?;
                    let bytes = data.get(from..to).ok_or(Errno::EIO)?;
                    out.extend_from_slice(bytes);
                }
                None if file.fragment != NONE && index as usize == blocks.blocks.len() => {
                    let (pos, fsize) = self.fragment(file.fragment)?;
                    let data = self.block(pos, fsize)?;
                    let base = file.fragment_offset as usize;
                    let bytes = data.get(base + from..base + to).ok_or(Errno::EIO)?;
                    out.extend_from_slice(bytes);
                }
                None => return Err(Errno::EIO),
            }
            at = block_start + to as u64;
        }
        Ok(())
    }
}
