//! A SquashFS 4.0 image, read lazily: opening it reads the 96-byte
//! superblock and nothing else; every table, metadata block and data block
//! is read with `pread` when first needed and kept in a small cache.
//!
//! The image is untrusted input: every size, offset, count and index read
//! from it is checked before use, nothing allocates more than a format
//! bound (a metadata block is at most 8 KiB, a data block at most the
//! block size), and corrupt data is `EIO`, never a panic.
//!
//! The layout (all little-endian): the superblock; an optional compressor
//! options metadata block; the data and fragment blocks; then the inode
//! table, directory table, fragment table, export table, id table and
//! xattr tables, whose positions the superblock gives. The compressor
//! options block (superblock flag 0x0400) only tunes compression: reading
//! needs nothing from it, and since nothing here reads the image in
//! sequence, it is skipped without a look.
//! Inodes are in `inode.rs`, directory listings in `dir.rs`, extended
//! attributes in `xattr.rs`.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::rc::Rc;

use nix::errno::Errno;

use super::cache::Lru;
pub use super::decompress::supported;
use super::decompress::Decompressor;

/// The first four bytes of every SquashFS image (little-endian `sqsh`).
pub const MAGIC: &[u8; 4] = b"hsqs";
/// The size of the superblock.
const SUPERBLOCK: usize = 96;
/// A table that is not there (`SQUASHFS_INVALID_BLK`).
pub const ABSENT: u64 = u64::MAX;
/// The decoded size of a metadata block (all but a table's last are full).
pub const METADATA_SIZE: usize = 8192;
/// A metadata block's 16-bit header: this bit set means stored as is.
const METADATA_UNCOMPRESSED: u16 = 0x8000;
/// A data block's 32-bit size: this bit set means stored as is; the low
/// 24 bits are the size on disk, 0 for a block of zeros (a hole).
const DATA_UNCOMPRESSED: u32 = 1 << 24;
const DATA_SIZE_MASK: u32 = DATA_UNCOMPRESSED - 1;
/// How many decoded metadata blocks to keep (8 KiB each).
const METADATA_CACHE: usize = 2048;
/// How many decompressed data and fragment blocks to keep.
const BLOCK_CACHE: usize = 24;
/// How many lookup-table pointers to keep.
const POINTER_CACHE: usize = 512;

/// The superblock's fields hutch uses.
#[derive(Clone, Debug)]
pub struct Superblock {
    pub inode_count: u32,
    pub block_size: u32,
    pub fragment_count: u32,
    pub compressor: u16,
    pub id_count: u16,
    /// The root directory's inode reference.
    pub root: u64,
    /// The image's size; nothing is read past it.
    pub bytes_used: u64,
    pub id_table: u64,
    pub xattr_id_table: u64,
    pub inode_table: u64,
    pub directory_table: u64,
    pub fragment_table: u64,
    pub export_table: u64,
}

impl Superblock {
    /// Read and check the superblock of the image in `file`.
    pub fn read(file: &File) -> Result<Superblock, String> {
        let size = file.metadata().map_err(|e| format!("stat: {e}"))?.len();
        let mut raw = [0u8; SUPERBLOCK];
        file.read_exact_at(&mut raw, 0)
            .map_err(|_| format!("truncated: {size} bytes, shorter than the superblock"))?;
        Superblock::parse(&raw, size)
    }

    /// Parse and check a superblock: magic, version 4.0, block size, and
    /// every table inside `file_size` bytes.
    fn parse(sb: &[u8; SUPERBLOCK], file_size: u64) -> Result<Superblock, String> {
        let u16_at = |o: usize| u16::from_le_bytes([sb[o], sb[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | u64::from(u32_at(o + 4)) << 32;
        if &sb[..4] != MAGIC {
            return Err("no SquashFS magic".into());
        }
        let (major, minor) = (u16_at(28), u16_at(30));
        if (major, minor) != (4, 0) {
            return Err(format!("version {major}.{minor} (hutch reads 4.0)"));
        }
        let block_size = u32_at(12);
        let block_log = u16_at(22);
        if !(12..=20).contains(&block_log) || block_size != 1 << block_log {
            return Err(format!("block size {block_size} (log {block_log})"));
        }
        let compressor = u16_at(20);
        if !(1..=6).contains(&compressor) {
            return Err(format!("unknown compressor {compressor}"));
        }
        let s = Superblock {
            inode_count: u32_at(4),
            block_size,
            fragment_count: u32_at(16),
            compressor,
            id_count: u16_at(26),
            root: u64_at(32),
            bytes_used: u64_at(40),
            id_table: u64_at(48),
            xattr_id_table: u64_at(56),
            inode_table: u64_at(64),
            directory_table: u64_at(72),
            fragment_table: u64_at(80),
            export_table: u64_at(88),
        };
        if s.bytes_used > file_size {
            return Err(format!(
                "truncated: the superblock says {} bytes, the file has {file_size}",
                s.bytes_used
            ));
        }
        let tables = [
            ("id", s.id_table, false),
            ("xattr id", s.xattr_id_table, true),
            ("inode", s.inode_table, false),
            ("directory", s.directory_table, false),
            ("fragment", s.fragment_table, s.fragment_count == 0),
            ("export", s.export_table, true),
        ];
        for (name, start, optional) in tables {
            if optional && start == ABSENT {
                continue;
            }
            if start < SUPERBLOCK as u64 || start >= s.bytes_used {
                return Err(format!(
                    "the {name} table starts at {start}, outside the image's {} bytes",
                    s.bytes_used
                ));
            }
        }
        if s.inode_table >= s.directory_table {
            return Err("the inode table does not precede the directory table".into());
        }
        Ok(s)
    }
}

/// A decoded metadata block and the disk position of the next one.
pub struct Metablock {
    pub data: Vec<u8>,
    pub next: u64,
}

/// A position in a metadata table: the disk position of a metadata block
/// and an offset into its decoded bytes. Reads move it on, across block
/// boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub block: u64,
    pub offset: usize,
}

/// An open image and its caches.
pub struct Image {
    file: File,
    pub sb: Superblock,
    decompressor: Decompressor,
    metadata: Lru<Metablock>,
    /// The metadata block used last: reads are mostly sequential, and
    /// this spares them the cache's hashing.
    last: Option<(u64, Rc<Metablock>)>,
    blocks: Lru<Vec<u8>>,
    pointers: Lru<u64>,
    /// Block lists of recently read files (`inode.rs`).
    pub(super) files: Lru<super::inode::Blocks>,
    /// The xattr table's header, once read (`xattr.rs`).
    pub(super) xattr_header: Option<super::xattr::Header>,
}

impl Image {
    /// Open the image in `file`: read and check its superblock, nothing
    /// more. The reason is for a message when the image is unusable or
    /// its compressor is not one hutch decompresses.
    pub fn open(file: File) -> Result<Image, String> {
        let sb = Superblock::read(&file)?;
        let decompressor = Decompressor::new(sb.compressor)?;
        Ok(Image {
            file,
            sb,
            decompressor,
            metadata: Lru::new(METADATA_CACHE),
            last: None,
            blocks: Lru::new(BLOCK_CACHE),
            pointers: Lru::new(POINTER_CACHE),
            files: Lru::new(32),
            xattr_header: None,
        })
    }

    /// Fill `buf` from disk position `pos`; all of it must lie inside the
    /// image.
    pub(super) fn pread_at(&self, pos: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let end = pos.checked_add(buf.len() as u64).ok_or(Errno::EIO)?;
        if end > self.sb.bytes_used {
            return Err(Errno::EIO);
        }
        self.file.read_exact_at(buf, pos).map_err(|_| Errno::EIO)
    }

    /// The metadata block at disk position `pos`: a 16-bit header (size on
    /// disk, and whether it is stored as is) and up to 8 KiB of data.
    pub fn metablock(&mut self, pos: u64) -> Result<Rc<Metablock>, Errno> {
        match &self.last {
            Some((at, b)) if *at == pos => return Ok(Rc::clone(b)),
            _ => {}
        }
        if let Some(b) = self.metadata.get(pos) {
            self.last = Some((pos, Rc::clone(&b)));
            return Ok(b);
        }
        let avail = self.sb.bytes_used.checked_sub(pos).ok_or(Errno::EIO)?;
        // The header and the largest block in one read.
        let mut raw = [0u8; 2 + METADATA_SIZE];
        let want = usize::try_from(avail).unwrap_or(usize::MAX).min(raw.len());
        if want < 2 {
            return Err(Errno::EIO);
        }
        self.pread_at(pos, &mut raw[..want])?;
        let header = u16::from_le_bytes([raw[0], raw[1]]);
        let len = usize::from(header & !METADATA_UNCOMPRESSED);
        if len == 0 || len > METADATA_SIZE || 2 + len > want {
            return Err(Errno::EIO);
        }
        let stored = &raw[2..2 + len];
        let data = if header & METADATA_UNCOMPRESSED != 0 {
            stored.to_vec()
        } else {
            self.decompressor.decompress(stored, METADATA_SIZE)?
        };
        if data.is_empty() {
            return Err(Errno::EIO);
        }
        let block = Rc::new(Metablock {
            data,
            next: pos + 2 + len as u64,
        });
        self.metadata.insert(pos, Rc::clone(&block));
        self.last = Some((pos, Rc::clone(&block)));
        Ok(block)
    }

    /// Fill `out` from the metadata at `cur`, moving it past what was read.
    pub fn read_meta(&mut self, cur: &mut Cursor, out: &mut [u8]) -> Result<(), Errno> {
        let mut done = 0;
        while done < out.len() {
            let block = self.metablock(cur.block)?;
            if cur.offset > block.data.len() {
                return Err(Errno::EIO);
            }
            if cur.offset == block.data.len() {
                *cur = Cursor {
                    block: block.next,
                    offset: 0,
                };
                continue;
            }
            let n = (block.data.len() - cur.offset).min(out.len() - done);
            out[done..done + n].copy_from_slice(&block.data[cur.offset..cur.offset + n]);
            done += n;
            cur.offset += n;
        }
        Ok(())
    }

    /// Move `cur` on by `n` bytes of metadata.
    pub fn skip_meta(&mut self, cur: &mut Cursor, mut n: u64) -> Result<(), Errno> {
        while n > 0 {
            let block = self.metablock(cur.block)?;
            if cur.offset > block.data.len() {
                return Err(Errno::EIO);
            }
            let left = (block.data.len() - cur.offset) as u64;
            if n < left {
                cur.offset += n as usize;
                return Ok(());
            }
            n -= left;
            *cur = Cursor {
                block: block.next,
                offset: 0,
            };
        }
        Ok(())
    }

    pub fn meta_u16(&mut self, cur: &mut Cursor) -> Result<u16, Errno> {
        let mut b = [0u8; 2];
        self.read_meta(cur, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    pub fn meta_u32(&mut self, cur: &mut Cursor) -> Result<u32, Errno> {
        let mut b = [0u8; 4];
        self.read_meta(cur, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn meta_u64(&mut self, cur: &mut Cursor) -> Result<u64, Errno> {
        let mut b = [0u8; 8];
        self.read_meta(cur, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Where entry `index` (of `size` bytes) of a table lies. Such a table
    /// (ids, fragments, xattr ids) is a run of metadata blocks whose disk
    /// positions are listed, as 64-bit values, at `lookup`.
    pub fn table_entry(&mut self, lookup: u64, index: u64, size: u64) -> Result<Cursor, Errno> {
        let per_block = METADATA_SIZE as u64 / size;
        let at = (index / per_block)
            .checked_mul(8)
            .and_then(|o| lookup.checked_add(o))
            .ok_or(Errno::EIO)?;
        let block = match self.pointers.get(at) {
            Some(p) => *p,
            None => {
                let mut b = [0u8; 8];
                self.pread_at(at, &mut b)?;
                let p = u64::from_le_bytes(b);
                self.pointers.insert(at, Rc::new(p));
                p
            }
        };
        Ok(Cursor {
            block,
            offset: ((index % per_block) * size) as usize,
        })
    }

    /// The uid or gid that entry `index` of the id table holds.
    pub fn id(&mut self, index: u16) -> Result<u32, Errno> {
        if index >= self.sb.id_count {
            return Err(Errno::EIO);
        }
        let mut cur = self.table_entry(self.sb.id_table, u64::from(index), 4)?;
        self.meta_u32(&mut cur)
    }

    /// Fragment `index`: the disk position and size field of the block
    /// that holds the tails of several files.
    pub fn fragment(&mut self, index: u32) -> Result<(u64, u32), Errno> {
        if index >= self.sb.fragment_count {
            return Err(Errno::EIO);
        }
        let mut cur = self.table_entry(self.sb.fragment_table, u64::from(index), 16)?;
        let start = self.meta_u64(&mut cur)?;
        let size = self.meta_u32(&mut cur)?;
        Ok((start, size))
    }

    /// The data or fragment block at disk position `pos` with size field
    /// `size` (not 0: a hole has no block), decompressed (once while it
    /// stays cached). It holds at most a block size of bytes.
    pub fn block(&mut self, pos: u64, size: u32) -> Result<Rc<Vec<u8>>, Errno> {
        if let Some(b) = self.blocks.get(pos) {
            return Ok(b);
        }
        let len = size & DATA_SIZE_MASK;
        if len == 0 || len > self.sb.block_size {
            return Err(Errno::EIO);
        }
        let mut stored = vec![0u8; len as usize];
        self.pread_at(pos, &mut stored)?;
        let data = if size & DATA_UNCOMPRESSED != 0 {
            stored
        } else {
            self.decompressor
                .decompress(&stored, self.sb.block_size as usize)?
        };
        let data = Rc::new(data);
        self.blocks.insert(pos, Rc::clone(&data));
        Ok(data)
    }

    /// The size a data block's size field says it takes on disk.
    pub fn stored_size(size: u32) -> u64 {
        u64::from(size & DATA_SIZE_MASK)
    }
}
