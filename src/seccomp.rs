//! `linux.seccomp`: the config's profile → [`SeccompPlan`] at create time,
//! and the plan → a loaded filter just before the program runs.
//!
//! libseccomp does the hard part (the BPF program, the per-architecture
//! syscall tables, the argument checks on 32-bit ABIs); hutch validates the
//! profile and calls it the way crun does, so a profile behaves the same
//! under both:
//! - the rules are added in the config's order; where two rules without
//!   argument checks name the same syscall, libseccomp keeps the first
//!   (buildah's profile allows `setns` and later denies it: allowed);
//! - a rule whose action is the default action is left out (libseccomp
//!   refuses it);
//! - a rule with several checks on the same argument becomes one rule per
//!   check (libseccomp cannot AND two checks of one argument);
//! - syscall names libseccomp does not know are skipped: profiles list
//!   syscalls newer than the kernel and the library.
//!
//! Only the flags the config lists are set (crun sets SPEC_ALLOW when the
//! config has none; hutch does not weaken a mitigation unasked).
//!
//! [`plan`] checks everything short of building the filter, which costs
//! about 15 ms for buildah's three-architecture profile; so a combination
//! of rules libseccomp itself refuses (EEXIST for some argument rules on
//! x86's `socketcall`, as under crun) is reported by `start`, naming the
//! syscall.

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
    LinuxSyscall,
};

use crate::error::{Error, Result};
use crate::features::gate;

/// A seccomp profile, validated: everything [`load`] needs, nothing left to
/// parse.
#[derive(Clone, Debug)]
pub struct SeccompPlan {
    /// For calls no rule matches (`defaultAction`, with `defaultErrnoRet`
    /// in an `Errno` or `Trace`, EPERM when absent).
    pub default_action: ScmpAction,
    /// Architectures besides the native one.
    pub arches: Vec<ScmpArch>,
    /// `SECCOMP_FILTER_FLAG_LOG`.
    pub log: bool,
    /// `SECCOMP_FILTER_FLAG_TSYNC`.
    pub tsync: bool,
    /// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`.
    pub spec_allow: bool,
    /// In the config's order.
    pub rules: Vec<RulePlan>,
    /// Calls of architectures not listed pass (root emulation's filter);
    /// a config's profile kills them, as libseccomp does by default.
    pub other_arches_allowed: bool,
}

/// One rule: these syscalls, when all `args` checks hold, get `action`.
#[derive(Clone, Debug)]
pub struct RulePlan {
    /// The names libseccomp knows, with their (native or pseudo) numbers.
    pub syscalls: Vec<(String, ScmpSyscall)>,
    /// With its errno (`errnoRet`, EPERM when absent) in an `Errno` or `Trace`.
    pub action: ScmpAction,
    /// At most one check per argument.
    pub args: Vec<ArgCheck>,
}

/// A check on one syscall argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgCheck {
    /// 0 to 5.
    pub index: u32,
    /// `MaskedEqual(value)` compares `arg & value` with `valueTwo`.
    pub op: ScmpCompareOp,
    pub datum: u64,
}

/// Validate `linux.seccomp` into a plan.
pub fn plan(s: &LinuxSeccomp) -> Result<SeccompPlan> {
    gate("linux.seccomp")?;
    if s.listener_path().is_some() {
        gate("linux.seccomp.notify")?;
    }
    let default_action = action(
        "linux.seccomp.defaultAction",
        s.default_action(),
        s.default_errno_ret(),
    )?;

    let mut arches = Vec::new();
    for a in s.architectures().as_deref().unwrap_or_default() {
        let a = arch(*a);
        if !arches.contains(&a) {
            arches.push(a);
        }
    }

    let (mut log, mut tsync, mut spec_allow) = (false, false, false);
    for f in s.flags().as_deref().unwrap_or_default() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => log = true,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => tsync = true,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => spec_allow = true,
            // It only changes how a notify listener waits, and notify is
            // refused; the kernel rejects it without one.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {}
        }
    }

    let mut rules = Vec::new();
    for (i, sc) in s
        .syscalls()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        plan_rule(i, sc, default_action, &mut rules)?;
    }
    Ok(SeccompPlan {
        default_action,
        arches,
        log,
        tsync,
        spec_allow,
        rules,
        other_arches_allowed: false,
    })
}

/// Validate `linux.seccomp.syscalls[i]` and append what it becomes.
fn plan_rule(
    i: usize,
    sc: &LinuxSyscall,
    default_action: ScmpAction,
    rules: &mut Vec<RulePlan>,
) -> Result<()> {
    let field = format!("linux.seccomp.syscalls[{i}]");
    let action = action(&field, sc.action(), sc.errno_ret())?;

    let mut args = Vec::new();
    for a in sc.args().as_deref().unwrap_or_default() {
        let index = u32::try_from(a.index())
            .ok()
            .filter(|&n| n < 6)
            .ok_or_else(|| {
                Error::Config(format!(
                    "{field}: argument index {} is out of range (0 to 5)",
                    a.index()
                ))
            })?;
        let (op, datum) = match a.op() {
            LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, a.value()),
            LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, a.value()),
            LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, a.value()),
            LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, a.value()),
            LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, a.value()),
            LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, a.value()),
            LinuxSeccompOperator::ScmpCmpMaskedEq => (
                ScmpCompareOp::MaskedEqual(a.value()),
                a.value_two().unwrap_or(0),
            ),
        };
        args.push(ArgCheck { index, op, datum });
    }

    // Checked above even when the rule is dropped below: a profile is
    // valid or not whatever the default action.
    if action == default_action {
        return Ok(());
    }
    let mut syscalls = Vec::new();
    for name in sc.names() {
        match ScmpSyscall::from_name(name) {
            Ok(nr) => syscalls.push((name.clone(), nr)),
            Err(_) => tracing::debug!("{field}: unknown syscall `{name}` skipped"),
        }
    }
    if syscalls.is_empty() {
        return Ok(());
    }

    let mut seen = [false; 6];
    let repeated = args.iter().any(|a| {
        let i = a.index as usize;
        std::mem::replace(&mut seen[i], true)
    });
    if repeated {
        for a in args {
            rules.push(RulePlan {
                syscalls: syscalls.clone(),
                action,
                args: vec![a],
            });
        }
    } else {
        rules.push(RulePlan {
            syscalls,
            action,
            args,
        });
    }
    Ok(())
}

/// An action with its errno. `errnoRet` on an action that returns none is
/// an error (the spec's MUST).
fn action(field: &str, a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    use LinuxSeccompAction as A;
    let ret = || -> Result<u16> {
        match errno {
            None => Ok(libc::EPERM as u16),
            Some(n) => u16::try_from(n).map_err(|_| {
                Error::Config(format!("{field}: errno {n} is out of range (0 to 65535)"))
            }),
        }
    };
    if errno.is_some() && !matches!(a, A::ScmpActErrno | A::ScmpActTrace) {
        return Err(Error::Config(format!(
            "{field}: an errno return is set for {}, which returns none",
            action_name(a)
        )));
    }
    Ok(match a {
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(i32::from(ret()?)),
        A::ScmpActTrace => ScmpAction::Trace(ret()?),
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActNotify => {
            gate("linux.seccomp.notify")?;
            ScmpAction::Notify
        }
    })
}

fn action_name(a: LinuxSeccompAction) -> String {
    // strum's Display gives the config's spelling (SCMP_ACT_ALLOW).
    a.to_string()
}

fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// A filter compiled to the BPF program the kernel runs, with the
/// `seccomp(2)` flags to install it with.
#[derive(Clone, Debug)]
pub struct Compiled {
    program: Vec<u8>,
    flags: u32,
}

/// Compile the plan, through a cache: libseccomp takes milliseconds to
/// build buildah's profile for three architectures, and buildah sends the
/// same profile on every RUN step. The cache is a directory of the
/// caller's own (`DIR/.seccomp-UID`, mode 0700, checked to be theirs),
/// keyed by a hash of the plan and of the hutch and libseccomp versions;
/// a missing or unusable cache only costs the compile.
pub fn compile(p: &SeccompPlan, cache_root: &Path) -> Result<Compiled> {
    let flags = u32::from(p.tsync) | u32::from(p.log) << 1 | u32::from(p.spec_allow) << 2;
    let key = cache_key(p);
    let dir = cache_dir(cache_root);
    let file = dir.as_ref().map(|d| d.join(format!("{key:016x}.bpf")));
    if let Some(program) = file
        .as_ref()
        .and_then(|f| crate::input::read(f, crate::input::Follow::No).ok())
        .filter(|b| !b.is_empty() && b.len() % 8 == 0)
    {
        return Ok(Compiled { program, flags });
    }
    let ctx = build(p)?;
    let program = export(&ctx)?;
    if let (Some(dir), Some(file)) = (dir, file) {
        let tmp = dir.join(format!(".{key:016x}.{}", std::process::id()));
        if std::fs::write(&tmp, &program)
            .and_then(|()| std::fs::rename(&tmp, &file))
            .is_err()
        {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(Compiled { program, flags })
}

/// Compile the plan without the cache: for a small filter whose cache
/// file would be the only thing hutch leaves in a state directory (root
/// emulation's; a shared `--root`, as Slurm's, must stay empty).
pub fn compile_uncached(p: &SeccompPlan) -> Result<Compiled> {
    let flags = u32::from(p.tsync) | u32::from(p.log) << 1 | u32::from(p.spec_allow) << 2;
    let program = export(&build(p)?)?;
    Ok(Compiled { program, flags })
}

/// Install a compiled filter on the calling thread. It does not set
/// no_new_privs: hutch sets that only when `process.noNewPrivileges` asks,
/// and otherwise loads the filter while it still has CAP_SYS_ADMIN in its
/// user namespace.
pub fn load(c: &Compiled) -> Result<()> {
    crate::sys::seccomp_set_filter(&c.program, c.flags)
        .map_err(|e| Error::call("load the seccomp filter", e))
}

/// Install a compiled filter whose rules notify, and return its user
/// notification fd (see `rootemu`).
pub fn load_with_listener(c: &Compiled) -> Result<std::os::fd::OwnedFd> {
    crate::sys::seccomp_set_filter_listener(&c.program, c.flags)
        .map_err(|e| Error::call("load the root emulation filter", e))
}

/// Confine the calling process to the system calls named in `allowed`:
/// any other fails with EPERM (not a kill: a call forgotten here makes an
/// error, not a dead process). Sets no_new_privs. For hutch's own helper
/// processes that parse untrusted input (the SquashFS server).
pub fn confine(allowed: &[&str]) -> Result<()> {
    let fail = |step: &str, e: libseccomp::error::SeccompError| {
        Error::call(format!("seccomp: {step}"), errno(&e))
    };
    let mut ctx = ScmpFilterContext::new(ScmpAction::Errno(libc::EPERM))
        .map_err(|e| fail("make the filter", e))?;
    for name in allowed {
        // A name this libseccomp does not know is a call it cannot make.
        if let Ok(call) = ScmpSyscall::from_name(name) {
            ctx.add_rule(ScmpAction::Allow, call)
                .map_err(|e| fail(&format!("allow {name}"), e))?;
        }
    }
    ctx.load().map_err(|e| fail("load the filter", e))
}

fn cache_key(p: &SeccompPlan) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    env!("CARGO_PKG_VERSION").hash(&mut h);
    format!(
        "{:?}",
        libseccomp::ScmpVersion::current()
            .ok()
            .map(|v| (v.major, v.minor, v.micro))
    )
    .hash(&mut h);
    format!("{p:?}").hash(&mut h);
    h.finish()
}

/// The caller's cache directory under `root`, made when missing; `None`
/// when it cannot be made or is not the caller's alone.
fn cache_dir(root: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = nix::unistd::geteuid().as_raw();
    let dir = root.join(format!(".seccomp-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let md = std::fs::symlink_metadata(&dir).ok()?;
    (md.is_dir() && md.uid() == uid && md.mode() & 0o077 == 0).then_some(dir)
}

/// The BPF program of a filter context, through a memfd (libseccomp 2.5
/// exports only to an fd).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let fail = |e: std::io::Error| {
        Error::call(
            "export the seccomp filter",
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    };
    let fd =
        nix::sys::memfd::memfd_create(c"hutch-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| Error::call("export the seccomp filter", e))?;
    ctx.export_bpf(&fd)
        .map_err(|e| Error::call("export the seccomp filter", errno(&e)))?;
    let mut f = std::fs::File::from(fd);
    f.rewind().map_err(fail)?;
    let mut program = Vec::new();
    f.read_to_end(&mut program).map_err(fail)?;
    Ok(program)
}

/// The filter context of a plan, not loaded.
pub fn build(p: &SeccompPlan) -> Result<ScmpFilterContext> {
    let fail = |step: &str, e: libseccomp::error::SeccompError| {
        Error::call(format!("seccomp: {step}"), errno(&e))
    };
    let mut ctx =
        ScmpFilterContext::new(p.default_action).map_err(|e| fail("make the filter", e))?;
    // Real error codes rather than libseccomp's catch-all ECANCELED.
    ctx.set_api_sysrawrc(true)
        .map_err(|e| fail("ask for system error codes", e))?;
    ctx.set_ctl_nnp(false)
        .map_err(|e| fail("leave no_new_privs alone", e))?;
    if p.tsync {
        ctx.set_ctl_tsync(true).map_err(|e| fail("set TSYNC", e))?;
    }
    if p.log {
        ctx.set_ctl_log(true).map_err(|e| fail("set LOG", e))?;
    }
    if p.spec_allow {
        ctx.set_ctl_ssb(true)
            .map_err(|e| fail("set SPEC_ALLOW", e))?;
    }
    if p.other_arches_allowed {
        ctx.set_act_badarch(ScmpAction::Allow)
            .map_err(|e| fail("let other architectures pass", e))?;
    }
    for &a in &p.arches {
        ctx.add_arch(a)
            .map_err(|e| fail(&format!("add architecture {a:?}"), e))?;
    }
    for r in &p.rules {
        let cmps: Vec<ScmpArgCompare> = r
            .args
            .iter()
            .map(|a| ScmpArgCompare::new(a.index, a.op, a.datum))
            .collect();
        for (name, nr) in &r.syscalls {
            ctx.add_rule_conditional(r.action, *nr, &cmps)
                .map_err(|e| fail(&format!("add the rule for `{name}`"), e))?;
        }
    }
    Ok(ctx)
}

fn errno(e: &libseccomp::error::SeccompError) -> Errno {
    match e.sysrawrc() {
        Some(rc) if rc < 0 => Errno::from_raw(-rc),
        _ => Errno::EINVAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// buildah's profile, trimmed: its default, arches, an ALLOW list, the
    /// `setns` conflict, personality and socket argument rules. (Its ALLOW
    /// list must keep `socketcall`: without it libseccomp refuses the third
    /// socket rule on x86 with EEXIST, as it does under crun.)
    const BUILDAH: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["bdflush", "kexec_load", "userfaultfd", "vmsplice"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["_llseek", "capset", "close_range", "execve", "exit_group", "mkdir",
                       "prctl", "read", "setns", "setresuid", "socketcall", "write", "no_such_call_yet"],
             "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
            {"names": ["bpf", "sethostname", "setns"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 9, "op": "SCMP_CMP_NE"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_NE"}]}
        ]
    }"#;

    fn parse(json: &str) -> std::result::Result<LinuxSeccomp, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    fn plan_of(json: &str) -> Result<SeccompPlan> {
        plan(&parse(json).unwrap())
    }

    #[test]
    fn buildah_profile() {
        let p = plan_of(BUILDAH).unwrap();
        assert_eq!(p.default_action, ScmpAction::Errno(38));
        assert_eq!(p.arches, [ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32]);
        assert!(!p.log && !p.tsync && !p.spec_allow);
        assert_eq!(p.rules.len(), 8);
        assert_eq!(p.rules[0].action, ScmpAction::Errno(1));
        let allow = &p.rules[1];
        assert_eq!(allow.action, ScmpAction::Allow);
        let names: Vec<&str> = allow.syscalls.iter().map(|(n, _)| n.as_str()).collect();
        // Unknown names are skipped; names of other ABIs (_llseek) are kept.
        assert!(names.contains(&"_llseek") && names.contains(&"setns"));
        assert!(!names.contains(&"no_such_call_yet"));
        let socket = &p.rules[5];
        assert_eq!(socket.action, ScmpAction::Errno(22));
        assert_eq!(
            socket.args,
            [
                ArgCheck {
                    index: 0,
                    op: ScmpCompareOp::Equal,
                    datum: 16
                },
                ArgCheck {
                    index: 2,
                    op: ScmpCompareOp::Equal,
                    datum: 9
                },
            ]
        );
        // And libseccomp takes all of it.
        build(&p).unwrap();
    }

    #[rstest]
    #[case::default_action(r#"{"defaultAction": "SCMP_ACT_BOGUS"}"#, "SCMP_ACT_BOGUS")]
    #[case::rule_action(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_DENY"}]}"#,
        "SCMP_ACT_DENY"
    )]
    #[case::arch(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#,
        "SCMP_ARCH_Z80"
    )]
    #[case::operator(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}"#,
        "SCMP_CMP_ABOUT"
    )]
    #[case::flag(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}"#,
        "SECCOMP_FILTER_FLAG_FAST"
    )]
    fn unknown_names_are_refused_naming_them(#[case] json: &str, #[case] name: &str) {
        let err = parse(json).unwrap_err();
        assert!(err.contains(name), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[rstest]
    #[case::errno_on_allow(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}"#,
        "linux.seccomp.syscalls[0]: an errno return is set for SCMP_ACT_ALLOW"
    )]
    #[case::default_errno_on_kill(
        r#"{"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}"#,
        "linux.seccomp.defaultAction: an errno return is set for SCMP_ACT_KILL"
    )]
    #[case::errno_too_big(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}"#,
        "errno 70000 is out of range"
    )]
    #[case::arg_index(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
        "argument index 6 is out of range"
    )]
    #[case::notify_action(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        "linux.seccomp.notify is not supported"
    )]
    #[case::listener_path(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}"#,
        "linux.seccomp.notify is not supported"
    )]
    fn invalid_profiles(#[case] json: &str, #[case] want: &str) {
        let err = plan_of(json).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(want), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn rules_like_the_default_are_left_out() {
        let p = plan_of(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["no_such_call_yet"], "action": "SCMP_ACT_ALLOW"}
            ]}"#,
        )
        .unwrap();
        // mkdir is the default, rmdir gets EPERM (also 1), the unknown name
        // leaves nothing.
        assert!(p.rules.is_empty(), "{:?}", p.rules);
    }

    #[test]
    fn repeated_argument_checks_become_separate_rules() {
        let p = plan_of(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 1, "value": 448, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 511, "op": "SCMP_CMP_EQ"}]}]}"#,
        )
        .unwrap();
        assert_eq!(p.rules.len(), 2);
        assert!(p.rules.iter().all(|r| r.args.len() == 1));
        build(&p).unwrap();
    }

    #[test]
    fn masked_eq_takes_the_mask_from_value() {
        let p = plan_of(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 268435456, "valueTwo": 268435456, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.rules[0].args,
            [ArgCheck {
                index: 0,
                op: ScmpCompareOp::MaskedEqual(0x1000_0000),
                datum: 0x1000_0000
            }]
        );
    }

    #[test]
    fn flags() {
        let p = plan_of(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
        )
        .unwrap();
        assert!(p.log && p.tsync && p.spec_allow);
        build(&p).unwrap();
    }
}
