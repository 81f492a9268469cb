#!/bin/bash
# integration/differential.sh HUTCH [CRUN]: run the same configs under
# hutch and crun and compare what the container sees: identity,
# capabilities, seccomp mode, no_new_privs, mounts with their flags, /dev,
# limits, session keyring, terminal, open fds, namespaces, cgroup, umask,
# environment, working directory, hostname.
#
# The configs: `hutch spec` (as root), `hutch spec --rootless`, `crun spec
# --rootless`, and one in the style of runtime-tools' generator (more
# capabilities, rlimits, a umask, a user other than root, a sysctl, a
# device), each generated
# one also with a terminal; and what buildah run and podman run give their
# runtime: the same run made once with crun and once with hutch, through
# a wrapper that keeps each config.json (in $W/captured; KEEP=1 keeps $W).
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
s status; grep -E '^(Uid|Gid|Groups|Cap|NoNewPrivs|Seccomp|SigBlk|SigIgn|Cpus_allowed_list)' /proc/self/status
s session; awk '{ sub(/.*\) /, ""); print "pgrp " $3 " session " $4 " tty_nr " $5 " tpgid " $6 }' /proc/self/stat
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
s sysctl; cat /proc/sys/kernel/msgmax
s pid; echo $$
s root; touch /probe-root-writable 2>/dev/null && echo writable || echo read-only
EOF
chmod 755 "$R/probe"

failed=0
# run_case NAME CONFIG [terminal]: run CONFIG (any JSON config; its root,
# process args and terminal are replaced) under both runtimes and compare.
# With `terminal`, the program gets a terminal through --console-socket
# (integration/console-receiver.py copies what it writes). RUN_FLAGS: more
# options of `run` for both runtimes.
run_case() {
    local name="$1" config="$2" tty="${3:-}" rt out receiver
    local flags=(${RUN_FLAGS:-})
    mkdir -p "$W/$name"
    jq --arg root "$R" --argjson t "$([ -n "$tty" ] && echo true || echo false)" \
        '.root.path = $root
        | .process.args = ["/probe"] | .process.terminal = $t' "$config" >"$W/$name/config.json"
    for rt in hutch crun; do
        out="$W/$name/$rt"
        local console=()
        if [ -n "$tty" ]; then
            rm -f "$W/console.sock"
            /usr/bin/python3 "$here/console-receiver.py" "$W/console.sock" "$out.tty" &
            receiver=$!
            for _ in $(seq 50); do [ -S "$W/console.sock" ] && break; sleep 0.1; done
            console=(--console-socket "$W/console.sock")
        fi
        # Out through a pipe: crun gives stdio files to the container's
        # user (fchown), which would take the caller's file from it.
        local rc
        { (cd "$W/$name" && "$(runtime $rt)" --root "$W/state-$rt" run "${console[@]}" "${flags[@]}" --bundle "$W/$name" \
            "diff-$name" </dev/null 2>"$out.err") | cat >"$out.raw"; } && rc=0 || rc=$?
        [ "$rc" = 0 ] || echo "## exit $rc" >>"$out.raw"
        if [ -n "$tty" ]; then
            # The receiver ends with the terminal; one a failed runtime
            # never connected to is stopped.
            for _ in $(seq 50); do kill -0 "$receiver" 2>/dev/null || break; sleep 0.1; done
            kill "$receiver" 2>/dev/null || true
            wait "$receiver" 2>/dev/null || true
            [ -f "$out.tty" ] && tr -d '\r' <"$out.tty" >>"$out.raw"
        fi
        # A runtime's own warnings are not what the container sees.
        grep -v -e '^## exit 0$' "$out.raw" | intended "$rt" "$name" >"$out"
    done
    if grep -q '^## exit' "$W/$name/crun.raw" "$W/$name/hutch.raw"; then
        # Nothing to compare when a runtime could not run the probe.
        log "differential $name as $who: a runtime failed:"
        for rt in hutch crun; do tail -n 5 "$W/$name/$rt.raw" "$W/$name/$rt.err" | sed "s/^/  $rt: /" >&2; done
        failed=1
    elif diff -u "$W/$name/crun" "$W/$name/hutch" >"$W/$name/diff"; then
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
    # cgroups: on a v1/v2 hybrid host crun puts a container in v1 cgroups
    # (and, as root, a v2 one) named after it; hutch makes no cgroup for a
    # config without cgroupsPath or resources. Both mount the container's
    # own hierarchies (hutch also `unified`, and, as runc, keeps the
    # submounts of an rbind of /sys, where crun as root mounts a new
    # sysfs). Compared: the cgroup lines' controllers.
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
    if [ "$(id -u)" != 0 ] && [ -f "$W/$name/config.json" ] \
        && [ "$(jq -r '[.linux.uidMappings // [] | .[] | .size] | add // 0' "$W/$name/config.json")" -le 1 ]; then
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
    # Read-only paths keep the nosuid, nodev and noexec of the mount they
    # cover (buildah's and podman's /proc has them), as runc's do; crun's
    # remount clears them.
    local ro='/^\/proc\/[a-z_-]* \/[a-z_-]* ro,/s/,nosuid,nodev,noexec,/,/'
    # Root emulation (README.md): where the container maps one uid and one
    # gid (a plain user without subordinate ids, or a config that maps only
    # the caller's ids), hutch adds a seccomp filter and its supervisor
    # takes the pid after the program's. Compared: the filters and the
    # pids without them.
    local emu=cat
    # plain: a plain user, or a config with a user namespace of its own.
    local maps=-1 plain=no
    [ -f "$W/$name/config.json" ] && maps=$(jq -r '[.linux.uidMappings // [] | .[] | .size] | add // 0' "$W/$name/config.json")
    [ "$(id -u)" != 0 ] && plain=yes
    [ -f "$W/$name/config.json" ] && jq -e '.linux.namespaces // [] | any(.type == "user")' "$W/$name/config.json" >/dev/null && plain=yes
    case $name in buildah-* | podman-*) maps=-1 ;; esac   # hutch runs in buildah's namespace
    if [ "$rt" = hutch ] && { { [ "$(id -u)" != 0 ] && [ "$maps" != -1 -o "$name" != "${name#buildah-}" -o "$name" != "${name#podman-}" ] && ! grep -q "^$(id -un):" /etc/subuid 2>/dev/null; } \
        || { [ "$maps" -ge 0 ] && [ "$maps" -le 1 ] && [ $plain = yes ]; }; }; then
        emu='awk '\''/^Seccomp:/ { s = $0; next }
            /^Seccomp_filters:/ { n = $2 - 1; if (n == 0) s = "Seccomp:\t0"; print s; print "Seccomp_filters:\t" n; next }
            /^## pid$/ { print; if (getline > 0) print ($1 >= 3 ? $1 - 1 : $1); next }
            { print }'\'
    fi
    sed -e "$stdin" -e "$v1" -e "$groups" -e "$stdio" -e "$null" -e "$ro" | eval "$emu"
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
# The caller's session keyring kept: the container shares it.
RUN_FLAGS=--no-new-keyring run_case no-new-keyring "$W/hutch-spec-rootless.json"
(cd "$W" && "$CRUN" spec --rootless && mv config.json crun-spec-rootless.json)
run_case crun-spec-rootless "$W/crun-spec-rootless.json"

# In the style of runtime-tools' generator (oci-runtime-tool generate):
# its capability set, limits, a umask, a user other than root where one
# can be mapped (as root; as a user with subordinate ids, through them),
# a working directory, more environment, its own hostname, a sysctl of its
# ipc namespace, /dev/fuse (as root).
rt_style() {
    local base="$1" user='{"uid": 0, "gid": 0}' maps='.' devices='.'
    # A device as root only: crun 1.8.1 run by a plain user fails on any
    # linux.devices entry here ("unshare CLONE_NEWNS: Operation not
    # permitted"), so there is nothing to compare with.
    [ "$(id -u)" = 0 ] && devices='.linux.devices = [{path: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 438, uid: 0, gid: 0}]'
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
        | .process.oomScoreAdj = 100 | .hostname = "rtbox"
        | .linux.sysctl = {"kernel.msgmax": "4096"}' "$base" | jq "$maps" | jq "$devices"
}
rt_style "$W/hutch-spec-rootless.json" >"$W/rt-style.json"
[ "$(id -u)" = 0 ] && rt_style "$W/hutch-spec.json" >"$W/rt-style.json"
run_case runtime-tools-style "$W/rt-style.json"
run_case runtime-tools-style-tty "$W/rt-style.json" terminal

# exec: the probe run by `exec --process` (the config's process, the
# probe its program) in a running container of CONFIG, under both
# runtimes. Without --process the two differ on purpose: hutch's exec
# starts from the config's process (user, cwd, env, capabilities, limits,
# no_new_privs), as runc's does; crun's from its own defaults.
exec_case() {
    local name="$1" config="$2" rt st
    mkdir -p "$W/$name"
    jq --arg root "$R" '.root.path = $root | .root.readonly = false
        | .process.args = ["/bin/sleep", "600"] | .process.terminal = false' "$config" >"$W/$name/config.json"
    jq '.process | .args = ["/probe"]' "$W/$name/config.json" >"$W/$name/process.json"
    for rt in hutch crun; do
        st="$W/state-$rt"
        (cd "$W/$name" && "$(runtime $rt)" --root "$st" run -d --bundle "$W/$name" "diff-$name" \
            </dev/null >/dev/null 2>"$W/$name/$rt.err") || echo "## exit run $?" >>"$W/$name/$rt.raw"
        local rc=0
        { "$(runtime $rt)" --root "$st" exec --process "$W/$name/process.json" "diff-$name" \
            </dev/null 2>"$W/$name/$rt.exec.err" | cat >>"$W/$name/$rt.raw"; } || rc=$?
        [ "$rc" = 0 ] || echo "## exit exec $rc" >>"$W/$name/$rt.raw"
        "$(runtime $rt)" --root "$st" delete --force "diff-$name" >/dev/null 2>&1
        intended "$rt" "$name" <"$W/$name/$rt.raw" >"$W/$name/$rt"
    done
    # crun's exec keeps the caller's session keyring, hutch's joins the
    # container's (README.md): the keyring line is not compared here.
    sed -i '/^## keyring$/{n;s/.*/(not compared)/}' "$W/$name/hutch" "$W/$name/crun"
    # runc and hutch apply the process's oomScoreAdj on exec; crun's exec
    # leaves it as it was: crun's is taken to be the config's value.
    # hutch's exec gives the process a session of its own, so it cannot
    # push input into the caller's terminal (TIOCSTI); crun's stays in the
    # caller's session (outside the container: shown as 0). Compared:
    # that hutch's is its own (pgrp = session = its pid).
    local pid; pid=$(sed -n '/^## pid$/{n;p}' "$W/$name/hutch.raw")
    sed -i "s/^pgrp $pid session $pid /(own session) /" "$W/$name/hutch"
    sed -i 's/^pgrp 0 session 0 /(own session) /' "$W/$name/crun"
    local adj; adj=$(jq '.oomScoreAdj // 0' "$W/$name/process.json")
    sed -i "/^## oom_score_adj\$/{n;s/.*/$adj/}" "$W/$name/crun"
    if grep -q '^## exit' "$W/$name/crun.raw" "$W/$name/hutch.raw"; then
        log "differential $name as $who: a runtime failed:"
        for rt in hutch crun; do tail -n 5 "$W/$name/$rt.raw" "$W/$name/$rt.err" | sed "s/^/  $rt: /" >&2; done
        failed=1
    elif diff -u "$W/$name/crun" "$W/$name/hutch" >"$W/$name/diff"; then
        log "differential $name as $who: same as crun"
    else
        log "differential $name as $who: DIFFERS from crun (- crun, + hutch):"
        cat "$W/$name/diff" >&2
        failed=1
    fi
}
exec_case exec-hutch-spec-rootless "$W/hutch-spec-rootless.json"
exec_case exec-runtime-tools-style "$W/rt-style.json"

# buildah and podman: the same run through each tool twice, once with
# crun and once with hutch as its runtime, in the tool's own setting (as a
# plain user, inside its user namespace). The runtime is a wrapper that
# keeps a copy of each config.json it is given (in $W/captured, to look
# at with KEEP=1) and execs the runtime.
# compare_outputs NAME: as run_case, for outputs in $W/NAME/RT.raw; what
# differs from one run of a tool to the next (its ids, its temporary
# directory) is left out.
compare_outputs() {
    local name="$1" rt
    for rt in hutch crun; do
        intended "$rt" "$name" <"$W/$name/$rt.raw" | tr -d '\r' \
            | sed -e 's/^\(keyring;[^;]*;\).*/\1(the container id)/' \
                -e 's|/buildah[0-9]*/|/buildahN/|' -e 's/[0-9a-f]\{64\}/(id)/g' \
                -e 's/\(^\|[=\/]\)[0-9a-f]\{12\}$/\1(short id)/' >"$W/$name/$rt"
    done
    if grep -q '^## exit' "$W/$name/crun.raw" "$W/$name/hutch.raw"; then
        # Nothing to compare when a runtime could not run the probe.
        log "differential $name as $who: a runtime failed:"
        for rt in hutch crun; do tail -n 5 "$W/$name/$rt.raw" "$W/$name/$rt.err" | sed "s/^/  $rt: /" >&2; done
        failed=1
    elif diff -u "$W/$name/crun" "$W/$name/hutch" >"$W/$name/diff"; then
        log "differential $name as $who: same as crun"
    else
        log "differential $name as $who: DIFFERS from crun (- crun, + hutch):"
        cat "$W/$name/diff" >&2
        for rt in hutch crun; do [ -s "$W/$name/$rt.err" ] && tail -n 5 "$W/$name/$rt.err" | sed "s/^/  $rt stderr: /" >&2; done
        failed=1
    fi
}
mkdir -p "$W/captured" "$W/wrap" "$W/tmp"
chmod 755 "$W" "$W/wrap"
chmod 777 "$W/captured"
for rt in hutch crun; do
    cat >"$W/wrap/$rt" <<WRAP
#!/bin/sh
# Keep the config of each container made, then run the real runtime.
prev=
for a in "\$@"; do
    case "\$prev" in --bundle|-b) cp "\$a/config.json" "$W/captured/$rt-\$\$.json" 2>/dev/null ;; esac
    prev=\$a
done
exec "$(runtime $rt)" "\$@"
WRAP
    chmod 755 "$W/wrap/$rt"
done
if command -v buildah >/dev/null; then
    B() { TMPDIR="$W/tmp" buildah --root "$W/buildah/root" --runroot "$W/buildah/runroot" --storage-driver vfs "$@"; }
    iso=(); [ "$(id -u)" = 0 ] || iso=(--isolation=rootless)
    name=buildah-run
    mkdir -p "$W/$name"
    if c=$(B from scratch 2>"$W/$name/from.err") && B copy "$c" "$R" / >/dev/null 2>>"$W/$name/from.err"; then
        for rt in hutch crun; do
            B run --runtime "$W/wrap/$rt" "${iso[@]}" --network=none "$c" -- /probe \
                </dev/null >"$W/$name/$rt.raw" 2>"$W/$name/$rt.err" || echo "## exit $?" >>"$W/$name/$rt.raw"
        done
        compare_outputs "$name"
        B rm "$c" >/dev/null 2>&1
    else
        log "buildah cannot make a container here:"; cat "$W/$name/from.err" >&2; failed=1
    fi
    # Files of subordinate ids: removed in buildah's user namespace.
    [ "$(id -u)" = 0 ] || B unshare rm -rf "$W/buildah" 2>/dev/null
fi

# podman as plain users, as integration/podman.sh (as root here it asks
# for a file limit above the host's fs.nr_open, and crun fails as hutch).
if command -v podman >/dev/null && [ "$(id -u)" != 0 ]; then
    cat >"$W/containers.conf" <<CONF
[engine]
runtime_supports_json = ["crun", "runc", "hutch"]
runtime_supports_nocgroup = ["crun", "hutch"]
runtime_supports_nocgroups = ["crun", "hutch"]
CONF
    P() {
        CONTAINERS_CONF="$W/containers.conf" TMPDIR="$W/tmp" timeout -k 5 120 podman --root "$W/podman/root" \
            --runroot "$W/podman/runroot" --storage-driver vfs --cgroup-manager cgroupfs \
            --events-backend file --tmpdir "$W/podman/libpod" "$@"
    }
    name=podman-run
    mkdir -p "$W/$name"
    if tar -C "$R" --owner=0 --group=0 --numeric-owner -c . | P import - localhost/hutch-diff >/dev/null 2>"$W/$name/import.err"; then
        for rt in hutch crun; do
            P run --rm --runtime "$W/wrap/$rt" --network=none --pull=never localhost/hutch-diff /probe \
                </dev/null >"$W/$name/$rt.raw" 2>"$W/$name/$rt.err" || echo "## exit $?" >>"$W/$name/$rt.raw"
        done
        compare_outputs "$name"
    else
        log "podman cannot import an image here:"; cat "$W/$name/import.err" >&2; failed=1
    fi
    P rmi -a -f >/dev/null 2>&1
    [ "$(id -u)" = 0 ] || P unshare rm -rf "$W/podman" 2>/dev/null
fi

[ "$failed" = 0 ] && log "differential as $who: no difference left" || log "differential as $who: FAILED"
exit "$failed"
