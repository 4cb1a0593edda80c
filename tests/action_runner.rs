//! The binary exactly as the runner runs the action: the composite step's `INPUT_*` environment (action.yml's
//! defaults plus the test's `with:`), `GITHUB_ACTIONS=true`, `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY` files,
//! against the emulator and real clusters. Also `scripts/action-entry.sh` with a stand-in `docker` that
//! records what it was asked to run (there is no Docker engine here).

mod support;

use std::path::Path;
use std::process::Command;

use supaneon_testkit::pg_bin_dir;
use support::action::{action_cli, step_env};
use support::cli::{repo_root, Run};
use support::world::{World, API_KEY, PROJECT_ID, SOURCE_PASSWORD};

/// Before anything else, the run registers its secrets with the runner: the first stdout lines are masks,
/// and the secrets appear nowhere outside them.
fn assert_masked_first(run: &Run, secrets: &[&str]) {
    let masks: Vec<&str> = run
        .stdout
        .lines()
        .take_while(|l| l.starts_with("::add-mask::"))
        .collect();
    for secret in secrets {
        assert!(
            masks.iter().any(|m| m.contains(secret)),
            "no leading ::add-mask:: for a secret\n{}",
            run.describe()
        );
        run.assert_never_shows(secret);
    }
}

/// The `with:` block a user writes, pointed at this world.
fn with_world(world: &World) -> Vec<(&'static str, String)> {
    vec![
        ("supabase-database-url", world.source_url()),
        ("neon-api-key", API_KEY.to_string()),
        ("neon-project-id", PROJECT_ID.to_string()),
        ("neon-api-url", world.emu.base_url()),
        (
            "pg-bin-dir",
            pg_bin_dir(world.major).to_str().unwrap().to_string(),
        ),
    ]
}

fn run_action(with: &[(&'static str, String)], extra: &[(&'static str, &str)]) -> Run {
    let mut all: Vec<(&str, &str)> = with.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (k, v) in extra {
        all.retain(|(key, _)| key != k);
        all.push((k, v));
    }
    action_cli(&all).run(&["action"])
}

#[tokio::test(flavor = "multi_thread")]
async fn each_mode_runs_as_the_runner_runs_it() {
    let world = World::start(15).await;
    let with = with_world(&world);
    let secrets = [SOURCE_PASSWORD, API_KEY];

    // validate-config: online checks against the real source and the emulator.
    let run = run_action(&with, &[("mode", "validate-config")]);
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_masked_first(&run, &secrets);
    assert!(
        run.stdout.contains("all online checks passed"),
        "{}",
        run.describe()
    );
    assert!(
        run.output("result").is_some_and(|r| !r.is_empty()),
        "{}",
        run.describe()
    );
    assert!(!run.summary.trim().is_empty(), "{}", run.describe());

    // backup (the default mode): a verified branch, its outputs and a summary.
    let run = run_action(&with, &[]);
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_masked_first(&run, &secrets);
    let branch = run.output("backup-branch").expect("backup-branch output");
    assert!(
        supaneon_sync::config::is_backup_branch_name(&branch),
        "{branch}"
    );
    assert!(
        world.branch(&branch).is_some(),
        "{:?}",
        world.branch_names()
    );
    assert_eq!(
        world.branch(&branch).unwrap()["id"].as_str(),
        run.output("backup-branch-id").as_deref()
    );
    for name in ["tables", "rows", "bytes"] {
        let value = run.output(name).unwrap_or_default();
        assert!(
            value.parse::<u64>().is_ok_and(|n| n > 0),
            "{name}={value:?}"
        );
    }
    let duration = run.output("duration-seconds").unwrap_or_default();
    assert!(
        duration.parse::<f64>().is_ok(),
        "duration-seconds={duration:?}"
    );
    assert_eq!(run.output("sha256").unwrap_or_default().len(), 64);
    assert!(run.output("result").is_some_and(|r| !r.is_empty()));
    assert!(run.summary.contains(&branch), "{}", run.summary);
    assert!(run.summary.contains("| public |"), "{}", run.summary);

    // restore-test: the newest backup restores; the test branch is gone afterwards.
    let run = run_action(&with, &[("mode", "restore-test")]);
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_masked_first(&run, &secrets);
    assert_eq!(
        run.output("tested-backup").as_deref(),
        Some(branch.as_str())
    );
    assert_eq!(
        run.output("checks-failed").as_deref(),
        Some("0"),
        "{}",
        run.describe()
    );
    assert!(run
        .output("checks-passed")
        .unwrap_or_default()
        .parse::<u32>()
        .is_ok_and(|n| n > 0));
    assert!(
        !world
            .branch_names()
            .iter()
            .any(|n| n.starts_with("restore-test-")),
        "{:?}",
        world.branch_names()
    );
    assert!(run.summary.contains(&branch), "{}", run.summary);

    // list: the backup, as outputs and a summary table.
    let run = run_action(&with, &[("mode", "list")]);
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_masked_first(&run, &secrets);
    assert_eq!(
        run.output("latest-backup").as_deref(),
        Some(branch.as_str())
    );
    assert_eq!(run.output("backup-count").as_deref(), Some("1"));
    assert!(run.summary.contains(&branch), "{}", run.summary);

    // prune with dry-run: the only backup is kept, nothing is deleted.
    let run = run_action(
        &with,
        &[("mode", "prune"), ("dry-run", "true"), ("keep-last", "1")],
    );
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_masked_first(&run, &secrets);
    assert_eq!(
        run.output("deleted").as_deref(),
        Some(""),
        "{}",
        run.describe()
    );
    assert!(world.branch(&branch).is_some());

    // A wrong API key: the run fails (exit 1) with an annotation and a result, and still leaks nothing.
    let wrong_key = "napi_wrong_distinctive_0042";
    let run = run_action(&with, &[("neon-api-key", wrong_key)]);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert_masked_first(&run, &[SOURCE_PASSWORD, wrong_key]);
    assert!(
        run.stdout.lines().any(|l| l.starts_with("::error")),
        "{}",
        run.describe()
    );
    assert!(run.output("result").is_some_and(|r| !r.is_empty()));
    assert!(
        !world
            .branch_names()
            .iter()
            .any(|n| n.ends_with("-incomplete")),
        "{:?}",
        world.branch_names()
    );
}

#[test]
fn inputs_left_unset_do_not_override_the_config_file_and_stray_inputs_only_warn() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("supaneon.yml");
    std::fs::write(&file, "retention:\n  keep-last: 3\n").unwrap();
    let url = "postgresql://postgres:Unset-pw-5150@127.0.0.1:9/postgres?sslmode=require";
    let with = [
        ("mode", "validate-config"),
        ("supabase-database-url", url),
        ("neon-api-key", "napi_unset_key_6161"),
        ("neon-project-id", PROJECT_ID),
        ("config-file", file.to_str().unwrap()),
    ];
    let run = action_cli(&with)
        .env("INPUT_SOMETHING_ELSE", "from the caller's environment")
        .run(&["action"]);
    // validate-config on Actions also runs the online checks, which fail here (nothing listens): exit 1,
    // not 2, so the settings themselves were accepted.
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(run.stdout.contains("keep-last: 3"), "{}", run.describe());
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("::warning::INPUT_SOMETHING_ELSE is set but is no input")),
        "{}",
        run.describe()
    );
    // An input the workflow sets still wins over the file.
    let mut with_keep = with.to_vec();
    with_keep.push(("keep-last", "5"));
    let run = action_cli(&with_keep).run(&["action"]);
    assert!(run.stdout.contains("keep-last: 5"), "{}", run.describe());
    run.assert_never_shows("Unset-pw-5150");
    run.assert_never_shows("napi_unset_key_6161");
}

#[test]
fn a_bad_input_exits_2_with_an_error_annotation_and_changes_nothing() {
    // No world: validation fails before anything is contacted, so the URLs may point nowhere.
    let url = "postgresql://postgres:Bad-Input-pw-4417@127.0.0.1:9/postgres?sslmode=require";
    let run = action_cli(&[
        ("supabase-database-url", url),
        ("neon-api-key", "napi_bad_input_key_5521"),
        ("neon-project-id", PROJECT_ID),
        ("keep-last", "seven"),
        ("dry-run", "yes"),
    ])
    .run(&["action"]);
    assert_eq!(run.code, 2, "{}", run.describe());
    let errors: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error"))
        .collect();
    assert!(!errors.is_empty(), "{}", run.describe());
    let text = run.everything();
    assert!(
        text.contains("keep-last") && text.contains("dry-run"),
        "{text}"
    );
    run.assert_never_shows("Bad-Input-pw-4417");
    run.assert_never_shows("napi_bad_input_key_5521");
    // Visible in the Actions UI: the result output, an annotation with the hint, a failure summary.
    assert!(
        run.output("result")
            .is_some_and(|r| r.starts_with("invalid configuration") && r.contains("keep-last")),
        "{}",
        run.describe()
    );
    assert!(
        errors
            .iter()
            .any(|l| l.contains("%0Ahint: fix the settings")),
        "{}",
        run.describe()
    );
    for needle in [
        "## supaneon-sync failed",
        "**What failed:** invalid configuration",
        "**What it means for your data:** nothing was run",
        "**What to do:** fix the settings",
    ] {
        assert!(run.summary.contains(needle), "{needle}\n{}", run.describe());
    }

    // A required input left out: the runner does not enforce `required`, the binary does.
    let run = action_cli(&[("neon-project-id", PROJECT_ID)]).run(&["action"]);
    assert_eq!(run.code, 2, "{}", run.describe());
    assert!(
        run.everything().contains("supabase-database-url"),
        "{}",
        run.describe()
    );
}

/// Runs `scripts/action-entry.sh` as the composite step does, with a stand-in `docker` first on PATH that
/// records its argv and the INPUT_* values it would forward, and exits with `docker_exit`.
fn run_entry(
    dir: &Path,
    extra_env: &[(&str, &str)],
    docker_exit: i32,
) -> (i32, String, String, String) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = dir.join("docker-argv");
    let env_record = dir.join("docker-env");
    let fake = bin.join("docker");
    std::fs::write(
        &fake,
        format!(
            "#!/usr/bin/env bash\nprintf '%s\\n' \"$@\" > '{}'\nenv | grep '^INPUT_' | sort > '{}'\nexit {docker_exit}\n",
            record.display(),
            env_record.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/action-entry.sh"))
        .env_clear()
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("GITHUB_ACTION_PATH", repo_root())
        .env("GITHUB_OUTPUT", dir.join("output"))
        .env("GITHUB_STEP_SUMMARY", dir.join("summary"))
        .env("GITHUB_WORKSPACE", dir);
    for (k, v) in step_env(&[
        ("supabase-database-url", "postgresql://u:Entry-pw-3301@h/db"),
        ("neon-api-key", "napi_entry_key_8812"),
        ("neon-project-id", PROJECT_ID),
    ]) {
        cmd.env(k, v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        std::fs::read_to_string(&record).unwrap_or_default(),
        std::fs::read_to_string(&env_record).unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_entry_script_forwards_inputs_by_name_and_runs_only_the_pinned_or_a_local_image() {
    let dir = tempfile::tempdir().unwrap();
    let pinned = std::fs::read_to_string(repo_root().join("image-ref")).unwrap();
    let pinned = pinned.trim();

    let (code, argv, env, stderr) = run_entry(dir.path(), &[], 0);
    assert_eq!(code, 0, "{stderr}");
    let args: Vec<&str> = argv.lines().collect();
    assert_eq!(args.first(), Some(&"run"), "{argv}");
    assert_eq!(&args[args.len() - 2..], &[pinned, "action"], "{argv}");
    for (name, _) in step_env(&[]) {
        assert!(
            args.windows(2).any(|w| w == ["-e", name.as_str()]),
            "{name} is not forwarded by name: {argv}"
        );
    }
    for secret in ["Entry-pw-3301", "napi_entry_key_8812"] {
        assert!(!argv.contains(secret), "a secret on docker's argv: {argv}");
        assert!(
            env.contains(secret),
            "{secret} not in the forwarded environment"
        );
    }
    for needed in [
        "GITHUB_ACTIONS=true",
        "GITHUB_OUTPUT=/github/file_commands/output",
        "GITHUB_STEP_SUMMARY=/github/file_commands/summary",
    ] {
        assert!(args.contains(&needed), "{needed}: {argv}");
    }
    // The documented environment settings and the runner's debug switch reach the container, by name and
    // only when set.
    for name in [
        "SUPANEON_LOG",
        "SUPANEON_NEON_CALL_DEADLINE_SECONDS",
        "RUNNER_DEBUG",
    ] {
        assert!(
            !args.windows(2).any(|w| w == ["-e", name]),
            "{name} forwarded though unset: {argv}"
        );
    }
    let (code, argv, _, stderr) = run_entry(
        dir.path(),
        &[
            ("SUPANEON_LOG", "debug"),
            ("SUPANEON_NEON_CALL_DEADLINE_SECONDS", "30"),
            ("RUNNER_DEBUG", "1"),
        ],
        0,
    );
    assert_eq!(code, 0, "{stderr}");
    let args: Vec<&str> = argv.lines().collect();
    for name in [
        "SUPANEON_LOG",
        "SUPANEON_NEON_CALL_DEADLINE_SECONDS",
        "RUNNER_DEBUG",
    ] {
        assert!(
            args.windows(2).any(|w| w == ["-e", name]),
            "{name} not forwarded: {argv}"
        );
    }

    // The container's exit code is the step's.
    let (code, _, _, _) = run_entry(dir.path(), &[], 2);
    assert_eq!(code, 2);
    let (code, _, _, _) = run_entry(dir.path(), &[], 1);
    assert_eq!(code, 1);

    // The self-test's locally built image is accepted; any other override is refused before docker runs.
    let (code, argv, _, stderr) = run_entry(
        dir.path(),
        &[("SUPANEON_SYNC_IMAGE", "supaneon-sync:selftest")],
        0,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        argv.lines().any(|l| l == "supaneon-sync:selftest"),
        "{argv}"
    );
    let (code, argv, _, stderr) = run_entry(
        dir.path(),
        &[("SUPANEON_SYNC_IMAGE", "localhost/supaneon-sync:pr-12")],
        0,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        argv.lines().any(|l| l == "localhost/supaneon-sync:pr-12"),
        "{argv}"
    );
    std::fs::remove_file(dir.path().join("docker-argv")).unwrap();
    let (code, argv, _, stderr) = run_entry(
        dir.path(),
        &[("SUPANEON_SYNC_IMAGE", "ghcr.io/someone/else:latest")],
        0,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(argv.is_empty(), "docker ran: {argv}");
    assert!(stderr.starts_with("::error"), "{stderr}");
}
