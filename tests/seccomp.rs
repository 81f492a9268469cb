//! `linux.seccomp` through the real binary: the filter is active in the
//! program, denies with the profile's errno, checks arguments, goes in
//! before or after the capabilities drop as runc does, and a bad profile
//! fails `create` with one line and nothing left behind.

mod common;

use common::*;
use serde_json::{json, Value};

/// A container running `script` under `profile`.
fn bundle(script: &str, profile: Value) -> Bundle {
    let mut b = Bundle::new(&["/bin/sh", "-c", script]);
    b.edit(|c| c["linux"]["seccomp"] = profile);
    b
}

/// Run `script` under `profile`; its stdout and stderr together.
fn run_ok(script: &str, profile: Value) -> String {
    let b = bundle(script, profile);
    let out = b.run();
    assert_ok(&out);
    text(&out.stdout) + &text(&out.stderr)
}

#[test]
fn denied_call_fails_with_eperm_and_the_filter_is_active() {
    let out = run_ok(
        "grep Seccomp: /proc/self/status; mkdir /tmp/x; echo mkdir=$?; ls / >/dev/null && echo ls-ok",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        }),
    );
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("mkdir=1"), "{out}");
    assert!(out.contains("ls-ok"), "{out}");
}

#[test]
fn errno_ret_is_honoured() {
    let out = run_ok(
        "mkdir /tmp/x; echo mkdir=$?",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        }),
    );
    assert!(out.contains("Permission denied"), "{out}");
    assert!(out.contains("mkdir=1"), "{out}");
}

#[test]
fn argument_checks_select_the_calls() {
    // Netlink sockets (AF_NETLINK = 16) get EINVAL; inet ones are fine.
    let out = run_ok(
        "ip link show lo; echo ip=$?; ifconfig lo >/dev/null; echo ifconfig=$?",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                          "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}]}]
        }),
    );
    assert!(out.contains("Invalid argument"), "{out}");
    assert!(!out.contains("ip=0"), "{out}");
    assert!(out.contains("ifconfig=0"), "{out}");
}

/// buildah's profile (1.28, as sent on every RUN step), without mkdir in
/// its ALLOW list so that the default errno shows.
fn buildah_profile() -> Value {
    let allow: Vec<&str> = BUILDAH_ALLOW
        .split_whitespace()
        .filter(|n| !n.starts_with("mkdir"))
        .collect();
    let errno1 =
        |names: &[&str]| json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": 1});
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            errno1(&["bdflush", "kexec_load", "nice", "swapoff", "swapon", "userfaultfd", "vmsplice"]),
            {"names": allow, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]},
            {"names": ["arch_prctl", "modify_ldt", "chroot"], "action": "SCMP_ACT_ALLOW"},
            errno1(&["open_by_handle_at"]),
            errno1(&["bpf", "fanotify_init", "lookup_dcookie", "perf_event_open", "quotactl", "setdomainname", "sethostname", "setns"]),
            errno1(&["delete_module", "finit_module", "init_module", "query_module", "acct", "kcmp", "process_madvise"]),
            errno1(&["ioperm", "iopl", "clock_settime", "clock_settime64", "settimeofday", "stime", "vhangup"]),
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 9, "op": "SCMP_CMP_NE"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_NE"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 9, "op": "SCMP_CMP_NE"}]}
        ]
    })
}

#[test]
fn buildah_profile_with_and_without_no_new_privileges() {
    for nnp in [false, true] {
        let mut b = bundle(
            // setns is both allowed and denied (errno 1): the first rule
            // wins, as under crun, so the kernel's EINVAL for a namespace
            // of the wrong type shows, not EPERM.
            "grep -E 'Seccomp:|NoNewPrivs:' /proc/self/status; \
             nsenter --net=/proc/self/ns/uts true; \
             mkdir /tmp/d; echo mkdir=$?; echo done",
            buildah_profile(),
        );
        b.edit(|c| c["process"]["noNewPrivileges"] = json!(nnp));
        let out = b.run();
        assert_ok(&out);
        let out = text(&out.stdout) + &text(&out.stderr);
        assert!(out.contains("Seccomp:\t2"), "nnp={nnp}: {out}");
        assert!(
            out.contains(&format!("NoNewPrivs:\t{}", u8::from(nnp))),
            "nnp={nnp}: {out}"
        );
        assert!(out.contains("Invalid argument"), "nnp={nnp}: {out}");
        assert!(out.contains("Function not implemented"), "nnp={nnp}: {out}");
        assert!(
            out.contains("mkdir=1") && out.contains("done"),
            "nnp={nnp}: {out}"
        );
    }
}

#[test]
fn filter_goes_in_before_the_capability_drop_unless_no_new_privileges() {
    // Without no_new_privs the filter is loaded while hutch still holds
    // CAP_SYS_ADMIN, so it also applies to hutch's own capset; with it,
    // the filter is loaded last and only the program is subject to it.
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["capset"], "action": "SCMP_ACT_ERRNO"}]
    });
    let mut b = bundle("echo ran", profile.clone());
    b.edit(|c| c["process"]["noNewPrivileges"] = json!(false));
    let out = b.run();
    assert_one_line_error(&out, "capabilities: Operation not permitted");
    assert!(!text(&out.stdout).contains("ran"));
    assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());

    let mut b = bundle("echo ran", profile);
    b.edit(|c| c["process"]["noNewPrivileges"] = json!(true));
    let out = b.run();
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "ran\n");
}

#[test]
fn invalid_profiles_fail_create_with_one_line() {
    for (profile, needle) in [
        (json!({"defaultAction": "SCMP_ACT_BOGUS"}), "SCMP_ACT_BOGUS"),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}),
            "SCMP_ARCH_Z80",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO",
                   "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}),
            "an errno return is set for SCMP_ACT_ALLOW",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                 "args": [{"index": 7, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
            "argument index 7 is out of range",
        ),
    ] {
        let b = bundle("true", profile);
        let out = b.create();
        assert_one_line_error(&out, needle);
        assert!(
            b.state_entries().is_empty(),
            "{needle}: {:?}",
            b.state_entries()
        );
    }
}

#[test]
fn notify_is_refused() {
    for profile in [
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/seccomp-agent.sock"}),
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
    ] {
        let b = bundle("true", profile);
        let out = b.create();
        assert_one_line_error(&out, "linux.seccomp.notify is not supported");
        assert!(b.state_entries().is_empty(), "{:?}", b.state_entries());
    }
}

/// The ALLOW list of buildah's profile.
const BUILDAH_ALLOW: &str = "\
    _llseek _newselect accept accept4 access adjtimex alarm bind brk capget capset chdir \
    chmod chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 \
    clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 clone clone3 close \
    close_range connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 \
    epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd \
    eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 \
    fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 \
    fdatasync fgetxattr flistxattr flock fork fremovexattr fsconfig fsetxattr fsmount fsopen \
    fspick fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex \
    futex_time64 futimesat get_mempolicy get_robust_list get_thread_area getcpu getcwd \
    getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups \
    getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom \
    getresgid getresgid32 getresuid getresuid32 getrlimit getrusage getsid getsockname \
    getsockopt gettid gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init \
    inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_setup io_submit \
    ioctl ioprio_get ioprio_set ipc keyctl kill landlock_add_rule landlock_create_ruleset \
    landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr \
    lremovexattr lseek lsetxattr lstat lstat64 madvise mbind membarrier memfd_create \
    memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mount \
    mount_setattr move_mount mprotect mq_getsetattr mq_notify mq_open mq_timedreceive \
    mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget \
    msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat \
    open open_tree openat openat2 pause pidfd_getfd pidfd_open pidfd_send_signal pipe pipe2 \
    pivot_root pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 \
    preadv preadv2 prlimit64 process_mrelease process_vm_readv process_vm_writev pselect6 \
    pselect6_time64 ptrace pwrite64 pwritev pwritev2 read readahead readdir readlink \
    readlinkat readv reboot recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages \
    removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction \
    rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait \
    rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min \
    sched_getaffinity sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval \
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam \
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop \
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto set_mempolicy \
    set_robust_list set_thread_area set_tid_address setfsgid setfsgid32 setfsuid setfsuid32 \
    setgid setgid32 setgroups setgroups32 setitimer setns setpgid setpriority setregid \
    setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit \
    setsid setsockopt setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaction \
    sigaltstack signal signalfd signalfd4 sigpending sigprocmask sigreturn sigsuspend \
    socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync \
    sync_file_range syncfs syscall sysinfo syslog tee tgkill time timer_create timer_delete \
    timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd \
    timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times \
    tkill truncate truncate64 ugetrlimit umask umount umount2 uname unlink unlinkat unshare \
    utime utimensat utimensat_time64 utimes vfork wait4 waitid waitpid write writev";
