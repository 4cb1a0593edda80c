//! backup-run: one consistent, Supabase-aware, verified backup, made by the configured strategy.
//!
//! Rooms: [`full`] (each backup a fresh full restore), [`restore`] (the full restore and its
//! verification, shared with the mirror's first sync), [`summary`] (what a backup reports). The snapshot
//! strategy lives in [`crate::mirror`].

use std::time::Duration;

use crate::config::Strategy;
use crate::context::RunContext;
use crate::error::Result;
use crate::neon::NeonClient;
use crate::pg::manifest::Manifest;
use crate::pg::pipeline::{CancelSignal, PipelineReport};

mod full;
pub(crate) mod restore;
mod summary;

pub use restore::not_backed_up;
pub use summary::report;

/// What a finished backup reports.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    pub branch_name: String,
    pub branch_id: String,
    pub manifest: Manifest,
    pub pipeline: PipelineReport,
    pub duration: Duration,
    pub notes: Vec<String>,
    /// What the source holds that this backup does not, and why: one line per schema or object.
    pub not_backed_up: Vec<String>,
    /// Materialized views refreshed on restore, not verified against the source: one line each.
    pub refreshed: Vec<String>,
    /// The snapshot strategy: how the mirror was brought to the source (`None`: the full strategy).
    pub sync: Option<crate::mirror::SyncPath>,
}

/// Runs one backup by the configured strategy. `cancel` turns true on SIGTERM/SIGINT: the children are
/// killed, whatever this run created and did not finish is deleted, and the run fails.
pub async fn run(
    ctx: &RunContext,
    neon: &NeonClient,
    cancel: CancelSignal,
) -> Result<BackupOutcome> {
    match ctx.config.strategy {
        Strategy::Full => full::run(ctx, neon, cancel).await,
        Strategy::Snapshot => crate::mirror::run(ctx, neon, cancel).await,
    }
}
