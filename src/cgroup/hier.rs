//! Which cgroup hierarchies this host has and where the caller is in each:
//! from `/proc/self/mountinfo` and `/proc/self/cgroup`. A v2 host has one
//! cgroup2 mount; a v1 host one mount per hierarchy (`memory`,
//! `cpu,cpuacct`, `name=systemd`); a hybrid host both, and each controller
//! is in exactly one of them.

use std::path::{Path, PathBuf};

use super::fs::Fs;

/// One mounted hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    pub fs: Fs,
    /// Where it is mounted.
    pub point: PathBuf,
    /// The cgroup the mount's root is (`/` unless a subtree is mounted).
    pub root: PathBuf,
    /// v1: its controllers and `name=` (`["cpu", "cpuacct"]`); v2: empty.
    pub controllers: Vec<String>,
    /// The caller's cgroup in it, from /proc/self/cgroup.
    pub own: Option<PathBuf>,
}

impl Hierarchy {
    /// The key naming it in `cgroup.json` (`cpu,cpuacct`; `unified` for v2).
    pub fn key(&self) -> String {
        match self.fs {
            Fs::V2 => "unified".into(),
            Fs::V1 => self.controllers.join(","),
        }
    }

    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    /// Where cgroup `wanted` (a path from the hierarchy's root) is in the
    /// file system; `None` when the mount does not reach it.
    pub fn dir_of(&self, wanted: &Path) -> Option<PathBuf> {
        let below = wanted.strip_prefix(&self.root).ok()?;
        Some(self.point.join(below))
    }
}

/// The hierarchies mounted here, each once.
pub fn mounted() -> Vec<Hierarchy> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    parse(&info, &own)
}

pub fn parse(mountinfo: &str, self_cgroup: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let r: Vec<&str> = right.split_whitespace().collect();
        let f: Vec<&str> = left.split_whitespace().collect();
        if f.len() < 5 || r.is_empty() {
            continue;
        }
        let (fs, controllers) = match r[0] {
            "cgroup2" => (Fs::V2, Vec::new()),
            "cgroup" => {
                let opts = r.get(2).copied().unwrap_or_default();
                let mut c: Vec<String> = opts
                    .split(',')
                    .filter(|o| is_controller_option(o))
                    .map(str::to_string)
                    .collect();
                c.sort();
                (Fs::V1, c)
            }
            _ => continue,
        };
        if fs == Fs::V1 && controllers.is_empty() {
            continue;
        }
        if out
            .iter()
            .any(|h| h.fs == fs && h.controllers == controllers)
        {
            continue;
        }
        let own = own_in(self_cgroup, fs, &controllers);
        out.push(Hierarchy {
            fs,
            root: PathBuf::from(unescape(f[3])),
            point: PathBuf::from(unescape(f[4])),
            controllers,
            own,
        });
    }
    out
}

/// A super option of a v1 cgroup mount that names a controller or a
/// named hierarchy (not `rw`, `relatime`, `xattr`, `release_agent=`…).
fn is_controller_option(o: &str) -> bool {
    const NOT: &[&str] = &[
        "rw",
        "ro",
        "relatime",
        "noatime",
        "nosuid",
        "nodev",
        "noexec",
        "xattr",
        "noprefix",
        "clone_children",
        "cpuset_v2_mode",
        "all",
        "none",
        "favordynmods",
    ];
    !o.is_empty() && !NOT.contains(&o) && (o.starts_with("name=") || !o.contains('='))
}

/// The caller's cgroup in the hierarchy with these controllers.
fn own_in(self_cgroup: &str, fs: Fs, controllers: &[String]) -> Option<PathBuf> {
    for line in self_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(list), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let matches = match fs {
            Fs::V2 => id == "0" && list.is_empty(),
            Fs::V1 => {
                let mut l: Vec<&str> = list.split(',').filter(|s| !s.is_empty()).collect();
                l.sort();
                id != "0" && l == controllers.iter().map(String::as_str).collect::<Vec<_>>()
            }
        };
        if matches {
            return Some(PathBuf::from(path.trim_end()));
        }
    }
    None
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:32 / /mnt/again rw,relatime - cgroup cgroup rw,memory
";
    const SELF: &str = "9:name=systemd:/\n4:memory:/a/b\n1:cpuacct,cpu:/\n0::/u\n";

    #[test]
    fn hybrid_host() {
        let h = parse(HYBRID, SELF);
        let keys: Vec<String> = h.iter().map(Hierarchy::key).collect();
        assert_eq!(keys, ["cpu,cpuacct", "memory", "name=systemd", "unified"]);
        assert_eq!(h[0].own.as_deref(), Some(Path::new("/")));
        assert_eq!(h[1].own.as_deref(), Some(Path::new("/a/b")));
        assert_eq!(h[3].own.as_deref(), Some(Path::new("/u")));
        assert_eq!(h[3].point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert!(h[0].has("cpuacct"));
        assert_eq!(
            h[1].dir_of(Path::new("/a/b/c")),
            Some(PathBuf::from("/sys/fs/cgroup/memory/a/b/c"))
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
