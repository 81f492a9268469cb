#!/bin/bash
# Build hutch and run a real container with it: a busybox root file system
# this script makes, the config `hutch spec --rootless` writes, run by a
# plain user (tuser, created when missing) when started as root, else by
# the caller. Prints what the container sees of itself.
set -euo pipefail
cd "$(dirname "$0")/.."
. integration/lib.sh

if [ "$(id -u)" = 0 ]; then
    ensure_packages busybox-static uidmap ca-certificates gcc libc6-dev libseccomp-dev
    ensure_rust
    ensure_users
fi
log "building hutch (release, static)"
hutch=$(integration/build-release.sh)

demo=$(mktemp -d /tmp/hutch-demo.XXXXXX)
trap 'rm -rf "$demo"' EXIT
mkdir -p "$demo/bundle/rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp "$(command -v busybox)" "$demo/bundle/rootfs/bin/busybox"
for a in $("$demo/bundle/rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$demo/bundle/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$demo/bundle/rootfs/etc/passwd"
echo 'root:x:0:' > "$demo/bundle/rootfs/etc/group"
install -m 755 "$hutch" "$demo/hutch"
chmod -R a+rX "$demo"

script='echo "hello from $(hostname): I am $(id -un) ($(id -u)) in $(pwd), pid $$"; echo "uid_map: $(cat /proc/self/uid_map)"; echo "root: $(ls / | tr "\n" " ")"'
run_demo() {
    cd "$demo/bundle"
    "$demo/hutch" spec --rootless --args /bin/sh -c "$script"
    "$demo/hutch" run --bundle "$demo/bundle" "demo-$$"
}
export -f run_demo
export demo script
if [ "$(id -u)" = 0 ] && id tuser >/dev/null 2>&1; then
    chown -R tuser "$demo/bundle"
    log "running a container as tuser (uid $(id -u tuser))"
    as tuser env demo="$demo" script="$script" bash -c "$(declare -f run_demo); run_demo"
else
    log "running a container as $(id -un) (uid $(id -u))"
    run_demo
fi
