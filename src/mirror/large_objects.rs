//! Large objects in an incremental sync: diffed by OID and the MD5 of their data, computed on each
//! server, so only new or changed objects cross the wire. A changed object is replaced whole (unlinked and
//! created again under its OID); then the source's owners and grants are applied to the objects written,
//! as after a full restore ([`crate::pg::large_objects`]).

use std::collections::BTreeMap;

use tokio_postgres::Client;

use crate::pg::inspect::InspectError;
use crate::pg::large_objects;

/// What the large objects' sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LargeObjectSync {
    pub removed: u64,
    pub written: u64,
    /// Bytes read from the source: digests and the data of the objects written.
    pub bytes_read: u64,
}

const DIGESTS_SQL: &str = "SELECT m.oid, pg_catalog.md5(pg_catalog.lo_get(m.oid)) \
     FROM pg_catalog.pg_largeobject_metadata m ORDER BY 1";

async fn digests(client: &Client) -> Result<BTreeMap<u32, String>, InspectError> {
    Ok(client
        .query(DIGESTS_SQL, &[])
        .await
        .map_err(InspectError::query("digesting the large objects"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Brings `mirror`'s large objects to `source`'s (which must be inside the snapshot). `roles` are the
/// roles whose grants are carried over (the manifest's privilege roles). Returns what it did and the
/// lines of what could not be carried over (owners, grants), which verification then reports.
pub async fn sync(
    source: &Client,
    mirror: &Client,
    roles: &[String],
) -> Result<(LargeObjectSync, Vec<String>), InspectError> {
    let (theirs, ours) = tokio::join!(digests(source), digests(mirror));
    let (theirs, ours) = (theirs?, ours?);
    // 4 bytes of OID and 32 of digest a row, plus the row's framing.
    let mut done = LargeObjectSync {
        bytes_read: theirs.len() as u64 * 50,
        ..LargeObjectSync::default()
    };
    let stale: Vec<u32> = ours
        .iter()
        .filter(|(oid, digest)| theirs.get(oid) != Some(digest))
        .map(|(oid, _)| *oid)
        .collect();
    let fresh: Vec<u32> = theirs
        .iter()
        .filter(|(oid, digest)| ours.get(oid) != Some(digest))
        .map(|(oid, _)| *oid)
        .collect();
    for oid in &stale {
        mirror
            .execute("SELECT pg_catalog.lo_unlink($1)", &[oid])
            .await
            .map_err(InspectError::query(format!("removing large object {oid}")))?;
        done.removed += 1;
    }
    for oid in &fresh {
        let data: Vec<u8> = source
            .query_one("SELECT pg_catalog.lo_get($1)", &[oid])
            .await
            .map_err(InspectError::query(format!("reading large object {oid}")))?
            .get(0);
        done.bytes_read += data.len() as u64;
        mirror
            .execute("SELECT pg_catalog.lo_from_bytea($1, $2)", &[oid, &data])
            .await
            .map_err(InspectError::query(format!("writing large object {oid}")))?;
        done.written += 1;
    }
    if fresh.is_empty() {
        return Ok((done, Vec::new()));
    }
    let owners: Vec<(u32, String)> = large_objects::foreign_owners(source)
        .await?
        .into_iter()
        .filter(|(oid, _)| fresh.contains(oid))
        .collect();
    let grants: Vec<large_objects::LargeObjectGrant> = large_objects::grants(source, roles)
        .await?
        .into_iter()
        .filter(|(oid, ..)| fresh.contains(oid))
        .collect();
    let mut notes = large_objects::restore_owners(mirror, &owners).await;
    notes.extend(large_objects::restore_grants(mirror, &grants).await);
    Ok((done, notes))
}
