#!/bin/bash
# integration/podman-root.sh HUTCH_BIN: podman as root (cgroupfs manager)
# with hutch as its runtime, checked against crun doing the same in the
# same run (issue 12); the rootless cases are podman.sh's.
#
# podman runs with storage, run root, tmpdir and containers.conf of its
# own under a mktemp directory (vfs driver, file events, no network),
# `--cgroup-manager cgroupfs` and a cgroup parent of its own. The image is
# imported from a busybox-static tarball. For each runtime the same
# sequence runs on one container: run with --memory 64m --pids-limit 50
# (limits read back from the container's cgroup files on the host and
# from inside), pause and unpause (podman's status, the freezer, the
# runtime's own `state`), update (read back), `podman stats --no-stream`,
# exec, stop and start, rm (cgroups and runtime state gone), and whether
# the pids and memory limits hold. A check passes when hutch's value is
# the expected one and equals crun's (shown in brackets).
#
# Both runtimes are called through wrappers that log their argv (in
# $W/argv-RUNTIME.log; KEEP=1 keeps the directory). Everything is undone
# at exit, failure or not. The last line is "N passed, M failed"; the exit
# status is non-zero when anything failed.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 HUTCH_BIN" >&2; exit 2; }
HUTCH=$(readlink -f "$1")
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/compare.sh"
[ -n "$HUTCH" ] && [ -x "$HUTCH" ] || die "no runtime at $1"
[ "$(id -u)" = 0 ] || die "run as root (podman.sh is the rootless one)"
CRUN=$(readlink -f "${CRUN:-/usr/bin/crun}")
for tool in podman conmon jq "$CRUN" /bin/busybox; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done

W=$(mktemp -d /tmp/hutch-podman.XXXXXX) || die "mktemp failed"
chmod 711 "$W"
# Daemons and monitors started from here inherit this directory (conmon
# writes an `oom` file into its own when a container is OOM-killed).
cd "$W" || die "cd $W"
PARENT="hutch-podman-${W##*.}"
started=$(date +%s)

cleanup() {
    set +e
    P rm -a -f -t 0 >/dev/null 2>&1
    # conmon outlives a container only while it runs; any left is this
    # run's (its command line names $W).
    local pid
    for pid in $(pgrep -f -- "$W/"); do
        [ "$pid" != $$ ] && kill -KILL "$pid" 2>/dev/null
    done
    findmnt -rn -o TARGET | grep -F "$W/" | sort -r | while read -r m; do umount -l "$m"; done
    remove_cgroups "$PARENT"
    controllers_back
    # podman's image cache for root, whatever --root says.
    [ "$had_cache" = 1 ] || rm -rf /var/lib/containers/cache
    [ "$had_varlib" = 1 ] || rmdir /var/lib/containers 2>/dev/null
    if [ "${KEEP:-}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}
had_varlib=0; [ -e /var/lib/containers ] && had_varlib=1
had_cache=0; [ -e /var/lib/containers/cache ] && had_cache=1
trap cleanup EXIT
trap 'exit 130' INT TERM

controllers_to_v1

# The runtimes, through wrappers named after them (podman keys its
# lists on the name) that log argv and exec the runtime unchanged.
mkdir -p "$W/rt/hutch" "$W/rt/crun" "$W/tmp" "$W/libpod" "$W/net"
for rt in hutch crun; do
    real=$HUTCH; [ "$rt" = crun ] && real=$CRUN
    cat >"$W/rt/$rt/$rt" <<EOF
#!/bin/sh
{ for a in "\$@"; do printf ' %s' "\$a"; done; echo; } >>"$W/argv-$rt.log"
exec "$real" "\$@"
EOF
    chmod 755 "$W/rt/$rt/$rt"
done
# podman gives root's containers RLIMIT_NOFILE and RLIMIT_NPROC of
# 1048576, which fails where this shell's hard limits are lower and root
# lacks CAP_SYS_RESOURCE (as in some sandboxes): ask for the hard limits
# this shell has (podman itself lowers its RLIMIT_NPROC to pid_max).
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] && nproc=1048576
pid_max=$(cat /proc/sys/kernel/pid_max)
[ "$nproc" -gt "$pid_max" ] && nproc=$pid_max
cat >"$W/containers.conf" <<EOF
[containers]
netns = "none"
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[network]
network_config_dir = "$W/net"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime_supports_json = ["crun", "runc", "hutch"]
[engine.runtimes]
hutch = ["$W/rt/hutch/hutch"]
crun = ["$W/rt/crun/crun"]
EOF
cat >"$W/storage.conf" <<EOF
[storage]
driver = "vfs"
runroot = "$W/runroot"
graphroot = "$W/root"
EOF
export CONTAINERS_CONF="$W/containers.conf" CONTAINERS_STORAGE_CONF="$W/storage.conf" TMPDIR="$W/tmp"
P() {
    timeout -k 5 60 podman --root "$W/root" --runroot "$W/runroot" --storage-driver vfs \
        --cgroup-manager cgroupfs --events-backend file --tmpdir "$W/libpod" "$@"
}

# The image: busybox-static and its applets.
mkdir -p "$W/img/bin" "$W/img/etc" "$W/img/tmp"
cp /bin/busybox "$W/img/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$W/img/bin/$a"; done
echo 'root:x:0:0:root:/:/bin/sh' >"$W/img/etc/passwd"
echo 'root:x:0:' >"$W/img/etc/group"
tar -C "$W/img" -c . >"$W/img.tar"
P import -q "$W/img.tar" localhost/hutch-busybox:1 >/dev/null || die "podman import failed"
IMG=localhost/hutch-busybox:1

# ---------------------------------------------------------------- checks
norm() { head -n 1 | sed -e "s/$cid/ID/g" -e 's/[[:space:]]*$//'; }
cgpath() {
    awk -F: -v c="$1" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' \
        "/proc/$(P inspect -f '{{.State.Pid}}' "$cid")/cgroup" 2>/dev/null
}
hostcg() {
    local path
    path=$(cgpath "$1")
    [ -n "$path" ] || { echo "(no $1 cgroup)"; return; }
    cat "/sys/fs/cgroup/$1$path/$2" 2>&1 | norm
}
incg() { P exec "$cid" cat "/sys/fs/cgroup/$1/$2" 2>&1 | norm; }
# The runtime's own view, with the --root podman gives it.
rtstate() {
    local root
    root=$(grep -o -- '--root [^ ]*' "$W/argv-$1.log" | head -n 1 | cut -d' ' -f2)
    "$2" ${root:+--root "$root"} state "$cid" 2>&1 | jq -r .status 2>&1 | norm
}
status() { P inspect -f '{{.State.Status}}' "$cid" 2>&1 | norm; }
did() { if "$@" >/dev/null 2>"$W/err"; then echo ok; else norm <"$W/err"; fi; }

check() {
    local rt="$1" bin="$HUTCH"
    [ "$rt" = crun ] && bin="$CRUN"
    log "checks with $rt"
    cid=$(P run -d --runtime "$rt" --network none --cgroup-parent "/$PARENT" --memory 64m \
        --pids-limit 50 --name "it-$rt" "$IMG" sleep 1000 2>"$W/run-$rt.err")
    if [ -z "$cid" ]; then
        cid=none
        rec "$rt" "run: status" "failed: $(norm <"$W/run-$rt.err")"
        return
    fi
    rec "$rt" "run: status" "$(status)"
    rec "$rt" "run: memory cgroup of the process" "$(cgpath memory | norm)"
    rec "$rt" "run: host memory.limit_in_bytes" "$(hostcg memory memory.limit_in_bytes)"
    rec "$rt" "run: host pids.max" "$(hostcg pids pids.max)"
    rec "$rt" "run: inside memory.limit_in_bytes" "$(incg memory memory.limit_in_bytes)"
    rec "$rt" "run: inside pids.max" "$(incg pids pids.max)"
    rec "$rt" "run: runtime state" "$(rtstate "$rt" "$bin")"

    rec "$rt" "pause: podman pause" "$(did P pause "$cid")"
    rec "$rt" "pause: status" "$(status)"
    rec "$rt" "pause: host freezer.state" "$(hostcg freezer freezer.state)"
    rec "$rt" "pause: runtime state" "$(rtstate "$rt" "$bin")"
    rec "$rt" "unpause: podman unpause" "$(did P unpause "$cid")"
    rec "$rt" "unpause: status" "$(status)"
    rec "$rt" "unpause: host freezer.state" "$(hostcg freezer freezer.state)"
    rec "$rt" "unpause: runtime state" "$(rtstate "$rt" "$bin")"

    rec "$rt" "stats: memory limit" "$(P stats --no-stream --format '{{.MemUsage}}' "$cid" 2>&1 \
        | sed 's|.*/ *||' | norm)"
    # podman 4.3's update has no --pids-limit.
    rec "$rt" "update: podman update" "$(did P update --memory 128m --cpu-shares 512 --cpus 0.5 "$cid")"
    rec "$rt" "update: host memory.limit_in_bytes" "$(hostcg memory memory.limit_in_bytes)"
    rec "$rt" "update: host cpu.shares" "$(hostcg cpu cpu.shares)"
    rec "$rt" "update: host cpu.cfs_quota_us" "$(hostcg cpu cpu.cfs_quota_us)"
    rec "$rt" "update: host pids.max" "$(hostcg pids pids.max)"
    rec "$rt" "update: inside memory.limit_in_bytes" "$(incg memory memory.limit_in_bytes)"

    rec "$rt" "exec: output" "$(P exec "$cid" echo hello 2>&1 | norm)"
    P exec "$cid" sh -c 'exit 3' >/dev/null 2>&1
    rec "$rt" "exec: exit status" "$?"

    rec "$rt" "stop: podman stop" "$(did P stop -t 1 "$cid")"
    rec "$rt" "stop: status" "$(status)"
    rec "$rt" "start: podman start" "$(did P start "$cid")"
    rec "$rt" "start: status" "$(status)"
    rec "$rt" "start: host memory.limit_in_bytes" "$(hostcg memory memory.limit_in_bytes)"
    rec "$rt" "start: host pids.max" "$(hostcg pids pids.max)"

    rec "$rt" "rm: podman rm -f" "$(did P rm -f -t 1 "$cid")"
    rec "$rt" "rm: cgroups left" "$(find /sys/fs/cgroup/*/"$PARENT" -name "*$cid*" 2>/dev/null \
        | sed "s|^/sys/fs/cgroup/||" | tr '\n' ' ' | norm)"
    local n
    for _ in $(seq 20); do n=$(pgrep -f -- "$cid" | wc -l); [ "$n" = 0 ] && break; sleep 0.1; done
    rec "$rt" "rm: processes left" "$n"

    # The limits hold (see docker.sh).
    cid=none
    rec "$rt" "limits: sleeps started with --pids-limit 20" "$(P run --rm --runtime "$rt" \
        --network none --cgroup-parent "/$PARENT" --pids-limit 20 "$IMG" \
        sh -c 'i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); echo $i; done' 2>/dev/null | tail -n 1)"
    P run --name "oom-$rt" --runtime "$rt" --network none --cgroup-parent "/$PARENT" --memory 32m \
        --memory-swap 32m "$IMG" sh -c 'a=$(head -c 50000000 /dev/zero | tr "\0" x); echo ${#a}' \
        >/dev/null 2>&1
    # (podman 4.3 says OOMKilled false here with crun too: exit code only.)
    rec "$rt" "limits: --memory 32m, 50 MB: exit code" \
        "$(P inspect -f '{{.State.ExitCode}}' "oom-$rt" 2>&1 | norm)"
    P rm -f "oom-$rt" >/dev/null 2>&1
}

expect "run: status" running
expect "run: memory cgroup of the process" "/$PARENT/libpod-ID"
expect "run: host memory.limit_in_bytes" 67108864
expect "run: host pids.max" 50
expect "run: inside memory.limit_in_bytes" 67108864
expect "run: inside pids.max" 50
expect "run: runtime state" running
expect "pause: podman pause" ok
expect "pause: status" paused
expect "pause: host freezer.state" FROZEN
expect "pause: runtime state" paused
expect "unpause: podman unpause" ok
expect "unpause: status" running
expect "unpause: host freezer.state" THAWED
expect "unpause: runtime state" running
expect "stats: memory limit" 67.11MB
expect "update: podman update" ok
expect "update: host memory.limit_in_bytes" 134217728
expect "update: host cpu.shares" 512
expect "update: host cpu.cfs_quota_us" 50000
expect "update: host pids.max" 50
expect "update: inside memory.limit_in_bytes" 134217728
expect "exec: output" hello
expect "exec: exit status" 3
expect "stop: podman stop" ok
expect "stop: status" exited
expect "start: podman start" ok
expect "start: status" running
# podman 4.3 keeps the updated limits only while the container runs: a
# start makes its cgroup from the config again (crun alike).
expect "start: host memory.limit_in_bytes" 67108864
expect "start: host pids.max" 50
expect "rm: podman rm -f" ok
expect "rm: cgroups left" ""
expect "rm: processes left" 0
expect "limits: sleeps started with --pids-limit 20" 19
expect "limits: --memory 32m, 50 MB: exit code" 137

: >"$W/res-hutch"
: >"$W/res-crun"
check crun
check hutch

report hutch crun
status=$?
# What podman (through conmon) asked of each runtime.
for rt in hutch crun; do
    log "podman called $rt for: $(awk '{ for (i = 1; i <= NF; i++) if ($i !~ /^-/ && $(i - 1) !~ /^--(root|log|log-format|bundle|pid-file|console-socket|process|resources)$/) { print $i; break } }' \
        "$W/argv-$rt.log" | sort | uniq -c | sort -rn | awk '{ printf "%s %s, ", $2, $1 }')"
done
log "podman-root.sh took $(($(date +%s) - started)) s"
exit "$status"
