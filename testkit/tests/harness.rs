//! Real clusters for every major in `test_majors()`: TLS, refusal of plain TCP, tear-down, and
//! the Supabase-shaped source / Neon-shaped target pair.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use supaneon_testkit::{process_alive, test_majors, Cluster, ClusterOptions};

/// Runs `psql` of the cluster's major against a URL, the password only in PGPASSWORD.
fn psql_url(cluster: &Cluster, url: &str, password: &str, sql: &str) -> Output {
    Command::new(cluster.bin_dir().join("psql"))
        .env_clear()
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .expect("spawn psql")
}

/// `url` with the password removed, so it reaches psql's argv without the secret.
fn without_password(url: &str) -> String {
    let at = url.rfind('@').expect("url has userinfo");
    let colon = url[..at].rfind(':').expect("url has a password");
    format!("{}{}", &url[..colon], &url[at..])
}

/// Polls until `/proc/<pid>` is gone. A stopped postmaster is an orphan (pg_ctl started it), and
/// this machine's init reaps orphans lazily, so the entry can outlive the process by a second.
fn wait_until_reaped(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn superuser_reaches_the_cluster_over_tls_and_plain_tcp_is_refused() {
    for major in test_majors() {
        let cluster = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
        let version = cluster.psql("postgres", "SHOW server_version_num;");
        assert!(
            version.trim().starts_with(&major.to_string()),
            "PG {major}: server_version_num {version}"
        );

        let url = without_password(&cluster.admin_url("postgres"));
        let tls = psql_url(
            &cluster,
            &url,
            cluster.superuser_password(),
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();",
        );
        assert!(
            tls.status.success(),
            "PG {major}: TLS login failed: {}",
            stderr(&tls)
        );
        assert_eq!(stdout(&tls), "t", "PG {major}: session is not encrypted");

        let plain_url = url.replace("sslmode=require", "sslmode=disable");
        let plain = psql_url(
            &cluster,
            &plain_url,
            cluster.superuser_password(),
            "SELECT 1;",
        );
        assert!(
            !plain.status.success(),
            "PG {major}: plain TCP was accepted"
        );
        assert!(
            stderr(&plain).contains("no pg_hba.conf entry"),
            "PG {major}: unexpected refusal: {}",
            stderr(&plain)
        );

        let wrong = psql_url(&cluster, &url, "not-the-password", "SELECT 1;");
        assert!(
            !wrong.status.success(),
            "PG {major}: a wrong password was accepted"
        );
    }
}

#[test]
fn verify_full_accepts_the_generated_ca() {
    let major = test_majors()[0];
    let cluster = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
    let url = format!(
        "{}&sslrootcert={}",
        without_password(&cluster.admin_url("postgres"))
            .replace("sslmode=require", "sslmode=verify-full"),
        cluster.ca_cert_path().display()
    );
    let out = psql_url(&cluster, &url, cluster.superuser_password(), "SELECT 1;");
    assert!(out.status.success(), "verify-full failed: {}", stderr(&out));
}

#[test]
fn stop_is_idempotent_and_ends_the_server() {
    let major = test_majors()[0];
    let mut cluster = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
    let pid = cluster.pid();
    assert!(process_alive(pid));
    cluster.stop();
    cluster.stop();
    assert!(!process_alive(pid), "postmaster {pid} survived stop()");
    assert!(wait_until_reaped(pid), "postmaster {pid} never went away");
}

#[test]
fn admin_client_connects_over_the_socket() {
    let major = test_majors()[0];
    let cluster = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = cluster.admin_client("postgres").await;
        let row = client
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "cloud_admin");
    });
}

#[test]
fn a_panicking_test_leaves_no_server_and_no_directory() {
    for major in test_majors() {
        let mut seen: Option<(u32, PathBuf)> = None;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let cluster = Cluster::start(ClusterOptions::new(major, "supabase_admin"));
            seen = Some((cluster.pid(), cluster.data_dir().to_path_buf()));
            assert!(process_alive(cluster.pid()));
            panic!("deliberate panic with a running cluster");
        }));
        assert!(result.is_err(), "the closure must have panicked");
        let (pid, data_dir) = seen.expect("cluster started before the panic");
        assert!(
            !process_alive(pid),
            "PG {major}: postmaster {pid} still running after the panic"
        );
        assert!(
            wait_until_reaped(pid),
            "PG {major}: postmaster {pid} never went away"
        );
        assert!(
            !data_dir.exists(),
            "PG {major}: {} not removed",
            data_dir.display()
        );
        assert!(
            !data_dir.parent().unwrap().exists(),
            "PG {major}: temp dir not removed"
        );
    }
}

/// The fixture's SQL text, to derive expectations from what it declares instead of hard-coding them.
const FIXTURE_SQL: &str = include_str!("../sql/supabase_source.sql");

fn count_statements(prefix: &str) -> usize {
    FIXTURE_SQL
        .lines()
        .filter(|line| line.trim_start().starts_with(prefix))
        .count()
}

fn scalar(cluster: &Cluster, db: &str, sql: &str) -> String {
    cluster.psql(db, sql).trim().to_string()
}

/// One md5 over every row of every table outside the system schemas, per table, in one query.
fn content_fingerprint(cluster: &Cluster, db: &str) -> String {
    let tables = cluster.psql(
        db,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1;",
    );
    let query = tables
        .lines()
        .map(|t| {
            format!(
                "SELECT '{t}' AS t, count(*) AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) \
                 FROM {t} x"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    cluster.psql(db, &format!("{query} ORDER BY 1;"))
}

#[test]
fn supabase_source_and_neon_target_have_their_shape() {
    for major in test_majors() {
        let source = Cluster::start(ClusterOptions::new(major, "supabase_admin"));
        let postgres_password = "p@ss w'rd\\with:odd/chars";
        source.load_supabase_fixture("postgres", postgres_password);

        // Every policy and table the fixture declares exists (plus partitions of the two
        // partitioned tables, which are CREATE TABLE … PARTITION OF lines too).
        let policies = scalar(&source, "postgres", "SELECT count(*) FROM pg_policies;");
        assert_eq!(
            policies,
            count_statements("CREATE POLICY").to_string(),
            "PG {major}: policies"
        );
        let tables = scalar(
            &source,
            "postgres",
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%';",
        );
        let declared_tables =
            count_statements("CREATE TABLE") + count_statements("CREATE UNLOGGED TABLE");
        assert_eq!(tables, declared_tables.to_string(), "PG {major}: tables");

        // Roles and the customer's non-superuser `postgres`.
        let roles = scalar(
            &source,
            "postgres",
            "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN \
             ('postgres', 'anon', 'authenticated', 'service_role', 'authenticator', \
              'supabase_auth_admin', 'supabase_storage_admin', 'dashboard_user');",
        );
        assert_eq!(
            roles,
            "anon,authenticated,authenticator,dashboard_user,postgres,service_role,\
             supabase_auth_admin,supabase_storage_admin",
            "PG {major}: roles"
        );
        let postgres_role = scalar(
            &source,
            "postgres",
            "SELECT concat_ws(',', rolsuper, rolcanlogin, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, \
               pg_has_role('postgres', 'pg_read_all_data', 'MEMBER'), pg_has_role('postgres', 'authenticated', 'MEMBER'), \
               pg_has_role('postgres', 'anon', 'MEMBER'), pg_has_role('postgres', 'service_role', 'MEMBER')) \
             FROM pg_roles WHERE rolname = 'postgres';",
        );
        assert_eq!(
            postgres_role, "f,t,t,t,t,t,t,t,t,t",
            "PG {major}: postgres role attributes"
        );
        let service_role = scalar(
            &source,
            "postgres",
            "SELECT concat_ws(',', rolcanlogin, rolbypassrls) FROM pg_roles WHERE rolname = 'service_role';",
        );
        assert_eq!(service_role, "f,t", "PG {major}: service_role attributes");

        // Platform extras and where the extensions live.
        let extras = scalar(
            &source,
            "postgres",
            "SELECT concat_ws(' ', \
               (SELECT string_agg(pubname, ',' ORDER BY pubname) FROM pg_publication), \
               (SELECT string_agg(evtname || ':' || evtevent, ',' ORDER BY evtname) FROM pg_event_trigger), \
               (SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension e \
                  JOIN pg_namespace n ON n.oid = e.extnamespace WHERE n.nspname = 'extensions'), \
               (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()), \
               (SELECT count(DISTINCT pg_get_userbyid(relowner)) FROM pg_class \
                  WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v', 'm')), \
               (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'public.todos'::regclass));",
        );
        assert_eq!(
            extras,
            "supabase_realtime,supabase_realtime_messages_publication \
             pgrst_ddl_watch:ddl_command_end,pgrst_drop_watch:sql_drop \
             pg_trgm,pgcrypto,uuid-ossp postgres 1 postgres",
            "PG {major}: publications, event triggers, extensions, owners"
        );

        // Data everywhere the brief asks for it, in both partitions of each partitioned table.
        for table in [
            "auth.users",
            "auth.identities",
            "auth.schema_migrations",
            "storage.buckets",
            "storage.objects",
            "storage.migrations",
            "realtime.messages_2026_01_01",
            "realtime.messages_2026_01_02",
            "supabase_functions.migrations",
            "public.profiles",
            "public.todos",
            "public.events_2025",
            "public.events_2026",
            "public.audit_log",
            "public.todo_stats",
        ] {
            let rows: u64 = scalar(
                &source,
                "postgres",
                &format!("SELECT count(*) FROM {table};"),
            )
            .parse()
            .unwrap();
            assert!(rows > 0, "PG {major}: {table} is empty");
        }

        // RLS really filters by auth.uid(): a user sees exactly their own todos.
        let own = source.psql(
            "postgres",
            "BEGIN; SET LOCAL ROLE authenticated; \
             SELECT set_config('request.jwt.claims', json_build_object('sub', md5('user-7')::uuid)::text, true); \
             SELECT count(*), count(*) FILTER (WHERE user_id <> md5('user-7')::uuid) FROM public.todos; COMMIT;",
        );
        let own = own.lines().nth(1).expect("count line").to_string();
        let expected_own = scalar(
            &source,
            "postgres",
            "SELECT count(*) || '|0' FROM public.todos WHERE user_id = md5('user-7')::uuid;",
        );
        assert_eq!(own, expected_own, "PG {major}: RLS on public.todos");

        // The customer logs in over TLS with the password given to the loader.
        let url = without_password(&source.url("postgres", postgres_password, "postgres"));
        let login = psql_url(
            &source,
            &url,
            postgres_password,
            "SELECT current_user, is_superuser FROM \
            (SELECT current_setting('is_superuser') AS is_superuser) s;",
        );
        assert!(
            login.status.success(),
            "PG {major}: postgres login: {}",
            stderr(&login)
        );
        assert_eq!(
            stdout(&login),
            "postgres|off",
            "PG {major}: postgres must not be superuser"
        );

        // Deterministic and idempotent: a second database of the same cluster gets identical data.
        source.load_supabase_fixture("second", postgres_password);
        assert_eq!(
            content_fingerprint(&source, "postgres"),
            content_fingerprint(&source, "second"),
            "PG {major}: fixture data differs between two loads"
        );

        // The Neon-shaped target.
        let target = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
        let owner_password = "neon/owner:pw@1";
        let neon_url = target.setup_neon_target(owner_password);
        assert!(
            neon_url.contains("sslmode=require"),
            "PG {major}: {}",
            without_password(&neon_url)
        );
        let owner = scalar(
            &target,
            "postgres",
            "SELECT concat_ws(',', r.rolsuper, r.rolcanlogin, r.rolcreatedb, r.rolcreaterole, r.rolbypassrls, \
               pg_has_role('neondb_owner', 'neon_superuser', 'MEMBER'), \
               (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'neondb'), \
               (SELECT rolsuper FROM pg_roles WHERE rolname = 'neon_superuser')) \
             FROM pg_roles r WHERE r.rolname = 'neondb_owner';",
        );
        assert_eq!(
            owner, "f,t,t,t,t,t,neondb_owner,f",
            "PG {major}: neondb_owner"
        );

        let target_url = without_password(&neon_url);
        let tls = psql_url(
            &target,
            &target_url,
            owner_password,
            "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();",
        );
        assert!(
            tls.status.success(),
            "PG {major}: neondb_owner over TLS: {}",
            stderr(&tls)
        );
        assert_eq!(stdout(&tls), "neondb_owner|t", "PG {major}: TLS session");

        // The owner can do what a restore needs on Neon, but not what only a superuser can.
        // (It creates `anon`, so the naive restore below misses only the other API roles.)
        let prepare = psql_url(
            &target,
            &target_url,
            owner_password,
            "CREATE SCHEMA extensions; CREATE EXTENSION pg_trgm WITH SCHEMA extensions; \
             CREATE ROLE anon NOLOGIN; SELECT 'ok';",
        );
        assert!(
            prepare.status.success(),
            "PG {major}: owner prepare: {}",
            stderr(&prepare)
        );
        let event_trigger = psql_url(
            &target,
            &target_url,
            owner_password,
            "CREATE FUNCTION f() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$; \
             CREATE EVENT TRIGGER et ON ddl_command_end EXECUTE FUNCTION f();",
        );
        assert!(
            stderr(&event_trigger).contains("permission denied to create event trigger"),
            "PG {major}: a non-superuser owner must not create event triggers: {}",
            stderr(&event_trigger)
        );

        naive_restore_breaks(
            major,
            &source,
            postgres_password,
            &target,
            &neon_url,
            owner_password,
        );

        let plain = psql_url(
            &target,
            &target_url.replace("sslmode=require", "sslmode=disable"),
            owner_password,
            "SELECT 1;",
        );
        assert!(
            !plain.status.success(),
            "PG {major}: plain TCP accepted on the target"
        );
        assert!(
            stderr(&plain).contains("no pg_hba.conf entry"),
            "PG {major}: {}",
            stderr(&plain)
        );
    }
}

#[test]
#[should_panic(expected = "scripts/fetch-postgres.sh")]
fn a_missing_major_points_at_the_fetch_script() {
    supaneon_testkit::pg_bin_dir(99);
}

#[test]
fn failing_sql_panics_with_the_server_error() {
    let major = test_majors()[0];
    let cluster = Cluster::start(ClusterOptions::new(major, "cloud_admin"));
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        cluster.psql("postgres", "SELECT 1; SELECT no_such_column FROM pg_class;")
    }));
    let message = *result
        .expect_err("psql must panic on an SQL error")
        .downcast::<String>()
        .expect("panic message");
    assert!(
        message.contains("column \"no_such_column\" does not exist"),
        "{message}"
    );
    // The cluster is still usable after a failed statement.
    assert_eq!(cluster.psql("postgres", "SELECT 2;").trim(), "2");
    assert!(cluster.server_log_tail(50).contains("no_such_column"));
}

/// The fixture is only useful if it breaks a naive `pg_dump | pg_restore --no-owner --no-acl` the
/// way a real Supabase database does (supabase-notes §6): pg_dump as the non-superuser `postgres`
/// works, the restore into the Neon-shaped target loses policies and event triggers.
fn naive_restore_breaks(
    major: u32,
    source: &Cluster,
    postgres_password: &str,
    target: &Cluster,
    neon_url: &str,
    owner_password: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("source.dump");
    let dump = Command::new(source.bin_dir().join("pg_dump"))
        .env_clear()
        .env("PGPASSWORD", postgres_password)
        .args(["-Fc", "-f"])
        .arg(&archive)
        .args([
            "-d",
            &without_password(&source.url("postgres", postgres_password, "postgres")),
        ])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "PG {major}: pg_dump as postgres: {}",
        stderr(&dump)
    );

    target.psql("postgres", "CREATE DATABASE naive OWNER neondb_owner;");
    let naive_url = without_password(neon_url).replace("/neondb?", "/naive?");
    let restore = Command::new(target.bin_dir().join("pg_restore"))
        .env_clear()
        .env("PGPASSWORD", owner_password)
        .args(["--no-owner", "--no-acl", "-d", &naive_url])
        .arg(&archive)
        .output()
        .unwrap();
    let errors = stderr(&restore);
    assert!(
        !restore.status.success(),
        "PG {major}: the naive restore succeeded"
    );
    for expected in [
        "role \"authenticated\" does not exist",
        "role \"service_role\" does not exist",
        "permission denied to create event trigger",
    ] {
        assert!(
            errors.contains(expected),
            "PG {major}: naive restore lacks {expected:?}:\n{errors}"
        );
    }
}
