#!/bin/bash
# Build the release hutch as a static binary (glibc and libseccomp linked
# in) and print its path. hutch runs for a millisecond or two per call:
# without shared libraries to map and relocate it starts faster and its
# peak memory is lower (see bench/). A plain `cargo build --release` gives
# a dynamic binary that works the same.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
lib=$(dirname "$(gcc -print-file-name=libseccomp.a)")
[ -f "$lib/libseccomp.a" ] || { echo "libseccomp.a not found: install libseccomp-dev" >&2; exit 1; }
RUSTFLAGS="-C target-feature=+crt-static" LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="$lib" \
    cargo build --release --locked --quiet --target "$host"
echo "$(pwd)/target/$host/release/hutch"
