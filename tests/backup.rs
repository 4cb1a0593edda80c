//! backup-run end to end: the real binary, a Supabase-shaped source cluster, the emulator on a Neon-shaped
//! cluster. Every run is scanned for the source password and the API key.

mod support;

use supaneon_testkit::test_majors;
use support::world::{World, API_KEY, SOURCE_PASSWORD};

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
        assert_eq!(world.backup_names(), vec![name.clone()]);
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
        // The second by the full strategy: an independent copy.
        let second = world
            .cli()
            .env("SUPANEON_PRUNE_AFTER_BACKUP", "false")
            .env("SUPANEON_STRATEGY", "full")
            .run(&["backup"]);
        assert_eq!(second.code, 0, "PG {major}: {}", second.describe());
        assert_eq!(world.backup_names().len(), 2, "{:?}", world.branch_names());
        // Both carry planner statistics, which pg_dump does not: each copy is analyzed once restored
        // and verified (the snapshot through its mirror), so a failover does not plan blind.
        let analyzed: Vec<String> = world
            .backup_names()
            .iter()
            .map(|b| {
                world.psql_branch(
                    b,
                    "SELECT string_agg(DISTINCT tablename, ',' ORDER BY tablename) FROM pg_stats \
                     WHERE schemaname = 'public'",
                )
            })
            .collect();
        assert!(!analyzed[0].trim().is_empty(), "PG {major}: {analyzed:?}");
        assert_eq!(analyzed[0], analyzed[1], "PG {major}");

        // Storage as Neon bills it: the snapshot backup (a child of the mirror) wrote nothing, the full
        // one is billed for about what it holds, and the project for at least the sum.
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
        assert_eq!(second.output("strategy").as_deref(), Some("full"));
        assert_eq!(run.output("strategy").as_deref(), Some("snapshot"));
        // Newest first: the full backup, then the snapshot.
        assert!(written[0] > 100_000, "{written:?}");
        assert_eq!(written[1], 0, "{written:?}");
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
GRANT SELECT ON LARGE OBJECT :lo_from_bytea TO anon;
CREATE TABLE public.products (id int PRIMARY KEY, name text);
INSERT INTO public.products VALUES (1, 'tea'), (2, 'coffee');
ALTER TABLE public.products ENABLE ROW LEVEL SECURITY;
CREATE POLICY "signed in can read" ON public.products FOR SELECT TO authenticated USING (true);
CREATE TABLE public.internal_notes (id int);
REVOKE ALL ON public.internal_notes FROM anon, authenticated;
RESET ROLE;
ALTER DATABASE postgres SET app.settings.api_url = 'https://api.example.invalid';
ALTER DATABASE postgres SET idle_in_transaction_session_timeout = '45s';
-- The nightly job refreshes public.todo_stats; until then it is stale.
SET ROLE postgres;
INSERT INTO public.todos (user_id, task) SELECT user_id, 'A task after the refresh' FROM public.todos LIMIT 1;
RESET ROLE;
ALTER DATABASE postgres SET app.settings.jwt_secret = 'jwt-Secret-4e1f-distinctive';
"#;

/// The same query on the source and the branch, as the superuser of each.
fn both(world: &World, branch: &str, sql: &str) -> (String, String) {
    (
        world.source.psql("postgres", sql).trim().to_string(),
        world.psql_branch(branch, sql).trim().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_the_user_created_is_lost_silently() {
    for major in test_majors() {
        let world = World::start(major).await;
        world.source.psql("postgres", USER_CONTENT_SQL);
        let run = world.cli().run(&["backup-run"]);
        assert_eq!(run.code, 0, "PG {major}: {}", run.describe());
        run.assert_never_shows(SOURCE_PASSWORD);
        run.assert_never_shows(API_KEY);
        run.assert_never_shows("jwt-Secret-4e1f-distinctive");
        let name = run.output("backup-branch").expect("backup-branch output");

        // Grants and default privileges: the API roles read what they read on the source.
        for sql in [
            "SET ROLE authenticated; SELECT string_agg(name, ',' ORDER BY id) FROM public.products",
            "SELECT has_table_privilege('anon', 'public.internal_notes', 'SELECT')",
            "SELECT has_table_privilege('authenticated', 'public.todos', 'INSERT')",
        ] {
            let (source, branch) = both(&world, &name, sql);
            assert_eq!(source, branch, "PG {major}: {sql}");
        }
        assert_eq!(
            both(
                &world,
                &name,
                "SET ROLE authenticated; SELECT count(*) FROM public.products"
            )
            .1,
            "2"
        );
        let defaults = world.psql_branch(
            &name,
            "SELECT count(*) FROM pg_default_acl WHERE defaclnamespace = 'public'::regnamespace",
        );
        assert_eq!(
            defaults.trim(),
            "3",
            "PG {major}: tables, sequences, functions"
        );
        // Database and role settings are carried over.
        let db_settings = world.psql_branch(
            &name,
            "SELECT array_to_string(setconfig, ' ') FROM pg_db_role_setting \
              WHERE setrole = 0 AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
        );
        assert!(
            db_settings.contains("idle_in_transaction_session_timeout=45s"),
            "PG {major}: {db_settings}\n{}",
            run.describe()
        );
        // Custom settings need a privilege a branch's role may lack: carried over, or reported by name.
        for custom in ["app.settings.api_url", "app.settings.jwt_secret"] {
            let reported = format!("database setting {custom} was not carried over to the branch");
            assert!(
                db_settings.contains(&format!("{custom}="))
                    || (run.summary.contains(&reported) && run.stdout.contains(&reported)),
                "PG {major}: {custom}: {db_settings}\n{}",
                run.describe()
            );
        }
        let role_settings = world.psql_branch(
            &name,
            "SELECT array_to_string(setconfig, ' ') FROM pg_db_role_setting s \
               JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = 'authenticated'",
        );
        assert!(
            role_settings.contains("statement_timeout=8s"),
            "PG {major}: {role_settings}"
        );
        // A grant to a role the branch does not have is reported, not fatal.
        assert!(
            run.summary
                .contains("role \"dashboard_user\" does not exist"),
            "PG {major}: {}",
            run.summary
        );

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
        let (source, branch) = both(
            &world,
            &name,
            "SET ROLE anon; SELECT convert_from(lo_get(body), 'UTF8') FROM public.documents d \
              JOIN pg_largeobject_metadata m ON m.oid = d.body WHERE d.id = 3",
        );
        assert_eq!(
            (source.as_str(), branch.as_str()),
            ("an object the API role owns", "an object the API role owns"),
            "PG {major}"
        );
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
        // A stale materialized view is refreshed by the restore: said so, never counted as verified.
        let line = "public.todo_stats: refreshed on restore:";
        assert!(
            run.summary.contains("**Refreshed on restore**"),
            "{}",
            run.summary
        );
        assert!(
            run.summary.contains(line) && run.stdout.contains(line),
            "PG {major}: {}",
            run.describe()
        );
        assert!(
            run.output("result")
                .unwrap()
                .contains("1 materialized view refreshed on restore, not verified"),
            "PG {major}: {}",
            run.describe()
        );
        let stored = world.psql_branch(
            &name,
            "SELECT t->>'refreshed_on_restore' FROM supaneon_sync.backup_manifest, \
               jsonb_array_elements(manifest->'tables') t WHERE t->>'name' = 'todo_stats'",
        );
        assert_eq!(stored.trim(), "true", "PG {major}");
    }
}

/// The binary with a YAML configuration file.
fn with_config(world: &World, yaml: &str) -> support::cli::Cli {
    let cli = world.cli();
    let path = cli.dir().join("supaneon-sync.yml");
    std::fs::write(&path, yaml).unwrap();
    cli.env("SUPANEON_CONFIG_FILE", path.to_str().unwrap())
        .env("SUPANEON_PRUNE_AFTER_BACKUP", "false")
}

fn next_second() {
    let now = chrono::Utc::now().timestamp();
    while chrono::Utc::now().timestamp() == now {
        std::thread::yield_now();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exclusions_follow_partitions_and_name_what_depends_on_them() {
    for major in test_majors() {
        let world = World::start(major).await;
        let source_rows = world
            .source
            .psql("postgres", "SELECT count(*) FROM public.events");
        assert!(source_rows.trim().parse::<i64>().unwrap() > 0);

        // A view on the excluded table is named before anything is created.
        world.source.psql(
            "postgres",
            "CREATE VIEW public.recent_events AS SELECT * FROM public.events; \
             CREATE TABLE public.event_notes (id int, event_id bigint, occurred_at timestamptz, \
               FOREIGN KEY (event_id, occurred_at) REFERENCES public.events (id, occurred_at))",
        );
        let run = with_config(&world, "tables:\n  exclude: [public.events]\n").run(&["backup-run"]);
        assert_eq!(run.code, 1, "PG {major}: {}", run.describe());
        for named in [
            "view public.recent_events reads public.events, which is excluded",
            "foreign key event_notes_event_id_occurred_at_fkey of public.event_notes references public.events, which is excluded",
        ] {
            assert!(run.stderr.contains(named) || run.stdout.contains(named), "PG {major}: {named}\n{}", run.describe());
        }
        assert!(
            world
                .branch_names()
                .iter()
                .all(|n| !n.starts_with("backup-")),
            "{:?}",
            world.branch_names()
        );
        run.assert_never_shows(SOURCE_PASSWORD);
        world.source.psql(
            "postgres",
            "DROP VIEW public.recent_events; DROP TABLE public.event_notes",
        );

        // Excluding the partitioned table excludes its partitions.
        let run = with_config(&world, "tables:\n  exclude: [public.events]\n").run(&["backup-run"]);
        assert_eq!(run.code, 0, "PG {major}: {}", run.describe());
        let name = run.output("backup-branch").unwrap();
        let left = world.psql_branch(
            &name,
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname LIKE 'events%'",
        );
        assert_eq!(left.trim(), "0", "PG {major}");

        // exclude-data on it empties every partition, and the manifest says so.
        next_second();
        let run =
            with_config(&world, "tables:\n  exclude-data: [public.events]\n").run(&["backup-run"]);
        assert_eq!(run.code, 0, "PG {major}: {}", run.describe());
        let name = run.output("backup-branch").unwrap();
        assert_eq!(
            world
                .psql_branch(&name, "SELECT count(*) FROM public.events")
                .trim(),
            "0",
            "PG {major}"
        );
        let excluded = world.psql_branch(
            &name,
            "SELECT string_agg(t->>'name', ',' ORDER BY t->>'name') FROM supaneon_sync.backup_manifest, \
               jsonb_array_elements(manifest->'tables') t WHERE (t->>'data_excluded')::boolean \
               AND t->>'schema' = 'public'",
        );
        assert_eq!(excluded.trim(), "events_2025,events_2026", "PG {major}");
    }
}
