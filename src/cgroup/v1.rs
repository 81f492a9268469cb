//! cgroup v1: the container's directory in each v1 hierarchy.
//!
//! [`settings`] maps checked `linux.resources` (and the device rules) to
//! v1 files; [`Part::setup`] writes those of the controllers its hierarchy
//! has. As runc and crun do: a new `cpuset` cgroup gets its parent's
//! `cpus` and `mems` (the kernel leaves them empty, and an empty cpuset
//! takes no process); the memory limit and memory+swap limit are written
//! in whichever order the kernel accepts (memsw may never be below the
//! limit); `blkio.weight` falls back to `blkio.bfq.weight` on kernels
//! whose only weight is BFQ's; the device rules start from deny-all. The
//! container process joins by its pid written to each `cgroup.procs`
//! (through files opened at create, so `exec`'s child can write `0` after
//! joining the container's namespaces). Freezing is the `freezer`
//! hierarchy; OOM events an eventfd registered on `memory.oom_control`.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::fs::{self, Fs};
use super::hier::Hierarchy;
use super::stats::{self, Stats};
use super::{DeviceRule, OomWatch, Setting};
use crate::error::{Error, Result};

/// `-1` (or any negative value) is unlimited, as v1 files take it.
fn limit(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

/// The cgroup v1 files for checked resources and the device rules, in
/// the order they are written.
pub fn settings(r: &oci_spec::runtime::LinuxResources, devices: &[DeviceRule]) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut put =
        |field: &str, file: &str, value: String| out.push(Setting::new(field, file, value));
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            put(
                "linux.resources.memory.limit",
                "memory.limit_in_bytes",
                limit(l),
            );
        }
        if let Some(s) = m.swap().filter(|s| *s != 0) {
            put(
                "linux.resources.memory.swap",
                "memory.memsw.limit_in_bytes",
                limit(s),
            );
        }
        if let Some(l) = m.reservation() {
            put(
                "linux.resources.memory.reservation",
                "memory.soft_limit_in_bytes",
                limit(l),
            );
        }
        if let Some(k) = m.kernel_tcp() {
            put(
                "linux.resources.memory.kernelTCP",
                "memory.kmem.tcp.limit_in_bytes",
                limit(k),
            );
        }
        if let Some(s) = m.swappiness() {
            put(
                "linux.resources.memory.swappiness",
                "memory.swappiness",
                s.to_string(),
            );
        }
        if m.disable_oom_killer() == Some(true) {
            put(
                "linux.resources.memory.disableOOMKiller",
                "memory.oom_control",
                "1".into(),
            );
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            put("linux.resources.cpu.shares", "cpu.shares", s.to_string());
        }
        // The period first: a quota is checked against it.
        if let Some(p) = c.period().filter(|p| *p != 0) {
            put(
                "linux.resources.cpu.period",
                "cpu.cfs_period_us",
                p.to_string(),
            );
        }
        if let Some(q) = c.quota().filter(|q| *q != 0) {
            put("linux.resources.cpu.quota", "cpu.cfs_quota_us", limit(q));
        }
        if let Some(b) = c.burst() {
            put(
                "linux.resources.cpu.burst",
                "cpu.cfs_burst_us",
                b.to_string(),
            );
        }
        if let Some(i) = c.idle() {
            put("linux.resources.cpu.idle", "cpu.idle", i.to_string());
        }
        if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
            put(
                "linux.resources.cpu.realtimePeriod",
                "cpu.rt_period_us",
                p.to_string(),
            );
        }
        if let Some(rt) = c.realtime_runtime() {
            put(
                "linux.resources.cpu.realtimeRuntime",
                "cpu.rt_runtime_us",
                rt.to_string(),
            );
        }
        if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            put("linux.resources.cpu.cpus", "cpuset.cpus", s.to_string());
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            put("linux.resources.cpu.mems", "cpuset.mems", s.to_string());
        }
    }
    if let Some(p) = r.pids() {
        let l = p.limit();
        put(
            "linux.resources.pids.limit",
            "pids.max",
            if l <= 0 { "max".into() } else { l.to_string() },
        );
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            put(
                "linux.resources.blockIO.weight",
                "blkio.weight",
                w.to_string(),
            );
        }
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            put(
                "linux.resources.blockIO.leafWeight",
                "blkio.leaf_weight",
                w.to_string(),
            );
        }
        for d in b.weight_device().as_deref().unwrap_or_default() {
            let dev = format!("{}:{}", d.major(), d.minor());
            if let Some(w) = d.weight().filter(|w| *w != 0) {
                put(
                    "linux.resources.blockIO.weightDevice",
                    "blkio.weight_device",
                    format!("{dev} {w}"),
                );
            }
            if let Some(w) = d.leaf_weight().filter(|w| *w != 0) {
                put(
                    "linux.resources.blockIO.weightDevice",
                    "blkio.leaf_weight_device",
                    format!("{dev} {w}"),
                );
            }
        }
        let throttles = [
            (
                "throttleReadBpsDevice",
                "read_bps",
                b.throttle_read_bps_device(),
            ),
            (
                "throttleWriteBpsDevice",
                "write_bps",
                b.throttle_write_bps_device(),
            ),
            (
                "throttleReadIOPSDevice",
                "read_iops",
                b.throttle_read_iops_device(),
            ),
            (
                "throttleWriteIOPSDevice",
                "write_iops",
                b.throttle_write_iops_device(),
            ),
        ];
        for (name, key, list) in throttles {
            for d in list.as_deref().unwrap_or_default() {
                put(
                    &format!("linux.resources.blockIO.{name}"),
                    &format!("blkio.throttle.{key}_device"),
                    format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                );
            }
        }
    }
    for h in r.hugepage_limits().as_deref().unwrap_or_default() {
        put(
            "linux.resources.hugepageLimits",
            &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
            limit(h.limit()),
        );
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            put(
                "linux.resources.network.classID",
                "net_cls.classid",
                id.to_string(),
            );
        }
        for p in n.priorities().as_deref().unwrap_or_default() {
            put(
                "linux.resources.network.priorities",
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
            );
        }
    }
    let rdma: BTreeMap<_, _> = r.rdma().clone().unwrap_or_default().into_iter().collect();
    for (dev, l) in rdma {
        let n = |v: Option<u32>| v.map_or("max".to_string(), |v| v.to_string());
        put(
            "linux.resources.rdma",
            "rdma.max",
            format!(
                "{dev} hca_handle={} hca_object={}",
                n(l.hca_handles()),
                n(l.hca_objects())
            ),
        );
    }
    // Devices: deny all, then the rules in order.
    if !devices.is_empty() {
        put("linux.resources.devices", "devices.deny", "a".into());
    }
    for d in devices {
        let file = if d.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        put("linux.resources.devices", file, d.to_v1());
    }
    out
}

/// The container's cgroup in one v1 hierarchy.
#[derive(Debug)]
pub struct Part {
    /// The hierarchy's controllers (`cpu,cpuacct`, `name=systemd`).
    pub key: String,
    pub controllers: Vec<String>,
    pub path: PathBuf,
    dir: OwnedFd,
    /// `cgroup.procs`, open for writing: how processes join.
    procs: OwnedFd,
}

impl Part {
    /// Take the directory `d` made in hierarchy `h`, set up its new
    /// cpusets, and write the settings its controllers take.
    pub fn setup(d: fs::Dir, h: &Hierarchy, settings: &[Setting]) -> Result<Part> {
        let part = Part::from_dir(h.key(), h.controllers.clone(), d.fd, d.path)?;
        if h.has("cpuset") {
            // Top down: each directory made gets its parent's cpus and mems.
            for made in d.made.iter().rev() {
                inherit_cpuset(made)?;
            }
        }
        part.write(settings)?;
        Ok(part)
    }

    fn from_dir(
        key: String,
        controllers: Vec<String>,
        dir: OwnedFd,
        path: PathBuf,
    ) -> Result<Part> {
        let procs = fs::open_file(dir.as_fd(), "cgroup.procs")
            .map_err(|e| Error::sys("open", path.join("cgroup.procs"), e))?;
        Ok(Part {
            key,
            controllers,
            path,
            dir,
            procs,
        })
    }

    /// Reopen the part recorded as `key` at `path`.
    pub fn open(key: &str, path: &Path) -> Result<Part> {
        let dir = fs::open_cgroup(path, Fs::V1)?;
        let controllers = key.split(',').map(str::to_string).collect();
        Part::from_dir(key.to_string(), controllers, dir, path.to_path_buf())
    }

    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Whether this part takes setting `s`.
    pub fn takes(&self, s: &Setting) -> bool {
        s.controller().is_some_and(|c| self.has(c))
    }

    /// Move process `pid` (0: the caller) into this cgroup.
    pub fn enter(&self, pid: i32) -> Result<()> {
        nix::unistd::write(&self.procs, pid.to_string().as_bytes())
            .map(drop)
            .map_err(|e| Error::sys("join cgroup", self.path.join("cgroup.procs"), e))
    }

    /// Write the settings this hierarchy's controllers take, in order;
    /// memory limits the kernel refuses for their order are retried once
    /// the others are written.
    pub fn write(&self, settings: &[Setting]) -> Result<()> {
        let mut later: Vec<&Setting> = Vec::new();
        for s in settings.iter().filter(|s| self.takes(s)) {
            match self.write_one(s) {
                Err(Errno::EINVAL)
                    if s.file.starts_with("memory.") && s.file.ends_with("limit_in_bytes") =>
                {
                    later.push(s)
                }
                r => self.check(s, r)?,
            }
        }
        for s in later {
            let r = self.write_one(s);
            self.check(s, r)?;
        }
        Ok(())
    }

    fn write_one(&self, s: &Setting) -> nix::Result<()> {
        match fs::write(self.dir(), &s.file, &s.value) {
            // Kernels whose only blkio weight is BFQ's.
            Err(Errno::ENOENT) if s.file == "blkio.weight" || s.file == "blkio.weight_device" => {
                let bfq = s.file.replace("blkio.", "blkio.bfq.");
                fs::write(self.dir(), &bfq, &s.value)
            }
            r => r,
        }
    }

    fn check(&self, s: &Setting, r: nix::Result<()>) -> Result<()> {
        match r {
            Ok(()) => Ok(()),
            Err(Errno::ENOENT) => {
                tracing::warn!(
                    "{} is ignored: cgroup `{}` has no file {}",
                    s.field,
                    self.path.display(),
                    s.file
                );
                Ok(())
            }
            Err(e) => Err(Error::call(
                format!(
                    "write `{}` to `{}` for {}",
                    s.value,
                    self.path.join(&s.file).display(),
                    s.field
                ),
                e,
            )),
        }
    }

    /// Freeze (`FROZEN`) or thaw (`THAWED`), and wait until the freezer says so.
    pub fn set_frozen(&self, on: bool) -> Result<()> {
        let want = if on { "FROZEN" } else { "THAWED" };
        // v1 may stop at FREEZING: the state is written again each time.
        fs::wait_for_freezer(&self.path, on, || {
            fs::write(self.dir(), "freezer.state", want)
                .map_err(|e| Error::sys("write", self.path.join("freezer.state"), e))?;
            Ok(self.freezer_state()? == want)
        })
    }

    fn freezer_state(&self) -> Result<String> {
        fs::read(self.dir(), "freezer.state")
            .map(|s| s.trim().to_string())
            .map_err(|e| Error::sys("read", self.path.join("freezer.state"), e))
    }

    pub fn is_frozen(&self) -> Result<bool> {
        Ok(self.freezer_state()? == "FROZEN")
    }

    pub fn stats(&self, s: &mut Stats) {
        stats::v1(self.dir(), &self.controllers, s);
    }

    pub fn pids(&self) -> Result<Vec<i32>> {
        fs::pids_below(self.dir())
            .map_err(|e| Error::sys("read", self.path.join("cgroup.procs"), e))
    }

    pub fn oom_watch(&self) -> Result<OomWatch> {
        stats::v1_oom_watch(self.dir(), &self.path)
    }
}

/// Give the new cpuset cgroup at `path` its parent's cpus and mems where
/// it has none.
fn inherit_cpuset(path: &Path) -> Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    let p = fs::open_cgroup(parent, Fs::V1)?;
    let d = fs::open_cgroup(path, Fs::V1)?;
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mine = fs::read(d.as_fd(), file).unwrap_or_default();
        if !mine.trim().is_empty() {
            continue;
        }
        let theirs =
            fs::read(p.as_fd(), file).map_err(|e| Error::sys("read", parent.join(file), e))?;
        fs::write(d.as_fd(), file, theirs.trim())
            .map_err(|e| Error::sys("write", path.join(file), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_map_to_v1_files() {
        let l = super::super::plan::tests::linux(serde_json::json!({"resources": {
            "memory": {"limit": 1000, "reservation": -1, "swap": 3000, "swappiness": 30, "disableOOMKiller": true},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "realtimeRuntime": 0, "realtimePeriod": 1000000, "cpus": "0"},
            "pids": {"limit": 10},
            "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 100}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 5}]}
        }}));
        let p = super::super::plan(&l).unwrap().unwrap();
        let s = settings(&p.resources, &[]);
        let got: Vec<(&str, &str)> = s
            .iter()
            .map(|s| (s.file.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("memory.limit_in_bytes", "1000"),
                ("memory.memsw.limit_in_bytes", "3000"),
                ("memory.soft_limit_in_bytes", "-1"),
                ("memory.swappiness", "30"),
                ("memory.oom_control", "1"),
                ("cpu.shares", "512"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000"),
                ("cpu.rt_period_us", "1000000"),
                ("cpu.rt_runtime_us", "0"),
                ("cpuset.cpus", "0"),
                ("pids.max", "10"),
                ("blkio.weight", "500"),
                ("blkio.throttle.read_bps_device", "8:0 100"),
                ("hugetlb.2MB.limit_in_bytes", "4194304"),
                ("net_cls.classid", "1048577"),
                ("net_prio.ifpriomap", "lo 5"),
            ]
        );
    }

    #[test]
    fn device_rules_start_from_deny_all() {
        let rules = [
            DeviceRule {
                allow: false,
                typ: 'a',
                major: None,
                minor: None,
                access: "rwm".into(),
            },
            DeviceRule {
                allow: true,
                typ: 'c',
                major: Some(1),
                minor: Some(3),
                access: "rwm".into(),
            },
            DeviceRule {
                allow: true,
                typ: 'c',
                major: Some(136),
                minor: None,
                access: "rwm".into(),
            },
        ];
        let s = settings(&Default::default(), &rules);
        let got: Vec<(&str, &str)> = s
            .iter()
            .map(|s| (s.file.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("devices.deny", "a"),
                ("devices.deny", "a *:* rwm"),
                ("devices.allow", "c 1:3 rwm"),
                ("devices.allow", "c 136:* rwm"),
            ]
        );
    }
}
