//! Logging: to stderr, or to `--log FILE` as text or as runc's JSON lines
//! (`{"level":"error","msg":"…","time":"…"}`), which podman reads.
//! Synchronous, on the calling thread: hutch never starts a thread.

use std::fmt;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::LogFormat;

/// Where log lines go and in which shape.
pub struct Logging {
    /// True when a `--log` file receives the lines (errors are then logged
    /// there too, besides the one line on stderr).
    pub to_file: bool,
}

/// Set up logging: warnings and errors at `verbosity` 0, also the chatter
/// (info) at 1 (ch-run-oci's `-v`), everything from 2 (`--debug`). A
/// `--log` file that cannot be opened falls back to stderr with a
/// warning; logging never makes an operation fail.
pub fn init(file: Option<&Path>, format: LogFormat, verbosity: u8) -> Logging {
    let level = match verbosity {
        0 => Level::WARN,
        1 => Level::INFO,
        _ => Level::DEBUG,
    };
    let opened = file.map(|p| {
        (
            p,
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p),
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false);
    match opened {
        Some((_, Ok(f))) => {
            let f = Arc::new(f);
            let writer = move || FileWriter(Arc::clone(&f));
            let _ = builder
                .event_format(Line { format })
                .with_writer(writer)
                .try_init();
            Logging { to_file: true }
        }
        Some((p, Err(e))) => {
            let _ = builder
                .event_format(Line {
                    format: LogFormat::Text,
                })
                .with_writer(std::io::stderr)
                .try_init();
            tracing::warn!("cannot open log file `{}`: {e}", p.display());
            Logging { to_file: false }
        }
        None => {
            let _ = builder
                .event_format(Line {
                    format: LogFormat::Text,
                })
                .with_writer(std::io::stderr)
                .try_init();
            Logging { to_file: false }
        }
    }
}

struct FileWriter(Arc<File>);

impl std::io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One event as one line.
struct Line {
    format: LogFormat,
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut msg = Message::default();
        event.record(&mut msg);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        match self.format {
            LogFormat::Text => writeln!(w, "hutch: {level}: {}", msg.0),
            LogFormat::Json => {
                let time = crate::state::now();
                let line =
                    serde_json::json!({"level": level, "msg": msg.0, "time": time_rfc3339(time)});
                writeln!(w, "{line}")
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (UTC).
fn time_rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), for 1970 onwards.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(super::time_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::time_rfc3339(1_796_000_000), "2026-11-30T00:53:20Z");
    }
}
