//! A branch's databases: list, read, create and delete (`/projects/{p}/branches/{b}/databases`).
//!
//! A database is a real database on the backing cluster. One created on a branch after the branch
//! holds no page of its parent's, so all of it counts as written since the branch's creation (its
//! baseline is empty). Creating and deleting apply the branch's configuration on its compute: an
//! `apply_config` operation on the branch's endpoint, when it has one (a branch without a compute gets
//! the change when one starts, so no operation).

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde_json::{json, Value};

use crate::api::branches::branch_not_found;
use crate::api::error::{ok, ApiError, ApiResult};
use crate::api::json_body;
use crate::api::pipeline::OpFault;
use crate::app::{physical_name, Shared};
use crate::model::{Database, State as Model};
use crate::operations::Operation;

/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
const MAX_NAME_BYTES: usize = 63;

pub(crate) async fn list(
    State(app): State<Shared>,
    Path((project_id, branch_id)): Path<(String, String)>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let st = app.state();
    let b = st
        .branch(&branch_id)
        .ok_or_else(|| branch_not_found(&branch_id))?;
    let dbs: Vec<Value> = b
        .databases
        .iter()
        .map(|d| st.database_json(&b.id, d))
        .collect();
    ok(StatusCode::OK, json!({ "databases": dbs }))
}

pub(crate) async fn get_one(
    State(app): State<Shared>,
    Path((project_id, branch_id, name)): Path<(String, String, String)>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let st = app.state();
    let b = st
        .branch(&branch_id)
        .ok_or_else(|| branch_not_found(&branch_id))?;
    let d = b
        .databases
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| ApiError::not_found(format!("database {name} not found")))?;
    ok(
        StatusCode::OK,
        json!({ "database": st.database_json(&b.id, d) }),
    )
}

/// `{"database": {"name", "owner_name"}}`, both required.
fn create_request(req: &Value) -> Result<(String, String), ApiError> {
    let fields = req
        .get("database")
        .filter(|d| d.is_object())
        .ok_or_else(|| ApiError::bad_request("invalid request: database (field required)"))?;
    let field = |key: &str| {
        fields
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                ApiError::bad_request(format!("invalid request: database.{key} (field required)"))
            })
    };
    let (name, owner) = (field("name")?, field("owner_name")?);
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(ApiError::bad_request(format!(
            "invalid request: database.name must be 1 to {MAX_NAME_BYTES} bytes long"
        )));
    }
    Ok((name, owner))
}

/// The `apply_config` operation a change of the branch's databases makes on its compute, if it has one.
fn apply_config(st: &Model, branch_id: &str, fault: OpFault) -> Vec<Operation> {
    st.endpoints_of(branch_id)
        .next()
        .map(|e| {
            Operation::new(
                "apply_config",
                Some(branch_id),
                Some(&e.id),
                Utc::now(),
                false,
                fault.0,
            )
        })
        .into_iter()
        .collect()
}

/// `{database, operations}`, the operations recorded in the project.
fn with_operations(
    mut st: std::sync::MutexGuard<'_, Model>,
    status: StatusCode,
    database: Value,
    ops: Vec<Operation>,
) -> ApiResult {
    let now = Utc::now();
    let rendered: Vec<Value> = ops.iter().map(|o| st.operation_json(o, now)).collect();
    st.operations.extend(ops);
    ok(
        status,
        json!({ "database": database, "operations": rendered }),
    )
}

pub(crate) async fn create(
    State(app): State<Shared>,
    Path((project_id, branch_id)): Path<(String, String)>,
    Extension(fault): Extension<OpFault>,
    body: Bytes,
) -> ApiResult {
    app.check_project(&project_id)?;
    let (name, owner) = create_request(&json_body(&body)?)?;
    let _gate = app.gate.lock().await;
    let taken: Vec<String> = {
        let st = app.state();
        let b = st
            .branch(&branch_id)
            .ok_or_else(|| branch_not_found(&branch_id))?;
        if b.databases.iter().any(|d| d.name == name) {
            return Err(ApiError::conflict(format!(
                "database {name} already exists"
            )));
        }
        if !b.roles.iter().any(|r| r.name == owner) {
            return Err(ApiError::not_found(format!("role {owner} not found")));
        }
        b.databases.iter().map(|d| d.physical.clone()).collect()
    };
    app.check_unlocked(Utc::now())?;
    let taken: Vec<&str> = taken.iter().map(String::as_str).collect();
    let physical = physical_name(&branch_id, &name, &taken);
    app.backing
        .create_database(&physical, &owner)
        .await
        .map_err(|e| ApiError::internal(format!("creating database {name} failed: {e}")))?;
    let mut st = app.state();
    let database = Database {
        id: st.next_database_id(),
        name,
        owner_name: owner,
        physical,
        created_at: Utc::now(),
        baseline: Default::default(),
    };
    let rendered = st.database_json(&branch_id, &database);
    st.branch_mut(&branch_id)
        .expect("checked above, under the gate")
        .databases
        .push(database);
    let ops = apply_config(&st, &branch_id, fault);
    with_operations(st, StatusCode::CREATED, rendered, ops)
}

pub(crate) async fn delete(
    State(app): State<Shared>,
    Path((project_id, branch_id, name)): Path<(String, String, String)>,
    Extension(fault): Extension<OpFault>,
) -> ApiResult {
    app.check_project(&project_id)?;
    let _gate = app.gate.lock().await;
    let physical = {
        let st = app.state();
        let b = st
            .branch(&branch_id)
            .ok_or_else(|| branch_not_found(&branch_id))?;
        match b.databases.iter().find(|d| d.name == name) {
            Some(d) => d.physical.clone(),
            // The spec: 204 when the database does not exist or was already deleted.
            None => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    };
    app.check_unlocked(Utc::now())?;
    app.backing
        .drop_database(&physical)
        .await
        .map_err(|e| ApiError::internal(format!("dropping database {name} failed: {e}")))?;
    let mut st = app.state();
    let b = st
        .branch_mut(&branch_id)
        .expect("checked above, under the gate");
    let index = b
        .databases
        .iter()
        .position(|d| d.name == name)
        .expect("checked above, under the gate");
    let database = b.databases.remove(index);
    let rendered = st.database_json(&branch_id, &database);
    let ops = apply_config(&st, &branch_id, fault);
    with_operations(st, StatusCode::OK, rendered, ops)
}
