//! Extended attributes. An inode's xattr index names an entry of the
//! xattr id table (a lookup table of metadata blocks, like the id table):
//! where its key/value pairs start in the xattr table, how many there are
//! and their total size. The xattr id table's position is in the
//! superblock; it starts with a 16-byte header: the xattr table's
//! position, the number of ids, 4 unused bytes.
//!
//! A pair: key type (u16: 0 `user.`, 1 `trusted.`, 2 `security.`; bit
//! 0x100 set when the value is stored out of line), name length (u16), the
//! name without its prefix; value size (u32), the value. An out-of-line
//! value is an 8-byte reference (block << 16 | offset, relative to the
//! xattr table) to where a value size and the value are.

use nix::errno::Errno;

use super::image::{Cursor, Image, ABSENT, METADATA_SIZE};
use super::inode::NONE;

/// The prefixes key types 0, 1 and 2 stand for.
const PREFIXES: [&[u8]; 3] = [b"user.", b"trusted.", b"security."];
/// A key type's bit: the value is elsewhere.
const OUT_OF_LINE: u16 = 0x100;
/// Linux's limits: a name's length, a value's size, and (bounding the
/// pairs one inode may claim) a listing's size.
const NAME_MAX: usize = 255;
const VALUE_MAX: u32 = 65536;
const PAIRS_MAX: u32 = 65536 / 2;

/// The xattr id table's header.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    table: u64,
    ids: u32,
}

/// One attribute: its full name and where its value is.
struct Pair {
    name: Vec<u8>,
    value: Cursor,
}

impl Image {
    /// True if the image has an xattr table.
    pub fn has_xattrs(&self) -> bool {
        self.sb.xattr_id_table != ABSENT
    }

    fn xattr_header(&mut self) -> Result<Header, Errno> {
        if let Some(h) = self.xattr_header {
            return Ok(h);
        }
        if !self.has_xattrs() {
            return Err(Errno::EIO);
        }
        let mut b = [0u8; 16];
        self.pread_at(self.sb.xattr_id_table, &mut b)?;
        let h = Header {
            table: u64::from_le_bytes(b[..8].try_into().map_err(|_| Errno::EIO)?),
            ids: u32::from_le_bytes(b[8..12].try_into().map_err(|_| Errno::EIO)?),
        };
        self.xattr_header = Some(h);
        Ok(h)
    }

    /// The attributes of xattr index `index` (`NONE`: none).
    fn pairs(&mut self, index: u32) -> Result<Vec<Pair>, Errno> {
        if index == NONE || !self.has_xattrs() {
            return Ok(Vec::new());
        }
        let h = self.xattr_header()?;
        if index >= h.ids {
            return Err(Errno::EIO);
        }
        let lookup = self.sb.xattr_id_table.checked_add(16).ok_or(Errno::EIO)?;
        let mut cur = self.table_entry(lookup, u64::from(index), 16)?;
        let at = self.meta_u64(&mut cur)?;
        let count = self.meta_u32(&mut cur)?;
        if count > PAIRS_MAX {
            return Err(Errno::EIO);
        }
        let mut cur = self.xattr_cursor(h, at)?;
        let mut pairs = Vec::new();
        let mut name = [0u8; NAME_MAX];
        for _ in 0..count {
            let kind = self.meta_u16(&mut cur)?;
            let len = usize::from(self.meta_u16(&mut cur)?);
            if len > NAME_MAX {
                return Err(Errno::EIO);
            }
            self.read_meta(&mut cur, &mut name[..len])?;
            // A NUL would end the name early in a listing (NUL-separated),
            // and no lookup could find the rest.
            if name[..len].contains(&0) {
                return Err(Errno::EIO);
            }
            let value = cur;
            let size = self.meta_u32(&mut cur)?;
            if size > VALUE_MAX {
                return Err(Errno::EIO);
            }
            self.skip_meta(&mut cur, u64::from(size))?;
            let value = if kind & OUT_OF_LINE != 0 {
                let mut v = value;
                if self.meta_u32(&mut v)? != 8 {
                    return Err(Errno::EIO);
                }
                let r = self.meta_u64(&mut v)?;
                self.xattr_cursor(h, r)?
            } else {
                value
            };
            // An unknown prefix: not an attribute Linux could name.
            if let Some(prefix) = PREFIXES.get(usize::from(kind & !OUT_OF_LINE)) {
                pairs.push(Pair {
                    name: [prefix, &name[..len]].concat(),
                    value,
                });
            }
        }
        Ok(pairs)
    }

    /// Where reference `r` (relative to the xattr table) points.
    fn xattr_cursor(&self, h: Header, r: u64) -> Result<Cursor, Errno> {
        let offset = (r & 0xffff) as usize;
        let block = h.table.checked_add(r >> 16).ok_or(Errno::EIO)?;
        if offset >= METADATA_SIZE || block >= self.sb.bytes_used {
            return Err(Errno::EIO);
        }
        Ok(Cursor { block, offset })
    }

    /// The names of the attributes of xattr index `index`, each
    /// NUL-terminated.
    pub fn xattr_names(&mut self, index: u32) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        for p in self.pairs(index)? {
            out.extend_from_slice(&p.name);
            out.push(0);
        }
        Ok(out)
    }

    /// The value of attribute `name` of xattr index `index`; `ENODATA` if
    /// it has none.
    pub fn xattr_value(&mut self, index: u32, name: &[u8]) -> Result<Vec<u8>, Errno> {
        let Some(p) = self.pairs(index)?.into_iter().find(|p| p.name == name) else {
            return Err(Errno::ENODATA);
        };
        let mut cur = p.value;
        let size = self.meta_u32(&mut cur)?;
        if size > VALUE_MAX {
            return Err(Errno::EIO);
        }
        let mut value = vec![0u8; size as usize];
        self.read_meta(&mut cur, &mut value)?;
        Ok(value)
    }
}
