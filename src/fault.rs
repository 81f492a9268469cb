//! Test points: with `HUTCH_TEST_PAUSE=NAME` in its environment, hutch
//! stops itself (SIGSTOP) on reaching the point NAME, so a test can kill
//! it exactly there and check that nothing is lost. One environment
//! lookup per point; nothing else changes.

use nix::sys::signal::Signal;

/// Stop here if the environment names this point.
pub fn point(name: &str) {
    if std::env::var_os("HUTCH_TEST_PAUSE").is_some_and(|v| v == name) {
        let _ = nix::sys::signal::raise(Signal::SIGSTOP);
    }
}
