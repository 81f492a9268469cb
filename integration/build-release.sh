#!/bin/bash
# Build the release hutch and print its path. The project's cargo
# configuration (.cargo/config.toml) makes it what `cargo install --path .`
# installs: static (glibc and libseccomp linked in), stripped, with the
# functions hutch runs linked side by side (integration/order/). hutch runs
# for a millisecond or two per call: without shared libraries to map and
# relocate it starts faster and its peak memory is lower (see bench/).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$(gcc -print-file-name=libseccomp.a)" ] || [ -f /usr/lib/"$(gcc -dumpmachine)"/libseccomp.a ] \
    || { echo "libseccomp.a not found: install libseccomp-dev" >&2; exit 1; }
cargo build --release --locked --quiet
host=$(rustc -vV | sed -n 's/^host: //p')
echo "$(pwd)/target/$host/release/hutch"
