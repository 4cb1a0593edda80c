//! The contract validator itself, the binary, and restarting on one cluster.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use neon_emulator::{Emulator, RecordedBody, RecordedExchange};
use serde_json::json;
use support::{spec, API_KEY, PROJECT};

fn exchange(method: &str, path: &str, status: u16, body: serde_json::Value) -> RecordedExchange {
    RecordedExchange {
        method: method.into(),
        path: path.into(),
        query: None,
        status,
        body: RecordedBody::Json(body),
        fault: None,
    }
}

#[test]
fn validator_rejects_what_the_spec_forbids() {
    let branch = json!({
        "id": "br-a-b-12345678", "project_id": "p-1", "name": "n", "current_state": "ready",
        "state_changed_at": "2026-01-01T00:00:00Z", "creation_source": "console",
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "default": true,
        "protected": false, "cpu_used_sec": 0, "active_time_seconds": 0, "compute_time_seconds": 0,
        "written_data_bytes": 0, "data_transfer_bytes": 0,
    });
    let path = "/api/v2/projects/p-1/branches/br-a-b-12345678";
    let annotation = json!({"object": {"type": "console/branch", "id": "x"}, "value": {}});
    let good = exchange(
        "GET",
        path,
        200,
        json!({"branch": branch, "annotation": annotation}),
    );
    assert_eq!(spec().check_exchange(&good), Vec::<String>::new());

    let mut missing = branch.clone();
    missing.as_object_mut().unwrap().remove("id");
    let problems = spec().check_exchange(&exchange(
        "GET",
        path,
        200,
        json!({"branch": missing, "annotation": annotation}),
    ));
    assert!(
        problems.iter().any(|p| p.contains("\"id\" missing")),
        "{problems:?}"
    );

    let mut bad_time = branch.clone();
    bad_time["created_at"] = json!("yesterday");
    bad_time["id"] = json!("BR_UPPER");
    let problems = spec().check_exchange(&exchange(
        "GET",
        path,
        200,
        json!({"branch": bad_time, "annotation": annotation}),
    ));
    assert_eq!(problems.len(), 2, "{problems:?}");

    let op = json!({"operation": {"id": "not-a-uuid", "project_id": "p-1", "action": "explode", "status": "finished",
        "failures_count": 0, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "total_duration_ms": 1}});
    let problems = spec().check_exchange(&exchange(
        "GET",
        "/api/v2/projects/p-1/operations/x",
        200,
        op,
    ));
    assert_eq!(problems.len(), 2, "uuid and enum: {problems:?}");

    // Errors are GeneralError; the 204 of DELETE has no body.
    let problems = spec().check_exchange(&exchange("DELETE", path, 409, json!({"message": "m"})));
    assert!(
        problems.iter().any(|p| p.contains("\"code\" missing")),
        "{problems:?}"
    );
    let problems = spec().check_exchange(&exchange("DELETE", path, 204, json!({})));
    assert_eq!(problems.len(), 1, "{problems:?}");
    // /branches/count is matched literally, not as a branch id.
    let count = exchange(
        "GET",
        "/api/v2/projects/p-1/branches/count",
        200,
        json!({"count": "three"}),
    );
    assert_eq!(spec().check_exchange(&count).len(), 1);
}

#[tokio::test]
async fn restarting_on_the_same_cluster() {
    let cluster = support::cluster();
    let first = Emulator::start(
        support::config_for(&cluster),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let main_first = first.branches()[0]["id"].as_str().unwrap().to_string();
    let db_first = first.physical_database(&main_first, "neondb").unwrap();
    first.shutdown().await;
    let second = Emulator::start(
        support::config_for(&cluster),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let main_second = second.branches()[0]["id"].as_str().unwrap().to_string();
    assert_ne!(
        db_first,
        second.physical_database(&main_second, "neondb").unwrap()
    );
    let http = reqwest::Client::new();
    let uri: serde_json::Value = http
        .get(format!(
            "{}/projects/{PROJECT}/connection_uri?database_name=neondb&role_name=neondb_owner",
            second.base_url()
        ))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        support::psql_uri(
            &cluster,
            uri["uri"].as_str().unwrap(),
            "SELECT current_user"
        ),
        "neondb_owner"
    );
    second.shutdown().await;
}

#[tokio::test]
async fn binary_prints_its_base_url_and_serves() {
    let cluster = support::cluster();
    let mut child = Command::new(env!("CARGO_BIN_EXE_neon-emulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--postgres",
            &cluster.admin_conninfo("postgres"),
        ])
        .args([
            "--public-port",
            &cluster.port().to_string(),
            "--pg-version",
            "15",
            "--project-id",
            PROJECT,
        ])
        .args(["--operation-step-ms", "50"])
        .env("NEON_EMULATOR_API_KEY", API_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn neon-emulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("NEON_API_BASE_URL=")
        .unwrap_or_else(|| panic!("got {line:?}"))
        .to_string();
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/api/v2"),
        "{base}"
    );
    let project: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/projects/{PROJECT}"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(project["project"]["pg_version"], 15);
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM ends it cleanly: {status}");
}
