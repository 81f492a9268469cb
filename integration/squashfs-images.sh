#!/bin/bash
# integration/squashfs-images.sh [RUNTIME_BIN]: whole SquashFS images
# (issue 14), read through every way hutch serves them. A debootstrapped
# Debian bookworm minbase tree (lib.sh's debian_rootfs, cached) is packed
# by mksquashfs several ways: the defaults (gzip, 128 KiB blocks), zstd
# with 1 MiB blocks and no fragments, lz4 HC with 4 KiB blocks, and xz
# (which hutch does not decode: squashfuse_ll serves it to a plain user,
# the kernel's squashfs to root). In a container of each, as root, tuser
# and tsingle, a listing of every file and symbolic link (path, mode,
# size, target; owners too as root) and the MD5 of every file's contents
# must equal what root's container of the tree itself reports. Afterwards
# no server, mount or loop device of any image is left.
#
# Run as root (integration/test.sh does). KEEP=1 keeps the work directory.
# The last line is "N passed, M failed"; the exit status is non-zero when
# anything failed.
set -uo pipefail
case ${1:-} in
"") RT_SRC=target/$(rustc -vV | sed -n 's/^host: //p')/debug/hutch ;;
/*) RT_SRC=$1 ;;
*) RT_SRC=$PWD/$1 ;;
esac
cd "$(dirname "$0")/.."
. integration/lib.sh
[ "$(id -u)" = 0 ] || die "run as root (the containers run as root, tuser and tsingle)"
RT_SRC=$(readlink -f "$RT_SRC") || die "no runtime at ${1:-target/HOST/debug/hutch}"
ensure_packages squashfs-tools squashfuse jq
ensure_users
chmod 666 /dev/fuse
rootfs=$(debian_rootfs bookworm) || die "no Debian root file system"

W=$(mktemp -d /tmp/squashfs-it.XXXXXX)
chmod 755 "$W"
if [ "${KEEP:-}" = 1 ]; then trap 'echo "# kept $W"' EXIT; else trap 'rm -rf "$W"' EXIT; fi
install -m 755 "$RT_SRC" "$W/hutch"
passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }

# name:mksquashfs options
WAYS=("gzip:" "zstd-1M:-comp zstd -b 1M -no-fragments" "lz4hc-4K:-comp lz4 -Xhc -b 4K" "xz:-comp xz")
for w in "${WAYS[@]}"; do
    mksquashfs "$rootfs" "$W/${w%%:*}.sqfs" -noappend -quiet -no-progress ${w#*:} >/dev/null \
        || die "mksquashfs ${w#*:} failed"
done
chmod 644 "$W"/*.sqfs

# What the container reports of its root: one line per file or link, the
# owners only when asked (root), then the MD5 of all contents.
cat >"$W/survey" <<'EOF'
#!/bin/sh
fmt='%p %m %s %l\n'; [ "$1" = owners ] && fmt='%p %m %U %G %s %l\n'
cd / && find / -xdev \( -type f -o -type l \) -printf "$fmt" | LC_ALL=C sort | md5sum
find / -xdev -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum | md5sum
EOF
chmod 755 "$W/survey"

# bundle USER NAME ROOT_PATH [owners]: a bundle owned by USER running
# the survey.
bundle() {
    local u=$1 b="$W/$1-$2" spec=(spec --args /survey)
    [ "$u" = root ] || spec=(spec --rootless --args /survey)
    mkdir "$b"
    chown "$u" "$b"
    as "$u" sh -c 'cd "$1" && shift && "$@" >/dev/null' sh "$b" "$W/hutch" "${spec[@]}"
    jq --arg p "$3" --arg s "$W/survey" --arg o "${4:-}" '.root.path = $p
        | .process.args += (if $o == "" then [] else [$o] end)
        | .mounts += [{destination: "/survey", type: "bind", source: $s, options: ["rbind", "ro"]}]' \
        "$b/config.json" >"$b/c" && mv "$b/c" "$b/config.json" && chown "$u" "$b/config.json"
    echo "$b"
}

# survey USER NAME ROOT_PATH [owners]: what USER's container reports.
survey() {
    local st="$W/state-$1"
    [ -d "$st" ] || install -d -o "$1" -m 700 "$st"
    as "$1" "$W/hutch" --root "$st" run -b "$(bundle "$@")" "$2" 2>&1
}

# What the tree holds, read by root's container of the tree itself. A
# plain user's container sees an image's files owned by its own root
# (the image's uid 0 is the container's, which is the user), so it reads
# all of them, as root does; the tree's, owned by the host's root, it
# could not.
want_owners=$(survey root tree-owners "$rootfs" owners)
want=$(survey root tree "$rootfs")
for w in "$want_owners" "$want"; do
    [ "$(printf '%s\n' "$w" | grep -c '^[0-9a-f]\{32\}  -$')" = 2 ] \
        || die "the survey of the tree itself failed: $w"
done
for u in root tuser tsingle; do
    for w in "${WAYS[@]}"; do
        n=${w%%:*}
        if [ "$u" = root ]; then
            got=$(survey "$u" "img-$n" "$W/$n.sqfs" owners) expect=$want_owners what="owner, "
        else
            got=$(survey "$u" "img-$n" "$W/$n.sqfs") expect=$want what=""
        fi
        if [ "$got" = "$expect" ]; then
            ok "$u, $n image: every path, mode, ${what}size, link target and content as in the tree"
        else
            bad "$u, $n image: the survey differs: $got (tree: $expect)"
        fi
    done
done

left=$(pgrep -f "^(hutch-squashfs|squashfuse_ll) .*$W/" || true)
mnt=$(grep -l "$W/" /proc/[0-9]*/mountinfo 2>/dev/null || true)
loops=$(grep -l "^$W/" /sys/block/loop*/loop/backing_file 2>/dev/null || true)
if [ -z "$left$mnt$loops" ]; then
    ok "nothing left: no server, mount or loop device of any image"
else
    bad "left behind: servers [$left] mounts [$mnt] loop devices [$loops]"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
