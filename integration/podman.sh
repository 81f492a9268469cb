#!/bin/bash
# integration/podman.sh HUTCH_BIN: run containers with `podman
# --runtime=HUTCH_BIN` as a plain user, and check what they see and what
# podman gets back, case by case, against crun doing the same.
#
# Run as a plain user; integration/test.sh runs it as tuser (subordinate
# ids) and as tsingle (none). Everything lives in a private podman storage
# under a mktemp directory, removed at the end: `--root`/`--runroot` there,
# the vfs driver (no fuse-overlayfs needed), the cgroupfs manager (no
# systemd user session here), file events (no journald), and a private
# containers.conf that lists the runtime's name in runtime_supports_json
# (podman then passes it `--log-format=json --log FILE` and reads its
# errors from there, as it does for crun) and in the list of runtimes that
# may run without cgroups (`podman run --cgroups=disabled`: podman then
# passes `--cgroup-manager disabled`). Plain `podman run` needs no
# --cgroups=disabled here: on a cgroup v1 or hybrid host, rootless podman
# with cgroupfs writes no cgroupsPath and no resources into the config. No
# registry and no network are needed: the image is imported from a
# busybox-static tarball, and containers use `--network=none` or
# `--network=host` (rootless slirp4netns needs /dev/net/tun, root-only
# here).
#
# Each case runs with HUTCH_BIN and, unless COMPARE=0, with crun
# (CRUN=/usr/bin/crun); only HUTCH_BIN's results count, crun's are shown
# in brackets: "[crun: same]" or what crun got instead. Both runtimes are
# called through a wrapper that logs podman's and conmon's argv (printed at
# the end, ids elided) and then execs the runtime unchanged; the wrapper
# is named after the runtime, since podman keys its lists on that name.
# KEEP=1 keeps the directory (every command's output is in out/).
#
# The last line is "N passed, M failed"; the exit status is non-zero when
# anything failed.
set -uo pipefail

die() { printf 'error: %s\n' "$*" >&2; exit 2; }
[ $# -eq 1 ] || die "usage: $0 HUTCH_BIN"
HUTCH=$(readlink -f "$1") || die "no runtime at $1"
[ -x "$HUTCH" ] || die "runtime $HUTCH is not executable"
[ "$(id -u)" != 0 ] || die "run as a plain user (integration/test.sh does: as tuser $0 ...)"
[ -n "${XDG_RUNTIME_DIR:-}" ] && [ -d "$XDG_RUNTIME_DIR" ] || die "XDG_RUNTIME_DIR must name an existing directory"
for tool in podman conmon script pgrep timeout tar; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
BUSYBOX=/bin/busybox
"$BUSYBOX" --list >/dev/null 2>&1 || die "busybox-static is missing ($BUSYBOX)"
CRUN=${CRUN:-/usr/bin/crun}
COMPARE=${COMPARE:-1}
[ -x "$CRUN" ] || COMPARE=0

me=$(id -un)
uid=$(id -u)
multi=0
grep -q "^$me:" /etc/subuid 2>/dev/null && multi=1
name=$(basename "$HUTCH")
# Unique, so that the processes of this run can be told from others'.
secs=$((8000 + $$ % 1000))

W=$(mktemp -d "${TMPDIR:-/tmp}/podman-it.XXXXXX") || die "mktemp failed"
chmod 755 "$W"
mkdir -p "$W/out" "$W/log" "$W/tmp" "$W/libpod" "$W/vol" "$W/volro" "$W/rt/hutch" "$W/rt/crun"
export TMPDIR="$W/tmp"

# ------------------------------------------------------------ podman setup
# The runtime wrappers: log argv, then exec the runtime (same pid and fds).
# They run in podman's user namespace, as its root.
for rt in hutch crun; do
    real=$HUTCH; [ "$rt" = crun ] && real=$CRUN
    cat >"$W/rt/$rt/$([ "$rt" = hutch ] && echo "$name" || basename "$CRUN")" <<EOF
#!/bin/sh
{ printf '%s' "\$(cat /proc/\$PPID/comm 2>/dev/null):"; for a in "\$@"; do printf ' %s' "\$a"; done; echo; } >>"$W/log/argv-$rt.log"
exec "$real" "\$@"
EOF
done
chmod 755 "$W"/rt/*/*
RT_hutch=$(ls -d "$W"/rt/hutch/*)
RT_crun=$(ls -d "$W"/rt/crun/*)
cat >"$W/containers.conf" <<EOF
# Debian's defaults (/usr/share/containers/containers.conf), which this
# file replaces: podman's built-in ones differ.
[containers]
default_capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE",
                        "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]
default_sysctls = ["net.ipv4.ping_group_range=0 0"]

[engine]
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "$name"]
# podman 4.3 reads the first spelling, later ones the second.
runtime_supports_nocgroup = ["crun", "krun", "$name"]
runtime_supports_nocgroups = ["crun", "krun", "$name"]
EOF
cat >"$W/storage.conf" <<EOF
[storage]
driver = "vfs"
EOF
export CONTAINERS_CONF="$W/containers.conf" CONTAINERS_STORAGE_CONF="$W/storage.conf"
# podman with this run's storage and settings, as a command (script(1)
# runs it too).
cat >"$W/podman" <<EOF
#!/bin/sh
exec podman --root "$W/root" --runroot "$W/runroot" --storage-driver vfs \\
    --cgroup-manager cgroupfs --events-backend file --tmpdir "$W/libpod" "\$@"
EOF
chmod 755 "$W/podman"
P() { timeout -k 5 60 "$W/podman" "$@"; }

cleanup() {
    P rm -a -f -t 0 >/dev/null 2>&1
    # vfs layers hold files owned by subordinate ids: remove them inside
    # podman's user namespace.
    P unshare rm -rf "$W" >/dev/null 2>&1
    rm -rf "$W" 2>/dev/null
}
if [ "${KEEP:-}" = 1 ]; then trap 'echo "# kept $W"' EXIT; else trap cleanup EXIT; fi

passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
show() { [ -s "$1" ] && tail -n 8 "$1" | sed 's/^/     | /'; }

RTS="hutch"

# prun TAG RT ARGS...: `podman run --rm --runtime=RT ARGS`; stdout, stderr
# and status to $W/out/TAG.RT.{out,err,rc}.
prun() {
    local tag=$1 rt=$2; shift 2
    local rtp; rtp=$([ "$rt" = hutch ] && echo "$RT_hutch" || echo "$RT_crun")
    P run --rm --runtime="$rtp" --pull=never "$@" >"$W/out/$tag.$rt.out" 2>"$W/out/$tag.$rt.err" </dev/null
    echo $? >"$W/out/$tag.$rt.rc"
}
# both TAG ARGS...: prun with every runtime compared.
both() { local tag=$1 rt; shift; for rt in $RTS; do prun "$tag" "$rt" "$@"; done; }
# What a runtime's run produced (carriage returns dropped).
out() { tr -d '\r' <"$W/out/$1.$rt.out"; }
err() { tr -d '\r' <"$W/out/$1.$rt.err"; }
rc() { cat "$W/out/$1.$rt.rc"; }

# check NAME WANT GOT: a plain assertion.
check() {
    if [ "$2" = "$3" ]; then ok "$1"
    else bad "$1: want '$2', got '$(printf '%s' "$3" | tr '\n' '|')'"; fi
}
# expect NAME WANT EXPR [FILE]: EXPR, evaluated with rt=hutch, must print
# WANT; its value with rt=crun is shown for comparison. FILE (with RT for
# the runtime's name) is shown after a failure.
expect() {
    local name=$1 want=$2 expr=$3 file=${4:-} got note="" cgot
    if [[ " $RTS " == *" crun "* ]]; then
        rt=crun; cgot=$(eval "$expr" 2>&1)
        if [ "$cgot" = "$want" ]; then note=" [crun: same]"
        else note=" [crun: '$(printf '%s' "$cgot" | tr '\n' '|' | cut -c1-120)']"; fi
    fi
    rt=hutch; got=$(eval "$expr" 2>&1)
    if [ "$got" = "$want" ]; then
        ok "$name$note"
    else
        bad "$name: want '$want', got '$(printf '%s' "$got" | tr '\n' '|')'$note"
        [ -n "$file" ] && show "${file//RT/hutch}"
    fi
}

echo "# podman $(podman --version | cut -d' ' -f3) with $HUTCH as $me (uid $uid, $([ $multi = 1 ] && echo 'subordinate ids' || echo 'single id'))$([ "$COMPARE" = 1 ] && echo ", compared with $CRUN")"
t0=$(date +%s)

# ------------------------------------------------------------ image
base="$W/base"
mkdir -p "$base/bin" "$base/etc" "$base/root" "$base/home/app" "$base/tmp" "$base/var/tmp"
cp "$BUSYBOX" "$base/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$base/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$base/etc/passwd"
printf 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n' >"$base/etc/group"
chmod 1777 "$base/tmp" "$base/var/tmp" "$base/home/app"
# Owned by root of the image whoever builds it (tsingle maps no other id).
tar --owner=0 --group=0 --numeric-owner -C "$base" -cf "$W/base.tar" .
IMG=localhost/hutch-podman-it
if P import --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' --change 'ENV IMGVAR=from-image' \
    "$W/base.tar" "$IMG" >"$W/out/import.log" 2>&1; then
    ok "image imported from a busybox-static tarball"
else
    bad "cannot import the image"; show "$W/out/import.log"
    echo "$passed passed, $failed failed"; exit 1
fi
N="--network=none"
if [ "$COMPARE" = 1 ]; then
    if P run --rm --runtime="$RT_crun" --pull=never $N "$IMG" true >"$W/out/crun-probe.log" 2>&1; then
        RTS="hutch crun"
    else
        echo "# $CRUN cannot run a container here: no comparison"; show "$W/out/crun-probe.log"
    fi
fi

# ------------------------------------------------------------ run: output, status
both hello $N "$IMG" sh -c 'echo hello; echo to-stderr >&2'
expect "run: output reaches podman" "hello" 'out hello' "$W/out/hello.RT.err"
expect "run: stderr reaches podman's stderr" "to-stderr" 'err hello | grep -v "level=warning"'
expect "run: exit status 0" "0" 'rc hello'
both exit3 $N "$IMG" sh -c 'exit 3'
expect "run: exit status 3 comes back" "3" 'rc exit3' "$W/out/exit3.RT.err"
for rt in $RTS; do
    echo piped-input | P run --rm -i --runtime="$([ "$rt" = hutch ] && echo "$RT_hutch" || echo "$RT_crun")" \
        --pull=never $N "$IMG" cat >"$W/out/stdin.$rt.out" 2>"$W/out/stdin.$rt.err"
    echo $? >"$W/out/stdin.$rt.rc"
done
expect "run -i: stdin reaches the container" "piped-input:0" 'echo "$(out stdin):$(rc stdin)"' "$W/out/stdin.RT.err"
both missing $N "$IMG" /no/such/program
expect "run of a missing program: status 127" "127" 'rc missing' "$W/out/missing.RT.err"
expect "run of a missing program: podman names it" "1" 'err missing | grep -c "/no/such/program"'
both noexec $N "$IMG" /etc/passwd
expect "run of a file that cannot run: status 126" "126" 'rc noexec' "$W/out/noexec.RT.err"
expect "run of a file that cannot run: permission denied" "1" 'err noexec | grep -ci "permission denied"'

# Without the runtime's name in runtime_supports_json podman passes no
# --log and takes the error text from the runtime's stderr instead.
# (Its argv goes to a log of its own.)
sed "s/, \"$name\"]/]/" "$W/containers.conf" >"$W/containers-nojson.conf"
n0=$(cat "$W/log/argv-hutch.log" 2>/dev/null | wc -l)
CONTAINERS_CONF="$W/containers-nojson.conf" prun nojson hutch $N "$IMG" /no/such/program
tail -n +$((n0 + 1)) "$W/log/argv-hutch.log" >"$W/log/argv-nojson.log"
head -n "$n0" "$W/log/argv-hutch.log" >"$W/log/argv.tmp" && mv "$W/log/argv.tmp" "$W/log/argv-hutch.log"
rt=hutch
check "not in runtime_supports_json: a missing program still gives 127" "127" "$(rc nojson)"
check "not in runtime_supports_json: no --log for create" "yes" \
    "$(grep -qE '^conmon: create --bundle [^ ]+ --pid-file [^ ]+ [0-9a-f]{64}$' "$W/log/argv-nojson.log" && echo yes)"
echo "#    podman's message then: $(grep -m1 '^Error' "$W/out/nojson.hutch.err")"

# ------------------------------------------------------------ process settings
both env $N -e FOO=bar -e 'SPACED=a b' "$IMG" sh -c 'echo "$FOO|$SPACED|$IMGVAR|$HOME|$container"'
expect "-e sets variables, image ENV and HOME kept" "bar|a b|from-image|/root|podman" 'out env' "$W/out/env.RT.err"
both wd $N -w /home/app "$IMG" pwd
expect "-w sets the working directory" "/home/app" 'out wd' "$W/out/wd.RT.err"
both root $N "$IMG" sh -c 'echo "$(id -u):$(id -g)"; grep CapEff /proc/self/status'
expect "default user is root of the user namespace with podman's capabilities" \
    "$(printf '0:0\nCapEff:\t00000000800405fb')" 'out root' "$W/out/root.RT.err"
both user $N -u 1000:1000 "$IMG" sh -c 'echo "$(id -u):$(id -g):$HOME"; touch /tmp/f && stat -c %u /tmp/f; grep CapEff /proc/self/status'
if [ "$multi" = 1 ]; then
    expect "-u 1000:1000 runs as 1000 with HOME from the image" \
        "$(printf '1000:1000:/home/app\n1000\nCapEff:\t0000000000000000')" 'out user' "$W/out/user.RT.err"
else
    # One id only: 1000 is not mapped. crun fails at create, hutch at
    # start; podman says 126 for both.
    expect "-u 1000:1000 (not mapped) fails with status 126" "126" 'rc user' "$W/out/user.RT.err"
    expect "-u 1000:1000 (not mapped): the error names the id" "1" 'err user | grep -c "1000"'
    expect "-u 1000:1000 (not mapped): nothing ran" "" 'out user'
fi
both nobody $N -u nobody "$IMG" id
if [ "$multi" = 1 ]; then
    expect "-u nobody (a name)" "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)" 'out nobody' "$W/out/nobody.RT.err"
else
    expect "-u nobody (not mapped) fails with status 126" "126" 'rc nobody' "$W/out/nobody.RT.err"
fi
both hostname $N --hostname=box "$IMG" sh -c 'hostname; cat /etc/hostname'
expect "--hostname" "$(printf 'box\nbox')" 'out hostname' "$W/out/hostname.RT.err"
both sysctl $N --sysctl net.ipv4.ip_unprivileged_port_start=80 "$IMG" \
    sh -c 'cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range'
expect "--sysctl, and podman's default ping_group_range" "$(printf '80\n0\t0')" 'out sysctl' "$W/out/sysctl.RT.err"
both ulimit $N --ulimit nofile=100:200 "$IMG" sh -c 'echo "$(ulimit -n):$(ulimit -Hn)"'
expect "--ulimit" "100:200" 'out ulimit' "$W/out/ulimit.RT.err"

# ------------------------------------------------------------ mounts
echo "host-data" >"$W/vol/in"
echo "host-data-ro" >"$W/volro/in"
chmod 777 "$W/vol" "$W/volro"
for rt in $RTS; do
    rm -f "$W/vol/out" "$W/volro/out"
    prun vol "$rt" $N -v "$W/vol:/data" -v "$W/volro:/ro:ro" "$IMG" sh -c \
        'cat /data/in; echo from-container >/data/out && echo rw; cat /ro/in; (echo x >/ro/out) 2>/dev/null && echo ro-written || echo ro-refused'
    cat "$W/vol/out" >"$W/out/vol.$rt.host" 2>&1
    ls "$W/volro" >"$W/out/volro.$rt.host" 2>&1
done
expect "-v host dir: read and written from the container" "$(printf 'host-data\nrw\nhost-data-ro\nro-refused')" 'out vol' "$W/out/vol.RT.err"
expect "-v host dir: the host sees the container's file" "from-container" 'cat "$W/out/vol.$rt.host"'
expect "-v :ro: nothing lands on the host" "in" 'cat "$W/out/volro.$rt.host"'
both readonly $N --read-only "$IMG" sh -c \
    '(touch /probe) 2>/dev/null && echo root-rw || echo root-ro; touch /tmp/a /var/tmp/a /run/a && echo tmp-rw; grep " / " /proc/mounts | cut -d" " -f4 | cut -d, -f1'
expect "--read-only: root read-only, /tmp /var/tmp /run writable" "$(printf 'root-ro\ntmp-rw\nro')" 'out readonly' "$W/out/readonly.RT.err"
both tmpfs $N --tmpfs /x "$IMG" sh -c 'echo data >/x/f && cat /x/f; grep " /x " /proc/mounts | cut -d" " -f3'
expect "--tmpfs /x" "$(printf 'data\ntmpfs')" 'out tmpfs' "$W/out/tmpfs.RT.err"
both sysro $N "$IMG" sh -c \
    '(echo 1 >/proc/sys/kernel/hostname) 2>/dev/null && echo procsys-rw || echo procsys-ro; awk '"'"'$5 ~ "^/sys/fs/cgroup/" && $6 !~ /^ro/ {print $5}'"'"' /proc/self/mountinfo | head -n 3; wc -c </proc/timer_list; ls -A /sys/firmware | wc -l'
expect "/proc/sys and cgroup hierarchies read-only, masked paths empty" "$(printf 'procsys-ro\n0\n0')" 'out sysro' "$W/out/sysro.RT.err"

# ------------------------------------------------------------ network
both netnone --network=none "$IMG" sh -c \
    'cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d " "; ip -o link show lo | grep -o "LOOPBACK,UP"
     (sleep 10 | nc -l -p 5555 >/tmp/got &)
     for i in $(seq 30); do echo over-lo | nc -w 1 127.0.0.1 5555 2>/dev/null && break; sleep 0.1; done
     for i in $(seq 20); do [ -s /tmp/got ] && break; sleep 0.1; done; cat /tmp/got'
expect "--network=none: only lo, up, and 127.0.0.1 reachable" "$(printf 'lo\nLOOPBACK,UP\nover-lo')" 'out netnone' "$W/out/netnone.RT.err"
host_ifs=$(cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort | tr '\n' ' ')
both nethost --network=host "$IMG" sh -c 'cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d " " | sort | tr "\n" " "'
expect "--network=host: the host's interfaces" "$host_ifs" 'out nethost' "$W/out/nethost.RT.err"
both nocg $N --cgroups=disabled "$IMG" echo no-cgroups
expect "--cgroups=disabled" "no-cgroups" 'out nocg' "$W/out/nocg.RT.err"

# ------------------------------------------------------------ terminal
# with_tty CMD OUT: CMD under script(1), which gives it a terminal.
# script's stdin stays open meanwhile: at its end, script would close the
# terminal and the container would lose it (with crun too).
with_tty() {
    local out=$2 fd spid
    exec {fd}< <(sleep 60)
    spid=$!
    timeout -k 5 60 script -qec "$1" /dev/null <&"$fd" >"$out" 2>&1
    echo $? >"$out.rc"
    kill "$spid" 2>/dev/null
    exec {fd}<&-
}
for rt in $RTS; do
    rtp=$([ "$rt" = hutch ] && echo "$RT_hutch" || echo "$RT_crun")
    with_tty "$W/podman run --rm -it --runtime=$rtp --pull=never $N $IMG sh -c 'tty; test -t 0 && test -t 1 && echo isatty; exit 5'" \
        "$W/out/tty.$rt.out"
    mv "$W/out/tty.$rt.out.rc" "$W/out/tty.$rt.rc"
done
expect "run -it: stdin and stdout are a terminal" "1" 'out tty | grep -c "^isatty$"' "$W/out/tty.RT.out"
expect "run -it: exit status 5 comes back" "5" 'rc tty'
expect "run -it: the terminal is /dev/pts/0 of its devpts" "1" 'out tty | grep -c "^/dev/pts/0$"' "$W/out/tty.RT.out"
for rt in $RTS; do echo "#    run -it with $rt: tty says $(out tty | grep '^/dev/' | head -n 1)"; done

# ------------------------------------------------------------ detached
# started ID: wait until the container has said "started" (its signal
# handlers are in place then: as pid 1 it ignores signals it has none for).
started() {
    local i
    for i in $(seq 50); do
        P logs "$1" 2>/dev/null | grep -q '^started' && return 0
        sleep 0.1
    done
    return 1
}
for rt in $RTS; do
    rtp=$([ "$rt" = hutch ] && echo "$RT_hutch" || echo "$RT_crun")
    o="$W/out/d.$rt"
    cid=$(P run -d --runtime="$rtp" --pull=never $N "$IMG" sh -c \
        "trap 'exit 7' TERM; echo started; while :; do sleep 0.1; done" 2>"$o.run.err")
    echo $? >"$o.run.rc"
    echo "$cid" >"$o.cid"
    started "$cid"
    P inspect --format '{{.State.Status}}' "$cid" >"$o.status" 2>&1
    P logs "$cid" >"$o.logs" 2>&1
    P exec "$cid" sh -c 'echo "$(id -u):$([ $$ -ne 1 ] && echo not-pid-1):$(tr "\0" " " </proc/1/cmdline)"' >"$o.exec" 2>&1
    P exec -e X=1 -w /tmp -u 0 "$cid" sh -c 'echo "$X:$(pwd)"; exit 4' >"$o.exec2" 2>&1
    echo $? >"$o.exec2.rc"
    echo exec-input | P exec -i "$cid" cat >"$o.execi" 2>&1
    P exec "$cid" /no/such/program >"$o.exec127" 2>&1
    echo $? >"$o.exec127.rc"
    with_tty "$W/podman exec -it $cid sh -c 'tty; test -t 0 && echo isatty; exit 6'" "$o.execit"
    s=$(date +%s%N)
    P stop -t 10 "$cid" >"$o.stop" 2>&1
    echo "$(( ($(date +%s%N) - s) / 1000000 ))" >"$o.stop.ms"
    P inspect --format '{{.State.Status}}:{{.State.ExitCode}}' "$cid" >"$o.stopped" 2>&1
    P rm "$cid" >/dev/null 2>&1
done
expect "run -d: a container id" "1" 'grep -Ecx "[0-9a-f]{64}" "$W/out/d.$rt.cid"' "$W/out/d.RT.run.err"
expect "run -d: running, and its output in podman logs" "running:started" 'echo "$(cat "$W/out/d.$rt.status"):$(cat "$W/out/d.$rt.logs")"'
expect "exec: runs in the container, as root, not as pid 1" \
    "0:not-pid-1:sh -c trap 'exit 7' TERM; echo started; while :; do sleep 0.1; done " \
    'cat "$W/out/d.$rt.exec"' "$W/out/d.RT.exec"
expect "exec -e -w -u: environment, directory, exit status 4" "1:/tmp:4" 'echo "$(cat "$W/out/d.$rt.exec2"):$(cat "$W/out/d.$rt.exec2.rc")"'
expect "exec -i: stdin reaches the program" "exec-input" 'cat "$W/out/d.$rt.execi"'
expect "exec of a missing program: status 127" "127" 'cat "$W/out/d.$rt.exec127.rc"' "$W/out/d.RT.exec127"
expect "exec -it: a terminal, exit status 6" "1:6" 'echo "$(tr -d "\r" <"$W/out/d.$rt.execit" | grep -c "^isatty$"):$(cat "$W/out/d.$rt.execit.rc")"' "$W/out/d.RT.execit"
expect "stop: the container's TERM handler runs (exit status 7)" "exited:7" 'cat "$W/out/d.$rt.stopped"' "$W/out/d.RT.stop"
expect "stop: without waiting for the timeout" "yes" '[ "$(cat "$W/out/d.$rt.stop.ms")" -lt 5000 ] && echo yes || echo "took $(cat "$W/out/d.$rt.stop.ms") ms"'

for rt in $RTS; do
    rtp=$([ "$rt" = hutch ] && echo "$RT_hutch" || echo "$RT_crun")
    o="$W/out/k.$rt"
    # sleep as pid 1 ignores TERM: stop must fall back to KILL.
    cid=$(P run -d --runtime="$rtp" --pull=never $N "$IMG" sleep "$secs" 2>"$o.err")
    P stop -t 1 "$cid" >>"$o.err" 2>&1
    P inspect --format '{{.State.Status}}:{{.State.ExitCode}}' "$cid" >"$o.stop1" 2>&1
    P rm "$cid" >/dev/null 2>&1
    cid=$(P run -d --runtime="$rtp" --pull=never $N "$IMG" sleep "$secs" 2>>"$o.err")
    P kill "$cid" >>"$o.err" 2>&1
    P wait "$cid" >"$o.kill" 2>&1
    P inspect --format '{{.State.Status}}:{{.State.ExitCode}}' "$cid" >>"$o.kill" 2>&1
    P rm "$cid" >/dev/null 2>&1
    cid=$(P run -d --runtime="$rtp" --pull=never $N "$IMG" sh -c \
        "trap 'exit 10' USR1; echo started; while :; do sleep 0.1; done" 2>>"$o.err")
    started "$cid"
    P kill -s USR1 "$cid" >>"$o.err" 2>&1
    P wait "$cid" >"$o.usr1" 2>&1
    P rm "$cid" >/dev/null 2>&1
    cid=$(P run -d --runtime="$rtp" --pull=never $N "$IMG" sleep "$secs" 2>>"$o.err")
    P rm -f -t 0 "$cid" >"$o.rmf" 2>&1
    echo $? >>"$o.rmf"
    P container exists "$cid" 2>/dev/null && echo exists >>"$o.rmf"
done
expect "stop -t 1 of a container that ignores TERM: killed" "exited:137" 'cat "$W/out/k.$rt.stop1"' "$W/out/k.RT.err"
expect "kill: SIGKILL, exit status 137" "$(printf '137\nexited:137')" 'cat "$W/out/k.$rt.kill"' "$W/out/k.RT.err"
expect "kill -s USR1: the signal reaches the container" "10" 'cat "$W/out/k.$rt.usr1"' "$W/out/k.RT.err"
expect "rm -f of a running container: removed" "0" 'tail -n 1 "$W/out/k.$rt.rmf"' "$W/out/k.RT.rmf"

# ------------------------------------------------------------ nothing left
# conmon's exit command (podman container cleanup) may still be running.
left=""
for _ in $(seq 50); do
    left=$(pgrep -u "$uid" -af "$W/|sleep $secs\$" 2>/dev/null | while read -r pid rest; do
        [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ] || echo "$pid $rest"; done)
    [ -z "$left" ] && break
    sleep 0.2
done
check "no conmon, runtime or container process left" "" "$(echo "$left" | cut -c1-150)"
check "podman knows no container" "" "$(P ps -a -q --external 2>&1)"
ids=$(grep -Eo ' create .* [0-9a-f]{64}$' "$W/log/argv-hutch.log" 2>/dev/null | grep -Eo '[0-9a-f]{64}$' | sort -u)
check "podman created containers through $name" "yes" "$([ -n "$ids" ] && echo yes)"
left=""
for id in $ids; do
    { [ -e "$XDG_RUNTIME_DIR/$name/$id" ] || "$HUTCH" state "$id" >/dev/null 2>&1; } && left="$left $id"
done
check "no state left in $XDG_RUNTIME_DIR/$name" "" "$left"

# ------------------------------------------------------------ argv
# What podman and conmon ran, ids and paths elided, once per shape.
shapes() {
    sed -E -e "s#$W#\$W#g" -e 's/[0-9a-f]{64}/ID/g' -e 's/exec-process-[0-9]+/exec-process-N/' \
        -e 's#/tmp/conmon-term\.[A-Za-z0-9]+#CONSOLE#' -e 's/ (kill( --all)? ID) [0-9]+$/ \1 SIG/' \
        "$W/log/argv-$1.log" 2>/dev/null | sort | uniq -c | sort -rn | sed 's/^ *[0-9]* /#      /'
}
echo "#    argv podman and conmon gave $name (ppid comm: argv):"
shapes hutch
create=$(grep -m1 -E '^conmon: .* create ' "$W/log/argv-hutch.log")
check "podman passes --log-format=json --log FILE to create" "yes" \
    "$(echo "$create" | grep -qE "^conmon: --log-format=json --log [^ ]+/oci-log create --bundle [^ ]+ --pid-file [^ ]+ [0-9a-f]{64}$" && echo yes)"
if [[ " $RTS " == *" crun "* ]]; then
    if diff <(shapes hutch | sed 's/^#      //' | sort) <(shapes crun | sed 's/^#      //' | sort) >"$W/out/argv.diff"; then
        echo "#    crun was called with the same argv shapes"
    else
        echo "#    crun's argv shapes differ (< $name, > crun):"; sed 's/^/#      /' "$W/out/argv.diff"
    fi
fi

echo "# took $(($(date +%s) - t0)) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
