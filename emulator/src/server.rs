//! Starting, inspecting and stopping an emulator instance.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::{physical_name, App, Shared};
use crate::backing::Backing;
use crate::config::EmulatorConfig;
use crate::faults::Faults;
use crate::ids;
use crate::model::{Branch, Database, Endpoint, Role, State, DEFAULT_DATABASE, OWNER_ROLE};
use crate::recording::RecordedExchange;

/// A running emulator: one Neon project served over HTTP, backed by a real Postgres cluster.
pub struct Emulator {
    app: Shared,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

fn valid_project_id(id: &str) -> bool {
    (1..=60).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

impl Emulator {
    /// Bootstraps the project (owner role, `main` branch with database `neondb` and an endpoint) on
    /// the backing cluster and starts serving on `listen` (port 0 picks a free port).
    pub async fn start(
        cfg: EmulatorConfig,
        listen: SocketAddr,
    ) -> Result<Emulator, Box<dyn Error + Send + Sync>> {
        if !valid_project_id(&cfg.project_id) {
            return Err(format!(
                "project id {:?} does not match ^[a-z0-9-]{{1,60}}$",
                cfg.project_id
            )
            .into());
        }
        let backing = Backing::new(cfg.postgres.clone());
        backing.quiesce().await?;
        let password = backing
            .ensure_owner_role(OWNER_ROLE, &ids::password())
            .await?;

        let now = Utc::now();
        let branch_id = ids::branch_id();
        let physical = physical_name(&branch_id, DEFAULT_DATABASE, &[]);
        backing.create_database(&physical, OWNER_ROLE).await?;
        let baseline = backing.relation_sizes(&physical).await?;
        let endpoint_id = ids::endpoint_id();
        let main = Branch {
            id: branch_id.clone(),
            name: "main".to_string(),
            parent_id: None,
            created_at: now,
            updated_at: now,
            default: true,
            protected: false,
            expires_at: None,
            expiry_set_at: None,
            init_source: "parent-data",
            annotation: None,
            databases: vec![Database {
                id: 1,
                name: DEFAULT_DATABASE.to_string(),
                owner_name: OWNER_ROLE.to_string(),
                physical,
                created_at: now,
                baseline,
            }],
            roles: vec![Role {
                name: OWNER_ROLE.to_string(),
                password,
                created_at: now,
            }],
            creation_ops: Vec::new(),
            logical_size: 0,
            written_data_bytes: 0,
        };
        let endpoint = Endpoint {
            id: endpoint_id,
            branch_id,
            created_at: now,
            updated_at: now,
            suspended_at: None,
            started_at: now,
            start_ops: Vec::new(),
        };
        let state = State {
            project_id: cfg.project_id.clone(),
            project_created_at: now,
            pg_version: cfg.pg_version,
            branches: vec![main],
            endpoints: vec![endpoint],
            operations: Vec::new(),
            deleted_branch_names: Vec::new(),
            next_database_id: 1,
            step: cfg.operation_step,
            public_host: cfg.postgres.public_host.clone(),
        };
        let faults = Faults::new(cfg.branch_limit);
        let app: Shared = Arc::new(App::new(cfg, state, backing, faults));

        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let router = crate::api::router(app.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Emulator {
            app,
            addr,
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:PORT/api/v2`
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v2", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn project_id(&self) -> String {
        self.app.cfg.project_id.clone()
    }

    pub fn api_key(&self) -> String {
        self.app.cfg.api_key.clone()
    }

    pub fn faults(&self) -> Faults {
        self.app.faults.clone()
    }

    /// Makes connection URIs name `port` (or the backing cluster's again, with `None`) while the API keeps
    /// naming the same endpoint host: an impostor on the network path, for tests.
    pub fn route_connections_to(&self, port: Option<u16>) {
        *self
            .app
            .connection_port_override
            .lock()
            .expect("override lock") = port;
    }

    /// Every exchange so far, in order.
    pub fn requests(&self) -> Vec<RecordedExchange> {
        self.app.recorder.all()
    }

    /// The current branches as `GET …/branches/{id}` would show them.
    pub fn branches(&self) -> Vec<Value> {
        let st = self.app.state();
        let now = Utc::now();
        st.branches.iter().map(|b| st.branch_json(b, now)).collect()
    }

    /// Measures every branch's storage now, as a `GET` of the branch list does.
    pub async fn refresh_storage(&self) {
        self.app.refresh_storage().await;
    }

    /// How many compute endpoints `branch_id` has.
    pub fn endpoint_count(&self, branch_id: &str) -> usize {
        self.app.state().endpoints_of(branch_id).count()
    }

    /// Names of branches deleted so far (by API call or by expiry), in order.
    pub fn deleted_branch_names(&self) -> Vec<String> {
        self.app.state().deleted_branch_names.clone()
    }

    /// The physical database behind (branch id, database name), for tests that check storage.
    pub fn physical_database(&self, branch_id: &str, database: &str) -> Option<String> {
        let st = self.app.state();
        let b = st.branch(branch_id)?;
        b.databases
            .iter()
            .find(|d| d.name == database)
            .map(|d| d.physical.clone())
    }

    /// Stops serving; the backing databases are left as they are.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
