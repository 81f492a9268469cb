#!/bin/bash
# integration/rootemu.sh [RUNTIME_BIN]: root emulation (issue 13). In a
# debootstrapped Debian bookworm, as tsingle (no subordinate ids, so one
# uid and one gid mapped), through `hutch run` and through `buildah bud`:
# dpkg -i and apt-get install of packages built here (files owned by a
# system user, a postinst that runs groupadd, useradd and chown) from a
# local file: repository, a real Debian package (cpio) with dpkg -i, and
# the tools one by one (useradd -m + chown -R, su, runuser, install -o,
# groupadd, mkfifo, mknod, tar and cpio extracting ownership). Real errors
# stay real; the config's seccomp profile still denies; the annotation
# turns it off; as tuser (subordinate ids) chown really changes owners and
# no supervisor runs; nothing of the workaround lands in a built image.
#
# Run as root (integration/test.sh does): it builds the packages (owned by
# a system user), copies the cached root file system for each user, and
# runs the containers as tsingle and tuser. Network: only the Debian
# mirror, for debootstrap (cached, lib.sh's debian_rootfs) and for
# `apt-get download cpio` (cached). KEEP=1 keeps the work directory.
#
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
[ "$(id -u)" = 0 ] || die "run as root (it builds packages owned by a system user; the containers run as tsingle and tuser)"
RT_SRC=$(readlink -f "$RT_SRC") || die "no runtime at ${1:-target/HOST/debug/hutch}"
ensure_packages jq uidmap buildah dpkg-dev
ensure_users
t0=$(date +%s)
rootfs=$(debian_rootfs bookworm) || die "no Debian root file system"

W=$(mktemp -d /tmp/rootemu-it.XXXXXX)
chmod 755 "$W"
cleanup() {
    for u in tsingle tuser; do [ -d "$W/bud-$u" ] && as "$u" buildah --root "$W/bud-$u/root" --runroot "$W/bud-$u/runroot" --storage-driver vfs unshare rm -rf "$W/bud-$u" >/dev/null 2>&1; done
    rm -rf "$W"
}
if [ "${KEEP:-}" = 1 ]; then trap 'echo "# kept $W"' EXIT; else trap cleanup EXIT; fi
trap 'exit 130' INT
trap 'exit 143' TERM HUP
RT="$W/hutch"
install -m 755 "$RT_SRC" "$RT"

passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
show() { tail -n 15 "$1" | sed 's/^/     | /'; }
value() { sed -n "s/^@@$1=//p" "$2" | head -n 1 | tr -d '\r'; }
expect() {
    if [ "$2" = "$3" ]; then ok "$1"
    else bad "$1: want '$2', got '$3'"; [ -n "${4:-}" ] && show "$4"; fi
}

# ------------------------------------------------------------ packages
# remu-a: a directory and a file owned by daemon:daemon in the archive, and
# a postinst that adds a system group and user and chowns to them.
# remu-b depends on remu-a. Built as root so the archive holds the owners.
pk="$W/pkg"
mkdir -p "$pk/a/DEBIAN" "$pk/a/usr/share/remu-a" "$pk/a/var/lib/remu" "$pk/b/DEBIAN" "$pk/b/usr/share/remu-b"
echo a >"$pk/a/usr/share/remu-a/data"
chown -R daemon:daemon "$pk/a/usr/share/remu-a"
cat >"$pk/a/DEBIAN/control" <<'EOF'
Package: remu-a
Version: 1.0
Architecture: all
Maintainer: Test <test@example.org>
Description: root emulation test package: owners and a postinst
EOF
cat >"$pk/a/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    getent group remusvc >/dev/null || groupadd --system remusvc
    getent passwd remusvc >/dev/null || useradd --system -g remusvc -d /var/lib/remu remusvc
    chown remusvc:remusvc /var/lib/remu
    echo "@@postinst=done"
fi
EOF
chmod 755 "$pk/a/DEBIAN/postinst"
cat >"$pk/b/DEBIAN/control" <<'EOF'
Package: remu-b
Version: 1.0
Architecture: all
Depends: remu-a
Maintainer: Test <test@example.org>
Description: root emulation test package: a dependency
EOF
echo b >"$pk/b/usr/share/remu-b/data"
repo="$W/repo"
mkdir -p "$repo"
dpkg-deb -b "$pk/a" "$repo/remu-a_1.0_all.deb" >/dev/null && dpkg-deb -b "$pk/b" "$repo/remu-b_1.0_all.deb" >/dev/null \
    || die "dpkg-deb failed"
(cd "$repo" && dpkg-scanpackages --multiversion . >Packages 2>/dev/null) || die "dpkg-scanpackages failed"
# A real Debian package, from the mirror (cached): cpio, also used below.
debs=/var/cache/hutch-ci/debs
if ! ls "$debs"/cpio_*.deb >/dev/null 2>&1; then
    mkdir -p "$debs"
    (cd "$debs" && apt-get download -qq cpio >/dev/null 2>&1) || die "apt-get download cpio failed"
fi
cp "$debs"/cpio_*.deb "$repo/cpio.deb"
chmod -R a+rX "$repo"

# ------------------------------------------------------------ hutch run
# A bundle for USER: a copy of the root file system it owns, the repository
# in /srv/repo, buildah's capabilities, a writable root.
CAPS='["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FOWNER","CAP_FSETID","CAP_KILL","CAP_NET_BIND_SERVICE","CAP_SETFCAP","CAP_SETGID","CAP_SETPCAP","CAP_SETUID","CAP_SYS_CHROOT"]'
bundle() {
    local u="$1" b="$W/run-$1"
    mkdir -p "$b"
    cp -a "$rootfs" "$b/rootfs"
    cp -a "$repo" "$b/rootfs/srv/repo"
    chown -R "$u:$u" "$b"
}
# run USER NAME SCRIPT [JQ]: hutch run of `sh -c SCRIPT` as USER; output in
# $W/out/NAME.log, status in $W/out/NAME.rc. JQ edits the config.
mkdir -p "$W/out"
chmod 777 "$W/out"
run() {
    local u="$1" name="$2" script="$3" edit="${4:-.}" b="$W/run-$1"
    rm -f "$b/config.json"
    (cd "$b" && as "$u" "$RT" spec --rootless --args sh -c "$script") || { bad "$name: hutch spec"; return; }
    jq --argjson c "$CAPS" '.root.readonly = false
        | .process.capabilities = {bounding: $c, effective: $c, permitted: $c}
        | .process.env += ["DEBIAN_FRONTEND=noninteractive"]' "$b/config.json" | jq "$edit" >"$b/c.json" \
        && mv "$b/c.json" "$b/config.json" && chown "$u" "$b/config.json"
    (cd "$b" && as "$u" timeout -k 5 120 "$RT" run "remu-$name-$$") >"$W/out/$name.log" 2>&1
    echo $? >"$W/out/$name.rc"
}

log "copying the root file system for tsingle and tuser"
bundle tsingle
bundle tuser
S="$W/run-tsingle/rootfs"

f="$W/out/pkgs.log"
run tsingle pkgs '
echo "deb [trusted=yes] file:/srv/repo ./" >/etc/apt/sources.list
dpkg -i /srv/repo/remu-a_1.0_all.deb >/tmp/dpkg.log 2>&1; echo "@@dpkg=$?"
grep "^@@" /tmp/dpkg.log
echo "@@owner-in=$(stat -c %U:%G /usr/share/remu-a/data)"
echo "@@svc=$(getent passwd remusvc | cut -d: -f1)"
apt-get update >/tmp/apt.log 2>&1 && apt-get install -y remu-b >>/tmp/apt.log 2>&1; echo "@@apt=$?"
grep -E "^(E|W):" /tmp/apt.log | head -n 3
echo "@@installed=$(dpkg-query -W -f="\${Status}" remu-b 2>&1)"
dpkg -i /srv/repo/cpio.deb >/tmp/cpio.log 2>&1; echo "@@dpkg-cpio=$?"
'
expect "tsingle: hutch run of dpkg -i (owned files, postinst useradd+chown)" 0 "$(value dpkg "$f")" "$f"
expect "tsingle: the postinst ran to its end" done "$(value postinst "$f")" "$f"
expect "tsingle: the postinst's user exists" remusvc "$(value svc "$f")" "$f"
expect "tsingle: files of another owner are the mapped user's" root:root "$(value owner-in "$f")" "$f"
expect "tsingle: apt-get install from a file: repository" 0 "$(value apt "$f")" "$f"
expect "tsingle: the package and its dependency are installed" "install ok installed" "$(value installed "$f")" "$f"
expect "tsingle: dpkg -i of Debian's cpio package" 0 "$(value dpkg-cpio "$f")" "$f"
expect "tsingle: on the host, files stay the user's" tsingle "$(stat -c %U "$S/usr/share/remu-a/data")"
expect "tsingle: nothing of hutch in the root's apt configuration" "" "$(grep -rli hutch "$S/etc/apt" 2>/dev/null)"

f="$W/out/tools.log"
run tsingle tools '
cd /tmp
useradd -m bob && chown -R bob:bob /home/bob; echo "@@useradd-chown=$?"
groupadd staffers; echo "@@groupadd=$?"
echo "@@su=$(su bob -c id 2>&1)"
echo "@@runuser=$(runuser -u bob -- id -u 2>&1):$(runuser -u bob -- sh -c "id -g; id -G" 2>&1 | tr "\n" " ")"
echo "@@after-su=$(id -u):$(id -g)"
touch f && install -o bob -g staffers -m 644 f g; echo "@@install=$?"
mkfifo fifo; echo "@@mkfifo=$?:$(stat -c %F fifo)"
mknod null c 1 3; echo "@@mknod=$?:$(test -e null && echo made || echo none)"
mkdir -p t/d && echo x >t/d/x && tar -cf t.tar --owner=bob --group=staffers -C t d && rm -rf t/d
tar -xpf t.tar --same-owner -C t; echo "@@tar=$?:$(cat t/d/x)"
ls t.tar | cpio -o -H newc >c.cpio 2>/dev/null && mkdir c && cd c && cpio -id <../c.cpio 2>/dev/null; echo "@@cpio=$?:$(test -s t.tar && echo ok)"
'
expect "tsingle: useradd -m bob && chown -R bob /home/bob" 0 "$(value useradd-chown "$f")" "$f"
expect "tsingle: groupadd" 0 "$(value groupadd "$f")" "$f"
expect "tsingle: su bob -c id" "uid=1000(bob) gid=1000(bob) groups=1000(bob)" "$(value su "$f")" "$f"
expect "tsingle: runuser -u bob" "1000:1000 1000 " "$(value runuser "$f")" "$f"
expect "tsingle: the shell stays root after su" "0:0" "$(value after-su "$f")" "$f"
expect "tsingle: install -o bob -g staffers" 0 "$(value install "$f")" "$f"
expect "tsingle: mkfifo makes a fifo" "0:fifo" "$(value mkfifo "$f")" "$f"
expect "tsingle: mknod of a device succeeds and makes nothing" "0:none" "$(value mknod "$f")" "$f"
expect "tsingle: tar extracts keeping owners" "0:x" "$(value tar "$f")" "$f"
expect "tsingle: cpio extracts keeping owners" "0:ok" "$(value cpio "$f")" "$f"
expect "tsingle: on the host, bob's home is the user's" tsingle "$(stat -c %U "$S/home/bob")"

# Real errors: the calls themselves (perl's chown and syscall), not the tools.
f="$W/out/errors.log"
run tsingle errors '
perl -e '\''
$! = 0; print "\@\@chown-missing=", (chown(1234, 1234, "/nonexistent") ? "ok" : $!+0), "\n";
$! = 0; print "\@\@lchown-notdir=", (syscall(94, my $p = "/etc/passwd/x", 1234, 1234) == 0 ? "ok" : $!+0), "\n";
$! = 0; print "\@\@fchown-badfd=", (syscall(93, 99, 1234, 1234) == 0 ? "ok" : $!+0), "\n";
$! = 0; print "\@\@chown-ro=", (chown(1234, 1234, "/proc/sys/kernel/hostname") ? "ok" : $!+0), "\n";
open(my $fh, ">", "/tmp/e") or die;
$! = 0; print "\@\@fchown-ok=", (syscall(93, fileno($fh), 1234, 1234) == 0 ? "ok" : $!+0), "\n";
$! = 0; print "\@\@mknod-exists=", (syscall(133, my $q = "/tmp/e", 020644, 259) == 0 ? "ok" : $!+0), "\n";
$! = 0; print "\@\@mknod-noparent=", (syscall(133, my $r = "/nope/x", 020644, 259) == 0 ? "ok" : $!+0), "\n";
$! = 0; print "\@\@setuid-bad=", (syscall(105, -1) == 0 ? "ok" : $!+0), "\n";
'\''
'
expect "tsingle: chown of a missing file: ENOENT" 2 "$(value chown-missing "$f")" "$f"
expect "tsingle: lchown through a file: ENOTDIR" 20 "$(value lchown-notdir "$f")" "$f"
expect "tsingle: fchown of a bad fd: EBADF" 9 "$(value fchown-badfd "$f")" "$f"
expect "tsingle: chown on a read-only file system: EROFS" 30 "$(value chown-ro "$f")" "$f"
expect "tsingle: fchown of an open file to another id succeeds" ok "$(value fchown-ok "$f")" "$f"
expect "tsingle: mknod over an existing file: EEXIST" 17 "$(value mknod-exists "$f")" "$f"
expect "tsingle: mknod in a missing directory: ENOENT" 2 "$(value mknod-noparent "$f")" "$f"
expect "tsingle: setuid(-1): EINVAL" 22 "$(value setuid-bad "$f")" "$f"

# The config's profile still denies: chown family denied with EACCES.
f="$W/out/profile.log"
run tsingle profile 'touch /tmp/p; chown bob /tmp/p 2>&1; echo "@@chown=$?"; su bob -c "id -u" 2>&1 | tail -n 1 | sed "s/^/@@su=/"' \
    '.linux.seccomp = {defaultAction: "SCMP_ACT_ALLOW", syscalls: [
        {names: ["chown", "fchownat", "lchown", "fchown"], action: "SCMP_ACT_ERRNO", errnoRet: 13}]}'
expect "tsingle: the config's profile still denies chown (EACCES)" 1 "$(value chown "$f")" "$f"
if grep -q 'Permission denied' "$f"; then ok "tsingle: the denial is the profile's errno"; else bad "tsingle: no EACCES from the profile"; show "$f"; fi
expect "tsingle: what the profile allows is still emulated (su)" 1000 "$(value su "$f")" "$f"

# The annotation turns it off: chown to an unmapped id fails as without hutch.
f="$W/out/off.log"
run tsingle off 'touch /tmp/o; chown bob /tmp/o 2>&1; echo "@@chown=$?"; echo "@@sup=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -c hutch-rootemu)"' \
    '.annotations["org.hutch.root-emulation"] = "false"'
expect "tsingle: org.hutch.root-emulation=false: chown to bob fails" 1 "$(value chown "$f")" "$f"
if grep -q 'Invalid argument' "$f"; then ok "tsingle: ... with the kernel's EINVAL"; else bad "tsingle: annotation off: no EINVAL"; show "$f"; fi
expect "tsingle: org.hutch.root-emulation=false: no supervisor" 0 "$(value sup "$f")" "$f"
f="$W/out/badann.log"
run tsingle badann 'true' '.annotations["org.hutch.root-emulation"] = "maybe"'
expect "a bad annotation value is refused" 1 "$(cat "$W/out/badann.rc")" "$f"
if grep -q 'org.hutch.root-emulation' "$f" && [ "$(wc -l <"$f")" = 1 ]; then ok "... in one line naming it"; else bad "bad annotation message"; show "$f"; fi

# ------------------------------------------------------------ tuser
# Subordinate ids: nothing changes; chown is real.
uid_t=$(id -u tuser)
sub=$(awk -F: '$1 == "tuser" { print $2; exit }' /etc/subuid)
f="$W/out/multi.log"
run tuser multi '
useradd -m bob && chown -R bob:bob /home/bob; echo "@@chown=$?"
echo "@@owner=$(stat -c %U /home/bob)"
echo "@@su=$(su bob -c "id -u" 2>&1)"
echo "@@sup=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -c hutch-rootemu)"
dpkg -i /srv/repo/remu-a_1.0_all.deb >/tmp/dpkg.log 2>&1; echo "@@dpkg=$?"
echo "@@owner-a=$(stat -c %U /usr/share/remu-a/data)"
' "(.linux.uidMappings = [{containerID: 0, hostID: $uid_t, size: 1}, {containerID: 1, hostID: $sub, size: 65536}])
  | (.linux.gidMappings = [{containerID: 0, hostID: $uid_t, size: 1}, {containerID: 1, hostID: $sub, size: 65536}])"
expect "tuser: chown -R bob works for real" 0 "$(value chown "$f")" "$f"
expect "tuser: bob owns his home inside" bob "$(value owner "$f")" "$f"
expect "tuser: on the host, bob's home is a subordinate id" "$((sub + 999))" "$(stat -c %u "$W/run-tuser/rootfs/home/bob")"
expect "tuser: su bob really switches" 1000 "$(value su "$f")" "$f"
expect "tuser: no supervisor runs" 0 "$(value sup "$f")" "$f"
expect "tuser: dpkg -i" 0 "$(value dpkg "$f")" "$f"
expect "tuser: the archive's owner is kept (daemon)" daemon "$(value owner-a "$f")" "$f"

# ------------------------------------------------------------ buildah bud
# As tsingle: buildah's single-id user namespace, hutch as its runtime.
# The base image is the root file system, from a tarball (buildah add).
bud_dir="$W/bud-tsingle"
mkdir -p "$bud_dir/ctx" "$bud_dir/tmp"
tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -cf "$bud_dir/rootfs.tar" .
cp -a "$repo" "$bud_dir/ctx/repo"
cat >"$bud_dir/ctx/Containerfile" <<'EOF'
FROM localhost/remu-base
COPY repo /srv/repo
RUN echo "deb [trusted=yes] file:/srv/repo ./" >/etc/apt/sources.list && apt-get update && apt-get install -y remu-b && echo "@@apt=ok"
RUN dpkg -i /srv/repo/cpio.deb && useradd -m bob && chown -R bob /home/bob && install -o bob -m 600 /dev/null /home/bob/f \
    && echo "@@su=$(su bob -c 'id -un')" && echo "@@runuser=$(runuser -u bob -- id -u)"
EOF
chown -R tsingle:tsingle "$bud_dir"
B() { as tsingle env TMPDIR="$bud_dir/tmp" buildah --root "$bud_dir/root" --runroot "$bud_dir/runroot" --storage-driver vfs "$@"; }
f="$W/out/bud.log"
if c=$(B from scratch 2>"$W/out/base.log") && B add "$c" "$bud_dir/rootfs.tar" / >>"$W/out/base.log" 2>&1 \
    && B config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c" >>"$W/out/base.log" 2>&1 \
    && B commit --quiet --rm "$c" localhost/remu-base >>"$W/out/base.log" 2>&1; then
    ok "buildah: base image from the root file system"
    (cd "$bud_dir" && as tsingle timeout -k 5 300 env TMPDIR="$bud_dir/tmp" BUILDAH_ISOLATION=rootless \
        buildah --root "$bud_dir/root" --runroot "$bud_dir/runroot" --storage-driver vfs \
        bud --runtime="$RT" --isolation=rootless --network=none --pull=never -t localhost/remu-built ctx) >"$f" 2>&1
    expect "buildah bud as tsingle: RUN apt-get install, dpkg -i, useradd, chown, install -o, su" 0 "$?" "$f"
    expect "buildah: apt-get install in RUN" ok "$(value apt "$f")" "$f"
    expect "buildah: su bob in RUN" bob "$(value su "$f")" "$f"
    expect "buildah: runuser in RUN" 1000 "$(value runuser "$f")" "$f"
    # The image: the packages are in, and nothing of the workaround. Its
    # config is buildah's; its files are the steps' own (compared with the
    # base: no new file in /etc/apt beyond sources.list, no preload, no
    # mention of hutch anywhere in /etc).
    if c=$(B from --pull=never localhost/remu-built 2>/dev/null); then
        mnt_cmd='cd "$(buildah --root "$1" --runroot "$2" --storage-driver vfs mount "$3")" && shift 3 && "$@"'
        inimg() { B unshare sh -c "$mnt_cmd" sh "$bud_dir/root" "$bud_dir/runroot" "$c" "$@" 2>/dev/null; }
        expect "built image: remu-b is installed" "install ok installed" \
            "$(inimg sh -c 'grep -A1 "^Package: remu-b$" var/lib/dpkg/status | sed -n "s/^Status: //p"')"
        expect "built image: bob is in /etc/passwd" bob "$(inimg sh -c 'grep -o "^bob" etc/passwd')"
        expect "built image: no file mentions hutch in /etc" "" "$(inimg grep -rli hutch etc)"
        expect "built image: no ld.so.preload" "" "$(inimg ls etc/ld.so.preload 2>/dev/null)"
        expect "built image: /etc/apt/apt.conf.d as in the base" "$(ls "$rootfs/etc/apt/apt.conf.d" | tr '\n' ' ')" \
            "$(inimg ls etc/apt/apt.conf.d | tr '\n' ' ')"
        envs=$(B inspect --type image --format '{{.OCIv1.Config.Env}}' localhost/remu-built 2>/dev/null)
        expect "built image: its environment is the base's" "[PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin]" "$envs"
        B rm "$c" >/dev/null 2>&1
    else
        bad "cannot open the built image"
    fi
else
    bad "buildah: cannot make the base image"; show "$W/out/base.log"
fi

# Nothing left: no container process, no supervisor.
sleep 0.3
# (this run's: their command line is the runtime's, $RT, a path of this run)
expect "no supervisor left" "" "$(pgrep -u tsingle,tuser -a hutch-rootemu | grep -F "$RT")"
expect "no container left" "" "$(pgrep -af "$RT" | grep -v pgrep)"
echo "# took $(($(date +%s) - t0)) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
