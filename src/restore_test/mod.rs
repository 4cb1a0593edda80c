//! restore-test: proves that a backup restores. The newest complete backup (or a chosen one) gets a child
//! branch `restore-test-<ts>` with an expiry as a safety net; read-only health checks compare it with the
//! manifest stored in the backup and run the user's own queries. Success deletes the test branch; failure
//! keeps it for inspection (Neon deletes it at its expiry) and names every failed check.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::branch_conn;
use crate::branches::{self, BranchKind, PendingBranch};
use crate::budget;
use crate::context::RunContext;
use crate::error::{Error, Failure, Result};
use crate::neon::{BranchInfo, CreateBranch, NeonClient};
use crate::ownership::{self, Scope};
use crate::pg::pipeline::{self, CancelSignal};
use crate::report;

mod checks;

use checks::health_checks;
pub use checks::{grade, Check};

/// What removes a test branch that could not be deleted.
const TEST_BRANCH_FALLBACK: &str = "Neon deletes it at its expiry";

/// Longest one user health check may run: they are meant to be quick sanity queries.
pub const USER_CHECK_STATEMENT_TIMEOUT: &str = "30s";
/// Longest a user health check waits for a lock; nobody else uses the test branch, so any wait is a bug.
pub const USER_CHECK_LOCK_TIMEOUT: &str = "5s";

/// What a finished restore test reports (whether its checks passed or not).
#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    pub tested_backup: String,
    /// Age of the tested backup: the recovery point if it had to be used now.
    pub backup_age: Duration,
    pub test_branch: String,
    pub expires_at: DateTime<Utc>,
    pub checks: Vec<Check>,
    pub duration: Duration,
    /// True once the test branch is gone (after a pass); false while it exists.
    pub test_branch_deleted: bool,
}

impl RestoreOutcome {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn failed_checks(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }
}

/// Runs one restore test and reports it (outputs, job summary). `Ok` only when every check passed and
/// the test branch was deleted; a failed check keeps the branch and returns an error naming every
/// failed check. `cancel` (SIGTERM/SIGINT) deletes the test branch.
pub async fn run(
    ctx: &RunContext,
    neon: &NeonClient,
    mut cancel: CancelSignal,
) -> Result<RestoreOutcome> {
    let started = Instant::now();
    let created: Arc<Mutex<Option<PendingBranch>>> = Arc::default();
    let attempt = test_backup(ctx, neon, created.clone(), started);
    let result = tokio::select! {
        result = attempt => result,
        _ = pipeline::cancelled(&mut cancel) => Err(Failure::new("the restore test was cancelled (SIGTERM or SIGINT)")
            .impact("the backup was not tested by this run; it is untouched")
            .hint("run the restore test again; its test branch was deleted")
            .into()),
    };
    let pending = created.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mut outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            if let Some(pending) = pending {
                pending.delete(neon, TEST_BRANCH_FALLBACK).await;
            }
            return Err(e);
        }
    };
    if outcome.passed() {
        if let Some(pending) = &pending {
            outcome.test_branch_deleted = pending.delete(neon, TEST_BRANCH_FALLBACK).await;
            if !outcome.test_branch_deleted {
                ctx.actions.warning(&format!(
                    "the test branch {} could not be deleted; Neon deletes it at {}",
                    outcome.test_branch,
                    stamp(outcome.expires_at)
                ));
            }
        }
    }
    let reported = report(ctx, &outcome);
    if outcome.passed() {
        reported?;
        stale_check(ctx, &outcome)?;
        return Ok(outcome);
    }
    if let Err(e) = reported {
        // The failed checks are the news; an unwritable summary must not hide them.
        ctx.actions.warning(&e.headline());
    }
    drop_older_failed_tests(ctx, neon, &outcome.test_branch).await;
    let failed = outcome.failed_checks();
    Err(Failure::new(format!(
        "restore test of {} failed {} of {} check{}: {}",
        outcome.tested_backup,
        failed.len(),
        outcome.checks.len(),
        if outcome.checks.len() == 1 { "" } else { "s" },
        failed
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    ))
    .impact(format!(
        "this backup may not restore what it should; the test branch {} is kept for inspection until {}, when Neon deletes it",
        outcome.test_branch,
        stamp(outcome.expires_at)
    ))
    .hint("inspect the test branch (each failed check is named above), then take a new backup and test it")
    .into())
}

/// At most one failed test branch is kept (each holds one of the project's few branch slots): once this
/// run keeps `kept`, older kept test branches of ours go. Younger ones (another run's, still going) and
/// any with children stay. Failures here only warn: prune and the expiry remove what is left.
async fn drop_older_failed_tests(ctx: &RunContext, neon: &NeonClient, kept: &str) {
    let all = match neon.list_branches().await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "could not list the branches to remove older failed test branches; their expiry removes them");
            return;
        }
    };
    let Ok(scope) = ctx.scope(&all) else {
        return;
    };
    let BranchKind::RestoreTest { at: kept_at } = branches::classify(kept) else {
        return;
    };
    let parents: BTreeSet<&str> = all
        .iter()
        .filter_map(|b| b.branch.parent_id.as_deref())
        .collect();
    for b in &all {
        let BranchKind::RestoreTest { at } = scope.kind(b) else {
            continue;
        };
        let still_kept = b.branch.expires_at.is_some_and(|e| e > scope.now);
        if b.branch.name == kept
            || at >= kept_at
            || !still_kept
            || parents.contains(b.branch.id.as_str())
        {
            continue;
        }
        let pending = PendingBranch {
            name: b.branch.name.clone(),
            run_id: String::new(),
            id: Some(b.branch.id.clone()),
        };
        if pending.delete(neon, TEST_BRANCH_FALLBACK).await {
            ctx.actions.info(&format!(
                "deleted the older failed test branch {}: only the newest ({kept}) is kept",
                b.branch.name
            ));
        }
    }
}

/// The backup to test: the one asked for by name, else the newest complete one.
fn choose_backup<'a>(
    branches: &'a [BranchInfo],
    scope: &Scope,
    wanted: Option<&str>,
) -> Result<(&'a BranchInfo, DateTime<Utc>)> {
    let chosen = match wanted {
        Some(name) => branches
            .iter()
            .find(|b| b.branch.name == name)
            .ok_or_else(|| {
                Error::from(
                    Failure::new(format!("the backup branch {name} does not exist in the Neon project"))
                        .impact("nothing was tested; nothing was created on Neon")
                        .hint("name an existing backup (supaneon-sync list shows them), or leave backup-branch empty for the newest"),
                )
            })?,
        None => scope.newest_backup(branches).ok_or_else(|| {
            Error::from(
                Failure::new("no backup exists yet: the project has no complete backup branch (backup-YYYYMMDDTHHMMSSZ) to test")
                    .impact("nothing was tested; nothing was created on Neon")
                    .hint("run a backup first (mode backup); incomplete backups are never tested"),
            )
        })?,
    };
    match scope.kind(chosen) {
        BranchKind::Backup { at } => Ok((chosen, at)),
        _ => {
            let why = scope
                .not_ours(chosen)
                .map(|w| w.to_string())
                .unwrap_or_else(|| "incomplete".to_string());
            Err(Failure::new(format!(
                "{} is not a complete backup of this source made by supaneon-sync: {why}",
                chosen.branch.name
            ))
            .impact("nothing was tested; nothing was created on Neon")
            .hint("name a backup that supaneon-sync list shows, or leave backup-branch empty for the newest")
            .into())
        }
    }
}

/// The newest backup restored, but it is older than `max-backup-age-hours`: backups have stopped (a failed
/// schedule, or GitHub disabling the scheduled workflow), and the recovery point drifts further every day.
/// Only the newest backup is judged; one chosen by name may be as old as it is.
fn stale_check(ctx: &RunContext, outcome: &RestoreOutcome) -> Result<()> {
    let limit = Duration::from_secs(u64::from(ctx.config.max_backup_age_hours) * 3600);
    if ctx.config.backup_branch.is_some() || outcome.backup_age <= limit {
        return Ok(());
    }
    Err(Failure::new(format!(
        "the newest complete backup, {}, restores, but it is {} h old, more than max-backup-age-hours ({})",
        outcome.tested_backup,
        outcome.backup_age.as_secs() / 3600,
        ctx.config.max_backup_age_hours
    ))
    .impact("a failover now would lose everything written since that backup was taken")
    .hint("check that the scheduled backup workflow still runs and succeeds: GitHub disables scheduled workflows of public repositories after 60 days without activity (re-enable it in the Actions tab), and a failing backup leaves the newest backup where it was")
    .into())
}

async fn test_backup(
    ctx: &RunContext,
    neon: &NeonClient,
    created: Arc<Mutex<Option<PendingBranch>>>,
    started: Instant,
) -> Result<RestoreOutcome> {
    let config = &ctx.config;
    let actions = &ctx.actions;
    let neon_settings = ctx.neon_settings()?;

    // 1. The backup under test.
    let group = actions.group("choose the backup");
    let all = neon
        .list_branches()
        .await
        .map_err(|e| e.into_failure("nothing was tested; nothing was created on Neon"))?;
    let scope = ctx.scope(&all)?;
    for (b, why) in scope.name_alikes(&all) {
        tracing::info!(branch = %b.branch.name, "not ours, never tested: {why}");
    }
    let (backup, taken_at) = choose_backup(&all, &scope, config.backup_branch.as_deref())?;
    let now = Utc::now();
    let backup_age = (now - taken_at).to_std().unwrap_or_default();
    let tested_backup = backup.branch.name.clone();
    tracing::info!(backup = %tested_backup, age_seconds = backup_age.as_secs(), "testing");
    drop(group);

    // 2. Its child, with an expiry so a kept branch cannot linger forever.
    let test_branch = branches::restore_test_name(now);
    let expires_at = now + chrono::Duration::hours(i64::from(config.restore_test_expiry_hours));
    let group = actions.group(&format!("create branch {test_branch}"));
    let fingerprint = scope.fingerprint.clone().unwrap_or_default();
    let mut annotations =
        ownership::annotations(ownership::KIND_RESTORE_TEST, &ctx.run_id, &fingerprint);
    annotations.insert("backup".to_string(), tested_backup.clone());
    let request = CreateBranch {
        name: test_branch.clone(),
        parent_id: Some(backup.branch.id.clone()),
        expires_at: Some(expires_at),
        annotations,
        with_endpoint: true,
    };
    let project = neon
        .get_project()
        .await
        .map_err(|e| e.into_failure("nothing was tested; nothing was created on Neon"))?;
    let branch = budget::create_with_room(
        ctx,
        neon,
        &project,
        &request,
        &created,
        &[backup.branch.id.as_str()],
        "nothing was tested; the backup is untouched",
    )
    .await?;
    tracing::info!(branch = %test_branch, id = %branch.branch.id, expires_at = %stamp(expires_at), "test branch created");
    // A URI or endpoint we refuse to connect to fails the connectivity check, and the branch is kept.
    let spec = match branch_conn::created_branch_spec(neon, neon_settings, &branch).await {
        Ok(spec) => Ok(spec),
        Err(branch_conn::BranchConnError::Api(e)) => {
            return Err(e
                .into_failure("nothing was tested; the test branch is deleted")
                .into())
        }
        Err(other) => Err(other.to_string()),
    };
    drop(group);

    // 3. Health checks, all read-only.
    let group = actions.group("health checks");
    let checks = health_checks(spec, &config.health_checks).await;
    for c in &checks {
        if c.passed {
            actions.info(&format!(
                "  ok   {}: {}",
                crate::actions::one_line(&c.name),
                c.detail
            ));
        } else {
            actions.error(
                Some("restore-test check failed"),
                &format!("{}: {}", c.name, c.detail),
            );
        }
    }
    drop(group);

    Ok(RestoreOutcome {
        tested_backup,
        backup_age,
        test_branch,
        expires_at,
        checks,
        duration: started.elapsed(),
        test_branch_deleted: false,
    })
}

/// Outputs and the job summary of a finished restore test, passed or failed.
pub fn report(ctx: &RunContext, outcome: &RestoreOutcome) -> Result<()> {
    let failed = outcome.failed_checks();
    let passed = outcome.checks.len() - failed.len();
    let mut outputs = vec![
        ("tested-backup", outcome.tested_backup.clone()),
        (
            "backup-age-seconds",
            outcome.backup_age.as_secs().to_string(),
        ),
        ("checks-passed", passed.to_string()),
        ("checks-failed", failed.len().to_string()),
        (
            "test-branch",
            if outcome.test_branch_deleted {
                String::new()
            } else {
                outcome.test_branch.clone()
            },
        ),
        (
            "duration-seconds",
            format!("{:.1}", outcome.duration.as_secs_f64()),
        ),
    ];
    let verdict = if outcome.passed() {
        format!(
            "restore test of {} passed: {passed} checks in {:.1} s; {}",
            outcome.tested_backup,
            outcome.duration.as_secs_f64(),
            if outcome.test_branch_deleted {
                "the test branch was deleted".to_string()
            } else {
                format!(
                    "the test branch {} is left until {}",
                    outcome.test_branch,
                    stamp(outcome.expires_at)
                )
            }
        )
    } else {
        format!(
            "restore test of {} FAILED: {} of {} checks failed; the test branch {} is kept until {}",
            outcome.tested_backup,
            failed.len(),
            outcome.checks.len(),
            outcome.test_branch,
            stamp(outcome.expires_at)
        )
    };
    ctx.actions.info(&verdict);
    if outcome.passed() {
        // On failure the error's headline becomes the result (run.rs writes it).
        outputs.push(("result", verdict.clone()));
    }
    report::write_outputs(&ctx.actions, &outputs).map_err(output_failure)?;

    let rows: Vec<Vec<String>> = outcome
        .checks
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                if c.passed { "✅ pass" } else { "❌ FAIL" }.to_string(),
                c.detail.clone(),
            ]
        })
        .collect();
    let mut summary = format!(
        "## supaneon-sync restore test\n\n**{verdict}**\n\n\
         | | |\n| --- | --- |\n| backup | {} |\n| backup age (recovery point) | {} s |\n| checks | {passed} passed, {} failed |\n| duration | {:.1} s |\n\n",
        outcome.tested_backup,
        outcome.backup_age.as_secs(),
        failed.len(),
        outcome.duration.as_secs_f64()
    );
    if !failed.is_empty() {
        summary.push_str("**Failed checks**\n\n");
        for c in &failed {
            summary.push_str(&format!(
                "- {}: {}\n",
                c.name.replace('\n', " "),
                c.detail.replace('\n', " ")
            ));
        }
        summary.push('\n');
    }
    summary.push_str(&report::markdown_table(
        &["check", "result", "detail"],
        &rows,
    ));
    ctx.actions
        .append_summary(&summary)
        .map_err(output_failure)?;
    Ok(())
}

/// A time as people read it in logs: RFC 3339, whole seconds, UTC.
fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn output_failure(e: std::io::Error) -> Error {
    Failure::new("cannot write the step outputs or summary")
        .impact("the restore test itself ran; its verdict is in the log above")
        .cause(e)
        .into()
}
