//! Compute endpoints: read, suspend, start. Suspending only changes the reported state: the backing
//! cluster keeps serving, just as a Neon compute wakes up on the next connection.

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::api::error::{ok, ApiError, ApiResult};
use crate::api::pipeline::OpFault;
use crate::app::Shared;
use crate::operations::Operation;

fn endpoint_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("endpoint {id} not found"))
}

pub(crate) async fn get_one(
    State(app): State<Shared>,
    Path((project_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let st = app.state();
    let e = st
        .endpoints
        .iter()
        .find(|e| e.id == endpoint_id)
        .ok_or_else(|| endpoint_not_found(&endpoint_id))?;
    ok(
        StatusCode::OK,
        json!({ "endpoint": st.endpoint_json(e, Utc::now()) }),
    )
}

/// The project's mutation gate, held, once the endpoint is known to exist and the project is not locked
/// by a running operation (404 and 423 otherwise, in that order, as Neon answers).
async fn lock_endpoint<'a>(
    app: &'a Shared,
    project_id: &str,
    endpoint_id: &str,
) -> Result<(tokio::sync::MutexGuard<'a, ()>, DateTime<Utc>), ApiError> {
    app.check_project(project_id)?;
    let gate = app.gate.lock().await;
    let now = Utc::now();
    if !app.state().endpoints.iter().any(|e| e.id == endpoint_id) {
        return Err(endpoint_not_found(endpoint_id));
    }
    app.check_unlocked(now)?;
    Ok((gate, now))
}

async fn transition(
    app: Shared,
    project_id: String,
    endpoint_id: String,
    fault: OpFault,
    suspend: bool,
) -> ApiResult {
    let (_gate, now) = lock_endpoint(&app, &project_id, &endpoint_id).await?;
    let mut st = app.state();
    let e = st
        .endpoints
        .iter()
        .find(|e| e.id == endpoint_id)
        .expect("checked above")
        .clone();
    let action = if suspend {
        "suspend_compute"
    } else {
        "start_compute"
    };
    let op = Operation::new(action, Some(&e.branch_id), Some(&e.id), now, false, fault.0);
    st.operations.push(op.clone());
    let e = st
        .endpoints
        .iter_mut()
        .find(|e| e.id == endpoint_id)
        .expect("checked above");
    e.updated_at = now;
    if suspend {
        e.suspended_at = Some(now);
    } else {
        e.suspended_at = None;
        e.started_at = now;
    }
    let e = e.clone();
    ok(
        StatusCode::OK,
        json!({ "endpoint": st.endpoint_json(&e, now), "operations": [st.operation_json(&op, now)] }),
    )
}

pub(crate) async fn suspend(
    State(app): State<Shared>,
    Path((project_id, endpoint_id)): Path<(String, String)>,
    Extension(fault): Extension<OpFault>,
) -> ApiResult {
    transition(app, project_id, endpoint_id, fault, true).await
}

pub(crate) async fn start(
    State(app): State<Shared>,
    Path((project_id, endpoint_id)): Path<(String, String)>,
    Extension(fault): Extension<OpFault>,
) -> ApiResult {
    transition(app, project_id, endpoint_id, fault, false).await
}

/// `POST /projects/{p}/endpoints`: a read-write compute for a branch that has none (one per branch, as on
/// Neon: a second is 409). Read-only endpoints are not emulated (400).
pub(crate) async fn create(
    State(app): State<Shared>,
    Path(project_id): Path<String>,
    Extension(fault): Extension<OpFault>,
    body: axum::body::Bytes,
) -> ApiResult {
    app.check_project(&project_id)?;
    let req = crate::api::json_body(&body)?;
    let spec = req
        .get("endpoint")
        .ok_or_else(|| ApiError::bad_request("invalid request: endpoint is required"))?;
    let branch_id = spec
        .get("branch_id")
        .and_then(|v| v.as_str())
        .ok_or_else(|| ApiError::bad_request("invalid request: endpoint.branch_id is required"))?
        .to_string();
    match spec.get("type").and_then(|v| v.as_str()) {
        Some("read_write") => {}
        Some("read_only") => {
            return Err(ApiError::bad_request(
                "read-only endpoints are not supported by the emulator",
            ))
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid request: endpoint.type must be read_write or read_only",
            ))
        }
    }
    let _gate = app.gate.lock().await;
    let now = Utc::now();
    {
        let st = app.state();
        if st.branch(&branch_id).is_none() {
            return Err(ApiError::not_found(format!("branch {branch_id} not found")));
        }
        if st.endpoints_of(&branch_id).next().is_some() {
            return Err(ApiError::conflict(
                "read_write endpoint already exists for this branch",
            ));
        }
    }
    app.check_unlocked(now)?;
    let mut st = app.state();
    let id = crate::ids::endpoint_id();
    let op = Operation::new(
        "start_compute",
        Some(&branch_id),
        Some(&id),
        now,
        false,
        fault.0,
    );
    let endpoint = crate::model::Endpoint {
        id,
        branch_id,
        created_at: now,
        updated_at: now,
        suspended_at: None,
        started_at: now,
        start_ops: vec![op.id.clone()],
    };
    st.operations.push(op.clone());
    st.endpoints.push(endpoint.clone());
    ok(
        StatusCode::CREATED,
        json!({ "endpoint": st.endpoint_json(&endpoint, now), "operations": [st.operation_json(&op, now)] }),
    )
}

/// `DELETE /projects/{p}/endpoints/{e}`: the branch keeps its data and loses its compute.
pub(crate) async fn delete(
    State(app): State<Shared>,
    Path((project_id, endpoint_id)): Path<(String, String)>,
    Extension(fault): Extension<OpFault>,
) -> ApiResult {
    let (_gate, now) = lock_endpoint(&app, &project_id, &endpoint_id).await?;
    let mut st = app.state();
    let at = st
        .endpoints
        .iter()
        .position(|e| e.id == endpoint_id)
        .expect("checked above");
    let e = st.endpoints.remove(at);
    let op = Operation::new(
        "suspend_compute",
        Some(&e.branch_id),
        Some(&e.id),
        now,
        false,
        fault.0,
    );
    st.operations.push(op.clone());
    let mut shown = st.endpoint_json(&e, now);
    shown["current_state"] = json!("idle");
    ok(
        StatusCode::OK,
        json!({ "endpoint": shown, "operations": [st.operation_json(&op, now)] }),
    )
}
