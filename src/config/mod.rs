//! Raw inputs → one validated [`Config`].
//!
//! Settings come from three places: GitHub Action inputs (`INPUT_<NAME>`, every declared input present, the
//! empty string meaning "not set"), the environment and flags for CLI use, and an optional YAML file for the
//! richer settings. They are first gathered as plain strings ([`RawSettings`], each remembering where it came
//! from so messages name it as the user wrote it), then validated in one pass that reports every problem.
//!
//! Rooms: [`sources`] gathers the raw strings (Action inputs, environment, flags), `file` reads the YAML
//! file, `validation` turns them into a [`Config`].

use std::path::PathBuf;

use serde::Deserialize;

pub use crate::pg::conn::SslMode;
use crate::pg::content::ContentPolicy;
use crate::secret::Secret;

mod file;
pub mod sources;
mod validation;

pub use sources::*;
pub use validation::validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ValidateConfig,
    Backup,
    RestoreTest,
    Prune,
    List,
    Failover,
}

impl Mode {
    pub const NAMES: &'static [&'static str] = &[
        "validate-config",
        "backup",
        "restore-test",
        "prune",
        "list",
        "failover",
    ];

    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "validate-config" => Mode::ValidateConfig,
            "backup" | "backup-run" => Mode::Backup,
            "restore-test" => Mode::RestoreTest,
            "failover" => Mode::Failover,
            "prune" => Mode::Prune,
            "list" => Mode::List,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::ValidateConfig => "validate-config",
            Mode::Backup => "backup",
            Mode::RestoreTest => "restore-test",
            Mode::Failover => "failover",
            Mode::Prune => "prune",
            Mode::List => "list",
        }
    }

    fn needs_source(self) -> bool {
        matches!(self, Mode::ValidateConfig | Mode::Backup)
    }
}

/// The printable facts of the source URI (everything but the password).
#[derive(Debug, Clone)]
pub struct SourceFacts {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub sslmode: SslMode,
}

#[derive(Debug, Clone)]
pub struct NeonSettings {
    pub api_url: String,
    pub api_key: Secret,
    pub project_id: String,
    pub parent_branch: Option<String>,
    pub database: String,
    pub role: String,
    /// One API call's deadline across its retries.
    pub call_deadline: std::time::Duration,
    /// Extra roots for branch certificates ([`NEON_CA_FILE_ENV`]); the public roots always count.
    pub extra_roots: Option<PathBuf>,
}

/// How a backup is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// One long-lived mirror branch is synced (only what changed crosses the wire) and verified; each
    /// backup is a copy-on-write child of it, written nothing and created without a compute.
    Snapshot,
    /// Each backup is a fresh full restore into a branch of its own.
    Full,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Snapshot => "snapshot",
            Strategy::Full => "full",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyLevel {
    Full,
    Counts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub incomplete_grace_hours: u32,
    pub prune_after_backup: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub name: String,
    /// A read-only query returning one boolean.
    pub sql: String,
}

/// The keep-awake ping's target: the project's URL (no trailing slash) and its anon key.
#[derive(Debug, Clone)]
pub struct KeepAwakeSettings {
    pub url: String,
    pub anon_key: Secret,
}

/// The validated configuration every mode runs from.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// `None` only for modes that never touch the source (restore-test, prune, list).
    pub source_url: Option<Secret>,
    pub source: Option<SourceFacts>,
    pub neon: Option<NeonSettings>,
    pub content: ContentPolicy,
    pub retention: Retention,
    pub verify: VerifyLevel,
    pub strategy: Strategy,
    /// snapshot: tables compared and copied at once.
    pub sync_streams: usize,
    pub backup_branch: Option<String>,
    pub restore_test_expiry_hours: u32,
    /// restore-test fails when the newest complete backup is older than this.
    pub max_backup_age_hours: u32,
    pub dry_run: bool,
    pub health_checks: Vec<HealthCheck>,
    pub config_file: Option<PathBuf>,
    pub pg_bin_dirs: Vec<PathBuf>,
    pub on_github_actions: bool,
    /// The relay's watchdog: the run fails when the stream moves no byte for this long.
    pub stall_timeout: std::time::Duration,
    /// `supabase-url` + `supabase-anon-key`: one REST request to the project before each run's work.
    pub keep_awake: Option<KeepAwakeSettings>,
    /// `github-token`: re-enables the workflow after each run's work (inside GitHub Actions).
    pub github_token: Option<Secret>,
}

/// Something worth telling the user that does not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

/// `backup-YYYYMMDDTHHMMSSZ`, exactly.
pub fn is_backup_branch_name(name: &str) -> bool {
    matches!(
        crate::branches::classify(name),
        crate::branches::BranchKind::Backup { .. }
    )
}

impl Config {
    /// The configuration with every secret redacted, one `key: value` per line.
    pub fn redacted_lines(&self) -> Vec<(String, String)> {
        let mut lines = vec![("mode".to_string(), self.mode.name().to_string())];
        if let Some(s) = &self.source {
            lines.push((
                "supabase-database-url".into(),
                format!(
                    "postgresql://{}:***@{}:{}/{}?sslmode={}",
                    s.user,
                    s.host,
                    s.port,
                    s.database,
                    s.sslmode.as_str()
                ),
            ));
        }
        if let Some(n) = &self.neon {
            lines.push(("neon-api-key".into(), "***".into()));
            lines.push(("neon-project-id".into(), n.project_id.clone()));
            lines.push(("neon-api-url".into(), n.api_url.clone()));
            lines.push((
                "neon-parent-branch".into(),
                n.parent_branch
                    .clone()
                    .unwrap_or_else(|| "(project default branch)".into()),
            ));
            lines.push(("neon-database".into(), n.database.clone()));
            lines.push(("neon-role".into(), n.role.clone()));
        }
        let r = &self.retention;
        lines.push(("keep-last".into(), r.keep_last.to_string()));
        if r.keep_daily > 0 || r.keep_weekly > 0 {
            lines.push((
                "retention tiers".into(),
                format!("daily {}, weekly {}", r.keep_daily, r.keep_weekly),
            ));
        }
        lines.push((
            "prune-after-backup".into(),
            r.prune_after_backup.to_string(),
        ));
        lines.push(("strategy".into(), self.strategy.name().into()));
        if self.strategy == Strategy::Snapshot {
            lines.push(("sync-streams".into(), self.sync_streams.to_string()));
        }
        lines.push((
            "verify".into(),
            match self.verify {
                VerifyLevel::Full => "full",
                VerifyLevel::Counts => "counts",
            }
            .into(),
        ));
        let c = &self.content;
        let list = |v: &[String]| {
            if v.is_empty() {
                "(none)".to_string()
            } else {
                v.join(", ")
            }
        };
        lines.push((
            "schemas.include".into(),
            if c.include_schemas.is_empty() {
                "(all non-platform schemas)".into()
            } else {
                c.include_schemas.join(", ")
            },
        ));
        lines.push(("schemas.exclude".into(), list(&c.exclude_schemas)));
        lines.push((
            "schemas.keep-auth / keep-storage".into(),
            format!("{} / {}", c.keep_auth, c.keep_storage),
        ));
        lines.push(("tables.exclude".into(), list(&c.exclude_tables)));
        lines.push(("tables.exclude-data".into(), list(&c.exclude_table_data)));
        lines.push(("health-checks".into(), self.health_checks.len().to_string()));
        if let Some(b) = &self.backup_branch {
            lines.push(("backup-branch".into(), b.clone()));
        }
        lines.push((
            "restore-test-expiry-hours".into(),
            self.restore_test_expiry_hours.to_string(),
        ));
        lines.push((
            "max-backup-age-hours".into(),
            self.max_backup_age_hours.to_string(),
        ));
        if self.mode == Mode::Prune {
            lines.push(("dry-run".into(), self.dry_run.to_string()));
        }
        if let Some(f) = &self.config_file {
            lines.push(("config-file".into(), f.display().to_string()));
        }
        for d in &self.pg_bin_dirs {
            lines.push(("pg-bin-dir".into(), d.display().to_string()));
        }
        if let Some(k) = &self.keep_awake {
            lines.push(("supabase-url".into(), k.url.clone()));
            lines.push(("supabase-anon-key".into(), "***".into()));
        }
        if self.github_token.is_some() {
            lines.push(("github-token".into(), "***".into()));
        }
        lines
    }
}

#[cfg(test)]
mod tests;
