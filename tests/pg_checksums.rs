//! How the manifest hashes a table's rows, against real PostgreSQL clusters for every major in
//! `test_majors()`: the checksum method each column type gets, the fall-backs when matching a manifest
//! taken another way, and the changes a column-by-column hash must still see. Run:
//! `cargo test --test pg_checksums`.

mod manifests;

use manifests::{runtime, with_method};
use supaneon_sync::pg::content::Selection;
use supaneon_sync::pg::inspect::{take_manifest, take_manifest_to_match};
use supaneon_sync::pg::manifest::{ChecksumMethod, Manifest};
use supaneon_testkit::{test_majors, Cluster, ClusterOptions};

/// Each table is hashed by its column types' own hash functions only when every type hashes its value
/// (not an OID a restore renumbers, not through a case-insensitive collation); otherwise by text.
#[test]
fn checksum_methods_follow_the_column_types() {
    for major in test_majors() {
        let source = Cluster::start(ClusterOptions::new(major, "supabase_admin"));
        source.psql(
            "postgres",
            "CREATE SCHEMA m; CREATE TYPE m.mood AS ENUM ('ok', 'meh'); CREATE DOMAIN m.positive AS int CHECK (VALUE > 0); \
             CREATE DOMAIN m.int_list AS int[]; \
             CREATE TABLE m.plain (id int, name text, tags text[], at timestamptz, doc jsonb, n numeric, u uuid, ip inet); \
             CREATE TABLE m.with_domain (id m.positive, ids m.positive[], list m.int_list); \
             CREATE TABLE m.with_enum (id int, mood m.mood); \
             CREATE TABLE m.with_enum_array (id int, moods m.mood[]); \
             CREATE TABLE m.with_json (id int, doc json); \
             CREATE TABLE m.with_point (id int, p point); \
             CREATE TABLE m.dropped_json (id int, doc json); ALTER TABLE m.dropped_json DROP COLUMN doc; \
             INSERT INTO m.plain SELECT g, 'n' || g, ARRAY['a', NULL], now(), '{\"a\": 1}', g / 3.0, gen_random_uuid(), '10.0.0.1' FROM generate_series(1, 50) g; \
             INSERT INTO m.with_enum VALUES (1, 'ok'), (2, 'meh'); INSERT INTO m.with_json VALUES (1, '{}');",
        );
        let nondeterministic = source
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_collation WHERE collname = 'und-x-icu'",
            )
            .trim()
            != "0";
        if nondeterministic {
            source.psql(
                "postgres",
                "CREATE COLLATION m.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false); \
                 CREATE TABLE m.with_ci_text (id int, name text COLLATE m.ci);",
            );
        }
        runtime().block_on(async {
            let client = source.admin_client("postgres").await;
            let selection = Selection {
                schemas: vec!["m".into()],
                ..Default::default()
            };
            let manifest = take_manifest(&[&client], &selection).await.unwrap();
            let method = |name: &str| {
                manifest
                    .table("m", name)
                    .unwrap_or_else(|| panic!("PG{major}: m.{name}"))
                    .checksum_method
            };
            // Every table is hashed column by column, whatever its types (those without a hash that is
            // the value itself go through their text form).
            for name in [
                "plain",
                "with_domain",
                "dropped_json",
                "with_enum",
                "with_enum_array",
                "with_json",
                "with_point",
            ] {
                assert_eq!(method(name), ChecksumMethod::Columns, "PG{major}: m.{name}");
            }
            if nondeterministic {
                assert_eq!(
                    method("with_ci_text"),
                    ChecksumMethod::Columns,
                    "PG{major}: m.with_ci_text"
                );
            }
            // Told to match a manifest of the record hash, a table whose types it cannot take falls
            // back to text instead of failing.
            let as_record = with_method(&manifest, ChecksumMethod::MixedRecord);
            let matched = take_manifest_to_match(&[&client], &selection, &as_record)
                .await
                .unwrap();
            for (name, method) in [
                ("plain", ChecksumMethod::MixedRecord),
                ("with_domain", ChecksumMethod::MixedRecord),
                ("with_enum", ChecksumMethod::Text),
                ("with_json", ChecksumMethod::Text),
            ] {
                assert_eq!(
                    matched.table("m", name).unwrap().checksum_method,
                    method,
                    "PG{major}: m.{name}"
                );
            }
            assert_eq!(manifest.table("m", "plain").unwrap().rows, 50);
            assert_ne!(manifest.table("m", "with_enum").unwrap().checksum, "0");

            // Told to match a manifest that used text, a table that could be hashed by type is hashed by text.
            let as_text = with_method(&manifest, ChecksumMethod::Text);
            let matched = take_manifest_to_match(&[&client], &selection, &as_text)
                .await
                .unwrap();
            assert_eq!(
                matched.table("m", "plain").unwrap().checksum_method,
                ChecksumMethod::Text
            );
            assert_ne!(
                matched.table("m", "plain").unwrap().checksum,
                manifest.table("m", "plain").unwrap().checksum
            );

            // Values swapped between two rows: the same values per column, in other rows. The plain
            // record hash (manifests before the mixed one, still read) is blind to it; every method a
            // manifest takes today sees it.
            let legacy = |m: &Manifest| with_method(m, ChecksumMethod::Record);
            let before_legacy = take_manifest_to_match(&[&client], &selection, &legacy(&manifest))
                .await
                .unwrap();
            client
                .batch_execute(
                    "UPDATE m.plain SET name = CASE id WHEN 1 THEN 'n2' ELSE 'n1' END WHERE id IN (1, 2); \
                     UPDATE m.with_enum SET mood = CASE id WHEN 1 THEN 'meh'::m.mood ELSE 'ok' END",
                )
                .await
                .unwrap();
            let swapped = take_manifest(&[&client], &selection).await.unwrap();
            for name in ["plain", "with_enum"] {
                assert_ne!(
                    swapped.table("m", name).unwrap().checksum,
                    manifest.table("m", name).unwrap().checksum,
                    "PG{major}: m.{name}: a swap must change the checksum"
                );
            }
            let after_legacy = take_manifest_to_match(&[&client], &selection, &legacy(&manifest))
                .await
                .unwrap();
            // Blind modulo 2^64: each row's hash wraps as an int8 before the exact sum, so the sums
            // differ by a multiple of 2^64 at most.
            let sum = |m: &Manifest| -> i128 { m.table("m", "plain").unwrap().checksum.parse().unwrap() };
            assert_eq!(
                (sum(&after_legacy) - sum(&before_legacy)).rem_euclid(1 << 64),
                0,
                "PG{major}: the legacy record method is blind to swaps (why it was replaced)"
            );
        });
    }
}

/// Changes that a naive column-by-column hash would miss: values whose type's hash ignores the seed
/// (jsonb without scalars, empty arrays and arrays of NULLs) in two columns at once, which would cancel
/// out in the XOR; values whose hash is not the value (numeric's display scale, an interval's units);
/// values swapped or moved between columns; NULL against a value; a change of case under a
/// case-insensitive collation. Each must change the checksum.
#[test]
fn the_column_hash_sees_what_type_hashes_alone_would_not() {
    for major in test_majors() {
        let source = Cluster::start(ClusterOptions::new(major, "supabase_admin"));
        let ci = source
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_collation WHERE collname = 'und-x-icu'",
            )
            .trim()
            != "0";
        source.psql(
            "postgres",
            &format!(
                "CREATE SCHEMA m; {} \
                 CREATE TABLE m.odd (id int PRIMARY KEY, a jsonb, b jsonb, xs int[], ys int[], x numeric, \
                   y numeric, f bool, g bool, span interval, at timestamptz, d date, t text {}, ns numeric[]); \
                 INSERT INTO m.odd VALUES (1, '[[]]', '[[]]', '{{}}', '{{}}', 1.0, 0, true, false, \
                   '1 day', '2026-01-01 00:00:00+00', '2026-01-01', 'a', '{{1.0}}');",
                if ci {
                    "CREATE COLLATION m.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);"
                } else {
                    ""
                },
                if ci { "COLLATE m.ci" } else { "" }
            ),
        );
        let mut changes = vec![
            "UPDATE m.odd SET a = '[{}]', b = '[{}]'",
            "UPDATE m.odd SET xs = '{NULL}', ys = '{NULL}'",
            "UPDATE m.odd SET x = 1.00",
            "UPDATE m.odd SET ns = '{1.00}'",
            "UPDATE m.odd SET x = 0, y = 'NaN'",
            "UPDATE m.odd SET x = 'NaN', y = 0",
            "UPDATE m.odd SET f = false, g = true",
            "UPDATE m.odd SET f = NULL",
            "UPDATE m.odd SET span = '24 hours'",
            "UPDATE m.odd SET at = at + interval '1 microsecond'",
            "UPDATE m.odd SET d = 'infinity'",
            "UPDATE m.odd SET a = '{\"k\": 1}', b = NULL",
            "UPDATE m.odd SET a = NULL, b = '{\"k\": 1}'",
        ];
        if ci {
            changes.push("UPDATE m.odd SET t = 'A'");
        }
        runtime().block_on(async {
            let client = source.admin_client("postgres").await;
            let selection = Selection {
                schemas: vec!["m".into()],
                ..Default::default()
            };
            let checksum = |m: Manifest| {
                let t = m.table("m", "odd").unwrap().clone();
                assert_eq!(t.checksum_method, ChecksumMethod::Columns, "PG{major}");
                t.checksum
            };
            let mut last = checksum(take_manifest(&[&client], &selection).await.unwrap());
            for change in changes {
                client.batch_execute(change).await.unwrap();
                let now = checksum(take_manifest(&[&client], &selection).await.unwrap());
                assert_ne!(now, last, "PG{major}: unseen: {change}");
                last = now;
            }
        });
    }
}
