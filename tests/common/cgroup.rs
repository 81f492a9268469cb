//! What the cgroup tests need to know about the host: which hierarchies
//! are mounted (cgroup2 and each v1 one), where this test process is in
//! each, and whether it may make cgroups there. Read from
//! /proc/self/mountinfo and /proc/self/cgroup, independently of hutch.

use std::path::{Path, PathBuf};

/// One mounted cgroup hierarchy.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    pub v1: bool,
    pub point: PathBuf,
    /// v1: its controllers (`cpu`, `cpuacct`, `name=systemd`); v2: empty.
    pub controllers: Vec<String>,
    /// This process's cgroup in it.
    pub own: String,
}

impl Hierarchy {
    pub fn has(&self, c: &str) -> bool {
        self.controllers.iter().any(|x| x == c)
    }

    /// This process's cgroup directory in it.
    pub fn own_dir(&self) -> PathBuf {
        self.point.join(self.own.trim_start_matches('/'))
    }

    /// True when this process may make cgroups below its own here and
    /// move processes into them.
    pub fn writable(&self) -> bool {
        use nix::unistd::{access, AccessFlags};
        let dir = self.own_dir();
        access(&dir, AccessFlags::W_OK).is_ok()
            && access(&dir.join("cgroup.procs"), AccessFlags::W_OK).is_ok()
    }
}

/// The hierarchies mounted here (the first mount of each).
pub fn hierarchies() -> Vec<Hierarchy> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in info.lines() {
        let (left, right) = line.split_once(" - ").unwrap();
        let r: Vec<&str> = right.split_whitespace().collect();
        let point = PathBuf::from(left.split_whitespace().nth(4).unwrap());
        let (v1, mut controllers) = match r[0] {
            "cgroup2" => (false, Vec::new()),
            "cgroup" => (
                true,
                r[2].split(',')
                    .filter(|o| {
                        !["rw", "ro", "xattr", "noprefix", "clone_children"].contains(o)
                            && (o.starts_with("name=") || !o.contains('='))
                    })
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            ),
            _ => continue,
        };
        controllers.sort();
        if out
            .iter()
            .any(|h| h.v1 == v1 && h.controllers == controllers)
        {
            continue;
        }
        let mine = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (id, list, path) = (f.next()?, f.next()?, f.next()?);
            let mut l: Vec<&str> = list.split(',').filter(|s| !s.is_empty()).collect();
            l.sort();
            let same = if v1 {
                id != "0" && l == controllers.iter().map(String::as_str).collect::<Vec<_>>()
            } else {
                id == "0"
            };
            same.then(|| path.to_string())
        });
        out.push(Hierarchy {
            v1,
            point,
            controllers,
            own: mine.unwrap_or_default(),
        });
    }
    out
}

/// The cgroup2 hierarchy.
pub fn v2() -> Hierarchy {
    hierarchies()
        .into_iter()
        .find(|h| !h.v1)
        .expect("no cgroup2 mount in /proc/self/mountinfo")
}

/// The v1 hierarchy that holds `controller`, if one does.
pub fn v1_with(controller: &str) -> Option<Hierarchy> {
    hierarchies()
        .into_iter()
        .find(|h| h.v1 && h.has(controller))
}

/// Whether the cgroup2 directory `v2_dir` offers `controller`.
pub fn v2_holds(controller: &str, v2_dir: &Path) -> bool {
    std::fs::read_to_string(v2_dir.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .any(|c| c == controller)
}

/// The directory of cgroup `path` (cgroupsPath-style: absolute, or
/// relative to this process's own) in hierarchy `h`.
pub fn dir_in(h: &Hierarchy, path: &str) -> PathBuf {
    match path.strip_prefix('/') {
        Some(abs) => h.point.join(abs),
        None => h.own_dir().join(path),
    }
}
