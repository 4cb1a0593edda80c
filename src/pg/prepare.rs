//! Preparing a Neon target before pg_restore: what the dumped objects need but a schema-limited,
//! `--no-owner --no-acl` dump does not create (supabase-notes §4, §6).
//!
//! - Roles that the dumped policies name (`TO authenticated`, …): a policy restore fails without
//!   them; and the roles owning large objects, which get them back after the restore. Created
//!   `NOLOGIN`, nothing else: we never create or alter a login role or a superuser.
//! - The source's extensions, in the same schema, when the target offers them: tables use their
//!   types, defaults and operator classes (`extensions.uuid_generate_v4()`, `gin_trgm_ops`).
//!
//! Every step is idempotent, so a retried backup can prepare the same branch again. Pass a client in
//! autocommit mode: a refused `CREATE EXTENSION` is reported, not fatal, and must not abort the rest.

use tokio_postgres::error::SqlState;
use tokio_postgres::GenericClient;

use crate::pg::content::Selection;
use crate::pg::inspect::{quote_ident, InspectError};

/// Supabase's API roles: created whenever the source has them, since functions and defaults in the
/// dumped schemas may name them even where no policy does.
pub const API_ROLES: &[&str] = &["anon", "authenticated", "service_role"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrepareReport {
    /// Every role the restore needs (created now or already there): their settings are carried over.
    pub roles: Vec<String>,
    pub roles_created: Vec<String>,
    pub schemas_created: Vec<String>,
    pub extensions_created: Vec<String>,
    /// Source extensions the target does not offer (e.g. pg_net, supabase_vault on Neon).
    pub extensions_unavailable: Vec<String>,
    /// Offered but refused (extension name, server message), e.g. a permission the role lacks.
    pub extensions_failed: Vec<(String, String)>,
}

/// Makes `target` ready for a restore of `selection` from `source`. See the module documentation.
pub async fn prepare_target(
    source: &impl GenericClient,
    target: &impl GenericClient,
    selection: &Selection,
) -> Result<PrepareReport, InspectError> {
    let mut report = PrepareReport::default();
    let roles = roles_needed(source, selection).await?;
    report.roles_created = create_roles(target, &roles).await?;
    report.roles = roles;

    let extensions = source_extensions(source).await?;
    let available: Vec<String> = query_strings(
        target,
        "SELECT name::text FROM pg_catalog.pg_available_extensions",
        "listing the target's extensions",
    )
    .await?;
    let installed: Vec<String> = query_strings(
        target,
        "SELECT extname::text FROM pg_catalog.pg_extension",
        "listing the target's extensions",
    )
    .await?;
    let schemas: Vec<String> = query_strings(
        target,
        "SELECT nspname::text FROM pg_catalog.pg_namespace",
        "listing the target's schemas",
    )
    .await?;

    let plan = plan_extensions(&extensions, &available, &installed, &schemas);
    report.extensions_unavailable = plan.unavailable;
    for schema in plan.schemas {
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(&schema));
        target
            .batch_execute(&sql)
            .await
            .map_err(|source| InspectError::Query {
                what: format!("creating schema {schema}"),
                source,
            })?;
        report.schemas_created.push(schema);
    }
    for (name, schema) in plan.create {
        let sql = format!(
            "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {} CASCADE",
            quote_ident(&name),
            quote_ident(&schema)
        );
        match target.batch_execute(&sql).await {
            Ok(()) => report.extensions_created.push(name),
            Err(e) => {
                let message = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                report.extensions_failed.push((name, message));
            }
        }
    }
    Ok(report)
}

/// What the target needs for the source's extensions.
#[derive(Debug, Default, PartialEq, Eq)]
struct ExtensionPlan {
    /// Schemas to create first (those of extensions to create that the target lacks).
    schemas: Vec<String>,
    /// (extension, schema) in the source's order.
    create: Vec<(String, String)>,
    unavailable: Vec<String>,
}

/// `source` is (extension, schema) pairs; the rest describe the target.
fn plan_extensions(
    source: &[(String, String)],
    available: &[String],
    installed: &[String],
    target_schemas: &[String],
) -> ExtensionPlan {
    let mut plan = ExtensionPlan::default();
    for (name, schema) in source {
        if installed.contains(name) {
            continue;
        }
        if !available.contains(name) {
            plan.unavailable.push(name.clone());
            continue;
        }
        if !target_schemas.contains(schema) && !plan.schemas.contains(schema) {
            plan.schemas.push(schema.clone());
        }
        plan.create.push((name.clone(), schema.clone()));
    }
    plan
}

/// Roles the dumped policies name (PUBLIC and predefined `pg_*` roles left out), the source's
/// Supabase API roles, and the roles owning large objects (but the dumping one), sorted.
async fn roles_needed(
    source: &impl GenericClient,
    selection: &Selection,
) -> Result<Vec<String>, InspectError> {
    let rows = source
        .query(
            "SELECT r.rolname::text FROM pg_catalog.pg_policy p \
               JOIN pg_catalog.pg_class c ON c.oid = p.polrelid \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
               CROSS JOIN LATERAL pg_catalog.unnest(p.polroles) AS pr(oid) \
               JOIN pg_catalog.pg_roles r ON r.oid = pr.oid \
             WHERE n.nspname = ANY($1::text[]) \
             UNION \
             SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY($2::text[]) \
             UNION \
             SELECT pg_catalog.pg_get_userbyid(m.lomowner)::text \
               FROM pg_catalog.pg_largeobject_metadata m \
              WHERE m.lomowner <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) \
             ORDER BY 1",
            &[&selection.schemas, &API_ROLES],
        )
        .await
        .map_err(|source| InspectError::Query {
            what: "listing the roles the policies name".into(),
            source,
        })?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|name| !name.starts_with("pg_"))
        .collect())
}

/// Creates each missing role as `NOLOGIN`; returns the ones created. A role that appears between our
/// check and our CREATE (a concurrent run) counts as existing.
async fn create_roles(
    target: &impl GenericClient,
    roles: &[String],
) -> Result<Vec<String>, InspectError> {
    let existing: Vec<String> = target
        .query(
            "SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY($1::text[])",
            &[&roles],
        )
        .await
        .map_err(|source| InspectError::Query {
            what: "listing the target's roles".into(),
            source,
        })?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut created = Vec::new();
    for role in roles.iter().filter(|r| !existing.contains(r)) {
        let sql = format!("CREATE ROLE {} NOLOGIN", quote_ident(role));
        match target.batch_execute(&sql).await {
            Ok(()) => created.push(role.clone()),
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_OBJECT) => {}
            Err(source) => {
                return Err(InspectError::Query {
                    what: format!("creating role {role} on the target"),
                    source,
                });
            }
        }
    }
    Ok(created)
}

/// The source's extensions (plpgsql left out) with their schema, those that others require first.
async fn source_extensions(
    source: &impl GenericClient,
) -> Result<Vec<(String, String)>, InspectError> {
    let rows = source
        .query(
            "SELECT e.extname::text, n.nspname::text FROM pg_catalog.pg_extension e \
               JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace \
             WHERE e.extname <> 'plpgsql' \
             ORDER BY (SELECT count(*) FROM pg_catalog.pg_depend d \
                       WHERE d.classid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.objid = e.oid \
                         AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass), 1",
            &[],
        )
        .await
        .map_err(|source| InspectError::Query { what: "listing the source's extensions".into(), source })?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Tables of the selection with FORCE ROW LEVEL SECURITY, as `"schema"."table"`. pg_dump sets FORCE
/// with the table's definition, before the rows; once RLS is enabled (post-data), adding a foreign key
/// validates its rows as the table's owner, which FORCE subjects to the policies: with `row_security =
/// off` that fails. The restore lifts FORCE for the post-data section and sets it again after
/// ([`set_force_rls`]).
pub async fn forced_rls_tables(
    source: &impl GenericClient,
    selection: &Selection,
) -> Result<Vec<String>, InspectError> {
    let rows = source
        .query(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) \
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relforcerowsecurity AND c.relkind IN ('r', 'p') AND n.nspname = ANY ($1::text[]) \
                AND (n.nspname::text || '.' || c.relname::text) <> ALL ($2::text[]) \
              ORDER BY 1",
            &[&selection.schemas, &selection.exclude_tables],
        )
        .await
        .map_err(|source| InspectError::Query {
            what: "listing the tables with FORCE ROW LEVEL SECURITY".into(),
            source,
        })?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// `ALTER TABLE … [NO] FORCE ROW LEVEL SECURITY` for each of `tables` (from [`forced_rls_tables`]).
pub async fn set_force_rls(
    target: &impl GenericClient,
    tables: &[String],
    force: bool,
) -> Result<(), InspectError> {
    let keyword = if force { "FORCE" } else { "NO FORCE" };
    for table in tables {
        target
            .batch_execute(&format!("ALTER TABLE {table} {keyword} ROW LEVEL SECURITY"))
            .await
            .map_err(|source| InspectError::Query {
                what: format!("setting {keyword} ROW LEVEL SECURITY on {table}"),
                source,
            })?;
    }
    Ok(())
}

async fn query_strings(
    client: &impl GenericClient,
    sql: &str,
    what: &str,
) -> Result<Vec<String>, InspectError> {
    Ok(client
        .query(sql, &[])
        .await
        .map_err(|source| InspectError::Query {
            what: what.to_string(),
            source,
        })?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plan_creates_missing_schemas_once_and_lists_what_the_target_lacks() {
        let source: Vec<(String, String)> = [
            ("pg_cron", "pg_catalog"),
            ("pg_net", "extensions"),
            ("pgcrypto", "extensions"),
            ("pg_trgm", "extensions"),
            ("uuid-ossp", "extensions"),
            ("supabase_vault", "vault"),
            ("pg_graphql", "graphql"),
        ]
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect();
        let plan = plan_extensions(
            &source,
            &strings(&[
                "pg_cron",
                "pgcrypto",
                "pg_trgm",
                "uuid-ossp",
                "pg_graphql",
                "plpgsql",
            ]),
            &strings(&["plpgsql", "pgcrypto"]),
            &strings(&["public", "pg_catalog"]),
        );
        assert_eq!(plan.schemas, strings(&["extensions", "graphql"]));
        assert_eq!(
            plan.create,
            [
                ("pg_cron", "pg_catalog"),
                ("pg_trgm", "extensions"),
                ("uuid-ossp", "extensions"),
                ("pg_graphql", "graphql")
            ]
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect::<Vec<_>>()
        );
        assert_eq!(plan.unavailable, strings(&["pg_net", "supabase_vault"]));
    }
}
