//! Compute endpoints: read, suspend, start. Suspending only changes the reported state: the backing
//! cluster keeps serving, just as a Neon compute wakes up on the next connection.

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use chrono::Utc;
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

async fn transition(
    app: Shared,
    project_id: String,
    endpoint_id: String,
    fault: OpFault,
    suspend: bool,
) -> ApiResult {
    app.check_project(&project_id)?;
    let _gate = app.gate.lock().await;
    let now = Utc::now();
    if !app.state().endpoints.iter().any(|e| e.id == endpoint_id) {
        return Err(endpoint_not_found(&endpoint_id));
    }
    app.check_unlocked(now)?;
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
