//! The rest of `linux`: devices, sysctl, network devices, the memory
//! policy, time offsets and the personality.

use std::path::PathBuf;

use super::{container_path, id_list, Host, Namespaces, NsAction};
use crate::error::{Error, Result};
use crate::features::gate;

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

/// `monotonic SECS NANOSECS` and `boottime SECS NANOSECS` lines, for a new
/// time namespace only.
pub(super) fn plan_time_offsets(
    linux: &oci_spec::runtime::Linux,
    ns: &Namespaces,
) -> Result<String> {
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

/// Network devices move from the host's network namespace into a new one
/// of the container's: that takes CAP_NET_ADMIN over the host's, which only
/// real root has.
pub(super) fn plan_net_devices(
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

/// The most NUMA nodes a kernel can have (`MAX_NUMNODES` with the largest
/// `NODES_SHIFT`).
const MAX_NODES: usize = 1024;

pub(super) fn plan_memory_policy(p: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<MemoryPolicy> {
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
    Ok(MemoryPolicy {
        mode: mode | flags,
        nodemask: nodemask(&nodes),
        text: format!("{} nodes `{nodes_text}`", p.mode()),
    })
}

/// Node numbers → the mask set_mempolicy(2) takes, one bit per node.
fn nodemask(nodes: &[usize]) -> Vec<libc::c_ulong> {
    let bits = libc::c_ulong::BITS as usize;
    let mut mask: Vec<libc::c_ulong> = Vec::new();
    for &n in nodes {
        if mask.len() <= n / bits {
            mask.resize(n / bits + 1, 0);
        }
        mask[n / bits] |= 1 << (n % bits);
    }
    mask
}

pub(super) fn plan_devices(linux: &oci_spec::runtime::Linux) -> Result<Vec<DevicePlan>> {
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

/// Only sysctls that belong to a namespace the container has of its own can
/// be set; anything else would change the host.
pub(super) fn plan_sysctl(
    linux: &oci_spec::runtime::Linux,
    ns: &Namespaces,
) -> Result<Vec<(String, String)>> {
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

/// `linux.personality`: the execution domain for personality(2); flags
/// are refused.
pub(super) fn plan_personality(linux: &oci_spec::runtime::Linux) -> Result<Option<libc::c_ulong>> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    let Some(p) = linux.personality() else {
        return Ok(None);
    };
    gate("linux.personality")?;
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(Error::Config(
            "linux.personality.flags are not supported".into(),
        ));
    }
    Ok(Some(match p.domain() {
        D::PerLinux => 0x0000,
        D::PerLinux32 => 0x0008,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
