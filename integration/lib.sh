# Shared by the scripts in integration/ (sourced, not run). Needs root for
# the install and user steps.

export PATH="$HOME/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_packages PKG...: install the Debian packages that are missing.
ensure_packages() {
    local missing=()
    for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}: run as root, or apt-get install them"
    log "installing ${missing[*]}"
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_rust: cargo on PATH, or install the Debian toolchain.
ensure_rust() {
    command -v cargo >/dev/null && return 0
    ensure_packages cargo rustc
}

# The test users: tuser has subordinate ids (multi-range maps through
# newuidmap), tsingle has none (single-id maps only).
ensure_users() {
    id tuser >/dev/null 2>&1 || useradd -m -s /bin/bash tuser
    id tsingle >/dev/null 2>&1 || useradd -m -s /bin/bash tsingle
    grep -q '^tuser:' /etc/subuid || usermod --add-subuids 100000-165535 tuser
    grep -q '^tuser:' /etc/subgid || usermod --add-subgids 100000-165535 tuser
    sed -i '/^tsingle:/d' /etc/subuid /etc/subgid
    for u in tuser tsingle; do
        local uid; uid=$(id -u "$u")
        install -d -o "$u" -g "$u" -m 0700 "/run/user/$uid"
    done
}

# as USER CMD...: run CMD as USER with a login-like environment.
as() {
    local u="$1"; shift
    local uid; uid=$(id -u "$u")
    runuser -u "$u" -- env -i HOME="$(getent passwd "$u" | cut -d: -f6)" USER="$u" LOGNAME="$u" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        XDG_RUNTIME_DIR="/run/user/$uid" "$@"
}

# cgroup2_root: where cgroup2 is mounted (nothing when it is not).
cgroup2_root() {
    awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' \
        /proc/self/mountinfo
}

# delegate USER: make a cgroup v2 subtree USER owns, as systemd delegates
# one (Delegate=yes): the directory and the files that move processes and
# enable controllers are the user's. Prints its path (nothing without
# cgroup2).
delegate() {
    local root; root=$(cgroup2_root)
    [ -n "$root" ] || return 0
    local d="$root/hutch-ci-$1"
    mkdir -p "$d"
    chown "$1" "$d" "$d/cgroup.procs" "$d/cgroup.subtree_control" "$d/cgroup.threads"
    echo "$d"
}

# undelegate USER: remove that subtree, killing what still runs in it.
undelegate() {
    local root; root=$(cgroup2_root)
    local d="$root/hutch-ci-$1"
    [ -n "$root" ] && [ -d "$d" ] || return 0
    [ -e "$d/cgroup.kill" ] && echo 1 >"$d/cgroup.kill"
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        find "$d" -depth -type d -exec rmdir {} + 2>/dev/null && return 0
        sleep 0.2
    done
    log "could not remove $d"
}

# in_cgroup DIR CMD...: run CMD (a shell function too) inside the cgroup
# DIR, or where it is when DIR is empty.
in_cgroup() {
    local d="$1"; shift
    ( if [ -n "$d" ]; then echo "$BASHPID" >"$d/cgroup.procs"; fi; "$@" )
}

# debian_rootfs NAME [PKG...]: print the path of a Debian bookworm root file
# system (debootstrap minbase, plus PKG... installed with apt-get inside it),
# made once and cached under /var/cache/hutch-ci/NAME (a second call with the
# same NAME reuses it). Readable by everyone; copy it before changing it.
# Needs root and the Debian mirror (the one network CI has).
debian_rootfs() {
    local name="$1"; shift
    local dir="/var/cache/hutch-ci/$name" mirror
    if [ -f "$dir/.complete" ]; then echo "$dir/rootfs"; return 0; fi
    ensure_packages debootstrap
    mirror=$(awk '/^(deb|URIs:)/ { for (i = 1; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
    rm -rf "$dir"; mkdir -p "$dir"
    log "debootstrap bookworm into $dir (${*:-minbase})"
    debootstrap --variant=minbase bookworm "$dir/rootfs" "${mirror:-http://deb.debian.org/debian}" \
        >"$dir/debootstrap.log" 2>&1 || { tail -n 20 "$dir/debootstrap.log" >&2; die "debootstrap failed"; }
    if [ $# -gt 0 ]; then
        cp /etc/resolv.conf "$dir/rootfs/etc/resolv.conf" 2>/dev/null || true
        chroot "$dir/rootfs" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
            sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"' sh "$@" \
            >"$dir/apt.log" 2>&1 || { tail -n 20 "$dir/apt.log" >&2; die "apt-get in $dir failed"; }
        chroot "$dir/rootfs" apt-get clean
    fi
    chmod 755 "$dir"
    touch "$dir/.complete"
    echo "$dir/rootfs"
}

HUTCH_LIB=$(realpath "${BASH_SOURCE[0]}")
# crun_ready CMD...: run CMD (a command or a function of this file) in a
# mount namespace of its own where crun 1.8.1 runs: it refuses to while
# the cgroup2 hierarchy of a v1/v2 hybrid host holds a controller, so
# there `cgroup.controllers` of that hierarchy reads empty (a bind of
# /dev/null over it). Nothing outside changes.
crun_ready() {
    unshare -m --propagation private bash -c '
        . "$0"
        cg2=$(cgroup2_root)
        if [ -n "$cg2" ] && [ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ] && [ -n "$(cat "$cg2/cgroup.controllers")" ]; then
            mount --bind /dev/null "$cg2/cgroup.controllers"
        fi
        "$@"' "$HUTCH_LIB" "$@"
}
