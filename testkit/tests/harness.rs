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
