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
for f in /dev/* /dev/*/*; do case $f in /dev/fd/*) continue; esac; stat -c '%A %u %g %t:%T %N' "$f"; done | sort
s limits; cat /proc/self/limits
s keyring; keyctl rdescribe @s 2>&1 | cut -d';' -f1,4,5
s tty; tty
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
# run_case NAME CONFIG: run CONFIG (any JSON config; its root, process and
# terminal are replaced) under both runtimes and compare.
run_case() {
    local name="$1" config="$2" rt out
    mkdir -p "$W/$name"
    jq --arg root "$R" '.root.path = $root | .root.readonly = false
        | .process.args = ["/probe"] | .process.terminal = false' "$config" >"$W/$name/config.json"
    for rt in hutch crun; do
        out="$W/$name/$rt"
        (cd "$W/$name" && "$(runtime $rt)" --root "$W/state-$rt" run --bundle "$W/$name" "diff-$name" \
            </dev/null >"$out.raw" 2>"$out.err") || echo "## exit $?" >>"$out.raw"
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
intended() {
    cat
}

# The configs.
if [ "$(id -u)" = 0 ]; then
    (cd "$W" && "$HUTCH" spec && mv config.json hutch-spec.json)
    run_case hutch-spec "$W/hutch-spec.json"
fi
(cd "$W" && "$HUTCH" spec --rootless && mv config.json hutch-spec-rootless.json)
run_case hutch-spec-rootless "$W/hutch-spec-rootless.json"
(cd "$W" && "$CRUN" spec --rootless && mv config.json crun-spec-rootless.json)
run_case crun-spec-rootless "$W/crun-spec-rootless.json"

[ "$failed" = 0 ] && log "differential as $who: no difference left" || log "differential as $who: FAILED"
exit "$failed"
