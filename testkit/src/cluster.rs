//! One throwaway PostgreSQL cluster: initdb, TLS, pg_hba, start on a free port, stop, clean up.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::binaries::pg_bin_dir;
use crate::privilege::ServerUser;
use crate::tls;
use crate::url_encoding::encode_userinfo;

/// How many times `start` tries a fresh port when another process grabbed the one we picked.
const PORT_ATTEMPTS: usize = 5;
/// Lines of the server log shown when the start fails.
const LOG_TAIL_LINES: usize = 40;

/// What cluster to start.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub major: u32,
    /// The bootstrap superuser (`supabase_admin` for Supabase-shaped sources, `cloud_admin` for
    /// Neon-shaped targets).
    pub superuser: String,
}

impl ClusterOptions {
    pub fn new(major: u32, superuser: impl Into<String>) -> ClusterOptions {
        ClusterOptions {
            major,
            superuser: superuser.into(),
        }
    }
}

impl Default for ClusterOptions {
    /// PostgreSQL 15 with superuser `postgres`.
    fn default() -> ClusterOptions {
        ClusterOptions::new(15, "postgres")
    }
}

/// A running PostgreSQL cluster in its own temp dir. Dropping it stops the server (immediate
/// mode) and removes the directory, also while unwinding from a panic.
pub struct Cluster {
    major: u32,
    bin_dir: PathBuf,
    superuser: String,
    superuser_password: String,
    port: u16,
    pid: u32,
    running: bool,
    server_user: ServerUser,
    root: PathBuf,
    data_dir: PathBuf,
    ca_cert: PathBuf,
    log_file: PathBuf,
    // Last field: removed after everything else is done with the paths.
    _temp: tempfile::TempDir,
}

impl Cluster {
    /// Creates and starts a cluster. Panics (with the server log tail) when it cannot.
    pub fn start(opts: ClusterOptions) -> Cluster {
        let bin_dir = pg_bin_dir(opts.major);
        let server_user = ServerUser::detect();
        let temp = tempfile::Builder::new()
            .prefix("supaneon-pg-")
            .tempdir_in("/tmp")
            .expect("create temp dir under /tmp");
        let root = temp.path().to_path_buf();
        let data_dir = root.join("data");
        let log_file = root.join("server.log");
        let superuser_password = fresh_password();

        let tls = tls::generate(&root.join("tls"));
        let pwfile = root.join("superuser.pw");
        std::fs::write(&pwfile, format!("{superuser_password}\n")).expect("write pwfile");
        server_user
            .own_tree(&root)
            .expect("chown temp dir to the server user");

        let mut cluster = Cluster {
            major: opts.major,
            bin_dir,
            superuser: opts.superuser,
            superuser_password,
            port: 0,
            pid: 0,
            running: false,
            server_user,
            root,
            data_dir,
            ca_cert: tls.ca_cert.clone(),
            log_file,
            _temp: temp,
        };
        cluster.initdb(&pwfile);
        std::fs::remove_file(&pwfile).expect("remove pwfile");
        cluster.write_config(&tls);
        cluster.start_on_free_port();
        cluster
    }

    pub fn major(&self) -> u32 {
        self.major
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The CA that signed the server certificate (for `sslmode=verify-full`).
    pub fn ca_cert_path(&self) -> &Path {
        &self.ca_cert
    }

    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    pub fn superuser_password(&self) -> &str {
        &self.superuser_password
    }

    /// `postgresql://user:password@127.0.0.1:port/db?sslmode=require`, user and password
    /// percent-encoded.
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgresql://{}:{}@{}:{}/{}?sslmode=require",
            encode_userinfo(user),
            encode_userinfo(password),
            self.host(),
            self.port,
            encode_userinfo(db),
        )
    }

    /// [`Cluster::url`] with the certificate verified in full: `sslmode=verify-full` and
    /// `sslrootcert` naming this cluster's CA (the certificate names 127.0.0.1 and localhost).
    pub fn verified_url(&self, user: &str, password: &str, db: &str) -> String {
        self.url(user, password, db).replace(
            "sslmode=require",
            &format!("sslmode=verify-full&sslrootcert={}", self.ca_cert.display()),
        )
    }

    /// [`Cluster::url`] for the superuser (TCP + TLS + scram).
    pub fn admin_url(&self, db: &str) -> String {
        self.url(&self.superuser, &self.superuser_password, db)
    }

    /// libpq key/value string for the superuser over the unix socket (trust, no TLS).
    pub fn admin_conninfo(&self, db: &str) -> String {
        format!(
            "host={} port={} user={} dbname={}",
            self.root.display(),
            self.port,
            self.superuser,
            db
        )
    }

    /// Runs `sql` with `psql -X -v ON_ERROR_STOP=1 -At` as the superuser over the unix socket and
    /// returns stdout. The SQL goes through stdin, never argv. Panics with stderr on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.psql_output(db, sql);
        assert!(
            out.status.success(),
            "psql on database {db:?} of the PostgreSQL {} test cluster failed ({}):\n{}",
            self.major,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("psql output is UTF-8")
    }

    pub(crate) fn psql_output(&self, db: &str, sql: &str) -> Output {
        let mut child = self
            .client_command("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-f", "-"])
            .args([
                "-h",
                &self.root.to_string_lossy(),
                "-p",
                &self.port.to_string(),
            ])
            .args(["-U", &self.superuser, "-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn psql");
        {
            let mut stdin = child.stdin.take().expect("psql stdin");
            // A write error means psql already exited; its status and stderr tell why.
            let _ = stdin.write_all(sql.as_bytes());
        }
        child.wait_with_output().expect("wait for psql")
    }

    /// A tokio-postgres client for the superuser over the unix socket (no TLS). The connection
    /// task is spawned on the current tokio runtime.
    pub async fn admin_client(&self, db: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::Config::new()
            .host_path(&self.root)
            .port(self.port)
            .user(&self.superuser)
            .dbname(db)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to the test cluster over its socket: {e}"));
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away; tests see that on the client.
            let _ = connection.await;
        });
        client
    }

    /// The last `lines` lines of the server log, for assertion messages.
    pub fn server_log_tail(&self, lines: usize) -> String {
        tail(&self.log_since(0), lines)
    }

    /// The postmaster's pid (as of the last start).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the server with `pg_ctl -m fast` and waits for it. Idempotent.
    pub fn stop(&mut self) {
        self.stop_with_mode("fast");
    }

    /// Starts a stopped server again on the port it had: its URLs, and what a tool fingerprints from
    /// them, stay the same (a source that comes back). Panics if it does not start.
    pub fn start_again(&mut self) {
        assert!(!self.running, "the cluster is running");
        let out = self.pg_ctl_start(self.port);
        assert!(
            out.status.success(),
            "PostgreSQL {} test cluster did not start again on port {}: {}",
            self.major,
            self.port,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        self.running = true;
        self.pid = self.read_postmaster_pid();
    }

    /// A command for a client tool of this cluster's major, with a clean environment (no PG*
    /// variables from the caller leak in).
    pub(crate) fn client_command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(tool));
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd
    }

    fn server_command(&self, tool: &str) -> Command {
        let mut cmd = self.server_user.command(self.bin_dir.join(tool));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C")
            .current_dir(&self.root);
        cmd
    }

    fn initdb(&self, pwfile: &Path) {
        let out = self
            .server_command("initdb")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-A", "scram-sha-256", "-U", &self.superuser])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--no-sync", "-E", "UTF8", "--locale=C"])
            .output()
            .expect("spawn initdb");
        assert!(
            out.status.success(),
            "initdb (PostgreSQL {}) failed: {}\n{}",
            self.major,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn write_config(&self, tls: &tls::TlsFiles) {
        let hba = format!(
            "# supaneon-testkit: the superuser over the socket; everyone else only over TLS.\n\
             local all {su} trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n",
            su = quote_hba_name(&self.superuser),
        );
        std::fs::write(self.data_dir.join("pg_hba.conf"), hba).expect("write pg_hba.conf");

        let conf = format!(
            "\n# supaneon-testkit\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket}'\n\
             ssl = on\n\
             ssl_cert_file = '{cert}'\n\
             ssl_key_file = '{key}'\n\
             password_encryption = 'scram-sha-256'\n\
             fsync = off\n\
             max_connections = 100\n",
            socket = self.root.display(),
            cert = tls.server_cert.display(),
            key = tls.server_key.display(),
        );
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir.join("postgresql.conf"))
            .expect("open postgresql.conf");
        file.write_all(conf.as_bytes())
            .expect("append postgresql.conf");
    }

    /// `pg_ctl start` on `port`, waiting until the server accepts connections.
    fn pg_ctl_start(&self, port: u16) -> std::process::Output {
        self.server_command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .args(["-w", "-o", &format!("-p {port}"), "start"])
            .stdin(Stdio::null())
            .output()
            .expect("spawn pg_ctl start")
    }

    fn start_on_free_port(&mut self) {
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let log_before = std::fs::metadata(&self.log_file).map_or(0, |m| m.len());
            let out = self.pg_ctl_start(port);
            if out.status.success() {
                self.port = port;
                self.running = true;
                self.pid = self.read_postmaster_pid();
                return;
            }
            let log = self.log_since(log_before);
            if attempt < PORT_ATTEMPTS && log.contains("Address already in use") {
                continue;
            }
            // pg_ctl may give up waiting while the postmaster lives on: let Drop stop it.
            if let Ok(pid) = self.try_read_postmaster_pid() {
                self.pid = pid;
                self.running = true;
            }
            panic!(
                "PostgreSQL {} test cluster did not start (pg_ctl: {}{}).\nserver log tail:\n{}",
                self.major,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim(),
                tail(&log, LOG_TAIL_LINES)
            );
        }
    }

    fn read_postmaster_pid(&self) -> u32 {
        self.try_read_postmaster_pid()
            .unwrap_or_else(|e| panic!("postmaster.pid after pg_ctl -w start: {e}"))
    }

    fn try_read_postmaster_pid(&self) -> Result<u32, String> {
        let text = std::fs::read_to_string(self.data_dir.join("postmaster.pid"))
            .map_err(|e| e.to_string())?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| "no pid on its first line".to_string())
    }

    fn log_since(&self, offset: u64) -> String {
        let bytes = std::fs::read(&self.log_file).unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    fn stop_with_mode(&mut self, mode: &str) {
        if !self.running {
            return;
        }
        self.running = false;
        let stopped = self
            .server_command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", mode, "-w", "stop"])
            .stdin(Stdio::null())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        // pg_ctl returns once postmaster.pid is gone, a moment before the process exits.
        if stopped && wait_for_exit(self.pid, Duration::from_secs(30)) {
            return;
        }
        // pg_ctl could not do it (e.g. a broken data dir): do not leave a server behind.
        if process_alive(self.pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
            wait_for_exit(self.pid, Duration::from_secs(10));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_with_mode("immediate");
        // The TempDir field removes the directory once this returns.
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("major", &self.major)
            .field("port", &self.port)
            .field("superuser", &self.superuser)
            .field("superuser_password", &"***")
            .field("root", &self.root)
            .field("running", &self.running)
            .finish()
    }
}

/// Whether the process `pid` is running. A zombie counts as gone: it holds no port, socket or
/// files, and a stopped postmaster stays one until init reaps it (pg_ctl made it an orphan).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 is the state; `Z` (zombie) and `X` (dead) are gone for our purposes.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Sends signal `name` (`KILL`, `TERM`, …) to `pid` with kill(1); panics if it could not be sent.
pub fn send_signal(name: &str, pid: u32) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(sent.success(), "kill -{name} {pid}");
}

/// Polls until `pid` has exited; false when it still runs at the deadline.
fn wait_for_exit(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while process_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// A port that was free a moment ago. Another process may take it before the server binds; the
/// caller retries on "Address already in use".
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A unique, URL-unfriendly password (so tests exercise percent-encoding) without an RNG crate.
fn fresh_password() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("su-{:x}-{:x}-{n}/p@ss", nanos, std::process::id())
}

fn quote_hba_name(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
