//! The record of every exchange, for test assertions and contract validation.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A response body as recorded.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordedBody {
    Empty,
    Json(Value),
    /// Not JSON (e.g. an injected 524 HTML page).
    Text(String),
}

/// One request and its response.
#[derive(Clone, Debug)]
pub struct RecordedExchange {
    pub method: String,
    /// Full path, e.g. `/api/v2/projects/p/branches`.
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub body: RecordedBody,
    /// The injected fault that shaped this response, if any (e.g. `"Html524"`).
    pub fault: Option<String>,
}

impl RecordedExchange {
    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<&Value> {
        match &self.body {
            RecordedBody::Json(v) => Some(v),
            _ => None,
        }
    }
}

#[derive(Clone, Default)]
pub(crate) struct Recorder {
    exchanges: Arc<Mutex<Vec<RecordedExchange>>>,
}

impl Recorder {
    pub fn push(&self, exchange: RecordedExchange) {
        self.exchanges.lock().expect("recorder lock").push(exchange);
    }

    pub fn all(&self) -> Vec<RecordedExchange> {
        self.exchanges.lock().expect("recorder lock").clone()
    }
}
