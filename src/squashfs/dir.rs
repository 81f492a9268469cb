//! Directory listings: the directory table holds each directory's entries
//! (without `.` and `..`), packed in metadata blocks, sorted by name.
//!
//! A listing is a run of headers, each followed by up to 256 entries
//! whose inodes share one inode-table metadata block:
//! header: count - 1 (u32), that block relative to the inode table (u32),
//! a base inode number (u32);
//! entry: offset in the block (u16), inode number - base (i16), basic
//! inode type (u16), name length - 1 (u16), the name.
//!
//! An extended directory inode may carry an index: for every metadata
//! block of the listing, the first name in it and where it starts, so a
//! lookup can start near the name instead of at the top.

use std::ops::ControlFlow;

use nix::errno::Errno;

use super::image::{Cursor, Image, METADATA_SIZE};
use super::inode::{type_bits, Dir};

/// The most entries one header may announce.
const HEADER_MAX: u32 = 256;
/// The longest name (and index name) the format allows.
const NAME_MAX: usize = 256;
/// Header and entry sizes, without the name.
const HEADER_SIZE: u64 = 12;
const ENTRY_SIZE: u64 = 8;

/// One directory entry.
#[derive(Clone, Copy)]
pub struct Entry {
    /// The entry's inode reference.
    pub inode: u64,
    pub number: u32,
    /// The `S_IF*` bits of the entry's type.
    pub type_bits: u32,
    name: [u8; NAME_MAX],
    name_len: usize,
}

impl Entry {
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }
}

/// Where a walk of a listing stands: what is left of it and of the
/// current header. Taken after an entry, it resumes at the next one (a
/// large directory is read by many `readdir` calls: each goes on from
/// where the last one stopped, not from the top).
#[derive(Clone, Copy)]
pub struct Position {
    cur: Cursor,
    /// Listing bytes left.
    len: u64,
    /// Entries left under the current header, its inode block and base.
    left: u32,
    block: u32,
    base: u32,
}

impl Image {
    /// Where the listing of `dir` starts.
    pub fn dir_start(&self, dir: &Dir) -> Result<Position, Errno> {
        let len = u64::from(dir.size.checked_sub(3).ok_or(Errno::EIO)?);
        Ok(Position {
            cur: self.listing_start(dir)?,
            len,
            left: 0,
            block: 0,
            base: 0,
        })
    }

    /// Hand the entries of a listing from `from` to `f`, each with the
    /// position after it, in listing order, until it breaks or the
    /// listing ends.
    pub fn dir_entries(
        &mut self,
        from: Position,
        f: &mut dyn FnMut(&Entry, Position) -> ControlFlow<()>,
    ) -> Result<(), Errno> {
        self.walk(from, f)
    }

    /// The entry `name` of directory `dir`, if it has one.
    pub fn dir_lookup(&mut self, dir: &Dir, name: &[u8]) -> Result<Option<Entry>, Errno> {
        let len = u64::from(dir.size.checked_sub(3).ok_or(Errno::EIO)?);
        let (cur, skipped) = match self.index_lookup(dir, name)? {
            Some(found) => found,
            None => (self.listing_start(dir)?, 0),
        };
        let start = Position {
            cur,
            len: len.checked_sub(skipped).ok_or(Errno::EIO)?,
            left: 0,
            block: 0,
            base: 0,
        };
        let mut found = None;
        self.walk(start, &mut |e, _| {
            if e.name() == name {
                found = Some(*e);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(found)
    }

    fn listing_start(&self, dir: &Dir) -> Result<Cursor, Errno> {
        let block = self
            .sb
            .directory_table
            .checked_add(u64::from(dir.start_block))
            .ok_or(Errno::EIO)?;
        Ok(Cursor {
            block,
            offset: usize::from(dir.offset),
        })
    }

    /// Where to start looking for `name` by the directory index: the last
    /// index entry whose name is not after `name` (names are sorted), as a
    /// position and the listing bytes before it. `None` without an index.
    fn index_lookup(&mut self, dir: &Dir, name: &[u8]) -> Result<Option<(Cursor, u64)>, Errno> {
        let mut best = None;
        let mut cur = dir.index;
        let mut buf = [0u8; NAME_MAX];
        for _ in 0..dir.index_count {
            let index = self.meta_u32(&mut cur)?;
            let start = self.meta_u32(&mut cur)?;
            let len = self.meta_u32(&mut cur)? as usize + 1;
            if len > NAME_MAX {
                return Err(Errno::EIO);
            }
            self.read_meta(&mut cur, &mut buf[..len])?;
            if &buf[..len] > name {
                break;
            }
            best = Some((index, start));
        }
        let Some((index, start)) = best else {
            return Ok(None);
        };
        let block = self
            .sb
            .directory_table
            .checked_add(u64::from(start))
            .ok_or(Errno::EIO)?;
        let offset = (usize::from(dir.offset) + index as usize) % METADATA_SIZE;
        Ok(Some((Cursor { block, offset }, u64::from(index))))
    }

    /// Read the listing from `pos`, entry by entry.
    fn walk(
        &mut self,
        mut pos: Position,
        f: &mut dyn FnMut(&Entry, Position) -> ControlFlow<()>,
    ) -> Result<(), Errno> {
        let mut entry = Entry {
            inode: 0,
            number: 0,
            type_bits: 0,
            name: [0; NAME_MAX],
            name_len: 0,
        };
        loop {
            if pos.left == 0 {
                if pos.len == 0 {
                    return Ok(());
                }
                pos.len = pos.len.checked_sub(HEADER_SIZE).ok_or(Errno::EIO)?;
                let mut raw = [0u8; HEADER_SIZE as usize];
                self.read_meta(&mut pos.cur, &mut raw)?;
                let u32_at =
                    |o: usize| u32::from_le_bytes([raw[o], raw[o + 1], raw[o + 2], raw[o + 3]]);
                pos.left = u32_at(0).checked_add(1).ok_or(Errno::EIO)?;
                (pos.block, pos.base) = (u32_at(4), u32_at(8));
                if pos.left > HEADER_MAX {
                    return Err(Errno::EIO);
                }
            }
            pos.left -= 1;
            pos.len = pos.len.checked_sub(ENTRY_SIZE).ok_or(Errno::EIO)?;
            let mut raw = [0u8; ENTRY_SIZE as usize];
            self.read_meta(&mut pos.cur, &mut raw)?;
            let u16_at = |o: usize| u16::from_le_bytes([raw[o], raw[o + 1]]);
            let (offset, delta, kind) = (u16_at(0), u16_at(2) as i16, u16_at(4));
            let name_len = usize::from(u16_at(6)) + 1;
            pos.len = pos.len.checked_sub(name_len as u64).ok_or(Errno::EIO)?;
            if name_len > NAME_MAX {
                return Err(Errno::EIO);
            }
            self.read_meta(&mut pos.cur, &mut entry.name[..name_len])?;
            entry.name_len = name_len;
            let name = entry.name();
            if name == b"." || name == b".." || name.iter().any(|&c| c == b'/' || c == 0) {
                return Err(Errno::EIO);
            }
            entry.inode = u64::from(pos.block) << 16 | u64::from(offset);
            entry.number = pos.base.wrapping_add_signed(i32::from(delta));
            entry.type_bits = type_bits(kind).ok_or(Errno::EIO)?;
            if f(&entry, pos).is_break() {
                return Ok(());
            }
        }
    }
}
