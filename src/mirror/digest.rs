//! Narrowing a changed table down to the buckets of its key space that differ, by digests computed on
//! each server: no row leaves either side to be compared.
//!
//! A row's place in the key space is the 64-bit hash of its key ([`TableShape::identity_hash`]); a
//! bucket at depth `d` holds the rows whose hash starts with the same `d` bits. Each level asks both
//! sides for a 31-bit digest of every non-empty bucket under the buckets that differed one level up, 256
//! children per parent, packed one row per parent (1 byte of child index and 4 of digest per child).
//! The digest folds the row count and the XOR of the row hashes: integer state, where a numeric sum per
//! bucket would spill tens of thousands of aggregate states to disk. The descent stops when a bucket
//! holds about two rows, or when nearly every bucket differs (a rewritten table is copied whole). A
//! digest collision (about 2⁻³¹ per bucket; or a pair of equal rows of a keyless table replaced by
//! another equal pair in the same bucket) hides a change only until verification, which reads every
//! changed table afresh with the manifest's checksum; a difference there rebuilds the mirror in full.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;

use super::apply::{Filter, TableShape};
use crate::pg::inspect::{row_hash, InspectError};
use crate::pg::manifest::ChecksumMethod;

/// Bits added per level: 256 children per bucket (a child's index still fits its one byte). Each level is
/// a scan of the table on both servers, so few wide levels beat many narrow ones.
const FAN_BITS: u32 = 8;
/// A table this small is copied whole: its digests would cost about as much as its rows.
const SMALL_TABLE_ROWS: i64 = 1024;
/// Rows per bucket at the first level.
const FIRST_LEVEL_ROWS: f64 = 1024.0;
/// Rows per bucket at which the descent stops.
const LEAF_ROWS: f64 = 2.0;
/// At this share of differing buckets the whole table is copied.
const REWRITTEN_SHARE: f64 = 0.95;

/// Which rows of a table to copy, and what finding out cost.
pub struct Narrowed {
    pub filter: Filter,
    /// Digest bytes read from the source.
    pub bytes_read: u64,
}

/// Finds the buckets of `shape` whose rows differ between `source` (in the snapshot) and `mirror`;
/// `rows` is the larger of the two row counts.
pub async fn narrow(
    source: &Client,
    mirror: &Client,
    shape: &TableShape,
    rows: i64,
    method: ChecksumMethod,
) -> Result<Narrowed, InspectError> {
    if rows <= SMALL_TABLE_ROWS {
        return Ok(Narrowed {
            filter: Filter::All,
            bytes_read: 0,
        });
    }
    let levels = ((rows as f64 / FIRST_LEVEL_ROWS).log2() / FAN_BITS as f64).ceil() as u32;
    let mut bits = (levels.max(1) * FAN_BITS).min(60);
    // The buckets one level up that differed; `None` at the first level, which reads every bucket.
    let mut parents: Option<Vec<i64>> = None;
    let mut bytes_read = 0u64;
    loop {
        let started = std::time::Instant::now();
        let sql = level_sql(shape, method, bits, parents.is_some());
        let (theirs, ours) = tokio::join!(
            digests(source, &sql, parents.as_deref()),
            digests(mirror, &sql, parents.as_deref()),
        );
        let (theirs, read) = theirs?;
        let (ours, _) = ours?;
        bytes_read += read;
        let all: BTreeSet<i64> = theirs.keys().chain(ours.keys()).copied().collect();
        let differing: Vec<i64> = all
            .iter()
            .copied()
            .filter(|b| theirs.get(b) != ours.get(b))
            .collect();
        let share = differing.len() as f64 / all.len().max(1) as f64;
        tracing::info!(
            table = %shape.qualified(),
            bits,
            buckets = all.len(),
            differing = differing.len(),
            seconds = started.elapsed().as_secs_f64(),
            "digest level compared"
        );
        let rows_per_bucket = rows as f64 / 2f64.powi(bits as i32);
        if differing.is_empty() {
            // The table's checksum differed but no bucket does: a digest collision; copy it whole.
            return Ok(Narrowed {
                filter: Filter::All,
                bytes_read,
            });
        }
        if parents.is_none() && share >= REWRITTEN_SHARE {
            return Ok(Narrowed {
                filter: Filter::All,
                bytes_read,
            });
        }
        if rows_per_bucket <= LEAF_ROWS || bits + FAN_BITS > 60 {
            return Ok(Narrowed {
                filter: Filter::Buckets {
                    bits,
                    buckets: differing,
                },
                bytes_read,
            });
        }
        parents = Some(differing);
        bits += FAN_BITS;
    }
}

/// The digests of one level: per parent bucket, its children's 1-byte index and 4-byte digest.
fn level_sql(shape: &TableShape, method: ChecksumMethod, bits: u32, filtered: bool) -> String {
    let filter = if filtered {
        format!(
            "WHERE (q.ih >> {}) = ANY($1::int8[])",
            64 - (bits - FAN_BITS)
        )
    } else {
        String::new()
    };
    format!(
        "SELECT b >> {FAN_BITS} AS p, \
                pg_catalog.string_agg(pg_catalog.set_byte('\\x00'::bytea, 0, (b & {mask})::int4) || pg_catalog.int4send(dg), ''::bytea ORDER BY b) \
         FROM (SELECT q.ih >> {shift} AS b, \
                      ((pg_catalog.bit_xor(q.rh) # (pg_catalog.count(*) * 1000003)) & 2147483647)::int4 AS dg \
               FROM (SELECT {ih} AS ih, {rh} AS rh \
                     FROM ONLY {table} AS r) AS q {filter} \
               GROUP BY 1) AS buckets \
         GROUP BY 1",
        mask = (1u32 << FAN_BITS) - 1,
        shift = 64 - bits,
        ih = shape.identity_hash("r"),
        // The manifest's row hash for this table, never the unmixed record hash: XOR over it would miss
        // changes that move a value.
        rh = row_hash(
            match method {
                ChecksumMethod::Record => ChecksumMethod::MixedRecord,
                other => other,
            },
            "r",
            &shape.hashed
        ),
        table = shape.qualified(),
    )
}

/// Runs a level's query: bucket → digest, and the bytes the answer took.
async fn digests(
    client: &Client,
    sql: &str,
    parents: Option<&[i64]>,
) -> Result<(BTreeMap<i64, [u8; 4]>, u64), InspectError> {
    let rows = match parents {
        Some(parents) => client.query(sql, &[&parents]).await,
        None => client.query(sql, &[]).await,
    }
    .map_err(InspectError::query("digesting the table's key ranges"))?;
    let mut out = BTreeMap::new();
    let mut bytes = 0u64;
    for row in rows {
        let parent: i64 = row.get(0);
        let packed: Vec<u8> = row.get(1);
        // A DataRow: type, length, column count, two length-prefixed values.
        bytes += 1 + 4 + 2 + 4 + 8 + 4 + packed.len() as u64;
        for child in packed.chunks_exact(5) {
            let bucket = (parent << FAN_BITS) | i64::from(child[0]);
            out.insert(bucket, [child[1], child[2], child[3], child[4]]);
        }
    }
    Ok((out, bytes))
}
