#!/usr/bin/python3
"""Measure OCI runtimes side by side; integration/bench.sh runs this as a
plain user (it is not a test and asserts nothing about speed).

    bench-harness.py --out RAW.json --work DIR --bundle B --sleep-bundle S \
        --runtime hutch=PATH --runtime crun=PATH --runtime runc=PATH [--phases ...]

Every runtime invocation is started with posix_spawn and timed from just
before the spawn to the moment wait4() returns it. Peak memory is measured
separately, under GNU time (see phase_memory). The runtimes take turns: in each round every runtime does the measure once, in an order
rotated each round, so drift in machine load hits all of them alike.

This process makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), as
buildah does: a container whose `create` has exited is re-parented here,
and the lifecycle measure waits for its exit with wait4 on the pid from
--pid-file. All waiting goes through one wait4(-1) loop that records every
child it reaps, so adopted container processes never linger as zombies
(runc's `delete` of a zombie would otherwise wait for it).

Python standard library only.
"""

import argparse
import ctypes
import json
import os
import platform
import shutil
import sys
import time

PR_SET_CHILD_SUBREAPER = 36

# --------------------------------------------------------------- processes

REAPED = {}  # pid -> (wait status, rusage, perf_counter_ns at reap)


class Failed(Exception):
    pass


def cpu_ms(ru):
    return (ru.ru_utime + ru.ru_stime) * 1000


def reap_until(pid):
    """Reap children (any of them) until `pid` is reaped; return its record."""
    while pid not in REAPED:
        p, status, ru = os.wait4(-1, 0)
        REAPED[p] = (status, ru, time.perf_counter_ns())
    return REAPED.pop(pid)


def forget_reaped():
    REAPED.clear()


class Io:
    """The fds a runtime invocation gets: stdin /dev/null, stdout a file we
    can read back, stderr a log file per runtime."""

    def __init__(self, work):
        self.work = work
        self.null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self.out_path = os.path.join(work, "stdout")
        self.logs = {}

    def log_fd(self, name):
        if name not in self.logs:
            self.logs[name] = os.open(os.path.join(self.work, f"stderr-{name}.log"),
                                      os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        return self.logs[name]


IO = None
ENV = dict(os.environ)


def call(name, argv, check=True, want_out=False):
    """Run argv; return (wall ms, CPU ms, exit code, stdout text or None).
    CPU is user + system time of the process and the children it waited
    for (wait4's rusage), which load on the machine disturbs less than
    wall time."""
    out = os.open(IO.out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    err = IO.log_fd(name)
    actions = [(os.POSIX_SPAWN_DUP2, IO.null, 0), (os.POSIX_SPAWN_DUP2, out, 1),
               (os.POSIX_SPAWN_DUP2, err, 2)]
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, ENV, file_actions=actions)
    REAPED.pop(pid, None)  # a stale record of an earlier process with this pid
    status, ru, t1 = reap_until(pid)
    os.close(out)
    code = os.waitstatus_to_exitcode(status)
    text = None
    if want_out or (check and code != 0):
        with open(IO.out_path, errors="replace") as f:
            text = f.read()
    if check and code != 0:
        tail = ""
        try:
            with open(os.path.join(IO.work, f"stderr-{name}.log"), errors="replace") as f:
                tail = "".join(f.readlines()[-5:])
        except OSError:
            pass
        raise Failed(f"{' '.join(argv)}: exit {code}\n{text}{tail}")
    return (t1 - t0) / 1e6, cpu_ms(ru), code, text


# --------------------------------------------------------------- runtimes

class Runtime:
    def __init__(self, name, path, work):
        self.name = name
        self.path = path
        self.work = work
        self.seq = 0

    def root(self, tag):
        d = os.path.join(self.work, f"root-{self.name}-{tag}")
        os.makedirs(d, mode=0o700, exist_ok=True)
        return d

    def cid(self, tag):
        self.seq += 1
        return f"{tag}-{self.seq}"

    def do(self, root, *args, check=True, want_out=False):
        return call(self.name, [self.path, "--root", root, *args], check=check, want_out=want_out)

    def create(self, root, bundle, cid):
        pidfile = os.path.join(self.work, f"pid-{self.name}")
        try:
            os.unlink(pidfile)
        except FileNotFoundError:
            pass
        ms, cpu, _, _ = self.do(root, "create", "--bundle", bundle, "--pid-file", pidfile, cid)
        with open(pidfile) as f:
            pid = int(f.read().strip())
        # The container process is alive (it waits for start): any record
        # of this pid is of an earlier process.
        REAPED.pop(pid, None)
        return ms, cpu, pid

    def wait_exit(self, pid):
        """Wait for the container process like buildah: as its subreaper."""
        t0 = time.perf_counter_ns()
        status, ru, t1 = reap_until(pid)
        return max(0.0, (t1 - t0) / 1e6), os.waitstatus_to_exitcode(status), cpu_ms(ru)


# --------------------------------------------------------------- measures

class Recorder:
    def __init__(self):
        self.data = {}

    def add(self, measure, rt, ms, rss=None, cpu=None):
        m = self.data.setdefault(measure, {}).setdefault(rt, {"ms": [], "rss_kb": [], "cpu_ms": []})
        m["ms"].append(round(ms, 4))
        if rss is not None:
            m["rss_kb"].append(rss)
        if cpu is not None:
            m["cpu_ms"].append(round(cpu, 3))


def rotated(rts, i):
    k = i % len(rts)
    return rts[k:] + rts[:k]


def say(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


def phase_basic(args, rts, rec):
    """Baseline process start, lifecycle of /bin/true, run of /bin/true."""
    total = args.warmup + args.rounds
    say(f"lifecycle and run: {args.rounds} rounds (+{args.warmup} warm-up), "
        f"order rotated each round")
    roots = {rt.name: rt.root("basic") for rt in rts}
    for i in range(total):
        keep = i >= args.warmup
        # a bare process start, the floor of any runtime invocation
        ms, cpu, _, _ = call("bare", ["/bin/true"])
        if keep:
            rec.add("bare", "true", ms, cpu=cpu)
        for rt in rotated(rts, i):
            root = roots[rt.name]
            forget_reaped()
            cid = rt.cid("lc")
            t0 = time.perf_counter_ns()
            c_ms, c_cpu, pid = rt.create(root, args.bundle, cid)
            s_ms, s_cpu, _, _ = rt.do(root, "start", cid)
            w_ms, code, w_cpu = rt.wait_exit(pid)
            d_ms, d_cpu, _, _ = rt.do(root, "delete", cid)
            total_ms = (time.perf_counter_ns() - t0) / 1e6
            if code != 0:
                raise Failed(f"{rt.name}: /bin/true exited {code}")
            if keep:
                # CPU: the runtime calls, and the container process (its
                # start path and /bin/true), reaped here
                rec.add("lifecycle", rt.name, total_ms, cpu=c_cpu + s_cpu + w_cpu + d_cpu)
                rec.add("lifecycle.create", rt.name, c_ms, cpu=c_cpu)
                rec.add("lifecycle.start", rt.name, s_ms, cpu=s_cpu)
                rec.add("lifecycle.wait", rt.name, w_ms, cpu=w_cpu)
                rec.add("lifecycle.delete", rt.name, d_ms, cpu=d_cpu)
        for rt in rotated(rts, i + 1):
            forget_reaped()
            ms, cpu, code, _ = rt.do(roots[rt.name], "run", "--bundle", args.bundle, rt.cid("run"), check=False)
            if code != 0:
                raise Failed(f"{rt.name} run: exit {code}")
            if keep:
                rec.add("run", rt.name, ms, cpu=cpu)


def fill_state_dir(rt, root, n, bundle):
    """Put n stopped entries into root: one real stopped container of this
    runtime, copied n times with the id rewritten, then the real one
    deleted. Only regular files are copied (no sockets)."""
    tmpl = "filltemplate00"
    _, _, pid = rt.create(root, bundle, tmpl)
    rt.do(root, "start", tmpl)
    rt.wait_exit(pid)
    src = os.path.join(root, tmpl)
    files = []
    for name in os.listdir(src):
        p = os.path.join(src, name)
        if os.path.isfile(p) and not os.path.islink(p):
            with open(p, "rb") as f:
                files.append((name, f.read(), os.stat(p).st_mode & 0o7777))
    mode = os.stat(src).st_mode & 0o7777
    for i in range(n):
        cid = f"fill{i:010d}"  # same length as the template's id
        d = os.path.join(root, cid)
        os.mkdir(d, mode)
        for name, data, fmode in files:
            fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, fmode)
            os.write(fd, data.replace(tmpl.encode(), cid.encode()))
            os.close(fd)
    rt.do(root, "delete", tmpl)


def start_sleeper(rt, root, bundle, cid):
    _, _, pid = rt.create(root, bundle, cid)
    rt.do(root, "start", cid)
    return pid


def stop_sleeper(rt, root, cid, pid):
    rt.do(root, "kill", cid, "KILL", check=False)
    rt.wait_exit(pid)
    rt.do(root, "delete", cid, check=False)


def phase_state(args, rts, rec):
    """`state` of one running container, alone in its state directory and
    beside args.state_entries stopped entries."""
    say(f"state: filling a state directory with {args.state_entries} entries per runtime")
    setups = {}
    for rt in rts:
        small, big = rt.root("state1"), rt.root("state10k")
        t0 = time.monotonic()
        fill_state_dir(rt, big, args.state_entries, args.bundle)
        say(f"  {rt.name}: {len(os.listdir(big))} entries in {time.monotonic() - t0:.1f} s")
        c1, c2 = "sleeper-a", "sleeper-b"
        p1 = start_sleeper(rt, small, args.sleep_bundle, c1)
        p2 = start_sleeper(rt, big, args.sleep_bundle, c2)
        for root, cid in ((small, c1), (big, c2)):
            _, _, _, out = rt.do(root, "state", cid, want_out=True)
            status = json.loads(out).get("status")
            if status != "running":
                raise Failed(f"{rt.name} state {cid}: status {status}, want running")
        setups[rt.name] = (small, big, c1, c2, p1, p2)
    total = args.warmup + args.rounds
    say(f"state: {args.rounds} rounds")
    for i in range(total):
        keep = i >= args.warmup
        for rt in rotated(rts, i):
            small, big, c1, c2, _, _ = setups[rt.name]
            for measure, root, cid in (("state", small, c1), ("state_10k", big, c2)):
                ms, cpu, _, _ = rt.do(root, "state", cid)
                if keep:
                    rec.add(measure, rt.name, ms, cpu=cpu)
    for rt in rts:
        small, big, c1, c2, p1, p2 = setups[rt.name]
        stop_sleeper(rt, small, c1, p1)
        stop_sleeper(rt, big, c2, p2)
        shutil.rmtree(big, ignore_errors=True)
        shutil.rmtree(small, ignore_errors=True)
    forget_reaped()


def median(xs):
    s = sorted(xs)
    n = len(s)
    return (s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2) if n else None


def phase_scale(args, rts, rec):
    """N containers alive at once (each running sleep): per container,
    create, start, state, list, kill and delete."""
    scale = {}
    for n in args.scale:
        scale[str(n)] = {}
        for rt in rotated(rts, n):
            root = rt.root(f"scale{n}")
            alive = []
            try:
                scale[str(n)][rt.name] = scale_one(args, rt, root, n, alive)
            except Failed as e:
                # e.g. runc at some hundred containers: "unable to create
                # session key: disk quota exceeded" (kernel.keys.maxkeys)
                msg = str(e).strip().splitlines()
                say(f"  scale {n:>4} {rt.name:<6} FAILED after {len(alive)} containers: {msg[-1] if msg else e}")
                scale[str(n)][rt.name] = {"failed": f"after {len(alive)} containers: {msg[-1] if msg else e}"}
                for cid, pid in alive:
                    rt.do(root, "delete", "--force", cid, check=False)
                forget_reaped()
            shutil.rmtree(root, ignore_errors=True)
    rec.data["_scale"] = scale


def scale_one(args, rt, root, n, alive):
    """One runtime at one size; `alive` is kept up to date for the caller's cleanup."""
    t_phase = time.monotonic()
    creates, starts, states, lists, kills, deletes = [], [], [], [], [], []
    forget_reaped()
    for k in range(n):
        cid = f"s{k:04d}"
        ms, _, pid = rt.create(root, args.sleep_bundle, cid)
        creates.append(ms)
        alive.append((cid, pid))
        ms, _, _, _ = rt.do(root, "start", cid)
        starts.append(ms)
    sample = alive[:: max(1, n // args.scale_sample)][: args.scale_sample]
    for cid, _ in sample:
        ms, _, _, _ = rt.do(root, "state", cid)
        states.append(ms)
    for _ in range(args.list_repeat):
        ms, _, _, out = rt.do(root, "list", want_out=True)
        lists.append(ms)
    lines = [l for l in out.splitlines()[1:] if l.strip()]
    if len(lines) != n:
        raise Failed(f"{rt.name} list: {len(lines)} lines, want {n}")
    for cid, pid in alive:
        ms, _, _, _ = rt.do(root, "kill", cid, "KILL")
        kills.append(ms)
        rt.wait_exit(pid)
        ms, _, _, _ = rt.do(root, "delete", cid)
        deletes.append(ms)
    alive.clear()
    forget_reaped()
    left = os.listdir(root)
    if left:
        raise Failed(f"{rt.name}: entries left after delete: {left[:5]}")
    lm = median(lists)
    result = {
        "create_ms": median(creates), "create_mean_ms": sum(creates) / n,
        "start_ms": median(starts),
        "state_ms": median(states),
        "list_ms": lm, "list_per_container_ms": lm / n,
        "kill_ms": median(kills),
        "delete_ms": median(deletes), "delete_mean_ms": sum(deletes) / n,
    }
    say(f"  scale {n:>4} {rt.name:<6} create {median(creates):6.2f}  state {median(states):6.2f}  "
        f"list {lm:7.2f}  delete {median(deletes):6.2f} ms  ({time.monotonic() - t_phase:.1f} s)")
    return result


def phase_memory(args, rts, rec):
    """Peak RSS of each operation, from GNU time's %M (ru_maxrss). Not
    from this process's own wait4: a posix_spawn'd child shares this
    Python's memory until it execs, and the kernel counts that in its
    ru_maxrss. GNU time's own fork is small (its floor is measured too)."""
    gtime = "/usr/bin/time"
    if not os.access(gtime, os.X_OK):
        raise Failed("/usr/bin/time is missing (Debian package `time`)")
    outf = os.path.join(args.work, "time.out")

    def peak(name, argv):
        call(name, [gtime, "-f", "%M", "-o", outf, *argv])
        with open(outf) as f:
            return int(f.read().split()[-1])

    say(f"memory: {args.memory_rounds} rounds under {gtime} -f %M")
    roots = {rt.name: rt.root("mem") for rt in rts}
    pidfile = os.path.join(args.work, "pid-mem")
    for i in range(args.memory_rounds):
        rec.add("rss.floor", "time /bin/true", 0, peak("bare", ["/bin/true"]))
        for rt in rotated(rts, i):
            root = roots[rt.name]
            base = [rt.path, "--root", root]
            forget_reaped()
            cid = rt.cid("mem")
            if os.path.exists(pidfile):
                os.unlink(pidfile)
            rec.add("rss.create", rt.name, 0, peak(rt.name, [*base, "create", "--bundle", args.sleep_bundle,
                                                          "--pid-file", pidfile, cid]))
            with open(pidfile) as f:
                pid = int(f.read())
            REAPED.pop(pid, None)
            rec.add("rss.start", rt.name, 0, peak(rt.name, [*base, "start", cid]))
            rec.add("rss.state", rt.name, 0, peak(rt.name, [*base, "state", cid]))
            rec.add("rss.list", rt.name, 0, peak(rt.name, [*base, "list"]))
            rec.add("rss.kill", rt.name, 0, peak(rt.name, [*base, "kill", cid, "KILL"]))
            rt.wait_exit(pid)
            rec.add("rss.delete", rt.name, 0, peak(rt.name, [*base, "delete", cid]))
            rec.add("rss.run", rt.name, 0, peak(rt.name, [*base, "run", "--bundle", args.bundle, rt.cid("memrun")]))
    for m in list(rec.data):
        if m.startswith("rss."):
            for v in rec.data[m].values():
                v["ms"] = []
    forget_reaped()


# --------------------------------------------------------------- buildah

WRAPPER = r"""#!/bin/bash
# Logging wrapper: runs the real runtime, then appends one line:
# start end status arg... (tab separated; times from $EPOCHREALTIME).
t0=$EPOCHREALTIME
"@REAL@" "$@"
rc=$?
t1=$EPOCHREALTIME
{ printf '%s\t%s\t%s' "$t0" "$t1" "$rc"; printf '\t%s' "$@"; printf '\n'; } >>"@LOG@"
exit $rc
"""

VERBS = ("create", "start", "state", "kill", "delete", "run", "exec", "features")


def parse_wrapper_log(path):
    calls = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4:
                continue
            t0, t1, rc, argv = float(parts[0]), float(parts[1]), int(parts[2]), parts[3:]
            verb = next((a for a in argv if a in VERBS), "?")
            rest = argv[argv.index(verb) + 1:] if verb in argv else []
            pos = [a for a in rest if not a.startswith("-")]
            if verb == "kill":
                cid = pos[0] if pos else "?"
            else:
                cid = pos[-1] if pos else "?"
            calls.append({"t0": t0, "t1": t1, "rc": rc, "verb": verb, "id": cid})
    return calls


def phase_buildah(args, rts, rec):
    """buildah bud with args.buildah_steps RUN steps per build, through a
    logging wrapper per runtime; builds alternate between runtimes."""
    global ENV
    buildah = shutil.which("buildah")
    if not buildah:
        raise Failed("buildah is missing")
    w = os.path.join(args.work, "buildah")
    os.makedirs(w, exist_ok=True)
    store = ["--root", os.path.join(w, "store"), "--runroot", os.path.join(w, "runroot"),
             "--storage-driver", "vfs"]
    env = dict(ENV)
    env["TMPDIR"] = os.path.join(w, "tmp")
    env["BUILDAH_ISOLATION"] = "rootless"
    env["XDG_RUNTIME_DIR"] = os.path.join(w, "xdg")
    for d in (env["TMPDIR"], env["XDG_RUNTIME_DIR"]):
        os.makedirs(d, mode=0o700, exist_ok=True)
    env.pop("BUILDAH_LAYERS", None)
    saved_env, ENV = ENV, env

    def b(*a, check=True, want_out=False):
        return call("buildah", [buildah, *store, *a], check=check, want_out=want_out)

    try:
        # base image: busybox-static only
        base = os.path.join(w, "base")
        for d in ("bin", "etc", "root", "tmp"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        shutil.copy(args.busybox, os.path.join(base, "bin", "busybox"))
        for applet in ("sh", "true", "echo", "sleep"):
            p = os.path.join(base, "bin", applet)
            if not os.path.lexists(p):
                os.symlink("busybox", p)
        with open(os.path.join(base, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n")
        with open(os.path.join(base, "etc", "group"), "w") as f:
            f.write("root:x:0:\n")
        _, _, _, out = b("from", "scratch", want_out=True)
        ctr = out.strip().splitlines()[-1]
        b("copy", ctr, base, "/")
        b("config", "--env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", ctr)
        b("commit", "--quiet", "--rm", ctr, "localhost/hutch-bench-base")
        ctx = os.path.join(w, "ctx")
        os.makedirs(ctx, exist_ok=True)
        with open(os.path.join(ctx, "Containerfile"), "w") as f:
            f.write("FROM localhost/hutch-bench-base\n")
            for k in range(args.buildah_steps):
                f.write(f"RUN true {k}\n")
        wraps = {}
        for rt in rts:
            d = os.path.join(w, "wrap", rt.name)
            os.makedirs(d, exist_ok=True)
            log = os.path.join(w, f"calls-{rt.name}.log")
            wp = os.path.join(d, os.path.basename(rt.path))
            with open(wp, "w") as f:
                f.write(WRAPPER.replace("@REAL@", rt.path).replace("@LOG@", log))
            os.chmod(wp, 0o755)
            wraps[rt.name] = (wp, log)
        say(f"buildah: {args.buildah_rounds} builds of {args.buildah_steps} RUN steps per runtime (+1 warm-up)")
        builds = {rt.name: [] for rt in rts}
        for i in range(args.buildah_rounds + 1):
            for rt in rotated(rts, i):
                wp, log = wraps[rt.name]
                if os.path.exists(log):
                    os.unlink(log)
                ms, rss, code, _ = b("bud", f"--runtime={wp}", "--isolation=rootless", "--network=none",
                                     "--pull=never", "--layers=false", "-f",
                                     os.path.join(ctx, "Containerfile"), ctx, check=False)
                if code != 0:
                    raise Failed(f"buildah bud with {rt.name}: exit {code} (see stderr-buildah.log)")
                calls = parse_wrapper_log(log)
                if i > 0:
                    builds[rt.name].append({"wall_ms": ms, "calls": calls})
        b("rmi", "-a", "-f", check=False)
    finally:
        ENV = saved_env
        call("buildah", [buildah, *store, "unshare", "rm", "-rf", os.path.join(w, "store")], check=False)

    out = {}
    for rt in rts:
        per_step_share, per_step_span, per_build_wall, intervals = [], [], [], []
        verb_ms = {}
        verb_count = {}
        nsteps = 0
        for bd in builds[rt.name]:
            per_build_wall.append(bd["wall_ms"])
            steps = {}
            for c in bd["calls"]:
                steps.setdefault(c["id"], []).append(c)
            # a step's full cost, buildah's own work included: from one
            # step's `create` to the next one's
            creates = sorted(c["t0"] for c in bd["calls"] if c["verb"] == "create")
            intervals += [(b - a) * 1000 for a, b in zip(creates, creates[1:])]
            for cid, cs in steps.items():
                if not any(c["verb"] == "create" for c in cs):
                    continue
                nsteps += 1
                per_step_share.append(sum((c["t1"] - c["t0"]) * 1000 for c in cs))
                per_step_span.append((max(c["t1"] for c in cs) - min(c["t0"] for c in cs)) * 1000)
                for c in cs:
                    verb_ms.setdefault(c["verb"], []).append((c["t1"] - c["t0"]) * 1000)
                    verb_count[c["verb"]] = verb_count.get(c["verb"], 0) + 1
        out[rt.name] = {
            "steps_per_build": args.buildah_steps,
            "builds": len(per_build_wall),
            "steps_seen": nsteps,
            "build_wall_ms": per_build_wall,
            "step_wall_ms": [x / args.buildah_steps for x in per_build_wall],
            "step_share_ms": per_step_share,
            "step_span_ms": per_step_span,
            "step_interval_ms": intervals,
            "calls_per_step": {v: n / max(1, nsteps) for v, n in verb_count.items()},
            "call_median_ms": {v: median(x) for v, x in verb_ms.items()},
        }
        rec.data.setdefault("buildah.step_wall", {})[rt.name] = {
            "ms": [round(x / args.buildah_steps, 3) for x in per_build_wall], "rss_kb": []}
        rec.data.setdefault("buildah.step_interval", {})[rt.name] = {
            "ms": [round(x, 3) for x in intervals], "rss_kb": []}
        rec.data.setdefault("buildah.step_share", {})[rt.name] = {
            "ms": [round(x, 3) for x in per_step_share], "rss_kb": []}
        say(f"  buildah {rt.name:<6} step interval {median(intervals) if intervals else 0:7.1f} ms  "
            f"runtime share {median(per_step_share):6.1f} ms  calls/step {out[rt.name]['calls_per_step']}")
    rec.data["_buildah"] = out


# --------------------------------------------------------------- main

def version_of(path):
    try:
        _, _, _, out = call("version", [path, "--version"], check=False, want_out=True)
        return (out or "").splitlines()[0].strip() if out else "?"
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--sleep-bundle", required=True)
    ap.add_argument("--runtime", action="append", required=True, help="NAME=PATH")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--state-entries", type=int, default=10000)
    ap.add_argument("--scale", default="1,10,100,500")
    ap.add_argument("--scale-sample", type=int, default=20)
    ap.add_argument("--list-repeat", type=int, default=5)
    ap.add_argument("--memory-rounds", type=int, default=5)
    ap.add_argument("--buildah-rounds", type=int, default=3)
    ap.add_argument("--buildah-steps", type=int, default=10)
    ap.add_argument("--busybox", default="/bin/busybox")
    ap.add_argument("--hutch-rev", default="?")
    ap.add_argument("--phases", default="basic,state,memory,scale,buildah")
    args = ap.parse_args()
    args.scale = [int(x) for x in args.scale.replace(" ", ",").split(",") if x]
    phases = [p for p in args.phases.split(",") if p]

    global IO
    os.makedirs(args.work, exist_ok=True)
    IO = Io(args.work)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")

    rts = []
    for spec in args.runtime:
        name, _, path = spec.partition("=")
        rts.append(Runtime(name, os.path.abspath(path), args.work))

    rec = Recorder()
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": platform.node(), "kernel": platform.release(),
        "cpus": os.cpu_count(), "user": f"{os.getuid()}",
        "rounds": args.rounds, "warmup": args.warmup,
        "state_entries": args.state_entries, "scale": args.scale,
        "buildah_rounds": args.buildah_rounds, "buildah_steps": args.buildah_steps,
        "phases": phases, "hutch_rev": args.hutch_rev,
        "runtimes": {rt.name: {"path": rt.path, "version": version_of(rt.path)} for rt in rts},
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    }
    t0 = time.monotonic()
    dispatch = {"basic": phase_basic, "state": phase_state, "memory": phase_memory,
                "scale": phase_scale, "buildah": phase_buildah}
    for p in phases:
        tp = time.monotonic()
        dispatch[p](args, rts, rec)
        meta[f"seconds_{p}"] = round(time.monotonic() - tp, 1)
        say(f"phase {p} took {meta[f'seconds_{p}']} s")
    meta["seconds"] = round(time.monotonic() - t0, 1)
    meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    raw = {"meta": meta, "measures": {k: v for k, v in rec.data.items() if not k.startswith("_")},
           "scale": rec.data.get("_scale"), "buildah": rec.data.get("_buildah")}
    with open(args.out, "w") as f:
        json.dump(raw, f, indent=1)
    say(f"raw figures in {args.out} ({meta['seconds']} s)")


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
