//! Writes the man page, hutch(1), into OUT_DIR from the same two sources
//! the binary is built from: the clap definitions (`src/cli.rs`) and the
//! feature table (`src/feature_table.rs`). `hutch man` prints it.

#[allow(dead_code)]
#[path = "src/cli.rs"]
mod cli;
#[allow(dead_code)]
#[path = "src/feature_table.rs"]
mod feature_table;

use std::fmt::Write;

use clap::CommandFactory;
use feature_table::{Support, TABLE};

fn main() {
    println!("cargo:rerun-if-changed=src/cli.rs");
    println!("cargo:rerun-if-changed=src/feature_table.rs");
    // build-release.sh links in this order: a new one must relink.
    println!("cargo:rerun-if-changed=integration/order/hutch.order");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut cmd = cli::Cli::command();
    std::fs::write(out.join("hutch.1"), render(&cmd)).expect("write the man page");
    // `hutch completion SHELL` prints these; made here, so the binary
    // carries text, not a generator.
    for (shell, file) in [
        (clap_complete::Shell::Bash, "hutch.bash"),
        (clap_complete::Shell::Zsh, "_hutch"),
        (clap_complete::Shell::Fish, "hutch.fish"),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd, "hutch", &mut text);
        std::fs::write(out.join(file), text).expect("write a completion script");
    }
    println!("cargo:rustc-env=HUTCH_COMMIT={}", commit());
}

/// The commit hutch is built from (`--version`), "unknown" outside a git
/// checkout; cargo builds again when HEAD moves.
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    for name in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", name]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &r]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
}

/// Escape text for roff.
fn esc(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn arg_name(a: &clap::Arg) -> String {
    let mut names = Vec::new();
    if let Some(s) = a.get_short() {
        names.push(format!("\\fB\\-{s}\\fR"));
    }
    if let Some(l) = a.get_long() {
        names.push(format!("\\fB\\-\\-{}\\fR", esc(l)));
    }
    let value = a.get_value_names().map(|v| {
        v.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    });
    let takes = a.get_action().takes_values();
    if names.is_empty() {
        return format!("\\fI{}\\fR", esc(&a.get_id().to_string().to_uppercase()));
    }
    let mut s = names.join(", ");
    if takes {
        s.push_str(&format!(
            " \\fI{}\\fR",
            esc(&value.unwrap_or_else(|| a.get_id().to_string().to_uppercase()))
        ));
    }
    s
}

fn options(out: &mut String, cmd: &clap::Command) {
    for a in cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "version")
    {
        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        let default = a
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect::<Vec<_>>();
        let default = if default.is_empty() {
            String::new()
        } else {
            format!(" (default: {})", default.join(" "))
        };
        let _ = writeln!(out, ".TP\n{}\n{}{}", arg_name(a), esc(&help), esc(&default));
    }
}

fn render(cmd: &clap::Command) -> String {
    let mut o = String::new();
    let version = env!("CARGO_PKG_VERSION");
    let _ = writeln!(o, ".TH HUTCH 1 \"\" \"hutch {version}\" \"User Commands\"");
    o.push_str(
        ".SH NAME\nhutch \\- an OCI container runtime any user can run without privileges\n",
    );
    o.push_str(".SH SYNOPSIS\n.B hutch\n[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGS\\fR]\n");
    o.push_str(".SH DESCRIPTION\n");
    o.push_str("hutch runs OCI containers (bundles: a root file system and a \\fIconfig.json\\fR) with runc's command line. ");
    o.push_str("It needs no privileges: for a plain user it always makes a user namespace, mapping container root to the caller ");
    o.push_str("(or, through \\fBnewuidmap\\fR(1), to the caller's subordinate ids). It creates the namespaces, mounts, ");
    o.push_str("\\fBpivot_root\\fR(2) and \\fBexecve\\fR(2) itself, in process.\n.PP\n");
    o.push_str("\\fBcreate\\fR clones the container process into its user, pid, network, uts, ipc and cgroup namespaces; it waits. ");
    o.push_str("Its pid goes to \\fB\\-\\-pid\\-file\\fR; it inherits \\fBcreate\\fR's standard input, output and error, ");
    o.push_str("and its exit status is the program's. \\fBstart\\fR makes it set up its mount namespace and mounts, pivot into the root and ");
    o.push_str("execute the program, and returns once the program runs or with the error of the step that failed.\n");
    o.push_str(".SH GLOBAL OPTIONS\n");
    options(&mut o, cmd);
    o.push_str(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let usage = sub
            .clone()
            .bin_name(format!("hutch {}", sub.get_name()))
            .render_usage()
            .to_string();
        let usage = usage.trim_start_matches("Usage: ");
        let _ = writeln!(
            o,
            ".SS {}\n.B {}\n.PP\n{}",
            sub.get_name(),
            esc(usage),
            esc(&sub.get_about().map(|a| a.to_string()).unwrap_or_default())
        );
        options(&mut o, sub);
    }
    o.push_str(
        ".SH OCI FEATURES\nEvery field of the OCI runtime specification is in one of these lists; ",
    );
    o.push_str("the lists are generated from the table hutch decides with, and \\fBhutch features\\fR prints the same in the ");
    o.push_str("runtime-spec format.\n");
    for (title, support) in [
        ("Works", Support::Works),
        ("Unsupported features that are an error", Support::Error),
        (
            "Unsupported features that are ignored (with a warning)",
            Support::Ignored,
        ),
    ] {
        let _ = writeln!(o, ".SS {title}");
        for f in TABLE.iter().filter(|f| f.support == support) {
            let _ = writeln!(o, ".TP\n\\fB{}\\fR\n{}", esc(f.key), esc(f.note));
        }
    }
    o.push_str(".SH FILES\n.TP\n\\fI/run/hutch\\fR\nstate directory of root\n.TP\n\\fI$XDG_RUNTIME_DIR/hutch\\fR\n");
    o.push_str(
        "state directory of anyone else (\\fI/tmp/hutch\\-UID\\fR when the variable is unset)\n",
    );
    o.push_str(".SH EXIT STATUS\n0 on success; 1 on an error, which is one line on standard error; 2 for a usage error. ");
    o.push_str("\\fBrun\\fR exits with the program's status, or 128+N when a signal N ended it.\n");
    o.push_str(".SH SEE ALSO\n\\fBrunc\\fR(8), \\fBcrun\\fR(1), \\fBbuildah\\fR(1), \\fBnewuidmap\\fR(1), \\fBuser_namespaces\\fR(7)\n");
    o
}
