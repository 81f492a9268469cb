#!/bin/bash
# Run all of hutch's tests on a Debian machine, as root: install what they
# need, build, then run the unit tests, and the integration tests as root,
# as a plain user with subordinate ids (tuser) and as one without (tsingle).
# Every suite must pass in every mode; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
. integration/lib.sh
[ "$(id -u)" = 0 ] || die "run as root (it installs packages and creates the test users)"

ensure_packages busybox-static uidmap tini jq buildah podman crun ca-certificates gcc libc6-dev libseccomp-dev \
    keyutils python3 dbus-daemon squashfs-tools squashfuse procps
# SquashFS roots (tests/squashfs.rs) mount with FUSE as the plain users too:
# Debian's udev rule makes /dev/fuse 0666 on a real install; not here.
[ -c /dev/fuse ] || die "no /dev/fuse: SquashFS roots need FUSE"
chmod 666 /dev/fuse
ensure_rust
ensure_users

# On a v1/v2 hybrid host (cgroup2 at /sys/fs/cgroup/unified), crun 1.8
# refuses every container while cgroup v2 holds a controller (hugetlb on
# a fresh machine of this kind), and several suites compare hutch with
# crun: give each such controller a v1 hierarchy of its own for the run.
# with_controllers_on_cgroup2, last, hands them back to cgroup v2 and
# checks their limits there; the EXIT trap does if the run stops early.
to_v1=()
cg2=$(cgroup2_root)
if [ -n "$cg2" ] && [ "$cg2" != /sys/fs/cgroup ]; then
    for c in $(cat "$cg2/cgroup.controllers"); do
        mkdir -p "/sys/fs/cgroup/$c"
        mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" && to_v1+=("$c") \
            || log "could not give $c a cgroup v1 hierarchy: crun will refuse to run"
    done
    [ ${#to_v1[@]} = 0 ] || log "for crun: ${to_v1[*]} moved from cgroup v2 to cgroup v1 for the run"
fi
# back_to_v2: unmount those hierarchies (empty by then): their
# controllers return to cgroup v2.
back_to_v2() {
    local c v2 tmp
    v2=$(cgroup2_root)
    for c in "${to_v1[@]}"; do
        # Cgroups runtimes left empty keep a hierarchy alive after umount.
        find "/sys/fs/cgroup/$c" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
        umount "/sys/fs/cgroup/$c" 2>/dev/null && rmdir "/sys/fs/cgroup/$c" 2>/dev/null || true
        # A hierarchy unmounted while removed cgroups were still going away
        # stays (/proc/cgroups): mount it again and let go once they are.
        # (Every 3 s at most: a hierarchy takes a moment to go, and a mount
        # before it has gone would make a new one.)
        tmp=$(mktemp -d)
        for i in $(seq 300); do
            grep -qw "$c" "$v2/cgroup.controllers" && break
            sleep 0.1
            [ $((i % 30)) = 0 ] || continue
            mount -t cgroup -o "$c" cgroup "$tmp" 2>/dev/null && umount "$tmp" 2>/dev/null || true
        done
        rmdir "$tmp" 2>/dev/null || true
        grep -qw "$c" "$v2/cgroup.controllers" || log "$c stays on cgroup v1"
    done
    to_v1=()
}

log "building"
cargo build --locked --quiet
cargo test --locked --quiet --no-run 2>/dev/null
bins=$(cargo test --locked --no-run --message-format=json 2>/dev/null \
    | jq -r 'select(.profile.test == true and .target.kind == ["test"]) | .executable // empty')

# The test binaries and hutch go where the plain users can run them.
ci=$(mktemp -d /tmp/hutch-ci.XXXXXX)
trap 'rm -rf "$ci"; undelegate tuser; undelegate tsingle; back_to_v2' EXIT
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

# buildah set up as Charliecloud users have it, with hutch as ch-run-oci
# (issue 14).
cro_test="$PWD/integration/ch-run-oci.sh"
for who in tuser tsingle; do
    log "ch-run-oci under buildah as $who"
    (cd "$ci" && in_cgroup "${cg[$who]}" as "$who" "$cro_test" "$ci/hutch") || failed=1
done

# podman drives hutch through conmon, as each plain user (issue 7),
# compared case by case with crun.
podman_test="$PWD/integration/podman.sh"
for who in tuser tsingle; do
    log "podman integration as $who"
    (cd "$ci" && in_cgroup "${cg[$who]}" as "$who" "$podman_test" "$ci/hutch") || failed=1
done

# What the container sees, side by side with crun (issue 11), for the
# same configs, as each user; crun_ready lets crun run on a hybrid host.
diff_test="$PWD/integration/differential.sh"
for who in root tuser tsingle; do
    log "differential against crun as $who"
    if [ "$who" = root ]; then (cd "$ci" && crun_ready "$diff_test" "$ci/hutch") || failed=1
    else (cd "$ci" && crun_ready in_cgroup "${cg[$who]}" as "$who" "$diff_test" "$ci/hutch") || failed=1; fi
done

# Root emulation (issue 13): package installs in a debootstrapped Debian as
# tsingle (one id), through hutch run and buildah bud; tuser unchanged.
log "root emulation integration"
integration/rootemu.sh "$ci/hutch" || failed=1

# Slurm: a one-node cluster, srun/sbatch --container as tuser (run as root).
log "Slurm integration"
integration/slurm.sh "$ci/hutch" || failed=1

# SquashFS images (issue 14): a Debian tree packed four ways, read whole
# through hutch's server, squashfuse_ll and the kernel, as each user.
log "SquashFS images"
integration/squashfs-images.sh "$ci/hutch" || failed=1

# MPI through Slurm (issue 14): two Slurm nodes in network namespaces of
# their own, an Open MPI job with a rank on each, in hutch containers
# (srun hutch-task) against bare srun, as tuser (run as root).
log "MPI integration"
integration/mpi.sh "$ci/hutch" || failed=1

# ---- Docker and podman as root (issue 12) -----------------------------
# A private dockerd with hutch and crun registered, then podman as root
# (cgroupfs): limits, pause/unpause, update, stats, exec, stop/start, rm,
# read back from the cgroup files and compared with crun. Before the
# cgroup v2 step below: crun refuses to run while cgroup v2 holds a
# controller (both scripts move such controllers to cgroup v1 for their
# run and give them back).
log "Docker integration as root"
integration/docker.sh "$ci/hutch" || failed=1
log "podman integration as root"
integration/podman-root.sh "$ci/hutch" || failed=1
# ------------------------------------------------------------------------

# ---- The systemd cgroup driver (issue 12) -------------------------------
# No systemd runs here: integration/systemd.sh boots one in a hutch
# container (as root) and drives `hutch --systemd-cgroup` inside it, as
# root and as a plain user, beside crun. It runs once more below where
# cgroup v2 holds controllers, so that their files are checked too.
log "systemd driver integration"
integration/systemd.sh "$ci/hutch" || failed=1
# -------------------------------------------------------------------------

# Real limits: on this hybrid host cgroup v2 holds few controllers or
# none (hugetlb on a fresh machine; bench.sh moves it to v1 for crun), so
# the runs above mostly checked the warnings. Where it can, give cgroup v2
# the pids controller too (its v1 hierarchy must be unused), and run the
# suite once more as root, whose cgroup is the root one, where hutch can
# enable them: the limits of those controllers must then be in their
# files. Last, because crun refuses to run while cgroup v2 holds any.
with_controllers_on_cgroup2() {
    local cg2 c on=() moved=0
    back_to_v2
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
    log "systemd driver integration, with ${on[*]} on cgroup v2"
    integration/systemd.sh "$ci/hutch" || failed=1
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
