//! Planner statistics on a restored copy. pg_dump carries none (before PostgreSQL 18's `--statistics`),
//! so a branch restored from it plans every query on default estimates until ANALYZE runs. Autovacuum
//! would get to it, but only while a compute runs, and the tool suspends the mirror's compute after
//! each run: a standby that a failover turns into production would plan blind. So each restored copy
//! is analyzed once it is verified, and a mirror's table again once its rows changed as much since
//! its last analysis as autovacuum waits for (50 rows plus 10 % of the table).
//!
//! Statistics are no part of the backup's truth: a failure here is a note, never a failed backup.

use std::time::Instant;

use tokio_postgres::Client;

use super::inspect::{quote_qualified, InspectError};
use super::manifest::{Manifest, TableKind};

/// Which of the manifest's tables to analyze.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Every table: a copy just restored.
    All,
    /// Tables whose rows changed by more than autovacuum's threshold since they were last analyzed
    /// here, or that never were (as the server's statistics counters say).
    Stale,
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

/// Analyzes `which` of `tables` (schema, name); returns how many were analyzed.
pub async fn analyze(
    client: &Client,
    tables: &[(String, String)],
    which: Which,
) -> Result<usize, InspectError> {
    let mut tables = tables.to_vec();
    if which == Which::Stale {
        let schemas: Vec<String> = tables.iter().map(|t| t.0.clone()).collect();
        let names: Vec<String> = tables.iter().map(|t| t.1.clone()).collect();
        let rows = client
            .query(
                "SELECT s.schemaname::text, s.relname::text \
                 FROM pg_catalog.pg_stat_user_tables s \
                 JOIN pg_catalog.pg_class c ON c.oid = s.relid \
                 JOIN ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS m(schema, name) \
                   ON m.schema = s.schemaname AND m.name = s.relname \
                 WHERE s.n_mod_since_analyze > 50 + 0.1 * GREATEST(c.reltuples, 0) \
                    OR (s.last_analyze IS NULL AND s.last_autoanalyze IS NULL AND s.n_live_tup > 0)",
                &[&schemas, &names],
            )
            .await
            .map_err(InspectError::query("reading the tables' statistics counters"))?;
        tables = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    }
    if tables.is_empty() {
        return Ok(0);
    }
    let started = Instant::now();
    let list: Vec<String> = tables.iter().map(|(s, n)| quote_qualified(s, n)).collect();
    // One statement: outside a transaction block ANALYZE commits each table on its own, and a table
    // this role may not analyze is skipped with a warning instead of failing the others.
    client
        .batch_execute(&format!("ANALYZE {}", list.join(", ")))
        .await
        .map_err(InspectError::query("analyzing the restored tables"))?;
    tracing::info!(
        tables = tables.len(),
        seconds = started.elapsed().as_secs_f64(),
        "planner statistics taken (ANALYZE)"
    );
    Ok(tables.len())
}
