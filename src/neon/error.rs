//! What can go wrong talking to Neon, and what the user should do about it.

use std::fmt;
use std::time::Duration;

use crate::error::Failure;
use crate::secret::redact;

/// A failed Neon API call. `call` names what we were doing ("create branch backup-…"); every text that
/// came from the server is redacted when the error is built.
#[derive(Debug)]
pub struct NeonError {
    pub call: String,
    pub kind: NeonErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeonErrorKind {
    /// Neon answered with a non-success status (after any retries the status allows).
    Api {
        status: u16,
        /// Neon's `code`, often empty (e.g. `BRANCHES_LIMIT_EXCEEDED`).
        code: String,
        message: String,
        /// The `x-neon-ret-request-id` header, for Neon support.
        request_id: Option<String>,
    },
    /// A request did not finish within the per-request timeout (after retries).
    Timeout,
    /// The connection failed (DNS, TCP, TLS, reset), after retries.
    Transport { message: String },
    /// An operation Neon ran for us ended in `error` or `cancelled`, or stayed `failed` past the deadline.
    Operation {
        id: String,
        action: String,
        status: String,
        error: Option<String>,
    },
    /// An operation had not finished when the operation deadline passed.
    OperationTimeout {
        id: String,
        action: String,
        status: String,
        waited: Duration,
    },
    /// A success response we could not read, or one that breaks the API's promises.
    Unexpected { message: String },
    /// The client could not be built (bad base URL, TLS setup).
    Setup { message: String },
}

impl NeonError {
    pub(crate) fn new(call: &str, kind: NeonErrorKind) -> Self {
        let kind = match kind {
            NeonErrorKind::Api {
                status,
                code,
                message,
                request_id,
            } => NeonErrorKind::Api {
                status,
                code: redact(&code),
                message: redact(&message),
                request_id,
            },
            NeonErrorKind::Transport { message } => NeonErrorKind::Transport {
                message: redact(&message),
            },
            NeonErrorKind::Operation {
                id,
                action,
                status,
                error,
            } => NeonErrorKind::Operation {
                id,
                action,
                status,
                error: error.map(|e| redact(&e)),
            },
            NeonErrorKind::Unexpected { message } => NeonErrorKind::Unexpected {
                message: redact(&message),
            },
            NeonErrorKind::Setup { message } => NeonErrorKind::Setup {
                message: redact(&message),
            },
            other => other,
        };
        NeonError {
            call: redact(call),
            kind,
        }
    }

    /// The HTTP status Neon answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            NeonErrorKind::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Neon's error `code` (may be empty).
    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            NeonErrorKind::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match &self.kind {
            NeonErrorKind::Api { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// What the user should do next.
    pub fn hint(&self) -> String {
        let hint = match &self.kind {
            NeonErrorKind::Api { status, code, .. } => match *status {
                401 | 403 => "check NEON_API_KEY: it must be a valid Neon API key with access to this project"
                    .to_string(),
                404 => "check NEON_PROJECT_ID; if the call named a branch, the branch may be gone (deleted or expired)"
                    .to_string(),
                409 => "the name is already taken in this Neon project; choose another name or remove the existing branch"
                    .to_string(),
                422 if code == "BRANCHES_LIMIT_EXCEEDED" => {
                    "the Neon project has reached its branch limit; lower the retention (keep fewer backups) or run `supaneon-sync prune`"
                        .to_string()
                }
                422 if code == "ROOT_BRANCHES_LIMIT_EXCEEDED" => {
                    "the Neon project has reached its root-branch limit; delete a root branch you no longer need".to_string()
                }
                422 => "Neon refused the request for this project's state or plan; see the message above".to_string(),
                423 => "the Neon project was still locked by another operation after retries; wait for running operations to finish and run again"
                    .to_string(),
                429 => "Neon rate-limited the requests (700/min per account); run again later or reduce concurrent jobs using this key"
                    .to_string(),
                500..=599 => "Neon is unavailable or failing; retry later (see https://neonstatus.com)".to_string(),
                400 => "Neon rejected the request as invalid; check the branch names and settings".to_string(),
                _ => "see Neon's message above".to_string(),
            },
            NeonErrorKind::Timeout => {
                "Neon did not answer in time; retry later, and check network access to the Neon API".to_string()
            }
            NeonErrorKind::Transport { .. } => {
                "could not reach the Neon API; check network access (proxy, firewall, DNS) and retry".to_string()
            }
            NeonErrorKind::Operation { .. } => {
                "a Neon operation failed on Neon's side; retry later, and check the project's operations in the Neon console"
                    .to_string()
            }
            NeonErrorKind::OperationTimeout { .. } => {
                "a Neon operation did not finish in time; check the project's operations in the Neon console and run again"
                    .to_string()
            }
            NeonErrorKind::Unexpected { .. } => {
                "Neon answered in a way this version does not understand; please report it".to_string()
            }
            NeonErrorKind::Setup { .. } => "check the Neon API base URL setting".to_string(),
        };
        match self.request_id() {
            Some(id) => format!("{hint} (Neon request id {id})"),
            None => hint,
        }
    }

    /// Converts into the run's failure report, saying what the failure means for the user's data.
    pub fn into_failure(self, impact: &str) -> Failure {
        let hint = self.hint();
        Failure::new(format!("Neon API: could not {}", self.call))
            .impact(impact)
            .hint(hint)
            .cause(self)
    }
}

impl fmt::Display for NeonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = match &self.kind {
            NeonErrorKind::Api {
                status,
                code,
                message,
                request_id,
            } => {
                let mut s = format!("HTTP {status}");
                if !code.is_empty() {
                    s.push_str(&format!(" {code}"));
                }
                if !message.is_empty() {
                    s.push_str(&format!(": {message}"));
                }
                if let Some(id) = request_id {
                    s.push_str(&format!(" (request id {id})"));
                }
                s
            }
            NeonErrorKind::Timeout => "the request timed out".to_string(),
            NeonErrorKind::Transport { message } => format!("connection failed: {message}"),
            NeonErrorKind::Operation {
                id,
                action,
                status,
                error,
            } => format!(
                "operation {action} ({id}) ended {status}: {}",
                error.as_deref().unwrap_or("no error text")
            ),
            NeonErrorKind::OperationTimeout {
                id,
                action,
                status,
                waited,
            } => format!(
                "operation {action} ({id}) still {status} after {}s",
                waited.as_secs()
            ),
            NeonErrorKind::Unexpected { message } => format!("unexpected response: {message}"),
            NeonErrorKind::Setup { message } => format!("client setup failed: {message}"),
        };
        // Redact again at print time: secrets registered after the error was built are caught too.
        f.write_str(&redact(&format!("{}: {detail}", self.call)))
    }
}

impl std::error::Error for NeonError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> NeonError {
        NeonError::new(
            "create branch backup-x",
            NeonErrorKind::Api {
                status,
                code: code.into(),
                message: "m".into(),
                request_id: Some("req-1".into()),
            },
        )
    }

    #[test]
    fn hints_name_the_fix() {
        assert!(api(401, "").hint().contains("NEON_API_KEY"));
        assert!(api(403, "").hint().contains("NEON_API_KEY"));
        assert!(api(404, "").hint().contains("NEON_PROJECT_ID"));
        assert!(api(409, "").hint().contains("already taken"));
        assert!(api(422, "BRANCHES_LIMIT_EXCEEDED").hint().contains("prune"));
        assert!(api(423, "").hint().contains("locked"));
        assert!(api(429, "").hint().contains("rate-limited"));
        assert!(api(503, "").hint().contains("retry later"));
        assert!(api(503, "").hint().contains("req-1"));
    }

    #[test]
    fn display_carries_status_code_and_request_id() {
        let s = api(422, "BRANCHES_LIMIT_EXCEEDED").to_string();
        assert_eq!(
            s,
            "create branch backup-x: HTTP 422 BRANCHES_LIMIT_EXCEEDED: m (request id req-1)"
        );
    }

    #[test]
    fn server_text_is_redacted() {
        let e = NeonError::new(
            "get connection uri",
            NeonErrorKind::Api {
                status: 500,
                code: String::new(),
                message: "boom postgresql://u:pw-unit-neon@h/db".into(),
                request_id: None,
            },
        );
        assert!(!e.to_string().contains("pw-unit-neon"));
        assert!(!format!("{e:?}").contains("pw-unit-neon"));
    }
}
