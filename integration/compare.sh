# Shared by docker.sh and podman-root.sh (sourced, after lib.sh): crun's
# hybrid-cgroup workaround, and recording and comparing what two runtimes
# did. The caller sets W (its directory) before using rec/report.

# ------------------------------------------------ controllers for crun
# crun 1.8 refuses to run while cgroup v2 holds any controller (this
# hybrid host: hugetlb). controllers_to_v1 moves each to a cgroup v1
# hierarchy mounted at /sys/fs/cgroup/NAME (machine-notes.md);
# controllers_back undoes it. The caller runs controllers_back from its
# exit trap.
moved=()        # controllers moved from cgroup v2 to v1
made_mnt=()     # mount points made for them
disabled=()     # controllers taken out of the root's subtree_control
cg2=$(cgroup2_root)

controllers_to_v1() {
    local c d
    [ -n "$cg2" ] || return 0
    for c in $(cat "$cg2/cgroup.controllers"); do
        # Enabled for the root's children (hutch's v2 backend enables what a
        # limit needs in the parents' subtree_control, e.g. for
        # tests/cgroups.rs's hugepageLimits as root; runc did it here too):
        # it cannot move while it is. Enabled again afterwards.
        if grep -qw "$c" "$cg2/cgroup.subtree_control"; then
            echo "-$c" >"$cg2/cgroup.subtree_control" \
                || die "cannot move the $c controller to cgroup v1 for crun: cgroups below $cg2 use it"
            disabled+=("$c")
        fi
        d=/sys/fs/cgroup/$c
        if [ ! -d "$d" ]; then mkdir "$d" && made_mnt+=("$d"); fi
        if mount -t cgroup -o "$c" cgroup "$d"; then moved+=("$c")
        else die "could not move the $c controller to cgroup v1 (crun needs it off cgroup v2; is it enabled in $cg2/cgroup.subtree_control?)"; fi
    done
    [ ${#moved[@]} -eq 0 ] || log "moved ${moved[*]} from cgroup v2 to v1 for crun"
}

# The kernel frees a v1 hierarchy, and its controller returns to cgroup
# v2, only if it has no cgroup left but its root when it is unmounted;
# removed cgroups count until the kernel has freed them (a moment after
# rmdir), so wait for /proc/cgroups to say 1 first, then check.
controllers_back() {
    local c d n
    for c in "${moved[@]}"; do
        for _ in $(seq 100); do
            n=$(awk -v c="$c" '$1 == c { print $3 }' /proc/cgroups)
            [ "$n" = 1 ] && break
            sleep 0.1
        done
        [ "$n" = 1 ] || log "the $c hierarchy still has $n cgroups"
        umount "/sys/fs/cgroup/$c" || { log "could not unmount the $c hierarchy"; continue; }
        for _ in $(seq 20); do
            grep -qw "$c" "$cg2/cgroup.controllers" && break
            sleep 0.1
        done
        grep -qw "$c" "$cg2/cgroup.controllers" || log "the $c controller did not return to cgroup v2"
    done
    for d in "${made_mnt[@]}"; do rmdir "$d" 2>/dev/null; done
    for c in "${disabled[@]}"; do
        echo "+$c" >"$cg2/cgroup.subtree_control" || log "could not enable $c in $cg2 again"
    done
    moved=()
    made_mnt=()
    disabled=()
}

# remove_cgroups NAME: remove /sys/fs/cgroup/*/NAME and what is below.
remove_cgroups() {
    local d
    for d in /sys/fs/cgroup/*/"$1"; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
        [ -d "$d" ] && log "could not remove cgroup $d"
    done
}

# ------------------------------------------------ observations
keys=()
declare -A want
# expect KEY VALUE: what the client asked for, in the order reported.
expect() { keys+=("$1"); want[$1]=$2; }
# rec RUNTIME KEY VALUE: one observation.
rec() { printf '%s\t%s\n' "$2" "$3" >>"$W/res-$1"; }

# report A B: a line per expected key: ok when A's value is the expected
# one and equals B's; B's value in brackets. Prints "N passed, M failed"
# and returns non-zero when anything failed.
report() {
    local a="$1" b="$2" key va vb w note passed=0 failed=0
    value() { awk -F'\t' -v k="$2" '$1 == k { sub(/^[^\t]*\t/, ""); print; exit }' "$W/res-$1"; }
    for key in "${keys[@]}"; do
        va=$(value "$a" "$key")
        vb=$(value "$b" "$key")
        grep -qF -- "$key"$'\t' "$W/res-$a" || va="(not reached)"
        grep -qF -- "$key"$'\t' "$W/res-$b" || vb="(not reached)"
        w=${want[$key]-}
        note="[$b: same]"
        [ "$vb" = "$va" ] || note="[$b: $vb]"
        [ "$vb" = "$w" ] || note="$note ($b differs from the request: $w)"
        if [ "$va" = "$w" ] && [ "$va" = "$vb" ]; then
            passed=$((passed + 1)); printf 'ok   %s: %s %s\n' "$key" "$va" "$note"
        else
            failed=$((failed + 1)); printf 'FAIL %s: %s, want %s %s\n' "$key" "$va" "$w" "$note"
        fi
    done
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}
