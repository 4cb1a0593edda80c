//! The branch names supaneon-sync makes, and how any branch name is classified.
//!
//! Only names that match a pattern exactly can be ours; their timestamps are parsed, never compared as text
//! prefixes. A name alone never makes a branch ours: [`crate::ownership`] also checks its annotations.

use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, NaiveDateTime, Utc};
use regex::Regex;

use crate::neon::{CreateBranch, CreatedBranch, Deleted, NeonClient, NeonError};
use crate::ownership;

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
    /// `supaneon-mirror`: the branch the snapshot strategy syncs; backups are its children.
    Mirror,
    /// `supaneon-mirror-retired-YYYYMMDDTHHMMSSZ`: a mirror that a full rebuild replaced, kept while
    /// backups are its children (prune deletes it after them). Left by versions before 2026-12-01; a
    /// rebuild now empties the mirror in place.
    RetiredMirror { at: DateTime<Utc> },
    /// Any other name: not ours.
    Foreign,
}

fn pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(backup|restore-test)-(\d{8}T\d{6}Z)(-incomplete)?$").expect("static regex")
    })
}

/// The name of the mirror branch (the snapshot strategy's only written branch).
pub const MIRROR_NAME: &str = "supaneon-mirror";
const RETIRED_MIRROR_PREFIX: &str = "supaneon-mirror-retired-";

/// Classifies a branch name. A name with an impossible timestamp (month 13) is foreign.
pub fn classify(name: &str) -> BranchKind {
    if name == MIRROR_NAME {
        return BranchKind::Mirror;
    }
    if let Some(stamp) = name.strip_prefix(RETIRED_MIRROR_PREFIX) {
        return match NaiveDateTime::parse_from_str(stamp, STAMP_FORMAT) {
            Ok(at) if stamp.len() == 16 => BranchKind::RetiredMirror { at: at.and_utc() },
            _ => BranchKind::Foreign,
        };
    }
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

/// A temporary branch this run is making, from the moment its creation is requested until the run decides
/// its fate; shared with the cleanup path that runs on failure and cancellation.
#[derive(Debug, Clone)]
pub struct PendingBranch {
    pub name: String,
    /// The run's id, carried in the branch's annotations: the only proof that a branch is this run's.
    pub run_id: String,
    /// Unknown when the create call itself failed (its operations may have failed after the branch existed).
    pub id: Option<String>,
}

impl PendingBranch {
    /// Deletes what `slot` still holds after a failed run (see [`PendingBranch::delete`]); an empty slot
    /// means the run finished with its branch or never made one.
    pub async fn delete_left(
        slot: &Mutex<Option<PendingBranch>>,
        neon: &NeonClient,
        otherwise: &str,
    ) {
        let pending = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(pending) = pending {
            pending.delete(neon, otherwise).await;
        }
    }

    /// Deletes the branch if it exists and this run made it; true when it is gone (or was never ours).
    /// `otherwise` says what removes it if this fails (prune, its expiry), for the warning.
    pub async fn delete(&self, neon: &NeonClient, otherwise: &str) -> bool {
        let name = self.name.as_str();
        let id = match &self.id {
            Some(id) => id.clone(),
            None => match neon.find_branch_by_name(name).await {
                Ok(Some(found)) if ownership::made_by_run(&found, &self.run_id) => found.branch.id,
                Ok(Some(_)) => {
                    tracing::info!(
                        branch = name,
                        "a branch of this name exists but another run made it; it is left alone"
                    );
                    return true;
                }
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

/// Creates `req` for the run `run_id`, tracking it in `slot` for the cleanup path. A 409 means the name
/// belongs to a branch someone else made (another run started in the same second): the slot is cleared,
/// so the cleanup never looks that name up, let alone deletes it.
pub async fn create_tracked(
    neon: &NeonClient,
    slot: &Mutex<Option<PendingBranch>>,
    req: &CreateBranch,
    run_id: &str,
) -> Result<CreatedBranch, NeonError> {
    let set = |pending: Option<PendingBranch>| {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = pending;
    };
    set(Some(PendingBranch {
        name: req.name.clone(),
        run_id: run_id.to_string(),
        id: None,
    }));
    match neon.create_branch(req).await {
        Ok(created) => {
            set(Some(PendingBranch {
                name: req.name.clone(),
                run_id: run_id.to_string(),
                id: Some(created.branch.id.clone()),
            }));
            Ok(created)
        }
        Err(e) if e.status() == Some(409) => {
            set(None);
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// A failed create; a 409 means another run made a branch of the same name at the same second.
pub fn create_failure(e: NeonError, impact: &str) -> crate::error::Error {
    if e.status() == Some(409) {
        let name = e.call.clone();
        return crate::error::Failure::new(format!("Neon API: could not {name}: another branch of that name exists"))
            .impact(format!("{impact}; the other branch was left alone (it is not this run's)"))
            .hint("another run probably started at the same second; let it finish, or run again in a moment")
            .cause(e)
            .into();
    }
    e.into_failure(impact).into()
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
