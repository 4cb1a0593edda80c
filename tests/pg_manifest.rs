//! Backup content, manifest, target preparation and verification against real PostgreSQL clusters:
//! a Supabase-shaped source (the testkit fixture) and a Neon-shaped target, for every major in
//! `test_majors()`. How rows are hashed is tested in `pg_checksums`. Run: `cargo test --test pg_manifest`.

mod manifests;

use std::process::{Command, Stdio};

use manifests::{runtime, with_method};
use supaneon_sync::pg::content::{select, ContentPolicy, Selection, LEDGER_TABLES};
use supaneon_sync::pg::inspect::{
    fingerprint_tables_to_match, pin_session, read_manifest, server_major, store_manifest,
    take_manifest, take_manifest_in_snapshot, take_manifest_to_match, take_manifest_to_match_with,
    InspectError, SourceSnapshot,
};
use supaneon_sync::pg::manifest::{ChecksumMethod, Manifest, Mismatch, TableKind, MANIFEST_FORMAT};
use supaneon_sync::pg::prepare::prepare_target;
use supaneon_testkit::{test_majors, Cluster, ClusterOptions};
use tokio_postgres::Client;

const POSTGRES_PASSWORD: &str = "src-pw 'quoted' \\ %";
const OWNER_PASSWORD: &str = "neon-owner-pw";

/// Awkward types whose text form depends on session settings, NULLs, and a column named like the
/// row alias (`r`) so a checksum that confused the two would be caught.
const PROBE_SQL: &str = r#"
CREATE TABLE public.manifest_probe (
  id int PRIMARY KEY, r text, at timestamptz, d date, span interval, f8 float8, f4 real,
  amount numeric(12,4), raw bytea, doc jsonb, tags text[], ok boolean, t time, ttz timetz);
INSERT INTO public.manifest_probe
SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'row ' || g END,
       timestamptz '2024-03-10 01:30:00+00' + g * interval '37 minutes 13.25 seconds',
       date '2024-02-28' + g, g * interval '1 day 3 hours 4.5 seconds', g / 3.0::float8, g / 7.0::real,
       g * 1.0001, pg_catalog.decode(pg_catalog.lpad(pg_catalog.to_hex(g), 8, '0'), 'hex'),
       pg_catalog.jsonb_build_object('g', g, 'half', g / 2.0), ARRAY['a' || g, NULL, 'b'], g % 2 = 0,
       time '12:00' + g * interval '1 second', timetz '12:00+02' + g * interval '1 minute'
FROM pg_catalog.generate_series(1, 500) g;
"#;

/// A Supabase-shaped source with the probe table in `public`.
fn start_source(major: u32) -> Cluster {
    let source = Cluster::start(ClusterOptions::new(major, "supabase_admin"));
    source.load_supabase_fixture("postgres", POSTGRES_PASSWORD);
    source.psql("postgres", PROBE_SQL);
    source
}

/// A superuser connection acting as the customer's non-superuser `postgres` role.
async fn as_postgres(source: &Cluster) -> Client {
    let client = source.admin_client("postgres").await;
    client.batch_execute("SET ROLE postgres").await.unwrap();
    client
}

async fn as_neon_owner(target: &Cluster) -> Client {
    let client = target.admin_client("neondb").await;
    client.batch_execute("SET ROLE neondb_owner").await.unwrap();
    client
}

fn names(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn selection_keeps_customer_schemas_and_skips_the_platform() {
    for major in test_majors() {
        let source = start_source(major);
        runtime().block_on(async {
            let client = as_postgres(&source).await;
            assert_eq!(server_major(&client).await.unwrap(), major);
            let s = select(&client, &ContentPolicy::default()).await.unwrap();
            for wanted in [
                "public",
                "app_private",
                "auth",
                "storage",
                "supabase_functions",
                "supabase_migrations",
            ] {
                assert!(
                    s.schemas.iter().any(|x| x == wanted),
                    "PG{major}: {wanted} not selected: {:?}",
                    s.schemas
                );
            }
            for unwanted in [
                "realtime",
                "vault",
                "extensions",
                "graphql",
                "net",
                "cron",
                "pgbouncer",
                "pg_catalog",
                "information_schema",
                "pg_toast",
            ] {
                assert!(
                    !s.schemas.iter().any(|x| x == unwanted),
                    "PG{major}: {unwanted} selected: {:?}",
                    s.schemas
                );
            }
            assert!(s.skipped_schemas.iter().any(|(n, _)| n == "realtime"));
            assert_eq!(names(&s.exclude_table_data), LEDGER_TABLES);
            let mut sorted = s.schemas.clone();
            sorted.sort();
            assert_eq!(s.schemas, sorted, "deterministic order");

            let no_auth = ContentPolicy {
                keep_auth: false,
                ..Default::default()
            };
            let s = select(&client, &no_auth).await.unwrap();
            assert!(!s.schemas.iter().any(|x| x == "auth"));

            let realtime = ContentPolicy {
                include_schemas: vec!["public".into(), "realtime".into()],
                ..Default::default()
            };
            let s = select(&client, &realtime).await.unwrap();
            assert_eq!(names(&s.schemas), ["public", "realtime"]);

            let missing = ContentPolicy {
                include_schemas: vec!["no_such_schema".into()],
                ..Default::default()
            };
            let err = select(&client, &missing).await.unwrap_err();
            assert!(
                matches!(err, InspectError::UnknownSchema(ref s) if s == "no_such_schema"),
                "{err:?}"
            );
        });
    }
}

/// Schemas a user made whose names the Supabase platform also uses, and a user's table in a
/// platform-owned schema.
const USER_SCHEMAS_SQL: &str = r#"
SET ROLE postgres;
CREATE SCHEMA etl;
CREATE TABLE etl.imports (id int PRIMARY KEY, payload text);
INSERT INTO etl.imports SELECT g, 'row ' || g FROM pg_catalog.generate_series(1, 123) g;
CREATE SCHEMA pgmq;
CREATE TABLE pgmq.q_orders (msg_id bigint PRIMARY KEY, message jsonb);
CREATE SCHEMA tiger;
RESET ROLE;
CREATE TABLE vault.user_notes (id int);
ALTER TABLE vault.user_notes OWNER TO postgres;
"#;

#[test]
fn schemas_are_skipped_by_ownership_and_what_is_left_out_is_named() {
    for major in test_majors() {
        let source = start_source(major);
        source.psql("postgres", USER_SCHEMAS_SQL);
        runtime().block_on(async {
            let client = as_postgres(&source).await;
            let s = select(&client, &ContentPolicy::default()).await.unwrap();
            for kept in ["etl", "pgmq", "tiger", "vault", "public"] {
                assert!(
                    s.schemas.iter().any(|x| x == kept),
                    "PG{major}: {kept} not selected: {:?}",
                    s.schemas
                );
            }
            for skipped in ["cron", "net", "graphql", "realtime", "extensions"] {
                assert!(
                    s.skipped_schemas.iter().any(|(n, _)| n == skipped),
                    "PG{major}: {skipped} not skipped: {:?}",
                    s.skipped_schemas
                );
            }
            let omitted: Vec<String> = s.omitted.iter().map(|(o, why)| format!("{o}: {why}")).collect();
            assert!(
                omitted.iter().any(|l| l.starts_with("cron.job: pg_cron's scheduled jobs")),
                "PG{major}: {omitted:?}"
            );
            assert!(
                omitted.iter().any(|l| l.starts_with("net.http_request_queue: ")),
                "PG{major}: {omitted:?}"
            );
            // Empty platform tables and platform-generated data are not worth a line.
            assert!(!omitted.iter().any(|l| l.starts_with("net._http_response")), "PG{major}: {omitted:?}");
            assert!(!omitted.iter().any(|l| l.starts_with("graphql.")), "PG{major}: {omitted:?}");

            // Once the user's table is gone, vault is the platform's again, and its secrets are named.
            source.psql("postgres", "DROP TABLE vault.user_notes");
            let s = select(&client, &ContentPolicy::default()).await.unwrap();
            assert!(!s.schemas.iter().any(|x| x == "vault"), "PG{major}: {:?}", s.schemas);
            assert!(
                s.omitted.contains(&(
                    "vault.secrets".to_string(),
                    "encrypted with a key that exists only on the Supabase server".to_string()
                )),
                "PG{major}: {:?}",
                s.omitted
            );

            // A user's table in a schema the user excluded is named too.
            let policy = ContentPolicy {
                exclude_schemas: vec!["etl".into()],
                ..Default::default()
            };
            let s = select(&client, &policy).await.unwrap();
            assert!(
                s.omitted.iter().any(|(o, why)| o == "etl.imports" && why.contains("excluded by configuration")),
                "PG{major}: {:?}",
                s.omitted
            );
        });
    }
}

/// Only the probe table differs between two manifests, and only as `expected`.
fn assert_only(major: u32, mismatches: &[Mismatch], expected: &[Mismatch]) {
    assert_eq!(mismatches, expected, "PG{major}");
}

#[test]
fn manifest_is_stable_and_sees_changed_deleted_rows_and_dropped_policies() {
    for major in test_majors() {
        let source = start_source(major);
        runtime().block_on(async {
            let client = as_postgres(&source).await;
            let selection = select(&client, &ContentPolicy::default()).await.unwrap();
            let first = take_manifest(&[&client], &selection).await.unwrap();
            let second = take_manifest(&[&client], &selection).await.unwrap();
            assert_eq!(first.compare(&second), vec![], "PG{major}: two manifests differ");
            assert_eq!(first.tables, second.tables);
            assert!(first.total_rows() > 500, "PG{major}: fixture rows {}", first.total_rows());
            assert!(first.objects.policies > 0 && first.objects.functions > 0 && first.objects.triggers > 0);
            assert!(first.objects.views > 0 && first.objects.materialized_views > 0 && first.objects.sequences > 0);
            assert!(!first.schemas.iter().any(|s| s == "realtime"));
            for ledger in LEDGER_TABLES {
                let (schema, name) = ledger.split_once('.').unwrap();
                let t = first.table(schema, name).unwrap_or_else(|| panic!("PG{major}: ledger {ledger} missing"));
                assert!(t.data_excluded && t.rows == 0 && t.checksum.is_empty(), "{t:?}");
            }
            let probe = first.table("public", "manifest_probe").unwrap();
            assert_eq!(probe.rows, 500);

            // A changed value changes exactly that table's checksum.
            source.psql("postgres", "UPDATE public.manifest_probe SET f8 = f8 + 1e-9 WHERE id = 250");
            let changed = take_manifest(&[&client], &selection).await.unwrap();
            assert_only(major, &first.compare(&changed), &[Mismatch::Checksum { table: "public.manifest_probe".into() }]);

            // A deleted row changes count and checksum.
            source.psql("postgres", "DELETE FROM public.manifest_probe WHERE id = 17");
            let deleted = take_manifest(&[&client], &selection).await.unwrap();
            assert_only(
                major,
                &first.compare(&deleted),
                &[Mismatch::RowCount { table: "public.manifest_probe".into(), expected: 500, actual: 499 }],
            );
            assert_ne!(deleted.table("public", "manifest_probe").unwrap().checksum, probe.checksum);

            // A dropped policy changes the policy count and is named, nothing else.
            let row = source.psql(
                "postgres",
                "SELECT pg_catalog.format('%I ON %I.%I', pol.polname, n.nspname, c.relname) || '|' || \
                        pol.polname || '|' || n.nspname || '.' || c.relname FROM pg_policy pol \
                 JOIN pg_class c ON c.oid = pol.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' ORDER BY 1 LIMIT 1",
            );
            let parts: Vec<&str> = row.trim().split('|').collect();
            source.psql("postgres", &format!("DROP POLICY {}", parts[0]));
            let dropped = take_manifest(&[&client], &selection).await.unwrap();
            assert_only(
                major,
                &deleted.compare(&dropped),
                &[
                    Mismatch::ObjectCount {
                        kind: "policies",
                        expected: first.objects.policies,
                        actual: first.objects.policies - 1,
                    },
                    Mismatch::Definition {
                        object: format!("policy \"{}\" on {}", parts[1], parts[2]),
                        detail: "missing".into(),
                    },
                ],
            );

            // Two connections sharing one snapshot read the same manifest as one.
            let other = as_postgres(&source).await;
            let parallel = take_manifest(&[&client, &other], &selection).await.unwrap();
            assert_eq!(dropped.compare(&parallel), vec![], "PG{major}: parallel manifest differs");
        });
    }
}

#[test]
fn row_level_security_makes_the_manifest_fail_instead_of_hiding_rows() {
    let major = test_majors()[0];
    let source = start_source(major);
    source.psql(
        "postgres",
        "CREATE ROLE rls_reader NOLOGIN NOBYPASSRLS; GRANT USAGE ON SCHEMA public TO rls_reader; \
         GRANT SELECT ON public.manifest_probe TO rls_reader; \
         ALTER TABLE public.manifest_probe ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY only_even ON public.manifest_probe TO rls_reader USING (id % 2 = 0)",
    );
    runtime().block_on(async {
        let client = source.admin_client("postgres").await;
        client.batch_execute("SET ROLE rls_reader").await.unwrap();
        let selection = Selection { schemas: vec!["public".into()], ..Default::default() };
        let only_probe = Selection {
            exclude_tables: source
                .psql("postgres", "SELECT 'public.' || relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r','m') AND relname <> 'manifest_probe'")
                .lines()
                .map(String::from)
                .collect(),
            ..selection
        };
        let err = take_manifest(&[&client], &only_probe).await.unwrap_err();
        assert_eq!(err.sqlstate(), Some("42501"), "{err:?}");
        // The failed transaction was rolled back: the connection is usable.
        assert_eq!(server_major(&client).await.unwrap(), major);
    });
}

#[test]
fn snapshot_faults_are_errors_and_leave_the_connection_usable() {
    let major = test_majors()[0];
    let source = start_source(major);
    runtime().block_on(async {
        let client = as_postgres(&source).await;
        let selection = select(&client, &ContentPolicy::default()).await.unwrap();
        let err = take_manifest_in_snapshot(&[&client], "x'; DROP TABLE y; --", &selection)
            .await
            .unwrap_err();
        assert!(matches!(err, InspectError::Unexpected { .. }), "{err:?}");
        let err = take_manifest_in_snapshot(&[&client], "00000003-0000FFFF-1", &selection)
            .await
            .unwrap_err();
        assert!(err.sqlstate().is_some(), "{err:?}");
        assert_eq!(server_major(&client).await.unwrap(), major);
        assert!(
            read_manifest(&client).await.unwrap().is_none(),
            "a source has no stored manifest"
        );

        // A connection that dies under the manifest is an error, not a hang or a panic.
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        source.psql("postgres", &format!("SELECT pg_terminate_backend({pid})"));
        let err = take_manifest(&[&client], &selection).await.unwrap_err();
        assert!(matches!(err, InspectError::Query { .. }), "{err:?}");
    });
}

/// Result of the shell pipe `pg_dump | pg_restore`.
struct Restore {
    status: std::process::ExitStatus,
    stderr: String,
}

/// `pg_dump -Fc -Z0 --snapshot … | pg_restore --no-owner --no-acl` as a plain shell pipe, passwords in
/// the environment only.
fn dump_and_restore(
    source: &Cluster,
    target: &Cluster,
    snapshot: &str,
    selection: &Selection,
) -> Restore {
    let mut dump_args = vec![
        "-Fc".to_string(),
        "-Z0".into(),
        format!("--snapshot={snapshot}"),
    ];
    dump_args.extend(selection.pg_dump_args());
    let shell_words = |args: &[String]| {
        args.iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let script = format!(
        "set -o pipefail; PGPASSWORD=\"$SOURCE_PW\" \"$BIN/pg_dump\" {dump} -d \"$SOURCE\" | \
         PGPASSWORD=\"$TARGET_PW\" \"$BIN/pg_restore\" --no-owner --no-acl -d \"$TARGET\"",
        dump = shell_words(&dump_args)
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("BIN", source.bin_dir())
        .env(
            "SOURCE",
            format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require",
                source.port()
            ),
        )
        .env(
            "TARGET",
            format!(
                "host=127.0.0.1 port={} user=neondb_owner dbname=neondb sslmode=require",
                target.port()
            ),
        )
        .env("SOURCE_PW", POSTGRES_PASSWORD)
        .env("TARGET_PW", OWNER_PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Restore {
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn restored_target_matches_the_source_manifest_taken_in_the_dump_snapshot() {
    for major in test_majors() {
        let source = start_source(major);
        let target = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
        target.setup_neon_target(OWNER_PASSWORD);
        // Rendering settings unlike the source's: the checksums must not notice.
        target.psql(
            "postgres",
            "ALTER ROLE cloud_admin SET TimeZone = 'America/New_York'; ALTER ROLE cloud_admin SET DateStyle = 'SQL, DMY'; \
             ALTER DATABASE neondb SET IntervalStyle = 'sql_standard'; ALTER DATABASE neondb SET extra_float_digits = 0; \
             ALTER DATABASE neondb SET bytea_output = 'escape'; ALTER ROLE neondb_owner SET search_path = public, extensions",
        );
        runtime().block_on(async {
            let probe = as_neon_owner(&target).await;
            for (setting, value) in [("TimeZone", "America/New_York"), ("DateStyle", "SQL, DMY"), ("bytea_output", "escape")] {
                let shown: String = probe.query_one(&format!("SHOW {setting}"), &[]).await.unwrap().get(0);
                assert_eq!(shown, value, "PG{major}: the target's own settings are in effect");
            }

            let snapshot = SourceSnapshot::open(as_postgres(&source).await).await.unwrap();
            let selection = select(snapshot.client(), &ContentPolicy::default()).await.unwrap();
            let helper = as_postgres(&source).await;
            let expected = snapshot.take_manifest_with(&[&helper], &selection).await.unwrap();

            // Written after the snapshot: neither the dump nor the manifest may see it.
            source.psql("postgres", "INSERT INTO public.manifest_probe (id, r) VALUES (100000, 'late')");

            let report = prepare_target(snapshot.client(), &as_neon_owner(&target).await, &selection).await.unwrap();
            for role in ["anon", "authenticated", "service_role"] {
                assert!(report.roles_created.iter().any(|r| r == role), "PG{major}: {report:?}");
            }
            assert!(report.extensions_created.iter().any(|e| e == "uuid-ossp"), "PG{major}: {report:?}");
            assert!(report.schemas_created.iter().any(|s| s == "extensions"), "PG{major}: {report:?}");
            let again = prepare_target(snapshot.client(), &as_neon_owner(&target).await, &selection).await.unwrap();
            assert!(again.roles_created.is_empty() && again.extensions_created.is_empty() && again.schemas_created.is_empty(),
                "PG{major}: prepare is not idempotent: {again:?}");
            let login: String = target.psql("neondb", "SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname IN ('anon','authenticated','service_role') AND (rolcanlogin OR rolsuper)");
            assert_eq!(login.trim(), "", "PG{major}: created roles must be NOLOGIN, not superuser");

            // A second connection in the exported snapshot sees what the first saw.
            let importer = as_postgres(&source).await;
            let imported = take_manifest_in_snapshot(&[&importer], snapshot.id(), &selection).await.unwrap();
            assert_eq!(expected.compare(&imported), vec![], "PG{major}: imported snapshot differs");

            println!("PG{major}: prepared {report:?}");
            println!(
                "PG{major}: manifest of {} tables ({} rows) in {:?}, objects {:?}",
                expected.tables.len(),
                expected.total_rows(),
                expected.schemas,
                expected.objects
            );
            let restore = dump_and_restore(&source, &target, snapshot.id(), &selection);
            snapshot.finish().await.unwrap();
            println!("PG{major}: pg_restore {}:\n{}", restore.status, restore.stderr.trim());
            let errors: Vec<&str> = restore.stderr.lines().filter(|l| l.contains("ERROR")).collect();
            let unexpected: Vec<&&str> = errors.iter().filter(|l| !l.contains("schema \"public\" already exists")).collect();
            assert!(unexpected.is_empty(), "PG{major}: restore errors ({}):\n{}", restore.status, restore.stderr);
            assert!(!restore.stderr.contains(POSTGRES_PASSWORD) && !restore.stderr.contains(OWNER_PASSWORD));

            let a = as_neon_owner(&target).await;
            let b = as_neon_owner(&target).await;
            let actual = take_manifest(&[&a, &b], &selection).await.unwrap();
            let mismatches = expected.compare(&actual);
            assert_eq!(mismatches, vec![], "PG{major}: restored copy differs:\n{}",
                mismatches.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
            assert_eq!(expected.tables, actual.tables, "PG{major}");
            assert_eq!(actual.table("public", "manifest_probe").unwrap().rows, 500);

            // Tables read ahead (as backup-run does while indexes build) give the same manifest, and
            // the manifest really takes them from the early read: a wrong early value is caught.
            let mut known = fingerprint_tables_to_match(&[&a, &b], &selection, &expected).await.unwrap();
            assert!(known.contains_key(&("public".to_string(), "manifest_probe".to_string())), "PG{major}: {known:?}");
            assert!(!known.contains_key(&("public".to_string(), "todo_stats".to_string())), "PG{major}: materialized views are read last");
            let with_known = take_manifest_to_match_with(&[&a], &selection, &expected, &known).await.unwrap();
            assert_eq!(expected.compare(&with_known), vec![], "PG{major}");
            known.get_mut(&("public".to_string(), "manifest_probe".to_string())).unwrap().1 = "12345".into();
            let wrong = take_manifest_to_match_with(&[&a], &selection, &expected, &known).await.unwrap();
            assert_eq!(expected.compare(&wrong), vec![Mismatch::Checksum { table: "public.manifest_probe".into() }], "PG{major}");
            // Ledger data stayed behind; their structure came along.
            for ledger in LEDGER_TABLES {
                let count = |c: &Cluster, db: &str| c.psql(db, &format!("SELECT count(*) FROM {ledger}")).trim().to_string();
                assert_ne!(count(&source, "postgres"), "0", "PG{major}: the fixture has rows in {ledger}");
                assert_eq!(count(&target, "neondb"), "0", "PG{major}: {ledger} data was restored");
            }

            // The session was pinned for the manifest, and only for it the target's settings differ.
            pin_session(&probe).await.unwrap();
            let zone: String = probe.query_one("SHOW TimeZone", &[]).await.unwrap().get(0);
            assert_eq!(zone, "UTC");

            // Stored on the branch, read back equal, and our own schema stays out of later manifests.
            store_manifest(&a, &expected).await.unwrap();
            let stored: Manifest = read_manifest(&a).await.unwrap().expect("stored manifest");
            assert_eq!(stored, expected);
            // The newest stored manifest wins; one of an unknown format is refused, not misread.
            let mut newer = expected.clone();
            newer.taken_at += chrono::Duration::seconds(1);
            store_manifest(&a, &newer).await.unwrap();
            assert_eq!(read_manifest(&a).await.unwrap(), Some(newer));
            // It replaced the earlier one: a mirror stores one per sync and keeps only the last.
            let kept: i64 = a
                .query_one("SELECT count(*) FROM supaneon_sync.backup_manifest", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(kept, 1, "PG{major}");
            // Every table was hashed column by column (the probe's awkward types and the fixture's enums
            // alike), and the copy agreed under the target's own rendering settings.
            assert!(expected.tables.iter().all(|t| t.checksum_method == ChecksumMethod::Columns), "PG{major}");
            // A manifest of the record hash (before the column hash) is still checked the way it was
            // taken: source and copy agree under it (every table but the probe, written to since).
            let legacy = with_method(&expected, ChecksumMethod::MixedRecord);
            let on_source = take_manifest_to_match(&[&helper], &selection, &legacy).await.unwrap();
            let on_copy = take_manifest_to_match(&[&a], &selection, &legacy).await.unwrap();
            let mut by_record = 0;
            for t in on_source.tables.iter().filter(|t| t.name != "manifest_probe" && t.kind == TableKind::Table) {
                let c = on_copy.table(&t.schema, &t.name).unwrap();
                assert_eq!(
                    (c.checksum_method, c.rows, &c.checksum),
                    (t.checksum_method, t.rows, &t.checksum),
                    "PG{major}: {}", t.qualified_name()
                );
                by_record += usize::from(t.checksum_method == ChecksumMethod::MixedRecord && t.rows > 0);
            }
            assert!(by_record > 0, "PG{major}: no table was read by the record hash");

            // A format-1 manifest (every checksum over the text form, no method recorded) is still read
            // and a copy is checked the way it was taken.
            let mut old = expected.clone();
            old.taken_at += chrono::Duration::seconds(1);
            let mut old_json = serde_json::to_value(&old).unwrap();
            old_json["format"] = 1.into();
            for t in old_json["tables"].as_array_mut().unwrap() {
                t.as_object_mut().unwrap().remove("checksum_method");
            }
            // The text checksums of format 1, taken the way format 1 took them.
            let text_only = take_manifest_to_match(&[&a], &selection, &serde_json::from_value(old_json.clone()).unwrap()).await.unwrap();
            for (t, fp) in old_json["tables"].as_array_mut().unwrap().iter_mut().zip(&text_only.tables) {
                assert_eq!(fp.checksum_method, ChecksumMethod::Text);
                t["checksum"] = fp.checksum.clone().into();
            }
            target.psql(
                "neondb",
                &format!("INSERT INTO supaneon_sync.backup_manifest (taken_at, manifest) VALUES (now(), '{}')", old_json.to_string().replace('\'', "''")),
            );
            let old_read = read_manifest(&a).await.unwrap().expect("format-1 manifest");
            assert!(old_read.tables.iter().all(|t| t.checksum_method == ChecksumMethod::Text));
            let rechecked = take_manifest_to_match(&[&a, &b], &selection, &old_read).await.unwrap();
            assert_eq!(old_read.compare(&rechecked), vec![], "PG{major}: a format-1 manifest no longer matches");
            assert_ne!(
                old_read.table("public", "manifest_probe").unwrap().checksum,
                expected.table("public", "manifest_probe").unwrap().checksum,
                "PG{major}: the two methods should give different values"
            );

            let unknown = MANIFEST_FORMAT + 1;
            target.psql(
                "neondb",
                &format!("INSERT INTO supaneon_sync.backup_manifest (taken_at, manifest) VALUES (now(), '{{\"format\": {unknown}}}')"),
            );
            let err = read_manifest(&a).await.unwrap_err();
            assert!(matches!(err, InspectError::ManifestFormat(f) if f == unknown), "{err:?}");
            // A restore test only has the stored manifest: the selection it implies reads the same.
            let implied = Selection::of_manifest(&stored);
            assert_eq!(implied.exclude_table_data, selection.exclude_table_data);
            let after = take_manifest(&[&a], &implied).await.unwrap();
            assert_eq!(expected.compare(&after), vec![], "PG{major}: own schema leaked into the manifest");

            // And a changed row on the restored copy is caught.
            target.psql("neondb", "UPDATE public.manifest_probe SET span = span + interval '1 microsecond' WHERE id = 3");
            let tampered = take_manifest(&[&a], &selection).await.unwrap();
            assert_eq!(expected.compare(&tampered), vec![Mismatch::Checksum { table: "public.manifest_probe".into() }]);

            // A lost foreign key (the classic failed restore step) shows in the counts.
            target.psql("neondb", "ALTER TABLE public.todos DROP CONSTRAINT todos_user_id_fkey");
            let lost = take_manifest(&[&a], &selection).await.unwrap();
            assert!(
                lost.objects.constraints == expected.objects.constraints - 1
                    && expected.compare(&lost).contains(&Mismatch::ObjectCount {
                        kind: "constraints",
                        expected: expected.objects.constraints,
                        actual: expected.objects.constraints - 1,
                    }),
                "PG{major}: {:?}",
                expected.compare(&lost)
            );
        });
    }
}

#[test]
fn refused_extension_is_reported_and_a_stale_materialized_view_is_advisory() {
    let major = test_majors()[0];
    let source = start_source(major);
    // Untrusted: a non-superuser owner may not create it (Neon allows it; our stand-in does not).
    // And todo_stats goes stale: the restore refreshes it from the changed rows.
    source.psql(
        "postgres",
        "CREATE EXTENSION pg_stat_statements WITH SCHEMA extensions; \
         UPDATE public.todos SET is_complete = NOT is_complete WHERE id <= 10",
    );
    let target = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
    target.setup_neon_target(OWNER_PASSWORD);
    runtime().block_on(async {
        let snapshot = SourceSnapshot::open(as_postgres(&source).await).await.unwrap();
        // The exporting transaction is bounded: a frozen run's snapshot is ended by the server.
        let idle_timeout = snapshot
            .client()
            .query_one("SHOW idle_in_transaction_session_timeout", &[])
            .await
            .unwrap()
            .get::<_, String>(0);
        assert_eq!(idle_timeout, "5min", "PG{major}");
        let selection = select(snapshot.client(), &ContentPolicy::default()).await.unwrap();
        let expected = snapshot.take_manifest(&selection).await.unwrap();
        let report = prepare_target(snapshot.client(), &as_neon_owner(&target).await, &selection)
            .await
            .unwrap();
        let refused: Vec<&(String, String)> =
            report.extensions_failed.iter().filter(|(n, _)| n == "pg_stat_statements").collect();
        assert_eq!(refused.len(), 1, "PG{major}: {report:?}");
        assert!(refused[0].1.contains("permission denied"), "{report:?}");
        assert!(report.extensions_created.iter().any(|e| e == "pgcrypto"), "{report:?}");

        let restore = dump_and_restore(&source, &target, snapshot.id(), &selection);
        snapshot.finish().await.unwrap();
        assert!(
            restore.stderr.lines().filter(|l| l.contains("ERROR")).all(|l| l.contains("schema \"public\" already exists")),
            "PG{major}: {}",
            restore.stderr
        );
        let actual = take_manifest(&[&as_neon_owner(&target).await], &selection).await.unwrap();
        let mismatches = expected.compare(&actual);
        assert_eq!(mismatches.len(), 1, "PG{major}: {mismatches:?}");
        assert!(
            matches!(&mismatches[0], Mismatch::MaterializedViewContent { table, .. } if table == "public.todo_stats"),
            "{mismatches:?}"
        );
        assert!(mismatches[0].is_advisory());
    });
}
