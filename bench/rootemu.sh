#!/bin/bash
# bench/rootemu.sh [HUTCH_BIN]: what root emulation's filter and supervisor
# cost a syscall-heavy RUN step, on against off (the annotation
# org.hutch.root-emulation=false), in the same run, rounds alternating.
# A benchmark, not a test: it prints figures and asserts nothing.
#
# Run as root: it copies the cached Debian bookworm (integration/lib.sh's
# debian_rootfs) for tsingle (no subordinate ids: one id mapped), builds a
# package of FILES files, and times `hutch run` as tsingle, with buildah's
# capabilities, of:
#   apt      apt-get install of that package from a local file: repository,
#            then dpkg --purge (APT::Sandbox::User=root, so that "off" works
#            at all: without emulation apt's drop to _apt fails)
#   apt-sandboxed  the same with apt's default sandbox user (on only: off
#            fails); its extra set*id/get*id calls go to the supervisor
#   ids      PROCS runs of `id` (each asks getuid, geteuid, getgid, getegid,
#            getgroups: every one a notification): the worst case
#   true     the program `true`: what root emulation adds to a container's
#            start (the supervisor's fork, the filter), 3 × ROUNDS rounds
#   getppid  CALLS getppid calls from perl (x86_64 syscall 110): a call the
#            filter lets pass, so the cost of running the filter
#   getuid   CALLS getuid calls (syscall 102): each one a notification the
#            supervisor answers (the real call, as nobody switched)
#   tar      tar extraction of the package's files with owners kept (root:
#            the chowns pass the filter's argument checks)
# HUTCH_BIN defaults to integration/build-release.sh's binary. Writes
# bench/rootemu-results.md (ROUNDS, default 7, after one warm-up).
set -euo pipefail
cd "$(dirname "$0")/.."
. integration/lib.sh
[ "$(id -u)" = 0 ] || die "run as root"
RT_SRC=${1:-$(integration/build-release.sh)}
ROUNDS=${ROUNDS:-7}
FILES=${FILES:-1500}
PROCS=${PROCS:-300}
CALLS=${CALLS:-100000}
ensure_users
ensure_packages jq dpkg-dev
rootfs=$(debian_rootfs bookworm)

W=$(mktemp -d /tmp/rootemu-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
chmod 755 "$W"
install -m 755 "$RT_SRC" "$W/hutch"
b="$W/bundle"
mkdir -p "$b"
cp -a "$rootfs" "$b/rootfs"

# The package: FILES files of 1 KiB in 30 directories, owned by root.
p="$W/pkg"
mkdir -p "$p/DEBIAN"
for d in $(seq 30); do
    mkdir -p "$p/usr/share/remu-big/$d"
    for f in $(seq $((FILES / 30))); do head -c 1024 /dev/urandom >"$p/usr/share/remu-big/$d/$f"; done
done
printf 'Package: remu-big\nVersion: 1.0\nArchitecture: all\nMaintainer: T <t@example.org>\nDescription: many files\n' >"$p/DEBIAN/control"
repo="$b/rootfs/srv/repo"
mkdir -p "$repo"
dpkg-deb -b "$p" "$repo/remu-big_1.0_all.deb" >/dev/null
(cd "$repo" && dpkg-scanpackages . >Packages 2>/dev/null)
tar -C "$p" -cf "$b/rootfs/srv/files.tar" usr
echo "deb [trusted=yes] file:/srv/repo ./" >"$b/rootfs/etc/apt/sources.list"
chown -R tsingle:tsingle "$b"

CAPS='["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FOWNER","CAP_FSETID","CAP_KILL","CAP_NET_BIND_SERVICE","CAP_SETFCAP","CAP_SETGID","CAP_SETPCAP","CAP_SETUID","CAP_SYS_CHROOT"]'
config() { # config EMULATION SCRIPT
    rm -f "$b/config.json"
    (cd "$b" && as tsingle "$W/hutch" spec --rootless --args sh -c "$2")
    jq --argjson c "$CAPS" --arg e "$1" '.root.readonly = false
        | .process.capabilities = {bounding: $c, effective: $c, permitted: $c}
        | .process.env += ["DEBIAN_FRONTEND=noninteractive"]
        | .annotations["org.hutch.root-emulation"] = $e' "$b/config.json" >"$b/c.json"
    mv "$b/c.json" "$b/config.json"; chown tsingle "$b/config.json"
}
n=0
timed() { # timed EMULATION SCRIPT: "WALL CPU" milliseconds of one hutch run
    config "$1" "$2"
    n=$((n + 1))
    # CPU: user + system time of hutch run and everything it waited for
    # (the container's processes, the supervisor): far less disturbed by
    # other load on a shared machine than the wall time.
    # wait4's rusage, in microseconds (GNU time's is 10 ms).
    (cd "$b" && as tsingle /usr/bin/python3 -c '
import os, sys, time
t = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, st, ru = os.wait4(pid, 0)
wall = time.monotonic() - t
with open(sys.argv[1], "w") as f:
    f.write("%d %d\n" % (wall * 1e6, (ru.ru_utime + ru.ru_stime) * 1e6))
sys.exit(os.waitstatus_to_exitcode(st))
' "$b/time" "$W/hutch" run "bench-$$-$n") >"$W/last.log" 2>&1 \
        || { tail -n 5 "$W/last.log" >&2; die "run failed ($1): $2"; }
    cat "$b/time"
}
config true 'apt-get update -qq'
(cd "$b" && as tsingle "$W/hutch" run "bench-$$-update") >/dev/null 2>&1 || die "apt-get update failed"

declare -A W_SCRIPT=(
    [apt]='apt-get -qq -o APT::Sandbox::User=root install -y remu-big >/dev/null && dpkg --purge remu-big >/dev/null'
    [apt-sandboxed]='apt-get -qq install -y remu-big >/dev/null && dpkg --purge remu-big >/dev/null'
    [ids]="i=0; while [ \$i -lt $PROCS ]; do id >/dev/null; i=\$((i + 1)); done"
    [getuid]="perl -e 'syscall(102) for 1 .. $CALLS'"
    [getppid]="perl -e 'syscall(110) for 1 .. $CALLS'"
    [true]='true'
    [tar]='mkdir -p /tmp/x && tar -xpf /srv/files.tar --same-owner -C /tmp/x && rm -rf /tmp/x'
)
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
out=bench/rootemu-results.md
{
    echo "# Root emulation: cost on a RUN step"
    echo
    echo "Generated by \`bench/rootemu.sh\` on $(date -u '+%Y-%m-%d %H:%M:%S') UTC ($(uname -r), $(nproc) CPUs), as tsingle (one id mapped),"
    echo "hutch built from \`$(git rev-parse --short HEAD)\` (release). $ROUNDS rounds after one warm-up, on and off alternating;"
    echo "times of \`hutch run\` in µs, median (min–max): CPU is user + system time of hutch and every process it"
    echo "waited for (the container's and the supervisor), wall is elapsed time. Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| RUN step | CPU on | CPU off | CPU on/off | wall on | wall off | wall on/off |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
} >"$out.tmp"
for w in true getppid getuid ids tar apt apt-sandboxed; do
    s=${W_SCRIPT[$w]}
    modes="true false"
    [ "$w" = apt-sandboxed ] && modes=true
    for m in $modes; do timed "$m" "$s" >/dev/null; done   # warm-up
    : >"$W/on"; : >"$W/off"
    rounds=$ROUNDS
    case $w in true | getppid | getuid) rounds=$((ROUNDS * 3)) ;; esac
    for _ in $(seq "$rounds"); do
        timed true "$s" >>"$W/on"
        [ "$modes" = true ] || timed false "$s" >>"$W/off"
    done
    stat() { # stat FILE COLUMN: "median (min–max)"
        local m; m=$(cut -d' ' -f"$2" "$1" | median)
        echo "$m ($(cut -d' ' -f"$2" "$1" | sort -n | head -n1)–$(cut -d' ' -f"$2" "$1" | sort -n | tail -n1))"
    }
    ratio() { awk -v a="$(cut -d' ' -f"$1" "$W/on" | median)" -v b="$(cut -d' ' -f"$1" "$W/off" | median)" 'BEGIN { printf "%.3f", a / b }'; }
    if [ -s "$W/off" ]; then
        echo "| $w | $(stat "$W/on" 2) | $(stat "$W/off" 2) | $(ratio 2) | $(stat "$W/on" 1) | $(stat "$W/off" 1) | $(ratio 1) |" >>"$out.tmp"
    else
        echo "| $w | $(stat "$W/on" 2) | fails without emulation | – | $(stat "$W/on" 1) | – | – |" >>"$out.tmp"
    fi
    log "$w: on $(tr '\n' ' ' <"$W/on")/ off $(tr '\n' ' ' <"$W/off")"
done
echo >>"$out.tmp"
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)." >>"$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
