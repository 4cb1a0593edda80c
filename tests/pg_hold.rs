//! A held snapshot, against real PostgreSQL servers (every major in `test_majors()`): while it is held,
//! reading a table does not prune the row versions an update replaced after it was taken; once it is
//! released, the next read does. The mirror's sync holds one across its merges and the read that
//! follows them. Run: `cargo test --test pg_hold`.

use supaneon_sync::pg::hold::HeldSnapshot;
use supaneon_testkit::{test_majors, Cluster, ClusterOptions};

/// Row versions in `public.t` that are stored but dead (pruning frees their storage).
fn dead_versions(cluster: &Cluster) -> i64 {
    cluster
        .psql(
            "postgres",
            "SELECT dead_tuple_count FROM public.pgstattuple('public.t')",
        )
        .trim()
        .parse()
        .expect("a count")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_prunes_nothing_replaced_while_a_snapshot_is_held() {
    for major in test_majors() {
        let cluster = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
        // Full pages (fillfactor 100), autovacuum off: only reads may prune.
        cluster.psql(
            "postgres",
            "CREATE EXTENSION pgstattuple; \
             CREATE TABLE public.t (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false); \
             INSERT INTO public.t SELECT g, 0 FROM generate_series(1, 20000) g; \
             VACUUM public.t",
        );
        let held = HeldSnapshot::take(cluster.admin_client("postgres").await)
            .await
            .unwrap();
        // Every 10th row replaced, in a session of its own: 2 000 dead versions once it commits.
        cluster.psql("postgres", "UPDATE public.t SET v = 1 WHERE id % 10 = 0");
        let read = "SELECT pg_catalog.sum(v) FROM public.t";
        assert_eq!(cluster.psql("postgres", read).trim(), "2000", "PG {major}");
        assert_eq!(
            dead_versions(&cluster),
            2000,
            "PG {major}: pruned while held"
        );

        held.release().await;
        assert_eq!(cluster.psql("postgres", read).trim(), "2000", "PG {major}");
        let left = dead_versions(&cluster);
        assert!(
            left < 200,
            "PG {major}: {left} of 2000 replaced versions left after the hold was released"
        );
    }
}
