//! Logs go to stderr through tracing, each line redacted. Lines start with the level, so nothing we log can
//! begin with `::` and be taken by the runner for a workflow command.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::actions::{defuse, one_line};
use crate::secret::redact;

/// Installs the subscriber. The level comes from `SUPANEON_LOG`; without it, `debug` when the runner's debug
/// logging is on (`RUNNER_DEBUG=1`, a re-run with debug logging), else `info`.
pub fn init(on_actions: bool) {
    let fallback = if std::env::var("RUNNER_DEBUG").is_ok_and(|v| v == "1") {
        "debug"
    } else {
        "info"
    };
    let filter =
        EnvFilter::try_from_env("SUPANEON_LOG").unwrap_or_else(|_| EnvFilter::new(fallback));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_target(false)
        .with_ansi(false);
    // The runner timestamps every line itself.
    let _ = if on_actions {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}

/// A writer that redacts each formatted event before it reaches stderr.
pub struct RedactingStderr;

pub struct RedactingWriter {
    buf: Vec<u8>,
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter { buf: Vec::new() }
    }
}

impl Write for RedactingWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        // One event is formatted into one writer, so redaction sees whole lines. An event is one line: a
        // line break or control character inside it came from a value (a name, a server message) and is
        // escaped, so it cannot start a line of its own.
        let text = redact(&String::from_utf8_lossy(&self.buf));
        let body = text.strip_suffix('\n').unwrap_or(&text);
        let line = format!("{}\n", defuse(&one_line(body)));
        let _ = io::stderr().write_all(line.as_bytes());
    }
}
