//! The stream: pg_dump's stdout through one buffer into pg_restore's stdin, hashed and counted, watched by
//! the stall watchdog, with each child's failure turned into the pipeline's error.

use super::*;

/// The stream itself; each table whose rows are complete is named on `loaded`.
pub(super) async fn stream(
    tools: &PgTools,
    source: &ConnSpec,
    target: &ConnSpec,
    opts: &DumpOptions,
    loaded: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    mut cancel: CancelSignal,
) -> Result<PipelineReport, PipelineError> {
    if opts.schemas.is_empty() {
        return Err(PipelineError::NoSchemas);
    }
    let started = Instant::now();

    let (restore_db, restore_env) = child_connection(tools, target, "supaneon-sync pg_restore")?;
    let (dump_db, dump_env) = child_connection(tools, source, "supaneon-sync pg_dump")?;
    let mut restore_argv = restore_args();
    restore_argv.push(restore_db);
    let mut restore = spawn(
        "pg_restore",
        &tools.pg_restore,
        &restore_argv,
        restore_env,
        Stdio::piped(),
        Stdio::null(),
    )?;
    let restore_in = restore.stdin.take().expect("stdin is piped");
    let restore_err = drain_stderr(
        "pg_restore",
        restore.stderr.take().expect("stderr is piped"),
        Some(RestoreErrorParser::new()),
        loaded,
    );
    let mut dump_argv = dump_args(opts, Part::PreDataAndData);
    dump_argv.push(dump_db);
    let mut dump = spawn(
        "pg_dump",
        &tools.pg_dump,
        &dump_argv,
        dump_env,
        Stdio::null(),
        Stdio::piped(),
    )?;
    let dump_out = dump.stdout.take().expect("stdout is piped");
    let dump_err = drain_stderr(
        "pg_dump",
        dump.stderr.take().expect("stderr is piped"),
        None,
        None,
    );
    tracing::info!(
        pg_dump_pid = dump.id(),
        pg_restore_pid = restore.id(),
        "dump {} → restore {} started (schemas: {})",
        source.display(),
        target.display(),
        opts.schemas.join(", ")
    );

    let bytes = Arc::new(AtomicU64::new(0));
    let _progress = AbortOnDrop(tokio::spawn(log_progress(bytes.clone(), started)));
    let stall_limit = opts.stall_timeout.unwrap_or(DEFAULT_STALL_TIMEOUT);

    // Phase 1: stream until pg_dump closes its stdout, unless a child fails or we are cancelled.
    // pg_dump's exit is watched too: killed while the relay is blocked on a full pipe, it would
    // otherwise go unnoticed until pg_restore reads again.
    let mut dump_status: Option<ExitStatus> = None;
    let mut restore_status: Option<ExitStatus> = None;
    let relayed = {
        let relay = relay(dump_out, restore_in, bytes.clone());
        tokio::pin!(relay);
        loop {
            tokio::select! {
                r = &mut relay => break Phase1::Relayed(r),
                st = dump.wait(), if dump_status.is_none() => {
                    let st = st.map_err(PipelineError::Relay)?;
                    if !st.success() {
                        break Phase1::DumpFailed(st);
                    }
                    // Exited cleanly: the relay still drains what is buffered.
                    dump_status = Some(st);
                }
                st = restore.wait(), if restore_status.is_none() => {
                    match st {
                        // pg_restore may finish the moment it read the last block, just before
                        // pg_dump closes its end: let the relay see EOF (or EPIPE if data was left).
                        Ok(st) if st.success() => restore_status = Some(st),
                        other => break Phase1::RestoreExited(other),
                    }
                }
                _ = cancelled(&mut cancel) => break Phase1::Cancelled,
                _ = stalled(&bytes, stall_limit) => break Phase1::Stalled,
            }
        }
        // The relay (and with it pg_restore's stdin) is dropped here: pg_restore sees EOF.
    };
    let sha256 = match relayed {
        Phase1::Relayed(Ok(digest)) => digest,
        Phase1::Cancelled => return Err(cancel_both(&mut dump, &mut restore).await),
        Phase1::Stalled => {
            // A stopped child still dies of SIGKILL; its connections close with it.
            kill(&mut dump).await;
            kill(&mut restore).await;
            let relayed = bytes.load(Ordering::Relaxed);
            tracing::warn!(
                "dump → restore moved no byte for {} s; pg_dump and pg_restore were stopped",
                stall_limit.as_secs()
            );
            return Err(PipelineError::Stalled {
                seconds: stall_limit.as_secs(),
                relayed: human_bytes(relayed),
            });
        }
        Phase1::DumpFailed(status) => {
            return Err(dump_failure(status, &mut restore, dump_err.await).await)
        }
        Phase1::Relayed(Err(RelayFailure::Read(e))) => {
            kill(&mut dump).await;
            kill(&mut restore).await;
            return Err(PipelineError::Relay(e));
        }
        Phase1::Relayed(Err(RelayFailure::Write(e))) => {
            // pg_restore stopped reading: it has exited or is about to.
            kill(&mut dump).await;
            let status = wait_or_kill(&mut restore, &mut cancel).await;
            let status = match status {
                Some(s) => s,
                None => return Err(PipelineError::Cancelled),
            };
            return Err(restore_failure(status, restore_err.await, Some(e)));
        }
        Phase1::RestoreExited(status) => {
            kill(&mut dump).await;
            let status = status.map_err(PipelineError::Relay)?;
            return Err(restore_failure(status, restore_err.await, None));
        }
    };

    // Phase 2: pg_dump must finish cleanly, or the archive pg_restore read is incomplete.
    let dump_status = match dump_status {
        Some(status) => status,
        None => tokio::select! {
            st = dump.wait() => st.map_err(PipelineError::Relay)?,
            _ = cancelled(&mut cancel) => return Err(cancel_both(&mut dump, &mut restore).await),
        },
    };
    if !dump_status.success() {
        return Err(dump_failure(dump_status, &mut restore, dump_err.await).await);
    }

    // Phase 3: pg_restore finishes the archive.
    let restore_status = match restore_status {
        Some(status) => status,
        None => tokio::select! {
            st = restore.wait() => st.map_err(PipelineError::Relay)?,
            _ = cancelled(&mut cancel) => return Err(cancel_both(&mut dump, &mut restore).await),
        },
    };
    let dump_summary = dump_err.await;
    let benign = restore_finished(restore_status, restore_err.await)?;

    let report = PipelineReport {
        bytes: bytes.load(Ordering::Relaxed),
        sha256,
        schema_bytes: 0,
        early_built: Vec::new(),
        duration: started.elapsed(),
        benign,
        dump_stderr_lines: dump_summary.lines,
    };
    tracing::info!(
        "data streamed: {} in {:.1} s ({:.1} MB/s), {} benign restore note(s)",
        human_bytes(report.bytes),
        report.duration.as_secs_f64(),
        mb_per_s(report.bytes, report.duration),
        report.benign.len()
    );
    Ok(report)
}

pub(super) enum Phase1 {
    Relayed(Result<String, RelayFailure>),
    DumpFailed(ExitStatus),
    RestoreExited(std::io::Result<ExitStatus>),
    Cancelled,
    Stalled,
}

/// Resolves once `bytes` has not moved for `limit`: the source, the branch or a child stopped answering.
pub(super) async fn stalled(bytes: &AtomicU64, limit: Duration) {
    let check = (limit / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut ticker = tokio::time::interval(check);
    let mut last = bytes.load(Ordering::Relaxed);
    let mut since = Instant::now();
    loop {
        ticker.tick().await;
        let now = bytes.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= limit {
            return;
        }
    }
}

pub(super) enum RelayFailure {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Copies pg_dump's stdout into pg_restore's stdin through one buffer; returns the archive's SHA-256.
pub(super) async fn relay(
    mut from: ChildStdout,
    mut to: ChildStdin,
    bytes: Arc<AtomicU64>,
) -> Result<String, RelayFailure> {
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut hasher = Sha256::new();
    loop {
        let n = from.read(&mut buf).await.map_err(RelayFailure::Read)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n]).await.map_err(RelayFailure::Write)?;
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    to.shutdown().await.map_err(RelayFailure::Write)?;
    Ok(hex::encode(hasher.finalize()))
}

/// pg_dump failed: the archive is incomplete, so pg_restore is stopped whatever it is doing.
pub(super) async fn dump_failure(
    status: ExitStatus,
    restore: &mut Child,
    summary: StderrSummary,
) -> PipelineError {
    kill(restore).await;
    tracing::warn!("pg_dump {status}; pg_restore was stopped");
    PipelineError::Dump {
        status: status.to_string(),
        stderr_tail: summary.tail,
    }
}

/// A pg_restore that ran to its end: its benign notes, or the failure. Exit 1 with only allow-listed
/// errors is success (pg_restore exits 1 whenever it ignored an error).
pub(super) fn restore_finished(
    status: ExitStatus,
    summary: StderrSummary,
) -> Result<Vec<RestoreError>, PipelineError> {
    let outcome = summary.outcome.clone().unwrap_or_default();
    let clean_exit = status.success() || (status.code() == Some(1) && !outcome.benign.is_empty());
    if !clean_exit || !outcome.fatal.is_empty() {
        return Err(restore_failure(status, summary, None));
    }
    Ok(outcome.benign)
}

pub(super) fn restore_failure(
    status: ExitStatus,
    summary: StderrSummary,
    relay_error: Option<std::io::Error>,
) -> PipelineError {
    let outcome = summary.outcome.unwrap_or_default();
    if status.success() && outcome.fatal.is_empty() {
        // pg_restore exited cleanly before reading the whole archive: never a complete restore.
        return PipelineError::Relay(relay_error.unwrap_or_else(|| {
            std::io::Error::other("pg_restore exited before the end of the archive")
        }));
    }
    tracing::warn!(
        "pg_restore {status}: {} error(s) not on the benign list",
        outcome.fatal.len()
    );
    PipelineError::Restore {
        errors: outcome.fatal,
        status: status.to_string(),
        stderr_tail: summary.tail,
    }
}

pub(super) struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) async fn log_progress(bytes: Arc<AtomicU64>, started: Instant) {
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    ticker.tick().await; // the first tick is immediate
    loop {
        ticker.tick().await;
        let done = bytes.load(Ordering::Relaxed);
        let elapsed = started.elapsed();
        tracing::info!(
            bytes = done,
            "dump → restore: {} relayed in {:.0} s ({:.1} MB/s)",
            human_bytes(done),
            elapsed.as_secs_f64(),
            mb_per_s(done, elapsed)
        );
    }
}

pub(super) fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    bytes as f64 / 1_000_000.0 / secs
}

pub(super) fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / (1u64 << 10) as f64),
        b => format!("{b} B"),
    }
}
