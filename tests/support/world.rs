//! A whole world for end-to-end tests: a Supabase-shaped source cluster, a Neon-shaped cluster behind the
//! emulator, and the emulator itself; plus the environment that points the binary at them.
#![allow(dead_code)]

use neon_emulator::{BackingPostgres, Emulator, EmulatorConfig, FaultAction, FaultRule};
use supaneon_testkit::{pg_bin_dir, Cluster, ClusterOptions};

use super::cli::{Cli, Run};

pub const SOURCE_PASSWORD: &str = "Src-9vK2-distinctive-pw";
pub const API_KEY: &str = "napi_world_distinctive_7d3a";
pub const PROJECT_ID: &str = "quiet-river-12345678";

pub struct World {
    pub major: u32,
    pub source: Cluster,
    pub neon_pg: Cluster,
    pub emu: Emulator,
}

impl World {
    /// Starts both clusters, loads the fixture into the source's `postgres` database, starts the emulator.
    pub async fn start(major: u32) -> World {
        let source = Cluster::start(ClusterOptions::new(major, "supabase_admin"));
        source.load_supabase_fixture("postgres", SOURCE_PASSWORD);
        let neon_pg = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
        let mut cfg = EmulatorConfig::new(
            BackingPostgres::new(
                &neon_pg.admin_conninfo("postgres"),
                "127.0.0.1",
                neon_pg.port(),
            ),
            API_KEY,
            PROJECT_ID,
            major,
        );
        cfg.operation_step = std::time::Duration::from_millis(50);
        let emu = Emulator::start(cfg, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("start the emulator");
        World {
            major,
            source,
            neon_pg,
            emu,
        }
    }

    pub fn source_url(&self) -> String {
        self.source
            .verified_url("postgres", SOURCE_PASSWORD, "postgres")
    }

    /// The fingerprint supaneon-sync annotates on the branches it makes for this world's source.
    pub fn fingerprint(&self) -> String {
        let url = url::Url::parse(&self.source_url()).expect("source url");
        supaneon_sync::ownership::source_fingerprint(&supaneon_sync::config::SourceFacts {
            host: url.host_str().expect("host").to_string(),
            port: url.port().unwrap_or(5432),
            user: url.username().to_string(),
            database: url.path().trim_start_matches('/').to_string(),
            sslmode: supaneon_sync::pg::conn::SslMode::Require,
        })
    }

    /// The binary, configured for this world through the environment.
    pub fn cli(&self) -> Cli {
        Cli::new()
            .env("SUPABASE_DATABASE_URL", &self.source_url())
            .env("NEON_API_KEY", API_KEY)
            .env("NEON_PROJECT_ID", PROJECT_ID)
            .env("NEON_API_URL", &self.emu.base_url())
            // The branches' certificates come from the test cluster's CA, not a public one.
            .env(
                "SUPANEON_NEON_CA_FILE",
                self.neon_pg.ca_cert_path().to_str().unwrap(),
            )
            .env(
                "SUPANEON_PG_BIN_DIR",
                pg_bin_dir(self.major).to_str().unwrap(),
            )
    }

    /// The binary as the runner starts the Action's step with `with` as its inputs, in a job whose
    /// environment names the emulator clusters' test CA for branch certificates.
    pub fn action_cli(&self, with: &[(&str, &str)]) -> Cli {
        super::action::action_cli(with).env(
            "SUPANEON_NEON_CA_FILE",
            self.neon_pg.ca_cert_path().to_str().unwrap(),
        )
    }

    /// Makes every `method` request whose path contains `path_contains` answer 503 until the faults are cleared.
    pub fn fail_with_503(&self, method: &str, path_contains: &str) {
        self.emu.faults().push(
            FaultRule::new(
                path_contains,
                FaultAction::status(503, "service unavailable"),
            )
            .method(method)
            .times(1000),
        );
    }

    /// Names of the branches the emulator holds now.
    pub fn branch_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .emu
            .branches()
            .iter()
            .filter_map(|b| b["name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// Names of the backup branches (`backup-<ts>`) the emulator holds now.
    pub fn backup_names(&self) -> Vec<String> {
        self.branch_names()
            .into_iter()
            .filter(|n| supaneon_sync::config::is_backup_branch_name(n))
            .collect()
    }

    /// What the branch wrote since its creation, measured now (Neon's `written_data_bytes`).
    pub async fn written(&self, name: &str) -> i64 {
        self.emu.refresh_storage().await;
        self.branch(name).expect("branch")["written_data_bytes"]
            .as_i64()
            .expect("written_data_bytes")
    }

    /// The emulator's branch object by name.
    pub fn branch(&self, name: &str) -> Option<serde_json::Value> {
        self.emu.branches().into_iter().find(|b| b["name"] == name)
    }

    /// The superuser's psql on the physical database of a branch.
    pub fn psql_branch(&self, branch_name: &str, sql: &str) -> String {
        let branch = self
            .branch(branch_name)
            .unwrap_or_else(|| panic!("no branch {branch_name}"));
        let db = self
            .emu
            .physical_database(branch["id"].as_str().unwrap(), "neondb")
            .expect("physical db");
        self.neon_pg.psql(&db, sql)
    }
}

/// Neither the source password nor the API key appears anywhere in the run's output.
pub fn no_secrets(run: &Run) {
    run.assert_never_shows(SOURCE_PASSWORD);
    run.assert_never_shows(API_KEY);
}
