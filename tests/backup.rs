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
    }
}

/// What a user adds to the Supabase-shaped source that earlier versions lost without a word.
const USER_CONTENT_SQL: &str = r#"
SET ROLE postgres;
CREATE SCHEMA etl;
CREATE TABLE etl.imports (id int PRIMARY KEY, payload text);
INSERT INTO etl.imports SELECT g, 'row ' || g FROM generate_series(1, 123) g;
CREATE SCHEMA pgmq;
CREATE TABLE pgmq.q_orders (msg_id bigint PRIMARY KEY, message jsonb);
INSERT INTO pgmq.q_orders VALUES (1, '{"order": 1}'), (2, '{"order": 2}');
CREATE TABLE public.documents (id int PRIMARY KEY, body oid);
INSERT INTO public.documents VALUES (1, lo_from_bytea(0, 'first document')),
                                    (2, lo_from_bytea(0, 'second document'));
SELECT lo_from_bytea(0, 'an object the API role owns') \gset
ALTER LARGE OBJECT :lo_from_bytea OWNER TO authenticated;
INSERT INTO public.documents VALUES (3, :lo_from_bytea);
RESET ROLE;
"#;

#[tokio::test(flavor = "multi_thread")]
async fn nothing_the_user_created_is_lost_silently() {
    for major in test_majors() {
        let world = World::start(major).await;
        world.source.psql("postgres", USER_CONTENT_SQL);
        let run = world.cli().run(&["backup-run"]);
        assert_eq!(run.code, 0, "PG {major}: {}", run.describe());
        run.assert_never_shows(SOURCE_PASSWORD);
        run.assert_never_shows(API_KEY);
        let name = run.output("backup-branch").expect("backup-branch output");

        // User schemas with platform names are backed up.
        assert_eq!(
            world
                .psql_branch(&name, "SELECT count(*) FROM etl.imports")
                .trim(),
            "123",
            "PG {major}"
        );
        assert_eq!(
            world
                .psql_branch(&name, "SELECT count(*) FROM pgmq.q_orders")
                .trim(),
            "2",
            "PG {major}"
        );
        // Large objects arrive with their data and owners, under the OIDs the table points at.
        assert_eq!(
            world
                .psql_branch(
                    &name,
                    "SELECT string_agg(convert_from(lo_get(d.body), 'UTF8') || '/' || \
                            (m.lomowner::regrole::text = 'authenticated')::text, ',' ORDER BY d.id) \
                       FROM public.documents d JOIN pg_largeobject_metadata m ON m.oid = d.body"
                )
                .trim(),
            "first document/false,second document/false,an object the API role owns/true",
            "PG {major}"
        );
        let manifest = world.psql_branch(
            &name,
            "SELECT manifest->'large_objects'->>'count' FROM supaneon_sync.backup_manifest",
        );
        assert_eq!(manifest.trim(), "3", "PG {major}");
        // What is not backed up is named, with the reason, in the run's output and the summary.
        for line in [
            "vault.secrets: encrypted with a key that exists only on the Supabase server",
            "cron.job: pg_cron's scheduled jobs",
            "schema realtime: Supabase platform schema",
        ] {
            assert!(
                run.stdout.contains(line),
                "PG {major}: {line}\n{}",
                run.describe()
            );
            assert!(
                run.summary.contains(line),
                "PG {major}: {line}\n{}",
                run.summary
            );
        }
        assert!(run.summary.contains("**Not backed up**"), "{}", run.summary);
    }
}
