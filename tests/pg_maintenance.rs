//! Upkeep of a restored copy, against real PostgreSQL servers (every major in `test_majors()`): every
//! table analyzed once restored; later, a table analyzed again once its rows changed by more than
//! autovacuum's threshold since, and vacuumed once its dead rows pass autovacuum's, by the server's
//! statistics counters or, when those are lost, by the mirror's own count of merged rows. Run:
//! `cargo test --test pg_maintenance`.

use supaneon_sync::pg::maintenance::{maintain, Done, RowsMerged, Which};
use supaneon_testkit::{test_majors, Cluster, ClusterOptions};
use tokio_postgres::Client;

/// Tables with planner statistics in `public`, sorted.
fn analyzed(cluster: &Cluster) -> String {
    cluster
        .psql(
            "postgres",
            "SELECT string_agg(DISTINCT tablename, ',' ORDER BY tablename) FROM pg_stats WHERE schemaname = 'public'",
        )
        .trim()
        .to_string()
}

/// How often `table` was vacuumed and analyzed by hand, as `vacuums/analyses`.
fn counts(cluster: &Cluster, table: &str) -> String {
    cluster
        .psql(
            "postgres",
            &format!(
                "SELECT vacuum_count || '/' || analyze_count FROM pg_stat_user_tables WHERE relname = '{table}'"
            ),
        )
        .trim()
        .to_string()
}

fn done(vacuumed: usize, analyzed: usize) -> Done {
    Done { vacuumed, analyzed }
}

/// `names` in schema `public`, as [`maintain`] takes them.
fn public(names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|t| ("public".to_string(), t.to_string()))
        .collect()
}

/// One [`maintain`] call that must succeed.
async fn upkeep(client: &Client, tables: &[(String, String)], which: Which<'_>) -> Done {
    maintain(client, tables, which).await.unwrap()
}

/// Runs `sql` with its statistics counters in shared memory before it returns: a session flushes them
/// when it goes idle, at most once a second otherwise (PostgreSQL 15+).
fn change(cluster: &Cluster, sql: &str) {
    cluster.psql(
        "postgres",
        &format!("{sql}; SELECT pg_catalog.pg_stat_force_next_flush()"),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restored_tables_are_analyzed_then_looked_after_as_autovacuum_would() {
    for major in test_majors() {
        let cluster = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
        cluster.psql(
            "postgres",
            // Autovacuum kept off these tables: its analyses would race the test's.
            "CREATE TABLE public.big (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false); \
             INSERT INTO public.big SELECT g, 'v' || g FROM generate_series(1, 2000) g; \
             CREATE TABLE public.\"Odd \"\"name\" (id int) WITH (autovacuum_enabled = false); \
             INSERT INTO public.\"Odd \"\"name\" SELECT generate_series(1, 300); \
             CREATE TABLE public.empty (id int) WITH (autovacuum_enabled = false)",
        );
        // As pg_restore leaves them: rows, no statistics.
        assert_eq!(analyzed(&cluster), "", "PG {major}");
        let tables = public(&["big", "Odd \"name", "empty"]);
        let client = cluster.admin_client("postgres").await;

        assert_eq!(upkeep(&client, &tables, Which::All).await, done(0, 3));
        // An empty table gets no column statistics, but was analyzed.
        assert_eq!(analyzed(&cluster), "Odd \"name,big", "PG {major}");
        assert_eq!(counts(&cluster, "empty"), "0/1", "PG {major}");

        // 100 of 2000 rows changed: under 50 + 10 %, nothing to do.
        change(&cluster, "UPDATE public.big SET v = 'x' WHERE id <= 100");
        assert_eq!(upkeep(&client, &tables, Which::Due(&[])).await, done(0, 0));
        // 300 more: 400 changed since the last analysis, above 250.
        change(
            &cluster,
            "UPDATE public.big SET v = 'y' WHERE id > 100 AND id <= 400",
        );
        assert_eq!(upkeep(&client, &tables, Which::Due(&[])).await, done(0, 1));
        assert_eq!(counts(&cluster, "big"), "0/2", "PG {major}");
        assert_eq!(counts(&cluster, "Odd \"name"), "0/1", "PG {major}");
        assert_eq!(upkeep(&client, &tables, Which::Due(&[])).await, done(0, 0));

        // 500 of 2000 rows deleted: more dead rows than 50 + 20 %, vacuumed (and analyzed with it).
        change(&cluster, "DELETE FROM public.big WHERE id > 1500");
        assert_eq!(upkeep(&client, &tables, Which::Due(&[])).await, done(1, 0));
        assert_eq!(counts(&cluster, "big"), "1/3", "PG {major}");
        let dead = cluster.psql(
            "postgres",
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'big'",
        );
        assert_eq!(dead.trim(), "0", "PG {major}");
        assert_eq!(upkeep(&client, &tables, Which::Due(&[])).await, done(0, 0));
    }
}

/// The mirror's own count of merged rows, `modified/dead` per table, sorted.
fn own_count(cluster: &Cluster) -> String {
    cluster
        .psql(
            "postgres",
            "SELECT string_agg(table_name || '=' || modified || '/' || dead, ',' ORDER BY table_name) \
             FROM supaneon_sync.table_changes",
        )
        .trim()
        .to_string()
}

fn merged(table: &str, updated: u64, deleted: u64) -> RowsMerged {
    RowsMerged {
        table: ("public".to_string(), table.to_string()),
        updated,
        deleted,
        ..RowsMerged::default()
    }
}

/// A compute that stops without a clean shutdown loses the server's statistics counters (and Neon keeps
/// them only from PostgreSQL 15 on, up to a size limit): the syncs' own count of merged rows still
/// brings the tables their ANALYZE and VACUUM. Here every run's counters are reset after its merges.
#[tokio::test(flavor = "multi_thread")]
async fn upkeep_goes_by_the_mirrors_own_count_when_the_servers_counters_are_lost() {
    for major in test_majors() {
        let cluster = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
        cluster.psql(
            "postgres",
            "CREATE TABLE public.big (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false); \
             INSERT INTO public.big SELECT g, 'v' || g FROM generate_series(1, 2000) g; \
             CREATE TABLE public.small (id int) WITH (autovacuum_enabled = false); \
             INSERT INTO public.small SELECT generate_series(1, 10)",
        );
        let tables = public(&["big", "small"]);
        let client = cluster.admin_client("postgres").await;
        assert_eq!(upkeep(&client, &tables, Which::All).await, done(0, 2));
        // The change counted by the server, then its counters lost.
        let lost = |sql: &str| {
            change(&cluster, sql);
            cluster.psql("postgres", "SELECT pg_catalog.pg_stat_reset()");
        };

        // A day: 100 of 2000 rows updated, under 50 + 10 %.
        lost("UPDATE public.big SET v = 'x' WHERE id <= 100");
        assert_eq!(
            upkeep(
                &client,
                &tables,
                Which::Due(&[merged("big", 100, 0), merged("small", 0, 1)])
            )
            .await,
            done(0, 0)
        );
        assert_eq!(own_count(&cluster), "big=100/100,small=1/1", "PG {major}");
        // The next: 300 more, 400 since the last analysis by the own count (the server's says 0).
        lost("UPDATE public.big SET v = 'y' WHERE id > 100 AND id <= 400");
        assert_eq!(
            upkeep(&client, &tables, Which::Due(&[merged("big", 300, 0)])).await,
            done(0, 1)
        );
        assert_eq!(counts(&cluster, "big"), "0/1", "PG {major}");
        // Analyzed: its modified rows start again from 0; its dead rows are still there.
        assert_eq!(own_count(&cluster), "big=0/400,small=1/1", "PG {major}");
        // 100 rows deleted: 500 dead rows by the own count, above 50 + 20 % of 2000.
        lost("DELETE FROM public.big WHERE id > 1900");
        assert_eq!(
            upkeep(&client, &tables, Which::Due(&[merged("big", 0, 100)])).await,
            done(1, 0)
        );
        assert_eq!(counts(&cluster, "big"), "1/1", "PG {major}");
        assert_eq!(own_count(&cluster), "big=0/0,small=1/1", "PG {major}");
        // A table no longer backed up leaves the count.
        assert_eq!(
            upkeep(&client, &tables[..1], Which::Due(&[])).await,
            done(0, 0)
        );
        assert_eq!(own_count(&cluster), "big=0/0", "PG {major}");
    }
}
