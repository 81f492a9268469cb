//! A SquashFS root mounted with FUSE: the container process's part, at
//! `create` (the server is `create`'s, see `squashfs.rs`).
//!
//! `/dev/fuse` must be opened in the user namespace that mounts it (the
//! kernel refuses a connection opened in another), so the container
//! process opens it, mounts it read-only on the root's mount point in the
//! state entry, and sends the fd to `create`, which starts the server with
//! it. Then it reads the root directory: that waits for the server's INIT
//! answer, and fails (ENOTCONN) if the server gave up on the image.

use std::os::fd::{AsFd, BorrowedFd};

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::spec::Plan;
use crate::sync;

/// Mount the image of `plan` (if it has one) on `plan.rootfs` and see it
/// served.
pub fn mount_image(plan: &Plan, sync_fd: BorrowedFd<'_>) -> Result<()> {
    let Some(image) = &plan.root_image else {
        return Ok(());
    };
    let named = |what: String| Error::Container(format!("root.path `{}`: {what}", image.display()));
    // Cut off from the host first: the mount must not propagate out.
    super::set_root_propagation(MsFlags::MS_SLAVE | MsFlags::MS_REC)?;
    if plan.root_server == Some(crate::squashfs::Serve::Kernel) {
        mount_loop(plan, image).map_err(|(step, e)| named(format!("{step}: {}", e.desc())))?;
    } else {
        mount_fuse(plan, sync_fd).map_err(named)?;
    }
    // Served? (With FUSE this waits for the server's INIT answer.)
    let unreadable = |e: nix::errno::Errno| {
        named(format!(
            "read the image's root directory: {} (a corrupt image?)",
            e.desc()
        ))
    };
    let mut dir = nix::dir::Dir::open(
        &plan.rootfs,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(unreadable)?;
    for entry in dir.iter() {
        entry.map_err(unreadable)?;
    }
    Ok(())
}

/// Open `/dev/fuse`, mount it on the root's mount point and send the fd to
/// `create`; the error is what to say after the image's name.
fn mount_fuse(plan: &Plan, sync_fd: BorrowedFd<'_>) -> std::result::Result<(), String> {
    let image = plan.root_image.as_deref().unwrap_or(plan.rootfs.as_path());
    let fuse = nix::fcntl::open("/dev/fuse", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| {
            format!(
                "open /dev/fuse: {} (mounting a SquashFS image needs FUSE: /dev/fuse mode 0666 for plain users)",
                e.desc()
            )
        })?;
    let data = format!(
        "fd={},rootmode=40000,user_id={},group_id={},allow_other,default_permissions",
        std::os::fd::AsRawFd::as_raw_fd(&fuse),
        nix::unistd::geteuid(),
        nix::unistd::getegid()
    );
    nix::mount::mount(
        Some(image),
        &plan.rootfs,
        Some("fuse.squashfuse"),
        MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(|e| {
        format!(
            "mount with FUSE on `{}`: {}",
            plan.rootfs.display(),
            e.desc()
        )
    })?;
    sync::send_with_fd(sync_fd, &sync::Msg::Fd, fuse.as_fd())
        .map_err(|e| format!("send the FUSE fd to create: {}", e.desc()))?;
    // Only the server may hold the connection: when it exits, reads fail
    // instead of waiting for an answer that cannot come.
    drop(fuse);
    Ok(())
}

/// Real root (no user namespace): the kernel's squashfs on a loop device
/// that the kernel detaches once the mount, which goes with the
/// container's mount namespace, is gone. No server.
fn mount_loop(
    plan: &Plan,
    image: &std::path::Path,
) -> std::result::Result<(), (&'static str, nix::errno::Errno)> {
    let backing = nix::fcntl::open(image, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| ("open", e))?;
    let control = nix::fcntl::open(
        "/dev/loop-control",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ("open /dev/loop-control", e))?;
    // Another process may take the free device first: try again.
    let mut tries = 0;
    let dev_path = loop {
        let n = crate::sys::loop_get_free(control.as_fd())
            .map_err(|e| ("find a free loop device", e))?;
        let path = format!("/dev/loop{n}");
        let dev = nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ("open the loop device", e))?;
        match crate::sys::loop_configure(dev.as_fd(), backing.as_fd()) {
            Ok(()) => {
                // Mounted while this fd holds the device; AUTOCLEAR then
                // waits for the mount to go.
                nix::mount::mount(
                    Some(path.as_str()),
                    &plan.rootfs,
                    Some("squashfs"),
                    MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
                    None::<&str>,
                )
                .map_err(|e| ("mount with the kernel's squashfs", e))?;
                break path;
            }
            Err(nix::errno::Errno::EBUSY) if tries < 10 => tries += 1,
            Err(e) => return Err(("configure the loop device", e)),
        }
    };
    tracing::debug!("image on {dev_path}");
    Ok(())
}

/// On the start path, before the root is bound: stack an overlay on the
/// image, with its upper layer on a tmpfs, so that the config's mount
/// points missing from the image (Slurm's `/tmp/slurm`, a bind onto a new
/// file) can be made. Nothing else is written there: the root turns
/// read-only once every mount is made (`Plan::root_readonly` is set for
/// an image), and the tmpfs goes with the mount namespace.
pub fn writable_top(plan: &Plan) -> Result<()> {
    let Some(image) = &plan.root_image else {
        return Ok(());
    };
    let upper = plan.rootfs.with_file_name(crate::state::ROOT_UPPER);
    nix::mount::mount(
        Some("tmpfs"),
        &upper,
        Some("tmpfs"),
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        Some("mode=0755,size=16m"),
    )
    .map_err(|e| Error::sys("mount the image's upper tmpfs on", &upper, e))?;
    for d in ["upper", "work"] {
        nix::unistd::mkdir(&upper.join(d), Mode::from_bits_truncate(0o755))
            .map_err(|e| Error::sys("make", upper.join(d), e))?;
    }
    let (root, up) = (plan.rootfs.display(), upper.display());
    if [root.to_string(), up.to_string()]
        .iter()
        .any(|p| p.contains([',', ':', '\\']))
    {
        return Err(Error::Container(format!(
            "root.path `{}`: the state directory's path holds `,`, `:` or `\\`, which overlayfs options cannot carry",
            image.display()
        )));
    }
    let data = format!("lowerdir={root},upperdir={up}/upper,workdir={up}/work,userxattr");
    nix::mount::mount(
        Some("overlay"),
        &plan.rootfs,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(|e| Error::sys("mount an overlay on the image at", &plan.rootfs, e))
}
