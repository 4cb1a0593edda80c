//! The prune planner: a pure function of the branch list, whose branches are ours (the [`Scope`]) and the
//! policy, so every rule is unit-tested without Neon.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Datelike, Duration, IsoWeek, NaiveDate, Utc};

use crate::branches::{self, BranchKind};
use crate::config::Retention;
use crate::neon::BranchInfo;
use crate::ownership::{NotOurs, Scope};

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
    /// Not a branch of ours (by name, annotations, source or timestamp).
    NotOurs(NotOurs),
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
    /// The mirror the snapshot strategy syncs: its children are the backups.
    Mirror,
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
    /// A kept (failed) restore test with a newer restore test of ours: at most one is kept.
    RestoreTestSuperseded {
        by: String,
    },
    /// A mirror replaced by a full rebuild; it goes once no backup is its child.
    MirrorRetired,
}

impl Reason {
    pub fn deletes(&self) -> bool {
        matches!(
            self,
            Reason::BeyondRetention
                | Reason::IncompleteStale
                | Reason::RestoreTestExpired { .. }
                | Reason::RestoreTestStale
                | Reason::RestoreTestSuperseded { .. }
                | Reason::MirrorRetired
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::DefaultBranch => f.write_str("the project's default branch"),
            Reason::Protected => f.write_str("a protected branch"),
            Reason::NotOurs(why) => write!(f, "not ours: {why}"),
            Reason::NewestBackup => f.write_str("the newest complete backup"),
            Reason::KeepLast { rank } => write!(f, "keep-last: backup {rank} from the newest"),
            Reason::Daily { day } => write!(f, "keep-daily: the newest backup of {day}"),
            Reason::Weekly { week } => write!(
                f,
                "keep-weekly: the newest backup of week {}-W{:02}",
                week.year(),
                week.week()
            ),
            Reason::Mirror => f.write_str("the mirror the backups are snapshots of"),
            Reason::MirrorRetired => {
                f.write_str("a retired mirror (replaced by a full rebuild) no backup depends on")
            }
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
            Reason::RestoreTestSuperseded { by } => {
                write!(
                    f,
                    "a newer restore test ({by}) is kept instead: at most one is kept"
                )
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

/// Plans the prune of `branches` under `policy`: only branches that are ours in `scope` (judged at
/// `scope.now`) may be deleted.
pub fn plan(branches: &[BranchInfo], scope: &Scope, policy: &Policy) -> Plan {
    let now = scope.now;
    let mut verdicts: BTreeMap<String, Reason> = BTreeMap::new();
    let by_id: BTreeMap<&str, &BranchInfo> =
        branches.iter().map(|b| (b.branch.id.as_str(), b)).collect();

    // Complete backups, newest first, for the tiers.
    let mut backups: Vec<(DateTime<Utc>, &BranchInfo)> = branches
        .iter()
        .filter_map(|b| match scope.kind(b) {
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
            match scope.kind(b) {
                BranchKind::Foreign => Reason::NotOurs(scope.not_ours(b).unwrap_or(NotOurs::Name)),
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
                BranchKind::Mirror => Reason::Mirror,
                BranchKind::RetiredMirror { .. } => Reason::MirrorRetired,
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

    // At most one kept (failed) restore test: the newest; older kept ones go.
    let mut kept_tests: Vec<(DateTime<Utc>, &BranchInfo)> = branches
        .iter()
        .filter(|b| {
            matches!(
                verdicts.get(&b.branch.id),
                Some(Reason::RestoreTestKept {
                    expires_at: Some(_)
                })
            )
        })
        .filter_map(|b| match scope.kind(b) {
            BranchKind::RestoreTest { at } => Some((at, b)),
            _ => None,
        })
        .collect();
    kept_tests.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.branch.name.cmp(&a.1.branch.name)));
    if let Some(((_, newest), older)) = kept_tests.split_first() {
        for (_, b) in older {
            verdicts.insert(
                b.branch.id.clone(),
                Reason::RestoreTestSuperseded {
                    by: newest.branch.name.clone(),
                },
            );
        }
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
        | BranchKind::RestoreTest { at }
        | BranchKind::RetiredMirror { at } => at,
        BranchKind::Mirror | BranchKind::Foreign => b.branch.created_at,
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

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
