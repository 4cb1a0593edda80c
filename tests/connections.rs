//! Connections as Neon and Supabase make them, against real servers: channel binding over TLS 1.2 and
//! 1.3, certificates verified in full, and what each connection verified.

use std::path::Path;

use supaneon_sync::pg::conn::{self, ConnError, ConnSpec};
use supaneon_sync::secret::Secret;
use supaneon_testkit::{test_majors, Cluster, ClusterOptions};

const PASSWORD: &str = "Conn-test-pw-8830";

fn spec(url: &str) -> ConnSpec {
    ConnSpec::from_url(&Secret::new(url)).expect("test URL parses")
}

fn neon_shaped(cluster: &Cluster, extra_roots: Option<&Path>, host: &str) -> ConnSpec {
    // Neon's URIs: sslmode=require&channel_binding=require; the rule makes them verify-full.
    let uri = cluster
        .url("postgres", PASSWORD, "postgres")
        .replace("sslmode=require", "sslmode=require&channel_binding=require");
    ConnSpec::for_neon_branch(&Secret::new(uri), host, extra_roots).expect("Neon URI")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_binding_and_full_verification_against_real_servers() {
    for major in test_majors() {
        let cluster = Cluster::start(ClusterOptions::new(major, "postgres"));
        cluster.psql(
            "postgres",
            &format!("ALTER ROLE postgres PASSWORD '{PASSWORD}'"),
        );
        let ca = cluster.ca_cert_path();

        for (versions, protocol) in [
            ("", "TLS 1.3"),
            ("&ssl_max_protocol_version=TLSv1.2", "TLS 1.2"),
        ] {
            let url = format!(
                "{}&channel_binding=require{versions}",
                cluster.verified_url("postgres", PASSWORD, "postgres")
            );
            let (client, facts) = conn::connect_with_facts(&spec(&url), "conn test")
                .await
                .unwrap_or_else(|e| panic!("PG {major} {protocol}: {e}"));
            assert_eq!(facts.protocol, Some(protocol), "PG {major}: {facts:?}");
            assert_eq!(facts.auth.as_deref(), Some("SCRAM-SHA-256-PLUS"));
            assert!(facts.host_checked);
            assert!(facts
                .verified_by
                .as_deref()
                .is_some_and(|v| v.contains(ca.to_str().unwrap())));
            let text = facts.describe();
            assert!(
                text.starts_with(&format!(
                    "{protocol}, certificate verified (host name checked)"
                )),
                "{text}"
            );
            let ssl: bool = client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert!(ssl);
        }

        // Direct TLS without the SSLRequest round trip (PostgreSQL 17 and libpq 17).
        if major >= 17 {
            let url = format!(
                "{}&sslnegotiation=direct&channel_binding=require",
                cluster.verified_url("postgres", PASSWORD, "postgres")
            );
            let (_, facts) = conn::connect_with_facts(&spec(&url), "conn test")
                .await
                .unwrap_or_else(|e| panic!("PG {major} direct: {e}"));
            assert_eq!(facts.auth.as_deref(), Some("SCRAM-SHA-256-PLUS"));
        }

        // A Neon-shaped branch URI: verify-full with channel binding, the test CA as the extra root.
        let (_, facts) =
            conn::connect_with_facts(&neon_shaped(&cluster, Some(ca), "127.0.0.1"), "conn test")
                .await
                .unwrap_or_else(|e| panic!("PG {major}: {e}"));
        assert_eq!(facts.auth.as_deref(), Some("SCRAM-SHA-256-PLUS"));

        // Without the extra root only the public roots count: refused before any password.
        let err = conn::connect(&neon_shaped(&cluster, None, "127.0.0.1"), "conn test")
            .await
            .unwrap_err();
        assert!(matches!(err, ConnError::Certificate { .. }), "{err}");
        assert!(err.to_string().contains("no password was sent"), "{err}");

        // The URI names a host other than the API's endpoint: refused before connecting.
        let uri = cluster.url("postgres", PASSWORD, "postgres");
        let err = ConnSpec::for_neon_branch(&Secret::new(uri), "localhost", Some(ca)).unwrap_err();
        assert!(matches!(err, ConnError::UnexpectedHost { .. }), "{err}");
        assert!(!err.to_string().contains(PASSWORD));

        // An unverified source: SCRAM (here SCRAM-SHA-256-PLUS) is what the guard lets through.
        let (_, facts) = conn::connect_with_facts(
            &ConnSpec::for_source(&Secret::new(cluster.url("postgres", PASSWORD, "postgres")))
                .unwrap(),
            "conn test",
        )
        .await
        .unwrap_or_else(|e| panic!("PG {major}: {e}"));
        assert_eq!(facts.verified_by, None);
        assert!(facts.describe().contains("NOT verified"), "{facts:?}");
        assert!(facts.auth.as_deref().unwrap().starts_with("SCRAM-SHA-256"));
    }
}
