//! cgroup v2: the container's directory on the cgroup2 mount.
//!
//! [`settings`] maps checked `linux.resources` to cgroup v2 files;
//! [`setup`] enables the controllers they need in the parents'
//! `cgroup.subtree_control` (from the top of what hutch made down) and
//! writes them. A setting whose file does not exist (its controller is
//! not available there, or is in a v1 hierarchy on a hybrid host) is one
//! warning naming the field. Freezing is `cgroup.freeze`, usage comes from
//! the controllers' stat files, OOM kills from `memory.events`.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::fs::{self, Fs};
use super::stats::{self, Stats};
use super::{OomWatch, Setting};
use crate::error::{Error, Result};

/// `-1` (or any negative value) is unlimited.
fn limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// cgroup v1 cpu.shares (2 to 262144) → v2 cpu.weight (1 to 10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// cgroup v1 blkio weight (10 to 1000) → v2 io.weight (1 to 10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + ((w - 10) * 9999) / 990
}

/// The cgroup v2 files for checked resources (see `super::check`), in
/// order; the `unified` entries come last, so they win.
pub fn settings(r: &oci_spec::runtime::LinuxResources) -> Vec<Setting> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            out.push(Setting::new(
                "linux.resources.memory.limit",
                "memory.max",
                limit(l),
            ));
        }
        if let Some(l) = m.reservation() {
            out.push(Setting::new(
                "linux.resources.memory.reservation",
                "memory.low",
                limit(l),
            ));
        }
        // v1's swap is memory+swap; v2's memory.swap.max is swap alone.
        match (m.swap(), m.limit()) {
            (Some(s), _) if s < 0 => out.push(Setting::new(
                "linux.resources.memory.swap",
                "memory.swap.max",
                "max",
            )),
            (Some(s), Some(l)) if s > 0 && l >= 0 && s >= l => out.push(Setting::new(
                "linux.resources.memory.swap",
                "memory.swap.max",
                s - l,
            )),
            _ => {}
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            out.push(Setting::new(
                "linux.resources.cpu.shares",
                "cpu.weight",
                shares_to_weight(s),
            ));
        }
        let quota = c.quota().filter(|q| *q != 0);
        let period = c.period().filter(|p| *p != 0);
        if quota.is_some() || period.is_some() {
            let q = match quota {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".to_string(),
            };
            let value = match period {
                Some(p) => format!("{q} {p}"),
                None => q,
            };
            out.push(Setting::new("linux.resources.cpu.quota", "cpu.max", value));
        }
        if let Some(b) = c.burst() {
            out.push(Setting::new(
                "linux.resources.cpu.burst",
                "cpu.max.burst",
                b,
            ));
        }
        if let Some(i) = c.idle() {
            out.push(Setting::new("linux.resources.cpu.idle", "cpu.idle", i));
        }
        if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            out.push(Setting::new("linux.resources.cpu.cpus", "cpuset.cpus", s));
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            out.push(Setting::new("linux.resources.cpu.mems", "cpuset.mems", s));
        }
    }
    if let Some(p) = r.pids() {
        let l = p.limit();
        out.push(Setting::new(
            "linux.resources.pids.limit",
            "pids.max",
            if l <= 0 { "max".into() } else { l.to_string() },
        ));
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            out.push(Setting::new(
                "linux.resources.blockIO.weight",
                "io.weight",
                format!("default {}", blkio_to_io_weight(w)),
            ));
        }
        for d in b.weight_device().as_deref().unwrap_or_default() {
            if let Some(w) = d.weight().filter(|w| *w != 0) {
                out.push(Setting::new(
                    "linux.resources.blockIO.weightDevice",
                    "io.weight",
                    format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(w)),
                ));
            }
        }
        let throttles = [
            (
                "throttleReadBpsDevice",
                "rbps",
                b.throttle_read_bps_device(),
            ),
            (
                "throttleWriteBpsDevice",
                "wbps",
                b.throttle_write_bps_device(),
            ),
            (
                "throttleReadIOPSDevice",
                "riops",
                b.throttle_read_iops_device(),
            ),
            (
                "throttleWriteIOPSDevice",
                "wiops",
                b.throttle_write_iops_device(),
            ),
        ];
        for (name, key, list) in throttles {
            for d in list.as_deref().unwrap_or_default() {
                let rate = if d.rate() == 0 {
                    "max".to_string()
                } else {
                    d.rate().to_string()
                };
                out.push(Setting::new(
                    &format!("linux.resources.blockIO.{name}"),
                    "io.max",
                    format!("{}:{} {key}={rate}", d.major(), d.minor()),
                ));
            }
        }
    }
    for h in r.hugepage_limits().as_deref().unwrap_or_default() {
        out.push(Setting::new(
            "linux.resources.hugepageLimits",
            &format!("hugetlb.{}.max", h.page_size()),
            limit(h.limit()),
        ));
    }
    let rdma: BTreeMap<_, _> = r.rdma().clone().unwrap_or_default().into_iter().collect();
    for (dev, l) in rdma {
        let n = |v: Option<u32>| v.map_or("max".to_string(), |v| v.to_string());
        out.push(Setting::new(
            "linux.resources.rdma",
            "rdma.max",
            format!(
                "{dev} hca_handle={} hca_object={}",
                n(l.hca_handles()),
                n(l.hca_objects())
            ),
        ));
    }
    let unified: BTreeMap<_, _> = r
        .unified()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (key, value) in unified {
        out.push(Setting::new(
            &format!("linux.resources.unified.{key}"),
            &key,
            value,
        ));
    }
    out
}

/// The container's cgroup2 directory.
#[derive(Debug)]
pub struct Cgroup {
    dir: OwnedFd,
    /// Its path in the file system (`/sys/fs/cgroup/unified/a/b`).
    pub path: PathBuf,
}

/// Enable the controllers `settings` need (in the parents of the
/// directories `d` made), then write them.
pub fn setup(d: fs::Dir, settings: &[Setting]) -> Result<Cgroup> {
    let mut needed: Vec<&str> = settings.iter().filter_map(Setting::controller).collect();
    needed.sort();
    needed.dedup();
    let unavailable = enable_controllers(&d.path, &d.made, &needed);
    let cg = Cgroup {
        dir: d.fd,
        path: d.path,
    };
    cg.write_with(settings, &unavailable)?;
    Ok(cg)
}

impl Cgroup {
    /// Open the cgroup2 directory at `path` (an existing container's).
    pub fn open(path: &Path) -> Result<Cgroup> {
        Ok(Cgroup {
            dir: fs::open_cgroup(path, Fs::V2)?,
            path: path.to_path_buf(),
        })
    }

    pub fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Write `settings` (`update`).
    pub fn write(&self, settings: &[Setting]) -> Result<()> {
        self.write_with(settings, &BTreeMap::new())
    }

    fn write_with(
        &self,
        settings: &[Setting],
        unavailable: &BTreeMap<String, String>,
    ) -> Result<()> {
        for s in settings {
            let file = self.path.join(&s.file);
            match fs::write(self.dir(), &s.file, &s.value) {
                Ok(()) => {}
                Err(Errno::ENOENT) => {
                    let why = s
                        .controller()
                        .and_then(|c| unavailable.get(c))
                        .map(|w| format!(" ({w})"))
                        .unwrap_or_default();
                    tracing::warn!(
                        "{} is ignored: cgroup `{}` has no file {}{why}",
                        s.field,
                        self.path.display(),
                        s.file
                    );
                }
                Err(e) => {
                    return Err(Error::call(
                        format!(
                            "write `{}` to `{}` for {}",
                            s.value,
                            file.display(),
                            s.field
                        ),
                        e,
                    ))
                }
            }
        }
        Ok(())
    }

    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    /// Write `cgroup.freeze` and wait (up to 5 s) for `cgroup.events` to
    /// say the cgroup got there.
    fn set_frozen(&self, on: bool) -> Result<()> {
        let value = if on { "1" } else { "0" };
        fs::write(self.dir(), "cgroup.freeze", value)
            .map_err(|e| Error::sys("write", self.path.join("cgroup.freeze"), e))?;
        fs::wait_for_freezer(&self.path, on, || Ok(self.is_frozen()? == on))
    }

    pub fn is_frozen(&self) -> Result<bool> {
        let events = fs::read(self.dir(), "cgroup.events")
            .map_err(|e| Error::sys("read", self.path.join("cgroup.events"), e))?;
        Ok(events.lines().any(|l| l.trim() == "frozen 1"))
    }

    /// Fill in what the cgroup2 directory has (controllers in v1
    /// hierarchies leave their parts to the v1 backend).
    pub fn stats(&self, s: &mut Stats) {
        stats::v2(self.dir(), s);
    }

    pub fn oom_watch(&self) -> Result<OomWatch> {
        stats::v2_oom_watch(self.dir(), &self.path)
    }
}

/// Enable each needed controller from the top of what hutch made down to
/// the container's cgroup at `path`; what cannot be enabled comes back
/// with the reason (it is not an error: the settings that need it are
/// warned about).
fn enable_controllers(path: &Path, made: &[PathBuf], needed: &[&str]) -> BTreeMap<String, String> {
    let mut why = BTreeMap::new();
    if needed.is_empty() {
        return why;
    }
    // The parents to enable in: that of the topmost directory hutch made,
    // then each one it made above the container's cgroup.
    let top = made.last().map(PathBuf::as_path).unwrap_or(path);
    let mut chain: Vec<PathBuf> = Vec::new();
    let mut p = path.parent();
    while let Some(dir) = p {
        chain.push(dir.to_path_buf());
        if dir == top.parent().unwrap_or(dir) {
            break;
        }
        p = dir.parent();
    }
    chain.reverse();
    for c in needed {
        for dir in &chain {
            if let Err(reason) = enable_in(dir, c) {
                why.insert(c.to_string(), reason);
                break;
            }
        }
    }
    why
}

/// Enable controller `c` in `dir/cgroup.subtree_control` unless it is
/// enabled already.
fn enable_in(dir: &Path, c: &str) -> std::result::Result<(), String> {
    let fd = fs::open_dir(nix::fcntl::AT_FDCWD, dir)
        .map_err(|e| format!("open `{}`: {}", dir.display(), e.desc()))?;
    let read = |name: &str| fs::read(fd.as_fd(), name).unwrap_or_default();
    let has = |text: &str| text.split_whitespace().any(|w| w == c);
    if has(&read("cgroup.subtree_control")) {
        return Ok(());
    }
    if !has(&read("cgroup.controllers")) {
        return Err(format!(
            "the {c} controller is not available in `{}`",
            dir.display()
        ));
    }
    let control = dir.join("cgroup.subtree_control");
    fs::write(fd.as_fd(), "cgroup.subtree_control", &format!("+{c}"))
        .map_err(|e| format!("enable {c} in `{}`: {}", control.display(), e.desc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_map_to_v2_files() {
        let l = super::super::plan::tests::linux(serde_json::json!({"resources": {
            "memory": {"limit": 1000, "reservation": -1, "swap": 3000},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1"},
            "pids": {"limit": 10},
            "blockIO": {"weight": 500},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "unified": {"cgroup.max.descendants": "3"}
        }}));
        let p = super::super::plan(&l).unwrap().unwrap();
        assert_eq!(p.place, super::super::Where::Default);
        let s = settings(&p.resources);
        let got: Vec<(&str, &str)> = s
            .iter()
            .map(|s| (s.file.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("memory.max", "1000"),
                ("memory.low", "max"),
                ("memory.swap.max", "2000"),
                ("cpu.weight", "39"),
                ("cpu.max", "50000 100000"),
                ("cpuset.cpus", "0-1"),
                ("pids.max", "10"),
                ("io.weight", "default 4950"),
                ("hugetlb.2MB.max", "4194304"),
                ("cgroup.max.descendants", "3"),
            ]
        );
    }

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }
}
