//! The Neon client against the local Neon emulator (backed by a real PostgreSQL 15 cluster): every call,
//! the retry table, pagination, operation polling and secret hygiene (`neon_client_idempotence`: calls
//! whose answer was lost).

mod neon_env;
#[path = "support/neon_log.rs"]
mod neon_log;
#[path = "support/neon_pg.rs"]
mod neon_pg;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use neon_emulator::{FaultAction, FaultRule};
use neon_env::{backup, start, start_with, status_fault, API_KEY, PROJECT};
use supaneon_sync::neon::{
    CreateBranch, Deleted, EndpointType, NeonClient, NeonError, NeonErrorKind,
};
use supaneon_sync::secret::Secret;

#[tokio::test]
async fn every_call_round_trips() {
    let env = start().await;
    let neon = env.client();

    let project = neon.get_project().await.unwrap();
    assert_eq!(project.id, PROJECT);
    assert_eq!(project.pg_version, 15);
    assert_eq!(project.branches_limit(), Some(10));

    let main = neon.default_branch().await.unwrap();
    assert!(main.default);
    assert_eq!(main.name, "main");
    assert_eq!(neon.list_branches().await.unwrap().len(), 1);

    let expires = Utc::now() + chrono::Duration::hours(2);
    let mut annotations = BTreeMap::new();
    annotations.insert("supaneon-sync".to_string(), "backup".to_string());
    annotations.insert("source-pg".to_string(), "15".to_string());
    let created = neon
        .create_branch(&CreateBranch {
            name: "backup-20260101T020000Z-incomplete".into(),
            parent_id: Some(main.id.clone()),
            expires_at: Some(expires),
            annotations: annotations.clone(),
            with_endpoint: true,
        })
        .await
        .unwrap();
    let branch = &created.branch;
    assert_eq!(branch.name, "backup-20260101T020000Z-incomplete");
    assert_eq!(branch.parent_id.as_deref(), Some(main.id.as_str()));
    assert_eq!(
        branch.current_state, "ready",
        "create waits for its operations"
    );
    assert_eq!(
        branch.expires_at.map(|t| t.timestamp()),
        Some(expires.timestamp())
    );
    let endpoint = created.endpoint.clone().expect("a read_write endpoint");
    assert_eq!(endpoint.endpoint_type, EndpointType::ReadWrite);
    assert_eq!(endpoint.branch_id, branch.id);

    let found = neon
        .find_branch_by_name("backup-20260101T020000Z-incomplete")
        .await
        .unwrap()
        .expect("found by exact name");
    assert_eq!(found.branch.id, branch.id);
    assert_eq!(found.annotations, annotations);
    assert!(neon
        .find_branch_by_name("backup-2026")
        .await
        .unwrap()
        .is_none());

    let cleared = neon.set_expires_at(&branch.id, None).await.unwrap();
    assert_eq!(cleared.expires_at, None);
    let later = Utc::now() + chrono::Duration::days(3);
    let set = neon.set_expires_at(&branch.id, Some(later)).await.unwrap();
    assert_eq!(
        set.expires_at.map(|t| t.timestamp()),
        Some(later.timestamp())
    );
    neon.set_expires_at(&branch.id, None).await.unwrap();

    let renamed = neon
        .rename_branch(&branch.id, "backup-20260101T020000Z")
        .await
        .unwrap();
    assert_eq!(renamed.name, "backup-20260101T020000Z");
    assert!(env
        .branch_names()
        .contains(&"backup-20260101T020000Z".to_string()));

    let endpoints = neon.list_endpoints(&branch.id).await.unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].id, endpoint.id);
    let databases = neon.list_databases(&branch.id).await.unwrap();
    assert!(databases
        .iter()
        .any(|d| d.name == "neondb" && d.owner_name == "neondb_owner"));
    let roles = neon.list_roles(&branch.id).await.unwrap();
    assert!(roles.iter().any(|r| r.name == "neondb_owner"));

    let uri = neon
        .connection_uri(&branch.id, "neondb", "neondb_owner")
        .await
        .unwrap();
    assert_eq!(format!("{uri}"), "***", "the URI is a masked secret");
    let parsed = url::Url::parse(uri.expose()).unwrap();
    assert_eq!(parsed.scheme(), "postgresql");
    assert_eq!(parsed.username(), "neondb_owner");
    let physical = env.emu.physical_database(&branch.id, "neondb").unwrap();
    assert_eq!(parsed.path().trim_start_matches('/'), physical);
    let pg = neon_pg::connect_tls(uri.expose(), env.cluster.ca_cert_path()).await;
    let row = pg
        .query_one("select current_database()", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), physical);
    drop(pg);

    neon.suspend_endpoint(&endpoint.id).await.unwrap();
    let after = neon.list_endpoints(&branch.id).await.unwrap();
    assert_eq!(after[0].current_state, "idle");

    assert_eq!(
        neon.delete_branch(&branch.id).await.unwrap(),
        Deleted::Removed
    );
    assert_eq!(
        env.emu.deleted_branch_names(),
        vec!["backup-20260101T020000Z".to_string()]
    );
    assert_eq!(
        neon.delete_branch(&branch.id).await.unwrap(),
        Deleted::AlreadyGone,
        "deleting a gone branch"
    );
    assert_eq!(neon.list_branches().await.unwrap().len(), 1);
}

/// Each status of the retry table, injected once in front of a call, is retried and the call succeeds.
#[tokio::test]
async fn retried_statuses_recover() {
    let env = start().await;
    let neon = env.client();
    let http_date = (Utc::now() + chrono::Duration::seconds(1))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let cases: Vec<(&str, FaultAction)> = vec![
        ("423", status_fault(423, "", None)),
        ("429 without Retry-After", status_fault(429, "", None)),
        ("429 Retry-After seconds", status_fault(429, "", Some("1"))),
        (
            "429 Retry-After date",
            status_fault(429, "", Some(&http_date)),
        ),
        ("500", status_fault(500, "", None)),
        ("502", status_fault(502, "", None)),
        ("503", status_fault(503, "", None)),
        ("504", status_fault(504, "", None)),
        ("524 HTML page", FaultAction::Html524),
    ];
    let project_path = format!("/projects/{PROJECT}");
    for (name, action) in cases {
        let before = env.count("GET", &project_path);
        env.emu
            .faults()
            .push(FaultRule::new(&project_path, action).method("GET"));
        let started = Instant::now();
        let project = neon.get_project().await;
        assert!(project.is_ok(), "{name}: {:?}", project.err());
        assert_eq!(
            env.count("GET", &project_path) - before,
            2,
            "{name}: one failed attempt, one retry"
        );
        if name.starts_with("429 Retry-After seconds") {
            assert!(
                started.elapsed() >= Duration::from_millis(950),
                "Retry-After: 1 is honoured"
            );
        }
    }

    // Two failures in a row on a mutation that was not applied: the branch is created once.
    env.emu.faults().push(
        FaultRule::new("/branches", status_fault(503, "", None))
            .method("POST")
            .times(2),
    );
    let created = neon.create_branch(&backup("backup-retry")).await.unwrap();
    assert_eq!(env.count("POST", "/branches"), 3);
    assert_eq!(
        env.branch_names()
            .iter()
            .filter(|n| *n == "backup-retry")
            .count(),
        1
    );

    // 423 on delete (project busy) is retried too.
    env.emu
        .faults()
        .push(FaultRule::new(&created.branch.id, status_fault(423, "", None)).method("DELETE"));
    assert_eq!(
        neon.delete_branch(&created.branch.id).await.unwrap(),
        Deleted::Removed
    );
}

/// A request that hangs longer than the per-request timeout is abandoned and retried.
#[tokio::test]
async fn a_slow_response_times_out_and_is_retried() {
    let env = start().await;
    let neon = env
        .client()
        .with_request_timeout(Duration::from_millis(300));
    let path = format!("/projects/{PROJECT}");
    env.emu
        .faults()
        .push(FaultRule::new(&path, FaultAction::Delay(Duration::from_secs(2))).method("GET"));
    let started = Instant::now();
    neon.get_project().await.expect("second attempt succeeds");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "did not wait for the slow answer"
    );

    // With a call deadline shorter than the delay, the call fails with a timeout and a hint.
    let mut settings = env.settings();
    settings.call_deadline = Duration::from_millis(400);
    let impatient = NeonClient::new(settings)
        .unwrap()
        .with_request_timeout(Duration::from_millis(300));
    env.emu.faults().push(
        FaultRule::new(&path, FaultAction::Delay(Duration::from_secs(2)))
            .method("GET")
            .times(5),
    );
    let err = impatient.get_project().await.unwrap_err();
    assert_eq!(err.kind, NeonErrorKind::Timeout, "{err}");
    assert!(err.hint().contains("did not answer in time"));
    env.emu.faults().clear();
}

/// Statuses outside the retry table fail at once, with the status, Neon's code and a useful hint.
#[tokio::test]
async fn non_retried_statuses_fail_at_once_with_a_hint() {
    let env = start().await;
    let neon = env.client();
    let project_path = format!("/projects/{PROJECT}");

    // 400 (injected)
    env.emu
        .faults()
        .push(FaultRule::new(&project_path, status_fault(400, "", None)).method("GET"));
    let before = env.count("GET", &project_path);
    let err = neon.get_project().await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(env.count("GET", &project_path) - before, 1);
    assert!(err.hint().contains("invalid"), "{}", err.hint());
    assert!(err.request_id().is_some(), "x-neon-ret-request-id is kept");

    // 401: a wrong key (real emulator behaviour)
    let mut settings = env.settings();
    settings.api_key = Secret::new("napi_wrongWRONGwrong0123456789");
    let wrong = NeonClient::new(settings).unwrap();
    let before = env.count("GET", &project_path);
    let err = wrong.get_project().await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(env.count("GET", &project_path) - before, 1);
    assert!(err.hint().contains("NEON_API_KEY"));

    // 404: a branch that never existed
    let before = env.count("PATCH", "/branches/br-none-such-00000000");
    let err = neon
        .rename_branch("br-none-such-00000000", "x")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(
        env.count("PATCH", "/branches/br-none-such-00000000") - before,
        1
    );
    assert!(err.hint().contains("branch may be gone"));

    // 409: the name is taken (and no earlier attempt of ours was ambiguous)
    neon.create_branch(&backup("taken")).await.unwrap();
    let before = env.count("POST", "/branches");
    let err = neon.create_branch(&backup("taken")).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(env.count("POST", "/branches") - before, 1);
    assert!(err.hint().contains("already taken"));

    // 422 BRANCHES_LIMIT_EXCEEDED: the real limit check of the emulator
    env.emu.faults().set_branch_limit(2);
    let before = env.count("POST", "/branches");
    let err = neon
        .create_branch(&backup("one-too-many"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.code(), Some("BRANCHES_LIMIT_EXCEEDED"));
    assert_eq!(env.count("POST", "/branches") - before, 1);
    assert!(err.hint().contains("retention") && err.hint().contains("prune"));
    let failure = err.into_failure("no backup was taken tonight");
    assert!(failure.what.contains("create branch one-too-many"));
    assert_eq!(failure.impact, "no backup was taken tonight");
    assert!(failure.hint.contains("prune"));
    let rendered = supaneon_sync::error::Error::from(failure).render();
    assert!(rendered.contains("BRANCHES_LIMIT_EXCEEDED"), "{rendered}");
}

/// A retryable status that never goes away ends when the call deadline passes, with the last status.
#[tokio::test]
async fn a_persistent_lock_gives_up_at_the_deadline() {
    let env = start().await;
    let mut settings = env.settings();
    settings.call_deadline = Duration::from_millis(1500);
    let neon = NeonClient::new(settings).unwrap();
    let path = format!("/projects/{PROJECT}");
    env.emu.faults().push(
        FaultRule::new(&path, status_fault(423, "", None))
            .method("GET")
            .times(1000),
    );
    let started = Instant::now();
    let err = neon.get_project().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(err.status(), Some(423));
    assert!(err.hint().contains("still locked"));
    assert!(env.count("GET", &path) >= 2, "it did retry");
    env.emu.faults().clear();
}

#[tokio::test]
async fn lists_every_page() {
    let env = start_with(|cfg| cfg.branch_limit = 20).await;
    let neon = env.client().with_page_size(3);
    let mut annotations = BTreeMap::new();
    annotations.insert("supaneon-sync".to_string(), "backup".to_string());
    let names: Vec<String> = (1..=7).map(|i| format!("backup-p{i}")).collect();
    for name in &names {
        neon.create_branch(&CreateBranch {
            name: name.clone(),
            annotations: annotations.clone(),
            ..CreateBranch::default()
        })
        .await
        .unwrap();
    }
    // A near-miss name for the exact-match lookup.
    neon.create_branch(&CreateBranch {
        name: "backup-p1-incomplete".into(),
        ..CreateBranch::default()
    })
    .await
    .unwrap();

    let before = env.count("GET", "/branches");
    let all = neon.list_branches().await.unwrap();
    let pages = env.count("GET", "/branches") - before;
    assert!(
        pages >= 3,
        "9 branches at 3 per page take at least 3 requests, saw {pages}"
    );
    assert_eq!(all.len(), 9);
    let mut listed: Vec<_> = all.iter().map(|b| b.branch.name.clone()).collect();
    listed.sort();
    let mut expected: Vec<String> = env.branch_names();
    expected.sort();
    assert_eq!(listed, expected);
    for b in all.iter().filter(|b| names.contains(&b.branch.name)) {
        assert_eq!(b.annotations, annotations, "{}", b.branch.name);
    }
    let found = neon
        .find_branch_by_name("backup-p1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.branch.name, "backup-p1");
}

#[tokio::test]
async fn a_failed_operation_is_reported_at_once() {
    // `failed` shows for 10 steps (1 s) before Neon would retry it; the client does not wait that out, nor
    // the operation deadline (30 s): the first poll that sees `failed` ends the call.
    let env = start_with(|cfg| cfg.operation_step = Duration::from_millis(100)).await;
    let neon = env.client();
    env.emu.faults().push(
        FaultRule::new(
            "/branches",
            FaultAction::FailOperations {
                status: "failed".into(),
            },
        )
        .method("POST"),
    );
    let started = Instant::now();
    let err = neon
        .create_branch(&backup("backup-failed-op"))
        .await
        .unwrap_err();
    match &err.kind {
        NeonErrorKind::Operation { status, .. } => assert_eq!(status, "failed"),
        other => panic!("expected an operation failure, got {other:?}"),
    }
    assert!(err.hint().contains("operation"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?} on a failed operation",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_operation_in_error_fails_the_call() {
    let env = start_with(|cfg| cfg.operation_step = Duration::from_millis(100)).await;
    // `error` fails at once, however long the deadline.
    let neon = env.client();
    env.emu.faults().push(
        FaultRule::new(
            "/branches",
            FaultAction::FailOperations {
                status: "error".into(),
            },
        )
        .method("POST"),
    );
    let started = Instant::now();
    let err = neon
        .create_branch(&backup("backup-op-error"))
        .await
        .unwrap_err();
    match &err.kind {
        NeonErrorKind::Operation { status, error, .. } => {
            assert_eq!(status, "error");
            assert!(error.as_deref().unwrap_or("").contains("ended in error"));
        }
        other => panic!("expected an operation error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn retry_after_zero_never_makes_a_request_storm() {
    // A proxy answering 429 with `Retry-After: 0` for good: the floor under every pause and the cap on
    // attempts bound what one call sends, however long its deadline.
    let env = start().await;
    let mut settings = env.settings();
    settings.call_deadline = Duration::from_secs(120);
    let neon = NeonClient::new(settings).unwrap();
    env.emu.faults().push(
        FaultRule::new("/projects/", status_fault(429, "", Some("0")))
            .method("GET")
            .times(100_000),
    );
    let started = Instant::now();
    let err = neon.get_project().await.unwrap_err();
    let elapsed = started.elapsed();
    env.emu.faults().clear();
    assert_eq!(err.status(), Some(429), "{err}");
    let sent = env.count("GET", &format!("/projects/{PROJECT}"));
    let per_second = sent as f64 / elapsed.as_secs_f64();
    assert!(sent <= 10, "{sent} requests for one call");
    assert!(
        per_second <= 4.5,
        "{sent} requests in {elapsed:?} ({per_second:.1}/s)"
    );

    // A 422 that says "not ready yet" is retried; the call succeeds once it passes.
    env.emu.faults().push(
        FaultRule::new(
            "/projects/",
            FaultAction::Status {
                status: 422,
                code: String::new(),
                message: "branch not ready yet".into(),
                retry_after: None,
            },
        )
        .method("GET")
        .times(2),
    );
    neon.get_project()
        .await
        .expect("retried past the transient 422");
}

/// The API key and every role password stay out of logs and error texts, whatever happens.
#[tokio::test]
async fn secrets_never_reach_logs_or_errors() {
    let log = neon_log::capture();
    let env = start().await;
    let neon = env.client();
    let mut texts: Vec<String> = Vec::new();
    fn record(texts: &mut Vec<String>, e: &NeonError) {
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
        texts.push(e.hint());
    }

    let main = neon.default_branch().await.unwrap();
    let created = neon.create_branch(&backup("backup-secrets")).await.unwrap();
    let uri = neon
        .connection_uri(&created.branch.id, "neondb", "neondb_owner")
        .await
        .unwrap();
    let password = url::Url::parse(uri.expose())
        .unwrap()
        .password()
        .unwrap()
        .to_string();
    assert!(password.len() >= 8);

    // Faults of every kind, so the retry and failure paths log too.
    let project_path = format!("/projects/{PROJECT}");
    for action in [
        status_fault(429, "", Some("0")),
        status_fault(503, "", None),
        FaultAction::Html524,
    ] {
        env.emu
            .faults()
            .push(FaultRule::new(&project_path, action).method("GET"));
        neon.get_project().await.unwrap();
    }
    env.emu.faults().push(FaultRule::new(
        "/connection_uri",
        FaultAction::Status {
            status: 400,
            code: String::new(),
            message: format!("bad request for postgresql://neondb_owner:{password}@h/neondb"),
            retry_after: None,
        },
    ));
    record(
        &mut texts,
        &neon
            .connection_uri(&main.id, "neondb", "neondb_owner")
            .await
            .unwrap_err(),
    );
    record(
        &mut texts,
        &neon
            .create_branch(&backup("backup-secrets"))
            .await
            .unwrap_err(),
    );
    let mut settings = env.settings();
    settings.api_key = Secret::new("napi_wrongWRONGwrong0123456789");
    record(
        &mut texts,
        &NeonClient::new(settings)
            .unwrap()
            .get_project()
            .await
            .unwrap_err(),
    );
    let failure = neon
        .rename_branch("br-none-such-00000000", "x")
        .await
        .unwrap_err()
        .into_failure("nothing changed");
    texts.push(supaneon_sync::error::Error::from(failure).render());

    texts.push(format!("{neon:?} {:?}", env.settings()));
    texts.push(format!("{uri:?} {uri}"));
    let logged = log.contents();
    assert!(logged.contains("retrying"), "the capture works: {logged}");
    for text in texts.iter().chain(std::iter::once(&logged)) {
        assert!(!text.contains(API_KEY), "API key leaked: {text}");
        assert!(!text.contains(&password), "role password leaked: {text}");
        assert!(
            !text.contains("napi_wrongWRONGwrong0123456789"),
            "key leaked: {text}"
        );
    }
}
