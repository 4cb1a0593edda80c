//! Fault injection: rules that make matching requests fail, hang, lose their response or produce
//! failing operations. Rules are consumed in the order they were pushed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a matching request gets.
#[derive(Clone, Debug)]
pub enum FaultAction {
    /// Answer with this status and a GeneralError body; the request is not applied.
    Status {
        status: u16,
        code: String,
        message: String,
        retry_after: Option<String>,
    },
    /// Answer 524 with a Cloudflare-like HTML page; the request is not applied.
    Html524,
    /// Wait this long, then handle the request normally.
    Delay(Duration),
    /// Handle the request; the operations it creates end in `status` (`"failed"` or `"error"`).
    FailOperations { status: String },
    /// Handle the request (e.g. create the branch), then answer 502 as if the response was lost.
    DropResponseAfterApplying,
}

/// One rule: requests whose method matches (any when `None`) and whose path contains `path_contains`
/// get `action`, `times` times.
#[derive(Clone, Debug)]
pub struct FaultRule {
    pub method: Option<String>,
    pub path_contains: String,
    pub times: usize,
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule for any method, applied once.
    pub fn new(path_contains: &str, action: FaultAction) -> Self {
        FaultRule {
            method: None,
            path_contains: path_contains.to_string(),
            times: 1,
            action,
        }
    }

    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    pub fn times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }
}

impl FaultAction {
    /// `Status` with an empty code and no Retry-After.
    pub fn status(status: u16, message: &str) -> Self {
        FaultAction::Status {
            status,
            code: String::new(),
            message: message.to_string(),
            retry_after: None,
        }
    }
}

/// A cheap, cloneable handle to the emulator's fault rules and adjustable limits.
#[derive(Clone, Debug)]
pub struct Faults {
    rules: Arc<Mutex<VecDeque<FaultRule>>>,
    branch_limit: Arc<AtomicUsize>,
}

impl Faults {
    pub(crate) fn new(branch_limit: usize) -> Self {
        Faults {
            rules: Arc::default(),
            branch_limit: Arc::new(AtomicUsize::new(branch_limit)),
        }
    }

    pub fn push(&self, rule: FaultRule) {
        self.rules.lock().expect("faults lock").push_back(rule);
    }

    /// Removes every pending rule.
    pub fn clear(&self) {
        self.rules.lock().expect("faults lock").clear();
    }

    /// Rules not yet used up.
    pub fn pending(&self) -> usize {
        self.rules
            .lock()
            .expect("faults lock")
            .iter()
            .filter(|r| r.times > 0)
            .count()
    }

    /// Changes the project's branch limit (the plan's `branches_limit`).
    pub fn set_branch_limit(&self, limit: usize) {
        self.branch_limit.store(limit, Ordering::SeqCst);
    }

    pub fn branch_limit(&self) -> usize {
        self.branch_limit.load(Ordering::SeqCst)
    }

    /// Takes one use of the first rule matching the request.
    pub(crate) fn take(&self, method: &str, path: &str) -> Option<FaultAction> {
        let mut rules = self.rules.lock().expect("faults lock");
        let index = rules.iter().position(|r| {
            r.times > 0
                && r.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && path.contains(&r.path_contains)
        })?;
        let rule = &mut rules[index];
        rule.times -= 1;
        let action = rule.action.clone();
        if rule.times == 0 {
            rules.remove(index);
        }
        Some(action)
    }
}
