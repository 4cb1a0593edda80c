//! Faults in the middle of an incremental sync, through the real binary: a run cut off while it merges
//! leaves no backup and an unverified mirror, and the next run resumes the sync (only what changed, no
//! rebuild) into an exact copy; a source that stops answering mid-sync fails the run without a rebuild
//! (which would empty the mirror and fail too), and the next run resumes once it is back; a run whose
//! backup branch cannot be created leaves the verified mirror, and the next run snapshots it. The moment
//! of each fault is pinned by a lock the test holds on the mirror, never by a sleep.

mod support;

use std::time::Duration;

use supaneon_testkit::send_signal;
use support::cli::wait_until;
use support::mirror::{mirror_db, mirror_id, mirror_verified, CONTENT, TWO_TABLES};
use support::world::{no_secrets, World};

/// A day's changes: updates, inserts and deletes in both tables.
const CHANGE: &str = "
UPDATE public.entries SET v = v + 1 WHERE id % 100 = 3;
DELETE FROM public.entries WHERE id % 500 = 7;
INSERT INTO public.entries SELECT 1000000 + g, g, 'new' FROM generate_series(1, 50) g;
UPDATE public.gated SET v = -v WHERE id % 50 = 1;
DELETE FROM public.gated WHERE id = 2;
";

/// A transaction on the mirror holding a lock on `public.gated`: the run's merge of that table waits for
/// it, which pins the moment a fault is injected.
async fn hold_the_gate(world: &World, db: &str) -> tokio_postgres::Client {
    let gate = world.neon_pg.admin_client(db).await;
    gate.batch_execute("BEGIN; LOCK TABLE public.gated IN SHARE MODE")
        .await
        .unwrap();
    gate
}

fn count(world: &World, db: &str, sql: &str) -> i64 {
    world.neon_pg.psql(db, sql).trim().parse().expect("a count")
}

/// Sessions of the tool on the mirror that wait for a lock (the gate).
fn waiting_at_the_gate(world: &World, db: &str) -> i64 {
    count(
        world,
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
         AND application_name = 'supaneon-sync' AND datname = current_database()",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_cut_off_mid_merge_is_resumed_by_the_next_run() {
    let world = World::start(15).await;
    world.source.psql("postgres", TWO_TABLES);
    let first = world.cli().run(&["backup-run"]);
    assert_eq!(first.code, 0, "{}", first.describe());
    let db = mirror_db(&world);
    world.source.psql("postgres", CHANGE);

    // The gate: the merge into public.gated waits for a lock the test holds on the mirror.
    let gate = hold_the_gate(&world, &db).await;
    let cli = world.cli();
    let child = cli.spawn(&["backup-run"]);
    // Cut off once the other table's written rows are merged (committed) and the gated merge waits.
    wait_until(
        "public.entries merged while public.gated waits",
        Duration::from_secs(120),
        || {
            count(
                &world,
                &db,
                "SELECT count(*) FROM public.entries WHERE id > 1000000",
            ) == 50
                && waiting_at_the_gate(&world, &db) == 1
        },
    );
    send_signal("TERM", child.pid());
    let cut = child.wait();
    no_secrets(&cut);
    assert_eq!(cut.code, 1, "{}", cut.describe());
    assert!(cut.stderr.contains("cancelled"), "{}", cut.describe());
    assert_eq!(world.backup_names().len(), 1, "{:?}", world.branch_names());
    assert_eq!(
        mirror_verified(&world, &db),
        "f",
        "the cut-off sync left the mirror marked verified"
    );
    // Part-merged: the rows written were merged, the deleted rows are still there.
    assert_ne!(
        world.neon_pg.psql(&db, CONTENT),
        world.source.psql("postgres", CONTENT)
    );
    gate.batch_execute("COMMIT").await.unwrap();
    // The cut-off run's sessions end once their statements find it gone (one held the mirror's lock).
    wait_until(
        "the cut-off run's sessions to end",
        Duration::from_secs(60),
        || {
            count(
                &world,
                &db,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'supaneon-sync' \
                 AND datname = current_database()",
            ) == 0
        },
    );

    let resumed = world.cli().run(&["backup-run"]);
    no_secrets(&resumed);
    assert_eq!(resumed.code, 0, "{}", resumed.describe());
    assert!(
        resumed
            .stdout
            .contains("the mirror was synced incrementally")
            && resumed
                .stdout
                .contains("it resumed a sync that did not finish"),
        "{}",
        resumed.describe()
    );
    // What the cut-off run merged is not taken for a change made behind the tool's back.
    assert!(
        !resumed
            .everything()
            .contains("changed outside supaneon-sync")
            && !resumed
                .everything()
                .contains("repaired, changed on the mirror"),
        "{}",
        resumed.describe()
    );
    let backup = resumed.output("backup-branch").expect("backup-branch");
    assert_eq!(
        world.psql_branch(&backup, CONTENT),
        world.source.psql("postgres", CONTENT),
        "the resumed sync's backup differs from the source"
    );
    assert_eq!(mirror_verified(&world, &db), "t");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_branch_that_cannot_be_created_is_made_by_the_next_run() {
    let world = World::start(15).await;
    world.source.psql("postgres", TWO_TABLES);
    let first = world.cli().run(&["backup-run"]);
    assert_eq!(first.code, 0, "{}", first.describe());
    world.source.psql("postgres", CHANGE);

    // The sync is the run's only writer of the mirror; the backup branch is its only branch creation.
    world.fail_with_503("POST", "/branches");
    let failed = world
        .cli()
        .env("SUPANEON_NEON_CALL_DEADLINE_SECONDS", "3")
        .run(&["backup-run"]);
    no_secrets(&failed);
    assert_eq!(failed.code, 1, "{}", failed.describe());
    assert!(failed.stderr.contains("503"), "{}", failed.describe());
    assert_eq!(world.backup_names().len(), 1, "{:?}", world.branch_names());
    let db = mirror_db(&world);
    assert_eq!(
        mirror_verified(&world, &db),
        "t",
        "the sync itself finished"
    );

    world.emu.faults().clear();
    let next = world.cli().run(&["backup-run"]);
    no_secrets(&next);
    assert_eq!(next.code, 0, "{}", next.describe());
    assert!(
        next.stdout
            .contains("the mirror was synced incrementally: 0 of "),
        "nothing changed since the verified sync: {}",
        next.describe()
    );
    let backup = next.output("backup-branch").expect("backup-branch");
    assert_eq!(
        world.psql_branch(&backup, CONTENT),
        world.source.psql("postgres", CONTENT)
    );
}

/// A day's changes that leave every table's row count as it was: the rows written since the last sync
/// are merged first, and public.gated (a row deleted, one added) then needs the source once more, for
/// its digests.
const CHANGE_KEEPING_COUNTS: &str = "
UPDATE public.entries SET v = v + 1 WHERE id % 100 = 3;
UPDATE public.gated SET v = -v WHERE id % 50 = 1;
DELETE FROM public.gated WHERE id = 2;
INSERT INTO public.gated VALUES (100000, 7);
";

#[tokio::test(flavor = "multi_thread")]
async fn the_source_going_away_mid_sync_keeps_the_mirror_for_the_next_run() {
    let mut world = World::start(15).await;
    world.source.psql("postgres", TWO_TABLES);
    let first = world.cli().run(&["backup-run"]);
    assert_eq!(first.code, 0, "{}", first.describe());
    let db = mirror_db(&world);
    let mirror = mirror_id(&world);
    world.source.psql("postgres", CHANGE_KEEPING_COUNTS);

    let gate = hold_the_gate(&world, &db).await;
    let cli = world.cli();
    let child = cli.spawn(&["backup-run"]);
    wait_until(
        "the merge of public.gated to wait",
        Duration::from_secs(120),
        || waiting_at_the_gate(&world, &db) == 1,
    );
    world.source.stop();
    gate.batch_execute("COMMIT").await.unwrap();
    let failed = child.wait();
    no_secrets(&failed);
    assert_eq!(failed.code, 1, "{}", failed.describe());
    assert!(
        failed.stderr.contains("Supabase database"),
        "{}",
        failed.describe()
    );
    // No rebuild was tried: the same mirror, its database not emptied (its state is still there,
    // unverified, below), and no new backup.
    assert_eq!(
        mirror_id(&world),
        mirror,
        "{:?}\n{}",
        world.branch_names(),
        failed.describe()
    );
    assert_eq!(world.backup_names().len(), 1, "{:?}", world.branch_names());
    assert_eq!(mirror_verified(&world, &db), "f");

    // The source comes back: the next run resumes the sync.
    world.source.start_again();
    let resumed = world.cli().run(&["backup-run"]);
    no_secrets(&resumed);
    assert_eq!(resumed.code, 0, "{}", resumed.describe());
    assert!(
        resumed
            .stdout
            .contains("it resumed a sync that did not finish"),
        "{}",
        resumed.describe()
    );
    let backup = resumed.output("backup-branch").expect("backup-branch");
    assert_eq!(
        world.psql_branch(&backup, CONTENT),
        world.source.psql("postgres", CONTENT)
    );
}
