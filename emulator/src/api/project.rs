//! Project-level reads: the project, connection URIs and operations.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::api::error::{ok, ApiError, ApiResult};
use crate::app::Shared;
use crate::ids;

pub(crate) async fn get_project(
    State(app): State<Shared>,
    Path(project_id): Path<String>,
) -> ApiResult {
    app.check_project(&project_id)?;
    app.refresh_storage().await;
    let project = app
        .state()
        .project_json(app.faults.branch_limit(), app.cfg.store_passwords);
    ok(StatusCode::OK, json!({ "project": project }))
}

pub(crate) async fn connection_uri(
    State(app): State<Shared>,
    Path(project_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let database = q.get("database_name").filter(|s| !s.is_empty());
    let role = q.get("role_name").filter(|s| !s.is_empty());
    let (Some(database), Some(role)) = (database, role) else {
        return Err(ApiError::bad_request(
            "invalid request: database_name and role_name query parameters are required",
        ));
    };
    if let Some(pooled) = q.get("pooled") {
        if pooled != "true" && pooled != "false" {
            return Err(ApiError::bad_request(
                "invalid request: pooled must be true or false",
            ));
        }
    }
    let (role_name, password, physical) = {
        let st = app.state();
        let branch = match q.get("branch_id") {
            Some(id) => st
                .branch(id)
                .ok_or_else(|| ApiError::not_found(format!("branch {id} not found")))?,
            None => st
                .default_branch()
                .ok_or_else(|| ApiError::not_found("the project has no default branch"))?,
        };
        let endpoint = match q.get("endpoint_id") {
            Some(id) => st.endpoints_of(&branch.id).find(|e| &e.id == id),
            None => st.endpoints_of(&branch.id).next(),
        };
        if endpoint.is_none() {
            return Err(ApiError::not_found(format!(
                "read-write endpoint for branch {} not found",
                branch.id
            )));
        }
        let db = branch
            .databases
            .iter()
            .find(|d| &d.name == database)
            .ok_or_else(|| ApiError::not_found(format!("database {database} not found")))?;
        let r = branch
            .roles
            .iter()
            .find(|r| &r.name == role)
            .ok_or_else(|| ApiError::not_found(format!("role {role} not found")))?;
        (r.name.clone(), r.password.clone(), db.physical.clone())
    };
    // `pooled=true` gets the same direct host: a `-pooler` host name could not reach the backing cluster.
    ok(
        StatusCode::OK,
        json!({ "uri": app.connection_uri(&role_name, &password, &physical) }),
    )
}

const DEFAULT_OPERATIONS_LIMIT: usize = 10;

pub(crate) async fn list_operations(
    State(app): State<Shared>,
    Path(project_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let limit = match q.get("limit") {
        None => DEFAULT_OPERATIONS_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request("invalid request: limit must be between 1 and 1000")
            })?,
    };
    let cursor: Option<DateTime<Utc>> = match q.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            DateTime::parse_from_rfc3339(c)
                .map_err(|_| ApiError::bad_request("invalid request: malformed cursor"))?
                .with_timezone(&Utc),
        ),
    };
    let now = Utc::now();
    let st = app.state();
    // Newest first; the cursor is the creation time of the last operation of the previous page.
    let mut ops: Vec<_> = st
        .operations
        .iter()
        .filter(|o| cursor.is_none_or(|c| o.created_at < c))
        .collect();
    ops.sort_by_key(|o| std::cmp::Reverse(o.created_at));
    ops.truncate(limit);
    let mut body = json!({
        "operations": ops.iter().map(|o| st.operation_json(o, now)).collect::<Vec<_>>(),
    });
    if let Some(last) = ops.last() {
        body["pagination"] = json!({ "cursor": ids::ts_micros(last.created_at) });
    }
    ok(StatusCode::OK, body)
}

pub(crate) async fn get_operation(
    State(app): State<Shared>,
    Path((project_id, operation_id)): Path<(String, String)>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let st = app.state();
    let op = st
        .operation(&operation_id)
        .ok_or_else(|| ApiError::not_found(format!("operation {operation_id} not found")))?;
    ok(
        StatusCode::OK,
        json!({ "operation": st.operation_json(op, Utc::now()) }),
    )
}
