//! The command line: subcommands, flags, and how they become [`RawSettings`].
//!
//! Secrets (the Supabase URI, the Neon API key, the anon key and the GitHub token) are read from the
//! environment only, never from flags, because a process's argv is visible to every user of the machine.

use std::collections::BTreeMap;

use clap::{Args, Parser, Subcommand};

use crate::config::{Mode, Origin, RawSettings};

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the operation failed (backup, restore test, prune, Neon API)
  2  invalid configuration or usage (nothing was run)

Secrets are read from the environment only: SUPABASE_DATABASE_URL, NEON_API_KEY, and optionally
SUPANEON_SUPABASE_ANON_KEY (keep-awake ping) and SUPANEON_GITHUB_TOKEN (re-enables the workflow).
Other settings: NEON_PROJECT_ID, NEON_API_URL, NEON_PARENT_BRANCH, NEON_DATABASE, NEON_ROLE,
SUPANEON_KEEP_LAST, SUPANEON_PRUNE_AFTER_BACKUP, SUPANEON_VERIFY, SUPANEON_CONFIG_FILE, SUPANEON_PG_BIN_DIR,
SUPANEON_SUPABASE_URL, or the flags below. In GitHub Actions use the `action` command, which reads the
INPUT_* variables.";

#[derive(Debug, Parser)]
#[command(
    name = "supaneon-sync",
    version,
    about = "Verified logical backups of a Supabase database into timestamped Neon branches",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingFlags,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every setting and report all problems at once; --online also checks the source and pg tools
    ValidateConfig {
        /// Also connect: the source over TLS, its server version, pg_dump/pg_restore of that major
        #[arg(long)]
        online: bool,
    },
    /// Back up the source into a new branch backup-YYYYMMDDTHHMMSSZ, verified against a manifest
    #[command(name = "backup-run", visible_alias = "backup")]
    BackupRun,
    /// Prove that the newest (or a chosen) backup restores: child branch, read-only health checks
    RestoreTest {
        /// The backup branch to test, e.g. backup-20260101T020000Z (default: the newest complete backup)
        #[arg(long = "backup", value_name = "BRANCH")]
        backup: Option<String>,
    },
    /// Delete backups that the retention policy no longer keeps
    Prune {
        /// Print the plan, delete nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Show the backups that exist
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Fail over: the newest verified backup (or the one named), given a compute that answers; prints its
    /// connection URI, the application's new DATABASE_URL, as the only line on stdout
    Failover {
        /// The backup branch to fail over to (default: the newest complete backup of this source)
        #[arg(long = "backup", value_name = "BRANCH")]
        backup: Option<String>,
    },
    /// Run as the GitHub Action: read INPUT_* variables and dispatch on the `mode` input
    Action,
}

/// Non-secret settings as flags; each falls back to its environment variable.
#[derive(Debug, Args)]
pub struct SettingFlags {
    /// Neon API base URL [env: NEON_API_URL]
    #[arg(long, global = true)]
    pub neon_api_url: Option<String>,
    /// Neon project id [env: NEON_PROJECT_ID]
    #[arg(long, global = true)]
    pub neon_project_id: Option<String>,
    /// Parent branch (name or id) of backup branches [env: NEON_PARENT_BRANCH]
    #[arg(long, global = true)]
    pub neon_parent_branch: Option<String>,
    /// Database on the Neon branch [env: NEON_DATABASE]
    #[arg(long, global = true)]
    pub neon_database: Option<String>,
    /// Neon role owning restored objects [env: NEON_ROLE]
    #[arg(long, global = true)]
    pub neon_role: Option<String>,
    /// Complete backups to keep [env: SUPANEON_KEEP_LAST]
    #[arg(long, global = true)]
    pub keep_last: Option<String>,
    /// Verification level: full or counts [env: SUPANEON_VERIFY]
    #[arg(long, global = true)]
    pub verify: Option<String>,
    /// YAML file with schemas, tables, retention tiers, health checks [env: SUPANEON_CONFIG_FILE]
    #[arg(long, global = true)]
    pub config_file: Option<String>,
    /// Directory with pg_dump/pg_restore of the source's major [env: SUPANEON_PG_BIN_DIR]
    #[arg(long, global = true)]
    pub pg_bin_dir: Option<String>,
}

impl Cli {
    /// The mode a subcommand runs (`None` for `action`, whose mode comes from its input).
    pub fn mode(&self) -> Option<Mode> {
        Some(match self.command {
            Command::ValidateConfig { .. } => Mode::ValidateConfig,
            Command::BackupRun => Mode::Backup,
            Command::RestoreTest { .. } => Mode::RestoreTest,
            Command::Prune { .. } => Mode::Prune,
            Command::List { .. } => Mode::List,
            Command::Failover { .. } => Mode::Failover,
            Command::Action => return None,
        })
    }

    /// Environment first, then flags on top (a flag names itself in messages).
    pub fn raw_settings(&self, env: &BTreeMap<String, String>) -> RawSettings {
        let mut raw = RawSettings::from_env(env);
        let s = &self.settings;
        let flags: [(&'static str, &'static str, &Option<String>); 9] = [
            ("neon-api-url", "--neon-api-url", &s.neon_api_url),
            ("neon-project-id", "--neon-project-id", &s.neon_project_id),
            (
                "neon-parent-branch",
                "--neon-parent-branch",
                &s.neon_parent_branch,
            ),
            ("neon-database", "--neon-database", &s.neon_database),
            ("neon-role", "--neon-role", &s.neon_role),
            ("keep-last", "--keep-last", &s.keep_last),
            ("verify", "--verify", &s.verify),
            ("config-file", "--config-file", &s.config_file),
            ("pg-bin-dir", "--pg-bin-dir", &s.pg_bin_dir),
        ];
        for (key, flag, value) in flags {
            if let Some(v) = value {
                raw.set(key, v, Origin::Flag(flag));
            }
        }
        match &self.command {
            Command::RestoreTest { backup: Some(b) } | Command::Failover { backup: Some(b) } => {
                raw.set("backup-branch", b, Origin::Flag("--backup"))
            }
            Command::Prune { dry_run: true } => {
                raw.set("dry-run", "true", Origin::Flag("--dry-run"))
            }
            _ => {}
        }
        raw
    }
}
