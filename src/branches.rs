//! The branch names supaneon-sync makes, and how any branch name is classified.
//!
//! Only names that match a pattern exactly are ours; their timestamps are parsed, never compared as text
//! prefixes. Everything else is foreign and is never written to or deleted.

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDateTime, Utc};
use regex::Regex;

use crate::neon::{BranchInfo, Deleted, NeonClient};

const STAMP_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// What a branch is to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchKind {
    /// `backup-YYYYMMDDTHHMMSSZ`: restored, verified and renamed.
    Backup { at: DateTime<Utc> },
    /// `backup-YYYYMMDDTHHMMSSZ-incomplete`: in progress, or left by a run that failed.
    IncompleteBackup { at: DateTime<Utc> },
    /// `restore-test-YYYYMMDDTHHMMSSZ`: a restore test's child branch.
    RestoreTest { at: DateTime<Utc> },
    /// Any other name: not ours.
    Foreign,
}

fn pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(backup|restore-test)-(\d{8}T\d{6}Z)(-incomplete)?$").expect("static regex")
    })
}

/// Classifies a branch name. A name with an impossible timestamp (month 13) is foreign.
pub fn classify(name: &str) -> BranchKind {
    let Some(caps) = pattern().captures(name) else {
        return BranchKind::Foreign;
    };
    let Ok(at) = NaiveDateTime::parse_from_str(&caps[2], STAMP_FORMAT) else {
        return BranchKind::Foreign;
    };
    let at = at.and_utc();
    match (&caps[1], caps.get(3).is_some()) {
        ("backup", false) => BranchKind::Backup { at },
        ("backup", true) => BranchKind::IncompleteBackup { at },
        ("restore-test", false) => BranchKind::RestoreTest { at },
        _ => BranchKind::Foreign,
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format(STAMP_FORMAT).to_string()
}

/// `backup-<ts>`, the name of a complete backup taken at `at`.
pub fn backup_name(at: DateTime<Utc>) -> String {
    format!("backup-{}", stamp(at))
}

/// `backup-<ts>-incomplete`, the name the branch carries until it is verified.
pub fn incomplete_backup_name(at: DateTime<Utc>) -> String {
    format!("{}-incomplete", backup_name(at))
}

/// `restore-test-<ts>`.
pub fn restore_test_name(at: DateTime<Utc>) -> String {
    format!("restore-test-{}", stamp(at))
}

/// The newest complete backup, by the timestamp in its name.
pub fn newest_backup(branches: &[BranchInfo]) -> Option<&BranchInfo> {
    branches
        .iter()
        .filter_map(|b| match classify(&b.branch.name) {
            BranchKind::Backup { at } => Some((at, b)),
            _ => None,
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, b)| b)
}

/// A temporary branch this run is making, from the moment its creation is requested until the run decides
/// its fate; shared with the cleanup path that runs on failure and cancellation.
#[derive(Debug, Clone)]
pub struct PendingBranch {
    pub name: String,
    /// Unknown when the create call itself failed (its operations may have failed after the branch existed).
    pub id: Option<String>,
}

impl PendingBranch {
    /// Deletes the branch if it exists; true when it is gone. `otherwise` says what removes it if this fails
    /// (prune, its expiry), for the warning.
    pub async fn delete(&self, neon: &NeonClient, otherwise: &str) -> bool {
        let name = self.name.as_str();
        let id = match &self.id {
            Some(id) => id.clone(),
            None => match neon.find_branch_by_name(name).await {
                Ok(Some(found)) => found.branch.id,
                Ok(None) => return true,
                Err(e) => {
                    tracing::warn!(branch = name, error = %e, "could not check whether the branch exists; {otherwise}");
                    return false;
                }
            },
        };
        match neon.delete_branch(&id).await {
            Ok(Deleted::Removed) => {
                tracing::info!(branch = name, "deleted the branch");
                true
            }
            Ok(Deleted::AlreadyGone) => true,
            Err(e) => {
                tracing::warn!(branch = name, error = %e, "could not delete the branch; {otherwise}");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_round_trip_and_only_exact_names_are_ours() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(backup_name(at), "backup-20260102T030405Z");
        assert_eq!(classify(&backup_name(at)), BranchKind::Backup { at });
        assert_eq!(
            classify(&incomplete_backup_name(at)),
            BranchKind::IncompleteBackup { at }
        );
        assert_eq!(
            classify(&restore_test_name(at)),
            BranchKind::RestoreTest { at }
        );
        for foreign in [
            "main",
            "backup-20260102T030405Z-old",
            "backup-20260102T030405",
            "xbackup-20260102T030405Z",
            "backup-20261302T030405Z",
            "restore-test-20260102T030405Z-incomplete",
            "backup-20260102T030405Z ",
        ] {
            assert_eq!(classify(foreign), BranchKind::Foreign, "{foreign}");
        }
    }
}
