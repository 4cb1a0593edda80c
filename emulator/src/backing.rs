//! Administration of the real PostgreSQL cluster behind the emulator: the owner role and one physical
//! database per (branch, database).

use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls};

use crate::config::BackingPostgres;

pub(crate) type BackingError = Box<dyn std::error::Error + Send + Sync>;

/// The group role Neon makes every console/API role a member of.
pub(crate) const NEON_SUPERUSER: &str = "neon_superuser";

#[derive(Clone)]
pub(crate) struct Backing {
    pg: BackingPostgres,
}

/// Quotes an SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

impl Backing {
    pub fn new(pg: BackingPostgres) -> Self {
        Backing { pg }
    }

    pub fn public(&self) -> &BackingPostgres {
        &self.pg
    }

    /// Connects as the admin, to `dbname` when given (else the conninfo's own database).
    async fn connect(&self, dbname: Option<&str>) -> Result<Client, BackingError> {
        let mut config: Config = self.pg.admin_conninfo.parse()?;
        if let Some(db) = dbname {
            config.dbname(db);
        }
        config.application_name("neon-emulator");
        config.connect_timeout(Duration::from_secs(10));
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Turns the backing cluster's autovacuum off. On Neon a branch without a compute runs nothing, so it
    /// writes nothing; here every branch is a database of one cluster, and autovacuum would write
    /// visibility and free-space maps into branches nobody uses, which the storage measurement would
    /// bill (see [`crate::storage`]). Dead rows then stay until a client vacuums: the mirror's bill is, if
    /// anything, overstated.
    pub async fn quiesce(&self) -> Result<(), BackingError> {
        let client = self.connect(None).await?;
        client
            .batch_execute("ALTER SYSTEM SET autovacuum = off")
            .await?;
        client
            .batch_execute("SELECT pg_catalog.pg_reload_conf()")
            .await?;
        Ok(())
    }

    /// Creates `neon_superuser` and the owner role when missing and sets the owner's password.
    /// Roles are cluster-wide, so the password is kept in a small table of the admin database and
    /// reused: several emulators can then share one cluster without breaking each other's URIs.
    pub async fn ensure_owner_role(
        &self,
        role: &str,
        fresh_password: &str,
    ) -> Result<String, BackingError> {
        let client = self.connect(None).await?;
        let role_exists = "SELECT 1 FROM pg_roles WHERE rolname = $1";
        if client
            .query_opt(role_exists, &[&NEON_SUPERUSER])
            .await?
            .is_none()
        {
            client
                .batch_execute(&format!(
                    "CREATE ROLE {} NOLOGIN CREATEDB CREATEROLE BYPASSRLS",
                    ident(NEON_SUPERUSER)
                ))
                .await?;
        }
        // pg_read_all_data / pg_write_all_data exist from PostgreSQL 14 on.
        client
            .batch_execute(&format!(
                "GRANT pg_read_all_data, pg_write_all_data TO {}",
                ident(NEON_SUPERUSER)
            ))
            .await?;
        if client.query_opt(role_exists, &[&role]).await?.is_none() {
            client
                .batch_execute(&format!(
                    "CREATE ROLE {} LOGIN CREATEDB CREATEROLE IN ROLE {}",
                    ident(role),
                    ident(NEON_SUPERUSER)
                ))
                .await?;
        }
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS neon_emulator_role_passwords \
                 (role_name text PRIMARY KEY, password text NOT NULL)",
            )
            .await?;
        client
            .execute(
                "INSERT INTO neon_emulator_role_passwords VALUES ($1, $2) ON CONFLICT (role_name) DO NOTHING",
                &[&role, &fresh_password],
            )
            .await?;
        let password: String = client
            .query_one(
                "SELECT password FROM neon_emulator_role_passwords WHERE role_name = $1",
                &[&role],
            )
            .await?
            .get(0);
        client
            .batch_execute(&format!(
                "ALTER ROLE {} WITH LOGIN NOSUPERUSER PASSWORD {}",
                ident(role),
                literal(&password)
            ))
            .await?;
        Ok(password)
    }

    /// Creates an empty database owned by `owner`.
    pub async fn create_database(&self, physical: &str, owner: &str) -> Result<(), BackingError> {
        let client = self.connect(None).await?;
        client
            .batch_execute(&format!(
                "CREATE DATABASE {} OWNER {}",
                ident(physical),
                ident(owner)
            ))
            .await?;
        Ok(())
    }

    /// Copies `template` into a new database; Postgres needs the template free of sessions, so they are
    /// terminated first (a branch creation briefly disconnects clients of the parent).
    pub async fn copy_database(
        &self,
        template: &str,
        physical: &str,
        owner: &str,
    ) -> Result<(), BackingError> {
        let client = self.connect(None).await?;
        // FILE_COPY (PostgreSQL 15+) copies the files as they are, about four times faster on a 2 GB
        // database than the default WAL_LOG, which writes every page through the WAL. Neon branches in
        // constant time; the closer the emulator gets, the less its copying blurs the tool's timings.
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int4", &[])
            .await?
            .get(0);
        let strategy = if version >= 150_000 {
            " STRATEGY = FILE_COPY"
        } else {
            ""
        };
        let sql = format!(
            "CREATE DATABASE {} TEMPLATE {} OWNER {}{strategy}",
            ident(physical),
            ident(template),
            ident(owner)
        );
        let mut attempts = 0;
        loop {
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&template],
                )
                .await?;
            match client.batch_execute(&sql).await {
                Ok(()) => {
                    // A Neon branch is a copy of the whole timeline, settings included; CREATE DATABASE
                    // copies no `ALTER DATABASE … SET` / `ALTER ROLE … IN DATABASE … SET`: copied here.
                    client
                        .execute(
                            "INSERT INTO pg_catalog.pg_db_role_setting (setdatabase, setrole, setconfig) \
                             SELECT (SELECT oid FROM pg_catalog.pg_database WHERE datname = $2), s.setrole, s.setconfig \
                             FROM pg_catalog.pg_db_role_setting s \
                             WHERE s.setdatabase = (SELECT oid FROM pg_catalog.pg_database WHERE datname = $1)",
                            &[&template, &physical],
                        )
                        .await?;
                    return Ok(());
                }
                // "source database is being accessed by other users": a client reconnected in between.
                Err(e)
                    if attempts < 20
                        && e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Empties every user table, leaving the schema (for `init_source: schema-only`).
    pub async fn truncate_user_tables(&self, physical: &str) -> Result<(), BackingError> {
        let client = self.connect(Some(physical)).await?;
        client
            .batch_execute(
                "DO $$ DECLARE t text; BEGIN \
                   FOR t IN SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                       AND n.nspname NOT LIKE 'pg_toast%' \
                   LOOP EXECUTE 'TRUNCATE ' || t || ' CASCADE'; END LOOP; END $$",
            )
            .await?;
        Ok(())
    }

    /// Every relation's size in `physical` (all its forks), by file node (see [`crate::storage`]).
    pub async fn relation_sizes(
        &self,
        physical: &str,
    ) -> Result<crate::storage::RelationSizes, BackingError> {
        let mut all = self.relation_sizes_of(&[physical.to_string()]).await?;
        Ok(all.remove(physical).unwrap_or_default())
    }

    /// [`Self::relation_sizes`] of each of `physicals`, read off the data directory (`base/<database
    /// oid>/<file node>[_fork][.segment]`) in one admin session: no session on the branch databases
    /// themselves, which a copy from one of them as a template would have to wait for, and no backend
    /// started per database (measured with 9 branch databases: 75-89 ms a call with a session on each,
    /// 9 ms this way). Shared catalogs (roles, databases) live in `global/`, belong to the whole
    /// backing cluster and are left out; so are temporary tables (`t<backend>_<node>`), which Neon
    /// keeps on the compute and never stores, and the directory's bookkeeping files. Equals the sum
    /// of `pg_relation_size` over the forks of every relation with a file node, once the database's
    /// transactions have ended.
    pub async fn relation_sizes_of(
        &self,
        physicals: &[String],
    ) -> Result<std::collections::HashMap<String, crate::storage::RelationSizes>, BackingError>
    {
        let client = self.connect(None).await?;
        let rows = client
            .query(
                "SELECT d.datname::text, \
                        pg_catalog.substring(f.name, '^([0-9]+)(?:_(?:fsm|vm|init))?(?:\\.[0-9]+)?$')::int8, \
                        (pg_catalog.pg_stat_file('base/' || d.oid || '/' || f.name, true)).size \
                 FROM pg_catalog.pg_database d, \
                      LATERAL pg_catalog.pg_ls_dir('base/' || d.oid, true, false) AS f(name) \
                 WHERE d.datname = ANY($1)",
                &[&physicals],
            )
            .await?;
        let mut sizes: std::collections::HashMap<String, crate::storage::RelationSizes> = physicals
            .iter()
            .map(|p| (p.clone(), Default::default()))
            .collect();
        for row in rows {
            // A file that vanished between the listing and its stat (a drop, a truncation) is gone.
            let (database, node, size): (String, Option<i64>, Option<i64>) =
                (row.get(0), row.get(1), row.get(2));
            if let (Some(node), Some(size)) = (node, size) {
                *sizes.entry(database).or_default().entry(node).or_default() += size;
            }
        }
        Ok(sizes)
    }

    /// Drops a database, disconnecting its sessions.
    pub async fn drop_database(&self, physical: &str) -> Result<(), BackingError> {
        let client = self.connect(None).await?;
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                ident(physical)
            ))
            .await?;
        Ok(())
    }
}
