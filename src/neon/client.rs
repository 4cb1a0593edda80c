//! The Neon API v2 client: pagination, non-idempotent safety for branch creation, and waiting for the
//! operations every mutation starts; every request goes through one retry loop (`transport`).

use std::collections::HashSet;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, USER_AGENT};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::error::{NeonError, NeonErrorKind};
use super::models::*;
use super::retry::{Attempts, RetryPolicy, Verdict};
use crate::secret::{self, Secret};

mod transport;
use transport::{decode, unexpected, Outcome, Request};

pub const DEFAULT_BASE_URL: &str = "https://console.neon.tech/api/v2";
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(90);
pub const DEFAULT_OPERATION_DEADLINE: Duration = Duration::from_secs(600);
pub const DEFAULT_PAGE_SIZE: usize = 100;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(2);
const REQUEST_ID_HEADER: &str = "x-neon-ret-request-id";

/// Where and how to reach the Neon API. `Debug` shows the key as `***`.
#[derive(Debug, Clone)]
pub struct NeonSettings {
    pub base_url: String,
    pub api_key: Secret,
    pub project_id: String,
    /// Overall deadline of one API call, across its retries.
    pub call_deadline: Duration,
    /// How long to wait for the operations of one mutation.
    pub operation_deadline: Duration,
}

impl NeonSettings {
    /// Settings with the production base URL and default deadlines.
    pub fn new(api_key: Secret, project_id: impl Into<String>) -> Self {
        NeonSettings {
            base_url: DEFAULT_BASE_URL.to_string(),
            api_key,
            project_id: project_id.into(),
            call_deadline: DEFAULT_CALL_DEADLINE,
            operation_deadline: DEFAULT_OPERATION_DEADLINE,
        }
    }
}

/// A client for one Neon project. Cheap to share by reference; every call is `&self`.
pub struct NeonClient {
    http: reqwest::Client,
    base_url: String,
    project_id: String,
    policy: RetryPolicy,
    operation_deadline: Duration,
    request_timeout: Duration,
    page_size: usize,
}

impl std::fmt::Debug for NeonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the HTTP client holds the Authorization header.
        f.debug_struct("NeonClient")
            .field("base_url", &self.base_url)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

impl NeonClient {
    pub fn new(settings: NeonSettings) -> Result<Self, NeonError> {
        let setup = |message: String| {
            NeonError::new(
                "set up the Neon API client",
                NeonErrorKind::Setup { message },
            )
        };
        let base_url = settings.base_url.trim_end_matches('/').to_string();
        url::Url::parse(&base_url).map_err(|e| setup(format!("invalid base URL: {e}")))?;
        if settings.api_key.is_empty() {
            return Err(setup("the API key is empty".into()));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", settings.api_key.expose()))
            .map_err(|_| {
                setup("the API key contains characters not allowed in an HTTP header".into())
            })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("supaneon-sync/", env!("CARGO_PKG_VERSION"))),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| setup(e.to_string()))?;
        Ok(NeonClient {
            http,
            base_url,
            project_id: settings.project_id,
            policy: RetryPolicy::with_deadline(settings.call_deadline),
            operation_deadline: settings.operation_deadline,
            request_timeout: REQUEST_TIMEOUT,
            page_size: DEFAULT_PAGE_SIZE,
        })
    }

    /// Page size for listing branches (1..=10000); tests use a small one to exercise pagination.
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.clamp(1, 10_000);
        self
    }

    /// Per-request timeout (default 30 s); each attempt is also bounded by what is left of the call deadline.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    fn project_path(&self, rest: &str) -> String {
        format!("/projects/{}{rest}", self.project_id)
    }

    // ---------------------------------------------------------------- calls

    pub async fn get_project(&self) -> Result<Project, NeonError> {
        let call = "read the Neon project";
        let reply = self
            .execute(call, Request::get(self.project_path("")))
            .await?;
        Ok(decode::<ProjectResponse>(call, &reply)?.project)
    }

    /// Every branch of the project (all pages), with its annotations.
    pub async fn list_branches(&self) -> Result<Vec<BranchInfo>, NeonError> {
        self.list_branches_matching("list branches", None).await
    }

    /// The branch named exactly `name` (Neon's `search` matches substrings; we match exactly).
    pub async fn find_branch_by_name(&self, name: &str) -> Result<Option<BranchInfo>, NeonError> {
        let call = format!("look up branch {name}");
        let found = self.list_branches_matching(&call, Some(name)).await?;
        Ok(found.into_iter().find(|b| b.branch.name == name))
    }

    /// The project's default branch.
    pub async fn default_branch(&self) -> Result<Branch, NeonError> {
        let call = "find the default branch";
        self.list_branches_matching(call, None)
            .await?
            .into_iter()
            .map(|b| b.branch)
            .find(|b| b.default)
            .ok_or_else(|| {
                NeonError::new(
                    call,
                    NeonErrorKind::Unexpected {
                        message: "the project has no default branch".into(),
                    },
                )
            })
    }

    /// Creates a branch and waits until its operations finished. Safe to call after an ambiguous
    /// failure: a branch with exactly this name that our earlier attempt created is adopted, never duplicated.
    pub async fn create_branch(&self, req: &CreateBranch) -> Result<CreatedBranch, NeonError> {
        let call = format!("create branch {}", req.name);
        let body = CreateBranchRequest {
            branch: CreateBranchFields {
                name: &req.name,
                parent_id: req.parent_id.as_deref(),
                expires_at: req.expires_at.map(rfc3339),
            },
            endpoints: if req.with_endpoint {
                vec![CreateEndpointFields {
                    endpoint_type: EndpointType::ReadWrite,
                }]
            } else {
                Vec::new()
            },
            annotation_value: (!req.annotations.is_empty()).then_some(&req.annotations),
        };
        let body = serde_json::to_value(&body).map_err(|e| unexpected(&call, e))?;
        let request = Request::with(Method::POST, self.project_path("/branches"), Some(body));

        let mut attempts = Attempts::new(self.policy);
        // Set once an attempt may have been applied without us seeing the answer.
        let mut maybe_applied = false;
        loop {
            if maybe_applied {
                if let Some(existing) = self.find_branch_by_name(&req.name).await? {
                    return self.adopt(&call, existing, req).await;
                }
            }
            let attempt = attempts.begin();
            match self.attempt(&call, &request, attempts.remaining()).await {
                Outcome::Done(reply) => {
                    register_create_secrets(&reply.body);
                    let created: CreateBranchResponse = decode(&call, &reply)?;
                    self.wait_for_operations(&created.operations).await?;
                    let branch = self.get_branch(&created.branch.id).await?;
                    let endpoint = match created.endpoints.first() {
                        Some(_) => self.read_write_endpoint(&call, &branch.id).await?,
                        None => None,
                    };
                    info!(branch = %branch.name, branch_id = %branch.id, "created Neon branch");
                    return Ok(CreatedBranch { branch, endpoint });
                }
                Outcome::Failed { error, .. } if error.status() == Some(409) && maybe_applied => {
                    // Our earlier attempt won the race for the name: adopt its branch.
                    match self.find_branch_by_name(&req.name).await? {
                        Some(existing) => return self.adopt(&call, existing, req).await,
                        None => return Err(error),
                    }
                }
                Outcome::Failed {
                    error,
                    verdict,
                    retry_after,
                } => {
                    if verdict == Verdict::RetryAmbiguous {
                        maybe_applied = true;
                    }
                    self.pause_or_fail(&attempts, attempt, error, verdict, retry_after)
                        .await?;
                }
            }
        }
    }

    pub async fn rename_branch(
        &self,
        branch_id: &str,
        new_name: &str,
    ) -> Result<Branch, NeonError> {
        let call = format!("rename branch {branch_id} to {new_name}");
        let body = serde_json::json!({ "branch": { "name": new_name } });
        let request = Request::with(
            Method::PATCH,
            self.project_path(&format!("/branches/{branch_id}")),
            Some(body),
        );
        match self.execute(&call, request).await {
            Ok(reply) => {
                let updated: BranchOperationsResponse = decode(&call, &reply)?;
                self.wait_for_operations(&updated.operations).await?;
                Ok(updated.branch)
            }
            // A retried rename whose first attempt was applied: the branch already has the name.
            Err(error) if error.status() == Some(409) => {
                let branch = self.get_branch(branch_id).await?;
                if branch.name == new_name {
                    Ok(branch)
                } else {
                    Err(error)
                }
            }
            Err(error) => Err(error),
        }
    }

    /// Sets (or with `None` clears) the branch's expiration time.
    pub async fn set_expires_at(
        &self,
        branch_id: &str,
        at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Branch, NeonError> {
        let call = match at {
            Some(at) => format!("set expiry of branch {branch_id} to {}", rfc3339(at)),
            None => format!("clear expiry of branch {branch_id}"),
        };
        let body = serde_json::json!({ "branch": { "expires_at": at.map(rfc3339) } });
        let request = Request::with(
            Method::PATCH,
            self.project_path(&format!("/branches/{branch_id}")),
            Some(body),
        );
        let reply = self.execute(&call, request).await?;
        let updated: BranchOperationsResponse = decode(&call, &reply)?;
        self.wait_for_operations(&updated.operations).await?;
        Ok(updated.branch)
    }

    /// Deletes a branch and waits for its operations. 204 and 404 mean it was already gone.
    pub async fn delete_branch(&self, branch_id: &str) -> Result<Deleted, NeonError> {
        let call = format!("delete branch {branch_id}");
        let request = Request::with(
            Method::DELETE,
            self.project_path(&format!("/branches/{branch_id}")),
            None,
        );
        match self.execute(&call, request).await {
            Ok(reply) if reply.status == StatusCode::NO_CONTENT => Ok(Deleted::AlreadyGone),
            Ok(reply) => {
                let deleted: BranchOperationsResponse = decode(&call, &reply)?;
                self.wait_for_operations(&deleted.operations).await?;
                info!(branch_id, "deleted Neon branch");
                Ok(Deleted::Removed)
            }
            Err(error) if error.status() == Some(404) => Ok(Deleted::AlreadyGone),
            Err(error) => Err(error),
        }
    }

    pub async fn list_endpoints(&self, branch_id: &str) -> Result<Vec<Endpoint>, NeonError> {
        let call = format!("list endpoints of branch {branch_id}");
        let reply = self
            .execute(
                &call,
                Request::get(self.project_path(&format!("/branches/{branch_id}/endpoints"))),
            )
            .await?;
        Ok(decode::<EndpointsResponse>(&call, &reply)?.endpoints)
    }

    pub async fn list_databases(&self, branch_id: &str) -> Result<Vec<Database>, NeonError> {
        let call = format!("list databases of branch {branch_id}");
        let reply = self
            .execute(
                &call,
                Request::get(self.project_path(&format!("/branches/{branch_id}/databases"))),
            )
            .await?;
        Ok(decode::<DatabasesResponse>(&call, &reply)?.databases)
    }

    /// Creates an empty database on the branch, owned by `owner`, and waits for its operations. Safe to
    /// repeat after an ambiguous failure: a 409 for a database of that name and owner is success.
    pub async fn create_database(
        &self,
        branch_id: &str,
        name: &str,
        owner: &str,
    ) -> Result<(), NeonError> {
        let call = format!("create database {name} on branch {branch_id}");
        let body = serde_json::json!({ "database": { "name": name, "owner_name": owner } });
        let request = Request::with(
            Method::POST,
            self.project_path(&format!("/branches/{branch_id}/databases")),
            Some(body),
        );
        match self.execute(&call, request).await {
            Ok(reply) => {
                let created: DatabaseOperationsResponse = decode(&call, &reply)?;
                self.wait_for_operations(&created.operations).await?;
                info!(branch_id, database = name, "created database");
                Ok(())
            }
            Err(error) if error.status() == Some(409) => {
                let ours = self
                    .list_databases(branch_id)
                    .await?
                    .iter()
                    .any(|d| d.name == name && d.owner_name == owner);
                if ours {
                    Ok(())
                } else {
                    Err(error)
                }
            }
            Err(error) => Err(error),
        }
    }

    /// Deletes a database of the branch and waits for its operations; a database already gone (204) is
    /// success.
    pub async fn delete_database(&self, branch_id: &str, name: &str) -> Result<(), NeonError> {
        let call = format!("delete database {name} of branch {branch_id}");
        let request = Request::with(
            Method::DELETE,
            self.project_path(&format!(
                "/branches/{branch_id}/databases/{}",
                utf8_percent_encode(name, NON_ALPHANUMERIC)
            )),
            None,
        );
        let reply = self.execute(&call, request).await?;
        if reply.status == StatusCode::NO_CONTENT {
            return Ok(());
        }
        let deleted: DatabaseOperationsResponse = decode(&call, &reply)?;
        self.wait_for_operations(&deleted.operations).await?;
        info!(branch_id, database = name, "deleted database");
        Ok(())
    }

    pub async fn list_roles(&self, branch_id: &str) -> Result<Vec<Role>, NeonError> {
        let call = format!("list roles of branch {branch_id}");
        let reply = self
            .execute(
                &call,
                Request::get(self.project_path(&format!("/branches/{branch_id}/roles"))),
            )
            .await?;
        Ok(decode::<RolesResponse>(&call, &reply)?.roles)
    }

    /// The direct (non-pooled) connection URI of the branch's read_write endpoint, as a masked secret.
    pub async fn connection_uri(
        &self,
        branch_id: &str,
        database: &str,
        role: &str,
    ) -> Result<Secret, NeonError> {
        let call = format!(
            "get the connection URI of branch {branch_id} (database {database}, role {role})"
        );
        let request = Request::get(self.project_path("/connection_uri"))
            .query("branch_id", branch_id)
            .query("database_name", database)
            .query("role_name", role)
            .query("pooled", "false");
        let reply = self.execute(&call, request).await?;
        // Register before anything could print it, even a decode error.
        if let Ok(raw) = serde_json::from_str::<serde_json::Value>(&reply.body) {
            if let Some(uri) = raw.get("uri").and_then(|u| u.as_str()) {
                secret::register(uri);
            }
        }
        let parsed: ConnectionUriResponse = decode(&call, &reply)?;
        Ok(Secret::new(parsed.uri))
    }

    /// Gives `branch_id` a read-write compute and waits until it has started.
    pub async fn create_endpoint(&self, branch_id: &str) -> Result<Endpoint, NeonError> {
        let call = format!("create a read-write compute for branch {branch_id}");
        let body = serde_json::json!({"endpoint": {"branch_id": branch_id, "type": "read_write"}});
        let request = Request::with(Method::POST, self.project_path("/endpoints"), Some(body));
        let reply = self.execute(&call, request).await?;
        let created: CreatedEndpointResponse = decode(&call, &reply)?;
        self.wait_for_operations(&created.operations).await?;
        Ok(created.endpoint)
    }

    pub async fn suspend_endpoint(&self, endpoint_id: &str) -> Result<(), NeonError> {
        let call = format!("suspend endpoint {endpoint_id}");
        let request = Request::with(
            Method::POST,
            self.project_path(&format!("/endpoints/{endpoint_id}/suspend")),
            None,
        );
        let reply = self.execute(&call, request).await?;
        let suspended: EndpointOperationsResponse = decode(&call, &reply)?;
        self.wait_for_operations(&suspended.operations).await
    }

    /// Polls each operation until it `finished` or was `skipped`; `failed`, `error` and `cancelled` are
    /// reported at once (a `failed` operation is not ours to wait out: the run fails and says why).
    pub async fn wait_for_operations(&self, ops: &[Operation]) -> Result<(), NeonError> {
        let started = Instant::now();
        let deadline = started + self.operation_deadline;
        for op in ops {
            self.wait_for_operation(op, started, deadline).await?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- helpers

    async fn wait_for_operation(
        &self,
        op: &Operation,
        started: Instant,
        deadline: Instant,
    ) -> Result<(), NeonError> {
        let call = format!("wait for operation {} ({})", op.action, op.id);
        let mut current = op.clone();
        let mut interval = POLL_FIRST;
        loop {
            if current.status.succeeded() {
                debug!(operation = %current.id, action = %current.action, "Neon operation done");
                return Ok(());
            }
            if current.status.is_fatal() {
                return Err(operation_error(&call, &current));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(if current.status == OperationStatus::Failed {
                    operation_error(&call, &current)
                } else {
                    NeonError::new(
                        &call,
                        NeonErrorKind::OperationTimeout {
                            id: current.id.clone(),
                            action: current.action.clone(),
                            status: current.status.as_str().to_string(),
                            waited: now - started,
                        },
                    )
                });
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
            interval = (interval * 3 / 2).min(POLL_MAX);
            let reply = self
                .execute(
                    &call,
                    Request::get(self.project_path(&format!("/operations/{}", op.id))),
                )
                .await?;
            current = decode::<OperationResponse>(&call, &reply)?.operation;
        }
    }

    async fn get_branch(&self, branch_id: &str) -> Result<Branch, NeonError> {
        let call = format!("read branch {branch_id}");
        let reply = self
            .execute(
                &call,
                Request::get(self.project_path(&format!("/branches/{branch_id}"))),
            )
            .await?;
        Ok(decode::<BranchResponse>(&call, &reply)?.branch)
    }

    async fn read_write_endpoint(
        &self,
        call: &str,
        branch_id: &str,
    ) -> Result<Option<Endpoint>, NeonError> {
        let endpoints = self
            .list_endpoints(branch_id)
            .await
            .map_err(|e| NeonError::new(call, e.kind))?;
        Ok(endpoints
            .into_iter()
            .find(|e| e.endpoint_type == EndpointType::ReadWrite))
    }

    /// Takes over a branch an earlier, unanswered attempt of ours created: waits for its operations and
    /// returns it as if just created.
    async fn adopt(
        &self,
        call: &str,
        existing: BranchInfo,
        req: &CreateBranch,
    ) -> Result<CreatedBranch, NeonError> {
        // Only a branch carrying every annotation we sent (the run's id among them) is our earlier attempt;
        // one of the same name made by anyone else is not ours to take over.
        let annotated_by_us = req
            .annotations
            .iter()
            .all(|(k, v)| existing.annotations.get(k) == Some(v));
        if !annotated_by_us {
            return Err(NeonError::new(
                call,
                NeonErrorKind::Api {
                    status: 409,
                    code: String::new(),
                    message: format!(
                        "a branch named {} already exists and was not made by this run; it is not ours to take over",
                        req.name
                    ),
                    request_id: None,
                },
            ));
        }
        let branch = existing.branch;
        if req.parent_id.is_some() && branch.parent_id != req.parent_id {
            return Err(NeonError::new(
                call,
                NeonErrorKind::Unexpected {
                    message: format!(
                        "a branch named {} already exists with another parent; it is not ours to take over",
                        req.name
                    ),
                },
            ));
        }
        warn!(branch = %branch.name, branch_id = %branch.id, "an earlier create attempt went through; using that branch");
        let ops = self.pending_operations_of(call, &branch.id).await?;
        self.wait_for_operations(&ops).await?;
        let branch = self.get_branch(&branch.id).await?;
        let endpoint = self.read_write_endpoint(call, &branch.id).await?;
        if req.with_endpoint && endpoint.is_none() {
            return Err(NeonError::new(
                call,
                NeonErrorKind::Unexpected {
                    message: format!(
                        "branch {} exists but has no read_write endpoint",
                        branch.name
                    ),
                },
            ));
        }
        Ok(CreatedBranch { branch, endpoint })
    }

    /// The not-yet-finished operations of a branch, from the project's newest operations.
    async fn pending_operations_of(
        &self,
        call: &str,
        branch_id: &str,
    ) -> Result<Vec<Operation>, NeonError> {
        let request = Request::get(self.project_path("/operations")).query("limit", "100");
        let reply = self.execute(call, request).await?;
        Ok(decode::<OperationsResponse>(call, &reply)?
            .operations
            .into_iter()
            .filter(|op| op.branch_id.as_deref() == Some(branch_id) && !op.status.succeeded())
            .collect())
    }

    async fn list_branches_matching(
        &self,
        call: &str,
        search: Option<&str>,
    ) -> Result<Vec<BranchInfo>, NeonError> {
        let mut all = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut request = Request::get(self.project_path("/branches"))
                .query("limit", self.page_size.to_string())
                .query("sort_by", "created_at")
                .query("sort_order", "asc");
            if let Some(search) = search {
                request = request.query("search", search);
            }
            if let Some(cursor) = &cursor {
                request = request.query("cursor", cursor.clone());
            }
            let reply = self.execute(call, request).await?;
            let mut page: BranchesResponse = decode(call, &reply)?;
            if page.branches.is_empty() {
                break;
            }
            for branch in page.branches {
                if !seen.insert(branch.id.clone()) {
                    continue;
                }
                let annotations = page
                    .annotations
                    .remove(&branch.id)
                    .map(|a| a.value)
                    .unwrap_or_default();
                all.push(BranchInfo {
                    branch,
                    annotations,
                });
            }
            let next = page
                .pagination
                .and_then(|p| p.next)
                .filter(|n| !n.is_empty());
            match next {
                // A cursor that does not move would loop forever.
                Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
                _ => break,
            }
        }
        Ok(all)
    }
}

fn operation_error(call: &str, op: &Operation) -> NeonError {
    NeonError::new(
        call,
        NeonErrorKind::Operation {
            id: op.id.clone(),
            action: op.action.clone(),
            status: op.status.as_str().to_string(),
            error: op.error.clone(),
        },
    )
}

/// A create-branch response carries role passwords and connection URIs: register them for redaction.
fn register_create_secrets(body: &str) {
    let secrets: CreateBranchSecrets = serde_json::from_str(body).unwrap_or_default();
    for role in secrets.roles {
        if let Some(pw) = role.password {
            secret::register(&pw);
        }
    }
    for details in secrets.connection_uris {
        if let Some(uri) = details.connection_uri {
            secret::register(&uri);
        }
        if let Some(pw) = details.connection_parameters.and_then(|p| p.password) {
            secret::register(&pw);
        }
    }
}
