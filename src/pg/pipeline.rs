//! The hot path: `pg_dump -Fc -Z0 | relay | pg_restore`, with no file on disk.
//!
//! A restore runs in three steps ([`dump_and_restore`] chains them; backup-run interleaves its own
//! work with the last one):
//!
//! 1. [`dump_schema`]: the definitions alone (pre-data and post-data sections, no rows) go into an
//!    anonymous in-memory file. It is small (a few KB to a few MB) and never touches the disk.
//! 2. [`stream_data`]: pre-data and data are streamed through the relay into a serial pg_restore.
//!    Meanwhile the large plain indexes of each table whose rows are in are built from the schema
//!    archive, one at a time ([`EarlyIndexes`]): an index build then overlaps the later tables' rows
//!    instead of waiting for all of them.
//! 3. [`restore_post_data`]: indexes, constraints, triggers, policies and materialized-view data are
//!    restored from the in-memory schema archive with `pg_restore --jobs`, which needs a seekable
//!    archive and so is impossible from the stream. Index builds are most of a restore's time after the
//!    rows are in, and a serial restore builds them one at a time. The archive holds the tables'
//!    definitions too, so pg_restore sees which items lock the same table and does not run them together.
//!
//! The relay reads pg_dump's stdout in 256 KiB chunks into one buffer, hashes and counts the bytes, and
//! writes them to pg_restore's stdin, so memory stays flat whatever the database size. Both stderr
//! streams are drained concurrently from the start (a full stderr pipe would otherwise stall a child)
//! and relayed line by line to tracing, prefixed with the tool name (so no line can start with `::` and
//! issue a GitHub workflow command), redacted, and without SQL text.
//!
//! Children get a cleared environment: `LC_ALL=C` (stable, English messages) plus the libpq variables
//! of their connection (the password travels in `PGPASSWORD`; argv holds only flags and object
//! patterns). Both are `kill_on_drop`, so dropping the future kills them too.
//!
//! Failure handling: if pg_dump fails or is killed, pg_restore is killed (a half archive must never
//! look restored); if pg_restore dies, pg_dump is killed; on cancellation both are killed and waited
//! for. Every error carries the last (redacted, SQL-free) stderr lines of the tool that failed.

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod memfile;
pub mod privileges;

use memfile::{digest, memfd, ListFile};

use crate::pg::conn::ConnSpec;
use crate::pg::restore_errors::{RestoreError, RestoreErrorParser, RestoreOutcome};
use crate::pg::tools::PgTools;
use crate::secret::redact;

/// Size of the single relay buffer.
pub const CHUNK_SIZE: usize = 256 * 1024;
/// How often progress is logged.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// How many stderr lines an error carries.
const TAIL_LINES: usize = 8;
/// pg_restore jobs for the post-data section. Two keep a second index or constraint going next to the
/// longest one without swamping a small Neon compute with connections and parallel sorts.
pub const POST_DATA_JOBS: u32 = 2;

/// Set the sender to `true` to cancel: both children are killed and [`PipelineError::Cancelled`] is
/// returned. A dropped sender means "never cancelled".
pub type CancelSignal = watch::Receiver<bool>;

/// What to dump.
#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    /// Schemas to dump, by exact name (at least one).
    pub schemas: Vec<String>,
    /// Tables to leave out entirely, as `schema.table` (split at the first dot; both parts literal)
    /// or a bare `table` (any schema).
    pub exclude_tables: Vec<String>,
    /// Tables whose definition is kept but whose rows are not, same format.
    pub exclude_table_data: Vec<String>,
    /// A snapshot from `pg_export_snapshot()`, so pg_dump sees what the manifest saw.
    pub snapshot: Option<String>,
    /// The stream fails when it moves no byte for this long ([`DEFAULT_STALL_TIMEOUT`] when `None`).
    pub stall_timeout: Option<Duration>,
}

/// The watchdog's limit unless one is given: a few minutes, as long as pg_dump may fairly wait for a lock.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Which sections of the database one pg_dump writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Definitions and rows, streamed ([`stream_data`]).
    PreDataAndData,
    /// Definitions only, for the parallel post-data restore ([`dump_schema`]).
    Schema,
}

#[derive(Debug, Clone)]
pub struct PipelineReport {
    /// Archive bytes relayed (the streamed pre-data and data archive).
    pub bytes: u64,
    /// SHA-256 of the streamed archive, lowercase hex.
    pub sha256: String,
    /// Bytes of the in-memory schema archive the post-data section was restored from.
    pub schema_bytes: u64,
    /// The data stream's time, plus the post-data restore's once [`PipelineReport::with_post_data`]
    /// added it.
    pub duration: Duration,
    /// Errors pg_restore reported that the allow-list accepts.
    pub benign: Vec<RestoreError>,
    pub dump_stderr_lines: usize,
    /// Source OIDs of the indexes built while the rows streamed; [`restore_post_data`] skips them.
    pub early_built: Vec<u32>,
}

impl PipelineReport {
    /// This report with the post-data restore's archive size, time and notes added.
    pub fn with_post_data(mut self, post: PostDataReport) -> PipelineReport {
        self.schema_bytes = post.schema_bytes;
        self.duration += post.duration;
        self.benign.extend(post.benign);
        self
    }
}

/// The definitions of the dumped objects (pre-data and post-data sections), in an anonymous
/// in-memory file (`memfd_create`): seekable, as a parallel pg_restore needs, and never on disk.
#[derive(Debug)]
pub struct SchemaArchive {
    file: File,
    pub bytes: u64,
    pub sha256: String,
    /// Its table of contents as `pg_restore --list` prints it, one entry per line.
    toc: Vec<String>,
}

/// An index worth building while the rows of other tables still stream: a plain index (no
/// constraint) of a plain table, large on the source. Found by
/// [`crate::pg::inspect::early_indexes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlyIndex {
    /// The index's OID on the source, as the archive's table of contents names it.
    pub oid: u32,
    /// Its table as pg_restore names it while loading it: `schema.name`.
    pub table: String,
}

/// Indexes to build as soon as their table's rows are in, from `schema`.
pub struct EarlyIndexes<'a> {
    pub schema: &'a SchemaArchive,
    /// Largest first: they are built in this order.
    pub indexes: Vec<EarlyIndex>,
}

/// What the post-data restore reports.
#[derive(Debug, Clone)]
pub struct PostDataReport {
    /// Size of the schema archive it was restored from.
    pub schema_bytes: u64,
    pub duration: Duration,
    /// Errors pg_restore reported that the allow-list accepts.
    pub benign: Vec<RestoreError>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("nothing to dump: the schema list is empty")]
    NoSchemas,
    #[error("cannot start {tool} ({path}): {source}")]
    Spawn {
        tool: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("pg_dump failed ({status}); the restore was stopped{}", tail(.stderr_tail))]
    Dump {
        status: String,
        stderr_tail: Vec<String>,
    },
    #[error("pg_restore failed ({status}){}{}", listed(.errors), tail(.stderr_tail))]
    Restore {
        /// The errors that are not on the benign allow-list (may be empty when pg_restore died
        /// without saying why; then the tail tells).
        errors: Vec<RestoreError>,
        status: String,
        stderr_tail: Vec<String>,
    },
    #[error("relaying the archive from pg_dump to pg_restore failed: {0}")]
    Relay(std::io::Error),
    #[error("keeping the schema archive in memory failed: {0}")]
    SchemaArchive(std::io::Error),
    #[error("cancelled: pg_dump and pg_restore were stopped")]
    Cancelled,
    #[error("the dump → restore stream moved no byte for {seconds} s ({relayed} relayed until then); pg_dump and pg_restore were stopped")]
    Stalled { seconds: u64, relayed: String },
    #[error("{target}: the certificate is not verified (sslmode=require), so only SCRAM may carry the password, but the libpq of {tool} is older than 16 and cannot enforce that (require_auth); nothing was started")]
    AuthUnenforceable { target: String, tool: String },
}

impl PipelineError {
    /// What the user can do about it, for the orchestration's `Failure::hint`.
    pub fn hint(&self) -> &'static str {
        match self {
            PipelineError::NoSchemas => "check the schema selection: nothing is left to back up",
            PipelineError::Spawn { .. } => {
                "check that the pg_dump/pg_restore found for the source's major can run here"
            }
            PipelineError::Dump { .. } => {
                "pg_dump could not read the source: check that it is reachable (a paused Supabase project is not) and that the dumping user can read every table of the dumped schemas, or exclude the tables it cannot"
            }
            PipelineError::Restore { .. } => {
                "create on the target what the listed objects need (roles named by policies, extensions, schemas), or exclude those objects"
            }
            PipelineError::Relay(_) => "the archive stream broke; retry, and check disk and memory of the runner",
            PipelineError::SchemaArchive(_) => "the runner could not hold the schema archive in memory (memfd_create on Linux); retry, and check the runner's memory",
            PipelineError::Cancelled => "the run was cancelled; the incomplete branch is left for pruning",
            PipelineError::Stalled { .. } => {
                "the source or the Neon branch stopped answering: check that the Supabase project is up (not paused or overloaded) and that no long lock on its tables holds pg_dump back; raise SUPANEON_STALL_TIMEOUT_SECONDS if a slow link needs longer"
            }
            PipelineError::AuthUnenforceable { .. } => {
                "verify the server's certificate (sslmode=verify-full with sslrootcert=<the server's CA>), or use pg_dump/pg_restore linked with libpq 16 or newer (the supaneon-sync image ships them; set pg-bin-dir)"
            }
        }
    }
}

fn tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    format!("; last messages:\n  {}", lines.join("\n  "))
}

fn listed(errors: &[RestoreError]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    const SHOWN: usize = 10;
    let mut out = if errors.len() == 1 {
        "; 1 error that makes the restore incomplete:".to_string()
    } else {
        format!(
            "; {} errors that make the restore incomplete:",
            errors.len()
        )
    };
    for e in errors.iter().take(SHOWN) {
        out.push_str(&format!("\n  - {e}"));
    }
    if errors.len() > SHOWN {
        out.push_str(&format!("\n  - … and {} more", errors.len() - SHOWN));
    }
    out
}

/// Quotes one identifier for pg_dump's pattern syntax, so dots, capitals and wildcards are literal.
fn quote_ident_pattern(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.table` → `"schema"."table"`; `table` → `"table"`.
fn table_pattern(name: &str) -> String {
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

fn spawn(
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

/// Dumps `opts` from `source` and restores it into `target`: the schema archive, the data stream,
/// then the parallel post-data restore. See the module docs.
pub async fn dump_and_restore(
    tools: &PgTools,
    source: &ConnSpec,
    target: &ConnSpec,
    opts: &DumpOptions,
    cancel: CancelSignal,
) -> Result<PipelineReport, PipelineError> {
    let schema = dump_schema(tools, source, opts, cancel.clone()).await?;
    let streamed = stream_data(tools, source, target, opts, None, None, cancel.clone()).await?;
    let post = restore_post_data(
        tools,
        target,
        &schema,
        POST_DATA_JOBS,
        &streamed.early_built,
        cancel,
    )
    .await?;
    Ok(streamed.with_post_data(post))
}

/// Dumps the definitions of `opts` (pre-data and post-data, no rows) into an in-memory archive.
pub async fn dump_schema(
    tools: &PgTools,
    source: &ConnSpec,
    opts: &DumpOptions,
    mut cancel: CancelSignal,
) -> Result<SchemaArchive, PipelineError> {
    if opts.schemas.is_empty() {
        return Err(PipelineError::NoSchemas);
    }
    let file = memfd("supaneon-sync-schema").map_err(PipelineError::SchemaArchive)?;
    // pg_dump writes straight into the memory file; a seekable output also gets the TOC's offsets.
    let out = file.try_clone().map_err(PipelineError::SchemaArchive)?;
    let (dbname, env) = child_connection(tools, source, "supaneon-sync pg_dump")?;
    let mut args = dump_args(opts, Part::Schema);
    args.push(dbname);
    let mut dump = spawn(
        "pg_dump",
        &tools.pg_dump,
        &args,
        env,
        Stdio::null(),
        Stdio::from(out),
    )?;
    let dump_err = drain_stderr(
        "pg_dump",
        dump.stderr.take().expect("stderr is piped"),
        None,
        None,
    );
    let status = tokio::select! {
        st = dump.wait() => st.map_err(PipelineError::SchemaArchive)?,
        _ = cancelled(&mut cancel) => {
            kill(&mut dump).await;
            return Err(PipelineError::Cancelled);
        }
    };
    let summary = dump_err.await;
    if !status.success() {
        tracing::warn!("pg_dump of the schema {status}");
        return Err(PipelineError::Dump {
            status: status.to_string(),
            stderr_tail: summary.tail,
        });
    }
    let (bytes, sha256) = digest(&file).map_err(PipelineError::SchemaArchive)?;
    let toc = list_toc(tools, &file, &mut cancel).await?;
    tracing::info!(
        bytes,
        entries = toc.len(),
        "schema archive: {} of definitions held in memory",
        human_bytes(bytes)
    );
    Ok(SchemaArchive {
        file,
        bytes,
        sha256,
        toc,
    })
}

/// `pg_restore --list` of the in-memory archive: its entries, without the comment lines.
async fn list_toc(
    tools: &PgTools,
    file: &File,
    cancel: &mut CancelSignal,
) -> Result<Vec<String>, PipelineError> {
    let stdin = file.try_clone().map_err(PipelineError::SchemaArchive)?;
    let mut list = spawn(
        "pg_restore",
        &tools.pg_restore,
        &["--list".to_string(), "/proc/self/fd/0".to_string()],
        Vec::new(),
        Stdio::from(stdin),
        Stdio::piped(),
    )?;
    let mut out = list.stdout.take().expect("stdout is piped");
    let list_err = drain_stderr(
        "pg_restore",
        list.stderr.take().expect("stderr is piped"),
        None,
        None,
    );
    let mut text = String::new();
    let read = async {
        out.read_to_string(&mut text).await?;
        list.wait().await
    };
    let status = tokio::select! {
        st = read => st.map_err(PipelineError::SchemaArchive)?,
        _ = cancelled(cancel) => {
            kill(&mut list).await;
            return Err(PipelineError::Cancelled);
        }
    };
    let summary = list_err.await;
    if !status.success() {
        return Err(PipelineError::Restore {
            errors: Vec::new(),
            status: status.to_string(),
            stderr_tail: summary.tail,
        });
    }
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(String::from)
        .collect())
}

/// The source OID of a plain `INDEX` entry of a `pg_restore --list` line
/// (`3261; 1259 16480 INDEX public t_payload owner`); `None` for every other kind of entry.
fn toc_index_oid(line: &str) -> Option<u32> {
    let (_, rest) = line.split_once("; ")?;
    let mut words = rest.splitn(4, ' ');
    let (_class, oid, desc, more) = (words.next()?, words.next()?, words.next()?, words.next()?);
    // `INDEX ATTACH` (a partition's index joining its parent's) is another kind of entry. A schema
    // named ATTACH reads the same; its indexes are then left to the post-data restore, which is safe.
    let plain = desc == "INDEX" && !more.starts_with("ATTACH ");
    plain.then(|| oid.parse().ok()).flatten()
}

/// Restores the post-data section of `schema` into `target` with `jobs` parallel pg_restore workers,
/// but for the indexes in `skip` (built early, see [`stream_data`]). Run it after [`stream_data`] has
/// loaded the rows.
pub async fn restore_post_data(
    tools: &PgTools,
    target: &ConnSpec,
    schema: &SchemaArchive,
    jobs: u32,
    skip: &[u32],
    cancel: CancelSignal,
) -> Result<PostDataReport, PipelineError> {
    let started = Instant::now();
    let list = if skip.is_empty() {
        None
    } else {
        let kept = schema
            .toc
            .iter()
            .filter(|l| !toc_index_oid(l).is_some_and(|oid| skip.contains(&oid)));
        Some(ListFile::new(kept.map(String::as_str))?)
    };
    tracing::info!(
        pg_restore_jobs = jobs,
        "restoring indexes, constraints, triggers and policies ({jobs} jobs, {} index(es) already built)",
        skip.len()
    );
    let benign = restore_items(tools, target, schema, jobs, list.as_ref(), cancel).await?;
    let report = PostDataReport {
        schema_bytes: schema.bytes,
        duration: started.elapsed(),
        benign,
    };
    tracing::info!(
        "post-data restored in {:.1} s",
        report.duration.as_secs_f64()
    );
    Ok(report)
}

/// One pg_restore of the post-data section of `schema`, or of the entries `list` names.
async fn restore_items(
    tools: &PgTools,
    target: &ConnSpec,
    schema: &SchemaArchive,
    jobs: u32,
    list: Option<&ListFile>,
    mut cancel: CancelSignal,
) -> Result<Vec<RestoreError>, PipelineError> {
    let stdin = schema
        .file
        .try_clone()
        .map_err(PipelineError::SchemaArchive)?;
    let (dbname, env) = child_connection(tools, target, "supaneon-sync pg_restore")?;
    let mut args = restore_args();
    args.push(dbname);
    args.push("--section=post-data".into());
    if jobs > 1 {
        args.push(format!("--jobs={jobs}"));
    }
    if let Some(list) = list {
        args.push(list.arg());
    }
    // pg_restore refuses --jobs with standard input but opens a path, and each worker reopens it:
    // /proc/self/fd/0 is the memory file, seekable, in the leader and every worker alike.
    args.push("/proc/self/fd/0".into());
    let mut restore = spawn(
        "pg_restore",
        &tools.pg_restore,
        &args,
        env,
        Stdio::from(stdin),
        Stdio::null(),
    )?;
    let restore_err = drain_stderr(
        "pg_restore",
        restore.stderr.take().expect("stderr is piped"),
        Some(if jobs > 1 {
            RestoreErrorParser::parallel()
        } else {
            RestoreErrorParser::new()
        }),
        None,
    );
    tracing::debug!(
        pg_restore_pid = restore.id(),
        "post-data pg_restore started"
    );
    let status = tokio::select! {
        st = restore.wait() => st.map_err(PipelineError::Relay)?,
        _ = cancelled(&mut cancel) => {
            kill(&mut restore).await;
            tracing::warn!("post-data restore cancelled; pg_restore stopped");
            return Err(PipelineError::Cancelled);
        }
    };
    restore_finished(status, restore_err.await)
}

/// Adds the early indexes of `table` to `ready` (their rank in `early` and archive entry), keeping
/// the largest (lowest rank) last, where `pop` takes it.
fn enqueue_early<'a>(early: &'a EarlyIndexes<'_>, table: &str, ready: &mut Vec<(usize, &'a str)>) {
    for (rank, index) in early.indexes.iter().enumerate() {
        if index.table != table {
            continue;
        }
        if let Some(line) = early
            .schema
            .toc
            .iter()
            .find(|l| toc_index_oid(l) == Some(index.oid))
        {
            ready.push((rank, line));
        }
    }
    ready.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
}

/// Builds `early` indexes one at a time, largest first, as soon as pg_restore reports (on `loaded`)
/// that their table's rows are in; stops taking new ones once `streamed` is set and returns after
/// the one being built. Returns the OIDs built and pg_restore's benign notes.
async fn build_early(
    tools: &PgTools,
    target: &ConnSpec,
    early: &EarlyIndexes<'_>,
    mut loaded: tokio::sync::mpsc::UnboundedReceiver<String>,
    mut streamed: watch::Receiver<bool>,
    cancel: CancelSignal,
) -> Result<(Vec<u32>, Vec<RestoreError>), PipelineError> {
    let mut ready: Vec<(usize, &str)> = Vec::new();
    let (mut built, mut benign) = (Vec::new(), Vec::new());
    loop {
        while let Ok(table) = loaded.try_recv() {
            enqueue_early(early, &table, &mut ready);
        }
        if *streamed.borrow() {
            break;
        }
        if let Some((rank, line)) = ready.pop() {
            let index = &early.indexes[rank];
            tracing::info!(table = %index.table, "building an index while the rows of other tables stream");
            let list = ListFile::new(std::iter::once(line))?;
            benign.extend(
                restore_items(tools, target, early.schema, 1, Some(&list), cancel.clone()).await?,
            );
            built.push(index.oid);
            continue;
        }
        tokio::select! {
            table = loaded.recv() => match table {
                Some(table) => enqueue_early(early, &table, &mut ready),
                None => break,
            },
            _ = streamed.changed() => break,
        }
    }
    Ok((built, benign))
}

/// Dumps the pre-data and data sections of `opts` from `source` and restores them into `target`,
/// streaming: tables with their rows, but no indexes or constraints yet ([`restore_post_data`]).
///
/// With `early`, its indexes are built from the schema archive while the rows of later tables still
/// stream: an index build uses a core the stream leaves idle, instead of waiting for every table. The
/// report lists them for [`restore_post_data`] to skip. `rows_in` turns true as soon as the stream
/// has succeeded, which may be before the last early index is built.
pub async fn stream_data(
    tools: &PgTools,
    source: &ConnSpec,
    target: &ConnSpec,
    opts: &DumpOptions,
    early: Option<EarlyIndexes<'_>>,
    rows_in: Option<&watch::Sender<bool>>,
    cancel: CancelSignal,
) -> Result<PipelineReport, PipelineError> {
    let signal = |result: Result<PipelineReport, PipelineError>| {
        if let (Ok(_), Some(rows_in)) = (&result, rows_in) {
            let _ = rows_in.send(true);
        }
        result
    };
    let Some(early) = early.filter(|e| !e.indexes.is_empty()) else {
        return signal(stream(tools, source, target, opts, None, cancel).await);
    };
    let (loaded_tx, loaded_rx) = tokio::sync::mpsc::unbounded_channel();
    let (streamed_tx, streamed_rx) = watch::channel(false);
    let streaming = async {
        let result = stream(tools, source, target, opts, Some(loaded_tx), cancel.clone()).await;
        // The builder finishes the index it is on and takes no other.
        let _ = streamed_tx.send(true);
        signal(result)
    };
    let building = build_early(
        tools,
        target,
        &early,
        loaded_rx,
        streamed_rx,
        cancel.clone(),
    );
    // The first failure ends both: the other side's children are killed as it is dropped.
    let (mut report, (built, benign)) = tokio::try_join!(streaming, building)?;
    report.early_built = built;
    report.benign.extend(benign);
    Ok(report)
}

/// The stream itself; each table whose rows are complete is named on `loaded`.
async fn stream(
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

enum Phase1 {
    Relayed(Result<String, RelayFailure>),
    DumpFailed(ExitStatus),
    RestoreExited(std::io::Result<ExitStatus>),
    Cancelled,
    Stalled,
}

/// Resolves once `bytes` has not moved for `limit`: the source, the branch or a child stopped answering.
async fn stalled(bytes: &AtomicU64, limit: Duration) {
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

enum RelayFailure {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Copies pg_dump's stdout into pg_restore's stdin through one buffer; returns the archive's SHA-256.
async fn relay(
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
async fn dump_failure(
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
fn restore_finished(
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

fn restore_failure(
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

/// Resolves when the signal says "cancel"; never, if the sender is gone.
/// Resolves once `cancel` turns true; never, if its sender is gone (nobody can cancel any more).
pub async fn cancelled(cancel: &mut CancelSignal) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn kill(child: &mut Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

async fn cancel_both(dump: &mut Child, restore: &mut Child) -> PipelineError {
    kill(dump).await;
    kill(restore).await;
    tracing::warn!("dump → restore cancelled; pg_dump and pg_restore stopped");
    PipelineError::Cancelled
}

/// Waits for a child that should exit by itself; `None` if cancelled meanwhile (then it is killed).
async fn wait_or_kill(child: &mut Child, cancel: &mut CancelSignal) -> Option<ExitStatus> {
    tokio::select! {
        st = child.wait() => st.ok(),
        _ = cancelled(cancel) => { kill(child).await; None }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn log_progress(bytes: Arc<AtomicU64>, started: Instant) {
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

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    bytes as f64 / 1_000_000.0 / secs
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / (1u64 << 10) as f64),
        b => format!("{b} B"),
    }
}

/// What a child's stderr told us.
#[derive(Debug, Default)]
struct StderrSummary {
    lines: usize,
    /// The last relayed (redacted, SQL-free) lines.
    tail: Vec<String>,
    /// pg_restore only: its errors, classified.
    outcome: Option<RestoreOutcome>,
}

/// Relays a child's stderr (see the module docs). With `loaded`, each table whose rows pg_restore has
/// finished is named there (`schema.name`): the one before each `processing data for table` line.
fn drain_stderr(
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Debug,
    Info,
    Warn,
}

/// Decides which stderr lines are relayed, at which level, and how they read.
struct LineFilter {
    tool: &'static str,
    prefix: String,
    /// Inside a `Command was:` block: every line until the next tool line is SQL.
    in_sql: bool,
}

impl LineFilter {
    fn new(tool: &'static str) -> Self {
        LineFilter {
            tool,
            prefix: format!("{tool}: "),
            in_sql: false,
        }
    }

    fn relay(&mut self, line: &str) -> Option<(Level, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_quote_every_identifier() {
        let opts = DumpOptions {
            schemas: vec!["public".into(), "My.Schema".into(), "we\"ird*".into()],
            exclude_tables: vec!["public.Audit.Log".into(), "bare".into()],
            exclude_table_data: vec!["app_private.big?".into()],
            snapshot: Some("00000003-0000001B-1".into()),
            stall_timeout: None,
        };
        let args = dump_args(&opts, Part::PreDataAndData);
        assert!(args.contains(&"--compress=0".to_string()));
        assert!(args.contains(&"--section=data".to_string()));
        assert!(!args.contains(&"--section=post-data".to_string()));
        let schema = dump_args(&opts, Part::Schema);
        assert!(schema.contains(&"--section=post-data".to_string()));
        assert!(!schema.contains(&"--section=data".to_string()));
        assert!(args.contains(&"--snapshot=00000003-0000001B-1".to_string()));
        assert!(args.contains(&"--schema=\"public\"".to_string()));
        assert!(args.contains(&"--schema=\"My.Schema\"".to_string()));
        assert!(args.contains(&"--schema=\"we\"\"ird*\"".to_string()));
        assert!(args.contains(&"--exclude-table=\"public\".\"Audit.Log\"".to_string()));
        assert!(args.contains(&"--exclude-table=\"bare\"".to_string()));
        assert!(args.contains(&"--exclude-table-data=\"app_private\".\"big?\"".to_string()));
    }

    #[test]
    fn only_plain_index_entries_give_an_oid() {
        assert_eq!(
            toc_index_oid("3261; 1259 16480 INDEX public t_payload owner"),
            Some(16480)
        );
        assert_eq!(
            toc_index_oid("3270; 2606 16485 CONSTRAINT public t t_pkey owner"),
            None
        );
        assert_eq!(
            toc_index_oid("3280; 0 0 INDEX ATTACH public p_1_idx owner"),
            None
        );
        assert_eq!(toc_index_oid("; Archive created at 2026-11-28"), None);
        assert_eq!(toc_index_oid("3290; 1259 x INDEX public odd owner"), None);
    }

    #[test]
    fn restore_args_hold_no_connection_secret() {
        let target = ConnSpec::from_url(&crate::secret::Secret::new(
            "postgres://neondb_owner:pw-unit-restore-args@ep-x.neon.tech/ne'on=db",
        ))
        .unwrap();
        let tools = PgTools {
            major: 17,
            pg_dump: "/x/pg_dump".into(),
            pg_restore: "/x/pg_restore".into(),
            version: "pg_dump (PostgreSQL) 17.4".into(),
            libpq_require_auth: false,
        };
        let (dbname, env) = child_connection(&tools, &target, "t").unwrap();
        let mut args = restore_args();
        args.push(dbname);
        assert!(args.iter().all(|a| !a.contains("pw-unit-restore-args")));
        assert!(args.iter().all(|a| !a.contains("ep-x.neon.tech")));
        assert!(args
            .last()
            .unwrap()
            .starts_with("--dbname=dbname='ne\\'on=db' keepalives=1 "));
        assert!(env.contains(&("PGPASSWORD".into(), "pw-unit-restore-args".into())));
        // An unverified connection limited to SCRAM needs a libpq that enforces require_auth.
        let scram_only = ConnSpec::for_source(&crate::secret::Secret::new(
            "postgres://u:pw-unit-restore-args@db.example.com/app?sslmode=require",
        ))
        .unwrap();
        let refused = child_connection(&tools, &scram_only, "t").unwrap_err();
        assert!(refused.to_string().contains("require_auth"), "{refused}");
        assert!(!refused.to_string().contains("pw-unit-restore-args"));
        let newer = PgTools {
            libpq_require_auth: true,
            ..tools
        };
        let (_, env) = child_connection(&newer, &scram_only, "t").unwrap();
        assert!(env.contains(&("PGREQUIREAUTH".into(), "scram-sha-256".into())));
    }

    #[test]
    fn the_line_filter_drops_sql_and_prefixes_everything() {
        let mut f = LineFilter::new("pg_restore");
        let lines = [
            "pg_restore: creating TABLE \"public.t\"",
            "pg_restore: error: could not execute query: ERROR:  permission denied for schema public",
            "LINE 1: CREATE TABLE public.t (",
            "                     ^",
            "HINT:  not in sql yet",
            "Command was: CREATE TABLE public.t (",
            "    secret_column text",
            "HINT:  inside sql block",
            "::error::injected",
            "pg_restore: warning: errors ignored on restore: 1",
        ];
        let shown: Vec<(Level, String)> = lines.iter().filter_map(|l| f.relay(l)).collect();
        let texts: Vec<&str> = shown.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "pg_restore: creating TABLE \"public.t\"",
                "pg_restore: error: could not execute query: ERROR:  permission denied for schema public",
                "pg_restore: HINT:  not in sql yet",
                "pg_restore: warning: errors ignored on restore: 1",
            ]
        );
        assert_eq!(shown[0].0, Level::Debug);
        assert_eq!(shown[1].0, Level::Warn);

        let mut d = LineFilter::new("pg_dump");
        assert!(d
            .relay("pg_dump: detail: Query was: LOCK TABLE public.x IN ACCESS SHARE MODE")
            .is_none());
        assert!(d
            .relay("pg_dump: detail: Command was: COPY public.t (id) TO stdout;")
            .is_none());
        assert!(d
            .relay("pg_dump: error: connection to server failed")
            .is_some());
    }

    #[test]
    fn restore_errors_are_listed_in_the_message() {
        let err = PipelineError::Restore {
            errors: vec![RestoreError {
                message: "role \"authenticated\" does not exist".into(),
                object: Some("POLICY \"public.t p\"".into()),
            }],
            status: "exit status: 1".into(),
            stderr_tail: vec!["pg_restore: warning: errors ignored on restore: 1".into()],
        };
        let text = err.to_string();
        assert!(
            text.contains("POLICY \"public.t p\": role \"authenticated\" does not exist"),
            "{text}"
        );
        assert!(text.contains("last messages"), "{text}");
    }
}
