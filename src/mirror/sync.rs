//! The incremental sync: the mirror brought to the source's snapshot by copying only what changed, then
//! verified against the source's manifest exactly as a full restore is.
//!
//! Both sides are fingerprinted server-side (row counts and checksums per table: no row leaves either
//! server to compare). A changed table with a key first gets the rows written since the last verified
//! sync ([`super::since`]), merged by key and read again at once; a table that still differs (rows
//! deleted, a table without a key, one changed on the mirror) is narrowed down to the buckets of its key
//! space that differ ([`super::digest`]), and only those rows are copied from the snapshot and merged in
//! ([`super::apply`]). The mirror's digests are always computed afresh from its rows: a mirror changed
//! behind the tool's back differs like any changed table, is repaired, and is reported.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;

use super::apply::{self, TableShape};
use super::since::{self, Since};
use super::state::{self, MirrorState};
use super::streams::{families, Round, TableMerged};
use super::{compare, large_objects};
use crate::backup::restore::{self, Fail, Source};
use crate::context::RunContext;
use crate::error::Result;
use crate::pg::conn::{self, ConnSpec};
use crate::pg::hold::HeldSnapshot;
use crate::pg::inspect::{self, InspectError, KnownChecksums};
use crate::pg::manifest::{Manifest, TableKind};
use crate::pg::pipeline::{self, CancelSignal, DumpOptions};
use crate::pg::{content, maintenance, settings};
use crate::preflight::APP_NAME;

/// What an incremental sync did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    pub tables_compared: usize,
    /// Tables whose rows differed, `schema.name`.
    pub tables_changed: Vec<String>,
    /// Tables that differed from what the last verified sync left (changed behind the tool's back).
    pub repaired: Vec<String>,
    /// The last sync did not finish: this one took it up. Tables that sync had merged differ from
    /// what the last verified sync left as a tampered table would, so none is named as repaired.
    pub resumed: bool,
    /// Changed tables brought over by their rows written since the last sync alone.
    pub tables_written_since: usize,
    /// Tables those rows did not bring to the source's content (deleted rows): narrowed down by digests.
    pub narrowed_again: Vec<String>,
    pub rows_read: u64,
    /// COPY bytes read from the source.
    pub bytes_read: u64,
    /// Digest bytes read from the source while narrowing changes down.
    pub digest_bytes: u64,
    pub deleted: u64,
    pub updated: u64,
    pub inserted: u64,
    pub large_objects_written: u64,
    pub large_objects_removed: u64,
    /// Size of the schema archive read from the source (to compare definitions).
    pub schema_bytes: u64,
    /// Database and role settings set on the mirror (changed or new on the source), and reset (gone
    /// from the source).
    pub settings_set: usize,
    pub settings_reset: usize,
}

/// A finished incremental sync: the mirror matches `manifest`.
pub(crate) struct Synced {
    pub manifest: Manifest,
    pub report: SyncReport,
    /// What could not be carried over (owners, grants of large objects), for the report.
    pub notes: Vec<String>,
    pub not_backed_up: Vec<String>,
    pub refreshed: Vec<String>,
}

/// How the sync ended.
pub(crate) enum Outcome {
    Synced(Box<Synced>),
    /// The mirror cannot be synced incrementally; the reason says why (a full rebuild follows).
    Rebuild(String),
}

pub(super) const FAIL: Fail = Fail {
    impact: "no backup was made by this run; the mirror is left part-synced, which is harmless (it is no backup), and the next run syncs it again",
};

/// Syncs `mirror` (locked by this run, its state `state`) with the source.
pub(crate) async fn run(
    ctx: &RunContext,
    source: &Source,
    mirror_spec: &ConnSpec,
    mirror: &Client,
    state: &MirrorState,
    cancel: CancelSignal,
) -> Result<Outcome> {
    let config = &ctx.config;
    let streams = config.sync_streams.max(1);
    let group = ctx.actions.group("snapshot and comparison");
    let Some(stored) = inspect::read_manifest(mirror)
        .await
        .map_err(|e| FAIL.target("reading the mirror's manifest failed", e))?
    else {
        return Ok(Outcome::Rebuild("the mirror holds no manifest".into()));
    };
    let opened = conn::connect(&source.spec, APP_NAME)
        .await
        .map_err(|e| restore::source_unreachable(&e))?;
    let snapshot = inspect::SourceSnapshot::open(opened)
        .await
        .map_err(|e| restore::source_query(e, "opening the snapshot"))?;
    let horizon = since::horizon(snapshot.client())
        .await
        .map_err(|e| restore::source_query(e, "reading the snapshot's transaction horizon"))?;
    let mut selection = content::select(snapshot.client(), &config.content)
        .await
        .map_err(|e| restore::source_query(e, "choosing the schemas"))?;
    selection.privilege_roles = stored
        .definitions
        .as_ref()
        .map(|d| d.privilege_roles.clone())
        .unwrap_or_default();
    let not_backed_up = crate::backup::not_backed_up(&selection);
    let source_settings = settings::read(snapshot.client(), &selection.privilege_roles)
        .await
        .map_err(|e| restore::source_query(e, "reading the database and role settings"))?;
    let opts = DumpOptions::in_snapshot(&selection, snapshot.id(), config.stall_timeout);
    let schema = pipeline::dump_schema(&source.tools, &source.spec, &opts, cancel.clone())
        .await
        .map_err(|e| FAIL.restore("the schema could not be dumped", e))?;
    let schema_fingerprint = pipeline::schema_fingerprint(&source.tools, &schema, cancel.clone())
        .await
        .map_err(|e| FAIL.restore("the schema archive could not be read back", e))?;
    let fingerprint =
        super::definitions_fingerprint(&schema_fingerprint, &selection.pg_dump_args());
    if fingerprint != state.fingerprint {
        return Ok(Outcome::Rebuild(
            "the definitions (tables, columns, indexes, functions, policies, grants) or the selected content changed since the last sync".into(),
        ));
    }
    let mut report = SyncReport {
        schema_bytes: schema.bytes,
        resumed: !state.verified,
        ..SyncReport::default()
    };
    if report.resumed {
        tracing::info!("the mirror's last sync did not finish: this run resumes it");
    }
    state::mark_syncing(mirror, &ctx.run_id)
        .await
        .map_err(|e| FAIL.target("marking the mirror as being synced failed", e))?;

    // Sessions: one source session per stream in the snapshot, one mirror session per stream.
    let mut source_sessions = Vec::with_capacity(streams);
    let mut mirror_extra = Vec::with_capacity(streams - 1);
    for _ in 0..streams {
        source_sessions.push(
            conn::connect(&source.spec, APP_NAME)
                .await
                .map_err(|e| restore::source_unreachable(&e))?,
        );
    }
    for _ in 1..streams {
        mirror_extra.push(
            conn::connect(mirror_spec, APP_NAME)
                .await
                .map_err(|e| FAIL.target("cannot open another session on the mirror", e))?,
        );
    }
    let source_refs: Vec<&Client> = source_sessions.iter().collect();
    let mut mirror_refs: Vec<&Client> = vec![mirror];
    mirror_refs.extend(mirror_extra.iter());

    let compared = compare::manifests(
        &source_refs,
        snapshot.id(),
        &mirror_refs,
        &selection,
        &stored,
    )
    .await;
    let source_manifest = compared
        .source
        .map_err(|e| restore::source_query(e, "taking the manifest"))?;
    let before = compared
        .mirror
        .map_err(|e| FAIL.target("reading the mirror for comparison failed", e))?;
    let changed = changed_tables(&source_manifest, &before);
    report.tables_compared = source_manifest
        .tables
        .iter()
        .filter(|t| t.kind == TableKind::Table && !t.data_excluded)
        .count();
    report.tables_changed = changed.iter().map(|(s, n)| format!("{s}.{n}")).collect();
    // Tables whose rows on the mirror are not what the last verified sync left: changed behind our back.
    // (A table that changed on the source too is read only after its merge: a change on the mirror there
    // is named then if the source deleted no row of it, and otherwise repaired without a name.)
    let tampered: BTreeSet<(String, String)> = changed
        .iter()
        .filter(|t| !compared.unread.contains(*t))
        .filter(|(s, n)| before.table(s, n) != stored.table(s, n))
        .cloned()
        .collect();
    if !report.resumed {
        report.repaired = tampered.iter().map(|(s, n)| format!("{s}.{n}")).collect();
    }
    tracing::info!(
        compared = report.tables_compared,
        changed = changed.len(),
        "tables compared on both sides"
    );
    drop(group);

    // Changed tables, family by family (tables linked by foreign keys merge together). First the rows
    // written since the last sync, by key; a table that does not match the manifest after that (a row
    // was deleted, or changed on the mirror) is narrowed down by digests and merged again.
    let group = ctx.actions.group("sync changed rows");
    let shapes = apply::shapes(mirror, &changed).await.map_err(|e| {
        FAIL.target(
            "reading the changed tables' definitions on the mirror failed",
            e,
        )
    })?;
    for client in &source_refs {
        inspect::import_snapshot(client, snapshot.id())
            .await
            .map_err(|e| restore::source_query(e, "importing the snapshot"))?;
    }
    let since = Since::between(state.source_xmin, horizon);
    if since.is_none() && !changed.is_empty() {
        tracing::info!("no usable record of the last sync's snapshot: every changed table is compared by digests");
    }
    let round = Round {
        sources: &source_refs,
        mirrors: &mirror_refs,
        source_manifest: &source_manifest,
        before: &before,
    };
    // Rows written since the last sync are merged and then read again at once: a snapshot held on the
    // mirror across both keeps that read from pruning what the merges replaced (see `pg::hold`).
    let merges_written_rows =
        since.is_some() && shapes.iter().any(|s| round.by_written_rows(s, &tampered));
    let mut held = if merges_written_rows {
        let session = conn::connect(mirror_spec, APP_NAME)
            .await
            .map_err(|e| FAIL.target("cannot open another session on the mirror", e))?;
        Some(
            HeldSnapshot::take(session)
                .await
                .map_err(|e| FAIL.target("holding a snapshot on the mirror failed", e))?,
        )
    } else {
        None
    };
    let mut merged = round
        .merge(families(&shapes, &source_manifest), since, &tampered)
        .await?;
    let written_since: BTreeSet<(String, String)> = merged
        .iter()
        .filter(|m| m.written_since)
        .map(|m| m.table.clone())
        .collect();
    // Tables synced by their written rows are read now, if their row count came out right (else rows
    // were deleted on the source: reading them would only say so); the others are read by the
    // verification.
    let mut inserted: BTreeMap<&(String, String), Option<i64>> = BTreeMap::new();
    for m in merged.iter().filter(|m| m.written_since) {
        let slot = inserted.entry(&m.table).or_insert(Some(0));
        *slot = match (*slot, m.failed) {
            (Some(sum), false) => Some(sum + m.merged.inserted as i64),
            _ => None,
        };
    }
    let counted: BTreeSet<(String, String)> = inserted
        .into_iter()
        .filter_map(|(table, inserted)| {
            let (source_rows, mirror_rows) = round.rows_of(table);
            (inserted? + mirror_rows == source_rows).then(|| table.clone())
        })
        .collect();
    let mut checked = KnownChecksums::new();
    let started = std::time::Instant::now();
    if !written_since.is_empty() {
        if !counted.is_empty() {
            checked = inspect::fingerprint_tables_among(
                &mirror_refs,
                &selection,
                &source_manifest,
                Some(&counted),
            )
            .await
            .map_err(|e| FAIL.target("reading the synced tables failed", e))?;
        }
        if let Some(held) = held.take() {
            held.release().await;
        }
        checked.retain(|(schema, name), (rows, checksum, _)| {
            source_manifest
                .table(schema, name)
                .is_some_and(|t| t.holds(*rows, checksum))
        });
        // A table whose row count came out right holds every row the last verified sync left plus
        // the source's written rows, minus nothing the source deleted (a delete, or a key that moved,
        // leaves the count off). Differing still, it was changed on the mirror behind our back.
        if !report.resumed {
            for (schema, name) in counted.iter().filter(|t| !checked.contains_key(*t)) {
                report.repaired.push(format!("{schema}.{name}"));
            }
        }
        report.repaired.sort();
        let missed: Vec<TableShape> = shapes
            .iter()
            .filter(|s| written_since.contains(&(s.schema.clone(), s.name.clone())))
            .filter(|s| !checked.contains_key(&(s.schema.clone(), s.name.clone())))
            .cloned()
            .collect();
        tracing::info!(
            tables = written_since.len(),
            matched = checked.len(),
            seconds = started.elapsed().as_secs_f64(),
            "tables synced by the rows written since the last sync, read again"
        );
        if !missed.is_empty() {
            let names: Vec<String> = missed
                .iter()
                .map(|s| format!("{}.{}", s.schema, s.name))
                .collect();
            tracing::info!(tables = ?names, "not matching yet (rows deleted on the source, or changed on the mirror): compared by digests");
            let again = round
                .merge(families(&missed, &source_manifest), None, &tampered)
                .await?;
            merged.extend(again.into_iter().map(|m| TableMerged {
                narrowed_again: true,
                ..m
            }));
        }
    }
    if let Some(held) = held.take() {
        held.release().await;
    }
    report.tables_written_since = checked.len();
    report.narrowed_again = merged
        .iter()
        .filter(|m| m.narrowed_again)
        .map(|m| format!("{}.{}", m.table.0, m.table.1))
        .collect();
    // Large objects, in the snapshot too: only when their fingerprints differ.
    let mut notes = Vec::new();
    if source_manifest.large_objects != before.large_objects {
        let (objects, lines) =
            large_objects::sync(source_refs[0], mirror, &selection.privilege_roles)
                .await
                .map_err(|e| FAIL.target("syncing the large objects failed", e))?;
        tracing::info!(
            written = objects.written,
            removed = objects.removed,
            "large objects synced"
        );
        report.large_objects_written = objects.written;
        report.large_objects_removed = objects.removed;
        report.bytes_read += objects.bytes_read;
        notes = lines;
    }
    for client in &source_refs {
        let _ = client.batch_execute("COMMIT").await;
    }
    drop(snapshot.finish().await);
    for TableMerged {
        table,
        merged: m,
        digest_bytes,
        ..
    } in &merged
    {
        tracing::info!(table = %format!("{}.{}", table.0, table.1), read = m.rows_read, deleted = m.deleted, updated = m.updated, inserted = m.inserted, "merged");
        report.rows_read += m.rows_read;
        report.bytes_read += m.bytes_read;
        report.deleted += m.deleted;
        report.updated += m.updated;
        report.inserted += m.inserted;
        report.digest_bytes += digest_bytes;
    }
    set_sequences(mirror, &source_manifest, &before)
        .await
        .map_err(|e| FAIL.target("setting the mirror's sequences failed", e))?;
    refresh_views(mirror, &source_manifest, &before)
        .await
        .map_err(|e| FAIL.target("refreshing the mirror's materialized views failed", e))?;
    let settings_synced = settings::sync(mirror, &source_settings, &selection.privilege_roles)
        .await
        .map_err(|e| FAIL.target("syncing the database and role settings failed", e))?;
    if settings_synced.set + settings_synced.reset > 0 {
        tracing::info!(
            set = settings_synced.set,
            reset = settings_synced.reset,
            "database and role settings synced"
        );
    }
    report.settings_set = settings_synced.set;
    report.settings_reset = settings_synced.reset;
    notes.extend(settings_synced.refused);
    drop(group);

    // Verify: the changed tables are read again; the others were read afresh above, in this run.
    let group = ctx.actions.group("verify");
    let mut known: KnownChecksums = before
        .tables
        .iter()
        .filter(|t| t.kind == TableKind::Table)
        .filter(|t| !changed.contains(&(t.schema.clone(), t.name.clone())))
        .map(|t| {
            (
                (t.schema.clone(), t.name.clone()),
                (t.rows, t.checksum.clone(), t.checksum_method),
            )
        })
        .collect();
    known.extend(checked);
    let actual = restore::verify(
        FAIL,
        config.verify,
        &mirror_refs,
        &source_manifest,
        &selection,
        &known,
    )
    .await?;
    let mut manifest = source_manifest;
    let refreshed = restore::record_refreshed_views(&mut manifest, &actual);
    if let (Some(stored), Some(branch)) = (manifest.definitions.as_mut(), actual.definitions) {
        stored.sequences = branch.sequences;
    }
    inspect::store_manifest(mirror, &manifest)
        .await
        .map_err(|e| FAIL.target("storing the manifest in the mirror failed", e))?;
    if let Err(e) = maintenance::maintain(
        mirror,
        &maintenance::tables_of(&manifest),
        maintenance::Which::Due(&rows_merged(&merged)),
    )
    .await
    {
        notes.push(maintenance::note(&e));
    }
    state::mark_verified(mirror, &fingerprint, &ctx.run_id, horizon.map(|h| h.xmin))
        .await
        .map_err(|e| FAIL.target("recording the mirror's verified sync failed", e))?;
    drop(group);
    Ok(Outcome::Synced(Box::new(Synced {
        manifest,
        report,
        notes,
        not_backed_up,
        refreshed,
    })))
}

/// The rows each table's merges changed, for the mirror's upkeep.
fn rows_merged(merged: &[TableMerged]) -> Vec<maintenance::RowsMerged> {
    let mut by_table: BTreeMap<&(String, String), maintenance::RowsMerged> = BTreeMap::new();
    for m in merged {
        let sum = by_table
            .entry(&m.table)
            .or_insert_with(|| maintenance::RowsMerged {
                table: m.table.clone(),
                ..Default::default()
            });
        sum.inserted += m.merged.inserted;
        sum.updated += m.merged.updated;
        sum.deleted += m.merged.deleted;
    }
    by_table.into_values().collect()
}

/// Tables (with data) whose rows differ between the source's manifest and the mirror's.
fn changed_tables(source: &Manifest, mirror: &Manifest) -> Vec<(String, String)> {
    source
        .tables
        .iter()
        .filter(|t| t.kind == TableKind::Table && !t.data_excluded)
        .filter(|t| match mirror.table(&t.schema, &t.name) {
            Some(m) => !m.same_content(t) || m.checksum_method != t.checksum_method,
            None => true,
        })
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect()
}

/// Brings each sequence of the mirror to the source's position, where it differs.
async fn set_sequences(
    mirror: &Client,
    source: &Manifest,
    before: &Manifest,
) -> std::result::Result<(), InspectError> {
    let (Some(src), Some(mir)) = (source.definitions.as_ref(), before.definitions.as_ref()) else {
        return Ok(());
    };
    for (name, state) in &src.sequences {
        if !state.readable || mir.sequences.get(name) == Some(state) {
            continue;
        }
        let sql = match state.last_value {
            Some(_) => "SELECT pg_catalog.setval(c.oid, $2, true) FROM pg_catalog.pg_class c \
                        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                        WHERE c.relkind = 'S' AND n.nspname::text || '.' || c.relname::text = $1",
            None => "SELECT pg_catalog.setval(c.oid, s.seqstart, false) FROM pg_catalog.pg_class c \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid \
                     WHERE c.relkind = 'S' AND n.nspname::text || '.' || c.relname::text = $1 AND $2::int8 IS NULL",
        };
        mirror
            .query(sql, &[name, &state.last_value])
            .await
            .map_err(InspectError::query(format!("setting sequence {name}")))?;
    }
    Ok(())
}

/// Refreshes each materialized view whose content differs, as a full restore does: from the mirror's
/// (now synced) tables.
async fn refresh_views(
    mirror: &Client,
    source: &Manifest,
    before: &Manifest,
) -> std::result::Result<(), InspectError> {
    for view in source
        .tables
        .iter()
        .filter(|t| t.kind == TableKind::MaterializedView)
    {
        let Some(m) = before.table(&view.schema, &view.name) else {
            continue;
        };
        if m.same_content(view) {
            continue;
        }
        mirror
            .batch_execute(&format!(
                "REFRESH MATERIALIZED VIEW {}",
                inspect::quote_qualified(&view.schema, &view.name)
            ))
            .await
            .map_err(InspectError::query(format!(
                "refreshing {}.{}",
                view.schema, view.name
            )))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::apply::Merged;

    fn table_merged(name: &str, inserted: u64, updated: u64, deleted: u64) -> TableMerged {
        TableMerged {
            table: ("public".into(), name.into()),
            written_since: true,
            narrowed_again: false,
            failed: false,
            merged: Merged {
                inserted,
                updated,
                deleted,
                ..Merged::default()
            },
            digest_bytes: 0,
        }
    }

    #[test]
    fn the_upkeep_counts_every_merge_of_a_table_once_per_table() {
        // accounts merged by its written rows, then narrowed down and merged again.
        let merged = [
            table_merged("accounts", 50, 200, 0),
            table_merged("ledger", 2, 0, 1),
            table_merged("accounts", 0, 1, 3),
        ];
        let counted = rows_merged(&merged);
        let row = |name: &str, inserted, updated, deleted| maintenance::RowsMerged {
            table: ("public".into(), name.into()),
            inserted,
            updated,
            deleted,
        };
        assert_eq!(
            counted,
            vec![row("accounts", 50, 201, 3), row("ledger", 2, 0, 1)]
        );
    }
}
