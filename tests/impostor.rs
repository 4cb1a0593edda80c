//! An impostor on the network path: a fake PostgreSQL server with a certificate nobody trusts, asking for
//! a cleartext or an MD5 password. Neither our own connections, nor pg_dump and pg_restore, nor any mode
//! of the binary may hand it a password: the source's or a Neon branch's. Each test also shows that the
//! impostor was reached, so a silent miss cannot pass for a refusal.

mod support;

use supaneon_sync::pg::conn::{self, ConnError, ConnSpec};
use supaneon_sync::pg::pipeline::{self, DumpOptions, PipelineError};
use supaneon_sync::pg::tools::find_tools;
use supaneon_sync::secret::Secret;
use supaneon_testkit::{pg_bin_dir, test_majors, Impostor, ImpostorAsks};
use tokio::sync::watch;

use support::world::{World, API_KEY, SOURCE_PASSWORD};

const BAIT_PASSWORD: &str = "Impostor-bait-pw-5521";
const BOTH: [ImpostorAsks; 2] = [ImpostorAsks::CleartextPassword, ImpostorAsks::Md5Password];

fn url_to(impostor: &Impostor, query: &str) -> Secret {
    Secret::new(format!(
        "postgresql://postgres:{BAIT_PASSWORD}@127.0.0.1:{}/postgres?{query}",
        impostor.port()
    ))
}

fn never_cancelled() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    drop(tx);
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_connections_send_no_password_to_an_impostor() {
    for asks in BOTH {
        let impostor = Impostor::start(asks);
        let someone_else = Impostor::start(asks);

        // A source with sslmode=require: encrypted but unverified, so only SCRAM may carry the
        // password; the guard refuses the request after the startup message.
        let unverified = ConnSpec::for_source(&url_to(&impostor, "sslmode=require")).unwrap();
        let err = conn::connect(&unverified, "impostor test")
            .await
            .unwrap_err();
        assert!(
            matches!(err, ConnError::AuthRefused { .. }),
            "{asks:?}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains("no password was sent"), "{text}");
        assert!(text.contains("verify-full"), "the way out is named: {text}");

        // verify-full against a root that did not sign the impostor's certificate.
        let wrong_root = format!(
            "sslmode=verify-full&sslrootcert={}",
            someone_else.ca_cert_path().display()
        );
        let err = conn::connect(
            &ConnSpec::for_source(&url_to(&impostor, &wrong_root)).unwrap(),
            "impostor test",
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ConnError::Certificate { .. }), "{err}");

        // A Neon branch URI leading to the impostor: verified against the public roots, refused.
        let neon_uri = url_to(&impostor, "sslmode=require&channel_binding=require");
        let branch = ConnSpec::for_neon_branch(&neon_uri, "127.0.0.1", None).unwrap();
        let err = conn::connect(&branch, "impostor test").await.unwrap_err();
        assert!(matches!(err, ConnError::Certificate { .. }), "{err}");

        // Even with a certificate that verifies (a mis-issued one), a branch connection requires
        // channel binding, which a cleartext or MD5 request cannot give.
        let trusted =
            ConnSpec::for_neon_branch(&neon_uri, "127.0.0.1", Some(impostor.ca_cert_path()))
                .unwrap();
        let err = conn::connect(&trusted, "impostor test").await.unwrap_err();
        assert!(
            err.to_string().contains("channel binding"),
            "{asks:?}: {err}"
        );

        let visits = impostor.visits();
        assert_eq!(visits.len(), 4, "every attempt reached the impostor");
        assert_eq!(
            visits.iter().filter(|v| v.tls_accepted).count(),
            2,
            "two attempts refused the certificate: {visits:?}"
        );
        assert!(visits.iter().filter(|v| v.tls_accepted).all(|v| v
            .startup
            .iter()
            .any(|(k, v)| k == "user" && v == "postgres")));
        impostor.assert_received_no_password(BAIT_PASSWORD);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_sends_no_password_to_an_impostor() {
    let opts = DumpOptions {
        schemas: vec!["public".into()],
        ..DumpOptions::default()
    };
    for major in test_majors() {
        let tools = find_tools(major, &[pg_bin_dir(major)]).expect("pg tools");
        for asks in BOTH {
            let impostor = Impostor::start(asks);
            let unverified = ConnSpec::for_source(&url_to(&impostor, "sslmode=require")).unwrap();
            let result = pipeline::dump_schema(&tools, &unverified, &opts, never_cancelled()).await;
            match result {
                // libpq 16 and newer enforce require_auth=scram-sha-256 themselves.
                Err(PipelineError::Dump { stderr_tail, .. }) if tools.libpq_require_auth => {
                    let said = stderr_tail.join("\n");
                    assert!(
                        said.contains("server requested")
                            || said.contains("authentication method requirement"),
                        "PG {major} {asks:?}: {said}"
                    );
                    assert_eq!(impostor.visits().len(), 1, "pg_dump reached the impostor");
                }
                // Older libpq cannot: pg_dump is never started.
                Err(PipelineError::AuthUnenforceable { .. }) if !tools.libpq_require_auth => {
                    assert!(impostor.visits().is_empty());
                }
                other => panic!(
                    "PG {major} {asks:?} (require_auth {}): {:?}",
                    tools.libpq_require_auth,
                    other.map(|_| "dumped")
                ),
            }

            // A branch connection with a certificate that verifies: channel binding stops libpq.
            let before = impostor.visits().len();
            let branch = ConnSpec::for_neon_branch(
                &url_to(&impostor, "sslmode=require&channel_binding=require"),
                "127.0.0.1",
                Some(impostor.ca_cert_path()),
            )
            .unwrap();
            let err = pipeline::dump_schema(&tools, &branch, &opts, never_cancelled())
                .await
                .map(|_| "dumped")
                .unwrap_err();
            assert!(
                err.to_string().contains("channel binding"),
                "PG {major} {asks:?}: {err}"
            );
            assert_eq!(impostor.visits().len(), before + 1);
            impostor.assert_received_no_password(BAIT_PASSWORD);
        }
    }
}

/// The branch owner's password, as the emulator keeps it.
fn branch_password(world: &World) -> String {
    world
        .neon_pg
        .psql(
            "postgres",
            "SELECT password FROM neon_emulator_role_passwords WHERE role_name = 'neondb_owner'",
        )
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_mode_hands_a_password_to_an_impostor() {
    for major in test_majors() {
        let world = World::start(major).await;
        // First the real thing: every mode passes over Neon-shaped URIs (channel_binding=require),
        // verified in full against the clusters' CA.
        // A full backup: `list` connects to it to read its manifest (a snapshot backup's totals are in
        // its annotations), so the impostor below is reached by every mode.
        let real_backup = world
            .cli()
            .env("SUPANEON_STRATEGY", "full")
            .run(&["backup-run"]);
        assert_eq!(real_backup.code, 0, "{}", real_backup.describe());
        let real_test = world.cli().run(&["restore-test"]);
        assert_eq!(real_test.code, 0, "PG {major}: {}", real_test.describe());
        let real_list = world.cli().run(&["list", "--json"]);
        assert_eq!(real_list.code, 0, "PG {major}: {}", real_list.describe());
        assert!(
            real_list.stdout.contains("\"verification\": \"verified\"")
                || real_list.stdout.contains("\"verification\":\"verified\""),
            "list read the backup's manifest over a verified connection: {}",
            real_list.describe()
        );
        let owner_password = branch_password(&world);
        assert!(!owner_password.is_empty());

        for asks in BOTH {
            // The source is the impostor.
            let impostor = Impostor::start(asks);
            let source = url_to(&impostor, "sslmode=require");
            let mut runs = Vec::new();
            for args in [&["validate-config", "--online"][..], &["backup-run"][..]] {
                let run = world
                    .cli()
                    .env("SUPABASE_DATABASE_URL", source.expose())
                    .run(args);
                assert_eq!(
                    run.code,
                    1,
                    "PG {major} {asks:?} {args:?}: {}",
                    run.describe()
                );
                assert!(
                    run.everything().contains("no password was sent"),
                    "{}",
                    run.describe()
                );
                runs.push(run);
            }
            assert_eq!(impostor.visits().len(), 2, "{:?}", impostor.visits());
            impostor.assert_received_no_password(BAIT_PASSWORD);

            // A branch's connections lead to the impostor, the API still naming the real endpoint.
            let impostor = Impostor::start(asks);
            world.emu.route_connections_to(Some(impostor.port()));
            for args in [&["backup-run"][..], &["restore-test"][..], &["list"][..]] {
                let run = world.cli().run(args);
                // list reports what it could not read and still lists; the others fail.
                let expected = if args == ["list"] { 0 } else { 1 };
                assert_eq!(
                    run.code,
                    expected,
                    "PG {major} {asks:?} {args:?}: {}",
                    run.describe()
                );
                assert!(
                    run.everything()
                        .contains("certificate could not be verified"),
                    "{args:?}: {}",
                    run.describe()
                );
                runs.push(run);
            }
            // The same with the impostor's CA trusted: channel binding still refuses it.
            let run = world
                .cli()
                .env(
                    "SUPANEON_NEON_CA_FILE",
                    impostor.ca_cert_path().to_str().unwrap(),
                )
                .run(&["backup-run"]);
            assert_eq!(run.code, 1, "{}", run.describe());
            assert!(
                run.everything().contains("channel binding"),
                "{}",
                run.describe()
            );
            runs.push(run);
            world.emu.route_connections_to(None);

            let visits = impostor.visits();
            assert!(
                visits.len() >= 4,
                "every mode reached the impostor: {visits:?}"
            );
            assert!(visits.iter().any(|v| v.tls_accepted));
            for secret in [owner_password.as_str(), SOURCE_PASSWORD, BAIT_PASSWORD] {
                impostor.assert_received_no_password(secret);
                for run in &runs {
                    run.assert_never_shows(secret);
                }
            }
            for run in &runs {
                run.assert_never_shows(API_KEY);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_connections_need_a_verifiable_certificate() {
    let world = World::start(17).await;
    // Without the test CA the branches' certificates do not verify against the public roots.
    let run = world
        .cli()
        .env("SUPANEON_NEON_CA_FILE", "")
        .run(&["backup-run"]);
    assert_eq!(run.code, 1, "{}", run.describe());
    let all = run.everything();
    assert!(all.contains("cannot connect to the mirror"), "{all}");
    assert!(all.contains("certificate could not be verified"), "{all}");
    run.assert_never_shows(SOURCE_PASSWORD);
    // With it, the same run passes: verify-full and channel binding against the emulator's clusters.
    let run = world.cli().run(&["backup-run"]);
    assert_eq!(run.code, 0, "{}", run.describe());
}
