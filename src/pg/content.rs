//! What a backup contains: the explicit list of schemas handed to pg_dump (`-n`), and the tables and
//! table data left out.
//!
//! An include-list rather than an exclude-list keeps Supabase's platform objects out of the dump:
//! with `-n`, pg_dump emits no `CREATE EXTENSION`, event trigger or publication (supabase-notes §6),
//! which a Neon role could not restore.
//!
//! A schema is left out by ownership, never by its name alone: when an extension created it, or when
//! its name is one the Supabase platform uses *and* it holds nothing a user role owns. A user's
//! `etl` or `pgmq` schema is backed up like any other. What is left out and holds data a user may
//! miss (pg_cron's jobs, Vault's secrets, a user's table in a platform schema) is listed by name,
//! with the reason, in [`Selection::omitted`].

use tokio_postgres::GenericClient;

use crate::pg::exclusions;
use crate::pg::inspect::{InspectError, OWN_SCHEMA};
use crate::pg::manifest::Manifest;

/// Names of schemas Supabase's platform creates. This is the Supabase CLI's `InternalSchemas` list
/// without the schemas we keep by default (`auth`, `storage`, `supabase_functions`: customer triggers
/// call `supabase_functions.http_request`; `supabase_migrations`: the customer's migration history).
/// A trailing `*` matches any suffix. A schema of such a name is left out only when it holds no object
/// a user role owns (see [`SchemaFacts`]); a user's own `etl` is backed up.
pub const PLATFORM_SCHEMAS: &[&str] = &[
    "_analytics",
    "_realtime",
    "_supavisor",
    "_timescaledb_*",
    "cron",
    "dbdev",
    "etl",
    "extensions",
    "graphql",
    "graphql_public",
    "net",
    "pgbouncer",
    "pgmq",
    "pgsodium",
    "pgsodium_masks",
    "pgtle",
    "realtime",
    "repack",
    "tiger",
    "tiger_data",
    "timescaledb_*",
    "topology",
    "vault",
];

/// Roles of the Supabase platform (supabase-notes §1.1): what they own is not the user's. A trailing
/// `*` matches any suffix.
pub const PLATFORM_ROLES: &[&str] = &[
    "supabase_*",
    "dashboard_user",
    "pgbouncer",
    "pgsodium_key*",
    "pgtle_admin",
];

/// Tables of platform schemas whose rows users create, and why they are not backed up.
pub const KNOWN_PLATFORM_DATA: &[(&str, &str)] = &[
    (
        "vault.secrets",
        "encrypted with a key that exists only on the Supabase server",
    ),
    (
        "pgsodium.key",
        "pgsodium's keys, derived from a root key that exists only on the Supabase server",
    ),
    (
        "cron.job",
        "pg_cron's scheduled jobs; schedule them again on the target with cron.schedule()",
    ),
    (
        "cron.job_run_details",
        "pg_cron's run history, kept by the Supabase server",
    ),
    (
        "net.http_request_queue",
        "pg_net's pending HTTP requests, sent by the Supabase server",
    ),
    (
        "net._http_response",
        "pg_net's HTTP responses (an unlogged cache)",
    ),
];

/// Migration ledgers of Supabase services: their rows describe the source's service versions, and the
/// services on a restored database would re-apply their own; structure is kept, data is not.
pub const LEDGER_TABLES: &[&str] = &[
    "auth.schema_migrations",
    "storage.migrations",
    "supabase_functions.migrations",
];

/// The user's choices about content; [`ContentPolicy::default`] is the Supabase-aware default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentPolicy {
    /// Schemas to dump; empty means every schema that is not system, platform or excluded. Naming a
    /// platform schema here includes it.
    pub include_schemas: Vec<String>,
    /// Schemas never dumped (exact names; a trailing `*` matches any suffix). Wins over inclusion.
    pub exclude_schemas: Vec<String>,
    pub keep_auth: bool,
    pub keep_storage: bool,
    /// `schema.table`: neither structure nor data.
    pub exclude_tables: Vec<String>,
    /// `schema.table`: structure only.
    pub exclude_table_data: Vec<String>,
}

impl Default for ContentPolicy {
    fn default() -> Self {
        ContentPolicy {
            include_schemas: Vec::new(),
            exclude_schemas: Vec::new(),
            keep_auth: true,
            keep_storage: true,
            exclude_tables: Vec::new(),
            exclude_table_data: Vec::new(),
        }
    }
}

/// The resolved content of one backup, all lists sorted and free of duplicates.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Selection {
    /// Schemas to dump (`pg_dump -n` each).
    pub schemas: Vec<String>,
    /// `schema.table` to leave out entirely (`--exclude-table`).
    pub exclude_tables: Vec<String>,
    /// `schema.table` whose data is left out (`--exclude-table-data`): ledgers plus the user's.
    pub exclude_table_data: Vec<String>,
    /// Source schemas not dumped, with the reason, for the report.
    pub skipped_schemas: Vec<(String, &'static str)>,
    /// Objects in schemas not dumped that a user may miss (`schema.table`, why), for the report:
    /// tables a user role owns, and platform tables holding rows users create ([`KNOWN_PLATFORM_DATA`],
    /// extension configuration tables).
    pub omitted: Vec<(String, String)>,
    /// Roles whose privileges the manifest fingerprints besides PUBLIC: those the target is prepared
    /// with (set by the backup once the target is prepared; from the manifest for a restore test).
    pub privilege_roles: Vec<String>,
}

pub const WHY_SYSTEM: &str = "system schema";
pub const WHY_PLATFORM: &str = "Supabase platform schema, holding nothing a user role owns";
pub const WHY_EXTENSION: &str = "created by an extension";
pub const WHY_OWN: &str = "supaneon-sync's own schema";
pub const WHY_EXCLUDED: &str = "excluded by configuration";
pub const WHY_NOT_INCLUDED: &str = "not in include-schemas";
pub const WHY_AUTH: &str = "auth not kept (keep-auth: false)";
pub const WHY_STORAGE: &str = "storage not kept (keep-storage: false)";

impl Selection {
    /// The selection a stored manifest was taken with, as far as a restored copy needs it: for a
    /// restore test, which has the backup branch's manifest but not the source. (Excluded tables
    /// are absent from the copy anyway.)
    pub fn of_manifest(manifest: &Manifest) -> Selection {
        Selection {
            schemas: manifest.schemas.clone(),
            exclude_tables: Vec::new(),
            exclude_table_data: manifest
                .tables
                .iter()
                .filter(|t| t.data_excluded)
                .map(|t| t.qualified_name())
                .collect(),
            skipped_schemas: Vec::new(),
            omitted: Vec::new(),
            privilege_roles: manifest
                .definitions
                .as_ref()
                .map(|d| d.privilege_roles.clone())
                .unwrap_or_default(),
        }
    }

    /// The pg_dump options that select exactly this content: `--schema=` per schema, then
    /// `--exclude-table=` and `--exclude-table-data=`. Every name is double-quoted, so pg_dump matches
    /// it literally (no case folding, no `*`/`?`/`.` wildcards), whatever characters it holds.
    pub fn pg_dump_args(&self) -> Vec<String> {
        let mut args: Vec<String> = self
            .schemas
            .iter()
            .map(|s| format!("--schema={}", dump_pattern(s)))
            .collect();
        for (option, tables) in [
            ("--exclude-table", &self.exclude_tables),
            ("--exclude-table-data", &self.exclude_table_data),
        ] {
            for table in tables {
                if let Some((schema, name)) = table.split_once('.') {
                    args.push(format!(
                        "{option}={}.{}",
                        dump_pattern(schema),
                        dump_pattern(name)
                    ));
                }
            }
        }
        args
    }
}

/// A pg_dump name pattern that matches `name` exactly: double-quoted, inner quotes doubled.
fn dump_pattern(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Does `name` match `pattern` (exact, or prefix when the pattern ends in `*`)?
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn is_system(name: &str) -> bool {
    name == "information_schema" || name.starts_with("pg_")
}

fn is_platform_name(name: &str) -> bool {
    PLATFORM_SCHEMAS.iter().any(|p| matches(p, name))
}

/// Is `role` one of the Supabase platform's roles?
pub fn is_platform_role(role: &str) -> bool {
    PLATFORM_ROLES.iter().any(|p| matches(p, role))
}

/// What the catalog says about one source schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaFacts {
    pub name: String,
    /// The schema itself belongs to an extension (`pg_depend` deptype `e`).
    pub extension_owned: bool,
    /// Its owner is a platform role ([`PLATFORM_ROLES`]).
    pub platform_owned: bool,
    /// Relations and functions in it that no extension owns and no platform role owns.
    pub user_objects: i64,
    /// Relations and functions in it that an extension or a platform role owns.
    pub platform_objects: i64,
}

impl SchemaFacts {
    /// A schema of the platform: it has a platform name and holds nothing of a user's; a user-owned
    /// schema of such a name counts only when it holds platform objects (Supabase's `extensions` is
    /// owned by `postgres` but holds only the extensions' objects). A user's empty schema is kept.
    fn is_platform(&self) -> bool {
        is_platform_name(&self.name)
            && self.user_objects == 0
            && (self.platform_owned || self.platform_objects > 0)
    }
}

/// Why a source schema is not dumped under `policy`, or `None` if it is.
fn skip_reason(policy: &ContentPolicy, facts: &SchemaFacts) -> Option<&'static str> {
    let name = facts.name.as_str();
    if is_system(name) {
        return Some(WHY_SYSTEM);
    }
    if name == OWN_SCHEMA {
        return Some(WHY_OWN);
    }
    if facts.extension_owned {
        return Some(WHY_EXTENSION);
    }
    if policy.exclude_schemas.iter().any(|p| matches(p, name)) {
        return Some(WHY_EXCLUDED);
    }
    if !policy.include_schemas.is_empty() {
        // The user's list is the whole truth, platform schemas included.
        return if policy.include_schemas.iter().any(|s| s == name) {
            None
        } else {
            Some(WHY_NOT_INCLUDED)
        };
    }
    if facts.is_platform() {
        return Some(WHY_PLATFORM);
    }
    if name == "auth" && !policy.keep_auth {
        return Some(WHY_AUTH);
    }
    if name == "storage" && !policy.keep_storage {
        return Some(WHY_STORAGE);
    }
    None
}

/// The catalog facts of every source schema ([`SchemaFacts`]), in one query.
const SCHEMA_FACTS_SQL: &str = "\
WITH platform_roles AS ( \
  SELECT oid FROM pg_catalog.pg_roles WHERE rolname::text LIKE ANY ($1::text[])), \
members AS ( \
  SELECT classid, objid FROM pg_catalog.pg_depend WHERE deptype = 'e'), \
objects AS ( \
  SELECT c.relnamespace AS nsp, c.relowner AS owner, 'pg_catalog.pg_class'::pg_catalog.regclass AS classid, c.oid \
    FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
  UNION ALL \
  SELECT p.pronamespace, p.proowner, 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid FROM pg_catalog.pg_proc p), \
classified AS ( \
  SELECT o.nsp, (EXISTS (SELECT 1 FROM members m WHERE m.classid = o.classid AND m.objid = o.oid) \
                 OR o.owner IN (SELECT oid FROM platform_roles)) AS platform \
    FROM objects o) \
SELECT n.nspname::text, \
       EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass \
                                          AND m.objid = n.oid), \
       n.nspowner IN (SELECT oid FROM platform_roles), \
       (SELECT count(*) FROM classified k WHERE k.nsp = n.oid AND NOT k.platform), \
       (SELECT count(*) FROM classified k WHERE k.nsp = n.oid AND k.platform) \
  FROM pg_catalog.pg_namespace n \
 WHERE n.nspname !~ '^pg_(toast|temp_|toast_temp_)'";

/// `PLATFORM_ROLES` as LIKE patterns.
fn platform_role_patterns() -> Vec<String> {
    PLATFORM_ROLES
        .iter()
        .map(|p| match p.strip_suffix('*') {
            Some(prefix) => format!("{}%", prefix.replace('_', "\\_")),
            None => p.replace('_', "\\_"),
        })
        .collect()
}

/// Resolves `policy` against the source's schemas, and lists by name what the schemas left out hold
/// that a user may miss. Fails when `include_schemas` names a schema the source does not have.
pub async fn select(
    client: &impl GenericClient,
    policy: &ContentPolicy,
) -> Result<Selection, InspectError> {
    let query_failed = |what: &str| {
        let what = what.to_string();
        move |source| InspectError::Query { what, source }
    };
    let rows = client
        .query(SCHEMA_FACTS_SQL, &[&platform_role_patterns()])
        .await
        .map_err(query_failed("listing the source's schemas"))?;
    let source: Vec<SchemaFacts> = rows
        .iter()
        .map(|r| SchemaFacts {
            name: r.get(0),
            extension_owned: r.get(1),
            platform_owned: r.get(2),
            user_objects: r.get(3),
            platform_objects: r.get(4),
        })
        .collect();
    let mut selection = resolve(policy, source)?;
    // Partitions and child tables follow their parent: pg_dump 15 would dump them on their own.
    let in_selection = |t: &String| {
        t.split_once('.')
            .is_some_and(|(s, _)| selection.schemas.iter().any(|x| x == s))
    };
    let tables = exclusions::with_descendants(client, &selection.exclude_tables).await?;
    let tables: Vec<String> = tables.into_iter().filter(in_selection).collect();
    let data = exclusions::with_descendants(client, &selection.exclude_table_data).await?;
    let data: Vec<String> = data
        .into_iter()
        .filter(in_selection)
        .filter(|t| !tables.contains(t))
        .collect();
    selection.exclude_tables = tables;
    selection.exclude_table_data = data;
    selection.omitted = omitted_tables(client, &selection).await?;
    Ok(selection)
}

/// Tables of the skipped schemas worth a line in the report: those a user role owns (always), and
/// platform tables users fill ([`KNOWN_PLATFORM_DATA`], extension configuration tables) when they hold
/// rows. Only tables the role may read, and whose RLS it bypasses, are probed for rows (an error
/// would end the snapshot; with `row_security = off` a policy is an error).
async fn omitted_tables(
    client: &impl GenericClient,
    selection: &Selection,
) -> Result<Vec<(String, String)>, InspectError> {
    let skipped: Vec<String> = selection
        .skipped_schemas
        .iter()
        .filter(|(_, why)| *why != WHY_OWN)
        .map(|(n, _)| n.clone())
        .collect();
    if skipped.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, pg_catalog.pg_get_userbyid(c.relowner)::text, \
                    NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                                 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                                   AND d.objid = c.oid AND d.deptype = 'e') \
                      AND NOT pg_catalog.pg_get_userbyid(c.relowner)::text LIKE ANY ($2::text[]) AS user_owned, \
                    (SELECT e.extname::text FROM pg_catalog.pg_extension e \
                      WHERE c.oid = ANY (e.extconfig)) AS config_of, \
                    pg_catalog.has_table_privilege(c.oid, 'SELECT') \
                      AND (NOT c.relrowsecurity OR (SELECT r.rolsuper OR r.rolbypassrls \
                            FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)) AS readable \
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = ANY ($1::text[]) AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
              ORDER BY 1, 2",
            &[&skipped, &platform_role_patterns()],
        )
        .await
        .map_err(|source| InspectError::Query {
            what: "listing the tables of the schemas left out".into(),
            source,
        })?;
    let mut omitted = Vec::new();
    for row in rows {
        let (schema, table, owner): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let (user_owned, config_of, readable): (bool, Option<String>, bool) =
            (row.get(3), row.get(4), row.get(5));
        let qualified = format!("{schema}.{table}");
        let why_schema = selection
            .skipped_schemas
            .iter()
            .find(|(n, _)| *n == schema)
            .map(|(_, why)| *why)
            .unwrap_or(WHY_PLATFORM);
        if user_owned {
            omitted.push((
                qualified,
                format!("a table of {owner}'s in schema {schema}, which is not backed up ({why_schema}); name the schema in include-schemas to keep it"),
            ));
            continue;
        }
        let known_why = KNOWN_PLATFORM_DATA
            .iter()
            .find(|(t, _)| *t == qualified)
            .map(|(_, why)| why.to_string());
        let why = match (known_why, config_of) {
            (Some(why), _) => why,
            (None, Some(ext)) => format!(
                "configuration data of extension {ext}, which is not backed up ({why_schema})"
            ),
            (None, None) => continue,
        };
        if !readable {
            omitted.push((
                qualified,
                format!("{why} (it could not be read to check for rows)"),
            ));
            continue;
        }
        let probe = format!(
            "SELECT EXISTS (SELECT 1 FROM {}.{})",
            crate::pg::inspect::quote_ident(&schema),
            crate::pg::inspect::quote_ident(&table)
        );
        let has_rows: bool = client
            .query_one(&probe, &[])
            .await
            .map_err(|source| InspectError::Query {
                what: format!("checking {qualified} for rows"),
                source,
            })?
            .get(0);
        if has_rows {
            omitted.push((qualified, why));
        }
    }
    Ok(omitted)
}

/// The pure part of [`select`]: `source` describes every schema.
pub fn resolve(
    policy: &ContentPolicy,
    mut source: Vec<SchemaFacts>,
) -> Result<Selection, InspectError> {
    if let Some(missing) = policy
        .include_schemas
        .iter()
        .find(|s| !source.iter().any(|f| f.name == **s))
    {
        return Err(InspectError::UnknownSchema(missing.clone()));
    }
    source.sort_by(|a, b| a.name.cmp(&b.name));
    let mut selection = Selection::default();
    for facts in source {
        match skip_reason(policy, &facts) {
            None => selection.schemas.push(facts.name),
            // System schemas are not worth a line in a report.
            Some(WHY_SYSTEM) => {}
            Some(why) => selection.skipped_schemas.push((facts.name, why)),
        }
    }
    let in_selection = |table: &&String| {
        table
            .split_once('.')
            .is_some_and(|(schema, _)| selection.schemas.iter().any(|s| s == schema))
    };
    selection.exclude_tables =
        sorted_unique(policy.exclude_tables.iter().filter(in_selection).cloned());
    let ledgers = LEDGER_TABLES
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>();
    selection.exclude_table_data = sorted_unique(
        ledgers
            .iter()
            .chain(&policy.exclude_table_data)
            .filter(in_selection)
            .filter(|t| !selection.exclude_tables.contains(t))
            .cloned(),
    );
    Ok(selection)
}

fn sorted_unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = items.collect();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, extension-owned, platform-owned, user objects, platform objects)
    fn facts(rows: &[(&str, bool, bool, i64, i64)]) -> Vec<SchemaFacts> {
        rows.iter()
            .map(|&(n, e, p, u, k)| SchemaFacts {
                name: n.to_string(),
                extension_owned: e,
                platform_owned: p,
                user_objects: u,
                platform_objects: k,
            })
            .collect()
    }

    fn supabase_like() -> Vec<SchemaFacts> {
        facts(&[
            ("public", false, false, 10, 0),
            ("auth", false, true, 0, 20),
            ("storage", false, true, 0, 10),
            ("realtime", false, true, 0, 12),
            // Supabase's `extensions` is owned by postgres but holds only the extensions' objects.
            ("extensions", false, false, 0, 80),
            ("vault", false, true, 0, 3),
            ("graphql", true, true, 0, 5),
            ("pg_catalog", false, true, 0, 3000),
            ("pg_toast", false, true, 0, 0),
            ("information_schema", false, true, 0, 60),
            ("supabase_functions", false, true, 0, 4),
            ("supabase_migrations", false, false, 2, 0),
            ("app_private", false, false, 3, 0),
            ("timescaledb_information", false, true, 0, 9),
            ("supaneon_sync", false, false, 1, 0),
            // A user's schemas that happen to carry platform names.
            ("etl", false, false, 1, 0),
            ("pgmq", false, false, 4, 0),
            ("tiger", false, false, 0, 0),
            // A user's table inside a platform-owned schema is reported, the schema is not dumped.
            ("cron", false, true, 1, 2),
        ])
    }

    #[test]
    fn user_schemas_are_kept_whatever_their_name() {
        let s = resolve(&ContentPolicy::default(), supabase_like()).unwrap();
        for kept in ["etl", "pgmq", "tiger"] {
            assert!(
                s.schemas.iter().any(|n| n == kept),
                "{kept}: {:?}",
                s.schemas
            );
        }
        let skipped: Vec<_> = s.skipped_schemas.iter().map(|(n, _)| n.as_str()).collect();
        assert!(skipped.contains(&"extensions"), "{skipped:?}");
        assert!(skipped.contains(&"vault"), "{skipped:?}");
        // A platform-owned schema holding a user's table is kept rather than lost.
        assert!(s.schemas.iter().any(|n| n == "cron"), "{:?}", s.schemas);
    }

    #[test]
    fn default_keeps_customer_auth_and_storage_only() {
        let s = resolve(&ContentPolicy::default(), supabase_like()).unwrap();
        assert_eq!(
            s.schemas,
            [
                "app_private",
                "auth",
                "cron",
                "etl",
                "pgmq",
                "public",
                "storage",
                "supabase_functions",
                "supabase_migrations",
                "tiger"
            ]
        );
        assert_eq!(s.exclude_table_data, LEDGER_TABLES);
        let skipped: Vec<_> = s
            .skipped_schemas
            .iter()
            .map(|(n, w)| (n.as_str(), *w))
            .collect();
        assert!(skipped.contains(&("graphql", WHY_EXTENSION)));
        assert!(skipped.contains(&("realtime", WHY_PLATFORM)));
        assert!(skipped.contains(&("timescaledb_information", WHY_PLATFORM)));
        assert!(skipped.contains(&("supaneon_sync", WHY_OWN)));
        assert!(!skipped.iter().any(|(n, _)| *n == "pg_catalog"));
    }

    #[test]
    fn auth_and_storage_can_be_dropped_and_their_ledgers_go_with_them() {
        let policy = ContentPolicy {
            keep_auth: false,
            keep_storage: false,
            ..Default::default()
        };
        let s = resolve(&policy, supabase_like()).unwrap();
        assert!(!s.schemas.contains(&"auth".to_string()));
        assert!(!s.schemas.contains(&"storage".to_string()));
        assert_eq!(s.exclude_table_data, ["supabase_functions.migrations"]);
    }

    #[test]
    fn explicit_include_wins_over_platform_but_not_over_exclude_or_extensions() {
        let policy = ContentPolicy {
            include_schemas: vec![
                "public".into(),
                "realtime".into(),
                "graphql".into(),
                "vault".into(),
            ],
            exclude_schemas: vec!["vault".into()],
            ..Default::default()
        };
        let s = resolve(&policy, supabase_like()).unwrap();
        assert_eq!(s.schemas, ["public", "realtime"]);
        assert!(s.exclude_table_data.is_empty());
    }

    #[test]
    fn pg_dump_args_quote_every_name() {
        let s = Selection {
            schemas: vec!["public".into(), "My\"Odd.*".into()],
            exclude_tables: vec!["public.Big Table".into()],
            exclude_table_data: vec!["auth.schema_migrations".into()],
            skipped_schemas: vec![],
            omitted: vec![],
            privilege_roles: vec![],
        };
        assert_eq!(
            s.pg_dump_args(),
            [
                r#"--schema="public""#,
                r#"--schema="My""Odd.*""#,
                r#"--exclude-table="public"."Big Table""#,
                r#"--exclude-table-data="auth"."schema_migrations""#,
            ]
        );
    }

    #[test]
    fn unknown_included_schema_is_an_error() {
        let policy = ContentPolicy {
            include_schemas: vec!["nope".into()],
            ..Default::default()
        };
        assert!(
            matches!(resolve(&policy, supabase_like()), Err(InspectError::UnknownSchema(s)) if s == "nope")
        );
    }

    #[test]
    fn table_exclusions_are_sorted_deduplicated_and_limited_to_dumped_schemas() {
        let policy = ContentPolicy {
            exclude_schemas: vec!["app_*".into()],
            exclude_tables: vec![
                "public.b".into(),
                "public.a".into(),
                "public.b".into(),
                "realtime.x".into(),
            ],
            exclude_table_data: vec![
                "public.a".into(),
                "public.logs".into(),
                "app_private.t".into(),
            ],
            ..Default::default()
        };
        let s = resolve(&policy, supabase_like()).unwrap();
        assert!(!s.schemas.contains(&"app_private".to_string()));
        assert_eq!(s.exclude_tables, ["public.a", "public.b"]);
        assert_eq!(
            s.exclude_table_data,
            [
                "auth.schema_migrations",
                "public.logs",
                "storage.migrations",
                "supabase_functions.migrations"
            ]
        );
    }
}
