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
