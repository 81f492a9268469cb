#!/bin/bash
# integration/bench.sh: measure hutch against crun and runc, rootless.
# A benchmark, not a test: it prints figures and asserts nothing.
#
# As root (the usual way, on a fresh Debian machine): installs crun, runc,
# buildah, busybox-static, uidmap and GNU time; applies the cgroup fix crun
# 1.8.1 needs on a v1/v2 hybrid (see below); builds hutch (release); makes
# a busybox bundle whose config is `runc spec --rootless` as the benchmark
# user; then measures as that plain user (BENCH_USER, default tuser, made if
# missing). As a plain user: the same, with everything already installed.
#
# The measuring is integration/bench-harness.py (Python standard library):
# the three runtimes take turns, round by round, and every call is timed
# from spawn to reap. The harness is a child subreaper, like buildah, and
# waits for a container's exit with wait4 on the pid from --pid-file.
#
# Measures:
#   lifecycle   create, start, wait for exit, delete of /bin/true
#   run         run of /bin/true
#   state       state of one running container: alone in its state
#               directory, and beside STATE_ENTRIES (10000) stopped entries
#   memory      peak RSS of each operation (GNU time %M)
#   scale       SCALE (1 10 100 500) containers alive at once running sleep:
#               create, start, state, list, kill, delete, per container
#   buildah     buildah bud of BUILDAH_STEPS RUN steps through a logging
#               wrapper: time per step, summed runtime calls per step
#
# Writes bench/raw.json (every sample), bench/results.json (summaries),
# bench/results.md (tables) and bench/chart.svg (redraw with
# `/usr/bin/python3 bench/report.py bench/raw.json bench/`), and prints
# results.md.
#
# Knobs (environment):
#   ROUNDS=30 WARMUP=3      rounds of lifecycle, run and state
#   STATE_ENTRIES=10000     entries in the big state directory
#   MEMORY_ROUNDS=5
#   SCALE="1 10 100 500"    container counts (SCALE= skips the phase)
#   BUILDAH=1               0 skips the buildah phase
#   BUILDAH_ROUNDS=3 BUILDAH_STEPS=10
#   PHASES=...              explicit list, e.g. PHASES=basic,state
#   BENCH_USER=tuser        who measures (when run as root)
#   HUTCH=/path/to/hutch    use this binary instead of building (HUTCH_REV=label)
#   OUT=bench               where the results go
#   PROFILE=1               also run integration/bench-profile.sh (strace,
#                           callgrind, sizes, time -v) into $OUT/profile/
#   KEEP=1                  keep the work directory
# A full run with the defaults takes 3 to 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
. integration/lib.sh

ROUNDS=${ROUNDS:-30}
WARMUP=${WARMUP:-3}
STATE_ENTRIES=${STATE_ENTRIES:-10000}
MEMORY_ROUNDS=${MEMORY_ROUNDS:-5}
SCALE=${SCALE-1 10 100 500}
BUILDAH=${BUILDAH:-1}
BUILDAH_ROUNDS=${BUILDAH_ROUNDS:-3}
BUILDAH_STEPS=${BUILDAH_STEPS:-10}
BENCH_USER=${BENCH_USER:-tuser}
OUT=${OUT:-bench}
PY=/usr/bin/python3   # root's PATH may put a pyenv python3 first

if [ -z "${PHASES:-}" ]; then
    PHASES=basic,state,memory
    [ -n "${SCALE// /}" ] && PHASES+=,scale
    [ "$BUILDAH" = 1 ] && PHASES+=,buildah
fi

# ------------------------------------------------------------ setup
if [ "$(id -u)" = 0 ]; then
    ensure_packages crun runc buildah busybox-static uidmap time python3 ca-certificates gcc libc6-dev libseccomp-dev
    [ -n "${HUTCH:-}" ] || ensure_rust
    id "$BENCH_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$BENCH_USER"
    # buildah as a plain user needs subordinate ids.
    grep -q "^$BENCH_USER:" /etc/subuid || usermod --add-subuids 100000-165535 "$BENCH_USER"
    grep -q "^$BENCH_USER:" /etc/subgid || usermod --add-subgids 100000-165535 "$BENCH_USER"
    install -d -o "$BENCH_USER" -g "$BENCH_USER" -m 0700 "/run/user/$(id -u "$BENCH_USER")"
    # crun 1.8.1 refuses every container while the cgroup2 hierarchy of a
    # v1/v2 hybrid holds a controller; move each to a v1 hierarchy.
    if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
        log "moving cgroup2 controllers to v1 hierarchies (for crun)"
        for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
            mkdir -p "/sys/fs/cgroup/$c"
            mountpoint -q "/sys/fs/cgroup/$c" || mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
        done
    fi
    # runc, crun and hutch give every container a session keyring of its
    # own; the kernel's quota for a plain user (kernel.keys.maxkeys, 200 by
    # default) makes them fail near 200 containers ("disk quota exceeded").
    most=$(printf '%s\n' $SCALE 0 | sort -n | tail -n 1)
    keys=$((most * 2 + 200))
    if [ "$(cat /proc/sys/kernel/keys/maxkeys)" -lt "$keys" ]; then
        log "raising kernel.keys.maxkeys to $keys and maxbytes to $((keys * 100)) (one keyring per container)"
        sysctl -q -w kernel.keys.maxkeys="$keys" kernel.keys.maxbytes="$((keys * 100))"
    fi
    runas() { as "$BENCH_USER" "$@"; }
else
    for tool in crun runc busybox newuidmap /usr/bin/time; do
        command -v "$tool" >/dev/null || die "$tool is missing: run this as root once, or apt-get install it"
    done
    [ "$BUILDAH" = 1 ] && ! command -v buildah >/dev/null && die "buildah is missing (or set BUILDAH=0)"
    runas() { "$@"; }
fi
[ -x "$PY" ] || die "$PY is missing"

if [ -n "${HUTCH:-}" ]; then
    hutch_bin=$(readlink -f "$HUTCH")
    rev="${HUTCH_REV:-$HUTCH}"
else
    rev="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+uncommitted')"
    log "building hutch (release, static: integration/build-release.sh)"
    hutch_bin=$("$repo/integration/build-release.sh")
fi
CRUN=${CRUN:-$(command -v crun)}
RUNC=${RUNC:-$(command -v runc)}
BUSYBOX=/bin/busybox
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' || BUSYBOX=$(command -v busybox)

# ------------------------------------------------------------ work dir, bundles
W=$(mktemp -d /tmp/hutch-bench.XXXXXX)
chmod 755 "$W"
cleanup() {
    # A failed run can leave containers: delete them, then the files.
    for r in "$W"/work/root-*; do
        [ -d "$r" ] || continue
        case "$r" in *-hutch-*) rt=$W/hutch ;; *-crun-*) rt=$CRUN ;; *-runc-*) rt=$RUNC ;; *) continue ;; esac
        for d in "$r"/*/; do
            [ -d "$d" ] && runas "$rt" --root "$r" delete --force "$(basename "$d")" >/dev/null 2>&1 || true
        done
    done
    if [ "${KEEP:-0}" = 1 ]; then log "kept $W"; else rm -rf "$W" 2>/dev/null || true; fi
}
trap cleanup EXIT
install -m 755 "$hutch_bin" "$W/hutch"
cp "$repo/integration/bench-harness.py" "$W/harness.py"

b=$W/bundle
mkdir -p "$b"/rootfs/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,etc,root,run,var/tmp} "$W/sleep" "$W/work"
chmod 1777 "$b/rootfs/tmp" "$b/rootfs/var/tmp"
cp "$BUSYBOX" "$b/rootfs/bin/busybox"
for p in $("$b/rootfs/bin/busybox" --list-full); do
    [ "$p" = bin/busybox ] || ln -sf /bin/busybox "$b/rootfs/$p"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$b/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$b/rootfs/etc/group"
[ "$(id -u)" = 0 ] && chown -R "$BENCH_USER:" "$W"
# hutch stays root's, as installed system-wide: a binary the container's
# user owns makes hutch re-execute from a sealed copy first (CVE-2019-5736),
# which costs a copy of the binary per create, run and exec.
[ "$(id -u)" = 0 ] && chown root: "$W/hutch"
# One config for all three runtimes: runc's rootless template, written as
# the benchmark user (so it maps that user's own uid and gid), no terminal.
runas sh -c "cd '$W' && '$RUNC' spec --rootless"
runas "$PY" - "$W" <<'EOF'
import json, sys
w = sys.argv[1]
c = json.load(open(f"{w}/config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"]["path"] = "rootfs"
json.dump(c, open(f"{w}/bundle/config.json", "w"), indent=1)
c["process"]["args"] = ["sleep", "1000000"]
c["root"]["path"] = f"{w}/bundle/rootfs"
json.dump(c, open(f"{w}/sleep/config.json", "w"), indent=1)
EOF

# ------------------------------------------------------------ measure
log "measuring as $(runas id -un) (uid $(runas id -u)): phases $PHASES"
runas "$PY" "$W/harness.py" --out "$W/raw.json" --work "$W/work" \
    --bundle "$b" --sleep-bundle "$W/sleep" --busybox "$BUSYBOX" \
    --runtime "hutch=$W/hutch" --runtime "crun=$CRUN" --runtime "runc=$RUNC" \
    --rounds "$ROUNDS" --warmup "$WARMUP" --state-entries "$STATE_ENTRIES" \
    --memory-rounds "$MEMORY_ROUNDS" --scale "${SCALE// /,}" \
    --buildah-rounds "$BUILDAH_ROUNDS" --buildah-steps "$BUILDAH_STEPS" --phases "$PHASES" \
    --hutch-rev "$rev"

mkdir -p "$OUT"
cp "$W/raw.json" "$OUT/raw.json"
"$PY" bench/report.py "$OUT/raw.json" "$OUT"
log "wrote $OUT/raw.json, $OUT/results.json, $OUT/results.md, $OUT/chart.svg"
if [ "${PROFILE:-0}" = 1 ]; then
    HUTCH="$W/hutch" BUNDLE="$b" OUT="$OUT/profile" BENCH_USER="$BENCH_USER" integration/bench-profile.sh
fi
echo
cat "$OUT/results.md"
