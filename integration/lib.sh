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
