//! Planner statistics on a restored copy, against real PostgreSQL servers (every major in
//! `test_majors()`): every table analyzed once restored; later, only a table whose rows changed by more
//! than autovacuum's threshold since. Run: `cargo test --test pg_statistics`.

use supaneon_sync::pg::statistics::{analyze, Which};
use supaneon_testkit::{test_majors, Cluster, ClusterOptions};

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

fn analyses(cluster: &Cluster, table: &str) -> String {
    cluster
        .psql(
            "postgres",
            &format!("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = '{table}'"),
        )
        .trim()
        .to_string()
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
async fn restored_tables_are_analyzed_then_again_once_they_changed_enough() {
    for major in test_majors() {
        let cluster = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
        cluster.psql(
            "postgres",
            "CREATE TABLE public.big (id int PRIMARY KEY, v text); \
             INSERT INTO public.big SELECT g, 'v' || g FROM generate_series(1, 2000) g; \
             CREATE TABLE public.\"Odd \"\"name\" (id int); \
             INSERT INTO public.\"Odd \"\"name\" SELECT generate_series(1, 300); \
             CREATE TABLE public.empty (id int)",
        );
        // As pg_restore leaves them: rows, no statistics.
        assert_eq!(analyzed(&cluster), "", "PG {major}");
        let tables: Vec<(String, String)> = ["big", "Odd \"name", "empty"]
            .iter()
            .map(|t| ("public".to_string(), t.to_string()))
            .collect();
        let client = cluster.admin_client("postgres").await;

        assert_eq!(analyze(&client, &tables, Which::All).await.unwrap(), 3);
        // An empty table gets no column statistics, but was analyzed.
        assert_eq!(analyzed(&cluster), "Odd \"name,big", "PG {major}");
        assert_eq!(analyses(&cluster, "empty"), "1", "PG {major}");

        // 100 of 2000 rows changed: under 50 + 10 %, nothing to do.
        change(&cluster, "UPDATE public.big SET v = 'x' WHERE id <= 100");
        assert_eq!(analyze(&client, &tables, Which::Stale).await.unwrap(), 0);
        // 300 more: 400 changed since the last analysis, above 250.
        change(
            &cluster,
            "UPDATE public.big SET v = 'y' WHERE id > 100 AND id <= 400",
        );
        assert_eq!(analyze(&client, &tables, Which::Stale).await.unwrap(), 1);
        assert_eq!(analyses(&cluster, "big"), "2", "PG {major}");
        assert_eq!(analyses(&cluster, "Odd \"name"), "1", "PG {major}");
        assert_eq!(analyze(&client, &tables, Which::Stale).await.unwrap(), 0);
    }
}
