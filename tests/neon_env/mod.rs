//! What the Neon client's tests share (`neon_client`, `neon_client_idempotence`): an emulator on a real
//! PostgreSQL 15 cluster, a client for it, and small helpers. The test binary declares `neon_log`.
#![allow(dead_code)]

use std::time::Duration;

use neon_emulator::{BackingPostgres, Emulator, EmulatorConfig, FaultAction};
use supaneon_sync::neon::{CreateBranch, NeonClient, NeonSettings};
use supaneon_sync::secret::Secret;
use supaneon_testkit::{Cluster, ClusterOptions};

pub const PROJECT: &str = "quiet-river-12345678";
/// Distinctive, so a leak anywhere is unmistakable.
pub const API_KEY: &str = "napi_k3yLEAKcanary7Qz9XvB2mN4pR8sT";

pub struct Env {
    pub emu: Emulator,
    pub cluster: Cluster,
}

pub async fn start_with(tweak: impl FnOnce(&mut EmulatorConfig)) -> Env {
    crate::neon_log::capture();
    let cluster = Cluster::start(ClusterOptions {
        major: 15,
        superuser: "cloud_admin".into(),
    });
    let backing = BackingPostgres {
        admin_conninfo: cluster.admin_conninfo("postgres"),
        public_host: "127.0.0.1".into(),
        public_port: cluster.port(),
        uri_query: neon_emulator::NEON_URI_QUERY.into(),
    };
    let mut cfg = EmulatorConfig::new(backing, API_KEY, PROJECT, 15);
    cfg.operation_step = Duration::from_millis(30);
    tweak(&mut cfg);
    let emu = Emulator::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("start the Neon emulator");
    Env { emu, cluster }
}

pub async fn start() -> Env {
    start_with(|_| {}).await
}

impl Env {
    pub fn settings(&self) -> NeonSettings {
        NeonSettings {
            base_url: self.emu.base_url(),
            api_key: Secret::new(API_KEY),
            project_id: PROJECT.into(),
            call_deadline: Duration::from_secs(30),
            operation_deadline: Duration::from_secs(30),
        }
    }

    pub fn client(&self) -> NeonClient {
        NeonClient::new(self.settings()).expect("client")
    }

    /// Recorded exchanges whose method and path match (path compared by suffix after `/api/v2`).
    pub fn count(&self, method: &str, path_suffix: &str) -> usize {
        self.emu
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(path_suffix))
            .count()
    }

    pub fn branch_names(&self) -> Vec<String> {
        self.emu
            .branches()
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_string())
            .collect()
    }
}

pub fn status_fault(status: u16, code: &str, retry_after: Option<&str>) -> FaultAction {
    FaultAction::Status {
        status,
        code: code.into(),
        message: format!("emulated {status}"),
        retry_after: retry_after.map(str::to_string),
    }
}

pub fn backup(name: &str) -> CreateBranch {
    CreateBranch {
        name: name.into(),
        with_endpoint: true,
        ..CreateBranch::default()
    }
}
