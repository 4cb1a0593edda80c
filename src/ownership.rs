//! Which branches are ours: by identity, never by name alone.
//!
//! Every branch supaneon-sync creates carries annotations (set with the create call's `annotation_value`;
//! Neon returns them in the list's `annotations` map, keyed by branch id): that it is ours and of which
//! kind, the unique id of the run that made it, and a stable fingerprint of the source it backs up (host,
//! port, database; no secret). A branch is ours only when its name matches one of our patterns, its
//! annotations name the same kind, its fingerprint is this deployment's source, and the timestamp in its
//! name is not in the future. Anything else, however it is named, is foreign: listed, never touched.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::branches::{self, BranchKind};
use crate::config::SourceFacts;
use crate::error::{Error, Problem};
use crate::neon::{Annotations, BranchInfo};

/// The annotation that marks a branch as ours; its value is the kind (`backup`, `restore-test`).
pub const KIND_KEY: &str = "supaneon-sync";
/// The unique id of the run that created the branch.
pub const RUN_KEY: &str = "supaneon-sync-run";
/// The fingerprint of the source the branch belongs to.
pub const SOURCE_KEY: &str = "supaneon-sync-source";

pub const KIND_BACKUP: &str = "backup";
pub const KIND_RESTORE_TEST: &str = "restore-test";
pub const KIND_MIRROR: &str = "mirror";
/// On a snapshot backup: how many tables and rows its manifest holds (so a listing needs no compute).
pub const TABLES_KEY: &str = "supaneon-sync-tables";
pub const ROWS_KEY: &str = "supaneon-sync-rows";

/// How far a name's timestamp may lie ahead of our clock (clock skew between runners) before it is refused.
pub const FUTURE_TOLERANCE: Duration = Duration::minutes(5);

/// A fresh, unique id for one run: its start time and 64 random bits.
pub fn new_run_id() -> String {
    format!(
        "{}-{:016x}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::thread_rng().gen::<u64>()
    )
}

/// A stable fingerprint of the source: host (lower case), port and database, and for Supabase's shared
/// pooler hosts the project ref from the user name (`postgres.<ref>`), which is what tells projects apart
/// there. No password, no full user name; the same source always gives the same fingerprint.
pub fn source_fingerprint(source: &SourceFacts) -> String {
    let host = source.host.to_ascii_lowercase();
    let tenant = if host.ends_with(".pooler.supabase.com") {
        source
            .user
            .split_once('.')
            .map(|(_, r)| r.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let mut h = Sha256::new();
    for part in [
        "supaneon-sync source v1",
        host.as_str(),
        &source.port.to_string(),
        source.database.as_str(),
        tenant.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    format!("src-{}", &hex::encode(h.finalize())[..24])
}

/// The annotations of a branch this run creates.
pub fn annotations(kind: &str, run_id: &str, fingerprint: &str) -> Annotations {
    let mut a = Annotations::new();
    a.insert(KIND_KEY.to_string(), kind.to_string());
    a.insert(RUN_KEY.to_string(), run_id.to_string());
    a.insert(SOURCE_KEY.to_string(), fingerprint.to_string());
    a
}

/// Why a branch whose name looks like ours is not ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotOurs {
    /// Not one of our name patterns.
    Name,
    /// Our name pattern, but without our annotations (hand-made, or made by another tool).
    NoAnnotations,
    /// Ours, for another source (another deployment sharing the project).
    OtherSource,
    /// The annotations name another kind than the name does.
    KindMismatch,
    /// The timestamp in the name lies in the future.
    FutureTimestamp,
}

impl fmt::Display for NotOurs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotOurs::Name => "not a name supaneon-sync makes",
            NotOurs::NoAnnotations => {
                "named like ours but without supaneon-sync's annotations (not made by supaneon-sync)"
            }
            NotOurs::OtherSource => "made by supaneon-sync for another source database",
            NotOurs::KindMismatch => "its annotations do not match its name",
            NotOurs::FutureTimestamp => "the timestamp in its name lies in the future",
        })
    }
}

/// Whose branches this run may act on: those of one source fingerprint, judged at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `None` when no branch of any source is ours (nothing is).
    pub fingerprint: Option<String>,
    pub now: DateTime<Utc>,
}

impl Scope {
    pub fn new(fingerprint: impl Into<String>, now: DateTime<Utc>) -> Scope {
        Scope {
            fingerprint: Some(fingerprint.into()),
            now,
        }
    }

    /// The scope of this deployment: the configured source's fingerprint; without a source URL (modes that
    /// never connect to it), the one source whose backups the project holds. Backups of several sources
    /// and no source URL to choose between them is a configuration error.
    pub fn resolve(
        source: Option<&SourceFacts>,
        branches: &[BranchInfo],
        now: DateTime<Utc>,
    ) -> Result<Scope, Error> {
        if let Some(source) = source {
            return Ok(Scope::new(source_fingerprint(source), now));
        }
        let found: BTreeSet<&str> = branches
            .iter()
            .filter(|b| b.annotations.contains_key(KIND_KEY))
            .filter_map(|b| b.annotations.get(SOURCE_KEY).map(String::as_str))
            .collect();
        match found.len() {
            0 => Ok(Scope {
                fingerprint: None,
                now,
            }),
            1 => Ok(Scope::new(*found.iter().next().expect("one"), now)),
            n => Err(Error::Config(vec![Problem {
                setting: "supabase-database-url".into(),
                message: format!(
                    "is needed here: the Neon project holds supaneon-sync branches of {n} different source databases; \
                     set it to the source this deployment backs up, and only its branches are acted on"
                ),
            }])),
        }
    }

    /// Why `b` is not ours, or `None` when it is.
    pub fn not_ours(&self, b: &BranchInfo) -> Option<NotOurs> {
        let (at, kind) = match branches::classify(&b.branch.name) {
            BranchKind::Foreign => return Some(NotOurs::Name),
            BranchKind::Backup { at } | BranchKind::IncompleteBackup { at } => (at, KIND_BACKUP),
            BranchKind::RestoreTest { at } => (at, KIND_RESTORE_TEST),
            BranchKind::RetiredMirror { at } => (at, KIND_MIRROR),
            // The mirror's name has no timestamp: its creation time stands in.
            BranchKind::Mirror => (b.branch.created_at, KIND_MIRROR),
        };
        let a = &b.annotations;
        let (Some(marked), Some(_run), Some(source)) =
            (a.get(KIND_KEY), a.get(RUN_KEY), a.get(SOURCE_KEY))
        else {
            return Some(NotOurs::NoAnnotations);
        };
        if self.fingerprint.as_deref() != Some(source.as_str()) {
            return Some(NotOurs::OtherSource);
        }
        if marked != kind {
            return Some(NotOurs::KindMismatch);
        }
        if at > self.now + FUTURE_TOLERANCE {
            return Some(NotOurs::FutureTimestamp);
        }
        None
    }

    /// What `b` is to this deployment: its kind when it is ours, else foreign.
    pub fn kind(&self, b: &BranchInfo) -> BranchKind {
        match self.not_ours(b) {
            None => branches::classify(&b.branch.name),
            Some(_) => BranchKind::Foreign,
        }
    }

    /// The newest complete backup of ours, by the timestamp in its name.
    pub fn newest_backup<'a>(&self, all: &'a [BranchInfo]) -> Option<&'a BranchInfo> {
        all.iter()
            .filter_map(|b| match self.kind(b) {
                BranchKind::Backup { at } => Some((at, b)),
                _ => None,
            })
            .max_by(|x, y| x.0.cmp(&y.0).then(x.1.branch.name.cmp(&y.1.branch.name)))
            .map(|(_, b)| b)
    }

    /// The mirror of this source, when the project holds one that is ours.
    pub fn mirror<'a>(&self, all: &'a [BranchInfo]) -> Option<&'a BranchInfo> {
        all.iter()
            .find(|b| matches!(self.kind(b), BranchKind::Mirror))
    }

    /// Branches named like ours that are not ours, with the reason (for listings and warnings).
    pub fn name_alikes<'a>(&self, all: &'a [BranchInfo]) -> Vec<(&'a BranchInfo, NotOurs)> {
        all.iter()
            .filter_map(|b| match self.not_ours(b) {
                Some(NotOurs::Name) | None => None,
                Some(why) => Some((b, why)),
            })
            .collect()
    }
}

/// Whether `b` was created by the run `run_id`.
pub fn made_by_run(b: &BranchInfo, run_id: &str) -> bool {
    b.annotations.get(RUN_KEY).map(String::as_str) == Some(run_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neon::Branch;
    use crate::pg::conn::SslMode;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 18, 12, 0, 0).unwrap()
    }

    fn facts(host: &str, port: u16, user: &str, db: &str) -> SourceFacts {
        SourceFacts {
            host: host.into(),
            port,
            user: user.into(),
            database: db.into(),
            sslmode: SslMode::Require,
        }
    }

    fn branch(name: &str, annotations: Annotations) -> BranchInfo {
        BranchInfo {
            branch: Branch::ready_for_test(name, now()),
            annotations,
        }
    }

    #[test]
    fn the_fingerprint_is_stable_secret_free_and_tells_sources_apart() {
        let a = facts("DB.Example.com", 5432, "postgres", "postgres");
        let fp = source_fingerprint(&a);
        assert_eq!(fp, source_fingerprint(&a));
        assert_eq!(
            fp,
            source_fingerprint(&facts("db.example.com", 5432, "other-user", "postgres"))
        );
        assert!(fp.starts_with("src-") && fp.len() == 28, "{fp}");
        assert!(!fp.contains("example"), "{fp}");
        for other in [
            facts("db.example.com", 5433, "postgres", "postgres"),
            facts("db.example.com", 5432, "postgres", "app"),
            facts("db2.example.com", 5432, "postgres", "postgres"),
        ] {
            assert_ne!(fp, source_fingerprint(&other), "{other:?}");
        }
        // One shared pooler host, two Supabase projects.
        let pooler = "aws-0-eu-central-1.pooler.supabase.com";
        assert_ne!(
            source_fingerprint(&facts(pooler, 5432, "postgres.abc", "postgres")),
            source_fingerprint(&facts(pooler, 5432, "postgres.xyz", "postgres"))
        );
    }

    #[test]
    fn only_annotated_branches_of_this_source_with_a_past_timestamp_are_ours() {
        let scope = Scope::new("src-a", now());
        let at = now() - Duration::hours(1);
        let ours = annotations(KIND_BACKUP, "run-1", "src-a");
        let b = branch(&branches::backup_name(at), ours.clone());
        assert_eq!(scope.kind(&b), BranchKind::Backup { at });
        assert_eq!(scope.newest_backup(std::slice::from_ref(&b)), Some(&b));

        let cases = [
            (
                branch(&branches::backup_name(at), Annotations::new()),
                NotOurs::NoAnnotations,
            ),
            (
                branch(
                    &branches::backup_name(at),
                    annotations(KIND_BACKUP, "run-2", "src-b"),
                ),
                NotOurs::OtherSource,
            ),
            (
                branch(
                    &branches::backup_name(at),
                    annotations(KIND_RESTORE_TEST, "run-2", "src-a"),
                ),
                NotOurs::KindMismatch,
            ),
            (
                branch("backup-29991231T235959Z", ours.clone()),
                NotOurs::FutureTimestamp,
            ),
            (branch("staging", ours.clone()), NotOurs::Name),
        ];
        for (b, why) in &cases {
            assert_eq!(scope.not_ours(b), Some(*why), "{}", b.branch.name);
            assert_eq!(scope.kind(b), BranchKind::Foreign, "{}", b.branch.name);
        }
        let all: Vec<BranchInfo> = cases.iter().map(|(b, _)| b.clone()).collect();
        assert_eq!(scope.newest_backup(&all), None);
        assert_eq!(scope.name_alikes(&all).len(), 4);
        // A skew of a minute is tolerated.
        let soon = branch(&branches::backup_name(now() + Duration::minutes(1)), ours);
        assert!(scope.not_ours(&soon).is_none());
    }

    #[test]
    fn without_a_source_the_one_source_in_the_project_is_chosen_and_two_are_refused() {
        let one = vec![
            branch(
                "backup-20260101T000000Z",
                annotations(KIND_BACKUP, "r1", "src-a"),
            ),
            branch(
                "backup-20260102T000000Z",
                annotations(KIND_BACKUP, "r2", "src-a"),
            ),
            branch("backup-20260103T000000Z", Annotations::new()),
        ];
        let scope = Scope::resolve(None, &one, now()).unwrap();
        assert_eq!(scope.fingerprint.as_deref(), Some("src-a"));
        let mut two = one.clone();
        two.push(branch(
            "backup-20260104T000000Z",
            annotations(KIND_BACKUP, "r3", "src-b"),
        ));
        let err = Scope::resolve(None, &two, now()).unwrap_err();
        assert!(
            err.render().contains("2 different source"),
            "{}",
            err.render()
        );
        assert_eq!(err.exit_code(), 2);
        let configured = facts("h", 5432, "u", "d");
        let scope = Scope::resolve(Some(&configured), &two, now()).unwrap();
        assert_eq!(scope.fingerprint, Some(source_fingerprint(&configured)));
        assert!(Scope::resolve(None, &[], now())
            .unwrap()
            .fingerprint
            .is_none());
    }

    #[test]
    fn a_branch_belongs_to_the_run_that_annotated_it() {
        let b = branch("x", annotations(KIND_BACKUP, "run-1", "src-a"));
        assert!(made_by_run(&b, "run-1"));
        assert!(!made_by_run(&b, "run-2"));
        assert!(!made_by_run(&branch("x", Annotations::new()), "run-1"));
    }
}
