//! The emulator's core: bootstrap, auth, branches with real data, deletion, operations and lists.

mod support;

use serde_json::json;
use support::{psql_uri, Env, API_KEY, PROJECT};

#[tokio::test]
async fn bootstrap_auth_and_project() {
    let env = Env::start().await;

    let a = env.get("").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["project"]["id"], PROJECT);
    assert_eq!(a.body["project"]["pg_version"], env.cluster.major());
    assert_eq!(a.body["project"]["owner"]["branches_limit"], 10);
    assert!(a.headers.contains_key("x-neon-ret-request-id"));

    // The client's request id is echoed.
    let a = env
        .send(
            env.http
                .get(env.url(""))
                .bearer_auth(API_KEY)
                .header("X-Request-ID", "req-123"),
        )
        .await;
    assert_eq!(a.headers["x-neon-ret-request-id"], "req-123");

    for req in [
        env.http.get(env.url("")),
        env.http.get(env.url("")).bearer_auth("wrong-key"),
    ] {
        let a = env.send(req).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.body["code"], "");
        assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let other = format!("{}/projects/other-project-1", env.emu.base_url());
    assert_eq!(
        env.send(env.http.get(other).bearer_auth(API_KEY))
            .await
            .status,
        404
    );

    let branches = env.get("/branches").await.body["branches"].clone();
    let main = &branches[0];
    assert_eq!(branches.as_array().unwrap().len(), 1);
    assert_eq!(
        (main["name"].as_str(), main["default"].as_bool()),
        (Some("main"), Some(true))
    );
    assert!(main.get("parent_id").is_none());
    let id = main["id"].as_str().unwrap();
    assert!(id.starts_with("br-"));

    let roles = env.get(&format!("/branches/{id}/roles")).await;
    assert_eq!(roles.body["roles"][0]["name"], "neondb_owner");
    assert!(roles.body["roles"][0].get("password").is_none());
    let dbs = env.get(&format!("/branches/{id}/databases")).await;
    assert_eq!(dbs.body["databases"][0]["name"], "neondb");
    assert_eq!(dbs.body["databases"][0]["owner_name"], "neondb_owner");
    let db = env.get(&format!("/branches/{id}/databases/neondb")).await;
    assert_eq!(
        (db.status, db.body["database"]["name"].as_str()),
        (200, Some("neondb"))
    );
    let role = env.get(&format!("/branches/{id}/roles/neondb_owner")).await;
    assert_eq!(
        (role.status, role.body["role"]["name"].as_str()),
        (200, Some("neondb_owner"))
    );
    assert_eq!(
        env.get(&format!("/branches/{id}/databases/other"))
            .await
            .status,
        404
    );
    assert_eq!(
        env.get(&format!("/branches/{id}/roles/other")).await.status,
        404
    );
    let eps = env.get(&format!("/branches/{id}/endpoints")).await;
    assert_eq!(eps.body["endpoints"][0]["type"], "read_write");
    let ep_id = eps.body["endpoints"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        env.get(&format!("/endpoints/{ep_id}")).await.body["endpoint"]["current_state"],
        "active"
    );

    let pw = env
        .get(&format!(
            "/branches/{id}/roles/neondb_owner/reveal_password"
        ))
        .await;
    assert_eq!(pw.status, 200);
    let password = pw.body["password"].as_str().unwrap().to_string();
    assert!(env.uri(id).await.contains(&password));
    assert_eq!(
        env.get(&format!("/branches/{id}/roles/nobody/reveal_password"))
            .await
            .status,
        404
    );
    assert_eq!(
        env.get("/branches/br-missing-branch-00000000").await.status,
        404
    );
    assert_eq!(
        env.get("/branches/br-missing-branch-00000000/roles")
            .await
            .status,
        404
    );

    // The owner is Neon-shaped: not a superuser, member of neon_superuser with its privileges.
    let attrs = env.cluster.psql(
        "postgres",
        "SELECT r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolcanlogin, \
                pg_has_role('neondb_owner', 'neon_superuser', 'member'), \
                pg_has_role('neon_superuser', 'pg_read_all_data', 'member'), \
                pg_has_role('neon_superuser', 'pg_write_all_data', 'member'), s.rolbypassrls, s.rolcanlogin \
         FROM pg_roles r, pg_roles s WHERE r.rolname = 'neondb_owner' AND s.rolname = 'neon_superuser'",
    );
    assert_eq!(attrs.trim(), "f|t|t|t|t|t|t|t|f");
    env.finish().await;
}

#[tokio::test]
async fn child_branch_holds_parent_data_and_deletion_drops_it() {
    let env = Env::start().await;
    let main = env.default_branch_id().await;
    let main_uri = env.uri(&main).await;
    psql_uri(
        &env.cluster,
        &main_uri,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('from-parent')",
    );

    let created = env
        .create_branch(
            json!({"branch": {"name": "child"}, "endpoints": [{"type": "read_write"}],
                              "annotation_value": {"supaneon-sync": "backup"}}),
        )
        .await;
    let child = created["branch"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["branch"]["parent_id"], main.as_str());
    assert_eq!(created["connection_uris"].as_array().map(Vec::len), Some(1));
    let child_uri = env.uri(&child).await;
    assert_ne!(child_uri, main_uri);
    assert_eq!(
        created["connection_uris"][0]["connection_uri"],
        child_uri.as_str()
    );
    assert!(child_uri.ends_with("?sslmode=require&channel_binding=require"));

    // The child's copy holds the parent's row, read over TLS, and is independent of the parent.
    let row = psql_uri(
        &env.cluster,
        &child_uri,
        "SELECT v || '|' || ssl FROM t, pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    assert_eq!(row, "from-parent|true");
    psql_uri(
        &env.cluster,
        &child_uri,
        "INSERT INTO t VALUES ('child-only')",
    );
    assert_eq!(
        psql_uri(&env.cluster, &main_uri, "SELECT count(*) FROM t"),
        "1"
    );

    let got = env.get(&format!("/branches/{child}")).await;
    assert_eq!(got.body["branch"]["current_state"], "ready");
    assert!(got.body["branch"].get("pending_state").is_none());
    assert_eq!(got.body["annotation"]["value"]["supaneon-sync"], "backup");

    let physical = env
        .emu
        .physical_database(&child, "neondb")
        .expect("physical database");
    assert!(env.database_exists(&physical));
    let deleted = env.delete(&format!("/branches/{child}")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let actions: Vec<_> = deleted.body["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["action"].clone())
        .collect();
    assert_eq!(
        actions,
        vec![json!("suspend_compute"), json!("delete_timeline")]
    );
    assert_eq!(deleted.body["branch"]["pending_state"], "storage_deleted");
    env.wait_idle().await;
    assert!(
        !env.database_exists(&physical),
        "the child's database must be dropped"
    );
    assert_eq!(env.get(&format!("/branches/{child}")).await.status, 404);
    let again = env.delete(&format!("/branches/{child}")).await;
    assert_eq!(
        (again.status, again.body.clone()),
        (204, serde_json::Value::Null)
    );
    assert_eq!(
        env.delete("/branches/br-never-existed-00000000")
            .await
            .status,
        204
    );
    assert_eq!(env.emu.deleted_branch_names(), vec!["child".to_string()]);
    env.finish().await;
}

#[tokio::test]
async fn operations_progress_and_lock_mutations() {
    let env = Env::start().await;
    let a = env
        .post(
            "/branches",
            Some(json!({"endpoints": [{"type": "read_write"}]})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let ops = a.body["operations"].as_array().unwrap().clone();
    assert_eq!(
        (ops[0]["action"].as_str(), ops[0]["status"].as_str()),
        (Some("create_branch"), Some("running"))
    );
    assert_eq!(
        (ops[1]["action"].as_str(), ops[1]["status"].as_str()),
        (Some("start_compute"), Some("scheduling"))
    );
    let branch = &a.body["branch"];
    assert_eq!(branch["name"], branch["id"], "the default name is the id");
    assert_eq!(
        (
            branch["current_state"].as_str(),
            branch["pending_state"].as_str()
        ),
        (Some("init"), Some("ready"))
    );
    assert_eq!(a.body["endpoints"][0]["current_state"], "init");

    // Mutations are locked while operations run; reads are not.
    let locked = env.post("/branches", None).await;
    assert_eq!(locked.status, 423);
    assert_eq!(
        locked.body["message"],
        "project already has running conflicting operations, scheduling of new ones is prohibited"
    );
    assert_eq!(env.get("/branches").await.status, 200);
    let new_id = a.body["branch"]["id"].as_str().unwrap().to_string();
    let patch = env
        .patch(
            &format!("/branches/{new_id}"),
            json!({"branch": {"name": "renamed"}}),
        )
        .await;
    assert_eq!(patch.status, 423);
    assert_eq!(env.delete(&format!("/branches/{new_id}")).await.status, 423);

    // The watch starts after the requests above, which a loaded machine may take longer than the
    // operation's two steps of 50 ms over: what it sees is some of the phases, in order, ending
    // finished. That the operation was scheduled and then ran, one step each, the finished
    // operation says itself.
    let op_id = ops[1]["id"].as_str().unwrap();
    let seen = env.watch_operation(op_id, |s| s == "finished").await;
    let phases = ["scheduling", "running", "finished"];
    let places: Vec<usize> = seen
        .iter()
        .map(|s| phases.iter().position(|p| p == s).expect("a known phase"))
        .collect();
    assert!(
        places.windows(2).all(|w| w[0] < w[1])
            && seen.last().map(String::as_str) == Some("finished"),
        "{seen:?}"
    );
    let finished = env.get(&format!("/operations/{op_id}")).await.body;
    assert_eq!(
        finished["operation"]["total_duration_ms"], 100,
        "{finished}"
    );
    env.wait_idle().await;
    let id = branch["id"].as_str().unwrap();
    assert_eq!(
        env.get(&format!("/branches/{id}")).await.body["branch"]["current_state"],
        "ready"
    );
    let ep = a.body["endpoints"][0]["id"].as_str().unwrap();
    assert_eq!(
        env.get(&format!("/endpoints/{ep}")).await.body["endpoint"]["current_state"],
        "active"
    );

    // No body: child of the default branch, no endpoint, so no connection URI.
    let plain = env.post("/branches", None).await;
    assert_eq!(plain.status, 201, "{}", plain.body);
    assert_eq!(plain.body["endpoints"], json!([]));
    assert!(plain.body.get("connection_uris").is_none());
    env.wait_idle().await;

    // Operations list: newest first, paged by a timestamp cursor.
    let mut ids = Vec::new();
    let mut path = "/operations?limit=2".to_string();
    loop {
        let page = env.get(&path).await;
        assert_eq!(page.status, 200);
        let got = page.body["operations"].as_array().unwrap();
        if got.is_empty() {
            break;
        }
        ids.extend(got.iter().map(|o| o["id"].as_str().unwrap().to_string()));
        path = format!(
            "/operations?limit=2&cursor={}",
            page.body["pagination"]["cursor"].as_str().unwrap()
        );
    }
    assert_eq!(ids.len(), 3);
    assert_eq!(
        ids[2],
        ops[0]["id"].as_str().unwrap(),
        "the oldest comes last"
    );
    assert_eq!(env.get("/operations?limit=0").await.status, 400);
    assert_eq!(
        env.get("/operations/6b0e3e2c-0000-4000-8000-000000000000")
            .await
            .status,
        404
    );
    env.finish().await;
}

#[tokio::test]
async fn list_search_sort_and_pagination() {
    let env = Env::start().await;
    for name in ["backup-3", "backup-1", "restore-test-1", "backup-2"] {
        let annotation = if name == "backup-1" {
            json!({"kind": "backup"})
        } else {
            json!({})
        };
        env.create_branch(json!({"branch": {"name": name}, "annotation_value": annotation}))
            .await;
    }
    let mut names = Vec::new();
    let mut path = "/branches?sort_by=name&sort_order=asc&limit=2&search=backup-".to_string();
    let mut pages = 0;
    loop {
        let page = env.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.body["pagination"]["sort_order"], "ASC");
        assert_eq!(page.body["pagination"]["sort_by"], "name");
        assert!(page.body["annotations"].is_object());
        let got = page.body["branches"].as_array().unwrap();
        if got.is_empty() {
            break;
        }
        pages += 1;
        names.extend(got.iter().map(|b| b["name"].as_str().unwrap().to_string()));
        path = format!(
            "/branches?limit=2&search=backup-&cursor={}",
            page.body["pagination"]["next"].as_str().unwrap()
        );
    }
    assert_eq!(names, ["backup-1", "backup-2", "backup-3"]);
    assert_eq!(pages, 2);

    let desc = env.get("/branches?sort_by=created_at").await;
    let order: Vec<_> = desc.body["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].clone())
        .collect();
    assert_eq!(
        order,
        vec![
            json!("backup-2"),
            json!("restore-test-1"),
            json!("backup-1"),
            json!("backup-3"),
            json!("main")
        ]
    );
    assert_eq!(desc.body["pagination"]["sort_order"], "DESC");

    let all = env.get("/branches").await;
    let annotated = all.body["branches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "backup-1")
        .unwrap();
    let id = annotated["id"].as_str().unwrap();
    assert_eq!(all.body["annotations"][id]["value"]["kind"], "backup");
    // Search also matches ids.
    let by_id = env.get(&format!("/branches?search={}", &id[3..])).await;
    assert_eq!(by_id.body["branches"].as_array().unwrap().len(), 1);

    assert_eq!(env.get("/branches/count").await.body["count"], 5);
    assert_eq!(
        env.get("/branches/count?search=backup").await.body["count"],
        3
    );
    for bad in [
        "limit=0",
        "limit=10001",
        "cursor=not-base64!",
        "sort_by=size",
        "sort_order=up",
    ] {
        let a = env.get(&format!("/branches?{bad}")).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }
    env.finish().await;
}
