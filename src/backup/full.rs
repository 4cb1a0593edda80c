//! The full strategy: each backup a fresh full restore into a branch of its own.
//!
//! The branch is created as `backup-<ts>-incomplete` and renamed to `backup-<ts>` only after the restore
//! finished and matched the manifest, so a crash, a cancelled job or a failed verification can never leave
//! something that looks like a good backup. On failure the incomplete branch is deleted when possible and
//! otherwise left for prune.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;

use super::restore::{self, Fail, Restored};
use super::BackupOutcome;
use crate::branch_conn;
use crate::branches::{self, PendingBranch};
use crate::context::RunContext;
use crate::error::{Error, Failure, Result};
use crate::neon::{CreateBranch, NeonClient};
use crate::pg::conn;
use crate::pg::pipeline::{self, CancelSignal};
use crate::preflight::APP_NAME;
use crate::{budget, ownership};

const INCOMPLETE: &str =
    "no complete backup was made by this run; the branch keeps its -incomplete name and is deleted";
const FAIL: Fail = Fail { impact: INCOMPLETE };

/// Runs one backup by the full strategy. `cancel` turns true on SIGTERM/SIGINT: the children are killed, the incomplete branch
/// is deleted, and the run fails.
pub async fn run(
    ctx: &RunContext,
    neon: &NeonClient,
    mut cancel: CancelSignal,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let created: Arc<Mutex<Option<PendingBranch>>> = Arc::default();
    let renamed: Arc<Mutex<Option<(String, String)>>> = Arc::default();
    let attempt = take_backup(
        ctx,
        neon,
        cancel.clone(),
        created.clone(),
        renamed.clone(),
        started,
    );
    let result = tokio::select! {
        result = attempt => result,
        _ = pipeline::cancelled(&mut cancel) => {
            settle_rename(neon, &created, &renamed).await;
            Err(cancelled(ctx, &renamed))
        }
    };
    if result.is_err() {
        PendingBranch::delete_left(
            &created,
            neon,
            "prune removes it (its name marks it incomplete)",
        )
        .await;
    }
    result
}

/// A cancel that cut the rename call short may have come after Neon applied it: the branch is then a
/// complete, verified backup, never to be deleted as an incomplete one. Its name on Neon decides.
async fn settle_rename(
    neon: &NeonClient,
    created: &Mutex<Option<PendingBranch>>,
    renamed: &Mutex<Option<(String, String)>>,
) {
    let pending = created.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(id) = pending.and_then(|p| p.id) else {
        return;
    };
    let Ok(all) = neon.list_branches().await else {
        return;
    };
    if let Some(b) = all.iter().find(|b| b.branch.id == id) {
        if matches!(
            branches::classify(&b.branch.name),
            branches::BranchKind::Backup { .. }
        ) {
            *created.lock().unwrap_or_else(|e| e.into_inner()) = None;
            *renamed.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((b.branch.name.clone(), b.branch.id.clone()));
        }
    }
}

/// The failure of a cancelled run. Once the branch is verified and renamed the backup exists whatever
/// happens next: the report names it (and its outputs are written) instead of claiming nothing was made.
fn cancelled(ctx: &RunContext, renamed: &Mutex<Option<(String, String)>>) -> Error {
    let done = renamed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match done {
        None => Failure::new("the backup was cancelled (SIGTERM or SIGINT)")
            .impact("no complete backup was made by this run; earlier backups are untouched")
            .hint("run it again; nothing needs cleaning up by hand")
            .into(),
        Some((name, id)) => {
            let _ = crate::report::write_outputs(
                &ctx.actions,
                &[("backup-branch", name.clone()), ("backup-branch-id", id)],
            );
            Failure::new(format!(
                "the run was cancelled (SIGTERM or SIGINT) after backup {name} was verified and named"
            ))
            .impact(format!(
                "backup {name} is complete and verified and is the newest backup; only the steps after it \
                 (suspending its compute, the report, the prune) were skipped"
            ))
            .hint("nothing needs cleaning up; the next run prunes as usual")
            .into()
        }
    }
}

async fn take_backup(
    ctx: &RunContext,
    neon: &NeonClient,
    cancel: CancelSignal,
    created: Arc<Mutex<Option<PendingBranch>>>,
    renamed_to: Arc<Mutex<Option<(String, String)>>>,
    started: Instant,
) -> Result<BackupOutcome> {
    let config = &ctx.config;
    let actions = &ctx.actions;
    let neon_settings = ctx.neon_settings()?;
    let restore::Preflight {
        source,
        project,
        parent_id,
    } = restore::preflight(ctx, neon).await?;
    let version = source.version.clone();

    // The branch, under a name that says it is not a backup yet.
    let now = Utc::now();
    let (incomplete, complete) = (
        branches::incomplete_backup_name(now),
        branches::backup_name(now),
    );
    let group = actions.group(&format!("create branch {incomplete}"));
    let fingerprint = config
        .source
        .as_ref()
        .map(ownership::source_fingerprint)
        .ok_or_else(|| Failure::new("backup needs the Supabase connection URI"))?;
    let mut annotations = ownership::annotations(ownership::KIND_BACKUP, &ctx.run_id, &fingerprint);
    annotations.insert("source-server-version".to_string(), version.clone());
    annotations.insert(
        "tool-version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    let request = CreateBranch {
        name: incomplete.clone(),
        parent_id,
        expires_at: None,
        annotations,
        with_endpoint: true,
    };
    let branch = budget::create_with_room(
        ctx,
        neon,
        &project,
        &request,
        &created,
        &[],
        "no backup was made by this run",
    )
    .await?;
    tracing::info!(branch = %incomplete, id = %branch.branch.id, "branch created");
    let target_spec = branch_conn::created_branch_spec(neon, neon_settings, &branch)
        .await
        .map_err(|e| match e {
            branch_conn::BranchConnError::Api(e) => Error::from(e.into_failure(INCOMPLETE)),
            other => FAIL.target("Neon returned an unusable connection URI", other),
        })?;
    let target = conn::connect(&target_spec, APP_NAME)
        .await
        .map_err(|e| FAIL.target("cannot connect to the new branch", e))?;
    drop(group);

    let Restored {
        manifest,
        pipeline: piped,
        mut notes,
        not_backed_up,
        refreshed,
        target,
        ..
    } = restore::restore_into(ctx, source, &target_spec, target, FAIL, cancel).await?;
    drop(target);

    // Only now does it become a backup.
    let renamed = neon
        .rename_branch(&branch.branch.id, &complete)
        .await
        .map_err(|e| e.into_failure("the data was restored and verified, but the branch keeps its -incomplete name, so it is not counted as a backup"))?;
    *created.lock().unwrap_or_else(|e| e.into_inner()) = None;
    *renamed_to.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((renamed.name.clone(), renamed.id.clone()));
    tracing::info!(branch = %renamed.name, "backup complete");
    if let Some(endpoint) = &branch.endpoint {
        // Neon's free plan bills compute hours on non-default branches; the backup needs none until used.
        if let Err(e) = neon.suspend_endpoint(&endpoint.id).await {
            notes.push(format!("the backup's compute could not be suspended ({e}); Neon suspends it after 5 idle minutes"));
        }
    }

    Ok(BackupOutcome {
        branch_name: renamed.name,
        branch_id: renamed.id,
        manifest,
        pipeline: piped,
        duration: started.elapsed(),
        notes,
        not_backed_up,
        refreshed,
        sync: None,
    })
}
