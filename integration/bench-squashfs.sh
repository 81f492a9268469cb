#!/bin/bash
# integration/bench-squashfs.sh: SquashFS roots, measured side by side in
# one run. A benchmark, not a test: it prints figures and asserts nothing.
#
# As root. Measures, round by round, each variant in turn:
#   start   `hutch run` of /bin/true as tuser (and as root), root from a directory tree
#           and from a SquashFS image of the same tree (mksquashfs
#           defaults: gzip, 128 KiB blocks; also lz4 and zstd), for a
#           busybox tree and a Debian bookworm minbase tree
#           (integration/lib.sh debian_rootfs); each image served by
#           hutch's own server and by squashfuse_ll
#           (HUTCH_SQUASHFS_SERVER=squashfuse), and root's also by the
#           kernel's squashfs on a loop device
#   read    a BIG_MB (64) MiB file of the host's shared libraries read with
#           `cat >/dev/null` from a fresh mount each round: the kernel's
#           squashfs through a loop device (root), the same image through
#           `hutch run` each way, squashfuse_ll alone; the time of a
#           `hutch run` of /bin/true from that image is subtracted
# Writes bench/squashfs.md and bench/squashfs.json (OUT=bench).
# Knobs: ROUNDS=20 READ_ROUNDS=5 BIG_MB=64 HUTCH=path (default: the release
# build, made if missing) BENCH_USER=tuser KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
. integration/lib.sh
[ "$(id -u)" = 0 ] || die "run as root"
ROUNDS=${ROUNDS:-20}
READ_ROUNDS=${READ_ROUNDS:-5}
BIG_MB=${BIG_MB:-64}
U=${BENCH_USER:-tuser}
OUT=${OUT:-bench}

ensure_packages squashfs-tools squashfuse busybox-static
ensure_users
chmod 666 /dev/fuse
if [ -z "${HUTCH:-}" ]; then
    cargo build --release --locked --quiet
    HUTCH="target/$(rustc -vV | sed -n 's/^host: //p')/release/hutch"
fi
W=$(mktemp -d /tmp/hutch-bench-sqfs.XXXXXX)
chmod 755 "$W"
if [ "${KEEP:-}" = 1 ]; then trap 'echo "# kept $W"' EXIT; else trap 'rm -rf "$W"' EXIT; fi
install -m 755 "$HUTCH" "$W/hutch"
deb=$(debian_rootfs bookworm)

# Trees and their images (root-owned, as a site would keep them).
mkdir -p "$W/busybox/bin" "$W/busybox/etc" "$W/busybox/proc" "$W/busybox/sys" "$W/busybox/dev" "$W/busybox/tmp"
cp /bin/busybox "$W/busybox/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$W/busybox/bin/$a"; done
ln -s "$deb" "$W/debian"
mkdir -p "$W/big"
cp -a "$W/busybox/." "$W/big/"
find /usr/lib/x86_64-linux-gnu /usr/lib -maxdepth 2 -type f -size +100k 2>/dev/null | sort \
    | xargs cat 2>/dev/null | head -c $((BIG_MB << 20)) >"$W/big/big" || true
log "making images ($(du -sh "$deb" | cut -f1) Debian tree, ${BIG_MB} MiB file)"
for t in busybox debian big; do
    mksquashfs "$W/$t/" "$W/$t.sqfs" -noappend -quiet -no-progress >/dev/null
done
for t in busybox debian; do
    for c in lz4 zstd; do
        mksquashfs "$W/$t/" "$W/$t-$c.sqfs" -comp $c -noappend -quiet -no-progress >/dev/null
    done
done
chmod 644 "$W"/*.sqfs

# Bundles, made by the user: `hutch spec --rootless` maps root to them.
for t in busybox debian big; do
    kinds="tree image"; [ $t = big ] || kinds="$kinds lz4 zstd"
    for kind in $kinds; do
        b="$W/b-$t-$kind"
        mkdir "$b"
        case $kind in
        tree) path="$W/$t" ;;
        image) path="$W/$t.sqfs" ;;
        *) path="$W/$t-$kind.sqfs" ;;
        esac
        chown "$U" "$b"
        as "$U" sh -c 'cd "$1" && "$2" spec --rootless --args /bin/true >/dev/null &&
            sed -i "s|\"path\": \"rootfs\"|\"path\": \"$3\"|" config.json' sh "$b" "$W/hutch" "$path"
        # Root's copy: no user namespace, as `hutch spec` writes it.
        mkdir "$b-root"
        (cd "$b-root" && "$W/hutch" spec --args /bin/true >/dev/null &&
            sed -i "s|\"path\": \"rootfs\"|\"path\": \"$path\"|" config.json)
    done
done
install -d -m 1777 "$W/state"
mkdir -p "$W/mnt"

log "measuring: $ROUNDS rounds of start, $READ_ROUNDS of read"
case $OUT in /*) ;; *) OUT="$repo/$OUT" ;; esac
/usr/bin/python3 - "$W" "$U" "$ROUNDS" "$READ_ROUNDS" "$BIG_MB" "$OUT" <<'EOF'
import json, os, pwd, statistics, subprocess, sys, time
W, user, rounds, read_rounds, big_mb, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
pw = pwd.getpwnam(user)
env_user = {"PATH": "/usr/bin:/bin", "HOME": pw.pw_dir, "XDG_RUNTIME_DIR": f"/run/user/{pw.pw_uid}"}
def as_user():
    os.setgid(pw.pw_gid); os.setgroups([]); os.setuid(pw.pw_uid)
n = 0
def run(bundle, args=None, user=True, server=None):
    """Time one `hutch run` (spawn to reap), in seconds."""
    global n
    n += 1
    cmd = [f"{W}/hutch", "--root", f"{W}/state/{'u' if user else 'r'}", "run", "-b", bundle, f"b{n}"]
    if args:  # another program: a config beside the bundle's
        c = json.load(open(f"{bundle}/config.json")); c["process"]["args"] = args
        bundle2 = f"{W}/tmpb{n}"; os.mkdir(bundle2); os.chmod(bundle2, 0o755)
        json.dump(c, open(f"{bundle2}/config.json", "w")); cmd[5] = bundle2
    env = dict(env_user) if user else {"PATH": "/usr/bin:/bin"}
    if server:
        env["HUTCH_SQUASHFS_SERVER"] = server
    t = time.perf_counter()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       preexec_fn=as_user if user else None, env=env)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"{cmd}: {p.stderr.decode()}")
    return dt
os.makedirs(f"{W}/state/u", exist_ok=True); os.chown(f"{W}/state/u", pw.pw_uid, pw.pw_gid)
os.makedirs(f"{W}/state/r", exist_ok=True)
samples = {}
def add(k, v): samples.setdefault(k, []).append(v)
# What is started, as (label, bundle kind, server): the tree, then its
# images, each way they can be served.
USER_WAYS = [("tree", "tree", None), ("gzip image, hutch", "image", "hutch"),
             ("gzip image, squashfuse_ll", "image", "squashfuse"),
             ("lz4 image, hutch", "lz4", "hutch"), ("zstd image, hutch", "zstd", "hutch")]
ROOT_WAYS = [("tree", "tree", None), ("gzip image, kernel", "image", "kernel"),
             ("gzip image, hutch", "image", "hutch"), ("lz4 image, kernel", "lz4", "kernel"),
             ("lz4 image, hutch", "lz4", "hutch")]
# start: every way in turn, round by round.
for r in range(rounds + 2):
    for t in ("busybox", "debian"):
        for label, kind, server in USER_WAYS:
            dt = run(f"{W}/b-{t}-{kind}", server=server)
            if r >= 2: add(f"start {user} {t} {label}", dt)
        # Real root, no user namespace.
        for label, kind, server in ROOT_WAYS:
            dt = run(f"{W}/b-{t}-{kind}-root", user=False, server=server)
            if r >= 2: add(f"start root {t} {label}", dt)
# read: fresh mounts each round, every way in turn.
size = os.path.getsize(f"{W}/big/big")
def warm():
    # Every way reads the image file from the page cache.
    subprocess.run(["cat", f"{W}/big.sqfs"], stdout=subprocess.DEVNULL, check=True)
READ_WAYS = [("root", False, "kernel"), ("root", False, "hutch"), (user, True, "hutch"),
             (user, True, "squashfuse")]
for r in range(read_rounds):
    warm()
    subprocess.run(["mount", "-t", "squashfs", "-o", "loop,ro", f"{W}/big.sqfs", f"{W}/mnt"], check=True)
    t = time.perf_counter()
    subprocess.run(["/bin/busybox", "cat", f"{W}/mnt/big"], stdout=subprocess.DEVNULL, check=True)
    add("read kernel squashfs mounted by hand (root)", time.perf_counter() - t)
    subprocess.run(["umount", f"{W}/mnt"], check=True)
    for who, as_u, server in READ_WAYS:
        b = f"{W}/b-big-image" + ("" if as_u else "-root")
        warm()
        base = run(b, user=as_u, server=server)
        full = run(b, ["/bin/sh", "-c", "cat /big >/dev/null"], user=as_u, server=server)
        add(f"read hutch run as {who}, served by {server}", full - base)
    warm()
    subprocess.run(["squashfuse_ll", "-s", f"{W}/big.sqfs", f"{W}/mnt"], check=True)
    t = time.perf_counter()
    subprocess.run(["/bin/busybox", "cat", f"{W}/mnt/big"], stdout=subprocess.DEVNULL, check=True)
    add("read squashfuse_ll -s alone (root)", time.perf_counter() - t)
    subprocess.run(["umount", f"{W}/mnt"], check=True)
med = {k: statistics.median(v) for k, v in samples.items()}
lines = ["# SquashFS roots", "",
         f"integration/bench-squashfs.sh, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
         f"{os.cpu_count()} CPUs (shared machine), medians of {rounds} (start) and {read_rounds} (read) rounds, "
         "all variants in turn within each round. Images: mksquashfs defaults (gzip, 128 KiB blocks) "
         "unless named.", ""]
for who, ways in ((user, USER_WAYS), ("root", ROOT_WAYS)):
    lines += [f"## `hutch run` of /bin/true as {who}" + ("" if who != "root" else " (no user namespace)"), "",
              "| root | " + " | ".join(l for l, _, _ in ways) + " |",
              "| --- | " + " | ".join("---" for _ in ways) + " |"]
    for t in ("busybox", "debian"):
        base = med[f"start {who} {t} tree"]
        cells = [f"{base*1e3:.2f} ms"] + [
            f"{med[f'start {who} {t} {l}']*1e3:.2f} ms ({med[f'start {who} {t} {l}']/base:.2f}x)"
            for l, _, _ in ways[1:]]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    lines.append("")
lines += [f"## reading a {size >> 20} MiB file (fresh mount each round)", "",
          "| way | time | MB/s | / kernel |", "| --- | --- | --- | --- |"]
k = med["read kernel squashfs mounted by hand (root)"]
for name in [n for n in med if n.startswith("read ")]:
    v = med[name]
    lines.append(f"| {name[5:]} | {v*1e3:.0f} ms | {size/1e6/v:.0f} | {k/v:.2f} |")
lines += ["", f"load average at the end: {open('/proc/loadavg').read().split()[0]}", "",
          "min / max per measure (ms): " + "; ".join(
    f"{k} {min(v)*1e3:.1f} / {max(v)*1e3:.1f}" for k, v in samples.items())]
os.makedirs(out, exist_ok=True)
open(f"{out}/squashfs.md", "w").write("\n".join(lines) + "\n")
json.dump({"samples": samples, "size": size}, open(f"{out}/squashfs.json", "w"), indent=1)
print("\n".join(lines))
EOF
