//! The dump→restore pipeline, connections and tool discovery against real PostgreSQL clusters, for
//! every major in `test_majors()`: a Supabase-shaped source (superuser `supabase_admin`, dumped as
//! `postgres`) and a Neon-shaped target (`neondb_owner`, not a superuser).
//!
//! Mid-stream faults are made deterministic with a gate on the target: an event trigger makes
//! pg_restore's `CREATE TABLE` wait on an advisory lock the test holds, so the pipe fills and pg_dump
//! blocks inside its `COPY`. The test then kills, stops or cancels, and opens the gate.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use supaneon_sync::pg::conn::{connect, ConnError, ConnSpec, SslMode};
use supaneon_sync::pg::content::Selection;
use supaneon_sync::pg::inspect::early_indexes;
use supaneon_sync::pg::pipeline::{
    dump_and_restore, dump_schema, restore_post_data, stream_data, DumpOptions, EarlyIndexes,
    PipelineError, POST_DATA_JOBS,
};
use supaneon_sync::pg::tools::{find_tools, PgTools, ToolsError};
use supaneon_sync::secret::Secret;
use supaneon_testkit::{
    pg_bin_dir, process_alive, send_signal, test_majors, Cluster, ClusterOptions,
};
use tokio::sync::watch;

// Passwords with characters that need percent-encoding in a URI.
const SOURCE_PASSWORD: &str = "src-Pw@pipe:line/%1";
const TARGET_PASSWORD: &str = "tgt-Pw#neon?owner&2";
const WRONG_PASSWORD: &str = "wrong-Pw-pipeline-3";
const GATE_LOCK: i64 = 4242;

// ---------------------------------------------------------------------------------------------
// Log capture: every tracing line of this test binary goes into one buffer, checked for secrets.

#[derive(Clone)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_buffer() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer(Arc::new(Mutex::new(Vec::new())));
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .init();
        buffer
    })
}

fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().0.lock().unwrap()).into_owned()
}

/// No password of this test may appear in the logs or in `texts` (error messages).
fn assert_no_secret(secrets: &[&str], texts: &[String]) {
    let logs = captured_logs();
    for secret in secrets {
        assert!(
            !logs.contains(secret),
            "a password reached the logs:\n{logs}"
        );
        for text in texts {
            assert!(
                !text.contains(secret),
                "a password reached an error: {text}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clusters and fixtures.

struct Pair {
    source: Cluster,
    target: Cluster,
}

impl Pair {
    /// A source with the Supabase fixture (role `postgres`) and a Neon-shaped target prepared the
    /// way prepare.rs will: the policy roles, schema `extensions` and pgcrypto in it.
    fn start(major: u32) -> Pair {
        let source = Cluster::start(ClusterOptions::new(major, "supabase_admin"));
        source.load_supabase_fixture("postgres", SOURCE_PASSWORD);
        let target = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
        target.setup_neon_target(TARGET_PASSWORD);
        target.psql("postgres", POLICY_ROLES_SQL);
        Pair { source, target }
    }

    fn secrets(&self) -> Vec<&str> {
        vec![
            SOURCE_PASSWORD,
            TARGET_PASSWORD,
            self.source.superuser_password(),
            self.target.superuser_password(),
        ]
    }

    /// A source database owned by `postgres`, filled by `sql` run as `postgres`.
    fn source_db(&self, db: &str, sql: &str) -> ConnSpec {
        self.source
            .psql("postgres", &format!("CREATE DATABASE {db} OWNER postgres;"));
        self.source.psql(db, SOURCE_PLATFORM_SQL);
        self.source.psql(db, &format!("SET ROLE postgres;\n{sql}"));
        spec(&self.source.url("postgres", SOURCE_PASSWORD, db))
    }

    /// A target database owned by `neondb_owner` with schema `extensions` and pgcrypto.
    fn target_db(&self, db: &str) -> ConnSpec {
        if db != "neondb" {
            self.target.psql(
                "postgres",
                &format!("CREATE DATABASE {db} OWNER neondb_owner;"),
            );
        }
        self.target.psql(db, TARGET_EXTENSIONS_SQL);
        spec(&self.target.url("neondb_owner", TARGET_PASSWORD, db))
    }
}

fn spec(url: &str) -> ConnSpec {
    ConnSpec::from_url(&Secret::new(url)).expect("test URL parses")
}

const POLICY_ROLES_SQL: &str = "
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role NOLOGIN; END IF;
END $$;";

/// What the platform (supabase_admin) provides in every source database.
const SOURCE_PLATFORM_SQL: &str = "
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role NOLOGIN; END IF;
END $$;
CREATE SCHEMA IF NOT EXISTS extensions;
CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA extensions;
GRANT USAGE ON SCHEMA extensions TO postgres;";

const TARGET_EXTENSIONS_SQL: &str = "
CREATE SCHEMA IF NOT EXISTS extensions;
CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA extensions;
GRANT USAGE ON SCHEMA extensions TO neondb_owner;";

/// The application: two schemas, RLS with a policy, a view, a function, odd identifiers.
const APP_SQL: &str = r#"
CREATE SCHEMA app_private;
CREATE TABLE public.profiles (
  id bigint PRIMARY KEY,
  "Display.Name" text NOT NULL,
  token bytea DEFAULT extensions.digest('seed', 'sha256')
);
INSERT INTO public.profiles (id, "Display.Name") SELECT g, 'user ' || g FROM generate_series(1, 1000) g;
CREATE TABLE app_private.events (
  id bigserial PRIMARY KEY,
  profile_id bigint NOT NULL REFERENCES public.profiles,
  payload jsonb
);
INSERT INTO app_private.events (profile_id, payload)
  SELECT 1 + g % 1000, jsonb_build_object('n', g) FROM generate_series(1, 5000) g;
CREATE TABLE public.audit_log (id int, note text);
INSERT INTO public.audit_log SELECT g, 'skip me' FROM generate_series(1, 10) g;
CREATE TABLE public.cache (id int, blob text);
INSERT INTO public.cache SELECT g, 'rows not copied' FROM generate_series(1, 10) g;
ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY profiles_read ON public.profiles FOR SELECT TO authenticated USING (id > 0);
CREATE VIEW public.profile_names AS SELECT "Display.Name" FROM public.profiles;
CREATE FUNCTION app_private.event_count() RETURNS bigint LANGUAGE sql STABLE
  AS 'SELECT count(*) FROM app_private.events';
COMMENT ON TABLE public.profiles IS 'comments are kept';
"#;

/// Enough rows that the pipe, the relay buffer and the socket buffers cannot hold them all.
const BULK_SQL: &str = "
CREATE TABLE public.bulk (id bigint PRIMARY KEY, filler text NOT NULL);
INSERT INTO public.bulk SELECT g, md5(g::text) || repeat('x', 100) FROM generate_series(1, 200000) g;";

fn count(cluster: &Cluster, db: &str, sql: &str) -> i64 {
    cluster
        .psql(db, sql)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: not a number ({e})"))
}

fn tools_for(major: u32) -> PgTools {
    find_tools(major, &[pg_bin_dir(major)]).expect("pg tools of the test major")
}

fn schemas(list: &[&str]) -> DumpOptions {
    DumpOptions {
        schemas: list.iter().map(|s| s.to_string()).collect(),
        ..DumpOptions::default()
    }
}

fn never_cancelled() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    // A dropped sender means "never cancelled".
    drop(tx);
    rx
}

async fn poll_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
// Faults mid-stream.

/// pg_restore's `CREATE TABLE` in `db` waits for advisory lock [`GATE_LOCK`] (held by the client
/// this returns) so the stream stalls with pg_dump inside its COPY.
async fn close_gate(target: &Cluster, db: &str) -> tokio_postgres::Client {
    target.psql(
        db,
        &format!(
            "CREATE SCHEMA test_gate;
             GRANT USAGE ON SCHEMA test_gate TO PUBLIC;
             CREATE FUNCTION test_gate.wait() RETURNS event_trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_advisory_lock({GATE_LOCK}); PERFORM pg_advisory_unlock({GATE_LOCK}); END $$;
             CREATE EVENT TRIGGER test_gate ON ddl_command_start WHEN TAG IN ('CREATE TABLE')
               EXECUTE FUNCTION test_gate.wait();"
        ),
    );
    let gate = target.admin_client(db).await;
    gate.simple_query(&format!("SELECT pg_advisory_lock({GATE_LOCK})"))
        .await
        .unwrap();
    gate
}

/// Waits until pg_restore is held at the gate and pg_dump is inside its COPY.
async fn wait_mid_stream(pair: &Pair, source_db: &str, target_db: &str) {
    let restore_waits = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{target_db}'
           AND application_name = 'supaneon-sync pg_restore' AND wait_event_type = 'Lock';"
    );
    let dump_copies = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{source_db}'
           AND application_name = 'supaneon-sync pg_dump' AND query LIKE 'COPY %' AND state = 'active';"
    );
    poll_until("pg_restore at the gate", Duration::from_secs(60), || {
        count(&pair.target, "postgres", &restore_waits) == 1
    })
    .await;
    poll_until("pg_dump inside COPY", Duration::from_secs(60), || {
        count(&pair.source, "postgres", &dump_copies) == 1
    })
    .await;
}

/// The pid of our child `tool` connected to the cluster on `port` (from /proc; PGPORT is unique per
/// test cluster, so concurrent tests do not confuse each other).
fn child_pid(tool: &str, port: u16) -> Option<u32> {
    let marker = format!("PGPORT={port}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            if comm.trim() != tool || !process_alive(pid) {
                return None;
            }
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            environ
                .split(|b| *b == 0)
                .any(|var| var == marker.as_bytes())
                .then_some(pid)
        })
}

struct Running {
    task:
        tokio::task::JoinHandle<Result<supaneon_sync::pg::pipeline::PipelineReport, PipelineError>>,
    cancel: watch::Sender<bool>,
    dump_pid: u32,
    restore_pid: u32,
}

/// Starts a bulk dump into a gated target database and waits until it is mid-stream.
async fn start_gated(
    pair: &Pair,
    major: u32,
    target_db: &str,
) -> (Running, tokio_postgres::Client) {
    let source = spec(&pair.source.url("postgres", SOURCE_PASSWORD, "bulk"));
    let target = pair.target_db(target_db);
    let gate = close_gate(&pair.target, target_db).await;
    let (cancel, rx) = watch::channel(false);
    let tools = tools_for(major);
    let task = tokio::spawn(async move {
        dump_and_restore(&tools, &source, &target, &schemas(&["public"]), rx).await
    });
    wait_mid_stream(pair, "bulk", target_db).await;
    let dump_pid = child_pid("pg_dump", pair.source.port()).expect("pg_dump runs");
    let restore_pid = child_pid("pg_restore", pair.target.port()).expect("pg_restore runs");
    for pid in [dump_pid, restore_pid] {
        let argv = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap())
            .replace('\0', " ");
        for secret in pair.secrets() {
            assert!(!argv.contains(secret), "a password in argv: {argv}");
        }
        assert!(
            !argv.contains("127.0.0.1"),
            "connection details stay out of argv: {argv}"
        );
    }
    (
        Running {
            task,
            cancel,
            dump_pid,
            restore_pid,
        },
        gate,
    )
}

async fn open_gate(gate: &tokio_postgres::Client) {
    gate.simple_query(&format!("SELECT pg_advisory_unlock({GATE_LOCK})"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_pg_dump_or_cancelling_stops_both_children() {
    log_buffer();
    for major in test_majors() {
        let pair = Pair::start(major);
        pair.source_db("bulk", BULK_SQL);
        let mut texts = Vec::new();

        // pg_dump killed mid-stream: the pipeline fails and pg_restore is gone.
        let (run, gate) = start_gated(&pair, major, "killed").await;
        send_signal("KILL", run.dump_pid);
        let err = tokio::time::timeout(Duration::from_secs(60), run.task)
            .await
            .expect("the pipeline ends")
            .unwrap()
            .expect_err("a killed pg_dump fails the pipeline");
        match &err {
            PipelineError::Dump { status, .. } => {
                assert!(status.contains("signal: 9"), "PG {major}: {status}")
            }
            other => panic!("PG {major}: expected a pg_dump failure, got {other}"),
        }
        assert!(
            !process_alive(run.restore_pid),
            "PG {major}: pg_restore was stopped"
        );
        assert!(!process_alive(run.dump_pid));
        texts.push(err.to_string());
        open_gate(&gate).await;
        drop(run.cancel);

        // pg_restore killed mid-stream: the pipeline fails and pg_dump is stopped too.
        let (run, gate) = start_gated(&pair, major, "restore_killed").await;
        send_signal("KILL", run.restore_pid);
        let err = tokio::time::timeout(Duration::from_secs(60), run.task)
            .await
            .expect("the pipeline ends")
            .unwrap()
            .expect_err("a killed pg_restore fails the pipeline");
        match &err {
            PipelineError::Restore { status, .. } => {
                assert!(status.contains("signal: 9"), "PG {major}: {status}")
            }
            other => panic!("PG {major}: expected a pg_restore failure, got {other}"),
        }
        assert!(
            !process_alive(run.dump_pid),
            "PG {major}: pg_dump was stopped"
        );
        texts.push(err.to_string());
        open_gate(&gate).await;
        drop(run.cancel);

        // Cancelled mid-stream: both children are killed and reaped.
        let (run, gate) = start_gated(&pair, major, "cancelled").await;
        run.cancel.send(true).unwrap();
        let err = tokio::time::timeout(Duration::from_secs(60), run.task)
            .await
            .expect("the pipeline ends")
            .unwrap()
            .expect_err("cancelled");
        assert!(matches!(err, PipelineError::Cancelled), "PG {major}: {err}");
        assert!(!process_alive(run.dump_pid), "PG {major}: pg_dump gone");
        assert!(
            !process_alive(run.restore_pid),
            "PG {major}: pg_restore gone"
        );
        assert!(!std::path::Path::new(&format!("/proc/{}", run.dump_pid)).exists());
        assert!(!std::path::Path::new(&format!("/proc/{}", run.restore_pid)).exists());
        texts.push(err.to_string());
        open_gate(&gate).await;

        assert_no_secret(&pair.secrets(), &texts);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_going_away_mid_dump_fails_clearly() {
    log_buffer();
    for major in test_majors() {
        let mut pair = Pair::start(major);
        pair.source_db("bulk", BULK_SQL);

        let (run, gate) = start_gated(&pair, major, "source_gone").await;
        tokio::task::block_in_place(|| pair.source.stop());
        open_gate(&gate).await;
        let err = tokio::time::timeout(Duration::from_secs(60), run.task)
            .await
            .expect("the pipeline ends")
            .unwrap()
            .expect_err("the source went away");
        let text = err.to_string();
        match &err {
            PipelineError::Dump { stderr_tail, .. } => assert!(
                stderr_tail
                    .iter()
                    .any(|l| l.contains("Dumping the contents of table \"bulk\" failed"))
                    && stderr_tail.iter().any(|l| [
                        "terminating connection",
                        "server closed the connection",
                        "SSL SYSCALL error",
                        "connection to server",
                    ]
                    .iter()
                    .any(|reason| l.contains(reason))),
                "PG {major}: the reason is relayed: {text}"
            ),
            other => panic!("PG {major}: expected a pg_dump failure, got {other}"),
        }
        assert!(
            !process_alive(run.restore_pid),
            "PG {major}: pg_restore was stopped"
        );
        assert!(
            !text.contains("COPY public.bulk"),
            "no SQL in errors: {text}"
        );
        assert_no_secret(&pair.secrets(), &[text]);
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
