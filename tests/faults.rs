//! Faults and load: hutch SIGKILLed at each point of create, start and
//! delete (it stops itself there with HUTCH_TEST_PAUSE), operations racing
//! the container's exit, and many lifecycles at once. Afterwards `state`
//! must tell the truth and nothing may be left: no process, no entry.

mod common;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Pids of live processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// The parent of `pid`, from `/proc/PID/stat` (after the command's `)`).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit(')')
        .next()?
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Run `hutch ARGS` with the pause point set, wait until it stops there,
/// and SIGKILL it.
fn kill_at(b: &Bundle, point: &str, args: &[&str]) {
    let mut child = b
        .cmd(args)
        .env("HUTCH_TEST_PAUSE", point)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc_state(child.id()) != Some('T') {
        assert!(Instant::now() < deadline, "hutch never reached {point}");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("hutch exited ({status}) before reaching {point}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Wait until no process mentions the container's id.
fn no_process_left(b: &Bundle) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_mentioning(&b.id);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes left: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cleaned_up(b: &Bundle) {
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert!(
        b.state_entries().is_empty(),
        "left: {:?}",
        b.state_entries()
    );
    no_process_left(b);
}

fn create_args(b: &Bundle) -> Vec<String> {
    let dir = b.dir.to_str().unwrap().to_string();
    vec![
        "create".into(),
        "--bundle".into(),
        dir.clone(),
        "--pid-file".into(),
        format!("{dir}/pid"),
        b.id.clone(),
    ]
}

#[test]
fn create_killed_before_it_records_leaves_no_container() {
    become_subreaper();
    for point in [
        "create:staged",
        "create:reserved",
        "create:cloned",
        "create:ready",
    ] {
        let b = Bundle::new(&["/bin/sleep", "1000"]);
        let args = create_args(&b);
        kill_at(
            &b,
            point,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        // The dead create's entry is there, but not as a container.
        assert_eq!(b.state_entries().len(), 1, "{point}");
        // Nothing was recorded: the container does not exist, and its
        // process (if it was made) goes away by itself.
        assert!(b.state().is_none(), "{point}: {:?}", b.state());
        no_process_left(&b);
        // `list` collects what the dead create left (`state` of its id,
        // `create` and `delete` of any id do too).
        let out = b.hutch(&["list", "--quiet"]);
        assert_ok(&out);
        assert_eq!(text(&out.stdout), "", "{point}");
        assert!(
            b.state_entries().is_empty(),
            "{point}: left {:?}",
            b.state_entries()
        );
        cleaned_up(&b);
        // The id is free again.
        assert_ok(&b.create());
        assert_ok(&b.hutch(&["delete", "--force", &b.id]));
        assert_eq!(wait_exit(b.pid()), 137);
    }
}

/// Each operation that collects what a dead create left: `state` and
/// `delete` of its id, `create` and `delete` of another, `list`.
#[test]
fn what_a_dead_create_left_is_collected_by_the_next_operation() {
    become_subreaper();
    let other = |b: &Bundle| format!("{}-other", b.id);
    type Op = fn(&Bundle, &str) -> std::process::Output;
    let ops: [(&str, Op); 5] = [
        ("state", |b, _| b.hutch(&["state", &b.id])),
        ("delete", |b, _| b.hutch(&["delete", &b.id])),
        ("list", |b, _| b.hutch(&["list"])),
        ("create another", |b, other| {
            // The container keeps create's stdio: not pipes to wait on.
            let dir = b.dir.to_str().unwrap();
            let status = b
                .cmd(&["create", "--bundle", dir, other])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            std::process::Output {
                status,
                stdout: Vec::new(),
                stderr: Vec::new(),
            }
        }),
        ("delete another", |b, other| {
            b.hutch(&["delete", "--force", other])
        }),
    ];
    for (name, op) in ops {
        let b = Bundle::new(&["/bin/sleep", "1000"]);
        let args = create_args(&b);
        kill_at(
            &b,
            "create:cloned",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(b.state_entries(), vec![b.id.clone()], "{name}");
        no_process_left(&b);
        let other = other(&b);
        op(&b, &other);
        let left: Vec<String> = b
            .state_entries()
            .into_iter()
            .filter(|e| *e != other)
            .collect();
        assert!(left.is_empty(), "{name}: left {left:?}");
        assert_ok(&b.hutch(&["delete", "--force", &other]));
        cleaned_up(&b);
    }
}

/// The state directory may be a shared one (`--root=/tmp/`): a directory
/// there that is not hutch's is never touched, even when it has an id's
/// name and a `config.json` (a bundle).
#[test]
fn directories_that_are_not_entries_are_left_alone() {
    let b = Bundle::new(&["/bin/true"]);
    let foreign = b.state_dir().join("a-bundle");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("config.json"), "{}").unwrap();
    let dir = b.dir.to_str().unwrap();
    assert_ok(&b.hutch(&["list"]));
    assert_ok(&b.create());
    assert_one_line_error(&b.hutch(&["state", "a-bundle"]), "a-bundle");
    assert_ok(&b.hutch(&["delete", "--force", "a-bundle"]));
    assert_one_line_error(
        &b.hutch(&["create", "--bundle", dir, "a-bundle"]),
        "a-bundle",
    );
    assert_ok(&b.hutch(&["delete", "--force", &b.id]));
    assert_eq!(
        std::fs::read_to_string(foreign.join("config.json")).unwrap(),
        "{}"
    );
    assert_eq!(b.state_entries(), vec!["a-bundle".to_string()]);
}

#[test]
fn create_killed_after_it_records_leaves_a_stopped_container() {
    become_subreaper();
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    let args = create_args(&b);
    kill_at(
        &b,
        "create:saved",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    no_process_left(&b);
    assert_eq!(b.status(), "stopped");
    assert_one_line_error(&b.hutch(&["start", &b.id]), "stopped");
    cleaned_up(&b);
}

#[test]
fn start_killed_before_it_releases_leaves_a_created_container() {
    become_subreaper();
    let b = Bundle::new(&["/bin/sh", "-c", "exit 4"]);
    assert_ok(&b.create());
    kill_at(&b, "start:connected", &["start", &b.id]);
    assert_eq!(b.status(), "created");
    // The container is still startable.
    assert_ok(&b.hutch(&["start", &b.id]));
    assert_eq!(wait_exit(b.pid()), 4);
    cleaned_up(&b);
}

#[test]
fn start_killed_after_it_releases_leaves_a_running_container() {
    become_subreaper();
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    assert_ok(&b.create());
    kill_at(&b, "start:released", &["start", &b.id]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.status() != "running" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(b.status(), "running");
    let pid = b.pid();
    cleaned_up(&b);
    assert_eq!(wait_exit(pid), 137);
}

#[test]
fn delete_killed_half_way_leaves_a_stopped_container_to_delete_again() {
    become_subreaper();
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    assert_ok(&b.create());
    assert_ok(&b.hutch(&["start", &b.id]));
    let pid = b.pid();
    kill_at(&b, "delete:stopped", &["delete", "--force", &b.id]);
    assert_eq!(wait_exit(pid), 137);
    assert_eq!(b.status(), "stopped");
    cleaned_up(&b);
}

/// A delete killed once the entry has left its id: the id is free at
/// once, and what is left under the private name is collected.
#[test]
fn delete_killed_while_removing_leaves_the_id_free_and_nothing_for_long() {
    become_subreaper();
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    assert_ok(&b.create());
    let pid = b.pid();
    kill_at(&b, "remove:unnamed", &["delete", "--force", &b.id]);
    assert_eq!(wait_exit(pid), 137);
    let left = b.state_entries();
    assert!(
        left.len() == 1 && left[0].starts_with(".hutch-gone-"),
        "{left:?}"
    );
    assert!(b.state().is_none());
    assert_ok(&b.hutch(&["list"]));
    assert!(
        b.state_entries().is_empty(),
        "left: {:?}",
        b.state_entries()
    );
    assert_ok(&b.create());
    cleaned_up(&b);
}

#[test]
fn state_kill_and_delete_racing_the_exit_give_true_answers() {
    become_subreaper();
    for _ in 0..10 {
        let b = Bundle::new(&["/bin/true"]);
        assert_ok(&b.create());
        assert_ok(&b.hutch(&["start", &b.id]));
        // The program exits at any moment now; every answer must be one
        // of the true ones.
        let kill = b.hutch(&["kill", &b.id, "KILL"]);
        assert!(
            kill.status.success() || text(&kill.stderr).contains("stopped"),
            "{}",
            text(&kill.stderr)
        );
        let s = b.status();
        assert!(s == "running" || s == "stopped", "{s}");
        let code = wait_exit(b.pid());
        assert!(code == 0 || code == 137, "{code}");
        assert_eq!(b.status(), "stopped");
        assert_ok(&b.hutch(&["delete", &b.id]));
    }
}

/// `HUTCH_LOAD_TOTAL` lifecycles, `HUTCH_LOAD_PARALLEL` at a time (100
/// and 20 by default; the 500 and 50 is
/// `HUTCH_LOAD_TOTAL=500 HUTCH_LOAD_PARALLEL=50 cargo test --test faults many`).
#[test]
fn many_lifecycles_at_once_all_succeed_and_leave_nothing() {
    let total: usize = std::env::var("HUTCH_LOAD_TOTAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let parallel: usize = std::env::var("HUTCH_LOAD_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let b = Bundle::new(&["/bin/sh", "-c", "echo hi"]);
    let dir = b.dir.to_str().unwrap().to_string();
    let mut running: Vec<(String, std::process::Child)> = Vec::new();
    let mut failures = Vec::new();
    let mut next = 0;
    while next < total || !running.is_empty() {
        while running.len() < parallel && next < total {
            let id = format!("{}-load-{next}", b.id);
            let child = b
                .cmd(&["run", "--bundle", &dir, &id])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            running.push((id, child));
            next += 1;
        }
        let (id, child) = running.remove(0);
        let out = child.wait_with_output().unwrap();
        if !out.status.success() || text(&out.stdout) != "hi\n" {
            failures.push(format!("{id}: {:?} {}", out.status, text(&out.stderr)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        b.state_entries().is_empty(),
        "left: {:?}",
        b.state_entries()
    );
    assert!(processes_mentioning(&format!("{}-load-", b.id)).is_empty());
}

#[test]
fn a_created_container_survives_the_callers_process_group_being_killed() {
    // Slurm kills create's process group once create returns.
    use std::os::unix::process::CommandExt;
    become_subreaper();
    let b = Bundle::new(&["/bin/sh", "-c", "exit 5"]);
    let args = create_args(&b);
    let mut create = b.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let status = create
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let pgid = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(b.pid()))).unwrap();
    assert_eq!(
        pgid.as_raw(),
        b.pid(),
        "the container process leads its own session"
    );
    assert_eq!(b.status(), "created");
    assert_ok(&b.hutch(&["start", &b.id]));
    assert_eq!(wait_exit(b.pid()), 5);
    cleaned_up(&b);
}

#[test]
fn a_container_dies_with_a_sigkilled_run() {
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    let dir = b.dir.to_str().unwrap().to_string();
    let mut run = b
        .cmd(&["run", "--bundle", &dir, &b.id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Some(s) = b.state().filter(|s| s["status"] == "running") {
            break s["pid"].as_i64().unwrap() as i32;
        }
        assert!(Instant::now() < deadline, "never running");
        std::thread::sleep(Duration::from_millis(10));
    };
    run.kill().unwrap();
    run.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(pid), "the container outlived its run");
    assert_eq!(b.status(), "stopped");
    cleaned_up(&b);
}

/// A small deterministic generator (xorshift64*): the run's seed is
/// printed, and `HUTCH_CRASH_SEED` replays it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const STEPS: [&str; 3] = ["create", "start", "delete"];

fn spawn_step(b: &Bundle, id: &str, step: usize) -> std::process::Child {
    let dir = b.dir.to_str().unwrap();
    let args: Vec<&str> = match STEPS[step] {
        "create" => vec!["create", "--bundle", dir, id],
        "start" => vec!["start", id],
        _ => vec!["delete", "--force", id],
    };
    b.cmd(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// How long each step takes here, on average so far (root's create
/// re-executes a sealed copy, a debug binary is slow, the load varies).
struct Durations(std::sync::Mutex<[Duration; 3]>);

impl Durations {
    fn of(&self, step: usize) -> Duration {
        self.0.lock().unwrap()[step]
    }
    fn add(&self, step: usize, took: Duration) {
        let mut d = self.0.lock().unwrap();
        d[step] = (d[step] * 7 + took) / 8;
    }
}

/// One caller's lifecycle: create, start, delete --force, each a hutch
/// command. A doomed caller is SIGKILLed at a random moment of one of
/// them, drawn from that step's usual duration so that the kills land all
/// through it, and does nothing more (as a job killed by its scheduler).
/// Returns the step it was killed in.
fn lifecycle(b: &Bundle, id: &str, rng: &mut Rng, took: &Durations) -> Option<usize> {
    let doom = (rng.below(5) == 0).then(|| rng.below(3) as usize);
    for step in 0..STEPS.len() {
        let began = Instant::now();
        let at = (doom == Some(step)).then(|| {
            let span = (took.of(step).as_micros() as u64 * 5 / 4).max(1);
            began + Duration::from_micros(rng.below(span))
        });
        let mut child = spawn_step(b, id, step);
        loop {
            if child.try_wait().unwrap().is_some() {
                took.add(step, began.elapsed());
                break;
            }
            if at.is_some_and(|at| Instant::now() >= at) {
                let _ = child.kill();
                let _ = child.wait();
                return Some(step);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    None
}

/// Issue 11: `HUTCH_CRASH_TOTAL` lifecycles (100 by default),
/// `HUTCH_CRASH_PARALLEL` at a time (10), about a fifth of the callers
/// SIGKILLed at a random moment of create, start or delete. Afterwards
/// every entry of the state directory is one `list` shows with a true
/// status (the rest were collected), and once those are deleted nothing
/// is left: no entry, no process. The scale is
/// `HUTCH_CRASH_TOTAL=500 HUTCH_CRASH_PARALLEL=50 cargo test --test faults killed_callers`.
#[test]
fn killed_callers_leave_nothing_silent() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let total = env("HUTCH_CRASH_TOTAL", 100) as usize;
    let parallel = env("HUTCH_CRASH_PARALLEL", 10) as usize;
    let seed = env(
        "HUTCH_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    eprintln!("HUTCH_CRASH_SEED={seed}");
    // The program is marked so that a stray one can be found afterwards.
    let marker = format!("1000.{}", std::process::id());
    let b = Bundle::new(&["/bin/sleep", &marker]);
    let prefix = format!("{}-crash-", b.id);
    let next = AtomicUsize::new(0);
    let killed: [AtomicUsize; 3] = Default::default();
    let took = Durations(std::sync::Mutex::new([Duration::from_millis(20); 3]));
    std::thread::scope(|s| {
        for _ in 0..parallel {
            s.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let mut rng = Rng((seed ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
                if let Some(step) = lifecycle(&b, &format!("{prefix}{n}"), &mut rng, &took) {
                    killed[step].fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let killed = killed.map(|k| k.into_inner());
    eprintln!(
        "{total} lifecycles, {parallel} at a time: callers killed in create {}, start {}, \
         delete {} (steps took {:?} on average)",
        killed[0],
        killed[1],
        killed[2],
        took.0.lock().unwrap()
    );

    let before = b.state_entries();
    let bare = before
        .iter()
        .filter(|e| !b.state_dir().join(e).join("state.json").exists())
        .count();
    eprintln!(
        "before list: {} entries, {bare} of them without a record",
        before.len()
    );
    // What `list` shows is all there is, and it is true.
    let out = b.hutch(&["list", "--format", "json"]);
    assert_ok(&out);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let listed_ids: Vec<String> = listed
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    let entries = b.state_entries();
    let silent: Vec<&String> = entries.iter().filter(|e| !listed_ids.contains(e)).collect();
    let mut by_status = std::collections::BTreeMap::<String, usize>::new();
    let mut untrue = Vec::new();
    let mut theirs = Vec::new();
    for c in &listed {
        let id = c["id"].as_str().unwrap();
        let out = b.hutch(&["state", id]);
        let Ok(s) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            untrue.push(format!("list shows {id}, state does not"));
            continue;
        };
        let status = s["status"].as_str().unwrap().to_string();
        if status != "stopped" {
            let pid = s["pid"].as_i64().unwrap() as i32;
            if !alive(pid) {
                untrue.push(format!("{id}: {s}"));
            }
            theirs.push(pid);
        }
        *by_status.entry(status).or_default() += 1;
    }
    eprintln!(
        "left: {} entries, {} of them shown by list: {by_status:?}",
        entries.len(),
        listed.len()
    );
    // Every process of the run still there is the process of a container
    // `list` shows: no container process of a create that died lingers.
    let deadline = Instant::now() + Duration::from_secs(10);
    let strays = loop {
        let mut left = processes_mentioning(&prefix);
        left.extend(processes_mentioning(&marker));
        // A container's root-emulation supervisor (a single-id user
        // namespace) is its process's child: it belongs to that container.
        left.retain(|p| {
            !theirs.contains(p) && !parent_of(*p).is_some_and(|pp| theirs.contains(&pp))
        });
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for id in &listed_ids {
        assert_ok(&b.hutch(&["delete", "--force", id]));
    }
    assert!(
        silent.is_empty(),
        "{} entries that list does not show: {:?}",
        silent.len(),
        &silent[..silent.len().min(10)]
    );
    assert!(untrue.is_empty(), "{untrue:?}");
    assert!(strays.is_empty(), "stray processes: {strays:?}");
    assert!(
        b.state_entries().is_empty(),
        "left: {:?}",
        b.state_entries()
    );
    // Nothing of the run is left: no hutch, no container process, no
    // program.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut left = processes_mentioning(&prefix);
        left.extend(processes_mentioning(&marker));
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes left: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Where cgroup2 is mounted, from this process's mountinfo.
fn cgroup2_root() -> std::path::PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in info.lines() {
        let (left, right) = line.split_once(" - ").unwrap();
        if right.starts_with("cgroup2 ") {
            return left.split_whitespace().nth(4).unwrap().into();
        }
    }
    panic!("no cgroup2 mount in /proc/self/mountinfo");
}

/// In a shared state directory an entry's owner writes its files: root
/// collecting another user's dead entry removes the cgroups it names as
/// that user, so a forged entry cannot make root remove (or kill) a cgroup
/// that is not the user's. (As a plain user the forged entry is the
/// user's own, naming the cgroup2 root, which the user cannot touch.)
#[test]
fn a_forged_dead_entry_cannot_make_its_collector_remove_a_cgroup() {
    use std::os::unix::fs::chown;
    let b = Bundle::new(&["/bin/true"]);
    assert_ok(&b.hutch(&["list"]));
    let victim = if who() == Who::Root {
        let v = cgroup2_root().join(format!("hutch-victim-{}", std::process::id()));
        std::fs::create_dir(&v).unwrap();
        v
    } else {
        cgroup2_root()
    };
    let entry = b.state_dir().join("forged");
    std::fs::create_dir(&entry).unwrap();
    std::fs::write(entry.join(".hutch-entry"), "").unwrap();
    let doc = json_text(&victim);
    std::fs::write(entry.join("cgroup.json"), doc).unwrap();
    if who() == Who::Root {
        for p in [
            entry.join(".hutch-entry"),
            entry.join("cgroup.json"),
            entry.clone(),
        ] {
            chown(&p, Some(65534), Some(65534)).unwrap();
        }
    }
    let out = b.hutch(&["list"]);
    assert_ok(&out);
    assert!(!entry.exists(), "the dead entry was not collected");
    let there = victim.exists();
    if who() == Who::Root {
        let _ = std::fs::remove_dir(&victim);
    }
    assert!(there, "{} was removed", victim.display());
}

fn json_text(cgroup: &std::path::Path) -> String {
    serde_json::json!({"cgroup": cgroup, "made": [cgroup]}).to_string()
}
