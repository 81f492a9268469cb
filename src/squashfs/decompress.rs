//! The block decompressors: what the superblock's compressor id names, and
//! one reusable context per image for it. SquashFS compresses every
//! metadata block and data block on its own (no stream state between
//! blocks), so a block is one call here.

use nix::errno::Errno;

/// The compressor ids of the SquashFS 4.0 superblock hutch decompresses.
const GZIP: u16 = 1;
const LZ4: u16 = 5;
const ZSTD: u16 = 6;

/// True if hutch's own reader decompresses images made with compressor
/// `id` (gzip, lz4, zstd); others (lzma 2, lzo 3, xz 4) need
/// `squashfuse_ll`.
pub fn supported(id: u16) -> bool {
    matches!(id, GZIP | LZ4 | ZSTD)
}

/// The name `mksquashfs -comp` gives compressor `id`, for messages.
pub fn name(id: u16) -> &'static str {
    match id {
        1 => "gzip",
        2 => "lzma",
        3 => "lzo",
        4 => "xz",
        5 => "lz4",
        6 => "zstd",
        _ => "unknown",
    }
}

/// A decompression context for one compressor.
pub enum Decompressor {
    /// gzip: squashfs stores zlib streams (header and Adler-32 included).
    Gzip(libdeflater::Decompressor),
    /// lz4: the raw block format, no frame.
    Lz4,
    /// zstd: one frame per block.
    Zstd(Box<zstd::bulk::Decompressor<'static>>),
}

impl Decompressor {
    /// The context for compressor `id`, or why there is none.
    pub fn new(id: u16) -> Result<Decompressor, String> {
        match id {
            GZIP => Ok(Decompressor::Gzip(libdeflater::Decompressor::new())),
            LZ4 => Ok(Decompressor::Lz4),
            ZSTD => zstd::bulk::Decompressor::new()
                .map(|d| Decompressor::Zstd(Box::new(d)))
                .map_err(|e| format!("zstd: {e}")),
            _ => Err(format!(
                "compressor {} ({id}) is not one hutch's reader decompresses (gzip, lz4, zstd)",
                name(id)
            )),
        }
    }

    /// Decompress the block `input` into a new buffer of at most `max`
    /// bytes. Corrupt input, or output that would pass `max`, is `EIO`.
    pub fn decompress(&mut self, input: &[u8], max: usize) -> Result<Vec<u8>, Errno> {
        let mut out = match self {
            Decompressor::Zstd(_) => Vec::with_capacity(max),
            _ => vec![0u8; max],
        };
        let n = match self {
            Decompressor::Gzip(d) => d.zlib_decompress(input, &mut out).map_err(|_| Errno::EIO)?,
            Decompressor::Lz4 => {
                lz4_flex::block::decompress_into(input, &mut out).map_err(|_| Errno::EIO)?
            }
            Decompressor::Zstd(d) => d
                .decompress_to_buffer(input, &mut out)
                .map_err(|_| Errno::EIO)?,
        };
        if n > max {
            return Err(Errno::EIO);
        }
        out.truncate(n);
        Ok(out)
    }
}
