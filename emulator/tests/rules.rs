//! Validation rules: limits, names, expires_at, PATCH, set_as_default, refusals, connection URIs,
//! endpoints and password storage.

mod support;

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use serde_json::json;
use support::{psql_uri, Env, DEADLINE};

fn in_future(d: chrono::Duration) -> String {
    (Utc::now() + d).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tokio::test]
async fn names_and_plan_limits() {
    let env = Env::start_with(|cfg| cfg.root_branch_limit = 2).await;
    env.create_branch(json!({"branch": {"name": "dup"}})).await;
    let dup = env
        .post("/branches", Some(json!({"branch": {"name": "dup"}})))
        .await;
    assert_eq!(dup.status, 409, "{}", dup.body);
    for name in [String::new(), "x".repeat(257)] {
        assert_eq!(
            env.post("/branches", Some(json!({"branch": {"name": name}})))
                .await
                .status,
            400
        );
    }
    assert_eq!(
        env.post(
            "/branches",
            Some(json!({"branch": {"name": "x".repeat(256)}}))
        )
        .await
        .status,
        201
    );
    env.wait_idle().await;

    let unknown_parent = env
        .post(
            "/branches",
            Some(json!({"branch": {"parent_id": "br-gone-gone-00000000"}})),
        )
        .await;
    assert_eq!(unknown_parent.status, 404);
    let two_rw = env
        .post(
            "/branches",
            Some(json!({"endpoints": [{"type": "read_write"}, {"type": "read_write"}]})),
        )
        .await;
    assert_eq!(two_rw.status, 409);
    let protected = env
        .post("/branches", Some(json!({"branch": {"protected": true}})))
        .await;
    assert_eq!(
        (protected.status, protected.body["code"].as_str()),
        (422, Some("BRANCHES_PROTECTED_LIMIT_EXCEEDED"))
    );
    let suspend = env
        .post(
            "/branches",
            Some(json!({"endpoints": [{"type": "read_write", "suspend_timeout_seconds": 600}]})),
        )
        .await;
    assert_eq!(suspend.status, 412);
    assert_eq!(
        env.post(
            "/branches",
            Some(json!({"branch": {"init_source": "nope"}}))
        )
        .await
        .status,
        400
    );
    let not_json = env
        .send(
            env.http
                .post(env.url("/branches"))
                .bearer_auth(support::API_KEY)
                .body("{not json"),
        )
        .await;
    assert_eq!(not_json.status, 400);

    // Schema-only: a root branch with the parent's schema and no rows; counts against the root limit.
    let main = env.default_branch_id().await;
    psql_uri(
        &env.cluster,
        &env.uri(&main).await,
        "CREATE TABLE s (v int); INSERT INTO s VALUES (1)",
    );
    let root = env
        .create_branch(
            json!({"branch": {"name": "schema", "init_source": "schema-only"},
                              "endpoints": [{"type": "read_write"}]}),
        )
        .await;
    assert!(root["branch"].get("parent_id").is_none());
    assert_eq!(root["branch"]["init_source"], "schema-only");
    let root_id = root["branch"]["id"].as_str().unwrap();
    assert_eq!(
        psql_uri(
            &env.cluster,
            &env.uri(root_id).await,
            "SELECT count(*) FROM s"
        ),
        "0"
    );
    let second_root = env
        .post(
            "/branches",
            Some(json!({"branch": {"init_source": "schema-only"}})),
        )
        .await;
    assert_eq!(
        (second_root.status, second_root.body["code"].as_str()),
        (422, Some("ROOT_BRANCHES_LIMIT_EXCEEDED"))
    );

    // Branch limit, adjustable at run time (4 branches exist now).
    env.emu.faults().set_branch_limit(4);
    let full = env.post("/branches", None).await;
    assert_eq!(
        (full.status, full.body["code"].as_str()),
        (422, Some("BRANCHES_LIMIT_EXCEEDED"))
    );
    assert_eq!(
        env.get("").await.body["project"]["owner"]["branches_limit"],
        4
    );
    env.emu.faults().set_branch_limit(5);
    assert_eq!(env.post("/branches", None).await.status, 201);
    env.finish().await;
}

#[tokio::test]
async fn expires_at_rules_and_expiry_removal() {
    let env = Env::start().await;
    let main = env.default_branch_id().await;
    for bad in ["2030-01-01T00:00:00", "2020-01-01T00:00:00Z", "yesterday"] {
        let a = env
            .post("/branches", Some(json!({"branch": {"expires_at": bad}})))
            .await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }
    let too_far = env
        .post(
            "/branches",
            Some(json!({"branch": {"expires_at": in_future(chrono::Duration::days(31))}})),
        )
        .await;
    assert_eq!(too_far.status, 400);
    let on_default = env
        .patch(
            &format!("/branches/{main}"),
            json!({"branch": {"expires_at": in_future(chrono::Duration::hours(1))}}),
        )
        .await;
    assert_eq!(on_default.status, 400, "{}", on_default.body);

    let parent = env
        .create_branch(json!({"branch": {"name": "parent"}}))
        .await;
    let parent_id = parent["branch"]["id"].as_str().unwrap().to_string();
    env.create_branch(json!({"branch": {"name": "kid", "parent_id": parent_id}}))
        .await;
    let with_children = env
        .patch(
            &format!("/branches/{parent_id}"),
            json!({"branch": {"expires_at": in_future(chrono::Duration::hours(1))}}),
        )
        .await;
    assert_eq!(with_children.status, 400, "{}", with_children.body);

    let expiring = env
        .create_branch(json!({"branch": {"name": "expiring", "expires_at": in_future(chrono::Duration::hours(2))}}))
        .await;
    let expiring_id = expiring["branch"]["id"].as_str().unwrap().to_string();
    assert!(expiring["branch"]["expires_at"].is_string());
    assert!(expiring["branch"]["ttl_interval_seconds"]
        .as_i64()
        .is_some_and(|s| s > 7000));
    let child_of_expiring = env
        .post(
            "/branches",
            Some(json!({"branch": {"parent_id": expiring_id}})),
        )
        .await;
    assert_eq!(child_of_expiring.status, 400);
    let set_default = env
        .post(&format!("/branches/{expiring_id}/set_as_default"), None)
        .await;
    assert_eq!(set_default.status, 400);

    // null clears the expiry.
    let cleared = env
        .patch(
            &format!("/branches/{expiring_id}"),
            json!({"branch": {"expires_at": null}}),
        )
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.body);
    assert!(cleared.body["branch"].get("expires_at").is_none());

    // A branch whose expiry passes is removed with its databases.
    let soon = env
        .post("/branches", Some(json!({"branch": {"name": "soon", "expires_at": in_future(chrono::Duration::seconds(5))}})))
        .await;
    assert_eq!(soon.status, 201, "{}", soon.body);
    let soon_id = soon.body["branch"]["id"].as_str().unwrap().to_string();
    let physical = env.emu.physical_database(&soon_id, "neondb").unwrap();
    let start = Instant::now();
    while env.get(&format!("/branches/{soon_id}")).await.status != 404 {
        assert!(start.elapsed() < DEADLINE, "expired branch not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!env.database_exists(&physical));
    assert!(env.emu.deleted_branch_names().contains(&"soon".to_string()));
    env.finish().await;
}

#[tokio::test]
async fn patch_set_default_and_delete_refusals() {
    let env = Env::start().await;
    let main = env.default_branch_id().await;
    let a = env.create_branch(json!({"branch": {"name": "a"}})).await["branch"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = env.create_branch(json!({"branch": {"name": "b"}})).await["branch"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let renamed = env
        .patch(
            &format!("/branches/{a}"),
            json!({"branch": {"name": "a-renamed"}}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.body["branch"]["name"], "a-renamed");
    assert_eq!(renamed.body["operations"], json!([]));
    // updated_at moved: the renamed branch now sorts first by updated_at.
    let newest = env
        .get("/branches?sort_by=updated_at&sort_order=desc&limit=1")
        .await;
    assert_eq!(newest.body["branches"][0]["id"], a.as_str());
    assert_eq!(
        env.patch(&format!("/branches/{a}"), json!({"branch": {"name": "b"}}))
            .await
            .status,
        409
    );
    assert_eq!(
        env.patch(&format!("/branches/{a}"), json!({"branch": {"name": ""}}))
            .await
            .status,
        400
    );
    assert_eq!(
        env.patch(&format!("/branches/{a}"), json!({})).await.status,
        400
    );
    let protect = env
        .patch(
            &format!("/branches/{a}"),
            json!({"branch": {"protected": true}}),
        )
        .await;
    assert_eq!(protect.status, 422);
    assert_eq!(
        env.patch(
            "/branches/br-gone-gone-00000000",
            json!({"branch": {"name": "z"}})
        )
        .await
        .status,
        404
    );

    assert_eq!(env.delete(&format!("/branches/{main}")).await.status, 400);
    env.create_branch(json!({"branch": {"name": "grandchild", "parent_id": b}}))
        .await;
    let parent_delete = env.delete(&format!("/branches/{b}")).await;
    assert_eq!(parent_delete.status, 400, "{}", parent_delete.body);

    let moved = env
        .post(&format!("/branches/{a}/set_as_default"), None)
        .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.body["branch"]["default"], true);
    let defaults: Vec<_> = env
        .emu
        .branches()
        .into_iter()
        .filter(|b| b["default"] == true)
        .collect();
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0]["id"], a.as_str());
    assert_eq!(env.default_branch_id().await, a);
    env.finish().await;
}

#[tokio::test]
async fn connection_uri_endpoints_and_passwords() {
    let env = Env::start_with(|cfg| cfg.store_passwords = false).await;
    let main = env.default_branch_id().await;
    for q in ["", "?database_name=neondb", "?role_name=neondb_owner"] {
        assert_eq!(
            env.get(&format!("/connection_uri{q}")).await.status,
            400,
            "{q}"
        );
    }
    let by_default = env
        .get("/connection_uri?database_name=neondb&role_name=neondb_owner")
        .await;
    assert_eq!(by_default.body["uri"], env.uri(&main).await.as_str());
    let pooled = env
        .get("/connection_uri?database_name=neondb&role_name=neondb_owner&pooled=true")
        .await;
    assert_eq!(pooled.status, 200);
    assert_eq!(
        psql_uri(
            &env.cluster,
            pooled.body["uri"].as_str().unwrap(),
            "SELECT 1"
        ),
        "1"
    );
    for q in [
        "database_name=nope&role_name=neondb_owner",
        "database_name=neondb&role_name=nope",
        "database_name=neondb&role_name=neondb_owner&branch_id=br-gone-gone-00000000",
    ] {
        assert_eq!(
            env.get(&format!("/connection_uri?{q}")).await.status,
            404,
            "{q}"
        );
    }
    let no_endpoint = env
        .create_branch(json!({"branch": {"name": "headless"}}))
        .await;
    let headless = no_endpoint["branch"]["id"].as_str().unwrap();
    let a = env
        .get(&format!(
            "/connection_uri?database_name=neondb&role_name=neondb_owner&branch_id={headless}"
        ))
        .await;
    assert_eq!(a.status, 404, "no read_write endpoint");

    let pw = env
        .get(&format!(
            "/branches/{main}/roles/neondb_owner/reveal_password"
        ))
        .await;
    assert_eq!(pw.status, 412);
    assert_eq!(env.get("").await.body["project"]["store_passwords"], false);

    // Suspend reports idle, yet the database stays reachable (a connection wakes a Neon compute).
    let ep = env.get(&format!("/branches/{main}/endpoints")).await.body["endpoints"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let suspended = env.post(&format!("/endpoints/{ep}/suspend"), None).await;
    assert_eq!(suspended.status, 200, "{}", suspended.body);
    assert_eq!(suspended.body["operations"][0]["action"], "suspend_compute");
    env.wait_idle().await;
    assert_eq!(
        env.get(&format!("/endpoints/{ep}")).await.body["endpoint"]["current_state"],
        "idle"
    );
    assert_eq!(
        psql_uri(&env.cluster, &env.uri(&main).await, "SELECT 2"),
        "2"
    );
    let started = env.post(&format!("/endpoints/{ep}/start"), None).await;
    assert_eq!(started.body["operations"][0]["action"], "start_compute");
    env.wait_idle().await;
    assert_eq!(
        env.get(&format!("/endpoints/{ep}")).await.body["endpoint"]["current_state"],
        "active"
    );
    assert_eq!(
        env.post("/endpoints/ep-gone-gone-00000000/suspend", None)
            .await
            .status,
        404
    );
    env.finish().await;
}
