#!/bin/bash
# Regenerate integration/order/hutch.order: the functions of the release
# build that create, start, state, list, kill, delete and run execute, as a
# plain user and as root, in the order they first run. build-release.sh has
# the linker put them first, side by side (see README.md here).
#
# Run as root on a Debian machine, after a change that moves much code
# (a new dependency, a new Rust): it single-steps every instruction of
# those calls, which takes some minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
. integration/lib.sh
[ "$(id -u)" = 0 ] || die "run as root (it traces as root and as a plain user)"
user=${ORDER_USER:-tuser}
ensure_packages busybox-static uidmap gcc libc6-dev libseccomp-dev binutils
ensure_rust
ensure_users

log "building the release binary with its symbols (profile symbols)"
cargo build --profile symbols --locked --quiet
host=$(rustc -vV | sed -n 's/^host: //p')
bin=target/$host/symbols/hutch
named=$bin

W=$(mktemp -d /tmp/hutch-order.XXXXXX)
chmod 755 "$W"
trap 'rm -rf "$W"' EXIT
gcc -O2 -Wall -o "$W/steptrace" integration/order/steptrace.c
install -m 755 "$bin" "$W/hutch"

# A busybox bundle running /bin/true, and one running sleep.
mkdir -p "$W/true/rootfs"/{bin,dev,proc,sys,tmp,etc} "$W/sleep" "$W/traces"
cp /bin/busybox "$W/true/rootfs/bin/busybox"
for p in sh true sleep; do ln -s busybox "$W/true/rootfs/bin/$p"; done
chmod -R a+rX "$W"
chmod 1777 "$W/traces"
mkdir -m 700 "$W/state-root" "$W/state-$user"
chown "$user:" "$W/state-$user"

# trace WHO NAME HUTCH-ARGS...: run hutch as WHO under steptrace, the
# offsets it runs going to $W/traces/NAME.
trace() {
    local who=$1 name=$2; shift 2
    local cmd=("$W/steptrace" "$W/traces/$name" "$W/hutch" "$W/hutch" --root "$W/state-$who" "$@")
    if [ "$who" = root ]; then "${cmd[@]}"; else as "$who" "${cmd[@]}"; fi
}
plain() {
    local who=$1; shift
    if [ "$who" = root ]; then "$W/hutch" --root "$W/state-$who" "$@"
    else as "$who" "$W/hutch" --root "$W/state-$who" "$@"; fi
}

for who in "$user" root; do
    log "tracing as $who"
    # Each user's own config: `hutch spec --rootless` maps the caller.
    rm -f "$W/true/config.json"
    chown "$who:" "$W/true" "$W/sleep"
    if [ "$who" = root ]; then (cd "$W/true" && "$W/hutch" spec --args /bin/true)
    else (cd "$W/true" && as "$who" "$W/hutch" spec --rootless --args /bin/true); fi
    sed 's|"/bin/true"|"sleep", "1000"|; s|"path": "rootfs"|"path": "'"$W"'/true/rootfs"|' \
        "$W/true/config.json" >"$W/sleep/config.json"
    chmod a+r "$W/true/config.json" "$W/sleep/config.json"
    [ "$who" = root ] || chown -R "$who:" "$W/true/rootfs/tmp"

    # create is traced until its container exits: that covers the start
    # path, which runs in the container process.
    trace "$who" "$who-1create" create --bundle "$W/true" c1 </dev/null >/dev/null &
    tracer=$!
    until plain "$who" state c1 2>/dev/null | grep -q '"created"'; do
        kill -0 "$tracer" 2>/dev/null || die "create failed as $who"
        sleep 0.2
    done
    trace "$who" "$who-2start" start c1
    wait "$tracer"
    trace "$who" "$who-3state" state c1 >/dev/null
    trace "$who" "$who-4list" list >/dev/null
    trace "$who" "$who-5delete" delete c1
    plain "$who" run --detach --bundle "$W/sleep" s1 </dev/null >/dev/null
    trace "$who" "$who-6kill" kill s1 KILL
    plain "$who" delete --force s1
    trace "$who" "$who-7run" run --bundle "$W/true" r1 </dev/null >/dev/null
done

python3 integration/order/symbolize.py "$named" "$W"/traces/"$user"-* "$W"/traces/root-* \
    >"$W/order"
[ -s "$W/order" ] || die "no function of $named in the traces"
mv "$W/order" integration/order/hutch.order
log "integration/order/hutch.order: $(wc -l <integration/order/hutch.order) functions"
