//! Seeding a world's Neon project with branches of chosen names and times, through the real client, for
//! the prune and list tests (no backup needs to run to make a branch that looks like one).
#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use supaneon_sync::neon::{CreateBranch, NeonClient, NeonSettings};
use supaneon_sync::ownership;
use supaneon_sync::secret::Secret;

use super::world::{World, API_KEY, PROJECT_ID};

/// The client the binary would build for this world.
pub fn neon_client(world: &World) -> NeonClient {
    NeonClient::new(NeonSettings {
        base_url: world.emu.base_url(),
        api_key: Secret::new(API_KEY),
        project_id: PROJECT_ID.into(),
        call_deadline: Duration::from_secs(30),
        operation_deadline: Duration::from_secs(30),
    })
    .expect("neon client")
}

/// Creates a branch without compute (cheap), off `parent_id` or the default branch; returns its id.
pub async fn seed_branch(
    neon: &NeonClient,
    name: &str,
    parent_id: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> String {
    neon.create_branch(&CreateBranch {
        name: name.to_string(),
        parent_id: parent_id.map(str::to_string),
        expires_at,
        annotations: Default::default(),
        with_endpoint: false,
    })
    .await
    .unwrap_or_else(|e| panic!("seed branch {name}: {e}"))
    .branch
    .id
}

/// Like [`seed_branch`], but annotated as supaneon-sync annotates its own branches for `fingerprint`'s
/// source (the kind follows the name), as if an earlier run had made it.
pub async fn seed_ours(
    neon: &NeonClient,
    fingerprint: &str,
    name: &str,
    parent_id: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> String {
    let kind = if name.starts_with("restore-test-") {
        ownership::KIND_RESTORE_TEST
    } else {
        ownership::KIND_BACKUP
    };
    neon.create_branch(&CreateBranch {
        name: name.to_string(),
        parent_id: parent_id.map(str::to_string),
        expires_at,
        annotations: ownership::annotations(kind, &format!("seed-{name}"), fingerprint),
        with_endpoint: false,
    })
    .await
    .unwrap_or_else(|e| panic!("seed branch {name}: {e}"))
    .branch
    .id
}

/// The emulator's branch id for a name.
pub fn branch_id(world: &World, name: &str) -> String {
    world
        .branch(name)
        .unwrap_or_else(|| panic!("no branch {name}"))["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// The names of a run's planned deletions, in the order it printed them ("  delete <name>: <reason>").
pub fn planned_deletions(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  delete "))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.to_string()))
        .collect()
}

/// A comma-separated output as a list (empty for an empty value).
pub fn split_names(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Spins until the wall clock enters the next second: branch names have one-second resolution.
pub fn next_second() {
    let first = Utc::now().timestamp();
    while Utc::now().timestamp() == first {
        std::thread::yield_now();
    }
}
