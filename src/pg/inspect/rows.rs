//! Reading the tables' rows for the manifest: row count and order-independent checksum per table,
//! shared out between connections, with tables under FORCE ROW LEVEL SECURITY read through a role
//! that bypasses RLS.

use std::sync::Mutex;

use futures_util::future::try_join_all;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::{quote_ident, quote_qualified, row_hash, InspectError, Relation};
use crate::pg::blocks::BlockRange;
use crate::pg::manifest::{TableFingerprint, TableKind};

/// Hooks into the table reads, for two manifests taken side by side (the mirror's sync reads the
/// mirror's tables after the source's, and only those that did not change on the source).
#[derive(Default, Clone, Copy)]
pub struct ReadHooks<'a> {
    /// Told each table's (schema, name, rows, checksum) as soon as it is read.
    pub on_read: Option<&'a OnRead<'a>>,
    /// Asked before a table (schema, name, kind) is read: `false` leaves it unread (no rows, an empty
    /// checksum).
    pub gate: Option<&'a GateFn<'a>>,
}

/// See [`ReadHooks::on_read`].
pub type OnRead<'a> = dyn Fn(&str, &str, i64, &str) + Sync + 'a;
/// See [`ReadHooks::gate`].
pub type GateFn<'a> = dyn Fn(String, String, TableKind) -> Gate<'a> + Sync + 'a;

/// What a [`ReadHooks::gate`] answers: whether to read the table, once it knows.
pub type Gate<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>;

/// A table from this many blocks (8 MB) on, larger than its even share of the work, is read in
/// parts, one per connection, each a scan of its block range: on a database with one large table the
/// other connections would otherwise sit idle while one reads it. Measured in the benchmark's 1 % runs
/// (2 CPUs for everything): the mirror's read of `pgbench_accounts` after its merge 1.0-1.5 s, was
/// 1.2-1.5 s; the side-by-side comparison did not change, its servers already had both CPUs busy.
const SPLIT_PAGES: i64 = 1024;

/// One read of a planned relation: all of it, or one block range.
struct Part {
    table: usize,
    range: Option<BlockRange>,
    pages: i64,
}

/// What the parts of one table added up to so far.
#[derive(Default)]
struct Sum {
    rows: i64,
    checksum: i128,
    parts_left: usize,
    /// The gate left a part unread: the table is unread.
    skipped: bool,
}

/// Fills in rows and checksum of every planned relation marked `read`, shared out between `workers`:
/// largest first, each to the least-loaded connection, a large table split into block ranges read on
/// several. The parts' counts and checksums (sums of row hashes) add up to the whole table's exactly.
pub(super) async fn read_fingerprints(
    workers: &[&Client],
    tables: &mut [(TableFingerprint, Relation)],
    hooks: &ReadHooks<'_>,
) -> Result<(), InspectError> {
    let mut parts = plan_parts(tables, workers.len());
    parts.sort_by(|a, b| b.pages.cmp(&a.pages).then(a.table.cmp(&b.table)));
    let mut shares: Vec<(i64, Vec<Part>)> = (0..workers.len()).map(|_| (0, Vec::new())).collect();
    let mut sums: Vec<Sum> = (0..tables.len()).map(|_| Sum::default()).collect();
    for part in parts {
        sums[part.table].parts_left += 1;
        let lightest = shares
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("at least one worker");
        lightest.0 += part.pages.max(1);
        lightest.1.push(part);
    }
    let sums = Mutex::new(sums);
    let planned: &[(TableFingerprint, Relation)] = tables;
    let forced = planned.iter().any(|(_, rel)| rel.read && rel.force_rls);
    let mut bypass = Vec::with_capacity(workers.len());
    for client in workers {
        bypass.push(if forced {
            bypass_role(client).await?
        } else {
            None
        });
    }
    let sums_ref = &sums;
    let readers = workers
        .iter()
        .zip(&shares)
        .zip(&bypass)
        .map(|((client, (_, parts)), bypass)| {
            let jobs = parts.iter().map(move |part| {
                let (fp, rel) = &planned[part.table];
                let through = if rel.force_rls { bypass.as_ref() } else { None };
                async move {
                    // A gate answers alike for every part of a table (it waits on the same fact).
                    if let Some(gate) = hooks.gate {
                        if !gate(rel.schema.clone(), rel.name.clone(), rel.kind).await {
                            add(sums_ref, part.table, None);
                            return Ok(());
                        }
                    }
                    let columns = rel.columns.as_deref().unwrap_or_default();
                    let (rows, checksum) = fingerprint(
                        client,
                        rel,
                        &row_hash(fp.checksum_method, "r", columns),
                        part.range,
                        through,
                    )
                    .await?;
                    if let Some((rows, checksum)) =
                        add(sums_ref, part.table, Some((rows, checksum)))
                    {
                        if let Some(on_read) = hooks.on_read {
                            on_read(&rel.schema, &rel.name, rows, &checksum.to_string());
                        }
                    }
                    Ok::<_, InspectError>(())
                }
            });
            // One connection pipelines its statements: no round trip per table.
            try_join_all(jobs)
        });
    try_join_all(readers).await?;
    let sums = sums.into_inner().unwrap_or_else(|e| e.into_inner());
    for ((fp, rel), sum) in tables.iter_mut().zip(sums) {
        if rel.read && !sum.skipped && sum.parts_left == 0 {
            fp.rows = sum.rows;
            fp.checksum = sum.checksum.to_string();
        }
    }
    Ok(())
}

/// The reads of the relations marked `read`: one each, or for a table larger than [`SPLIT_PAGES`] and
/// than its even share of all the blocks to read, one per worker, by block range.
fn plan_parts(tables: &[(TableFingerprint, Relation)], workers: usize) -> Vec<Part> {
    let total: i64 = tables
        .iter()
        .filter(|(_, rel)| rel.read)
        .map(|(_, rel)| rel.pages.max(1))
        .sum();
    let mut parts = Vec::new();
    for (table, (_, rel)) in tables.iter().enumerate().filter(|(_, (_, rel))| rel.read) {
        let split = workers > 1
            && rel.block_ranges
            && rel.pages >= SPLIT_PAGES
            && rel.pages.saturating_mul(workers as i64) > total;
        if split {
            let ranges = BlockRange::split(rel.pages, workers as u32);
            let share = rel.pages / workers as i64;
            parts.extend(ranges.into_iter().map(|range| Part {
                table,
                range: Some(range),
                pages: share,
            }));
        } else {
            parts.push(Part {
                table,
                range: None,
                pages: rel.pages,
            });
        }
    }
    parts
}

/// Adds one part's read (`None`: left unread by the gate) to its table's sum; the table's rows and
/// checksum once this was its last part and none was left unread.
fn add(sums: &Mutex<Vec<Sum>>, table: usize, read: Option<(i64, i128)>) -> Option<(i64, i128)> {
    let mut sums = sums.lock().unwrap_or_else(|e| e.into_inner());
    let sum = &mut sums[table];
    sum.parts_left -= 1;
    match read {
        Some((rows, checksum)) => {
            sum.rows += rows;
            sum.checksum += checksum;
        }
        None => sum.skipped = true,
    }
    (sum.parts_left == 0 && !sum.skipped).then_some((sum.rows, sum.checksum))
}

/// A role with BYPASSRLS that the session's role may become (on Neon, `neon_superuser`), and the
/// session's role to return to. A table with FORCE ROW LEVEL SECURITY is read through it, since its
/// owner (the branch's role) would otherwise read it through its policies, and `row_security = off`
/// makes that an error instead of a silent filter.
#[derive(Debug, Clone)]
struct BypassRole {
    bypass: String,
    own: String,
}

/// The [`BypassRole`] of `client`'s session; `None` when its role bypasses RLS itself (superuser or
/// BYPASSRLS) or has no such role to become (then a FORCE table fails to read, and says why).
async fn bypass_role(client: &Client) -> Result<Option<BypassRole>, InspectError> {
    let row = client
        .query_one(
            "SELECT current_user::text, r.rolsuper OR r.rolbypassrls, \
                    (SELECT b.rolname::text FROM pg_catalog.pg_roles b \
                      WHERE b.rolbypassrls AND NOT b.rolsuper AND b.rolname <> current_user \
                        AND pg_catalog.pg_has_role(current_user, b.oid, 'MEMBER') \
                      ORDER BY b.rolname LIMIT 1) \
               FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(InspectError::query(
            "looking for a role that bypasses row level security",
        ))?;
    let (own, bypasses, bypass): (String, bool, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    Ok(match (bypasses, bypass) {
        (false, Some(bypass)) => Some(BypassRole { bypass, own }),
        _ => None,
    })
}

/// Row count and order-independent checksum of one table, or of its rows in `range` (`FROM ONLY`:
/// partitions and inheritance children are fingerprinted on their own). The checksum sums a 64-bit
/// hash of each row; `sum(int8)` is exact (numeric result), so it cannot overflow. A simple query: one
/// round trip, no prepared statement.
///
/// Measured on 200k rows of mixed types (PG 15, busy 2-core host): `hashtextextended` of the text form
/// 0.50 s, `md5` folded to 64 bits 1.0 s; the row-to-text rendering dominates either way. On the
/// benchmark's 1.6 GB, `hash_record_extended` (no rendering) takes about half the time of the text
/// form, and hashing column by column (no whole-row value) about 60 % of `hash_record_extended`.
async fn fingerprint(
    client: &Client,
    rel: &Relation,
    row_hash: &str,
    range: Option<BlockRange>,
    through: Option<&BypassRole>,
) -> Result<(i64, i128), InspectError> {
    let (schema, name) = (&rel.schema, &rel.name);
    let mut sql = format!(
        "SELECT pg_catalog.count(*), COALESCE(pg_catalog.sum({row_hash}), 0) FROM ONLY {} AS r",
        quote_qualified(schema, name)
    );
    if let Some(range) = range {
        sql = format!("{sql} WHERE {}", range.condition("r"));
    }
    if let Some(role) = through {
        sql = format!(
            "SET ROLE {}; {sql}; SET ROLE {}",
            quote_ident(&role.bypass),
            quote_ident(&role.own)
        );
    }
    let what = || format!("reading table {schema}.{name}");
    let messages = client
        .simple_query(&sql)
        .await
        .map_err(|source| InspectError::Query {
            what: what(),
            source,
        })?;
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .ok_or_else(|| InspectError::unexpected(what(), "no row"))?;
    let rows = row
        .get(0)
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| InspectError::unexpected(what(), "count is not a number"))?;
    // A sum of int8 hashes: an integer, within i128 for up to 2^64 rows.
    let checksum = row
        .get(1)
        .ok_or_else(|| InspectError::unexpected(what(), "checksum is NULL"))?
        .parse::<i128>()
        .map_err(|_| InspectError::unexpected(what(), "checksum is not an integer"))?;
    Ok((rows, checksum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::manifest::ChecksumMethod;

    fn planned(name: &str, pages: i64, read: bool) -> (TableFingerprint, Relation) {
        (
            TableFingerprint {
                schema: "public".into(),
                name: name.into(),
                kind: TableKind::Table,
                rows: 0,
                checksum: String::new(),
                checksum_method: ChecksumMethod::Columns,
                data_excluded: false,
                refreshed_on_restore: false,
            },
            Relation {
                schema: "public".into(),
                name: name.into(),
                kind: TableKind::Table,
                populated: true,
                pages,
                record_hashable: true,
                columns: Some(Vec::new()),
                force_rls: false,
                block_ranges: true,
                read,
            },
        )
    }

    fn ranges(parts: &[Part], table: usize) -> Vec<Option<BlockRange>> {
        parts
            .iter()
            .filter(|p| p.table == table)
            .map(|p| p.range)
            .collect()
    }

    #[test]
    fn a_table_larger_than_its_share_is_read_in_one_block_range_per_worker() {
        let tables = vec![
            planned("big", 100_000, true),
            planned("small", 2_000, true),
            planned("unread", 50_000, false),
        ];
        let parts = plan_parts(&tables, 2);
        assert_eq!(
            ranges(&parts, 0),
            vec![
                Some(BlockRange {
                    from: 0,
                    to: Some(50_000)
                }),
                Some(BlockRange {
                    from: 50_000,
                    to: None
                }),
            ]
        );
        assert_eq!(ranges(&parts, 1), vec![None]);
        assert!(ranges(&parts, 2).is_empty());
        // One worker, or a server without TID range scans: whole tables.
        assert!(plan_parts(&tables, 1).iter().all(|p| p.range.is_none()));
        let mut old = tables;
        old[0].1.block_ranges = false;
        assert!(plan_parts(&old, 2).iter().all(|p| p.range.is_none()));
    }

    #[test]
    fn tables_within_their_share_or_small_are_read_whole() {
        // Two even tables already share out evenly.
        let even = vec![planned("a", 50_000, true), planned("b", 50_000, true)];
        assert!(plan_parts(&even, 2).iter().all(|p| p.range.is_none()));
        // A lone small table is not worth a second query.
        let small = vec![planned("a", SPLIT_PAGES - 1, true)];
        assert_eq!(plan_parts(&small, 2).len(), 1);
        let at_threshold = vec![planned("a", SPLIT_PAGES, true)];
        assert_eq!(plan_parts(&at_threshold, 3).len(), 3);
    }

    #[test]
    fn the_parts_add_up_once_the_last_is_in_and_a_gated_part_leaves_the_table_unread() {
        let sums = Mutex::new(
            (0..2)
                .map(|_| Sum {
                    parts_left: 2,
                    ..Sum::default()
                })
                .collect(),
        );
        // Hashes are signed: sums of parts may cross i64's range and come back.
        assert_eq!(add(&sums, 0, Some((3, i64::MAX as i128 + 5))), None);
        assert_eq!(add(&sums, 0, Some((4, -(i64::MAX as i128)))), Some((7, 5)));
        assert_eq!(add(&sums, 1, None), None);
        assert_eq!(add(&sums, 1, Some((1, 1))), None);
    }
}
