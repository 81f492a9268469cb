//! Planning, before any fork: `linux.cgroupsPath` and `linux.resources`
//! checked into a [`CgroupPlan`] that every backend can apply (the
//! resources kept as the config's typed values, each backend mapping them
//! to its own files), and the device rules in the order they apply.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::{v1, v2};
use crate::error::{Error, Result};
use crate::features::gate;

/// Where the container's cgroup is, as the config says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Where {
    /// Below the root of each hierarchy the caller sees.
    Absolute(PathBuf),
    /// Below the caller's own cgroup in each hierarchy (as runc does).
    Relative(PathBuf),
    /// No cgroupsPath: `hutch-ID` below the caller's own cgroup.
    Default,
    /// systemd's `slice:prefix:name`, as written (parsed by the systemd
    /// driver; ignored, with a warning, without `--systemd-cgroup`).
    Systemd(String),
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
    /// The device rules, in order: the config's, then the devices every
    /// container has, then `linux.devices` (as runc and crun allow them).
    pub devices: Vec<DeviceRule>,
}

impl CgroupPlan {
    /// No cgroupsPath and no limit: the default place (`hutch-ID`).
    pub fn default_place() -> CgroupPlan {
        CgroupPlan {
            place: Where::Default,
            configured: None,
            resources: LinuxResources::default(),
            devices: Vec::new(),
        }
    }
}

/// One device rule of the `devices` controller (v1 files; v2 eBPF).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    /// `a` (all), `b` or `c`.
    pub typ: char,
    /// `None`: any.
    pub major: Option<i64>,
    pub minor: Option<i64>,
    /// Some of `rwm`.
    pub access: String,
}

impl DeviceRule {
    fn new(
        allow: bool,
        typ: char,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            typ,
            major,
            minor,
            access: access.to_string(),
        }
    }

    /// As `devices.allow` and `devices.deny` take it: `c 1:3 rwm`.
    pub fn to_v1(&self) -> String {
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        format!(
            "{} {}:{} {}",
            self.typ,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

/// The devices every container may use, as runc and crun allow them: mknod
/// of any, and the nodes hutch gives every container's /dev (null, zero,
/// full, random, urandom, tty, console, ptmx, the pts).
fn default_device_rules() -> Vec<DeviceRule> {
    let c = |maj, min: Option<i64>| DeviceRule::new(true, 'c', Some(maj), min, "rwm");
    vec![
        DeviceRule::new(true, 'c', None, None, "m"),
        DeviceRule::new(true, 'b', None, None, "m"),
        c(1, Some(3)),
        c(1, Some(5)),
        c(1, Some(7)),
        c(1, Some(8)),
        c(1, Some(9)),
        c(5, Some(0)),
        c(5, Some(1)),
        c(5, Some(2)),
        c(136, None),
    ]
}

/// The device rules of a container with a cgroup (see [`CgroupPlan::devices`]).
fn device_rules(linux: &oci_spec::runtime::Linux) -> Result<Vec<DeviceRule>> {
    use oci_spec::runtime::LinuxDeviceType as T;
    let mut out = Vec::new();
    let resources = linux.resources().as_ref();
    for d in resources
        .and_then(|r| r.devices().as_deref())
        .unwrap_or_default()
    {
        let typ = match d.typ().unwrap_or(T::A) {
            T::A => 'a',
            T::B => 'b',
            T::C | T::U => 'c',
            T::P => {
                return Err(Error::Config(
                    "linux.resources.devices: type `p` (a FIFO) is not a device the devices controller knows".into(),
                ))
            }
        };
        let access = d.access().clone().unwrap_or_else(|| "rwm".into());
        if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
            return Err(Error::Config(format!(
                "linux.resources.devices: bad access `{access}` (some of r, w, m)"
            )));
        }
        out.push(DeviceRule::new(
            d.allow(),
            typ,
            d.major(),
            d.minor(),
            &access,
        ));
    }
    out.extend(default_device_rules());
    for d in linux.devices().as_deref().unwrap_or_default() {
        let rule = oci_spec::runtime::LinuxDeviceCgroup::from(d);
        let typ = match rule.typ() {
            Some(T::B) => 'b',
            Some(T::C | T::U) => 'c',
            _ => continue,
        };
        out.push(DeviceRule::new(
            true,
            typ,
            rule.major(),
            rule.minor(),
            "rwm",
        ));
    }
    Ok(out)
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
        place = Some(if is_systemd_form(&text) {
            Where::Systemd(text.clone())
        } else {
            check_path(&text)?
        });
        configured = Some(text);
    }
    let resources = linux.resources().clone().unwrap_or_default();
    check(&resources)?;
    let devices = device_rules(linux)?;
    let limits = asks_for_limits(&resources);
    Ok(match place {
        Some(place) => Some(CgroupPlan {
            place,
            configured,
            resources,
            devices,
        }),
        None if limits => Some(CgroupPlan {
            place: Where::Default,
            configured: None,
            resources,
            devices,
        }),
        None => None,
    })
}

/// Whether `r` sets anything a new cgroup does not have already (device
/// rules alone do not: buildah and podman send a deny-all to every
/// container, and its /dev holds only its own devices anyway).
pub(super) fn asks_for_limits(r: &LinuxResources) -> bool {
    let v1_only = v1::settings(r, &[])
        .into_iter()
        .any(|s| V1_ONLY.iter().any(|f| s.file.starts_with(f)));
    v1_only || v2::settings(r).iter().any(|s| s.value != "max")
}

/// The v1 files that have no cgroup v2 counterpart.
pub(super) const V1_ONLY: &[&str] = &[
    "memory.swappiness",
    "memory.oom_control",
    "memory.kmem.",
    "cpu.rt_",
    "blkio.leaf_weight",
    "net_cls.",
    "net_prio.",
];

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
        if m.kernel().is_some() {
            crate::features::config_warning(format_args!(
                "linux.resources.memory.kernel is ignored: Linux no longer applies kernel memory limits (memory.kmem.limit_in_bytes)"
            ));
        }
        if let Some(v) = m.swappiness() {
            gate("linux.resources.memory.swappiness")?;
            if v > 100 {
                return Err(Error::Config(format!(
                    "linux.resources.memory.swappiness {v} is above 100"
                )));
            }
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use rstest::rstest;

    pub(in crate::cgroup) fn linux(v: serde_json::Value) -> oci_spec::runtime::Linux {
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
    fn systemd_form_is_kept_for_the_driver() {
        let got = plan(&linux(
            serde_json::json!({"cgroupsPath": "user.slice:libpod:abc"}),
        ));
        assert_eq!(
            got.unwrap().unwrap().place,
            Where::Systemd("user.slice:libpod:abc".into())
        );
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
}
