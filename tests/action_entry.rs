//! `scripts/action-entry.sh` (the composite step) with a stand-in `docker` and `sleep` first on PATH that
//! record every call (there is no Docker engine here), and `scripts/pin-image-ref.sh` (the release's
//! rewrite of image-ref). The entry script runs only a full digest in the action owner's namespace, pulls it
//! with bounded retries, and refuses everything else with exit 2 and a message that names the fix.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::action::step_env;
use support::cli::repo_root;
use support::world::PROJECT_ID;

const OWNER_REPO: &str = "Acme-Ops/supaneon-sync";
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// What one run of the entry script did.
struct Entry {
    code: i32,
    stderr: String,
    /// argv of each `docker` call, in order.
    docker: Vec<Vec<String>>,
    /// argv of each `sleep` call.
    sleeps: Vec<String>,
    /// The INPUT_* environment `docker run` saw, sorted.
    run_env: String,
    /// The step's output file afterwards.
    output: String,
}

impl Entry {
    fn calls(&self, sub: &str) -> usize {
        self.docker.iter().filter(|a| a[0] == sub).count()
    }

    fn run_argv(&self) -> &[String] {
        self.docker
            .iter()
            .find(|a| a[0] == "run")
            .unwrap_or_else(|| {
                panic!(
                    "docker run was not called: {:?}\n{}",
                    self.docker, self.stderr
                )
            })
    }

    /// Refused before Docker was asked anything, with exit 2 and an error annotation holding every
    /// `needle`; the same line is the step's `result` output.
    fn assert_refused(&self, needles: &[&str]) {
        assert_eq!(self.code, 2, "{}", self.stderr);
        assert!(self.docker.is_empty(), "docker ran: {:?}", self.docker);
        let error = self
            .stderr
            .lines()
            .find(|l| l.starts_with("::error title=supaneon-sync::"))
            .unwrap_or_else(|| panic!("no error annotation: {}", self.stderr));
        for needle in needles {
            assert!(error.contains(needle), "{needle:?} not in {error}");
        }
        assert!(
            self.output
                .lines()
                .any(|l| l.starts_with("result=") && error.ends_with(&l["result=".len()..])),
            "result output {:?} is not the error {error}",
            self.output
        );
    }
}

/// A temporary action checkout (its own image-ref) and a bin directory with the stand-ins.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// `pull_failures`: how many `docker pull` calls fail before one succeeds; `run_exit`: the exit code of
    /// `docker run` (the container's).
    fn new(image_ref: &str, pull_failures: u32, run_exit: i32) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("action")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("calls")).unwrap();
        std::fs::write(root.join("action/image-ref"), image_ref).unwrap();
        let calls = root.join("calls");
        write_script(
            &root.join("bin/docker"),
            &format!(
                r#"#!/usr/bin/env bash
calls='{calls}'
n=$(ls "$calls" | grep -c '^docker-' || true)
printf '%s\n' "$@" > "$calls/docker-$(printf '%03d' $((n + 1)))"
case "$1" in
  pull)
    pulls=$(ls "$calls" | grep -c '^pull-' || true)
    touch "$calls/pull-$pulls"
    [[ $pulls -ge {pull_failures} ]] || {{ echo "Error response from daemon: 503 Service Unavailable" >&2; exit 1; }}
    echo "$2" ;;
  run)
    env | grep '^INPUT_' | sort > "$calls/run-env"
    exit {run_exit} ;;
esac
"#,
                calls = calls.display()
            ),
        );
        write_script(
            &root.join("bin/sleep"),
            &format!(
                "#!/usr/bin/env bash\nprintf '%s\\n' \"$*\" >> '{}'\n",
                calls.join("sleeps").display()
            ),
        );
        Setup { dir }
    }

    fn action_path(&self) -> PathBuf {
        self.dir.path().join("action")
    }

    /// Runs the entry script as the composite step does: the step's INPUT_* environment, the runner's
    /// files, GITHUB_ACTION_REPOSITORY of `OWNER_REPO`, plus `extra_env`.
    fn run(&self, extra_env: &[(&str, &str)]) -> Entry {
        self.run_args(&[], extra_env)
    }

    fn run_args(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Entry {
        let root = self.dir.path();
        let mut cmd = Command::new("bash");
        cmd.arg(repo_root().join("scripts/action-entry.sh"))
            .args(args)
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    root.join("bin").display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("GITHUB_ACTION_PATH", self.action_path())
            .env("GITHUB_ACTION_REPOSITORY", OWNER_REPO)
            .env("GITHUB_OUTPUT", root.join("output"))
            .env("GITHUB_STEP_SUMMARY", root.join("summary"))
            .env("GITHUB_WORKSPACE", root);
        for (k, v) in step_env(&[
            ("supabase-database-url", "postgresql://u:Entry-pw-3301@h/db"),
            ("neon-api-key", "napi_entry_key_8812"),
            ("neon-project-id", PROJECT_ID),
            ("supabase-anon-key", "anon_entry_key_4410"),
            ("github-token", "ghs_entry_token_7725"),
        ]) {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let calls = root.join("calls");
        let mut names: Vec<String> = std::fs::read_dir(&calls)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("docker-"))
            .collect();
        names.sort();
        let docker = names
            .iter()
            .map(|n| {
                std::fs::read_to_string(calls.join(n))
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
            .collect();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let entry = Entry {
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            docker,
            sleeps: read(calls.join("sleeps"))
                .lines()
                .map(str::to_string)
                .collect(),
            run_env: read(calls.join("run-env")),
            output: read(root.join("output")),
        };
        // Each run starts from no recorded calls.
        std::fs::remove_dir_all(&calls).unwrap();
        std::fs::create_dir_all(&calls).unwrap();
        let _ = std::fs::remove_file(root.join("output"));
        entry
    }
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn release_image() -> String {
    format!(
        "ghcr.io/{}/supaneon-sync@{DIGEST}",
        OWNER_REPO.split('/').next().unwrap().to_lowercase()
    )
}

/// image-ref as scripts/pin-image-ref.sh writes it for `image` and `DIGEST` at `version`.
fn pinned(image: &str, version: &str) -> String {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/pin-image-ref.sh"))
        .args([image, DIGEST, version, "--dry-run"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_digest_in_the_owners_namespace_is_pulled_and_run_with_inputs_by_name() {
    let setup = Setup::new(&pinned("ghcr.io/Acme-Ops/supaneon-sync", "1.4.2"), 0, 0);
    let entry = setup.run(&[]);
    assert_eq!(entry.code, 0, "{}", entry.stderr);
    let image = release_image();
    // One pull of exactly the digest, then one run that does not pull again.
    assert_eq!(entry.docker.len(), 2, "{:?}", entry.docker);
    assert_eq!(entry.docker[0], ["pull", "--quiet", image.as_str()]);
    let args = entry.run_argv();
    assert!(
        args.windows(2).any(|w| w == ["--pull", "never"]),
        "{args:?}"
    );
    assert_eq!(
        &args[args.len() - 2..],
        [image.as_str(), "action"],
        "{args:?}"
    );
    for (name, _) in step_env(&[]) {
        assert!(
            args.windows(2).any(|w| w[0] == "-e" && w[1] == name),
            "{name} is not forwarded by name: {args:?}"
        );
    }
    for secret in [
        "Entry-pw-3301",
        "napi_entry_key_8812",
        "anon_entry_key_4410",
        "ghs_entry_token_7725",
    ] {
        assert!(
            !args.iter().any(|a| a.contains(secret)),
            "a secret on docker's argv: {args:?}"
        );
        assert!(
            entry.run_env.contains(secret),
            "{secret} not in the forwarded environment"
        );
    }
    for needed in [
        "GITHUB_ACTIONS=true",
        "GITHUB_OUTPUT=/github/file_commands/output",
        "GITHUB_STEP_SUMMARY=/github/file_commands/summary",
    ] {
        assert!(args.iter().any(|a| a == needed), "{needed}: {args:?}");
    }
    assert!(entry.sleeps.is_empty(), "{:?}", entry.sleeps);

    // The documented environment-only settings reach the container when set, and only then.
    assert!(
        !args.iter().any(|a| a == "SUPANEON_NEON_CA_FILE"),
        "{args:?}"
    );
    let tuned = setup.run(&[
        ("SUPANEON_NEON_CA_FILE", "/github/workspace/ca.pem"),
        ("SUPANEON_LOG", "debug"),
        ("RUNNER_DEBUG", "1"),
        ("GITHUB_API_URL", "https://api.github.com"),
        (
            "GITHUB_WORKFLOW_REF",
            "acme/shop/.github/workflows/backup.yml@refs/heads/main",
        ),
        ("SUPANEON_UNRELATED", "x"),
    ]);
    let args = tuned.run_argv();
    // The workflow that github-token re-enables is named by the runner's variables.
    for name in [
        "SUPANEON_NEON_CA_FILE",
        "SUPANEON_LOG",
        "RUNNER_DEBUG",
        "GITHUB_API_URL",
        "GITHUB_WORKFLOW_REF",
    ] {
        assert!(
            args.windows(2).any(|w| w[0] == "-e" && w[1] == name),
            "{name}: {args:?}"
        );
    }
    assert!(
        !args.iter().any(|a| a.contains("SUPANEON_UNRELATED")),
        "{args:?}"
    );

    // The container's exit code is the step's.
    for code in [1, 2] {
        let setup = Setup::new(&pinned("ghcr.io/acme-ops/supaneon-sync", "1.4.2"), 0, code);
        assert_eq!(setup.run(&[]).code, code);
    }

    // --print-image checks and prints, nothing more (the release workflow's check of its commit).
    let entry = setup.run_args(&["--print-image"], &[]);
    assert_eq!(entry.code, 0, "{}", entry.stderr);
    assert!(entry.docker.is_empty(), "{:?}", entry.docker);
    // A local `uses: ./` has an empty GITHUB_ACTION_REPOSITORY: the workflow's repository is the owner.
    let entry = setup.run(&[
        ("GITHUB_ACTION_REPOSITORY", ""),
        ("GITHUB_REPOSITORY", OWNER_REPO),
    ]);
    assert_eq!(entry.code, 0, "{}", entry.stderr);
}

#[test]
fn anything_but_a_full_digest_in_the_owners_namespace_is_refused_naming_the_fix() {
    let fix = format!("uses: {OWNER_REPO}@v1");
    let short = "sha256:0123456789abcdef";
    let cases: Vec<(String, &[&str])> = vec![
        // The non-release commit on main.
        (
            std::fs::read_to_string(repo_root().join("image-ref")).unwrap(),
            &["not a release"],
        ),
        (
            "ghcr.io/acme-ops/supaneon-sync:v1.4.2\n".into(),
            &["not a release", "not an image digest"],
        ),
        (
            "ghcr.io/acme-ops/supaneon-sync:v1\n".into(),
            &["not a release"],
        ),
        (
            "ghcr.io/acme-ops/supaneon-sync:latest\n".into(),
            &["not a release"],
        ),
        (
            format!("ghcr.io/acme-ops/supaneon-sync@{short}\n"),
            &["not a full digest"],
        ),
        (
            format!(
                "ghcr.io/acme-ops/supaneon-sync@{}\n",
                DIGEST.to_uppercase().replace("SHA256", "sha256")
            ),
            &["not a full digest"],
        ),
        (
            format!("ghcr.io/someone-else/supaneon-sync@{DIGEST}\n"),
            &["not in the namespace", "ghcr.io/acme-ops/supaneon-sync"],
        ),
        (
            format!("ghcr.io/acme-ops/other-tool@{DIGEST}\n"),
            &["not in the namespace"],
        ),
        (
            format!("docker.io/acme-ops/supaneon-sync@{DIGEST}\n"),
            &["not in the namespace"],
        ),
        (
            format!("ghcr.io/acme-ops/supaneon-sync:v1@{DIGEST}\n"),
            &["not in the namespace"],
        ),
        (
            format!("{}\n{}\n", release_image(), release_image()),
            &["exactly one image reference"],
        ),
        (
            "# only a comment\n".into(),
            &["exactly one image reference"],
        ),
    ];
    for (image_ref, needles) in &cases {
        let setup = Setup::new(image_ref, 0, 0);
        let entry = setup.run(&[]);
        let mut all = needles.to_vec();
        all.push(&fix);
        entry.assert_refused(&all);
        let entry = setup.run_args(&["--print-image"], &[]);
        assert_eq!(entry.code, 2, "--print-image accepted {image_ref:?}");
    }

    // The same digest under another action owner is that owner's namespace, not ours.
    let setup = Setup::new(&format!("{}\n", release_image()), 0, 0);
    setup
        .run(&[("GITHUB_ACTION_REPOSITORY", "someone-else/supaneon-sync")])
        .assert_refused(&[
            "not in the namespace",
            "uses: someone-else/supaneon-sync@v1",
        ]);
}

#[test]
fn the_local_self_test_image_is_run_without_a_pull_and_other_overrides_are_refused() {
    // The override works on a non-release commit: the self-test runs on main.
    let setup = Setup::new("unreleased\n", 0, 0);
    for local in ["supaneon-sync:selftest", "localhost/supaneon-sync:pr-12"] {
        let entry = setup.run(&[("SUPANEON_SYNC_IMAGE", local)]);
        assert_eq!(entry.code, 0, "{}", entry.stderr);
        assert_eq!(entry.calls("pull"), 0, "{:?}", entry.docker);
        let args = entry.run_argv();
        assert_eq!(&args[args.len() - 2..], [local, "action"], "{args:?}");
    }
    for foreign in ["ghcr.io/someone/else:latest", &release_image()] {
        setup
            .run(&[("SUPANEON_SYNC_IMAGE", foreign)])
            .assert_refused(&["locally built image"]);
    }
}

#[test]
fn pulls_are_retried_a_bounded_number_of_times_with_backoff() {
    let image_ref = format!("{}\n", release_image());
    // Two failures, then the third pull works and the run goes ahead.
    let entry = Setup::new(&image_ref, 2, 0).run(&[]);
    assert_eq!(entry.code, 0, "{}", entry.stderr);
    assert_eq!(entry.calls("pull"), 3, "{:?}", entry.docker);
    assert_eq!(entry.calls("run"), 1, "{:?}", entry.docker);
    assert_eq!(entry.sleeps, ["5", "15"], "backoff");
    assert_eq!(
        entry.stderr.matches("::warning").count(),
        2,
        "{}",
        entry.stderr
    );

    // A registry that never answers: three pulls, no run, exit 1 (an operation failure, not bad usage).
    let entry = Setup::new(&image_ref, u32::MAX, 0).run(&[]);
    assert_eq!(entry.code, 1, "{}", entry.stderr);
    assert_eq!(entry.calls("pull"), 3, "{:?}", entry.docker);
    assert_eq!(entry.calls("run"), 0, "{:?}", entry.docker);
    assert_eq!(entry.sleeps.len(), 2, "{:?}", entry.sleeps);
    assert!(
        entry.stderr.contains("after 3 attempts"),
        "{}",
        entry.stderr
    );
    assert!(
        entry.output.contains("result=could not pull"),
        "{}",
        entry.output
    );
}

#[test]
fn a_container_job_is_told_what_to_do_instead() {
    let setup = Setup::new(&format!("{}\n", release_image()), 0, 0);
    // Inside a `container:` job the runner maps its work directory to /__w.
    setup
        .run(&[
            ("GITHUB_ACTIONS", "true"),
            ("RUNNER_TEMP", "/__w/_temp"),
            ("GITHUB_WORKSPACE", "/__w/app/app"),
        ])
        .assert_refused(&[
            "`container:` job",
            "runs-on: ubuntu-latest",
            &release_image(),
        ]);
    // On the runner itself (host paths) it runs.
    let entry = setup.run(&[
        ("GITHUB_ACTIONS", "true"),
        ("RUNNER_TEMP", "/home/runner/work/_temp"),
    ]);
    assert_eq!(entry.code, 0, "{}", entry.stderr);

    // No docker at all: said so, exit 2. (bash by its path: the child's PATH is where Command looks.)
    let out = Command::new("/bin/bash")
        .arg(repo_root().join("scripts/action-entry.sh"))
        .env_clear()
        .env("PATH", "/nonexistent")
        .env("GITHUB_ACTION_PATH", setup.action_path())
        .env("GITHUB_ACTION_REPOSITORY", OWNER_REPO)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs Docker"), "{stderr}");
}

#[test]
fn the_release_rewrite_pins_the_given_digest_with_the_tag_for_people() {
    let text = pinned("ghcr.io/Acme-Ops/supaneon-sync", "v1.4.2");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], release_image());
    assert!(
        lines[1].starts_with("# ghcr.io/acme-ops/supaneon-sync:v1.4.2 "),
        "{text}"
    );

    // Written (not a dry run) to the file it is given, and the entry script runs exactly that digest.
    let setup = Setup::new("unreleased\n", 0, 0);
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/pin-image-ref.sh"))
        .args(["ghcr.io/acme-ops/supaneon-sync", DIGEST, "1.4.2"])
        .env("IMAGE_REF_FILE", setup.action_path().join("image-ref"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(setup.action_path().join("image-ref")).unwrap(),
        text
    );
    let entry = setup.run_args(&["--print-image"], &[]);
    assert_eq!(entry.code, 0, "{}", entry.stderr);

    // Malformed arguments write nothing and exit 2.
    let ref_file = setup.action_path().join("image-ref");
    for args in [
        vec!["ghcr.io/acme-ops/supaneon-sync", "sha256:0123abcd", "1.4.2"],
        vec!["ghcr.io/acme-ops/supaneon-sync", &DIGEST[7..], "1.4.2"],
        vec!["ghcr.io/acme-ops/supaneon-sync", DIGEST, "1.4"],
        vec!["ghcr.io/acme-ops/supaneon-sync", DIGEST, "latest"],
        vec!["docker.io/acme-ops/supaneon-sync", DIGEST, "1.4.2"],
        vec!["ghcr.io/acme-ops/supaneon-sync", DIGEST],
    ] {
        std::fs::write(&ref_file, "before\n").unwrap();
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/pin-image-ref.sh"))
            .args(&args)
            .env("IMAGE_REF_FILE", &ref_file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            std::fs::read_to_string(&ref_file).unwrap(),
            "before\n",
            "{args:?}"
        );
    }
}
