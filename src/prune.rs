//! prune: which branches the retention policy no longer keeps, and deleting them.
//!
//! The planner ([`plan`]) is a pure function of the branch list, the clock and the policy, so every rule is
//! unit-tested without Neon. Execution deletes children before their parents, reports each deletion, and
//! stops at the first API error: every branch left still carries a truthful name, so the next prune plans
//! again from what exists and finishes the job.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Datelike, Duration, IsoWeek, NaiveDate, Utc};

use crate::branches::{self, BranchKind};
use crate::config::Retention;
use crate::error::{Error, Failure, Result};
use crate::neon::{BranchInfo, Deleted, NeonClient};
use crate::report;
use crate::run::RunContext;

/// The retention policy, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The newest N complete backups.
    pub keep_last: u32,
    /// Plus the newest backup of each UTC day, for the last D days (today counts as the first).
    pub keep_daily: u32,
    /// Plus the newest backup of each ISO week, for the last W weeks (this week counts as the first).
    pub keep_weekly: u32,
    /// Incomplete backups and restore tests without an expiry younger than this are left alone: they may
    /// belong to a run that is still going.
    pub grace: Duration,
}

impl Policy {
    pub fn from_retention(r: &Retention) -> Self {
        Policy {
            keep_last: r.keep_last,
            keep_daily: r.keep_daily,
            keep_weekly: r.keep_weekly,
            grace: Duration::hours(i64::from(r.incomplete_grace_hours)),
        }
    }
}

/// Why a branch is kept or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    // ---- kept
    DefaultBranch,
    Protected,
    /// A name supaneon-sync does not make.
    NotOurs,
    NewestBackup,
    /// Among the newest `keep_last` complete backups (1 = newest).
    KeepLast {
        rank: usize,
    },
    Daily {
        day: NaiveDate,
    },
    Weekly {
        week: IsoWeek,
    },
    /// An incomplete backup younger than the grace period: a backup may still be running.
    IncompleteWithinGrace,
    /// A restore test that is running, or failed and is kept for inspection until it expires.
    RestoreTestKept {
        expires_at: Option<DateTime<Utc>>,
    },
    /// Branches depend on it (children cannot outlive their parent on Neon).
    HasChildren {
        children: Vec<String>,
    },
    // ---- deleted
    BeyondRetention,
    IncompleteStale,
    RestoreTestExpired {
        expires_at: DateTime<Utc>,
    },
    RestoreTestStale,
}

impl Reason {
    pub fn deletes(&self) -> bool {
        matches!(
            self,
            Reason::BeyondRetention
                | Reason::IncompleteStale
                | Reason::RestoreTestExpired { .. }
                | Reason::RestoreTestStale
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::DefaultBranch => f.write_str("the project's default branch"),
            Reason::Protected => f.write_str("a protected branch"),
            Reason::NotOurs => f.write_str("not a name supaneon-sync makes"),
            Reason::NewestBackup => f.write_str("the newest complete backup"),
            Reason::KeepLast { rank } => write!(f, "keep-last: backup {rank} from the newest"),
            Reason::Daily { day } => write!(f, "keep-daily: the newest backup of {day}"),
            Reason::Weekly { week } => write!(
                f,
                "keep-weekly: the newest backup of week {}-W{:02}",
                week.year(),
                week.week()
            ),
            Reason::IncompleteWithinGrace => {
                f.write_str("incomplete but within the grace period (a backup may be running)")
            }
            Reason::RestoreTestKept {
                expires_at: Some(at),
            } => write!(
                f,
                "restore test running or kept for inspection until {}",
                at.format("%Y-%m-%d %H:%M UTC")
            ),
            Reason::RestoreTestKept { expires_at: None } => {
                f.write_str("restore test within the grace period")
            }
            Reason::HasChildren { children } => {
                write!(f, "has child branches that stay: {}", children.join(", "))
            }
            Reason::BeyondRetention => f.write_str("beyond the retention policy"),
            Reason::IncompleteStale => f.write_str("incomplete and older than the grace period"),
            Reason::RestoreTestExpired { expires_at } => write!(
                f,
                "restore test expired at {}",
                expires_at.format("%Y-%m-%d %H:%M UTC")
            ),
            Reason::RestoreTestStale => {
                f.write_str("restore test without expiry, older than the grace period")
            }
        }
    }
}

/// What prune will do. `delete` is in execution order: children before their parents, then oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub delete: Vec<(BranchInfo, Reason)>,
    pub keep: Vec<(BranchInfo, Reason)>,
}

impl Plan {
    pub fn delete_names(&self) -> Vec<&str> {
        self.delete
            .iter()
            .map(|(b, _)| b.branch.name.as_str())
            .collect()
    }
}

/// Plans the prune of `branches` at `now` under `policy`.
pub fn plan(branches: &[BranchInfo], now: DateTime<Utc>, policy: &Policy) -> Plan {
    let mut verdicts: BTreeMap<String, Reason> = BTreeMap::new();
    let by_id: BTreeMap<&str, &BranchInfo> =
        branches.iter().map(|b| (b.branch.id.as_str(), b)).collect();

    // Complete backups, newest first, for the tiers.
    let mut backups: Vec<(DateTime<Utc>, &BranchInfo)> = branches
        .iter()
        .filter_map(|b| match branches::classify(&b.branch.name) {
            BranchKind::Backup { at } => Some((at, b)),
            _ => None,
        })
        .collect();
    backups.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.branch.name.cmp(&a.1.branch.name)));
    let tiers = tier_reasons(&backups, now, policy);

    for b in branches {
        let reason = if b.branch.default {
            Reason::DefaultBranch
        } else if b.branch.protected {
            Reason::Protected
        } else {
            match branches::classify(&b.branch.name) {
                BranchKind::Foreign => Reason::NotOurs,
                BranchKind::Backup { .. } => tiers
                    .get(b.branch.id.as_str())
                    .cloned()
                    .unwrap_or(Reason::BeyondRetention),
                BranchKind::IncompleteBackup { at } => {
                    if now - at > policy.grace {
                        Reason::IncompleteStale
                    } else {
                        Reason::IncompleteWithinGrace
                    }
                }
                BranchKind::RestoreTest { at } => match b.branch.expires_at {
                    Some(expires_at) if expires_at <= now => {
                        Reason::RestoreTestExpired { expires_at }
                    }
                    Some(expires_at) => Reason::RestoreTestKept {
                        expires_at: Some(expires_at),
                    },
                    None if now - at > policy.grace => Reason::RestoreTestStale,
                    None => Reason::RestoreTestKept { expires_at: None },
                },
            }
        };
        verdicts.insert(b.branch.id.clone(), reason);
    }

    // A branch may go only after all its children: keep any whose children do not all go, until stable
    // (keeping a child can keep its parent in turn).
    let children = children_by_parent(branches);
    loop {
        let mut changed = false;
        for (id, kids) in &children {
            let deletes = verdicts.get(*id).is_some_and(Reason::deletes);
            if !deletes {
                continue;
            }
            let staying: Vec<String> = kids
                .iter()
                .filter(|k| !verdicts.get(**k).is_some_and(Reason::deletes))
                .map(|k| by_id[*k].branch.name.clone())
                .collect();
            if !staying.is_empty() {
                verdicts.insert(id.to_string(), Reason::HasChildren { children: staying });
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    let mut plan = Plan::default();
    let mut doomed: Vec<&BranchInfo> = Vec::new();
    for b in branches {
        let reason = &verdicts[&b.branch.id];
        if reason.deletes() {
            doomed.push(b);
        } else {
            plan.keep.push((b.clone(), reason.clone()));
        }
    }
    plan.keep
        .sort_by_key(|(b, _)| std::cmp::Reverse(sort_key(b)));
    plan.delete = children_first(doomed, &children)
        .into_iter()
        .map(|b| (b.clone(), verdicts[&b.branch.id].clone()))
        .collect();
    plan
}

/// Oldest first: the timestamp in our names, else the creation time; the name breaks ties.
fn sort_key(b: &BranchInfo) -> (DateTime<Utc>, String) {
    let at = match branches::classify(&b.branch.name) {
        BranchKind::Backup { at }
        | BranchKind::IncompleteBackup { at }
        | BranchKind::RestoreTest { at } => at,
        BranchKind::Foreign => b.branch.created_at,
    };
    (at, b.branch.name.clone())
}

/// Keep reasons of the complete backups that the tiers keep, by branch id. `backups` is newest first.
fn tier_reasons<'a>(
    backups: &[(DateTime<Utc>, &'a BranchInfo)],
    now: DateTime<Utc>,
    policy: &Policy,
) -> BTreeMap<&'a str, Reason> {
    let mut kept = BTreeMap::new();
    let today = now.date_naive();
    let this_monday = monday_of(today);
    let mut days_seen = BTreeSet::new();
    let mut weeks_seen = BTreeSet::new();
    for (rank, (at, b)) in backups.iter().enumerate() {
        let id = b.branch.id.as_str();
        let day = at.date_naive();
        let week = day.iso_week();
        // The newest of each day/week claims it whether or not an earlier rule already keeps it.
        let first_of_day = days_seen.insert(day);
        let first_of_week = weeks_seen.insert((week.year(), week.week()));
        let reason = if rank == 0 {
            Some(Reason::NewestBackup)
        } else if rank < policy.keep_last as usize {
            Some(Reason::KeepLast { rank: rank + 1 })
        } else if first_of_day && (today - day).num_days() < i64::from(policy.keep_daily) {
            Some(Reason::Daily { day })
        } else if first_of_week
            && (this_monday - monday_of(day)).num_weeks() < i64::from(policy.keep_weekly)
        {
            Some(Reason::Weekly { week })
        } else {
            None
        };
        if let Some(reason) = reason {
            kept.insert(id, reason);
        }
    }
    kept
}

fn monday_of(day: NaiveDate) -> NaiveDate {
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// Child ids of every parent that has children in the list.
fn children_by_parent(branches: &[BranchInfo]) -> BTreeMap<&str, Vec<&str>> {
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for b in branches {
        if let Some(parent) = b.branch.parent_id.as_deref() {
            if branches.iter().any(|p| p.branch.id == parent) {
                children
                    .entry(parent)
                    .or_default()
                    .push(b.branch.id.as_str());
            }
        }
    }
    children
}

/// Orders branches to delete so each comes after its children; within a round, oldest first.
fn children_first<'a>(
    mut remaining: Vec<&'a BranchInfo>,
    children: &BTreeMap<&str, Vec<&str>>,
) -> Vec<&'a BranchInfo> {
    let mut ordered = Vec::new();
    while !remaining.is_empty() {
        let pending: BTreeSet<&str> = remaining.iter().map(|b| b.branch.id.as_str()).collect();
        let (mut ready, blocked): (Vec<&BranchInfo>, Vec<&BranchInfo>) =
            remaining.into_iter().partition(|b| {
                children
                    .get(b.branch.id.as_str())
                    .is_none_or(|kids| kids.iter().all(|k| !pending.contains(k)))
            });
        if ready.is_empty() {
            // Impossible for a tree; never loop forever on a malformed list.
            ready = blocked;
            ready.sort_by_key(|b| sort_key(b));
            ordered.extend(ready);
            break;
        }
        ready.sort_by_key(|b| sort_key(b));
        ordered.extend(ready);
        remaining = blocked;
    }
    ordered
}

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
pub async fn run(ctx: &RunContext, neon: &NeonClient, dry_run: bool) -> Result<PruneOutcome> {
    let a = &ctx.actions;
    let branches = neon
        .list_branches()
        .await
        .map_err(|e| e.into_failure("nothing was deleted"))?;
    let plan = plan(
        &branches,
        Utc::now(),
        &Policy::from_retention(&ctx.config.retention),
    );
    {
        let _group = a.group(if dry_run {
            "prune plan (dry run: nothing is deleted)"
        } else {
            "prune plan"
        });
        for (b, reason) in &plan.delete {
            a.info(&format!("  delete {}: {reason}", b.branch.name));
        }
        for (b, reason) in &plan.keep {
            a.info(&format!("  keep   {}: {reason}", b.branch.name));
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
        match neon.delete_branch(&b.branch.id).await {
            Ok(Deleted::Removed) => a.info(&format!("deleted {} ({reason})", b.branch.name)),
            Ok(Deleted::AlreadyGone) => a.info(&format!("{} was already gone", b.branch.name)),
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
pub async fn after_backup(ctx: &RunContext, neon: &NeonClient, backup_name: &str) -> Result<()> {
    let outcome = match run(ctx, neon, false).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neon::Branch;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        // A Wednesday.
        Utc.with_ymd_and_hms(2026, 3, 18, 12, 0, 0).unwrap()
    }

    fn policy(keep_last: u32) -> Policy {
        Policy {
            keep_last,
            keep_daily: 0,
            keep_weekly: 0,
            grace: Duration::hours(24),
        }
    }

    fn branch(name: &str, parent: Option<&str>) -> BranchInfo {
        BranchInfo {
            branch: Branch {
                id: format!("br-{name}"),
                name: name.to_string(),
                parent_id: parent.map(|p| format!("br-{p}")),
                default: false,
                protected: false,
                current_state: "ready".into(),
                pending_state: None,
                created_at: now(),
                logical_size: Some(1000),
                expires_at: None,
            },
            annotations: Default::default(),
        }
    }

    fn main_branch() -> BranchInfo {
        let mut b = branch("main", None);
        b.branch.default = true;
        b
    }

    fn backup(ago: Duration) -> BranchInfo {
        branch(&branches::backup_name(now() - ago), Some("main"))
    }

    fn deleted(plan: &Plan) -> Vec<String> {
        plan.delete_names().iter().map(|s| s.to_string()).collect()
    }

    fn reason_of<'a>(plan: &'a Plan, name: &str) -> &'a Reason {
        plan.keep
            .iter()
            .chain(&plan.delete)
            .find(|(b, _)| b.branch.name == name)
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("{name} not in the plan"))
    }

    #[test]
    fn twelve_backups_keep_seven_and_a_stale_incomplete_goes() {
        let mut all = vec![
            main_branch(),
            branch("dev", Some("main")),
            branch("backup-manual", Some("main")),
        ];
        let backups: Vec<BranchInfo> = (0..12)
            .map(|d| backup(Duration::days(d) + Duration::minutes(5)))
            .collect();
        all.extend(backups.iter().cloned());
        let fresh = branch(
            &branches::incomplete_backup_name(now() - Duration::hours(1)),
            Some("main"),
        );
        let stale = branch(
            &branches::incomplete_backup_name(now() - Duration::days(3)),
            Some("main"),
        );
        all.push(fresh.clone());
        all.push(stale.clone());

        let plan = plan(&all, now(), &policy(7));
        // Oldest first, so an interrupted run removes the least valuable first.
        let mut expected: Vec<String> = backups[7..]
            .iter()
            .rev()
            .map(|b| b.branch.name.clone())
            .collect();
        // The stale incomplete one (3 days old) is younger than every doomed complete one.
        expected.push(stale.branch.name.clone());
        assert_eq!(deleted(&plan), expected);
        assert_eq!(plan.keep.len(), all.len() - 6);
        assert_eq!(
            reason_of(&plan, &backups[0].branch.name),
            &Reason::NewestBackup
        );
        assert_eq!(
            reason_of(&plan, &backups[6].branch.name),
            &Reason::KeepLast { rank: 7 }
        );
        assert_eq!(
            reason_of(&plan, &fresh.branch.name),
            &Reason::IncompleteWithinGrace
        );
        assert_eq!(reason_of(&plan, "main"), &Reason::DefaultBranch);
        assert_eq!(reason_of(&plan, "dev"), &Reason::NotOurs);
        assert_eq!(reason_of(&plan, "backup-manual"), &Reason::NotOurs);
        assert!(plan.delete.iter().all(|(_, r)| r.deletes()));
        assert!(plan.keep.iter().all(|(_, r)| !r.deletes()));
    }

    #[test]
    fn protected_default_and_near_miss_names_are_never_deleted() {
        let mut protected = backup(Duration::days(30));
        protected.branch.protected = true;
        let mut default = backup(Duration::days(31));
        default.branch.default = true;
        let near_misses = [
            "backup-20200101T000000Z-old",
            "backup-20200101T000000",
            "backup-20201301T000000Z",
            "Backup-20200101T000000Z",
            "backup-20200101T000000Z-incomplete-x",
            "restore-test-20200101T000000Z-incomplete",
        ];
        let mut all = vec![
            protected.clone(),
            default.clone(),
            backup(Duration::days(1)),
        ];
        all.extend(near_misses.iter().map(|n| branch(n, None)));
        let plan = plan(&all, now(), &policy(1));
        assert!(plan.delete.is_empty(), "{:?}", deleted(&plan));
        assert_eq!(reason_of(&plan, &protected.branch.name), &Reason::Protected);
        assert_eq!(
            reason_of(&plan, &default.branch.name),
            &Reason::DefaultBranch
        );
        for n in near_misses {
            assert_eq!(reason_of(&plan, n), &Reason::NotOurs, "{n}");
        }
    }

    #[test]
    fn the_newest_complete_backup_is_kept_whatever_the_policy() {
        let newest = backup(Duration::days(40));
        let older = backup(Duration::days(41));
        let plan = plan(&[older.clone(), newest.clone()], now(), &policy(0));
        assert_eq!(deleted(&plan), vec![older.branch.name.clone()]);
        assert_eq!(reason_of(&plan, &newest.branch.name), &Reason::NewestBackup);
    }

    #[test]
    fn timestamps_are_parsed_not_compared_by_list_order() {
        // Listed in an arbitrary order; the newest by timestamp wins.
        let a = backup(Duration::seconds(1));
        let b = backup(Duration::days(400));
        let c = backup(Duration::hours(30));
        let plan = plan(&[b.clone(), a.clone(), c.clone()], now(), &policy(2));
        assert_eq!(deleted(&plan), vec![b.branch.name.clone()]);
        assert_eq!(reason_of(&plan, &a.branch.name), &Reason::NewestBackup);
    }

    #[test]
    fn daily_tier_keeps_the_newest_of_each_recent_day_on_top_of_keep_last() {
        // Three backups a day (00:30, 06:30, 11:30 UTC) for ten days, today included.
        let today = now().date_naive();
        let mut all = Vec::new();
        for d in 0..10 {
            for h in [0, 6, 11] {
                let at = (today - Duration::days(d))
                    .and_hms_opt(h, 30, 0)
                    .unwrap()
                    .and_utc();
                all.push(branch(&branches::backup_name(at), None));
            }
        }
        let p = Policy {
            keep_daily: 4,
            ..policy(2)
        };
        let plan = plan(&all, now(), &p);
        let kept: Vec<&str> = plan
            .keep
            .iter()
            .map(|(b, _)| b.branch.name.as_str())
            .collect();
        let name = |d: i64, h: u32| {
            branches::backup_name(
                (today - Duration::days(d))
                    .and_hms_opt(h, 30, 0)
                    .unwrap()
                    .and_utc(),
            )
        };
        // Newest, keep-last 2, then the newest of days -1, -2, -3 (today's newest is already kept).
        assert_eq!(
            kept,
            vec![
                name(0, 11),
                name(0, 6),
                name(1, 11),
                name(2, 11),
                name(3, 11)
            ]
        );
        assert_eq!(
            reason_of(&plan, &name(2, 11)),
            &Reason::Daily {
                day: today - Duration::days(2)
            }
        );
        assert_eq!(plan.delete.len(), 30 - 5);
    }

    #[test]
    fn weekly_tier_keeps_the_newest_of_each_recent_iso_week() {
        // One backup a day at 01:00 for 40 days.
        let today = now().date_naive();
        let all: Vec<BranchInfo> = (0..40)
            .map(|d| {
                let at = (today - Duration::days(d))
                    .and_hms_opt(1, 0, 0)
                    .unwrap()
                    .and_utc();
                branch(&branches::backup_name(at), None)
            })
            .collect();
        let p = Policy {
            keep_daily: 2,
            keep_weekly: 3,
            ..policy(1)
        };
        let plan = plan(&all, now(), &p);
        let mut kept: Vec<(String, Reason)> = plan
            .keep
            .iter()
            .map(|(b, r)| (b.branch.name.clone(), r.clone()))
            .collect();
        kept.reverse();
        let day = |d: i64| today - Duration::days(d);
        let name = |d: i64| branches::backup_name(day(d).and_hms_opt(1, 0, 0).unwrap().and_utc());
        // 2026-03-18 is a Wednesday: this week's newest is today (newest backup); last week's newest is
        // Sunday 03-15 (3 days ago), the week before's is Sunday 03-08 (10 days ago).
        assert_eq!(
            kept,
            vec![
                (
                    name(10),
                    Reason::Weekly {
                        week: day(10).iso_week()
                    }
                ),
                (
                    name(3),
                    Reason::Weekly {
                        week: day(3).iso_week()
                    }
                ),
                (name(1), Reason::Daily { day: day(1) }),
                (name(0), Reason::NewestBackup),
            ]
        );
    }

    #[test]
    fn restore_tests_go_when_expired_or_stale_and_stay_while_running_or_kept() {
        let parent = backup(Duration::days(1));
        let rt = |ago: Duration, expires: Option<Duration>| {
            let mut b = branch(
                &branches::restore_test_name(now() - ago),
                Some(&parent.branch.name),
            );
            b.branch.expires_at = expires.map(|e| now() + e);
            b
        };
        let expired = rt(Duration::hours(2), Some(Duration::minutes(-1)));
        let kept_failed = rt(Duration::hours(3), Some(Duration::days(2)));
        let stale = rt(Duration::hours(25), None);
        let running = rt(Duration::minutes(10), None);
        let all = vec![
            parent.clone(),
            expired.clone(),
            kept_failed.clone(),
            stale.clone(),
            running.clone(),
        ];
        let plan = plan(&all, now(), &policy(7));
        assert_eq!(
            deleted(&plan),
            vec![stale.branch.name.clone(), expired.branch.name.clone()]
        );
        assert!(matches!(
            reason_of(&plan, &expired.branch.name),
            Reason::RestoreTestExpired { .. }
        ));
        assert_eq!(
            reason_of(&plan, &stale.branch.name),
            &Reason::RestoreTestStale
        );
        assert_eq!(
            reason_of(&plan, &kept_failed.branch.name),
            &Reason::RestoreTestKept {
                expires_at: kept_failed.branch.expires_at
            }
        );
        assert_eq!(
            reason_of(&plan, &running.branch.name),
            &Reason::RestoreTestKept { expires_at: None }
        );
    }

    #[test]
    fn children_decide_whether_an_old_backup_may_go() {
        let newest = backup(Duration::hours(1));
        let old_with_done_test = backup(Duration::days(10));
        let old_with_foreign_child = backup(Duration::days(11));
        let old_with_kept_test = backup(Duration::days(12));
        let old_with_deep_foreign = backup(Duration::days(13));
        let done_test = {
            let mut b = branch(
                &branches::restore_test_name(now() - Duration::days(9)),
                Some(&old_with_done_test.branch.name),
            );
            b.branch.expires_at = Some(now() - Duration::days(8));
            b
        };
        let foreign_child = branch("analytics", Some(&old_with_foreign_child.branch.name));
        let kept_test = {
            let mut b = branch(
                &branches::restore_test_name(now() - Duration::hours(2)),
                Some(&old_with_kept_test.branch.name),
            );
            b.branch.expires_at = Some(now() + Duration::days(1));
            b
        };
        // A stale restore test that someone branched from: the test and its backup both stay.
        let stale_test = branch(
            &branches::restore_test_name(now() - Duration::days(12)),
            Some(&old_with_deep_foreign.branch.name),
        );
        let grandchild = branch("debug-copy", Some(&stale_test.branch.name));
        let all = vec![
            newest.clone(),
            old_with_done_test.clone(),
            old_with_foreign_child.clone(),
            old_with_kept_test.clone(),
            old_with_deep_foreign.clone(),
            done_test.clone(),
            foreign_child,
            kept_test.clone(),
            stale_test.clone(),
            grandchild,
        ];
        let plan = plan(&all, now(), &policy(1));
        // The test before its (older) backup.
        assert_eq!(
            deleted(&plan),
            vec![
                done_test.branch.name.clone(),
                old_with_done_test.branch.name.clone()
            ]
        );
        assert_eq!(
            reason_of(&plan, &old_with_foreign_child.branch.name),
            &Reason::HasChildren {
                children: vec!["analytics".into()]
            }
        );
        assert_eq!(
            reason_of(&plan, &old_with_kept_test.branch.name),
            &Reason::HasChildren {
                children: vec![kept_test.branch.name.clone()]
            }
        );
        assert_eq!(
            reason_of(&plan, &stale_test.branch.name),
            &Reason::HasChildren {
                children: vec!["debug-copy".into()]
            }
        );
        assert_eq!(
            reason_of(&plan, &old_with_deep_foreign.branch.name),
            &Reason::HasChildren {
                children: vec![stale_test.branch.name.clone()]
            }
        );
    }

    #[test]
    fn deletion_order_puts_every_child_before_its_parent() {
        // A restore test older than its parent's name suggests (clock skew) still goes first.
        let newest = backup(Duration::hours(1));
        let old = backup(Duration::days(5));
        let older = backup(Duration::days(6));
        let mut test = branch(
            &branches::restore_test_name(now() - Duration::days(7)),
            Some(&old.branch.name),
        );
        test.branch.expires_at = Some(now() - Duration::days(6));
        let plan = plan(
            &[newest, old.clone(), older.clone(), test.clone()],
            now(),
            &policy(1),
        );
        assert_eq!(
            deleted(&plan),
            vec![
                test.branch.name.clone(),
                older.branch.name.clone(),
                old.branch.name.clone()
            ]
        );
    }

    #[test]
    fn the_grace_period_comes_from_the_configuration() {
        let r = Retention {
            keep_last: 3,
            keep_daily: 1,
            keep_weekly: 2,
            incomplete_grace_hours: 6,
            prune_after_backup: true,
        };
        let p = Policy::from_retention(&r);
        assert_eq!(p.grace, Duration::hours(6));
        let young = branch(
            &branches::incomplete_backup_name(now() - Duration::hours(5)),
            None,
        );
        let old = branch(
            &branches::incomplete_backup_name(now() - Duration::hours(7)),
            None,
        );
        let plan = plan(&[young.clone(), old.clone()], now(), &p);
        assert_eq!(deleted(&plan), vec![old.branch.name.clone()]);
    }

    #[test]
    fn reasons_read_as_sentences() {
        assert_eq!(
            Reason::KeepLast { rank: 3 }.to_string(),
            "keep-last: backup 3 from the newest"
        );
        assert_eq!(
            Reason::HasChildren {
                children: vec!["a".into(), "b".into()]
            }
            .to_string(),
            "has child branches that stay: a, b"
        );
        let week = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap().iso_week();
        assert_eq!(
            Reason::Weekly { week }.to_string(),
            "keep-weekly: the newest backup of week 2026-W01"
        );
    }
}
