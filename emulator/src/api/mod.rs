//! HTTP surface: the routes of Neon API v2 the emulator serves, and the pipeline every request
//! passes (request id, auth, expiry sweep, faults, recording).

pub(crate) mod branches;
pub(crate) mod databases;
pub(crate) mod endpoints;
pub(crate) mod error;
pub(crate) mod pipeline;
pub(crate) mod project;

use axum::routing::{get, post};
use axum::Router;

use crate::app::Shared;
use error::ApiError;

/// Reads an optional JSON request body; an empty body is `{}`.
pub(crate) fn json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::json!({}));
    }
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("invalid request: decode application/json: {e}"))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "invalid request: the body must be a JSON object",
        ));
    }
    Ok(v)
}

pub(crate) fn router(app: Shared) -> Router {
    let p = "/api/v2/projects/{project_id}";
    let routes = Router::new()
        .route(p, get(project::get_project))
        .route(&format!("{p}/connection_uri"), get(project::connection_uri))
        .route(&format!("{p}/operations"), get(project::list_operations))
        .route(
            &format!("{p}/operations/{{operation_id}}"),
            get(project::get_operation),
        )
        .route(
            &format!("{p}/branches"),
            get(branches::list).post(branches::create),
        )
        .route(&format!("{p}/branches/count"), get(branches::count))
        .route(
            &format!("{p}/branches/{{branch_id}}"),
            get(branches::get_one)
                .patch(branches::update)
                .delete(branches::delete),
        )
        .route(
            &format!("{p}/branches/{{branch_id}}/set_as_default"),
            post(branches::set_as_default),
        )
        .route(
            &format!("{p}/branches/{{branch_id}}/endpoints"),
            get(branches::endpoints),
        )
        .route(
            &format!("{p}/branches/{{branch_id}}/databases"),
            get(databases::list).post(databases::create),
        )
        .route(
            &format!("{p}/branches/{{branch_id}}/roles"),
            get(branches::roles),
        )
        .route(
            &format!("{p}/branches/{{branch_id}}/databases/{{database_name}}"),
            get(databases::get_one).delete(databases::delete),
        )
        .route(
            &format!("{p}/branches/{{branch_id}}/roles/{{role_name}}"),
            get(branches::role),
        )
        .route(
            &format!("{p}/branches/{{branch_id}}/roles/{{role_name}}/reveal_password"),
            get(branches::reveal_password),
        )
        .route(&format!("{p}/endpoints"), post(endpoints::create))
        .route(
            &format!("{p}/endpoints/{{endpoint_id}}"),
            get(endpoints::get_one).delete(endpoints::delete),
        )
        .route(
            &format!("{p}/endpoints/{{endpoint_id}}/suspend"),
            post(endpoints::suspend),
        )
        .route(
            &format!("{p}/endpoints/{{endpoint_id}}/start"),
            post(endpoints::start),
        )
        .fallback(|| async { ApiError::not_found("not found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            )
        });
    routes
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            pipeline::pipeline,
        ))
        .with_state(app)
}
