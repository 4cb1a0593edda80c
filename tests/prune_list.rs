//! prune and list end to end: the real binary against the emulator on a Neon-shaped cluster, with branches
//! seeded under chosen names and times. Each run is scanned for the source password and the API key.

mod support;

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use supaneon_sync::branches::{self, BranchKind};
use support::prune::{
    branch_id, neon_client, next_second, planned_deletions, seed_branch, seed_ours, split_names,
};
use support::world::{no_secrets, World};

fn names(world: &World) -> BTreeSet<String> {
    world.branch_names().into_iter().collect()
}

fn complete_backups(world: &World) -> Vec<String> {
    world
        .branch_names()
        .into_iter()
        .filter(|n| matches!(branches::classify(n), BranchKind::Backup { .. }))
        .collect()
}

/// 12 complete backups (one a day), a fresh and a stale incomplete one, and two branches of other names.
/// keep-last 7 must delete exactly the 5 oldest complete backups and the stale incomplete one; a dry run
/// deletes nothing and prints the same plan; an API failure halfway stops with exit 1 and a consistent
/// state, and the next prune finishes the job. Then backup-run prunes after itself, also when that prune
/// fails (exit 1, but the backup is complete). Last, `list` and `list --json` show exactly what the emulator
/// holds, with the verified counts of the two real backups read from their stored manifests.
#[tokio::test(flavor = "multi_thread")]
async fn prune_and_list_against_the_emulator() {
    let world = World::start(15).await;
    world.emu.faults().set_branch_limit(40);
    let neon = neon_client(&world);
    let now = Utc::now();

    let complete: Vec<String> = (0..12)
        .map(|d| branches::backup_name(now - Duration::days(d) - Duration::minutes(5)))
        .collect();
    let fresh = branches::incomplete_backup_name(now - Duration::hours(1));
    let stale = branches::incomplete_backup_name(now - Duration::days(3));
    // Foreign names: one that merely looks like a backup, and one that would sort as the oldest.
    let foreign = [
        "backup-20200101T000000Z-old".to_string(),
        "staging".to_string(),
    ];
    let fingerprint = world.fingerprint();
    for name in complete.iter().chain([&fresh, &stale]) {
        seed_ours(&neon, &fingerprint, name, None, None).await;
    }
    for name in &foreign {
        seed_branch(&neon, name, None, None).await;
    }
    let before = names(&world);
    assert_eq!(before.len(), 17, "{before:?}");

    // Oldest first; the stale incomplete (3 days) is younger than every doomed complete backup.
    let mut expected: Vec<String> = complete[7..].iter().rev().cloned().collect();
    expected.push(stale.clone());
    let survivors: BTreeSet<String> = before
        .iter()
        .filter(|n| !expected.contains(n))
        .cloned()
        .collect();

    // 1. Dry run: the plan, nothing deleted.
    let dry = world.cli().run(&["prune", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.describe());
    no_secrets(&dry);
    assert_eq!(
        planned_deletions(&dry.stdout),
        expected,
        "{}",
        dry.describe()
    );
    assert_eq!(split_names(&dry.output("deleted").unwrap()), expected);
    assert!(
        dry.output("result").unwrap().contains("would delete 6"),
        "{}",
        dry.describe()
    );
    assert!(dry.summary.contains("would delete"), "{}", dry.summary);
    assert_eq!(names(&world), before, "a dry run deleted something");

    // 2. The third deletion fails for good: the first two are gone, the rest is intact, exit 1.
    let third = branch_id(&world, &expected[2]);
    world.fail_with_503("DELETE", &third);
    let broken = world
        .cli()
        .env("SUPANEON_NEON_CALL_DEADLINE_SECONDS", "2")
        .run(&["prune"]);
    world.emu.faults().clear();
    assert_eq!(broken.code, 1, "{}", broken.describe());
    no_secrets(&broken);
    assert_eq!(
        planned_deletions(&broken.stdout),
        expected,
        "same plan as the dry run"
    );
    assert_eq!(
        split_names(&broken.output("deleted").unwrap()),
        expected[..2]
    );
    let after_broken = names(&world);
    let expected_after_broken: BTreeSet<String> = before
        .iter()
        .filter(|n| !expected[..2].contains(n))
        .cloned()
        .collect();
    assert_eq!(after_broken, expected_after_broken);
    for needle in ["not deleted", &expected[2], "run prune again", "503"] {
        assert!(
            broken.stderr.contains(needle),
            "{needle}: {}",
            broken.describe()
        );
    }
    assert!(
        broken
            .output("result")
            .unwrap()
            .contains("could not delete"),
        "{}",
        broken.describe()
    );

    // 3. The next prune finishes the job, and nothing else goes.
    let finish = world.cli().run(&["prune"]);
    assert_eq!(finish.code, 0, "{}", finish.describe());
    no_secrets(&finish);
    assert_eq!(
        split_names(&finish.output("deleted").unwrap()),
        expected[2..]
    );
    assert_eq!(names(&world), survivors);
    assert!(finish.summary.contains("| deleted |"), "{}", finish.summary);

    // 4. Idempotent.
    let again = world.cli().run(&["prune"]);
    assert_eq!(again.code, 0, "{}", again.describe());
    assert_eq!(again.output("deleted").unwrap(), "");
    assert_eq!(names(&world), survivors);

    // 5a. Never after a failed backup: with keep-last 1 a prune would delete six backups here.
    world.fail_with_503("POST", "/branches");
    let failed = world
        .cli()
        .env("SUPANEON_NEON_CALL_DEADLINE_SECONDS", "2")
        .env("SUPANEON_KEEP_LAST", "1")
        .env("SUPANEON_STRATEGY", "full")
        .run(&["backup-run"]);
    world.emu.faults().clear();
    assert_eq!(failed.code, 1, "{}", failed.describe());
    no_secrets(&failed);
    assert!(
        !failed.stdout.contains("prune plan"),
        "{}",
        failed.describe()
    );
    assert_eq!(names(&world), survivors);

    // 5b. A backup whose prune fails: exit 1, but the backup is complete and says so.
    let oldest_kept = complete[6].clone();
    world.fail_with_503("DELETE", &branch_id(&world, &oldest_kept));
    // Full-strategy backups: list wakes their computes to read the manifests (checked below).
    let backed_up = world
        .cli()
        .env("SUPANEON_NEON_CALL_DEADLINE_SECONDS", "2")
        .env("SUPANEON_STRATEGY", "full")
        .run(&["backup-run"]);
    world.emu.faults().clear();
    assert_eq!(backed_up.code, 1, "{}", backed_up.describe());
    no_secrets(&backed_up);
    let first_backup = backed_up.output("backup-branch").expect("backup-branch");
    assert!(complete_backups(&world).contains(&first_backup));
    assert!(world.branch(&oldest_kept).is_some());
    for needle in [
        format!("backup {first_backup} is complete, but the prune after it failed"),
        "complete and verified".to_string(),
    ] {
        assert!(
            backed_up.stderr.contains(&needle),
            "{needle}: {}",
            backed_up.describe()
        );
    }

    // 6. The next backup prunes after itself: 9 complete backups, the 2 oldest go; the fresh incomplete
    //    and the foreign branches stay.
    next_second();
    let good = world
        .cli()
        .env("SUPANEON_STRATEGY", "full")
        .run(&["backup-run"]);
    assert_eq!(good.code, 0, "{}", good.describe());
    no_secrets(&good);
    let second_backup = good.output("backup-branch").unwrap();
    assert_eq!(
        split_names(&good.output("deleted").unwrap()),
        vec![complete[6].clone(), complete[5].clone()]
    );
    assert!(
        good.output("result").unwrap().contains("verified"),
        "the backup's result stays the result: {}",
        good.describe()
    );
    let mut expected_complete: Vec<String> = complete[..5].to_vec();
    expected_complete.push(first_backup.clone());
    expected_complete.push(second_backup.clone());
    expected_complete.sort();
    assert_eq!(complete_backups(&world), expected_complete);
    for kept in foreign.iter().chain([&fresh]) {
        assert!(world.branch(kept).is_some(), "{kept} was deleted");
    }

    // 7. list --json matches the emulator: every backup branch by exact name, newest first; the two real
    //    backups verified with the counts their runs reported; seeded ones (no compute) unknown.
    let test_branch = branches::restore_test_name(Utc::now());
    let second_id = branch_id(&world, &second_backup);
    seed_ours(
        &neon,
        &fingerprint,
        &test_branch,
        Some(&second_id),
        Some(Utc::now() + Duration::days(1)),
    )
    .await;
    let suspends_before = suspend_calls(&world);
    let listed = world.cli().run(&["list", "--json"]);
    assert_eq!(listed.code, 0, "{}", listed.describe());
    no_secrets(&listed);
    let json: serde_json::Value = serde_json::from_str(&listed.stdout)
        .unwrap_or_else(|e| panic!("list --json is not JSON ({e}): {}", listed.describe()));
    assert_eq!(json["format"], 1);
    let entries = json["backups"].as_array().expect("backups array");
    let listed_names: Vec<String> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    let mut emulator_backups: Vec<(chrono::DateTime<Utc>, String)> = world
        .branch_names()
        .into_iter()
        .filter_map(|n| match branches::classify(&n) {
            BranchKind::Backup { at } | BranchKind::IncompleteBackup { at } => Some((at, n)),
            _ => None,
        })
        .collect();
    emulator_backups.sort();
    emulator_backups.reverse();
    let emulator_names: Vec<String> = emulator_backups.into_iter().map(|(_, n)| n).collect();
    assert_eq!(listed_names, emulator_names);
    for e in entries {
        let name = e["name"].as_str().unwrap();
        let held = world.branch(name).unwrap();
        assert_eq!(e["id"], held["id"], "{name}");
        assert_eq!(e["logical_size_bytes"], held["logical_size"], "{name}");
        let (state, verification) = match branches::classify(name) {
            BranchKind::IncompleteBackup { .. } => ("incomplete", "not-applicable"),
            _ if name == first_backup || name == second_backup => ("complete", "verified"),
            _ => ("complete", "unknown"),
        };
        assert_eq!(e["state"], state, "{name}");
        assert_eq!(e["verification"], verification, "{name}: {e}");
        let tests: Vec<&str> = e["restore_tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        if name == second_backup {
            assert_eq!(tests, vec![test_branch.as_str()]);
        } else {
            assert!(tests.is_empty(), "{name}: {tests:?}");
        }
        assert!(e["age_seconds"].as_i64().unwrap() >= 0, "{name}");
    }
    for (name, run) in [(&first_backup, &backed_up), (&second_backup, &good)] {
        let e = entries.iter().find(|e| e["name"] == name.as_str()).unwrap();
        assert_eq!(
            e["tables"].to_string(),
            run.output("tables").unwrap(),
            "{name}"
        );
        assert_eq!(e["rows"].to_string(), run.output("rows").unwrap(), "{name}");
    }
    assert!(
        suspend_calls(&world) >= suspends_before + 2,
        "list woke the two real backups and must suspend them again"
    );

    // The table for people: same outputs, a job summary.
    let table = world.cli().run(&["list"]);
    assert_eq!(table.code, 0, "{}", table.describe());
    no_secrets(&table);
    assert_eq!(table.output("latest-backup").unwrap(), second_backup);
    assert_eq!(table.output("backup-count").unwrap(), "7");
    for needle in [
        "verified rows",
        "unknown",
        test_branch.as_str(),
        fresh.as_str(),
    ] {
        assert!(
            table.stdout.contains(needle),
            "{needle}: {}",
            table.describe()
        );
    }
    assert!(
        table
            .summary
            .contains(&format!("| {second_backup} | complete |")),
        "{}",
        table.summary
    );
}

/// Suspend calls the emulator has answered with success.
fn suspend_calls(world: &World) -> usize {
    world
        .emu
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/suspend") && r.status < 300)
        .count()
}
