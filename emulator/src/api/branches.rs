//! Branch endpoints: list, count, create, read, update, delete, set-default, and the branch's endpoints and roles.

use std::cmp::Ordering;
use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::api::error::{ok, ApiError, ApiResult};
use crate::api::json_body;
use crate::api::pipeline::OpFault;
use crate::app::{physical_name, Shared};
use crate::ids;
use crate::model::{
    parse_annotation, Annotation, Branch, Database, Endpoint, Role, State as Model,
};
use crate::operations::Operation;

const MAX_EXPIRY_DAYS: i64 = 30;
const PROTECTED_REFUSAL: &str = "protected branches are not available on the Free plan (limit: 0)";

pub(crate) fn branch_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("branch {id} not found"))
}

fn matches_search(b: &Branch, search: Option<&String>) -> bool {
    search.is_none_or(|s| b.name.contains(s.as_str()) || b.id.contains(s.as_str()))
}

/// The position of a branch in a sorted listing: the sort field's value as a string, then the id.
fn sort_value(b: &Branch, sort_by: &str) -> String {
    match sort_by {
        "name" => b.name.clone(),
        "created_at" => ids::ts_micros(b.created_at),
        _ => ids::ts_micros(b.updated_at),
    }
}

fn encode_cursor(c: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(c.to_string())
}

fn decode_cursor(c: &str) -> Result<(String, String, String, String), ApiError> {
    let bad = || ApiError::bad_request("invalid request: malformed cursor");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(c)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(bad)
    };
    Ok((
        field("branch_id")?,
        field("sort_by")?,
        field("sort_by_value")?,
        field("sort_order")?,
    ))
}

pub(crate) async fn list(
    State(app): State<Shared>,
    Path(project_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    app.check_project(&project_id)?;
    app.refresh_storage().await;
    let mut sort_by = q
        .get("sort_by")
        .map(String::as_str)
        .unwrap_or("updated_at")
        .to_string();
    if !["name", "created_at", "updated_at"].contains(&sort_by.as_str()) {
        return Err(ApiError::bad_request(
            "invalid request: sort_by must be one of name, created_at, updated_at",
        ));
    }
    let mut sort_order = q
        .get("sort_order")
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_else(|| "desc".into());
    if sort_order != "asc" && sort_order != "desc" {
        return Err(ApiError::bad_request(
            "invalid request: sort_order must be asc or desc",
        ));
    }
    let limit = match q.get("limit") {
        None => usize::MAX,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=10000).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request("invalid request: limit must be between 1 and 10000")
            })?,
    };
    let after = match q.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let (id, by, value, order) = decode_cursor(c)?;
            // The cursor carries the ordering it was made for.
            sort_by = by;
            sort_order = order.to_ascii_lowercase();
            Some((value, id))
        }
    };
    let descending = sort_order == "desc";
    let now = Utc::now();
    let st = app.state();
    let ordered = |a: &(String, String), b: &(String, String)| -> Ordering {
        let o = a.cmp(b);
        if descending {
            o.reverse()
        } else {
            o
        }
    };
    let mut rows: Vec<((String, String), &Branch)> = st
        .branches
        .iter()
        .filter(|b| matches_search(b, q.get("search")))
        .map(|b| ((sort_value(b, &sort_by), b.id.clone()), b))
        .filter(|(key, _)| {
            after
                .as_ref()
                .is_none_or(|a| ordered(key, a) == Ordering::Greater)
        })
        .collect();
    rows.sort_by(|a, b| ordered(&a.0, &b.0));
    rows.truncate(limit);

    let mut annotations = serde_json::Map::new();
    for (_, b) in &rows {
        if b.annotation.is_some() {
            annotations.insert(b.id.clone(), st.annotation_json(b));
        }
    }
    let mut pagination =
        json!({ "sort_by": sort_by, "sort_order": sort_order.to_ascii_uppercase() });
    if let Some(((value, id), _)) = rows.last() {
        pagination["next"] = json!(encode_cursor(&json!({
            "branch_id": id, "sort_by": sort_by, "sort_by_value": value, "sort_order": sort_order.to_ascii_uppercase(),
        })));
    }
    let branches: Vec<Value> = rows.iter().map(|(_, b)| st.branch_json(b, now)).collect();
    ok(
        StatusCode::OK,
        json!({ "branches": branches, "annotations": annotations, "pagination": pagination }),
    )
}

pub(crate) async fn count(
    State(app): State<Shared>,
    Path(project_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let n = app
        .state()
        .branches
        .iter()
        .filter(|b| matches_search(b, q.get("search")))
        .count();
    ok(StatusCode::OK, json!({ "count": n }))
}

pub(crate) async fn get_one(
    State(app): State<Shared>,
    Path((project_id, branch_id)): Path<(String, String)>,
) -> ApiResult {
    app.check_project(&project_id)?;
    app.refresh_storage().await;
    let st = app.state();
    let b = st
        .branch(&branch_id)
        .ok_or_else(|| branch_not_found(&branch_id))?;
    ok(
        StatusCode::OK,
        json!({ "branch": st.branch_json(b, Utc::now()), "annotation": st.annotation_json(b) }),
    )
}

/// Checks an `expires_at` value against Neon's rules for the branch it is meant for.
fn parse_expiry(raw: &Value, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let s = raw
        .as_str()
        .ok_or_else(|| ApiError::bad_request("invalid request: expires_at must be a string"))?;
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|_| {
            ApiError::bad_request("expires_at must be an RFC 3339 timestamp with a timezone")
        })?
        .with_timezone(&Utc);
    if t <= now {
        return Err(ApiError::bad_request("expires_at must be in the future"));
    }
    if t > now + chrono::Duration::days(MAX_EXPIRY_DAYS) {
        return Err(ApiError::bad_request(format!(
            "expires_at must be at most {MAX_EXPIRY_DAYS} days in the future"
        )));
    }
    Ok(t)
}

fn check_name(name: &Value) -> Result<String, ApiError> {
    let name = name
        .as_str()
        .ok_or_else(|| ApiError::bad_request("invalid request: branch name must be a string"))?;
    let len = name.chars().count();
    if !(1..=256).contains(&len) {
        return Err(ApiError::bad_request(
            "invalid request: branch name must be 1 to 256 characters long",
        ));
    }
    Ok(name.to_string())
}

/// What a create request asks for, after validation against the current state.
struct CreatePlan {
    id: String,
    name: String,
    parent_id: Option<String>,
    schema_only: bool,
    with_endpoint: bool,
    expires_at: Option<DateTime<Utc>>,
    annotation: Option<std::collections::BTreeMap<String, String>>,
    /// (name, owner, template physical database)
    databases: Vec<(String, String, String)>,
    roles: Vec<Role>,
}

fn plan_create(
    st: &Model,
    req: &Value,
    branch_limit: usize,
    root_limit: usize,
    now: DateTime<Utc>,
) -> Result<CreatePlan, ApiError> {
    let branch = req.get("branch").cloned().unwrap_or_else(|| json!({}));
    if !branch.is_object() {
        return Err(ApiError::bad_request(
            "invalid request: branch must be an object",
        ));
    }
    let id = ids::branch_id();
    let name = match branch.get("name") {
        Some(n) => check_name(n)?,
        None => id.clone(),
    };
    let parent = match branch.get("parent_id").and_then(Value::as_str) {
        Some(pid) => st.branch(pid).ok_or_else(|| branch_not_found(pid))?,
        None => st
            .default_branch()
            .ok_or_else(|| ApiError::internal("the project has no default branch"))?,
    };
    if branch.get("parent_lsn").is_some() || branch.get("parent_timestamp").is_some() {
        return Err(ApiError::bad_request(
            "point-in-time branching (parent_lsn/parent_timestamp) is not emulated",
        ));
    }
    let schema_only = match branch.get("init_source").and_then(Value::as_str) {
        None | Some("parent-data") => false,
        Some("schema-only") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid init_source {other:?}"
            )))
        }
    };
    if branch.get("protected").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::unprocessable(
            "BRANCHES_PROTECTED_LIMIT_EXCEEDED",
            PROTECTED_REFUSAL,
        ));
    }
    if parent.expires_at.is_some() {
        return Err(ApiError::bad_request(
            "cannot create a child of a branch that has an expiration time",
        ));
    }
    let expires_at = match branch.get("expires_at") {
        None | Some(Value::Null) => None,
        Some(raw) => Some(parse_expiry(raw, now)?),
    };
    let mut with_endpoint = false;
    if let Some(eps) = req.get("endpoints") {
        let eps = eps
            .as_array()
            .ok_or_else(|| ApiError::bad_request("invalid request: endpoints must be an array"))?;
        for ep in eps {
            match ep.get("type").and_then(Value::as_str) {
                Some("read_write") if with_endpoint => {
                    return Err(ApiError::conflict(
                        "read-write endpoint already exists for this branch",
                    ));
                }
                Some("read_write") => with_endpoint = true,
                Some("read_only") => {
                    return Err(ApiError::bad_request(
                        "read-only endpoints are not emulated",
                    ))
                }
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid request: endpoint type is required",
                    ))
                }
            }
            if ep
                .get("suspend_timeout_seconds")
                .and_then(Value::as_i64)
                .is_some_and(|s| s != 0)
            {
                return Err(ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "suspend interval changing is not allowed for your account",
                ));
            }
        }
    }
    let annotation = req
        .get("annotation_value")
        .map(parse_annotation)
        .transpose()
        .map_err(ApiError::bad_request)?;
    if st.branches.iter().any(|b| b.name == name) {
        return Err(ApiError::conflict("branch already exists"));
    }
    if st.branches.len() >= branch_limit {
        return Err(ApiError::unprocessable(
            "BRANCHES_LIMIT_EXCEEDED",
            format!("branches limit exceeded: the plan allows {branch_limit} branches per project"),
        ));
    }
    if schema_only && st.root_count() >= root_limit {
        return Err(ApiError::unprocessable(
            "ROOT_BRANCHES_LIMIT_EXCEEDED",
            format!("root branches limit exceeded: the plan allows {root_limit} root branches per project"),
        ));
    }
    Ok(CreatePlan {
        id,
        name,
        parent_id: if schema_only {
            None
        } else {
            Some(parent.id.clone())
        },
        schema_only,
        with_endpoint,
        expires_at,
        annotation,
        databases: parent
            .databases
            .iter()
            .map(|d| (d.name.clone(), d.owner_name.clone(), d.physical.clone()))
            .collect(),
        roles: parent.roles.clone(),
    })
}

pub(crate) async fn create(
    State(app): State<Shared>,
    Path(project_id): Path<String>,
    Extension(fault): Extension<OpFault>,
    body: Bytes,
) -> ApiResult {
    app.check_project(&project_id)?;
    let req = json_body(&body)?;
    let _gate = app.gate.lock().await;
    let now = Utc::now();
    app.check_unlocked(now)?;
    let plan = {
        let st = app.state();
        plan_create(
            &st,
            &req,
            app.faults.branch_limit(),
            app.cfg.root_branch_limit,
            now,
        )?
    };

    // Copy the parent's databases on the backing cluster; undo the copies if one fails.
    let mut copied: Vec<(String, String, String, crate::storage::RelationSizes)> = Vec::new();
    for (name, owner, template) in &plan.databases {
        let taken: Vec<&str> = copied.iter().map(|(_, _, p, _)| p.as_str()).collect();
        let physical = physical_name(&plan.id, name, &taken);
        let mut result = app.backing.copy_database(template, &physical, owner).await;
        if result.is_ok() {
            copied.push((
                name.clone(),
                owner.clone(),
                physical.clone(),
                Default::default(),
            ));
            if plan.schema_only {
                result = app.backing.truncate_user_tables(&physical).await;
            }
        }
        // What the copy holds at birth; whatever the branch writes later is measured against it.
        if result.is_ok() {
            match app.backing.relation_sizes(&physical).await {
                Ok(sizes) => copied.last_mut().expect("just pushed").3 = sizes,
                Err(e) => result = Err(e),
            }
        }
        if let Err(e) = result {
            for (_, _, p, _) in &copied {
                let _ = app.backing.drop_database(p).await;
            }
            return Err(ApiError::internal(format!(
                "copying database {name} failed: {e}"
            )));
        }
    }

    let now = Utc::now();
    let mut st = app.state();
    let databases: Vec<Database> = copied
        .into_iter()
        .map(|(name, owner_name, physical, baseline)| Database {
            id: st.next_database_id(),
            name,
            owner_name,
            physical,
            created_at: now,
            baseline,
        })
        .collect();
    let roles: Vec<Role> = plan
        .roles
        .iter()
        .map(|r| Role {
            created_at: now,
            ..r.clone()
        })
        .collect();
    let create_op = Operation::new("create_branch", Some(&plan.id), None, now, false, fault.0);
    let mut ops = vec![create_op];
    let mut endpoints = Vec::new();
    if plan.with_endpoint {
        let ep_id = ids::endpoint_id();
        let start = Operation::new(
            "start_compute",
            Some(&plan.id),
            Some(&ep_id),
            now + chrono::Duration::microseconds(1),
            true,
            fault.0,
        );
        endpoints.push(Endpoint {
            id: ep_id,
            branch_id: plan.id.clone(),
            created_at: now,
            updated_at: now,
            suspended_at: None,
            started_at: now,
            start_ops: vec![ops[0].id.clone(), start.id.clone()],
        });
        ops.push(start);
    }
    let branch = Branch {
        id: plan.id.clone(),
        name: plan.name,
        parent_id: plan.parent_id,
        created_at: now,
        updated_at: now,
        default: false,
        protected: false,
        expires_at: plan.expires_at,
        expiry_set_at: plan.expires_at.map(|_| now),
        init_source: if plan.schema_only {
            "schema-only"
        } else {
            "parent-data"
        },
        annotation: plan.annotation.map(|value| Annotation {
            value,
            created_at: now,
        }),
        databases,
        roles,
        creation_ops: ops.iter().map(|o| o.id.clone()).collect(),
        // A new child has written nothing yet; its logical size is its copy's.
        logical_size: 0,
        written_data_bytes: 0,
    };
    st.operations.extend(ops.iter().cloned());
    st.endpoints.extend(endpoints.iter().cloned());

    let mut body = json!({
        "branch": st.branch_json(&branch, now),
        "endpoints": endpoints.iter().map(|e| st.endpoint_json(e, now)).collect::<Vec<_>>(),
        "operations": ops.iter().map(|o| st.operation_json(o, now)).collect::<Vec<_>>(),
        "roles": branch.roles.iter().map(|r| st.role_json(&branch.id, r)).collect::<Vec<_>>(),
        "databases": branch.databases.iter().map(|d| st.database_json(&branch.id, d)).collect::<Vec<_>>(),
    });
    if let ([_], [role], [db]) = (
        endpoints.as_slice(),
        branch.roles.as_slice(),
        branch.databases.as_slice(),
    ) {
        let host = app.backing.public().public_host.clone();
        body["connection_uris"] = json!([{
            "connection_uri": app.connection_uri(&role.name, &role.password, &db.physical),
            "connection_parameters": {
                "database": db.physical, "password": role.password, "role": role.name,
                "host": host, "pooler_host": host,
            },
        }]);
    }
    st.branches.push(branch);
    ok(StatusCode::CREATED, body)
}

pub(crate) async fn update(
    State(app): State<Shared>,
    Path((project_id, branch_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    app.check_project(&project_id)?;
    let req = json_body(&body)?;
    let patch = req.get("branch").filter(|b| b.is_object()).ok_or_else(|| {
        ApiError::bad_request(
            "invalid request: decode application/json: invalid: branch (field required)",
        )
    })?;
    let _gate = app.gate.lock().await;
    let now = Utc::now();
    if app.state().branch(&branch_id).is_none() {
        return Err(branch_not_found(&branch_id));
    }
    app.check_unlocked(now)?;
    let mut st = app.state();
    let new_name = patch.get("name").map(check_name).transpose()?;
    if let Some(name) = &new_name {
        if st
            .branches
            .iter()
            .any(|b| &b.name == name && b.id != branch_id)
        {
            return Err(ApiError::conflict("branch already exists"));
        }
    }
    if patch.get("protected").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::unprocessable(
            "BRANCHES_PROTECTED_LIMIT_EXCEEDED",
            PROTECTED_REFUSAL,
        ));
    }
    let expiry = match patch.get("expires_at") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(raw) => {
            let t = parse_expiry(raw, now)?;
            let b = st.branch(&branch_id).expect("checked above");
            if b.default {
                return Err(ApiError::bad_request(
                    "expires_at cannot be set on the default branch",
                ));
            }
            if b.protected {
                return Err(ApiError::bad_request(
                    "expires_at cannot be set on a protected branch",
                ));
            }
            if st.has_children(&branch_id) {
                return Err(ApiError::bad_request(
                    "expires_at cannot be set on a branch that has children",
                ));
            }
            Some(Some(t))
        }
    };
    let b = st.branch_mut(&branch_id).expect("checked above");
    if let Some(name) = new_name {
        b.name = name;
    }
    if let Some(expiry) = expiry {
        b.expires_at = expiry;
        b.expiry_set_at = expiry.map(|_| now);
    }
    b.updated_at = now;
    let b = st.branch(&branch_id).expect("checked above");
    ok(
        StatusCode::OK,
        json!({ "branch": st.branch_json(b, now), "operations": [] }),
    )
}

pub(crate) async fn delete(
    State(app): State<Shared>,
    Path((project_id, branch_id)): Path<(String, String)>,
    Extension(fault): Extension<OpFault>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let _gate = app.gate.lock().await;
    let now = Utc::now();
    let endpoint_id = {
        let st = app.state();
        let Some(b) = st.branch(&branch_id) else {
            return Ok(StatusCode::NO_CONTENT.into_response());
        };
        if b.default {
            return Err(ApiError::bad_request(
                "cannot delete the project's default branch",
            ));
        }
        if b.protected {
            return Err(ApiError::bad_request("cannot delete a protected branch"));
        }
        if st.has_children(&branch_id) {
            return Err(ApiError::bad_request(
                "cannot delete a branch that has children; delete them first",
            ));
        }
        let endpoint = st.endpoints_of(&branch_id).next().map(|e| e.id.clone());
        endpoint
    };
    app.check_unlocked(now)?;
    let branch = app.remove_branch(&branch_id).await?;
    let now = Utc::now();
    let ops = [
        Operation::new(
            "suspend_compute",
            Some(&branch_id),
            endpoint_id.as_deref(),
            now,
            false,
            fault.0,
        ),
        Operation::new(
            "delete_timeline",
            Some(&branch_id),
            None,
            now + chrono::Duration::microseconds(1),
            true,
            fault.0,
        ),
    ];
    let mut st = app.state();
    st.operations.extend(ops.iter().cloned());
    let mut branch_json = st.branch_json(&branch, now);
    branch_json["current_state"] = json!("ready");
    branch_json["pending_state"] = json!("storage_deleted");
    ok(
        StatusCode::OK,
        json!({ "branch": branch_json, "operations": ops.iter().map(|o| st.operation_json(o, now)).collect::<Vec<_>>() }),
    )
}

pub(crate) async fn set_as_default(
    State(app): State<Shared>,
    Path((project_id, branch_id)): Path<(String, String)>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let _gate = app.gate.lock().await;
    let now = Utc::now();
    let b = app
        .state()
        .branch(&branch_id)
        .cloned()
        .ok_or_else(|| branch_not_found(&branch_id))?;
    app.check_unlocked(now)?;
    if b.expires_at.is_some() {
        return Err(ApiError::bad_request(
            "a branch with an expiration time cannot be the default branch",
        ));
    }
    let mut st = app.state();
    for other in st.branches.iter_mut() {
        if other.default && other.id != branch_id {
            other.default = false;
            other.updated_at = now;
        }
    }
    let b = st.branch_mut(&branch_id).expect("checked above");
    if !b.default {
        b.default = true;
        b.updated_at = now;
    }
    let b = st.branch(&branch_id).expect("checked above");
    ok(
        StatusCode::OK,
        json!({ "branch": st.branch_json(b, now), "operations": [] }),
    )
}

pub(crate) async fn endpoints(
    State(app): State<Shared>,
    Path((project_id, branch_id)): Path<(String, String)>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let st = app.state();
    st.branch(&branch_id)
        .ok_or_else(|| branch_not_found(&branch_id))?;
    let now = Utc::now();
    let eps: Vec<Value> = st
        .endpoints_of(&branch_id)
        .map(|e| st.endpoint_json(e, now))
        .collect();
    ok(StatusCode::OK, json!({ "endpoints": eps }))
}

pub(crate) async fn roles(
    State(app): State<Shared>,
    Path((project_id, branch_id)): Path<(String, String)>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let st = app.state();
    let b = st
        .branch(&branch_id)
        .ok_or_else(|| branch_not_found(&branch_id))?;
    let roles: Vec<Value> = b.roles.iter().map(|r| st.role_json(&b.id, r)).collect();
    ok(StatusCode::OK, json!({ "roles": roles }))
}

pub(crate) async fn reveal_password(
    State(app): State<Shared>,
    Path((project_id, branch_id, role_name)): Path<(String, String, String)>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let st = app.state();
    let b = st
        .branch(&branch_id)
        .ok_or_else(|| branch_not_found(&branch_id))?;
    let role = b
        .roles
        .iter()
        .find(|r| r.name == role_name)
        .ok_or_else(|| ApiError::not_found(format!("role {role_name} not found")))?;
    if !app.cfg.store_passwords {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "Storing passwords is disabled",
        ));
    }
    ok(StatusCode::OK, json!({ "password": role.password }))
}

pub(crate) async fn role(
    State(app): State<Shared>,
    Path((project_id, branch_id, name)): Path<(String, String, String)>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let st = app.state();
    let b = st
        .branch(&branch_id)
        .ok_or_else(|| branch_not_found(&branch_id))?;
    let r = b
        .roles
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| ApiError::not_found(format!("role {name} not found")))?;
    ok(StatusCode::OK, json!({ "role": st.role_json(&b.id, r) }))
}
