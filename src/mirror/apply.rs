//! Writing changed rows into the mirror: one table's rows (all of them, only some buckets of its key
//! space, or the rows written since the last sync) copied from the source's snapshot and merged in, so
//! that the mirror's rows equal the source's afterwards (for written rows: those rows).
//!
//! The source's rows land in a temporary stage first; then rows gone from the source are deleted, rows
//! whose content differs are updated in place, and new rows are inserted, each staged row finding its
//! row by a lookup of the key in key order where the key's index allows ([`Job::probes_key`]).
//! Updating in place (not delete and insert) keeps foreign keys that point at an unchanged key valid,
//! so no constraint is dropped: the tables of one foreign-key family are merged in one transaction,
//! deletes children first and inserts parents first. The user's triggers are disabled for the merge
//! (they fired on the source already) and FORCE ROW LEVEL SECURITY lifted; both come back before the
//! commit.

use futures_util::{SinkExt, StreamExt};
use tokio_postgres::Client;

use super::since::Since;
use crate::pg::inspect::{
    hashed_columns, quote_ident, quote_qualified, server_major, HashedColumn, InspectError,
};

/// What must be known about a table to merge into it, read from the mirror's catalog.
#[derive(Debug, Clone)]
pub struct TableShape {
    pub schema: String,
    pub name: String,
    /// Every column that takes a value (not generated), in order.
    pub columns: Vec<String>,
    /// Columns an UPDATE may set: not in the key, not `GENERATED ALWAYS AS IDENTITY`.
    pub update_columns: Vec<String>,
    /// The primary key, or else the narrowest unique key of NOT NULL plain columns; `None`: rows are
    /// their own identity.
    pub key: Option<Vec<String>>,
    /// The key's index answers `=` on its columns as the merge writes it (the types' default operator
    /// classes, the columns' own collations), so a lookup by key can use it.
    pub key_indexed: bool,
    /// Triggers that fire on our writes (enabled in origin mode): (name, `tgenabled`).
    pub triggers: Vec<(String, String)>,
    pub force_rls: bool,
    /// Tables this one references by a foreign key (schema, name).
    pub references: Vec<(String, String)>,
    /// The columns as [`ChecksumMethod::Columns`](crate::pg::manifest::ChecksumMethod::Columns) hashes
    /// them (for the digests).
    pub hashed: Vec<HashedColumn>,
}

impl TableShape {
    pub fn qualified(&self) -> String {
        quote_qualified(&self.schema, &self.name)
    }

    /// The expression that places a row in the key space (64 bits): the hash of its key's text, or of
    /// the whole row for a table without a key. Computed the same way on the source and the mirror.
    pub fn identity_hash(&self, alias: &str) -> String {
        match &self.key {
            Some(key) => format!(
                "pg_catalog.hashtextextended(ROW({})::pg_catalog.text, 0)",
                key.iter()
                    .map(|k| format!("{alias}.{}", quote_ident(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!("pg_catalog.hashtextextended({alias}.*::pg_catalog.text, 0)"),
        }
    }

    fn column_list(&self, alias: Option<&str>) -> String {
        self.columns
            .iter()
            .map(|c| match alias {
                Some(a) => format!("{a}.{}", quote_ident(c)),
                None => quote_ident(c),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Which rows of a table are copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    /// The rows whose identity hash, shifted right by `64 - bits`, is one of `buckets`.
    Buckets {
        bits: u32,
        buckets: Vec<i64>,
    },
    /// The source's rows written since the last sync (a keyed table only), or those of one slice of
    /// it: merged by key, nothing deleted, since a row outside the filter may still be on the source.
    WrittenSince(Since, Option<Slice>),
}

/// One of disjoint slices of a table's rows on the source, by their place in its file (blocks
/// `from` up to `to`, the last slice open-ended), merged on a session of its own: a large table's merge
/// spread over the sync's streams, each slice a scan of its blocks only (a TID range scan). Without
/// slices the source scans a table for its written rows in one process: the test, `age(xmin)`, is
/// parallel restricted, so PostgreSQL gives that scan no parallel workers. Slices are
/// even in blocks, not always in written rows: new row versions often land at the table's end (measured:
/// right after a full restore every updated row went to the last slice), and then that slice's merge
/// does the work of all; the source still scans the table only once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub from: i64,
    /// `None`: to the end of the table, however it grew.
    pub to: Option<i64>,
}

impl Slice {
    /// `count` slices of a table of `pages` blocks.
    pub fn split(pages: i64, count: u32) -> Vec<Slice> {
        let count = i64::from(count.max(1));
        (0..count)
            .map(|i| Slice {
                from: pages * i / count,
                to: (i + 1 < count).then(|| pages * (i + 1) / count),
            })
            .collect()
    }

    fn condition(&self, alias: &str) -> String {
        let from = format!("{alias}.ctid >= '({},0)'::pg_catalog.tid", self.from);
        match self.to {
            Some(to) => format!("{from} AND {alias}.ctid < '({to},0)'::pg_catalog.tid"),
            None => from,
        }
    }
}

impl Filter {
    fn condition(&self, shape: &TableShape, alias: &str) -> String {
        match self {
            Filter::All => "true".to_string(),
            Filter::WrittenSince(since, None) => since.condition(alias),
            Filter::WrittenSince(since, Some(slice)) => {
                format!("{} AND {}", slice.condition(alias), since.condition(alias))
            }
            Filter::Buckets { bits, buckets } => format!(
                "({} >> {}) = ANY('{{{}}}'::int8[])",
                shape.identity_hash(alias),
                64 - bits,
                buckets
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// The shapes of `tables` on the mirror.
pub async fn shapes(
    mirror: &Client,
    tables: &[(String, String)],
) -> Result<Vec<TableShape>, InspectError> {
    let names: Vec<String> = tables
        .iter()
        .map(|(schema, name)| quote_qualified(schema, name))
        .collect();
    // The column hash is taken from PostgreSQL 14 on (see `inspect::row_hash`); older servers hash by text.
    let mut hashed = if server_major(mirror).await? >= 14 {
        hashed_columns(mirror, &names).await?
    } else {
        Default::default()
    };
    let mut out = Vec::with_capacity(tables.len());
    for (schema, name) in tables {
        let rel = quote_qualified(schema, name);
        let what = || format!("reading the definition of {schema}.{name} on the mirror");
        let columns = mirror
            .query(
                "SELECT a.attname::text, a.attgenerated <> '', a.attidentity = 'a' \
                 FROM pg_catalog.pg_attribute a \
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&rel],
            )
            .await
            .map_err(InspectError::query(what()))?;
        let key: Option<(Vec<String>, bool)> = mirror
            .query_opt(
                "SELECT array_agg(a.attname::text ORDER BY k.ord), \
                        bool_and(o.opcdefault AND i.indcollation[(k.ord - 1)::int] = a.attcollation) \
                 FROM pg_catalog.pg_index i \
                 CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 JOIN pg_catalog.pg_opclass o ON o.oid = i.indclass[(k.ord - 1)::int] \
                 WHERE i.indrelid = $1::text::regclass AND (i.indisprimary OR i.indisunique) \
                   AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL \
                 GROUP BY i.indexrelid, i.indisprimary \
                 HAVING bool_and(a.attnotnull) \
                 ORDER BY i.indisprimary DESC, count(*), i.indexrelid LIMIT 1",
                &[&rel],
            )
            .await
            .map_err(InspectError::query(what()))?
            .map(|r| (r.get(0), r.get(1)));
        let (key, key_indexed) = match key {
            Some((key, indexed)) => (Some(key), indexed),
            None => (None, false),
        };
        let triggers = text_pairs(
            mirror,
            &rel,
            &what(),
            "SELECT tgname::text, tgenabled::text FROM pg_catalog.pg_trigger \
             WHERE tgrelid = $1::text::regclass AND NOT tgisinternal AND tgenabled IN ('O', 'A') \
             ORDER BY tgname",
        )
        .await?;
        let force_rls: bool = mirror
            .query_one(
                "SELECT relforcerowsecurity FROM pg_catalog.pg_class WHERE oid = $1::text::regclass",
                &[&rel],
            )
            .await
            .map_err(InspectError::query(what()))?
            .get(0);
        let references = text_pairs(
            mirror,
            &rel,
            &what(),
            "SELECT DISTINCT n.nspname::text, c.relname::text FROM pg_catalog.pg_constraint f \
             JOIN pg_catalog.pg_class c ON c.oid = f.confrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE f.contype = 'f' AND f.conrelid = $1::text::regclass AND f.confrelid <> f.conrelid",
        )
        .await?;
        let key_set: Vec<String> = key.clone().unwrap_or_default();
        out.push(TableShape {
            schema: schema.clone(),
            name: name.clone(),
            columns: columns
                .iter()
                .filter(|r| !r.get::<_, bool>(1))
                .map(|r| r.get(0))
                .collect(),
            update_columns: columns
                .iter()
                .filter(|r| !r.get::<_, bool>(1) && !r.get::<_, bool>(2))
                .map(|r| r.get::<_, String>(0))
                .filter(|c| !key_set.contains(c))
                .collect(),
            key,
            key_indexed,
            triggers,
            force_rls,
            references,
            hashed: hashed.remove(&rel).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The two text columns of each row a catalog query about the table `rel` (its `$1`) returns.
async fn text_pairs(
    mirror: &Client,
    rel: &str,
    what: &str,
    sql: &str,
) -> Result<Vec<(String, String)>, InspectError> {
    Ok(mirror
        .query(sql, &[&rel])
        .await
        .map_err(InspectError::query(what))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// What one table's merge moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merged {
    /// Rows read from the source.
    pub rows_read: u64,
    /// Bytes of COPY data read from the source.
    pub bytes_read: u64,
    pub deleted: u64,
    pub updated: u64,
    pub inserted: u64,
}

/// One table of a family to merge: its shape, which rows, and its stage's name.
pub struct Job<'a> {
    pub shape: &'a TableShape,
    pub filter: Filter,
    stage: String,
}

impl<'a> Job<'a> {
    pub fn new(shape: &'a TableShape, filter: Filter, index: usize) -> Job<'a> {
        Job {
            shape,
            filter,
            stage: format!("supaneon_stage_{index}"),
        }
    }

    /// Whether the staged rows find theirs by probing the table's key index, one lookup each, in key
    /// order (a nested loop over the sorted stage), rather than as PostgreSQL's planner would match
    /// them. Measured on pgbench_accounts (6.5 million rows, PostgreSQL 15), updating every 400th,
    /// 100th, 25th, 10th and 4th row: the probes in key order took 0.44–0.49 s, 1.42–1.47 s, 3.5–4.6 s,
    /// 6.2–6.9 s and 16 s; the planner's own plans 0.51–0.58 s (probes in the stage's order), 1.75–1.98 s
    /// (the same), 5.6 s (a merge join: the whole key index read), 18.8–20.5 s and 45 s (hash joins:
    /// the whole table read, and its rows then written in hash order). In key order the lookups walk
    /// the index forward, and the table's pages (laid out much in key order) are each written once.
    pub fn probes_key(&self) -> bool {
        self.shape.key.is_some() && self.shape.key_indexed
    }

    /// The stage as the UPDATE and the INSERT read it: in key order when they probe the key.
    fn stage_source(&self) -> String {
        let stage = quote_ident(&self.stage);
        match &self.shape.key {
            Some(key) if self.probes_key() => format!(
                "(SELECT * FROM {stage} ORDER BY {})",
                key.iter()
                    .map(|k| quote_ident(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => stage,
        }
    }
}

/// Leaves the planner only nested loops for the rest of the transaction (or until [`PLANNER_JOINS`]):
/// with the stage in key order, each staged row looked up in the key's index ([`Job::probes_key`]).
const LOOKUPS_BY_KEY: &str = "SET LOCAL enable_mergejoin = off; SET LOCAL enable_hashjoin = off";
/// Gives the planner back its join methods.
const PLANNER_JOINS: &str = "RESET enable_mergejoin; RESET enable_hashjoin";

/// Merges a family of tables (`jobs`, referenced tables before those referencing them) in one
/// transaction on `mirror`, reading from `source`, which must be inside the source's snapshot.
pub async fn merge_family(
    source: &Client,
    mirror: &Client,
    jobs: &[Job<'_>],
) -> Result<Vec<Merged>, InspectError> {
    mirror
        .batch_execute("BEGIN")
        .await
        .map_err(InspectError::query("opening the mirror's transaction"))?;
    let result = async {
        let mut merged = vec![Merged::default(); jobs.len()];
        for (job, m) in jobs.iter().zip(&mut merged) {
            let s = job.shape;
            // Column types, typmods and collations as the table has them; no constraints.
            let prologue = format!(
                "{}CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM ONLY {} WITH NO DATA",
                guards_sql(s, false),
                quote_ident(&job.stage),
                s.column_list(None),
                s.qualified()
            );
            mirror
                .batch_execute(&prologue)
                .await
                .map_err(InspectError::query(format!(
                    "preparing {} on the mirror",
                    s.qualified()
                )))?;
            let (rows, bytes) = stage(source, mirror, job).await?;
            // A temporary table has no statistics: without them the planner takes the stage for
            // thousands of rows and scans the whole table to match it. A stage matched by lookups of
            // the key alone needs none; one whose range is emptied first (a DELETE, planned by
            // PostgreSQL) does.
            if !job.probes_key() || delete_sql(job).is_some() {
                mirror
                    .batch_execute(&format!("ANALYZE {}", quote_ident(&job.stage)))
                    .await
                    .map_err(InspectError::query(format!(
                        "analyzing the stage of {}",
                        s.qualified()
                    )))?;
            }
            m.rows_read = rows;
            m.bytes_read = bytes;
        }
        // Rows gone from the source: children first, so no key still referenced is deleted.
        for (job, m) in jobs.iter().zip(&mut merged).rev() {
            let Some(delete) = delete_sql(job) else {
                continue;
            };
            m.deleted = mirror
                .execute(&delete, &[])
                .await
                .map_err(InspectError::query(format!(
                    "deleting rows of {} on the mirror",
                    job.shape.qualified()
                )))?;
        }
        // Changed and new rows: parents first, so every new reference finds its key.
        let mut by_lookups = false;
        for (job, m) in jobs.iter().zip(&mut merged) {
            if job.probes_key() != by_lookups {
                by_lookups = job.probes_key();
                let joins = if by_lookups {
                    LOOKUPS_BY_KEY
                } else {
                    PLANNER_JOINS
                };
                mirror
                    .batch_execute(joins)
                    .await
                    .map_err(InspectError::query("choosing how staged rows are matched"))?;
            }
            if let Some(update) = update_sql(job) {
                m.updated = mirror
                    .execute(&update, &[])
                    .await
                    .map_err(InspectError::query(format!(
                        "updating rows of {} on the mirror",
                        job.shape.qualified()
                    )))?;
            }
            // Every staged row updated one with its key: none is new, and the probe for absent keys
            // (one index lookup per staged row) is skipped.
            if job.shape.key.is_some() && m.updated == m.rows_read {
                continue;
            }
            m.inserted =
                mirror
                    .execute(&insert_sql(job), &[])
                    .await
                    .map_err(InspectError::query(format!(
                        "inserting rows of {} on the mirror",
                        job.shape.qualified()
                    )))?;
        }
        let epilogue: String = jobs.iter().map(|job| guards_sql(job.shape, true)).collect();
        mirror
            .batch_execute(&format!("{epilogue}COMMIT"))
            .await
            .map_err(InspectError::query("committing the mirror's transaction"))?;
        Ok(merged)
    }
    .await;
    if result.is_err() {
        let _ = mirror.batch_execute("ROLLBACK").await;
    }
    result
}

/// The statements that lift (`restore: false`) or put back (`restore: true`) what must not act on the
/// merge: the triggers that fire on our writes (back in their own mode, `ENABLE` or `ENABLE ALWAYS`) and
/// FORCE ROW LEVEL SECURITY. Each ends with `;`.
fn guards_sql(s: &TableShape, restore: bool) -> String {
    let mut sql = String::new();
    for (trigger, state) in &s.triggers {
        let how = match (restore, state.as_str()) {
            (false, _) => "DISABLE",
            (true, "A") => "ENABLE ALWAYS",
            (true, _) => "ENABLE",
        };
        sql.push_str(&format!(
            "ALTER TABLE {} {how} TRIGGER {};",
            s.qualified(),
            quote_ident(trigger)
        ));
    }
    if s.force_rls {
        let how = if restore { "FORCE" } else { "NO FORCE" };
        sql.push_str(&format!(
            "ALTER TABLE {} {how} ROW LEVEL SECURITY;",
            s.qualified()
        ));
    }
    sql
}

/// Streams the job's rows from the source into its stage. Returns (rows, bytes).
async fn stage(
    source: &Client,
    mirror: &Client,
    job: &Job<'_>,
) -> Result<(u64, u64), InspectError> {
    let s = job.shape;
    let reading = format!("reading the changed rows of {}", s.qualified());
    let staging = format!("staging the changed rows of {}", s.qualified());
    let out_sql = format!(
        "COPY (SELECT {} FROM ONLY {} AS r WHERE {}) TO STDOUT",
        s.column_list(Some("r")),
        s.qualified(),
        job.filter.condition(s, "r")
    );
    let in_sql = format!(
        "COPY {} ({}) FROM STDIN",
        quote_ident(&job.stage),
        s.column_list(None)
    );
    let rows_out = source
        .copy_out(&out_sql)
        .await
        .map_err(InspectError::query(reading.as_str()))?;
    let sink = mirror
        .copy_in(&in_sql)
        .await
        .map_err(InspectError::query(staging.as_str()))?;
    futures_util::pin_mut!(rows_out);
    futures_util::pin_mut!(sink);
    let mut bytes = 0u64;
    while let Some(chunk) = rows_out.next().await {
        // Per chunk: the message is built only on failure.
        let chunk = chunk.map_err(|e| InspectError::query(reading.as_str())(e))?;
        bytes += chunk.len() as u64;
        // `feed`, not `send`: the sink packs rows into messages of 4 KiB, where `send` would flush
        // each row as a message (and a TLS record, and a wake-up of the mirror's backend) of its own.
        sink.feed(chunk)
            .await
            .map_err(|e| InspectError::query(staging.as_str())(e))?;
    }
    let rows = sink.finish().await.map_err(InspectError::query(staging))?;
    Ok((rows, bytes))
}

fn key_match(shape: &TableShape, left: &str, right: &str) -> Option<String> {
    shape.key.as_ref().map(|key| {
        key.iter()
            .map(|k| format!("{left}.{c} = {right}.{c}", c = quote_ident(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    })
}

/// Deletes the mirror's rows in the job's range that the stage lacks: by key, or (no key) every row
/// of the range, since the stage holds all of them again. `None` when the stage is no range (rows
/// written since the last sync).
fn delete_sql(job: &Job<'_>) -> Option<String> {
    let s = job.shape;
    if matches!(job.filter, Filter::WrittenSince(..)) {
        return None;
    }
    let range = job.filter.condition(s, "t");
    Some(match key_match(s, "g", "t") {
        Some(matched) => format!(
            "DELETE FROM ONLY {} AS t WHERE {range} AND NOT EXISTS (SELECT 1 FROM {} AS g WHERE {matched})",
            s.qualified(),
            quote_ident(&job.stage)
        ),
        None => format!("DELETE FROM ONLY {} AS t WHERE {range}", s.qualified()),
    })
}

/// Updates rows whose key is in the stage with different content (compared as text: every type has
/// one, not every type has equality).
fn update_sql(job: &Job<'_>) -> Option<String> {
    let s = job.shape;
    let matched = key_match(s, "g", "t")?;
    if s.update_columns.is_empty() {
        return None;
    }
    let cols = |alias: &str| {
        s.update_columns
            .iter()
            .map(|c| format!("{alias}.{}", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let targets = s
        .update_columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "UPDATE ONLY {} AS t SET ({targets}) = ROW({}) FROM {} AS g \
         WHERE {matched} AND ROW({})::pg_catalog.text IS DISTINCT FROM ROW({})::pg_catalog.text",
        s.qualified(),
        cols("g"),
        job.stage_source(),
        cols("t"),
        cols("g"),
    ))
}

/// Inserts the stage's rows whose key the mirror lacks (every staged row for a table without a key,
/// whose range was emptied).
fn insert_sql(job: &Job<'_>) -> String {
    let s = job.shape;
    let absent = match key_match(s, "t", "g") {
        Some(matched) => format!(
            " WHERE NOT EXISTS (SELECT 1 FROM ONLY {} AS t WHERE {matched})",
            s.qualified()
        ),
        None => String::new(),
    };
    format!(
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {} AS g{absent}",
        s.qualified(),
        s.column_list(None),
        s.column_list(Some("g")),
        job.stage_source()
    )
}

#[cfg(test)]
mod tests {
    use super::Slice;

    #[test]
    fn slices_cover_every_block_once_and_the_last_is_open_ended() {
        let slices = Slice::split(10, 3);
        assert_eq!(
            slices,
            vec![
                Slice {
                    from: 0,
                    to: Some(3)
                },
                Slice {
                    from: 3,
                    to: Some(6)
                },
                Slice { from: 6, to: None },
            ]
        );
        assert_eq!(
            slices[0].condition("r"),
            "r.ctid >= '(0,0)'::pg_catalog.tid AND r.ctid < '(3,0)'::pg_catalog.tid"
        );
        assert_eq!(
            slices[2].condition("r"),
            "r.ctid >= '(6,0)'::pg_catalog.tid"
        );
        // An empty table still gets one open-ended slice that reads anything appended.
        assert_eq!(Slice::split(0, 2)[1], Slice { from: 0, to: None });
    }
}
