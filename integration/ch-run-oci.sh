#!/bin/bash
# integration/ch-run-oci.sh HUTCH_BIN: hutch as a drop-in ch-run-oci under
# buildah, set up the way Charliecloud users set buildah up: hutch linked
# as `ch-run-oci` on the PATH, `--runtime=ch-run-oci` and their
# ~/.config/containers (vfs storage with ignore_chown_errors), buildah's
# `--runtime-flag` passing ch-run-oci's own options, CH_LOG_FILE and
# CH_RUN_OCI_HANG.
#
# Run as a plain user (integration/test.sh runs it as tuser and tsingle).
# Everything lives under a mktemp directory, HOME included, removed at the
# end (KEEP=1 keeps it). The last line is "N passed, M failed".
set -uo pipefail

die() { printf 'error: %s\n' "$*" >&2; exit 2; }
[ $# -eq 1 ] || die "usage: $0 HUTCH_BIN"
RT=$(readlink -f "$1") || die "no hutch at $1"
[ "$(id -u)" != 0 ] || die "run as a plain user"
[ -n "${XDG_RUNTIME_DIR:-}" ] && [ -d "$XDG_RUNTIME_DIR" ] || die "XDG_RUNTIME_DIR must name an existing directory"
BUSYBOX=/bin/busybox

W=$(mktemp -d "${TMPDIR:-/tmp}/ch-run-oci-it.XXXXXX") || die "mktemp failed"
chmod 755 "$W"
mkdir -p "$W/bin" "$W/home/.config/containers" "$W/tmp" "$W/out" "$W/ctx" "$W/base"
ln -s "$RT" "$W/bin/ch-run-oci"
export HOME="$W/home" TMPDIR="$W/tmp" PATH="$W/bin:$PATH"
unset XDG_CONFIG_HOME BUILDAH_RUNTIME CH_LOG_FILE CH_RUN_OCI_HANG
# A Charliecloud user's configuration (Charliecloud's install guide: keep it
# in ~/.config/containers). netns: /dev/net/tun is root-only here, so
# slirp4netns cannot give a plain user a network.
cat >"$HOME/.config/containers/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$W/root"
runroot = "$W/runroot"
[storage.options.vfs]
ignore_chown_errors = "true"
EOF
cat >"$HOME/.config/containers/containers.conf" <<'EOF'
[containers]
netns = "host"
[engine]
runtime = "ch-run-oci"
EOF
cleanup() {
    buildah rm -a >/dev/null 2>&1
    buildah unshare rm -rf "$W" >/dev/null 2>&1
    rm -rf "$W" 2>/dev/null
}
if [ "${KEEP:-}" = 1 ]; then trap 'echo "# kept $W"' EXIT; else trap cleanup EXIT; fi
trap 'exit 130' INT
trap 'exit 143' TERM HUP

passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
show() { tail -n 12 "$1" | sed 's/^/     | /'; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
state="$XDG_RUNTIME_DIR/hutch"
before=$(ls -A "$state" 2>/dev/null | grep '^buildah-')

# ch-build's command line (Charliecloud 0.26), stdin from /dev/null.
# ch_build NAME [BUILDAH ARGS...] -- [BUD ARGS...]: output in out/NAME.log.
ch_build() {
    local name=$1; shift
    local pre=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do pre+=("$1"); shift; done
    shift
    timeout -k 5 120 buildah --storage-opt .ignore_chown_errors=true "${pre[@]}" \
        build-using-dockerfile --isolation=rootless --runtime=ch-run-oci --pull=never "$@" \
        </dev/null >"$W/out/$name.log" 2>&1
}

echo "# buildah $(buildah --version | cut -d' ' -f3) with $RT as ch-run-oci, as $(id -un)"
# The base image, from busybox-static.
mkdir -p "$W/base/bin" "$W/base/etc" "$W/base/root" "$W/base/tmp"
cp "$BUSYBOX" "$W/base/bin/busybox"
for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -s busybox "$W/base/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$W/base/etc/passwd"
printf 'root:x:0:\n' >"$W/base/etc/group"
if c=$(buildah from scratch 2>"$W/out/base.log") && buildah copy "$c" "$W/base" / >>"$W/out/base.log" 2>&1 \
    && buildah config --env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$c" >>"$W/out/base.log" 2>&1 \
    && buildah commit --quiet --rm "$c" localhost/cro-base >>"$W/out/base.log" 2>&1; then
    ok "base image from busybox-static"
else
    bad "base image"; show "$W/out/base.log"; echo "$passed passed, $failed failed"; exit 1
fi

cat >"$W/ctx/Dockerfile" <<'EOF'
FROM localhost/cro-base
ENV GREETING=hello
RUN echo "@@run=$GREETING $(id -u)"
RUN echo made >/made && echo "@@pid1=$(cat /proc/1/comm)"
EOF
cat >"$W/ctx/Dockerfile.fail" <<'EOF'
FROM localhost/cro-base
RUN exit 3
EOF

# 1. A build: RUN output reaches buildah, the file lands in the image.
ch_build plain -- -t cro-plain "$W/ctx"
rc=$?
check "build through ch-run-oci (rc=$rc): RUN output reaches buildah" grep -qx '@@run=hello 0' "$W/out/plain.log"
check "the RUN step ran in a pid namespace of its own (pid 1 is the step's shell)" grep -qx '@@pid1=sh' "$W/out/plain.log"
[ "$rc" = 0 ] || show "$W/out/plain.log"

# 2. A failing RUN fails the build with its status (the real ch-run-oci
# always reported 0).
ch_build fail -- -f "$W/ctx/Dockerfile.fail" "$W/ctx"
rc=$?
check "a RUN that exits 3 fails the build (rc=$rc), and buildah names status 3" \
    sh -c "[ $rc != 0 ] && grep -q 'exit status 3' '$W/out/fail.log'"

# 3. ch-run-oci's own flags through buildah: --runtime-flag verbose (-v,
# counted), --runtime-flag debug; CH_LOG_FILE takes the chatter.
CH_LOG_FILE="$W/ch.log" ch_build verbose --runtime-flag verbose --runtime-flag debug -- -t cro-v "$W/ctx"
rc=$?
check "--runtime-flag verbose and debug, CH_LOG_FILE: the build works (rc=$rc)" test "$rc" = 0
for op in create start state delete; do
    check "CH_LOG_FILE has the $op call" grep -Eq "called as .*\"$op\"" "$W/ch.log"
done
check "the flags reached ch-run-oci" grep -q 'called as .*"--verbose", "--debug", "create"' "$W/ch.log"
[ "$rc" = 0 ] || show "$W/out/verbose.log"

# 4. CH_RUN_OCI_HANG=start stops the build before its first RUN starts:
# the container is created and can be examined; killing the hung
# ch-run-oci fails the build, and buildah's cleanup leaves nothing.
CH_RUN_OCI_HANG=start ch_build hang -- "$W/ctx" &
bg=$!
hung=""
for _ in $(seq 200); do
    hung=$(pgrep -u "$(id -u)" -f "ch-run-oci( --?[a-z]+)* start buildah-" | head -n 1)
    [ -n "$hung" ] && break
    sleep 0.1
done
if [ -n "$hung" ]; then
    id=$(tr '\0' '\n' <"/proc/$hung/cmdline" | grep '^buildah-' | tail -n 1)
    ch-run-oci state "$id" >"$W/out/hang.state" 2>&1
    check "CH_RUN_OCI_HANG=start: the build stops at start; the container is there, created" \
        grep -q '"status": "created"' "$W/out/hang.state"
    sleep 1
    check "CH_RUN_OCI_HANG=start: it stays there" kill -0 "$hung"
    kill "$hung"
    wait "$bg"
    rc=$?
    check "killing the hung ch-run-oci fails the build (rc=$rc)" test "$rc" != 0
else
    bad "CH_RUN_OCI_HANG=start: no hung 'ch-run-oci start'"; kill "$bg" 2>/dev/null; wait "$bg"; show "$W/out/hang.log"
fi

# 5. The command line of its own: no operation, --version.
ch-run-oci >"$W/out/noop" 2>&1
check "no operation: usage and exit status 1" sh -c "[ $? = 1 ] && grep -q '^usage: ch-run-oci' '$W/out/noop'"
check "--version says hutch" sh -c "ch-run-oci --version | grep -q '^ch-run-oci: hutch version'"

sleep 0.5
leftover() {
    ls -A "$state" 2>/dev/null | grep '^buildah-' | grep -vxF "$before"
    for p in $(pgrep -u "$(id -u)" -f 'ch-run-oci '); do
        [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" = Z ] || tr '\0' ' ' <"/proc/$p/cmdline"
    done
}
[ -z "$(leftover)" ] || leftover | sed 's/^/     | left: /'
check "nothing left: no container state, no process of a build" \
    test -z "$(leftover)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
