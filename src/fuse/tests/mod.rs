//! Tests of the server: the wire protocol over a socket (`wire.rs`), and
//! the whole server behind a real FUSE mount, seen through the kernel as
//! any program sees it (`mount.rs`).

mod memfs;
mod mount;
mod wire;
