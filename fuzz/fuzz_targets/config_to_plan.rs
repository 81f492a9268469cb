//! Fuzz the step every config goes through before anything happens:
//! `config.json` bytes → `Spec` → validated `Plan`. Whatever the input,
//! this must return (a plan or an error), never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<oci_spec::runtime::Spec>(data) else { return };
    // The bundle holds an empty rootfs, so root.path checks pass or fail
    // for real; both a plain user and root are tried.
    let bundle = Path::new("/tmp/hutch-fuzz-bundle");
    let _ = std::fs::create_dir_all(bundle.join("rootfs"));
    for host in [
        hutch::spec::Host { euid: 1000, egid: 1000, initial_userns: true },
        hutch::spec::Host { euid: 0, egid: 0, initial_userns: false },
    ] {
        let _ = hutch::spec::plan(&spec, bundle, host);
    }
});
