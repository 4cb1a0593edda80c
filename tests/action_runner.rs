//! The binary exactly as the runner runs the action: the composite step's `INPUT_*` environment (action.yml's
//! defaults plus the test's `with:`), `GITHUB_ACTIONS=true`, `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY` files,
//! against the emulator and real clusters. `scripts/action-entry.sh`, which starts the container, has its own
//! suite: tests/action_entry.rs.

mod support;

use supaneon_testkit::pg_bin_dir;
use support::action::action_cli;
use support::cli::Run;
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

fn run_action(
    world: &World,
    with: &[(&'static str, String)],
    extra: &[(&'static str, &str)],
) -> Run {
    let mut all: Vec<(&str, &str)> = with.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (k, v) in extra {
        all.retain(|(key, _)| key != k);
        all.push((k, v));
    }
    world.action_cli(&all).run(&["action"])
}

#[tokio::test(flavor = "multi_thread")]
async fn each_mode_runs_as_the_runner_runs_it() {
    let world = World::start(15).await;
    let with = with_world(&world);
    let secrets = [SOURCE_PASSWORD, API_KEY];

    // validate-config: online checks against the real source and the emulator.
    let run = run_action(&world, &with, &[("mode", "validate-config")]);
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
    let run = run_action(&world, &with, &[]);
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
    let run = run_action(&world, &with, &[("mode", "restore-test")]);
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
    let run = run_action(&world, &with, &[("mode", "list")]);
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
        &world,
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
    let run = run_action(&world, &with, &[("neon-api-key", wrong_key)]);
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
