//! restore-test turns red when backups have stopped: the newest complete backup restores, but it is older than
//! max-backup-age-hours. A backup chosen by name is not judged by its age.

mod support;

use chrono::Utc;
use support::restore::neon_client;
use support::world::{World, SOURCE_PASSWORD};

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_newest_backup_fails_the_restore_test() {
    let world = World::start(15).await;
    let run = world.cli().run(&["backup-run"]);
    assert_eq!(run.code, 0, "{}", run.describe());
    let fresh = run.output("backup-branch").unwrap();

    // A fresh backup passes.
    let ok = world.cli().run(&["restore-test"]);
    assert_eq!(ok.code, 0, "{}", ok.describe());

    // The same backup, as if taken 30 hours ago (its name carries its time): the schedule has stopped.
    let old = supaneon_sync::branches::backup_name(Utc::now() - chrono::Duration::hours(30));
    let id = world.branch(&fresh).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    neon_client(&world)
        .rename_branch(&id, &old)
        .await
        .expect("rename the backup");

    let stale = world.cli().run(&["restore-test"]);
    assert_eq!(stale.code, 1, "{}", stale.describe());
    assert!(
        stale
            .stderr
            .contains("30 h old, more than max-backup-age-hours (26)")
            && stale.stderr.contains("60 days"),
        "{}",
        stale.describe()
    );
    // The restore itself passed: its test branch is gone, not kept as a failed test.
    assert!(
        !world
            .branch_names()
            .iter()
            .any(|n| n.starts_with("restore-test-")),
        "{:?}",
        world.branch_names()
    );
    stale.assert_never_shows(SOURCE_PASSWORD);

    // A longer allowance, or a backup chosen by name, passes.
    let allowed = world
        .cli()
        .env("SUPANEON_MAX_BACKUP_AGE_HOURS", "48")
        .run(&["restore-test"]);
    assert_eq!(allowed.code, 0, "{}", allowed.describe());
    let named = world.cli().run(&["restore-test", "--backup", &old]);
    assert_eq!(named.code, 0, "{}", named.describe());
}
