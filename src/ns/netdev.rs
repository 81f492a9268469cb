//! `linux.netDevices`: moving host network devices into the container's
//! new network namespace. `create` does it, as real root, once the
//! container process (and with it the namespace) exists.
//!
//! Moving a device drops its addresses, so the permanent ones of global
//! scope are read first and added again inside, and the device is brought
//! up there, as runtime-spec 1.2 asks. Nothing is done at `delete`: the
//! spec forbids moving devices back, and when the namespace goes the
//! kernel returns physical devices to the host and destroys virtual ones.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::netlink::Route;
use crate::spec::NetDevicePlan;

/// Move `devices` into the network namespace of the process `pid`. Every
/// device is found, and every new name checked to be free, before any is
/// moved, so those mistakes leave the host as it was.
pub fn move_devices(pid: Pid, devices: &[NetDevicePlan]) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let path = PathBuf::from(format!("/proc/{}/ns/net", pid.as_raw()));
    let netns = File::open(&path).map_err(|e| Error::io("open network namespace", &path, e))?;
    let mut host = Route::open().map_err(|e| Error::call("open a netlink socket", e))?;
    let mut inside = route_in(&netns, &path)?;

    let mut indexes = Vec::with_capacity(devices.len());
    for d in devices {
        let find = |e| {
            Error::call(
                format!("find network device `{}` on the host", d.host_name),
                e,
            )
        };
        let index = host
            .link_index(&d.host_name)
            .map_err(find)?
            .ok_or_else(|| find(Errno::ENODEV))?;
        let template = d.name.contains('%');
        if !template
            && inside
                .link_index(&d.name)
                .map_err(|e| moving(d, e))?
                .is_some()
        {
            return Err(Error::call(
                format!(
                    "move network device `{}` into the container as `{}` (a device there has that name)",
                    d.host_name, d.name
                ),
                Errno::EEXIST,
            ));
        }
        indexes.push(index);
    }

    for (d, index) in devices.iter().zip(indexes) {
        let addresses: Vec<_> = host
            .addresses(index)
            .map_err(|e| moving(d, e))?
            .into_iter()
            .filter(|a| a.is_permanent_global())
            .collect();
        host.move_link(index, netns.as_fd(), &d.name)
            .map_err(|e| moving(d, e))?;
        // The kernel keeps the index where it is free, as it is in a new
        // namespace; a templated name is only known by it.
        let moved = if d.name.contains('%') {
            inside
                .link_name(index)
                .map_err(|e| moving(d, e))?
                .map(|_| index)
        } else {
            inside.link_index(&d.name).map_err(|e| moving(d, e))?
        };
        let moved = moved.ok_or_else(|| moving(d, Errno::ENODEV))?;
        for a in &addresses {
            inside.add_address(moved, a).map_err(|e| {
                Error::call(
                    format!("add an address of `{}` in the container", d.host_name),
                    e,
                )
            })?;
        }
        inside
            .set_up(moved)
            .map_err(|e| Error::call(format!("bring up `{}` in the container", d.name), e))?;
    }
    Ok(())
}

fn moving(d: &NetDevicePlan, e: Errno) -> Error {
    Error::call(
        format!(
            "move network device `{}` into the container as `{}`",
            d.host_name, d.name
        ),
        e,
    )
}

/// A netlink socket of the network namespace `netns`: hutch enters it,
/// opens the socket (which stays in it) and returns to its own.
fn route_in(netns: &File, path: &Path) -> Result<Route> {
    let own_path = Path::new("/proc/self/ns/net");
    let own = File::open(own_path).map_err(|e| Error::io("open network namespace", own_path, e))?;
    nix::sched::setns(netns, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::sys("enter network namespace", path, e))?;
    let route = Route::open();
    nix::sched::setns(&own, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::sys("return to network namespace", own_path, e))?;
    route.map_err(|e| Error::call("open a netlink socket in the container", e))
}
