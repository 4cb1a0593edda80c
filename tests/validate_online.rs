//! validate-config --online against real servers: each check on its own line, failures named, no secret shown.

mod support;

use support::world::{World, API_KEY, SOURCE_PASSWORD};

#[tokio::test(flavor = "multi_thread")]
async fn online_checks_pass_against_a_working_world_and_name_what_fails() {
    let world = World::start(15).await;
    let run = world.cli().run(&["validate-config", "--online"]);
    assert_eq!(run.code, 0, "{}", run.describe());
    for line in [
        "ok   source: answers as postgres@127.0.0.1",
        "certificate verified (host name checked)",
        "SCRAM-SHA-256-PLUS",
        "ok   pg tools:",
        "ok   neon branch connections: will be verified in full",
        "ok   neon storage:",
        "ok   neon project:",
        "ok   neon postgres version:",
        "ok   branch budget:",
    ] {
        assert!(
            run.stdout.contains(line),
            "missing {line:?}: {}",
            run.describe()
        );
    }
    run.assert_never_shows(SOURCE_PASSWORD);
    run.assert_never_shows(API_KEY);

    let wrong_password = world.source.url("postgres", "not-the-password", "postgres");
    let run = world
        .cli()
        .env("SUPABASE_DATABASE_URL", &wrong_password)
        .env("NEON_API_KEY", "napi_wrong_key_0000")
        .env("SUPANEON_KEEP_LAST", "9")
        .run(&["validate-config", "--online"]);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.stdout.contains("FAIL source") && run.stdout.contains("authentication failed"),
        "{}",
        run.describe()
    );
    assert!(
        run.stdout.contains("FAIL neon project") && run.stdout.contains("NEON_API_KEY"),
        "{}",
        run.describe()
    );
    run.assert_never_shows("not-the-password");
    run.assert_never_shows("napi_wrong_key_0000");

    let tight = world
        .cli()
        .env("SUPANEON_KEEP_LAST", "8")
        .run(&["validate-config", "--online"]);
    assert_eq!(tight.code, 1, "{}", tight.describe());
    assert!(
        tight.stdout.contains("FAIL branch budget") && tight.stdout.contains("at most 7"),
        "{}",
        tight.describe()
    );
}
