//! `process` → [`ProcessPlan`]: the program, its environment, user,
//! limits, capabilities and scheduling.

use std::ffi::CString;
use std::path::PathBuf;

use nix::sys::resource::Resource;

use super::{id_list, is_mapped, UserNs};
use crate::error::{Error, Result};
use crate::features::gate;

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

/// `process`: the program and how it runs.
pub(super) fn plan_process(p: &oci_spec::runtime::Process, userns: &UserNs) -> Result<ProcessPlan> {
    let args = plan_args(p)?;
    let env = plan_env(p)?;
    let cwd = plan_cwd(p)?;
    let user = p.user();
    let additional_gids = plan_user(user, userns)?;
    let terminal = p.terminal().unwrap_or(false);
    if terminal {
        gate("process.terminal")?;
    }
    let console_size = plan_console_size(p)?;
    let rlimits = plan_rlimits(p)?;
    let capabilities = match p.capabilities() {
        None => CapSets::default(),
        Some(c) => plan_capabilities(c)?,
    };
    let no_new_privileges = p.no_new_privileges().unwrap_or(false);
    if no_new_privileges {
        gate("process.noNewPrivileges")?;
    }
    check_oom_score_adj(p)?;
    check_security_labels(p)?;
    let scheduler = p.scheduler().as_ref().map(plan_scheduler).transpose()?;
    let io_priority = p.io_priority().as_ref().map(plan_io_priority).transpose()?;
    let cpu_affinity = plan_cpu_affinity(p)?;

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

/// `process.args`: not empty, no NUL bytes.
fn plan_args(p: &oci_spec::runtime::Process) -> Result<Vec<CString>> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(Error::Config("process.args is empty".into()));
    }
    gate("process.args")?;
    if p.command_line().is_some() {
        gate("process.commandLine")?;
    }
    args.iter().map(|a| cstring("process.args", a)).collect()
}

/// `process.env`: `NAME=value` entries, the last of a repeated name
/// winning in the place of the first.
fn plan_env(p: &oci_spec::runtime::Process) -> Result<Vec<CString>> {
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
    env.iter()
        .map(|(n, v)| cstring("process.env", &format!("{n}={v}")))
        .collect()
}

fn plan_cwd(p: &oci_spec::runtime::Process) -> Result<PathBuf> {
    let cwd = p.cwd().clone();
    gate("process.cwd")?;
    if !cwd.is_absolute() {
        return Err(Error::Config(format!(
            "process.cwd `{}` is not absolute",
            cwd.display()
        )));
    }
    Ok(cwd)
}

/// `process.user`: its uid and gid must be mapped in a new user namespace.
/// Returns the additional gids.
fn plan_user(user: &oci_spec::runtime::User, userns: &UserNs) -> Result<Vec<u32>> {
    gate("process.user")?;
    if user.username().is_some() {
        gate("process.user.username")?;
    }
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
    Ok(user.additional_gids().clone().unwrap_or_default())
}

/// `process.consoleSize` as (rows, columns).
fn plan_console_size(p: &oci_spec::runtime::Process) -> Result<Option<(u16, u16)>> {
    let Some(b) = p.console_size() else {
        return Ok(None);
    };
    gate("process.consoleSize")?;
    Ok(Some((
        b.height().min(u16::MAX as u64) as u16,
        b.width().min(u16::MAX as u64) as u16,
    )))
}

/// `process.rlimits`: each resource once, soft at most hard.
fn plan_rlimits(p: &oci_spec::runtime::Process) -> Result<Vec<(Resource, u64, u64)>> {
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
    Ok(rlimits)
}

fn plan_capabilities(c: &oci_spec::runtime::LinuxCapabilities) -> Result<CapSets> {
    gate("process.capabilities")?;
    Ok(CapSets {
        bounding: cap_set(c.bounding())?,
        effective: cap_set(c.effective())?,
        permitted: cap_set(c.permitted())?,
        inheritable: cap_set(c.inheritable())?,
        ambient: cap_set(c.ambient())?,
    })
}

/// One capability set, sorted by number.
fn cap_set(set: &Option<oci_spec::runtime::Capabilities>) -> Result<Vec<caps::Capability>> {
    let mut out: Vec<caps::Capability> = set
        .iter()
        .flatten()
        .map(|cap| {
            let name = format!("CAP_{cap}");
            name.parse::<caps::Capability>().map_err(|_| {
                Error::Config(format!("process.capabilities: unknown capability `{name}`"))
            })
        })
        .collect::<Result<_>>()?;
    out.sort_by_key(|c| c.index());
    Ok(out)
}

fn check_oom_score_adj(p: &oci_spec::runtime::Process) -> Result<()> {
    if p.oom_score_adj().is_some() {
        gate("process.oomScoreAdj")?;
        if !(-1000..=1000).contains(&p.oom_score_adj().unwrap_or(0)) {
            return Err(Error::Config(
                "process.oomScoreAdj must be between -1000 and 1000".into(),
            ));
        }
    }
    Ok(())
}

/// `process.apparmorProfile` and `process.selinuxLabel`, when not empty,
/// go through the feature table (which refuses them).
fn check_security_labels(p: &oci_spec::runtime::Process) -> Result<()> {
    if p.apparmor_profile()
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        gate("process.apparmorProfile")?;
    }
    if p.selinux_label().as_deref().is_some_and(|s| !s.is_empty()) {
        gate("process.selinuxLabel")?;
    }
    Ok(())
}

/// `process.ioPriority` as (class, level) for ioprio_set(2).
fn plan_io_priority(io: &oci_spec::runtime::LinuxIOPriority) -> Result<(u32, u32)> {
    use oci_spec::runtime::IOPriorityClass as C;
    gate("process.ioPriority")?;
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
    Ok((class, level))
}

/// `process.execCPUAffinity.final`: the CPUs the program runs on.
fn plan_cpu_affinity(p: &oci_spec::runtime::Process) -> Result<Option<Vec<usize>>> {
    let Some(a) = p.exec_cpu_affinity() else {
        return Ok(None);
    };
    gate("process.execCPUAffinity")?;
    a.cpu_affinity_final().as_deref().map(cpu_list).transpose()
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

/// A CPU list as the kernel writes them: `0-3,7`.
fn cpu_list(text: &str) -> Result<Vec<usize>> {
    id_list(text, nix::sched::CpuSet::count()).ok_or_else(|| {
        Error::Config(format!(
            "process.execCPUAffinity: `{text}` is not a CPU list"
        ))
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
