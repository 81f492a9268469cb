//! The reader against `mksquashfs`: real images of a tree with every kind
//! of file, walked through [`Tree`] and compared with the source tree.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// A directory under /tmp, removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "hutch-sqfs-tree-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Pseudo-random but compressible bytes: words from a small vocabulary.
fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&[u8]; 8] = [
        b"squash ", b"fuse ", b"block ", b"inode ", b"hutch ", b"\n", b"0123 ", b"zz ",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % 8) as usize]);
        out.push((x >> 32) as u8);
    }
    out.truncate(len);
    out
}

/// Set extended attributes: (path, name, value) triples, in one run of
/// Python (std has no setxattr, and `setfattr` is not always installed).
fn setxattrs(triples: &[(PathBuf, String, String)]) {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        "import os,sys; a=sys.argv[1:]\nfor i in range(0, len(a), 3): os.setxattr(a[i], a[i+1], a[i+2].encode())",
    ]);
    for (p, k, v) in triples {
        cmd.arg(p).arg(k).arg(v);
    }
    assert!(cmd.status().unwrap().success(), "setxattr");
}

/// The source tree, and the xattrs set on it (path relative to the root).
fn source(root: &Path) -> BTreeMap<PathBuf, Vec<(String, String)>> {
    let mut xattrs = BTreeMap::new();
    let mut triples = Vec::new();
    let long = "v".repeat(300);
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::write(root.join("a/b/c/deep"), b"deep file\n").unwrap();
    fs::create_dir(root.join("many")).unwrap();
    for i in 0..333 {
        fs::write(
            root.join(format!(
                "many/entry-{i:04}-with-a-longer-name-for-the-index"
            )),
            text(i * 7, i as u64),
        )
        .unwrap();
    }
    fs::write(root.join("large"), text(1 << 20, 1)).unwrap();
    fs::write(root.join("tail"), text((3 << 17) + 4321, 2)).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    let sparse = fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(5 << 17).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"start", 0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"the end", (5 << 17) - 7).unwrap();
    drop(sparse);
    std::os::unix::fs::symlink("a/b/c/deep", root.join("link")).unwrap();
    std::os::unix::fs::symlink("x".repeat(200), root.join("dangling")).unwrap();
    fs::write(root.join("hard1"), b"one inode, two names").unwrap();
    fs::hard_link(root.join("hard1"), root.join("a/hard2")).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &root.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    fs::write(root.join("owned"), b"owned by someone else").unwrap();
    std::os::unix::fs::chown(root.join("owned"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::chown(root.join("a/b"), Some(42), Some(43)).unwrap();
    fs::set_permissions(root.join("a/b/c/deep"), fs::Permissions::from_mode(0o4751)).unwrap();
    for (path, attrs) in [
        ("hard1", vec![("user.test", "value".to_string())]),
        (
            "a",
            vec![
                ("user.test", "dir".to_string()),
                ("user.long", long.clone()),
            ],
        ),
        (
            "large",
            vec![("user.long", long.clone()), ("trusted.t", "t".to_string())],
        ),
        (
            "many/entry-0007-with-a-longer-name-for-the-index",
            vec![("user.long", long.clone())],
        ),
    ] {
        let mut set = Vec::new();
        for (k, v) in attrs {
            triples.push((root.join(path), k.to_string(), v.clone()));
            set.push((k.to_string(), v));
        }
        xattrs.insert(PathBuf::from(path), set);
    }
    setxattrs(&triples);
    // The same inode.
    xattrs.insert(PathBuf::from("a/hard2"), xattrs[Path::new("hard1")].clone());
    xattrs
}

/// Build an image of `src` with `mksquashfs` and these options.
fn mksquashfs(src: &Path, img: &Path, options: &[&str]) {
    let out = Command::new("mksquashfs")
        .arg(src)
        .arg(img)
        .args(["-noappend", "-quiet", "-no-progress"])
        .args(options)
        .output()
        .expect("mksquashfs (squashfs-tools) must be installed");
    assert!(
        out.status.success(),
        "mksquashfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn open(img: &Path) -> Result<Tree, String> {
    Image::open(fs::File::open(img).unwrap()).map(Tree::new)
}

/// Every entry of directory `node` but `.` and `..`, read a few at a time.
fn list(t: &mut Tree, node: u64) -> Result<Vec<(Vec<u8>, u64, u32)>, Errno> {
    let mut all = Vec::new();
    let mut cookie = 0;
    loop {
        let mut got = Vec::new();
        t.readdir(node, cookie, &mut |e| {
            if got.len() == 7 {
                return false;
            }
            got.push((e.name.to_vec(), e.ino, e.kind, e.next));
            true
        })?;
        let Some(last) = got.last() else { break };
        cookie = last.3;
        all.extend(got.into_iter().map(|(n, i, k, _)| (n, i, k)));
    }
    assert_eq!(&all[0].0, b".");
    assert_eq!(&all[1].0, b"..");
    Ok(all.split_off(2))
}

/// Read the whole file in odd-sized chunks from an odd offset.
fn read_all(t: &mut Tree, node: u64, size: u64) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    t.read(node, 0, 13, &mut out)?;
    let mut at = out.len() as u64;
    while at < size + 1 {
        let before = out.len();
        t.read(node, at, 40_961, &mut out)?;
        if out.len() == before {
            break;
        }
        at = out.len() as u64;
    }
    Ok(out)
}

/// Compare directory `node` of the image with `dir` of the source, all
/// the way down; returns the node ids seen by inode number.
fn compare(
    t: &mut Tree,
    node: u64,
    src: &Path,
    rel: &Path,
    xattrs: &BTreeMap<PathBuf, Vec<(String, String)>>,
    nodes: &mut BTreeMap<u64, u64>,
) {
    use std::os::unix::ffi::OsStrExt as _;
    let entries = list(t, node).unwrap();
    let mut names: Vec<Vec<u8>> = fs::read_dir(src.join(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    names.sort();
    let listed: Vec<Vec<u8>> = entries.iter().map(|e| e.0.clone()).collect();
    assert_eq!(listed, names, "{}", rel.display());
    for (name, ino, kind) in entries {
        let path = rel.join(std::ffi::OsStr::from_bytes(&name));
        let what = path.display().to_string();
        let meta = fs::symlink_metadata(src.join(&path)).unwrap();
        let e = t.lookup(node, &name).unwrap();
        assert_eq!(t.getattr(e.node).unwrap(), e.attr, "{what}");
        let a = &e.attr;
        assert_eq!(a.ino, ino, "{what}");
        assert_eq!(a.mode >> 12, kind, "{what}");
        assert_eq!(a.mode, meta.mode(), "{what}");
        assert_eq!((a.uid, a.gid), (meta.uid(), meta.gid()), "{what}");
        assert_eq!(a.mtime, meta.mtime() as u64, "{what}");
        // One node id per inode, whatever the name.
        assert_eq!(*nodes.entry(a.ino).or_insert(e.node), e.node, "{what}");
        let ft = meta.file_type();
        if ft.is_file() {
            assert_eq!(a.size, meta.len(), "{what}");
            assert_eq!(a.nlink as u64, meta.nlink(), "{what}");
            let data = read_all(t, e.node, a.size).unwrap();
            assert!(
                data == fs::read(src.join(&path)).unwrap(),
                "{what}: content"
            );
            let mut past = Vec::new();
            t.read(e.node, a.size + 5, 100, &mut past).unwrap();
            assert!(past.is_empty());
            assert_eq!(t.readlink(e.node), Err(Errno::EINVAL));
        } else if ft.is_symlink() {
            let target = fs::read_link(src.join(&path)).unwrap();
            assert_eq!(
                t.readlink(e.node).unwrap(),
                target.as_os_str().as_bytes(),
                "{what}"
            );
            assert_eq!(a.size, target.as_os_str().len() as u64);
        } else if ft.is_dir() {
            assert_eq!(t.read(e.node, 0, 10, &mut Vec::new()), Err(Errno::EISDIR));
            assert_eq!(t.lookup(e.node, b"no such name"), Err(Errno::ENOENT));
            compare(t, e.node, src, &path, xattrs, nodes);
        } else {
            assert_eq!(a.rdev as u64, meta.rdev(), "{what}");
            assert_eq!(t.lookup(e.node, b"x"), Err(Errno::ENOTDIR));
        }
        let expected = xattrs.get(&path).cloned().unwrap_or_default();
        for (k, v) in &expected {
            let value = t.getxattr(e.node, k.as_bytes()).unwrap();
            assert_eq!(value, v.as_bytes(), "{what}: {k}");
        }
        // Each name NUL-terminated, in any order.
        let listed = t.listxattr(e.node).unwrap();
        assert!(listed.is_empty() || listed.ends_with(&[0]), "{what}");
        let mut got: Vec<&[u8]> = listed
            .split(|&c| c == 0)
            .filter(|s| !s.is_empty())
            .collect();
        got.sort();
        let mut want: Vec<&[u8]> = expected.iter().map(|(k, _)| k.as_bytes()).collect();
        want.sort();
        assert_eq!(got, want, "{what}: xattr names");
        assert_eq!(t.getxattr(e.node, b"user.absent"), Err(Errno::ENODATA));
    }
}

fn check_compressor(options: &[&str]) {
    let dir = TempDir::new();
    let src = dir.0.join("src");
    let xattrs = source(&src);
    let img = dir.0.join("img");
    mksquashfs(&src, &img, options);
    let mut t = open(&img).unwrap();
    assert!(t.has_xattrs());
    let root = t.getattr(ROOT).unwrap();
    assert_eq!(root.mode & libc::S_IFMT, libc::S_IFDIR);
    let mut nodes = BTreeMap::new();
    compare(&mut t, ROOT, &src, Path::new(""), &xattrs, &mut nodes);
    // `..` of the root is the root.
    let mut dots = Vec::new();
    t.readdir(ROOT, 0, &mut |e| {
        dots.push(e.ino);
        dots.len() < 2
    })
    .unwrap();
    assert_eq!(dots, [root.ino, root.ino]);
    // Cookies: 1 and 2 after the dots, position + 3 after entry position.
    let mut first = Vec::new();
    t.readdir(ROOT, 0, &mut |e| {
        first.push((e.next, e.name.to_vec()));
        first.len() < 5
    })
    .unwrap();
    let nexts: Vec<u64> = first.iter().map(|f| f.0).collect();
    assert_eq!(nexts, [1, 2, 3, 4, 5]);
    let mut resumed = None;
    t.readdir(ROOT, 4, &mut |e| {
        resumed = Some(e.name.to_vec());
        false
    })
    .unwrap();
    assert_eq!(resumed.as_ref(), Some(&first[4].1));
    let st = t.statfs();
    assert_eq!(st.block_size, 1 << 17);
    assert_eq!(st.files, nodes.len() as u64 + 1);
    assert_eq!(
        st.blocks,
        fs::metadata(&img).unwrap().len().div_ceil(1 << 17)
    );
    // Forged node ids.
    for node in [0, u64::MAX, (1 << 48) + 2, 2 + 9000] {
        assert_eq!(t.getattr(node), Err(Errno::EIO), "{node}");
    }
}

#[test]
fn gzip() {
    check_compressor(&["-comp", "gzip"]);
}

#[test]
fn gzip_with_compressor_options() {
    check_compressor(&["-comp", "gzip", "-Xcompression-level", "3"]);
}

#[test]
fn lz4() {
    check_compressor(&["-comp", "lz4", "-Xhc"]);
}

#[test]
fn zstd() {
    check_compressor(&["-comp", "zstd"]);
}

#[test]
fn uncompressed_data() {
    check_compressor(&["-comp", "gzip", "-noD", "-noF"]);
}

#[test]
fn nothing_compressed() {
    check_compressor(&["-comp", "zstd", "-noI", "-noD", "-noF", "-noX"]);
}

#[test]
fn other_compressors_are_refused_by_name() {
    let dir = TempDir::new();
    fs::write(dir.0.join("f"), b"x").unwrap();
    let img = dir.0.join("img");
    mksquashfs(&dir.0.join("f"), &img, &["-comp", "xz"]);
    assert!(!super::super::image::supported(4));
    let e = open(&img).err().unwrap();
    assert!(e.contains("xz"), "{e}");
}

/// Visit everything reachable, ignoring errors; count them.
fn walk_anyhow(t: &mut Tree, node: u64, depth: u32, errors: &mut u32) {
    fn count(errors: &mut u32, r: Result<(), Errno>) {
        if r.is_err() {
            *errors += 1
        }
    }
    count(errors, t.getattr(node).map(drop));
    count(errors, t.listxattr(node).map(drop));
    count(
        errors,
        t.getxattr(node, b"user.test").map(drop).or_else(|e| {
            if e == Errno::ENODATA {
                Ok(())
            } else {
                Err(e)
            }
        }),
    );
    let entries = match list(t, node) {
        Ok(e) => e,
        Err(_) => {
            *errors += 1;
            return;
        }
    };
    for (name, _, _) in entries {
        let Ok(e) = t.lookup(node, &name) else {
            *errors += 1;
            continue;
        };
        count(
            errors,
            t.readlink(e.node)
                .map(drop)
                .or_else(|e| if e == Errno::EINVAL { Ok(()) } else { Err(e) }),
        );
        if e.attr.mode & libc::S_IFMT == libc::S_IFREG {
            count(
                errors,
                read_all(t, e.node, e.attr.size.min(300 << 10)).map(drop),
            );
        }
        if e.attr.mode & libc::S_IFMT == libc::S_IFDIR && depth < 8 {
            walk_anyhow(t, e.node, depth + 1, errors);
        }
    }
}

#[test]
fn corrupt_images_give_errors_not_panics() {
    let dir = TempDir::new();
    let src = dir.0.join("src");
    source(&src);
    let img = dir.0.join("img");
    mksquashfs(&src, &img, &["-comp", "gzip"]);
    let good = fs::read(&img).unwrap();
    let bad = dir.0.join("bad");
    let inode_table = u64::from_le_bytes(good[64..72].try_into().unwrap()) as usize;
    let directory_table = u64::from_le_bytes(good[72..80].try_into().unwrap()) as usize;
    // A flipped byte in the inode table's compressed stream is an error.
    let mut copy = good.clone();
    copy[(inode_table + directory_table) / 2] ^= 0x5a;
    fs::write(&bad, &copy).unwrap();
    let mut errors = 0;
    walk_anyhow(&mut open(&bad).unwrap(), ROOT, 0, &mut errors);
    assert!(errors > 0);
    // Anywhere else, anything may fail, but nothing may panic or hang.
    for k in 0..50 {
        let mut copy = good.clone();
        let at = 96 + k * (good.len() - 96) / 50;
        copy[at] ^= 0xff;
        fs::write(&bad, &copy).unwrap();
        if let Ok(mut t) = open(&bad) {
            walk_anyhow(&mut t, ROOT, 0, &mut 0);
        }
    }
    // Opening reads the superblock only: an image whose tables are all
    // zeros opens, and fails on first use.
    let mut copy = good.clone();
    copy[96..].fill(0);
    fs::write(&bad, &copy).unwrap();
    let mut t = open(&bad).unwrap();
    assert_eq!(t.getattr(ROOT), Err(Errno::EIO));
    assert_eq!(t.lookup(ROOT, b"large").err(), Some(Errno::EIO));
    // Forged node ids into the middle of inodes: errors or nonsense, no
    // panic.
    let mut t = open(&img).unwrap();
    for offset in (0..3000).step_by(3) {
        let node = offset + 2;
        let _ = t.getattr(node);
        let _ = t.readlink(node);
        let _ = t.read(node, 0, 4096, &mut Vec::new());
        let _ = t.readdir(node, 0, &mut |_| true);
        let _ = t.listxattr(node);
    }
    // A truncated copy is refused at open.
    let used = u64::from_le_bytes(good[40..48].try_into().unwrap()) as usize;
    for len in [0, 50, 96, used / 2, used - 1] {
        fs::write(&bad, &good[..len]).unwrap();
        assert!(open(&bad).is_err(), "{len}");
    }
}

/// Replace the one occurrence of `from` in the image at `img` by `to`
/// (same length).
fn patch(img: &Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut bytes = fs::read(img).unwrap();
    let at: Vec<usize> = (0..bytes.len() - from.len())
        .filter(|&i| &bytes[i..i + from.len()] == from)
        .collect();
    assert_eq!(at.len(), 1, "{} occurrences", at.len());
    bytes[at[0]..at[0] + to.len()].copy_from_slice(to);
    fs::write(img, bytes).unwrap();
}

/// Found by fuzzing: an xattr name with a NUL in it was listed cut at the
/// NUL, and getxattr of the listed name found nothing.
#[test]
fn an_xattr_name_with_a_nul_is_corrupt() {
    let dir = TempDir::new();
    let src = dir.0.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    setxattrs(&[(src.join("f"), "user.fuzzname".into(), "v".into())]);
    let img = dir.0.join("img");
    mksquashfs(&src, &img, &["-noX"]);
    patch(&img, b"fuzzname", b"fuzz\0ame");
    let mut t = open(&img).unwrap();
    let f = t.lookup(ROOT, b"f").unwrap().node;
    assert_eq!(t.listxattr(f), Err(Errno::EIO));
    assert_eq!(t.getxattr(f, b"user.fuzz"), Err(Errno::EIO));
}

/// A large directory read many entries at a time goes on from where each
/// call stopped; a cookie from anywhere else (a `seekdir`, another
/// reader) still gives the entries after it.
#[test]
fn readdir_resumes_from_any_cookie() {
    let dir = TempDir::new();
    let src = dir.0.join("src");
    fs::create_dir_all(src.join("big")).unwrap();
    let names: Vec<String> = (0..3000).map(|n| format!("file-{n:05}")).collect();
    for n in &names {
        fs::write(src.join("big").join(n), b"").unwrap();
    }
    let img = dir.0.join("img");
    mksquashfs(&src, &img, &[]);
    let mut t = open(&img).unwrap();
    let big = t.lookup(ROOT, b"big").unwrap().node;
    let listed: Vec<Vec<u8>> = list(&mut t, big)
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    let want: Vec<Vec<u8>> = names.iter().map(|n| n.as_bytes().to_vec()).collect();
    assert_eq!(listed, want);
    // Entry i (from 0) follows cookie i + 2; ask out of order, and
    // between two readers of the same directory.
    for cookie in [1500u64, 3, 2999, 700, 701, 2, 3001] {
        let mut got = None;
        t.readdir(big, cookie, &mut |e| {
            got = Some(e.name.to_vec());
            false
        })
        .unwrap();
        let i = cookie as usize - 2;
        assert_eq!(got.as_ref(), want.get(i), "cookie {cookie}");
    }
}
