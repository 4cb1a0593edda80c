//! restore-test: proves that a backup restores. The newest complete backup (or a chosen one) gets a child
//! branch `restore-test-<ts>` with an expiry as a safety net; read-only health checks compare it with the
//! manifest stored in the backup and run the user's own queries. Success deletes the test branch; failure
//! keeps it for inspection (Neon deletes it at its expiry) and names every failed check.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use crate::branch_conn;
use crate::branches::{self, BranchKind, PendingBranch};
use crate::config::HealthCheck;
use crate::error::{Error, Failure, Result};
use crate::neon::{BranchInfo, CreateBranch, NeonClient};
use crate::pg::conn::{self, ConnSpec};
use crate::pg::content::Selection;
use crate::pg::inspect::{self, InspectError};
use crate::pg::manifest::{Manifest, Mismatch};
use crate::pg::pipeline::{self, CancelSignal};
use crate::preflight::APP_NAME;
use crate::report;
use crate::run::RunContext;

/// What removes a test branch that could not be deleted.
const TEST_BRANCH_FALLBACK: &str = "Neon deletes it at its expiry";

/// Longest one user health check may run: they are meant to be quick sanity queries.
pub const USER_CHECK_STATEMENT_TIMEOUT: &str = "30s";
/// Longest a user health check waits for a lock; nobody else uses the test branch, so any wait is a bug.
pub const USER_CHECK_LOCK_TIMEOUT: &str = "5s";

/// One health check and how it ended. `detail` never holds row data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed: true,
            detail: detail.into(),
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed: false,
            detail: detail.into(),
        }
    }
}

/// What a finished restore test reports (whether its checks passed or not).
#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    pub tested_backup: String,
    /// Age of the tested backup: the recovery point if it had to be used now.
    pub backup_age: Duration,
    pub test_branch: String,
    pub expires_at: DateTime<Utc>,
    pub checks: Vec<Check>,
    pub duration: Duration,
    /// True once the test branch is gone (after a pass); false while it exists.
    pub test_branch_deleted: bool,
}

impl RestoreOutcome {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn failed_checks(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }
}

/// Runs one restore test and reports it (outputs, job summary). `Ok` only when every check passed and
/// the test branch was deleted; a failed check keeps the branch and returns an error naming every
/// failed check. `cancel` (SIGTERM/SIGINT) deletes the test branch.
pub async fn run(
    ctx: &RunContext,
    neon: &NeonClient,
    mut cancel: CancelSignal,
) -> Result<RestoreOutcome> {
    let started = Instant::now();
    let created: Arc<Mutex<Option<PendingBranch>>> = Arc::default();
    let attempt = test_backup(ctx, neon, created.clone(), started);
    let result = tokio::select! {
        result = attempt => result,
        _ = pipeline::cancelled(&mut cancel) => Err(Failure::new("the restore test was cancelled (SIGTERM or SIGINT)")
            .impact("the backup was not tested by this run; it is untouched")
            .hint("run the restore test again; its test branch was deleted")
            .into()),
    };
    let pending = created.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mut outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            if let Some(pending) = pending {
                pending.delete(neon, TEST_BRANCH_FALLBACK).await;
            }
            return Err(e);
        }
    };
    if outcome.passed() {
        if let Some(pending) = &pending {
            outcome.test_branch_deleted = pending.delete(neon, TEST_BRANCH_FALLBACK).await;
            if !outcome.test_branch_deleted {
                ctx.actions.warning(&format!(
                    "the test branch {} could not be deleted; Neon deletes it at {}",
                    outcome.test_branch,
                    stamp(outcome.expires_at)
                ));
            }
        }
    }
    let reported = report(ctx, &outcome);
    if outcome.passed() {
        reported?;
        return Ok(outcome);
    }
    if let Err(e) = reported {
        // The failed checks are the news; an unwritable summary must not hide them.
        ctx.actions.warning(&e.headline());
    }
    let failed = outcome.failed_checks();
    Err(Failure::new(format!(
        "restore test of {} failed {} of {} check{}: {}",
        outcome.tested_backup,
        failed.len(),
        outcome.checks.len(),
        if outcome.checks.len() == 1 { "" } else { "s" },
        failed
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    ))
    .impact(format!(
        "this backup may not restore what it should; the test branch {} is kept for inspection until {}, when Neon deletes it",
        outcome.test_branch,
        stamp(outcome.expires_at)
    ))
    .hint("inspect the test branch (each failed check is named above), then take a new backup and test it")
    .into())
}

/// The backup to test: the one asked for by name, else the newest complete one.
fn choose_backup<'a>(
    branches: &'a [BranchInfo],
    wanted: Option<&str>,
) -> Result<(&'a BranchInfo, DateTime<Utc>)> {
    let chosen = match wanted {
        Some(name) => branches
            .iter()
            .find(|b| b.branch.name == name)
            .ok_or_else(|| {
                Error::from(
                    Failure::new(format!("the backup branch {name} does not exist in the Neon project"))
                        .impact("nothing was tested; nothing was created on Neon")
                        .hint("name an existing backup (supaneon-sync list shows them), or leave backup-branch empty for the newest"),
                )
            })?,
        None => branches::newest_backup(branches).ok_or_else(|| {
            Error::from(
                Failure::new("no backup exists yet: the project has no complete backup branch (backup-YYYYMMDDTHHMMSSZ) to test")
                    .impact("nothing was tested; nothing was created on Neon")
                    .hint("run a backup first (mode backup); incomplete backups are never tested"),
            )
        })?,
    };
    match branches::classify(&chosen.branch.name) {
        BranchKind::Backup { at } => Ok((chosen, at)),
        _ => Err(Failure::new(format!(
            "{} is not a complete backup branch",
            chosen.branch.name
        ))
        .impact("nothing was tested; nothing was created on Neon")
        .into()),
    }
}

async fn test_backup(
    ctx: &RunContext,
    neon: &NeonClient,
    created: Arc<Mutex<Option<PendingBranch>>>,
    started: Instant,
) -> Result<RestoreOutcome> {
    let config = &ctx.config;
    let actions = &ctx.actions;
    let neon_settings = config
        .neon
        .as_ref()
        .ok_or_else(|| Failure::new("restore-test needs the Neon settings"))?;

    // 1. The backup under test.
    let group = actions.group("choose the backup");
    let all = neon
        .list_branches()
        .await
        .map_err(|e| e.into_failure("nothing was tested; nothing was created on Neon"))?;
    let (backup, taken_at) = choose_backup(&all, config.backup_branch.as_deref())?;
    let now = Utc::now();
    let backup_age = (now - taken_at).to_std().unwrap_or_default();
    let tested_backup = backup.branch.name.clone();
    tracing::info!(backup = %tested_backup, age_seconds = backup_age.as_secs(), "testing");
    drop(group);

    // 2. Its child, with an expiry so a kept branch cannot linger forever.
    let test_branch = branches::restore_test_name(now);
    let expires_at = now + chrono::Duration::hours(i64::from(config.restore_test_expiry_hours));
    let group = actions.group(&format!("create branch {test_branch}"));
    let mut annotations = BTreeMap::new();
    annotations.insert("supaneon-sync".to_string(), "restore-test".to_string());
    annotations.insert("backup".to_string(), tested_backup.clone());
    *created.lock().unwrap_or_else(|e| e.into_inner()) = Some(PendingBranch {
        name: test_branch.clone(),
        id: None,
    });
    let branch = neon
        .create_branch(&CreateBranch {
            name: test_branch.clone(),
            parent_id: Some(backup.branch.id.clone()),
            expires_at: Some(expires_at),
            annotations,
            with_endpoint: true,
        })
        .await
        .map_err(|e| e.into_failure("nothing was tested; the backup is untouched"))?;
    *created.lock().unwrap_or_else(|e| e.into_inner()) = Some(PendingBranch {
        name: test_branch.clone(),
        id: Some(branch.branch.id.clone()),
    });
    tracing::info!(branch = %test_branch, id = %branch.branch.id, expires_at = %stamp(expires_at), "test branch created");
    // A URI or endpoint we refuse to connect to fails the connectivity check, and the branch is kept.
    let spec = match branch_conn::branch_spec(neon, neon_settings, &branch.branch.id).await {
        Ok(spec) => Ok(spec),
        Err(branch_conn::BranchConnError::Api(e)) => {
            return Err(e
                .into_failure("nothing was tested; the test branch is deleted")
                .into())
        }
        Err(other) => Err(other.to_string()),
    };
    drop(group);

    // 3. Health checks, all read-only.
    let group = actions.group("health checks");
    let checks = health_checks(spec, &config.health_checks).await;
    for c in &checks {
        if c.passed {
            actions.info(&format!("  ok   {}: {}", c.name, c.detail));
        } else {
            actions.error(
                Some("restore-test check failed"),
                &format!("{}: {}", c.name, c.detail),
            );
        }
    }
    drop(group);

    Ok(RestoreOutcome {
        tested_backup,
        backup_age,
        test_branch,
        expires_at,
        checks,
        duration: started.elapsed(),
        test_branch_deleted: false,
    })
}

/// Every check on the test branch, in order: connectivity, the manifest, schemas, tables, object
/// counts, the user's queries. A check that cannot run (no connection, no manifest) fails; the checks
/// that depend on it are not run.
async fn health_checks(
    spec: std::result::Result<ConnSpec, String>,
    user_checks: &[HealthCheck],
) -> Vec<Check> {
    let mut checks = Vec::new();
    let sessions = match spec {
        Ok(spec) => {
            let (a, b) = tokio::join!(
                conn::connect(&spec, APP_NAME),
                conn::connect(&spec, APP_NAME)
            );
            a.and_then(|a| b.map(|b| (a, b))).map_err(|e| e.to_string())
        }
        Err(e) => Err(e),
    };
    let (first, second) = match sessions {
        Ok(s) => s,
        Err(e) => {
            checks.push(Check::fail("connectivity", e.to_string()));
            return checks;
        }
    };
    checks.push(Check::pass("connectivity", "two sessions connected"));

    match inspect::read_manifest(&first).await {
        Ok(Some(manifest)) => {
            checks.push(Check::pass(
                "manifest present",
                format!("taken {}", stamp(manifest.taken_at)),
            ));
            checks.extend(manifest_checks(&[&first, &second], &manifest).await);
        }
        Ok(None) => checks.push(Check::fail(
            "manifest present",
            "the backup holds no supaneon_sync.backup_manifest: it was not made (or not finished) by supaneon-sync",
        )),
        Err(e) => checks.push(Check::fail("manifest present", error_chain(&e))),
    }
    drop(second);

    if !user_checks.is_empty() {
        // Users write their queries against the database's own defaults, not our pinned session.
        if let Err(e) = first.batch_execute("RESET ALL").await {
            for c in user_checks {
                checks.push(Check::fail(
                    c.name.clone(),
                    format!("not run: the session failed ({})", sql_error(&e)),
                ));
            }
            return checks;
        }
        for c in user_checks {
            checks.push(user_check(&first, c).await);
        }
    }
    checks
}

/// One check per schema, one per table (rows and checksum), one per object kind, from comparing the
/// stored manifest with the same manifest taken on the test branch.
async fn manifest_checks(sessions: &[&Client], expected: &Manifest) -> Vec<Check> {
    let selection = Selection::of_manifest(expected);
    let actual = match inspect::take_manifest_to_match(sessions, &selection, expected).await {
        Ok(actual) => actual,
        Err(e) => return vec![Check::fail("tables readable", error_chain(&e))],
    };
    grade(expected, &actual)
}

/// Groups the differences between the manifests into named checks; every difference fails exactly
/// the check it belongs to.
pub fn grade(expected: &Manifest, actual: &Manifest) -> Vec<Check> {
    let mismatches = expected.compare(actual);
    let mut by_table: BTreeMap<String, Vec<&Mismatch>> = BTreeMap::new();
    let mut missing_schemas = BTreeSet::new();
    let mut by_kind: BTreeMap<&str, &Mismatch> = BTreeMap::new();
    let mut extra = Vec::new();
    let mut large_objects = Vec::new();
    let mut definitions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in &mismatches {
        match m {
            Mismatch::MissingSchema(s) => {
                missing_schemas.insert(s.as_str());
            }
            Mismatch::MissingTable { table }
            | Mismatch::RowCount { table, .. }
            | Mismatch::Checksum { table }
            | Mismatch::MaterializedViewContent { table, .. }
            | Mismatch::DataExclusion { table, .. } => {
                by_table.entry(table.clone()).or_default().push(m)
            }
            Mismatch::ExtraTable { table } => extra.push(table.clone()),
            Mismatch::ObjectCount { kind, .. } => {
                by_kind.insert(kind, m);
            }
            Mismatch::LargeObjects { detail } => large_objects.push(detail.clone()),
            Mismatch::Definition { object, detail } => {
                definitions.entry(object).or_default().push(detail)
            }
        }
    }

    let mut checks = Vec::new();
    for schema in &expected.schemas {
        let name = format!("schema {schema} exists");
        checks.push(if missing_schemas.contains(schema.as_str()) {
            Check::fail(name, "missing")
        } else {
            Check::pass(name, "present")
        });
    }
    for t in &expected.tables {
        let table = t.qualified_name();
        let name = format!("{table}: rows and checksum");
        let found = by_table.remove(&table).unwrap_or_default();
        // From format 3 on, a materialized view the restore refreshed is recorded with the branch's
        // content: a copy that differs from it was changed after the backup.
        let advisory_allowed = expected.format < 3;
        let failing: Vec<String> = found
            .iter()
            .filter(|m| !(advisory_allowed && m.is_advisory()))
            .map(|m| match m {
                Mismatch::MaterializedViewContent {
                    expected_rows,
                    actual_rows,
                    ..
                } => format!(
                    "materialized view holds {actual_rows} rows, {expected_rows} when backed up (or other content)"
                ),
                _ => without_subject(m, &table),
            })
            .collect();
        checks.push(if !failing.is_empty() {
            Check::fail(name, failing.join("; "))
        } else if let Some(advice) = found.first() {
            // A stale materialized view on the source is not lost data.
            Check::pass(name, format!("note: {}", without_subject(advice, &table)))
        } else if t.refreshed_on_restore {
            Check::pass(
                name,
                format!(
                    "refreshed on restore (the source's view was stale, so not verified against the source): {} rows, as in the backup",
                    t.rows
                ),
            )
        } else if t.data_excluded {
            Check::pass(name, "structure only (data excluded from the backup)")
        } else {
            Check::pass(name, format!("{} rows, checksum matches", t.rows))
        });
    }
    for table in extra {
        checks.push(Check::fail(
            format!("{table}: not in the manifest"),
            "a table the backup's manifest does not list: the branch was changed after the backup",
        ));
    }
    for (kind, count) in expected.objects.entries() {
        checks.push(match by_kind.get(kind) {
            Some(m) => Check::fail(kind, without_subject(m, kind)),
            None => Check::pass(kind, format!("{count}, as in the manifest")),
        });
    }
    if let Some(lo) = &expected.large_objects {
        checks.push(if large_objects.is_empty() {
            Check::pass(
                "large objects",
                format!("{}, content and owners as in the manifest", lo.count),
            )
        } else {
            Check::fail("large objects", large_objects.join("; "))
        });
    }
    if let Some(defs) = &expected.definitions {
        // One failing check per object that differs, named by it; one passing check otherwise.
        for (object, details) in &definitions {
            checks.push(Check::fail(*object, details.join("; ")));
        }
        if definitions.is_empty() {
            checks.push(Check::pass(
                "definitions",
                format!(
                    "{} tables, {} policies, {} functions, {} sequences, {} comments and the privileges of {} objects as in the manifest",
                    defs.tables.len(),
                    defs.policies.len(),
                    defs.functions.len(),
                    defs.sequences.len(),
                    defs.comments.len(),
                    defs.privileges.len()
                ),
            ));
        }
    }
    checks
}

/// A mismatch told without the name of the check it is listed under (`public.orders: 999 rows, …`).
fn without_subject(m: &Mismatch, subject: &str) -> String {
    let text = m.to_string();
    match text
        .strip_prefix(subject)
        .and_then(|t| t.strip_prefix(": "))
    {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

/// Runs one user query in a read-only transaction with short timeouts. It passes only when it returns
/// exactly one row of one boolean column holding true. The detail never shows returned values.
async fn user_check(client: &Client, check: &HealthCheck) -> Check {
    let begin = format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = '{USER_CHECK_STATEMENT_TIMEOUT}'; \
         SET LOCAL lock_timeout = '{USER_CHECK_LOCK_TIMEOUT}'"
    );
    if let Err(e) = client.batch_execute(&begin).await {
        return Check::fail(
            check.name.clone(),
            format!(
                "could not open the read-only transaction ({})",
                sql_error(&e)
            ),
        );
    }
    // The extended protocol runs exactly one statement: a `COMMIT; DELETE …` cannot leave the
    // read-only transaction.
    let verdict = match client.query(check.sql.as_str(), &[]).await {
        Err(e) => Err(sql_error(&e)),
        Ok(rows) => judge_user_rows(&rows),
    };
    let closed = client.batch_execute("ROLLBACK").await;
    match (verdict, closed) {
        (Ok(()), Ok(())) => Check::pass(check.name.clone(), "returned true"),
        (Ok(()), Err(e)) => Check::fail(
            check.name.clone(),
            format!(
                "returned true but the transaction could not end ({})",
                sql_error(&e)
            ),
        ),
        (Err(why), _) => Check::fail(check.name.clone(), why),
    }
}

fn judge_user_rows(rows: &[tokio_postgres::Row]) -> std::result::Result<(), String> {
    let [row] = rows else {
        return Err(format!(
            "returned {} rows; a health check must return exactly one row holding true",
            rows.len()
        ));
    };
    if row.columns().len() != 1 {
        return Err(format!(
            "returned {} columns; a health check must return one boolean",
            row.columns().len()
        ));
    }
    let ty = row.columns()[0].type_();
    if *ty != Type::BOOL {
        return Err(format!(
            "returned a value of type {}, not boolean",
            ty.name()
        ));
    }
    match row.try_get::<_, Option<bool>>(0) {
        Ok(Some(true)) => Ok(()),
        Ok(Some(false)) => Err("returned false".to_string()),
        Ok(None) => Err("returned NULL".to_string()),
        Err(_) => Err("returned a value that cannot be read as boolean".to_string()),
    }
}

/// A failed statement, told without row data: server messages of other classes can quote values
/// (`invalid input syntax for type integer: "…"`, key details), so only the SQL-text and access
/// classes keep their message.
fn sql_error(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return if e.is_closed() {
            "the connection was closed".to_string()
        } else {
            "the connection failed".to_string()
        };
    };
    let code = db.code().code();
    match code {
        "57014" => "timed out (statement_timeout or cancelled)".to_string(),
        "55P03" => "could not get a lock in time (lock_timeout)".to_string(),
        "25006" => "tried to write in the read-only transaction".to_string(),
        _ if code.starts_with("42") => format!("{} (SQLSTATE {code})", db.message()),
        _ => format!("failed with SQLSTATE {code}"),
    }
}

/// An inspection error with its causes, redacted; these name steps and objects, never row data.
fn error_chain(e: &InspectError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        out.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    crate::secret::redact(&out)
}

/// Outputs and the job summary of a finished restore test, passed or failed.
pub fn report(ctx: &RunContext, outcome: &RestoreOutcome) -> Result<()> {
    let failed = outcome.failed_checks();
    let passed = outcome.checks.len() - failed.len();
    let mut outputs = vec![
        ("tested-backup", outcome.tested_backup.clone()),
        (
            "backup-age-seconds",
            outcome.backup_age.as_secs().to_string(),
        ),
        ("checks-passed", passed.to_string()),
        ("checks-failed", failed.len().to_string()),
        (
            "test-branch",
            if outcome.test_branch_deleted {
                String::new()
            } else {
                outcome.test_branch.clone()
            },
        ),
        (
            "duration-seconds",
            format!("{:.1}", outcome.duration.as_secs_f64()),
        ),
    ];
    let verdict = if outcome.passed() {
        format!(
            "restore test of {} passed: {passed} checks in {:.1} s; {}",
            outcome.tested_backup,
            outcome.duration.as_secs_f64(),
            if outcome.test_branch_deleted {
                "the test branch was deleted".to_string()
            } else {
                format!(
                    "the test branch {} is left until {}",
                    outcome.test_branch,
                    stamp(outcome.expires_at)
                )
            }
        )
    } else {
        format!(
            "restore test of {} FAILED: {} of {} checks failed; the test branch {} is kept until {}",
            outcome.tested_backup,
            failed.len(),
            outcome.checks.len(),
            outcome.test_branch,
            stamp(outcome.expires_at)
        )
    };
    ctx.actions.info(&verdict);
    if outcome.passed() {
        // On failure the error's headline becomes the result (run.rs writes it).
        outputs.push(("result", verdict.clone()));
    }
    report::write_outputs(&ctx.actions, &outputs).map_err(output_failure)?;

    let rows: Vec<Vec<String>> = outcome
        .checks
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                if c.passed { "✅ pass" } else { "❌ FAIL" }.to_string(),
                c.detail.clone(),
            ]
        })
        .collect();
    let mut summary = format!(
        "## supaneon-sync restore test\n\n**{verdict}**\n\n\
         | | |\n| --- | --- |\n| backup | {} |\n| backup age (recovery point) | {} s |\n| checks | {passed} passed, {} failed |\n| duration | {:.1} s |\n\n",
        outcome.tested_backup,
        outcome.backup_age.as_secs(),
        failed.len(),
        outcome.duration.as_secs_f64()
    );
    if !failed.is_empty() {
        summary.push_str("**Failed checks**\n\n");
        for c in &failed {
            summary.push_str(&format!(
                "- {}: {}\n",
                c.name.replace('\n', " "),
                c.detail.replace('\n', " ")
            ));
        }
        summary.push('\n');
    }
    summary.push_str(&report::markdown_table(
        &["check", "result", "detail"],
        &rows,
    ));
    ctx.actions
        .append_summary(&summary)
        .map_err(output_failure)?;
    Ok(())
}

/// A time as people read it in logs: RFC 3339, whole seconds, UTC.
fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn output_failure(e: std::io::Error) -> Error {
    Failure::new("cannot write the step outputs or summary")
        .impact("the restore test itself ran; its verdict is in the log above")
        .cause(e)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::manifest::{
        ChecksumMethod, ObjectCounts, TableFingerprint, TableKind, MANIFEST_FORMAT,
    };

    fn table(schema: &str, name: &str, rows: i64, kind: TableKind) -> TableFingerprint {
        TableFingerprint {
            schema: schema.into(),
            name: name.into(),
            kind,
            rows,
            checksum: format!("{rows}0"),
            checksum_method: ChecksumMethod::Text,
            data_excluded: false,
            refreshed_on_restore: false,
        }
    }

    fn manifest(schemas: &[&str], tables: Vec<TableFingerprint>, policies: i64) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            taken_at: Utc::now(),
            source_server_version: "15".into(),
            schemas: schemas.iter().map(|s| s.to_string()).collect(),
            tables,
            objects: ObjectCounts {
                policies,
                ..ObjectCounts::default()
            },
            large_objects: None,
            definitions: None,
        }
    }

    fn failed(checks: &[Check]) -> Vec<(&str, &str)> {
        checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| (c.name.as_str(), c.detail.as_str()))
            .collect()
    }

    #[test]
    fn every_difference_fails_exactly_its_own_check() {
        let expected = manifest(
            &["app", "public"],
            vec![
                table("app", "admins", 3, TableKind::Table),
                table("public", "orders", 10, TableKind::Table),
                table("public", "stats", 5, TableKind::MaterializedView),
                table("public", "todos", 7, TableKind::Table),
            ],
            4,
        );
        let same = grade(&expected, &expected);
        assert!(failed(&same).is_empty(), "{same:?}");
        // 2 schemas + 4 tables + 8 object kinds.
        assert_eq!(same.len(), 14);

        let mut stale_view = table("public", "stats", 6, TableKind::MaterializedView);
        stale_view.checksum = "other".into();
        let actual = manifest(
            &["public"],
            vec![
                table("public", "extra", 1, TableKind::Table),
                table("public", "orders", 9, TableKind::Table),
                stale_view,
                table("public", "todos", 7, TableKind::Table),
            ],
            3,
        );
        let checks = grade(&expected, &actual);
        assert_eq!(
            failed(&checks),
            vec![
                ("schema app exists", "missing"),
                ("app.admins: rows and checksum", "table is missing"),
                ("public.orders: rows and checksum", "9 rows, expected 10"),
                (
                    "public.stats: rows and checksum",
                    "materialized view holds 6 rows, 5 when backed up (or other content)"
                ),
                (
                    "public.extra: not in the manifest",
                    "a table the backup's manifest does not list: the branch was changed after the backup"
                ),
                ("policies", "3, expected 4"),
            ]
        );
        // A format 3 manifest records what the restore refreshed a stale view to: a copy that
        // differs from it fails; an older manifest (the source's content) only gets a note.
        let view = checks
            .iter()
            .find(|c| c.name == "public.stats: rows and checksum")
            .unwrap();
        assert!(!view.passed, "{view:?}");
        let mut old = expected.clone();
        old.format = 2;
        let checks = grade(&old, &actual);
        let view = checks
            .iter()
            .find(|c| c.name == "public.stats: rows and checksum")
            .unwrap();
        assert!(view.passed && view.detail.starts_with("note: "), "{view:?}");
    }
}
