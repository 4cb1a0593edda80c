//! What a backup contains: the explicit list of schemas handed to pg_dump (`-n`), and the tables and
//! table data left out.
//!
//! An include-list rather than an exclude-list keeps Supabase's platform objects out of the dump:
//! with `-n`, pg_dump emits no `CREATE EXTENSION`, event trigger or publication (supabase-notes §6),
//! which a Neon role could not restore.

use tokio_postgres::GenericClient;

use crate::pg::inspect::{InspectError, OWN_SCHEMA};
use crate::pg::manifest::Manifest;

/// Schemas Supabase's platform owns, never dumped unless the user includes them by name. This is the
/// Supabase CLI's `InternalSchemas` list without the schemas we keep by default (`auth`, `storage`,
/// `supabase_functions`: customer triggers call `supabase_functions.http_request`;
/// `supabase_migrations`: the customer's migration history). A trailing `*` matches any suffix.
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
}

pub const WHY_SYSTEM: &str = "system schema";
pub const WHY_PLATFORM: &str = "Supabase platform schema";
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

fn is_platform(name: &str) -> bool {
    PLATFORM_SCHEMAS.iter().any(|p| matches(p, name))
}

/// Why a source schema is not dumped under `policy`, or `None` if it is.
fn skip_reason(policy: &ContentPolicy, name: &str, extension_owned: bool) -> Option<&'static str> {
    if is_system(name) {
        return Some(WHY_SYSTEM);
    }
    if name == OWN_SCHEMA {
        return Some(WHY_OWN);
    }
    if extension_owned {
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
    if is_platform(name) {
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

/// Resolves `policy` against the source's schemas (one catalog query). Fails when `include_schemas`
/// names a schema the source does not have.
pub async fn select(
    client: &impl GenericClient,
    policy: &ContentPolicy,
) -> Result<Selection, InspectError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                 WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass \
                   AND d.objid = n.oid AND d.deptype = 'e') \
             FROM pg_catalog.pg_namespace n",
            &[],
        )
        .await
        .map_err(|source| InspectError::Query {
            what: "listing the source's schemas".into(),
            source,
        })?;
    let source: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    resolve(policy, source)
}

/// The pure part of [`select`]: `source` is every schema with whether an extension owns it.
pub fn resolve(
    policy: &ContentPolicy,
    mut source: Vec<(String, bool)>,
) -> Result<Selection, InspectError> {
    if let Some(missing) = policy
        .include_schemas
        .iter()
        .find(|s| !source.iter().any(|(n, _)| n == *s))
    {
        return Err(InspectError::UnknownSchema(missing.clone()));
    }
    source.sort();
    let mut selection = Selection::default();
    for (name, extension_owned) in source {
        match skip_reason(policy, &name, extension_owned) {
            None => selection.schemas.push(name),
            // System schemas are not worth a line in a report.
            Some(WHY_SYSTEM) => {}
            Some(why) => selection.skipped_schemas.push((name, why)),
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

    fn supabase_like() -> Vec<(String, bool)> {
        [
            ("public", false),
            ("auth", false),
            ("storage", false),
            ("realtime", false),
            ("extensions", false),
            ("vault", false),
            ("graphql", true),
            ("pg_catalog", false),
            ("pg_toast", false),
            ("information_schema", false),
            ("supabase_functions", false),
            ("supabase_migrations", false),
            ("app_private", false),
            ("timescaledb_information", false),
            ("supaneon_sync", false),
        ]
        .into_iter()
        .map(|(n, e)| (n.to_string(), e))
        .collect()
    }

    #[test]
    fn default_keeps_customer_auth_and_storage_only() {
        let s = resolve(&ContentPolicy::default(), supabase_like()).unwrap();
        assert_eq!(
            s.schemas,
            [
                "app_private",
                "auth",
                "public",
                "storage",
                "supabase_functions",
                "supabase_migrations"
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
