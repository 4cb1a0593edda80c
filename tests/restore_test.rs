//! restore-test end to end: the real binary, a Supabase-shaped source, the emulator on a Neon-shaped cluster.
//! Every run is scanned for the source password and the API key.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use supaneon_sync::branches;
use supaneon_sync::neon::CreateBranch;
use supaneon_testkit::send_signal;
use supaneon_testkit::test_majors;
use support::cli::{wait_until, Run};
use support::restore::{
    branch_password, create_owned_branch, create_plain_branch, failed_checks, neon_client,
    next_second, restore_test_branches, with_health_checks,
};
use support::world::{World, API_KEY, SOURCE_PASSWORD};

fn assert_no_secret(run: &Run) {
    run.assert_never_shows(SOURCE_PASSWORD);
    run.assert_never_shows(API_KEY);
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn backup(world: &World) -> String {
    let run = world
        .cli()
        .env("SUPANEON_PRUNE_AFTER_BACKUP", "false")
        .run(&["backup-run"]);
    assert_eq!(run.code, 0, "{}", run.describe());
    run.output("backup-branch").expect("backup-branch output")
}

/// The whole life of restore tests on one world: no backup yet, a fresh backup passing (with an incomplete
/// newer one passed over), user checks that must return exactly one true, a tampered backup failing exactly
/// the matching checks, and a foreign backup without a manifest.
#[tokio::test(flavor = "multi_thread")]
async fn restore_tests_pass_on_a_fresh_backup_and_fail_exactly_what_was_tampered_with() {
    let world = World::start(15).await;

    // No backup yet: exit 1 with that message, nothing created.
    let before = world.branch_names();
    let run = world.cli().run(&["restore-test"]);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.stderr.contains("no backup exists yet"),
        "{}",
        run.describe()
    );
    assert_eq!(world.branch_names(), before);
    assert_no_secret(&run);

    // A fresh backup, and a newer incomplete one that must be passed over.
    let good = backup(&world);
    let newer = branches::incomplete_backup_name(Utc::now() + chrono::Duration::hours(1));
    create_plain_branch(&world, &newer).await;

    let started = Instant::now();
    let cli = with_health_checks(
        world.cli(),
        &[
            ("profiles exist", "select count(*) > 0 from public.profiles"),
            // Unqualified: user checks run with the database's own search_path.
            ("todos exist", "select exists (select 1 from todos)"),
        ],
    );
    let run = cli.run(&["restore-test"]);
    let elapsed = started.elapsed();
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_no_secret(&run);
    assert_eq!(run.output("tested-backup").as_deref(), Some(good.as_str()));
    assert_eq!(run.output("checks-failed").as_deref(), Some("0"));
    assert_eq!(run.output("test-branch").as_deref(), Some(""));
    let passed: usize = run.output("checks-passed").unwrap().parse().unwrap();
    // connectivity, manifest, schemas, every table, 8 object kinds, 2 user checks.
    assert!(passed > 20, "{passed} checks\n{}", run.describe());
    let age: u64 = run.output("backup-age-seconds").unwrap().parse().unwrap();
    assert!(age < 3600, "age {age}");
    assert!(run.output("duration-seconds").is_some());
    assert!(
        run.summary
            .contains("| public.orders: rows and checksum | ✅ pass |"),
        "{}",
        run.describe()
    );
    assert!(
        run.summary.contains("| profiles exist | ✅ pass |"),
        "{}",
        run.describe()
    );
    assert!(failed_checks(&run).is_empty(), "{}", run.describe());
    assert!(
        restore_test_branches(&world).is_empty(),
        "{:?}",
        world.branch_names()
    );
    assert!(world.branch_names().contains(&newer));
    // The checks on the fixture take seconds, not minutes (the whole run here, branch copy included).
    assert!(
        elapsed < Duration::from_secs(60),
        "took {elapsed:?}\n{}",
        run.describe()
    );

    // User checks: exactly one row holding true, nothing else; failures never show row data.
    let secret_name = world
        .source
        .psql(
            "postgres",
            "SELECT full_name FROM public.profiles WHERE full_name IS NOT NULL ORDER BY id LIMIT 1",
        )
        .trim()
        .to_string();
    assert!(secret_name.len() > 3, "fixture full_name: {secret_name:?}");
    next_second();
    let cli = with_health_checks(
        world.cli(),
        &[
            ("still true", "select true"),
            ("is false", "select 1 = 2"),
            ("is null", "select null::boolean"),
            ("two rows", "select true from generate_series(1, 2)"),
            ("no rows", "select true where false"),
            ("an integer", "select 1"),
            ("two columns", "select true, true"),
            ("bad sql", "selec true"),
            ("escapes", "select true; delete from public.orders"),
            (
                "writes",
                "with d as (delete from public.orders returning 1) select count(*) = 0 from d",
            ),
            // The server's message would name the relation; only SQLSTATE 42P01 is shown.
            ("missing table", "select count(*) > 0 from organization_1"),
            (
                "quotes data",
                "select (select full_name from public.profiles where full_name is not null order by id limit 1)::int = 1",
            ),
        ],
    );
    let run = cli.run(&["restore-test"]);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert_no_secret(&run);
    run.assert_never_shows(&secret_name);
    run.assert_never_shows("organization_1");
    assert!(
        run.everything()
            .contains("SQLSTATE 42P01 (undefined_table)"),
        "{}",
        run.describe()
    );
    assert_eq!(
        failed_checks(&run),
        set(&[
            "is false",
            "is null",
            "two rows",
            "no rows",
            "an integer",
            "two columns",
            "bad sql",
            "escapes",
            "writes",
            "missing table",
            "quotes data"
        ]),
        "{}",
        run.describe()
    );
    assert!(
        run.summary.contains("| still true | ✅ pass |"),
        "{}",
        run.describe()
    );
    assert!(run.everything().contains("read-only"), "{}", run.describe());
    let kept = run.output("test-branch").expect("test-branch output");
    assert_eq!(restore_test_branches(&world), vec![kept.clone()]);
    // The write was refused: the test branch still holds every order of the backup.
    assert_eq!(
        world.psql_branch(&kept, "SELECT count(*) FROM public.orders"),
        world.psql_branch(&good, "SELECT count(*) FROM public.orders")
    );

    // Tamper with the backup after the fact: one row and one policy.
    world.psql_branch(
        &good,
        "SET session_replication_role = replica; \
         DELETE FROM public.orders WHERE id = (SELECT id FROM public.orders ORDER BY id LIMIT 1); \
         DROP POLICY \"Users can update own profile\" ON public.profiles;",
    );
    next_second();
    let run = world.cli().run(&["restore-test", "--backup", &good]);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert_no_secret(&run);
    assert_eq!(
        failed_checks(&run),
        set(&[
            "public.orders: rows and checksum",
            "policies",
            "policy \"Users can update own profile\" on public.profiles"
        ]),
        "{}",
        run.describe()
    );
    for other in ["public.todos", "public.profiles", "public.messages"] {
        assert!(
            run.summary
                .contains(&format!("| {other}: rows and checksum | ✅ pass |")),
            "{other}\n{}",
            run.describe()
        );
    }
    assert_eq!(run.output("checks-failed").as_deref(), Some("3"));
    let kept_now = run.output("test-branch").expect("test-branch output");
    assert_ne!(kept_now, kept);
    // The role's password on the branch the run connected to shows nowhere.
    let password = branch_password(&world, &kept_now).await;
    run.assert_never_shows(&password);
    let branch = world
        .branch(&kept_now)
        .expect("the failed test branch is kept");
    let expires = branch["expires_at"].as_str().expect("an expiry");
    let expires: chrono::DateTime<Utc> = expires.parse().unwrap();
    let hours = (expires - Utc::now()).num_hours();
    assert!((70..=72).contains(&hours), "expires in {hours} h");
    let log = format!("{}\n{}", run.stdout, run.stderr);
    for needle in [
        kept_now.as_str(),
        "public.orders: rows and checksum",
        "policies",
        "kept",
    ] {
        assert!(log.contains(needle), "{needle}\n{}", run.describe());
    }

    // At most one failed test branch is kept: the newer failure replaced the older one.
    assert_eq!(restore_test_branches(&world), vec![kept_now.clone()]);

    // A hand-made branch named like a newer backup, without our annotations, is never chosen.
    create_plain_branch(&world, "backup-29991231T235959Z").await;
    next_second();
    let run = world.cli().run(&["restore-test"]);
    assert_ne!(
        run.output("tested-backup").as_deref(),
        Some("backup-29991231T235959Z"),
        "{}",
        run.describe()
    );
    let run = world
        .cli()
        .run(&["restore-test", "--backup", "backup-29991231T235959Z"]);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.stderr
            .contains("not a complete backup of this source made by supaneon-sync"),
        "{}",
        run.describe()
    );

    // A branch of ours with a backup's name but no manifest: a failed "manifest present".
    next_second();
    let foreign = branches::backup_name(Utc::now());
    create_owned_branch(&world, &foreign).await;
    next_second();
    let run = world.cli().run(&["restore-test"]);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert_eq!(
        run.output("tested-backup").as_deref(),
        Some(foreign.as_str())
    );
    assert_eq!(
        failed_checks(&run),
        set(&["manifest present"]),
        "{}",
        run.describe()
    );
    assert_no_secret(&run);
}

/// An API failure creating the test branch leaves nothing; SIGTERM during the checks deletes the test branch; a
/// branch nobody can connect to fails "connectivity" and is kept.
#[tokio::test(flavor = "multi_thread")]
async fn api_errors_and_cancellation_leave_no_test_branch_and_a_dead_branch_is_kept() {
    let world = World::start(15).await;
    let good = backup(&world);

    // A chosen backup that does not exist: exit 1, nothing created.
    let before = world.branch_names();
    let run = world
        .cli()
        .run(&["restore-test", "--backup", "backup-20200101T000000Z"]);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(run.stderr.contains("does not exist"), "{}", run.describe());
    assert_eq!(world.branch_names(), before);

    world.fail_with_503("POST", "/branches");
    let run = world
        .cli()
        .env("SUPANEON_NEON_CALL_DEADLINE_SECONDS", "3")
        .run(&["restore-test"]);
    world.emu.faults().clear();
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(run.stderr.contains("503"), "{}", run.describe());
    assert!(
        restore_test_branches(&world).is_empty(),
        "{:?}",
        world.branch_names()
    );
    assert_no_secret(&run);

    // A user check that sleeps holds the run inside the health checks while the signal arrives.
    let cli = with_health_checks(world.cli(), &[("slow", "select pg_sleep(25) is not null")]);
    let child = cli.spawn(&["restore-test", "--backup", &good]);
    let pid = child.pid();
    wait_until(
        "the slow health check to run",
        Duration::from_secs(60),
        || {
            world
            .neon_pg
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(25)%' AND pid <> pg_backend_pid()",
            )
            .trim()
            == "1"
        },
    );
    assert_eq!(restore_test_branches(&world).len(), 1);
    let signalled = Instant::now();
    send_signal("TERM", pid);
    let run = child.wait();
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "the run waited for the check instead of stopping"
    );
    assert!(run.stderr.contains("cancelled"), "{}", run.describe());
    assert!(
        restore_test_branches(&world).is_empty(),
        "{:?}",
        world.branch_names()
    );
    assert_no_secret(&run);

    // The branch exists but nobody can log in to it: a failed connectivity check keeps it for inspection.
    world
        .neon_pg
        .psql("postgres", "ALTER ROLE neondb_owner NOLOGIN");
    let run = world.cli().run(&["restore-test"]);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert_eq!(
        failed_checks(&run),
        BTreeSet::from(["connectivity".to_string()]),
        "{}",
        run.describe()
    );
    let kept = run.output("test-branch").expect("test-branch output");
    assert_eq!(restore_test_branches(&world), vec![kept.clone()]);
    let password = branch_password(&world, &kept).await;
    run.assert_never_shows(&password);
    assert_no_secret(&run);
}

/// One way to tamper with a backup after the fact, and the checks restore-test must fail for it.
struct Tampering {
    sql: &'static str,
    failed: &'static [&'static str],
    detail: &'static str,
}

const TAMPERINGS: &[Tampering] = &[
    Tampering {
        sql: "ALTER TABLE public.todos DISABLE ROW LEVEL SECURITY",
        failed: &["table public.todos"],
        detail: "row level security disabled, expected enabled",
    },
    Tampering {
        sql: "ALTER TABLE public.orders NO FORCE ROW LEVEL SECURITY",
        failed: &["table public.orders"],
        detail: "FORCE row level security disabled, expected enabled",
    },
    Tampering {
        sql: "SELECT setval('public.orders_order_no_seq', 1)",
        failed: &["sequence public.orders_order_no_seq"],
        detail: "at 1, expected at",
    },
    Tampering {
        sql: "ALTER TABLE public.todos ALTER COLUMN id RESTART WITH 1",
        failed: &["sequence public.todos_id_seq"],
        detail: "never used (nextval not called), expected at",
    },
    Tampering {
        sql: "ALTER POLICY \"Individuals can view their own todos\" ON public.todos USING (true)",
        failed: &["policy \"Individuals can view their own todos\" on public.todos"],
        detail: "USING differs",
    },
    Tampering {
        sql: "ALTER TABLE public.todos ALTER COLUMN user_id DROP DEFAULT",
        failed: &["column user_id of table public.todos"],
        detail: "default differs",
    },
    Tampering {
        sql: "ALTER TABLE public.todos ALTER COLUMN task DROP NOT NULL",
        failed: &["column task of table public.todos"],
        detail: "NOT NULL differs",
    },
    Tampering {
        sql: "ALTER TABLE public.todos DISABLE TRIGGER USER",
        failed: &["trigger todos_audit on public.todos"],
        detail: "disabled, expected enabled",
    },
    Tampering {
        sql: "CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE \
              AS $$ SELECT '00000000-0000-0000-0000-000000000001'::uuid $$",
        failed: &["function auth.uid()"],
        detail: "definition differs",
    },
    Tampering {
        sql: "ALTER FUNCTION public.handle_new_user() SECURITY INVOKER",
        failed: &["function public.handle_new_user()"],
        detail: "SECURITY INVOKER, expected SECURITY DEFINER",
    },
    Tampering {
        sql: "DROP POLICY \"Admins see every todo\" ON public.todos",
        failed: &[
            "policy \"Admins see every todo\" on public.todos",
            "policies",
        ],
        detail: "missing",
    },
    Tampering {
        sql: "ALTER POLICY \"Owners read their orders\" ON public.orders TO anon",
        failed: &["policy \"Owners read their orders\" on public.orders"],
        detail: "roles differs",
    },
    Tampering {
        sql: "REVOKE SELECT ON public.todos FROM authenticated",
        failed: &["privileges on table public.todos"],
        detail: "missing grants authenticated:SELECT",
    },
    Tampering {
        sql: "COMMENT ON TABLE public.profiles IS 'changed'",
        failed: &["comment on table public.profiles"],
        detail: "not in the manifest",
    },
];

/// Each tampering, on its own copy of one verified backup: restore-test exits 1 and fails exactly the
/// checks that name the changed object.
#[tokio::test(flavor = "multi_thread")]
async fn restore_test_names_every_definition_tampered_with() {
    for major in test_majors() {
        let world = World::start(major).await;
        // FORCE RLS on a table the source's owner bypasses anyway (BYPASSRLS), as on Supabase.
        world.source.psql(
            "postgres",
            "ALTER TABLE public.orders FORCE ROW LEVEL SECURITY",
        );
        let good = backup(&world);
        let good_id = world.branch(&good).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        for (i, tampering) in TAMPERINGS.iter().enumerate() {
            // A copy of the backup under another backup name (an earlier one: a name in the future is
            // never taken for ours), carrying our annotations, tampered with.
            let name = branches::backup_name(Utc::now() - chrono::Duration::hours(1 + i as i64));
            neon_client(&world)
                .create_branch(&CreateBranch {
                    name: name.clone(),
                    parent_id: Some(good_id.clone()),
                    expires_at: None,
                    annotations: supaneon_sync::ownership::annotations(
                        supaneon_sync::ownership::KIND_BACKUP,
                        "tampered",
                        &world.fingerprint(),
                    ),
                    with_endpoint: true,
                })
                .await
                .unwrap();
            world.psql_branch(&name, tampering.sql);
            let run = world.cli().run(&["restore-test", "--backup", &name]);
            assert_eq!(
                run.code,
                1,
                "PG {major}: {}\n{}",
                tampering.sql,
                run.describe()
            );
            assert_no_secret(&run);
            assert_eq!(
                failed_checks(&run),
                set(tampering.failed),
                "PG {major}: {}\n{}",
                tampering.sql,
                run.describe()
            );
            let line = format!("| {} | ❌ FAIL | {}", tampering.failed[0], tampering.detail);
            assert!(
                run.summary.contains(&line),
                "PG {major}: {line}\n{}",
                run.summary
            );
            // The plan allows 10 branches: the kept test branch and the copy go.
            let kept = run
                .output("test-branch")
                .expect("the failed test branch is kept");
            for branch in [kept.as_str(), name.as_str()] {
                let id = world.branch(branch).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string();
                neon_client(&world).delete_branch(&id).await.unwrap();
            }
        }
        // The untouched backup still passes.
        let run = world.cli().run(&["restore-test", "--backup", &good]);
        assert_eq!(run.code, 0, "PG {major}: {}", run.describe());
        assert!(
            run.summary.contains("| definitions | ✅ pass |"),
            "{}",
            run.summary
        );
    }
}
