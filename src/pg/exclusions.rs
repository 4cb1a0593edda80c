//! Table exclusions that follow partitioning and inheritance, and the objects they would leave
//! without what they depend on.
//!
//! `pg_dump --exclude-table=public.events` leaves the partitioned table out but dumps its partitions,
//! whose `ATTACH PARTITION` then fails; `--exclude-table-data` on it keeps every partition's rows
//! (PostgreSQL 16 added `…-and-children`; 15 has neither). So the user's exclusions are expanded here to
//! every descendant (`pg_inherits`, recursively) before pg_dump sees them. A view on an excluded table
//! or a foreign key to it would fail the restore half-way; [`dependents`] names them first.

use tokio_postgres::GenericClient;

use crate::pg::inspect::InspectError;

/// `tables` (`schema.table`) and every table that inherits from one of them or is a partition of one,
/// at any depth, sorted and without duplicates. Names the source lacks are kept as they are.
pub async fn with_descendants(
    client: &impl GenericClient,
    tables: &[String],
) -> Result<Vec<String>, InspectError> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "WITH RECURSIVE tree(oid) AS ( \
               SELECT c.oid FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                WHERE (n.nspname::text || '.' || c.relname::text) = ANY ($1::text[]) \
               UNION \
               SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.oid) \
             SELECT n.nspname::text || '.' || c.relname::text \
               FROM tree t JOIN pg_catalog.pg_class c ON c.oid = t.oid \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace",
            &[&tables],
        )
        .await
        .map_err(|source| InspectError::Query {
            what: "listing the partitions and child tables of the excluded tables".into(),
            source,
        })?;
    let mut out: Vec<String> = tables.to_vec();
    out.extend(rows.iter().map(|r| r.get::<_, String>(0)));
    out.sort();
    out.dedup();
    Ok(out)
}

/// Objects of the dumped `schemas` that the exclusions would break, one line each: views and
/// materialized views reading an excluded table, foreign keys of a kept table referencing an excluded
/// one, and foreign keys of a table whose rows are kept referencing one whose rows are not.
pub async fn dependents(
    client: &impl GenericClient,
    schemas: &[String],
    exclude_tables: &[String],
    exclude_table_data: &[String],
) -> Result<Vec<String>, InspectError> {
    if exclude_tables.is_empty() && exclude_table_data.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "WITH rel AS ( \
               SELECT c.oid, n.nspname::text AS schema, n.nspname::text || '.' || c.relname::text AS name, c.relkind \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace) \
             SELECT DISTINCT CASE v.relkind WHEN 'm' THEN 'materialized view ' ELSE 'view ' END \
                    || v.name || ' reads ' || t.name || ', which is excluded' \
               FROM pg_catalog.pg_depend d \
               JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid \
               JOIN rel v ON v.oid = w.ev_class \
               JOIN rel t ON t.oid = d.refobjid \
              WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass \
                AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                AND v.oid <> t.oid AND t.name = ANY ($2::text[]) \
                AND v.schema = ANY ($1::text[]) AND v.name <> ALL ($2::text[]) \
             UNION \
             SELECT 'foreign key ' || pg_catalog.quote_ident(k.conname) || ' of ' || f.name || ' references ' \
                    || t.name || CASE WHEN t.name = ANY ($2::text[]) THEN ', which is excluded' \
                                      ELSE ', whose rows are excluded' END \
               FROM pg_catalog.pg_constraint k \
               JOIN rel f ON f.oid = k.conrelid \
               JOIN rel t ON t.oid = k.confrelid \
              WHERE k.contype = 'f' AND f.schema = ANY ($1::text[]) AND f.name <> ALL ($2::text[]) \
                AND k.conparentid = 0 \
                AND (t.name = ANY ($2::text[]) \
                     OR (t.name = ANY ($3::text[]) AND f.name <> ALL ($3::text[]) AND f.oid <> t.oid)) \
             ORDER BY 1",
            &[&schemas, &exclude_tables, &exclude_table_data],
        )
        .await
        .map_err(|source| InspectError::Query {
            what: "looking for objects that depend on the excluded tables".into(),
            source,
        })?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
