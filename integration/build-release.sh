#!/bin/bash
# Build the release hutch as a static binary (glibc and libseccomp linked
# in), strip it and print its path. hutch runs for a millisecond or two per
# call: without shared libraries to map and relocate it starts faster and
# its peak memory is lower (see bench/). A plain `cargo build --release`
# gives a dynamic binary that works the same.
#
# With LLD (rustc's default linker on x86_64 Linux from 1.90) the functions
# hutch runs come first in the link order, together (integration/order/):
# the kernel maps a binary's pages 64 KiB at a time, so code run by every
# call, scattered over the binary, made most of it resident.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
lib=$(dirname "$(gcc -print-file-name=libseccomp.a)")
[ -f "$lib/libseccomp.a" ] || { echo "libseccomp.a not found: install libseccomp-dev" >&2; exit 1; }
flags="-C target-feature=+crt-static"
minor=$(rustc -vV | sed -n 's/^release: 1\.\([0-9]*\).*/\1/p')
if [ "$host" = x86_64-unknown-linux-gnu ] && [ "${minor:-0}" -ge 90 ]; then
    # Relative: the linker runs in this directory, and the flags (so the
    # symbol names the order lists) are the same in every checkout.
    flags="$flags -C link-arg=-Wl,--symbol-ordering-file=integration/order/hutch.order"
    flags="$flags -C link-arg=-Wl,--no-warn-symbol-ordering"
fi
RUSTFLAGS="$flags" LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="$lib" \
    cargo build --release --locked --quiet --target "$host"
# The profile keeps the symbols (integration/order/gen-order.sh names the
# functions with them): cargo's copy in target/.../deps keeps them, this
# one, a new file, loses them.
out=target/$host/release/hutch
strip -o "$out.stripped" "$out"
mv "$out.stripped" "$out"
echo "$(pwd)/$out"
