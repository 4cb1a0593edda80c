//! The error every mode returns, how it reads to a person, and the exit code it maps to.
//!
//! Modules keep their own typed errors (`neon::NeonError`, `pg::PgError`, …) and convert them into a
//! [`Failure`] at the orchestration layer, adding what the failure means for the user's data and what to
//! do about it.

use std::fmt;

use crate::secret::redact;

/// Exit codes, documented in `--help` and the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const INVALID_CONFIG: u8 = 2;
}

/// One configuration problem, naming the setting as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The input, variable or YAML key, e.g. `input "keep-last"` or `SUPABASE_DATABASE_URL`.
    pub setting: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

/// A failed operation, told in three parts: what went wrong, what it means for the data, what to do.
#[derive(Debug)]
pub struct Failure {
    pub what: String,
    pub impact: String,
    pub hint: String,
    pub cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// The error annotation's title, when this failure deserves its own (default: "supaneon-sync failed").
    pub title: Option<String>,
}

impl Failure {
    pub fn new(what: impl Into<String>) -> Self {
        Failure {
            what: what.into(),
            impact: String::new(),
            hint: String::new(),
            cause: None,
            title: None,
        }
    }

    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    pub fn impact(mut self, impact: impl Into<String>) -> Self {
        self.impact = impact.into();
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }

    pub fn cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }
}

#[derive(Debug)]
pub enum Error {
    /// Invalid configuration or usage: every problem found, in one report. Exit code 2.
    Config(Vec<Problem>),
    /// The operation failed. Exit code 1.
    Failed(Failure),
}

/// A cause as it may be shown. A server error's DETAIL can quote row values (`Key (email)=(…) already
/// exists`, `Failing row contains (…)`), so it is dropped, as it is from pg_restore's output; the
/// message and hint name constraints and objects, not data.
fn without_row_data(cause: &(dyn std::error::Error + 'static)) -> String {
    match cause.downcast_ref::<tokio_postgres::error::DbError>() {
        Some(db) => match db.hint() {
            Some(hint) => format!("{}: {} (hint: {hint})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        },
        None => cause.to_string(),
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => exit::INVALID_CONFIG,
            Error::Failed(_) => exit::FAILED,
        }
    }

    /// The whole report as the user reads it, with every secret redacted.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match self {
            Error::Config(problems) => {
                out.push_str(&format!(
                    "error: invalid configuration ({} problem{}); nothing was run\n",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                ));
                for p in problems {
                    out.push_str(&format!("  - {p}\n"));
                }
                out.push_str("hint: fix the settings above; `supaneon-sync validate-config` checks them without touching any database\n");
            }
            Error::Failed(f) => {
                out.push_str(&format!("error: {}\n", f.what));
                let mut source = f.cause.as_deref().map(|c| c as &dyn std::error::Error);
                while let Some(cause) = source {
                    out.push_str(&format!("  caused by: {}\n", without_row_data(cause)));
                    source = cause.source();
                }
                if !f.impact.is_empty() {
                    out.push_str(&format!("impact: {}\n", f.impact));
                }
                if !f.hint.is_empty() {
                    out.push_str(&format!("hint: {}\n", f.hint));
                }
            }
        }
        redact(&out)
    }

    /// What the failure means for the user's data.
    pub fn impact(&self) -> String {
        redact(match self {
            Error::Config(_) => {
                "nothing was run: no database was read, no branch created or deleted"
            }
            Error::Failed(f) => &f.impact,
        })
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        redact(match self {
            Error::Config(_) => {
                "fix the settings named above; `supaneon-sync validate-config` checks them without touching any database"
            }
            Error::Failed(f) => &f.hint,
        })
    }

    /// The error annotation's title.
    pub fn title(&self) -> String {
        match self {
            Error::Failed(Failure { title: Some(t), .. }) => redact(t),
            _ => "supaneon-sync failed".to_string(),
        }
    }

    /// One line for annotations and the summary.
    pub fn headline(&self) -> String {
        redact(&match self {
            Error::Config(problems) => format!(
                "invalid configuration: {}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Error::Failed(f) => f.what.clone(),
        })
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        Error::Failed(f)
    }
}

impl From<Vec<Problem>> for Error {
    fn from(p: Vec<Problem>) -> Self {
        Error::Config(p)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline())
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
