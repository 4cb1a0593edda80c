//! The local world: a Supabase-shaped source cluster, a Neon-shaped cluster and the Neon emulator in
//! front of it; and the environment that points `supaneon-sync` at them.

use std::path::PathBuf;
use std::time::Duration;

use neon_emulator::{BackingPostgres, Emulator, EmulatorConfig};
use rand::distributions::{Alphanumeric, DistString};
use supaneon_testkit::{pg_bin_dir, Cluster, ClusterOptions};

use crate::stop::StopRequests;

pub const PROJECT_ID: &str = "local-demo-00000001";
const OPERATION_STEP: Duration = Duration::from_millis(100);

/// A started world. Dropping it stops both clusters and removes their directories; call
/// [`LocalWorld::shutdown`] first to stop the emulator in order.
pub struct LocalWorld {
    major: u32,
    source_password: String,
    api_key: String,
    // Field order is drop order: the emulator goes before the cluster behind it.
    emulator: Option<Emulator>,
    neon_pg: Cluster,
    source: Cluster,
}

/// One cluster as the debug flag `--print-data-dirs` reports it.
pub struct ClusterInfo {
    pub role: &'static str,
    pub dir: PathBuf,
    pub pid: u32,
}

impl LocalWorld {
    /// Starts the world for PostgreSQL `major`. Returns `Ok(None)` when a stop was requested on the way;
    /// whatever was started by then is stopped and removed before this returns.
    pub async fn start(major: u32, stop: &StopRequests) -> Result<Option<LocalWorld>, String> {
        let source_password = random_token(32);
        let password = source_password.clone();
        progress(&format!(
            "starting the Supabase-shaped PostgreSQL {major} source"
        ));
        let source = blocking(move || {
            let source = Cluster::start(ClusterOptions::new(major, "supabase_admin"));
            source.load_supabase_fixture("postgres", &password);
            source
        })
        .await?;
        if stop.requested().is_some() {
            return Ok(None);
        }
        progress(&format!(
            "starting the Neon-shaped PostgreSQL {major} cluster"
        ));
        let neon_pg =
            blocking(move || Cluster::start(ClusterOptions::new(major, "cloud_admin"))).await?;
        if stop.requested().is_some() {
            return Ok(None);
        }
        progress("starting the Neon emulator");
        let api_key = format!("napi_local_{}", random_token(40));
        let mut cfg = EmulatorConfig::new(
            BackingPostgres::new(
                &neon_pg.admin_conninfo("postgres"),
                neon_pg.host(),
                neon_pg.port(),
            ),
            &api_key,
            PROJECT_ID,
            major,
        );
        cfg.operation_step = OPERATION_STEP;
        let emulator = Emulator::start(cfg, "127.0.0.1:0".parse().expect("a socket address"))
            .await
            .map_err(|e| format!("the Neon emulator did not start: {e}"))?;
        Ok(Some(LocalWorld {
            major,
            source_password,
            api_key,
            emulator: Some(emulator),
            neon_pg,
            source,
        }))
    }

    /// What `supaneon-sync` needs to run against this world. Holds secrets: for the env file only.
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        let emulator = self
            .emulator
            .as_ref()
            .expect("the emulator runs until shutdown");
        vec![
            (
                "SUPABASE_DATABASE_URL",
                self.source
                    .verified_url("postgres", &self.source_password, "postgres"),
            ),
            // The local clusters' certificates come from throwaway CAs, not public ones: the source's
            // is named in its URI, the branches' here. Verification stays verify-full either way.
            (
                "SUPANEON_NEON_CA_FILE",
                self.neon_pg.ca_cert_path().display().to_string(),
            ),
            ("NEON_API_KEY", self.api_key.clone()),
            ("NEON_PROJECT_ID", PROJECT_ID.to_string()),
            ("NEON_API_URL", emulator.base_url()),
            (
                "SUPANEON_PG_BIN_DIR",
                pg_bin_dir(self.major).display().to_string(),
            ),
            // For the demo's own change to the source between two backups: the superuser over the
            // cluster's unix socket (trust, no password anywhere).
            (
                "DEMO_SOURCE_ADMIN_CONNINFO",
                self.source.admin_conninfo("postgres"),
            ),
        ]
    }

    /// Each cluster's temp directory (removed on drop) and postmaster pid.
    pub fn clusters(&self) -> [ClusterInfo; 2] {
        let info = |role, cluster: &Cluster| ClusterInfo {
            role,
            dir: cluster.socket_dir().to_path_buf(),
            pid: cluster.pid(),
        };
        [info("source", &self.source), info("neon", &self.neon_pg)]
    }

    /// Stops the emulator, then both clusters (stopped and removed by their drop).
    pub async fn shutdown(mut self) {
        if let Some(emulator) = self.emulator.take() {
            emulator.shutdown().await;
        }
        tokio::task::spawn_blocking(move || drop(self)).await.ok();
    }
}

/// Runs blocking cluster work off the async threads. A panic inside (the testkit panics with the server
/// log when a cluster cannot start) has already dropped what the closure started; it becomes an error here.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        if e.is_panic() {
            "start-up failed (see the message above)".to_string()
        } else {
            e.to_string()
        }
    })
}

fn random_token(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

fn progress(message: &str) {
    eprintln!("local-world: {message}");
}
