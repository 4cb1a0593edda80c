//! Upkeep of a restored copy that autovacuum does not do. pg_dump carries no planner statistics (before
//! PostgreSQL 18's `--statistics`), so a branch restored from it plans every query on default estimates
//! until ANALYZE runs; and the mirror, merged into every day, collects dead row versions. Autovacuum would
//! see to both, but only while a compute runs, and the tool suspends the mirror's compute after each run:
//! a standby that a failover turns into production would plan blind, and a mirror kept for a year would
//! bloat. So each restored copy is analyzed once it is verified, and after each sync a mirror's table is
//! treated as autovacuum would treat it at its default thresholds: vacuumed (and analyzed) once its dead
//! rows pass 50 plus 20 % of the table, analyzed once its rows changed by more than 50 plus 10 % since its
//! last analysis. Both read the server's statistics counters as its sessions last flushed them (a session
//! flushes them when it goes idle, at most once a second): a sync's own merges may count only from the next
//! run on.
//!
//! None of this is part of the backup's truth: a failure is a note, never a failed backup.

use std::time::Instant;

use tokio_postgres::Client;

use super::inspect::{quote_qualified, InspectError};
use super::manifest::{Manifest, TableKind};

/// Which of the tables to look after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Analyze every table: a copy just restored.
    All,
    /// Only what autovacuum would do now (see the module documentation).
    Due,
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
    which: Which,
) -> Result<Done, InspectError> {
    let (vacuum, analyze) = match which {
        Which::All => (Vec::new(), tables.to_vec()),
        Which::Due => due(client, tables).await?,
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

/// The tables due for VACUUM (ANALYZE), and those due for ANALYZE only, by autovacuum's default rules.
type Due = (Vec<(String, String)>, Vec<(String, String)>);

async fn due(client: &Client, tables: &[(String, String)]) -> Result<Due, InspectError> {
    let schemas: Vec<&str> = tables.iter().map(|t| t.0.as_str()).collect();
    let names: Vec<&str> = tables.iter().map(|t| t.1.as_str()).collect();
    let rows = client
        .query(
            "SELECT s.schemaname::text, s.relname::text, \
                    s.n_dead_tup > 50 + 0.2 * GREATEST(c.reltuples, 0) \
             FROM pg_catalog.pg_stat_user_tables s \
             JOIN pg_catalog.pg_class c ON c.oid = s.relid \
             JOIN ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS m(schema, name) \
               ON m.schema = s.schemaname AND m.name = s.relname \
             WHERE s.n_dead_tup > 50 + 0.2 * GREATEST(c.reltuples, 0) \
                OR s.n_mod_since_analyze > 50 + 0.1 * GREATEST(c.reltuples, 0) \
                OR (s.last_analyze IS NULL AND s.last_autoanalyze IS NULL AND s.n_live_tup > 0)",
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
