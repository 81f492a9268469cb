//! `config.json` → [`Plan`]: hutch's own, validated description of the
//! container. All unwrapping of the OCI spec's optional fields happens here,
//! before any process is forked; the setup code in `init.rs` only reads the
//! plan. Every field that is present goes through [`features::gate`].

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::resource::Resource;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Mount, Spec};

use crate::error::{Error, Result};
use crate::features::gate;
use crate::sys::attr;

/// What to do with one kind of namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NsAction {
    /// Stay in hutch's own namespace.
    Inherit,
    /// Make a new one.
    New,
    /// Join the one at this path (`/proc/PID/ns/TYPE` or a bind mount of it).
    Join(PathBuf),
}

/// The namespaces of the container, one field per kind.
#[derive(Clone, Debug)]
pub struct Namespaces {
    pub user: NsAction,
    pub pid: NsAction,
    pub net: NsAction,
    pub ipc: NsAction,
    pub uts: NsAction,
    pub cgroup: NsAction,
    /// New: made on the start path (the program enters it at execve).
    pub time: NsAction,
    /// Always new (cloned at create) unless the config names one to join,
    /// which the container process does at create.
    pub mount: NsAction,
}

/// One line of a uid or gid map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// How the id maps of a new user namespace get written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapWriter {
    /// hutch writes them itself: it maps only its own ids (then `setgroups`
    /// must be denied), or it has CAP_SETUID/CAP_SETGID where it runs.
    Direct { deny_setgroups: bool },
    /// Through the setuid helpers `newuidmap` and `newgidmap`, which check
    /// `/etc/subuid` and `/etc/subgid`.
    Helpers,
}

/// The user namespace the container gets.
#[derive(Clone, Debug)]
pub enum UserNs {
    /// None of its own: hutch runs as root and the config asks for none.
    Inherit,
    /// A new one with these maps.
    New {
        uid_map: Vec<IdRange>,
        gid_map: Vec<IdRange>,
        writer: MapWriter,
    },
    /// The existing one at this path.
    Join(PathBuf),
}

/// What kind of filesystem a mount is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// A bind mount of `source` (resolved on the host, relative to the bundle).
    Bind {
        source: PathBuf,
        recursive: bool,
    },
    Proc,
    Sysfs,
    Tmpfs,
    Devpts,
    Mqueue,
    Cgroup,
    /// Any other filesystem type, handed to mount(2) as it is.
    Other {
        fstype: String,
        source: String,
    },
}

/// One mount, ready to apply.
#[derive(Clone, Debug)]
pub struct MountPlan {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    pub kind: MountKind,
    /// Flags given to mount(2) (fs mounts) or applied after the bind.
    pub flags: MsFlags,
    /// `ro`: applied after every mount exists.
    pub readonly: bool,
    /// Propagation to set on the new mount (`MS_SHARED`, … with `MS_REC`).
    pub propagation: MsFlags,
    /// `r*` options: attributes to set and clear on the whole tree.
    pub recursive_set: u64,
    pub recursive_clear: u64,
    /// Filesystem-specific options (`mode=755,size=65536k`).
    pub data: String,
    /// crun's `tmpcopyup`: copy the image's files into a new tmpfs.
    pub copy_up: bool,
    /// The source a new filesystem is mounted with (what mountinfo shows):
    /// the config's `source`, else the type.
    pub fs_source: String,
    /// An idmapped bind mount (`uidMappings`, `idmap`, `ridmap`).
    pub idmap: Option<MountIdMap>,
}

/// The id mapping of an idmapped bind mount: the maps of the user
/// namespace given to `mount_setattr(MOUNT_ATTR_IDMAP)`. An id of the
/// source file system (`inside`, the config's `containerID`) shows through
/// the mount as `outside` (`hostID`), which the container's own user
/// namespace, if any, then maps as it maps every id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountIdMap {
    pub uid_map: Vec<IdRange>,
    pub gid_map: Vec<IdRange>,
    /// `ridmap`: the mounts under the source (with `rbind`) too.
    pub recursive: bool,
}

/// One device node to provide in `/dev`.
#[derive(Clone, Debug)]
pub struct DevicePlan {
    /// Absolute path inside the container.
    pub path: PathBuf,
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub kind: nix::sys::stat::SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Capability sets, as names `caps` understands.
#[derive(Clone, Debug, Default)]
pub struct CapSets {
    pub bounding: Vec<caps::Capability>,
    pub effective: Vec<caps::Capability>,
    pub permitted: Vec<caps::Capability>,
    pub inheritable: Vec<caps::Capability>,
    pub ambient: Vec<caps::Capability>,
}

/// The container's program and how it runs.
#[derive(Clone, Debug)]
pub struct ProcessPlan {
    pub args: Vec<CString>,
    /// `NAME=value`, names unique (the last of a repeated name wins).
    pub env: Vec<CString>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub no_new_privileges: bool,
    pub rlimits: Vec<(Resource, u64, u64)>,
    pub capabilities: CapSets,
    pub oom_score_adj: Option<i32>,
    /// `process.scheduler`, ready for sched_setattr(2).
    pub scheduler: Option<crate::sys::SchedAttr>,
    /// `process.ioPriority`: class and level.
    pub io_priority: Option<(u32, u32)>,
    /// `process.execCPUAffinity.final`: the CPUs the program runs on.
    pub cpu_affinity: Option<Vec<usize>>,
}

/// Everything hutch will do to make the container, validated.
#[derive(Clone, Debug)]
pub struct Plan {
    pub oci_version: String,
    /// Absolute bundle directory.
    pub bundle: PathBuf,
    /// Absolute root directory.
    pub rootfs: PathBuf,
    pub root_readonly: bool,
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

/// One network device to move into the container's network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDevicePlan {
    /// Its name on the host.
    pub host_name: String,
    /// Its name in the container (the host name when the config gives
    /// none; a `%d` lets the kernel number it).
    pub name: String,
}

/// `linux.memoryPolicy`: what set_mempolicy(2) is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPolicy {
    /// `MPOL_*` or'ed with the `MPOL_F_*` flags.
    pub mode: libc::c_int,
    /// The node mask, one bit per node.
    pub nodemask: Vec<libc::c_ulong>,
    /// The config's mode and nodes, for messages.
    pub text: String,
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
    let text = std::fs::read(&config_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Config(format!("no config.json in bundle `{}`", bundle.display()))
        }
        _ => Error::io("read", &config_path, e),
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

/// Validate `spec` and build the plan.
pub fn plan(spec: &Spec, bundle: &Path, host: Host) -> Result<Plan> {
    check_version(spec.version())?;

    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Config("root is missing".into()))?;
    gate("root.path")?;
    // The real path: mounts are checked against where the kernel says the
    // root is, and HPC home and scratch paths are often symlinks.
    let rootfs = bundle.join(root.path());
    let rootfs = std::fs::canonicalize(&rootfs).unwrap_or(rootfs);
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::Config(format!(
                "root.path `{}` is not a directory",
                rootfs.display()
            )))
        }
        Err(e) => {
            return Err(Error::Config(format!(
                "root.path `{}`: {e}",
                rootfs.display()
            )))
        }
    }
    let root_readonly = root.readonly().unwrap_or(false);
    if root_readonly {
        gate("root.readonly")?;
    }

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
    let hooks = match spec.hooks() {
        Some(h) if hooks_present(h) => {
            gate("hooks")?;
            crate::hooks::plan(h)?
        }
        _ => crate::hooks::Hooks::default(),
    };
    let annotations: BTreeMap<String, String> = spec
        .annotations()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    if !annotations.is_empty() {
        gate("annotations")?;
    }

    let mut mounts = Vec::new();
    for m in spec.mounts().as_deref().unwrap_or_default() {
        mounts.push(plan_mount(m, bundle, &userns, host)?);
    }
    let minimal_dev = !mounts.iter().any(|m| m.destination == Path::new("/dev"));

    let devices = plan_devices(&linux)?;
    let masked_paths = plan_paths("linux.maskedPaths", linux.masked_paths())?;
    let readonly_paths = plan_paths("linux.readonlyPaths", linux.readonly_paths())?;
    let sysctl = plan_sysctl(&linux, &namespaces)?;

    let rootfs_propagation = match linux.rootfs_propagation().as_deref() {
        None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => {
            gate("linux.rootfsPropagation")?;
            match p {
                "shared" | "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
                "slave" | "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
                "private" | "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                "unbindable" | "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
                other => {
                    return Err(Error::Config(format!(
                        "linux.rootfsPropagation: unknown value `{other}`"
                    )))
                }
            }
        }
    };

    if linux.resources().is_some() {
        gate("linux.resources")?;
    }
    let cgroup = crate::cgroup::plan(&linux)?;
    if linux.intel_rdt().is_some() {
        gate("linux.intelRdt")?;
    }
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
    let personality = match linux.personality() {
        None => None,
        Some(p) => {
            gate("linux.personality")?;
            use oci_spec::runtime::LinuxPersonalityDomain as D;
            if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
                return Err(Error::Config(
                    "linux.personality.flags are not supported".into(),
                ));
            }
            Some(match p.domain() {
                D::PerLinux => 0x0000,
                D::PerLinux32 => 0x0008,
            })
        }
    };

    Ok(Plan {
        oci_version: spec.version().clone(),
        bundle: bundle.to_path_buf(),
        rootfs,
        root_readonly,
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
        root_emulation: crate::rootemu::wanted(&annotations)?,
        annotations,
        cgroup,
    })
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

fn plan_namespaces(linux: &oci_spec::runtime::Linux) -> Result<Namespaces> {
    let mut ns = Namespaces {
        user: NsAction::Inherit,
        pid: NsAction::Inherit,
        net: NsAction::Inherit,
        ipc: NsAction::Inherit,
        uts: NsAction::Inherit,
        cgroup: NsAction::Inherit,
        time: NsAction::Inherit,
        mount: NsAction::New,
    };
    let mut seen = Vec::new();
    let mut has_mount = false;
    for n in linux.namespaces().as_deref().unwrap_or_default() {
        gate("linux.namespaces")?;
        let typ = n.typ();
        if seen.contains(&typ) {
            return Err(Error::Config(format!(
                "linux.namespaces: `{typ}` is listed twice"
            )));
        }
        seen.push(typ);
        let action = match n.path() {
            None => NsAction::New,
            Some(p) if p.is_absolute() => NsAction::Join(p.clone()),
            Some(p) => {
                return Err(Error::Config(format!(
                    "linux.namespaces: path `{}` of `{typ}` must be absolute",
                    p.display()
                )))
            }
        };
        let slot = match typ {
            LinuxNamespaceType::User => &mut ns.user,
            LinuxNamespaceType::Pid => &mut ns.pid,
            LinuxNamespaceType::Network => &mut ns.net,
            LinuxNamespaceType::Ipc => &mut ns.ipc,
            LinuxNamespaceType::Uts => &mut ns.uts,
            LinuxNamespaceType::Cgroup => &mut ns.cgroup,
            LinuxNamespaceType::Mount => {
                has_mount = true;
                if matches!(action, NsAction::Join(_)) {
                    gate("linux.namespaces.mount.path")?;
                }
                &mut ns.mount
            }
            LinuxNamespaceType::Time => {
                gate("linux.namespaces.time")?;
                &mut ns.time
            }
        };
        *slot = action;
    }
    if !has_mount {
        tracing::debug!("linux.namespaces has no mount namespace; hutch makes one anyway");
    }
    Ok(ns)
}

fn ranges(maps: &Option<Vec<LinuxIdMapping>>) -> Vec<IdRange> {
    maps.as_deref()
        .unwrap_or_default()
        .iter()
        .map(|m| IdRange {
            inside: m.container_id(),
            outside: m.host_id(),
            count: m.size(),
        })
        .collect()
}

/// A map the kernel takes: no empty or overflowing range, at most 340
/// ranges, none overlapping another on either side.
fn check_ranges(field: &str, map: &[IdRange]) -> Result<()> {
    if map.iter().any(|r| {
        r.count == 0
            || r.inside.checked_add(r.count).is_none()
            || r.outside.checked_add(r.count).is_none()
    }) {
        return Err(Error::Config(format!(
            "{field}: a range is empty or overflows"
        )));
    }
    if map.len() > 340 {
        return Err(Error::Config(format!("{field}: more than 340 ranges")));
    }
    for (i, a) in map.iter().enumerate() {
        for b in &map[i + 1..] {
            let overlap = |x: u32, y: u32| x < y + b.count && y < x + a.count;
            if overlap(a.inside, b.inside) || overlap(a.outside, b.outside) {
                return Err(Error::Config(format!("{field}: ranges overlap")));
            }
        }
    }
    Ok(())
}

fn plan_userns(linux: &oci_spec::runtime::Linux, action: &NsAction, host: Host) -> Result<UserNs> {
    let uid_map = ranges(linux.uid_mappings());
    let gid_map = ranges(linux.gid_mappings());
    if !uid_map.is_empty() || !gid_map.is_empty() {
        gate("linux.uidMappings")?;
    }
    check_ranges("linux.uidMappings", &uid_map)?;
    check_ranges("linux.gidMappings", &gid_map)?;

    match action {
        NsAction::Join(p) => {
            if !uid_map.is_empty() {
                return Err(Error::Config(
                    "linux.uidMappings cannot be used when joining a user namespace".into(),
                ));
            }
            return Ok(UserNs::Join(p.clone()));
        }
        NsAction::Inherit if host.euid == 0 => {
            if !uid_map.is_empty() || !gid_map.is_empty() {
                return Err(Error::Config(
                    "linux.uidMappings given without a user namespace".into(),
                ));
            }
            return Ok(UserNs::Inherit);
        }
        // A plain user always gets a user namespace: without one it could
        // not make any of the others.
        NsAction::Inherit | NsAction::New => {}
    }

    let (uid_map, gid_map) = match (uid_map.is_empty(), gid_map.is_empty()) {
        (true, true) if host.euid != 0 => (
            vec![IdRange { inside: 0, outside: host.euid, count: 1 }],
            vec![IdRange { inside: 0, outside: host.egid, count: 1 }],
        ),
        (true, true) => {
            return Err(Error::Config("a user namespace needs linux.uidMappings and linux.gidMappings when hutch runs as root".into()))
        }
        (false, false) => (uid_map, gid_map),
        _ => return Err(Error::Config("linux.uidMappings and linux.gidMappings must be given together".into())),
    };
    let own_single =
        |map: &[IdRange], id: u32| map.len() == 1 && map[0].count == 1 && map[0].outside == id;
    let writer = if host.euid == 0 {
        MapWriter::Direct {
            deny_setgroups: false,
        }
    } else if own_single(&uid_map, host.euid) && own_single(&gid_map, host.egid) {
        MapWriter::Direct {
            deny_setgroups: true,
        }
    } else {
        MapWriter::Helpers
    };
    Ok(UserNs::New {
        uid_map,
        gid_map,
        writer,
    })
}

/// True if `id` is mapped by `map` (as an id inside the namespace).
pub fn is_mapped(map: &[IdRange], id: u32) -> bool {
    map.iter()
        .any(|r| id >= r.inside && id - r.inside < r.count)
}

fn plan_process(p: &oci_spec::runtime::Process, userns: &UserNs) -> Result<ProcessPlan> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(Error::Config("process.args is empty".into()));
    }
    gate("process.args")?;
    if p.command_line().is_some() {
        gate("process.commandLine")?;
    }
    let args = args
        .iter()
        .map(|a| cstring("process.args", a))
        .collect::<Result<Vec<_>>>()?;

    let mut env: Vec<(String, String)> = Vec::new();
    for e in p.env().as_deref().unwrap_or_default() {
        gate("process.env")?;
        let (name, value) = e
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("process.env: `{e}` is not NAME=value")))?;
        if name.is_empty() {
            return Err(Error::Config(format!(
                "process.env: `{e}` has an empty name"
            )));
        }
        match env.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => env.push((name.to_string(), value.to_string())),
        }
    }
    let env = env
        .iter()
        .map(|(n, v)| cstring("process.env", &format!("{n}={v}")))
        .collect::<Result<Vec<_>>>()?;

    let cwd = p.cwd().clone();
    gate("process.cwd")?;
    if !cwd.is_absolute() {
        return Err(Error::Config(format!(
            "process.cwd `{}` is not absolute",
            cwd.display()
        )));
    }

    let user = p.user();
    gate("process.user")?;
    if user.username().is_some() {
        gate("process.user.username")?;
    }
    let additional_gids = user.additional_gids().clone().unwrap_or_default();
    if let UserNs::New {
        uid_map, gid_map, ..
    } = userns
    {
        if !is_mapped(uid_map, user.uid()) {
            return Err(Error::Config(format!(
                "process.user.uid {} is not mapped in the user namespace",
                user.uid()
            )));
        }
        if !is_mapped(gid_map, user.gid()) {
            return Err(Error::Config(format!(
                "process.user.gid {} is not mapped in the user namespace",
                user.gid()
            )));
        }
    }

    let terminal = p.terminal().unwrap_or(false);
    if terminal {
        gate("process.terminal")?;
    }
    let console_size = match p.console_size() {
        Some(b) => {
            gate("process.consoleSize")?;
            Some((
                b.height().min(u16::MAX as u64) as u16,
                b.width().min(u16::MAX as u64) as u16,
            ))
        }
        None => None,
    };

    let mut rlimits = Vec::new();
    for r in p.rlimits().as_deref().unwrap_or_default() {
        gate("process.rlimits")?;
        let res = rlimit_resource(r.typ())?;
        if rlimits.iter().any(|(x, _, _)| *x == res) {
            return Err(Error::Config(format!(
                "process.rlimits: `{:?}` is listed twice",
                r.typ()
            )));
        }
        if r.soft() > r.hard() {
            return Err(Error::Config(format!(
                "process.rlimits: soft limit of `{:?}` is above its hard limit",
                r.typ()
            )));
        }
        rlimits.push((res, r.soft(), r.hard()));
    }

    let capabilities = match p.capabilities() {
        None => CapSets::default(),
        Some(c) => {
            gate("process.capabilities")?;
            let conv =
                |set: &Option<oci_spec::runtime::Capabilities>| -> Result<Vec<caps::Capability>> {
                    let mut out: Vec<caps::Capability> = set
                        .iter()
                        .flatten()
                        .map(|cap| {
                            let name = format!("CAP_{cap}");
                            name.parse::<caps::Capability>().map_err(|_| {
                                Error::Config(format!(
                                    "process.capabilities: unknown capability `{name}`"
                                ))
                            })
                        })
                        .collect::<Result<_>>()?;
                    out.sort_by_key(|c| c.index());
                    Ok(out)
                };
            CapSets {
                bounding: conv(c.bounding())?,
                effective: conv(c.effective())?,
                permitted: conv(c.permitted())?,
                inheritable: conv(c.inheritable())?,
                ambient: conv(c.ambient())?,
            }
        }
    };

    let no_new_privileges = p.no_new_privileges().unwrap_or(false);
    if no_new_privileges {
        gate("process.noNewPrivileges")?;
    }
    if p.oom_score_adj().is_some() {
        gate("process.oomScoreAdj")?;
        if !(-1000..=1000).contains(&p.oom_score_adj().unwrap_or(0)) {
            return Err(Error::Config(
                "process.oomScoreAdj must be between -1000 and 1000".into(),
            ));
        }
    }
    if p.apparmor_profile()
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        gate("process.apparmorProfile")?;
    }
    if p.selinux_label().as_deref().is_some_and(|s| !s.is_empty()) {
        gate("process.selinuxLabel")?;
    }
    let scheduler = p.scheduler().as_ref().map(plan_scheduler).transpose()?;
    let io_priority = match p.io_priority() {
        None => None,
        Some(io) => {
            gate("process.ioPriority")?;
            use oci_spec::runtime::IOPriorityClass as C;
            let class = match io.class() {
                C::IoprioClassRt => 1,
                C::IoprioClassBe => 2,
                C::IoprioClassIdle => 3,
            };
            let level = u32::try_from(io.priority())
                .ok()
                .filter(|l| *l <= 7)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "process.ioPriority.priority {} is not 0 to 7",
                        io.priority()
                    ))
                })?;
            Some((class, level))
        }
    };
    let cpu_affinity = match p.exec_cpu_affinity() {
        None => None,
        Some(a) => {
            gate("process.execCPUAffinity")?;
            a.cpu_affinity_final()
                .as_deref()
                .map(cpu_list)
                .transpose()?
        }
    };

    Ok(ProcessPlan {
        args,
        env,
        cwd,
        uid: user.uid(),
        gid: user.gid(),
        additional_gids,
        umask: user.umask(),
        terminal,
        console_size,
        no_new_privileges,
        rlimits,
        capabilities,
        oom_score_adj: p.oom_score_adj(),
        scheduler,
        io_priority,
        cpu_affinity,
    })
}

/// `monotonic SECS NANOSECS` and `boottime SECS NANOSECS` lines, for a new
/// time namespace only.
fn plan_time_offsets(linux: &oci_spec::runtime::Linux, ns: &Namespaces) -> Result<String> {
    let Some(offsets) = linux.time_offsets() else {
        return Ok(String::new());
    };
    gate("linux.timeOffsets")?;
    if ns.time != NsAction::New {
        return Err(Error::Config(
            "linux.timeOffsets needs a new time namespace".into(),
        ));
    }
    let mut lines = Vec::new();
    for (clock, off) in offsets {
        if clock != "monotonic" && clock != "boottime" {
            return Err(Error::Config(format!(
                "linux.timeOffsets: unknown clock `{clock}`"
            )));
        }
        let nanos = off.nanosecs().unwrap_or(0);
        if nanos >= 1_000_000_000 {
            return Err(Error::Config(format!(
                "linux.timeOffsets.{clock}.nanosecs {nanos} is not below 1e9"
            )));
        }
        lines.push(format!("{clock} {} {nanos}", off.secs().unwrap_or(0)));
    }
    lines.sort();
    Ok(lines.join("\n"))
}

fn plan_scheduler(sch: &oci_spec::runtime::Scheduler) -> Result<crate::sys::SchedAttr> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    gate("process.scheduler")?;
    let policy = match sch.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => {
            return Err(Error::Config(
                "process.scheduler: SCHED_ISO is not a Linux policy".into(),
            ))
        }
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in sch.flags().as_deref().unwrap_or_default() {
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    let nice = sch.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(Error::Config(format!(
            "process.scheduler.nice {nice} is not -20 to 19"
        )));
    }
    let priority = u32::try_from(sch.priority().unwrap_or(0))
        .map_err(|_| Error::Config("process.scheduler.priority is negative".into()))?;
    Ok(crate::sys::SchedAttr {
        size: 0,
        policy,
        flags,
        nice,
        priority,
        runtime: sch.runtime().unwrap_or(0),
        deadline: sch.deadline().unwrap_or(0),
        period: sch.period().unwrap_or(0),
    })
}

/// Network devices move from the host's network namespace into a new one
/// of the container's: that takes CAP_NET_ADMIN over the host's, which only
/// real root has.
fn plan_net_devices(
    linux: &oci_spec::runtime::Linux,
    ns: &Namespaces,
    host: Host,
) -> Result<Vec<NetDevicePlan>> {
    let mut out: Vec<NetDevicePlan> = Vec::new();
    for (host_name, d) in linux.net_devices().clone().unwrap_or_default() {
        gate("linux.netDevices")?;
        let name = d.name().clone().unwrap_or_else(|| host_name.clone());
        check_ifname(&host_name, &host_name, false)?;
        check_ifname(&host_name, &name, true)?;
        out.push(NetDevicePlan { host_name, name });
    }
    out.sort_by(|a, b| a.host_name.cmp(&b.host_name));
    let Some(first) = out.first() else {
        return Ok(out);
    };
    if ns.net != NsAction::New {
        return Err(Error::Config(format!(
            "linux.netDevices: moving `{}` needs a new network namespace (linux.namespaces has no network entry without a path)",
            first.host_name
        )));
    }
    if host.euid != 0 || !host.initial_userns {
        return Err(Error::Config(format!(
            "linux.netDevices: moving `{}` needs real root (CAP_NET_ADMIN in the host's network namespace)",
            first.host_name
        )));
    }
    for (i, a) in out.iter().enumerate() {
        if let Some(b) = out[i + 1..]
            .iter()
            .find(|b| b.name == a.name && !a.name.contains('%'))
        {
            return Err(Error::Config(format!(
                "linux.netDevices: `{}` and `{}` would both be `{}` in the container",
                a.host_name, b.host_name, a.name
            )));
        }
    }
    Ok(out)
}

/// A network interface name the kernel takes: 1 to 15 bytes, not `.` or
/// `..`, no `/`, `:`, whitespace or NUL; `%d` (once) only in a new name.
fn check_ifname(device: &str, name: &str, template_ok: bool) -> Result<()> {
    let bad_char = |c: char| c == '/' || c == ':' || c == '\0' || c.is_whitespace();
    let percents = name.matches('%').count();
    let template = percents == 1 && name.contains("%d");
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name.chars().any(bad_char)
        || (percents > 0 && !(template && template_ok))
    {
        return Err(Error::Config(format!(
            "linux.netDevices: `{name}` (for `{device}`) is not a network interface name"
        )));
    }
    Ok(())
}

/// A CPU list as the kernel writes them: `0-3,7`.
fn cpu_list(text: &str) -> Result<Vec<usize>> {
    id_list(text, nix::sched::CpuSet::count()).ok_or_else(|| {
        Error::Config(format!(
            "process.execCPUAffinity: `{text}` is not a CPU list"
        ))
    })
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

/// The most NUMA nodes a kernel can have (`MAX_NUMNODES` with the largest
/// `NODES_SHIFT`).
const MAX_NODES: usize = 1024;

fn plan_memory_policy(p: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<MemoryPolicy> {
    use oci_spec::runtime::MemoryPolicyFlagType as F;
    use oci_spec::runtime::MemoryPolicyModeType as M;
    gate("linux.memoryPolicy")?;
    let (mode, needs_nodes, takes_nodes) = match p.mode() {
        M::MpolDefault => (0, false, false),
        M::MpolPreferred => (1, false, true),
        M::MpolBind => (2, true, true),
        M::MpolInterleave => (3, true, true),
        M::MpolLocal => (4, false, false),
        M::MpolPreferredMany => (5, true, true),
        M::MpolWeightedInterleave => (6, true, true),
    };
    let nodes_text = p.nodes().as_deref().unwrap_or("").trim();
    let nodes = if nodes_text.is_empty() {
        Vec::new()
    } else {
        id_list(nodes_text, MAX_NODES).ok_or_else(|| {
            Error::Config(format!(
                "linux.memoryPolicy.nodes: `{nodes_text}` is not a node list below {MAX_NODES}"
            ))
        })?
    };
    if nodes.is_empty() && needs_nodes {
        return Err(Error::Config(format!(
            "linux.memoryPolicy.nodes: {} needs at least one node",
            p.mode()
        )));
    }
    if !nodes.is_empty() && !takes_nodes {
        return Err(Error::Config(format!(
            "linux.memoryPolicy.nodes: {} takes no nodes",
            p.mode()
        )));
    }
    let mut flags = 0;
    for f in p.flags().as_deref().unwrap_or_default() {
        flags |= match f {
            F::MpolFNumaBalancing => 1 << 13,
            F::MpolFRelativeNodes => 1 << 14,
            F::MpolFStaticNodes => 1 << 15,
        };
    }
    if flags & (3 << 14) == 3 << 14 {
        return Err(Error::Config(
            "linux.memoryPolicy.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other"
                .into(),
        ));
    }
    let bits = libc::c_ulong::BITS as usize;
    let mut nodemask: Vec<libc::c_ulong> = Vec::new();
    for n in nodes {
        if nodemask.len() <= n / bits {
            nodemask.resize(n / bits + 1, 0);
        }
        nodemask[n / bits] |= 1 << (n % bits);
    }
    Ok(MemoryPolicy {
        mode: mode | flags,
        nodemask,
        text: format!("{} nodes `{nodes_text}`", p.mode()),
    })
}

fn cstring(field: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| {
        Error::Config(format!(
            "{field}: `{}` contains a NUL byte",
            s.escape_debug()
        ))
    })
}

fn rlimit_resource(t: oci_spec::runtime::PosixRlimitType) -> Result<Resource> {
    use oci_spec::runtime::PosixRlimitType as T;
    Ok(match t {
        T::RlimitCpu => Resource::RLIMIT_CPU,
        T::RlimitFsize => Resource::RLIMIT_FSIZE,
        T::RlimitData => Resource::RLIMIT_DATA,
        T::RlimitStack => Resource::RLIMIT_STACK,
        T::RlimitCore => Resource::RLIMIT_CORE,
        T::RlimitRss => Resource::RLIMIT_RSS,
        T::RlimitNproc => Resource::RLIMIT_NPROC,
        T::RlimitNofile => Resource::RLIMIT_NOFILE,
        T::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        T::RlimitAs => Resource::RLIMIT_AS,
        T::RlimitLocks => Resource::RLIMIT_LOCKS,
        T::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        T::RlimitNice => Resource::RLIMIT_NICE,
        T::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        T::RlimitRttime => Resource::RLIMIT_RTTIME,
    })
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

fn plan_mount(m: &Mount, bundle: &Path, userns: &UserNs, host: Host) -> Result<MountPlan> {
    gate("mounts")?;
    let destination = container_path("mounts.destination", m.destination())?;
    let has_maps = m.uid_mappings().is_some() || m.gid_mappings().is_some();
    if has_maps {
        gate("mounts.uidMappings")?;
    }
    // None, `idmap` or `ridmap` (the last one given wins).
    let mut idmap_option: Option<bool> = None;
    let fstype = m.typ().clone().unwrap_or_default();
    let options = m.options().clone().unwrap_or_default();

    let mut flags = MsFlags::empty();
    let mut readonly = false;
    let mut propagation = MsFlags::empty();
    let mut bind = fstype == "bind";
    let mut recursive = false;
    let mut recursive_set = 0u64;
    let mut recursive_clear = 0u64;
    let mut copy_up = false;
    let mut data: Vec<&str> = Vec::new();
    for opt in &options {
        let o = opt.as_str();
        match o {
            "bind" => bind = true,
            "rbind" => {
                bind = true;
                recursive = true;
            }
            "ro" => readonly = true,
            "rw" => readonly = false,
            "defaults" | "async" | "loud" | "suid" | "dev" | "exec" | "atime" | "diratime"
            | "norelatime" | "nostrictatime" | "nolazytime" | "noiversion" | "nomand"
            | "symfollow" => {}
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "dirsync" => flags |= MsFlags::MS_DIRSYNC,
            "mand" => flags |= MsFlags::MS_MANDLOCK,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "lazytime" => flags |= MsFlags::MS_LAZYTIME,
            "iversion" => flags |= MsFlags::MS_I_VERSION,
            "silent" => flags |= MsFlags::MS_SILENT,
            "remount" => {}
            "nosymfollow" => flags |= MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
            "private" => propagation = MsFlags::MS_PRIVATE,
            "rprivate" => propagation = MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            "shared" => propagation = MsFlags::MS_SHARED,
            "rshared" => propagation = MsFlags::MS_SHARED | MsFlags::MS_REC,
            "slave" => propagation = MsFlags::MS_SLAVE,
            "rslave" => propagation = MsFlags::MS_SLAVE | MsFlags::MS_REC,
            "unbindable" => propagation = MsFlags::MS_UNBINDABLE,
            "runbindable" => propagation = MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
            "idmap" | "ridmap" => {
                gate("mounts.options.idmap")?;
                idmap_option = Some(o == "ridmap");
            }
            "tmpcopyup" => {
                gate("mounts.options.tmpcopyup")?;
                copy_up = true;
            }
            _ if o.starts_with('r') && recursive_attr(&o[1..]).is_some() => {
                gate("mounts.options.recursive")?;
                let (set, clear) = recursive_attr(&o[1..]).unwrap_or((0, 0));
                recursive_set = (recursive_set & !clear) | set;
                recursive_clear = (recursive_clear & !set) | clear;
            }
            _ => data.push(o),
        }
    }

    let kind = if bind {
        gate("mounts.bind")?;
        let source = m.source().as_ref().ok_or_else(|| {
            Error::Config(format!(
                "mounts: bind mount on `{}` has no source",
                destination.display()
            ))
        })?;
        data.clear();
        MountKind::Bind {
            source: bundle.join(source),
            recursive,
        }
    } else {
        match fstype.as_str() {
            "proc" => MountKind::Proc,
            "sysfs" => MountKind::Sysfs,
            "tmpfs" => MountKind::Tmpfs,
            "devpts" => MountKind::Devpts,
            "mqueue" => MountKind::Mqueue,
            "cgroup" | "cgroup2" => MountKind::Cgroup,
            "" | "none" => {
                return Err(Error::Config(format!(
                    "mounts: `{}` has no type and is not a bind mount",
                    destination.display()
                )))
            }
            other => MountKind::Other {
                fstype: other.to_string(),
                source: m
                    .source()
                    .as_ref()
                    .map(|s| s.display().to_string())
                    .unwrap_or_else(|| other.to_string()),
            },
        }
    };
    let key = match &kind {
        MountKind::Bind { .. } => "mounts.bind",
        MountKind::Proc => "mounts.proc",
        MountKind::Sysfs => "mounts.sysfs",
        MountKind::Tmpfs => "mounts.tmpfs",
        MountKind::Devpts => "mounts.devpts",
        MountKind::Mqueue => "mounts.mqueue",
        MountKind::Cgroup => "mounts.cgroup",
        MountKind::Other { .. } => "mounts.other",
    };
    gate(key)?;
    if copy_up && kind != MountKind::Tmpfs {
        return Err(Error::Config(format!(
            "mounts: tmpcopyup on `{}` needs a tmpfs",
            destination.display()
        )));
    }
    if destination == Path::new("/") {
        return Err(Error::Config(
            "mounts: a mount on `/` is not supported; use root.path".into(),
        ));
    }
    let fs_source = match m.source() {
        Some(s) if !s.as_os_str().is_empty() => s.display().to_string(),
        _ => fstype.clone(),
    };
    let idmap = if has_maps || idmap_option.is_some() {
        Some(plan_mount_idmap(
            m,
            &destination,
            &kind,
            idmap_option.unwrap_or(false),
            userns,
            host,
        )?)
    } else {
        None
    };
    Ok(MountPlan {
        destination,
        kind,
        flags,
        readonly,
        propagation,
        recursive_set,
        recursive_clear,
        data: data.join(","),
        copy_up,
        fs_source,
        idmap,
    })
}

/// The mapping of an idmapped mount: the mount's own maps, or, for `idmap`
/// or `ridmap` without them, those of the container's new user namespace
/// (as runtime-spec 1.1 allows). Only bind mounts, and only as real root:
/// `MOUNT_ATTR_IDMAP` needs CAP_SYS_ADMIN in the user namespace that owns
/// the source's file system, the initial one for the host's.
fn plan_mount_idmap(
    m: &Mount,
    destination: &Path,
    kind: &MountKind,
    recursive: bool,
    userns: &UserNs,
    host: Host,
) -> Result<MountIdMap> {
    let dest = destination.display();
    if !matches!(kind, MountKind::Bind { .. }) {
        return Err(Error::Config(format!(
            "mounts: idmapped mount on `{dest}`: only bind mounts can be idmapped"
        )));
    }
    if host.euid != 0 || !host.initial_userns {
        return Err(Error::Config(format!(
            "mounts: idmapped mount on `{dest}` needs real root (CAP_SYS_ADMIN over the source's file system)"
        )));
    }
    let (uid_map, gid_map) = match (m.uid_mappings(), m.gid_mappings()) {
        (Some(_), Some(_)) => (ranges(m.uid_mappings()), ranges(m.gid_mappings())),
        (None, None) => match userns {
            UserNs::New {
                uid_map, gid_map, ..
            } => (uid_map.clone(), gid_map.clone()),
            _ => {
                return Err(Error::Config(format!(
                    "mounts: idmapped mount on `{dest}` has no uidMappings and gidMappings, and the container has no new user namespace whose maps it could use"
                )))
            }
        },
        _ => {
            return Err(Error::Config(format!(
                "mounts: idmapped mount on `{dest}`: uidMappings and gidMappings must be given together"
            )))
        }
    };
    if uid_map.is_empty() || gid_map.is_empty() {
        return Err(Error::Config(format!(
            "mounts: idmapped mount on `{dest}` has an empty uidMappings or gidMappings"
        )));
    }
    check_ranges(&format!("mounts: uidMappings of `{dest}`"), &uid_map)?;
    check_ranges(&format!("mounts: gidMappings of `{dest}`"), &gid_map)?;
    Ok(MountIdMap {
        uid_map,
        gid_map,
        recursive,
    })
}

/// `ro` → set RDONLY, `rw` → clear it, and so on, for the `r*` options.
fn recursive_attr(name: &str) -> Option<(u64, u64)> {
    Some(match name {
        "ro" => (attr::RDONLY, 0),
        "rw" => (0, attr::RDONLY),
        "nosuid" => (attr::NOSUID, 0),
        "suid" => (0, attr::NOSUID),
        "nodev" => (attr::NODEV, 0),
        "dev" => (0, attr::NODEV),
        "noexec" => (attr::NOEXEC, 0),
        "exec" => (0, attr::NOEXEC),
        "relatime" => (attr::RELATIME, attr::ATIME_MASK),
        "noatime" => (attr::NOATIME, attr::ATIME_MASK),
        "strictatime" => (attr::STRICTATIME, attr::ATIME_MASK),
        "nodiratime" => (attr::NODIRATIME, 0),
        "diratime" => (0, attr::NODIRATIME),
        "nosymfollow" => (attr::NOSYMFOLLOW, 0),
        "symfollow" => (0, attr::NOSYMFOLLOW),
        _ => return None,
    })
}

fn plan_devices(linux: &oci_spec::runtime::Linux) -> Result<Vec<DevicePlan>> {
    use nix::sys::stat::SFlag;
    use oci_spec::runtime::LinuxDeviceType as T;
    let mut out = Vec::new();
    for d in linux.devices().as_deref().unwrap_or_default() {
        gate("linux.devices")?;
        let path = container_path("linux.devices.path", d.path())?;
        if !path.starts_with("/dev") {
            return Err(Error::Config(format!(
                "linux.devices: `{}` is not under /dev",
                path.display()
            )));
        }
        let kind = match d.typ() {
            T::C | T::U => SFlag::S_IFCHR,
            T::B => SFlag::S_IFBLK,
            T::P => SFlag::S_IFIFO,
            T::A => {
                return Err(Error::Config(format!(
                    "linux.devices: `{}` has type `a`",
                    path.display()
                )))
            }
        };
        out.push(DevicePlan {
            path,
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    Ok(out)
}

fn plan_paths(field: &'static str, list: &Option<Vec<String>>) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in list.as_deref().unwrap_or_default() {
        gate(field)?;
        if !p.starts_with('/') {
            return Err(Error::Config(format!("{field}: `{p}` is not absolute")));
        }
        out.push(container_path(field, Path::new(p))?);
    }
    Ok(out)
}

/// Only sysctls that belong to a namespace the container has of its own can
/// be set; anything else would change the host.
fn plan_sysctl(linux: &oci_spec::runtime::Linux, ns: &Namespaces) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (key, value) in linux.sysctl().clone().unwrap_or_default() {
        gate("linux.sysctl")?;
        let owner_ok = if key.starts_with("net.") {
            ns.net != NsAction::Inherit
        } else if key.starts_with("kernel.msg")
            || key.starts_with("kernel.sem")
            || key.starts_with("kernel.shm")
            || key.starts_with("fs.mqueue.")
        {
            ns.ipc != NsAction::Inherit
        } else if key == "kernel.hostname" || key == "kernel.domainname" {
            ns.uts != NsAction::Inherit
        } else {
            false
        };
        if !owner_ok {
            return Err(Error::Config(format!(
                "linux.sysctl: `{key}` is not in a namespace the container has of its own"
            )));
        }
        if key.contains("..") || key.contains('/') || value.contains('\0') {
            return Err(Error::Config(format!(
                "linux.sysctl: bad key or value for `{key}`"
            )));
        }
        out.push((key, value));
    }
    out.sort();
    Ok(out)
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

    #[test]
    fn memory_policy_nodemask() {
        let p: oci_spec::runtime::LinuxMemoryPolicy = serde_json::from_value(serde_json::json!(
            {"mode": "MPOL_INTERLEAVE", "nodes": "0,2-3,65", "flags": ["MPOL_F_RELATIVE_NODES"]}
        ))
        .unwrap();
        let plan = plan_memory_policy(&p).unwrap();
        assert_eq!(plan.mode, 3 | 1 << 14);
        assert_eq!(plan.nodemask, [0b1101, 0b10]);
    }

    #[test]
    fn mapped_ids() {
        let map = [
            IdRange {
                inside: 0,
                outside: 1000,
                count: 1,
            },
            IdRange {
                inside: 1,
                outside: 100000,
                count: 65536,
            },
        ];
        assert!(is_mapped(&map, 0));
        assert!(is_mapped(&map, 65536));
        assert!(!is_mapped(&map, 65537));
    }
}
