#!/bin/bash
# integration/buildah.sh RUNTIME: build images with `buildah bud
# --runtime=RUNTIME` as a plain user, and check what the RUN steps saw, what
# buildah got back from them, and what landed in the images.
#
# Run as a plain user; integration/test.sh runs it as tuser (subordinate ids)
# and as tsingle (none). RUNTIME is hutch, but any OCI runtime will do: run
# it with /usr/bin/crun or /usr/sbin/runc to check the expectations
# themselves (all pass with crun; runc's error for an unmapped USER does
# not name the id, which one check asks of hutch). Everything lives in a
# private buildah storage under a mktemp directory that is removed at the
# end. No registry is needed: the base image is made from busybox-static.
# KEEP=1 keeps that directory, with every build's output in out/.
#
# The last line is "N passed, M failed"; the exit status is non-zero when
# anything failed.
set -uo pipefail

die() { printf 'error: %s\n' "$*" >&2; exit 2; }
[ $# -eq 1 ] || die "usage: $0 RUNTIME_BIN"
RT=$(readlink -f "$1") || die "no runtime at $1"
[ -x "$RT" ] || die "runtime $RT is not executable"
[ "$(id -u)" != 0 ] || die "run as a plain user (integration/test.sh does: as tuser $0 ...)"
[ -n "${XDG_RUNTIME_DIR:-}" ] && [ -d "$XDG_RUNTIME_DIR" ] || die "XDG_RUNTIME_DIR must name an existing directory"
for tool in buildah script pgrep timeout md5sum; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
BUSYBOX=/bin/busybox
"$BUSYBOX" --list >/dev/null 2>&1 || die "busybox-static is missing ($BUSYBOX)"

me=$(id -un)
uid=$(id -u)
# With subordinate ids buildah maps a whole range; without, only root.
multi=0
grep -q "^$me:" /etc/subuid 2>/dev/null && multi=1
rtname=$(basename "$RT")

W=$(mktemp -d "${TMPDIR:-/tmp}/buildah-it.XXXXXX") || die "mktemp failed"
chmod 755 "$W"
mkdir -p "$W/tmp" "$W/out" "$W/ctx"
export TMPDIR="$W/tmp" BUILDAH_ISOLATION=rootless
unset BUILDAH_RUNTIME BUILDAH_LAYERS

B() { buildah --root "$W/root" --runroot "$W/runroot" --storage-driver vfs "$@"; }
cleanup() {
    B rm -a >/dev/null 2>&1
    # vfs layers hold files owned by subordinate ids: remove them inside
    # buildah's user namespace.
    B unshare rm -rf "$W" >/dev/null 2>&1
    rm -rf "$W" 2>/dev/null
}
# KEEP=1 keeps the directory (outputs in out/) for a look after a failure.
if [ "${KEEP:-}" = 1 ]; then trap 'echo "# kept $W"' EXIT; else trap cleanup EXIT; fi
# A run that is interrupted or killed by a timeout cleans up too.
trap 'exit 130' INT
trap 'exit 143' TERM HUP

passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
# show FILE: the end of a build's output, after a failure.
show() { tail -n 15 "$1" | sed 's/^/     | /'; }
# value KEY FILE: what a RUN step printed as "@@KEY=value" (first one).
value() { sed -n "s/^@@$1=//p" "$2" | head -n 1 | tr -d '\r'; }
# expect NAME WANT GOT [FILE]
expect() {
    if [ "$2" = "$3" ]; then ok "$1"
    else bad "$1: want '$2', got '$3'"; [ -n "${4:-}" ] && show "$4"; fi
}
# expect_grep NAME REGEX FILE: FILE has a line matching REGEX.
expect_grep() {
    if grep -Eq -- "$2" "$3"; then ok "$1"
    else bad "$1: no line matches /$2/"; show "$3"; fi
}
# expect_no_grep NAME REGEX FILE
expect_no_grep() {
    if ! grep -Eq -- "$2" "$3"; then ok "$1"
    else bad "$1: unexpected line matching /$2/: $(grep -Em1 -- "$2" "$3")"; fi
}
# bud NAME ARGS...: build, output (stdout and stderr) to $W/out/NAME.log,
# status to $W/out/NAME.rc. Never hangs for more than two minutes.
bud() {
    local name="$1"; shift
    timeout -k 5 120 buildah --root "$W/root" --runroot "$W/runroot" --storage-driver vfs \
        bud --runtime="$RT" --isolation=rootless --network=none --pull=never "$@" \
        >"$W/out/$name.log" 2>&1
    echo $? >"$W/out/$name.rc"
    return "$(cat "$W/out/$name.rc")"
}
# in_image IMAGE CMD...: run CMD on the host, in buildah's user namespace,
# with the image's files (a new working container's root) as cwd.
in_image() {
    local img="$1"; shift
    local c
    c=$(B from --pull=never "$img" 2>/dev/null) || { echo "cannot make a container of $img"; return 1; }
    B unshare sh -c 'cd "$(buildah --root "$1" --runroot "$2" --storage-driver vfs mount "$3")" && shift 3 && "$@"' \
        sh "$W/root" "$W/runroot" "$c" "$@" 2>"$W/out/in_image.err"
    local rc=$?
    # buildah warns about missing subordinate ids each time: not CMD's.
    grep -v 'level=warning' "$W/out/in_image.err" >&2
    B rm "$c" >/dev/null 2>&1
    return $rc
}

# Containers of this user's earlier runs are not this run's business.
state="$XDG_RUNTIME_DIR/$rtname"
state_before=$(ls -A "$state" 2>/dev/null | grep '^buildah-')
echo "# buildah $(buildah --version | cut -d' ' -f3) with $RT as $me (uid $uid, $([ $multi = 1 ] && echo 'subordinate ids' || echo 'single id'))"
t0=$(date +%s)

# ---------------------------------------------------------------- base image
base="$W/base"
mkdir -p "$base/bin" "$base/etc" "$base/root" "$base/home/app" "$base/tmp" "$base/work"
cp "$BUSYBOX" "$base/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$base/bin/$applet"
done
cat >"$base/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$base/etc/group" <<'EOF'
root:x:0:
app:x:1000:
nogroup:x:65534:
EOF
chmod 1777 "$base/tmp" "$base/home/app"
if c=$(B from scratch 2>"$W/out/base.log") \
    && B copy "$c" "$base" / >>"$W/out/base.log" 2>&1 \
    && B config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c" >>"$W/out/base.log" 2>&1 \
    && B commit --quiet --rm "$c" localhost/hutch-it-base >>"$W/out/base.log" 2>&1; then
    ok "base image from busybox-static"
else
    bad "cannot make the base image"; show "$W/out/base.log"
    echo "$passed passed, $failed failed"; exit 1
fi

# ------------------------------------------------------------ build context
ctx="$W/ctx"
mkdir -p "$ctx/data"
echo "bind-mounted-data" >"$ctx/data/data.txt"
echo "secret-value-$$" >"$W/secret.txt"
seqmd5=$(seq 1 300000 | md5sum | cut -d' ' -f1)
bgsecs=$((7000 + $$ % 1000))

cat >"$ctx/Containerfile.main" <<'EOF'
FROM localhost/hutch-it-base
ENV GREETING="hello from env" OTHER=x
WORKDIR /work/dir
RUN echo "@@marker=run-output-reaches-buildah"
RUN echo "@@env=$GREETING"; echo "@@pwd=$(pwd)"; echo "@@id=$(id -u):$(id -g)"; \
    echo "@@home=$HOME"; echo "@@pid=$$"; \
    echo "@@hostname=$(hostname)"; echo "@@hostname-env=$HOSTNAME"; echo "@@etc-hostname=$(cat /etc/hostname)"
RUN echo "@@devnull=$( (echo discard >/dev/null && wc -c </dev/null) 2>&1)"; \
    echo "@@devzero=$(head -c 4096 /dev/zero 2>&1 | tr -d '\000' | wc -c):$(head -c 4096 /dev/zero 2>&1 | wc -c)"; \
    echo "@@devurandom=$(head -c 64 /dev/urandom 2>&1 | wc -c)"; \
    echo "@@proc=$(cat /proc/self/comm 2>&1):$(grep -c '^proc /proc proc' /proc/mounts)"; \
    echo "@@sys=$(test -d /sys/kernel && ls /sys/class | grep -q . && echo yes)"; \
    echo "@@shm=$( (echo shm-data >/dev/shm/probe && cat /dev/shm/probe) 2>&1)"; \
    echo "@@tmp=$( (echo tmp-data >/tmp/probe && cat /tmp/probe && rm /tmp/probe) 2>&1)"; \
    echo "@@sys-ro=$( (touch /sys/probe) 2>/dev/null && echo rw || echo ro)"; \
    echo "@@procsys-ro=$( (echo probe >/proc/sys/kernel/hostname) 2>/dev/null && echo rw || echo ro)"; \
    echo "@@masked=$(wc -c </proc/timer_list 2>&1):$(ls -A /sys/firmware 2>&1 | wc -l)"; \
    echo "@@capeff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
RUN echo "content" >/work/dir/made-by-run; echo "@@made=ok"
EOF

cat >"$ctx/Containerfile.mounts" <<'EOF'
FROM localhost/hutch-it-base
RUN --mount=type=bind,source=data,target=/mnt/bind echo "@@bind=$(cat /mnt/bind/data.txt 2>&1)"; \
    echo "@@bind-ro=$( (touch /mnt/bind/probe) 2>/dev/null && echo rw || echo ro)"
RUN --mount=type=cache,id=hutch-it,target=/cache cat /proc/sys/kernel/random/uuid >/cache/stamp; echo "@@cache1=$(cat /cache/stamp)"
RUN --mount=type=cache,id=hutch-it,target=/cache echo "@@cache2=$(cat /cache/stamp 2>&1)"
RUN --mount=type=tmpfs,target=/scratch echo x >/scratch/file; echo "@@tmpfs=$(grep ' /scratch ' /proc/mounts | cut -d' ' -f3)"
RUN --mount=type=secret,id=hutchsecret echo "@@secret=$(cat /run/secrets/hutchsecret 2>&1)"
RUN echo "@@leftover=$(ls -A /mnt/bind /cache /scratch 2>/dev/null | tr '\n' ' ')$(ls -A /run/secrets 2>/dev/null)."
RUN touch /owned && chown 1234:1234 /owned; echo "@@chown=$(stat -c %u:%g /owned)"
EOF

cat >"$ctx/Containerfile.user" <<'EOF'
FROM localhost/hutch-it-base
USER app
RUN echo "@@user=$(id -u):$(id -g)"; echo "@@user-home=$HOME"; echo "@@user-file=$(touch /tmp/by-app && stat -c %u /tmp/by-app)"; \
    echo "@@user-capeff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
EOF

cat >"$ctx/Containerfile.fail" <<'EOF'
FROM localhost/hutch-it-base
RUN echo "@@before-fail"; exit 3
RUN echo "@@after-fail"
EOF

cat >"$ctx/Containerfile.notfound" <<'EOF'
FROM localhost/hutch-it-base
RUN ["/no/such/program"]
EOF

cat >"$ctx/Containerfile.big" <<'EOF'
FROM localhost/hutch-it-base
RUN echo "@@md5=$(seq 1 300000 | md5sum | cut -d' ' -f1)"; echo "@@begin"; seq 1 300000; echo "@@end"; seq 1 100000 | sed 's/^/e/' >&2
EOF

sed "s/BGSECS/$bgsecs/g" >"$ctx/Containerfile.bg" <<'EOF'
FROM localhost/hutch-it-base
RUN sleep BGSECS & echo "@@bg=started"
RUN (sleep BGSECS </dev/null >/dev/null 2>&1 &); echo "@@bg2=started"
EOF

cat >"$ctx/Containerfile.par" <<'EOF'
FROM localhost/hutch-it-base
ARG N
RUN echo "@@par=$N-a"
RUN echo "@@par=$N-b" >&2
RUN echo "@@par=$N-c" >/par && cat /par
EOF

# ------------------------------------------------------------ main build
f="$W/out/main.log"
bud main -f Containerfile.main -t localhost/hutch-it-main "$ctx"
expect "main build succeeds" 0 "$(cat "$W/out/main.rc")" "$f"
expect_grep "RUN output reaches buildah" '^@@marker=run-output-reaches-buildah$' "$f"
expect "ENV reaches RUN" "hello from env" "$(value env "$f")" "$f"
expect "WORKDIR is the working directory" "/work/dir" "$(value pwd "$f")" "$f"
expect "RUN runs as root of the user namespace" "0:0" "$(value id "$f")" "$f"
expect "HOME from /etc/passwd" "/root" "$(value home "$f")" "$f"
expect "RUN is pid 1 of its pid namespace" "1" "$(value pid "$f")" "$f"
h=$(value hostname "$f")
if [ -n "$h" ] && [ "$h" != "$(hostname)" ] && [ "$h" = "$(value hostname-env "$f")" ] \
    && [ "$h" = "$(value etc-hostname "$f")" ]; then
    ok "hostname set by buildah ($h)"
else
    bad "hostname: uname '$h', \$HOSTNAME '$(value hostname-env "$f")', /etc/hostname '$(value etc-hostname "$f")', host '$(hostname)'"
fi
expect "/dev/null usable" "0" "$(value devnull "$f")" "$f"
expect "/dev/zero usable" "0:4096" "$(value devzero "$f")" "$f"
expect "/dev/urandom usable" "64" "$(value devurandom "$f")" "$f"
expect "/proc mounted" "cat:1" "$(value proc "$f")" "$f"
expect "/sys present" "yes" "$(value sys "$f")" "$f"
expect "/dev/shm writable" "shm-data" "$(value shm "$f")" "$f"
expect "/tmp writable" "tmp-data" "$(value tmp "$f")" "$f"
expect "/sys read-only" "ro" "$(value sys-ro "$f")" "$f"
expect "/proc/sys read-only (readonlyPaths)" "ro" "$(value procsys-ro "$f")" "$f"
expect "/proc/timer_list and /sys/firmware masked (maskedPaths)" "0:0" "$(value masked "$f")" "$f"
# buildah's default capabilities for root (CHOWN DAC_OVERRIDE FOWNER FSETID
# KILL NET_BIND_SERVICE SETFCAP SETGID SETPCAP SETUID SYS_CHROOT).
expect "RUN has buildah's capabilities" "00000000800405fb" "$(value capeff "$f")" "$f"
if [ "$(cat "$W/out/main.rc")" = 0 ]; then
    got=$(in_image localhost/hutch-it-main cat work/dir/made-by-run 2>&1)
    expect "file made by RUN is in the image" "content" "$got"
    hist=$(B inspect --type image --format '{{range .OCIv1.History}}{{println .CreatedBy}}{{end}}' localhost/hutch-it-main 2>&1)
    n=$(grep -c '@@' <<<"$hist")
    if [ "$n" = 4 ] && grep -q 'run-output-reaches-buildah' <<<"$hist"; then
        ok "image history shows the 4 RUN steps"
    else
        bad "image history: want 4 RUN steps, found $n:"; sed 's/^/     | /' <<<"$hist" | tail -n 8
    fi
    img_env=$(B inspect --type image --format '{{.OCIv1.Config.Env}}' localhost/hutch-it-main 2>&1)
    expect_grep "ENV kept in the image config" 'GREETING=hello from env' <(echo "$img_env")
fi

# ------------------------------------------------------------ RUN --mount
f="$W/out/mounts.log"
bud mounts -f Containerfile.mounts --secret id=hutchsecret,src="$W/secret.txt" -t localhost/hutch-it-mounts "$ctx"
expect "RUN --mount build succeeds" 0 "$(cat "$W/out/mounts.rc")" "$f"
expect "RUN --mount=type=bind shows the context" "bind-mounted-data" "$(value bind "$f")" "$f"
expect "RUN --mount=type=bind is read-only" "ro" "$(value bind-ro "$f")" "$f"
c1=$(value cache1 "$f")
if [ -n "$c1" ] && [ "$c1" = "$(value cache2 "$f")" ]; then ok "RUN --mount=type=cache persists between steps"
else bad "RUN --mount=type=cache: first step wrote '$c1', next read '$(value cache2 "$f")'"; show "$f"; fi
expect "RUN --mount=type=tmpfs is a tmpfs" "tmpfs" "$(value tmpfs "$f")" "$f"
expect "RUN --mount=type=secret shows the secret" "secret-value-$$" "$(value secret "$f")" "$f"
expect "nothing mounted stays for the next step" "." "$(value leftover "$f")" "$f"
if [ "$multi" = 1 ]; then
    expect "chown 1234:1234 inside RUN" "1234:1234" "$(value chown "$f")" "$f"
else
    # One id only: chown to an unmapped id fails in the container (as with crun).
    expect "chown to an unmapped id leaves the owner" "0:0" "$(value chown "$f")" "$f"
fi
expect "the context is untouched" "data.txt" "$(ls -A "$ctx/data" | tr '\n' ' ' | sed 's/ $//')"
if [ "$(cat "$W/out/mounts.rc")" = 0 ]; then
    got=$(in_image localhost/hutch-it-mounts sh -c \
        'for p in mnt/bind/data.txt cache/stamp scratch/file run/secrets/hutchsecret; do [ -e "$p" ] && echo "$p"; done; true' 2>&1)
    expect "nothing mounted lands in the image" "" "$got"
    got=$(in_image localhost/hutch-it-mounts stat -c %u:%g owned 2>&1)
    if [ "$multi" = 1 ]; then
        expect "the image keeps the owner 1234:1234" "1234:1234" "$got"
    else
        expect "the image keeps the owner 0:0" "0:0" "$got"
    fi
fi

# ------------------------------------------------------------ USER
f="$W/out/user.log"
bud user -f Containerfile.user -t localhost/hutch-it-user "$ctx"
rc=$(cat "$W/out/user.rc")
if [ "$multi" = 1 ]; then
    expect "USER app build succeeds" 0 "$rc" "$f"
    expect "USER app runs as 1000:1000" "1000:1000" "$(value user "$f")" "$f"
    expect "USER app gets HOME from /etc/passwd" "/home/app" "$(value user-home "$f")" "$f"
    expect "USER app makes files as 1000" "1000" "$(value user-file "$f")" "$f"
    expect "USER app has no capabilities" "0000000000000000" "$(value user-capeff "$f")" "$f"
else
    # uid/gid 1000 are not mapped without subordinate ids: the step must
    # fail, saying so, and not run.
    [ "$rc" != 0 ] && ok "USER app (unmapped) fails the build" || bad "USER app (unmapped): build succeeded"
    expect_no_grep "USER app (unmapped) does not run the step" '^@@user=' "$f"
    expect_grep "USER app (unmapped) says the id is not mapped" 'set gid to 1000.*not mapped|cannot setresgid to 1000|setgid.*1000' "$f"
fi

# ------------------------------------------------------------ failures
f="$W/out/fail.log"
bud fail -f Containerfile.fail "$ctx"
rc=$(cat "$W/out/fail.rc")
[ "$rc" != 0 ] && [ "$rc" != 124 ] && ok "RUN exit 3 fails the build" || bad "RUN exit 3: build status $rc"
expect_grep "the failing step's output reaches buildah" '^@@before-fail$' "$f"
expect_grep "buildah reports exit status 3" 'exit status 3' "$f"
expect_no_grep "no step runs after the failure" '^@@after-fail' "$f"

f="$W/out/notfound.log"
bud notfound -f Containerfile.notfound "$ctx"
rc=$(cat "$W/out/notfound.rc")
[ "$rc" != 0 ] && [ "$rc" != 124 ] && ok "RUN of a missing program fails the build" || bad "RUN of a missing program: build status $rc"
expect_grep "the error names the missing program" '/no/such/program' "$f"
# buildah deletes the container right after the failed start.
expect_no_grep "the container is deleted after the failed start" 'cannot delete|is running' "$f"

# ------------------------------------------------------------ large output
f="$W/out/big.log"
s=$(date +%s)
timeout -k 5 120 buildah --root "$W/root" --runroot "$W/runroot" --storage-driver vfs \
    bud --runtime="$RT" --isolation=rootless --network=none --pull=never \
    -f Containerfile.big "$ctx" >"$f" 2>"$W/out/big.err"
rc=$?
expect "large-output build succeeds within the timeout" 0 "$rc" "$W/out/big.err"
expect "RUN computed the expected checksum" "$seqmd5" "$(value md5 "$f")" "$f"
lines=$(sed -n '/^@@begin$/,/^@@end$/p' "$f" | sed '1d;$d')
expect "buildah received all 300000 lines" 300000 "$(printf '%s\n' "$lines" | grep -c '^[0-9]*$')"
expect "the received lines are intact" "$seqmd5" "$(printf '%s\n' "$lines" | md5sum | cut -d' ' -f1)"
expect "buildah received all 100000 stderr lines" 100000 "$(grep -c '^e[0-9]*$' "$W/out/big.err")"
echo "#    (large-output build took $(($(date +%s) - s)) s)"

# ------------------------------------------------------------ background processes
f="$W/out/bg.log"
s=$(date +%s)
bud bg -f Containerfile.bg "$ctx"
expect "build with background processes succeeds" 0 "$(cat "$W/out/bg.rc")" "$f"
expect_grep "background step ran" '^@@bg2=started$' "$f"
took=$(($(date +%s) - s))
[ "$took" -lt 60 ] && ok "background processes do not stall the build (${took}s)" || bad "build with background processes took ${took}s"
sleep 0.5
left=$(pgrep -af "^sleep $bgsecs\$")
expect "background processes do not survive the step" "" "$left"

# ------------------------------------------------------------ buildah run
if c=$(B from --pull=never localhost/hutch-it-main 2>"$W/out/run.log"); then
    got=$(timeout 60 buildah --root "$W/root" --runroot "$W/runroot" --storage-driver vfs \
        run --runtime="$RT" --network=none "$c" -- sh -c 'echo "@@run=$GREETING:$(pwd):$(cat made-by-run)"' 2>>"$W/out/run.log")
    expect "buildah run of a built container" "hello from env:/work/dir:content" "$(value run <(echo "$got"))" "$W/out/run.log"
    got=$(echo piped-input | timeout 60 buildah --root "$W/root" --runroot "$W/runroot" --storage-driver vfs \
        run --runtime="$RT" --network=none "$c" -- cat 2>>"$W/out/run.log")
    expect "buildah run passes stdin" "piped-input" "$got" "$W/out/run.log"
    timeout 60 buildah --root "$W/root" --runroot "$W/runroot" --storage-driver vfs \
        run --runtime="$RT" --network=none "$c" -- sh -c 'exit 7' >>"$W/out/run.log" 2>&1
    rc=$?
    if [ "$rc" != 0 ] && grep -q 'exit status 7' "$W/out/run.log"; then ok "buildah run reports exit status 7"
    else bad "buildah run of 'exit 7': status $rc"; show "$W/out/run.log"; fi

    # -t: buildah passes --console-socket; script(1) gives buildah a terminal.
    cat >"$W/tty.sh" <<EOF
#!/bin/sh
exec buildah --root "$W/root" --runroot "$W/runroot" --storage-driver vfs \\
    run -t --runtime="$RT" --network=none "$c" -- sh -c 'echo "@@tty=\$(tty)"; test -t 0 && test -t 1 && echo "@@isatty=yes"'
EOF
    chmod 755 "$W/tty.sh"
    timeout 60 script -qec "$W/tty.sh" /dev/null </dev/null >"$W/out/tty.log" 2>&1
    rc=$?
    tr -d '\r\000' <"$W/out/tty.log" >"$W/out/tty.txt"
    expect "buildah run -t succeeds" 0 "$rc" "$W/out/tty.txt"
    expect_grep "buildah run -t: stdio is a pty of the container's devpts, as with crun" "@@tty=/dev/pts/0\$" "$W/out/tty.txt"
    expect_grep "buildah run -t: stdin and stdout are terminals" "@@isatty=yes\$" "$W/out/tty.txt"
    B rm "$c" >/dev/null 2>&1
else
    bad "cannot make a working container of localhost/hutch-it-main"; show "$W/out/run.log"
fi

# ------------------------------------------------------------ parallel builds
pids=()
for n in 1 2 3; do
    bud "par$n" -f Containerfile.par --build-arg N="$n" -t "localhost/hutch-it-par$n" "$ctx" &
    pids+=($!)
done
wait "${pids[@]}"
for n in 1 2 3; do
    f="$W/out/par$n.log"
    expect "parallel build $n succeeds" 0 "$(cat "$W/out/par$n.rc")" "$f"
    got=$(sed -n 's/^@@par=//p' "$f" | tr '\n' ' ')
    expect "parallel build $n saw its own steps" "$n-a $n-b $n-c " "$got" "$f"
done

# ------------------------------------------------------------ nothing left
sleep 0.5
# Only processes about buildah's containers count: the user may run other
# containers with the same runtime meanwhile.
left=$(pgrep -u "$uid" -af "^$RT( |\$)" | grep -e "$W/" -e ' buildah-buildah')
expect "no $rtname process left" "" "$left"
# Only this run's containers count (their bundles are under $W): the user
# may run other builds meanwhile.
left=""
for id in $(ls -A "$state" 2>/dev/null | grep '^buildah-' | grep -vxF -e "$state_before"); do
    "$RT" state "$id" 2>/dev/null | grep -q "\"bundle\": *\"$W/" && left="$left$id "
done
expect "no state left in $state" "" "$left"
for id in $left; do
    "$RT" state "$id" 2>&1 | tr -d '\n' | sed 's/^/     | /'; echo
done
left=$(pgrep -af "^sleep $bgsecs\$")
expect "no container process left" "" "$left"

echo "# took $(($(date +%s) - t0)) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
