//! backup-run's fault paths, each through the real binary: whatever breaks, the run exits 1, no branch with a
//! complete backup name exists, what the run created and did not verify (the mirror of a first snapshot run,
//! the incomplete branch of a full one) is cleaned up, no child is left, and no secret shows. The faults
//! land in the first run, which restores in full: into the new mirror by default, into an incomplete backup
//! branch with `strategy: full`.

mod support;

use std::time::Duration;

use neon_emulator::{FaultAction, FaultRule};
use supaneon_testkit::{process_alive, send_signal};
use support::cli::{children_named, wait_until, Cli, Run, Spawned};
use support::world::{World, API_KEY, SOURCE_PASSWORD};

/// Enough rows that the data phase of the dump lasts seconds, so a fault lands mid-stream.
const BULK_SQL: &str = "CREATE TABLE public.bulk (id bigint PRIMARY KEY, payload text NOT NULL);
     INSERT INTO public.bulk SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, 600000) g;
     ALTER TABLE public.bulk OWNER TO postgres;";

/// The mirror this run created and did not verify was deleted.
fn assert_mirror_deleted(world: &World) {
    let deleted = world.emu.deleted_branch_names();
    assert!(
        deleted.iter().any(|n| n == "supaneon-mirror"),
        "the unverified mirror was not deleted: {deleted:?}"
    );
}

fn assert_no_backup_left(world: &World, run: &Run) {
    let names = world.branch_names();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("backup-") || n.starts_with("supaneon-mirror")),
        "a backup branch was left behind: {names:?}\n{}",
        run.describe()
    );
    run.assert_never_shows(SOURCE_PASSWORD);
    run.assert_never_shows(API_KEY);
}

/// True once the branch being restored (the new mirror, or an incomplete backup) has received the bulk
/// table's definition, i.e. its data is streaming.
fn bulk_is_streaming(world: &World) -> bool {
    let Some(branch) = world
        .branch_names()
        .into_iter()
        .find(|n| n.ends_with("-incomplete") || n == "supaneon-mirror")
    else {
        return false;
    };
    let Some(b) = world.branch(&branch) else {
        return false;
    };
    let Some(db) = world
        .emu
        .physical_database(b["id"].as_str().unwrap(), "neondb")
    else {
        return false;
    };
    world
        .neon_pg
        .psql(&db, "SELECT to_regclass('public.bulk') IS NOT NULL")
        .trim()
        == "t"
}

/// Starts backup-run on a source holding the bulk table and returns once its data is streaming.
fn spawn_streaming_backup<'a>(world: &World, cli: &'a Cli) -> Spawned<'a> {
    world.source.psql("postgres", BULK_SQL);
    let child = cli.spawn(&["backup-run"]);
    wait_until("the bulk table to stream", Duration::from_secs(120), || {
        bulk_is_streaming(world)
    });
    child
}

/// The pids of pg_dump and pg_restore under `parent`, recorded while they run (once the parent exits they
/// would be reparented and no longer found by parent).
fn tool_pids(parent: u32) -> Vec<u32> {
    let mut pids = children_named(parent, "pg_dump");
    pids.extend(children_named(parent, "pg_restore"));
    pids
}

fn assert_all_gone(pids: &[u32]) {
    for pid in pids {
        assert!(!process_alive(*pid), "child {pid} is still running");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_5xx_at_branch_creation_fails_cleanly() {
    let world = World::start(15).await;
    world.fail_with_503("POST", "/branches");
    let run = world
        .cli()
        .env("SUPANEON_NEON_CALL_DEADLINE_SECONDS", "3")
        .run(&["backup-run"]);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.stderr.contains("Neon API") && run.stderr.contains("503"),
        "{}",
        run.describe()
    );
    assert!(run.stderr.contains("impact:"), "{}", run.describe());
    assert_no_backup_left(&world, &run);
    let result = run.output("result").unwrap_or_default();
    assert!(
        result.contains("could not create branch"),
        "result output: {result}\n{}",
        run.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_create_operation_deletes_the_unverified_mirror() {
    let world = World::start(15).await;
    world.emu.faults().push(
        FaultRule::new(
            "/branches",
            FaultAction::FailOperations {
                status: "error".into(),
            },
        )
        .method("POST"),
    );
    let run = world.cli().run(&["backup-run"]);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert_no_backup_left(&world, &run);
    assert_mirror_deleted(&world);
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_dump_killed_mid_stream_fails_and_stops_pg_restore() {
    let world = World::start(15).await;
    // The full strategy's path: the incomplete backup branch is what gets deleted.
    let cli = world.cli().env("SUPANEON_STRATEGY", "full");
    let child = spawn_streaming_backup(&world, &cli);
    let pid = child.pid();
    let tools = tool_pids(pid);
    assert_eq!(tools.len(), 2, "pg_dump and pg_restore: {tools:?}");
    let dumps = children_named(pid, "pg_dump");
    assert_eq!(dumps.len(), 1, "pg_dump children: {dumps:?}");
    send_signal("KILL", dumps[0]);
    let run = child.wait();
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(run.stderr.contains("pg_dump"), "{}", run.describe());
    assert_all_gone(&tools);
    assert_no_backup_left(&world, &run);
    assert!(
        world
            .emu
            .deleted_branch_names()
            .iter()
            .any(|n| n.ends_with("-incomplete")),
        "{:?}",
        world.emu.deleted_branch_names()
    );
}

/// Our sessions on the source (the snapshot's, the manifest's, pg_dump's), as the source sees them.
fn our_source_sessions(world: &World) -> usize {
    world
        .source
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'supaneon-sync%'",
        )
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_pg_dump_fails_the_run_within_the_watchdog_and_frees_the_source() {
    const STALL_SECONDS: u64 = 3;
    let world = World::start(15).await;
    let cli = world
        .cli()
        .env("SUPANEON_STALL_TIMEOUT_SECONDS", &STALL_SECONDS.to_string());
    let child = spawn_streaming_backup(&world, &cli);
    let pid = child.pid();
    let tools = tool_pids(pid);
    let dumps = children_named(pid, "pg_dump");
    assert_eq!(dumps.len(), 1, "pg_dump children: {dumps:?}");
    assert!(
        our_source_sessions(&world) >= 2,
        "the snapshot and pg_dump read the source"
    );
    // A frozen pg_dump: alive, holding its source session, sending nothing.
    send_signal("STOP", dumps[0]);
    let stopped_at = std::time::Instant::now();
    let run = child.wait();
    let took = stopped_at.elapsed();
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.stderr
            .contains(&format!("moved no byte for {STALL_SECONDS} s")),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("SUPANEON_STALL_TIMEOUT_SECONDS"),
        "the hint names the knob"
    );
    assert!(
        took < Duration::from_secs(STALL_SECONDS + 30),
        "the watchdog took {took:?}"
    );
    assert_all_gone(&tools);
    // The backends of the killed pg_dump and of the snapshot end as their connections close.
    wait_until(
        "our source sessions to end",
        Duration::from_secs(20),
        || our_source_sessions(&world) == 0,
    );
    assert_no_backup_left(&world, &run);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_source_stopping_mid_dump_fails_cleanly() {
    let mut world = World::start(15).await;
    let cli = world.cli();
    let child = spawn_streaming_backup(&world, &cli);
    let tools = tool_pids(child.pid());
    world.source.stop();
    let run = child.wait();
    assert_eq!(run.code, 1, "{}", run.describe());
    assert_all_gone(&tools);
    assert_no_backup_left(&world, &run);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_run_kills_the_children_and_deletes_the_branch() {
    let world = World::start(15).await;
    let cli = world.cli();
    let child = spawn_streaming_backup(&world, &cli);
    let pid = child.pid();
    let tools = tool_pids(pid);
    assert_eq!(tools.len(), 2, "pg_dump and pg_restore: {tools:?}");
    send_signal("TERM", pid);
    let run = child.wait();
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(run.stderr.contains("cancelled"), "{}", run.describe());
    assert_all_gone(&tools);
    assert_no_backup_left(&world, &run);
    assert_mirror_deleted(&world);
}

#[tokio::test(flavor = "multi_thread")]
async fn table_and_table_data_exclusions_are_honoured() {
    let world = World::start(15).await;
    let cli = world.cli();
    let file = cli.dir().join("supaneon.yml");
    std::fs::write(
        &file,
        "tables:\n  exclude: [public.audit_log]\n  exclude-data: [public.messages]\n",
    )
    .unwrap();
    let run = cli
        .env("SUPANEON_CONFIG_FILE", file.to_str().unwrap())
        .run(&["backup-run"]);
    assert_eq!(run.code, 0, "{}", run.describe());
    let name = run.output("backup-branch").unwrap();
    assert_eq!(
        world
            .psql_branch(&name, "SELECT to_regclass('public.audit_log') IS NULL")
            .trim(),
        "t"
    );
    assert_eq!(
        world
            .psql_branch(&name, "SELECT count(*) FROM public.messages")
            .trim(),
        "0"
    );
    assert_ne!(
        world
            .source
            .psql("postgres", "SELECT count(*) FROM public.messages")
            .trim(),
        "0"
    );
    run.assert_never_shows(SOURCE_PASSWORD);
}
