#!/bin/bash
# The systemd cgroup driver (--systemd-cgroup) against a real systemd, as
# root (issue 12). This host has no systemd, so one is booted in a
# container that hutch runs: a Debian root with systemd, dbus,
# dbus-user-session, podman and crun, /sbin/init with the full capability set, its own
# pid/mount/uts/ipc/cgroup namespaces, tmpfs on /run and /tmp, and a
# cgroup of its own below which its cgroup namespace (and so its systemd)
# starts. Inside it:
#   - root: `hutch --systemd-cgroup` create/start with a
#     system.slice:hutch:NAME path: the scope exists (systemctl, busctl),
#     Delegate=yes, the resources as properties (compared with crun's in
#     the same box), the container's pid in the scope before start, the
#     cgroup files where cgroup v2 holds the controller; after delete the
#     unit and its cgroup are gone. A create that fails after the scope
#     started leaves no unit; a path not in slice form is an error.
#   - a plain user (uid 1000) through `systemd --user`'s session bus;
#   - rootless podman with cgroup_manager = "systemd" and hutch as its
#     runtime.
# Everything is removed on exit, failed or not.
#
# usage: integration/systemd.sh HUTCH [--bench N]
#   --bench N: also time N creates with the systemd driver, hutch and crun
#   side by side (and without any cgroup, for the difference), and print
#   the medians (not run by CI).
set -euo pipefail
hutch=$(realpath "$1")
bench=0
[ "${2:-}" = --bench ] && bench=${3:-20}
cd "$(dirname "$0")/.."
. integration/lib.sh
[ "$(id -u)" = 0 ] || die "run as root"
ensure_packages busybox-static jq util-linux

src=$(debian_rootfs systemd-podman systemd systemd-sysv dbus dbus-user-session podman uidmap)
work=$(mktemp -d /tmp/hutch-systemd.XXXXXX)
box=hutch-ci-systemd-$$
outer=(--root "$work/state")
failed=0

cg2=$(cgroup2_root)
[ -n "$cg2" ] || die "no cgroup2 mount here (the systemd in the box needs one)"
cleanup() {
    "$hutch" "${outer[@]}" delete --force "$box" >/dev/null 2>&1 || true
    umount "$work/rootfs" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ok() { log "ok: $*"; }
bad() { log "FAILED: $*"; failed=1; }
# check WHAT GOT WANT
check() { if [ "$2" = "$3" ]; then ok "$1 = $3"; else bad "$1: got '$2', want '$3'"; fi; }

# The box's root: the cached one under an overlay (the cache stays as it
# is), with a plain user and two busybox bundles (root's and the
# user's) added.
mkdir "$work/rootfs" "$work/upper" "$work/overlay-work"
mount -t overlay overlay -o "lowerdir=$src,upperdir=$work/upper,workdir=$work/overlay-work" "$work/rootfs"
# tuser gets subordinate ids from useradd (podman uses them).
chroot "$work/rootfs" useradd -m -u 1000 -s /bin/sh tuser
# podman's system services are not what is tested (and fail in the box).
chroot "$work/rootfs" systemctl mask -q podman.service podman.socket podman-auto-update.service \
    podman-auto-update.timer podman-restart.service
mk_bundle() { # DIR ARGS_JSON [spec flags]
    local dir="$1" args="$2"; shift 2
    mkdir -p "$dir/rootfs/bin"
    cp /bin/busybox "$dir/rootfs/bin/busybox"
    (cd "$dir" && "$hutch" spec "$@" && jq --argjson a "$args" \
        '.process.args = $a | .process.terminal = false' config.json >c && mv c config.json)
}
mk_bundle "$work/rootfs/bb" '["/bin/busybox", "sleep", "1000"]'
mk_bundle "$work/rootfs/home/tuser/bb" '["/bin/busybox", "sleep", "1000"]'
chroot "$work/rootfs" chown -R tuser:tuser /home/tuser/bb

# The box: /sbin/init with every capability, no user namespace. Its root
# has Debian's systemd 252, dbus, podman and crun.
caps='["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_DAC_READ_SEARCH","CAP_FOWNER","CAP_FSETID","CAP_KILL",
"CAP_SETGID","CAP_SETUID","CAP_SETPCAP","CAP_LINUX_IMMUTABLE","CAP_NET_BIND_SERVICE","CAP_NET_BROADCAST",
"CAP_NET_ADMIN","CAP_NET_RAW","CAP_IPC_LOCK","CAP_IPC_OWNER","CAP_SYS_MODULE","CAP_SYS_RAWIO",
"CAP_SYS_CHROOT","CAP_SYS_PTRACE","CAP_SYS_PACCT","CAP_SYS_ADMIN","CAP_SYS_BOOT","CAP_SYS_NICE",
"CAP_SYS_RESOURCE","CAP_SYS_TIME","CAP_SYS_TTY_CONFIG","CAP_MKNOD","CAP_LEASE","CAP_AUDIT_WRITE",
"CAP_AUDIT_CONTROL","CAP_SETFCAP","CAP_MAC_OVERRIDE","CAP_MAC_ADMIN","CAP_SYSLOG","CAP_WAKE_ALARM",
"CAP_BLOCK_SUSPEND","CAP_AUDIT_READ","CAP_PERFMON","CAP_BPF","CAP_CHECKPOINT_RESTORE"]'
# Its /sys/fs/cgroup is its own cgroup2 directory (made by create, bound
# by start): a pure cgroup v2 systemd whatever the host has (a `cgroup`
# mount would show it the host's v1 hierarchies on a hybrid host, and
# systemd would run hybrid).
(cd "$work" && "$hutch" spec && jq --argjson caps "$caps" --arg cg "/$box" --arg hutch "$hutch" \
        --arg cgdir "$cg2/$box" '
    .process.args = ["/sbin/init"] | .process.terminal = false | .root.readonly = false
    | .process.env += ["container=hutch"]
    | .process.capabilities = {bounding: $caps, effective: $caps, permitted: $caps}
    | .linux.namespaces = [{type: "pid"}, {type: "ipc"}, {type: "uts"}, {type: "mount"}, {type: "cgroup"}]
    | .linux.cgroupsPath = $cg | .linux.rootfsPropagation = "shared"
    | del(.linux.maskedPaths) | del(.linux.readonlyPaths)
    | .mounts |= map(select(.destination != "/sys/fs/cgroup"))
    | .mounts += [
        {destination: "/sys/fs/cgroup", type: "bind", source: $cgdir,
         options: ["rbind", "rw", "nosuid", "noexec", "nodev"]},
        {destination: "/run", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=755"]},
        {destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev"]},
        {destination: "/usr/local/bin/hutch", type: "bind", source: $hutch, options: ["bind", "ro"]}]
    ' config.json >c && mv c config.json)
log "booting systemd in $box"
"$hutch" "${outer[@]}" create --bundle "$work" "$box" </dev/null >"$work/box.log" 2>&1 \
    || { cat "$work/box.log" >&2; die "create of the box failed"; }
"$hutch" "${outer[@]}" start "$box"
boxpid=$("$hutch" "${outer[@]}" state "$box" | jq -r .pid)
in_box() { nsenter -t "$boxpid" -a "$@"; }
as_tuser() { in_box runuser -u tuser -- env XDG_RUNTIME_DIR=/run/user/1000 \
    DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus HOME=/home/tuser "$@"; }
for _ in $(seq 300); do in_box test -S /run/systemd/private && break; sleep 0.1; done
state=$(in_box timeout 60 systemctl is-system-running --wait || true)
[ "$state" = running ] || { in_box systemctl --failed --no-pager >&2 || true; die "systemd in the box is '$state', not running"; }
ok "systemd runs in the box: $(in_box systemctl --version | head -n1)"

# show UNIT PROP [--user]: one property of a unit.
show() { if [ "${3:-}" = --user ]; then as_tuser systemctl --user show "$1" -p "$2" --value
         else in_box systemctl show "$1" -p "$2" --value; fi; }
# gone UNIT [--user]: the unit is not loaded at all.
gone() { local n; if [ "${2:-}" = --user ]; then n=$(as_tuser systemctl --user list-units --all --no-legend "$1" | wc -l)
         else n=$(in_box systemctl list-units --all --no-legend "$1" | wc -l); fi; [ "$n" = 0 ]; }

# ---- root: the system bus -------------------------------------------------
resources='{"memory": {"limit": 67108864}, "pids": {"limit": 50},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "unified": {"cgroup.max.depth": "3"}}'
# edit BUNDLE JQ-ARGS...: change the config of a bundle in the box (from
# here: the box has no jq).
edit() { local f="$work/rootfs$1/config.json"; shift; jq "$@" "$f" >"$f.new" && mv "$f.new" "$f"; }
with_path() { # BUNDLE PATH: set cgroupsPath and the resources
    edit "$1" --arg p "$2" --argjson r "$resources" '.linux.cgroupsPath = $p | .linux.resources = $r'
}
name=t$$
unit=hutch-$name.scope
with_path /bb "system.slice:hutch:$name"
# Unit properties from annotations, as runc and crun take them.
edit /bb --arg cm "'inactive-or-failed'" '.annotations = {"org.systemd.property.TimeoutStopSec": "uint64 15",
    "org.systemd.property.CollectMode": $cm}'
in_box sh -c "cd /bb && hutch --systemd-cgroup create $name" 2>"$work/create.err" || bad "create with --systemd-cgroup"
cat "$work/create.err" >&2
pid=$(in_box hutch state "$name" | jq -r .pid)
scope_dir=/sys/fs/cgroup/system.slice/$unit
check "unit state after create" "$(show "$unit" ActiveState)" active
check "unit's slice" "$(show "$unit" Slice)" system.slice
check "unit's cgroup" "$(show "$unit" ControlGroup)" "/system.slice/$unit"
check "Delegate" "$(show "$unit" Delegate)" yes
objpath=$(in_box busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
    org.freedesktop.systemd1.Manager GetUnit s "$unit" | awk '{ print $2 }' | tr -d '"')
check "busctl: Delegate of $objpath" \
    "$(in_box busctl get-property org.freedesktop.systemd1 "$objpath" org.freedesktop.systemd1.Scope Delegate)" "b true"
# Before start the container process is in the scope and runs hutch, not
# its program.
check "container pid in the scope before start" \
    "$(in_box grep -cx "$pid" "$scope_dir/cgroup.procs")" 1
check "the program does not run before start" "$(in_box cat /proc/"$pid"/comm)" hutch
in_box hutch start "$name" || bad "start"
check "the program after start" "$(in_box cat /proc/"$pid"/comm)" busybox
check "the container's cgroup" "$(in_box grep '^0::' /proc/"$pid"/cgroup)" "0::/system.slice/$unit"
check "MemoryMax" "$(show "$unit" MemoryMax)" 67108864
check "TasksMax" "$(show "$unit" TasksMax)" 50
check "CPUWeight (512 shares)" "$(show "$unit" CPUWeight)" 20
check "CPUQuotaPerSecUSec" "$(show "$unit" CPUQuotaPerSecUSec)" 500ms
check "AllowedCPUs" "$(show "$unit" AllowedCPUs)" 0
check "TimeoutStopUSec (annotation TimeoutStopSec)" "$(show "$unit" TimeoutStopUSec)" 15s
check "CollectMode (annotation)" "$(show "$unit" CollectMode)" inactive-or-failed
# What systemd has no property for is written into the delegated cgroup:
# a core file, and hugetlb (which systemd does not manage) where cgroup v2
# holds it, enabled by hutch from the top down.
check "cgroup.max.depth (written by hutch)" "$(in_box cat "$scope_dir/cgroup.max.depth")" 3
if grep -qw hugetlb <<<"$(in_box cat /sys/fs/cgroup/cgroup.controllers)"; then
    check "hugetlb.2MB.max (written by hutch)" "$(in_box cat "$scope_dir/hugetlb.2MB.max")" 4194304
else
    log "not checked: hugetlb.2MB.max (no hugetlb controller on cgroup v2 here)"
fi
# The files of the controllers this host's cgroup v2 holds (on a hybrid
# host, often none: then systemd keeps the properties only).
controllers=$(in_box cat "$scope_dir/cgroup.controllers")
log "controllers in the scope's cgroup: '${controllers}'"
for pair in memory:memory.max=67108864 pids:pids.max=50 cpu:cpu.weight=20 "cpu:cpu.max=50000 100000" cpuset:cpuset.cpus=0; do
    c=${pair%%:*} f=${pair#*:}; file=${f%%=*} want=${f#*=}
    if grep -qw "$c" <<<"$controllers"; then
        check "$file" "$(in_box cat "$scope_dir/$file")" "$want"
        check "warnings about $file" "$(grep -c "has no file $file " "$work/create.err")" 0
    else
        log "not checked: $file (no $c controller on cgroup v2 here)"
        check "warnings about $file, not enforced" "$(grep -c "not enforced: .* has no file $file " "$work/create.err")" 1
    fi
done

# exec'd processes join the scope; ps lists both.
in_box hutch exec --detach "$name" /bin/busybox sleep 1000 || bad "exec"
check "processes in the scope after exec" "$(in_box cat "$scope_dir/cgroup.procs" | wc -l)" 2
check "processes hutch ps lists" "$(in_box hutch ps --format json "$name" | jq length)" 2

# crun's systemd driver in the same box, same config: the same unit.
# crun writes each limit's file itself after systemd made the scope, and
# fails where the file does not exist: it gets only the limits whose
# controller this cgroup v2 holds.
crun_unit=crun-c$$.scope
crun_res='{"unified": {"cgroup.max.depth": "3"}}'
props="Delegate Slice DefaultDependencies ActiveState TimeoutStopUSec CollectMode"
for pair in memory:'.memory = {limit: 67108864}':MemoryMax pids:'.pids = {limit: 50}':TasksMax \
        cpu:'.cpu.shares = 512 | .cpu.quota = 50000 | .cpu.period = 100000':'CPUWeight CPUQuotaPerSecUSec' \
        cpuset:'.cpu.cpus = "0"':AllowedCPUs; do
    IFS=: read -r c expr p <<<"$pair"
    grep -qw "$c" <<<"$controllers" || continue
    crun_res=$(jq -c "$expr" <<<"$crun_res") props="$props $p"
done
edit /bb --arg p "system.slice:crun:c$$" --argjson r "$crun_res" '.linux.cgroupsPath = $p | .linux.resources = $r'
if in_box sh -c "cd /bb && crun --systemd-cgroup create c$$"; then
    for p in $props; do
        check "$p as crun sets it" "$(show "$unit" "$p")" "$(show "$crun_unit" "$p")"
    done
else
    bad "crun --systemd-cgroup create"
fi
in_box crun delete --force "c$$" || bad "crun delete"

in_box hutch delete --force "$name" || bad "delete"
if gone "$unit"; then ok "$unit is gone after delete"; else bad "$unit is still loaded after delete"; fi
if in_box test -e "$scope_dir"; then bad "$scope_dir is left"; else ok "its cgroup is gone"; fi

# An annotation systemd cannot take as hutch reads it: one error, no unit.
edit /bb --arg p "system.slice:hutch:a$$" '.linux.cgroupsPath = $p | .annotations = {"org.systemd.property.TimeoutStopSec": "15 seconds"}'
if out=$(in_box sh -c "cd /bb && hutch --systemd-cgroup create a$$" 2>&1); then
    bad "a malformed org.systemd.property annotation was accepted"
else
    check "error of a malformed annotation" "$(grep -c 'annotation `org.systemd.property.TimeoutStopSec`' <<<"$out")" 1
fi
if gone "hutch-a$$.scope"; then ok "no unit after it"; else bad "hutch-a$$.scope left"; fi
check "state entries after it" "$(in_box hutch list -q | wc -l)" 0

# No cgroupsPath: a scope all the same, hutch-ID.scope (crun: crun-ID).
edit /bb 'del(.linux.cgroupsPath) | del(.linux.resources) | del(.annotations)'
if in_box sh -c "cd /bb && hutch --systemd-cgroup create d$$"; then
    check "scope without a cgroupsPath" "$(show "hutch-d$$.scope" ControlGroup)" "/system.slice/hutch-d$$.scope"
    in_box hutch delete --force "d$$" || bad "delete"
    if gone "hutch-d$$.scope"; then ok "hutch-d$$.scope is gone after delete"; else bad "hutch-d$$.scope left"; fi
else
    bad "create without a cgroupsPath"
fi

# run: the program's exit empties the scope, and run's delete finds it
# gone or stops it.
edit /bb --arg p "system.slice:hutch:r$$" '.linux.cgroupsPath = $p | .process.args = ["/bin/busybox", "echo", "ran"]'
check "run with --systemd-cgroup" "$(in_box sh -c "cd /bb && hutch --systemd-cgroup run r$$")" ran
if gone "hutch-r$$.scope"; then ok "hutch-r$$.scope is gone after run"; else bad "hutch-r$$.scope left by run"; fi
edit /bb '.process.args = ["/bin/busybox", "sleep", "1000"]'

# A create that fails after the scope started (the kernel refuses a value
# hutch writes into the scope) leaves no unit, no state.
edit /bb --arg p "system.slice:hutch:f$$" '.linux.cgroupsPath = $p | .linux.resources = {unified: {"cgroup.max.depth": "lots"}}'
if out=$(in_box sh -c "cd /bb && hutch --systemd-cgroup create f$$" 2>&1); then
    bad "create with a refused value succeeded"
else
    check "error of the refused value" "$(grep -c 'write `lots`' <<<"$out")" 1
fi
if gone "hutch-f$$.scope"; then ok "no unit after the failed create"; else bad "hutch-f$$.scope left by a failed create"; fi
check "state entries after the failed create" "$(in_box hutch list -q | wc -l)" 0

# Not slice:prefix:name with --systemd-cgroup: one error, nothing made.
edit /bb '.linux.cgroupsPath = "/hutch/x"'
if out=$(in_box sh -c "cd /bb && hutch --systemd-cgroup create x$$" 2>&1); then
    bad "a cgroupfs path with --systemd-cgroup was accepted"
else
    check "error of a cgroupfs path" "$(grep -c 'must be slice:prefix:name' <<<"$out")" 1
fi

# ---- a plain user: systemd --user's session bus -------------------------
in_box systemctl start user@1000.service || bad "start user@1000.service"
for _ in $(seq 50); do in_box test -S /run/user/1000/bus && break; sleep 0.2; done
uname=u$$
uunit=hutch-$uname.scope
# The user's own rootless config (its id maps are the user's).
as_tuser sh -c 'cd /home/tuser/bb && rm config.json && hutch spec --rootless'
edit /home/tuser/bb '.process.args = ["/bin/busybox", "sleep", "1000"] | .process.terminal = false'
edit /home/tuser/bb --arg p ":hutch:$uname" '.linux.cgroupsPath = $p | .linux.resources = {memory: {limit: 33554432}, pids: {limit: 20}}'
if as_tuser sh -c "cd /home/tuser/bb && hutch --systemd-cgroup create $uname && hutch start $uname"; then
    upid=$(as_tuser hutch state "$uname" | jq -r .pid)
    check "user unit state" "$(show "$uunit" ActiveState --user)" active
    check "user unit's slice (the default for a plain user)" "$(show "$uunit" Slice --user)" user.slice
    check "user unit Delegate" "$(show "$uunit" Delegate --user)" yes
    check "user unit MemoryMax" "$(show "$uunit" MemoryMax --user)" 33554432
    check "user unit TasksMax" "$(show "$uunit" TasksMax --user)" 20
    ucg=$(show "$uunit" ControlGroup --user)
    check "user unit's cgroup" "$ucg" "/user.slice/user-1000.slice/user@1000.service/user.slice/$uunit"
    check "the user's container in its scope" "$(in_box grep '^0::' /proc/"$upid"/cgroup)" "0::$ucg"
    as_tuser hutch delete --force "$uname" || bad "delete as the user"
    if gone "$uunit" --user; then ok "$uunit is gone after delete"; else bad "$uunit still loaded"; fi
else
    bad "create/start as a plain user with --systemd-cgroup"
fi
# Without the session bus: one error naming it, nothing left.
if out=$(in_box runuser -u tuser -- env XDG_RUNTIME_DIR=/home/tuser HOME=/home/tuser \
        sh -c "cd /home/tuser/bb && hutch --systemd-cgroup create n$$" 2>&1); then
    bad "create without a session bus succeeded"
else
    check "error without a session bus" "$(grep -c 'unix:path=/home/tuser/bus' <<<"$out")" 1
fi
check "user state entries" "$(as_tuser hutch list -q | wc -l)" 0

# ---- rootless podman with cgroup_manager = "systemd" --------------------
# podman passes --systemd-cgroup and a user.slice:libpod:ID path; hutch
# runs inside podman's user namespace (root there), so the session bus is
# chosen there too. No registry: the image is imported from a tarball.
tar -C "$work/rootfs/bb/rootfs" -cf "$work/rootfs/home/tuser/bb.tar" .
mkdir -p "$work/rootfs/home/tuser/.config/containers"
printf '%s\n' '[engine]' 'cgroup_manager = "systemd"' 'runtime = "hutch"' \
    '[engine.runtimes]' 'hutch = ["/usr/local/bin/hutch"]' \
    >"$work/rootfs/home/tuser/.config/containers/containers.conf"
chroot "$work/rootfs" chown -R tuser:tuser /home/tuser/.config /home/tuser/bb.tar
pod() { as_tuser podman --storage-driver vfs "$@"; }
if pod import -q /home/tuser/bb.tar localhost/bb >/dev/null; then
    cid=$(pod run -d --network none localhost/bb /bin/busybox sleep 1000) || cid=
    if [ -n "$cid" ]; then
        punit=libpod-$cid.scope
        ppid=$(pod inspect --format '{{.State.Pid}}' "$cid")
        check "podman's container runs under hutch" "$(pod inspect --format '{{.OCIRuntime}}' "$cid")" hutch
        check "podman's container scope Delegate" "$(show "$punit" Delegate --user)" yes
        check "podman's container in its scope" "$(in_box grep '^0::' /proc/"$ppid"/cgroup)" \
            "0::/user.slice/user-1000.slice/user@1000.service/user.slice/$punit"
        pod rm -f -t 0 "$cid" >/dev/null || bad "podman rm"
        if gone "$punit" --user; then ok "$punit is gone after podman rm"; else bad "$punit left after podman rm"; fi
    else
        bad "rootless podman run with hutch and cgroup_manager = systemd"
    fi
    # The same with crun: podman asks for a pids limit by default, which
    # crun writes itself, so where cgroup v2 lacks pids crun fails (hutch
    # passes TasksMax to systemd and warns).
    if cid=$(pod --runtime crun run -d --network none localhost/bb /bin/busybox sleep 1000 2>"$work/crun.err"); then
        check "podman with crun: scope Delegate" "$(show "libpod-$cid.scope" Delegate --user)" yes
        pod rm -f -t 0 "$cid" >/dev/null || bad "podman rm (crun)"
    elif ! grep -qw pids <<<"$controllers"; then
        check "podman with crun, no pids controller: crun's error" \
            "$(grep -c 'controller `pids` is not available' "$work/crun.err")" 1
    else
        bad "rootless podman run with crun: $(cat "$work/crun.err")"
    fi
else
    bad "podman import"
fi

# ---- the cost of a create with the driver, beside crun's ----------------
if [ "$bench" -gt 0 ]; then
    # No limits: crun writes each limit's file itself and fails where
    # cgroup v2 lacks the controller.
    edit /bb '.linux.cgroupsPath = "system.slice:hutch:bench" | del(.linux.resources)'
    # One shell in the box times each create (ns), then deletes.
    in_box sh -c '
        n=$1
        t() { s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
        cd /bb
        for i in $(seq "$n"); do
            echo "hutch $(t hutch --systemd-cgroup create b)"; hutch delete --force b
            echo "crun $(t crun --systemd-cgroup create b)"; crun delete --force b
            echo "hutch-no-cgroup $(t hutch --cgroup-manager disabled create b)"; hutch delete --force b
            echo "crun-no-cgroup $(t crun --cgroup-manager=disabled create b)"; crun delete --force b
        done' sh "$bench" >"$work/times"
    for r in hutch crun hutch-no-cgroup crun-no-cgroup; do
        m=$(awk -v r="$r" '$1 == r { print $2 }' "$work/times" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
        log "create, median of $bench: $r $m us"
    done
fi

[ "$failed" = 0 ] && log "systemd driver: all checks passed" || log "systemd driver: some checks FAILED"
exit "$failed"
