//! What the pipeline's tests share (`pg_pipeline`, `pg_pipeline_faults`): every tracing line captured
//! and checked for secrets, a Supabase-shaped source and a Neon-shaped target per major, the fixtures
//! and small helpers. Each test binary uses a part of it.
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use supaneon_sync::pg::conn::ConnSpec;
use supaneon_sync::pg::pipeline::DumpOptions;
use supaneon_sync::pg::tools::{find_tools, PgTools};
use supaneon_sync::secret::Secret;
use supaneon_testkit::{pg_bin_dir, Cluster, ClusterOptions};
use tokio::sync::watch;

// Passwords with characters that need percent-encoding in a URI.
pub const SOURCE_PASSWORD: &str = "src-Pw@pipe:line/%1";
pub const TARGET_PASSWORD: &str = "tgt-Pw#neon?owner&2";

// ---------------------------------------------------------------------------------------------
// Log capture: every tracing line of this test binary goes into one buffer, checked for secrets.

#[derive(Clone)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn log_buffer() -> &'static LogBuffer {
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

pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().0.lock().unwrap()).into_owned()
}

/// No password of this test may appear in the logs or in `texts` (error messages).
pub fn assert_no_secret(secrets: &[&str], texts: &[String]) {
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

pub struct Pair {
    pub source: Cluster,
    pub target: Cluster,
}

impl Pair {
    /// A source with the Supabase fixture (role `postgres`) and a Neon-shaped target prepared the
    /// way prepare.rs will: the policy roles, schema `extensions` and pgcrypto in it.
    pub fn start(major: u32) -> Pair {
        let source = Cluster::start(ClusterOptions::new(major, "supabase_admin"));
        source.load_supabase_fixture("postgres", SOURCE_PASSWORD);
        let target = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
        target.setup_neon_target(TARGET_PASSWORD);
        target.psql("postgres", POLICY_ROLES_SQL);
        Pair { source, target }
    }

    pub fn secrets(&self) -> Vec<&str> {
        vec![
            SOURCE_PASSWORD,
            TARGET_PASSWORD,
            self.source.superuser_password(),
            self.target.superuser_password(),
        ]
    }

    /// A source database owned by `postgres`, filled by `sql` run as `postgres`.
    pub fn source_db(&self, db: &str, sql: &str) -> ConnSpec {
        self.source
            .psql("postgres", &format!("CREATE DATABASE {db} OWNER postgres;"));
        self.source.psql(db, SOURCE_PLATFORM_SQL);
        self.source.psql(db, &format!("SET ROLE postgres;\n{sql}"));
        spec(&self.source.url("postgres", SOURCE_PASSWORD, db))
    }

    /// A target database owned by `neondb_owner` with schema `extensions` and pgcrypto.
    pub fn target_db(&self, db: &str) -> ConnSpec {
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

pub fn spec(url: &str) -> ConnSpec {
    ConnSpec::from_url(&Secret::new(url)).expect("test URL parses")
}

pub const POLICY_ROLES_SQL: &str = "
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role NOLOGIN; END IF;
END $$;";

/// What the platform (supabase_admin) provides in every source database.
pub const SOURCE_PLATFORM_SQL: &str = "
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role NOLOGIN; END IF;
END $$;
CREATE SCHEMA IF NOT EXISTS extensions;
CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA extensions;
GRANT USAGE ON SCHEMA extensions TO postgres;";

pub const TARGET_EXTENSIONS_SQL: &str = "
CREATE SCHEMA IF NOT EXISTS extensions;
CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA extensions;
GRANT USAGE ON SCHEMA extensions TO neondb_owner;";

/// The application: two schemas, RLS with a policy, a view, a function, odd identifiers.
pub const APP_SQL: &str = r#"
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
pub const BULK_SQL: &str = "
CREATE TABLE public.bulk (id bigint PRIMARY KEY, filler text NOT NULL);
INSERT INTO public.bulk SELECT g, md5(g::text) || repeat('x', 100) FROM generate_series(1, 200000) g;";

pub fn count(cluster: &Cluster, db: &str, sql: &str) -> i64 {
    cluster
        .psql(db, sql)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: not a number ({e})"))
}

pub fn tools_for(major: u32) -> PgTools {
    find_tools(major, &[pg_bin_dir(major)]).expect("pg tools of the test major")
}

pub fn schemas(list: &[&str]) -> DumpOptions {
    DumpOptions {
        schemas: list.iter().map(|s| s.to_string()).collect(),
        ..DumpOptions::default()
    }
}

pub fn never_cancelled() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    // A dropped sender means "never cancelled".
    drop(tx);
    rx
}

pub async fn poll_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
