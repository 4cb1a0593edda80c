//! The planner's rules, each on a hand-built branch list.
use super::*;
use crate::neon::Branch;
use crate::ownership;
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
            parent_id: parent.map(|p| format!("br-{p}")),
            logical_size: Some(1000),
            ..Branch::ready_for_test(name, now())
        },
        annotations: ours(name),
    }
}

/// Our annotations for names of ours (of this test's source), none for the rest.
fn ours(name: &str) -> crate::neon::Annotations {
    let kind = match branches::classify(name) {
        BranchKind::Backup { .. } | BranchKind::IncompleteBackup { .. } => ownership::KIND_BACKUP,
        BranchKind::RestoreTest { .. } => ownership::KIND_RESTORE_TEST,
        BranchKind::Mirror | BranchKind::RetiredMirror { .. } => ownership::KIND_MIRROR,
        BranchKind::Foreign => return Default::default(),
    };
    ownership::annotations(kind, "run-test", "src-test")
}

fn scope() -> Scope {
    Scope::new("src-test", now())
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

    let plan = plan(&all, &scope(), &policy(7));
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
    assert_eq!(reason_of(&plan, "dev"), &Reason::NotOurs(NotOurs::Name));
    assert_eq!(
        reason_of(&plan, "backup-manual"),
        &Reason::NotOurs(NotOurs::Name)
    );
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
    let plan = plan(&all, &scope(), &policy(1));
    assert!(plan.delete.is_empty(), "{:?}", deleted(&plan));
    assert_eq!(reason_of(&plan, &protected.branch.name), &Reason::Protected);
    assert_eq!(
        reason_of(&plan, &default.branch.name),
        &Reason::DefaultBranch
    );
    for n in near_misses {
        assert_eq!(reason_of(&plan, n), &Reason::NotOurs(NotOurs::Name), "{n}");
    }
}

#[test]
fn the_newest_complete_backup_is_kept_whatever_the_policy() {
    let newest = backup(Duration::days(40));
    let older = backup(Duration::days(41));
    let plan = plan(&[older.clone(), newest.clone()], &scope(), &policy(0));
    assert_eq!(deleted(&plan), vec![older.branch.name.clone()]);
    assert_eq!(reason_of(&plan, &newest.branch.name), &Reason::NewestBackup);
}

#[test]
fn timestamps_are_parsed_not_compared_by_list_order() {
    // Listed in an arbitrary order; the newest by timestamp wins.
    let a = backup(Duration::seconds(1));
    let b = backup(Duration::days(400));
    let c = backup(Duration::hours(30));
    let plan = plan(&[b.clone(), a.clone(), c.clone()], &scope(), &policy(2));
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
    let plan = plan(&all, &scope(), &p);
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
    let plan = plan(&all, &scope(), &p);
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
    let plan = plan(&all, &scope(), &policy(7));
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
    let plan = plan(&all, &scope(), &policy(1));
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
        &scope(),
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
    let plan = plan(&[young.clone(), old.clone()], &scope(), &p);
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
