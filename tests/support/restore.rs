//! Helpers for restore-test tests: branches made behind the tool's back, the checks a run failed.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use supaneon_sync::neon::{CreateBranch, NeonClient, NeonSettings};
use supaneon_sync::secret::Secret;

use super::cli::{Cli, Run};
use super::world::{World, API_KEY, PROJECT_ID};

/// A Neon client on the world's emulator, as a user's other tools would use it.
pub fn neon_client(world: &World) -> NeonClient {
    let mut settings = NeonSettings::new(Secret::new(API_KEY), PROJECT_ID);
    settings.base_url = world.emu.base_url();
    NeonClient::new(settings).expect("neon client")
}

/// Creates a branch named `name` off the default branch (no manifest in it), with an endpoint.
pub async fn create_plain_branch(world: &World, name: &str) {
    neon_client(world)
        .create_branch(&CreateBranch {
            name: name.to_string(),
            parent_id: None,
            expires_at: None,
            annotations: Default::default(),
            with_endpoint: true,
        })
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

/// Creates a branch named `name` off the default branch (no manifest in it), with an endpoint, annotated
/// as a backup of this world's source.
pub async fn create_owned_branch(world: &World, name: &str) {
    neon_client(world)
        .create_branch(&CreateBranch {
            name: name.to_string(),
            parent_id: None,
            expires_at: None,
            annotations: supaneon_sync::ownership::annotations(
                supaneon_sync::ownership::KIND_BACKUP,
                "seeded",
                &world.fingerprint(),
            ),
            with_endpoint: true,
        })
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

/// The password of the Neon role on a branch, from the connection URI the API hands out.
pub async fn branch_password(world: &World, branch_name: &str) -> String {
    let branch = world.branch(branch_name).expect("branch");
    let uri = neon_client(world)
        .connection_uri(branch["id"].as_str().unwrap(), "neondb", "neondb_owner")
        .await
        .expect("connection uri");
    let url = url::Url::parse(uri.expose()).expect("uri");
    let password = url.password().expect("a password").to_string();
    assert!(password.len() >= 8, "{password:?}");
    password
}

/// The restore-test branches that exist now.
pub fn restore_test_branches(world: &World) -> Vec<String> {
    world
        .branch_names()
        .into_iter()
        .filter(|n| n.starts_with("restore-test-"))
        .collect()
}

/// The names of the checks a run marked failed in its job summary table.
pub fn failed_checks(run: &Run) -> BTreeSet<String> {
    run.summary
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").collect();
            (cells.len() == 3 && cells[1].contains("FAIL")).then(|| cells[0].trim().to_string())
        })
        .collect()
}

/// Writes a YAML configuration file with these health checks (name, sql) into the run's directory.
pub fn with_health_checks(cli: Cli, checks: &[(&str, &str)]) -> Cli {
    let mut yaml = String::from("health-checks:\n");
    for (name, sql) in checks {
        yaml.push_str(&format!(
            "  - name: {}\n    sql: {}\n",
            serde_json::to_string(name).unwrap(),
            serde_json::to_string(sql).unwrap()
        ));
    }
    let path: PathBuf = cli.dir().join("supaneon.yml");
    std::fs::write(&path, yaml).expect("write config file");
    let path = path.to_str().unwrap().to_string();
    cli.env("SUPANEON_CONFIG_FILE", &path)
}

/// Blocks until the wall clock enters the next second, so the next run's branch name differs.
pub fn next_second() {
    let first = chrono::Utc::now().timestamp();
    while chrono::Utc::now().timestamp() == first {
        std::thread::yield_now();
    }
}
