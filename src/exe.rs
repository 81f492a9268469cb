//! Keeping the container away from hutch's own binary (CVE-2019-5736).
//!
//! Until it execs the program, the container process *is* hutch, and a
//! program that execs `/proc/self/exe` runs hutch's binary inside the
//! container. Where the container's ids could write that binary (real
//! root without a user namespace, or a binary the user owns and maps into
//! the container), `create`, `run` and `exec` first re-execute from a
//! sealed in-memory copy, so there is nothing on disk to reach. Where they
//! cannot write it (a root-owned binary and a plain user's container), the
//! copy would cost time for nothing, and is skipped.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use crate::error::{Error, Result};
use crate::features::{is_sealed_copy, SEALED};
use crate::spec::{Host, IdRange, Plan, UserNs};

/// Re-execute from a sealed copy if the container could write hutch's
/// binary and this is not already the copy. Returns when no copy is
/// needed; does not return otherwise.
pub fn protect(plan: &Plan, host: Host) -> Result<()> {
    if is_sealed_copy() || !writable_by_container(plan, host) {
        return Ok(());
    }
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    env.push(
        CString::new(format!("{SEALED}=1"))
            .map_err(|_| Error::call("re-execute sealed", nix::errno::Errno::EINVAL))?,
    );
    match crate::sys::reexec_sealed(&args, &env) {
        Ok(never) => match never {},
        Err(e) => Err(Error::call("re-execute hutch from a sealed copy", e)),
    }
}

/// Could a process of this container, with the ids it maps, write the
/// binary hutch runs from?
fn writable_by_container(plan: &Plan, host: Host) -> bool {
    let Ok(md) = std::fs::metadata("/proc/self/exe") else {
        return true;
    };
    if nix::sys::statvfs::statvfs("/proc/self/exe")
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
    {
        return false;
    }
    let (uid, gid, mode) = (md.uid(), md.gid(), md.mode());
    match &plan.userns {
        UserNs::New {
            uid_map, gid_map, ..
        } => {
            let outside = |map: &[IdRange], id: u32| {
                map.iter()
                    .any(|r| id >= r.outside && id - r.outside < r.count)
            };
            // A mapped owner can write (root inside has CAP_DAC_OVERRIDE over
            // it, or the owner's write bit applies); so can a mapped group
            // with its write bit, and anyone with the other write bit.
            outside(uid_map, uid)
                || (outside(gid_map, gid) && mode & 0o020 != 0)
                || mode & 0o002 != 0
        }
        // The container keeps hutch's own ids: real root can write anything;
        // root in somebody's user namespace can write what that namespace
        // maps (an unmapped owner shows as the overflow id).
        UserNs::Inherit => {
            host.euid == 0 && (host.initial_userns || uid != overflow_uid()) || mode & 0o002 != 0
        }
        UserNs::Join(_) => true,
    }
}

fn overflow_uid() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65534)
}
