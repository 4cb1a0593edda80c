//! Storage by Neon's rule, measured on the backing cluster: a root branch pays its logical size, a child
//! the lesser of what it wrote since its creation and its logical size; the project's
//! `synthetic_storage_size` adds them up. Reported where the spec puts them, and checked against it.

mod support;

use serde_json::{json, Value};
use support::{psql_uri, spec, Env};

const ROWS: i64 = 20_000;
const ROW_BYTES: i64 = 200;

async fn branch(env: &Env, id: &str) -> Value {
    let a = env.get(&format!("/branches/{id}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["branch"].clone()
}

async fn project_storage(env: &Env) -> i64 {
    let a = env.get("").await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["project"]["synthetic_storage_size"]
        .as_i64()
        .expect("synthetic_storage_size")
}

fn sizes(b: &Value) -> (i64, i64) {
    (
        b["logical_size"].as_i64().unwrap(),
        b["written_data_bytes"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn children_pay_for_what_they_write_and_roots_for_what_they_hold() {
    let env = Env::start().await;
    let main = env.default_branch_id().await;
    psql_uri(
        &env.cluster,
        &env.uri(&main).await,
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY, v text); \
             INSERT INTO t SELECT g, repeat('x', {ROW_BYTES}) FROM generate_series(1, {ROWS}) g"
        ),
    );
    let (main_logical, main_written) = sizes(&branch(&env, &main).await);
    assert!(main_logical > ROWS * ROW_BYTES, "{main_logical}");
    assert!(
        main_written > ROWS * ROW_BYTES,
        "the root wrote its table: {main_written}"
    );
    assert_eq!(project_storage(&env).await, main_logical);
    // Read off the data directory, the size is exactly what the database's own catalog says.
    let catalog: i64 = psql_uri(
        &env.cluster,
        &env.uri(&main).await,
        "SELECT sum(pg_relation_size(c.oid, 'main') + pg_relation_size(c.oid, 'fsm') \
                + pg_relation_size(c.oid, 'vm') + pg_relation_size(c.oid, 'init')) \
         FROM pg_class c WHERE pg_relation_filenode(c.oid) IS NOT NULL AND NOT c.relisshared",
    )
    .trim()
    .parse()
    .unwrap();
    assert_eq!(sizes(&branch(&env, &main).await).0, catalog);

    // A new child shares its parent's pages: it has written (almost) nothing and costs (almost) nothing.
    let created = env
        .create_branch(
            json!({"branch": {"name": "snapshot"}, "endpoints": [{"type": "read_write"}]}),
        )
        .await;
    let child = created["branch"]["id"].as_str().unwrap().to_string();
    let (child_logical, child_written) = sizes(&branch(&env, &child).await);
    assert!(
        (child_logical - main_logical).abs() < main_logical / 20,
        "the copy's size: {child_logical} vs {main_logical}"
    );
    assert!(
        child_written < main_logical / 50,
        "a fresh child wrote {child_written}"
    );
    let before = project_storage(&env).await;
    assert!(
        before < main_logical + main_logical / 50,
        "{before} vs {main_logical}"
    );

    // 1 % of the rows changed in the child: new row versions, a small bill.
    let child_uri = env.uri(&child).await;
    psql_uri(
        &env.cluster,
        &child_uri,
        &format!(
            "UPDATE t SET v = repeat('y', {ROW_BYTES}) WHERE id <= {}",
            ROWS / 100
        ),
    );
    let (_, written) = sizes(&branch(&env, &child).await);
    let changed = (ROWS / 100) * ROW_BYTES;
    assert!(
        written >= child_written + changed && written < child_logical / 5,
        "1 % changed: {written} written (changed rows: {changed} bytes)"
    );

    // A full rewrite (a restore into the child): every file is new, and the child pays its whole size,
    // never more.
    psql_uri(
        &env.cluster,
        &child_uri,
        &format!(
            "TRUNCATE t; INSERT INTO t SELECT g, repeat('z', {ROW_BYTES}) FROM generate_series(1, {ROWS}) g"
        ),
    );
    let (logical, written) = sizes(&branch(&env, &child).await);
    let table: i64 = psql_uri(
        &env.cluster,
        &child_uri,
        "SELECT pg_total_relation_size('t')",
    )
    .trim()
    .parse()
    .unwrap();
    // The logical size also counts the system catalogs, which the rewrite did not touch.
    assert!(
        written >= table && written <= logical,
        "rewritten: {written} written, table {table}, logical {logical}"
    );
    assert_eq!(
        project_storage(&env).await,
        main_logical + written.min(logical)
    );
    // Every answer, the size fields included, matches the spec.
    for exchange in env.emu.requests() {
        assert_eq!(spec().check_exchange(&exchange), Vec::<String>::new());
    }
    env.finish().await;
}

/// A database dropped and created again on a child (how a mirror is rebuilt in place): the new one holds
/// none of the parent's pages, so the child pays what it writes into it, never more than its size; its
/// own child keeps the old content. The answers follow the spec: `{database, operations}`, 201 on create,
/// 409 for a name taken, 404 for an unknown owner, 204 for a database already gone.
#[tokio::test]
async fn a_database_created_again_is_written_in_full_and_its_children_keep_the_old_one() {
    let env = Env::start().await;
    let created = env
        .create_branch(json!({"branch": {"name": "mirror"}, "endpoints": [{"type": "read_write"}]}))
        .await;
    let mirror = created["branch"]["id"].as_str().unwrap().to_string();
    psql_uri(
        &env.cluster,
        &env.uri(&mirror).await,
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY, v text); \
             INSERT INTO t SELECT g, repeat('x', {ROW_BYTES}) FROM generate_series(1, {ROWS}) g"
        ),
    );
    env.wait_idle().await;
    let snapshot = env
        .create_branch(json!({"branch": {"name": "snapshot", "parent_id": mirror}, "endpoints": [{"type": "read_write"}]}))
        .await;
    let snapshot = snapshot["branch"]["id"].as_str().unwrap().to_string();
    env.wait_idle().await;

    let path = format!("/branches/{mirror}/databases");
    let dropped = env.delete(&format!("{path}/neondb")).await;
    assert_eq!(dropped.status, 200, "{}", dropped.body);
    assert_eq!(dropped.body["database"]["name"], "neondb");
    let actions: Vec<&str> = dropped.body["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["apply_config"], "{}", dropped.body);
    env.wait_idle().await;
    assert_eq!(env.delete(&format!("{path}/neondb")).await.status, 204);
    assert_eq!(env.get(&format!("{path}/neondb")).await.status, 404);
    assert_eq!(
        env.get(&format!(
            "/connection_uri?branch_id={mirror}&database_name=neondb&role_name=neondb_owner"
        ))
        .await
        .status,
        404,
        "no database, no connection URI"
    );

    let body = json!({"database": {"name": "neondb", "owner_name": "neondb_owner"}});
    let made = env.post(&path, Some(body.clone())).await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.body["database"]["owner_name"], "neondb_owner");
    env.wait_idle().await;
    assert_eq!(env.post(&path, Some(body)).await.status, 409);
    let stranger = json!({"database": {"name": "other", "owner_name": "nobody_here"}});
    assert_eq!(env.post(&path, Some(stranger)).await.status, 404);
    assert_eq!(
        env.post(&path, Some(json!({"database": {"name": "x"}})))
            .await
            .status,
        400
    );

    // Empty again, and a fresh database's files are all written since the branch's creation.
    let uri = env.uri(&mirror).await;
    assert_eq!(
        psql_uri(
            &env.cluster,
            &uri,
            "SELECT count(*) FROM pg_class WHERE relname = 't'"
        )
        .trim(),
        "0"
    );
    let (logical, written) = sizes(&branch(&env, &mirror).await);
    assert!(written > 0 && written <= logical, "{written} of {logical}");
    psql_uri(
        &env.cluster,
        &uri,
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY, v text); \
             INSERT INTO t SELECT g, repeat('z', {ROW_BYTES}) FROM generate_series(1, {ROWS}) g"
        ),
    );
    let (logical, written) = sizes(&branch(&env, &mirror).await);
    assert_eq!(
        written, logical,
        "a database made after the branch is all its own"
    );
    // The snapshot still holds the old rows and wrote nothing.
    let old = psql_uri(
        &env.cluster,
        &env.uri(&snapshot).await,
        "SELECT count(*) FROM t WHERE v LIKE 'x%'",
    );
    assert_eq!(old.trim(), ROWS.to_string());
    let (_, snapshot_written) = sizes(&branch(&env, &snapshot).await);
    assert!(snapshot_written < logical / 50, "{snapshot_written}");

    // Names that clean up alike on the backing cluster are still two databases, and a child copies both.
    for name in ["a b", "a_b"] {
        let body = json!({"database": {"name": name, "owner_name": "neondb_owner"}});
        let made = env.post(&path, Some(body)).await;
        assert_eq!(made.status, 201, "{name}: {}", made.body);
        env.wait_idle().await;
    }
    let child = env
        .create_branch(json!({"branch": {"name": "copy", "parent_id": mirror}}))
        .await;
    let child = child["branch"]["id"].as_str().unwrap().to_string();
    env.wait_idle().await;
    let listed = env.get(&format!("/branches/{child}/databases")).await;
    let mut names: Vec<&str> = listed.body["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a b", "a_b", "neondb"]);
    env.finish().await;
}
