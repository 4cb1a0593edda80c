//! backup-run end to end: the real binary, a Supabase-shaped source cluster, the emulator on a Neon-shaped
//! cluster. Every run is scanned for the source password and the API key.

mod support;

use supaneon_testkit::test_majors;
use support::world::{World, API_KEY, SOURCE_PASSWORD};

fn complete_backups(world: &World) -> Vec<String> {
    world
        .branch_names()
        .into_iter()
        .filter(|n| supaneon_sync::config::is_backup_branch_name(n))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fixture_backs_up_verified_and_a_second_run_makes_a_second_branch() {
    for major in test_majors() {
        let world = World::start(major).await;
        let run = world.cli().run(&["backup-run"]);
        assert_eq!(run.code, 0, "PG {major}: {}", run.describe());
        run.assert_never_shows(SOURCE_PASSWORD);
        run.assert_never_shows(API_KEY);

        let name = run.output("backup-branch").expect("backup-branch output");
        assert!(
            supaneon_sync::config::is_backup_branch_name(&name),
            "{name}"
        );
        assert_eq!(complete_backups(&world), vec![name.clone()]);
        assert!(
            !world
                .branch_names()
                .iter()
                .any(|n| n.ends_with("-incomplete")),
            "{:?}",
            world.branch_names()
        );
        let rows: i64 = run.output("rows").unwrap().parse().unwrap();
        assert!(rows > 1000, "rows {rows}");
        assert_eq!(run.output("sha256").unwrap().len(), 64);
        let streamed: u64 = run.output("bytes").unwrap().parse().unwrap();
        let read: u64 = run.output("source-bytes").unwrap().parse().unwrap();
        assert!(
            read > streamed,
            "the schema archive counts too: {read} vs {streamed}"
        );
        assert!(
            run.summary.contains("of Supabase's free 5 GB of egress"),
            "{}",
            run.summary
        );
        assert!(run.summary.contains("| public |"), "{}", run.summary);

        // The branch holds the data, the RLS policies, and the manifest.
        let policies = world.psql_branch(
            &name,
            "SELECT count(*) FROM pg_policies WHERE schemaname = 'public'",
        );
        let source_policies = world.source.psql(
            "postgres",
            "SELECT count(*) FROM pg_policies WHERE schemaname = 'public'",
        );
        assert_eq!(policies, source_policies);
        assert!(policies.trim().parse::<i64>().unwrap() > 0);
        let stored = world.psql_branch(&name, "SELECT count(*) FROM supaneon_sync.backup_manifest");
        assert_eq!(stored.trim(), "1");

        // Branch names have one-second resolution; wait for the next second by watching the clock.
        let first_second = chrono::Utc::now().timestamp();
        while chrono::Utc::now().timestamp() == first_second {
            std::thread::yield_now();
        }
        let second = world
            .cli()
            .env("SUPANEON_PRUNE_AFTER_BACKUP", "false")
            .run(&["backup"]);
        assert_eq!(second.code, 0, "PG {major}: {}", second.describe());
        assert_eq!(
            complete_backups(&world).len(),
            2,
            "{:?}",
            world.branch_names()
        );

        // Storage as Neon bills it: today each backup is a full restore, so each is billed for about
        // what it holds, and the project for the sum.
        let list = world.cli().run(&["list", "--json"]);
        assert_eq!(list.code, 0, "{}", list.describe());
        let listing: serde_json::Value =
            serde_json::from_str(&list.stdout).expect("one JSON document");
        let billed = listing["storage_billed_bytes"]
            .as_u64()
            .expect("storage reported");
        let written: Vec<u64> = listing["backups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["written_bytes"].as_u64().expect("written bytes"))
            .collect();
        assert_eq!(written.len(), 2, "{listing}");
        assert!(written.iter().all(|w| *w > 100_000), "{written:?}");
        assert!(
            billed >= written.iter().sum::<u64>(),
            "{billed} vs {written:?}"
        );
        assert_eq!(listing["storage_allowance_bytes"], 512 * 1024 * 1024);
        let table = world.cli().run(&["list"]);
        assert!(
            table.stdout.contains("Neon storage billed by Neon's rule:")
                && table.stdout.contains("of the free plan's 512 MB"),
            "{}",
            table.describe()
        );
    }
}
