//! Loading the Supabase-shaped source fixture and preparing a Neon-shaped target.

use crate::cluster::Cluster;

/// The fixture SQL; it expects the psql variable `postgres_password`.
const SUPABASE_SOURCE_SQL: &str = include_str!("../sql/supabase_source.sql");

impl Cluster {
    /// Loads `sql/supabase_source.sql` into `db` (created if missing) as the bootstrap superuser;
    /// the `postgres` role gets `postgres_password`. Start the cluster with superuser
    /// `supabase_admin`. Roles are created idempotently, so two databases of one cluster work.
    pub fn load_supabase_fixture(&self, db: &str, postgres_password: &str) {
        self.ensure_database(db, None);
        let script = format!(
            "\\set postgres_password {}\n{SUPABASE_SOURCE_SQL}",
            psql_quote(postgres_password)
        );
        self.psql(db, &script);
    }

    /// Makes the cluster look like a Neon project: group `neon_superuser` (not a superuser),
    /// login `neondb_owner` in it with `owner_password`, and database `neondb` owned by it.
    /// Returns the TLS URL of `neondb` for `neondb_owner`. Start the cluster with superuser
    /// `cloud_admin`.
    pub fn setup_neon_target(&self, owner_password: &str) -> String {
        let script = format!(
            "\\set owner_password {}\n{}",
            psql_quote(owner_password),
            NEON_ROLES_SQL
        );
        self.psql("postgres", &script);
        self.ensure_database("neondb", Some("neondb_owner"));
        self.url("neondb_owner", owner_password, "neondb")
    }

    fn ensure_database(&self, db: &str, owner: Option<&str>) {
        let exists = self.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = {};",
                sql_literal(db)
            ),
        );
        if exists.trim() == "0" {
            let owner_clause = owner
                .map(|o| format!(" OWNER {}", sql_ident(o)))
                .unwrap_or_default();
            self.psql(
                "postgres",
                &format!("CREATE DATABASE {}{owner_clause};", sql_ident(db)),
            );
        }
    }
}

/// Neon's role layout: `neon_superuser` carries CREATEDB CREATEROLE REPLICATION BYPASSRLS and the
/// predefined read/write roles; the project owner is a login member of it.
const NEON_ROLES_SQL: &str = r#"
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'neon_superuser') THEN
    CREATE ROLE neon_superuser NOLOGIN CREATEDB CREATEROLE REPLICATION BYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'neondb_owner') THEN
    CREATE ROLE neondb_owner LOGIN CREATEDB CREATEROLE REPLICATION BYPASSRLS;
  END IF;
END
$$;
GRANT pg_read_all_data, pg_write_all_data, pg_signal_backend, pg_monitor TO neon_superuser;
GRANT neon_superuser TO neondb_owner WITH ADMIN OPTION;
ALTER ROLE neondb_owner WITH LOGIN PASSWORD :'owner_password';
"#;

/// A psql `\set` argument: single-quoted, with psql's escapes for `'` and `\`.
fn psql_quote(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('\'', "\\'")
        .replace('\n', "\\n")
        .replace('\r', "\\r");
    format!("'{escaped}'")
}

fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn sql_ident(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}
