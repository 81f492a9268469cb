//! The only module with `unsafe`: thin wrappers over the system calls that
//! `nix` does not cover, or covers in a form that does not fit (a `clone` that
//! behaves like `fork`, the new mount API, pidfds, `close_range`, xattrs for tests).
//!
//! Each wrapper does one system call, says which in its first doc line, and
//! returns `nix::Result`. Callers add the context (which step, which path).
#![allow(unsafe_code)]

mod fd;
mod filter;
mod mount;
mod process;
// Only the FUSE server's tests read extended attributes.
#[cfg(test)]
mod xattr;

pub use fd::*;
pub use filter::*;
pub use mount::*;
pub use process::*;
#[cfg(test)]
pub use xattr::*;
