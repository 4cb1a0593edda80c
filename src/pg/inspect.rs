//! SQL inspection of the source and of a restored copy: session pinning, the shared snapshot, the
//! manifest (row counts, checksums, object counts) and its storage on the backup branch.
//!
//! Every function takes a connected `tokio_postgres` client, so this module does not care how the
//! connection was made (TLS, pooler, socket).
//!
//! Consistency with pg_dump: [`SourceSnapshot::open`] exports the snapshot pg_dump uses
//! (`pg_dump --snapshot=<id>`); the manifest is taken in that same snapshot, either on the
//! snapshot's own connection ([`SourceSnapshot::take_manifest`]) or, so that it can run while
//! pg_dump reads, on other connections that import it ([`take_manifest_in_snapshot`]). The exporting
//! transaction must stay open until every importer has started; keep the [`SourceSnapshot`] alive
//! until pg_dump has begun and the manifest is taken, then call [`SourceSnapshot::finish`].
//!
//! Checksums: a row is hashed column by column ([`ChecksumMethod::Columns`], see `row_hash`), each by its
//! type's own hash function where that hashes the value, otherwise over its text form; before PostgreSQL
//! 14 the whole row's text form ([`ChecksumMethod::Text`]). A copy is always hashed the way its manifest
//! was, older manifests' methods included. The text form depends on
//! session settings (time zone, date and interval style, float digits, bytea format, search_path for
//! reg* types). [`pin_session`] fixes all of them, so a source and a restored copy render equal rows
//! equally whatever their role or database defaults are.

use std::collections::BTreeMap;

use chrono::Utc;
use tokio_postgres::types::Json;
use tokio_postgres::{Client, GenericClient};

mod row_hash;
mod rows;
mod snapshot;

pub use row_hash::{hashed_columns, row_hash, ColumnHash, HashedColumn};
use rows::read_fingerprints;
pub use rows::{Gate, ReadHooks};
use snapshot::{export_snapshot, import_snapshot_sql};
pub use snapshot::{import_snapshot, SourceSnapshot, SNAPSHOT_IDLE_TIMEOUT};

use crate::pg::content::Selection;
use crate::pg::manifest::{
    ChecksumMethod, Manifest, ObjectCounts, TableFingerprint, TableKind, MANIFEST_FORMAT,
    OLDEST_MANIFEST_FORMAT,
};

/// Our own schema on the backup branch; never part of a selection or a manifest.
pub const OWN_SCHEMA: &str = "supaneon_sync";

/// Longest a single inspection statement may run (a checksum over the largest table).
pub const STATEMENT_TIMEOUT: &str = "1h";
/// Longest we wait for a lock (someone running DDL on a table we read) before failing clearly.
pub const LOCK_TIMEOUT: &str = "1min";

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// A statement failed; `what` names the step, never the data.
    #[error("{what}")]
    Query {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "schema {0:?} was asked for (include-schemas) but does not exist in the source database"
    )]
    UnknownSchema(String),
    #[error("the server answered {what} with something unexpected: {detail}")]
    Unexpected { what: String, detail: String },
    #[error("the stored manifest cannot be read")]
    ManifestDecode(#[source] serde_json::Error),
    #[error("the stored manifest has format {0}, this build understands formats {OLDEST_MANIFEST_FORMAT} to {MANIFEST_FORMAT}")]
    ManifestFormat(u32),
}

impl InspectError {
    pub(crate) fn query(
        what: impl Into<String>,
    ) -> impl FnOnce(tokio_postgres::Error) -> InspectError {
        let what = what.into();
        move |source| InspectError::Query { what, source }
    }

    pub(crate) fn unexpected(what: impl Into<String>, detail: impl Into<String>) -> InspectError {
        InspectError::Unexpected {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// The SQLSTATE of a failed statement, if the server sent one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            InspectError::Query { source, .. } => source.code().map(|c| c.code()),
            _ => None,
        }
    }
}

/// `"name"` with embedded quotes doubled: safe as an SQL identifier whatever the name holds.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled (standard_conforming_strings is pinned on).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `"schema"."name"`.
pub fn quote_qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// The server's major version (`server_version_num / 10000`, e.g. 15, 17).
pub async fn server_major(client: &impl GenericClient) -> Result<u32, InspectError> {
    let row = client
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int4",
            &[],
        )
        .await
        .map_err(InspectError::query("reading the server version"))?;
    let num: i32 = row.get(0);
    u32::try_from(num / 10000)
        .map_err(|_| InspectError::unexpected("server_version_num", num.to_string()))
}

/// The server's `server_version` string, e.g. `17.2 (Debian 17.2-1)`.
pub async fn server_version(client: &impl GenericClient) -> Result<String, InspectError> {
    let row = client
        .query_one("SELECT pg_catalog.current_setting('server_version')", &[])
        .await
        .map_err(InspectError::query("reading the server version"))?;
    Ok(row.get(0))
}

/// Fixes every session setting that changes how values render as text, plus timeouts that keep a
/// stuck inspection from hanging a run, and `row_security = off` so that a row-level-security policy
/// makes a read fail instead of silently hiding rows (as pg_dump does).
pub async fn pin_session(client: &impl GenericClient) -> Result<(), InspectError> {
    let sql = format!(
        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
         SET extra_float_digits = 3; SET bytea_output = 'hex'; SET lc_monetary = 'C'; \
         SET standard_conforming_strings = on; SET search_path = ''; SET row_security = off; \
         SET statement_timeout = '{STATEMENT_TIMEOUT}'; SET lock_timeout = '{LOCK_TIMEOUT}'; \
         SET idle_in_transaction_session_timeout = 0; SET application_name = 'supaneon-sync'"
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(InspectError::query("pinning the session settings"))
}

/// Takes the manifest in an exported snapshot (see [`SourceSnapshot`]) on one or more connections
/// of their own, each of which imports the snapshot (`BEGIN ISOLATION LEVEL REPEATABLE READ READ
/// ONLY; SET TRANSACTION SNAPSHOT '<id>'`). Tables are shared out between the connections by size.
/// The sessions are pinned here; every transaction is closed before returning.
pub async fn take_manifest_in_snapshot(
    clients: &[&Client],
    snapshot_id: &str,
    selection: &Selection,
) -> Result<Manifest, InspectError> {
    take_manifest_in_snapshot_hooked(clients, snapshot_id, selection, &ReadHooks::default()).await
}

/// [`take_manifest_in_snapshot`] with `hooks` into its table reads.
pub async fn take_manifest_in_snapshot_hooked(
    clients: &[&Client],
    snapshot_id: &str,
    selection: &Selection,
    hooks: &ReadHooks<'_>,
) -> Result<Manifest, InspectError> {
    if clients.is_empty() {
        return Err(InspectError::unexpected(
            "take_manifest_in_snapshot",
            "no connection given",
        ));
    }
    let import = import_snapshot_sql(snapshot_id)?;
    let mut opened = Vec::new();
    let result = async {
        begin_all(clients, &import, &mut opened).await?;
        manifest_in_transaction(clients, selection, None, &KnownChecksums::new(), hooks).await
    }
    .await;
    close_all(&opened, result).await
}

/// Takes the manifest of a database in one read-only repeatable-read snapshot shared by `clients`
/// (one is enough; more read large databases faster), choosing each table's checksum method by its
/// column types. The sessions are pinned here; every transaction is closed before returning.
pub async fn take_manifest(
    clients: &[&Client],
    selection: &Selection,
) -> Result<Manifest, InspectError> {
    take_manifest_hooked(clients, selection, &ReadHooks::default()).await
}

/// [`take_manifest`] with `hooks` into its table reads.
pub async fn take_manifest_hooked(
    clients: &[&Client],
    selection: &Selection,
    hooks: &ReadHooks<'_>,
) -> Result<Manifest, InspectError> {
    manifest_in_own_snapshot(clients, selection, None, &KnownChecksums::new(), hooks).await
}

/// Like [`take_manifest`], for comparing a restored copy (the backup branch, a restore test) with
/// `expected`: each table is hashed the way `expected` hashed it.
pub async fn take_manifest_to_match(
    clients: &[&Client],
    selection: &Selection,
    expected: &Manifest,
) -> Result<Manifest, InspectError> {
    manifest_in_own_snapshot(
        clients,
        selection,
        Some(expected),
        &KnownChecksums::new(),
        &ReadHooks::default(),
    )
    .await
}

/// Like [`take_manifest_to_match`], taking the tables in `known` (from
/// [`fingerprint_tables_to_match`]) as read.
pub async fn take_manifest_to_match_with(
    clients: &[&Client],
    selection: &Selection,
    expected: &Manifest,
    known: &KnownChecksums,
) -> Result<Manifest, InspectError> {
    manifest_in_own_snapshot(
        clients,
        selection,
        Some(expected),
        known,
        &ReadHooks::default(),
    )
    .await
}

async fn manifest_in_own_snapshot(
    clients: &[&Client],
    selection: &Selection,
    expected: Option<&Manifest>,
    known: &KnownChecksums,
    hooks: &ReadHooks<'_>,
) -> Result<Manifest, InspectError> {
    let Some((first, rest)) = clients.split_first() else {
        return Err(InspectError::unexpected(
            "take_manifest",
            "no connection given",
        ));
    };
    let mut opened = Vec::new();
    let result = async {
        begin_all(
            &[*first],
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            &mut opened,
        )
        .await?;
        if !rest.is_empty() {
            let id = export_snapshot(first).await?;
            begin_all(rest, &import_snapshot_sql(&id)?, &mut opened).await?;
        }
        manifest_in_transaction(clients, selection, expected, known, hooks).await
    }
    .await;
    close_all(&opened, result).await
}

/// Pins each session and runs `begin` on it; every connection tried is recorded in `opened` so that
/// it is closed again even when its BEGIN failed half-way.
async fn begin_all<'a>(
    clients: &[&'a Client],
    begin: &str,
    opened: &mut Vec<&'a Client>,
) -> Result<(), InspectError> {
    for client in clients {
        pin_session(*client).await?;
        opened.push(*client);
        client
            .batch_execute(begin)
            .await
            .map_err(InspectError::query("opening the manifest transaction"))?;
    }
    Ok(())
}

/// Ends the transactions: COMMIT after success, ROLLBACK after a failure. A failure to close only
/// matters when everything else worked; otherwise the first error is the one worth reporting.
async fn close_all<T>(
    clients: &[&Client],
    result: Result<T, InspectError>,
) -> Result<T, InspectError> {
    let sql = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    for client in clients {
        let closed = client
            .batch_execute(sql)
            .await
            .map_err(InspectError::query("closing the manifest transaction"));
        if let (Err(e), Ok(_)) = (closed, &result) {
            return Err(e);
        }
    }
    result
}

/// A relation to fingerprint, as found in the catalog.
struct Relation {
    schema: String,
    name: String,
    kind: TableKind,
    populated: bool,
    /// Size estimate used to share the work between connections.
    pages: i64,
    /// Every column type can be hashed by [`ChecksumMethod::MixedRecord`].
    record_hashable: bool,
    /// The columns as [`ChecksumMethod::Columns`] hashes them; `None` before PostgreSQL 14, which then
    /// hashes by text.
    columns: Option<Vec<HashedColumn>>,
    /// FORCE ROW LEVEL SECURITY: even its owner reads it through the policies.
    force_rls: bool,
    /// Its rows are still to be read (set when planning).
    read: bool,
}

/// Checksums already taken of a restored copy's tables, by (schema, name), with the method used.
/// See [`fingerprint_tables_to_match`].
pub type KnownChecksums = BTreeMap<(String, String), (i64, String, ChecksumMethod)>;

/// The manifest, read by `workers` that are all inside transactions sharing one snapshot.
/// Catalog queries run on the first; tables are fingerprinted on all of them. With `expected`, each
/// table is hashed by the method `expected` used for it; tables in `known` are not read again.
async fn manifest_in_transaction(
    workers: &[&Client],
    selection: &Selection,
    expected: Option<&Manifest>,
    known: &KnownChecksums,
    hooks: &ReadHooks<'_>,
) -> Result<Manifest, InspectError> {
    let catalog = workers[0];
    let source_server_version = server_version(catalog).await?;
    let schemas = existing_schemas(catalog, &selection.schemas).await?;
    let relations = relations(catalog, &schemas, &selection.exclude_tables).await?;
    let objects = object_counts(catalog, &schemas, &selection.exclude_tables).await?;
    let mut tables = plan_fingerprints(relations, selection, expected);
    for (fp, rel) in &mut tables {
        if let Some((rows, checksum, method)) = known.get(&(fp.schema.clone(), fp.name.clone())) {
            if *method == fp.checksum_method && rel.kind == TableKind::Table {
                fp.rows = *rows;
                fp.checksum = checksum.clone();
                rel.read = false;
            }
        }
    }
    read_fingerprints(workers, &mut tables, hooks).await?;
    let large_objects =
        Some(crate::pg::large_objects::fingerprint(catalog, &selection.privilege_roles).await?);
    let mut definitions = crate::pg::fingerprints::take(
        catalog,
        &schemas,
        &selection.exclude_tables,
        &selection.privilege_roles,
    )
    .await?;
    definitions.sequences =
        crate::pg::fingerprints::sequences(catalog, &schemas, &selection.exclude_tables).await?;
    Ok(Manifest {
        format: MANIFEST_FORMAT,
        taken_at: Utc::now(),
        source_server_version,
        schemas,
        tables: tables.into_iter().map(|(fp, _)| fp).collect(),
        objects,
        large_objects,
        definitions: Some(definitions),
    })
}

/// Row counts and checksums of the tables (not materialized views) of a restored copy, each hashed the
/// way `expected` hashed it, for [`take_manifest_to_match_with`].
///
/// Unlike a manifest this reads without a shared snapshot, one autocommit statement per table, so
/// it can run while pg_restore builds indexes and adds constraints: rows are no longer written then,
/// and a statement holds its table's lock only while it reads. A constraint being added (an exclusive
/// lock) makes the read wait instead of failing, however long the index build takes.
pub async fn fingerprint_tables_to_match(
    clients: &[&Client],
    selection: &Selection,
    expected: &Manifest,
) -> Result<KnownChecksums, InspectError> {
    fingerprint_tables_among(clients, selection, expected, None).await
}

/// [`fingerprint_tables_to_match`] for the tables in `only` (`schema`, `name`), or all of them.
pub async fn fingerprint_tables_among(
    clients: &[&Client],
    selection: &Selection,
    expected: &Manifest,
    only: Option<&std::collections::BTreeSet<(String, String)>>,
) -> Result<KnownChecksums, InspectError> {
    let Some(catalog) = clients.first() else {
        return Err(InspectError::unexpected(
            "fingerprint_tables_to_match",
            "no connection given",
        ));
    };
    for client in clients {
        pin_session(*client).await?;
        client
            .batch_execute("SET lock_timeout = 0")
            .await
            .map_err(InspectError::query("pinning the session settings"))?;
    }
    let schemas = existing_schemas(catalog, &selection.schemas).await?;
    let relations = relations(catalog, &schemas, &selection.exclude_tables).await?;
    let mut tables = plan_fingerprints(relations, selection, Some(expected));
    for (_, rel) in &mut tables {
        // Materialized views are refreshed by pg_restore's last steps: read with the manifest.
        rel.read &= rel.kind == TableKind::Table
            && only.is_none_or(|o| o.contains(&(rel.schema.clone(), rel.name.clone())));
    }
    read_fingerprints(clients, &mut tables, &ReadHooks::default()).await?;
    let result = tables
        .into_iter()
        .filter(|(_, rel)| rel.read)
        .map(|(fp, _)| {
            (
                (fp.schema, fp.name),
                (fp.rows, fp.checksum, fp.checksum_method),
            )
        })
        .collect();
    // Back to the pinned settings (and lock timeout) for whatever the sessions do next.
    for client in clients {
        pin_session(*client).await?;
    }
    Ok(result)
}

/// One fingerprint to fill per relation, with its checksum method chosen; `read` set for those that
/// have rows to read.
fn plan_fingerprints(
    relations: Vec<Relation>,
    selection: &Selection,
    expected: Option<&Manifest>,
) -> Vec<(TableFingerprint, Relation)> {
    let expected_methods: BTreeMap<(&str, &str), ChecksumMethod> = expected
        .map(|m| {
            m.tables
                .iter()
                .map(|t| ((t.schema.as_str(), t.name.as_str()), t.checksum_method))
                .collect()
        })
        .unwrap_or_default();
    relations
        .into_iter()
        .map(|mut rel| {
            let qualified = format!("{}.{}", rel.schema, rel.name);
            let data_excluded =
                rel.kind == TableKind::Table && selection.exclude_table_data.contains(&qualified);
            // A method the types here cannot take falls back to text: the checksums then differ and
            // the table is reported, instead of the read failing.
            let checksum_method =
                match expected_methods.get(&(rel.schema.as_str(), rel.name.as_str())) {
                    Some(ChecksumMethod::Text) => ChecksumMethod::Text,
                    Some(ChecksumMethod::Record) if rel.record_hashable => ChecksumMethod::Record,
                    Some(ChecksumMethod::MixedRecord) if rel.record_hashable => {
                        ChecksumMethod::MixedRecord
                    }
                    Some(ChecksumMethod::Columns) | None if rel.columns.is_some() => {
                        ChecksumMethod::Columns
                    }
                    _ => ChecksumMethod::Text,
                };
            rel.read = !data_excluded && rel.populated;
            let fp = TableFingerprint {
                schema: rel.schema.clone(),
                name: rel.name.clone(),
                kind: rel.kind,
                rows: 0,
                checksum: String::new(),
                checksum_method,
                data_excluded,
                refreshed_on_restore: false,
            };
            (fp, rel)
        })
        .collect()
}

/// The schemas of `wanted` that exist here, sorted.
async fn existing_schemas(client: &Client, wanted: &[String]) -> Result<Vec<String>, InspectError> {
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_catalog.pg_namespace WHERE nspname = ANY($1::text[]) ORDER BY 1",
            &[&wanted],
        )
        .await
        .map_err(InspectError::query("listing schemas"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Tables (incl. leaf partitions) and materialized views in `schemas`, minus extension members and
/// excluded tables, sorted by (schema, name).
async fn relations(
    client: &Client,
    schemas: &[String],
    exclude: &[String],
) -> Result<Vec<Relation>, InspectError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relkind = 'm', c.relispopulated, c.relpages::int8, \
                    c.relforcerowsecurity \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'm') \
               AND (n.nspname::text || '.' || c.relname::text) <> ALL($2::text[]) \
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                   WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')",
            &[&schemas, &exclude],
        )
        .await
        .map_err(InspectError::query("listing tables"))?;
    let mut out: Vec<Relation> = rows
        .iter()
        .map(|r| Relation {
            schema: r.get(0),
            name: r.get(1),
            kind: if r.get(2) {
                TableKind::MaterializedView
            } else {
                TableKind::Table
            },
            populated: r.get(3),
            pages: r.get(4),
            force_rls: r.get(5),
            record_hashable: false,
            columns: None,
            read: false,
        })
        .collect();
    // Byte order, not the server's collation: both sides must sort alike.
    out.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    // Both hashes by type need PostgreSQL 14 (`hash_record_extended`, and the column hash with it).
    if server_major(client).await? < 14 {
        return Ok(out);
    }
    let hashable = record_hashable(client, schemas).await?;
    let names: Vec<String> = out
        .iter()
        .map(|rel| quote_qualified(&rel.schema, &rel.name))
        .collect();
    let mut columns = hashed_columns(client, &names).await?;
    for (rel, name) in out.iter_mut().zip(&names) {
        rel.record_hashable = hashable.contains(&(rel.schema.clone(), rel.name.clone()));
        // A relation without columns has no row in the answer.
        rel.columns = Some(columns.remove(name).unwrap_or_default());
    }
    Ok(out)
}

/// Built-in types whose extended hash function hashes the value itself, the same on every server:
/// bool, bytea, "char", name, int8, int2, int4, text, oid, float4, float8, macaddr8, macaddr, cidr,
/// inet, bpchar, varchar, date, time, timestamp, timestamptz, interval, timetz, numeric, uuid, pg_lsn,
/// jsonb. Enums are not among them: their hash is of the label's OID, which a restore renumbers. Types
/// without a hash function (json, xml, geometric types, …) are not either.
const RECORD_HASHABLE_TYPES: &str =
    "16, 17, 18, 19, 20, 21, 23, 25, 26, 700, 701, 774, 829, 650, 869, 1042, 1043, 1082, 1083, 1114, \
     1184, 1186, 1266, 1700, 2950, 3220, 3802";

/// The (schema, name) of the tables and materialized views in `schemas` whose every column can be
/// hashed by `hash_record_extended` with the same result on any server: each type, through domains
/// and arrays, is in [`RECORD_HASHABLE_TYPES`], and no column has a non-deterministic collation
/// (whose hash would ignore differences the text form shows). PostgreSQL 14 and later only (the caller
/// checks): older servers lack `hash_record_extended`.
async fn record_hashable(
    client: &Client,
    schemas: &[String],
) -> Result<std::collections::HashSet<(String, String)>, InspectError> {
    let wrapper = "y.typtype = 'd' OR (y.typcategory = 'A' AND y.typelem <> 0 AND y.typlen = -1)";
    let sql = format!(
        "WITH RECURSIVE rels AS ( \
           SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name \
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
           WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'm')), \
         cols AS ( \
           SELECT a.attrelid, a.atttypid, a.attcollation FROM pg_catalog.pg_attribute a \
           WHERE a.attrelid IN (SELECT oid FROM rels) AND a.attnum > 0 AND NOT a.attisdropped), \
         types(root, cur) AS ( \
           SELECT DISTINCT atttypid, atttypid FROM cols \
           UNION \
           SELECT t.root, CASE WHEN y.typtype = 'd' THEN y.typbasetype ELSE y.typelem END \
           FROM types t JOIN pg_catalog.pg_type y ON y.oid = t.cur WHERE {wrapper}), \
         unhashable AS ( \
           SELECT DISTINCT t.root FROM types t JOIN pg_catalog.pg_type y ON y.oid = t.cur \
           WHERE NOT ({wrapper}) AND t.cur NOT IN ({RECORD_HASHABLE_TYPES})) \
         SELECT r.schema, r.name FROM rels r \
         WHERE NOT EXISTS (SELECT 1 FROM cols k WHERE k.attrelid = r.oid \
                             AND k.atttypid IN (SELECT root FROM unhashable)) \
           AND NOT EXISTS (SELECT 1 FROM cols k JOIN pg_catalog.pg_collation l ON l.oid = k.attcollation \
                             WHERE k.attrelid = r.oid AND NOT l.collisdeterministic)"
    );
    let rows = client
        .query(&sql, &[&schemas])
        .await
        .map_err(InspectError::query(
            "checking which tables can be hashed by type",
        ))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Plain indexes (backing no constraint) of plain tables in `selection`, at least `min_pages` large on
/// the source, largest first: worth building while the rows of other tables still stream (see
/// [`crate::pg::pipeline::stream_data`]). Constraints stay with the post-data restore, which knows
/// their dependencies; partitions too (their indexes attach to the parent's).
pub async fn early_indexes(
    client: &Client,
    selection: &Selection,
    min_pages: i64,
) -> Result<Vec<crate::pg::pipeline::EarlyIndex>, InspectError> {
    let rows = client
        .query(
            "SELECT x.indexrelid::pg_catalog.oid, n.nspname::text || '.' || t.relname::text \
             FROM pg_catalog.pg_index x \
             JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid \
             JOIN pg_catalog.pg_class t ON t.oid = x.indrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace \
             WHERE n.nspname = ANY($1::text[]) AND t.relkind = 'r' AND NOT t.relispartition \
               AND i.relpages::int8 >= $2 \
               AND (n.nspname::text || '.' || t.relname::text) <> ALL($3::text[]) \
               AND (n.nspname::text || '.' || t.relname::text) <> ALL($4::text[]) \
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = x.indexrelid) \
             ORDER BY i.relpages DESC, 1",
            &[
                &selection.schemas,
                &min_pages,
                &selection.exclude_tables,
                &selection.exclude_table_data,
            ],
        )
        .await
        .map_err(InspectError::query("listing the large indexes"))?;
    Ok(rows
        .iter()
        .map(|r| crate::pg::pipeline::EarlyIndex {
            oid: r.get(0),
            table: r.get(1),
        })
        .collect())
}

/// Counts of policies, functions, triggers, views, materialized views, sequences, indexes and table
/// constraints in `schemas` that pg_dump would dump: extension members and objects of excluded
/// tables are left out.
async fn object_counts(
    client: &Client,
    schemas: &[String],
    exclude: &[String],
) -> Result<ObjectCounts, InspectError> {
    let row = client
        .query_one(
            "WITH ext AS (SELECT classid, objid FROM pg_catalog.pg_depend WHERE deptype = 'e'), \
             rels AS (SELECT c.oid, c.relkind FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = ANY($1::text[]) \
                   AND (n.nspname::text || '.' || c.relname::text) <> ALL($2::text[]) \
                   AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                                   AND ext.objid = c.oid) \
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                         JOIN pg_catalog.pg_class t ON t.oid = d.refobjid \
                         JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace \
                        WHERE c.relkind = 'S' AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                          AND d.objid = c.oid AND d.deptype = 'i' \
                          AND (tn.nspname::text || '.' || t.relname::text) = ANY($2::text[]))) \
             SELECT \
               (SELECT count(*) FROM pg_catalog.pg_policy p WHERE p.polrelid IN (SELECT oid FROM rels)), \
               (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                 WHERE n.nspname = ANY($1::text[]) AND NOT EXISTS (SELECT 1 FROM ext \
                   WHERE ext.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND ext.objid = p.oid)), \
               (SELECT count(*) FROM pg_catalog.pg_trigger t WHERE NOT t.tgisinternal \
                 AND t.tgrelid IN (SELECT oid FROM rels)), \
               (SELECT count(*) FROM rels WHERE relkind = 'v'), \
               (SELECT count(*) FROM rels WHERE relkind = 'm'), \
               (SELECT count(*) FROM rels WHERE relkind = 'S'), \
               (SELECT count(*) FROM rels WHERE relkind IN ('i', 'I') \
                 AND EXISTS (SELECT 1 FROM pg_catalog.pg_index x WHERE x.indexrelid = rels.oid \
                             AND x.indrelid IN (SELECT oid FROM rels))), \
               (SELECT count(*) FROM pg_catalog.pg_constraint k WHERE k.conrelid IN (SELECT oid FROM rels) \
                 AND k.contype IN ('c', 'f', 'p', 'u', 'x'))",
            &[&schemas, &exclude],
        )
        .await
        .map_err(InspectError::query("counting policies, functions, triggers and views"))?;
    Ok(ObjectCounts {
        policies: row.get(0),
        functions: row.get(1),
        triggers: row.get(2),
        views: row.get(3),
        materialized_views: row.get(4),
        sequences: row.get(5),
        indexes: row.get(6),
        constraints: row.get(7),
    })
}

/// Stores `manifest` on the branch in `supaneon_sync.backup_manifest` (created if missing), in place of
/// any earlier one: a mirror stores one per sync and would otherwise keep every manifest it ever had.
/// Returns the row id.
pub async fn store_manifest(
    client: &impl GenericClient,
    manifest: &Manifest,
) -> Result<i32, InspectError> {
    client
        .batch_execute(
            // Without the "already exists, skipping" notices of every later run in the log.
            "SET client_min_messages = warning; \
             CREATE SCHEMA IF NOT EXISTS supaneon_sync; \
             CREATE TABLE IF NOT EXISTS supaneon_sync.backup_manifest ( \
               id serial PRIMARY KEY, taken_at timestamptz NOT NULL, manifest jsonb NOT NULL); \
             RESET client_min_messages",
        )
        .await
        .map_err(InspectError::query("creating the manifest table"))?;
    // One statement: the old rows go only if the new one is stored.
    let row = client
        .query_one(
            "WITH old AS (DELETE FROM supaneon_sync.backup_manifest) \
             INSERT INTO supaneon_sync.backup_manifest (taken_at, manifest) VALUES ($1, $2) RETURNING id",
            &[&manifest.taken_at, &Json(manifest)],
        )
        .await
        .map_err(InspectError::query("storing the manifest"))?;
    Ok(row.get(0))
}

/// The newest manifest stored on this database, or `None` when there is none (not a backup branch).
pub async fn read_manifest(client: &impl GenericClient) -> Result<Option<Manifest>, InspectError> {
    let exists = client
        .query_one(
            "SELECT pg_catalog.to_regclass('supaneon_sync.backup_manifest') IS NOT NULL",
            &[],
        )
        .await
        .map_err(InspectError::query("looking for the manifest table"))?;
    if !exists.get::<_, bool>(0) {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT manifest FROM supaneon_sync.backup_manifest ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(InspectError::query("reading the manifest"))?;
    let Some(row) = row else { return Ok(None) };
    let value: serde_json::Value = row.get(0);
    let format = value.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
    if !(u64::from(OLDEST_MANIFEST_FORMAT)..=u64::from(MANIFEST_FORMAT)).contains(&format) {
        return Err(InspectError::ManifestFormat(
            u32::try_from(format).unwrap_or(u32::MAX),
        ));
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(InspectError::ManifestDecode)
}

/// Tables per schema in a manifest, for reports (`schema -> tables`).
pub fn tables_by_schema(manifest: &Manifest) -> BTreeMap<&str, usize> {
    let mut out = BTreeMap::new();
    for t in &manifest.tables {
        *out.entry(t.schema.as_str()).or_insert(0) += 1;
    }
    out
}
