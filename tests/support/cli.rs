//! A hermetic way to run the real binary: no ambient `GITHUB_*`, `RUNNER_*`, `ACTIONS_*`, `INPUT_*`, `PG*` or
//! Neon/Supabase variables reach it; outputs and the summary go to temp files; every run keeps what it printed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub outputs: String,
    pub summary: String,
}

impl Run {
    /// Everything the run produced, for secret scans.
    pub fn everything(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.stdout, self.stderr, self.outputs, self.summary
        )
    }

    /// Asserts `secret` appears nowhere except inside `::add-mask::` lines.
    pub fn assert_never_shows(&self, secret: &str) {
        for line in self.everything().lines() {
            if line.starts_with("::add-mask::") {
                continue;
            }
            assert!(
                !line.contains(secret),
                "secret leaked in line: {line}\n--- full run ---\n{}",
                self.describe()
            );
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "exit code {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- outputs ---\n{}\n--- summary ---\n{}",
            self.code, self.stdout, self.stderr, self.outputs, self.summary
        )
    }

    /// Parses `$GITHUB_OUTPUT` heredoc entries into (name, value).
    pub fn output(&self, name: &str) -> Option<String> {
        let mut lines = self.outputs.lines();
        while let Some(line) = lines.next() {
            if let Some((key, delim)) = line.split_once("<<") {
                let mut value = Vec::new();
                for l in lines.by_ref() {
                    if l == delim {
                        break;
                    }
                    value.push(l);
                }
                if key == name {
                    return Some(value.join("\n"));
                }
            }
        }
        None
    }
}

pub struct Cli {
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    /// Whether `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY` are set (a terminal has neither).
    github_files: bool,
}

impl Default for Cli {
    fn default() -> Self {
        Self::new()
    }
}

impl Cli {
    pub fn new() -> Self {
        Cli {
            env: Vec::new(),
            dir: tempfile::tempdir().expect("temp dir"),
            github_files: true,
        }
    }

    /// Runs as in a terminal: no `GITHUB_OUTPUT`, no `GITHUB_STEP_SUMMARY`.
    pub fn without_github_files(mut self) -> Self {
        self.github_files = false;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Simulates the runner: every input of action.yml as `INPUT_<ID>` with its default, then `with`.
    pub fn action_inputs(mut self, with: &[(&str, &str)]) -> Self {
        for (id, default) in action_yml_inputs() {
            let value = with
                .iter()
                .find(|(k, _)| *k == id)
                .map(|(_, v)| v.to_string())
                .unwrap_or(default);
            self.env
                .push((format!("INPUT_{}", id.to_uppercase()), value));
        }
        self.env.push(("GITHUB_ACTIONS".into(), "true".into()));
        self
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.spawn(args).wait()
    }

    /// Starts the binary without waiting; its output is collected by [`Spawned::wait`].
    pub fn spawn(&self, args: &[&str]) -> Spawned<'_> {
        let outputs = self.dir.path().join("github_output");
        let summary = self.dir.path().join("step_summary");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_supaneon-sync"));
        cmd.args(args).env_clear();
        for key in ["PATH", "HOME", "LANG"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        // The run's own temp directory (its combined CA bundle lands there), removed with the test.
        cmd.env("TMPDIR", self.dir.path());
        // Test-only knobs that the harness passes through on purpose.
        for (key, value) in std::env::vars() {
            if key.starts_with("SUPANEON_TEST_") {
                cmd.env(key, value);
            }
        }
        if self.github_files {
            cmd.env("GITHUB_OUTPUT", &outputs)
                .env("GITHUB_STEP_SUMMARY", &summary);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let child = cmd.spawn().expect("start supaneon-sync");
        Spawned {
            child,
            outputs,
            summary,
            _cli: self,
        }
    }
}

pub struct Spawned<'a> {
    pub child: Child,
    outputs: PathBuf,
    summary: PathBuf,
    _cli: &'a Cli,
}

impl Spawned<'_> {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait(self) -> Run {
        let out = self
            .child
            .wait_with_output()
            .expect("wait for supaneon-sync");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            outputs: std::fs::read_to_string(&self.outputs).unwrap_or_default(),
            summary: std::fs::read_to_string(&self.summary).unwrap_or_default(),
        }
    }
}

/// Pids of the live children of `parent` whose executable name is `name` (from /proc).
pub fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // comm is in parentheses and may hold spaces; the fields after it are space-separated.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let (state, ppid) = (
            fields.first().copied(),
            fields.get(1).and_then(|p| p.parse::<u32>().ok()),
        );
        if comm == name && ppid == Some(parent) && state != Some("Z") {
            found.push(pid);
        }
    }
    found
}

/// Polls `condition` every 50 ms until it holds or `deadline` passes; panics with `what` on timeout.
pub fn wait_until(what: &str, deadline: std::time::Duration, mut condition: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + deadline;
    while !condition() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// (id, default) of every input in action.yml.
pub fn action_yml_inputs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("action.yml")).expect("read action.yml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("parse action.yml");
    doc["inputs"]
        .as_mapping()
        .expect("inputs")
        .iter()
        .map(|(k, v)| {
            let default = v
                .get("default")
                .and_then(|d| d.as_str())
                .unwrap_or("")
                .to_string();
            (k.as_str().expect("input id").to_string(), default)
        })
        .collect()
}
