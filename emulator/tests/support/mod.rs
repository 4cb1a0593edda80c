//! Shared harness for the emulator's tests: a real cluster, an emulator on it, an HTTP client and
//! the contract check every test ends with.
#![allow(dead_code)]

pub mod spec;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use neon_emulator::{BackingPostgres, Emulator, EmulatorConfig};
use serde_json::Value;
use supaneon_testkit::{Cluster, ClusterOptions};

pub const API_KEY: &str = "test-api-key";
pub const PROJECT: &str = "quiet-river-12345678";
/// Generous: the machine is shared and slow at times.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn spec() -> &'static spec::Spec {
    static SPEC: OnceLock<spec::Spec> = OnceLock::new();
    SPEC.get_or_init(spec::Spec::load)
}

/// One HTTP answer: status, headers, body (JSON, `Null` when empty, `String` when not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

pub struct Env {
    pub emu: Emulator,
    pub http: reqwest::Client,
    // Declared last: the emulator goes before its cluster.
    pub cluster: Cluster,
}

pub fn cluster() -> Cluster {
    Cluster::start(ClusterOptions::new(15, "postgres"))
}

pub fn config_for(cluster: &Cluster) -> EmulatorConfig {
    let pg = BackingPostgres::new(
        &cluster.admin_conninfo("postgres"),
        cluster.host(),
        cluster.port(),
    );
    let mut cfg = EmulatorConfig::new(pg, API_KEY, PROJECT, cluster.major());
    cfg.operation_step = Duration::from_millis(50);
    cfg
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut EmulatorConfig)) -> Env {
        let cluster = cluster();
        let mut cfg = config_for(&cluster);
        adjust(&mut cfg);
        let emu = Emulator::start(cfg, localhost())
            .await
            .expect("start the emulator");
        Env {
            emu,
            http: reqwest::Client::new(),
            cluster,
        }
    }

    /// `…/projects/{PROJECT}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/projects/{PROJECT}{path}", self.emu.base_url())
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("response body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(self.url(path)).bearer_auth(API_KEY))
            .await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> Answer {
        let mut req = self.http.post(self.url(path)).bearer_auth(API_KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(
            self.http
                .patch(self.url(path))
                .bearer_auth(API_KEY)
                .json(&body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.http.delete(self.url(path)).bearer_auth(API_KEY))
            .await
    }

    /// Polls the project's operations until none is in progress.
    pub async fn wait_idle(&self) {
        let start = Instant::now();
        loop {
            let a = self.get("/operations?limit=1000").await;
            assert_eq!(a.status, 200, "{}", a.body);
            let busy = a.body["operations"]
                .as_array()
                .expect("operations")
                .iter()
                .any(|o| {
                    !matches!(
                        o["status"].as_str(),
                        Some("finished" | "error" | "skipped" | "cancelled")
                    )
                });
            if !busy {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "operations still running after {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls one operation until `done` accepts its status; returns every status seen in order.
    pub async fn watch_operation(&self, id: &str, done: impl Fn(&str) -> bool) -> Vec<String> {
        let start = Instant::now();
        let mut seen: Vec<String> = Vec::new();
        loop {
            let a = self.get(&format!("/operations/{id}")).await;
            assert_eq!(a.status, 200, "{}", a.body);
            let status = a.body["operation"]["status"]
                .as_str()
                .expect("status")
                .to_string();
            if seen.last() != Some(&status) {
                seen.push(status.clone());
            }
            if done(&status) {
                return seen;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "operation {id} stuck; saw {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Creates a branch and waits for its operations; returns the create answer's body.
    pub async fn create_branch(&self, body: Value) -> Value {
        let a = self.post("/branches", Some(body)).await;
        assert_eq!(a.status, 201, "{}", a.body);
        self.wait_idle().await;
        a.body
    }

    pub async fn default_branch_id(&self) -> String {
        let a = self.get("/branches").await;
        a.body["branches"]
            .as_array()
            .expect("branches")
            .iter()
            .find(|b| b["default"] == true)
            .expect("a default branch")["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    pub async fn uri(&self, branch_id: &str) -> String {
        let a = self
            .get(&format!(
                "/connection_uri?branch_id={branch_id}&database_name=neondb&role_name=neondb_owner"
            ))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["uri"].as_str().expect("uri").to_string()
    }

    /// Whether a database exists on the backing cluster.
    pub fn database_exists(&self, physical: &str) -> bool {
        let out = self.cluster.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{physical}'"),
        );
        out.trim() == "1"
    }

    /// Ends the test: shuts the emulator down and checks every exchange against the spec.
    pub async fn finish(self) {
        let exchanges = self.emu.requests();
        assert!(!exchanges.is_empty(), "no exchange recorded");
        let problems: Vec<String> = exchanges
            .iter()
            .flat_map(|e| spec().check_exchange(e))
            .collect();
        self.emu.shutdown().await;
        assert!(
            problems.is_empty(),
            "responses violate the OpenAPI spec:\n{}",
            problems.join("\n")
        );
    }
}

/// Runs SQL through a connection URI with psql, the password passed by PGPASSWORD (never argv).
/// Returns (stdout, whether the session used TLS).
pub fn psql_uri(cluster: &Cluster, uri: &str, sql: &str) -> String {
    let mut parsed = url::Url::parse(uri).expect("connection URI");
    let password = percent_decode(parsed.password().expect("URI has a password"));
    parsed.set_password(None).expect("strip password");
    let out = Command::new(cluster.bin_dir().join("psql"))
        .env_clear()
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .args([
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            parsed.as_str(),
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_string()
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
