//! The run context: what every mode is handed (the validated settings, the Actions writer, the run's id)
//! and the judgement of whose branches a run may act on.

use crate::actions::Actions;
use crate::config::{Config, NeonSettings};
use crate::error::{Failure, Result};
use crate::neon::BranchInfo;
use crate::ownership::Scope;

/// Everything a mode needs from the outside world.
pub struct RunContext {
    pub config: Config,
    pub actions: Actions,
    /// `list --json`
    pub json: bool,
    /// `validate-config --online` (always on for the Action's validate-config mode)
    pub online: bool,
    /// This run's unique id, annotated on every branch it creates (see [`crate::ownership`]).
    pub run_id: String,
}

impl RunContext {
    /// The Neon settings, which every mode but an offline validate-config has (validation requires them).
    pub fn neon_settings(&self) -> Result<&NeonSettings> {
        self.config.neon.as_ref().ok_or_else(|| {
            Failure::new(format!(
                "{} needs the Neon settings",
                self.config.mode.name()
            ))
            .hint("set NEON_API_KEY and NEON_PROJECT_ID")
            .into()
        })
    }

    /// Whose branches this run may act on, judged now against `branches` (the project's list).
    pub fn scope(&self, branches: &[BranchInfo]) -> Result<Scope> {
        Scope::resolve(self.config.source.as_ref(), branches, chrono::Utc::now())
    }
}
