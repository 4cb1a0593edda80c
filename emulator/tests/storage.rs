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
