#!/bin/bash
# integration/docker.sh HUTCH_BIN: Docker as root with hutch as a runtime,
# checked against crun doing the same in the same run (issue 12).
#
# A private dockerd (its own socket, --data-root, --exec-root, pid file
# and containerd under a mktemp directory; no bridge, no iptables, the vfs storage driver,
# the cgroupfs driver with a cgroup parent of its own) has both runtimes
# registered: "hutch" (HUTCH_BIN) and "crun" (CRUN=/usr/bin/crun). The
# image is made with `docker import` from a busybox-static tarball: no
# registry is needed. For each runtime the same sequence runs on one
# container: run with --memory 64m --pids-limit 50 (limits read back from
# the container's cgroup files on the host and from inside), pause and
# unpause (docker's status, the freezer, the runtime's own `state`),
# update (read back), `docker stats --no-stream`, `docker top`, exec,
# stop and start (the updated limits hold), rm (cgroups and runtime state
# gone). Every check records a value; a check passes when hutch's value is
# the expected one and equals crun's. crun's line is shown in brackets.
#
# crun 1.8 refuses to run while cgroup v2 holds any controller (this
# hybrid host: hugetlb): such controllers are moved to cgroup v1 for the
# run and given back afterwards (see machine-notes.md).
#
# Everything is undone at exit, failure or not: containers removed, the
# daemon (and its containerd) stopped, mounts under the directory
# unmounted, the directory, the cgroups and the moved hierarchies removed.
# KEEP=1 keeps the directory (the daemon is stopped all the same).
#
# The last line is "N passed, M failed"; the exit status is non-zero when
# anything failed.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 HUTCH_BIN" >&2; exit 2; }
HUTCH=$(readlink -f "$1")
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/compare.sh"
[ -n "$HUTCH" ] || die "no runtime at $1"
[ -x "$HUTCH" ] || die "runtime $HUTCH is not executable"
[ "$(id -u)" = 0 ] || die "run as root (it starts a dockerd)"
# Installing docker.io must not start the system's dockerd and containerd
# (nothing would stop them): a policy-rc.d refuses service starts during
# the install, and goes with it.
if ! dpkg-query -W -f='${Status}' docker.io 2>/dev/null | grep -q 'ok installed'; then
    (
        policy=/usr/sbin/policy-rc.d
        [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; trap 'rm -f "$policy"' EXIT; }
        ensure_packages docker.io
    ) || die "could not install docker.io"
fi
CRUN=$(readlink -f "${CRUN:-/usr/bin/crun}")
for tool in dockerd docker containerd containerd-shim-runc-v2 jq "$CRUN" /bin/busybox; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done

W=$(mktemp -d /tmp/hutch-docker.XXXXXX) || die "mktemp failed"
chmod 711 "$W"
# Daemons and monitors started from here inherit this directory (conmon
# writes an `oom` file into its own when a container is OOM-killed).
cd "$W" || die "cd $W"
PARENT="hutch-docker-${W##*.}"
SOCK="$W/docker.sock"
export DOCKER_HOST="unix://$SOCK" DOCKER_CONFIG="$W/cli"
D() { timeout -k 5 60 docker "$@"; }
started=$(date +%s)

# ---------------------------------------------------------------- cleanup
cleanup() {
    set +e
    if [ -S "$SOCK" ]; then
        ids=$(D ps -aq 2>/dev/null)
        [ -n "$ids" ] && D rm -f $ids >/dev/null 2>&1
    fi
    local pid
    pid=$(cat "$W/dockerd.pid" 2>/dev/null)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && { log "dockerd $pid did not stop: killing it"; kill -KILL "$pid"; }
    fi
    pid=$(cat "$W/containerd.pid" 2>/dev/null)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    # Anything still running (a shim) is this run's: it names $W on its
    # command line.
    for pid in $(pgrep -f -- "$W/"); do
        [ "$pid" != $$ ] && kill -KILL "$pid" 2>/dev/null
    done
    findmnt -rn -o TARGET | grep -F "$W/" | sort -r | while read -r m; do umount -l "$m"; done
    remove_cgroups "$PARENT"
    controllers_back
    # dockerd's own files outside its directories (it makes them whatever
    # its flags say).
    [ "$had_key" = 1 ] || rm -f /etc/docker/key.json
    [ "$had_run" = 1 ] || { rmdir /run/docker/plugins; rmdir /run/docker; } 2>/dev/null
    # containerd's shims put their sockets in /run/containerd/s whatever
    # its state directory.
    [ "$had_ctrd" = 1 ] || { rmdir /run/containerd/s; rmdir /run/containerd; } 2>/dev/null
    if [ "${KEEP:-}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

had_key=0; [ -e /etc/docker/key.json ] && had_key=1
had_run=0; [ -e /run/docker ] && had_run=1
had_ctrd=0; [ -e /run/containerd ] && had_ctrd=1

controllers_to_v1

# ---------------------------------------------------------------- dockerd
mkdir -p "$W/cli" "$W/data" "$W/exec" "$W/rt"
# The runtimes through wrappers that log their argv (and what `update`
# reads on its standard input) to $W/argv-NAME.log, then exec them.
for rt in hutch crun; do
    real=$HUTCH; [ "$rt" = crun ] && real=$CRUN
    cat >"$W/rt/$rt" <<EOF
#!/bin/sh
log="$W/argv-$rt.log"
{ for a in "\$@"; do printf ' %s' "\$a"; done; echo; } >>"\$log"
case " \$* " in
*" update "*" - "*|*" update "*"--resources=- "*)
    in="\$(cat)"; echo "  stdin: \$in" >>"\$log"
    printf '%s' "\$in" | "$real" "\$@"; exit ;;
esac
exec "$real" "\$@"
EOF
    chmod 755 "$W/rt/$rt"
done
cat >"$W/daemon.json" <<EOF
{
  "bridge": "none",
  "iptables": false,
  "ip-masq": false,
  "ip-forward": false,
  "userland-proxy": false,
  "storage-driver": "vfs",
  "exec-opts": ["native.cgroupdriver=cgroupfs"],
  "cgroup-parent": "/$PARENT",
  "features": {"buildkit": false},
  "runtimes": {
    "hutch": {"path": "$W/rt/hutch"},
    "crun": {"path": "$W/rt/crun"}
  }
}
EOF
# containerd of its own too: without --containerd, dockerd would use a
# system containerd whenever /run/containerd/containerd.sock exists.
mkdir -p "$W/ctrd"
cat >"$W/containerd.toml" <<TOML
version = 2
root = "$W/ctrd/root"
state = "$W/ctrd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$W/ctrd/ctrd.sock"
[ttrpc]
  address = "$W/ctrd/ctrd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
TOML
log "starting containerd and dockerd in $W"
containerd --config "$W/containerd.toml" >"$W/containerd.log" 2>&1 &
echo $! >"$W/containerd.pid"
for _ in $(seq 100); do [ -S "$W/ctrd/ctrd.sock" ] && break; sleep 0.1; done
[ -S "$W/ctrd/ctrd.sock" ] || { tail -n 20 "$W/containerd.log" >&2; die "containerd did not start"; }
dockerd --config-file "$W/daemon.json" -H "unix://$SOCK" --data-root "$W/data" \
    --exec-root "$W/exec" --pidfile "$W/dockerd.pid" --containerd "$W/ctrd/ctrd.sock" \
    >"$W/dockerd.log" 2>&1 &
for _ in $(seq 150); do
    D version >/dev/null 2>&1 && break
    kill -0 $! 2>/dev/null || { tail -n 20 "$W/dockerd.log" >&2; die "dockerd exited"; }
    sleep 0.2
done
D version >/dev/null 2>&1 || { tail -n 20 "$W/dockerd.log" >&2; die "dockerd did not answer"; }
D info --format 'dockerd {{.ServerVersion}}, cgroup driver {{.CgroupDriver}}, cgroup v{{.CgroupVersion}}, runtimes: {{range $k, $v := .Runtimes}}{{$k}} {{end}}' >&2

# The image: busybox-static and its applets.
mkdir -p "$W/img/bin" "$W/img/etc" "$W/img/tmp"
cp /bin/busybox "$W/img/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$W/img/bin/$a"; done
echo 'root:x:0:0:root:/:/bin/sh' >"$W/img/etc/passwd"
echo 'root:x:0:' >"$W/img/etc/group"
tar -C "$W/img" -c . | D import -c 'CMD ["/bin/sh"]' - hutch-busybox:1 >/dev/null \
    || die "docker import failed"

# ---------------------------------------------------------------- checks
# first line, ids elided, so that two runtimes' outputs compare.
norm() { head -n 1 | sed -e "s/$cid/ID/g" -e 's/[[:space:]]*$//'; }
# hostcg CONTROLLER FILE: a file of the container's cgroup, on the host,
# found from the container process's /proc/PID/cgroup.
cgpath() {
    awk -F: -v c="$1" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' \
        "/proc/$(D inspect -f '{{.State.Pid}}' "$cid")/cgroup" 2>/dev/null
}
hostcg() {
    local path
    path=$(cgpath "$1")
    [ -n "$path" ] || { echo "(no $1 cgroup)"; return; }
    cat "/sys/fs/cgroup/$1$path/$2" 2>&1 | norm
}
incg() { D exec "$cid" cat "/sys/fs/cgroup/$1/$2" 2>&1 | norm; }
rtstate() { "$1" --root "$rtroot" state "$cid" 2>&1 | jq -r .status 2>&1 | norm; }

check() {
    local rt="$1" bin="$HUTCH"
    [ "$rt" = crun ] && bin="$CRUN"
    log "checks with $rt"
    cid=$(D run -d --runtime "$rt" --network none --memory 64m --pids-limit 50 \
        --name "it-$rt" hutch-busybox:1 sleep 1000 2>"$W/run-$rt.err")
    if [ -z "$cid" ]; then
        rec "$rt" "run: status" "failed: $(norm <"$W/run-$rt.err")"
        return
    fi
    # dockerd 20.10 gives every runtime the same --root.
    rtroot=$(find "$W/exec" -maxdepth 2 -type d -path "*/runtime-*/moby" | head -n 1)
    rec "$rt" "run: status" "$(D inspect -f '{{.State.Status}}' "$cid")"
    rec "$rt" "run: memory cgroup of the process" "$(cgpath memory | norm)"
    rec "$rt" "run: host memory.limit_in_bytes" "$(hostcg memory memory.limit_in_bytes)"
    rec "$rt" "run: host memory.memsw.limit_in_bytes" "$(hostcg memory memory.memsw.limit_in_bytes)"
    rec "$rt" "run: host pids.max" "$(hostcg pids pids.max)"
    rec "$rt" "run: inside memory.limit_in_bytes" "$(incg memory memory.limit_in_bytes)"
    rec "$rt" "run: inside pids.max" "$(incg pids pids.max)"
    rec "$rt" "run: runtime state" "$(rtstate "$bin")"

    D pause "$cid" >/dev/null 2>"$W/pause-$rt.err"
    rec "$rt" "pause: docker pause" "$([ $? = 0 ] && echo ok || norm <"$W/pause-$rt.err")"
    rec "$rt" "pause: status" "$(D inspect -f '{{.State.Status}}' "$cid")"
    rec "$rt" "pause: host freezer.state" "$(hostcg freezer freezer.state)"
    rec "$rt" "pause: runtime state" "$(rtstate "$bin")"
    D unpause "$cid" >/dev/null 2>"$W/unpause-$rt.err"
    rec "$rt" "unpause: docker unpause" "$([ $? = 0 ] && echo ok || norm <"$W/unpause-$rt.err")"
    rec "$rt" "unpause: status" "$(D inspect -f '{{.State.Status}}' "$cid")"
    rec "$rt" "unpause: host freezer.state" "$(hostcg freezer freezer.state)"
    rec "$rt" "unpause: runtime state" "$(rtstate "$bin")"

    D update --memory 128m --memory-swap 256m --cpu-shares 512 --cpus 0.5 --pids-limit 100 \
        "$cid" >/dev/null 2>"$W/update-$rt.err"
    rec "$rt" "update: docker update" "$([ $? = 0 ] && echo ok || norm <"$W/update-$rt.err")"
    rec "$rt" "update: host memory.limit_in_bytes" "$(hostcg memory memory.limit_in_bytes)"
    rec "$rt" "update: host memory.memsw.limit_in_bytes" "$(hostcg memory memory.memsw.limit_in_bytes)"
    rec "$rt" "update: host cpu.shares" "$(hostcg cpu cpu.shares)"
    rec "$rt" "update: host cpu.cfs_quota_us" "$(hostcg cpu cpu.cfs_quota_us)"
    rec "$rt" "update: host cpu.cfs_period_us" "$(hostcg cpu cpu.cfs_period_us)"
    rec "$rt" "update: host pids.max" "$(hostcg pids pids.max)"
    rec "$rt" "update: inside memory.limit_in_bytes" "$(incg memory memory.limit_in_bytes)"

    # The runtime's own `events --stats` (crun 1.8 has no `events`: its
    # line is the cgroup file the value comes from).
    if [ "$rt" = hutch ]; then
        rec "$rt" "events --stats: memory limit, pids limit" "$("$bin" --root "$rtroot" events --stats "$cid" \
            2>&1 | jq -r '"\(.data.memory.usage.limit) \(.data.pids.limit)"' 2>&1 | norm)"
    else
        rec "$rt" "events --stats: memory limit, pids limit" \
            "$(hostcg memory memory.limit_in_bytes) $(hostcg pids pids.max)"
    fi
    rec "$rt" "stats: memory limit" "$(D stats --no-stream --format '{{.MemUsage}}' "$cid" 2>&1 \
        | sed 's|.*/ *||' | norm)"
    rec "$rt" "top: commands" "$(D top "$cid" -o pid,args 2>&1 | tail -n +2 | sed -E 's/^ *[0-9]+ +//' \
        | sort | tr '\n' ';' | norm)"

    rec "$rt" "exec: output" "$(D exec "$cid" echo hello 2>&1 | norm)"
    D exec "$cid" sh -c 'exit 3' >/dev/null 2>&1
    rec "$rt" "exec: exit status" "$?"
    D stop -t 1 "$cid" >/dev/null 2>"$W/stop-$rt.err"
    rec "$rt" "stop: docker stop" "$([ $? = 0 ] && echo ok || norm <"$W/stop-$rt.err")"
    rec "$rt" "stop: status, exit code" "$(D inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$cid")"
    rec "$rt" "stop: runtime list" "$("$bin" --root "$rtroot" list -q 2>&1 | norm)"
    D start "$cid" >/dev/null 2>"$W/start-$rt.err"
    rec "$rt" "start: docker start" "$([ $? = 0 ] && echo ok || norm <"$W/start-$rt.err")"
    rec "$rt" "start: status" "$(D inspect -f '{{.State.Status}}' "$cid")"
    rec "$rt" "start: host memory.limit_in_bytes" "$(hostcg memory memory.limit_in_bytes)"
    rec "$rt" "start: host pids.max" "$(hostcg pids pids.max)"

    # A second container beside it, under the same cgroup parent: removing
    # the first must leave it running (the first one's create made the
    # parent).
    local other
    other=$(D run -d --runtime "$rt" --network none --pids-limit 10 hutch-busybox:1 sleep 1000)
    D rm -f "$cid" >/dev/null 2>"$W/rm-$rt.err"
    rec "$rt" "rm: docker rm -f" "$([ $? = 0 ] && echo ok || norm <"$W/rm-$rt.err")"
    rec "$rt" "rm: the other container" "$(D inspect -f '{{.State.Status}}' "$other" 2>&1 | head -n 1)"
    rec "$rt" "rm: the other container's pids.max" "$(cid=$other hostcg pids pids.max)"
    D rm -f "$other" >/dev/null 2>&1
    rec "$rt" "rm: cgroups left" "$(find /sys/fs/cgroup/*/"$PARENT" -name "*$cid*" 2>/dev/null \
        | sed "s|^/sys/fs/cgroup/||" | tr '\n' ' ' | norm)"
    rec "$rt" "rm: runtime list" "$("$bin" --root "$rtroot" list -q 2>&1 | norm)"
    rec "$rt" "rm: processes left" "$(pgrep -f -- "$cid" | grep -v '^$' | wc -l)"

    # A paused container stops and goes (its frozen processes must die).
    cid=$(D run -d --runtime "$rt" --network none hutch-busybox:1 sleep 1000)
    D pause "$cid" >/dev/null 2>&1
    rec "$rt" "paused: docker stop" "$(D stop -t 1 "$cid" >/dev/null 2>"$W/err" && echo ok || norm <"$W/err")"
    rec "$rt" "paused: status after stop" "$(D inspect -f '{{.State.Status}}' "$cid" 2>&1 | norm)"
    D start "$cid" >/dev/null 2>&1
    D pause "$cid" >/dev/null 2>&1
    rec "$rt" "paused: docker rm -f" "$(D rm -f "$cid" >/dev/null 2>"$W/err" && echo ok || norm <"$W/err")"
    rec "$rt" "paused: processes left" "$(pgrep -f -- "$cid" | wc -l)"

    # The limits hold: forks past --pids-limit fail (the shell counts the
    # sleeps it started, and dies at the first failed fork), and a shell
    # growing past --memory is OOM-killed.
    cid=none
    rec "$rt" "limits: sleeps started with --pids-limit 20" "$(D run --rm --runtime "$rt" --network none \
        --pids-limit 20 hutch-busybox:1 sh -c 'i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); echo $i; done' \
        2>/dev/null | tail -n 1)"
    D run --name "oom-$rt" --runtime "$rt" --network none --memory 32m hutch-busybox:1 \
        sh -c 'a=$(head -c 50000000 /dev/zero | tr "\0" x); echo ${#a}' >/dev/null 2>&1
    rec "$rt" "limits: --memory 32m, 50 MB: OOM-killed, exit code" \
        "$(D inspect -f '{{.State.OOMKilled}} {{.State.ExitCode}}' "oom-$rt" 2>&1 | norm)"
    D rm -f "oom-$rt" >/dev/null 2>&1
}

# The values Docker asks for (what crun must show too), in order.
expect "run: status" running
expect "run: memory cgroup of the process" "/$PARENT/ID"
expect "run: host memory.limit_in_bytes" 67108864
expect "run: host memory.memsw.limit_in_bytes" 134217728
expect "run: host pids.max" 50
expect "run: inside memory.limit_in_bytes" 67108864
expect "run: inside pids.max" 50
expect "run: runtime state" running
expect "pause: docker pause" ok
expect "pause: status" paused
expect "pause: host freezer.state" FROZEN
expect "pause: runtime state" paused
expect "unpause: docker unpause" ok
expect "unpause: status" running
expect "unpause: host freezer.state" THAWED
expect "unpause: runtime state" running
expect "update: docker update" ok
expect "update: host memory.limit_in_bytes" 134217728
expect "update: host memory.memsw.limit_in_bytes" 268435456
expect "update: host cpu.shares" 512
expect "update: host cpu.cfs_quota_us" 50000
expect "update: host cpu.cfs_period_us" 100000
expect "update: host pids.max" 100
expect "update: inside memory.limit_in_bytes" 134217728
expect "events --stats: memory limit, pids limit" "134217728 100"
expect "stats: memory limit" 128MiB
expect "top: commands" "sleep 1000;"
expect "exec: output" hello
expect "exec: exit status" 3
expect "stop: docker stop" ok
expect "stop: status, exit code" "exited 137"
expect "stop: runtime list" ""
expect "start: docker start" ok
expect "start: status" running
expect "start: host memory.limit_in_bytes" 134217728
expect "start: host pids.max" 100
expect "rm: docker rm -f" ok
expect "rm: cgroups left" ""
expect "rm: the other container" running
expect "rm: the other container's pids.max" 10
expect "rm: runtime list" ""
expect "rm: processes left" 0
expect "paused: docker stop" ok
expect "paused: status after stop" exited
expect "paused: docker rm -f" ok
expect "paused: processes left" 0
expect "limits: sleeps started with --pids-limit 20" 19
expect "limits: --memory 32m, 50 MB: OOM-killed, exit code" "true 137"

: >"$W/res-hutch"
: >"$W/res-crun"
# hutch first: its first container then makes the cgroup parent (the
# sibling check above needs that).
check hutch
check crun

# ---------------------------------------------------------------- report
report hutch crun
status=$?
# What Docker asked of each runtime: its commands, and update's document.
for rt in hutch crun; do
    log "docker called $rt for: $(awk '{ for (i = 1; i <= NF; i++) if ($i !~ /^-/ && $(i - 1) !~ /^--(root|log|log-format|bundle|pid-file|console-socket|process)$/) { print $i; break } }' \
        "$W/argv-$rt.log" | grep -v '^stdin:' | sort | uniq -c | sort -rn | awk '{ printf "%s %s, ", $2, $1 }')"
done
log "update's document: $(grep -m1 'stdin:' "$W/argv-hutch.log" | sed 's/^ *stdin: //')"
log "docker.sh took $(($(date +%s) - started)) s"
exit "$status"
