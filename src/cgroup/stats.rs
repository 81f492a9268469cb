//! Usage and limits of a container's cgroup, in the shape of runc's
//! `events --stats` (`data` of a `stats` event), read from cgroup v2 or v1
//! files; and OOM-kill counts.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;
use serde_json::{json, Map, Value};

use super::fs;
use super::OomWatch;
use crate::error::{Error, Result};

/// runc's value for "no limit".
pub const UNLIMITED: u64 = u64::MAX;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    /// By page size as the kernel names it (`2MB`).
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

/// Nanoseconds, as runc reports them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cpu {
    pub total: u64,
    pub kernel: u64,
    pub user: u64,
    pub percpu: Vec<u64>,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryEntry {
    pub limit: u64,
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Memory {
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    /// memory.stat as the kernel writes it.
    pub raw: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pids {
    pub current: u64,
    pub limit: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    /// `Read`, `Write`, `Sync`, `Async`, `Discard`, `Total`.
    pub op: String,
    pub value: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Blkio {
    pub service_bytes: Vec<BlkioEntry>,
    pub serviced: Vec<BlkioEntry>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hugetlb {
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

/// runc leaves out zero values of the fields it marks `omitempty`.
fn put(m: &mut Map<String, Value>, key: &str, v: u64) {
    if v != 0 {
        m.insert(key.into(), v.into());
    }
}

fn entry(e: &MemoryEntry) -> Value {
    let mut m = Map::new();
    m.insert("limit".into(), e.limit.into());
    put(&mut m, "usage", e.usage);
    put(&mut m, "max", e.max);
    m.insert("failcnt".into(), e.failcnt.into());
    Value::Object(m)
}

fn blkio_list(l: &[BlkioEntry]) -> Value {
    l.iter()
        .map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value}))
        .collect()
}

impl Stats {
    /// runc's JSON for it (`events --stats` puts it under `data`).
    pub fn to_json(&self) -> Value {
        let c = &self.cpu;
        let mut usage = Map::new();
        put(&mut usage, "total", c.total);
        if !c.percpu.is_empty() {
            usage.insert("percpu".into(), c.percpu.clone().into());
        }
        usage.insert("kernel".into(), c.kernel.into());
        usage.insert("user".into(), c.user.into());
        let mut throttling = Map::new();
        put(&mut throttling, "periods", c.periods);
        put(&mut throttling, "throttled_periods", c.throttled_periods);
        put(&mut throttling, "throttled_time", c.throttled_time);
        let m = &self.memory;
        let mut memory = Map::new();
        put(&mut memory, "cache", m.cache);
        memory.insert("usage".into(), entry(&m.usage));
        memory.insert("swap".into(), entry(&m.swap));
        memory.insert("kernel".into(), entry(&m.kernel));
        memory.insert("kernelTCP".into(), entry(&MemoryEntry::default()));
        if !m.raw.is_empty() {
            memory.insert("raw".into(), json!(m.raw));
        }
        let mut pids = Map::new();
        put(&mut pids, "current", self.pids.current);
        put(&mut pids, "limit", self.pids.limit);
        let mut blkio = Map::new();
        if !self.blkio.service_bytes.is_empty() {
            blkio.insert(
                "ioServiceBytesRecursive".into(),
                blkio_list(&self.blkio.service_bytes),
            );
        }
        if !self.blkio.serviced.is_empty() {
            blkio.insert(
                "ioServicedRecursive".into(),
                blkio_list(&self.blkio.serviced),
            );
        }
        let hugetlb: Map<String, Value> = self
            .hugetlb
            .iter()
            .map(|(size, h)| {
                let mut e = Map::new();
                put(&mut e, "usage", h.usage);
                put(&mut e, "max", h.max);
                e.insert("failcnt".into(), h.failcnt.into());
                (size.clone(), Value::Object(e))
            })
            .collect();
        json!({
            "cpu": {"usage": usage, "throttling": throttling},
            "memory": memory,
            "pids": pids,
            "blkio": blkio,
            "hugetlb": hugetlb,
        })
    }
}

/// A limit file's value: `max` is [`UNLIMITED`].
fn limit_of(dir: BorrowedFd<'_>, name: &str) -> u64 {
    match fs::read(dir, name) {
        Ok(t) if t.trim() == "max" => UNLIMITED,
        Ok(t) => t.trim().parse().unwrap_or(0),
        Err(_) => 0,
    }
}

fn keyed(dir: BorrowedFd<'_>, name: &str) -> BTreeMap<String, u64> {
    fs::read_keyed(dir, name).into_iter().collect()
}

/// What a cgroup2 directory says (controllers it lacks are left as they are).
pub fn v2(dir: BorrowedFd<'_>, s: &mut Stats) {
    let cpu = keyed(dir, "cpu.stat");
    if !cpu.is_empty() {
        let us = |k: &str| cpu.get(k).copied().unwrap_or(0) * 1000;
        s.cpu.total = us("usage_usec");
        s.cpu.user = us("user_usec");
        s.cpu.kernel = us("system_usec");
        s.cpu.periods = cpu.get("nr_periods").copied().unwrap_or(0);
        s.cpu.throttled_periods = cpu.get("nr_throttled").copied().unwrap_or(0);
        s.cpu.throttled_time = us("throttled_usec");
    }
    if let Some(usage) = fs::read_u64(dir, "memory.current") {
        let stat = keyed(dir, "memory.stat");
        let events = keyed(dir, "memory.events");
        s.memory.cache = stat.get("file").copied().unwrap_or(0);
        s.memory.usage = MemoryEntry {
            limit: limit_of(dir, "memory.max"),
            usage,
            max: fs::read_u64(dir, "memory.peak").unwrap_or(0),
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        // runc reports swap as memory plus swap, as v1 does.
        if let Some(swap) = fs::read_u64(dir, "memory.swap.current") {
            let swap_limit = limit_of(dir, "memory.swap.max");
            let mem_limit = s.memory.usage.limit;
            s.memory.swap = MemoryEntry {
                limit: if swap_limit == UNLIMITED || mem_limit == UNLIMITED {
                    UNLIMITED
                } else {
                    swap_limit + mem_limit
                },
                usage: swap + usage,
                max: 0,
                failcnt: 0,
            };
        }
        s.memory.raw = stat;
    }
    if let Some(current) = fs::read_u64(dir, "pids.current") {
        s.pids = Pids {
            current,
            limit: match limit_of(dir, "pids.max") {
                UNLIMITED => 0,
                l => l,
            },
        };
    }
    if let Ok(io) = fs::read(dir, "io.stat") {
        for line in io.lines() {
            let mut f = line.split_whitespace();
            let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
                continue;
            };
            let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
                continue;
            };
            for kv in f {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let Ok(value) = v.parse() else { continue };
                let (list, op) = match k {
                    "rbytes" => (&mut s.blkio.service_bytes, "Read"),
                    "wbytes" => (&mut s.blkio.service_bytes, "Write"),
                    "rios" => (&mut s.blkio.serviced, "Read"),
                    "wios" => (&mut s.blkio.serviced, "Write"),
                    _ => continue,
                };
                list.push(BlkioEntry {
                    major,
                    minor,
                    op: op.into(),
                    value,
                });
            }
        }
    }
    for size in hugepage_sizes() {
        let Some(usage) = fs::read_u64(dir, &format!("hugetlb.{size}.current")) else {
            continue;
        };
        let events = keyed(dir, &format!("hugetlb.{size}.events"));
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage,
                max: 0,
                failcnt: events.get("max").copied().unwrap_or(0),
            },
        );
    }
}

/// What a v1 hierarchy's directory says, for the controllers it has.
pub fn v1(dir: BorrowedFd<'_>, controllers: &[String], s: &mut Stats) {
    let has = |c: &str| controllers.iter().any(|x| x == c);
    if has("cpuacct") {
        s.cpu.total = fs::read_u64(dir, "cpuacct.usage").unwrap_or(0);
        s.cpu.percpu = fs::read(dir, "cpuacct.usage_percpu")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // cpuacct.stat counts USER_HZ (100 a second) ticks.
        let ticks = keyed(dir, "cpuacct.stat");
        let ns = |k: &str| ticks.get(k).copied().unwrap_or(0) * 10_000_000;
        s.cpu.user = ns("user");
        s.cpu.kernel = ns("system");
    }
    if has("cpu") {
        let cpu = keyed(dir, "cpu.stat");
        s.cpu.periods = cpu.get("nr_periods").copied().unwrap_or(0);
        s.cpu.throttled_periods = cpu.get("nr_throttled").copied().unwrap_or(0);
        s.cpu.throttled_time = cpu.get("throttled_time").copied().unwrap_or(0);
    }
    if has("memory") {
        let entry = |prefix: &str| MemoryEntry {
            limit: fs::read_u64(dir, &format!("{prefix}.limit_in_bytes")).unwrap_or(0),
            usage: fs::read_u64(dir, &format!("{prefix}.usage_in_bytes")).unwrap_or(0),
            max: fs::read_u64(dir, &format!("{prefix}.max_usage_in_bytes")).unwrap_or(0),
            failcnt: fs::read_u64(dir, &format!("{prefix}.failcnt")).unwrap_or(0),
        };
        s.memory.usage = entry("memory");
        s.memory.swap = entry("memory.memsw");
        s.memory.kernel = entry("memory.kmem");
        let stat = keyed(dir, "memory.stat");
        s.memory.cache = stat.get("cache").copied().unwrap_or(0);
        s.memory.raw = stat;
    }
    if has("pids") {
        s.pids = Pids {
            current: fs::read_u64(dir, "pids.current").unwrap_or(0),
            limit: fs::read_u64(dir, "pids.max").unwrap_or(0),
        };
    }
    if has("blkio") {
        s.blkio.service_bytes = blkio_v1(dir, "blkio.throttle.io_service_bytes_recursive");
        s.blkio.serviced = blkio_v1(dir, "blkio.throttle.io_serviced_recursive");
    }
    if has("hugetlb") {
        for size in hugepage_sizes() {
            let f = |k: &str| fs::read_u64(dir, &format!("hugetlb.{size}.{k}"));
            let Some(usage) = f("usage_in_bytes") else {
                continue;
            };
            s.hugetlb.insert(
                size.clone(),
                Hugetlb {
                    usage,
                    max: f("max_usage_in_bytes").unwrap_or(0),
                    failcnt: f("failcnt").unwrap_or(0),
                },
            );
        }
    }
}

/// `MAJ:MIN Op value` lines (the `Total` line without a device is left out).
fn blkio_v1(dir: BorrowedFd<'_>, name: &str) -> Vec<BlkioEntry> {
    fs::read(dir, name)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f[..] else {
                return None;
            };
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// The huge page sizes the kernel has, as cgroup files name them (`2MB`).
pub fn hugepage_sizes() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(list) = std::fs::read_dir("/sys/kernel/mm/hugepages") {
        for e in list.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(kb) = name
                .strip_prefix("hugepages-")
                .and_then(|n| n.strip_suffix("kB"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            out.push(match kb {
                k if k >= 1 << 20 => format!("{}GB", k >> 20),
                k if k >= 1 << 10 => format!("{}MB", k >> 10),
                k => format!("{k}KB"),
            });
        }
    }
    out.sort();
    out
}

/// How OOM kills are counted for a watch.
#[derive(Debug)]
pub enum OomKind {
    /// memory.events' `oom_kill` when last read.
    V2 { last: u64 },
    /// An eventfd the kernel signals on each OOM (its registration on
    /// memory.oom_control lasts while the fd and the cgroup live).
    V1,
}

/// Open `memory.events` for a watch (the kernel flags it on change).
pub fn v2_oom_watch(dir: BorrowedFd<'_>, path: &Path) -> Result<OomWatch> {
    let fd: OwnedFd = openat(
        dir,
        "memory.events",
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open", path.join("memory.events"), e))?;
    let last =
        oom_kills(fd.as_fd()).map_err(|e| Error::sys("read", path.join("memory.events"), e))?;
    Ok(OomWatch {
        fd,
        kind: OomKind::V2 { last },
    })
}

/// Register an eventfd for OOM events of the v1 memory cgroup `dir`.
pub fn v1_oom_watch(dir: BorrowedFd<'_>, path: &Path) -> Result<OomWatch> {
    let efd: OwnedFd = nix::sys::eventfd::EventFd::from_flags(
        nix::sys::eventfd::EfdFlags::EFD_CLOEXEC | nix::sys::eventfd::EfdFlags::EFD_NONBLOCK,
    )
    .map_err(|e| Error::call("make an eventfd", e))?
    .into();
    let control: OwnedFd = openat(
        dir,
        "memory.oom_control",
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open", path.join("memory.oom_control"), e))?;
    use std::os::fd::AsRawFd;
    let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
    fs::write(dir, "cgroup.event_control", &line)
        .map_err(|e| Error::sys("write", path.join("cgroup.event_control"), e))?;
    Ok(OomWatch {
        fd: efd,
        kind: OomKind::V1,
    })
}

fn oom_kills(fd: BorrowedFd<'_>) -> nix::Result<u64> {
    let mut buf = [0u8; 512];
    let n = nix::sys::uio::pread(fd, &mut buf, 0)?;
    Ok(String::from_utf8_lossy(&buf[..n])
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

pub fn oom_count(fd: BorrowedFd<'_>, kind: &mut OomKind) -> Result<u64> {
    match kind {
        OomKind::V2 { last } => {
            let now = oom_kills(fd).map_err(|e| Error::call("read memory.events", e))?;
            let new = now.saturating_sub(*last);
            *last = now;
            Ok(new)
        }
        OomKind::V1 => {
            let mut buf = [0u8; 8];
            match nix::unistd::read(fd, &mut buf) {
                Ok(8) => Ok(u64::from_ne_bytes(buf)),
                Ok(_) => Ok(0),
                Err(nix::errno::Errno::EAGAIN) => Ok(0),
                Err(e) => Err(Error::call("read the OOM eventfd", e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_runcs_shape() {
        let mut s = Stats::default();
        s.memory.usage = MemoryEntry {
            limit: UNLIMITED,
            usage: 10,
            max: 0,
            failcnt: 0,
        };
        s.pids = Pids {
            current: 2,
            limit: 5,
        };
        s.hugetlb.insert(
            "2MB".into(),
            Hugetlb {
                usage: 0,
                max: 0,
                failcnt: 0,
            },
        );
        let j = s.to_json();
        assert_eq!(j["memory"]["usage"]["limit"], UNLIMITED);
        assert_eq!(j["memory"]["usage"]["usage"], 10);
        assert_eq!(j["pids"], json!({"current": 2, "limit": 5}));
        assert_eq!(j["hugetlb"]["2MB"], json!({"failcnt": 0}));
        assert_eq!(j["cpu"]["usage"], json!({"kernel": 0, "user": 0}));
    }
}
