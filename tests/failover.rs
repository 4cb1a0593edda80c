//! failover end to end: the newest verified backup of this source, given a compute when it has none, answers,
//! and its URI is the only line on stdout (and the masked `database-url` output under Actions).

mod support;

use support::restore::neon_client;
use support::world::{World, API_KEY, PROJECT_ID, SOURCE_PASSWORD};

#[tokio::test(flavor = "multi_thread")]
async fn failover_hands_over_a_verified_backup_that_answers() {
    let world = World::start(17).await;

    // Nothing to fail over to yet: exit 1, and nothing on stdout to be taken for a URL.
    let none = world.cli().run(&["failover"]);
    assert_eq!(none.code, 1, "{}", none.describe());
    assert!(none.stdout.trim().is_empty(), "{}", none.describe());
    assert!(
        none.stderr.contains("no complete backup"),
        "{}",
        none.describe()
    );

    let backup = world.cli().run(&["backup-run"]);
    assert_eq!(backup.code, 0, "{}", backup.describe());
    let name = backup.output("backup-branch").unwrap();

    // A snapshot backup is made without a compute: failover gives it one.
    let branch = world.branch(&name).unwrap();
    let branch_id = branch["id"].as_str().unwrap();
    let endpoints = neon_client(&world)
        .list_endpoints(branch_id)
        .await
        .expect("the backup's endpoints");
    assert!(endpoints.is_empty(), "{endpoints:?}");

    let run = world.cli().run(&["failover"]);
    assert_eq!(run.code, 0, "{}", run.describe());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the URI on stdout: {}", run.describe());
    let uri = lines[0];
    assert!(
        uri.starts_with("postgresql://neondb_owner:"),
        "{}",
        run.describe()
    );
    assert!(run.stderr.contains(&name), "{}", run.describe());
    assert!(
        run.stderr.contains("a read-write compute was created"),
        "{}",
        run.describe()
    );
    run.assert_never_shows(SOURCE_PASSWORD);
    run.assert_never_shows(API_KEY);

    // The URI works: the application would find the backed-up data there.
    let rows = world.psql_branch(&name, "SELECT count(*) FROM public.todos");
    let parsed = url::Url::parse(uri).unwrap();
    let password = percent_encoding::percent_decode_str(parsed.password().unwrap())
        .decode_utf8()
        .unwrap()
        .to_string();
    let mut without = parsed.clone();
    without.set_password(None).unwrap();
    let out = std::process::Command::new(world.source.bin_dir().join("psql"))
        .env_clear()
        .env("PGPASSWORD", &password)
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", world.neon_pg.ca_cert_path())
        .args([
            "-X",
            "-At",
            "-d",
            without.as_str(),
            "-c",
            "SELECT count(*) FROM public.todos",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), rows.trim());

    // A second failover finds the compute in place.
    let again = world.cli().run(&["failover", "--backup", &name]);
    assert_eq!(again.code, 0, "{}", again.describe());
    assert!(
        !again.stderr.contains("a read-write compute was created"),
        "{}",
        again.describe()
    );

    // As the Action: the URI is masked before it is printed, and handed over as the database-url output.
    let action = world
        .action_cli(&[
            ("mode", "failover"),
            ("neon-api-key", API_KEY),
            ("neon-project-id", PROJECT_ID),
            ("neon-api-url", &world.emu.base_url()),
        ])
        .run(&["action"]);
    assert_eq!(action.code, 0, "{}", action.describe());
    let masked_at = action
        .stdout
        .find(&format!("::add-mask::{uri}"))
        .expect("the URI is masked");
    let printed_at = action.stdout.rfind(uri).unwrap();
    assert!(
        masked_at < printed_at,
        "masked before printed: {}",
        action.describe()
    );
    assert_eq!(action.output("database-url").as_deref(), Some(uri));
    assert_eq!(
        action.output("backup-branch").as_deref(),
        Some(name.as_str())
    );
    assert!(
        !action.summary.contains(&password),
        "the summary holds no secret"
    );

    // A name that is no backup name is a configuration error; a backup that does not exist fails.
    let bad = world.cli().run(&["failover", "--backup", "main"]);
    assert_eq!(bad.code, 2, "{}", bad.describe());
    assert!(bad.stdout.trim().is_empty());
    let missing = world
        .cli()
        .run(&["failover", "--backup", "backup-20200101T000000Z"]);
    assert_eq!(missing.code, 1, "{}", missing.describe());
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.describe()
    );
    assert!(missing.stdout.trim().is_empty());
}
