//! Non-idempotent Neon calls whose answer was lost (dropped after the emulator applied them, or timed
//! out) are retried without harm: exactly one branch, a rename or delete that finds its work done, a
//! database created or deleted once.

mod neon_env;
#[allow(dead_code)]
#[path = "support/neon_log.rs"]
mod neon_log;

use std::time::{Duration, Instant};

use neon_emulator::{FaultAction, FaultRule};
use neon_env::{backup, start, status_fault, PROJECT};
use supaneon_sync::neon::{Deleted, NeonClient};

#[tokio::test]
async fn a_lost_create_response_yields_exactly_one_branch() {
    let env = start().await;
    let neon = env.client();
    env.emu
        .faults()
        .push(FaultRule::new("/branches", FaultAction::DropResponseAfterApplying).method("POST"));
    let created = neon
        .create_branch(&backup("backup-lost-response"))
        .await
        .unwrap();
    assert_eq!(created.branch.name, "backup-lost-response");
    assert_eq!(
        created.branch.current_state, "ready",
        "adoption waits for the operations"
    );
    assert!(created.endpoint.is_some());
    assert_eq!(
        env.branch_names()
            .iter()
            .filter(|n| *n == "backup-lost-response")
            .count(),
        1
    );
    assert_eq!(env.count("POST", "/branches"), 1, "adopted, not re-created");

    // A 503 first (not applied, but the client cannot know), then the retried POST is applied and its
    // response lost, then the name lookup itself hits a 503: still exactly one branch, adopted.
    env.emu
        .faults()
        .push(FaultRule::new("/branches", status_fault(503, "", None)).method("POST"));
    env.emu
        .faults()
        .push(FaultRule::new("/branches", FaultAction::DropResponseAfterApplying).method("POST"));
    let posts_before = env.count("POST", "/branches");
    let lookup_fault = FaultRule::new(
        &format!("/projects/{PROJECT}/branches"),
        status_fault(503, "", None),
    )
    .method("GET")
    .times(1);
    env.emu.faults().push(lookup_fault);
    let again = neon
        .create_branch(&backup("backup-lost-twice"))
        .await
        .unwrap();
    assert_eq!(again.branch.name, "backup-lost-twice");
    assert!(again.endpoint.is_some());
    assert_eq!(env.count("POST", "/branches") - posts_before, 2);
    assert_eq!(
        env.branch_names()
            .iter()
            .filter(|n| *n == "backup-lost-twice")
            .count(),
        1
    );
    assert_eq!(
        env.emu.faults().pending(),
        0,
        "every injected fault was hit"
    );
}

/// A create whose answer never arrives (client timeout) is ambiguous too: whether the server applied it
/// before, after or never, the client ends with exactly one branch of that name.
#[tokio::test]
async fn a_timed_out_create_yields_exactly_one_branch() {
    let env = start().await;
    // The timeout must be longer than a normal create on this machine (which copies a database), and
    // the injected delay longer than the timeout: measure a create first.
    let started = Instant::now();
    env.client()
        .create_branch(&backup("backup-warm-up"))
        .await
        .unwrap();
    let timeout = (started.elapsed() * 3).max(Duration::from_secs(2));
    let mut settings = env.settings();
    settings.call_deadline = timeout * 6;
    let neon = NeonClient::new(settings)
        .unwrap()
        .with_request_timeout(timeout);
    env.emu.faults().push(
        FaultRule::new(
            "/branches",
            FaultAction::Delay(timeout + Duration::from_secs(1)),
        )
        .method("POST"),
    );
    let created = neon
        .create_branch(&backup("backup-timed-out"))
        .await
        .unwrap();
    assert_eq!(created.branch.name, "backup-timed-out");
    assert_eq!(env.emu.faults().pending(), 0, "the slow attempt happened");
    assert_eq!(
        env.branch_names()
            .iter()
            .filter(|n| *n == "backup-timed-out")
            .count(),
        1
    );
}

/// Renames and deletes whose responses were lost are retried without harm.
#[tokio::test]
async fn lost_rename_and_delete_responses_are_safe() {
    let env = start().await;
    let neon = env.client();
    let created = neon
        .create_branch(&backup("backup-x-incomplete"))
        .await
        .unwrap();
    let id = created.branch.id.clone();

    env.emu.faults().push(
        FaultRule::new(
            &format!("/branches/{id}"),
            FaultAction::DropResponseAfterApplying,
        )
        .method("PATCH"),
    );
    let renamed = neon.rename_branch(&id, "backup-x").await.unwrap();
    assert_eq!(renamed.name, "backup-x");
    assert!(
        env.count("PATCH", &format!("/branches/{id}")) >= 2,
        "it was retried"
    );

    env.emu.faults().push(
        FaultRule::new(
            &format!("/branches/{id}"),
            FaultAction::DropResponseAfterApplying,
        )
        .method("DELETE"),
    );
    let deleted = neon.delete_branch(&id).await.unwrap();
    assert_eq!(deleted, Deleted::AlreadyGone, "the retry found it gone");
    assert_eq!(env.emu.deleted_branch_names(), vec!["backup-x".to_string()]);
    assert!(!env.branch_names().contains(&"backup-x".to_string()));

    // A branch id that never existed is "already gone" too, not an error.
    assert_eq!(
        neon.delete_branch("br-never-was-00000000").await.unwrap(),
        Deleted::AlreadyGone
    );
}

/// A database create or delete whose answer was lost: the retry finds the work done (a 409 for a database
/// of that name and owner, a 204 for one already gone) and the call succeeds; the same name held by
/// another owner stays an error. Names are escaped in the path.
#[tokio::test]
async fn lost_database_create_and_delete_responses_are_safe() {
    let env = start().await;
    let neon = env.client();
    let id = neon
        .create_branch(&backup("supaneon-mirror"))
        .await
        .unwrap()
        .branch
        .id;
    let databases = format!("/branches/{id}/databases");

    env.emu
        .faults()
        .push(FaultRule::new(&databases, FaultAction::DropResponseAfterApplying).method("DELETE"));
    neon.delete_database(&id, "neondb").await.unwrap();
    assert_eq!(env.count("DELETE", "/databases/neondb"), 2, "retried once");
    assert!(neon.list_databases(&id).await.unwrap().is_empty());

    env.emu
        .faults()
        .push(FaultRule::new(&databases, FaultAction::DropResponseAfterApplying).method("POST"));
    neon.create_database(&id, "neondb", "neondb_owner")
        .await
        .unwrap();
    assert_eq!(env.count("POST", "/databases"), 2, "retried once");
    let listed = neon.list_databases(&id).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|d| (d.name.as_str(), d.owner_name.as_str()))
            .collect::<Vec<_>>(),
        [("neondb", "neondb_owner")]
    );
    let taken = neon
        .create_database(&id, "neondb", "someone_else")
        .await
        .unwrap_err();
    assert_eq!(taken.status(), Some(409), "{taken}");

    let odd = "odd name/ü?";
    neon.create_database(&id, odd, "neondb_owner")
        .await
        .unwrap();
    neon.delete_database(&id, odd).await.unwrap();
    let names: Vec<String> = neon
        .list_databases(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["neondb"]);
    assert_eq!(
        env.emu.faults().pending(),
        0,
        "every injected fault was hit"
    );
}
