//! GitHub Actions I/O: masks, outputs, the step summary, groups and annotations — over `impl Write`, so
//! tests capture exactly what the runner would see. Outside Actions the same calls print plain text.
//!
//! Rules from the runner's source (see the style study §2.4): workflow commands are parsed from stdout and
//! stderr; data escapes `%`, CR and LF; properties also `:` and `,`; outputs use the heredoc form with a
//! delimiter that the value must not contain; summaries over 1 MiB are dropped by the runner.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::secret::redact;

/// GitHub drops a step summary larger than this.
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

/// Escapes a workflow command's data part; other control characters are shown as escapes.
pub fn escape_data(s: &str) -> String {
    let escaped = s
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    one_line(&escaped)
}

/// Whether `line` is a workflow command of the kinds supaneon-sync writes (the payloads of injection
/// attempts are not: they start a line only if something failed to escape them).
pub fn is_our_command(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("::") else {
        return false;
    };
    let name = rest.split([' ', ':']).next().unwrap_or("");
    matches!(
        name,
        "add-mask" | "group" | "endgroup" | "warning" | "error" | "notice" | "debug"
    )
}

/// One line of text: CR, LF and every other control character (and Unicode's line and paragraph
/// separators) shown as an escape, so a name or a server message can never start a line of its own.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push(' '),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// A line that cannot be taken for a workflow command: the runner parses `::cmd::` (and the older
/// `##[cmd]`) at the start of any stdout or stderr line, so such a line gets a visible prefix.
pub fn defuse(line: &str) -> String {
    let t = line.trim_start();
    if t.starts_with("::") || t.starts_with("##[") {
        format!("> {line}")
    } else {
        line.to_string()
    }
}

/// Text of several lines (a table, a JSON document, an error report) made safe to print: each line
/// loses its control characters and is defused.
pub fn safe_lines(text: &str) -> String {
    text.split('\n')
        .map(|l| defuse(&one_line(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Escapes a workflow command's property value.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Where the run tells the user things. Cheap to clone; all clones write to the same sink.
#[derive(Clone)]
pub struct Actions {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    out: Box<dyn Write + Send>,
    /// Where [`Actions::document`] writes (stdout) when everything else goes to `out` (stderr).
    document: Option<Box<dyn Write + Send>>,
    on_actions: bool,
    output_file: Option<PathBuf>,
    summary_file: Option<PathBuf>,
    summary_written: usize,
}

impl Actions {
    /// `on_actions` chooses workflow commands (true) or plain text; `output_file` and `summary_file` are
    /// `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY` when set.
    pub fn new(
        out: Box<dyn Write + Send>,
        on_actions: bool,
        output_file: Option<PathBuf>,
        summary_file: Option<PathBuf>,
    ) -> Self {
        Actions {
            inner: Arc::new(Mutex::new(Inner {
                out,
                document: None,
                on_actions,
                output_file,
                summary_file,
                summary_written: 0,
            })),
        }
    }

    /// From the process environment, writing to stdout.
    pub fn from_env() -> Self {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Actions::new(
            Box::new(io::stdout()),
            std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
            path("GITHUB_OUTPUT"),
            path("GITHUB_STEP_SUMMARY"),
        )
    }

    /// For a run whose stdout is one document (`list --json`): every line (masks, logs, annotations) goes to
    /// stderr, where the runner reads workflow commands too, and only [`Actions::document`] writes to stdout.
    pub fn with_document_stdout(self) -> Self {
        {
            let mut inner = self.lock();
            let stdout = std::mem::replace(&mut inner.out, Box::new(io::stderr()));
            inner.document = Some(stdout);
        }
        self
    }

    /// Writes the run's one document (e.g. JSON) to stdout, as is.
    pub fn document(&self, text: &str) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let out = inner.document.as_mut().unwrap_or(&mut inner.out);
        let _ = writeln!(out, "{}", redact(text));
        let _ = out.flush();
    }

    /// Writes a secret itself, as the run's document: failover's connection URI, the one value a run exists
    /// to hand over. Under Actions the runner masks it in the log (it was registered, hence masked, when
    /// received); outside, it is the only line on stdout.
    pub fn reveal_secret(&self, secret: &crate::secret::Secret) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let out = inner.document.as_mut().unwrap_or(&mut inner.out);
        let _ = writeln!(out, "{}", one_line(secret.expose()));
        let _ = out.flush();
    }

    /// An output holding a secret on purpose (failover's `database-url`): GitHub keeps it masked in the log
    /// and usable by later steps of the job.
    pub fn set_secret_output(&self, name: &str, secret: &crate::secret::Secret) -> io::Result<()> {
        let file = self.lock().output_file.clone();
        let Some(file) = file else {
            return Ok(());
        };
        let value = one_line(secret.expose());
        let delimiter = format!("ghadelimiter_{:032x}", rand::random::<u128>());
        let mut f = OpenOptions::new().append(true).create(true).open(file)?;
        write!(f, "{name}<<{delimiter}\n{value}\n{delimiter}\n")
    }

    pub fn on_actions(&self) -> bool {
        self.lock().on_actions
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_line(&self, line: &str) {
        let mut inner = self.lock();
        // A broken stdout must not fail a backup; there is nowhere left to report it.
        let _ = writeln!(inner.out, "{line}");
        let _ = inner.out.flush();
    }

    /// `::add-mask::` for one secret form. Whitespace-only values are ignored by the runner, so skip them.
    /// Not redacted (it is the mask itself); only [`crate::secret`] calls this.
    pub fn mask(&self, value: &str) {
        if !self.on_actions() {
            return;
        }
        for line in value.lines().filter(|l| !l.trim().is_empty()) {
            self.write_line(&format!("::add-mask::{}", escape_data(line)));
        }
    }

    /// Text for the user (stdout), redacted; one line per `\n` in it (tables, JSON), none of which can be
    /// taken for a workflow command. Values inside a line should be [`one_line`]d by the caller.
    pub fn info(&self, message: &str) {
        self.write_line(&safe_lines(&redact(message)));
    }

    pub fn warning(&self, message: &str) {
        self.annotation("warning", None, message);
    }

    pub fn error(&self, title: Option<&str>, message: &str) {
        self.annotation("error", title, message);
    }

    fn annotation(&self, level: &str, title: Option<&str>, message: &str) {
        let message = redact(message);
        if self.on_actions() {
            let props = title
                .map(|t| format!(" title={}", escape_property(&redact(t))))
                .unwrap_or_default();
            self.write_line(&format!("::{level}{props}::{}", escape_data(&message)));
        } else {
            let prefix = title.map(|t| format!("{t}: ")).unwrap_or_default();
            self.write_line(&format!(
                "{level}: {}",
                one_line(&format!("{prefix}{message}"))
            ));
        }
    }

    /// Opens a group; it is closed when the guard drops, so an early return cannot leave it open.
    pub fn group(&self, name: &str) -> GroupGuard {
        if self.on_actions() {
            self.write_line(&format!("::group::{}", escape_data(&redact(name))));
        } else {
            self.write_line(&format!("== {} ==", one_line(&redact(name))));
        }
        GroupGuard {
            actions: self.clone(),
        }
    }

    /// Appends one output to `$GITHUB_OUTPUT` (heredoc form); without that file, outputs go nowhere (never
    /// to stdout, which may carry a document).
    pub fn set_output(&self, name: &str, value: &str) -> io::Result<()> {
        let value = redact(value);
        let file = self.lock().output_file.clone();
        let Some(file) = file else {
            return Ok(());
        };
        let delimiter = format!("ghadelimiter_{:032x}", rand::random::<u128>());
        if name.contains(&delimiter) || value.contains(&delimiter) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("output {name} contains its own delimiter; refusing to write it"),
            ));
        }
        let mut f = OpenOptions::new().append(true).create(true).open(file)?;
        write!(f, "{name}<<{delimiter}\n{value}\n{delimiter}\n")
    }

    /// Appends Markdown to the step summary, refusing to grow it past GitHub's limit (a summary over the limit
    /// would be dropped whole). Without `$GITHUB_STEP_SUMMARY` it goes nowhere (the lines printed say it all).
    pub fn append_summary(&self, markdown: &str) -> io::Result<()> {
        let markdown = redact(markdown);
        let mut inner = self.lock();
        let Some(file) = inner.summary_file.clone() else {
            return Ok(());
        };
        let existing = std::fs::metadata(&file)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        let used = existing.max(inner.summary_written);
        let text = if used + markdown.len() > SUMMARY_LIMIT {
            let room = SUMMARY_LIMIT.saturating_sub(used).saturating_sub(200);
            let mut cut = room.min(markdown.len());
            while !markdown.is_char_boundary(cut) {
                cut -= 1;
            }
            format!(
                "{}\n\n_(summary truncated: GitHub limits a step summary to 1 MiB)_\n",
                &markdown[..cut]
            )
        } else {
            markdown
        };
        let mut f = OpenOptions::new().append(true).create(true).open(file)?;
        f.write_all(text.as_bytes())?;
        inner.summary_written = used + text.len();
        Ok(())
    }
}

pub struct GroupGuard {
    actions: Actions,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.actions.on_actions() {
            self.actions.write_line("::endgroup::");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn escaping_tables() {
        assert_eq!(escape_data("50%\r\nx:y,z"), "50%25%0D%0Ax:y,z");
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
    }

    #[test]
    fn no_printed_line_can_be_a_workflow_command() {
        let evil = "x\n::warning title=pwn::fake\r\n::set-output name=backup-branch::evil\u{7}";
        assert_eq!(
            one_line(evil),
            "x\\n::warning title=pwn::fake\\r\\n::set-output name=backup-branch::evil\\u{7}"
        );
        for on_actions in [true, false] {
            let buf = Buf::default();
            let a = Actions::new(Box::new(buf.clone()), on_actions, None, None);
            a.info(&format!("branch {evil}"));
            a.info(evil);
            a.info("  ::stop-commands::tok\n##[warning]old");
            a.warning(evil);
            a.error(Some(evil), evil);
            drop(a.group(evil));
            a.set_output("result", evil).unwrap();
            a.append_summary(evil).unwrap();
            for line in buf.text().lines() {
                let t = line.trim_start();
                if t.starts_with("::") {
                    assert!(is_our_command(t), "{line}\n{}", buf.text());
                }
                assert!(!t.starts_with("::warning title=pwn"), "{line}");
                assert!(!t.starts_with("##["), "{line}");
                assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
            }
        }
    }

    #[test]
    fn groups_close_on_early_return() {
        let buf = Buf::default();
        let a = Actions::new(Box::new(buf.clone()), true, None, None);
        let early = || -> Result<(), ()> {
            let _g = a.group("phase: dump");
            Err(())
        };
        let _ = early();
        assert_eq!(buf.text(), "::group::phase: dump\n::endgroup::\n");
    }

    #[test]
    fn outputs_use_heredoc_and_summary_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let sum = dir.path().join("sum");
        let a = Actions::new(
            Box::new(Buf::default()),
            true,
            Some(out.clone()),
            Some(sum.clone()),
        );
        a.set_output("backup-branch", "backup-20260101T000000Z\nsecond line")
            .unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("backup-branch<<ghadelimiter_"));
        assert_eq!(lines[1], "backup-20260101T000000Z");
        assert_eq!(lines[3], lines[0].trim_start_matches("backup-branch<<"));

        let big = "x".repeat(700 * 1024);
        a.append_summary(&big).unwrap();
        a.append_summary(&big).unwrap();
        let len = std::fs::metadata(&sum).unwrap().len() as usize;
        assert!(len <= SUMMARY_LIMIT, "{len}");
        assert!(std::fs::read_to_string(&sum)
            .unwrap()
            .contains("summary truncated"));
    }

    #[test]
    fn annotations_are_escaped_and_plain_outside_actions() {
        let buf = Buf::default();
        let a = Actions::new(Box::new(buf.clone()), true, None, None);
        a.error(Some("backup: failed"), "line1\nline2 100%");
        assert_eq!(
            buf.text(),
            "::error title=backup%3A failed::line1%0Aline2 100%25\n"
        );

        let buf = Buf::default();
        let a = Actions::new(Box::new(buf.clone()), false, None, None);
        a.warning("careful");
        a.mask("secret-value");
        let _g = a.group("phase");
        drop(_g);
        assert_eq!(buf.text(), "warning: careful\n== phase ==\n");
    }
}
