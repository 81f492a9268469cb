//! hutch: an OCI container runtime that any user can run without
//! privileges, and that does its whole setup itself, in process.
//!
//! # What it is
//! `create` turns `config.json` into a validated [`spec::Plan`], claims the
//! id in the state directory and clones the container process into its
//! new user, pid and mount namespaces (and network, uts, ipc ones, and its
//! cgroups when the config asks for them); that process makes its cgroup
//! namespace and waits. `start` releases it: it makes the mounts,
//! `pivot_root`s, sets up the process and `execve`s the program,
//! which keeps the pid `create` reported. `state`, `kill` and `delete` work
//! from the state directory and the kernel's view of that pid.
//!
//! # What it is not
//! - Not a cgroup manager beyond its own containers: `linux.resources`
//!   are written to the cgroups the caller may make (cgroup v1 and v2
//!   as root, a delegated cgroup v2 subtree otherwise), or, with
//!   `--systemd-cgroup`, to a transient scope systemd makes (asked for
//!   over D-Bus by hutch itself, `src/dbus/`).
//! - Not a security policy: it applies what the config asks, never more
//!   privilege than its caller has. See SECURITY.md.
//! - Not a daemon: nothing of hutch runs between operations, but for root
//!   emulation's supervisor in a container that maps one id (`rootemu`): a
//!   fork of the container process, a child of its program, that lives
//!   and dies with the container.
//!
//! # Kernel floor
//! Linux 5.12: `openat2` (5.6), `pidfd_open` (5.3), `close_range` (5.11),
//! `mount_setattr` (5.12), `open_tree`/`move_mount` (5.2); root emulation
//! also uses seccomp user notification with `SECCOMP_USER_NOTIF_FLAG_CONTINUE`
//! (5.5) and `pidfd_getfd` (5.6).
//!
//! # Threads
//! hutch is single-threaded, and must stay so: a process with threads
//! cannot enter a new user namespace, and the container process is a
//! `clone` of hutch that must not inherit locks held by other threads.
//! Logging is synchronous for the same reason.
#![deny(unsafe_code)]

pub mod cgroup;
pub mod chrunoci;
pub mod cli;
pub mod container;
pub mod control;
pub mod dbus;
pub mod error;
pub mod exe;
pub mod exec;
pub mod fault;
pub mod feature_table;
pub mod features;
pub mod fuse;
pub mod hooks;
pub mod init;
pub mod input;
pub mod log;
pub mod mount;
pub mod netlink;
pub mod ns;
pub mod process;
pub mod rootemu;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod specgen;
pub mod squashfs;
pub mod state;
pub mod sync;
pub mod sys;
