//! The table of OCI runtime-spec features and what hutch does with each:
//! plain data, compiled into hutch (`features.rs` decides with it) and into
//! `build.rs` (which writes the man page from it), so the two cannot differ.

/// What hutch does with a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Honoured as the runtime spec says.
    Works,
    /// Refused: a config that uses it fails at `create`, leaving nothing behind.
    Error,
    /// Accepted, not applied; hutch prints a warning naming it.
    Ignored,
}

/// One row of the table.
#[derive(Debug)]
pub struct Feature {
    /// The config field (dotted path) or command-line flag.
    pub key: &'static str,
    pub support: Support,
    /// How it really behaves, in a sentence.
    pub note: &'static str,
}

use Support::{Error as Err_, Ignored, Works};

/// Every OCI feature hutch knows about, in spec order.
pub static TABLE: &[Feature] = &[
    Feature { key: "ociVersion", support: Works, note: "1.0.0 through 1.3.x; any other version is an error naming it" },
    Feature { key: "root.path", support: Works, note: "absolute or relative to the bundle; an existing directory, or a SquashFS image file (recognised by content, whatever its name): its superblock is checked at create, then it is mounted read-only in the container's mount namespace, with FUSE served outside the container by hutch itself (gzip, lz4 and zstd images; a forked process without capabilities, under a seccomp filter) or by squashfuse_ll (other compressors; for real root without a user namespace, the kernel's squashfs on an autoclear loop device instead), under an overlay whose tmpfs upper layer takes the mount points the image lacks; nothing of it outlives the container" },
    Feature { key: "root.readonly", support: Works, note: "the root is remounted read-only after all mounts, keeping locked flags" },
    Feature { key: "mounts", support: Works, note: "mounted in listed order; destinations resolved inside the root without following symlinks out of it, created when missing" },
    Feature { key: "mounts.bind", support: Works, note: "bind and rbind, files and directories, with ro, nosuid, nodev, noexec, atime flags and propagation; a filesystem option (mode=, bogus=1) is an error at create naming it" },
    Feature { key: "mounts.proc", support: Works, note: "a new procfs with hidepid=, gid=, subset= (any other option is an error at create naming it); an rbind of the host's /proc where the kernel refuses one (no private pid namespace in a user namespace) and no option is given" },
    Feature { key: "mounts.sysfs", support: Works, note: "a new sysfs, which takes no options (one is an error at create naming it); an rbind of the host's /sys where the kernel refuses one (no private network namespace in a user namespace)" },
    Feature { key: "mounts.tmpfs", support: Works, note: "with size=, mode= and the other tmpfs options, checked by the kernel (an error at start names them)" },
    Feature { key: "mounts.devpts", support: Works, note: "a new instance; gid= is dropped when that group is not mapped" },
    Feature { key: "mounts.mqueue", support: Works, note: "a new mqueue, which takes no options (one is an error at create naming it); an rbind of the host's where the kernel refuses one" },
    Feature { key: "mounts.cgroup", support: Works, note: "the container's own cgroups, as runc and crun show them: on a cgroup v2 host cgroup2; on a v1 or hybrid host a tmpfs with each hierarchy under the name the host mounts it as (memory, cpu, systemd, unified…; a link per controller of a combined one such as cpu,cpuacct). Each shows the container's own cgroup: a new mount where the container has its own cgroup namespace (rooted there), else a bind of its cgroup's directory from the host (as Docker on v1 runs it); read-only, all through, unless rw is asked for. Options: cgroup2's own only (nsdelegate, memory_recursiveprot, …; any other is an error at create naming it)" },
    Feature { key: "mounts.other", support: Works, note: "any other filesystem type is passed to mount(2) with its options as data (an error at start names them)" },
    Feature { key: "mounts.options.recursive", support: Works, note: "rro, rnosuid, rnodev, rnoexec, ratime family and rnosymfollow through mount_setattr(AT_RECURSIVE)" },
    Feature { key: "mounts.options.idmap", support: Works, note: "bind mounts only, and only as real root (CAP_SYS_ADMIN over the source's file system; a plain user gets an error at create naming the mount): create makes the idmapped mount on the host side (open_tree, then mount_setattr(MOUNT_ATTR_IDMAP)) and the container process attaches it; idmap maps the top mount only, ridmap the mounts under it too; without uidMappings and gidMappings, the maps of the container's new user namespace are used (an error without one); a file system that cannot be idmapped is an error at create naming the mount" },
    Feature { key: "mounts.uidMappings", support: Works, note: "with gidMappings (one without the other is an error): the maps of the user namespace given to the idmapped mount, so an id containerID on the source's file system shows through the mount as hostID, which the container's user namespace, if any, then maps as usual; the mount is idmapped whether or not the idmap option is given" },
    Feature { key: "mounts.options.tmpcopyup", support: Works, note: "the image's files at the destination are copied into the new tmpfs" },
    Feature { key: "process.args", support: Works, note: "execvp semantics, searching the PATH of process.env" },
    Feature { key: "process.commandLine", support: Err_, note: "Windows only; refused" },
    Feature { key: "process.env", support: Works, note: "the complete environment; a repeated name keeps its last value; HOME comes from the container's /etc/passwd when absent" },
    Feature { key: "process.cwd", support: Works, note: "must be absolute; created when missing; checked to be inside the root" },
    Feature { key: "process.user", support: Works, note: "uid, gid, umask and additionalGids (additionalGids are ignored with a warning where the user namespace denies setgroups)" },
    Feature { key: "process.user.username", support: Ignored, note: "Windows only" },
    Feature { key: "process.terminal", support: Works, note: "a pty of the container's own devpts (made at create with the options of the /dev/pts mount; tty names /dev/pts/0), whose master goes to --console-socket with SCM_RIGHTS; its slave is the controlling terminal and /dev/console, owned by the process's user" },
    Feature { key: "process.consoleSize", support: Works, note: "set on the pty" },
    Feature { key: "process.rlimits", support: Works, note: "set with setrlimit; a limit the caller cannot raise is an error" },
    Feature { key: "process.capabilities", support: Works, note: "the five sets exactly as given; an absent list is empty; a capability missing from hutch's own bounding set (or unknown to the kernel) cannot be granted and is left out with a warning" },
    Feature { key: "process.noNewPrivileges", support: Works, note: "PR_SET_NO_NEW_PRIVS" },
    Feature { key: "process.oomScoreAdj", support: Works, note: "written to /proc/self/oom_score_adj; lowering it needs privilege" },
    Feature { key: "process.apparmorProfile", support: Ignored, note: "AppArmor profiles are not applied" },
    Feature { key: "process.selinuxLabel", support: Ignored, note: "SELinux labels are not applied" },
    Feature { key: "process.scheduler", support: Works, note: "sched_setattr(2) with the policy, nice, priority, flags and deadline parameters; what the caller may not set (a real-time policy or a lower nice value without CAP_SYS_NICE) is an error at start" },
    Feature { key: "process.ioPriority", support: Works, note: "ioprio_set(2); the real-time class needs privilege (an error at start otherwise)" },
    Feature { key: "process.execCPUAffinity", support: Works, note: "`final` becomes the program's CPU affinity; `initial` (the runtime's own, before joining a cgroup) is ignored" },
    Feature { key: "hostname", support: Works, note: "needs a private UTS namespace (error otherwise)" },
    Feature { key: "domainname", support: Works, note: "needs a private UTS namespace (error otherwise)" },
    Feature { key: "annotations", support: Works, note: "kept and reported by state" },
    Feature { key: "annotations.org.hutch.root-emulation", support: Works, note: "root emulation, on by default where the container's user namespace maps exactly one uid and one gid (a plain user without subordinate ids): the chown family to an id other than the mapped one, mknod of a character or block device, the set*id family and setgroups succeed without changing anything, and the get*id family reports the identity a process switched to, so apt-get, dpkg, useradd, chown, install -o, su, runuser, tar and cpio work; a supervisor process (hutch-rootemu, a child of the program) answers them through seccomp user notification, after the kernel's own checks (a missing file is still ENOENT, a bad fd EBADF, a read-only file system EROFS) and the config's capabilities (CAP_CHOWN, CAP_SETUID, CAP_SETGID); the config's seccomp profile still denies what it denies; nothing is written into the root file system; with more than one id mapped, or as root without a user namespace, nothing changes; \"false\" turns it off for the container, \"true\" or absent leaves it on, any other value is an error" },
    Feature { key: "hooks", support: Works, note: "all six kinds, with args, env and timeout, the state JSON on stdin; prestart and createRuntime run at create, createContainer (on the start path: hutch mounts there) and startContainer in the container before execve, poststart after it (a failure stops the container), poststop at delete (a failure is a warning)" },
    Feature { key: "linux.namespaces", support: Works, note: "pid, network, ipc, uts, mount, user, cgroup: new or joined by path; a mount namespace is made when the config names none" },
    Feature { key: "linux.namespaces.time", support: Works, note: "a new time namespace is made on the start path, and the program enters it at execve; one given by path is joined at create" },
    Feature { key: "linux.namespaces.mount.path", support: Works, note: "the container process joins it at create and makes the container's mounts in it at start (they are then seen by everything else in that namespace)" },
    Feature { key: "linux.uidMappings", support: Works, note: "a single mapping of the caller's own id is written directly; other maps go through newuidmap/newgidmap" },
    Feature { key: "linux.timeOffsets", support: Works, note: "monotonic and boottime offsets of a new time namespace (an error without one)" },
    Feature { key: "linux.devices", support: Works, note: "bound from the host inside a user namespace, made with mknod as real root" },
    Feature { key: "linux.netDevices", support: Works, note: "moved by create, as real root, from the host's network namespace into the container's new one (both required: an error otherwise, naming the device) over rtnetlink, renamed to name (a %d template lets the kernel number it), with its permanent global addresses added back and the device up; a device missing on the host or a name taken in the container is an error that moves nothing; a failure after a device moved (adding an address, bringing it up) fails create, and the device goes with the namespace as below; nothing is done at delete: when the namespace goes, the kernel returns physical devices to the host and destroys virtual ones (a veth with its peer)" },
    Feature { key: "linux.cgroupsPath", support: Works, note: "the container gets a cgroup in every hierarchy the host mounts: on cgroup v2 one directory; on cgroup v1 one per hierarchy (each controller's, and named ones such as name=systemd); on a hybrid host both, each controller's settings going to the hierarchy that holds it. An absolute path is below each hierarchy's root, a relative one below the caller's own cgroup in that hierarchy (as runc); `..` and an empty path are errors; the systemd form slice:prefix:name is a transient systemd scope with --systemd-cgroup (system bus as root, session bus for a plain user; Delegate=yes, resources as unit properties, the rest written into its cgroup v2; stopped by delete) and ignored with a warning without it. Missing directories are made (mode 0755; a new v1 cpuset gets its parent's cpus and mems) and removed by delete, killing what is left in them; an existing cgroup is joined. The container process is cloned into the cgroup2 directory (clone3 CLONE_INTO_CGROUP) and written into each v1 cgroup.procs before it runs anything, so its cgroup namespace is rooted there; exec'd processes join the same way. A hierarchy where the caller may not make the cgroup (EACCES, EPERM, EROFS: a plain user on cgroup v1, or on v2 without a delegated subtree) is skipped, and a setting that needed it is warned about; where it may make none, the container runs without a cgroup, with one warning" },
    Feature { key: "linux.resources", support: Works, note: "written to the container's cgroups before its process enters them; without a cgroupsPath that cgroup is hutch-ID below the caller's own; with neither, and no limit other than unlimited, no cgroup is touched. On cgroup v2 a controller a setting needs is enabled in the parents' cgroup.subtree_control where it can be. A setting whose file does not exist is ignored with one warning naming the field; a value the kernel refuses is an error naming the field and the file, and create leaves nothing" },
    Feature { key: "linux.resources.memory", support: Works, note: "v1: limit → memory.limit_in_bytes, swap → memory.memsw.limit_in_bytes (written in the order the kernel accepts), reservation → memory.soft_limit_in_bytes; v2: limit → memory.max, reservation → memory.low, swap (memory plus swap) → memory.swap.max as swap − limit; -1 is unlimited; swap needs a limit not above it; useHierarchy and checkBeforeUpdate change nothing" },
    Feature { key: "linux.resources.memory.kernel", support: Works, note: "kernelTCP → memory.kmem.tcp.limit_in_bytes on cgroup v1; kernel is ignored with a warning (Linux no longer applies memory.kmem.limit_in_bytes: it takes the value and keeps no limit, as runc 1.2 also ignores it); cgroup v2 has neither (warned)" },
    Feature { key: "linux.resources.memory.swappiness", support: Works, note: "memory.swappiness on cgroup v1 (above 100 is an error); cgroup v2 has none: warned" },
    Feature { key: "linux.resources.memory.disableOOMKiller", support: Works, note: "memory.oom_control 1 on cgroup v1; cgroup v2 cannot turn the OOM killer off: warned" },
    Feature { key: "linux.resources.cpu", support: Works, note: "v1: shares → cpu.shares, period and quota → cpu.cfs_period_us and cpu.cfs_quota_us, burst → cpu.cfs_burst_us, idle → cpu.idle; v2: shares → cpu.weight (1 + (shares − 2) · 9999 / 262142), quota and period → cpu.max, burst → cpu.max.burst, idle → cpu.idle; cpus and mems → cpuset.cpus and cpuset.mems on both" },
    Feature { key: "linux.resources.cpu.realtime", support: Works, note: "realtimePeriod and realtimeRuntime → cpu.rt_period_us and cpu.rt_runtime_us on cgroup v1 (a kernel without CONFIG_RT_GROUP_SCHED has no such file: warned); cgroup v2 has none: warned" },
    Feature { key: "linux.resources.pids", support: Works, note: "limit → pids.max (0 or less is max)" },
    Feature { key: "linux.resources.blockIO", support: Works, note: "v1: weight → blkio.weight (blkio.bfq.weight where BFQ's is the only one), weightDevice → blkio.weight_device (or blkio.bfq.weight_device), the four throttle lists → blkio.throttle.{read,write}_{bps,iops}_device; v2: weight → io.weight default (1 + (weight − 10) · 9999 / 990), weightDevice → io.weight per device, throttles → io.max rbps, wbps, riops, wiops" },
    Feature { key: "linux.resources.blockIO.leafWeight", support: Works, note: "blkio.leaf_weight and blkio.leaf_weight_device on cgroup v1 where the kernel has them (CFQ; otherwise warned); cgroup v2 has no leaf weight: warned" },
    Feature { key: "linux.resources.hugepageLimits", support: Works, note: "v1: hugetlb.SIZE.limit_in_bytes; v2: hugetlb.SIZE.max" },
    Feature { key: "linux.resources.network", support: Works, note: "classID → net_cls.classid, priorities → net_prio.ifpriomap (one line each), on cgroup v1 where those hierarchies are mounted; otherwise (and on cgroup v2, which has neither) warned" },
    Feature { key: "linux.resources.rdma", support: Works, note: "rdma.max, one line per device (v1 and v2)" },
    Feature { key: "linux.resources.devices", support: Works, note: "the config's rules in order, then the devices every container has (mknod of any; null, zero, full, random, urandom, tty, console, ptmx, pts) and linux.devices, as runc and crun allow them; type p is an error. cgroup v1: devices.deny a, then each rule to devices.allow or devices.deny. cgroup v2, as root: an eBPF device program (BPF_PROG_TYPE_CGROUP_DEVICE) attached to the container's cgroup, in which the last matching rule decides and an a *:* rwm rule replaces those before it. A plain user gets no device cgroup (its /dev holds only devices bound from the host, and it cannot make nodes): warned when the config allows a device" },
    Feature { key: "linux.resources.unified", support: Works, note: "each key is written as the file of that name in the container's cgroup2 directory (also on a hybrid host), after the other settings; without one (cgroup v1 only) warned; a key must be a plain CONTROLLER.NAME file name, and the core files that move, kill or freeze processes or change the tree (cgroup.procs, cgroup.threads, cgroup.subtree_control, cgroup.kill, cgroup.freeze, cgroup.type; also the read-only cgroup.controllers, cgroup.events, cgroup.stat) are refused" },
    Feature { key: "linux.intelRdt", support: Err_, note: "Intel RDT is refused" },
    Feature { key: "linux.memoryPolicy", support: Works, note: "set with set_mempolicy(2) by the container process at create (a node the host lacks is the kernel's error then); the program, its children and exec's processes run with it; every mode and flag of runtime-spec 1.3; a bad node list, nodes for a mode that takes none or none for one that needs some, and MPOL_F_STATIC_NODES with MPOL_F_RELATIVE_NODES are errors naming the field" },
    Feature { key: "linux.sysctl", support: Works, note: "namespaced keys only, written through the container's procfs after it is verified" },
    Feature { key: "linux.seccomp", support: Works, note: "built with libseccomp: every action but NOTIFY, errnoRet, architectures, argument checks, the LOG, TSYNC and SPEC_ALLOW flags; unknown syscall names are skipped; loaded last before execve with noNewPrivileges, else before capabilities are dropped; root emulation's filter (annotations.org.hutch.root-emulation) comes in addition, and the kernel takes the more restrictive answer of the two" },
    Feature { key: "linux.seccomp.notify", support: Err_, note: "seccomp notify (SCMP_ACT_NOTIFY, listenerPath) is refused" },
    Feature { key: "linux.rootfsPropagation", support: Works, note: "shared, slave, private or unbindable; slave by default" },
    Feature { key: "linux.maskedPaths", support: Works, note: "files hidden under a read-only bind of the host's /dev/null (verified to be the real device), directories under an empty read-only tmpfs" },
    Feature { key: "linux.readonlyPaths", support: Works, note: "bound onto themselves read-only" },
    Feature { key: "linux.mountLabel", support: Ignored, note: "SELinux mount labels are not applied" },
    Feature { key: "linux.personality", support: Works, note: "LINUX and LINUX32 domains" },
];
