//! What the mirror knows about itself: the fingerprint of the definitions it was last synced to, and
//! whether that sync was verified. Kept in the mirror (`supaneon_sync.mirror_state`), beside the manifest,
//! so a run needs nothing but the mirror to decide between an incremental sync and a rebuild.

use tokio_postgres::Client;

use crate::pg::inspect::InspectError;

/// What a run decides by (the table also records when and by which run, for people looking at it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorState {
    /// [`super::definitions_fingerprint`] of the last sync.
    pub fingerprint: String,
    /// True once the sync matched the source's manifest; false from the moment a sync starts writing.
    pub verified: bool,
    /// The transaction horizon of the source snapshot the mirror was last verified against
    /// ([`super::since`]); `None` when unknown (a mirror of an older build, a source before PostgreSQL 13).
    pub source_xmin: Option<i64>,
}

/// Quiet: without the "already exists, skipping" notices of every later run in the log.
const CREATE: &str = "SET client_min_messages = warning; \
     CREATE SCHEMA IF NOT EXISTS supaneon_sync; \
     CREATE TABLE IF NOT EXISTS supaneon_sync.mirror_state ( \
       id int PRIMARY KEY CHECK (id = 1), fingerprint text NOT NULL, verified boolean NOT NULL, \
       synced_at timestamptz NOT NULL, run_id text NOT NULL); \
     ALTER TABLE supaneon_sync.mirror_state ADD COLUMN IF NOT EXISTS source_xmin int8; \
     RESET client_min_messages";

/// The mirror's state, or `None` when it has none (a sync that never finished its first restore).
pub async fn read(client: &Client) -> Result<Option<MirrorState>, InspectError> {
    let exists: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('supaneon_sync.mirror_state') IS NOT NULL",
            &[],
        )
        .await
        .map_err(InspectError::query("looking for the mirror's state"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            // Through jsonb: a mirror made by an older build has no `source_xmin` column.
            "SELECT fingerprint, verified, (pg_catalog.to_jsonb(s) ->> 'source_xmin')::int8 \
             FROM supaneon_sync.mirror_state AS s WHERE id = 1",
            &[],
        )
        .await
        .map_err(InspectError::query("reading the mirror's state"))?;
    Ok(row.map(|r| MirrorState {
        fingerprint: r.get(0),
        verified: r.get(1),
        source_xmin: r.get(2),
    }))
}

/// Records that `run_id` starts writing: until [`mark_verified`], the mirror is no backup's source.
pub async fn mark_syncing(client: &Client, run_id: &str) -> Result<(), InspectError> {
    client
        .execute(
            "UPDATE supaneon_sync.mirror_state SET verified = false, run_id = $1 WHERE id = 1",
            &[&run_id],
        )
        .await
        .map_err(InspectError::query("marking the mirror as being synced"))?;
    Ok(())
}

/// Records a verified sync to `fingerprint`, of the source snapshot whose horizon was `source_xmin`.
pub async fn mark_verified(
    client: &Client,
    fingerprint: &str,
    run_id: &str,
    source_xmin: Option<i64>,
) -> Result<(), InspectError> {
    client
        .batch_execute(CREATE)
        .await
        .map_err(InspectError::query("creating the mirror's state table"))?;
    client
        .execute(
            "INSERT INTO supaneon_sync.mirror_state (id, fingerprint, verified, synced_at, run_id, source_xmin) \
             VALUES (1, $1, true, now(), $2, $3) \
             ON CONFLICT (id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, verified = true, \
               synced_at = EXCLUDED.synced_at, run_id = EXCLUDED.run_id, source_xmin = EXCLUDED.source_xmin",
            &[&fingerprint, &run_id, &source_xmin],
        )
        .await
        .map_err(InspectError::query("recording the mirror's verified sync"))?;
    Ok(())
}

/// Holds the mirror for this session: a second run syncing the same mirror at the same time would
/// interleave writes with ours. Released when the session closes.
pub async fn try_lock(client: &Client) -> Result<bool, InspectError> {
    Ok(client
        .query_one(
            "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext('supaneon-sync mirror'))",
            &[],
        )
        .await
        .map_err(InspectError::query("locking the mirror"))?
        .get(0))
}
