//! The real binary, driven with a scrubbed environment: exit codes, messages, masks, and the secret scan.

mod support;

use support::cli::Cli;

const PASSWORD: &str = "Zq7-distinctive-P4ss";
const API_KEY: &str = "napi_distinctive_key_8c1f";

fn source_url(extra: &str) -> String {
    format!("postgresql://postgres.abcdefghijklmnop:{PASSWORD}@aws-0-eu-west-1.pooler.supabase.com:5432/postgres{extra}")
}

fn valid_env() -> Cli {
    Cli::new()
        .env("SUPABASE_DATABASE_URL", &source_url("?sslmode=require"))
        .env("NEON_API_KEY", API_KEY)
        .env("NEON_PROJECT_ID", "quiet-river-12345678")
}

#[test]
fn validate_config_with_an_empty_environment_names_each_missing_variable() {
    let run = Cli::new().run(&["validate-config"]);
    assert_eq!(run.code, 2, "{}", run.describe());
    for name in ["SUPABASE_DATABASE_URL", "NEON_API_KEY", "NEON_PROJECT_ID"] {
        assert!(
            run.stderr.contains(name),
            "{name} not named:\n{}",
            run.describe()
        );
    }
    assert!(run.stderr.contains("3 problems"), "{}", run.describe());
}

#[test]
fn validate_config_refuses_weak_tls_and_the_transaction_pooler() {
    let cases = [
        (source_url(""), "has no sslmode"),
        (source_url("?sslmode=disable"), "sslmode=disable"),
        (
            source_url("?sslmode=require").replace(":5432", ":6543"),
            "session pooler on port 5432",
        ),
    ];
    for (url, expected) in cases {
        let run = valid_env()
            .env("SUPABASE_DATABASE_URL", &url)
            .run(&["validate-config"]);
        assert_eq!(run.code, 2, "{url}: {}", run.describe());
        assert!(run.stderr.contains(expected), "{url}: {}", run.describe());
        run.assert_never_shows(PASSWORD);
    }
}

#[test]
fn validate_config_with_a_valid_set_prints_a_redacted_configuration() {
    let run = valid_env().run(&["validate-config"]);
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(
        run.stdout.contains("configuration is valid"),
        "{}",
        run.describe()
    );
    assert!(
        run.stdout
            .contains("postgresql://postgres.abcdefghijklmnop:***@"),
        "{}",
        run.describe()
    );
    assert!(
        run.stdout.contains("neon-api-key: ***"),
        "{}",
        run.describe()
    );
    run.assert_never_shows(PASSWORD);
    run.assert_never_shows(API_KEY);
}

#[test]
fn action_inputs_validate_the_same_way() {
    let empty = Cli::new()
        .action_inputs(&[("mode", "validate-config")])
        .run(&["action"]);
    assert_eq!(empty.code, 2, "{}", empty.describe());
    for input in [
        "input \"supabase-database-url\"",
        "input \"neon-api-key\"",
        "input \"neon-project-id\"",
    ] {
        assert!(
            empty.stderr.contains(input),
            "{input}: {}",
            empty.describe()
        );
    }
    assert!(
        empty
            .stdout
            .contains("::error title=supaneon-sync failed::"),
        "{}",
        empty.describe()
    );

    let url = source_url("?sslmode=prefer");
    let weak = Cli::new()
        .action_inputs(&[
            ("mode", "validate-config"),
            ("supabase-database-url", &url),
            ("neon-api-key", API_KEY),
            ("neon-project-id", "quiet-river-12345678"),
            ("keep-last", "seven"),
            ("prune-after-backup", "yes"),
        ])
        .run(&["action"]);
    assert_eq!(weak.code, 2, "{}", weak.describe());
    for expected in [
        "sslmode=prefer",
        "input \"keep-last\"",
        "\"seven\"",
        "input \"prune-after-backup\"",
    ] {
        assert!(
            weak.stderr.contains(expected),
            "{expected}: {}",
            weak.describe()
        );
    }
    weak.assert_never_shows(PASSWORD);
    weak.assert_never_shows(API_KEY);
}

#[test]
fn action_masks_every_secret_before_anything_else() {
    // Nothing listens on these ports: the Action's validate-config runs its online checks, which fail fast.
    let url = format!(
        "postgresql://postgres.abcdefghijklmnop:{PASSWORD}@127.0.0.1:1/postgres?sslmode=require"
    );
    let run = Cli::new()
        .env("SUPANEON_NEON_CALL_DEADLINE_SECONDS", "1")
        .action_inputs(&[
            ("mode", "validate-config"),
            ("supabase-database-url", &url),
            ("neon-api-key", API_KEY),
            ("neon-project-id", "quiet-river-12345678"),
            ("neon-api-url", "http://127.0.0.1:9/api/v2"),
            ("prune-after-backup", "True"),
        ])
        .run(&["action"]);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.stdout.contains("FAIL source") && run.stdout.contains("FAIL neon project"),
        "{}",
        run.describe()
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    let first_other = lines
        .iter()
        .position(|l| !l.starts_with("::add-mask::"))
        .unwrap_or(lines.len());
    let masks = &lines[..first_other];
    for form in [PASSWORD, API_KEY, url.as_str()] {
        assert!(
            masks.iter().any(|m| *m == format!("::add-mask::{form}")),
            "{form} not masked first:\n{}",
            run.describe()
        );
    }
    assert!(
        !lines[first_other..]
            .iter()
            .any(|l| l.starts_with("::add-mask::")),
        "{}",
        run.describe()
    );
    run.assert_never_shows(PASSWORD);
    run.assert_never_shows(API_KEY);
}

#[test]
fn a_stray_input_variable_is_warned_about_not_fatal() {
    // A caller's stray INPUT_* (docker forwards every one): named in a warning, never a configuration error.
    // (A typo in a `with:` key never gets this far: the runner warns about it and passes nothing.)
    let run = Cli::new()
        .action_inputs(&[("mode", "validate-config")])
        .env("INPUT_NEON-PROJCT-ID", "x")
        .run(&["action"]);
    assert!(
        run.stdout
            .contains("::warning::INPUT_NEON-PROJCT-ID is set but is no input of supaneon-sync"),
        "{}",
        run.describe()
    );
    assert!(!run.stderr.contains("projct"), "{}", run.describe());
}

#[test]
fn every_mode_fails_with_exit_1_and_no_leak_when_nothing_answers() {
    // Nothing listens on these ports; each mode must fail cleanly, naming what it could not reach.
    let url = format!(
        "postgresql://postgres.abcdefghijklmnop:{PASSWORD}@127.0.0.1:1/postgres?sslmode=require"
    );
    for args in [
        &["backup-run"][..],
        &["restore-test"],
        &["prune", "--dry-run"],
        &["list", "--json"],
    ] {
        let run = valid_env()
            .env("SUPABASE_DATABASE_URL", &url)
            .env("NEON_API_URL", "http://127.0.0.1:9/api/v2")
            .env("SUPANEON_NEON_CALL_DEADLINE_SECONDS", "1")
            .run(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.describe());
        assert!(
            run.stderr.contains("error: "),
            "{args:?}: {}",
            run.describe()
        );
        assert!(
            !run.stderr.contains("not implemented"),
            "{args:?}: {}",
            run.describe()
        );
        run.assert_never_shows(PASSWORD);
        run.assert_never_shows(API_KEY);
    }
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes() {
    let run = Cli::new().run(&["no-such-command"]);
    assert_eq!(run.code, 2, "{}", run.describe());
    let help = Cli::new().run(&["--help"]);
    assert_eq!(help.code, 0);
    for needle in [
        "Exit codes:",
        "0  success",
        "1  the operation failed",
        "2  invalid configuration",
    ] {
        assert!(
            help.stdout.contains(needle),
            "{needle}: {}",
            help.describe()
        );
    }
    let version = Cli::new().run(&["--version"]);
    assert_eq!(version.code, 0);
    assert!(
        version.stdout.starts_with("supaneon-sync "),
        "{}",
        version.describe()
    );
}

#[test]
fn yaml_config_problems_are_reported_with_the_rest() {
    let cli = valid_env();
    let file = cli.dir().join("supaneon.yml");
    std::fs::write(&file, "schemas:\n  exlude: [audit]\n").unwrap();
    let run = cli
        .env("SUPANEON_CONFIG_FILE", file.to_str().unwrap())
        .env("SUPANEON_KEEP_LAST", "0")
        .run(&["validate-config"]);
    assert_eq!(run.code, 2, "{}", run.describe());
    assert!(
        run.stderr.contains("schemas.exlude") && run.stderr.contains("did you mean \"exclude\""),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("SUPANEON_KEEP_LAST"),
        "{}",
        run.describe()
    );
}
