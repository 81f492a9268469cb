//! The crate's error type. Every variant names the step that failed and the
//! object it failed on, so the one line hutch prints is enough to act on.
//! Messages are lowercase, verb first, without a trailing period.

use std::fmt;
use std::path::PathBuf;

use nix::errno::Errno;

/// Everything that can make a hutch operation fail.
#[derive(Debug)]
pub enum Error {
    /// The command line is wrong (bad id, bad signal, conflicting flags).
    Usage(String),
    /// `config.json` is missing, unreadable, malformed or asks for something
    /// hutch refuses; the text says which field and why.
    Config(String),
    /// No container has this id.
    NotFound { id: String },
    /// A container with this id exists already.
    Exists { id: String },
    /// The operation is not allowed in the container's current state.
    WrongState {
        id: String,
        op: &'static str,
        status: &'static str,
    },
    /// A system call made for `step` on `path` failed.
    Sys {
        step: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    /// A system call made for `step` (not about a path) failed.
    Call { step: String, errno: Errno },
    /// An I/O operation made for `step` on `path` failed.
    Io {
        step: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A helper program (`newuidmap`, a hook) failed.
    Helper { what: String, detail: String },
    /// The container process reported that its setup failed (the text is
    /// its own error, already formatted).
    Container(String),
}

impl Error {
    /// A failed system call on a path, named by its step.
    pub fn sys(step: &'static str, path: impl Into<PathBuf>, errno: Errno) -> Self {
        Error::Sys {
            step,
            path: path.into(),
            errno,
        }
    }

    /// A failed system call that is not about one path.
    pub fn call(step: impl Into<String>, errno: Errno) -> Self {
        Error::Call {
            step: step.into(),
            errno,
        }
    }

    /// A failed I/O operation on a path, named by its step.
    pub fn io(step: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            step,
            path: path.into(),
            source,
        }
    }

    /// The exit status hutch uses for this error: 2 for usage errors (as
    /// argument parsers do), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg}"),
            Error::Config(msg) => write!(f, "config.json: {msg}"),
            Error::NotFound { id } => write!(f, "container `{id}` does not exist"),
            Error::Exists { id } => write!(f, "container `{id}` already exists"),
            Error::WrongState { id, op, status } => {
                write!(f, "cannot {op} container `{id}`: it is {status}")?;
                if *op == "delete" && *status != "stopped" {
                    f.write_str(" (--force kills it first)")?;
                }
                Ok(())
            }
            Error::Sys { step, path, errno } => {
                write!(f, "{step} `{}`: {}", path.display(), errno.desc())
            }
            Error::Call { step, errno } => write!(f, "{step}: {}", errno.desc()),
            Error::Io { step, path, source } => write!(f, "{step} `{}`: {source}", path.display()),
            Error::Helper { what, detail } => write!(f, "{what}: {detail}"),
            Error::Container(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for Error {}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
