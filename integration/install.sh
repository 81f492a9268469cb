#!/bin/bash
# integration/install.sh [PREFIX]: build the release hutch and install it,
# owned by root, under PREFIX (default /usr/local): the binary, its manual
# page and its bash, zsh and fish completions. Run as root from a checkout
# (it builds as the user who owns the checkout when that is not root).
#
# Root-owned matters on a machine with more than one user: hutch re-executes
# itself from a sealed copy (CVE-2019-5736) whenever the container's user
# could write its binary, which costs a copy of the binary per call.
set -euo pipefail
cd "$(dirname "$0")/.."
. integration/lib.sh
prefix=${1:-/usr/local}
[ "$(id -u)" = 0 ] || die "run as root: the installed files must belong to root"
ensure_packages gcc libc6-dev libseccomp-dev
ensure_rust
owner=$(stat -c %U .)
if [ "$owner" = root ]; then bin=$(integration/build-release.sh)
else bin=$(runuser -u "$owner" -- env PATH="$PATH" HOME="$(getent passwd "$owner" | cut -d: -f6)" \
    integration/build-release.sh); fi
install -D -o root -g root -m 0755 "$bin" "$prefix/bin/hutch"
"$prefix/bin/hutch" man | install -D -o root -g root -m 0644 /dev/stdin "$prefix/share/man/man1/hutch.1"
"$prefix/bin/hutch" completion bash \
    | install -D -o root -g root -m 0644 /dev/stdin "$prefix/share/bash-completion/completions/hutch"
"$prefix/bin/hutch" completion zsh \
    | install -D -o root -g root -m 0644 /dev/stdin "$prefix/share/zsh/site-functions/_hutch"
"$prefix/bin/hutch" completion fish \
    | install -D -o root -g root -m 0644 /dev/stdin "$prefix/share/fish/vendor_completions.d/hutch.fish"
log "installed $("$prefix/bin/hutch" --version | head -n1) in $prefix"
