//! The operations on a live container's cgroup: `pause`, `resume`,
//! `update`, `events` and `ps`, one public function each. Like the
//! lifecycle operations (src/container/) they check the status first
//! (read from the kernel, see state.rs), then act through the cgroup
//! interface (`cgroup::reopen` on the entry's record), whatever backend
//! made the cgroup.
//!
//! A container without a cgroup (its config asked for none, the caller
//! could not make one, or `--cgroup-manager disabled`) cannot be paused,
//! updated or watched: one error says so. `ps` then lists the processes
//! of its namespaces instead.

use std::io::Write;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use crate::cgroup::{self, Cgroup};
use crate::cli::UpdateArgs;
use crate::container::{members, open_acting, Globals};
use crate::error::{Error, Result};
use crate::state::{self, Entry, Record, StateRoot, Status};

/// The container's cgroup, or the error saying it has none.
fn cgroup_of(entry: &Entry, op: &str) -> Result<Cgroup> {
    match entry.load_cgroup() {
        Some(record) => cgroup::reopen(&record),
        None => Err(Error::Container(format!(
            "cannot {op} container `{}`: it has no cgroup (hutch makes one when the config has a \
             linux.cgroupsPath or resources and the caller may write the cgroup tree there)",
            entry.id
        ))),
    }
}

/// The entry and record of a container in a status `ok` accepts; the
/// error names `op` and the status otherwise.
fn acting_on(
    g: &Globals,
    id: &str,
    op: &'static str,
    ok: fn(Status) -> bool,
) -> Result<(Entry, Record)> {
    let entry = open_acting(g, id)?;
    let (record, status) = entry.status()?;
    if !ok(status) {
        return Err(Error::WrongState {
            id: id.to_string(),
            op,
            status: status.as_str(),
        });
    }
    Ok((entry, record))
}

/// `pause`: freeze every process of a created or running container.
pub fn pause(g: &Globals, id: &str) -> Result<()> {
    let (entry, _) = acting_on(g, id, "pause", Status::can_pause)?;
    cgroup_of(&entry, "pause")?.freeze()
}

/// `resume`: thaw a paused container.
pub fn resume(g: &Globals, id: &str) -> Result<()> {
    let (entry, _) = acting_on(g, id, "resume", Status::can_resume)?;
    cgroup_of(&entry, "resume")?.thaw()
}

/// `update`: write new limits into the container's cgroup. A swap limit
/// without a memory limit goes with the current memory limit (as in
/// runc, where an update changes only what it names).
pub fn update(g: &Globals, id: &str, resources: &LinuxResources) -> Result<()> {
    let (entry, _) = acting_on(g, id, "update", Status::has_processes)?;
    let cg = cgroup_of(&entry, "update")?;
    let mut doc = serde_json::to_value(resources).unwrap_or_default();
    let memory = &doc["memory"];
    if !memory["swap"].is_null() && memory["limit"].is_null() {
        let now = cg.stats()?.memory.usage.limit;
        let limit = i64::try_from(now).ok().filter(|&l| l > 0).unwrap_or(-1);
        doc["memory"]["limit"] = limit.into();
    }
    let resources: LinuxResources = serde_json::from_value(doc)
        .map_err(|e| Error::Usage(format!("cannot update container `{id}`: {e}")))?;
    // The checks name config.json's fields: here they come from the
    // command line or --resources.
    cg.update(&resources).map_err(|e| match e {
        Error::Config(m) => Error::Container(format!("cannot update container `{id}`: {m}")),
        e => e,
    })
}

/// `events`: print the container's statistics as runc does, one JSON
/// object per line: once with `once`, else every `interval` until the
/// container stops, with an `oom` line when the kernel reports OOM in its
/// cgroup.
pub fn events(g: &Globals, id: &str, interval: Duration, once: bool) -> Result<()> {
    let (entry, record) = acting_on(g, id, "report events of", Status::has_processes)?;
    let cg = cgroup_of(&entry, "report events of")?;
    let mut out = std::io::stdout().lock();
    let mut print = |v: Value| -> Result<()> {
        writeln!(out, "{v}").map_err(|e| Error::io("write", "standard output", e))
    };
    let stats = |cg: &Cgroup| -> Result<Value> {
        Ok(json!({"type": "stats", "id": id, "data": cg.stats()?.to_json()}))
    };
    if once {
        return print(stats(&cg)?);
    }
    // No memory controller, no OOM events; the statistics still come.
    let mut watch = match cg.oom_watch() {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("no oom events: {e}");
            None
        }
    };
    while state::is_alive(&record) {
        match stats(&cg) {
            Ok(v) => print(v)?,
            // Stopped (and its cgroup gone) while being read: the end.
            Err(_) if !state::is_alive(&record) => break,
            Err(e) => return Err(e),
        }
        let next = Instant::now() + interval;
        loop {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let Some(w) = watch.as_mut() else {
                std::thread::sleep(left);
                break;
            };
            let flags = if w.wants_pri() {
                PollFlags::POLLPRI
            } else {
                PollFlags::POLLIN
            };
            let ready = {
                let fd = w.fd();
                let mut fds = [PollFd::new(fd, flags)];
                match poll(&mut fds, PollTimeout::from(ms)) {
                    Ok(n) => n > 0,
                    Err(nix::errno::Errno::EINTR) => false,
                    Err(e) => return Err(Error::call("wait for oom events", e)),
                }
            };
            // One line per wake-up with new OOM events, as runc: the kernel
            // signals several for one kill (v1). The watch also fires when
            // the cgroup is removed (delete): that is not an OOM.
            if ready && w.count()? > 0 && cg.pids().is_ok() {
                print(json!({"type": "oom", "id": id}))?;
            }
        }
    }
    Ok(())
}

/// The pids (as hutch sees them) of a container's processes: those of
/// its cgroup, or without one, those of its namespaces. None for a
/// stopped container.
pub fn processes(g: &Globals, id: &str) -> Result<Vec<Pid>> {
    let entry = StateRoot::open(&g.root)?.entry(id)?;
    let (record, status) = entry.status()?;
    if !status.has_processes() {
        return Ok(Vec::new());
    }
    let mut pids: Vec<Pid> = match entry.load_cgroup() {
        Some(r) => cgroup::reopen(&r)?
            .pids()?
            .into_iter()
            .map(Pid::from_raw)
            .collect(),
        None => {
            let mut p = vec![record.pid];
            p.extend(members(&record));
            p
        }
    };
    pids.sort();
    pids.dedup();
    Ok(pids)
}

/// `ps --format table`: run `ps ARGS` (default `-ef`) and keep its
/// header and the lines of `pids`, as runc does.
pub fn ps_table(pids: &[Pid], args: &[String]) -> Result<String> {
    let args: Vec<&str> = if args.is_empty() {
        vec!["-ef"]
    } else {
        args.iter().map(String::as_str).collect()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::Helper {
            what: "run ps".into(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Helper {
            what: format!("ps {}", args.join(" ")),
            detail: out.status.to_string(),
        });
    }
    filter_ps(&String::from_utf8_lossy(&out.stdout), pids)
}

/// The header of `ps` output and the lines whose PID column is in `pids`.
fn filter_ps(text: &str, pids: &[Pid]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| Error::Usage(format!("ps: no PID column in its output: `{header}`")))?;
    let mut kept = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&Pid::from_raw(p))) {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    Ok(kept)
}

/// The resources `update` writes, from its flags or (with `--resources`)
/// the LinuxResources JSON in that file (`-`: standard input). As runc:
/// a value of 0 (or an empty cpuset) leaves that limit unchanged.
pub fn update_resources(a: &UpdateArgs) -> Result<LinuxResources> {
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        return Err(Error::Usage(
            "--l3-cache-schema and --mem-bw-schema: hutch does not support Intel RDT".into(),
        ));
    }
    let doc = match &a.resources {
        Some(path) => {
            if flags_given(a) {
                tracing::warn!("--resources is given: the other flags are ignored (as by runc)");
            }
            read_resources(path)?
        }
        None => flags_to_json(a)?,
    };
    let doc = drop_unchanged(doc);
    serde_json::from_value(doc).map_err(|e| Error::Usage(format!("--resources: {e}")))
}

fn flags_given(a: &UpdateArgs) -> bool {
    let sizes = [
        &a.memory,
        &a.memory_reservation,
        &a.memory_swap,
        &a.kernel_memory,
        &a.kernel_memory_tcp,
        &a.cpuset_cpus,
        &a.cpuset_mems,
    ];
    sizes.iter().any(|v| v.is_some())
        || a.blkio_weight.is_some()
        || a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_share.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.pids_limit.is_some()
}

fn read_resources(path: &std::path::Path) -> Result<Value> {
    let text = if path == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| Error::io("read", "standard input", e))?
    } else {
        std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?
    };
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Usage(format!("--resources `{}`: {e}", path.display())))?;
    if !v.is_object() {
        return Err(Error::Usage(format!(
            "--resources `{}`: not a JSON object",
            path.display()
        )));
    }
    Ok(v)
}

fn flags_to_json(a: &UpdateArgs) -> Result<Value> {
    let size = |flag: &str, v: &Option<String>, minus_one: bool| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| match s.trim() {
                "-1" if minus_one => Ok(-1),
                s => parse_size(s).ok_or_else(|| {
                    Error::Usage(format!("--{flag} `{s}`: not a size (as 64m, 1g, 1048576)"))
                }),
            })
            .transpose()
    };
    let mut doc = json!({
        "memory": {
            "limit": size("memory", &a.memory, false)?,
            "reservation": size("memory-reservation", &a.memory_reservation, false)?,
            "swap": size("memory-swap", &a.memory_swap, true)?,
            "kernel": size("kernel-memory", &a.kernel_memory, false)?,
            "kernelTCP": size("kernel-memory-tcp", &a.kernel_memory_tcp, false)?,
        },
        "cpu": {
            "shares": a.cpu_share,
            "quota": a.cpu_quota,
            "period": a.cpu_period,
            "realtimeRuntime": a.cpu_rt_runtime,
            "realtimePeriod": a.cpu_rt_period,
            "cpus": a.cpuset_cpus,
            "mems": a.cpuset_mems,
        },
        "blockIO": {"weight": a.blkio_weight},
        "pids": {"limit": a.pids_limit},
    });
    strip_nulls(&mut doc);
    Ok(doc)
}

/// Remove null members, and objects left empty.
fn strip_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        for x in m.values_mut() {
            strip_nulls(x);
        }
        m.retain(|_, x| !x.is_null() && !matches!(x, Value::Object(o) if o.is_empty()));
    }
}

/// runc's rule for `update`: in memory, cpu, blockIO.weight and pids, a
/// 0 or an empty string means "leave it".
fn drop_unchanged(mut doc: Value) -> Value {
    const FIELDS: &[(&str, &[&str])] = &[
        (
            "memory",
            &["limit", "reservation", "swap", "kernel", "kernelTCP"],
        ),
        (
            "cpu",
            &[
                "shares",
                "quota",
                "period",
                "realtimeRuntime",
                "realtimePeriod",
                "cpus",
                "mems",
            ],
        ),
        ("blockIO", &["weight"]),
        ("pids", &["limit"]),
    ];
    for (section, keys) in FIELDS {
        if let Some(Value::Object(m)) = doc.get_mut(*section) {
            for k in *keys {
                let zero = match m.get(*k) {
                    Some(Value::Number(n)) => n.as_f64() == Some(0.0),
                    Some(Value::String(s)) => s.is_empty(),
                    Some(Value::Null) => true,
                    _ => false,
                };
                if zero {
                    m.remove(*k);
                }
            }
        }
    }
    strip_nulls(&mut doc);
    doc
}

/// A size as runc and Docker take it: a number with an optional binary
/// unit (k, m, g, t, p; then an optional `i` and `b`, any case): `64m`,
/// `1.5GiB`, `1048576`.
pub fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.starts_with('.') {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut u = unit.as_str();
    let shift = match u.chars().next() {
        Some(c) if "kmgtp".contains(c) => {
            u = &u[1..];
            10 * (1 + "kmgtp".find(c)?)
        }
        _ => 0,
    };
    u = u.strip_prefix('i').unwrap_or(u);
    u = u.strip_prefix('b').unwrap_or(u);
    if !u.is_empty() || (shift == 0 && unit.starts_with('i')) {
        return None;
    }
    let v = n * (1u64 << shift) as f64;
    (v < i64::MAX as f64).then_some(v as i64)
}

/// A duration as Go writes it (runc's `--interval`): `5s`, `500ms`,
/// `1m30s`; units ns, us (or µs), ms, s, m, h.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || {
        Error::Usage(format!(
            "--interval `{s}`: not a duration (as 5s, 500ms, 1m)"
        ))
    };
    let mut rest = s.trim();
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..end].parse().map_err(|_| bad())?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    if total <= 0.0 {
        return Err(Error::Usage(format!("--interval `{s}`: must be positive")));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use rstest::rstest;

    #[rstest]
    #[case("1048576", Some(1_048_576))]
    #[case("64m", Some(64 << 20))]
    #[case("64M", Some(64 << 20))]
    #[case("64mb", Some(64 << 20))]
    #[case("64MiB", Some(64 << 20))]
    #[case("1g", Some(1 << 30))]
    #[case("1.5k", Some(1536))]
    #[case("2 kb", Some(2048))]
    #[case("10b", Some(10))]
    #[case("", None)]
    #[case("m", None)]
    #[case("-1", None)]
    #[case("12x", None)]
    #[case("1i", None)]
    #[case("64mm", None)]
    fn sizes(#[case] s: &str, #[case] want: Option<i64>) {
        assert_eq!(parse_size(s), want, "{s:?}");
    }

    #[rstest]
    #[case("5s", 5000)]
    #[case("500ms", 500)]
    #[case("1m30s", 90_000)]
    #[case("1.5s", 1500)]
    #[case("2h", 7_200_000)]
    fn durations(#[case] s: &str, #[case] ms: u128) {
        assert_eq!(parse_duration(s).unwrap().as_millis(), ms);
    }

    #[rstest]
    #[case("")]
    #[case("5")]
    #[case("s")]
    #[case("5x")]
    #[case("0s")]
    #[case("-1s")]
    fn bad_durations(#[case] s: &str) {
        assert!(parse_duration(s).is_err(), "{s:?}");
    }

    fn args(line: &[&str]) -> UpdateArgs {
        let mut full = vec!["hutch", "update"];
        full.extend_from_slice(line);
        match crate::cli::Cli::try_parse_from(full).unwrap().command {
            crate::cli::Command::Update(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn as_json(r: &LinuxResources) -> Value {
        serde_json::to_value(r).unwrap()
    }

    #[test]
    fn flags_become_resources() {
        let r = update_resources(&args(&[
            "--memory",
            "64m",
            "--memory-swap",
            "-1",
            "--cpu-share",
            "512",
            "--cpu-quota",
            "-1",
            "--cpu-period",
            "100000",
            "--cpuset-cpus",
            "0",
            "--pids-limit",
            "50",
            "--blkio-weight",
            "300",
            "x",
        ]))
        .unwrap();
        let v = as_json(&r);
        assert_eq!(v["memory"]["limit"], 64 << 20);
        assert_eq!(v["memory"]["swap"], -1);
        assert_eq!(v["cpu"]["shares"], 512);
        assert_eq!(v["cpu"]["quota"], -1);
        assert_eq!(v["cpu"]["period"], 100_000);
        assert_eq!(v["cpu"]["cpus"], "0");
        assert_eq!(v["pids"]["limit"], 50);
        assert_eq!(v["blockIO"]["weight"], 300);
        assert!(v["memory"].get("reservation").is_none());
    }

    #[test]
    fn cpu_shares_is_an_alias() {
        let v = as_json(&update_resources(&args(&["--cpu-shares", "2", "x"])).unwrap());
        assert_eq!(v["cpu"]["shares"], 2);
    }

    #[test]
    fn no_flag_changes_nothing() {
        let v = as_json(&update_resources(&args(&["x"])).unwrap());
        for section in ["memory", "cpu", "blockIO", "pids"] {
            let empty = v.get(section).is_none_or(|s| {
                s.as_object()
                    .is_none_or(|m| m.values().all(|x| x.is_null() || x == &json!([])))
            });
            assert!(empty, "{section}: {v}");
        }
    }

    #[rstest]
    #[case(&["--memory", "lots", "x"], "--memory `lots`")]
    #[case(&["--memory-reservation=-1", "x"], "--memory-reservation `-1`")]
    #[case(&["--l3-cache-schema", "L3:0=f", "x"], "Intel RDT")]
    fn bad_flags(#[case] line: &[&str], #[case] needle: &str) {
        let e = update_resources(&args(line)).unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    }

    #[test]
    fn zeros_mean_unchanged_as_in_runc() {
        // What Docker sends for `docker update --memory 128m`.
        let doc = json!({
            "memory": {"limit": 134217728, "reservation": 0, "swap": 0, "kernel": 0, "kernelTCP": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0,
                    "realtimePeriod": 0, "cpus": "", "mems": ""},
            "blockIO": {"weight": 0},
            "pids": {"limit": 0},
        });
        let v = drop_unchanged(doc);
        assert_eq!(v, json!({"memory": {"limit": 134217728}}));
        let r: LinuxResources = serde_json::from_value(v).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(134217728));
    }

    #[test]
    fn flags_beside_resources_are_noticed() {
        assert!(!flags_given(&args(&["--resources", "-", "x"])));
        assert!(flags_given(&args(&[
            "--resources",
            "-",
            "--pids-limit",
            "3",
            "x"
        ])));
        assert!(flags_given(&args(&["--cpuset-mems", "0", "x"])));
    }

    #[test]
    fn resources_file_is_read() {
        let dir = std::env::temp_dir().join(format!("hutch-update-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("r.json");
        std::fs::write(&f, r#"{"pids": {"limit": 7}, "cpu": {"shares": 0}}"#).unwrap();
        let r = update_resources(&args(&["--resources", f.to_str().unwrap(), "x"])).unwrap();
        assert_eq!(as_json(&r)["pids"]["limit"], 7);
        std::fs::write(&f, "[1]").unwrap();
        let e = update_resources(&args(&["-r", f.to_str().unwrap(), "x"])).unwrap_err();
        assert!(e.to_string().contains("not a JSON object"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ps_lines_are_filtered_by_pid() {
        let text = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 sleep 100\nroot 420 1 other\n";
        let kept = filter_ps(text, &[Pid::from_raw(42)]).unwrap();
        assert_eq!(kept, "UID PID PPID CMD\nroot 42 1 sleep 100\n");
        assert!(filter_ps("UID CMD\nroot x\n", &[]).is_err());
    }
}
