//! Extended attributes read through a path (the tests of the FUSE
//! server read them as any program would).
#![allow(unsafe_code)]

use std::ffi::CStr;

use nix::errno::Errno;

/// `getxattr(path, name, buf, buf.len())`: the value of `name` into `buf`;
/// with an empty `buf`, only the size it needs. Returns the length.
pub fn getxattr(path: &CStr, name: &CStr, buf: &mut [u8]) -> nix::Result<usize> {
    // SAFETY: both strings are valid C strings and `buf` is valid for
    // writes of its length, all alive across the call.
    let ret = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    Errno::result(ret).map(|n| n as usize)
}

/// `listxattr(path, buf, buf.len())`: the NUL-terminated names of the
/// extended attributes into `buf`; with an empty `buf`, only the size it
/// needs. Returns the length.
pub fn listxattr(path: &CStr, buf: &mut [u8]) -> nix::Result<usize> {
    // SAFETY: `path` is a valid C string and `buf` is valid for writes of
    // its length, both alive across the call.
    let ret = unsafe { libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    Errno::result(ret).map(|n| n as usize)
}
