//! The `local-world` binary end to end: it becomes ready, writes a private env file that points at a
//! working world, and leaves no server or directory behind whichever way it is told to stop.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use supaneon_testkit::{process_alive, test_majors};

const READY_DEADLINE: Duration = Duration::from_secs(180);
const EXIT_DEADLINE: Duration = Duration::from_secs(60);
const VARIABLES: [&str; 7] = [
    "SUPABASE_DATABASE_URL",
    "NEON_API_KEY",
    "NEON_PROJECT_ID",
    "NEON_API_URL",
    "SUPANEON_NEON_CA_FILE",
    "SUPANEON_PG_BIN_DIR",
    "DEMO_SOURCE_ADMIN_CONNINFO",
];

struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout_lines: Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
    env_file: PathBuf,
    clusters: Vec<(PathBuf, u32)>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(extra_args: &[&str]) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join("world.env");
        let mut child = Command::new(env!("CARGO_BIN_EXE_local-world"))
            .arg("--env-file")
            .arg(&env_file)
            .arg("--print-data-dirs")
            .args(extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn local-world");
        let stdin = child.stdin.take();
        let (tx, stdout_lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            text
        });
        Running {
            child,
            stdin,
            stdout_lines,
            stderr,
            env_file,
            clusters: Vec::new(),
            _dir: dir,
        }
    }

    /// Reads stdout up to `local-world: ready`, collecting the cluster lines on the way.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout_lines.recv_timeout(left) {
                Ok(line) if line == "local-world: ready" => break,
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("local-world: cluster ") {
                        self.clusters.push(parse_cluster(rest));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("local-world not ready within {READY_DEADLINE:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    panic!("local-world exited ({status}) before ready");
                }
            }
        }
        assert_eq!(
            self.clusters.len(),
            2,
            "two clusters reported: {:?}",
            self.clusters
        );
        for (dir, pid) in &self.clusters {
            assert!(dir.is_dir(), "{} exists while running", dir.display());
            assert!(process_alive(*pid), "postmaster {pid} runs while ready");
        }
    }

    fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{name}");
    }

    /// Waits for the exit (polling with a deadline) and returns its status and stderr.
    fn wait_exit(mut self) -> (ExitStatus, String, Vec<(PathBuf, u32)>) {
        let deadline = Instant::now() + EXIT_DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("local-world did not exit within {EXIT_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = self.stderr.join().unwrap();
        (status, stderr, self.clusters)
    }
}

fn parse_cluster(rest: &str) -> (PathBuf, u32) {
    let field = |key: &str| {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} in {rest:?}"))
            .to_string()
    };
    (PathBuf::from(field("dir=")), field("pid=").parse().unwrap())
}

fn assert_gone(clusters: &[(PathBuf, u32)]) {
    for (dir, pid) in clusters {
        assert!(!dir.exists(), "{} was removed", dir.display());
        assert!(!process_alive(*pid), "postmaster {pid} was stopped");
    }
}

/// `export NAME='value'` lines back into a map (the inverse of the binary's quoting).
fn read_env_file(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| {
            let (name, quoted) = line
                .strip_prefix("export ")
                .and_then(|l| l.split_once('='))
                .unwrap_or_else(|| panic!("not an export line: {line:?}"));
            let inner = quoted
                .strip_prefix('\'')
                .and_then(|q| q.strip_suffix('\''))
                .expect("single-quoted");
            (name.to_string(), inner.replace(r"'\''", "'"))
        })
        .collect()
}

/// The source answers as `postgres` with the password from the env file (given through PGPASSWORD).
fn assert_source_reachable(env: &BTreeMap<String, String>) {
    let url = &env["SUPABASE_DATABASE_URL"];
    let rest = url
        .strip_prefix("postgresql://")
        .expect("a postgresql:// URL");
    let (userinfo, rest) = rest.split_once('@').unwrap();
    let (user, password) = userinfo.split_once(':').unwrap();
    let (hostport, _) = rest.split_once('/').unwrap();
    let (host, port) = hostport.split_once(':').unwrap();
    assert!(
        password.chars().all(|c| c.is_ascii_alphanumeric()),
        "generated password needs no decoding"
    );
    let out = Command::new(Path::new(&env["SUPANEON_PG_BIN_DIR"]).join("psql"))
        .args([
            "-X",
            "-At",
            "-h",
            host,
            "-p",
            port,
            "-U",
            user,
            "-d",
            "postgres",
            "-c",
            "select current_user",
        ])
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "require")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "postgres");
}

/// The emulator serves the project to the env file's API key (plain HTTP/1.0 on a TcpStream).
fn assert_emulator_serves_project(env: &BTreeMap<String, String>) {
    let base = env["NEON_API_URL"]
        .strip_prefix("http://")
        .expect("a local http URL");
    let (addr, prefix) = base.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /{prefix}/projects/{} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
        env["NEON_PROJECT_ID"], env["NEON_API_KEY"]
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    assert!(response.contains("local-demo-00000001"), "{response}");
}

#[test]
fn ready_world_then_closing_stdin_removes_everything() {
    for major in test_majors() {
        let mut world = Running::start(&["--major", &major.to_string()]);
        world.wait_ready();

        let mode = std::fs::metadata(&world.env_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "env file is private");
        let env = read_env_file(&world.env_file);
        assert_eq!(env.len(), VARIABLES.len(), "{:?}", env.keys());
        for name in VARIABLES {
            assert!(
                env.get(name).is_some_and(|v| !v.is_empty()),
                "{name} in the env file"
            );
        }
        assert_eq!(env["NEON_PROJECT_ID"], "local-demo-00000001");
        assert!(Path::new(&env["SUPANEON_PG_BIN_DIR"])
            .join("pg_dump")
            .is_file());
        assert!(
            !env["DEMO_SOURCE_ADMIN_CONNINFO"].contains("password"),
            "the socket conninfo holds no password"
        );
        assert_source_reachable(&env);
        assert_emulator_serves_project(&env);

        world.close_stdin();
        let (status, stderr, clusters) = world.wait_exit();
        assert!(
            status.success(),
            "exit 0 after stdin EOF: {status}\n{stderr}"
        );
        assert!(stderr.contains("stdin closed"), "{stderr}");
        for secret in [&env["NEON_API_KEY"], &env["SUPABASE_DATABASE_URL"]] {
            assert!(!stderr.contains(secret.as_str()), "no secret on stderr");
        }
        assert_gone(&clusters);
    }
}

#[test]
fn sigterm_stops_the_world_and_removes_everything() {
    let mut world = Running::start(&[]);
    world.wait_ready();
    world.signal("TERM");
    let (status, stderr, clusters) = world.wait_exit();
    assert!(status.success(), "exit 0 after SIGTERM: {status}\n{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert_gone(&clusters);
}

#[test]
fn an_unknown_major_is_a_usage_error_and_starts_nothing() {
    let world = Running::start(&["--major", "16"]);
    let (status, stderr, _) = world.wait_exit();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("expected 15 or 17"), "{stderr}");
}
