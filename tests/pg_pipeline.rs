//! The dump→restore pipeline, connections and tool discovery against real PostgreSQL clusters, for
//! every major in `test_majors()`: a Supabase-shaped source (superuser `supabase_admin`, dumped as
//! `postgres`) and a Neon-shaped target (`neondb_owner`, not a superuser). Faults mid-stream are in
//! `pg_pipeline_faults`.

mod pipeline;

use std::path::PathBuf;

use pipeline::*;
use supaneon_sync::pg::conn::{connect, ConnError, SslMode};
use supaneon_sync::pg::content::Selection;
use supaneon_sync::pg::inspect::early_indexes;
use supaneon_sync::pg::pipeline::{
    dump_and_restore, dump_schema, restore_post_data, stream_data, DumpOptions, EarlyIndexes,
    PipelineError, POST_DATA_JOBS,
};
use supaneon_sync::pg::tools::{find_tools, ToolsError};
use supaneon_testkit::{pg_bin_dir, test_majors, Cluster, ClusterOptions};
use tokio::sync::watch;

const WRONG_PASSWORD: &str = "wrong-Pw-pipeline-3";

// ---------------------------------------------------------------------------------------------
// Happy path, restore errors.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_copies_two_schemas_and_classifies_restore_errors() {
    log_buffer();
    for major in test_majors() {
        let pair = Pair::start(major);
        let tools = tools_for(major);

        // Source over verify-full with the test CA, so pg_dump's libpq verifies too.
        pair.source_db("app", APP_SQL);
        let source = spec(
            &pair
                .source
                .verified_url("postgres", SOURCE_PASSWORD, "app")
                .replace("127.0.0.1", "localhost"),
        );
        assert_eq!(source.sslmode, SslMode::VerifyFull);
        let target = pair.target_db("neondb");
        let opts = DumpOptions {
            exclude_tables: vec!["public.audit_log".into()],
            exclude_table_data: vec!["public.cache".into()],
            ..schemas(&["public", "app_private"])
        };

        let report = dump_and_restore(&tools, &source, &target, &opts, never_cancelled())
            .await
            .unwrap_or_else(|e| panic!("PG {major}: {e}\n{}", captured_logs()));
        assert!(report.bytes > 0, "PG {major}: {report:?}");
        assert_eq!(report.sha256.len(), 64);
        assert!(report.sha256.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(
            report
                .benign
                .iter()
                .any(|n| n.message == "schema \"public\" already exists"),
            "PG {major}: the benign note is reported: {:?}",
            report.benign
        );

        for (table, expected) in [
            ("public.profiles", 1000),
            ("app_private.events", 5000),
            ("public.cache", 0),
        ] {
            let sql = format!("SELECT count(*) FROM {table};");
            assert_eq!(
                count(&pair.target, "neondb", &sql),
                expected,
                "PG {major} {table}"
            );
        }
        assert_eq!(
            count(&pair.source, "app", "SELECT count(*) FROM public.cache;"),
            10
        );
        let catalog = "SELECT (SELECT count(*) FROM pg_policies WHERE schemaname = 'public')
              + 10 * (SELECT count(*) FROM pg_views WHERE schemaname = 'public')
              + 100 * (SELECT count(*) FROM pg_proc WHERE pronamespace = 'app_private'::regnamespace)
              + 1000 * (SELECT count(*) FROM pg_class WHERE relname = 'audit_log');";
        assert_eq!(count(&pair.target, "neondb", catalog), 111, "PG {major}");
        assert_eq!(count(&pair.source, "app", catalog), 1111, "PG {major}");
        assert_eq!(
            pair.target
                .psql(
                    "neondb",
                    "SELECT obj_description('public.profiles'::regclass);"
                )
                .trim(),
            "comments are kept"
        );

        // A role that a policy names, missing on the target: fatal, and the policy is named.
        pair.source.psql("postgres", "CREATE ROLE auditor NOLOGIN;");
        let fatal_source = pair.source_db(
            "missing_role",
            "CREATE TABLE public.notes (id int);
             ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
             CREATE POLICY notes_auditor ON public.notes TO auditor USING (true);",
        );
        let fatal_target = pair.target_db("fatal_target");
        let err = dump_and_restore(
            &tools,
            &fatal_source,
            &fatal_target,
            &schemas(&["public"]),
            never_cancelled(),
        )
        .await
        .expect_err("a missing policy role fails the restore");
        let text = err.to_string();
        match &err {
            PipelineError::Restore { errors, .. } => {
                assert!(
                    errors
                        .iter()
                        .any(|e| e.message.contains("role \"auditor\" does not exist")
                            && e.object.as_deref().is_some_and(
                                |o| o.contains("POLICY") && o.contains("notes_auditor")
                            )),
                    "PG {major}: {errors:?}"
                );
                assert!(
                    !errors.iter().any(|e| e.message.contains("already exists")),
                    "PG {major}: benign errors are not listed as fatal: {errors:?}"
                );
            }
            other => panic!("PG {major}: expected a restore error, got {other}"),
        }
        assert!(!text.contains("CREATE POLICY"), "no SQL in errors: {text}");
        assert!(!captured_logs().contains("CREATE POLICY"), "no SQL in logs");
        assert_no_secret(&pair.secrets(), &[text]);
    }
}

// ---------------------------------------------------------------------------------------------
// Connections: libpq's sslmodes and the user-facing errors.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_follow_libpq_sslmodes_and_explain_failures() {
    log_buffer();
    for major in test_majors() {
        let cluster = Cluster::start(ClusterOptions::new(major, "supabase_admin"));
        cluster.load_supabase_fixture("postgres", SOURCE_PASSWORD);
        let base = cluster.url("postgres", SOURCE_PASSWORD, "postgres");
        let ca = cluster.ca_cert_path().display().to_string();
        let localhost = base.replace("127.0.0.1", "localhost");
        let mut texts = Vec::new();

        // require: the self-signed chain is not checked, the session is encrypted.
        let client = connect(&spec(&base), "pg_pipeline test")
            .await
            .expect("require");
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        assert!(
            row.get::<_, bool>(0),
            "PG {major}: the session is encrypted"
        );

        // verify-full with the test CA and the host name in the certificate.
        let full = localhost.replace(
            "sslmode=require",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        );
        connect(&spec(&full), "pg_pipeline test")
            .await
            .expect("verify-full with the CA");
        // verify-ca by IP, and require + root certificate (libpq: behaves like verify-ca).
        let by_ip_ca = base.replace(
            "sslmode=require",
            &format!("sslmode=verify-ca&sslrootcert={ca}"),
        );
        connect(&spec(&by_ip_ca), "pg_pipeline test")
            .await
            .expect("verify-ca");
        let require_ca = base.replace(
            "sslmode=require",
            &format!("sslmode=require&sslrootcert={ca}"),
        );
        connect(&spec(&require_ca), "pg_pipeline test")
            .await
            .expect("require + CA");

        // verify-full without the CA (webpki roots): the test CA is unknown.
        let no_ca = localhost.replace("sslmode=require", "sslmode=verify-full");
        let err = connect(&spec(&no_ca), "pg_pipeline test")
            .await
            .expect_err("unknown CA");
        assert!(
            matches!(err, ConnError::Certificate { .. }),
            "PG {major}: {err}"
        );
        assert!(err.to_string().contains("postgres@localhost:"), "{err}");
        texts.push(err.to_string());
        // require + a root certificate that did not sign the server's: rejected like verify-ca.
        let other_ca = Cluster::start(ClusterOptions::new(major, "supabase_admin"));
        let wrong_ca = base.replace(
            "sslmode=require",
            &format!(
                "sslmode=require&sslrootcert={}",
                other_ca.ca_cert_path().display()
            ),
        );
        let err = connect(&spec(&wrong_ca), "pg_pipeline test")
            .await
            .expect_err("wrong CA");
        assert!(
            matches!(err, ConnError::Certificate { .. }),
            "PG {major}: {err}"
        );
        drop(other_ca);

        // Wrong password.
        let wrong = cluster.url("postgres", WRONG_PASSWORD, "postgres");
        let err = connect(&spec(&wrong), "pg_pipeline test")
            .await
            .expect_err("wrong password");
        assert!(
            matches!(err, ConnError::Authentication { .. }),
            "PG {major}: {err}"
        );
        assert!(err.to_string().contains("authentication failed"), "{err}");
        texts.push(err.to_string());

        // A database that does not exist.
        let missing = cluster.url("postgres", SOURCE_PASSWORD, "no_such_db");
        let err = connect(&spec(&missing), "pg_pipeline test")
            .await
            .expect_err("missing db");
        assert!(
            matches!(err, ConnError::DatabaseMissing { .. }),
            "PG {major}: {err}"
        );
        texts.push(err.to_string());

        // Nothing listening (what a paused Supabase project looks like).
        let closed_port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let refused = base.replace(
            &format!(":{}/", cluster.port()),
            &format!(":{closed_port}/"),
        );
        let err = connect(&spec(&refused), "pg_pipeline test")
            .await
            .expect_err("refused");
        assert!(
            matches!(err, ConnError::Unreachable { .. }),
            "PG {major}: {err}"
        );
        assert!(err.to_string().contains("paused"), "{err}");
        texts.push(err.to_string());

        let mut secrets = vec![SOURCE_PASSWORD, WRONG_PASSWORD];
        secrets.push(cluster.superuser_password());
        assert_no_secret(&secrets, &texts);
    }
}

#[test]
fn tools_are_found_per_major_and_a_missing_major_is_explained() {
    for major in test_majors() {
        let tools = tools_for(major);
        assert_eq!(tools.major, major);
        assert!(tools.pg_dump.ends_with("pg_dump") && tools.pg_restore.ends_with("pg_restore"));
        assert!(
            tools.version.contains(&format!(") {major}.")),
            "{}",
            tools.version
        );
    }
    // A directory of another major is skipped, the right one after it is taken.
    let majors = test_majors();
    if majors.len() >= 2 {
        let (a, b) = (majors[0], majors[1]);
        let tools = find_tools(b, &[pg_bin_dir(a), pg_bin_dir(b)]).unwrap();
        assert_eq!(tools.pg_dump, pg_bin_dir(b).join("pg_dump"));
    }
    let extra = PathBuf::from("/nonexistent/pg-bin");
    let err = find_tools(99, &[extra, pg_bin_dir(majors[0])]).unwrap_err();
    let ToolsError::NotFound { tried, .. } = &err;
    assert!(
        tried.iter().any(|t| t.outcome.contains("is PostgreSQL")),
        "{err}"
    );
    let text = err.to_string();
    for needle in [
        "/nonexistent/pg-bin",
        "/usr/lib/postgresql/99/bin",
        "/usr/pgsql-99/bin",
        "/usr/local/pgsql/bin",
        "apt-get install postgresql-client-99",
        "pg-bin-dir",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Early index builds.

/// A large plain index is built while a later table still streams; the post-data restore skips it and
/// restores everything else (the other indexes, the constraints, the comment on the early index).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_indexes_are_built_while_later_tables_stream() {
    log_buffer();
    let major = test_majors()[0];
    let pair = Pair::start(major);
    let tools = tools_for(major);
    let early_sql = format!(
        "{APP_SQL}
         CREATE INDEX events_payload ON app_private.events USING gin (payload);
         CREATE INDEX profiles_name ON public.profiles (\"Display.Name\");
         COMMENT ON INDEX app_private.events_payload IS 'index comments are kept';
         {BULK_SQL}"
    );
    let source = pair.source_db("early", &early_sql);
    pair.source.psql("early", "VACUUM ANALYZE");
    let target = pair.target_db("early_target");
    let selection = Selection {
        schemas: vec!["app_private".into(), "public".into()],
        ..Selection::default()
    };
    let client = connect(&source, "test").await.unwrap();
    let indexes = early_indexes(&client, &selection, 0).await.unwrap();
    let oid_of = |name: &str| -> u32 {
        pair.source
            .psql("early", &format!("SELECT '{name}'::regclass::oid"))
            .trim()
            .parse()
            .unwrap()
    };
    let payload = oid_of("app_private.events_payload");
    let listed: Vec<u32> = indexes.iter().map(|i| i.oid).collect();
    assert!(listed.contains(&payload), "{indexes:?}");
    assert!(
        listed.contains(&oid_of("public.profiles_name")),
        "{indexes:?}"
    );
    assert!(
        !listed.contains(&oid_of("public.bulk_pkey")),
        "constraints stay with the post-data restore: {indexes:?}"
    );
    assert!(early_indexes(&client, &selection, i64::from(i32::MAX))
        .await
        .unwrap()
        .is_empty());

    let opts = schemas(&["app_private", "public"]);
    let schema = dump_schema(&tools, &source, &opts, never_cancelled())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", captured_logs()));
    let (rows_in_tx, rows_in) = watch::channel(false);
    let early = EarlyIndexes {
        schema: &schema,
        indexes,
    };
    let streamed = stream_data(
        &tools,
        &source,
        &target,
        &opts,
        Some(early),
        Some(&rows_in_tx),
        never_cancelled(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", captured_logs()));
    assert!(*rows_in.borrow(), "the rows-in signal was sent");
    // app_private.events is loaded first; public.bulk, loaded after it, takes long enough.
    assert!(
        streamed.early_built.contains(&payload),
        "{:?}\n{}",
        streamed.early_built,
        captured_logs()
    );
    let post = restore_post_data(
        &tools,
        &target,
        &schema,
        POST_DATA_JOBS,
        &streamed.early_built,
        never_cancelled(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", captured_logs()));
    assert!(post.benign.is_empty(), "{:?}", post.benign);

    let catalog = "SELECT (SELECT count(*) FROM pg_indexes WHERE indexname IN ('events_payload', 'profiles_name', 'bulk_pkey', 'profiles_pkey', 'events_pkey'))
          + 10 * (SELECT count(*) FROM pg_constraint WHERE conname = 'events_profile_id_fkey')
          + 100 * (SELECT count(*) FROM pg_description WHERE description = 'index comments are kept');";
    assert_eq!(count(&pair.target, "early_target", catalog), 115);
    assert_eq!(
        count(
            &pair.target,
            "early_target",
            "SELECT count(*) FROM public.bulk;"
        ),
        200000
    );
    assert_no_secret(&pair.secrets(), &[]);
}
