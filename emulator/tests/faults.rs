//! Fault injection: injected statuses, HTML 524, delays, failing operations and lost responses.

mod support;

use std::time::{Duration, Instant};

use neon_emulator::{FaultAction, FaultRule, RecordedBody};
use serde_json::json;
use support::Env;

#[tokio::test]
async fn injected_statuses_pages_and_delays() {
    let env = Env::start().await;
    let faults = env.emu.faults();
    faults.push(
        FaultRule::new(
            "/branches",
            FaultAction::Status {
                status: 429,
                code: String::new(),
                message: "Too Many Requests".into(),
                retry_after: Some("1".into()),
            },
        )
        .method("GET"),
    );
    faults.push(
        FaultRule::new("/branches", FaultAction::status(503, "service unavailable"))
            .method("GET")
            .times(2),
    );
    faults.push(FaultRule::new("/operations", FaultAction::Html524));

    // A POST does not match the GET rules and is not consumed by them.
    assert_eq!(env.post("/branches", None).await.status, 201);
    let limited = env.get("/branches").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "1");
    assert_eq!(limited.body["message"], "Too Many Requests");
    assert_eq!(env.get("/branches").await.status, 503);
    assert_eq!(env.get("/branches/count").await.status, 503);
    assert_eq!(env.get("/branches").await.status, 200, "rules are used up");

    let page = env.get("/operations").await;
    assert_eq!(page.status, 524);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.body.as_str().is_some_and(|t| t.contains("524")));
    assert_eq!(faults.pending(), 0);

    faults.push(
        FaultRule::new("/projects/", FaultAction::Delay(Duration::from_millis(400))).method("GET"),
    );
    let started = Instant::now();
    assert_eq!(env.get("").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(400));

    let recorded = env.emu.requests();
    let html = recorded
        .iter()
        .find(|e| e.status == 524)
        .expect("the 524 is recorded");
    assert!(matches!(html.body, RecordedBody::Text(_)) && html.fault.is_some());
    env.finish().await;
}

#[tokio::test]
async fn failing_operations() {
    let env = Env::start().await;
    let faults = env.emu.faults();
    faults.push(
        FaultRule::new(
            "/branches",
            FaultAction::FailOperations {
                status: "failed".into(),
            },
        )
        .method("POST"),
    );
    let a = env
        .post(
            "/branches",
            Some(json!({"endpoints": [{"type": "read_write"}]})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let op = a.body["operations"][0]["id"].as_str().unwrap().to_string();
    let seen = env.watch_operation(&op, |s| s == "failed").await;
    assert_eq!(seen.last().map(String::as_str), Some("failed"));
    let failed = env.get(&format!("/operations/{op}")).await.body["operation"].clone();
    assert!(failed["failures_count"].as_i64().unwrap() > 0);
    assert!(failed["error"].as_str().is_some_and(|e| !e.is_empty()));
    // failed is not terminal: the project stays locked until the retry finishes.
    assert_eq!(env.post("/branches", None).await.status, 423);
    let seen = env.watch_operation(&op, |s| s == "finished").await;
    assert_eq!(seen, vec!["failed".to_string(), "finished".to_string()]);
    env.wait_idle().await;

    faults.push(
        FaultRule::new(
            "/branches",
            FaultAction::FailOperations {
                status: "error".into(),
            },
        )
        .method("DELETE"),
    );
    let id = a.body["branch"]["id"].as_str().unwrap();
    let deleted = env.delete(&format!("/branches/{id}")).await;
    assert_eq!(deleted.status, 200);
    for op in deleted.body["operations"].as_array().unwrap() {
        let seen = env
            .watch_operation(op["id"].as_str().unwrap(), |s| s == "error")
            .await;
        assert_eq!(seen.last().map(String::as_str), Some("error"));
        let body = env
            .get(&format!("/operations/{}", op["id"].as_str().unwrap()))
            .await
            .body;
        assert!(body["operation"]["error"].is_string());
    }
    // error is terminal: nothing stays locked.
    assert_eq!(env.post("/branches", None).await.status, 201);
    env.finish().await;
}

#[tokio::test]
async fn lost_response_after_applying() {
    let env = Env::start().await;
    env.emu
        .faults()
        .push(FaultRule::new("/branches", FaultAction::DropResponseAfterApplying).method("POST"));
    let lost = env
        .post(
            "/branches",
            Some(json!({"branch": {"name": "backup-lost"}})),
        )
        .await;
    assert_eq!(lost.status, 502);
    // The branch was created all the same; a retry meets the duplicate.
    let names: Vec<_> = env
        .emu
        .branches()
        .into_iter()
        .map(|b| b["name"].clone())
        .collect();
    assert!(names.contains(&json!("backup-lost")), "{names:?}");
    env.wait_idle().await;
    let retry = env
        .post(
            "/branches",
            Some(json!({"branch": {"name": "backup-lost"}})),
        )
        .await;
    assert_eq!(retry.status, 409);
    env.finish().await;
}
