//! The snapshot strategy end to end: the first run restores the mirror in full, later runs copy only what
//! changed, every backup is a copy-on-write child of the verified mirror that is written nothing, and a
//! mirror changed behind the tool's back is repaired, never snapshotted as it is.

mod support;

use supaneon_testkit::test_majors;
use support::world::{World, API_KEY, SOURCE_PASSWORD};

/// Tables the fixture lacks: a large keyed table with a trigger, a child with a cascading foreign key, a
/// keyless table, a generated column, an identity column and a second unique key.
const SCHEMA: &str = "
CREATE TABLE public.accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner text NOT NULL,
    balance numeric NOT NULL,
    doubled numeric GENERATED ALWAYS AS (balance * 2) STORED,
    tags jsonb);
CREATE TABLE public.audit (at bigint, what text);
CREATE FUNCTION public.audit_balance() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO public.audit VALUES (NEW.id, 'balance'); RETURN NEW; END$$;
CREATE TRIGGER accounts_audit AFTER UPDATE OR INSERT ON public.accounts
  FOR EACH ROW EXECUTE FUNCTION public.audit_balance();
CREATE TABLE public.ledger (
    id serial PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES public.accounts(id) ON DELETE CASCADE,
    amount numeric NOT NULL);
CREATE TABLE public.happenings (at int, payload json);
CREATE TABLE public.members (id int PRIMARY KEY, email text NOT NULL UNIQUE);
INSERT INTO public.members SELECT g, 'm' || g FROM generate_series(1, 100000) g;
INSERT INTO public.accounts (owner, balance, tags)
  SELECT 'owner ' || g, g % 1000, jsonb_build_object('g', g) FROM generate_series(1, 20000) g;
INSERT INTO public.ledger (account_id, amount) SELECT 1 + g % 20000, g FROM generate_series(1, 5000) g;
INSERT INTO public.happenings SELECT g, json_build_object('e', g) FROM generate_series(1, 3000) g;
ALTER DATABASE postgres SET idle_in_transaction_session_timeout = '41s';
ALTER DATABASE postgres SET work_mem = '5MB';
ALTER ROLE authenticated IN DATABASE postgres SET statement_timeout = '7s';
SET ROLE postgres;
SELECT lo_from_bytea(4242001, 'first object'), lo_from_bytea(4242002, 'second object');
GRANT SELECT ON LARGE OBJECT 4242001 TO PUBLIC;
RESET ROLE;
";

/// About 1 % of the rows change: updates, inserts, deletes (cascading), and a keyless table's rows;
/// a database setting changes, another goes, a role's setting in the database changes, and a custom
/// setting holding a secret comes.
const CHANGE: &str = "
ALTER DATABASE postgres SET idle_in_transaction_session_timeout = '42s';
ALTER DATABASE postgres RESET work_mem;
ALTER DATABASE postgres SET app.settings.mirror_secret = 'mirror-Secret-77';
ALTER ROLE authenticated IN DATABASE postgres SET statement_timeout = '9s';
UPDATE public.accounts SET balance = balance + 1 WHERE id % 100 = 7;
INSERT INTO public.accounts (owner, balance) SELECT 'new ' || g, g FROM generate_series(1, 50) g;
DELETE FROM public.accounts WHERE id IN (11, 12, 13);
INSERT INTO public.ledger (account_id, amount) VALUES (20001, 1), (20002, 2);
UPDATE public.happenings SET payload = '{\"changed\": true}' WHERE at = 42;
SET ROLE postgres;
SELECT lo_put(4242001, 0, 'FIRST'), lo_unlink(4242002), lo_from_bytea(4242003, 'third object');
GRANT SELECT ON LARGE OBJECT 4242003 TO PUBLIC;
RESET ROLE;
";

/// Updates and inserts only in accounts (no row deleted): the rows written since the last sync are all
/// that changed there. In members (large enough to be merged in slices, one per stream) an email moved
/// to another member and a member came (as many rows as before), which merging by written rows alone
/// cannot do: the old holder of the unique email is still on the mirror, so the slice holding the
/// moved email fails and is rolled back.
const WRITTEN_ONLY: &str = "
UPDATE public.accounts SET balance = balance + 2 WHERE id % 100 = 3;
INSERT INTO public.accounts (owner, balance) SELECT 'newer ' || g, g FROM generate_series(1, 20) g;
DELETE FROM public.members WHERE id = 5;
UPDATE public.members SET email = 'm5' WHERE id = 6;
INSERT INTO public.members VALUES (100001, 'm100001');
";

/// The settings of a branch's database, its own and its roles' in it, as `name=value` sorted; custom
/// `app.settings.*` ones left out (a branch's role may not be allowed to set them).
fn database_settings(world: &World, branch: &str) -> String {
    world
        .psql_branch(
            branch,
            "SELECT string_agg(c, ',' ORDER BY c) FROM pg_db_role_setting s, unnest(s.setconfig) c \
             WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND c NOT LIKE 'app.settings.%'",
        )
        .trim()
        .to_string()
}

fn source_checksum(world: &World, table: &str) -> String {
    world.source.psql(
        "postgres",
        &format!("SELECT count(*) || ':' || sum(hashtextextended(t::text, 0)) FROM {table} t"),
    )
}

fn branch_checksum(world: &World, branch: &str, table: &str) -> String {
    world.psql_branch(
        branch,
        &format!("SELECT count(*) || ':' || sum(hashtextextended(t::text, 0)) FROM {table} t"),
    )
}

/// The mirror right after a run is what its newest backup was born as (the backup is written nothing
/// afterwards, which the test checks on the emulator): reading the mirror leaves the backups untouched.
fn assert_born_equal_to_source(world: &World, backup: &str) {
    assert!(world.branch(backup).is_some(), "{backup} exists");
    let backup = "supaneon-mirror";
    let objects = "SELECT string_agg(m.oid || ':' || md5(lo_get(m.oid)) || ':' || coalesce(m.lomacl::text, ''), ',' ORDER BY m.oid) \
                   FROM pg_largeobject_metadata m";
    // What the dumping role (`postgres`) owned and granted, the branch's role owns and grants.
    assert_eq!(
        world.psql_branch(backup, objects),
        world
            .source
            .psql("postgres", objects)
            .replace("postgres", "neondb_owner"),
        "large objects"
    );
    for table in [
        "public.accounts",
        "public.audit",
        "public.ledger",
        "public.happenings",
        "public.members",
    ] {
        assert_eq!(
            branch_checksum(world, backup, table),
            source_checksum(world, table),
            "{backup}: {table}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_are_snapshots_of_a_mirror_synced_incrementally() {
    for major in test_majors() {
        let world = World::start(major).await;
        world.source.psql("postgres", SCHEMA);

        // 1. The first run restores the mirror in full and snapshots it.
        let first = world.cli().run(&["backup-run"]);
        assert_eq!(first.code, 0, "PG {major}: {}", first.describe());
        assert_eq!(first.output("strategy").as_deref(), Some("snapshot"));
        assert!(
            first
                .stdout
                .contains("the mirror was restored in full (the first run builds the mirror)"),
            "{}",
            first.describe()
        );
        let b1 = first.output("backup-branch").expect("backup-branch");
        let mirror = world.branch("supaneon-mirror").expect("the mirror exists");
        let backup = world.branch(&b1).expect("the backup exists");
        assert_eq!(
            backup["parent_id"], mirror["id"],
            "a backup is a child of the mirror"
        );
        assert_eq!(
            world.emu.endpoint_count(backup["id"].as_str().unwrap()),
            0,
            "a snapshot backup has no compute"
        );
        assert_born_equal_to_source(&world, &b1);
        // With planner statistics, analyzed on the mirror once it was restored (pg_dump carries none).
        assert_eq!(
            world
                .psql_branch(
                    "supaneon-mirror",
                    "SELECT string_agg(DISTINCT tablename, ',' ORDER BY tablename) FROM pg_stats \
                     WHERE schemaname = 'public' \
                       AND tablename IN ('accounts', 'audit', 'happenings', 'ledger', 'members')",
                )
                .trim(),
            "accounts,audit,happenings,ledger,members",
            "PG {major}"
        );
        let full_read: u64 = first.output("source-bytes").unwrap().parse().unwrap();

        // 2. About 1 % changes: only that crosses the wire; triggers do not fire on the mirror. A row of
        // accounts is also changed on the mirror behind the tool's back: accounts changed on the source
        // too, so the mirror's copy is read only after the merge, whose verification must repair it.
        world.source.psql("postgres", CHANGE);
        world.psql_branch(
            "supaneon-mirror",
            "UPDATE public.accounts SET owner = 'tampered' WHERE id = 600",
        );
        support::prune::next_second();
        let second = world.cli().run(&["backup-run"]);
        assert_eq!(second.code, 0, "PG {major}: {}", second.describe());
        second.assert_never_shows(SOURCE_PASSWORD);
        second.assert_never_shows(API_KEY);
        assert!(
            second
                .stdout
                .contains("the mirror was synced incrementally"),
            "{}",
            second.describe()
        );
        assert!(
            second
                .stdout
                .contains("large objects: 2 written, 2 removed"),
            "one changed, one new, one gone: {}",
            second.describe()
        );
        let b2 = second.output("backup-branch").unwrap();
        assert_ne!(b1, b2);
        assert_born_equal_to_source(&world, &b2);
        // The settings follow the source; the earlier backup keeps its own. The custom one is carried
        // over, or named as refused; its value is never shown.
        second.assert_never_shows("mirror-Secret-77");
        let custom = world.psql_branch(
            &b2,
            "SELECT count(*) FROM pg_db_role_setting s, unnest(s.setconfig) c \
             WHERE c = 'app.settings.mirror_secret=mirror-Secret-77'",
        );
        let refused =
            "database setting app.settings.mirror_secret was not carried over to the mirror";
        let (set, reported) = match custom.trim() {
            "1" => (3, false),
            _ => (2, true),
        };
        assert_eq!(
            second.everything().contains(refused),
            reported,
            "PG {major}: carried over ({custom}) or named as refused: {}",
            second.describe()
        );
        assert!(
            second
                .stdout
                .contains(&format!("database and role settings: {set} set, 1 reset")),
            "{}",
            second.describe()
        );
        assert_eq!(
            database_settings(&world, &b2),
            "idle_in_transaction_session_timeout=42s,statement_timeout=9s"
        );
        assert_eq!(
            database_settings(&world, &b1),
            "idle_in_transaction_session_timeout=41s,statement_timeout=7s,work_mem=5MB"
        );
        // The mirror keeps its own count of the rows its merges changed, for its upkeep (the server's
        // counters may not survive a compute's stop): the changed tables only (audit by the source's
        // trigger); accounts with at least its 203 rows updated or deleted, 50 inserted, and the row
        // changed behind our back.
        let counted = world.psql_branch(
            "supaneon-mirror",
            "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM supaneon_sync.table_changes \
             WHERE modified > 0 AND modified >= dead",
        );
        assert_eq!(
            counted.trim(),
            "accounts,audit,happenings,ledger",
            "PG {major}"
        );
        let accounts = world.psql_branch(
            "supaneon-mirror",
            "SELECT modified >= 254 AND dead >= 204 FROM supaneon_sync.table_changes \
             WHERE table_name = 'accounts'",
        );
        assert_eq!(accounts.trim(), "t", "PG {major}");
        let incremental_read: u64 = second.output("source-bytes").unwrap().parse().unwrap();
        assert!(
            incremental_read * 5 < full_read,
            "an incremental run reads a fraction: {incremental_read} vs {full_read}"
        );
        // Rows were deleted from accounts (50 inserted, 3 deleted: more rows than before, so the rows
        // written since the last sync are merged first), which they do not bring to the source's
        // content: digests narrow it down. Ledger lost rows by the cascade (fewer rows than on the
        // mirror): digests straight away.
        let narrowed = second
            .stdout
            .lines()
            .find(|l| l.contains("compared by digests after the rows written since the last sync"))
            .unwrap_or_else(|| panic!("not narrowed again: {}", second.describe()));
        assert!(
            narrowed.contains("public.accounts") && !narrowed.contains("public.ledger"),
            "{narrowed}"
        );

        // 2b. Updates and inserts only: the written rows alone bring accounts over; the email that moved
        // between members cannot be merged that way, is rolled back and narrowed down by digests.
        world.source.psql("postgres", WRITTEN_ONLY);
        support::prune::next_second();
        let written_only = world.cli().run(&["backup-run"]);
        assert_eq!(
            written_only.code,
            0,
            "PG {major}: {}",
            written_only.describe()
        );
        let line = written_only
            .stdout
            .lines()
            .find(|l| l.contains("the mirror was synced incrementally"))
            .unwrap_or_else(|| panic!("{}", written_only.describe()));
        assert!(
            line.contains("1 table brought over by the rows written since the last sync alone")
                && line.contains("did not bring them to the source's content (rows deleted, a key moved between rows, or rows changed on the mirror): public.members"),
            "{line}"
        );
        assert!(
            !line.contains("public.accounts"),
            "accounts needed no digests: {line}"
        );
        assert!(
            written_only
                .everything()
                .contains("merging a slice of the rows written since the last sync failed"),
            "members was merged in slices, and one failed: {}",
            written_only.describe()
        );
        // The server's DETAIL of that failure quotes the row's key; no row data reaches the log.
        assert!(
            !written_only.everything().contains("(m5)"),
            "{}",
            written_only.describe()
        );
        let bwo = written_only.output("backup-branch").unwrap();
        assert_born_equal_to_source(&world, &bwo);

        // 3. Rows changed on the mirror behind the tool's back are repaired and reported: in happenings,
        // unchanged on the source (found by the comparison), and in accounts, whose rows the source
        // updated too (found when the table still differs after its written rows are merged, though
        // its row count came out right).
        world.psql_branch(
            "supaneon-mirror",
            "UPDATE public.happenings SET payload = '{\"tampered\": 1}' WHERE at = 7; \
             UPDATE public.accounts SET owner = 'tampered again' WHERE id = 700",
        );
        world.source.psql(
            "postgres",
            "UPDATE public.accounts SET balance = balance + 1 WHERE id = 10",
        );
        support::prune::next_second();
        let third = world.cli().run(&["backup-run"]);
        assert_eq!(third.code, 0, "PG {major}: {}", third.describe());
        // The warning names exactly the tampered tables.
        let all = third.everything();
        let warning = all
            .lines()
            .find(|l| l.contains("changed outside supaneon-sync"))
            .unwrap_or_else(|| panic!("no tampering warning: {}", third.describe()));
        assert!(
            warning.contains("(public.accounts, public.happenings)"),
            "{warning}\n{}",
            third.describe()
        );
        let b3 = third.output("backup-branch").unwrap();
        assert_born_equal_to_source(&world, &b3);

        // 4. No change: nothing but digests and the definitions are read.
        support::prune::next_second();
        let fourth = world.cli().run(&["backup-run"]);
        assert_eq!(fourth.code, 0, "PG {major}: {}", fourth.describe());
        assert!(
            fourth
                .stdout
                .contains("the mirror was synced incrementally: 0 of "),
            "{}",
            fourth.describe()
        );
        let no_change_read: u64 = fourth.output("source-bytes").unwrap().parse().unwrap();
        assert!(
            no_change_read < incremental_read,
            "a run without change reads only the definitions and table-level digests: {no_change_read} vs {incremental_read}"
        );
        assert!(
            !fourth.stdout.contains("database and role settings"),
            "the settings already match: {}",
            fourth.describe()
        );
        let b4 = fourth.output("backup-branch").unwrap();
        // Nothing to sync, and the log says nothing about how it would have been synced; our own
        // schema, already there, makes no notice either.
        for quiet in ["no usable record", "already exists, skipping"] {
            assert!(
                !fourth.everything().contains(quiet),
                "{quiet}: {}",
                fourth.describe()
            );
        }

        // Every backup was written nothing since its creation.
        for b in [&b1, &b2, &bwo, &b3, &b4] {
            assert_eq!(world.written(b).await, 0, "{b} was written");
        }

        // The first backup still holds the first state (copy-on-write).
        assert_eq!(
            world
                .psql_branch(
                    &b1,
                    "SELECT count(*) FROM public.accounts WHERE id IN (11, 12, 13)"
                )
                .trim(),
            "3"
        );

        // 5. restore-test, list and prune work with the mirror.
        let test = world.cli().run(&["restore-test"]);
        assert_eq!(test.code, 0, "PG {major}: {}", test.describe());
        let list = world.cli().run(&["list"]);
        assert_eq!(list.code, 0, "{}", list.describe());
        assert!(list.stdout.contains(&b4), "{}", list.stdout);
        let prune = world.cli().env("SUPANEON_KEEP_LAST", "1").run(&["prune"]);
        assert_eq!(prune.code, 0, "{}", prune.describe());
        let names = world.branch_names();
        assert!(names.contains(&"supaneon-mirror".to_string()), "{names:?}");
        assert!(names.contains(&b4) && !names.contains(&b1), "{names:?}");
    }
}

/// Tables of every shape a merge must handle, owned by the customer's role: a key of one column with
/// values of awkward types (NULLs, numeric scales, NaN and -0, jsonb, bytea, arrays, enum labels,
/// toasted text), a composite key, a unique NOT NULL key without a primary key, no key at all (with
/// duplicate rows), a unique key whose index compares under another collation than its column's (so
/// its rows are matched as PostgreSQL plans it, not by lookups in that index), a tree referencing
/// itself, a parent and child with a cascading foreign key, identity and generated columns, and a
/// list-partitioned table.
const CHURN_SCHEMA: &str = "
SET ROLE postgres;
CREATE SCHEMA churn;
CREATE TYPE churn.mood AS ENUM ('calm', 'odd', 'Üñï ''quoted''');
CREATE TABLE churn.k_int (id int PRIMARY KEY, label text, amount numeric, score float8, doc jsonb, raw bytea,
  tags text[], at timestamptz, span interval, mood churn.mood, big text);
CREATE TABLE churn.k_pair (a int, b text COLLATE \"C\", note text, PRIMARY KEY (a, b));
CREATE TABLE churn.k_unique (code text NOT NULL UNIQUE, n int);
CREATE TABLE churn.nokey (x int, y text);
CREATE TABLE churn.k_collated (code text NOT NULL, n int);
CREATE UNIQUE INDEX k_collated_code ON churn.k_collated (code COLLATE \"POSIX\");
CREATE TABLE churn.tree (id int PRIMARY KEY, parent int REFERENCES churn.tree ON DELETE CASCADE, name text);
CREATE TABLE churn.parent (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text UNIQUE);
CREATE TABLE churn.child (id serial PRIMARY KEY, parent_id bigint NOT NULL REFERENCES churn.parent ON DELETE CASCADE,
  qty int, total numeric GENERATED ALWAYS AS (qty * 1.5) STORED);
CREATE TABLE churn.parted (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE churn.parted_eu PARTITION OF churn.parted FOR VALUES IN ('eu');
CREATE TABLE churn.parted_us PARTITION OF churn.parted FOR VALUES IN ('us');
CREATE TABLE churn.parted_rest PARTITION OF churn.parted DEFAULT;
SELECT setseed(0.42);
INSERT INTO churn.k_int
  SELECT g, CASE WHEN g % 13 = 0 THEN NULL ELSE 'label ' || g END, (g % 97)::numeric / 8, g / 7.0,
         jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'x', NULL)),
         decode(md5(g::text), 'hex'), ARRAY['t' || g % 5, NULL], timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute',
         g * interval '1 hour', (enum_range(NULL::churn.mood))[1 + g % 3],
         CASE WHEN g % 3000 = 0 THEN (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 120) AS s(i)) END
  FROM generate_series(1, 120000) g;
INSERT INTO churn.k_pair SELECT g % 1000, 'b' || g / 1000, 'note ' || g FROM generate_series(1, 6000) g;
INSERT INTO churn.k_unique SELECT 'code-' || g, g FROM generate_series(1, 3000) g;
INSERT INTO churn.nokey SELECT g % 400, 'y' || g % 250 FROM generate_series(1, 3000) g;
INSERT INTO churn.k_collated SELECT 'Code ' || g, g FROM generate_series(1, 3000) g;
INSERT INTO churn.tree SELECT g, CASE WHEN g > 10 THEN g / 10 END, 'node ' || g FROM generate_series(1, 3000) g;
INSERT INTO churn.parent (name) SELECT 'parent ' || g FROM generate_series(1, 1000) g;
INSERT INTO churn.child (parent_id, qty) SELECT 1 + g % 1000, g % 17 FROM generate_series(1, 5000) g;
INSERT INTO churn.parted SELECT g, (ARRAY['eu', 'us', 'apac'])[1 + g % 3], g FROM generate_series(1, 6000) g;
RESET ROLE;
";

/// One day's changes to the churn tables, drawn from `seed`: updates of every kind of column (to NULL,
/// to another display scale, NaN and -0, case only, toasted values), new rows, duplicate rows in the
/// keyless table, subtrees grown and moved. On a `busy` day also what the rows written since the last
/// sync cannot show by themselves: keys moved, rows deleted and keys reused with other content, unique
/// values swapped between rows, duplicates removed, subtrees and parents deleted with what hangs on
/// them, rows moved between partitions.
fn churn_sql(seed: f64, day: i32, busy: bool) -> String {
    let writes = format!(
        "
UPDATE churn.k_int SET label = CASE WHEN random() < 0.2 THEN NULL ELSE md5(random()::text) END WHERE random() < 0.01;
UPDATE churn.k_int SET amount = amount * 1.00 WHERE random() < 0.003;
UPDATE churn.k_int SET score = (ARRAY['NaN', '-0', 'Infinity', '1e-300']::float8[])[1 + floor(random() * 4)::int] WHERE random() < 0.002;
UPDATE churn.k_int SET doc = doc || jsonb_build_object('day', {day}, 'r', random()) WHERE random() < 0.003;
UPDATE churn.k_int SET doc = '[[]]', raw = NULL, tags = '{{}}' WHERE random() < 0.001;
UPDATE churn.k_int SET label = upper(label) WHERE random() < 0.003;
UPDATE churn.k_int SET mood = 'Üñï ''quoted''', span = span + interval '1 microsecond' WHERE random() < 0.002;
UPDATE churn.k_int SET big = (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 150)) WHERE random() < 0.001;
INSERT INTO churn.k_int (id, label) SELECT 1000000 * {day} + g, 'new ' || g FROM generate_series(1, 150) g;
UPDATE churn.k_pair SET note = NULL WHERE random() < 0.01;
INSERT INTO churn.k_pair SELECT g, 'day {day}', 'new' FROM generate_series(1, 20) g;
UPDATE churn.k_unique SET n = n + 1 WHERE random() < 0.02;
INSERT INTO churn.k_unique SELECT 'day-{day}-' || g, g FROM generate_series(1, 10) g;
INSERT INTO churn.nokey SELECT x, y FROM churn.nokey WHERE random() < 0.01;
UPDATE churn.nokey SET y = NULL WHERE random() < 0.005;
UPDATE churn.k_collated SET n = -n WHERE random() < 0.02;
INSERT INTO churn.k_collated SELECT 'code {day} ' || g, g FROM generate_series(1, 10) g;
UPDATE churn.tree SET parent = 1 + floor(random() * 10)::int WHERE id > 10 AND random() < 0.01;
INSERT INTO churn.tree SELECT 10000 * {day} + g, 1 + g % 10, 'grown ' || g FROM generate_series(1, 30) g;
INSERT INTO churn.parent (name) SELECT 'parent {day} ' || g FROM generate_series(1, 10) g;
INSERT INTO churn.child (parent_id, qty) SELECT id, 3 FROM churn.parent WHERE name LIKE 'parent {day} %';
UPDATE churn.child SET qty = qty + 1 WHERE random() < 0.02;
UPDATE churn.parted SET v = -v WHERE random() < 0.01;
INSERT INTO churn.parted SELECT 100000 * {day} + g, 'mars', g FROM generate_series(1, 20) g;
"
    );
    let removals = format!(
        "
UPDATE churn.k_int SET id = id + 10000000 * {day} WHERE random() < 0.001;
DELETE FROM churn.k_int WHERE random() < 0.002;
INSERT INTO churn.k_int (id, label, amount) SELECT g, 'reused ' || {day}, 0.50 FROM generate_series(1, 120000) g
  WHERE random() < 0.002 ON CONFLICT (id) DO NOTHING;
UPDATE churn.k_pair SET b = b || 'x' WHERE random() < 0.01;
DELETE FROM churn.k_pair WHERE random() < 0.01;
CREATE TEMP TABLE pick AS SELECT code FROM churn.k_unique ORDER BY random() LIMIT 2;
UPDATE churn.k_unique SET code = code || '#' WHERE code IN (SELECT code FROM pick);
UPDATE churn.k_unique SET code = (SELECT max(code) FROM pick) WHERE code = (SELECT min(code) FROM pick) || '#';
UPDATE churn.k_unique SET code = (SELECT min(code) FROM pick) WHERE code = (SELECT max(code) FROM pick) || '#';
DROP TABLE pick;
UPDATE churn.k_unique SET code = code || '-moved' WHERE random() < 0.01;
DELETE FROM churn.nokey WHERE ctid IN (SELECT ctid FROM churn.nokey WHERE random() < 0.01);
DELETE FROM churn.k_collated WHERE random() < 0.01;
DELETE FROM churn.tree WHERE id IN (SELECT id FROM churn.tree WHERE id > 10 ORDER BY random() LIMIT 3);
DELETE FROM churn.parent WHERE random() < 0.01;
UPDATE churn.parted SET region = (ARRAY['eu', 'us', 'apac', 'mars'])[1 + floor(random() * 4)::int] WHERE random() < 0.02;
DELETE FROM churn.parted WHERE random() < 0.005;
"
    );
    let removals = if busy { removals.as_str() } else { "" };
    format!("SET ROLE postgres;\nSELECT setseed({seed});\n{writes}{removals}RESET ROLE;\n")
}

/// Every churn table's rows as text, counted and digested in a canonical order: an oracle of the test's
/// own, independent of the tool's checksums.
const CHURN_CONTENT: &str = "
SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3;
SET bytea_output = 'hex';
SELECT c.relname || ' ' || (xpath('/row/c/text()', query_to_xml(format(
         'SELECT count(*) || '':'' || coalesce(md5(string_agg(t::text, E''\\n'' ORDER BY t::text COLLATE \"C\")), '''') AS c FROM ONLY churn.%I t',
         c.relname), false, true, '')))[1]::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'churn' AND c.relkind = 'r' ORDER BY c.relname;
";

/// Days of random changes of every kind, each synced incrementally: every backup holds exactly the
/// source's rows, by a digest of the test's own. Quiet days (updates and inserts) are synced by the rows
/// written since the last sync alone, the large table in slices; busy days also delete and move keys,
/// which digests then find.
#[tokio::test(flavor = "multi_thread")]
async fn random_changes_of_every_kind_sync_to_an_exact_copy() {
    for major in test_majors() {
        let world = World::start(major).await;
        world.source.psql("postgres", CHURN_SCHEMA);
        let first = world.cli().run(&["backup-run"]);
        assert_eq!(first.code, 0, "PG {major}: {}", first.describe());
        for day in 1..=4 {
            let (seed, busy) = (f64::from(day) / 10.0 - 0.05, day % 2 == 0);
            world.source.psql("postgres", &churn_sql(seed, day, busy));
            let run = world.cli().run(&["backup-run"]);
            assert_eq!(run.code, 0, "PG {major}, day {day}: {}", run.describe());
            assert!(
                run.stdout.contains("the mirror was synced incrementally"),
                "PG {major}, day {day}: {}",
                run.describe()
            );
            assert_eq!(
                run.stdout
                    .contains("compared by digests after the rows written"),
                busy,
                "PG {major}, day {day}: {}",
                run.describe()
            );
            // Rows of a table with a usable key index are matched by lookups in it; the others as
            // PostgreSQL plans it.
            for (table, by_lookups) in [("k_int", true), ("k_collated", false)] {
                // As the log lists them: quoted names, in Rust's debug form.
                let listed = format!("{:?}", [format!("\"churn\".\"{table}\"")]);
                let lines: Vec<&str> = run
                    .stderr
                    .lines()
                    .filter(|l| l.contains(&format!("copied and merged tables={listed}")))
                    .collect();
                let expected = if by_lookups {
                    format!("by_key_lookups={listed}")
                } else {
                    "by_key_lookups=[]".to_string()
                };
                assert!(
                    !lines.is_empty() && lines.iter().all(|l| l.contains(&expected)),
                    "PG {major}, day {day}, {table}: {lines:?}"
                );
            }
            let backup = run.output("backup-branch").expect("backup-branch");
            let source = world.source.psql("postgres", CHURN_CONTENT);
            assert_eq!(source.lines().count(), 11, "PG {major}: {source}");
            assert_eq!(
                world.psql_branch(&backup, CHURN_CONTENT),
                source,
                "PG {major}, day {day} (seed {seed}): the backup differs from the source"
            );
        }
    }
}
