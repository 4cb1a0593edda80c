//! The lifecycle of Neon operations, computed lazily from timestamps: an operation never needs a
//! background task, its status at any instant follows from when it was created.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::ids;

/// How an injected fault makes an operation end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailKind {
    /// `failed` (not terminal, `failures_count` 1, `error` set) for a while, then `finished`.
    Failed,
    /// `error`: terminal, with an `error` text.
    Error,
}

#[derive(Clone, Debug)]
pub(crate) struct Operation {
    pub id: String,
    pub action: &'static str,
    pub branch_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Starts in `scheduling` (else directly in `running`).
    pub starts_scheduled: bool,
    pub fail: Option<FailKind>,
}

/// The operation as seen at one instant.
pub(crate) struct OperationView {
    pub status: &'static str,
    pub updated_at: DateTime<Utc>,
    pub failures_count: u32,
    pub error: Option<String>,
    pub total_duration_ms: i64,
}

impl OperationView {
    pub fn is_terminal(&self) -> bool {
        matches!(self.status, "finished" | "error" | "skipped" | "cancelled")
    }
}

fn chrono_step(step: Duration) -> chrono::Duration {
    chrono::Duration::from_std(step).unwrap_or_else(|_| chrono::Duration::milliseconds(200))
}

/// How many steps a `failed` operation stays visible before it is retried into `finished`.
const FAILED_HOLD_STEPS: i32 = 10;

impl Operation {
    pub fn new(
        action: &'static str,
        branch_id: Option<&str>,
        endpoint_id: Option<&str>,
        created_at: DateTime<Utc>,
        starts_scheduled: bool,
        fail: Option<FailKind>,
    ) -> Self {
        Operation {
            id: ids::uuid_v4(),
            action,
            branch_id: branch_id.map(str::to_string),
            endpoint_id: endpoint_id.map(str::to_string),
            created_at,
            starts_scheduled,
            fail,
        }
    }

    pub fn view(&self, now: DateTime<Utc>, step: Duration) -> OperationView {
        let step = chrono_step(step);
        let scheduled_until = if self.starts_scheduled {
            self.created_at + step
        } else {
            self.created_at
        };
        let run_until = scheduled_until + step;
        let ms = |until: DateTime<Utc>| (until - self.created_at).num_milliseconds().max(0);
        let view = |status, updated_at, failures_count, error: Option<&str>, total_duration_ms| {
            OperationView {
                status,
                updated_at,
                failures_count,
                error: error.map(str::to_string),
                total_duration_ms,
            }
        };
        if now < scheduled_until {
            return view("scheduling", self.created_at, 0, None, 0);
        }
        if now < run_until {
            return view("running", scheduled_until, 0, None, ms(now));
        }
        match self.fail {
            None => view("finished", run_until, 0, None, ms(run_until)),
            Some(FailKind::Error) => view(
                "error",
                run_until,
                1,
                Some("emulated fault: the operation ended in error"),
                ms(run_until),
            ),
            Some(FailKind::Failed) => {
                let retried_at = run_until + step * FAILED_HOLD_STEPS;
                if now < retried_at {
                    view(
                        "failed",
                        run_until,
                        1,
                        Some("emulated fault: the operation failed and will be retried"),
                        ms(run_until),
                    )
                } else {
                    view("finished", retried_at, 1, None, ms(retried_at))
                }
            }
        }
    }

    pub fn to_json(&self, project_id: &str, now: DateTime<Utc>, step: Duration) -> Value {
        let v = self.view(now, step);
        let mut o = json!({
            "id": self.id,
            "project_id": project_id,
            "action": self.action,
            "status": v.status,
            "failures_count": v.failures_count,
            "created_at": ids::ts(self.created_at),
            "updated_at": ids::ts(v.updated_at),
            "total_duration_ms": v.total_duration_ms,
        });
        if let Some(b) = &self.branch_id {
            o["branch_id"] = json!(b);
        }
        if let Some(e) = &self.endpoint_id {
            o["endpoint_id"] = json!(e);
        }
        if let Some(err) = v.error {
            o["error"] = json!(err);
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_operation_walks_through_its_states() {
        let t0 = Utc::now();
        let step = Duration::from_millis(100);
        let op = Operation::new("start_compute", None, None, t0, true, None);
        let at = |ms| {
            op.view(t0 + chrono::Duration::milliseconds(ms), step)
                .status
        };
        assert_eq!(at(0), "scheduling");
        assert_eq!(at(150), "running");
        assert_eq!(at(250), "finished");
    }

    #[test]
    fn failed_operation_is_visible_then_finishes() {
        let t0 = Utc::now();
        let step = Duration::from_millis(100);
        let op = Operation::new(
            "create_branch",
            None,
            None,
            t0,
            false,
            Some(FailKind::Failed),
        );
        let v = op.view(t0 + chrono::Duration::milliseconds(150), step);
        assert_eq!((v.status, v.failures_count), ("failed", 1));
        assert!(!v.is_terminal() && v.error.is_some());
        let v = op.view(t0 + chrono::Duration::milliseconds(1200), step);
        assert_eq!(v.status, "finished");
        let e = Operation::new(
            "create_branch",
            None,
            None,
            t0,
            false,
            Some(FailKind::Error),
        );
        assert!(e
            .view(t0 + chrono::Duration::milliseconds(150), step)
            .is_terminal());
    }
}
