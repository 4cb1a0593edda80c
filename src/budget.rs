//! The project's branch budget: what holds its slots, and making room before a branch is created.
//!
//! Neon counts every branch against the plan's limit (`owner.branches_limit` in the project; a create
//! beyond it answers `422 BRANCHES_LIMIT_EXCEEDED`). Before creating, a run counts the slots; when the
//! project is full it frees slots by the retention policy (the same plan prune makes: stale incompletes,
//! expired or superseded restore tests, backups beyond the policy; never the newest backup, never a
//! branch that is not ours), and when nothing may be freed it fails naming every branch that holds a slot.

use std::fmt;

use crate::actions::one_line;
use crate::branches::BranchKind;
use crate::context::RunContext;
use crate::error::{Error, Failure, Result};
use crate::neon::{
    BranchInfo, CreateBranch, CreatedBranch, Deleted, NeonClient, NeonError, Project,
};
use crate::ownership::Scope;
use crate::prune::{self, Plan, Policy, Reason};

/// What holds a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    Default,
    Backup,
    Incomplete,
    RestoreTestKept,
    RestoreTestExpired,
    /// The mirror, and retired mirrors that backups still depend on.
    Mirror,
    /// Not ours (other names, protected branches, name-alikes, other sources).
    Foreign,
}

/// The slots of a project at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// The plan's limit, when Neon reports it.
    pub limit: Option<usize>,
    pub slots: Vec<(String, Slot)>,
    /// How many slots the retention policy may free now.
    pub freeable: usize,
}

impl Budget {
    pub fn count(
        branches: &[BranchInfo],
        scope: &Scope,
        policy: &Policy,
        limit: Option<usize>,
    ) -> Budget {
        let slots = branches
            .iter()
            .map(|b| (b.branch.name.clone(), slot_of(b, scope)))
            .collect();
        let freeable = prune::plan(branches, scope, policy).delete.len();
        Budget {
            limit,
            slots,
            freeable,
        }
    }

    pub fn used(&self) -> usize {
        self.slots.len()
    }

    fn of(&self, slot: Slot) -> usize {
        self.slots.iter().filter(|(_, s)| *s == slot).count()
    }

    /// Slots left after the retention policy freed what it may (`None` without a known limit).
    pub fn headroom(&self) -> Option<isize> {
        self.limit
            .map(|l| l as isize - self.used() as isize + self.freeable as isize)
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.limit {
            Some(l) => write!(f, "{} of {l} branches in use", self.used())?,
            None => write!(
                f,
                "{} branches in use (the plan's limit is not reported)",
                self.used()
            )?,
        }
        write!(
            f,
            " (default {}, mirror {}, backups {}, incomplete {}, restore tests kept {}, expired {}, not ours {}); the retention policy can free {}",
            self.of(Slot::Default),
            self.of(Slot::Mirror),
            self.of(Slot::Backup),
            self.of(Slot::Incomplete),
            self.of(Slot::RestoreTestKept),
            self.of(Slot::RestoreTestExpired),
            self.of(Slot::Foreign),
            self.freeable
        )
    }
}

fn slot_of(b: &BranchInfo, scope: &Scope) -> Slot {
    if b.branch.default {
        return Slot::Default;
    }
    if b.branch.protected {
        return Slot::Foreign;
    }
    match scope.kind(b) {
        BranchKind::Backup { .. } => Slot::Backup,
        BranchKind::IncompleteBackup { .. } => Slot::Incomplete,
        BranchKind::RestoreTest { .. } => match b.branch.expires_at {
            Some(e) if e <= scope.now => Slot::RestoreTestExpired,
            _ => Slot::RestoreTestKept,
        },
        BranchKind::Mirror | BranchKind::RetiredMirror { .. } => Slot::Mirror,
        BranchKind::Foreign => Slot::Foreign,
    }
}

/// Which of the plan's deletions free slots first: incompletes, then restore tests, then backups. A stable
/// sort keeps children before their parents (a backup's deletable children are restore tests).
fn by_priority(plan: &Plan, spare: &[&str]) -> Vec<(BranchInfo, Reason)> {
    let rank = |r: &Reason| match r {
        Reason::IncompleteStale | Reason::MirrorRetired => 0,
        Reason::RestoreTestExpired { .. }
        | Reason::RestoreTestStale
        | Reason::RestoreTestSuperseded { .. } => 1,
        _ => 2,
    };
    let mut order: Vec<(BranchInfo, Reason)> = plan
        .delete
        .iter()
        .filter(|(b, _)| !spare.contains(&b.branch.id.as_str()))
        .cloned()
        .collect();
    order.sort_by_key(|(_, r)| rank(r));
    order
}

/// Who frees slots, and on whose behalf: `spare` are ids that must stay (the backup a restore test is about
/// to branch from); `impact` says what a failure means for the data.
struct Room<'a> {
    ctx: &'a RunContext,
    neon: &'a NeonClient,
    spare: &'a [&'a str],
    impact: &'a str,
}

/// Frees `needed` slots by the retention policy, or fails naming every branch that holds one.
async fn free_slots(
    room: &Room<'_>,
    branches: &[BranchInfo],
    scope: &Scope,
    limit: Option<usize>,
    needed: usize,
) -> Result<Vec<String>> {
    let Room {
        ctx,
        neon,
        spare,
        impact,
    } = *room;
    let policy = Policy::from_retention(&ctx.config.retention);
    let plan = prune::plan(branches, scope, &policy);
    let order = by_priority(&plan, spare);
    if order.len() < needed {
        return Err(full_failure(branches, scope, &plan, limit, impact));
    }
    let a = &ctx.actions;
    let mut freed = Vec::new();
    for (b, reason) in order.into_iter().take(needed) {
        match neon.delete_branch(&b.branch.id).await {
            Ok(Deleted::Removed) | Ok(Deleted::AlreadyGone) => {
                a.info(&format!(
                    "freed a branch slot: deleted {} ({reason})",
                    one_line(&b.branch.name)
                ));
                freed.push(b.branch.name.clone());
            }
            Err(e) => {
                return Err(e
                    .into_failure(&format!(
                        "{impact}; the project is full and a slot could not be freed{}",
                        if freed.is_empty() {
                            String::new()
                        } else {
                            format!(" (deleted so far: {})", freed.join(", "))
                        }
                    ))
                    .into())
            }
        }
    }
    Ok(freed)
}

/// The failure of a full project where nothing may be freed: every branch that holds a slot, and why.
fn full_failure(
    branches: &[BranchInfo],
    scope: &Scope,
    plan: &Plan,
    limit: Option<usize>,
    impact: &str,
) -> Error {
    let mut lines: Vec<String> = plan
        .keep
        .iter()
        .map(|(b, r)| {
            format!(
                "  - {}: {}",
                one_line(&b.branch.name),
                one_line(&r.to_string())
            )
        })
        .collect();
    lines.extend(plan.delete.iter().map(|(b, r)| {
        format!(
            "  - {}: {} (may go, but frees too little)",
            one_line(&b.branch.name),
            one_line(&r.to_string())
        )
    }));
    let foreign: Vec<String> = branches
        .iter()
        .filter(|b| !b.branch.default && slot_of(b, scope) == Slot::Foreign)
        .map(|b| one_line(&b.branch.name))
        .collect();
    let limit = limit.map_or_else(|| "its".to_string(), |l| l.to_string());
    let mut hint = String::from("free a slot: ");
    if !foreign.is_empty() {
        hint.push_str(&format!(
            "delete a branch you no longer need among those supaneon-sync never deletes ({}), or ",
            foreign.join(", ")
        ));
    }
    hint.push_str("lower retention keep-last (and keep-daily/keep-weekly), or raise the project's branch limit with a larger Neon plan");
    Failure::new(format!(
        "the Neon project is full ({} branches, limit {limit}) and the retention policy frees none; these hold its slots:\n{}",
        branches.len(),
        lines.join("\n")
    ))
    .impact(impact)
    .hint(hint)
    .into()
}

/// The project's branches; a failure says `impact`.
pub(crate) async fn list(neon: &NeonClient, impact: &str) -> Result<Vec<BranchInfo>> {
    neon.list_branches()
        .await
        .map_err(|e| Error::from(e.into_failure(impact)))
}

fn limit_exceeded(e: &NeonError) -> bool {
    e.status() == Some(422) && e.code() == Some("BRANCHES_LIMIT_EXCEEDED")
}

/// Creates `request` (tracked in `slot` for the cleanup) after making room for it: when the project's
/// slots are all taken, the retention policy frees one first; when Neon still answers
/// `422 BRANCHES_LIMIT_EXCEEDED` (a limit it does not report), one more is freed and the create is tried
/// once more.
pub async fn create_with_room(
    ctx: &RunContext,
    neon: &NeonClient,
    project: &Project,
    request: &CreateBranch,
    slot: &std::sync::Mutex<Option<crate::branches::PendingBranch>>,
    spare: &[&str],
    impact: &str,
) -> Result<CreatedBranch> {
    let limit = project.branches_limit();
    let room = Room {
        ctx,
        neon,
        spare,
        impact,
    };
    let branches = list(neon, impact).await?;
    let scope = ctx.scope(&branches)?;
    let budget = Budget::count(
        &branches,
        &scope,
        &Policy::from_retention(&ctx.config.retention),
        limit,
    );
    tracing::info!("branch budget: {budget}");
    if let Some(limit) = limit {
        if budget.used() >= limit {
            let needed = budget.used() + 1 - limit;
            free_slots(&room, &branches, &scope, Some(limit), needed).await?;
        }
    }
    match crate::branches::create_tracked(neon, slot, request, &ctx.run_id).await {
        Ok(created) => Ok(created),
        Err(e) if limit_exceeded(&e) => {
            ctx.actions.info(
                "Neon answered that the branch limit is reached; freeing a slot and trying again",
            );
            let branches = list(neon, impact).await?;
            let scope = ctx.scope(&branches)?;
            free_slots(&room, &branches, &scope, limit, 1).await?;
            crate::branches::create_tracked(neon, slot, request, &ctx.run_id)
                .await
                .map_err(|e| crate::branches::create_failure(e, impact))
        }
        Err(e) => Err(crate::branches::create_failure(e, impact)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::branches;
    use crate::neon::Branch;
    use crate::ownership;
    use chrono::{DateTime, Duration, TimeZone, Utc};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 18, 12, 0, 0).unwrap()
    }

    fn branch(name: &str, ours: bool) -> BranchInfo {
        let kind = if name.starts_with("restore-test") {
            ownership::KIND_RESTORE_TEST
        } else {
            ownership::KIND_BACKUP
        };
        BranchInfo {
            branch: Branch {
                default: name == "main",
                ..Branch::ready_for_test(name, now())
            },
            annotations: if ours {
                ownership::annotations(kind, "r", "src-a")
            } else {
                Default::default()
            },
        }
    }

    fn policy() -> Policy {
        Policy {
            keep_last: 7,
            keep_daily: 0,
            keep_weekly: 0,
            grace: Duration::hours(24),
        }
    }

    fn backups(n: i64) -> Vec<BranchInfo> {
        (0..n)
            .map(|d| branch(&branches::backup_name(now() - Duration::days(d + 1)), true))
            .collect()
    }

    fn failed_test(hours_ago: i64, parent: &BranchInfo) -> BranchInfo {
        let mut t = branch(
            &branches::restore_test_name(now() - Duration::hours(hours_ago)),
            true,
        );
        t.branch.parent_id = Some(parent.branch.id.clone());
        t.branch.expires_at = Some(now() + Duration::hours(48));
        t
    }

    #[test]
    fn the_three_full_projects_count_their_slots_and_what_may_go() {
        let scope = Scope::new("src-a", now());
        // Default + 9 backups: two go by keep-last 7.
        let mut nine = vec![branch("main", false)];
        nine.extend(backups(9));
        let b = Budget::count(&nine, &scope, &policy(), Some(10));
        assert_eq!((b.used(), b.freeable, b.headroom()), (10, 2, Some(2)));
        assert!(
            b.to_string()
                .starts_with("10 of 10 branches in use (default 1, mirror 0, backups 9"),
            "{b}"
        );

        // Default + 7 backups + 2 failed tests: the older test goes.
        let mut tests = vec![branch("main", false)];
        let seven = backups(7);
        tests.push(failed_test(30, &seven[0]));
        tests.push(failed_test(2, &seven[1]));
        tests.extend(seven.clone());
        let b = Budget::count(&tests, &scope, &policy(), Some(10));
        assert_eq!((b.used(), b.freeable), (10, 1));
        assert_eq!(b.of(Slot::RestoreTestKept), 2);
        let plan = prune::plan(&tests, &scope, &policy());
        assert_eq!(
            by_priority(&plan, &[])
                .iter()
                .map(|(b, _)| b.branch.name.clone())
                .collect::<Vec<_>>(),
            vec![tests[1].branch.name.clone()]
        );

        // Default + 7 backups + 2 foreign (one a hand-made name-alike from the future): nothing may go, and
        // the failure names every slot.
        let mut foreign = vec![branch("main", false)];
        foreign.extend(seven);
        foreign.push(branch("staging", false));
        foreign.push(branch("backup-29991231T235959Z", false));
        let b = Budget::count(&foreign, &scope, &policy(), Some(10));
        assert_eq!((b.used(), b.freeable, b.of(Slot::Foreign)), (10, 0, 2));
        assert_eq!(b.headroom(), Some(0));
        let plan = prune::plan(&foreign, &scope, &policy());
        let err = full_failure(&foreign, &scope, &plan, Some(10), "no backup was made");
        let text = err.render();
        for b in &foreign {
            assert!(
                text.contains(&format!("  - {}: ", b.branch.name)),
                "{}\n{text}",
                b.branch.name
            );
        }
        assert!(text.contains("staging, backup-29991231T235959Z"), "{text}");
        assert!(text.contains("keep-last"), "{text}");
    }

    #[test]
    fn slots_are_freed_incompletes_first_then_tests_then_backups_never_the_spared_one() {
        let scope = Scope::new("src-a", now());
        let mut all = vec![branch("main", false)];
        let nine = backups(9);
        all.extend(nine.clone());
        let stale = branch(
            &branches::incomplete_backup_name(now() - Duration::days(3)),
            true,
        );
        all.push(stale.clone());
        let plan = prune::plan(&all, &scope, &policy());
        let order: Vec<String> = by_priority(&plan, &[nine[8].branch.id.as_str()])
            .iter()
            .map(|(b, _)| b.branch.name.clone())
            .collect();
        assert_eq!(
            order,
            vec![stale.branch.name.clone(), nine[7].branch.name.clone()]
        );
    }
}
