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

mod bpf;
mod fs;
mod hier;
mod plan;
mod stats;
pub mod systemd;
mod v1;
mod v2;

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};

pub use fs::Fs;
pub use hier::Hierarchy;
use plan::V1_ONLY;
pub use plan::{check, plan, CgroupPlan, DeviceRule, Where};
pub use stats::Stats;

/// The cgroup hierarchies this process sees mounted, each once, with its
/// own cgroup in each (`mount::cgroup` shows the container its own).
pub fn hierarchies() -> Vec<Hierarchy> {
    hier::mounted()
}

/// How `create` makes the cgroup (`--systemd-cgroup` asks for systemd).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    /// hutch makes the directories itself.
    Cgroupfs,
    /// A transient scope systemd makes (`systemd.rs`).
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

/// The container's cgroup, made at `create` or reopened from its record.
#[derive(Debug)]
pub struct Cgroup {
    /// The cgroup2 directory (a v2 host, or the unified part of a hybrid one).
    v2: Option<v2::Cgroup>,
    /// Its directory in each v1 hierarchy (a v1 or hybrid host).
    v1: Vec<v1::Part>,
    /// The directories hutch made, deepest first in each hierarchy: what
    /// `delete` removes.
    made: Vec<PathBuf>,
    /// The systemd scope the cgroup is (`--systemd-cgroup`).
    systemd: Option<SystemdPart>,
}

/// The systemd driver's part of a [`Cgroup`].
#[derive(Debug)]
struct SystemdPart {
    /// The unit (`hutch-ID.scope`).
    unit: String,
    /// The bus it was asked for on.
    address: String,
    /// At create, until [`Cgroup::start_unit`]: the connection, the
    /// properties and settings, the container's id.
    pending: Option<(systemd::Scope, systemd::Split, String)>,
}

/// Why hutch could not make the container's cgroup in one hierarchy.
struct Denied {
    hierarchy: hier::Hierarchy,
    why: String,
}

/// Make the container's cgroup in each hierarchy the host mounts and
/// write the settings, each where its controller is; `None` (after one
/// warning) when the caller may make it in none. On error nothing is left.
pub fn prepare(plan: &CgroupPlan, id: &str, manager: Manager) -> Result<Option<Cgroup>> {
    let place = match (manager, &plan.place) {
        (Manager::Systemd, Where::Systemd(text)) => {
            return prepare_systemd(plan, Some(systemd::parse_path(text)?), id)
        }
        (Manager::Systemd, Where::Default) => return prepare_systemd(plan, None, id),
        (Manager::Systemd, _) => {
            return Err(Error::Config(format!(
                "linux.cgroupsPath `{}`: with --systemd-cgroup it must be slice:prefix:name",
                plan.configured.as_deref().unwrap_or_default()
            )))
        }
        (Manager::Cgroupfs, Where::Systemd(text)) => {
            tracing::warn!(
                "linux.cgroupsPath `{text}` is ignored: it is in systemd's slice:prefix:name form (pass --systemd-cgroup for the systemd driver)"
            );
            if !plan::asks_for_limits(&plan.resources) {
                return Ok(None);
            }
            Where::Default
        }
        (Manager::Cgroupfs, p) => p.clone(),
    };
    let what = match &plan.configured {
        Some(p) => format!("linux.cgroupsPath `{p}` is"),
        None => "linux.resources are".to_string(),
    };
    let all = hier::mounted();
    if all.is_empty() {
        tracing::warn!("{what} ignored: no cgroup file system is mounted");
        return Ok(None);
    }
    let mut cg = Cgroup {
        v2: None,
        v1: Vec::new(),
        made: Vec::new(),
        systemd: None,
    };
    let mut denied: Vec<Denied> = Vec::new();
    let mut dirs: Vec<(hier::Hierarchy, fs::Dir)> = Vec::new();
    for h in &all {
        match make_in(h, &place, id) {
            Ok(d) => {
                cg.made.extend(d.made.iter().cloned());
                dirs.push((h.clone(), d));
            }
            Err(Err(e)) => {
                cg.discard();
                return Err(e);
            }
            Err(Ok(why)) => denied.push(Denied {
                hierarchy: h.clone(),
                why,
            }),
        }
    }
    if dirs.is_empty() {
        // The cgroup2 reason first: delegation there is what a plain user can get.
        let why = denied
            .iter()
            .find(|d| d.hierarchy.fs == fs::Fs::V2)
            .or(denied.first())
            .map(|d| d.why.as_str())
            .unwrap_or_default();
        tracing::warn!(
            "{what} ignored: {why} (hutch needs a delegated cgroup v2 subtree there, or root for cgroup v1)"
        );
        return Ok(None);
    }
    let v1_settings = v1::settings(&plan.resources, &plan.devices);
    let v2_settings: Vec<Setting> = v2::settings(&plan.resources)
        .into_iter()
        .filter(|s| !in_v1(&all, s))
        .collect();
    // cgroup v2 has no devices files: the rules become an eBPF program
    // (root only; a plain user's container has only the devices bound
    // into its /dev, and cannot make nodes).
    let ebpf_devices = nix::unistd::geteuid().is_root()
        && !all.iter().any(|h| h.fs == fs::Fs::V1 && h.has("devices"));
    let set_up = (|| -> Result<()> {
        for (h, d) in dirs {
            match h.fs {
                fs::Fs::V2 => {
                    let c = v2::setup(d, &v2_settings)?;
                    if ebpf_devices {
                        bpf::attach(&plan.devices, c.dir(), &c.path)?;
                    }
                    cg.v2 = Some(c);
                }
                fs::Fs::V1 => cg.v1.push(v1::Part::setup(d, &h, &v1_settings)?),
            }
        }
        Ok(())
    })();
    if let Err(e) = set_up {
        cg.discard();
        return Err(e);
    }
    cg.warn_unapplied(&all, &denied, &v1_settings, &v2_settings, plan);
    Ok(Some(cg))
}

/// Whether setting `s`'s controller is in a v1 hierarchy here.
fn in_v1(all: &[hier::Hierarchy], s: &Setting) -> bool {
    s.controller()
        .map(v1_name)
        .is_some_and(|c| all.iter().any(|h| h.fs == fs::Fs::V1 && h.has(c)))
}

/// The v1 name of a cgroup v2 controller (`io` was `blkio`).
fn v1_name(v2: &str) -> &str {
    match v2 {
        "io" => "blkio",
        c => c,
    }
}

/// Make the container's cgroup in hierarchy `h`: `Err(Ok(why))` when the
/// caller may not (not an error), `Err(Err(e))` on a real failure.
fn make_in(
    h: &hier::Hierarchy,
    place: &Where,
    id: &str,
) -> std::result::Result<fs::Dir, std::result::Result<String, Error>> {
    let name = match h.fs {
        fs::Fs::V2 => "cgroup v2".to_string(),
        fs::Fs::V1 => format!("{} cgroup", h.key()),
    };
    let Some(wanted) = wanted(place, h, id) else {
        return Err(Ok(format!(
            "hutch's own {name} is unknown (not in /proc/self/cgroup)"
        )));
    };
    let Some(dir) = h.dir_of(&wanted) else {
        return Err(Ok(format!(
            "cgroup `{}` is outside the mount at `{}`",
            wanted.display(),
            h.point.display()
        )));
    };
    let below = dir.strip_prefix(&h.point).unwrap_or(Path::new(""));
    match fs::make(&h.point, below, h.fs) {
        Ok(d) => Ok(d),
        Err(fs::Made::Denied(step, path, errno)) => {
            Err(Ok(format!("{step} `{}`: {}", path.display(), errno.desc())))
        }
        Err(fs::Made::Failed(e)) => Err(Err(e)),
    }
}

/// The container's cgroup in hierarchy `h`, as a path from its root.
fn wanted(place: &Where, h: &hier::Hierarchy, id: &str) -> Option<PathBuf> {
    match place {
        Where::Absolute(p) => Some(Path::new("/").join(p)),
        Where::Relative(p) => h.own.as_ref().map(|o| o.join(p)),
        Where::Default | Where::Systemd(_) => h.own.as_ref().map(|o| o.join(format!("hutch-{id}"))),
    }
}

/// `--systemd-cgroup`: connect to systemd now (a missing bus fails here,
/// before anything exists); the scope is asked for in
/// [`Cgroup::start_unit`], once the container process exists.
fn prepare_systemd(
    plan: &CgroupPlan,
    unit: Option<systemd::Unit>,
    id: &str,
) -> Result<Option<Cgroup>> {
    let scope = systemd::connect(unit, id)?;
    let split = systemd::properties(&v2::settings(&plan.resources));
    Ok(Some(Cgroup {
        v2: None,
        v1: Vec::new(),
        made: Vec::new(),
        systemd: Some(SystemdPart {
            unit: scope.unit.name.clone(),
            address: scope.address.clone(),
            pending: Some((scope, split, id.to_string())),
        }),
    }))
}

impl Cgroup {
    /// One warning per field that went nowhere: its controller is in a
    /// hierarchy the caller may not write, it is a v1-only setting on a
    /// controller cgroup v2 holds, or no cgroup2 directory was made for a
    /// v2 setting.
    fn warn_unapplied(
        &self,
        all: &[hier::Hierarchy],
        denied: &[Denied],
        v1_settings: &[Setting],
        v2_settings: &[Setting],
        plan: &CgroupPlan,
    ) {
        let mut warned: Vec<&str> = Vec::new();
        let warn = |s: &str, why: String| tracing::warn!("{s} is ignored: {why}");
        // Device rules are worth a warning only when the config allows a
        // device itself: the rest is the deny-all and the defaults every
        // container gets, and its /dev holds only its own devices anyway.
        let allows_devices = plan
            .resources
            .devices()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|d| d.allow());
        for s in v1_settings {
            let Some(c) = s.controller() else { continue };
            if self.v1.iter().any(|p| p.has(c))
                || warned.contains(&s.field.as_str())
                || (c == "devices" && !allows_devices)
            {
                continue;
            }
            let why = if let Some(d) = denied.iter().find(|d| d.hierarchy.has(c)) {
                format!(
                    "the {c} controller is in the cgroup v1 hierarchy at `{}`, where {}",
                    d.hierarchy.point.display(),
                    d.why
                )
            } else if all.iter().any(|h| h.fs == fs::Fs::V1 && h.has(c)) {
                continue;
            } else if c == "devices" {
                if nix::unistd::geteuid().is_root() && self.v2.is_some() {
                    continue;
                }
                "cgroup v2 device rules need an eBPF device program, which only root may load"
                    .to_string()
            } else if V1_ONLY.iter().any(|f| s.file.starts_with(f)) {
                format!(
                    "{} is a cgroup v1 file, and no v1 hierarchy here has the {c} controller",
                    s.file
                )
            } else {
                continue;
            };
            warned.push(&s.field);
            warn(&s.field, why);
        }
        if self.v2.is_none() {
            for s in v2_settings {
                if warned.contains(&s.field.as_str()) {
                    continue;
                }
                let why = match denied.iter().find(|d| d.hierarchy.fs == fs::Fs::V2) {
                    Some(d) => format!("it needs cgroup v2, where {}", d.why),
                    None => format!("it needs cgroup v2 (file {}), which is not mounted", s.file),
                };
                warned.push(&s.field);
                warn(&s.field, why);
            }
        }
    }

    /// The cgroup2 directory to clone the container process into
    /// (`clone3(CLONE_INTO_CGROUP)`), when there is one.
    pub fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        self.v2.as_ref().map(|c| c.dir())
    }

    /// Place process `pid` (0: the caller) in the cgroups the clone did
    /// not put it in (each v1 hierarchy's); before it runs anything of
    /// the container's.
    pub fn enter(&self, pid: i32) -> Result<()> {
        self.v1.iter().try_for_each(|p| p.enter(pid))
    }

    /// With the systemd driver, at create: ask for the scope with process
    /// `pid` in it (before it runs anything of the container's), and write
    /// into its cgroup what systemd has no property for. [`Cgroup::record`]
    /// changes. The `org.systemd.property.*` annotations are unit
    /// properties too. Nothing to do otherwise.
    pub fn start_unit(
        &mut self,
        pid: i32,
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        if let Some(sd) = &mut self.systemd {
            if let Some((scope, split, id)) = sd.pending.take() {
                let annotated = systemd::annotation_properties(annotations)?;
                self.v2 = Some(systemd::start(scope, &split, &annotated, &id, pid)?);
            }
        }
        Ok(())
    }

    /// Whether the cgroup is a systemd unit (its record changes in
    /// [`Cgroup::start_unit`]).
    pub fn is_systemd(&self) -> bool {
        self.systemd.is_some()
    }

    /// What the state entry keeps to reopen and remove it: `cgroup.json`.
    pub fn record(&self) -> serde_json::Value {
        let v1: serde_json::Map<String, serde_json::Value> = self
            .v1
            .iter()
            .map(|p| (p.key.clone(), serde_json::json!(p.path)))
            .collect();
        let mut r = serde_json::json!({
            "v2": self.v2.as_ref().map(|c| &c.path),
            "v1": v1,
            "made": self.made,
        });
        if let Some(sd) = &self.systemd {
            r["systemd"] = serde_json::json!({"unit": sd.unit, "bus": sd.address});
        }
        r
    }

    /// Remove what `prepare` made (the container process is gone). A
    /// systemd scope is stopped through the record, by the entry's removal.
    pub fn discard(self) {
        let made = self.made;
        drop(self.v2);
        drop(self.v1);
        fs::discard(&made);
    }

    /// The v1 part with `controller`.
    fn v1_with(&self, controller: &str) -> Option<&v1::Part> {
        self.v1.iter().find(|p| p.has(controller))
    }

    /// Freeze every process in the cgroup; returns once they are frozen.
    pub fn freeze(&self) -> Result<()> {
        match (self.v1_with("freezer"), &self.v2) {
            (Some(p), _) => p.set_frozen(true),
            (None, Some(c)) => c.freeze(),
            (None, None) => Err(self.none("freeze")),
        }
    }

    /// Thaw what [`Cgroup::freeze`] froze.
    pub fn thaw(&self) -> Result<()> {
        match (self.v1_with("freezer"), &self.v2) {
            (Some(p), _) => p.set_frozen(false),
            (None, Some(c)) => c.thaw(),
            (None, None) => Err(self.none("thaw")),
        }
    }

    /// Whether the cgroup is frozen (`state` says `paused`).
    pub fn is_frozen(&self) -> Result<bool> {
        match (self.v1_with("freezer"), &self.v2) {
            (Some(p), _) => p.is_frozen(),
            (None, Some(c)) => c.is_frozen(),
            (None, None) => Ok(false),
        }
    }

    /// Write new resources (`update`); `r` is checked first. Each setting
    /// goes where its controller is, as at create (device rules are not
    /// changed).
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        check(r)?;
        let v1_settings = v1::settings(r, &[]);
        for p in &self.v1 {
            p.write(&v1_settings)?;
        }
        if let Some(c) = &self.v2 {
            let held: Vec<&str> = self
                .v1
                .iter()
                .flat_map(|p| p.controllers.iter().map(String::as_str))
                .collect();
            let v2_settings: Vec<Setting> = v2::settings(r)
                .into_iter()
                .filter(|s| !s.controller().is_some_and(|c| held.contains(&v1_name(c))))
                .collect();
            c.write(&v2_settings)?;
        }
        Ok(())
    }

    /// Usage and limits, in runc's `events --stats` shape.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some(c) = &self.v2 {
            c.stats(&mut s);
        }
        for p in &self.v1 {
            p.stats(&mut s);
        }
        Ok(s)
    }

    /// Every process in the cgroup and below it.
    pub fn pids(&self) -> Result<Vec<i32>> {
        // Every process is in every hierarchy: any one lists them all.
        if let Some(c) = &self.v2 {
            return fs::pids_below(c.dir())
                .map_err(|e| Error::sys("read", c.path.join("cgroup.procs"), e));
        }
        match self.v1_with("pids").or(self.v1.first()) {
            Some(p) => p.pids(),
            None => Err(self.none("list the processes of")),
        }
    }

    /// A watch on OOM kills in the cgroup: poll [`OomWatch::fd`], then
    /// [`OomWatch::count`].
    pub fn oom_watch(&self) -> Result<OomWatch> {
        match (self.v1_with("memory"), &self.v2) {
            (Some(p), _) => p.oom_watch(),
            (None, Some(c)) => c.oom_watch(),
            (None, None) => Err(self.none("watch")),
        }
    }

    fn none(&self, what: &str) -> Error {
        Error::Container(format!("cannot {what} the container: it has no cgroup"))
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
    let mut v1 = Vec::new();
    if let Some(parts) = record.get("v1").and_then(|v| v.as_object()) {
        for (key, path) in parts {
            if let Some(path) = path.as_str() {
                v1.push(v1::Part::open(key, Path::new(path))?);
            }
        }
    }
    Ok(Cgroup {
        v2,
        v1,
        made: made_of(record),
        systemd: systemd_of(record).map(|(unit, address)| SystemdPart {
            unit,
            address,
            pending: None,
        }),
    })
}

/// The unit and bus address of a record made by the systemd driver.
fn systemd_of(record: &serde_json::Value) -> Option<(String, String)> {
    let sd = record.get("systemd")?;
    Some((
        sd.get("unit")?.as_str()?.to_string(),
        sd.get("bus")?.as_str()?.to_string(),
    ))
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
    // Frozen processes cannot die: thaw a v1 freezer cgroup first (a v2
    // one lets cgroup.kill through).
    if let Some(freezer) = record
        .get("v1")
        .and_then(|v| v.as_object())
        .and_then(|m| m.iter().find(|(k, _)| k.split(',').any(|c| c == "freezer")))
        .and_then(|(_, p)| p.as_str())
    {
        if let Ok(dir) = fs::open_cgroup(Path::new(freezer), fs::Fs::V1) {
            let _ = fs::write(dir.as_fd(), "freezer.state", "THAWED");
        }
    }
    // The container's own cgroups are removed with what still runs in
    // them; a parent hutch made for it only when empty: another
    // container may have been made below it since (`/docker/A` made
    // `/docker`, then came `/docker/B`).
    let own = own_of(record);
    for path in made_of(record) {
        if own.contains(&path) {
            fs::remove(&path)?;
        } else {
            match std::fs::remove_dir(&path) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBUSY | libc::ENOTEMPTY | libc::ENOENT)
                    ) => {}
                Err(e) => return Err(Error::io("remove cgroup", &path, e)),
            }
        }
    }
    // A scope whose cgroup is not recorded was never started (a create
    // that failed stops what it started itself).
    let started = record.get("v2").and_then(|v| v.as_str());
    if let (Some((unit, address)), Some(path)) = (systemd_of(record), started) {
        // What is left in the scope dies first: stopping a scope sends
        // SIGTERM and waits up to its stop timeout for it.
        if let Ok(fd) = fs::open_cgroup(Path::new(path), fs::Fs::V2) {
            let _ = fs::write(fd.as_fd(), "cgroup.kill", "1");
        }
        systemd::stop(&address, &unit)?;
    }
    Ok(())
}

/// The container's own cgroup in each hierarchy, as the record names them.
fn own_of(record: &serde_json::Value) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = record
        .get("v1")
        .and_then(|v| v.as_object())
        .map(|m| {
            m.values()
                .filter_map(|p| p.as_str().map(PathBuf::from))
                .collect()
        })
        .unwrap_or_default();
    if let Some(p) = record
        .get("v2")
        .or_else(|| record.get("cgroup"))
        .and_then(|v| v.as_str())
    {
        out.push(PathBuf::from(p));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_records_reopen_as_v2() {
        let r = serde_json::json!({"cgroup": "/nonexistent/x", "made": ["/nonexistent/x"]});
        assert!(reopen(&r).is_err());
        assert_eq!(made_of(&r), [PathBuf::from("/nonexistent/x")]);
    }
}
