//! What happens around every handler: request id, auth, expiry sweep, fault injection, recording.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::error::ApiError;
use crate::app::Shared;
use crate::faults::FaultAction;
use crate::ids;
use crate::operations::FailKind;
use crate::recording::{RecordedBody, RecordedExchange};

/// How injected `FailOperations` reach the handlers that create operations.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OpFault(pub Option<FailKind>);

pub(crate) async fn pipeline(State(app): State<Shared>, mut req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(ids::uuid_v4);

    let (response, fault) = if !authorized(&app, &req) {
        (
            ApiError::new(StatusCode::UNAUTHORIZED, "authentication required").into_response(),
            None,
        )
    } else if let Err(e) = app.sweep_expired().await {
        (e.into_response(), None)
    } else {
        match app.faults.take(&method, &path) {
            None => {
                req.extensions_mut().insert(OpFault::default());
                (next.run(req).await, None)
            }
            Some(action) => apply_fault(action, req, next).await,
        }
    };

    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        parts.headers.insert("x-neon-ret-request-id", v);
    }
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    let recorded = if bytes.is_empty() {
        RecordedBody::Empty
    } else if is_json {
        serde_json::from_slice(&bytes)
            .map(RecordedBody::Json)
            .unwrap_or_else(|_| RecordedBody::Text(String::from_utf8_lossy(&bytes).into_owned()))
    } else {
        RecordedBody::Text(String::from_utf8_lossy(&bytes).into_owned())
    };
    // Paths and statuses only: bodies may hold passwords.
    tracing::debug!(%method, %path, status = parts.status.as_u16(), fault = fault.as_deref(), "request");
    app.recorder.push(RecordedExchange {
        method,
        path,
        query,
        status: parts.status.as_u16(),
        body: recorded,
        fault,
    });
    Response::from_parts(parts, Body::from(bytes))
}

fn authorized(app: &Shared, req: &Request) -> bool {
    let expected = format!("Bearer {}", app.cfg.api_key);
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected)
}

async fn apply_fault(
    action: FaultAction,
    mut req: Request,
    next: Next,
) -> (Response, Option<String>) {
    match action {
        FaultAction::Status {
            status,
            code,
            message,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = ApiError::new(status, message)
                .with_code(&code)
                .into_response();
            if let Some(ra) = retry_after.and_then(|ra| HeaderValue::from_str(&ra).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, ra);
            }
            (response, Some(format!("Status({})", status.as_u16())))
        }
        FaultAction::Html524 => {
            let status = StatusCode::from_u16(524).expect("valid status");
            let page = "<!DOCTYPE html>\n<html><head><title>console.neon.tech | 524: A timeout occurred</title></head>\
                        <body><h1>A timeout occurred</h1><p>Error code 524</p></body></html>\n";
            let response = (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                page,
            )
                .into_response();
            (response, Some("Html524".to_string()))
        }
        FaultAction::Delay(d) => {
            tokio::time::sleep(d).await;
            req.extensions_mut().insert(OpFault::default());
            (
                next.run(req).await,
                Some(format!("Delay({}ms)", d.as_millis())),
            )
        }
        FaultAction::FailOperations { status } => {
            let kind = if status == "error" {
                FailKind::Error
            } else {
                FailKind::Failed
            };
            req.extensions_mut().insert(OpFault(Some(kind)));
            (
                next.run(req).await,
                Some(format!("FailOperations({status})")),
            )
        }
        FaultAction::DropResponseAfterApplying => {
            req.extensions_mut().insert(OpFault::default());
            let applied = next.run(req).await;
            let _ = to_bytes(applied.into_body(), usize::MAX).await;
            let response = ApiError::new(
                StatusCode::BAD_GATEWAY,
                "bad gateway: the upstream response was lost",
            )
            .into_response();
            (response, Some("DropResponseAfterApplying".to_string()))
        }
    }
}
