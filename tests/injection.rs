//! Workflow-command injection: names that carry line breaks and `::` commands (a Neon branch, a source
//! schema) must never produce a printed line that the runner takes for a command. Every line of stdout and
//! stderr of every mode is scanned, on Actions and off.

mod support;

use supaneon_sync::actions::is_our_command;
use support::cli::Run;
use support::prune::{neon_client, seed_branch};
use support::world::{World, API_KEY, SOURCE_PASSWORD};

const EVIL_BRANCH: &str =
    "x\n::warning title=pwn::fake warning\r\n::set-output name=backup-branch::pwned\n::stop-commands::pwntoken\n##[error]pwn";
const EVIL_SCHEMA: &str = "evil\n::error title=pwn::from a schema\n::add-mask::pwn";

/// Every line that starts (after blanks) with `::` or `##[` must be a command of ours, not the payload.
fn assert_no_injected_line(run: &Run, what: &str) {
    for line in run.stdout.lines().chain(run.stderr.lines()) {
        let t = line.trim_start();
        assert!(
            !t.starts_with("##["),
            "{what}: legacy command line {line:?}\n{}",
            run.describe()
        );
        if t.starts_with("::") {
            assert!(
                is_our_command(t) && !t.starts_with("::warning title=pwn"),
                "{what}: injected command line {line:?}\n{}",
                run.describe()
            );
        }
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "{what}: control character in {line:?}"
        );
    }
    run.assert_never_shows(SOURCE_PASSWORD);
    run.assert_never_shows(API_KEY);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_never_become_workflow_commands() {
    let world = World::start(15).await;
    let neon = neon_client(&world);
    seed_branch(&neon, EVIL_BRANCH, None, None).await;
    let quoted = EVIL_SCHEMA.replace('"', "\"\"");
    world.source.psql(
        "postgres",
        &format!(
            "CREATE SCHEMA \"{quoted}\"; CREATE TABLE \"{quoted}\".t (id int PRIMARY KEY, v text); \
             INSERT INTO \"{quoted}\".t VALUES (1, 'a');"
        ),
    );

    for on_actions in [true, false] {
        let cli = || {
            let cli = world.cli();
            if on_actions {
                cli.env("GITHUB_ACTIONS", "true")
            } else {
                cli
            }
        };
        let what = |mode: &str| format!("{mode} (GITHUB_ACTIONS={on_actions})");
        let backup = cli().run(&["backup-run"]);
        assert_no_injected_line(&backup, &what("backup-run"));
        for args in [
            vec!["prune", "--dry-run"],
            vec!["list"],
            vec!["list", "--json"],
            vec!["validate-config", "--online"],
            vec!["restore-test"],
        ] {
            let run = cli().run(&args);
            assert_no_injected_line(&run, &what(&args.join(" ")));
        }
        // The hostile branch is seen (listed as kept, not ours) but on one line.
        let dry = cli().run(&["prune", "--dry-run"]);
        assert!(
            dry.stdout
                .contains("keep   x\\n::warning title=pwn::fake warning\\r\\n::set-output"),
            "{}",
            dry.describe()
        );
    }
}
