//! Fuzz hutch's own SquashFS reader: the input bytes are an image, opened
//! with `Image::open` and walked through `Tree` the way the FUSE server
//! would (statfs, readdir, lookup, getattr, readlink, read, xattrs), plus
//! calls with node ids forged from the input. Whatever the bytes, every
//! call must return (data or an errno), never panic, hang or allocate
//! without bound. The walk is bounded: at most `BUDGET` calls per input.
#![no_main]

use std::cell::RefCell;
use std::fs::File;
use std::io::{Seek as _, SeekFrom, Write as _};

use hutch::fuse::{Filesystem, ROOT};
use hutch::squashfs::image::Image;
use hutch::squashfs::tree::Tree;
use libfuzzer_sys::fuzz_target;
use nix::sys::memfd::{memfd_create, MFdFlags};

/// The most trait calls one input gets.
const BUDGET: u32 = 200;
/// How deep the walk goes below the root.
const DEPTH: u32 = 4;
/// The most entries of one directory the walk follows.
const ENTRIES: usize = 16;
/// The largest read asked for (the kernel asks for up to 128 KiB).
const READ_MAX: u32 = 128 << 10;

thread_local! {
    /// One memfd per process, rewritten for every input.
    static MEMFD: RefCell<File> = RefCell::new(File::from(
        memfd_create(c"squashfs-fuzz", MFdFlags::MFD_CLOEXEC).expect("memfd_create"),
    ));
}

/// The image file holding `data`.
fn image_file(data: &[u8]) -> File {
    MEMFD.with(|f| {
        let mut f = f.borrow_mut();
        f.set_len(0).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(data).unwrap();
        f.try_clone().unwrap()
    })
}

struct Walk {
    tree: Tree,
    calls: u32,
}

impl Walk {
    /// Count one call; false once the budget is spent.
    fn spend(&mut self) -> bool {
        self.calls += 1;
        self.calls <= BUDGET
    }

    /// `read` of `size` bytes from `offset`, checking what the trait
    /// promises: never more than asked, fewer only at the end of the file.
    fn read(&mut self, node: u64, file_size: u64, offset: u64, size: u32) {
        if !self.spend() {
            return;
        }
        let mut out = b"prefix".to_vec();
        if self.tree.read(node, offset, size, &mut out).is_ok() {
            let got = (out.len() - 6) as u64;
            let want = file_size.saturating_sub(offset).min(u64::from(size));
            assert_eq!(
                got, want,
                "read({node}, {offset}, {size}) of a {file_size}-byte file"
            );
        }
    }

    /// The entries of directory `node` from cookie `offset`, at most
    /// `ENTRIES`; checks that cookies grow.
    fn readdir(&mut self, node: u64, offset: u64) -> Vec<(Vec<u8>, u64, u32)> {
        let mut names = Vec::new();
        if !self.spend() {
            return names;
        }
        let mut last = offset;
        let _ = self.tree.readdir(node, offset, &mut |e| {
            assert!(e.next > last, "readdir cookies go {last} then {}", e.next);
            last = e.next;
            names.push((e.name.to_vec(), e.next, e.kind));
            names.len() < ENTRIES
        });
        names
    }

    fn xattrs(&mut self, node: u64) {
        if !self.spend() {
            return;
        }
        let names = self.tree.listxattr(node).unwrap_or_default();
        let mut asked = 0;
        for name in names.split(|&c| c == 0).filter(|n| !n.is_empty()) {
            if asked == 3 || !self.spend() {
                break;
            }
            asked += 1;
            // A name the listing gives must have a value, or an error.
            let r = self.tree.getxattr(node, name);
            assert!(
                r != Err(nix::errno::Errno::ENODATA),
                "listed xattr without a value"
            );
        }
        if self.spend() {
            let _ = self.tree.getxattr(node, b"security.capability");
        }
    }

    /// Everything about node `node`, then its children.
    fn visit(&mut self, node: u64, depth: u32) {
        if !self.spend() {
            return;
        }
        let Ok(attr) = self.tree.getattr(node) else {
            return;
        };
        self.xattrs(node);
        match attr.mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let entries = self.readdir(node, 0);
                // Resume after the third entry, as a second getdents would.
                if let Some((_, next, _)) = entries.get(2) {
                    self.readdir(node, *next);
                }
                for (name, _, _) in entries.iter().filter(|(n, _, _)| n != b"." && n != b"..") {
                    if !self.spend() {
                        return;
                    }
                    if let Ok(e) = self.tree.lookup(node, name) {
                        if depth < DEPTH && e.node != node {
                            self.visit(e.node, depth + 1);
                        }
                    }
                }
                if self.spend() {
                    let _ = self.tree.lookup(node, b"not-there");
                }
                self.read(node, attr.size, 0, 10);
            }
            libc::S_IFLNK => {
                if self.spend() {
                    if let Ok(target) = self.tree.readlink(node) {
                        assert!(target.len() as u64 == attr.size, "readlink length");
                    }
                }
            }
            libc::S_IFREG => {
                let size = attr.size;
                self.read(node, size, 0, 4096);
                self.read(node, size, 0, READ_MAX);
                self.read(node, size, size / 2, 9000);
                self.read(node, size, size.saturating_sub(1), 100);
                self.read(node, size, 4095, 2);
                self.read(node, size, size, 1);
                self.read(node, size, u64::MAX - 1, 100);
            }
            _ => {
                if self.spend() {
                    let _ = self.tree.readlink(node);
                }
                self.read(node, 0, 0, 10);
            }
        }
    }

    /// Every call on a node id that need not exist.
    fn forged(&mut self, node: u64) {
        if !self.spend() {
            return;
        }
        let _ = self.tree.getattr(node);
        let _ = self.tree.readlink(node);
        let mut out = Vec::new();
        let _ = self.tree.read(node, 0, 4096, &mut out);
        let _ = self.tree.readdir(node, 0, &mut |_| true);
        let _ = self.tree.lookup(node, b"a");
        let _ = self.tree.listxattr(node);
        let _ = self.tree.getxattr(node, b"user.x");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(image) = Image::open(image_file(data)) else {
        return;
    };
    let mut walk = Walk {
        tree: Tree::new(image),
        calls: 0,
    };
    let st = walk.tree.statfs();
    assert!(st.block_size.is_power_of_two());
    let _ = walk.tree.has_xattrs();
    walk.visit(ROOT, 0);
    // Node ids from the input's bytes (past the superblock, so they vary
    // with what the fuzzer mutates), and a few fixed odd ones.
    let mut forged = vec![0, 2, 3, u64::MAX, u64::MAX - 1, 1 << 48];
    for chunk in data.get(96..).unwrap_or_default().chunks_exact(8).take(4) {
        let n = u64::from_le_bytes(chunk.try_into().unwrap());
        forged.push(n);
        forged.push(n & 0xffff_ffff);
        forged.push((n & 0xffff) << 16 | n >> 48);
    }
    for node in forged {
        walk.forged(node);
    }
});
