//! The health checks of a restore test: connectivity, the stored manifest against the branch, and the
//! user's read-only queries. A check's detail never holds row data nor server text that could quote it.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::types::Type;
use tokio_postgres::Client;

use crate::config::HealthCheck;
use crate::pg::conn::{self, ConnSpec};
use crate::pg::content::Selection;
use crate::pg::inspect::{self, InspectError};
use crate::pg::manifest::{Manifest, Mismatch};
use crate::preflight::APP_NAME;

use super::{stamp, USER_CHECK_LOCK_TIMEOUT, USER_CHECK_STATEMENT_TIMEOUT};

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

/// Every check on the test branch, in order: connectivity, the manifest, schemas, tables, object
/// counts, the user's queries. A check that cannot run (no connection, no manifest) fails; the checks
/// that depend on it are not run.
pub(super) async fn health_checks(
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
    // The server's text can quote values and names from the data (`relation "organization_1" does not
    // exist`, `invalid input syntax for type integer: "Alice"`): only the SQLSTATE and its condition name.
    let code = db.code().code();
    match code {
        "57014" => "timed out (statement_timeout or cancelled; SQLSTATE 57014)".to_string(),
        "55P03" => "could not get a lock in time (lock_timeout; SQLSTATE 55P03)".to_string(),
        "25006" => "tried to write in the read-only transaction (SQLSTATE 25006)".to_string(),
        _ => match condition_name(code) {
            Some(name) => format!("failed with SQLSTATE {code} ({name})"),
            None => format!("failed with SQLSTATE {code}"),
        },
    }
}

/// PostgreSQL's condition names of the SQLSTATEs a health check meets most.
fn condition_name(code: &str) -> Option<&'static str> {
    Some(match code {
        "42601" => "syntax_error",
        "42P01" => "undefined_table",
        "42703" => "undefined_column",
        "42883" => "undefined_function",
        "42704" => "undefined_object",
        "3F000" => "invalid_schema_name",
        "42501" => "insufficient_privilege",
        "42804" => "datatype_mismatch",
        "42846" => "cannot_coerce",
        "42702" => "ambiguous_column",
        "22P02" => "invalid_text_representation",
        "22012" => "division_by_zero",
        "22003" => "numeric_value_out_of_range",
        "21000" => "cardinality_violation",
        "0A000" => "feature_not_supported",
        "53100" => "disk_full",
        "53200" => "out_of_memory",
        "57P01" => "admin_shutdown",
        "08006" => "connection_failure",
        _ => return None,
    })
}

/// An inspection error by its step (which names steps and objects, never row data) and, when the server
/// refused a statement, its SQLSTATE; never the server's own text, which can quote data.
fn error_chain(e: &InspectError) -> String {
    let out = match e {
        InspectError::Query { what, source } => format!("{what}: {}", sql_error(source)),
        other => other.to_string(),
    };
    crate::secret::redact(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::manifest::{
        ChecksumMethod, ObjectCounts, TableFingerprint, TableKind, MANIFEST_FORMAT,
    };
    use chrono::Utc;

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
