//! Truthful endings: a SIGTERM after the backup is verified and renamed reports that backup (exit 1, the run
//! was cancelled, but the backup exists and is named); a SIGTERM during the follow-up prune lets the deletion
//! under way finish, starts none after it, and says what was and was not deleted. The moment of each signal
//! is pinned by a delayed Neon call the test watches for, never by a sleep.

mod support;

use std::time::Duration;

use chrono::Utc;
use neon_emulator::{FaultAction, FaultRule};
use supaneon_sync::branches;
use supaneon_testkit::send_signal;
use support::cli::wait_until;
use support::prune::{branch_id, neon_client, seed_ours, split_names};
use support::world::{no_secrets, World};

/// Waits until the emulator has taken the one pending fault rule, i.e. the delayed call is in flight.
fn wait_for_the_delayed_call(world: &World, what: &str) {
    wait_until(what, Duration::from_secs(120), || {
        world.emu.faults().pending() == 0
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_after_the_rename_reports_the_verified_backup() {
    let world = World::start(15).await;
    // The suspend of the backup's compute comes right after the rename; hold it while the signal lands.
    world.emu.faults().push(
        FaultRule::new("/suspend", FaultAction::Delay(Duration::from_secs(5))).method("POST"),
    );
    // The rename is the full strategy's last step (a snapshot backup is complete at birth).
    let cli = world
        .cli()
        .env("SUPANEON_PRUNE_AFTER_BACKUP", "false")
        .env("SUPANEON_STRATEGY", "full");
    let child = cli.spawn(&["backup-run"]);
    wait_for_the_delayed_call(&world, "the suspend after the rename");
    send_signal("TERM", child.pid());
    let run = child.wait();
    no_secrets(&run);
    assert_eq!(run.code, 1, "{}", run.describe());
    let complete = world.backup_names();
    assert_eq!(complete.len(), 1, "{complete:?}\n{}", run.describe());
    let name = &complete[0];
    assert_eq!(run.output("backup-branch").as_deref(), Some(name.as_str()));
    assert!(
        run.stderr
            .contains(&format!("after backup {name} was verified and named")),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("is complete and verified"),
        "{}",
        run.describe()
    );
    assert!(
        !run.everything().contains("no complete backup was made"),
        "{}",
        run.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_the_follow_up_prune_ends_it_cleanly() {
    let world = World::start(15).await;
    world.emu.faults().set_branch_limit(40);
    let neon = neon_client(&world);
    let fp = world.fingerprint();
    let now = Utc::now();
    let old: Vec<String> = (1..=3)
        .map(|d| branches::backup_name(now - chrono::Duration::days(d)))
        .collect();
    for name in &old {
        seed_ours(&neon, &fp, name, None, None).await;
    }
    // keep-last 1: the new backup stays, the three seeded ones go, oldest first. The first deletion is
    // held while the signal lands.
    world.emu.faults().push(
        FaultRule::new(
            &branch_id(&world, &old[2]),
            FaultAction::Delay(Duration::from_secs(5)),
        )
        .method("DELETE"),
    );
    let cli = world.cli().env("SUPANEON_KEEP_LAST", "1");
    let child = cli.spawn(&["backup-run"]);
    wait_for_the_delayed_call(&world, "the first deletion of the prune");
    send_signal("TERM", child.pid());
    let run = child.wait();
    no_secrets(&run);
    assert_eq!(run.code, 1, "{}", run.describe());
    // The deletion under way finished; none started after the signal.
    assert!(world.branch(&old[2]).is_none(), "{}", run.describe());
    assert!(world.branch(&old[1]).is_some() && world.branch(&old[0]).is_some());
    assert_eq!(
        split_names(&run.output("deleted").unwrap_or_default()),
        vec![old[2].clone()]
    );
    let backup = run.output("backup-branch").expect("the backup is reported");
    assert!(world.branch(&backup).is_some());
    for needle in [
        format!("backup {backup} is complete, but the prune after it failed: prune was cancelled"),
        format!("deleted {}", old[2]),
        format!("not deleted: {}, {}", old[1], old[0]),
    ] {
        assert!(run.stderr.contains(&needle), "{needle}\n{}", run.describe());
    }
}
