//! The emulated project's state and how each object renders as the API shows it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::ids;
use crate::operations::Operation;

pub(crate) const REGION: &str = "aws-us-east-2";
pub(crate) const OWNER_ROLE: &str = "neondb_owner";
pub(crate) const DEFAULT_DATABASE: &str = "neondb";

#[derive(Clone, Debug)]
pub(crate) struct Database {
    pub id: i64,
    pub name: String,
    pub owner_name: String,
    /// The real database on the backing cluster.
    pub physical: String,
    pub created_at: DateTime<Utc>,
    /// Its relation files at the branch's creation: what later writes are measured against.
    pub baseline: crate::storage::RelationSizes,
}

#[derive(Clone, Debug)]
pub(crate) struct Role {
    pub name: String,
    pub password: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub(crate) struct Annotation {
    pub value: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub(crate) struct Branch {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub default: bool,
    pub protected: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// When `expires_at` was set, to report `ttl_interval_seconds`.
    pub expiry_set_at: Option<DateTime<Utc>>,
    pub init_source: &'static str,
    pub annotation: Option<Annotation>,
    pub databases: Vec<Database>,
    pub roles: Vec<Role>,
    /// The operations that bring the branch to `ready`.
    pub creation_ops: Vec<String>,
    /// Measured when last read (see [`crate::storage`]).
    pub logical_size: i64,
    pub written_data_bytes: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub id: String,
    pub branch_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub suspended_at: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    /// The operations that bring the endpoint to `active`.
    pub start_ops: Vec<String>,
}

pub(crate) struct State {
    pub project_id: String,
    pub project_created_at: DateTime<Utc>,
    pub pg_version: u32,
    pub branches: Vec<Branch>,
    pub endpoints: Vec<Endpoint>,
    pub operations: Vec<Operation>,
    pub deleted_branch_names: Vec<String>,
    pub next_database_id: i64,
    pub step: Duration,
    pub public_host: String,
}

/// Whether every listed operation is terminal at `now`; and the latest time one of them changed.
fn ops_settled(
    ops: &[Operation],
    ids: &[String],
    now: DateTime<Utc>,
    step: Duration,
) -> (bool, Option<DateTime<Utc>>) {
    let mut settled = true;
    let mut last = None;
    for op in ops.iter().filter(|o| ids.contains(&o.id)) {
        let v = op.view(now, step);
        settled &= v.is_terminal();
        last = last.max(Some(v.updated_at));
    }
    (settled, last)
}

impl State {
    pub fn branch(&self, id: &str) -> Option<&Branch> {
        self.branches.iter().find(|b| b.id == id)
    }

    pub fn branch_mut(&mut self, id: &str) -> Option<&mut Branch> {
        self.branches.iter_mut().find(|b| b.id == id)
    }

    pub fn default_branch(&self) -> Option<&Branch> {
        self.branches.iter().find(|b| b.default)
    }

    pub fn has_children(&self, id: &str) -> bool {
        self.branches
            .iter()
            .any(|b| b.parent_id.as_deref() == Some(id))
    }

    pub fn root_count(&self) -> usize {
        self.branches
            .iter()
            .filter(|b| b.parent_id.is_none())
            .count()
    }

    pub fn endpoints_of<'a>(
        &'a self,
        branch_id: &'a str,
    ) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints
            .iter()
            .filter(move |e| e.branch_id == branch_id)
    }

    pub fn operation(&self, id: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.id == id)
    }

    /// A non-terminal operation blocks every mutation of the project (HTTP 423).
    pub fn has_running_operations(&self, now: DateTime<Utc>) -> bool {
        self.operations
            .iter()
            .any(|o| !o.view(now, self.step).is_terminal())
    }

    pub fn next_database_id(&mut self) -> i64 {
        self.next_database_id += 1;
        self.next_database_id
    }

    pub fn operation_json(&self, op: &Operation, now: DateTime<Utc>) -> Value {
        op.to_json(&self.project_id, now, self.step)
    }

    pub fn branch_json(&self, b: &Branch, now: DateTime<Utc>) -> Value {
        let (ready, changed) = ops_settled(&self.operations, &b.creation_ops, now, self.step);
        let mut o = json!({
            "id": b.id,
            "project_id": self.project_id,
            "name": b.name,
            "current_state": if ready { "ready" } else { "init" },
            "state_changed_at": ids::ts(if ready { changed.unwrap_or(b.created_at) } else { b.created_at }),
            "logical_size": b.logical_size,
            "creation_source": "console",
            "default": b.default,
            "protected": b.protected,
            "cpu_used_sec": 0,
            "compute_time_seconds": 0,
            "active_time_seconds": 0,
            "written_data_bytes": b.written_data_bytes,
            "data_transfer_bytes": 0,
            "created_at": ids::ts(b.created_at),
            "updated_at": ids::ts(b.updated_at),
            "init_source": b.init_source,
        });
        if !ready {
            o["pending_state"] = json!("ready");
        }
        if let Some(parent) = &b.parent_id {
            o["parent_id"] = json!(parent);
            o["parent_lsn"] = json!("0/1DE2850");
            o["parent_timestamp"] = json!(ids::ts(b.created_at));
        }
        if let Some(expires) = b.expires_at {
            o["expires_at"] = json!(ids::ts(expires));
            let set_at = b.expiry_set_at.unwrap_or(b.created_at);
            o["ttl_interval_seconds"] = json!((expires - set_at).num_seconds().max(0));
        }
        o
    }

    /// The branch's annotation; branches without one get an empty value (the GET schema requires it).
    pub fn annotation_json(&self, b: &Branch) -> Value {
        let (value, created) = match &b.annotation {
            Some(a) => (a.value.clone(), a.created_at),
            None => (BTreeMap::new(), b.created_at),
        };
        json!({
            "object": {"type": "console/branch", "id": b.id},
            "value": value,
            "created_at": ids::ts(created),
            "updated_at": ids::ts(created),
        })
    }

    pub fn endpoint_json(&self, e: &Endpoint, now: DateTime<Utc>) -> Value {
        let (started, _) = ops_settled(&self.operations, &e.start_ops, now, self.step);
        let state = match (started, e.suspended_at) {
            (false, _) => "init",
            (true, Some(_)) => "idle",
            (true, None) => "active",
        };
        let mut o = json!({
            "host": self.public_host,
            "id": e.id,
            "project_id": self.project_id,
            "branch_id": e.branch_id,
            "autoscaling_limit_min_cu": 0.25,
            "autoscaling_limit_max_cu": 0.25,
            "region_id": REGION,
            "type": "read_write",
            "current_state": state,
            "settings": {"pg_settings": {}},
            "pooler_enabled": false,
            "pooler_mode": "transaction",
            "disabled": false,
            "passwordless_access": false,
            "creation_source": "console",
            "created_at": ids::ts(e.created_at),
            "updated_at": ids::ts(e.updated_at),
            "started_at": ids::ts(e.started_at),
            "proxy_host": self.public_host,
            "suspend_timeout_seconds": 0,
            "provisioner": "k8s-neonvm",
        });
        if !started {
            o["pending_state"] = json!("active");
        }
        if let Some(s) = e.suspended_at {
            o["suspended_at"] = json!(ids::ts(s));
            o["last_active"] = json!(ids::ts(s));
        }
        o
    }

    pub fn database_json(&self, branch_id: &str, d: &Database) -> Value {
        json!({
            "id": d.id,
            "branch_id": branch_id,
            "name": d.name,
            "owner_name": d.owner_name,
            "created_at": ids::ts(d.created_at),
            "updated_at": ids::ts(d.created_at),
        })
    }

    pub fn role_json(&self, branch_id: &str, r: &Role) -> Value {
        json!({
            "branch_id": branch_id,
            "name": r.name,
            "protected": false,
            "authentication_method": "password",
            "created_at": ids::ts(r.created_at),
            "updated_at": ids::ts(r.created_at),
        })
    }

    pub fn project_json(&self, branch_limit: usize, store_passwords: bool) -> Value {
        let created = ids::ts(self.project_created_at);
        let billed: i64 = self.branches.iter().map(storage_billed).sum();
        let written: i64 = self.branches.iter().map(|b| b.written_data_bytes).sum();
        json!({
            "id": self.project_id,
            "platform_id": "aws",
            "region_id": REGION,
            "name": self.project_id,
            "provisioner": "k8s-neonvm",
            "pg_version": self.pg_version,
            "proxy_host": self.public_host,
            "branch_logical_size_limit": 512,
            "branch_logical_size_limit_bytes": 536_870_912_i64,
            "store_passwords": store_passwords,
            "cpu_used_sec": 0,
            "creation_source": "console",
            "history_retention_seconds": 21600,
            "created_at": created,
            "updated_at": created,
            "owner_id": "emulator-owner",
            "owner": {
                "email": "owner@emulator.invalid",
                "name": "Neon emulator",
                "branches_limit": branch_limit,
                "subscription_type": "free_v3",
            },
            "consumption_period_start": created,
            "consumption_period_end": ids::ts(self.project_created_at + chrono::Duration::days(30)),
            "active_time_seconds": 0,
            "compute_time_seconds": 0,
            "written_data_bytes": written,
            "data_transfer_bytes": 0,
            "data_storage_bytes_hour": 0,
            "synthetic_storage_size": billed,
        })
    }
}

/// One branch's storage by Neon's rule.
pub(crate) fn storage_billed(b: &Branch) -> i64 {
    crate::storage::billed(b.parent_id.is_none(), b.logical_size, b.written_data_bytes)
}

/// An annotation value from a request body: an object of string values (at most 50).
pub(crate) fn parse_annotation(v: &Value) -> Result<BTreeMap<String, String>, String> {
    let obj: &Map<String, Value> = v.as_object().ok_or("annotation_value must be an object")?;
    if obj.len() > 50 {
        return Err("annotation_value may hold at most 50 properties".into());
    }
    obj.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(format!("annotation_value.{k} must be a string")),
        })
        .collect()
}
