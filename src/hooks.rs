//! OCI hooks: programs the config names, run at fixed points of the
//! lifecycle with the container's state JSON on their stdin.
//!
//! | hook | run by | when | namespaces |
//! | --- | --- | --- | --- |
//! | `prestart`, `createRuntime` | `create` | the container process is ready | hutch's |
//! | `createContainer` | the container process | on the start path, after the mounts, before `pivot_root` | the container's |
//! | `startContainer` | the container process | after `pivot_root`, before `execve` | the container's (path in the container) |
//! | `poststart` | `start` | the program runs | hutch's |
//! | `poststop` | `delete` | the container is gone | hutch's |
//!
//! hutch makes its mounts on the start path, so `createContainer` runs
//! during `start` rather than `create`; everything it can observe (the
//! container's mounts, namespaces, state) is as the spec describes.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys;

/// One hook, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    pub path: PathBuf,
    /// The full argv, `args[0]` included (the path when the config has none).
    pub args: Vec<String>,
    /// The complete environment (empty when the config gives none).
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
}

/// All hooks of a config, by kind.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    pub prestart: Vec<Hook>,
    pub create_runtime: Vec<Hook>,
    pub create_container: Vec<Hook>,
    pub start_container: Vec<Hook>,
    pub poststart: Vec<Hook>,
    pub poststop: Vec<Hook>,
}

impl Hooks {
    /// True when no hook of any kind is configured.
    pub fn is_empty(&self) -> bool {
        self.prestart.is_empty()
            && self.create_runtime.is_empty()
            && self.create_container.is_empty()
            && self.start_container.is_empty()
            && self.poststart.is_empty()
            && self.poststop.is_empty()
    }
}

/// Validate the config's hooks.
pub fn plan(h: &oci_spec::runtime::Hooks) -> Result<Hooks> {
    let conv = |kind: &str, list: &Option<Vec<oci_spec::runtime::Hook>>| -> Result<Vec<Hook>> {
        list.as_deref()
            .unwrap_or_default()
            .iter()
            .map(|hook| {
                let path = hook.path().clone();
                if !path.is_absolute() {
                    return Err(Error::Config(format!(
                        "hooks.{kind}: path `{}` is not absolute",
                        path.display()
                    )));
                }
                let args = hook
                    .args()
                    .clone()
                    .unwrap_or_else(|| vec![path.display().to_string()]);
                let env = hook
                    .env()
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .map(|e| {
                        e.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .ok_or_else(|| {
                                Error::Config(format!("hooks.{kind}: env `{e}` is not NAME=value"))
                            })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let timeout = match hook.timeout() {
                    None => None,
                    Some(t) if t > 0 => Some(Duration::from_secs(t as u64)),
                    Some(t) => {
                        return Err(Error::Config(format!(
                            "hooks.{kind}: timeout {t} must be above 0"
                        )))
                    }
                };
                Ok(Hook {
                    path,
                    args,
                    env,
                    timeout,
                })
            })
            .collect()
    };
    Ok(Hooks {
        prestart: conv("prestart", h.prestart())?,
        create_runtime: conv("createRuntime", h.create_runtime())?,
        create_container: conv("createContainer", h.create_container())?,
        start_container: conv("startContainer", h.start_container())?,
        poststart: conv("poststart", h.poststart())?,
        poststop: conv("poststop", h.poststop())?,
    })
}

/// Hooks as JSON, to keep the ones later operations run in the state.
pub fn to_json(hooks: &[Hook]) -> serde_json::Value {
    serde_json::Value::Array(
        hooks
            .iter()
            .map(|h| {
                serde_json::json!({
                    "path": h.path,
                    "args": h.args,
                    "env": h.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
                    "timeout": h.timeout.map(|t| t.as_secs()),
                })
            })
            .collect(),
    )
}

/// The inverse of [`to_json`]; entries that do not parse are dropped.
pub fn from_json(v: &serde_json::Value) -> Vec<Hook> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| {
                    Some(Hook {
                        path: PathBuf::from(h.get("path")?.as_str()?),
                        args: h
                            .get("args")?
                            .as_array()?
                            .iter()
                            .filter_map(|x| Some(x.as_str()?.to_string()))
                            .collect(),
                        env: h
                            .get("env")?
                            .as_array()?
                            .iter()
                            .filter_map(|x| {
                                let (k, v) = x.as_str()?.split_once('=')?;
                                Some((k.to_string(), v.to_string()))
                            })
                            .collect(),
                        timeout: h
                            .get("timeout")
                            .and_then(|t| t.as_u64())
                            .map(Duration::from_secs),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Run `hooks` in order with `state` (the OCI state JSON) on stdin; the
/// first failure stops the rest. `kind` names them in messages.
pub fn run_all(kind: &str, hooks: &[Hook], state: &serde_json::Value) -> Result<()> {
    for h in hooks {
        run(kind, h, state)?;
    }
    Ok(())
}

/// Run every hook of `kind` in order; a failure is a warning and the next
/// hook still runs (poststop, and poststart before runtime-spec 1.3).
pub fn run_all_warning(kind: &str, hooks: &[Hook], state: &serde_json::Value) {
    for h in hooks {
        if let Err(e) = run(kind, h, state) {
            tracing::warn!("{e}");
        }
    }
}

fn run(kind: &str, h: &Hook, state: &serde_json::Value) -> Result<()> {
    let what = || format!("{kind} hook `{}`", h.path.display());
    let mut cmd = Command::new(&h.path);
    if let Some((first, rest)) = h.args.split_first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, first);
        cmd.args(rest);
    }
    cmd.env_clear()
        .envs(h.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Helper {
        what: format!("run {}", what()),
        detail: e.to_string(),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is not an error.
        let _ = stdin.write_all(state.to_string().as_bytes());
    }
    let failed = |detail: String| Error::Helper {
        what: what(),
        detail,
    };
    let status = match h.timeout {
        None => child.wait().map_err(|e| failed(e.to_string()))?,
        Some(limit) => match wait_with_timeout(&mut child, limit) {
            Ok(Some(status)) => status,
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!("timed out after {}s", limit.as_secs())));
            }
            Err(e) => return Err(failed(e.desc().to_string())),
        },
    };
    if status.success() {
        Ok(())
    } else {
        Err(Error::Helper {
            what: what(),
            detail: format!("failed ({status})"),
        })
    }
}

/// Wait for `child` for at most `limit`; `None` when it is still running.
fn wait_with_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> nix::Result<Option<std::process::ExitStatus>> {
    let pidfd = sys::pidfd_open(nix::unistd::Pid::from_raw(child.id() as i32))?;
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let mut fds = [nix::poll::PollFd::new(
            pidfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(n) if n > 0 => {
                return child.wait().map(Some).map_err(|e| {
                    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
                })
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_round_trip_through_json() {
        let h = Hook {
            path: "/bin/sh".into(),
            args: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec![("A".into(), "b=c".into())],
            timeout: Some(Duration::from_secs(3)),
        };
        assert_eq!(from_json(&to_json(std::slice::from_ref(&h))), vec![h]);
    }

    #[test]
    fn a_hook_gets_the_state_on_stdin_and_its_failure_is_reported() {
        let dir = std::env::temp_dir().join(format!("hutch-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let ok = Hook {
            path: "/bin/sh".into(),
            args: vec!["sh".into(), "-c".into(), format!("cat > {}", out.display())],
            env: vec![],
            timeout: Some(Duration::from_secs(5)),
        };
        run_all("poststart", &[ok], &serde_json::json!({"id": "x"})).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), r#"{"id":"x"}"#);
        let bad = Hook {
            path: "/bin/false".into(),
            args: vec!["false".into()],
            env: vec![],
            timeout: None,
        };
        let err = run_all("prestart", &[bad], &serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("prestart hook `/bin/false`: failed"),
            "{err}"
        );
        let slow = Hook {
            path: "/bin/sleep".into(),
            args: vec!["sleep".into(), "10".into()],
            env: vec![],
            timeout: Some(Duration::from_secs(1)),
        };
        let err = run_all("poststop", &[slow], &serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
