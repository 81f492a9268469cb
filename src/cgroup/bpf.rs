//! cgroup v2 device rules: an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the container's cgroup2
//! directory, as runc and crun do (cgroup v2 has no devices files).
//!
//! The program reads the request (`struct bpf_cgroup_dev_ctx`: access and
//! type in one word, then major and minor) and tries the rules from the
//! last to the first: the first that matches answers (1 allows, 0
//! denies), as the last matching rule wins on cgroup v1. A rule of type
//! `a` with no device and all of `rwm` sets the answer for everything and
//! ends the list (the rules before it no longer count); with none, the
//! answer is deny. A rule with only some of `rwm` matches a request that
//! asks for no more than those.

use std::os::fd::AsFd;

use super::DeviceRule;
use crate::error::{Error, Result};

/// One instruction: `struct bpf_insn` (code, dst:4|src:4, off, imm).
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (src << 4) | (dst & 0xf);
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..8].copy_from_slice(&imm.to_le_bytes());
    b
}

// The few opcodes used (class | op | source).
const LDX_W: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
const AND32_K: u8 = 0x54; // w_dst &= imm
const RSH32_K: u8 = 0x74; // w_dst >>= imm
const MOV32_X: u8 = 0xbc; // w_dst = w_src
const MOV64_K: u8 = 0xb7; // r_dst = imm
const JNE_K: u8 = 0x55; // if r_dst != imm goto +off
const EXIT: u8 = 0x95;

/// The device types and accesses as the kernel numbers them.
const TYPE_BLOCK: i32 = 1;
const TYPE_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |a, c| {
        a | match c {
            'm' => ACC_MKNOD,
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            _ => 0,
        }
    })
}

/// Whether `r` covers every device and every access.
fn is_everything(r: &DeviceRule) -> bool {
    r.typ == 'a' && r.major.is_none() && r.minor.is_none() && access_bits(&r.access) == 7
}

/// The program for `rules` (in the config's order).
pub fn program(rules: &[DeviceRule]) -> Vec<[u8; 8]> {
    // r2 = type, r3 = access, r4 = major, r5 = minor.
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    let start = rules.iter().rposition(is_everything);
    let default = start.is_some_and(|i| rules[i].allow);
    let rest = match start {
        Some(i) => &rules[i + 1..],
        None => rules,
    };
    for r in rest.iter().rev() {
        let mut block: Vec<(u8, u8, u8, i32)> = Vec::new();
        match r.typ {
            'b' => block.push((JNE_K, 2, 0, TYPE_BLOCK)),
            'c' => block.push((JNE_K, 2, 0, TYPE_CHAR)),
            _ => {}
        }
        let acc = access_bits(&r.access);
        if acc != 7 {
            // r1 = access & ~rule's: not 0 asks for more than the rule.
            block.push((MOV32_X, 1, 3, 0));
            block.push((AND32_K, 1, 0, !acc & 7));
            block.push((JNE_K, 1, 0, 0));
        }
        if let Some(m) = r.major {
            block.push((JNE_K, 4, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push((JNE_K, 5, 0, m as i32));
        }
        block.push((MOV64_K, 0, 0, i32::from(r.allow)));
        block.push((EXIT, 0, 0, 0));
        let n = block.len();
        for (i, (code, dst, src, imm)) in block.into_iter().enumerate() {
            // A failed check jumps past this rule's block.
            let off = if code == JNE_K { (n - i - 1) as i16 } else { 0 };
            p.push(insn(code, dst, src, off, imm));
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, i32::from(default)));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// Load the program for `rules` and attach it to the cgroup2 directory
/// `dir` (`path` for messages).
pub fn attach(
    rules: &[DeviceRule],
    dir: std::os::fd::BorrowedFd<'_>,
    path: &std::path::Path,
) -> Result<()> {
    let insns = program(rules);
    // Without the verifier's log; on failure once more with it, for the message.
    let prog = crate::sys::bpf_load_device_program(&insns, &mut []).map_err(|e| {
        let mut log = vec![0u8; 1 << 16];
        let _ = crate::sys::bpf_load_device_program(&insns, &mut log);
        let text = String::from_utf8_lossy(&log);
        let lines: Vec<&str> = text.trim_end_matches('\0').trim_end().lines().collect();
        let last = lines[lines.len().saturating_sub(3)..].join("; ");
        Error::call(
            format!(
                "load the device eBPF program for `{}` ({last})",
                path.display()
            ),
            e,
        )
    })?;
    crate::sys::bpf_attach_device_program(prog.as_fd(), dir)
        .map_err(|e| Error::sys("attach the device eBPF program to", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        typ: char,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            typ,
            major,
            minor,
            access: access.into(),
        }
    }

    /// Run the program on a request, as the kernel would: a tiny
    /// interpreter of the opcodes `program` emits.
    fn run(p: &[[u8; 8]], typ: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [((access as u32) << 16) | typ as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i[1] & 0xf) as usize, (i[1] >> 4) as usize);
            let off = i16::from_le_bytes([i[2], i[3]]);
            let imm = i32::from_le_bytes([i[4], i[5], i[6], i[7]]);
            pc += 1;
            match i[0] {
                LDX_W => r[dst] = u64::from(ctx[off as usize / 4]),
                AND32_K => r[dst] = u64::from(r[dst] as u32 & imm as u32),
                RSH32_K => r[dst] = u64::from((r[dst] as u32) >> imm),
                MOV32_X => r[dst] = u64::from(r[src] as u32),
                MOV64_K => r[dst] = imm as i64 as u64,
                JNE_K => {
                    if r[dst] != imm as i64 as u64 {
                        pc += off as usize;
                    }
                }
                EXIT => return r[0],
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn the_last_matching_rule_answers() {
        let rules = [
            rule(false, 'a', None, None, "rwm"),
            rule(true, 'c', Some(1), Some(3), "rwm"),
            rule(true, 'c', Some(136), None, "rw"),
            rule(false, 'c', Some(1), Some(3), "w"),
        ];
        let p = program(&rules);
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(run(&p, TYPE_CHAR, ACC_READ, 1, 3), 1);
        // The deny of w matches a write only; read+write falls to the allow.
        assert_eq!(run(&p, TYPE_CHAR, ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, TYPE_CHAR, rw, 136, 7), 1);
        assert_eq!(run(&p, TYPE_CHAR, ACC_MKNOD, 136, 7), 0);
        assert_eq!(run(&p, TYPE_BLOCK, ACC_READ, 1, 3), 0);
        assert_eq!(run(&p, TYPE_CHAR, ACC_READ, 1, 5), 0);
    }

    #[test]
    fn an_allow_all_after_the_rules_replaces_them() {
        let rules = [
            rule(false, 'c', Some(1), Some(3), "rwm"),
            rule(true, 'a', None, None, "rwm"),
            rule(false, 'b', Some(8), None, "m"),
        ];
        let p = program(&rules);
        assert_eq!(run(&p, TYPE_CHAR, ACC_READ, 1, 3), 1);
        assert_eq!(run(&p, TYPE_BLOCK, ACC_MKNOD, 8, 1), 0);
        assert_eq!(run(&p, TYPE_BLOCK, ACC_READ, 8, 1), 1);
        assert_eq!(
            run(
                &[insn(MOV64_K, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)],
                1,
                1,
                0,
                0
            ),
            0
        );
    }
}
