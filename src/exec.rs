//! `exec`: run another program in a running container.
//!
//! The process joins the container's namespaces (the user namespace first:
//! the others belong to it), forks so that the new process is inside the
//! pid namespace, and goes through the same process setup as the
//! container's own program: terminal, limits, identity and capabilities,
//! seccomp, working directory, close-on-exec of every other fd, execvp.
//! The config it starts from is the copy `create` kept, with the process
//! replaced (`--process`) or adjusted (arguments, env, cwd, user).

use std::convert::Infallible;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::container::Globals;
use crate::error::{Error, Result};
use crate::process;
use crate::seccomp;
use crate::spec::{self, Plan};
use crate::state::{self, Status};
use crate::sync::{self, Msg};
use crate::sys::{self, Forked};

/// What `exec` runs, from the command line.
#[derive(Default)]
pub struct ExecOptions {
    /// A JSON `process` object replacing the config's.
    pub process: Option<PathBuf>,
    /// The program and its arguments (when no `--process`).
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// `UID[:GID]`.
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// The namespaces a joining process enters, in this order.
const NAMESPACES: [(&str, CloneFlags); 8] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("time", crate::ns::CLONE_NEWTIME),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Run `exec`; the exit status of the program (0 with `--detach`).
pub fn exec(g: &Globals, id: &str, opts: &ExecOptions) -> Result<i32> {
    let entry = crate::container::open_acting(g, id)?;
    let (record, status) = entry.status()?;
    if status != Status::Running && status != Status::Created {
        return Err(Error::WrongState {
            id: id.to_string(),
            op: "exec in",
            status: status.as_str(),
        });
    }
    let plan = exec_plan(&entry.load_config()?, &record.bundle, opts, g)?;
    crate::exe::protect(&plan, g.host)?;
    if plan.process.terminal && opts.console_socket.is_none() {
        return Err(Error::Usage("--tty needs --console-socket".into()));
    }
    // Everything that names a host path is opened before the namespaces
    // are joined: afterwards the host's paths are gone.
    let console = match &opts.console_socket {
        Some(path) if plan.process.terminal => Some(
            sync::connect_console(path)
                .map_err(|e| Error::sys("connect to console socket", path, e))?,
        ),
        _ => None,
    };
    let pid_file = opts
        .pid_file
        .as_deref()
        .map(state::PidFile::prepare)
        .transpose()?;
    // Compiled while the state directory (its cache) is still in reach.
    let compiled = plan
        .seccomp
        .as_ref()
        .map(|p| seccomp::compile(p, &g.root))
        .transpose()?;
    let rootemu = plan
        .root_emulation
        .then(|| crate::rootemu::of_process(&record.pid.to_string()))
        .flatten()
        .map(|ids| {
            Ok::<_, Error>((
                seccomp::compile_uncached(&crate::rootemu::filter(ids))?,
                ids,
            ))
        })
        .transpose()?;
    // The container's cgroup, opened while the host's paths are in reach:
    // the process is cloned into it.
    let cgroup = match (entry.load_cgroup(), g.cgroups_disabled) {
        (Some(record), false) => Some(crate::cgroup::reopen(&record)?),
        _ => None,
    };
    let mut namespaces = open_namespaces(record.pid)?;
    // With a cgroup to clone into, the process joins the cgroup namespace
    // itself, after the clone: the kernel may refuse to move it into a
    // cgroup outside its creator's cgroup namespace (nsdelegate).
    let late_cgroupns = match &cgroup {
        Some(_) => namespaces
            .iter()
            .position(|(kind, ..)| *kind == "cgroup")
            .map(|i| namespaces.remove(i).2),
        None => None,
    };
    if !state::is_alive(&record) {
        return Err(Error::WrongState {
            id: id.to_string(),
            op: "exec in",
            status: "stopped",
        });
    }
    // No process of the container may look into this one while it still
    // runs hutch (its memory, its /proc/PID/exe).
    // oom_score_adj is inherited by the process forked below. Written here,
    // while /proc/self is still this process's own: once undumpable and in
    // the container's user namespace, a plain user may no longer open it.
    if let Some(adj) = plan.process.oom_score_adj {
        process::set_oom_score_adj(adj)?;
    }
    nix::sys::prctl::set_dumpable(false).map_err(|e| Error::call("make hutch undumpable", e))?;
    // The container's session keyring (`create` made it in this user
    // namespace, named after the container), not the caller's.
    crate::container::join_keyring(id)?;
    for (kind, flag, file) in &namespaces {
        nix::sched::setns(file.as_fd(), *flag)
            .map_err(|e| Error::call(format!("join the container's {kind} namespace"), e))?;
    }
    let (parent_sock, child_sock) =
        sync::pair().map_err(|e| Error::call("make a socket pair", e))?;
    // Block the signals to pass on before the process exists, so none is
    // lost; it unblocks them before execve.
    let mut blocked = crate::container::forwarded_signals();
    blocked.add(Signal::SIGCHLD);
    if !opts.detach {
        blocked
            .thread_block()
            .map_err(|e| Error::call("block signals", e))?;
    }
    let forked = match cgroup.as_ref().and_then(crate::cgroup::Cgroup::clone_into) {
        Some(dir) => sys::clone_process_into(CloneFlags::empty(), dir),
        None => sys::clone_process(CloneFlags::empty()),
    };
    let pid = match forked.map_err(|e| Error::call("fork the exec process", e))? {
        Forked::Child => {
            drop(parent_sock);
            // Into the v1 hierarchies (through files opened before the
            // namespaces were joined) before anything else.
            let entered = match &cgroup {
                Some(cg) => cg.enter(0),
                None => Ok(()),
            };
            let joined = entered.and_then(|()| match &late_cgroupns {
                Some(ns) => nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWCGROUP)
                    .map_err(|e| Error::call("join the container's cgroup namespace", e)),
                None => Ok(()),
            });
            let err = match joined
                .and_then(|()| child(&plan, compiled, rootemu, console, opts.preserve_fds, id))
            {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let _ = sync::send(child_sock.as_fd(), &Msg::Error(err.to_string()));
            sys::exit_now(process::failure_status(&err));
        }
        Forked::Parent(pid) => pid,
    };
    drop(child_sock);
    match sync::recv(parent_sock.as_fd()) {
        Ok(None) => {}
        Ok(Some(Msg::Error(text))) => {
            let _ = waitpid(pid, None);
            return Err(Error::Container(text));
        }
        Ok(Some(other)) => {
            return Err(Error::Container(format!(
                "unexpected message {other:?} from the exec process"
            )))
        }
        Err(e) => return Err(Error::call("wait for the exec process", e)),
    }
    if let Some(f) = &pid_file {
        f.write(pid)?;
    }
    if opts.detach {
        return Ok(0);
    }
    crate::container::wait_forwarding(pid, &blocked)
}

/// The plan of the joining process: the container's config with its
/// process replaced or adjusted.
fn exec_plan(
    config: &[u8],
    bundle: &std::path::Path,
    opts: &ExecOptions,
    g: &Globals,
) -> Result<Plan> {
    let mut v: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| Error::Config(e.to_string()))?;
    if let Some(path) = &opts.process {
        let text = crate::input::read(path, crate::input::Follow::Yes)?;
        let p: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| Error::Usage(format!("--process `{}`: {e}", path.display())))?;
        v["process"] = p;
    } else {
        if opts.args.is_empty() {
            return Err(Error::Usage("exec needs a command, or --process".into()));
        }
        let p = &mut v["process"];
        p["args"] = serde_json::json!(opts.args);
        p["terminal"] = serde_json::json!(opts.tty);
        let mut env = p["env"].as_array().cloned().unwrap_or_default();
        env.extend(opts.env.iter().map(|e| serde_json::json!(e)));
        p["env"] = serde_json::Value::Array(env);
        if let Some(cwd) = &opts.cwd {
            p["cwd"] = serde_json::json!(cwd);
        }
        if let Some(user) = &opts.user {
            let (uid, gid) = match user.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (user.as_str(), None),
            };
            let num = |s: &str| {
                s.parse::<u32>()
                    .map_err(|_| Error::Usage(format!("--user `{user}`: use UID[:GID]")))
            };
            p["user"]["uid"] = serde_json::json!(num(uid)?);
            if let Some(g) = gid {
                p["user"]["gid"] = serde_json::json!(num(g)?);
            }
        }
        if !opts.additional_gids.is_empty() {
            p["user"]["additionalGids"] = serde_json::json!(opts.additional_gids);
        }
        if opts.no_new_privs {
            p["noNewPrivileges"] = serde_json::json!(true);
        }
        for cap in &opts.caps {
            let cap = if cap.starts_with("CAP_") {
                cap.clone()
            } else {
                format!("CAP_{cap}")
            };
            for set in ["bounding", "effective", "permitted"] {
                let list = &mut p["capabilities"][set];
                if !list.as_array().is_some_and(|l| l.iter().any(|c| c == &cap)) {
                    let mut l = list.as_array().cloned().unwrap_or_default();
                    l.push(serde_json::json!(cap));
                    *list = serde_json::Value::Array(l);
                }
            }
        }
    }
    let spec: oci_spec::runtime::Spec =
        serde_json::from_value(v).map_err(|e| Error::Config(e.to_string()))?;
    spec::plan(&spec, bundle, g.host)
}

/// Open the container process's namespaces that differ from hutch's own.
fn open_namespaces(pid: Pid) -> Result<Vec<(&'static str, CloneFlags, File)>> {
    let mut out = Vec::new();
    for (kind, flag) in NAMESPACES {
        let theirs = PathBuf::from(format!("/proc/{}/ns/{kind}", pid.as_raw()));
        let ours = PathBuf::from(format!("/proc/self/ns/{kind}"));
        let differs = match (std::fs::read_link(&theirs), std::fs::read_link(&ours)) {
            (Ok(a), Ok(b)) => a != b,
            (Err(e), _) => return Err(Error::io("read namespace", &theirs, e)),
            (Ok(_), Err(_)) => true,
        };
        if differs {
            out.push((
                kind,
                flag,
                File::open(&theirs).map_err(|e| Error::io("open namespace", &theirs, e))?,
            ));
        }
    }
    Ok(out)
}

/// The joining process, inside the container's namespaces (the mount
/// namespace's root is the container's root).
fn child(
    plan: &Plan,
    compiled: Option<seccomp::Compiled>,
    rootemu: Option<(seccomp::Compiled, crate::rootemu::Single)>,
    console: Option<OwnedFd>,
    preserve_fds: u32,
    id: &str,
) -> Result<Infallible> {
    let p = &plan.process;
    nix::unistd::setsid().map_err(|e| Error::call("start a new session", e))?;
    if let Some(sock) = console {
        let (master, slave_path) =
            sys::open_pty().map_err(|e| Error::call("open a pty in the container", e))?;
        let slave = nix::fcntl::open(
            &slave_path,
            nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::sys("open pty", &slave_path, e))?;
        let payload = serde_json::json!({"type": "terminal", "container": id}).to_string();
        sync::send_fd(sock.as_fd(), &master, &payload)
            .map_err(|e| Error::call("send the pty to the console socket", e))?;
        process::attach_terminal(&slave, p.console_size)?;
    }
    process::set_memory_policy(plan.memory_policy.as_ref())?;
    let setgroups_allowed = crate::container::setgroups_allowed_here();
    crate::init::become_program(
        p,
        compiled.as_ref(),
        rootemu.as_ref(),
        setgroups_allowed,
        preserve_fds,
        || Ok(()),
    )
}
