#!/bin/bash
# Run all of hutch's tests on a Debian machine, as root: install what they
# need, build, then run the unit tests, and the integration tests as root,
# as a plain user with subordinate ids (tuser) and as one without (tsingle).
# Every suite must pass in every mode; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
. integration/lib.sh
[ "$(id -u)" = 0 ] || die "run as root (it installs packages and creates the test users)"

ensure_packages busybox-static uidmap tini jq buildah podman crun ca-certificates gcc libc6-dev libseccomp-dev
ensure_rust
ensure_users

log "building"
cargo build --locked --quiet
cargo test --locked --quiet --no-run 2>/dev/null
bins=$(cargo test --locked --no-run --message-format=json 2>/dev/null \
    | jq -r 'select(.profile.test == true and .target.kind == ["test"]) | .executable // empty')

# The test binaries and hutch go where the plain users can run them.
ci=$(mktemp -d /tmp/hutch-ci.XXXXXX)
trap 'rm -rf "$ci"; undelegate tuser; undelegate tsingle' EXIT
chmod 755 "$ci"
install -m 755 "target/$(rustc -vV | sed -n 's/^host: //p')/debug/hutch" "$ci/hutch"
for b in $bins; do install -m 755 "$b" "$ci/$(basename "$b" | sed 's/-[0-9a-f]*$//')"; done
mkdir -m 1777 "$ci/tmp"

# Each plain user runs its tests from a cgroup v2 subtree of its own, as
# a systemd session with delegation would give it (tests/cgroups.rs).
declare -A cg
for who in tuser tsingle; do cg[$who]=$(delegate "$who"); done

failed=0
log "unit tests"
cargo test --locked --quiet --lib || failed=1

for who in root tuser tsingle; do
    for t in "$ci"/*; do
        [ -f "$t" ] && [ "$(basename "$t")" != hutch ] || continue
        log "integration tests $(basename "$t") as $who"
        cmd=(env HUTCH_BIN="$ci/hutch" HUTCH_TEST_TMP="$ci/tmp" "$t" --test-threads=2)
        if [ "$who" = root ]; then "${cmd[@]}" || failed=1
        else (cd "$ci" && in_cgroup "${cg[$who]}" as "$who" "${cmd[@]}") || failed=1; fi
    done
done

# buildah drives hutch as its runtime, as each plain user (issue 3).
bud_test="$PWD/integration/buildah.sh"
for who in tuser tsingle; do
    log "buildah integration as $who"
    (cd "$ci" && in_cgroup "${cg[$who]}" as "$who" "$bud_test" "$ci/hutch") || failed=1
done

# podman drives hutch through conmon, as each plain user (issue 7),
# compared case by case with crun.
podman_test="$PWD/integration/podman.sh"
for who in tuser tsingle; do
    log "podman integration as $who"
    (cd "$ci" && in_cgroup "${cg[$who]}" as "$who" "$podman_test" "$ci/hutch") || failed=1
done

# Root emulation (issue 13): package installs in a debootstrapped Debian as
# tsingle (one id), through hutch run and buildah bud; tuser unchanged.
log "root emulation integration"
integration/rootemu.sh "$ci/hutch" || failed=1

# Slurm: a one-node cluster, srun/sbatch --container as tuser (run as root).
log "Slurm integration"
integration/slurm.sh "$ci/hutch" || failed=1

# Real limits: on this hybrid host cgroup v2 holds few controllers or
# none (hugetlb on a fresh machine; bench.sh moves it to v1 for crun), so
# the runs above mostly checked the warnings. Where it can, give cgroup v2
# the pids controller too (its v1 hierarchy must be unused), and run the
# suite once more as root, whose cgroup is the root one, where hutch can
# enable them: the limits of those controllers must then be in their
# files. Last, because crun refuses to run while cgroup v2 holds any.
with_controllers_on_cgroup2() {
    local cg2 c on=() moved=0
    cg2=$(cgroup2_root)
    [ -n "$cg2" ] || return 0
    if ! grep -qw pids "$cg2/cgroup.controllers" && mountpoint -q /sys/fs/cgroup/pids \
        && [ -z "$(find /sys/fs/cgroup/pids -mindepth 1 -type d)" ]; then
        umount /sys/fs/cgroup/pids 2>/dev/null && moved=1
    fi
    for c in pids hugetlb memory cpu; do
        grep -qw "$c" "$cg2/cgroup.controllers" && on+=("$c")
    done
    if [ "${#on[@]}" = 0 ]; then
        log "cgroup v2 holds no controller here: limits were checked as warnings only"
        return 0
    fi
    log "integration tests cgroups as root, with ${on[*]} on cgroup v2"
    env HUTCH_BIN="$ci/hutch" HUTCH_TEST_TMP="$ci/tmp" HUTCH_EXPECT_CONTROLLERS="${on[*]}" \
        "$ci/cgroups" --test-threads=2 || failed=1
    # hutch enabled them in the root cgroup: hand pids back to cgroup v1.
    for c in "${on[@]}"; do echo "-$c" >"$cg2/cgroup.subtree_control" 2>/dev/null || true; done
    if [ "$moved" = 1 ]; then
        mount -t cgroup -o pids cgroup /sys/fs/cgroup/pids || log "could not mount the pids hierarchy again"
    fi
}
with_controllers_on_cgroup2

# Nothing may be left behind: no container process, no state.
if pgrep -f "$ci/hutch" >/dev/null; then
    log "processes left behind:"; pgrep -af "$ci/hutch" >&2; failed=1
fi
[ "$failed" = 0 ] && log "all suites passed" || log "some suites FAILED"
exit "$failed"
