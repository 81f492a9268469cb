#!/bin/bash
# integration/bench-profile.sh: where a hutch invocation spends its time.
# Run as root (as integration/bench.sh does with PROFILE=1, or alone); the
# commands run as BENCH_USER (default tuser). Writes to OUT (default
# bench/profile):
#
#   sizes.txt             binary size, sections, shared libraries (hutch, crun, runc)
#   time-v.txt            GNU time -v of every operation, hutch, crun and runc
#   strace-c-OP.txt       strace -c -f of each hutch operation (the container
#                         process included for create and run)
#   strace-tt-OP.txt      strace -f -ttt -T timelines of the same
#   strace-c-crun-*.txt   the same counts for crun, to compare
#   callgrind-OP.txt      callgrind_annotate of `hutch state` and `hutch run`
#                         (instruction counts; a symbolized build)
#   ld-statistics.txt     LD_DEBUG=statistics of `hutch state`
#   hyperfine.txt         hutch --version / state / state of a missing id vs /bin/true
#
# Knobs: HUTCH (the release binary to profile; default: integration/build-release.sh builds it),
# HUTCH_SYMBOLS (a build with symbols for callgrind; default: built into
# target/bench-profile with the release profile, debug line tables, no strip),
# BUNDLE (a /bin/true bundle the user can read; default: made here).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
. integration/lib.sh
[ "$(id -u)" = 0 ] || die "run as root (the commands run as BENCH_USER)"
BENCH_USER=${BENCH_USER:-tuser}
OUT=$(mkdir -p "${OUT:-bench/profile}" && cd "${OUT:-bench/profile}" && pwd)
ensure_packages strace valgrind time hyperfine crun runc busybox-static
HUTCH=$(readlink -f "${HUTCH:-$(integration/build-release.sh)}")
[ -x "$HUTCH" ] || die "no hutch binary at $HUTCH (build it, or set HUTCH)"
if [ -z "${HUTCH_SYMBOLS:-}" ]; then
    log "building hutch with symbols (release profile, debug line tables, not stripped)"
    CARGO_PROFILE_SYMBOLS_DEBUG=line-tables-only \
        cargo build --profile symbols --locked --quiet --target-dir target/bench-profile
    HUTCH_SYMBOLS=$repo/target/bench-profile/$(rustc -vV | sed -n 's/^host: //p')/symbols/hutch
fi
CRUN=$(command -v crun)
RUNC=$(command -v runc)

P=$(mktemp -d /tmp/hutch-profile.XXXXXX)
chmod 755 "$P"
trap 'rm -rf "$P"' EXIT
install -m 755 "$HUTCH" "$P/hutch"
install -m 755 "$HUTCH_SYMBOLS" "$P/hutch-sym"
if [ -z "${BUNDLE:-}" ]; then
    BUNDLE=$P/bundle
    mkdir -p "$BUNDLE"/rootfs/{bin,dev,proc,sys,tmp,etc,root}
    cp /bin/busybox "$BUNDLE/rootfs/bin/busybox"
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$BUNDLE/rootfs/bin/$a"; done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$BUNDLE/rootfs/etc/passwd"
    chown -R "$BENCH_USER:" "$P"
    as "$BENCH_USER" sh -c "cd '$P' && '$RUNC' spec --rootless"
    as "$BENCH_USER" /usr/bin/python3 -c "
import json; c = json.load(open('$P/config.json'))
c['process']['terminal'] = False; c['process']['args'] = ['/bin/true']; c['root']['path'] = 'rootfs'
json.dump(c, open('$BUNDLE/config.json', 'w'))
c['process']['args'] = ['sleep', '1000000']; c['root']['path'] = '$BUNDLE/rootfs'
import os; os.makedirs('$P/sleep', exist_ok=True); json.dump(c, open('$P/sleep/config.json', 'w'))"
else
    BUNDLE=$(readlink -f "$BUNDLE")
    mkdir -p "$P/sleep"
    /usr/bin/python3 -c "
import json; c = json.load(open('$BUNDLE/config.json'))
c['process']['args'] = ['sleep', '1000000']; c['root']['path'] = '$BUNDLE/' + c['root']['path'] if not c['root']['path'].startswith('/') else c['root']['path']
json.dump(c, open('$P/sleep/config.json', 'w'))"
    chown -R "$BENCH_USER:" "$P"
fi
SLEEP=$P/sleep

# The measuring script runs as the user: tini -s makes it a child
# subreaper, so the container processes it starts are reaped promptly.
cat >"$P/profile.sh" <<'EOF'
#!/bin/bash
set -u
P=$1 OUT=$2 BUNDLE=$3 SLEEP=$4 CRUN=$5 RUNC=$6
H=$P/hutch; HS=$P/hutch-sym
cd "$P"
R() { echo "$P/root-$1"; }
for r in hutch hsym crun runc; do mkdir -p "$(R $r)"; done
waitfile() { for _ in $(seq 500); do [ -s "$1" ] && return 0; sleep 0.01; done; return 1; }
waitgone() { while kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; do sleep 0.005; done; }

# strace of each operation; create is traced with -f in the background, so
# the container process's own start path (which runs during `start`) lands
# in the create trace; `start` itself is traced on its own.
trace_lifecycle() {  # NAME RT ROOT MODE(-c or -tt)
    local name=$1 rt=$2 root=$3 mode=$4 opt
    if [ "$mode" = -c ]; then opt=(-c -f -o); else opt=(-f -ttt -T -o); fi
    local ext=${mode#-}
    rm -f "$P/pid"
    strace "${opt[@]}" "$OUT/strace-$ext-$name-create+container.txt" "$rt" --root "$root" create --bundle "$BUNDLE" --pid-file "$P/pid" lc &
    local spid=$!
    waitfile "$P/pid"; sleep 0.2
    strace "${opt[@]}" "$OUT/strace-$ext-$name-start.txt" "$rt" --root "$root" start lc
    wait "$spid"
    strace "${opt[@]}" "$OUT/strace-$ext-$name-state.txt" "$rt" --root "$root" state lc >/dev/null
    strace "${opt[@]}" "$OUT/strace-$ext-$name-delete.txt" "$rt" --root "$root" delete lc
    strace "${opt[@]}" "$OUT/strace-$ext-$name-run.txt" "$rt" --root "$root" run --bundle "$BUNDLE" rn
}
trace_lifecycle hutch "$H" "$(R hutch)" -c
trace_lifecycle hutch "$H" "$(R hutch)" -tt
trace_lifecycle crun "$CRUN" "$(R crun)" -c
trace_lifecycle crun "$CRUN" "$(R crun)" -tt

# a running container for state
"$H" --root "$(R hsym)" create --bundle "$SLEEP" --pid-file "$P/pid-s" st && "$H" --root "$(R hsym)" start st
valgrind --tool=callgrind --callgrind-out-file="$P/cg.state" "$HS" --root "$(R hsym)" state st >/dev/null 2>"$P/vg-state.err"
callgrind_annotate --inclusive=yes "$P/cg.state" 2>/dev/null | head -60 >"$OUT/callgrind-state-inclusive.txt"
callgrind_annotate "$P/cg.state" 2>/dev/null | head -60 >"$OUT/callgrind-state.txt"
valgrind --tool=callgrind --callgrind-out-file="$P/cg.run" "$HS" --root "$(R hsym)" run --bundle "$BUNDLE" vr >/dev/null 2>"$P/vg-run.err"
echo "exit $?" >>"$P/vg-run.err"
callgrind_annotate --inclusive=yes "$P/cg.run" 2>/dev/null | head -80 >"$OUT/callgrind-run-inclusive.txt"
callgrind_annotate "$P/cg.run" 2>/dev/null | head -60 >"$OUT/callgrind-run.txt"
LD_DEBUG=statistics "$H" --root "$(R hsym)" state st 2>"$OUT/ld-statistics.txt" >/dev/null

hyperfine -N -i --warmup 20 --runs 300 --export-markdown "$OUT/hyperfine.md" \
    "/bin/true" "$H --version" "$H --root $(R hsym) state st" "$H --root $(R hsym) state nosuch" \
    "$CRUN --version" >"$OUT/hyperfine.txt" 2>&1 || true
"$H" --root "$(R hsym)" delete --force st

# GNU time -v of each operation
{
for rt in "$H" "$CRUN" "$RUNC"; do
    root=$P/tv-$(basename "$rt"); mkdir -p "$root"
    # to a file, not a pipe: a created container keeps create's stderr open
    tv() { echo "== $(basename "$rt") $1"; /usr/bin/time -v -o "$P/tv.out" "$rt" --root "$root" "${@:2}" >/dev/null 2>&1
        grep -E 'Elapsed|Maximum resident|Minor|Voluntary|Involuntary|Exit status' "$P/tv.out"; }
    rm -f "$P/pid-t"
    tv create create --bundle "$SLEEP" --pid-file "$P/pid-t" tv
    tv start start tv
    tv state state tv
    tv list list
    tv kill kill tv KILL
    waitgone "$(cat "$P/pid-t")"
    tv delete delete tv
    tv run run --bundle "$BUNDLE" tvr
done
echo "== /bin/true"; /usr/bin/time -v /bin/true 2>&1 | grep -E 'Maximum resident'
} >"$OUT/time-v.txt" 2>&1
EOF
chmod 755 "$P/profile.sh"
chown "$BENCH_USER:" "$P/profile.sh"
install -d -o "$BENCH_USER" "$P/out"
log "profiling as $BENCH_USER into $OUT"
as "$BENCH_USER" tini -s -- "$P/profile.sh" "$P" "$P/out" "$BUNDLE" "$SLEEP" "$CRUN" "$RUNC" || true
cp "$P"/out/* "$OUT"/

{
    for b in "$HUTCH" "$CRUN" "$RUNC"; do
        echo "== $b"; ls -l "$(readlink -f "$b")"; size "$(readlink -f "$b")"
        ldd "$(readlink -f "$b")" 2>&1 | sed 's/^/    /'
    done
} >"$OUT/sizes.txt"
log "wrote $OUT"
ls "$OUT"
