//! cgroup v2: `linux.cgroupsPath` and `linux.resources`.
//!
//! [`plan`] turns the config's fields into a [`CgroupPlan`] (where, and
//! which files get which values) before any fork; a config with neither a
//! cgroupsPath nor a resource that differs from a new cgroup's defaults
//! gets none, and then hutch does no cgroup I/O at all.
//!
//! At `create`, [`prepare`] finds the cgroup2 mount (from
//! `/proc/self/mountinfo`), makes the cgroup one directory at a time by fd
//! (mode 0755, never following a symlink), enables the controllers the
//! settings need in the parents' `cgroup.subtree_control`, and writes the
//! settings; the container process is then cloned into it
//! (`clone3(CLONE_INTO_CGROUP)`, [`Cgroup::dir`]), so it runs nothing
//! outside it, and makes its cgroup namespace there. Where the caller may not make the cgroup (no delegated
//! subtree: EACCES, EPERM, EROFS), one warning says so and the container
//! runs without it. A setting whose file does not exist (its controller is
//! not available there) is one warning naming the field.
//!
//! `delete` removes the directories hutch made ([`remove`]), killing what
//! is left in them through `cgroup.kill`. cgroup v1 hierarchies are never
//! touched.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::features::gate;

/// Where the container's cgroup is, as the config says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Where {
    /// Below the root of the cgroup2 tree the caller sees.
    Absolute(PathBuf),
    /// Below the caller's own cgroup (as runc does).
    Relative(PathBuf),
    /// No cgroupsPath: `hutch-ID` below the caller's own cgroup.
    Default,
}

/// One value to write to one file of the container's cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The config field it comes from, for messages.
    pub field: String,
    /// The file name in the cgroup (`memory.max`).
    pub file: String,
    pub value: String,
}

impl Setting {
    fn new(field: &str, file: &str, value: impl ToString) -> Setting {
        Setting {
            field: field.to_string(),
            file: file.to_string(),
            value: value.to_string(),
        }
    }

    /// The controller that provides the file, `None` for core files.
    fn controller(&self) -> Option<&str> {
        match self.file.split_once('.') {
            Some(("cgroup", _)) | None => None,
            Some((c, _)) => Some(c),
        }
    }
}

/// The container's cgroup: where, and what to write there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupPlan {
    pub place: Where,
    /// The config's cgroupsPath as written, for messages.
    pub configured: Option<String>,
    /// In order; the `unified` entries come last, so they win.
    pub settings: Vec<Setting>,
}

/// Core files a `unified` key may not name: they move processes, kill or
/// freeze them, or change the tree rather than limit it.
const REFUSED_UNIFIED: &[&str] = &[
    "cgroup.procs",
    "cgroup.threads",
    "cgroup.subtree_control",
    "cgroup.kill",
    "cgroup.freeze",
    "cgroup.type",
    "cgroup.controllers",
    "cgroup.events",
    "cgroup.stat",
];

/// Turn `linux.cgroupsPath` and `linux.resources` into a plan; `None`
/// when there is nothing to do.
pub fn plan(linux: &oci_spec::runtime::Linux) -> Result<Option<CgroupPlan>> {
    let mut place = None;
    let mut configured = None;
    if let Some(p) = linux.cgroups_path() {
        gate("linux.cgroupsPath")?;
        let text = p.to_string_lossy().into_owned();
        if is_systemd_form(&text) {
            crate::features::config_warning(format_args!(
                "linux.cgroupsPath `{text}` is ignored: it is in systemd's slice:prefix:name form, and hutch has no systemd driver"
            ));
        } else {
            place = Some(check_path(&text)?);
            configured = Some(text);
        }
    }
    let settings = match linux.resources() {
        Some(r) => settings(r)?,
        None => Vec::new(),
    };
    // A value of `max` is what a new cgroup has already.
    let limits = settings.iter().any(|s| s.value != "max");
    Ok(match place {
        Some(place) => Some(CgroupPlan {
            place,
            configured,
            settings,
        }),
        None if limits => Some(CgroupPlan {
            place: Where::Default,
            configured: None,
            settings,
        }),
        None => None,
    })
}

/// `slice:prefix:name`, the form runc's systemd driver takes.
fn is_systemd_form(p: &str) -> bool {
    !p.starts_with('/') && p.split(':').count() == 3
}

fn check_path(text: &str) -> Result<Where> {
    let bad = |why: &str| Error::Config(format!("linux.cgroupsPath `{text}`: {why}"));
    if text.is_empty() {
        return Err(bad("the path is empty"));
    }
    if text.contains('\0') {
        return Err(bad("the path contains a NUL byte"));
    }
    let path = Path::new(text);
    let mut clean = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(bad("`..` is not allowed")),
            Component::Normal(n) => clean.push(n),
            Component::Prefix(_) => return Err(bad("not a cgroup path")),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(bad("it names no cgroup below the root"));
    }
    Ok(if path.is_absolute() {
        Where::Absolute(clean)
    } else {
        Where::Relative(clean)
    })
}

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

/// The settings of `linux.resources`, each field through the table.
fn settings(r: &oci_spec::runtime::LinuxResources) -> Result<Vec<Setting>> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        if m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.use_hierarchy().is_some()
            || m.check_before_update().is_some()
        {
            gate("linux.resources.memory")?;
        }
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
            (None | Some(0), _) => {}
            (Some(s), _) if s < 0 => out.push(Setting::new(
                "linux.resources.memory.swap",
                "memory.swap.max",
                "max",
            )),
            (Some(_), None) => {
                return Err(Error::Config(
                    "linux.resources.memory.swap needs memory.limit on cgroup v2".into(),
                ))
            }
            (Some(_), Some(l)) if l < 0 => {
                return Err(Error::Config(
                    "linux.resources.memory.swap needs a memory.limit that is not -1 on cgroup v2"
                        .into(),
                ))
            }
            (Some(s), Some(l)) if s < l => {
                return Err(Error::Config(format!(
                    "linux.resources.memory.swap {s} is below memory.limit {l} (swap counts memory plus swap)"
                )))
            }
            (Some(s), Some(l)) => out.push(Setting::new(
                "linux.resources.memory.swap",
                "memory.swap.max",
                s - l,
            )),
        }
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            gate("linux.resources.memory.kernel")?;
        }
        if m.swappiness().is_some() {
            gate("linux.resources.memory.swappiness")?;
        }
        if m.disable_oom_killer() == Some(true) {
            gate("linux.resources.memory.disableOOMKiller")?;
        }
    }
    if let Some(c) = r.cpu() {
        let used = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.idle().is_some()
            || c.cpus().is_some()
            || c.mems().is_some();
        if used {
            gate("linux.resources.cpu")?;
        }
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
            out.push(Setting::new(
                "linux.resources.cpu.cpus",
                "cpuset.cpus",
                one_line("linux.resources.cpu.cpus", s)?,
            ));
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            out.push(Setting::new(
                "linux.resources.cpu.mems",
                "cpuset.mems",
                one_line("linux.resources.cpu.mems", s)?,
            ));
        }
        if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
            gate("linux.resources.cpu.realtime")?;
        }
    }
    if let Some(p) = r.pids() {
        gate("linux.resources.pids")?;
        let l = p.limit();
        out.push(Setting::new(
            "linux.resources.pids.limit",
            "pids.max",
            if l <= 0 { "max".into() } else { l.to_string() },
        ));
    }
    if let Some(b) = r.block_io() {
        gate("linux.resources.blockIO")?;
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            out.push(Setting::new(
                "linux.resources.blockIO.weight",
                "io.weight",
                format!("default {}", blkio_to_io_weight(w)),
            ));
        }
        let mut leaf = b.leaf_weight().is_some();
        for d in b.weight_device().as_deref().unwrap_or_default() {
            leaf |= d.leaf_weight().is_some();
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
        if leaf {
            gate("linux.resources.blockIO.leafWeight")?;
        }
    }
    for h in r.hugepage_limits().as_deref().unwrap_or_default() {
        gate("linux.resources.hugepageLimits")?;
        let size = h.page_size();
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::Config(format!(
                "linux.resources.hugepageLimits: bad pageSize `{size}`"
            )));
        }
        out.push(Setting::new(
            "linux.resources.hugepageLimits",
            &format!("hugetlb.{size}.max"),
            limit(h.limit()),
        ));
    }
    if r.network().is_some() {
        gate("linux.resources.network")?;
    }
    let rdma: BTreeMap<_, _> = r.rdma().clone().unwrap_or_default().into_iter().collect();
    for (dev, l) in rdma {
        gate("linux.resources.rdma")?;
        if dev.is_empty() || dev.contains(char::is_whitespace) {
            return Err(Error::Config(format!(
                "linux.resources.rdma: bad device name `{dev}`"
            )));
        }
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
    if r.devices()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|d| d.allow())
    {
        gate("linux.resources.devices")?;
    }
    let unified: BTreeMap<_, _> = r
        .unified()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (key, value) in unified {
        gate("linux.resources.unified")?;
        check_unified_key(&key)?;
        let field = format!("linux.resources.unified.{key}");
        if value.contains('\0') {
            return Err(Error::Config(format!(
                "{field}: the value contains a NUL byte"
            )));
        }
        out.push(Setting::new(&field, &key, value));
    }
    Ok(out)
}

/// A value that goes to the kernel as one line.
fn one_line(field: &str, s: &str) -> Result<String> {
    if s.contains(['\n', '\0']) {
        return Err(Error::Config(format!(
            "{field}: `{}` is not one line",
            s.escape_debug()
        )));
    }
    Ok(s.to_string())
}

fn check_unified_key(key: &str) -> Result<()> {
    let bad = |why: &str| Error::Config(format!("linux.resources.unified `{key}`: {why}"));
    if key.is_empty() || key == "." || key == ".." || key.contains(['/', '\0']) {
        return Err(bad("not a file name"));
    }
    if !key.contains('.') {
        return Err(bad("not a cgroup v2 file (CONTROLLER.NAME)"));
    }
    if REFUSED_UNIFIED.contains(&key) {
        return Err(bad("hutch does not write this file (it is not a limit)"));
    }
    Ok(())
}

/// The container's cgroup, made (or found) and set up at `create`.
#[derive(Debug)]
pub struct Cgroup {
    /// The directory, open.
    dir: OwnedFd,
    /// Its path in the file system (`/sys/fs/cgroup/unified/a/b`).
    pub path: PathBuf,
    /// The directories hutch made, deepest first: what `delete` removes.
    pub made: Vec<PathBuf>,
}

/// Why the cgroup could not be had without it being an error.
fn not_delegated(e: Errno) -> bool {
    matches!(e, Errno::EACCES | Errno::EPERM | Errno::EROFS)
}

/// Make the container's cgroup and write its settings; `None` (after one
/// warning) when the caller has no delegated cgroup v2 subtree there.
/// On error nothing is left behind.
pub fn prepare(plan: &CgroupPlan, id: &str) -> Result<Option<Cgroup>> {
    let what = match &plan.configured {
        Some(p) => format!("linux.cgroupsPath `{p}` is"),
        None => "linux.resources are".to_string(),
    };
    let ignored = |why: String| {
        tracing::warn!("{what} ignored: {why}");
        Ok(None)
    };
    let Some(mount) = cgroup2_mount() else {
        return ignored("no cgroup2 file system is mounted (cgroup v1 is not managed)".into());
    };
    let own = || own_cgroup().ok_or(());
    let wanted = match &plan.place {
        Where::Absolute(p) => Ok(Path::new("/").join(p)),
        Where::Relative(p) => own().map(|o| o.join(p)),
        Where::Default => own().map(|o| o.join(format!("hutch-{id}"))),
    };
    let Ok(wanted) = wanted else {
        return ignored(
            "hutch's own cgroup v2 is unknown (no `0::` line in /proc/self/cgroup)".into(),
        );
    };
    // Where `wanted` is in the mounted tree (whose root may be a subtree).
    let Ok(below) = wanted.strip_prefix(&mount.root) else {
        return ignored(format!(
            "cgroup `{}` is outside the cgroup2 mount at `{}`",
            wanted.display(),
            mount.point.display()
        ));
    };
    let below = below.to_path_buf();
    match make(&mount.point, &below) {
        Ok(cg) => match setup(cg, plan) {
            Ok(cg) => Ok(Some(cg)),
            Err((cg, e)) => {
                discard(&cg.made);
                Err(e)
            }
        },
        Err(Made::Denied(step, path, errno)) => ignored(format!(
            "{step} `{}`: {} (hutch needs a delegated cgroup v2 subtree there)",
            path.display(),
            errno.desc()
        )),
        Err(Made::Failed(e)) => Err(e),
    }
}

enum Made {
    /// The caller may not: the step, its path and the errno.
    Denied(&'static str, PathBuf, Errno),
    Failed(Error),
}

/// The cgroup2 mount: its mount point and the cgroup its root is.
struct Mount {
    point: PathBuf,
    root: PathBuf,
}

/// The first cgroup2 mount in `/proc/self/mountinfo`.
fn cgroup2_mount() -> Option<Mount> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    parse_mountinfo(&text)
}

fn parse_mountinfo(text: &str) -> Option<Mount> {
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let f: Vec<&str> = left.split_whitespace().collect();
        if f.len() < 5 {
            continue;
        }
        return Some(Mount {
            root: PathBuf::from(unescape(f[3])),
            point: PathBuf::from(unescape(f[4])),
        });
    }
    None
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
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

/// The caller's cgroup v2 path, from the `0::` line of /proc/self/cgroup.
pub fn own_cgroup() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| PathBuf::from(p.trim_end()))
}

fn open_dir(at: BorrowedFd<'_>, name: &Path) -> nix::Result<OwnedFd> {
    openat(
        at,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Open (making what is missing) `below` under the cgroup2 mount at
/// `point`, one component at a time.
fn make(point: &Path, below: &Path) -> std::result::Result<Cgroup, Made> {
    let failed = |step: &'static str, p: &Path, e: Errno| Made::Failed(Error::sys(step, p, e));
    let mut dir = open_dir(nix::fcntl::AT_FDCWD, point)
        .map_err(|e| failed("open cgroup2 mount", point, e))?;
    match nix::sys::statfs::fstatfs(&dir) {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => {}
        Ok(_) => return Err(failed("open cgroup2 mount", point, Errno::EXDEV)),
        Err(e) => return Err(failed("statfs", point, e)),
    }
    let mut path = point.to_path_buf();
    let mut made: Vec<PathBuf> = Vec::new();
    let undo = |made: &[PathBuf], m: Made| {
        let mut deepest_first = made.to_vec();
        deepest_first.reverse();
        discard(&deepest_first);
        m
    };
    for comp in below.components() {
        let Component::Normal(name) = comp else {
            continue;
        };
        path.push(name);
        let name = Path::new(name);
        let next = match open_dir(dir.as_fd(), name) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(&dir, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) => made.push(path.clone()),
                    Err(Errno::EEXIST) => {}
                    Err(e) if not_delegated(e) => {
                        return Err(undo(&made, Made::Denied("make cgroup", path, e)))
                    }
                    Err(e) => return Err(undo(&made, failed("make cgroup", &path, e))),
                }
                open_dir(dir.as_fd(), name)
                    .map_err(|e| undo(&made, failed("open cgroup", &path, e)))?
            }
            Err(e) if not_delegated(e) => {
                return Err(undo(&made, Made::Denied("open cgroup", path, e)))
            }
            Err(e) => return Err(undo(&made, failed("open cgroup", &path, e))),
        };
        dir = next;
    }
    // The check that the caller may move processes in (the clone into
    // the cgroup makes the same one): a denial here is not an error.
    match openat(
        &dir,
        "cgroup.procs",
        OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(_) => {}
        Err(e) if not_delegated(e) => {
            return Err(undo(
                &made,
                Made::Denied("open", path.join("cgroup.procs"), e),
            ))
        }
        Err(e) => return Err(undo(&made, failed("open", &path.join("cgroup.procs"), e))),
    };
    made.reverse();
    Ok(Cgroup { dir, path, made })
}

/// Enable the controllers the settings need, then write the settings.
fn setup(cg: Cgroup, plan: &CgroupPlan) -> std::result::Result<Cgroup, (Cgroup, Error)> {
    let mut needed: Vec<&str> = plan
        .settings
        .iter()
        .filter_map(Setting::controller)
        .collect();
    needed.sort();
    needed.dedup();
    let unavailable = enable_controllers(&cg, &needed);
    for s in &plan.settings {
        let file = cg.path.join(&s.file);
        let fd = match openat(
            &cg.dir,
            s.file.as_str(),
            OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                let why = s
                    .controller()
                    .and_then(|c| unavailable.get(c))
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default();
                tracing::warn!(
                    "{} is ignored: cgroup `{}` has no file {}{why}",
                    s.field,
                    cg.path.display(),
                    s.file
                );
                continue;
            }
            Err(e) => return Err((cg, Error::sys("open", file, e))),
        };
        if let Err(e) = nix::unistd::write(&fd, s.value.as_bytes()) {
            let err = Error::call(
                format!(
                    "write `{}` to `{}` for {}",
                    s.value,
                    file.display(),
                    s.field
                ),
                e,
            );
            return Err((cg, err));
        }
    }
    Ok(cg)
}

/// Enable each needed controller from the top of what hutch made down to
/// the container's cgroup; what cannot be enabled comes back with the
/// reason (it is not an error: the settings that need it are warned about).
fn enable_controllers(cg: &Cgroup, needed: &[&str]) -> BTreeMap<String, String> {
    let mut why = BTreeMap::new();
    if needed.is_empty() {
        return why;
    }
    // The parents to enable in: that of the topmost directory hutch made,
    // then each one it made above the container's cgroup.
    let top = cg.made.last().unwrap_or(&cg.path);
    let mut chain: Vec<PathBuf> = Vec::new();
    let mut p = cg.path.parent();
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
            match enable_in(dir, c) {
                Ok(()) => {}
                Err(reason) => {
                    why.insert(c.to_string(), reason);
                    break;
                }
            }
        }
    }
    why
}

/// Enable controller `c` in `dir/cgroup.subtree_control` unless it is
/// enabled already.
fn enable_in(dir: &Path, c: &str) -> std::result::Result<(), String> {
    let fd = open_dir(nix::fcntl::AT_FDCWD, dir)
        .map_err(|e| format!("open `{}`: {}", dir.display(), e.desc()))?;
    let read = |name: &str| -> String {
        openat(
            &fd,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .and_then(|f| std::io::read_to_string(std::fs::File::from(f)).ok())
        .unwrap_or_default()
    };
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
    let f = openat(
        &fd,
        "cgroup.subtree_control",
        OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open `{}`: {}", control.display(), e.desc()))?;
    nix::unistd::write(&f, format!("+{c}").as_bytes())
        .map(drop)
        .map_err(|e| format!("enable {c} in `{}`: {}", control.display(), e.desc()))
}

impl Cgroup {
    /// The open directory, for `clone3(CLONE_INTO_CGROUP)`.
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Remove what hutch made (the container process is gone).
    pub fn discard(self) {
        drop(self.dir);
        discard(&self.made);
    }
}

/// Open the cgroup v2 directory at `path` (`exec` starts its process
/// there with `clone3(CLONE_INTO_CGROUP)`).
pub fn open(path: &Path) -> Result<OwnedFd> {
    let dir =
        open_dir(nix::fcntl::AT_FDCWD, path).map_err(|e| Error::sys("open cgroup", path, e))?;
    match nix::sys::statfs::fstatfs(&dir) {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => Ok(dir),
        Ok(_) => Err(Error::sys(
            "open cgroup (not on cgroup2)",
            path,
            Errno::EXDEV,
        )),
        Err(e) => Err(Error::sys("statfs", path, e)),
    }
}

/// Best-effort removal of `made` (deepest first), for a failed create.
fn discard(made: &[PathBuf]) {
    for p in made {
        let _ = std::fs::remove_dir(p);
    }
}

/// Remove the directories hutch made for a container (deepest first),
/// killing whatever still runs in them through `cgroup.kill` and removing
/// the cgroups the container made below its own.
pub fn remove(made: &[PathBuf]) -> Result<()> {
    for path in made {
        remove_one(path)?;
    }
    Ok(())
}

fn remove_one(path: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let parent_fd = match open_dir(nix::fcntl::AT_FDCWD, parent) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys("open cgroup", parent, e)),
    };
    match nix::sys::statfs::fstatfs(&parent_fd) {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => {}
        Ok(_) => {
            return Err(Error::sys(
                "remove cgroup (not on cgroup2)",
                path,
                Errno::EXDEV,
            ))
        }
        Err(e) => return Err(Error::sys("statfs", parent, e)),
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    remove_tree(parent_fd.as_fd(), Path::new(name), deadline)
        .map_err(|e| Error::sys("remove cgroup", path, e))
}

/// rmdir `name` in `parent`. While it is busy: kill what runs
/// in it (`cgroup.kill` takes the whole subtree), remove the cgroups the
/// container made below it, and retry until `deadline`.
fn remove_tree(parent: BorrowedFd<'_>, name: &Path, deadline: Instant) -> nix::Result<()> {
    let rmdir = || nix::unistd::unlinkat(parent, name, nix::unistd::UnlinkatFlags::RemoveDir);
    let mut killed = false;
    loop {
        match rmdir() {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) if Instant::now() < deadline => {}
            Err(e) => return Err(e),
        }
        let dir = open_dir(parent, name)?;
        if !killed {
            killed = true;
            if let Ok(kill) = openat(
                &dir,
                "cgroup.kill",
                OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                let _ = nix::unistd::write(&kill, b"1");
            }
        }
        let mut children = Vec::new();
        if let Ok(mut list) = nix::dir::Dir::openat(
            &dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            for e in list.iter().flatten() {
                let n = e.file_name().to_bytes();
                if e.file_type() == Some(nix::dir::Type::Directory) && n != b"." && n != b".." {
                    children.push(PathBuf::from(std::ffi::OsStr::from_bytes(n)));
                }
            }
        }
        for child in children {
            remove_tree(dir.as_fd(), &child, deadline)?;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn linux(v: serde_json::Value) -> oci_spec::runtime::Linux {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn nothing_configured_means_no_cgroup() {
        assert_eq!(plan(&linux(serde_json::json!({}))).unwrap(), None);
        let deny =
            serde_json::json!({"resources": {"devices": [{"allow": false, "access": "rwm"}]}});
        assert_eq!(plan(&linux(deny)).unwrap(), None);
        let unlimited = serde_json::json!({"resources": {"pids": {"limit": 0}, "memory": {}}});
        assert_eq!(plan(&linux(unlimited)).unwrap(), None);
    }

    #[rstest]
    #[case("/a/b", Some(Where::Absolute(PathBuf::from("a/b"))))]
    #[case("a/./b", Some(Where::Relative(PathBuf::from("a/b"))))]
    #[case("/a/../b", None)]
    #[case("..", None)]
    #[case("", None)]
    #[case("/", None)]
    fn paths(#[case] p: &str, #[case] want: Option<Where>) {
        let got = plan(&linux(serde_json::json!({"cgroupsPath": p})));
        match want {
            Some(w) => assert_eq!(got.unwrap().unwrap().place, w),
            None => assert!(got.is_err(), "{p}"),
        }
    }

    #[test]
    fn systemd_form_is_ignored() {
        let got = plan(&linux(
            serde_json::json!({"cgroupsPath": "user.slice:libpod:abc"}),
        ));
        assert_eq!(got.unwrap(), None);
    }

    #[test]
    fn resources_map_to_v2_files() {
        let l = linux(serde_json::json!({"resources": {
            "memory": {"limit": 1000, "reservation": -1, "swap": 3000},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1"},
            "pids": {"limit": 10},
            "blockIO": {"weight": 500},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "unified": {"cgroup.max.descendants": "3"}
        }}));
        let p = plan(&l).unwrap().unwrap();
        assert_eq!(p.place, Where::Default);
        let got: Vec<(&str, &str)> = p
            .settings
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

    #[rstest]
    #[case("cgroup.procs")]
    #[case("cgroup.subtree_control")]
    #[case("../x.max")]
    #[case("memory")]
    fn dangerous_unified_keys_are_refused(#[case] key: &str) {
        let l = linux(serde_json::json!({"resources": {"unified": {key: "1"}}}));
        assert!(plan(&l).is_err(), "{key}");
    }

    #[test]
    fn swap_below_limit_is_an_error() {
        let l = linux(serde_json::json!({"resources": {"memory": {"limit": 2000, "swap": 1000}}}));
        assert!(plan(&l).is_err());
    }

    #[test]
    fn mountinfo() {
        let text = "29 1 0:26 / / rw - ext4 /dev/sda rw\n41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n";
        let m = parse_mountinfo(text).unwrap();
        assert_eq!(m.point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(m.root, PathBuf::from("/"));
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
