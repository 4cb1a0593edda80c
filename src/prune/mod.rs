//! prune: which branches the retention policy no longer keeps, and deleting them.
//!
//! The planner ([`plan`]) decides; only branches that are ours by identity ([`crate::ownership`]) may go.
//! Execution deletes children before their parents, reports each deletion, and stops at the first API
//! error: every branch left still carries a truthful name, so the next prune plans again from what exists
//! and finishes the job.

mod plan;

pub use plan::{plan, Plan, Policy, Reason};

use crate::actions::one_line;
use crate::context::RunContext;
use crate::error::{Error, Failure, Result};
use crate::neon::BranchInfo;
use crate::neon::{Deleted, NeonClient};
use crate::pg::pipeline::CancelSignal;
use crate::report;

// ------------------------------------------------------------------------------------------ execution

/// What a prune did (or, with `dry_run`, would do).
#[derive(Debug, Clone)]
pub struct PruneOutcome {
    pub plan: Plan,
    pub dry_run: bool,
    /// Names deleted by this run, in order; with `dry_run`, the planned ones.
    pub deleted: Vec<String>,
}

/// Lists the branches, plans, prints the plan and, unless `dry_run`, deletes (children first). Stops at
/// the first API error with a failure that says what was and was not deleted.
///
/// `cancel` (SIGTERM/SIGINT) is looked at before each deletion: a deletion under way finishes, none starts
/// after it, and the failure says what was and was not deleted.
pub async fn run(
    ctx: &RunContext,
    neon: &NeonClient,
    dry_run: bool,
    cancel: &CancelSignal,
) -> Result<PruneOutcome> {
    let a = &ctx.actions;
    let branches = neon
        .list_branches()
        .await
        .map_err(|e| e.into_failure("nothing was deleted"))?;
    let scope = ctx.scope(&branches)?;
    let plan = plan(
        &branches,
        &scope,
        &Policy::from_retention(&ctx.config.retention),
    );
    {
        let _group = a.group(if dry_run {
            "prune plan (dry run: nothing is deleted)"
        } else {
            "prune plan"
        });
        for (b, reason) in &plan.delete {
            a.info(&format!(
                "  delete {}: {}",
                one_line(&b.branch.name),
                one_line(&reason.to_string())
            ));
        }
        for (b, reason) in &plan.keep {
            a.info(&format!(
                "  keep   {}: {}",
                one_line(&b.branch.name),
                one_line(&reason.to_string())
            ));
        }
    }
    if dry_run {
        let deleted = plan.delete_names().iter().map(|n| n.to_string()).collect();
        return Ok(PruneOutcome {
            plan,
            dry_run,
            deleted,
        });
    }
    let _group = a.group("prune");
    let mut deleted = Vec::new();
    for (i, (b, reason)) in plan.delete.iter().enumerate() {
        if *cancel.borrow() {
            let _ = report::write_outputs(a, &[("deleted", deleted.join(","))]);
            return Err(stopped_early(
                "prune was cancelled (SIGTERM or SIGINT)",
                &deleted,
                &plan.delete[i..],
            )
            .hint("nothing needs cleaning up by hand; the next prune finishes the job")
            .into());
        }
        match neon.delete_branch(&b.branch.id).await {
            Ok(Deleted::Removed) => {
                a.info(&format!("deleted {} ({reason})", one_line(&b.branch.name)))
            }
            Ok(Deleted::AlreadyGone) => {
                a.info(&format!("{} was already gone", one_line(&b.branch.name)))
            }
            Err(e) => {
                let _ = report::write_outputs(a, &[("deleted", deleted.join(","))]);
                let left: Vec<&str> = plan.delete[i..]
                    .iter()
                    .map(|(b, _)| b.branch.name.as_str())
                    .collect();
                let done = if deleted.is_empty() {
                    "nothing was deleted".to_string()
                } else {
                    format!("deleted {}", deleted.join(", "))
                };
                let hint = format!("{}; then run prune again: it finishes the job", e.hint());
                return Err(Failure::new(format!(
                    "Neon API: could not delete branch {} ({})",
                    b.branch.name, b.branch.id
                ))
                .impact(format!(
                    "prune stopped: {done}; not deleted: {}. Children go before their parents, so every \
                     branch left is whole and keeps its name",
                    left.join(", ")
                ))
                .hint(hint)
                .cause(e)
                .into());
            }
        }
        deleted.push(b.branch.name.clone());
    }
    Ok(PruneOutcome {
        plan,
        dry_run,
        deleted,
    })
}

/// A prune that stopped before its plan was done: what was deleted, and what was not.
fn stopped_early(what: &str, deleted: &[String], left: &[(BranchInfo, Reason)]) -> Failure {
    let done = if deleted.is_empty() {
        "nothing was deleted".to_string()
    } else {
        format!("deleted {}", deleted.join(", "))
    };
    let left: Vec<String> = left.iter().map(|(b, _)| one_line(&b.branch.name)).collect();
    Failure::new(what).impact(format!(
        "prune stopped: {done}; not deleted: {}. Children go before their parents, so every branch left is \
         whole and keeps its name",
        left.join(", ")
    ))
}

/// Outputs (`result`, `deleted`) and the job summary of the prune mode.
pub fn report(ctx: &RunContext, outcome: &PruneOutcome) -> Result<()> {
    let result = result_line(outcome);
    ctx.actions.info(&result);
    report::write_outputs(
        &ctx.actions,
        &[("result", result), ("deleted", outcome.deleted.join(","))],
    )
    .map_err(output_failure)?;
    ctx.actions
        .append_summary(&summary(outcome))
        .map_err(output_failure)
}

/// backup-run's prune after a successful backup: deletes (never a dry run), writes `deleted` and a summary
/// section. A failure says clearly that the backup itself is complete.
pub async fn after_backup(
    ctx: &RunContext,
    neon: &NeonClient,
    backup_name: &str,
    cancel: &CancelSignal,
) -> Result<()> {
    if *cancel.borrow() {
        return Err(Failure::new(format!(
            "the run was cancelled (SIGTERM or SIGINT) after backup {backup_name}, before its prune"
        ))
        .impact(format!(
            "the backup {backup_name} is complete and verified; nothing was pruned"
        ))
        .hint("nothing needs cleaning up; the next run prunes as usual")
        .into());
    }
    let outcome = match run(ctx, neon, false, cancel).await {
        Ok(outcome) => outcome,
        Err(Error::Failed(f)) => {
            return Err(Failure {
                what: format!(
                    "backup {backup_name} is complete, but the prune after it failed: {}",
                    f.what
                ),
                impact: format!(
                    "the backup {backup_name} is complete and verified; only old branches may remain: {}",
                    f.impact
                ),
                hint: f.hint,
                cause: f.cause,
                title: f.title,
            }
            .into())
        }
        Err(other) => return Err(other),
    };
    ctx.actions.info(&result_line(&outcome));
    report::write_outputs(&ctx.actions, &[("deleted", outcome.deleted.join(","))])
        .map_err(output_failure)?;
    ctx.actions
        .append_summary(&summary(&outcome))
        .map_err(output_failure)
}

fn result_line(outcome: &PruneOutcome) -> String {
    let names = if outcome.deleted.is_empty() {
        String::new()
    } else {
        format!(": {}", outcome.deleted.join(", "))
    };
    let n = outcome.deleted.len();
    let plural = if n == 1 { "" } else { "es" };
    if outcome.dry_run {
        format!(
            "prune dry run: would delete {n} branch{plural}{names}; keeps {}",
            outcome.plan.keep.len()
        )
    } else {
        format!(
            "prune deleted {n} branch{plural}{names}; kept {}",
            outcome.plan.keep.len()
        )
    }
}

fn summary(outcome: &PruneOutcome) -> String {
    let action = if outcome.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let mut rows: Vec<Vec<String>> = outcome
        .plan
        .delete
        .iter()
        .map(|(b, r)| vec![b.branch.name.clone(), action.to_string(), r.to_string()])
        .collect();
    rows.extend(
        outcome
            .plan
            .keep
            .iter()
            .map(|(b, r)| vec![b.branch.name.clone(), "kept".to_string(), r.to_string()]),
    );
    format!(
        "\n## supaneon-sync prune{}\n\n{}\n\n{}",
        if outcome.dry_run { " (dry run)" } else { "" },
        result_line(outcome),
        report::markdown_table(&["branch", "action", "reason"], &rows)
    )
}

fn output_failure(e: std::io::Error) -> Error {
    Failure::new("cannot write the step outputs or summary")
        .impact("the prune itself finished")
        .cause(e)
        .into()
}
