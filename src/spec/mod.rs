//! `config.json` → [`Plan`]: hutch's own, validated description of the
//! container. All unwrapping of the OCI spec's optional fields happens here,
//! before any process is forked; the setup code in `init.rs` only reads the
//! plan. Every field that is present goes through [`features::gate`].

mod linux;
mod mounts;
mod namespaces;
mod process;

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::Spec;

use crate::error::{Error, Result};
use crate::features::gate;

pub use linux::{DevicePlan, MemoryPolicy, NetDevicePlan};
pub use mounts::{MountIdMap, MountKind, MountPlan};
pub use namespaces::{is_mapped, IdRange, MapWriter, Namespaces, NsAction, UserNs};
pub use process::{CapSets, ProcessPlan};

use linux::{
    plan_devices, plan_memory_policy, plan_net_devices, plan_personality, plan_sysctl,
    plan_time_offsets,
};
use mounts::{plan_mounts, plan_paths, plan_rootfs_propagation};
use namespaces::{plan_namespaces, plan_userns};
use process::plan_process;

/// Everything hutch will do to make the container, validated.
#[derive(Clone, Debug)]
pub struct Plan {
    pub oci_version: String,
    /// Absolute bundle directory.
    pub bundle: PathBuf,
    /// Absolute root directory (for an image: where `create` mounts it,
    /// in the state entry).
    pub rootfs: PathBuf,
    pub root_readonly: bool,
    /// `root.path` names a SquashFS image file: the image (see squashfs.rs).
    pub root_image: Option<PathBuf>,
    /// Who serves it: the kernel's squashfs, hutch or a program through
    /// FUSE (set by `create`).
    pub root_server: Option<crate::squashfs::Serve>,
    /// Propagation of the container's mounts (`MS_SLAVE|MS_REC` by default).
    pub rootfs_propagation: MsFlags,
    pub mounts: Vec<MountPlan>,
    /// True when the config mounts nothing on `/dev`: hutch then makes a
    /// minimal one (a tmpfs with the default devices).
    pub minimal_dev: bool,
    pub devices: Vec<DevicePlan>,
    pub namespaces: Namespaces,
    pub userns: UserNs,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// The program; without `process` in the config (allowed by the spec
    /// until `start`), a placeholder that `start` refuses to run.
    pub process: ProcessPlan,
    pub has_process: bool,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub sysctl: Vec<(String, String)>,
    pub personality: Option<libc::c_ulong>,
    /// `linux.netDevices`, sorted by host name.
    pub net_devices: Vec<NetDevicePlan>,
    /// `linux.memoryPolicy`, ready for set_mempolicy(2).
    pub memory_policy: Option<MemoryPolicy>,
    /// The seccomp filter to load before the program runs.
    pub seccomp: Option<crate::seccomp::SeccompPlan>,
    pub hooks: crate::hooks::Hooks,
    /// `linux.timeOffsets`, as `/proc/self/timens_offsets` takes them.
    pub time_offsets: String,
    pub annotations: BTreeMap<String, String>,
    /// Root emulation where it applies (`rootemu`); off by annotation.
    pub root_emulation: bool,
    /// The container's cgroup v2 (`None`: hutch does no cgroup I/O).
    pub cgroup: Option<crate::cgroup::CgroupPlan>,
}

/// Facts about the process running hutch that decide how a config maps to
/// a plan.
#[derive(Clone, Copy, Debug)]
pub struct Host {
    pub euid: u32,
    pub egid: u32,
    /// True in the initial user namespace (real root or a plain user), false
    /// when hutch runs inside somebody's user namespace (buildah, podman).
    pub initial_userns: bool,
}

impl Host {
    /// Read the facts of the running process.
    pub fn current() -> Host {
        let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        let initial_userns =
            uid_map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
        Host {
            euid: nix::unistd::geteuid().as_raw(),
            egid: nix::unistd::getegid().as_raw(),
            initial_userns,
        }
    }
}

/// Read `BUNDLE/config.json` and turn it into a plan; the config's text
/// comes back too, for the state directory's copy.
pub fn load(bundle: &Path, host: Host) -> Result<(Plan, Vec<u8>)> {
    let bundle =
        std::path::absolute(bundle).map_err(|e| Error::io("resolve bundle path", bundle, e))?;
    let config_path = bundle.join("config.json");
    // Followed if it is a symlink (as runc and crun do); it must be a
    // regular file, read up to input::MAX_INPUT without blocking.
    let text =
        crate::input::read(&config_path, crate::input::Follow::Yes).map_err(|e| match e {
            Error::Sys {
                errno: nix::errno::Errno::ENOENT,
                ..
            } => Error::Config(format!("no config.json in bundle `{}`", bundle.display())),
            other => other,
        })?;
    let spec = parse(&text)?;
    Ok((plan(&spec, &bundle, host)?, text))
}

/// Parse the text of a `config.json`.
pub fn parse(text: &[u8]) -> Result<Spec> {
    serde_json::from_slice(text).map_err(|e| Error::Config(explain(text, e)))
}

/// serde names a bad enum value but not its field: for the fields whose
/// values are enums hutch checks, say which field it is.
fn explain(text: &[u8], e: serde_json::Error) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(text) else {
        return e.to_string();
    };
    let policy = &v["linux"]["memoryPolicy"];
    if !policy.is_null() {
        if let Err(pe) =
            serde_json::from_value::<oci_spec::runtime::LinuxMemoryPolicy>(policy.clone())
        {
            return format!("linux.memoryPolicy: {pe}");
        }
    }
    e.to_string()
}

/// Validate `spec` and build the plan. The sections are checked in this
/// order, so the first error a config has is the one reported.
pub fn plan(spec: &Spec, bundle: &Path, host: Host) -> Result<Plan> {
    check_version(spec.version())?;
    let (rootfs, root_readonly, root_image) = plan_root(spec, bundle)?;

    // `process` is optional until start: without it the container is
    // made, and start fails.
    let has_process = spec.process().is_some();
    let placeholder;
    let process = match spec.process() {
        Some(p) => p,
        None => {
            placeholder = oci_spec::runtime::Process::default();
            &placeholder
        }
    };
    let linux = spec.linux().clone().unwrap_or_default();

    let namespaces = plan_namespaces(&linux)?;
    let userns = plan_userns(&linux, &namespaces.user, host)?;
    let process = plan_process(process, &userns)?;
    check_names(spec, &namespaces)?;
    let hooks = plan_hooks(spec)?;
    let annotations = plan_annotations(spec)?;

    let mounts = plan_mounts(spec, bundle, &userns, host)?;
    let minimal_dev = !mounts.iter().any(|m| m.destination == Path::new("/dev"));
    let devices = plan_devices(&linux)?;
    let masked_paths = plan_paths("linux.maskedPaths", linux.masked_paths())?;
    let readonly_paths = plan_paths("linux.readonlyPaths", linux.readonly_paths())?;
    let sysctl = plan_sysctl(&linux, &namespaces)?;
    let rootfs_propagation = plan_rootfs_propagation(&linux)?;

    let cgroup = plan_cgroup(&linux)?;
    let seccomp = linux
        .seccomp()
        .as_ref()
        .map(crate::seccomp::plan)
        .transpose()?;
    if linux.mount_label().is_some() {
        gate("linux.mountLabel")?;
    }
    let time_offsets = plan_time_offsets(&linux, &namespaces)?;
    let net_devices = plan_net_devices(&linux, &namespaces, host)?;
    let memory_policy = linux
        .memory_policy()
        .as_ref()
        .map(plan_memory_policy)
        .transpose()?;
    let personality = plan_personality(&linux)?;

    Ok(Plan {
        oci_version: spec.version().clone(),
        bundle: bundle.to_path_buf(),
        rootfs,
        root_readonly,
        root_image,
        root_server: None,
        rootfs_propagation,
        mounts,
        minimal_dev,
        devices,
        namespaces,
        userns,
        hostname: spec.hostname().clone(),
        domainname: spec.domainname().clone(),
        process,
        has_process,
        masked_paths,
        readonly_paths,
        sysctl,
        personality,
        seccomp,
        hooks,
        time_offsets,
        net_devices,
        memory_policy,
        root_emulation: root_emulation(&annotations)?,
        annotations,
        cgroup,
    })
}

/// `root`: the real path of the root directory (mounts are checked
/// against where the kernel says the root is, and HPC home and scratch
/// paths are often symlinks), whether it is read-only, and the image
/// when it is a SquashFS file (recognised by its content, whatever its name).
fn plan_root(spec: &Spec, bundle: &Path) -> Result<(PathBuf, bool, Option<PathBuf>)> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Config("root is missing".into()))?;
    gate("root.path")?;
    let rootfs = bundle.join(root.path());
    let rootfs = std::fs::canonicalize(&rootfs).unwrap_or(rootfs);
    let image = match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => None,
        Ok(m) if m.is_file() && crate::squashfs::is_image(&rootfs) => {
            crate::squashfs::check(&rootfs)?;
            Some(rootfs.clone())
        }
        Ok(_) => {
            return Err(Error::Config(format!(
                "root.path `{}` is neither a directory nor a SquashFS image",
                rootfs.display()
            )))
        }
        Err(e) => {
            return Err(Error::Config(format!(
                "root.path `{}`: {e}",
                rootfs.display()
            )))
        }
    };
    let root_readonly = root.readonly().unwrap_or(false);
    if root_readonly {
        gate("root.readonly")?;
    }
    Ok((rootfs, root_readonly, image))
}

/// `hostname` and `domainname`: valid names, in a uts namespace of the
/// container's own.
fn check_names(spec: &Spec, namespaces: &Namespaces) -> Result<()> {
    if spec.hostname().is_some() {
        gate("hostname")?;
    }
    if spec.domainname().is_some() {
        gate("domainname")?;
    }
    if (spec.hostname().is_some() || spec.domainname().is_some())
        && namespaces.uts == NsAction::Inherit
    {
        return Err(Error::Config(
            "hostname and domainname need a private uts namespace".into(),
        ));
    }
    if let Some(h) = spec.hostname() {
        check_name("hostname", h)?;
    }
    if let Some(d) = spec.domainname() {
        check_name("domainname", d)?;
    }
    Ok(())
}

fn plan_hooks(spec: &Spec) -> Result<crate::hooks::Hooks> {
    match spec.hooks() {
        Some(h) if hooks_present(h) => {
            gate("hooks")?;
            crate::hooks::plan(h)
        }
        _ => Ok(crate::hooks::Hooks::default()),
    }
}

fn plan_annotations(spec: &Spec) -> Result<BTreeMap<String, String>> {
    let annotations: BTreeMap<String, String> = spec
        .annotations()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    if !annotations.is_empty() {
        gate("annotations")?;
    }
    Ok(annotations)
}

/// `linux.resources` (and `linux.intelRdt`, refused) → the container's
/// cgroup, if it gets one.
fn plan_cgroup(linux: &oci_spec::runtime::Linux) -> Result<Option<crate::cgroup::CgroupPlan>> {
    if linux.resources().is_some() {
        gate("linux.resources")?;
    }
    let cgroup = crate::cgroup::plan(linux)?;
    if linux.intel_rdt().is_some() {
        gate("linux.intelRdt")?;
    }
    Ok(cgroup)
}

/// Accept 1.0.0 through 1.3.x (with any pre-release suffix, as buildah's
/// `1.0.2-dev`).
pub fn check_version(version: &str) -> Result<()> {
    gate("ociVersion")?;
    let core = version.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let nums: Option<Vec<u32>> = parts.iter().map(|p| p.parse().ok()).collect();
    match nums.as_deref() {
        Some([1, minor, _patch]) if *minor <= 3 => Ok(()),
        _ => Err(Error::Config(format!(
            "unsupported ociVersion `{version}` (hutch supports 1.0.0 to 1.3.x)"
        ))),
    }
}

fn check_name(field: &str, name: &str) -> Result<()> {
    if name.len() > 64 || name.bytes().any(|b| b == 0 || b == b'/') {
        return Err(Error::Config(format!(
            "{field} `{name}` is not a valid name"
        )));
    }
    Ok(())
}

fn hooks_present(h: &oci_spec::runtime::Hooks) -> bool {
    let lists = [
        h.prestart(),
        h.create_runtime(),
        h.create_container(),
        h.start_container(),
        h.poststart(),
        h.poststop(),
    ];
    lists
        .iter()
        .any(|l| l.as_ref().is_some_and(|v| !v.is_empty()))
}

/// A list of numbers below `limit` as the kernel writes CPU and node lists
/// (`0-3,7`), or `None` when it is not one or is empty.
fn id_list(text: &str, limit: usize) -> Option<Vec<usize>> {
    let mut ids = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        if a > b || b >= limit {
            return None;
        }
        ids.extend(a..=b);
    }
    (!ids.is_empty()).then_some(ids)
}

/// Normalise a container path: absolute, no `.`, no `..` above the root
/// (a relative destination is taken relative to `/`, as runtime-spec 1.2
/// says). `..` is resolved lexically here and again, safely, at mount time.
pub fn container_path(field: &str, p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::Prefix(_) => {
                return Err(Error::Config(format!(
                    "{field}: bad path `{}`",
                    p.display()
                )))
            }
        }
    }
    if p.as_os_str().as_bytes().contains(&0) {
        return Err(Error::Config(format!("{field}: path contains a NUL byte")));
    }
    Ok(out)
}

/// The annotation that turns root emulation (`rootemu`) off for one
/// container.
pub const ROOT_EMULATION: &str = "org.hutch.root-emulation";

/// Root emulation is on unless the annotation says `false`.
fn root_emulation(annotations: &BTreeMap<String, String>) -> Result<bool> {
    match annotations.get(ROOT_EMULATION).map(String::as_str) {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(Error::Config(format!(
            "annotations: {ROOT_EMULATION} is `{other}`, not true or false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("1.0.0", true)]
    #[case("1.0.2-dev", true)]
    #[case("1.1.0-rc.1", true)]
    #[case("1.2.1", true)]
    #[case("1.3.0", true)]
    #[case("1.4.0", false)]
    #[case("2.0.0", false)]
    #[case("0.9.0", false)]
    #[case("", false)]
    #[case("1.0", false)]
    #[case("banana", false)]
    fn versions(#[case] v: &str, #[case] ok: bool) {
        assert_eq!(check_version(v).is_ok(), ok, "{v}");
    }

    #[rstest]
    #[case("/etc/hosts", "/etc/hosts")]
    #[case("etc/hosts", "/etc/hosts")]
    #[case("/a/../../b", "/b")]
    #[case("/a/./b/", "/a/b")]
    fn container_paths(#[case] input: &str, #[case] want: &str) {
        assert_eq!(
            container_path("t", Path::new(input)).unwrap(),
            PathBuf::from(want)
        );
    }
}
