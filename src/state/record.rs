//! What `create` records about a container, and its status, read from the
//! kernel each time.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nix::unistd::Pid;

/// The OCI status of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    /// Its cgroup is frozen (`pause`); `resume` thaws it.
    Paused,
    Stopped,
}

impl Status {
    /// The OCI name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
    /// `start` needs a created container.
    pub fn can_start(self) -> bool {
        self == Status::Created
    }
    /// `kill` needs a container whose process exists.
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
    /// `pause` takes a created or running container (as runc does: a
    /// created one is frozen where it waits for `start`).
    pub fn can_pause(self) -> bool {
        matches!(self, Status::Created | Status::Running)
    }
    /// `resume` takes only a paused container.
    pub fn can_resume(self) -> bool {
        self == Status::Paused
    }
    /// `update`, `events` and `ps` need the container's processes (runc
    /// refuses a stopped container).
    pub fn has_processes(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
    /// `delete` without `--force` takes only a stopped container, as the
    /// runtime spec requires (runc and crun also take a created one).
    pub fn can_delete(self) -> bool {
        self == Status::Stopped
    }
}

/// What `create` records about a container.
#[derive(Clone, Debug)]
pub struct Record {
    pub id: String,
    pub oci_version: String,
    pub pid: Pid,
    /// Field 22 of `/proc/PID/stat` when the process was made.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub annotations: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub created: u64,
    /// Hooks later operations run: poststart (by `start`), poststop (by `delete`).
    pub poststart: Vec<crate::hooks::Hook>,
    pub poststop: Vec<crate::hooks::Hook>,
    /// The FUSE server of a SquashFS root: its pid and start time.
    pub server: Option<(Pid, u64)>,
}

impl Record {
    pub(super) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "ociVersion": self.oci_version,
            "pid": self.pid.as_raw(),
            "startTime": self.start_time,
            "bundle": self.bundle,
            "annotations": self.annotations,
            "created": self.created,
            "poststart": crate::hooks::to_json(&self.poststart),
            "poststop": crate::hooks::to_json(&self.poststop),
            "server": self.server.map(|(pid, start)| serde_json::json!({
                "pid": pid.as_raw(),
                "startTime": start,
            })),
        })
    }

    pub(super) fn from_json(v: &serde_json::Value) -> Option<Record> {
        Some(Record {
            id: v.get("id")?.as_str()?.to_string(),
            oci_version: v.get("ociVersion")?.as_str()?.to_string(),
            pid: Pid::from_raw(i32::try_from(v.get("pid")?.as_i64()?).ok()?),
            start_time: v.get("startTime")?.as_u64()?,
            bundle: PathBuf::from(v.get("bundle")?.as_str()?),
            annotations: v
                .get("annotations")?
                .as_object()?
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
            created: v.get("created")?.as_u64()?,
            poststart: v
                .get("poststart")
                .map(crate::hooks::from_json)
                .unwrap_or_default(),
            poststop: v
                .get("poststop")
                .map(crate::hooks::from_json)
                .unwrap_or_default(),
            server: v.get("server").and_then(|s| {
                let pid = i32::try_from(s.get("pid")?.as_i64()?).ok()?;
                Some((Pid::from_raw(pid), s.get("startTime")?.as_u64()?))
            }),
        })
    }

    /// The OCI state document for this record with `status`.
    pub fn oci_state(&self, status: Status) -> serde_json::Value {
        let mut v = serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": status.as_str(),
            "bundle": self.bundle,
            "annotations": self.annotations,
        });
        if status != Status::Stopped {
            v["pid"] = self.pid.as_raw().into();
        }
        v
    }
}

/// Facts about a process read from `/proc/PID/stat`.
#[derive(Clone, Copy, Debug)]
pub struct ProcStat {
    /// The state letter (`R`, `S`, `Z`, …).
    pub state: u8,
    /// The kernel's `PF_*` flags.
    pub flags: u64,
    pub start_time: u64,
}

/// `PF_EXITING`: the process is on its way out (its memory may already be
/// gone) but is not a zombie yet.
const PF_EXITING: u64 = 0x4;

/// Read `/proc/PID/stat`; `None` when there is no such process.
pub fn proc_stat(pid: Pid) -> Option<ProcStat> {
    let text = std::fs::read(format!("/proc/{}/stat", pid.as_raw())).ok()?;
    // The command name is in parentheses and may itself hold ") ", so parse
    // from the last ')'.
    let end = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[end + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.bytes().next()?;
    let flags = fields.nth(5)?.parse().ok()?;
    let start_time = fields.nth(12)?.parse().ok()?;
    Some(ProcStat {
        state,
        flags,
        start_time,
    })
}

/// True if `pid` is the live process `record` describes (not gone, not a
/// zombie, not a reused pid).
pub fn is_alive(record: &Record) -> bool {
    match proc_stat(record.pid) {
        Some(s) => {
            s.start_time == record.start_time
                && !matches!(s.state, b'Z' | b'X' | b'x')
                && s.flags & PF_EXITING == 0
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Status::Creating, false, false, false, false, false)]
    #[case(Status::Created, true, true, false, true, false)]
    #[case(Status::Running, false, true, false, true, false)]
    #[case(Status::Paused, false, true, false, false, true)]
    #[case(Status::Stopped, false, false, true, false, false)]
    fn transitions(
        #[case] s: Status,
        #[case] start: bool,
        #[case] kill: bool,
        #[case] delete: bool,
        #[case] pause: bool,
        #[case] resume: bool,
    ) {
        assert_eq!(
            (
                s.can_start(),
                s.can_kill(),
                s.can_delete(),
                s.can_pause(),
                s.can_resume()
            ),
            (start, kill, delete, pause, resume)
        );
    }

    #[test]
    fn record_round_trips() {
        let r = Record {
            id: "x".into(),
            oci_version: "1.0.2".into(),
            pid: Pid::from_raw(42),
            start_time: 7,
            bundle: "/b".into(),
            annotations: [("k".to_string(), "v".to_string())].into(),
            created: 1,
            poststart: Vec::new(),
            poststop: Vec::new(),
            server: Some((Pid::from_raw(43), 8)),
        };
        let back = Record::from_json(&r.to_json()).unwrap();
        assert_eq!(
            (&back.id, back.pid, back.start_time, &back.annotations),
            (&r.id, r.pid, r.start_time, &r.annotations)
        );
        assert_eq!(back.server, r.server);
        let s = r.oci_state(Status::Stopped);
        assert_eq!(s["status"], "stopped");
        assert!(s.get("pid").is_none());
    }

    #[test]
    fn own_process_stat_is_readable() {
        let me = proc_stat(nix::unistd::getpid()).unwrap();
        assert!(me.start_time > 0);
        assert!(b"RSD".contains(&me.state), "state {}", me.state as char);
    }
}
