//! A migration on the source (changed definitions) rebuilds the mirror in full, in place: its database is
//! emptied and restored again on the same branch, so the backups taken before keep their content as
//! copy-on-write children, no second mirror takes a branch slot or a second copy of the database in
//! storage, and the new backup is verified like any other. A rebuild cut off after the mirror was
//! emptied is done again by the next run.

mod support;

use supaneon_testkit::test_majors;
use support::cli::Run;
use support::mirror::{mirror_id, CONTENT, TWO_TABLES};
use support::world::{no_secrets, World};

/// A migration (a new column with a default, a new index) and a few rows changed with it.
const MIGRATION: &str = "
SET ROLE postgres;
ALTER TABLE public.entries ADD COLUMN tag text NOT NULL DEFAULT 'migrated';
CREATE INDEX entries_v ON public.entries (v);
UPDATE public.gated SET v = -v WHERE id % 40 = 1;
RESET ROLE;
";

/// A second migration: a new table.
const SECOND_MIGRATION: &str = "
SET ROLE postgres;
CREATE TABLE public.later (id int PRIMARY KEY, what text);
INSERT INTO public.later SELECT g, 'later ' || g FROM generate_series(1, 500) g;
RESET ROLE;
";

fn rebuilt_because(run: &Run, why: &str) {
    let line = format!("the mirror was restored in full ({why}");
    assert!(run.stdout.contains(&line), "{line}: {}", run.describe());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migration_rebuilds_the_mirror_in_place_and_earlier_backups_keep_their_content() {
    for major in test_majors() {
        let world = World::start(major).await;
        world.source.psql("postgres", TWO_TABLES);
        let first = world.cli().run(&["backup-run"]);
        assert_eq!(first.code, 0, "PG {major}: {}", first.describe());
        let b1 = first.output("backup-branch").expect("backup-branch");
        let mirror = mirror_id(&world);
        let before = world.source.psql("postgres", CONTENT);

        world.source.psql("postgres", MIGRATION);
        support::prune::next_second();
        let second = world.cli().run(&["backup-run"]);
        no_secrets(&second);
        assert_eq!(second.code, 0, "PG {major}: {}", second.describe());
        rebuilt_because(&second, "the definitions");
        let b2 = second.output("backup-branch").expect("backup-branch");
        // The same mirror branch, nothing retired beside it: one mirror and two backups.
        assert_eq!(mirror_id(&world), mirror, "{:?}", world.branch_names());
        let names = world.branch_names();
        assert!(
            names.len() == 4 && names.contains(&b1) && names.contains(&b2),
            "PG {major}: the default branch, the mirror and two backups: {names:?}"
        );
        assert_eq!(
            names
                .iter()
                .filter(|n| n.starts_with("supaneon-mirror"))
                .count(),
            1,
            "{names:?}"
        );
        // The new backup holds the migrated source; the first still holds what it was taken from.
        assert_eq!(
            world.psql_branch(&b2, CONTENT),
            world.source.psql("postgres", CONTENT)
        );
        assert_eq!(world.psql_branch(&b1, CONTENT), before);
        assert_eq!(
            world
                .psql_branch(
                    &b1,
                    "SELECT count(*) FROM information_schema.columns WHERE column_name = 'tag'"
                )
                .trim(),
            "0",
            "the first backup predates the migration"
        );
        // Storage: the backups wrote nothing; the mirror pays at most its size once, though every page
        // of its database was written again.
        for b in [&b1, &b2] {
            assert_eq!(world.written(b).await, 0, "{b} was written");
        }
        world.emu.refresh_storage().await;
        let m = world.branch("supaneon-mirror").expect("the mirror");
        let (logical, written_bytes) = (
            m["logical_size"].as_i64().unwrap(),
            m["written_data_bytes"].as_i64().unwrap(),
        );
        assert!(
            written_bytes > 0 && logical > 0,
            "{written_bytes} of {logical}"
        );

        // The next run after the rebuild syncs incrementally again.
        world
            .source
            .psql("postgres", "UPDATE public.gated SET v = v + 1 WHERE id = 7");
        support::prune::next_second();
        let third = world.cli().run(&["backup-run"]);
        assert_eq!(third.code, 0, "PG {major}: {}", third.describe());
        assert!(
            third.stdout.contains("the mirror was synced incrementally"),
            "{}",
            third.describe()
        );
        let test = world.cli().run(&["restore-test"]);
        assert_eq!(test.code, 0, "PG {major}: {}", test.describe());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_cut_off_after_the_mirror_was_emptied_is_done_by_the_next_run() {
    let world = World::start(15).await;
    world.source.psql("postgres", TWO_TABLES);
    let first = world.cli().run(&["backup-run"]);
    assert_eq!(first.code, 0, "{}", first.describe());
    let b1 = first.output("backup-branch").expect("backup-branch");
    let before = world.source.psql("postgres", CONTENT);
    let mirror = mirror_id(&world);

    // The mirror's database is deleted, and creating it again fails for the whole call's deadline.
    world.source.psql("postgres", SECOND_MIGRATION);
    world.fail_with_503("POST", "/databases");
    support::prune::next_second();
    let failed = world
        .cli()
        .env("SUPANEON_NEON_CALL_DEADLINE_SECONDS", "3")
        .run(&["backup-run"]);
    no_secrets(&failed);
    assert_eq!(failed.code, 1, "{}", failed.describe());
    assert!(
        failed.stderr.contains("create database") && failed.stderr.contains("503"),
        "{}",
        failed.describe()
    );
    assert!(
        failed.stderr.contains("the next run rebuilds the mirror"),
        "{}",
        failed.describe()
    );
    assert_eq!(
        world.emu.physical_database(&mirror, "neondb"),
        None,
        "the mirror was emptied before the failure"
    );
    assert_eq!(
        world.psql_branch(&b1, CONTENT),
        before,
        "the backup is untouched"
    );

    world.emu.faults().clear();
    let next = world.cli().run(&["backup-run"]);
    no_secrets(&next);
    assert_eq!(next.code, 0, "{}", next.describe());
    rebuilt_because(&next, "the mirror has no database neondb");
    assert_eq!(mirror_id(&world), mirror);
    let b2 = next.output("backup-branch").expect("backup-branch");
    assert_eq!(
        world.psql_branch(&b2, CONTENT),
        world.source.psql("postgres", CONTENT)
    );
    assert_eq!(
        world
            .psql_branch(&b2, "SELECT count(*) FROM public.later")
            .trim(),
        "500"
    );
    assert_eq!(world.psql_branch(&b1, CONTENT), before);
}
