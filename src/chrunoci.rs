//! The `ch-run-oci` drop-in: when hutch is installed or linked under that
//! name, it takes Charliecloud's `ch-run-oci` command line and turns it
//! into its own before parsing.
//!
//! ch-run-oci's global options differ from runc's: `-v`/`--verbose` is
//! counted (more log chatter), `--debug` adds detail to errors and
//! `--version` prints the version; `CH_LOG_FILE` appends the chatter to a
//! file (and turns verbose on), and `CH_RUN_OCI_HANG=OP` makes operation OP
//! stop, so a build can be examined where it is. Its operations (create,
//! start, state, kill, delete) have hutch's own syntax already; hutch then
//! does what it always does (real namespaces, mounts, state, signals), not
//! what ch-run-oci faked. The differences are listed in README.md.

use std::ffi::OsString;

/// The name that switches hutch to this command line.
pub const NAME: &str = "ch-run-oci";

/// What the front end decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Front {
    /// Parse these arguments as hutch's, logging at `verbosity`
    /// (0 warnings, 1 chatter, 2 and more debug).
    Run {
        args: Vec<OsString>,
        verbosity: u8,
        log_file: Option<OsString>,
        /// `CH_RUN_OCI_HANG` names the operation about to run.
        hang: Option<String>,
    },
    /// `--version`.
    Version,
    /// No arguments at all: usage on stderr, exit status 1 (as ch-run-oci).
    Usage,
}

/// True when the program was called as `ch-run-oci` (whatever directory).
pub fn called_as(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == NAME)
}

/// Turn ch-run-oci's arguments (after argv[0]) and environment into
/// hutch's. Global options come before the operation, as with argparse;
/// hutch's own global options (`--root`, `--log`, …) are kept.
pub fn translate(args: &[OsString], log_file: Option<OsString>, hang: Option<OsString>) -> Front {
    if args.is_empty() {
        return Front::Usage;
    }
    let mut verbosity = 0u8;
    let mut debug = false;
    let mut out = vec![OsString::from(NAME)];
    let mut rest = args.iter();
    let mut op = None;
    let mut value_next = false;
    for a in rest.by_ref() {
        let s = a.to_string_lossy();
        if std::mem::take(&mut value_next) {
            out.push(a.clone());
            continue;
        }
        match s.as_ref() {
            // hutch's global options that take a value as the next argument.
            "--root" | "--log" | "--log-format" | "--cgroup-manager" => {
                out.push(a.clone());
                value_next = true;
            }
            "--verbose" => verbosity = verbosity.saturating_add(1),
            "--debug" => debug = true,
            "--version" => return Front::Version,
            v if v.len() > 1 && v.starts_with('-') && v[1..].bytes().all(|b| b == b'v') => {
                verbosity = verbosity.saturating_add(u8::try_from(v.len() - 1).unwrap_or(u8::MAX));
            }
            _ => {
                let is_op = !s.starts_with('-');
                out.push(a.clone());
                if is_op {
                    op = Some(s.into_owned());
                    break;
                }
            }
        }
    }
    // ch-run-oci's delete always succeeded, and buildah calls it last, with
    // no --force, also for a container whose start it gave up on (still
    // created): delete it whatever its state, as runc and crun delete a
    // created one.
    if op.as_deref() == Some("delete") {
        out.push("--force".into());
    }
    out.extend(rest.cloned());
    if log_file.is_some() {
        verbosity = verbosity.max(1);
    }
    if debug {
        verbosity = verbosity.max(2);
    }
    let hang = match (hang, &op) {
        (Some(h), Some(op)) if h.to_string_lossy() == op.as_str() => Some(op.clone()),
        _ => None,
    };
    Front::Run {
        args: out,
        verbosity,
        log_file,
        hang,
    }
}

/// ch-run-oci's usage text (its operations; hutch's others also work).
pub const USAGE: &str = "usage: ch-run-oci [-h] [--debug] [--version] [-v] \
{create,delete,kill,start,state} ...\n\
ch-run-oci: error: an operation is required (hutch, installed as ch-run-oci)\n";

/// `CH_RUN_OCI_HANG`: stop here for good, saying so. The operation has
/// not begun: a build stays where it is, to be examined, until killed.
pub fn hang(op: &str) -> ! {
    tracing::warn!(
        "CH_RUN_OCI_HANG={op}: hanging before `{op}` (pid {}); kill it to go on",
        std::process::id()
    );
    loop {
        nix::unistd::pause();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn verbose_is_counted_and_stripped() {
        let f = translate(
            &os(&["-vv", "--verbose", "state", "buildah-buildah1"]),
            None,
            None,
        );
        assert_eq!(
            f,
            Front::Run {
                args: os(&["ch-run-oci", "state", "buildah-buildah1"]),
                verbosity: 3,
                log_file: None,
                hang: None
            }
        );
        // After the operation, -v is the operation's (hutch has none there).
        let Front::Run { args, .. } = translate(&os(&["kill", "x", "-v"]), None, None) else {
            panic!()
        };
        assert_eq!(args, os(&["ch-run-oci", "kill", "x", "-v"]));
    }

    #[test]
    fn version_usage_log_file_debug_and_hang() {
        assert_eq!(
            translate(&os(&["-v", "--version"]), None, None),
            Front::Version
        );
        assert_eq!(translate(&[], None, None), Front::Usage);
        let Front::Run {
            verbosity,
            log_file,
            ..
        } = translate(&os(&["start", "x"]), Some("/tmp/l".into()), None)
        else {
            panic!()
        };
        assert_eq!((verbosity, log_file), (1, Some("/tmp/l".into())));
        let Front::Run { verbosity, .. } = translate(&os(&["--debug", "start", "x"]), None, None)
        else {
            panic!()
        };
        assert_eq!(verbosity, 2);
        let Front::Run { hang, args, .. } = translate(
            &os(&["--root", "/r", "create", "--bundle", "b", "x"]),
            None,
            Some("create".into()),
        ) else {
            panic!()
        };
        assert_eq!(hang.as_deref(), Some("create"));
        assert_eq!(
            args,
            os(&["ch-run-oci", "--root", "/r", "create", "--bundle", "b", "x"])
        );
        let Front::Run { hang, .. } = translate(&os(&["start", "x"]), None, Some("create".into()))
        else {
            panic!()
        };
        assert_eq!(hang, None);
        let Front::Run { args, .. } = translate(&os(&["-v", "delete", "x"]), None, None) else {
            panic!()
        };
        assert_eq!(args, os(&["ch-run-oci", "delete", "--force", "x"]));
    }
}
