//! The container's cgroups: `linux.cgroupsPath` and `linux.resources`.
//!
//! The rest of hutch calls only this module:
//! - before any fork, [`plan`] checks the config's fields into a
//!   [`CgroupPlan`] (where, and the resources as typed values); a config
//!   with neither a cgroupsPath nor a limit gets none, and then hutch does
//!   no cgroup I/O at all;
//! - at `create`, [`prepare`] makes the container's cgroup in each
//!   hierarchy the host mounts and writes the settings there, each
//!   controller in the hierarchy that holds it (cgroup v2, or the v1
//!   hierarchy on a v1 or hybrid host); the container process is cloned
//!   into the cgroup2 directory ([`Cgroup::clone_into`]) and placed in the
//!   v1 ones before it runs anything ([`Cgroup::enter`]); [`Cgroup::record`]
//!   is what the state entry keeps (`cgroup.json`);
//! - on an existing container, [`reopen`] gives the [`Cgroup`] back from
//!   that record, for `freeze`, `thaw`, `update`, `stats`, `pids`, OOM
//!   events and `exec`; [`remove`] removes what hutch made.
//!
//! Where the caller may not make the cgroup (no delegated subtree, a plain
//! user on cgroup v1: EACCES, EPERM, EROFS), one warning says so and the
//! container runs without it.

mod fs;
mod hier;
mod stats;
mod v2;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};
use crate::features::gate;

pub use stats::Stats;

/// Where the container's cgroup is, as the config says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Where {
    /// Below the root of each hierarchy the caller sees.
    Absolute(PathBuf),
    /// Below the caller's own cgroup in each hierarchy (as runc does).
    Relative(PathBuf),
    /// No cgroupsPath: `hutch-ID` below the caller's own cgroup.
    Default,
}

/// The container's cgroup: where, and what to set there.
#[derive(Clone, Debug, PartialEq)]
pub struct CgroupPlan {
    pub place: Where,
    /// The config's cgroupsPath as written, for messages.
    pub configured: Option<String>,
    /// `linux.resources`, checked (each field through the feature table,
    /// each value that can be checked before the kernel sees it).
    pub resources: LinuxResources,
}

/// How `create` makes the cgroup (`--systemd-cgroup` asks for systemd).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    /// hutch makes the directories itself.
    Cgroupfs,
    /// Through systemd (not implemented yet: as Cgroupfs).
    Systemd,
}

/// One value to write to one file of a cgroup (v1 or v2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The config field it comes from, for messages.
    pub field: String,
    /// The file name in the cgroup (`memory.max`, `memory.limit_in_bytes`).
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
    let resources = linux.resources().clone().unwrap_or_default();
    check(&resources)?;
    let limits = asks_for_limits(&resources);
    Ok(match place {
        Some(place) => Some(CgroupPlan {
            place,
            configured,
            resources,
        }),
        None if limits => Some(CgroupPlan {
            place: Where::Default,
            configured: None,
            resources,
        }),
        None => None,
    })
}

/// Whether `r` sets anything a new cgroup does not have already.
fn asks_for_limits(r: &LinuxResources) -> bool {
    v2::settings(r).iter().any(|s| s.value != "max")
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

/// Check `linux.resources` (at create, and for `update`): each field that
/// is present through the feature table, each value that can be wrong
/// whatever the hierarchy.
pub fn check(r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        if m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.use_hierarchy().is_some()
            || m.check_before_update().is_some()
        {
            gate("linux.resources.memory")?;
        }
        // swap is memory plus swap, so it needs a memory limit below it.
        match (m.swap(), m.limit()) {
            (None | Some(0), _) => {}
            (Some(s), _) if s < 0 => {}
            (Some(_), None) => {
                return Err(Error::Config(
                    "linux.resources.memory.swap needs memory.limit".into(),
                ))
            }
            (Some(_), Some(l)) if l < 0 => {
                return Err(Error::Config(
                    "linux.resources.memory.swap needs a memory.limit that is not -1".into(),
                ))
            }
            (Some(s), Some(l)) if s < l => {
                return Err(Error::Config(format!(
                    "linux.resources.memory.swap {s} is below memory.limit {l} (swap counts memory plus swap)"
                )))
            }
            (Some(_), Some(_)) => {}
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
        if let Some(s) = c.cpus().as_deref() {
            one_line("linux.resources.cpu.cpus", s)?;
        }
        if let Some(s) = c.mems().as_deref() {
            one_line("linux.resources.cpu.mems", s)?;
        }
        if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
            gate("linux.resources.cpu.realtime")?;
        }
    }
    if r.pids().is_some() {
        gate("linux.resources.pids")?;
    }
    if let Some(b) = r.block_io() {
        gate("linux.resources.blockIO")?;
        let leaf = b.leaf_weight().is_some()
            || b.weight_device()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|d| d.leaf_weight().is_some());
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
    }
    if r.network().is_some() {
        gate("linux.resources.network")?;
    }
    for dev in r.rdma().as_ref().map(|m| m.keys()).into_iter().flatten() {
        gate("linux.resources.rdma")?;
        if dev.is_empty() || dev.contains(char::is_whitespace) {
            return Err(Error::Config(format!(
                "linux.resources.rdma: bad device name `{dev}`"
            )));
        }
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
        if value.contains('\0') {
            return Err(Error::Config(format!(
                "linux.resources.unified.{key}: the value contains a NUL byte"
            )));
        }
    }
    Ok(())
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

/// The container's cgroup, made at `create` or reopened from its record.
#[derive(Debug)]
pub struct Cgroup {
    /// The cgroup2 directory (a v2 host, or the unified part of a hybrid one).
    v2: Option<v2::Cgroup>,
    /// The directories hutch made, deepest first: what `delete` removes.
    made: Vec<PathBuf>,
}

/// Make the container's cgroup and write its settings; `None` (after one
/// warning) when the caller may not make it. On error nothing is left.
pub fn prepare(plan: &CgroupPlan, id: &str, manager: Manager) -> Result<Option<Cgroup>> {
    // The systemd driver is not there yet: its cgroup is made as cgroupfs's.
    let _ = manager;
    let what = match &plan.configured {
        Some(p) => format!("linux.cgroupsPath `{p}` is"),
        None => "linux.resources are".to_string(),
    };
    let ignored = |why: String| {
        tracing::warn!("{what} ignored: {why}");
        Ok(None)
    };
    let all = hier::mounted();
    let Some(h) = hier::v2(&all) else {
        return ignored("no cgroup2 file system is mounted (cgroup v1 is not managed)".into());
    };
    let Some(wanted) = wanted(&plan.place, h, id) else {
        return ignored(
            "hutch's own cgroup v2 is unknown (no `0::` line in /proc/self/cgroup)".into(),
        );
    };
    let Some(dir) = h.dir_of(&wanted) else {
        return ignored(format!(
            "cgroup `{}` is outside the cgroup2 mount at `{}`",
            wanted.display(),
            h.point.display()
        ));
    };
    let below = dir
        .strip_prefix(&h.point)
        .unwrap_or(Path::new(""))
        .to_path_buf();
    match fs::make(&h.point, &below, fs::Fs::V2) {
        Ok(d) => {
            let made = d.made.clone();
            match v2::setup(d, &v2::settings(&plan.resources)) {
                Ok(cg) => Ok(Some(Cgroup { v2: Some(cg), made })),
                Err(e) => {
                    fs::discard(&made);
                    Err(e)
                }
            }
        }
        Err(fs::Made::Denied(step, path, errno)) => ignored(format!(
            "{step} `{}`: {} (hutch needs a delegated cgroup v2 subtree there)",
            path.display(),
            errno.desc()
        )),
        Err(fs::Made::Failed(e)) => Err(e),
    }
}

/// The container's cgroup in hierarchy `h`, as a path from its root.
fn wanted(place: &Where, h: &hier::Hierarchy, id: &str) -> Option<PathBuf> {
    match place {
        Where::Absolute(p) => Some(Path::new("/").join(p)),
        Where::Relative(p) => h.own.as_ref().map(|o| o.join(p)),
        Where::Default => h.own.as_ref().map(|o| o.join(format!("hutch-{id}"))),
    }
}

impl Cgroup {
    /// The cgroup2 directory to clone the container process into
    /// (`clone3(CLONE_INTO_CGROUP)`), when there is one.
    pub fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        self.v2.as_ref().map(|c| c.dir())
    }

    /// Place process `pid` (0: the caller) in the cgroups the clone did
    /// not put it in; before it runs anything of the container's.
    pub fn enter(&self, pid: i32) -> Result<()> {
        let _ = pid;
        Ok(())
    }

    /// What the state entry keeps to reopen and remove it: `cgroup.json`.
    pub fn record(&self) -> serde_json::Value {
        serde_json::json!({
            "v2": self.v2.as_ref().map(|c| &c.path),
            "made": self.made,
        })
    }

    /// Remove what `prepare` made (the container process is gone).
    pub fn discard(self) {
        let made = self.made;
        drop(self.v2);
        fs::discard(&made);
    }

    /// Freeze every process in the cgroup; returns once they are frozen.
    pub fn freeze(&self) -> Result<()> {
        self.v2_part("freeze")?.freeze()
    }

    /// Thaw what [`Cgroup::freeze`] froze.
    pub fn thaw(&self) -> Result<()> {
        self.v2_part("thaw")?.thaw()
    }

    /// Whether the cgroup is frozen (`state` says `paused`).
    pub fn is_frozen(&self) -> Result<bool> {
        match &self.v2 {
            Some(c) => c.is_frozen(),
            None => Ok(false),
        }
    }

    /// Write new resources (`update`); `r` is checked first.
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        check(r)?;
        self.v2_part("update")?.write(&v2::settings(r))
    }

    /// Usage and limits, in runc's `events --stats` shape.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some(c) = &self.v2 {
            c.stats(&mut s);
        }
        Ok(s)
    }

    /// Every process in the cgroup and below it.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let c = self.v2_part("list the processes of")?;
        fs::pids_below(c.dir()).map_err(|e| Error::sys("read", c.path.join("cgroup.procs"), e))
    }

    /// A watch on OOM kills in the cgroup: poll [`OomWatch::fd`] for
    /// readability/priority, then [`OomWatch::count`].
    pub fn oom_watch(&self) -> Result<OomWatch> {
        self.v2_part("watch")?.oom_watch()
    }

    fn v2_part(&self, what: &str) -> Result<&v2::Cgroup> {
        self.v2.as_ref().ok_or_else(|| {
            Error::Container(format!("cannot {what} the container: it has no cgroup"))
        })
    }
}

/// Something to poll for OOM events (v2: `memory.events`, which the kernel
/// marks changed, POLLPRI; v1: an eventfd on `memory.oom_control`, POLLIN).
#[derive(Debug)]
pub struct OomWatch {
    fd: std::os::fd::OwnedFd,
    kind: stats::OomKind,
}

impl OomWatch {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether poll(2) waits for POLLPRI (v2) or POLLIN (v1) on [`Self::fd`].
    pub fn wants_pri(&self) -> bool {
        matches!(self.kind, stats::OomKind::V2 { .. })
    }

    /// How many OOM kills since the last call (or since the watch began),
    /// after poll said the fd is ready.
    pub fn count(&mut self) -> Result<u64> {
        stats::oom_count(self.fd.as_fd(), &mut self.kind)
    }
}

/// The cgroup of an existing container, from its record (`cgroup.json`).
pub fn reopen(record: &serde_json::Value) -> Result<Cgroup> {
    let v2 = record
        .get("v2")
        .or_else(|| record.get("cgroup"))
        .and_then(|v| v.as_str())
        .map(|p| v2::Cgroup::open(Path::new(p)))
        .transpose()?;
    Ok(Cgroup {
        v2,
        made: made_of(record),
    })
}

fn made_of(record: &serde_json::Value) -> Vec<PathBuf> {
    record
        .get("made")
        .and_then(|m| m.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(PathBuf::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Remove the directories a record says hutch made (deepest first),
/// killing whatever still runs in them.
pub fn remove(record: &serde_json::Value) -> Result<()> {
    for path in made_of(record) {
        fs::remove(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    pub(super) fn linux(v: serde_json::Value) -> oci_spec::runtime::Linux {
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
        let l = linux(serde_json::json!({"resources": {"memory": {"swap": 1000}}}));
        assert!(plan(&l).is_err());
    }

    #[test]
    fn a_cpus_value_of_two_lines_is_an_error() {
        let l = linux(serde_json::json!({"resources": {"cpu": {"cpus": "0\n1"}}}));
        assert!(plan(&l).is_err());
    }

    #[test]
    fn old_records_reopen_as_v2() {
        let r = serde_json::json!({"cgroup": "/nonexistent/x", "made": ["/nonexistent/x"]});
        assert!(reopen(&r).is_err());
        assert_eq!(made_of(&r), [PathBuf::from("/nonexistent/x")]);
    }
}
