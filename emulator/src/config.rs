//! Configuration of one emulated Neon project and the Postgres cluster behind it.

use std::time::Duration;

/// The query Neon's connection URIs carry (`GET /connection_uri`, the console and neonctl alike).
pub const NEON_URI_QUERY: &str = "sslmode=require&channel_binding=require";

/// The real PostgreSQL cluster that holds every branch's databases.
#[derive(Clone, Debug)]
pub struct BackingPostgres {
    /// Superuser conninfo (key=value or URL, any transport); used without TLS.
    pub admin_conninfo: String,
    /// Host written into connection URIs and endpoint hosts.
    pub public_host: String,
    /// Port written into connection URIs.
    pub public_port: u16,
    /// Query string appended to connection URIs (without `?`); Neon's by default.
    pub uri_query: String,
}

impl BackingPostgres {
    pub fn new(admin_conninfo: &str, public_host: &str, public_port: u16) -> Self {
        BackingPostgres {
            admin_conninfo: admin_conninfo.to_string(),
            public_host: public_host.to_string(),
            public_port,
            uri_query: NEON_URI_QUERY.to_string(),
        }
    }
}

/// Everything the emulator needs to serve one project.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    pub postgres: BackingPostgres,
    pub api_key: String,
    /// Must match `^[a-z0-9-]{1,60}$`, e.g. `quiet-river-12345678`.
    pub project_id: String,
    /// Reported as the project's `pg_version`; should equal the backing cluster's major.
    pub pg_version: u32,
    pub branch_limit: usize,
    pub root_branch_limit: usize,
    /// Time an operation spends in `scheduling` and again in `running`.
    pub operation_step: Duration,
    /// When false, `reveal_password` answers 412 like a project with password storage disabled.
    pub store_passwords: bool,
}

impl EmulatorConfig {
    pub fn new(
        postgres: BackingPostgres,
        api_key: &str,
        project_id: &str,
        pg_version: u32,
    ) -> Self {
        EmulatorConfig {
            postgres,
            api_key: api_key.to_string(),
            project_id: project_id.to_string(),
            pg_version,
            branch_limit: 10,
            root_branch_limit: 3,
            operation_step: Duration::from_millis(200),
            store_passwords: true,
        }
    }
}
