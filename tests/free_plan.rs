//! The free plans' other traps: the keep-awake ping through the Supabase project's REST API, re-enabling the
//! scheduled workflow with github-token, and a paused (unreachable) Supabase project's own failure. The real
//! binary against local stand-ins that record what they receive; every run is scanned for the secrets.

mod support;

use support::cli::{Cli, Run};
use support::http::{closed_port_url, HttpStub, Recorded};
use support::world::{World, API_KEY, PROJECT_ID, SOURCE_PASSWORD};

const ANON_KEY: &str = "eyJhbGciOiJIUzI1NiJ9.anon-distinctive-key-41c7";
const GITHUB_TOKEN: &str = "ghs_distinctive_token_93e0";
const REPOSITORY: &str = "acme/shop";
const WORKFLOW_REF: &str = "acme/shop/.github/workflows/backup.yml@refs/heads/main";

fn no_secrets(run: &Run) {
    for secret in [ANON_KEY, GITHUB_TOKEN, SOURCE_PASSWORD, API_KEY] {
        run.assert_never_shows(secret);
    }
}

/// The runner's variables that name the workflow (as action-entry.sh forwards them into the container).
/// The Actions API call that re-enables the run's own workflow, with the token.
fn assert_enables_the_workflow(call: &Recorded) {
    assert_eq!(call.method, "PUT");
    assert_eq!(
        call.path,
        "/repos/acme/shop/actions/workflows/backup.yml/enable"
    );
    assert_eq!(
        call.header("authorization"),
        Some(format!("Bearer {GITHUB_TOKEN}").as_str())
    );
}

fn in_workflow(cli: Cli, github: &str) -> Cli {
    cli.env("GITHUB_API_URL", github)
        .env("GITHUB_REPOSITORY", REPOSITORY)
        .env("GITHUB_WORKFLOW_REF", WORKFLOW_REF)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ping_and_the_workflow_call_are_sent_and_never_fail_a_run() {
    let world = World::start(15).await;
    let neon_url = world.emu.base_url();
    let supabase = HttpStub::start(200);
    let github = HttpStub::start(204);
    let (supabase_url, github_url) = (supabase.url(), github.url());
    let with = |supabase_url: &str| {
        vec![
            ("mode", "list".to_string()),
            ("neon-api-key", API_KEY.to_string()),
            ("neon-project-id", PROJECT_ID.to_string()),
            ("neon-api-url", neon_url.clone()),
            ("supabase-url", supabase_url.to_string()),
            ("supabase-anon-key", ANON_KEY.to_string()),
            ("github-token", GITHUB_TOKEN.to_string()),
        ]
    };
    let action = |with: &[(&str, String)], github: &str| {
        let with: Vec<(&str, &str)> = with.iter().map(|(k, v)| (*k, v.as_str())).collect();
        in_workflow(world.action_cli(&with), github).run(&["action"])
    };

    // (a) The Action's list mode: one GET /rest/v1/ with both headers before the work, one PUT enable after.
    let run = action(&with(&supabase_url), &github_url);
    assert_eq!(run.code, 0, "{}", run.describe());
    let pings = supabase.requests();
    assert_eq!(pings.len(), 1, "{pings:?}");
    assert_eq!(
        (pings[0].method.as_str(), pings[0].path.as_str()),
        ("GET", "/rest/v1/")
    );
    assert_eq!(pings[0].header("apikey"), Some(ANON_KEY));
    assert_eq!(
        pings[0].header("authorization"),
        Some(format!("Bearer {ANON_KEY}").as_str())
    );
    let calls = github.requests();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_enables_the_workflow(&calls[0]);
    assert_eq!(
        calls[0].header("accept"),
        Some("application/vnd.github+json")
    );
    assert_eq!(calls[0].header("x-github-api-version"), Some("2022-11-28"));
    assert!(calls[0]
        .header("user-agent")
        .is_some_and(|ua| ua.starts_with("supaneon-sync/")));
    for secret in [ANON_KEY, GITHUB_TOKEN] {
        assert!(
            run.stdout.contains(&format!("::add-mask::{secret}")),
            "{secret} not masked: {}",
            run.describe()
        );
    }
    assert!(
        run.stdout.contains("keep-awake:") && run.stdout.contains("answered 200"),
        "{}",
        run.describe()
    );
    assert!(run.stdout.contains("kept enabled"), "{}", run.describe());
    assert!(!run.stdout.contains("::warning::"), "{}", run.describe());
    no_secrets(&run);

    // (b) A failing ping is a warning and the run goes on: a 500 (retried once), a closed port, a paused project.
    let failing = HttpStub::start(500);
    let run = action(&with(&failing.url()), &github_url);
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_eq!(failing.requests().len(), 2, "one retry, no more");
    assert!(
        run.stdout.contains("::warning::keep-awake: the request to")
            && run.stdout.contains("answered 500")
            && run.stdout.contains("7 days of low activity"),
        "{}",
        run.describe()
    );
    assert!(
        run.output("latest-backup").is_some() || run.output("backup-count").is_some(),
        "{}",
        run.describe()
    );
    no_secrets(&run);

    let run = action(&with(&closed_port_url()), &github_url);
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(
        run.stdout.contains("::warning::keep-awake: the request to")
            && run.stdout.contains("cannot connect"),
        "{}",
        run.describe()
    );
    no_secrets(&run);

    let paused = HttpStub::start(540);
    let run = action(&with(&paused.url()), &github_url);
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_eq!(paused.requests().len(), 1);
    assert!(
        run.stdout.contains(
            "::warning::keep-awake: the Supabase project is paused: restore it in the dashboard"
        ),
        "{}",
        run.describe()
    );
    no_secrets(&run);

    // (c) GitHub refuses the token: a warning naming the status and actions: write, exit 0.
    let refusing = HttpStub::start(403);
    let run = action(&with(&supabase_url), &refusing.url());
    assert_eq!(run.code, 0, "{}", run.describe());
    let calls = refusing.requests();
    assert_eq!(calls.len(), 1, "a 403 is not retried: {calls:?}");
    assert_enables_the_workflow(&calls[0]);
    assert!(
        run.stdout
            .contains("::warning::re-enabling workflow backup.yml failed: GitHub answered 403")
            && run.stdout.contains("actions: write"),
        "{}",
        run.describe()
    );
    no_secrets(&run);

    // (d) In a terminal (no masks at all) the CLI's list pings too, and neither secret appears anywhere;
    // outside GitHub Actions the workflow call is not made, with a warning.
    let before = supabase.requests().len();
    let github_calls = github.requests().len();
    let run = world
        .cli()
        .without_github_files()
        .env("SUPANEON_SUPABASE_URL", &supabase_url)
        .env("SUPANEON_SUPABASE_ANON_KEY", ANON_KEY)
        .env("SUPANEON_GITHUB_TOKEN", GITHUB_TOKEN)
        .run(&["list"]);
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_eq!(supabase.requests().len(), before + 1);
    assert_eq!(
        github.requests().len(),
        github_calls,
        "no workflow call outside Actions"
    );
    assert!(
        run.everything().contains("not inside GitHub Actions"),
        "{}",
        run.describe()
    );
    for secret in [ANON_KEY, GITHUB_TOKEN] {
        assert!(
            !run.everything().contains(secret),
            "{secret}: {}",
            run.describe()
        );
    }

    // validate-config --online pings as well; offline it touches no network.
    let before = supabase.requests().len();
    let offline = world
        .cli()
        .env("SUPANEON_SUPABASE_URL", &supabase_url)
        .env("SUPANEON_SUPABASE_ANON_KEY", ANON_KEY)
        .run(&["validate-config"]);
    assert_eq!(offline.code, 0, "{}", offline.describe());
    assert!(
        offline.stdout.contains("supabase-anon-key: ***"),
        "{}",
        offline.describe()
    );
    assert_eq!(supabase.requests().len(), before);
    let online = world
        .cli()
        .env("SUPANEON_SUPABASE_URL", &supabase_url)
        .env("SUPANEON_SUPABASE_ANON_KEY", ANON_KEY)
        .run(&["validate-config", "--online"]);
    assert_eq!(online.code, 0, "{}", online.describe());
    assert_eq!(supabase.requests().len(), before + 1);
    assert!(
        !online.everything().contains(ANON_KEY),
        "{}",
        online.describe()
    );
}

/// (e) An unreachable Supabase host (no DNS in the sandbox, and `connect_timeout` bounds it elsewhere) is a
/// paused project, told as such; any other unreachable host keeps the connection's own message.
#[test]
fn an_unreachable_supabase_host_looks_paused_and_other_hosts_keep_their_message() {
    let backup = |url: &str| {
        Cli::new()
            .action_inputs(&[
                ("mode", "backup"),
                ("supabase-database-url", url),
                ("neon-api-key", API_KEY),
                ("neon-project-id", PROJECT_ID),
                ("neon-api-url", "http://127.0.0.1:1"),
            ])
            .run(&["action"])
    };
    let supabase = format!(
        "postgresql://postgres.abcdefghijklmnop:{SOURCE_PASSWORD}@db.abcdefghijklmnop.supabase.co:5432/postgres?sslmode=require&connect_timeout=5"
    );
    let run = backup(&supabase);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.stdout.contains(
            "::error title=supaneon-sync%3A the Supabase project looks paused::the Supabase project is unreachable and looks paused"
        ),
        "{}",
        run.describe()
    );
    for expected in [
        "about a week of low activity",
        "impact: no backup was made by this run; earlier backups are untouched, and failover to the newest backup still works",
        "hint: restore the project in the Supabase dashboard",
        "set supabase-url and supabase-anon-key",
    ] {
        assert!(run.stderr.contains(expected), "{expected}: {}", run.describe());
    }
    assert_eq!(
        run.output("result")
            .as_deref()
            .map(|r| r.starts_with("the Supabase project is unreachable and looks paused")),
        Some(true),
        "{}",
        run.describe()
    );
    assert!(
        run.summary
            .contains("failover to the newest backup still works"),
        "{}",
        run.describe()
    );
    run.assert_never_shows(SOURCE_PASSWORD);
    run.assert_never_shows(API_KEY);

    let elsewhere = format!(
        "postgresql://postgres:{SOURCE_PASSWORD}@127.0.0.1:1/postgres?sslmode=require&connect_timeout=5"
    );
    let run = backup(&elsewhere);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.stdout.contains(
            "::error title=supaneon-sync failed::cannot connect to the Supabase database"
        ) && run
            .stderr
            .contains("check host and port — a paused Supabase project looks exactly like this"),
        "{}",
        run.describe()
    );
    assert!(
        !run.everything().contains("looks paused"),
        "{}",
        run.describe()
    );
    run.assert_never_shows(SOURCE_PASSWORD);
}

/// (f) url and key come together, the URL is https (http only to a loopback host), and every problem is
/// reported at once with the others.
#[test]
fn the_keep_awake_settings_are_validated_with_every_other_setting() {
    let source = format!(
        "postgresql://postgres.abcdefghijklmnop:{SOURCE_PASSWORD}@aws-0-eu-west-1.pooler.supabase.com:5432/postgres?sslmode=require"
    );
    let valid = || {
        Cli::new()
            .env("SUPABASE_DATABASE_URL", &source)
            .env("NEON_API_KEY", API_KEY)
            .env("NEON_PROJECT_ID", PROJECT_ID)
    };
    let run = valid()
        .env(
            "SUPANEON_SUPABASE_URL",
            "http://abcdefghijklmnop.supabase.co",
        )
        .env("SUPANEON_KEEP_LAST", "seven")
        .run(&["validate-config"]);
    assert_eq!(run.code, 2, "{}", run.describe());
    for expected in [
        "3 problems",
        "SUPANEON_SUPABASE_ANON_KEY: is not set, but SUPANEON_SUPABASE_URL is",
        "SUPANEON_SUPABASE_URL: uses plain http to a remote host",
        "SUPANEON_KEEP_LAST",
    ] {
        assert!(
            run.stderr.contains(expected),
            "{expected}: {}",
            run.describe()
        );
    }

    let run = Cli::new()
        .action_inputs(&[
            ("mode", "validate-config"),
            ("supabase-database-url", &source),
            ("neon-api-key", API_KEY),
            ("neon-project-id", PROJECT_ID),
            ("supabase-anon-key", ANON_KEY),
            ("github-token", GITHUB_TOKEN),
        ])
        .run(&["action"]);
    assert_eq!(run.code, 2, "{}", run.describe());
    assert!(
        run.stderr
            .contains("input \"supabase-url\": is not set, but input \"supabase-anon-key\" is"),
        "{}",
        run.describe()
    );
    assert!(
        run.stdout.contains(&format!("::add-mask::{ANON_KEY}")),
        "{}",
        run.describe()
    );
    no_secrets(&run);

    for (url, expected) in [
        (
            "https://abcdefghijklmnop.supabase.co/rest/v1",
            "has a path, query or fragment",
        ),
        ("ftp://abcdefghijklmnop.supabase.co", "has scheme \"ftp\""),
    ] {
        let run = valid()
            .env("SUPANEON_SUPABASE_URL", url)
            .env("SUPANEON_SUPABASE_ANON_KEY", ANON_KEY)
            .run(&["validate-config"]);
        assert_eq!(run.code, 2, "{url}: {}", run.describe());
        assert!(run.stderr.contains(expected), "{url}: {}", run.describe());
        no_secrets(&run);
    }
    for url in [
        "https://abcdefghijklmnop.supabase.co/",
        "http://localhost:54321",
    ] {
        let run = valid()
            .env("SUPANEON_SUPABASE_URL", url)
            .env("SUPANEON_SUPABASE_ANON_KEY", ANON_KEY)
            .run(&["validate-config"]);
        assert_eq!(run.code, 0, "{url}: {}", run.describe());
        assert!(
            run.stdout
                .contains(&format!("supabase-url: {}", url.trim_end_matches('/'))),
            "{url}: {}",
            run.describe()
        );
        no_secrets(&run);
    }
}
