//! Signal names and numbers on the command line: `KILL`, `SIGKILL`, `kill`
//! and `9` all name SIGKILL, as runc accepts them.

use std::str::FromStr;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};

/// Parse a signal given as a name (with or without `SIG`, any case) or a
/// number.
pub fn parse(text: &str) -> Result<Signal> {
    let bad = || Error::Usage(format!("unknown signal `{}`", text.escape_debug()));
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("KILL", Some(Signal::SIGKILL))]
    #[case("SIGKILL", Some(Signal::SIGKILL))]
    #[case("kill", Some(Signal::SIGKILL))]
    #[case("9", Some(Signal::SIGKILL))]
    #[case("15", Some(Signal::SIGTERM))]
    #[case("TERM", Some(Signal::SIGTERM))]
    #[case("SIGUSR1", Some(Signal::SIGUSR1))]
    #[case("0", None)]
    #[case("99", None)]
    #[case("SIGFOO", None)]
    #[case("", None)]
    #[case("-9", None)]
    fn signals(#[case] text: &str, #[case] want: Option<Signal>) {
        assert_eq!(parse(text).ok(), want, "{text}");
    }
}
