//! One Neon API request, end to end: built afresh for every attempt, sent, its answer classified by the
//! retry table, and retried until it succeeds, fails for good or its deadline passes.

use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tracing::{debug, info, warn};

use super::{NeonClient, REQUEST_ID_HEADER};
use crate::neon::error::{NeonError, NeonErrorKind};
use crate::neon::retry::{
    parse_retry_after, verdict_for, verdict_for_transport_error, Attempts, Verdict,
};

/// One request, rebuilt for every attempt.
pub(super) struct Request {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
}

impl Request {
    pub(super) fn get(path: String) -> Self {
        Request {
            method: Method::GET,
            path,
            query: Vec::new(),
            body: None,
        }
    }

    pub(super) fn with(method: Method, path: String, body: Option<serde_json::Value>) -> Self {
        Request {
            method,
            path,
            query: Vec::new(),
            body,
        }
    }

    pub(super) fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }
}

/// A 2xx answer.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: String,
}

pub(super) enum Outcome {
    Done(Reply),
    Failed {
        error: NeonError,
        verdict: Verdict,
        retry_after: Option<Duration>,
    },
}

#[derive(Deserialize)]
struct GeneralError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl NeonClient {
    /// Runs a request under the retry table until it succeeds, fails for good, or the deadline passes.
    pub(super) async fn execute(&self, call: &str, request: Request) -> Result<Reply, NeonError> {
        let mut attempts = Attempts::new(self.policy);
        loop {
            let attempt = attempts.begin();
            match self.attempt(call, &request, attempts.remaining()).await {
                Outcome::Done(reply) => return Ok(reply),
                Outcome::Failed {
                    error,
                    verdict,
                    retry_after,
                } => {
                    self.pause_or_fail(&attempts, attempt, error, verdict, retry_after)
                        .await?
                }
            }
        }
    }

    /// Waits before the next attempt, or returns the error when it is not retryable or time is up.
    pub(super) async fn pause_or_fail(
        &self,
        attempts: &Attempts,
        attempt: u32,
        error: NeonError,
        verdict: Verdict,
        retry_after: Option<Duration>,
    ) -> Result<(), NeonError> {
        if verdict == Verdict::Fatal {
            return Err(error);
        }
        let Some(delay) = attempts.next_delay(retry_after) else {
            warn!(call = %error.call, attempt, "giving up on Neon API call: its deadline has passed");
            return Err(error);
        };
        let status = error
            .status()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "no response".into());
        let delay_ms = delay.as_millis() as u64;
        if error.status() == Some(423) {
            info!(call = %error.call, %status, attempt, delay_ms, "Neon project is busy; retrying");
        } else {
            warn!(call = %error.call, %status, attempt, delay_ms, error = %error, "Neon API call failed; retrying");
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// One HTTP exchange, classified by the retry table.
    pub(super) async fn attempt(
        &self,
        call: &str,
        request: &Request,
        remaining: Duration,
    ) -> Outcome {
        let url = format!("{}{}", self.base_url, request.path);
        let mut builder = self.http.request(request.method.clone(), &url).timeout(
            self.request_timeout
                .min(remaining)
                .max(Duration::from_millis(1)),
        );
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        debug!(call, method = %request.method, path = %request.path, "Neon API request");
        let response = match builder.send().await {
            Ok(response) => response,
            Err(e) => return transport_failure(call, e),
        };
        let status = response.status();
        let request_id = response
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let body = match response.text().await {
            Ok(body) => body,
            Err(e) => return transport_failure(call, e),
        };
        debug!(
            call,
            status = status.as_u16(),
            request_id = request_id.as_deref().unwrap_or(""),
            "Neon API response"
        );
        if status.is_success() {
            return Outcome::Done(Reply { status, body });
        }
        let (code, message) = match serde_json::from_str::<GeneralError>(&body) {
            Ok(e) => (e.code, e.message),
            Err(_) => (
                String::new(),
                format!(
                    "{} (non-JSON response body)",
                    status.canonical_reason().unwrap_or("error page")
                ),
            ),
        };
        let verdict = verdict_for(status.as_u16(), &message);
        Outcome::Failed {
            error: NeonError::new(
                call,
                NeonErrorKind::Api {
                    status: status.as_u16(),
                    code,
                    message,
                    request_id,
                },
            ),
            verdict,
            retry_after,
        }
    }
}

fn transport_failure(call: &str, e: reqwest::Error) -> Outcome {
    let kind = if e.is_timeout() {
        NeonErrorKind::Timeout
    } else {
        NeonErrorKind::Transport {
            message: error_chain(&e.without_url()),
        }
    };
    Outcome::Failed {
        error: NeonError::new(call, kind),
        verdict: verdict_for_transport_error(),
        retry_after: None,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

pub(super) fn decode<T: DeserializeOwned>(call: &str, reply: &Reply) -> Result<T, NeonError> {
    serde_json::from_str(&reply.body).map_err(|e| unexpected(call, e))
}

pub(super) fn unexpected(call: &str, e: impl std::fmt::Display) -> NeonError {
    NeonError::new(
        call,
        NeonErrorKind::Unexpected {
            message: e.to_string(),
        },
    )
}
