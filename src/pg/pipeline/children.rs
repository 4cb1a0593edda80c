//! The children: pg_dump's and pg_restore's argv and libpq settings, starting and stopping them, and their
//! stderr, drained from the start and relayed prefixed, redacted and without SQL.

use super::*;

/// Quotes one identifier for pg_dump's pattern syntax, so dots, capitals and wildcards are literal.
pub(super) fn quote_ident_pattern(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.table` → `"schema"."table"`; `table` → `"table"`.
pub(super) fn table_pattern(name: &str) -> String {
    match name.split_once('.') {
        Some((schema, table)) => format!(
            "{}.{}",
            quote_ident_pattern(schema),
            quote_ident_pattern(table)
        ),
        None => quote_ident_pattern(name),
    }
}

/// pg_dump's argv: only flags and object patterns, never a connection detail.
pub fn dump_args(opts: &DumpOptions, part: Part) -> Vec<String> {
    let sections: &[&str] = match part {
        Part::PreDataAndData => &["--section=pre-data", "--section=data"],
        Part::Schema => &["--section=pre-data", "--section=post-data"],
    };
    let mut args: Vec<String> = [
        "--format=custom",
        // The pipe is local and both network legs carry uncompressed COPY anyway: compression would
        // only burn CPU (reference/peers-and-performance.md §2.3).
        "--compress=0",
        "--no-owner",
        "--no-publications",
        "--no-subscriptions",
        // Supabase labels columns for pgsodium, which the target does not have.
        "--no-security-labels",
    ]
    .into_iter()
    .chain(sections.iter().copied())
    .map(String::from)
    .collect();
    if part == Part::PreDataAndData {
        // The stream's restore skips privileges anyway (`privileges` restores them from the schema
        // archive, one statement at a time).
        args.push("--no-privileges".into());
        // Under --schema pg_dump leaves large objects out unless asked (`-b`, spelt the same by 15 and
        // 17). Only the stream carries them: the schema archive is restored for post-data alone.
        args.push("-b".into());
    }
    if let Some(snapshot) = &opts.snapshot {
        args.push(format!("--snapshot={snapshot}"));
    }
    for schema in &opts.schemas {
        args.push(format!("--schema={}", quote_ident_pattern(schema)));
    }
    for table in &opts.exclude_tables {
        args.push(format!("--exclude-table={}", table_pattern(table)));
    }
    for table in &opts.exclude_table_data {
        args.push(format!("--exclude-table-data={}", table_pattern(table)));
    }
    args
}

/// pg_restore's argv, without the connection ([`child_connection`] adds it). `--verbose` names the
/// object each error belongs to.
pub fn restore_args() -> Vec<String> {
    vec![
        "--verbose".into(),
        "--no-owner".into(),
        "--no-privileges".into(),
        "--no-tablespaces".into(),
    ]
}

/// How a child connects: `--dbname` with a conninfo that holds the database name and the settings libpq
/// reads only from a conninfo (nothing secret; a name containing `=` is not taken for a connection
/// string), and the libpq environment with the password. Refused when the connection must be limited
/// to SCRAM and the child's libpq cannot enforce `require_auth`.
pub fn child_connection(
    tools: &PgTools,
    spec: &ConnSpec,
    application_name: &str,
) -> Result<(String, Vec<(String, String)>), PipelineError> {
    if spec.restricts_auth() && !tools.libpq_require_auth {
        return Err(PipelineError::AuthUnenforceable {
            target: spec.display(),
            tool: tools.pg_dump.display().to_string(),
        });
    }
    Ok((
        format!("--dbname={}", spec.child_conninfo()),
        spec.child_env(application_name),
    ))
}

pub(super) fn spawn(
    tool: &'static str,
    program: &Path,
    args: &[String],
    env: Vec<(String, String)>,
    stdin: Stdio,
    stdout: Stdio,
) -> Result<Child, PipelineError> {
    Command::new(program)
        .args(args)
        .env_clear()
        .env("LC_ALL", "C")
        .envs(env)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| PipelineError::Spawn {
            tool,
            path: program.display().to_string(),
            source,
        })
}

pub(super) async fn kill(child: &mut Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

pub(super) async fn cancel_both(dump: &mut Child, restore: &mut Child) -> PipelineError {
    kill(dump).await;
    kill(restore).await;
    tracing::warn!("dump → restore cancelled; pg_dump and pg_restore stopped");
    PipelineError::Cancelled
}

/// Waits for a child that should exit by itself; `None` if cancelled meanwhile (then it is killed).
pub(super) async fn wait_or_kill(
    child: &mut Child,
    cancel: &mut CancelSignal,
) -> Option<ExitStatus> {
    tokio::select! {
        st = child.wait() => st.ok(),
        _ = cancelled(cancel) => { kill(child).await; None }
    }
}

/// What a child's stderr told us.
#[derive(Debug, Default)]
pub(super) struct StderrSummary {
    pub(super) lines: usize,
    /// The last relayed (redacted, SQL-free) lines.
    pub(super) tail: Vec<String>,
    /// pg_restore only: its errors, classified.
    pub(super) outcome: Option<RestoreOutcome>,
}

/// Relays a child's stderr (see the module docs). With `loaded`, each table whose rows pg_restore has
/// finished is named there (`schema.name`): the one before each `processing data for table` line.
pub(super) fn drain_stderr(
    tool: &'static str,
    stderr: ChildStderr,
    mut parser: Option<RestoreErrorParser>,
    loaded: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> impl std::future::Future<Output = StderrSummary> {
    let handle = tokio::spawn(async move {
        let mut loading: Option<String> = None;
        let mut reader = BufReader::new(stderr);
        let mut filter = LineFilter::new(tool);
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        let mut lines = 0;
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&raw);
            let line = text.trim_end_matches(['\n', '\r']);
            lines += 1;
            if let Some(loaded) = &loaded {
                if let Some(table) = line.strip_prefix("pg_restore: processing data for table \"") {
                    if let Some(done) = loading.replace(table.trim_end_matches('"').to_string()) {
                        let _ = loaded.send(done);
                    }
                }
            }
            let benign = parser.as_mut().and_then(|p| p.push_line(line));
            if let Some((mut level, mut shown)) = filter.relay(line) {
                // Expected errors (allow-list) should not read as a problem in the job log.
                let all_benign_so_far = parser.as_ref().is_some_and(|p| !p.has_fatal());
                if benign == Some(true) {
                    level = Level::Info;
                    shown.push_str(" (expected; ignored)");
                } else if all_benign_so_far && line.contains("errors ignored on restore") {
                    level = Level::Info;
                }
                match level {
                    Level::Debug => tracing::debug!("{shown}"),
                    Level::Info => tracing::info!("{shown}"),
                    Level::Warn => tracing::warn!("{shown}"),
                }
                if level != Level::Debug {
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(shown);
                }
            }
        }
        StderrSummary {
            lines,
            tail: tail.into(),
            outcome: parser.map(RestoreErrorParser::finish),
        }
    });
    async move { handle.await.unwrap_or_default() }
}

/// Decides which stderr lines are relayed, at which level, and how they read.
pub(super) struct LineFilter {
    tool: &'static str,
    prefix: String,
    /// Inside a `Command was:` block: every line until the next tool line is SQL.
    in_sql: bool,
}

impl LineFilter {
    pub(super) fn new(tool: &'static str) -> Self {
        LineFilter {
            tool,
            prefix: format!("{tool}: "),
            in_sql: false,
        }
    }

    pub(super) fn relay(&mut self, line: &str) -> Option<(Level, String)> {
        if let Some(rest) = line.strip_prefix(&self.prefix) {
            self.in_sql = false;
            if rest.contains("Command was:") || rest.contains("Query was:") {
                self.in_sql = true;
                return None;
            }
            let level = if rest.starts_with("error:")
                || rest.starts_with("warning:")
                || rest.starts_with("detail:")
                || rest.starts_with("hint:")
            {
                Level::Warn
            } else if rest.starts_with("creating ")
                || rest.starts_with("processing ")
                || rest.starts_with("launching item ")
                || rest.starts_with("finished item ")
                || rest.starts_with("entering main parallel loop")
                || rest.starts_with("finished main parallel loop")
                || rest.starts_with("executing ")
                || rest.starts_with("connecting ")
                || rest.starts_with("from TOC entry")
                || rest.starts_with("while ")
            {
                Level::Debug
            } else {
                Level::Info
            };
            return Some((level, redact(line)));
        }
        if line.starts_with("Command was:") {
            self.in_sql = true;
            return None;
        }
        if !self.in_sql && line.starts_with("HINT:") {
            return Some((Level::Warn, redact(&format!("{}: {line}", self.tool))));
        }
        // LINE n: / DETAIL: (may quote row values) / SQL continuation: dropped.
        None
    }
}
