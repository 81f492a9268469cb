//! The man page and `hutch features` come from the feature table and the
//! command line; these tests make sure nothing is left out of either.

mod common;

use common::*;

fn hutch(args: &[&str]) -> std::process::Output {
    std::process::Command::new(hutch_bin())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_man_page_lists_every_feature_and_command() {
    let out = hutch(&["man"]);
    assert_ok(&out);
    let page = text(&out.stdout).replace("\\-", "-");
    for f in hutch::feature_table::TABLE {
        assert!(
            page.contains(&format!(
                "\\fB{}\\fR\n{}",
                f.key,
                f.note.replace("\\-", "-")
            )),
            "man page lacks {}",
            f.key
        );
    }
    for cmd in [
        "create", "start", "state", "kill", "delete", "run", "list", "spec", "features", "ps",
        "pause", "resume", "update", "events",
    ] {
        assert!(
            page.contains(&format!(".SS {cmd}\n")),
            "man page lacks command {cmd}"
        );
        assert_ok(&hutch(&[cmd, "--help"]));
    }
    for section in [
        "Works",
        "Unsupported features that are an error",
        "Unsupported features that are ignored",
    ] {
        assert!(page.contains(section), "man page lacks section {section}");
    }
}

#[test]
fn features_follow_the_table() {
    let out = hutch(&["features"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ociVersionMin"], "1.0.0");
    assert_eq!(v["ociVersionMax"], "1.3.0");
    let works = |key: &str| {
        hutch::features::lookup(key).unwrap().support == hutch::feature_table::Support::Works
    };
    assert_eq!(v["linux"]["seccomp"]["enabled"], works("linux.seccomp"));
    assert_eq!(v["hooks"].as_array().unwrap().is_empty(), !works("hooks"));
    assert!(v["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == "rbind"));
}

#[test]
fn version_names_the_commit_the_spec_and_libseccomp() {
    let out = hutch(&["--version"]);
    assert_ok(&out);
    let shown = text(&out.stdout);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(format!("hutch version {}", env!("CARGO_PKG_VERSION")).as_str()),
        "{shown}"
    );
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("--version lacks `{name}:`: {shown}"))
            .to_string()
    };
    let commit = field("commit");
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "commit `{commit}`"
    );
    assert_eq!(field("spec"), hutch::features::OCI_VERSION_MAX);
    let seccomp = field("libseccomp");
    let parts: Vec<&str> = seccomp.split('.').collect();
    assert!(
        parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "libseccomp `{seccomp}`"
    );
    // runc's and crun's short flags too.
    assert_eq!(text(&hutch(&["-v"]).stdout), shown);
    assert_eq!(text(&hutch(&["-V"]).stdout), shown);
}

#[test]
fn completion_scripts_know_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = hutch(&["completion", shell]);
        assert_ok(&out);
        let script = text(&out.stdout);
        for cmd in [
            "create", "start", "state", "kill", "delete", "run", "exec", "features",
        ] {
            assert!(script.contains(cmd), "{shell} completion lacks {cmd}");
        }
    }
    let out = hutch(&["completion", "tcsh"]);
    assert!(!out.status.success());
}

/// The binary the ordinary cargo build makes is static (.cargo/config.toml):
/// its ELF program headers have no PT_INTERP (no dynamic loader).
#[test]
fn the_cargo_built_binary_is_static() {
    let elf = std::fs::read(hutch_bin()).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 2, "not a 64-bit ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    assert!(phnum > 0);
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
        assert_ne!(
            p_type,
            3,
            "{} asks for a dynamic loader (PT_INTERP)",
            hutch_bin().display()
        );
    }
}

/// The fuzz corpora in git stay minimised and small (fuzz/README.md): one
/// directory per target, each within the limits.
#[test]
fn the_fuzz_corpus_stays_small() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for target in ["config_to_plan", "squashfs_image"] {
        let dir = corpus.join(target);
        let (mut files, mut bytes) = (0, 0);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let len = entry.unwrap().metadata().unwrap().len();
            assert!(len <= 4096, "a corpus input over 4 KiB in {target}");
            files += 1;
            bytes += len;
        }
        assert!(files > 0, "no corpus in {}", dir.display());
        assert!(
            bytes <= 1 << 20,
            "the {target} corpus holds {bytes} bytes, over 1 MiB"
        );
    }
}
