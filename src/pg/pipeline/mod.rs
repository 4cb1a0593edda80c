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
//! Rooms: `children` (argv, libpq settings, spawning and stopping, stderr), `relay` (the stream and its
//! watchdog), `post_data` (early index builds and the parallel post-data restore), `memfile` (the in-memory
//! archive and lists), `privileges` (GRANTs one statement at a time).
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

mod children;
mod memfile;
mod post_data;
pub mod privileges;
mod relay;
mod sql_text;

use children::*;
pub use children::{child_connection, dump_args, restore_args};
use memfile::{digest, memfd, ListFile};
pub use post_data::restore_post_data;
use post_data::*;
use relay::*;
pub use sql_text::schema_fingerprint;

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

impl DumpOptions {
    /// What `selection` names, in the exported snapshot `snapshot`.
    pub fn in_snapshot(
        selection: &crate::pg::content::Selection,
        snapshot: &str,
        stall_timeout: Duration,
    ) -> DumpOptions {
        DumpOptions {
            schemas: selection.schemas.clone(),
            exclude_tables: selection.exclude_tables.clone(),
            exclude_table_data: selection.exclude_table_data.clone(),
            snapshot: Some(snapshot.to_string()),
            stall_timeout: Some(stall_timeout),
        }
    }
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

#[derive(Debug, Clone, Default)]
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

/// Resolves when the signal says "cancel"; never, if the sender is gone.
/// Resolves once `cancel` turns true; never, if its sender is gone (nobody can cancel any more).
pub async fn cancelled(cancel: &mut CancelSignal) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Debug,
    Info,
    Warn,
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
