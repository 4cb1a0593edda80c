//! Typed shapes of the Neon API v2 objects we use. Unknown fields are ignored; passwords in responses are
//! never kept in these types.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Annotation properties: a flat map of strings (at most 50).
pub type Annotations = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub pg_version: u32,
    #[serde(default)]
    pub owner: Option<ProjectOwner>,
    /// The project's storage as Neon bills it, in bytes: root branches at their logical size, children at
    /// min(written since creation, logical size).
    #[serde(default)]
    pub synthetic_storage_size: Option<u64>,
}

impl Project {
    /// The plan's branch limit, when Neon reports it.
    pub fn branches_limit(&self) -> Option<usize> {
        self.owner
            .as_ref()
            .and_then(|o| o.branches_limit)
            .map(|n| n as usize)
    }

    /// The plan's storage allowance, when the project is on the free plan (0.5 GB per project).
    pub fn free_plan_storage(&self) -> Option<u64> {
        self.owner
            .as_ref()
            .and_then(|o| o.subscription_type.as_deref())
            .filter(|plan| plan.starts_with("free"))
            .map(|_| FREE_PLAN_STORAGE_BYTES)
    }
}

/// Neon's free plan: 0.5 GB of storage per project, all branches together.
pub const FREE_PLAN_STORAGE_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProjectOwner {
    #[serde(default)]
    pub branches_limit: Option<u64>,
    #[serde(default)]
    pub subscription_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Branch {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub protected: bool,
    /// `init`, `ready`, `resetting`, `archived`, … (a free string in the spec).
    pub current_state: String,
    #[serde(default)]
    pub pending_state: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Bytes.
    #[serde(default)]
    pub logical_size: Option<u64>,
    /// Bytes written since the branch's creation: what a child branch is billed for, up to its size.
    #[serde(default)]
    pub written_data_bytes: Option<u64>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
impl Branch {
    /// A ready, unprotected root branch named `name` (id `br-<name>`) created at `created_at`: the base
    /// of the unit tests' branch lists, which override what they need.
    pub(crate) fn ready_for_test(name: &str, created_at: DateTime<Utc>) -> Branch {
        Branch {
            id: format!("br-{name}"),
            name: name.into(),
            parent_id: None,
            default: false,
            protected: false,
            current_state: "ready".into(),
            pending_state: None,
            created_at,
            logical_size: None,
            written_data_bytes: None,
            expires_at: None,
        }
    }
}

/// A branch with its annotation properties (empty when it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchInfo {
    pub branch: Branch,
    pub annotations: Annotations,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointType {
    ReadWrite,
    ReadOnly,
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub branch_id: String,
    #[serde(rename = "type")]
    pub endpoint_type: EndpointType,
    /// `init`, `active`, `idle`.
    pub current_state: String,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Database {
    pub id: i64,
    pub branch_id: String,
    pub name: String,
    pub owner_name: String,
}

/// A Postgres role on a branch. The password Neon may send along is deliberately not kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Role {
    pub branch_id: String,
    pub name: String,
    #[serde(default)]
    pub protected: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    Scheduling,
    Running,
    Finished,
    Failed,
    Error,
    Cancelling,
    Cancelled,
    Skipped,
    #[serde(other)]
    Unknown,
}

impl OperationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Scheduling => "scheduling",
            OperationStatus::Running => "running",
            OperationStatus::Finished => "finished",
            OperationStatus::Failed => "failed",
            OperationStatus::Error => "error",
            OperationStatus::Cancelling => "cancelling",
            OperationStatus::Cancelled => "cancelled",
            OperationStatus::Skipped => "skipped",
            OperationStatus::Unknown => "unknown",
        }
    }

    /// Done and successful.
    pub fn succeeded(self) -> bool {
        matches!(self, OperationStatus::Finished | OperationStatus::Skipped)
    }

    /// Done and unsuccessful: reported at once, `failed` included (waiting for Neon to retry it kept runs
    /// polling for many minutes).
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            OperationStatus::Failed | OperationStatus::Error | OperationStatus::Cancelled
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Operation {
    pub id: String,
    pub action: String,
    pub status: OperationStatus,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub failures_count: u32,
    #[serde(default)]
    pub branch_id: Option<String>,
    #[serde(default)]
    pub endpoint_id: Option<String>,
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateBranch {
    pub name: String,
    /// `None`: the project's default branch.
    pub parent_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub annotations: Annotations,
    /// Create a read_write compute endpoint (needed to connect).
    pub with_endpoint: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedBranch {
    pub branch: Branch,
    pub endpoint: Option<Endpoint>,
}

/// How a delete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// We deleted it and its operations finished.
    Removed,
    /// It did not exist (any more): Neon answered 204 or 404.
    AlreadyGone,
}

// ---- wire envelopes (crate-private) ----

#[derive(Deserialize)]
pub(crate) struct ProjectResponse {
    pub project: Project,
}

#[derive(Deserialize)]
pub(crate) struct AnnotationData {
    #[serde(default)]
    pub value: Annotations,
}

#[derive(Deserialize, Default)]
pub(crate) struct Pagination {
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct BranchesResponse {
    pub branches: Vec<Branch>,
    #[serde(default)]
    pub annotations: BTreeMap<String, AnnotationData>,
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

#[derive(Deserialize)]
pub(crate) struct BranchResponse {
    pub branch: Branch,
}

#[derive(Deserialize)]
pub(crate) struct BranchOperationsResponse {
    pub branch: Branch,
    #[serde(default)]
    pub operations: Vec<Operation>,
}

#[derive(Deserialize)]
pub(crate) struct CreateBranchResponse {
    pub branch: Branch,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub operations: Vec<Operation>,
}

#[derive(Deserialize)]
pub(crate) struct EndpointsResponse {
    pub endpoints: Vec<Endpoint>,
}

#[derive(Deserialize)]
pub(crate) struct EndpointOperationsResponse {
    #[serde(default)]
    pub operations: Vec<Operation>,
}

#[derive(Deserialize)]
pub(crate) struct CreatedEndpointResponse {
    pub endpoint: Endpoint,
    #[serde(default)]
    pub operations: Vec<Operation>,
}

#[derive(Deserialize)]
pub(crate) struct DatabasesResponse {
    pub databases: Vec<Database>,
}

/// The answer to creating or deleting a database: `{database, operations}`.
#[derive(Deserialize)]
pub(crate) struct DatabaseOperationsResponse {
    #[serde(default)]
    pub operations: Vec<Operation>,
}

#[derive(Deserialize)]
pub(crate) struct RolesResponse {
    pub roles: Vec<Role>,
}

#[derive(Deserialize)]
pub(crate) struct OperationResponse {
    pub operation: Operation,
}

#[derive(Deserialize)]
pub(crate) struct OperationsResponse {
    pub operations: Vec<Operation>,
}

#[derive(Deserialize)]
pub(crate) struct ConnectionUriResponse {
    pub uri: String,
}

/// Secrets inside a create-branch response (role passwords, connection URIs), read only to register them
/// for redaction before anything else happens.
#[derive(Deserialize, Default)]
pub(crate) struct CreateBranchSecrets {
    #[serde(default)]
    pub roles: Vec<RoleWithPassword>,
    #[serde(default)]
    pub connection_uris: Vec<ConnectionDetails>,
}

#[derive(Deserialize)]
pub(crate) struct RoleWithPassword {
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct ConnectionDetails {
    #[serde(default)]
    pub connection_uri: Option<String>,
    #[serde(default)]
    pub connection_parameters: Option<ConnectionParameters>,
}

#[derive(Deserialize)]
pub(crate) struct ConnectionParameters {
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct CreateBranchRequest<'a> {
    pub branch: CreateBranchFields<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<CreateEndpointFields>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotation_value: Option<&'a Annotations>,
}

#[derive(Serialize)]
pub(crate) struct CreateBranchFields<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct CreateEndpointFields {
    #[serde(rename = "type")]
    pub endpoint_type: EndpointType,
}

/// RFC3339 with seconds and `Z`, as Neon writes timestamps.
pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
