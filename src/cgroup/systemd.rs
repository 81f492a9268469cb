//! The systemd driver (`--systemd-cgroup`): the container's cgroup is a
//! transient scope that systemd makes, asked for over D-Bus
//! ([`crate::dbus`]).
//!
//! A cgroupsPath `slice:prefix:name` names the unit `prefix-name.scope` in
//! `slice` (as runc: an empty slice is `system.slice`, `user.slice` for a
//! plain user; `-` is the root slice; an empty prefix gives `name.scope`);
//! no cgroupsPath gives `hutch-ID.scope`. Root talks to the system bus, a
//! plain user (or root of a user namespace) to the session bus, whose
//! systemd instance owns the user's delegated subtree.
//!
//! [`connect`] opens the bus before the clone, so a missing bus fails
//! `create` before anything exists. [`Scope::start`] asks for the scope
//! with the container process's pid in `PIDs` (it waits for its id maps,
//! so it runs nothing before), `Delegate=yes`, and the resources systemd
//! knows as unit properties; it waits for the job, then finds the scope's
//! cgroup in `/proc/PID/cgroup`, and the rest of the resources are written
//! there by the v2 code. [`stop`] stops the unit at `delete` and waits for
//! it to be gone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{fs, hier, v2, Setting};
use crate::dbus::{Bus, BusError, Call, Value};
use crate::error::{Error, Result};

/// How long hutch waits for any one answer from the bus or systemd.
const TIMEOUT: Duration = Duration::from_secs(30);

const SYSTEMD: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// The unit a container gets: `slice:prefix:name` checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// `system.slice` (empty until the default is known).
    pub slice: String,
    /// `prefix-name.scope`.
    pub name: String,
}

/// Characters systemd allows in a unit name (besides `\` escapes, which
/// hutch does not make).
fn valid_unit_chars(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b))
}

/// Parse `slice:prefix:name` (the caller knows it has two colons).
pub fn parse_path(text: &str) -> Result<Unit> {
    let bad = |why: &str| Error::Config(format!("linux.cgroupsPath `{text}`: {why}"));
    let mut parts = text.splitn(3, ':');
    let (slice, prefix, name) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if name.is_empty() {
        return Err(bad("the name (after the second `:`) is empty"));
    }
    if name.ends_with(".slice") {
        return Err(bad(
            "a slice as the container's unit is not supported (hutch makes a scope)",
        ));
    }
    let slice = match slice {
        "" => String::new(),
        "-" => "-.slice".to_string(),
        s if s.ends_with(".slice") && valid_unit_chars(s) => s.to_string(),
        _ => {
            return Err(bad(
                "the slice must be a systemd slice unit name (`NAME.slice`)",
            ))
        }
    };
    let unit = if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    if !valid_unit_chars(&unit) || unit.len() > 255 {
        return Err(bad(&format!("`{unit}` is not a valid systemd unit name")));
    }
    Ok(Unit { slice, name: unit })
}

/// Which bus, and its address.
fn bus_address(rootless: bool) -> Result<(&'static str, String)> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if !rootless {
        let a = env("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|| "unix:path=/run/dbus/system_bus_socket".to_string());
        return Ok(("system", a));
    }
    if let Some(a) = env("DBUS_SESSION_BUS_ADDRESS") {
        return Ok(("session", a));
    }
    match env("XDG_RUNTIME_DIR") {
        Some(dir) => Ok(("session", format!("unix:path={dir}/bus"))),
        None => Err(Error::Helper {
            what: "systemd cgroup driver".into(),
            detail: "no session bus: neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set (a plain user's scopes come from `systemd --user`)".into(),
        }),
    }
}

fn bus_error(step: &str, e: BusError) -> Error {
    Error::Helper {
        what: "systemd cgroup driver".into(),
        detail: format!("{step}: {e}"),
    }
}

/// A connection to systemd, and the scope to ask it for.
pub struct Scope {
    bus: Bus,
    /// `system` or `session`.
    pub which: &'static str,
    pub address: String,
    pub unit: Unit,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scope({} on the {} bus)", self.unit.name, self.which)
    }
}

/// Whether the caller is a plain user for systemd (not root of the
/// initial user namespace).
pub fn rootless() -> bool {
    let host = crate::spec::Host::current();
    host.euid != 0 || !host.initial_userns
}

/// No cgroupsPath: `hutch-ID.scope`, when the id can name a unit.
fn default_unit(id: &str) -> Result<Unit> {
    let name = format!("hutch-{id}.scope");
    if !valid_unit_chars(&name) || name.len() > 255 {
        return Err(Error::Usage(format!(
            "container id `{id}` cannot name a systemd unit (`{name}`): give the config a cgroupsPath slice:prefix:name"
        )));
    }
    Ok(Unit {
        slice: String::new(),
        name,
    })
}

/// Open the bus the scope will be asked for on (before the clone).
pub fn connect(unit: Option<Unit>, id: &str) -> Result<Scope> {
    let rootless = rootless();
    let mut unit = match unit {
        Some(u) => u,
        None => default_unit(id)?,
    };
    if unit.slice.is_empty() {
        unit.slice = if rootless {
            "user.slice"
        } else {
            "system.slice"
        }
        .to_string();
    }
    let (which, address) = bus_address(rootless)?;
    let bus = Bus::connect(&address, TIMEOUT).map_err(|e| match e {
        BusError::Io(_, err) => Error::Helper {
            what: "systemd cgroup driver".into(),
            detail: format!("connect to the {which} bus at `{address}`: {err}"),
        },
        e => bus_error(&format!("talk to the {which} bus at `{address}`"), e),
    })?;
    Ok(Scope {
        bus,
        which,
        address,
        unit,
    })
}

/// A match rule for systemd's `JobRemoved`, which systemd sends to the
/// client that queued the job.
fn job_removed_rule() -> Value {
    Value::Str(format!(
        "type='signal',sender='{SYSTEMD}',path='{SYSTEMD_PATH}',interface='{MANAGER}',member='JobRemoved'"
    ))
}

fn manager_call(member: &str, args: Vec<Value>) -> Call<'_> {
    Call {
        destination: SYSTEMD,
        path: SYSTEMD_PATH,
        interface: MANAGER,
        member,
        args,
    }
}

/// Wait for the job at object path `job` to be removed; its result
/// (`done` when it worked).
fn wait_job(bus: &mut Bus, job: &str) -> std::result::Result<String, BusError> {
    // JobRemoved(u id, o job, s unit, s result)
    let body = bus.wait_signal(MANAGER, "JobRemoved", TIMEOUT, |b| {
        b.get(1).and_then(Value::as_str) == Some(job)
    })?;
    Ok(body
        .get(3)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

/// Queue a job with `call` (which answers with the job's object path) and
/// wait until systemd removes it; its result.
fn run_job(bus: &mut Bus, call: Call<'_>) -> std::result::Result<String, BusError> {
    // Match first: systemd may finish the job before its reply is read
    // (the bus handles a connection's messages in order).
    let matched = bus.send(&crate::dbus::bus_call("AddMatch", vec![job_removed_rule()]))?;
    let reply = bus.call(&call, TIMEOUT)?;
    bus.reply(matched, TIMEOUT)?;
    let job = reply
        .first()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    wait_job(bus, &job)
}

/// systemd's cpuset bitmask (`AllowedCPUs`): bit N of byte N/8 for CPU N.
fn cpu_mask(list: &str) -> Option<Vec<u8>> {
    let mut bytes: Vec<u8> = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().ok()?,
                b.trim().parse::<usize>().ok()?,
            ),
            None => {
                let n = part.trim().parse::<usize>().ok()?;
                (n, n)
            }
        };
        if a > b || b >= 8192 {
            return None;
        }
        for n in a..=b {
            if bytes.len() <= n / 8 {
                bytes.resize(n / 8 + 1, 0);
            }
            bytes[n / 8] |= 1 << (n % 8);
        }
    }
    Some(bytes)
}

/// A cgroup v2 limit as systemd takes it: `max` is `u64::MAX` (infinity).
fn limit_value(v: &str) -> Option<u64> {
    match v.trim() {
        "max" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// `cpu.max` ("QUOTA PERIOD", "max PERIOD" or "QUOTA") as systemd's
/// `CPUQuotaPerSecUSec` (rounded up to 10 ms, as runc does: systemd keeps
/// that precision) and `CPUQuotaPeriodUSec`.
fn cpu_quota(v: &str) -> Option<Vec<(&'static str, Value)>> {
    let mut it = v.split_whitespace();
    let quota = it.next()?;
    let period: u64 = match it.next() {
        Some(p) => p.parse().ok()?,
        None => 100_000,
    };
    if period == 0 {
        return None;
    }
    let per_sec = match quota {
        "max" => u64::MAX,
        q => {
            let q: u64 = q.parse().ok()?;
            let us = q.checked_mul(1_000_000)? / period;
            us.div_ceil(10_000) * 10_000
        }
    };
    Some(vec![
        ("CPUQuotaPerSecUSec", Value::U64(per_sec)),
        ("CPUQuotaPeriodUSec", Value::U64(period)),
    ])
}

/// The v2 settings split between systemd and hutch.
#[derive(Debug, Default)]
pub struct Split {
    /// Unit properties, for what systemd knows.
    pub props: Vec<(&'static str, Value)>,
    /// The settings those properties stand for (to check their files).
    pub as_props: Vec<Setting>,
    /// The rest, which hutch writes into the scope's cgroup.
    pub rest: Vec<Setting>,
}

/// Split the v2 settings into unit properties (what systemd knows) and
/// the rest, which is written into the scope's cgroup.
pub fn properties(settings: &[Setting]) -> Split {
    let mut props: Vec<(&'static str, Value)> = Vec::new();
    let mut as_props = Vec::new();
    let mut rest = Vec::new();
    for s in settings {
        let as_limit =
            |name: &'static str| limit_value(&s.value).map(|v| vec![(name, Value::U64(v))]);
        let mapped = match s.file.as_str() {
            "memory.max" => as_limit("MemoryMax"),
            "memory.high" => as_limit("MemoryHigh"),
            "memory.low" => as_limit("MemoryLow"),
            "memory.min" => as_limit("MemoryMin"),
            "memory.swap.max" => as_limit("MemorySwapMax"),
            "pids.max" => as_limit("TasksMax"),
            "cpu.weight" => s
                .value
                .trim()
                .parse()
                .ok()
                .map(|w| vec![("CPUWeight", Value::U64(w))]),
            "cpu.max" => cpu_quota(&s.value),
            "cpuset.cpus" => cpu_mask(&s.value).map(|m| vec![("AllowedCPUs", bytes(m))]),
            "cpuset.mems" => cpu_mask(&s.value).map(|m| vec![("AllowedMemoryNodes", bytes(m))]),
            "io.weight" => s
                .value
                .strip_prefix("default ")
                .and_then(|w| w.trim().parse().ok())
                .map(|w| vec![("IOWeight", Value::U64(w))]),
            _ => None,
        };
        match mapped {
            Some(ps) => {
                for (name, v) in ps {
                    // A later setting (a `unified` key) wins, as in a file.
                    props.retain(|(n, _)| *n != name);
                    props.push((name, v));
                }
                as_props.push(s.clone());
            }
            None => rest.push(s.clone()),
        }
    }
    Split {
        props,
        as_props,
        rest,
    }
}

fn bytes(b: Vec<u8>) -> Value {
    Value::Array("y".into(), b.into_iter().map(Value::Byte).collect())
}

/// The accounting switches for the controllers the properties use (as
/// crun sets them; with `Delegate=yes` systemd enables them anyway).
fn accounting(props: &[(&'static str, Value)]) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut add = |a: &'static str| {
        if !out.contains(&a) {
            out.push(a)
        }
    };
    for (name, _) in props {
        match *name {
            n if n.starts_with("Memory") => add("MemoryAccounting"),
            n if n.starts_with("CPU") => add("CPUAccounting"),
            "TasksMax" => add("TasksAccounting"),
            "IOWeight" => add("IOAccounting"),
            _ => {}
        }
    }
    out
}

/// The prefix of annotations that set unit properties (as runc and crun).
const PROPERTY_PREFIX: &str = "org.systemd.property.";

/// Properties hutch sets itself and an annotation may not change.
const OWN_PROPERTIES: &[&str] = &["PIDs", "Slice", "Delegate"];

/// The `org.systemd.property.NAME` annotations as unit properties. A
/// value is GVariant text, the subset runc and crun take: `true`,
/// `false`, `'string'`, `['a', 'b']`, `uint64 N`, `int64 N`, `uint32 N`,
/// `int32 N` or a bare `N` (int32); a NAME ending in `Sec` (not `USec`)
/// takes seconds and becomes NAME`USec`.
pub fn annotation_properties(
    annotations: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for (key, text) in annotations {
        let Some(name) = key.strip_prefix(PROPERTY_PREFIX) else {
            continue;
        };
        let bad = |why: &str| Error::Config(format!("annotation `{key}`: {why}"));
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad("not a systemd property name"));
        }
        if OWN_PROPERTIES.contains(&name) {
            return Err(bad("hutch sets this property itself"));
        }
        let seconds = name.ends_with("Sec") && !name.ends_with("USec");
        let value = parse_variant(text.trim(), if seconds { 1_000_000 } else { 1 })
            .ok_or_else(|| bad(&format!("`{text}` is not a value hutch can pass (GVariant text: true, 'text', ['a'], uint64 N ...)")))?;
        let name = if seconds {
            format!("{}USec", &name[..name.len() - 3])
        } else {
            name.to_string()
        };
        out.push((name, value));
    }
    Ok(out)
}

/// One GVariant text value; numbers times `factor`.
fn parse_variant(t: &str, factor: u64) -> Option<Value> {
    let quoted = |s: &str| -> Option<String> {
        let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let inner = s.strip_prefix(q)?.strip_suffix(q)?;
        (!inner.contains(q)).then(|| inner.to_string())
    };
    let int = |s: &str| s.trim().parse::<i64>().ok();
    let num = |s: &str| s.trim().parse::<u64>().ok()?.checked_mul(factor);
    Some(match t {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ if t.starts_with('[') => {
            let inner = t.strip_prefix('[')?.strip_suffix(']')?.trim();
            let items = if inner.is_empty() {
                Vec::new()
            } else {
                inner
                    .split(',')
                    .map(|i| quoted(i.trim()).map(Value::Str))
                    .collect::<Option<Vec<_>>>()?
            };
            Value::Array("s".into(), items)
        }
        _ if t.starts_with(['\'', '"']) => Value::Str(quoted(t)?),
        _ => match t.split_once(' ') {
            Some(("uint64", n)) => Value::U64(num(n)?),
            Some(("uint32", n)) => Value::U32(u32::try_from(num(n)?).ok()?),
            Some(("int64", n)) => Value::I64(int(n)?.checked_mul(i64::try_from(factor).ok()?)?),
            Some(("int32", n)) => {
                Value::I32(i32::try_from(int(n)?.checked_mul(i64::try_from(factor).ok()?)?).ok()?)
            }
            Some(_) => return None,
            None => {
                Value::I32(i32::try_from(int(t)?.checked_mul(i64::try_from(factor).ok()?)?).ok()?)
            }
        },
    })
}

impl Scope {
    /// Ask systemd for the scope with process `pid` in it and wait for the
    /// job; the scope's cgroup, as `/proc/PID/cgroup` then says.
    pub fn start(
        &mut self,
        pid: i32,
        id: &str,
        props: &[(&'static str, Value)],
        annotated: &[(String, Value)],
    ) -> Result<PathBuf> {
        let mut list = vec![
            Value::property("Description", Value::Str(format!("hutch container {id}"))),
            Value::property("Slice", Value::Str(self.unit.slice.clone())),
            Value::property("Delegate", Value::Bool(true)),
            Value::property("DefaultDependencies", Value::Bool(false)),
            Value::property(
                "PIDs",
                Value::Array("u".into(), vec![Value::U32(pid as u32)]),
            ),
        ];
        for a in accounting(props) {
            list.push(Value::property(a, Value::Bool(true)));
        }
        for (name, v) in props {
            list.push(Value::property(name, v.clone()));
        }
        // Last: the caller's own word wins over hutch's mapping.
        for (name, v) in annotated {
            list.push(Value::property(name, v.clone()));
        }
        let call = manager_call(
            "StartTransientUnit",
            vec![
                Value::Str(self.unit.name.clone()),
                Value::str("fail"),
                Value::Array("(sv)".into(), list),
                Value::Array("(sa(sv))".into(), vec![]),
            ],
        );
        let step = format!("start unit {} in {}", self.unit.name, self.unit.slice);
        let matched = self
            .bus
            .send(&crate::dbus::bus_call("AddMatch", vec![job_removed_rule()]))
            .map_err(|e| bus_error(&step, e))?;
        // An error here means systemd made no unit.
        let reply = self
            .bus
            .call(&call, TIMEOUT)
            .map_err(|e| bus_error(&step, e))?;
        let job = reply
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let waited = self
            .bus
            .reply(matched, TIMEOUT)
            .and_then(|_| wait_job(&mut self.bus, &job));
        let failed = match waited {
            Ok(r) if r == "done" => None,
            Ok(r) => Some(BusError::Protocol(format!(
                "the job ended with result `{r}`"
            ))),
            Err(e) => Some(e),
        };
        if let Some(e) = failed {
            self.abandon();
            return Err(bus_error(&step, e));
        }
        let file = format!("/proc/{pid}/cgroup");
        let found = std::fs::read_to_string(&file)
            .map_err(|e| Error::io("read", &file, e))
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .map(|p| PathBuf::from(p.trim_end()))
                    .ok_or_else(|| {
                        Error::Container(format!(
                            "systemd cgroup driver: `{file}` names no cgroup v2 after the scope started (systemd on cgroup v1 is not supported)"
                        ))
                    })
            });
        if found.is_err() {
            self.abandon();
        }
        found
    }

    /// Stop the scope [`Scope::start`] made, after a later step of
    /// `create` failed (best effort: the caller reports that step's error).
    pub fn abandon(&mut self) {
        // Stopping sends SIGTERM and waits for the processes; the
        // container process waits for create and must die at once.
        let kill = manager_call(
            "KillUnit",
            vec![
                Value::Str(self.unit.name.clone()),
                Value::str("all"),
                Value::I32(libc::SIGKILL),
            ],
        );
        let _ = self.bus.call(&kill, TIMEOUT);
        let call = manager_call(
            "StopUnit",
            vec![Value::Str(self.unit.name.clone()), Value::str("replace")],
        );
        if let Err(e) = run_job(&mut self.bus, call) {
            if e.remote_name() != Some("org.freedesktop.systemd1.NoSuchUnit") {
                tracing::warn!("systemd cgroup driver: stop unit {}: {e}", self.unit.name);
            }
        }
    }
}

/// Stop `unit` (on the bus at `address`) and wait until it is gone; a
/// unit that is gone already is no error.
pub fn stop(address: &str, unit: &str) -> Result<()> {
    let mut bus = Bus::connect(address, TIMEOUT)
        .map_err(|e| bus_error(&format!("connect to the bus at `{address}`"), e))?;
    let step = format!("stop unit {unit}");
    let call = manager_call("StopUnit", vec![Value::str(unit), Value::str("replace")]);
    match run_job(&mut bus, call) {
        Ok(_) => {}
        Err(e) if e.remote_name() == Some("org.freedesktop.systemd1.NoSuchUnit") => {}
        Err(e) => return Err(bus_error(&step, e)),
    }
    // A scope that failed stays loaded until its failure is reset.
    let reset = manager_call("ResetFailedUnit", vec![Value::str(unit)]);
    match bus.call(&reset, TIMEOUT) {
        Ok(_) => {}
        Err(e) if e.remote_name() == Some("org.freedesktop.systemd1.NoSuchUnit") => {}
        Err(e) => return Err(bus_error(&format!("reset unit {unit}"), e)),
    }
    Ok(())
}

/// The scope systemd made for process `pid`: open its cgroup2 directory
/// and write there what systemd has no property for, enabling the
/// controllers that needs from the top of the tree down (as runc does).
pub fn start(
    mut scope: Scope,
    split: &Split,
    annotated: &[(String, Value)],
    id: &str,
    pid: i32,
) -> Result<v2::Cgroup> {
    let cgroup = scope.start(pid, id, &split.props, annotated)?;
    let opened = open_scope(&cgroup, split);
    if opened.is_err() {
        scope.abandon();
    }
    opened
}

/// Open the scope's cgroup2 directory and write there what systemd has
/// no property for; warn about the properties whose files are missing
/// (systemd keeps them, the kernel has nothing to enforce them with).
fn open_scope(cgroup: &Path, split: &Split) -> Result<v2::Cgroup> {
    let all = hier::mounted();
    let cgroup2 = all.iter().find(|h| h.fs == fs::Fs::V2);
    let dir = cgroup2.and_then(|h| h.dir_of(cgroup)).ok_or_else(|| {
        Error::Container(format!(
            "systemd cgroup driver: the scope's cgroup `{}` is not on a cgroup2 mount here",
            cgroup.display()
        ))
    })?;
    let fd = fs::open_cgroup(&dir, fs::Fs::V2)?;
    // Enabling goes down from the mount's root: every directory below it
    // down to the scope counts as one to enable in.
    let point = cgroup2.map(|h| h.point.clone()).unwrap_or_default();
    let chain: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|p| p.starts_with(&point) && *p != point)
        .map(Path::to_path_buf)
        .collect();
    // A controller in a v1 hierarchy (a hybrid host) is systemd's to set
    // there; one in no hierarchy at all enforces nothing.
    let in_v1 = |c: Option<&str>| {
        c.map(super::v1_name)
            .is_some_and(|c| all.iter().any(|h| h.has(c)))
    };
    let mut warned: Vec<&str> = Vec::new();
    for s in &split.as_props {
        if !dir.join(&s.file).exists()
            && !in_v1(s.controller())
            && !warned.contains(&s.field.as_str())
        {
            warned.push(&s.field);
            tracing::warn!(
                "{} is not enforced: systemd took it as a unit property, but cgroup `{}` has no file {} (no cgroup hierarchy here holds the {} controller)",
                s.field,
                dir.display(),
                s.file,
                s.controller().unwrap_or("?")
            );
        }
    }
    v2::setup(
        fs::Dir {
            fd,
            path: dir,
            made: chain,
        },
        &split.rest,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names() {
        let u = parse_path("system.slice:hutch:abc").unwrap();
        assert_eq!(
            (u.slice.as_str(), u.name.as_str()),
            ("system.slice", "hutch-abc.scope")
        );
        let u = parse_path("::abc").unwrap();
        assert_eq!((u.slice.as_str(), u.name.as_str()), ("", "abc.scope"));
        let u = parse_path("-:libpod:x").unwrap();
        assert_eq!(u.slice, "-.slice");
        assert!(parse_path("system.slice:hutch:").is_err());
        assert!(parse_path("a/b.slice:hutch:x").is_err());
        assert!(parse_path("system:hutch:x").is_err());
        assert!(parse_path("system.slice:hutch:x y").is_err());
        assert!(parse_path("system.slice:hutch:x.slice").is_err());
    }

    #[test]
    fn the_default_unit_needs_an_id_systemd_accepts() {
        assert_eq!(default_unit("a.b_c-1").unwrap().name, "hutch-a.b_c-1.scope");
        assert!(default_unit("a+b").is_err());
    }

    #[test]
    fn annotations_become_properties() {
        let a: std::collections::BTreeMap<String, String> = [
            ("org.systemd.property.TimeoutStopUSec", "uint64 15000000"),
            ("org.systemd.property.RuntimeMaxSec", "uint64 3"),
            ("org.systemd.property.CollectMode", "'inactive-or-failed'"),
            ("org.systemd.property.SendSIGKILL", "false"),
            ("org.systemd.property.Environment", "['A=1', 'B=2']"),
            ("org.systemd.property.Nice", "5"),
            ("io.other", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let got = annotation_properties(&a).unwrap();
        let get = |n: &str| got.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("TimeoutStopUSec"), Some(Value::U64(15_000_000)));
        assert_eq!(get("RuntimeMaxUSec"), Some(Value::U64(3_000_000)));
        assert_eq!(get("CollectMode"), Some(Value::str("inactive-or-failed")));
        assert_eq!(get("SendSIGKILL"), Some(Value::Bool(false)));
        assert_eq!(
            get("Environment"),
            Some(Value::Array(
                "s".into(),
                vec![Value::str("A=1"), Value::str("B=2")]
            ))
        );
        assert_eq!(get("Nice"), Some(Value::I32(5)));
        assert_eq!(got.len(), 6);
        for (k, v) in [
            ("org.systemd.property.PIDs", "uint32 1"),
            ("org.systemd.property.X", "[unclosed"),
            ("org.systemd.property.X", "float 1.5"),
            ("org.systemd.property.", "1"),
            ("org.systemd.property.A-B", "1"),
        ] {
            let one = [(k.to_string(), v.to_string())].into_iter().collect();
            assert!(annotation_properties(&one).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn masks() {
        assert_eq!(cpu_mask("0-1").unwrap(), [3]);
        assert_eq!(cpu_mask("0,9").unwrap(), [1, 2]);
        assert_eq!(cpu_mask("").unwrap(), Vec::<u8>::new());
        assert!(cpu_mask("3-1").is_none());
        assert!(cpu_mask("x").is_none());
    }

    #[test]
    fn settings_become_properties_or_files() {
        let s = |f: &str, v: &str| Setting::new("f", f, v);
        let Split { props, rest, .. } = properties(&[
            s("memory.max", "1048576"),
            s("pids.max", "max"),
            s("cpu.max", "50000 100000"),
            s("cpu.weight", "39"),
            s("cpuset.cpus", "0"),
            s("hugetlb.2MB.max", "0"),
            s("memory.max", "2097152"),
        ]);
        let get = |n: &str| props.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        assert_eq!(get("MemoryMax"), Some(Value::U64(2_097_152)));
        assert_eq!(get("TasksMax"), Some(Value::U64(u64::MAX)));
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(Value::U64(500_000)));
        assert_eq!(get("CPUQuotaPeriodUSec"), Some(Value::U64(100_000)));
        assert_eq!(get("CPUWeight"), Some(Value::U64(39)));
        assert_eq!(get("AllowedCPUs"), Some(bytes(vec![1])));
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].file, "hugetlb.2MB.max");
        let mut acc = accounting(&props);
        acc.sort();
        assert_eq!(
            acc,
            ["CPUAccounting", "MemoryAccounting", "TasksAccounting"]
        );
    }

    #[test]
    fn quota_rounds_up_to_ten_milliseconds() {
        let q = cpu_quota("12345 100000").unwrap();
        assert_eq!(q[0].1, Value::U64(130_000));
        assert_eq!(cpu_quota("max 100000").unwrap()[0].1, Value::U64(u64::MAX));
    }
}
