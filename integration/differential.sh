#!/bin/bash
# integration/differential.sh HUTCH [CRUN]: run the same configs under
# hutch and crun and compare what the container sees: identity,
# capabilities, seccomp mode, no_new_privs, mounts with their flags, /dev,
# limits, session keyring, terminal, open fds, namespaces, cgroup, umask,
# environment, working directory, hostname.
#
# The configs: `hutch spec --rootless`, `crun spec --rootless`, and as root
# `hutch spec` too; a config in the style of runtime-tools' generator (all
# namespaces, more capabilities, rlimits, a umask, a user other than root);
# and, when CAPTURED is a directory, the configs a runtime wrapper copied
# there from buildah and podman runs (their process replaced by the probe).
#
# Every difference is either fixed in hutch or intended: the intended ones
# are rewritten by `intended` below, each with its reason (they are listed
# in README.md). Anything else that differs fails the run, with the diff.
#
# Runs as root or as a plain user. crun 1.8.1 refuses to run while
# cgroup2 of a hybrid host holds a controller: test.sh runs this in a
# mount namespace where that file reads empty (see `crun_ready` there).
set -euo pipefail
HUTCH=$(realpath "$1")
CRUN=${2:-/usr/bin/crun}
CAPTURED=${CAPTURED:-}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

W=$(mktemp -d "${TMPDIR:-/tmp}/hutch-diff.XXXXXX")
cleanup() {
    for rt in hutch crun; do
        for d in "$W/state-$rt"/*/; do
            [ -d "$d" ] && "$(runtime $rt)" --root "$W/state-$rt" delete --force "$(basename "$d")" >/dev/null 2>&1
        done
    done
    if [ -n "${KEEP:-}" ]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
runtime() { if [ "$1" = hutch ]; then echo "$HUTCH"; else echo "$CRUN"; fi; }
who=$(id -un)

# The root: busybox, keyctl with its libraries, the probe, and the
# caller's namespaces to compare with.
R="$W/rootfs"
mkdir -p "$R"/{bin,sbin,usr/bin,dev,proc,sys,tmp,etc,root,home/app,run}
chmod 1777 "$R/tmp"
cp "$(command -v busybox)" "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
for f in /usr/bin/keyctl $(ldd /usr/bin/keyctl | grep -o '/[^ ]*'); do
    mkdir -p "$R$(dirname "$f")"; cp "$f" "$R$f"
done
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\napp:x:1000:\n' >"$R/etc/group"
for n in cgroup ipc mnt net pid time user uts; do
    echo "$n $(readlink "/proc/self/ns/$n")"
done >"$R/hostns"
cat >"$R/probe" <<'EOF'
#!/bin/sh
# What the container sees, one section per aspect, with what differs
# between two runs of the same runtime (numbers of inodes, mounts, pids,
# times) left out.
exec 2>&1
s() { echo "## $1"; }
s id; id
s status; grep -E '^(Uid|Gid|Groups|Cap|NoNewPrivs|Seccomp)' /proc/self/status
s mounts
awk '{ opt = ""; for (i = 7; $i != "-"; i++) { o = $i; sub(/:[0-9]+$/, "", o); opt = opt " " o }
       src = $(i + 2); if (src ~ /^\/dev\/[a-z]/) src = "BLOCKDEV"
       sup = $(i + 3); gsub(/,?(size|nr_inodes)=[0-9a-z]+/, "", sup)
       print $5, $4, $6, opt, $(i + 1), src, sup }' /proc/self/mountinfo | sort
s dev
for f in /dev/* /dev/*/*; do case $f in /dev/fd/*) continue; esac; stat -c '%A %u %g %t:%T %N' "$f"; done | sort -k5
s limits; cat /proc/self/limits
s keyring; keyctl rdescribe @s 2>&1 | cut -d';' -f1,4,5
s tty; tty
s stdio-owner; stat -L -c '%u:%g %F' /proc/self/fd/1
s fds; ls -l /proc/self/fd 2>/dev/null | awk 'NF > 8 { print $1, $9, $10, $11 }' | sed 's/\[[0-9]*\]/[N]/'
s ns
for n in cgroup ipc mnt net pid time user uts; do
    l=$(readlink /proc/self/ns/$n); if grep -qx "$n $l" /hostns; then echo "$n host"; else echo "$n own"; fi
done
s cgroup; cat /proc/self/cgroup
s umask; umask
s env; env | sort
s cwd; pwd
s hostname; hostname; cat /proc/sys/kernel/domainname
s oom_score_adj; cat /proc/self/oom_score_adj
s pid; echo $$
s root; touch /probe-root-writable 2>/dev/null && echo writable || echo read-only
EOF
chmod 755 "$R/probe"

failed=0
# run_case NAME CONFIG [terminal]: run CONFIG (any JSON config; its root,
# process args and terminal are replaced) under both runtimes and compare.
# With `terminal`, the program gets a terminal through --console-socket
# (integration/console-receiver.py copies what it writes).
run_case() {
    local name="$1" config="$2" tty="${3:-}" rt out
    mkdir -p "$W/$name"
    jq --arg root "$R" --argjson t "$([ -n "$tty" ] && echo true || echo false)" \
        '.root.path = $root | .root.readonly = false
        | .process.args = ["/probe"] | .process.terminal = $t' "$config" >"$W/$name/config.json"
    for rt in hutch crun; do
        out="$W/$name/$rt"
        local console=()
        if [ -n "$tty" ]; then
            rm -f "$W/console.sock"
            /usr/bin/python3 "$here/console-receiver.py" "$W/console.sock" "$out.tty" &
            for _ in $(seq 50); do [ -S "$W/console.sock" ] && break; sleep 0.1; done
            console=(--console-socket "$W/console.sock")
        fi
        # Out through a pipe: crun gives stdio files to the container's
        # user (fchown), which would take the caller's file from it.
        local rc
        { (cd "$W/$name" && "$(runtime $rt)" --root "$W/state-$rt" run "${console[@]}" --bundle "$W/$name" \
            "diff-$name" </dev/null 2>"$out.err") | cat >"$out.raw"; } && rc=0 || rc=$?
        [ "$rc" = 0 ] || echo "## exit $rc" >>"$out.raw"
        if [ -n "$tty" ]; then
            wait
            tr -d '\r' <"$out.tty" >>"$out.raw"
        fi
        # A runtime's own warnings are not what the container sees.
        grep -v -e '^## exit 0$' "$out.raw" | intended "$rt" "$name" >"$out"
    done
    if diff -u "$W/$name/crun" "$W/$name/hutch" >"$W/$name/diff"; then
        log "differential $name as $who: same as crun"
    else
        log "differential $name as $who: DIFFERS from crun (- crun, + hutch):"
        cat "$W/$name/diff" >&2
        for rt in hutch crun; do [ -s "$W/$name/$rt.err" ] && sed "s/^/  $rt stderr: /" "$W/$name/$rt.err" >&2; done
        failed=1
    fi
}

# intended RT CASE: rewrite, in RT's output, the differences hutch has on
# purpose (README.md, "Differences from runc and crun"), so they compare
# equal. Each rule names its reason.
hybrid=no
[ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ] && hybrid=yes
intended() {
    local rt="$1" name="$2"
    # stdin: crun reopens a /dev/null stdin read-write; hutch passes the
    # caller's stdio as it is, as runc does.
    local stdin='s|^lrwx------ 0 -> /dev/null$|lr-x------ 0 -> /dev/null|'
    # cgroup v1: hutch manages cgroup v2 only; on a v1/v2 hybrid host crun
    # puts a container in v1 cgroups (and, as root, a v2 one) named after
    # it and mounts the v1 hierarchies; hutch makes no cgroup for a config
    # without cgroupsPath or resources, and mounts cgroup2 (and, as runc,
    # keeps the submounts of an rbind of /sys, where crun as root mounts a
    # new sysfs). Compared: the cgroup lines' controllers.
    local v1=''
    if [ "$hybrid" = yes ]; then
        v1='/^\/sys\/fs\/cgroup[/ ]/d
            s|^\([1-9][0-9]*:[^:]*:\).*|\1(v1)|
            s|^0::/.*|0::(v2)|'
    fi
    # Supplementary groups, when a plain user's config maps only its own
    # ids: hutch writes that map itself (setgroups denied, so the process
    # keeps the caller's groups, shown as 0 or nobody), with or without
    # subordinate ids; crun uses newgidmap where the user has subordinate
    # ids and then drops them. hutch's way costs no helper process and is
    # the same for every user (README.md).
    local groups=''
    if [ "$(id -u)" != 0 ] && [ "$(jq -r '[.linux.uidMappings // [] | .[] | .size] | add // 0' "$W/$name/config.json")" -le 1 ]; then
        groups='s/ groups=.*//
            s/^Groups:.*/Groups: (the caller'"'"'s, not compared)/'
    fi
    # stdio: runc and crun give the caller's stdio files (here a pipe) to
    # the container's user with fchown; hutch never changes who owns the
    # caller's files (README.md).
    local stdio='/^## stdio-owner$/{n;s/.*/(not compared)/}'
    # crun also gives the container's /dev/null, its stdin, to the
    # container's user; runc leaves /dev/null alone, as hutch does.
    local null='s|^crw-rw-rw- [0-9]* [0-9]* 1:3 /dev/null$|crw-rw-rw- (owner not compared) 1:3 /dev/null|'
    sed -e "$stdin" -e "$v1" -e "$groups" -e "$stdio" -e "$null"
}

# The configs: the generated ones, each also with a terminal.
if [ "$(id -u)" = 0 ]; then
    (cd "$W" && "$HUTCH" spec && mv config.json hutch-spec.json)
    run_case hutch-spec "$W/hutch-spec.json"
    run_case hutch-spec-tty "$W/hutch-spec.json" terminal
fi
(cd "$W" && "$HUTCH" spec --rootless && mv config.json hutch-spec-rootless.json)
run_case hutch-spec-rootless "$W/hutch-spec-rootless.json"
run_case hutch-spec-rootless-tty "$W/hutch-spec-rootless.json" terminal
(cd "$W" && "$CRUN" spec --rootless && mv config.json crun-spec-rootless.json)
run_case crun-spec-rootless "$W/crun-spec-rootless.json"

# In the style of runtime-tools' generator (oci-runtime-tool generate):
# its capability set, limits, a umask, a user other than root where one
# can be mapped (as root; as a user with subordinate ids, through them),
# a working directory, more environment, its own hostname.
rt_style() {
    local base="$1" user='{"uid": 0, "gid": 0}' maps='.'
    if [ "$(id -u)" = 0 ]; then
        user='{"uid": 1000, "gid": 1000, "additionalGids": [5, 1000]}'
    elif grep -q "^$who:" /etc/subuid && grep -q "^$who:" /etc/subgid; then
        local su sg
        su=$(grep "^$who:" /etc/subuid | head -n1 | cut -d: -f2)
        sg=$(grep "^$who:" /etc/subgid | head -n1 | cut -d: -f2)
        user='{"uid": 1000, "gid": 1000, "additionalGids": [5]}'
        maps=".linux.uidMappings = [{\"containerID\": 0, \"hostID\": $(id -u), \"size\": 1}, {\"containerID\": 1, \"hostID\": $su, \"size\": 65536}]
            | .linux.gidMappings = [{\"containerID\": 0, \"hostID\": $(id -g), \"size\": 1}, {\"containerID\": 1, \"hostID\": $sg, \"size\": 65536}]"
    fi
    jq --argjson user "$user" '
        ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
         "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
         "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"] as $caps
        | .process.capabilities = {bounding: $caps, effective: $caps, permitted: $caps, inheritable: $caps}
        | .process.rlimits = [{type: "RLIMIT_NOFILE", hard: 1024, soft: 512}, {type: "RLIMIT_CORE", hard: 0, soft: 0}]
        | .process.user = $user | .process.cwd = "/home/app" | .process.umask = 23
        | .process.env += ["GENERATED=runtime-tools"] | .process.noNewPrivileges = false
        | .process.oomScoreAdj = 100 | .hostname = "rtbox"' "$base" | jq "$maps"
}
rt_style "$W/hutch-spec-rootless.json" >"$W/rt-style.json"
[ "$(id -u)" = 0 ] && rt_style "$W/hutch-spec.json" >"$W/rt-style.json"
run_case runtime-tools-style "$W/rt-style.json"
run_case runtime-tools-style-tty "$W/rt-style.json" terminal

# Configs captured from buildah and podman runs (CAPTURED=DIR).
if [ -n "$CAPTURED" ]; then
    for c in "$CAPTURED"/*.json; do
        [ -f "$c" ] && run_case "$(basename "$c" .json)" "$c"
    done
fi

[ "$failed" = 0 ] && log "differential as $who: no difference left" || log "differential as $who: FAILED"
exit "$failed"
