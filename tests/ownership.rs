//! Ownership by identity and the branch budget, end to end: the real binary against the emulator on a
//! Neon-shaped cluster. Branches named like ours but not made by this deployment (no annotations, another
//! source, a timestamp in the future) are never selected, pruned or reported as latest; a full project
//! frees a slot by the retention policy or fails naming every slot; two runs never delete each other's
//! branches. Every run is scanned for the source password and the API key.

mod support;

use std::collections::BTreeSet;
use std::sync::Mutex;

use chrono::{Duration, Utc};
use neon_emulator::{FaultAction, FaultRule};
use supaneon_sync::branches::{self, PendingBranch};
use supaneon_sync::neon::CreateBranch;
use supaneon_sync::ownership;
use support::cli::{Cli, Run};
use support::prune::{branch_id, neon_client, seed_branch, seed_ours, split_names};
use support::world::{no_secrets, World, API_KEY, PROJECT_ID};

fn names(world: &World) -> BTreeSet<String> {
    world.branch_names().into_iter().collect()
}

/// A backup run that leaves the follow-up prune out, so only the budget decides what goes.
/// A full-strategy backup: one new branch per run, so the slot arithmetic below is the budget's alone (the
/// snapshot strategy's mirror takes one more slot, covered in tests/mirror.rs).
fn backup_without_prune(world: &World) -> Run {
    world
        .cli()
        .env("SUPANEON_PRUNE_AFTER_BACKUP", "false")
        .env("SUPANEON_STRATEGY", "full")
        .run(&["backup-run"])
}

const HAND_MADE: &str = "backup-29991231T235959Z";

#[tokio::test(flavor = "multi_thread")]
async fn name_alikes_and_other_sources_are_never_selected_pruned_or_latest() {
    let world = World::start(15).await;
    let neon = neon_client(&world);
    let now = Utc::now();
    let fp = world.fingerprint();

    let ours: Vec<String> = (1..=3)
        .map(|d| branches::backup_name(now - Duration::days(d)))
        .collect();
    for name in &ours {
        seed_ours(&neon, &fp, name, None, None).await;
    }
    // Hand-made, from the future, no annotations.
    seed_branch(&neon, HAND_MADE, None, None).await;
    // Annotated as ours, but from the future.
    let future = branches::backup_name(now + Duration::days(365));
    seed_ours(&neon, &fp, &future, None, None).await;
    // Another deployment's backups (another source), newer and older than ours.
    let other_newer = branches::backup_name(now - Duration::hours(1));
    let other_older = branches::backup_name(now - Duration::days(10));
    for name in [&other_newer, &other_older] {
        seed_ours(&neon, "src-another-source", name, None, None).await;
    }
    let name_alikes = [
        HAND_MADE.to_string(),
        future.clone(),
        other_newer.clone(),
        other_older.clone(),
    ];

    // list: only ours are backups; the name-alikes are listed as not ours, with the reason.
    let listed = world.cli().run(&["list", "--json"]);
    assert_eq!(listed.code, 0, "{}", listed.describe());
    no_secrets(&listed);
    let json: serde_json::Value = serde_json::from_str(&listed.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", listed.describe()));
    let backups: Vec<&str> = json["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(backups, ours.iter().map(String::as_str).collect::<Vec<_>>());
    let foreign: BTreeSet<&str> = json["foreign"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        foreign,
        name_alikes
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
    );
    let reason_of = |name: &str| {
        json["foreign"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(reason_of(HAND_MADE).contains("without supaneon-sync's annotations"));
    assert!(reason_of(&future).contains("future"));
    assert!(reason_of(&other_newer).contains("another source"));
    assert_eq!(listed.output("latest-backup").unwrap(), ours[0]);
    assert!(
        listed.summary.contains("but not ours")
            && listed.summary.contains(&format!("| {future} |")),
        "{}",
        listed.summary
    );

    // `list --json | jq .` works everywhere: stdout is exactly one JSON document, in a terminal (no output
    // or summary file) and inside a workflow (masks and annotations go to stderr).
    for (on_actions, files) in [(false, false), (true, true), (true, false), (false, true)] {
        let mut cli = world.cli();
        if on_actions {
            cli = cli.env("GITHUB_ACTIONS", "true");
        }
        if !files {
            cli = cli.without_github_files();
        }
        let run = cli.run(&["list", "--json"]);
        assert_eq!(run.code, 0, "{}", run.describe());
        no_secrets(&run);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
            panic!(
                "GITHUB_ACTIONS={on_actions}, files={files}: stdout is not one JSON document ({e}):\n{}",
                run.describe()
            )
        });
        assert_eq!(doc["format"], 1);
        if on_actions {
            assert!(run.stderr.contains("::add-mask::"), "{}", run.describe());
        }
    }

    // prune with keep-last 1: exactly our two older backups go; no name-alike does.
    let before = names(&world);
    let pruned = world.cli().env("SUPANEON_KEEP_LAST", "1").run(&["prune"]);
    assert_eq!(pruned.code, 0, "{}", pruned.describe());
    no_secrets(&pruned);
    assert_eq!(
        split_names(&pruned.output("deleted").unwrap()),
        vec![ours[2].clone(), ours[1].clone()]
    );
    let expected: BTreeSet<String> = before
        .iter()
        .filter(|n| **n != ours[1] && **n != ours[2])
        .cloned()
        .collect();
    assert_eq!(names(&world), expected);
    for n in &name_alikes {
        assert!(
            pruned.stdout.contains(&format!("  keep   {n}: not ours")),
            "{n}: {}",
            pruned.describe()
        );
    }

    // The runner's debug switch (a re-run with debug logging) turns on debug logs; SUPANEON_LOG wins.
    let debug = world.cli().env("RUNNER_DEBUG", "1").run(&["list"]);
    assert!(debug.stderr.contains("DEBUG"), "{}", debug.describe());
    let quiet = world
        .cli()
        .env("RUNNER_DEBUG", "1")
        .env("SUPANEON_LOG", "warn")
        .run(&["list"]);
    assert!(!quiet.stderr.contains("DEBUG"), "{}", quiet.describe());

    // Without a source URL, a project holding two sources' backups is a configuration error (exit 2).
    let no_source = Cli::new()
        .env("NEON_API_KEY", API_KEY)
        .env("NEON_PROJECT_ID", PROJECT_ID)
        .env("NEON_API_URL", &world.emu.base_url())
        .run(&["list"]);
    assert_eq!(no_source.code, 2, "{}", no_source.describe());
    assert!(
        no_source.stderr.contains("2 different source databases"),
        "{}",
        no_source.describe()
    );
    // With only one source's backups in the project, that source is the one: the other's go away first.
    for n in [&other_newer, &other_older] {
        neon.delete_branch(&branch_id(&world, n)).await.unwrap();
    }
    let no_source = Cli::new()
        .env("NEON_API_KEY", API_KEY)
        .env("NEON_PROJECT_ID", PROJECT_ID)
        .env("NEON_API_URL", &world.emu.base_url())
        .run(&["list"]);
    assert_eq!(no_source.code, 0, "{}", no_source.describe());
    assert_eq!(no_source.output("latest-backup").unwrap(), ours[0]);
}

/// Default + 9 backups; default + 7 backups + 2 failed restore tests; default + 7 backups + 2 foreign
/// branches — on a project limited to 10 branches. The first two free a slot by the retention policy and
/// back up; the third frees nothing and fails (exit 1) naming every branch that holds a slot.
#[tokio::test(flavor = "multi_thread")]
async fn full_projects_free_a_slot_by_policy_or_name_every_slot() {
    let world = World::start(15).await;
    world.emu.faults().set_branch_limit(10);
    let neon = neon_client(&world);
    let fp = world.fingerprint();
    let now = Utc::now();
    let seeded: Vec<String> = (1..=9)
        .map(|d| branches::backup_name(now - Duration::days(d)))
        .collect();
    for name in &seeded {
        seed_ours(&neon, &fp, name, None, None).await;
    }
    assert_eq!(world.branch_names().len(), 10);

    // 1. Nine backups: the oldest beyond keep-last goes, the backup is made.
    let run = backup_without_prune(&world);
    assert_eq!(run.code, 0, "{}", run.describe());
    no_secrets(&run);
    assert!(
        run.everything()
            .contains(&format!("freed a branch slot: deleted {}", seeded[8])),
        "{}",
        run.describe()
    );
    assert!(world.branch(&seeded[8]).is_none());
    assert_eq!(world.branch_names().len(), 10);
    // Back to default + 7 backups.
    let pruned = world.cli().run(&["prune"]);
    assert_eq!(pruned.code, 0, "{}", pruned.describe());
    assert_eq!(world.branch_names().len(), 8, "{:?}", world.branch_names());

    // 2. Two failed restore tests (kept, not expired) on the newest backups: the older test goes.
    let kept = world.backup_names();
    let (newest, second) = (&kept[kept.len() - 1], &kept[kept.len() - 2]);
    let older_test = branches::restore_test_name(now - Duration::hours(30));
    let newer_test = branches::restore_test_name(now - Duration::hours(2));
    let expires = Some(Utc::now() + Duration::hours(48));
    seed_ours(
        &neon,
        &fp,
        &older_test,
        Some(&branch_id(&world, second)),
        expires,
    )
    .await;
    seed_ours(
        &neon,
        &fp,
        &newer_test,
        Some(&branch_id(&world, newest)),
        expires,
    )
    .await;
    assert_eq!(world.branch_names().len(), 10);
    // Full, but the policy can free one slot: room for the backup, not for a restore test beside it.
    let checked = world.cli().run(&["validate-config", "--online"]);
    assert_eq!(checked.code, 0, "{}", checked.describe());
    assert!(
        checked
            .stdout
            .contains("ok   branch slots: 10 of 10 branches in use")
            && checked
                .stdout
                .contains("warning: the Neon project is nearly full"),
        "{}",
        checked.describe()
    );
    let run = backup_without_prune(&world);
    assert_eq!(run.code, 0, "{}", run.describe());
    no_secrets(&run);
    assert!(world.branch(&older_test).is_none(), "{}", run.describe());
    assert!(world.branch(&newer_test).is_some());
    // Back to default + 7 backups.
    neon.delete_branch(&branch_id(&world, &newer_test))
        .await
        .unwrap();
    let pruned = world.cli().run(&["prune"]);
    assert_eq!(pruned.code, 0, "{}", pruned.describe());
    assert_eq!(world.branch_names().len(), 8, "{:?}", world.branch_names());

    // 3. Two foreign branches (one a hand-made name-alike): nothing may be freed; the error names each
    //    slot and what to do, and nothing is deleted. validate-config --online says the same beforehand.
    seed_branch(&neon, "staging", None, None).await;
    seed_branch(&neon, HAND_MADE, None, None).await;
    let before = names(&world);
    assert_eq!(before.len(), 10);
    let checked = world.cli().run(&["validate-config", "--online"]);
    assert_eq!(checked.code, 1, "{}", checked.describe());
    assert!(
        checked
            .stdout
            .contains("FAIL branch slots: 10 of 10 branches in use")
            && checked.stdout.contains("not ours 2"),
        "{}",
        checked.describe()
    );
    let run = backup_without_prune(&world);
    assert_eq!(run.code, 1, "{}", run.describe());
    no_secrets(&run);
    assert!(
        run.stderr.contains("the Neon project is full"),
        "{}",
        run.describe()
    );
    for name in &before {
        assert!(
            run.stderr.contains(&format!("  - {name}: ")),
            "{name} not named: {}",
            run.describe()
        );
    }
    assert!(
        run.stderr.contains("staging, backup-29991231T235959Z") && run.stderr.contains("keep-last"),
        "{}",
        run.describe()
    );
    assert!(
        run.output("result").unwrap().contains("full"),
        "{}",
        run.describe()
    );
    assert_eq!(names(&world), before);

    // 4. A limit Neon does not report: the create answers 422 BRANCHES_LIMIT_EXCEEDED; the run frees a slot
    //    by the policy and tries once more.
    world.emu.faults().set_branch_limit(40);
    let extra = branches::backup_name(now - Duration::days(30));
    seed_ours(&neon, &fp, &extra, None, None).await;
    world.emu.faults().push(
        FaultRule::new(
            "/branches",
            FaultAction::Status {
                status: 422,
                code: "BRANCHES_LIMIT_EXCEEDED".into(),
                message: "branches limit exceeded".into(),
                retry_after: None,
            },
        )
        .method("POST"),
    );
    let run = backup_without_prune(&world);
    assert_eq!(run.code, 0, "{}", run.describe());
    no_secrets(&run);
    assert!(
        run.everything()
            .contains("Neon answered that the branch limit is reached")
            && run
                .everything()
                .contains(&format!("freed a branch slot: deleted {extra}")),
        "{}",
        run.describe()
    );
    assert!(world.branch(&extra).is_none());
}

/// Two backups started at the same moment: one or both succeed, and neither deletes the other's branch.
/// Then the rule underneath, made deterministic: a create that meets another run's branch of the same
/// name (409) leaves it alone, and so does the cleanup.
#[tokio::test(flavor = "multi_thread")]
async fn two_runs_never_delete_each_others_branches() {
    let world = World::start(15).await;
    world.emu.faults().set_branch_limit(40);
    let cli_a = world.cli().env("SUPANEON_PRUNE_AFTER_BACKUP", "false");
    let cli_b = world.cli().env("SUPANEON_PRUNE_AFTER_BACKUP", "false");
    let a = cli_a.spawn(&["backup-run"]);
    let b = cli_b.spawn(&["backup-run"]);
    let (a, b) = (a.wait(), b.wait());
    no_secrets(&a);
    no_secrets(&b);
    assert!(
        a.code == 0 || b.code == 0,
        "neither succeeded:\n{}\n{}",
        a.describe(),
        b.describe()
    );
    for run in [&a, &b] {
        if run.code == 0 {
            let made = run.output("backup-branch").unwrap();
            assert!(world.branch(&made).is_some(), "{made} was deleted");
        } else {
            assert!(
                run.stderr.contains("another branch of that name exists"),
                "{}",
                run.describe()
            );
        }
    }

    // Another run's branch under the name this run wants.
    let neon = neon_client(&world);
    let name = branches::incomplete_backup_name(Utc::now());
    let fp = world.fingerprint();
    neon.create_branch(&CreateBranch {
        name: name.clone(),
        parent_id: None,
        expires_at: None,
        annotations: ownership::annotations(ownership::KIND_BACKUP, "run-a", &fp),
        with_endpoint: false,
    })
    .await
    .unwrap();
    let slot = Mutex::new(None);
    let err = branches::create_tracked(
        &neon,
        &slot,
        &CreateBranch {
            name: name.clone(),
            parent_id: None,
            expires_at: None,
            annotations: ownership::annotations(ownership::KIND_BACKUP, "run-b", &fp),
            with_endpoint: false,
        },
        "run-b",
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    assert!(
        slot.lock().unwrap().is_none(),
        "after a 409 nothing is left to clean up"
    );
    // Even a cleanup that only knows the name deletes nothing it did not make.
    let gone = PendingBranch {
        name: name.clone(),
        run_id: "run-b".into(),
        id: None,
    }
    .delete(&neon, "prune removes it")
    .await;
    assert!(gone);
    assert!(
        world.branch(&name).is_some(),
        "run b deleted run a's branch"
    );
    let gone = PendingBranch {
        name: name.clone(),
        run_id: "run-a".into(),
        id: None,
    }
    .delete(&neon, "prune removes it")
    .await;
    assert!(gone);
    assert!(world.branch(&name).is_none(), "run a's own cleanup");
}
