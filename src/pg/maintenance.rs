//! Upkeep of a restored copy that autovacuum does not do. pg_dump carries no planner statistics (before
//! PostgreSQL 18's `--statistics`), so a branch restored from it plans every query on default estimates
//! until ANALYZE runs; and the mirror, merged into every day, collects dead row versions. Autovacuum would
//! see to both, but only while a compute runs, and the tool suspends the mirror's compute after each run:
//! a standby that a failover turns into production would plan blind, and a mirror kept for a year would
//! bloat. So each restored copy is analyzed once it is verified, and after each sync a mirror's table is
//! treated as autovacuum would treat it at its default thresholds: vacuumed (and analyzed) once its dead
//! rows pass 50 plus 20 % of the table, analyzed once its rows changed by more than 50 plus 10 % since its
//! last analysis.
//!
//! What a table collected is the larger of two counts. The server's statistics counters, as its sessions
//! last flushed them (a session flushes them when it goes idle, at most once a second: a sync's own merges
//! may count there only from the next run on). And the mirror's own count of the rows its syncs merged
//! since the table was last analyzed or vacuumed (`supaneon_sync.table_changes`), which is WAL-logged like
//! any row: the server's counters are lost when a compute stops without a clean shutdown, Neon keeps them
//! across restarts only from PostgreSQL 15 on and up to a size limit (`neon_pgstat_file_size_limit`), and
//! a mirror is stopped after every run. Rows a failed sync merged are in the server's count only.
//!
//! None of this is part of the backup's truth: a failure is a note, never a failed backup.

use std::time::Instant;

use tokio_postgres::Client;

use super::inspect::{quote_qualified, InspectError};
use super::manifest::{Manifest, TableKind};

/// Which of the tables to look after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which<'a> {
    /// Analyze every table: a copy just restored.
    All,
    /// Only what autovacuum would do now (see the module documentation), this sync's merges added to
    /// the mirror's own count first.
    Due(&'a [RowsMerged]),
}

/// The rows a sync's merges changed in one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowsMerged {
    /// (schema, name)
    pub table: (String, String),
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

/// What [`maintain`] did: how many tables were vacuumed (and analyzed with it), how many only analyzed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Done {
    pub vacuumed: usize,
    pub analyzed: usize,
}

/// The note of a verified copy whose upkeep failed, for the run's report.
pub fn note(e: &InspectError) -> String {
    format!(
        "vacuum or analyze failed ({e}): the backup is complete and verified, but a database taken over from it \
         may plan on stale or default estimates until it is analyzed (run VACUUM ANALYZE there)"
    )
}

/// The tables (not materialized views) of `manifest`, as (schema, name).
pub fn tables_of(manifest: &Manifest) -> Vec<(String, String)> {
    manifest
        .tables
        .iter()
        .filter(|t| t.kind == TableKind::Table)
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect()
}

/// Looks after `which` of `tables` (schema, name).
pub async fn maintain(
    client: &Client,
    tables: &[(String, String)],
    which: Which<'_>,
) -> Result<Done, InspectError> {
    let (vacuum, analyze) = match which {
        Which::All => (Vec::new(), tables.to_vec()),
        Which::Due(merged) => {
            count(client, tables, merged).await?;
            due(client, tables).await?
        }
    };
    let started = Instant::now();
    // One statement each: outside a transaction block they commit each table on its own, and a table
    // this role may not touch is skipped with a warning instead of failing the others.
    if !vacuum.is_empty() {
        client
            .batch_execute(&format!("VACUUM (ANALYZE) {}", listed(&vacuum)))
            .await
            .map_err(InspectError::query("vacuuming the mirror's tables"))?;
    }
    if !analyze.is_empty() {
        client
            .batch_execute(&format!("ANALYZE {}", listed(&analyze)))
            .await
            .map_err(InspectError::query("analyzing the restored tables"))?;
    }
    if matches!(which, Which::Due(_)) {
        forget(client, &vacuum, &analyze).await?;
    }
    let done = Done {
        vacuumed: vacuum.len(),
        analyzed: analyze.len(),
    };
    if done != Done::default() {
        tracing::info!(
            vacuumed = done.vacuumed,
            analyzed = done.analyzed,
            seconds = started.elapsed().as_secs_f64(),
            "tables vacuumed and analyzed (planner statistics, dead row versions)"
        );
    }
    Ok(done)
}

/// The mirror's own count of changed rows: created if missing, `merged` added, tables no longer
/// backed up dropped from it.
async fn count(
    client: &Client,
    tables: &[(String, String)],
    merged: &[RowsMerged],
) -> Result<(), InspectError> {
    client
        .batch_execute(
            "SET client_min_messages = warning; \
             CREATE SCHEMA IF NOT EXISTS supaneon_sync; \
             CREATE TABLE IF NOT EXISTS supaneon_sync.table_changes ( \
               schema_name text, table_name text, \
               modified int8 NOT NULL, dead int8 NOT NULL, \
               PRIMARY KEY (schema_name, table_name)); \
             RESET client_min_messages",
        )
        .await
        .map_err(InspectError::query(
            "creating the mirror's count of changed rows",
        ))?;
    let (schemas, names) = columns(tables);
    client
        .execute(
            "DELETE FROM supaneon_sync.table_changes AS c WHERE NOT EXISTS ( \
               SELECT FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS m(schema, name) \
               WHERE m.schema = c.schema_name AND m.name = c.table_name)",
            &[&schemas, &names],
        )
        .await
        .map_err(InspectError::query("updating the mirror's count of changed rows"))?;
    let changed: Vec<&RowsMerged> = merged
        .iter()
        .filter(|m| m.inserted + m.updated + m.deleted > 0)
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let schemas: Vec<&str> = changed.iter().map(|m| m.table.0.as_str()).collect();
    let names: Vec<&str> = changed.iter().map(|m| m.table.1.as_str()).collect();
    // As the server counts: every inserted, updated or deleted row is a modification, every updated or
    // deleted one leaves a dead row version behind.
    let modified: Vec<i64> = changed
        .iter()
        .map(|m| (m.inserted + m.updated + m.deleted) as i64)
        .collect();
    let dead: Vec<i64> = changed
        .iter()
        .map(|m| (m.updated + m.deleted) as i64)
        .collect();
    client
        .execute(
            "INSERT INTO supaneon_sync.table_changes AS c (schema_name, table_name, modified, dead) \
             SELECT m.schema, m.name, pg_catalog.sum(m.modified), pg_catalog.sum(m.dead) \
             FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), \
                             pg_catalog.unnest($3::int8[]), pg_catalog.unnest($4::int8[])) AS m(schema, name, modified, dead) \
             GROUP BY 1, 2 \
             ON CONFLICT (schema_name, table_name) DO UPDATE \
               SET modified = c.modified + EXCLUDED.modified, dead = c.dead + EXCLUDED.dead",
            &[&schemas, &names, &modified, &dead],
        )
        .await
        .map_err(InspectError::query("updating the mirror's count of changed rows"))?;
    Ok(())
}

/// Clears the mirror's own count for the tables just vacuumed (both counts) or analyzed (modified rows).
async fn forget(
    client: &Client,
    vacuumed: &[(String, String)],
    analyzed: &[(String, String)],
) -> Result<(), InspectError> {
    for (tables, sql) in [
        (vacuumed, "modified = 0, dead = 0"),
        (analyzed, "modified = 0"),
    ] {
        if tables.is_empty() {
            continue;
        }
        let (schemas, names) = columns(tables);
        client
            .execute(
                &format!(
                    "UPDATE supaneon_sync.table_changes AS c SET {sql} \
                     FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS m(schema, name) \
                     WHERE m.schema = c.schema_name AND m.name = c.table_name"
                ),
                &[&schemas, &names],
            )
            .await
            .map_err(InspectError::query("updating the mirror's count of changed rows"))?;
    }
    Ok(())
}

fn columns(tables: &[(String, String)]) -> (Vec<&str>, Vec<&str>) {
    tables.iter().map(|(s, n)| (s.as_str(), n.as_str())).unzip()
}

/// The tables due for VACUUM (ANALYZE), and those due for ANALYZE only, by autovacuum's default rules.
type Due = (Vec<(String, String)>, Vec<(String, String)>);

async fn due(client: &Client, tables: &[(String, String)]) -> Result<Due, InspectError> {
    let (schemas, names) = columns(tables);
    let rows = client
        .query(
            "SELECT schema, name, dead > 50 + 0.2 * live FROM ( \
               SELECT s.schemaname::text AS schema, s.relname::text AS name, \
                      GREATEST(c.reltuples, 0) AS live, \
                      GREATEST(s.n_dead_tup, o.dead) AS dead, \
                      GREATEST(s.n_mod_since_analyze, o.modified) AS modified, \
                      s.last_analyze IS NULL AND s.last_autoanalyze IS NULL AND s.n_live_tup > 0 AS never \
               FROM pg_catalog.pg_stat_user_tables s \
               JOIN pg_catalog.pg_class c ON c.oid = s.relid \
               JOIN ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS m(schema, name) \
                 ON m.schema = s.schemaname AND m.name = s.relname \
               LEFT JOIN supaneon_sync.table_changes o \
                 ON o.schema_name = s.schemaname AND o.table_name = s.relname) AS t \
             WHERE dead > 50 + 0.2 * live OR modified > 50 + 0.1 * live OR never",
            &[&schemas, &names],
        )
        .await
        .map_err(InspectError::query("reading the tables' statistics counters"))?;
    let mut due: Due = Default::default();
    for row in rows {
        let table = (row.get(0), row.get(1));
        if row.get::<_, bool>(2) {
            due.0.push(table);
        } else {
            due.1.push(table);
        }
    }
    Ok(due)
}

fn listed(tables: &[(String, String)]) -> String {
    tables
        .iter()
        .map(|(s, n)| quote_qualified(s, n))
        .collect::<Vec<_>>()
        .join(", ")
}
