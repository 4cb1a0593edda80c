//! Raw inputs → one validated [`Config`].
//!
//! Settings come from three places: GitHub Action inputs (`INPUT_<NAME>`, every declared input present, the
//! empty string meaning "not set"), the environment and flags for CLI use, and an optional YAML file for the
//! richer settings. They are first gathered as plain strings ([`RawSettings`], each remembering where it came
//! from so messages name it as the user wrote it), then validated in one pass that reports every problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Problem;
use crate::pg::conn::ConnSpec;
pub use crate::pg::conn::SslMode;
use crate::pg::content::ContentPolicy;
use crate::secret::Secret;

pub const DEFAULT_NEON_API_URL: &str = "https://console.neon.tech/api/v2";

/// One setting shared by the Action (input id) and the CLI (environment variable).
pub struct SettingDef {
    /// The Action input id, kebab-case; also the key in [`RawSettings`].
    pub input: &'static str,
    /// The environment variable read in CLI use.
    pub env: &'static str,
    pub description: &'static str,
    /// The default when unset; "" means no default.
    pub default: &'static str,
}

/// Every setting, in the order they are documented. `action.yml` declares exactly these inputs (a contract
/// test checks it).
pub const SETTINGS: &[SettingDef] = &[
    SettingDef { input: "mode", env: "SUPANEON_MODE", description: "What to run: validate-config, backup, restore-test, prune, list or failover.", default: "backup" },
    SettingDef { input: "supabase-database-url", env: "SUPABASE_DATABASE_URL", description: "Connection URI of the Supabase database (session pooler on port 5432 from GitHub-hosted runners), with sslmode=require or stronger.", default: "" },
    SettingDef { input: "neon-api-key", env: "NEON_API_KEY", description: "Neon API key.", default: "" },
    SettingDef { input: "neon-project-id", env: "NEON_PROJECT_ID", description: "Neon project id, e.g. quiet-river-12345678.", default: "" },
    SettingDef { input: "neon-api-url", env: "NEON_API_URL", description: "Neon API base URL.", default: DEFAULT_NEON_API_URL },
    SettingDef { input: "neon-parent-branch", env: "NEON_PARENT_BRANCH", description: "Branch (name or id) that backup branches are created from; default: the project's default branch.", default: "" },
    SettingDef { input: "neon-database", env: "NEON_DATABASE", description: "Database on the Neon branch that receives the backup.", default: "neondb" },
    SettingDef { input: "neon-role", env: "NEON_ROLE", description: "Neon role that owns the restored objects.", default: "neondb_owner" },
    SettingDef { input: "keep-last", env: "SUPANEON_KEEP_LAST", description: "How many complete backups prune keeps (the newest).", default: "7" },
    SettingDef { input: "prune-after-backup", env: "SUPANEON_PRUNE_AFTER_BACKUP", description: "Prune old backups after a successful backup.", default: "true" },
    SettingDef { input: "verify", env: "SUPANEON_VERIFY", description: "Verification of a backup against the source: full (row counts and checksums) or counts.", default: "full" },
    SettingDef { input: "backup-branch", env: "SUPANEON_BACKUP_BRANCH", description: "restore-test, failover: the backup branch to test or fail over to; default: the newest complete backup.", default: "" },
    SettingDef { input: "max-backup-age-hours", env: "SUPANEON_MAX_BACKUP_AGE_HOURS", description: "restore-test: fail when the newest complete backup is older than this many hours (a stopped schedule turns the workflow red).", default: "26" },
    SettingDef { input: "restore-test-expiry-hours", env: "SUPANEON_RESTORE_TEST_EXPIRY_HOURS", description: "restore-test: hours after which Neon deletes a kept (failed) test branch.", default: "72" },
    SettingDef { input: "dry-run", env: "SUPANEON_DRY_RUN", description: "prune: print the plan, delete nothing.", default: "false" },
    SettingDef { input: "config-file", env: "SUPANEON_CONFIG_FILE", description: "Path to an optional YAML file with schemas, tables, retention tiers and health checks.", default: "" },
    SettingDef { input: "pg-bin-dir", env: "SUPANEON_PG_BIN_DIR", description: "Directory holding pg_dump and pg_restore of the source's major version, if not in a standard place.", default: "" },
];

/// The Action's inputs exactly as the runner passes them: every declared input, as a string.
///
/// An input the workflow did not set arrives empty (action.yml declares no defaults, so an unset input
/// never overrides the config file); one missing altogether is unset too. `INPUT_*` variables that are no
/// input of ours (a caller's stray environment) are ignored here and warned about by [`unknown_inputs`].
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct ActionInputs {
    pub mode: String,
    pub supabase_database_url: String,
    pub neon_api_key: String,
    pub neon_project_id: String,
    pub neon_api_url: String,
    pub neon_parent_branch: String,
    pub neon_database: String,
    pub neon_role: String,
    pub keep_last: String,
    pub prune_after_backup: String,
    pub verify: String,
    pub backup_branch: String,
    pub restore_test_expiry_hours: String,
    pub max_backup_age_hours: String,
    pub dry_run: String,
    pub config_file: String,
    pub pg_bin_dir: String,
}

impl ActionInputs {
    /// Reads `INPUT_*` variables from `vars` (never the process environment directly, so tests are hermetic).
    /// Accepts both the runner's spelling (`INPUT_NEON-API-KEY`) and the shell-friendly one a composite
    /// step must use (`INPUT_NEON_API_KEY`); safe because input ids never contain `_` (a contract test
    /// checks it).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, Problem> {
        let normalised = vars
            .into_iter()
            .map(|(k, v)| match k.strip_prefix("INPUT_") {
                Some(id) => (format!("INPUT_{}", id.replace('_', "-")), v),
                None => (k, v),
            });
        envy::prefixed("INPUT_")
            .from_iter(normalised)
            .map_err(|e| Problem {
                setting: "action inputs".into(),
                message: match e {
                    envy::Error::MissingValue(name) => format!(
                        "input \"{name}\" is missing; the runner passes every input declared in action.yml, so this binary and action.yml disagree"
                    ),
                    envy::Error::Custom(msg) => format!("{msg} (check the `with:` keys of the step for a typo)"),
                },
            })
    }

    /// The names of `INPUT_*` variables in `vars` that are no input of action.yml (to warn about).
    pub fn unknown_inputs<'a>(vars: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        vars.into_iter()
            .filter_map(|k| k.strip_prefix("INPUT_").map(|id| (k, id)))
            .filter(|(_, id)| {
                let id = id.replace('_', "-").to_ascii_lowercase();
                !SETTINGS.iter().any(|d| d.input == id)
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn pairs(&self) -> [(&'static str, &str); 17] {
        [
            ("mode", &self.mode),
            ("supabase-database-url", &self.supabase_database_url),
            ("neon-api-key", &self.neon_api_key),
            ("neon-project-id", &self.neon_project_id),
            ("neon-api-url", &self.neon_api_url),
            ("neon-parent-branch", &self.neon_parent_branch),
            ("neon-database", &self.neon_database),
            ("neon-role", &self.neon_role),
            ("keep-last", &self.keep_last),
            ("prune-after-backup", &self.prune_after_backup),
            ("verify", &self.verify),
            ("backup-branch", &self.backup_branch),
            ("restore-test-expiry-hours", &self.restore_test_expiry_hours),
            ("max-backup-age-hours", &self.max_backup_age_hours),
            ("dry-run", &self.dry_run),
            ("config-file", &self.config_file),
            ("pg-bin-dir", &self.pg_bin_dir),
        ]
    }
}

/// Where a raw value came from; decides how messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Input,
    Env,
    Flag(&'static str),
    Default,
}

#[derive(Debug, Clone)]
pub struct RawValue {
    pub value: String,
    pub origin: Origin,
}

/// Settings as plain strings, keyed by input id. Secrets are wrapped (and so masked) as they enter.
#[derive(Debug, Default, Clone)]
pub struct RawSettings {
    values: BTreeMap<&'static str, RawValue>,
    /// Whether we run inside GitHub Actions (changes some warnings).
    pub on_github_actions: bool,
    /// `SUPANEON_NEON_CALL_DEADLINE_SECONDS`: advanced tuning, environment only.
    neon_call_deadline: Option<String>,
    /// `SUPANEON_NEON_CA_FILE`: extra roots for Neon branch certificates, environment only.
    neon_ca_file: Option<String>,
    /// `SUPANEON_STALL_TIMEOUT_SECONDS`: the relay's watchdog, environment only.
    stall_timeout: Option<String>,
}

/// How long one Neon API call may take across its retries, unless tuned.
pub const DEFAULT_NEON_CALL_DEADLINE_SECONDS: u64 = 90;
const NEON_CALL_DEADLINE_ENV: &str = "SUPANEON_NEON_CALL_DEADLINE_SECONDS";
/// How long the dump → restore stream may move no byte before the run fails, unless tuned: long enough
/// for pg_dump to wait out a short lock on the source, short enough that a hung run frees the source.
pub const DEFAULT_STALL_TIMEOUT_SECONDS: u64 = 300;
const STALL_TIMEOUT_ENV: &str = "SUPANEON_STALL_TIMEOUT_SECONDS";
/// A PEM file of roots trusted for Neon branch certificates besides the public roots: for a private
/// Neon-compatible endpoint, or the local emulator's test CA. Verification stays verify-full with
/// channel binding; this only adds anchors.
pub const NEON_CA_FILE_ENV: &str = "SUPANEON_NEON_CA_FILE";

const SECRET_INPUTS: &[&str] = &["supabase-database-url", "neon-api-key"];

impl RawSettings {
    /// From the Action's inputs: trimmed, "" = not set.
    pub fn from_action(inputs: &ActionInputs) -> Self {
        let mut raw = RawSettings {
            on_github_actions: true,
            ..Default::default()
        };
        for (key, value) in inputs.pairs() {
            raw.set(key, value, Origin::Input);
        }
        raw
    }

    /// From environment variables (CLI use). `vars` is passed in so tests never touch the real environment.
    pub fn from_env(vars: &BTreeMap<String, String>) -> Self {
        let mut raw = RawSettings {
            on_github_actions: vars.get("GITHUB_ACTIONS").is_some_and(|v| v == "true"),
            ..Default::default()
        };
        for def in SETTINGS {
            if let Some(v) = vars.get(def.env) {
                raw.set(def.input, v, Origin::Env);
            }
        }
        raw.read_tuning(vars);
        raw
    }

    /// Advanced settings that are environment variables only, in CLI and Action use alike.
    pub fn read_tuning(&mut self, vars: &BTreeMap<String, String>) {
        self.neon_call_deadline = vars.get(NEON_CALL_DEADLINE_ENV).cloned();
        self.neon_ca_file = vars
            .get(NEON_CA_FILE_ENV)
            .filter(|v| !v.is_empty())
            .cloned();
        self.stall_timeout = vars
            .get(STALL_TIMEOUT_ENV)
            .filter(|v| !v.is_empty())
            .cloned();
    }

    /// Sets a value unless it is empty after trimming (the runner's "not set").
    pub fn set(&mut self, key: &'static str, value: &str, origin: Origin) {
        let value = value.trim();
        if value.is_empty() {
            return;
        }
        if SECRET_INPUTS.contains(&key) {
            crate::secret::register(value);
        }
        self.values.insert(
            key,
            RawValue {
                value: value.to_string(),
                origin,
            },
        );
    }

    fn get(&self, key: &str) -> Option<&RawValue> {
        self.values.get(key)
    }

    /// How a message names a setting: `input "keep-last"`, `SUPANEON_KEEP_LAST`, `--keep-last`.
    pub fn name_of(&self, key: &str) -> String {
        let def = SETTINGS.iter().find(|d| d.input == key);
        match self.get(key).map(|v| &v.origin) {
            Some(Origin::Flag(flag)) => (*flag).to_string(),
            Some(Origin::Env) => def.map_or(key.to_string(), |d| d.env.to_string()),
            Some(Origin::Input) => format!("input \"{key}\""),
            Some(Origin::Default) | None if self.on_github_actions => format!("input \"{key}\""),
            _ => def.map_or(key.to_string(), |d| d.env.to_string()),
        }
    }

    fn value_or_default(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| v.value.clone()).or_else(|| {
            SETTINGS
                .iter()
                .find(|d| d.input == key)
                .map(|d| d.default.to_string())
                .filter(|d| !d.is_empty())
        })
    }
}

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
}

/// Something worth telling the user that does not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

/// Validates everything, reporting every problem at once. `mode_override` is the CLI subcommand, which
/// wins over the `mode` setting.
pub fn validate(
    raw: &RawSettings,
    mode_override: Option<Mode>,
) -> Result<(Config, Vec<Warning>), Vec<Problem>> {
    let mut v = Validator {
        raw,
        problems: Vec::new(),
        warnings: Vec::new(),
    };

    let mode = match mode_override {
        Some(m) => Some(m),
        None => v.mode(),
    };
    let needs_source = mode.is_none_or(Mode::needs_source);

    let (source_url, source) = match raw.get("supabase-database-url") {
        Some(url) => match v.source_url(&url.value) {
            Some(facts) => (Some(Secret::new(url.value.clone())), Some(facts)),
            None => (None, None),
        },
        None => {
            if needs_source {
                v.missing("supabase-database-url", "the Supabase connection URI, e.g. postgresql://postgres.<ref>:<password>@aws-0-<region>.pooler.supabase.com:5432/postgres?sslmode=require");
            }
            (None, None)
        }
    };

    let neon = v.neon();
    let file = v.config_file();
    let keep_last = v.number("keep-last", 1, 1000);
    let prune_after_backup = v.boolean("prune-after-backup");
    let verify = v.verify_level();
    let expiry = v.number("restore-test-expiry-hours", 1, 30 * 24);
    let max_age = v.number("max-backup-age-hours", 1, 365 * 24);
    let dry_run = v.boolean("dry-run");
    let stall_timeout = match raw.stall_timeout.as_deref().map(str::parse::<u64>) {
        None => Some(DEFAULT_STALL_TIMEOUT_SECONDS),
        Some(Ok(secs)) if (1..=86_400).contains(&secs) => Some(secs),
        Some(_) => {
            v.problems.push(Problem {
                setting: STALL_TIMEOUT_ENV.into(),
                message: "expected a whole number of seconds from 1 to 86400".into(),
            });
            None
        }
    };
    let pg_bin_dirs = v.pg_bin_dir();
    let backup_branch = raw.get("backup-branch").map(|b| b.value.clone());
    if let Some(name) = &backup_branch {
        if !is_backup_branch_name(name) {
            v.problem(
                "backup-branch",
                format!("\"{name}\" is not a backup branch name; expected backup-YYYYMMDDTHHMMSSZ"),
            );
        }
    }

    let Validator {
        mut problems,
        warnings,
        ..
    } = v;
    if problems.is_empty() {
        let (
            Some(mode),
            Some(keep_last),
            Some(prune_after_backup),
            Some(verify),
            Some(expiry),
            Some(max_age),
            Some(dry_run),
            Some(stall_timeout),
        ) = (
            mode,
            keep_last,
            prune_after_backup,
            verify,
            expiry,
            max_age,
            dry_run,
            stall_timeout,
        )
        else {
            unreachable!("every None above recorded a problem");
        };
        let file = file.unwrap_or_default();
        let retention = Retention {
            keep_last: if raw.get("keep-last").is_some() {
                keep_last
            } else {
                file.retention.keep_last.unwrap_or(keep_last)
            },
            keep_daily: file.retention.keep_daily.unwrap_or(0),
            keep_weekly: file.retention.keep_weekly.unwrap_or(0),
            incomplete_grace_hours: file.retention.incomplete_grace_hours.unwrap_or(24),
            prune_after_backup,
        };
        if retention.keep_last == 0 {
            problems.push(Problem {
                setting: "retention.keep-last".into(),
                message: "must be at least 1".into(),
            });
            return Err(problems);
        }
        let config = Config {
            mode,
            source_url,
            source,
            neon,
            content: ContentPolicy {
                include_schemas: file.schemas.include,
                exclude_schemas: file.schemas.exclude,
                keep_auth: file.schemas.keep_auth.unwrap_or(true),
                keep_storage: file.schemas.keep_storage.unwrap_or(true),
                exclude_tables: file.tables.exclude,
                exclude_table_data: file.tables.exclude_data,
            },
            retention,
            verify,
            backup_branch,
            restore_test_expiry_hours: expiry,
            max_backup_age_hours: max_age,
            dry_run,
            health_checks: file.health_checks,
            config_file: raw.get("config-file").map(|f| PathBuf::from(&f.value)),
            pg_bin_dirs,
            on_github_actions: raw.on_github_actions,
            stall_timeout: std::time::Duration::from_secs(stall_timeout),
        };
        Ok((config, warnings))
    } else {
        Err(problems)
    }
}

/// `backup-YYYYMMDDTHHMMSSZ`, exactly.
pub fn is_backup_branch_name(name: &str) -> bool {
    matches!(
        crate::branches::classify(name),
        crate::branches::BranchKind::Backup { .. }
    )
}

struct Validator<'a> {
    raw: &'a RawSettings,
    problems: Vec<Problem>,
    warnings: Vec<Warning>,
}

impl Validator<'_> {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            setting: self.raw.name_of(key),
            message: message.into(),
        });
    }

    fn missing(&mut self, key: &str, what: &str) {
        self.problem(key, format!("is required but not set: {what}"));
    }

    fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(Warning(message.into()));
    }

    fn mode(&mut self) -> Option<Mode> {
        let value = self.raw.value_or_default("mode")?;
        let mode = Mode::parse(&value);
        if mode.is_none() {
            self.problem(
                "mode",
                format!(
                    "\"{value}\" is not a mode; expected one of: {}",
                    Mode::NAMES.join(", ")
                ),
            );
        }
        mode
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        let value = self.raw.value_or_default(key)?;
        match value.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => {
                self.problem(key, format!("expected a boolean (true, True, TRUE, false, False or FALSE), got \"{value}\""));
                None
            }
        }
    }

    fn number(&mut self, key: &str, min: u32, max: u32) -> Option<u32> {
        let value = self.raw.value_or_default(key)?;
        match value.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) => {
                self.problem(key, format!("{n} is out of range; expected {min} to {max}"));
                None
            }
            Err(_) => {
                self.problem(key, format!("expected a whole number, got \"{value}\""));
                None
            }
        }
    }

    fn verify_level(&mut self) -> Option<VerifyLevel> {
        let value = self.raw.value_or_default("verify")?;
        match value.as_str() {
            "full" => Some(VerifyLevel::Full),
            "counts" => Some(VerifyLevel::Counts),
            _ => {
                self.problem(
                    "verify",
                    format!("\"{value}\" is not a verification level; expected full or counts"),
                );
                None
            }
        }
    }

    fn source_url(&mut self, value: &str) -> Option<SourceFacts> {
        let key = "supabase-database-url";
        let url = match url::Url::parse(value) {
            Ok(url) => url,
            Err(e) => {
                self.problem(key, format!("is not a valid URI ({e}); expected postgresql://user:password@host:5432/postgres?sslmode=require"));
                return None;
            }
        };
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            self.problem(
                key,
                format!(
                    "has scheme \"{}\"; expected postgres:// or postgresql://",
                    url.scheme()
                ),
            );
            return None;
        }
        let mut ok = true;
        let host = url.host_str().unwrap_or("").to_string();
        if host.is_empty() {
            self.problem(key, "has no host");
            ok = false;
        }
        let user = percent_encoding::percent_decode_str(url.username())
            .decode_utf8_lossy()
            .into_owned();
        if user.is_empty() {
            self.problem(key, "has no user name");
            ok = false;
        }
        if url.password().is_none_or(str::is_empty) {
            self.problem(key, "has no password; put it in the URI (it is kept secret: masked, never logged, passed to pg_dump through its environment)");
            ok = false;
        }
        let port = url.port().unwrap_or(5432);
        let database = match url.path().trim_start_matches('/') {
            "" => user.clone(),
            db => percent_encoding::percent_decode_str(db)
                .decode_utf8_lossy()
                .into_owned(),
        };
        let params: BTreeMap<String, String> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let sslmode = match params.get("sslmode").map(String::as_str) {
            None => {
                self.problem(key, "has no sslmode; add ?sslmode=require (or verify-full with sslrootcert) so the connection is encrypted");
                None
            }
            Some("require") => Some(SslMode::Require),
            Some("verify-ca") => Some(SslMode::VerifyCa),
            Some("verify-full") => Some(SslMode::VerifyFull),
            Some(weak @ ("disable" | "allow" | "prefer")) => {
                self.problem(key, format!("sslmode={weak} may send the password and the data unencrypted; use sslmode=require, verify-ca or verify-full"));
                None
            }
            Some(other) => {
                self.problem(key, format!("sslmode={other} is not a libpq sslmode; use require, verify-ca or verify-full"));
                None
            }
        };
        if let Some(root) = params.get("sslrootcert") {
            if root != "system" && !Path::new(root).is_file() {
                self.problem(key, format!("sslrootcert file \"{root}\" does not exist"));
                ok = false;
            }
        }
        let lower_host = host.to_ascii_lowercase();
        if lower_host.ends_with(".pooler.supabase.com") {
            if port == 6543 {
                self.problem(key, "uses port 6543, Supabase's transaction-mode pooler, which pg_dump cannot use (no session state, no snapshots); use the session pooler on port 5432 of the same host");
                ok = false;
            }
            if !user.contains('.') {
                self.warn(format!("the pooler user \"{user}\" has no .<project-ref> suffix; Supabase's pooler expects postgres.<project-ref> and answers \"Tenant or user not found\" otherwise"));
            }
        }
        if self.raw.on_github_actions
            && lower_host.starts_with("db.")
            && lower_host.ends_with(".supabase.co")
        {
            self.warn(format!("{host} is Supabase's direct host, reachable over IPv6 only unless you bought the IPv4 add-on; GitHub-hosted runners have no IPv6, so use the session pooler (aws-N-<region>.pooler.supabase.com:5432, user postgres.<project-ref>)"));
        }
        let mut sslmode = sslmode;
        if ok && sslmode.is_some() {
            // The parser our connections use has the last word (query parameters libpq rejects, the
            // Supabase root rule, what require_auth allows).
            match ConnSpec::for_source(&Secret::new(value)) {
                Ok(spec) => {
                    if !spec.trust.is_verified() {
                        self.warn(format!("the certificate of {host} will not be verified (sslmode=require): the connection is encrypted, but only SCRAM-SHA-256 may carry the password, and pg_dump needs libpq 16 or newer to enforce that; prefer sslmode=verify-full with sslrootcert=<the server's CA>"));
                    }
                    sslmode = Some(spec.sslmode);
                }
                Err(e) => {
                    self.problem(key, e.to_string());
                    ok = false;
                }
            }
        }
        match (ok, sslmode) {
            (true, Some(sslmode)) => Some(SourceFacts {
                host,
                port,
                user,
                database,
                sslmode,
            }),
            _ => None,
        }
    }

    fn neon(&mut self) -> Option<NeonSettings> {
        let key = self
            .raw
            .get("neon-api-key")
            .map(|k| Secret::new(k.value.clone()));
        if key.is_none() {
            self.missing(
                "neon-api-key",
                "a Neon API key (Neon console → Account settings → API keys)",
            );
        }
        let project = self.raw.get("neon-project-id").map(|p| p.value.clone());
        match &project {
            None => self.missing("neon-project-id", "the Neon project id (Neon console → Project settings), e.g. quiet-river-12345678"),
            Some(p) if !regex_is_match(r"^[a-z0-9-]{1,60}$", p) => {
                self.problem("neon-project-id", format!("\"{p}\" is not a Neon project id; expected lowercase letters, digits and hyphens, e.g. quiet-river-12345678"))
            }
            Some(_) => {}
        }
        let api_url = self
            .raw
            .value_or_default("neon-api-url")
            .unwrap_or_else(|| DEFAULT_NEON_API_URL.to_string());
        let api_url_ok = match url::Url::parse(&api_url) {
            Ok(u) if u.scheme() == "https" => true,
            Ok(u)
                if u.scheme() == "http"
                    && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) =>
            {
                true
            }
            Ok(u) if u.scheme() == "http" => {
                self.problem("neon-api-url", "uses plain http to a remote host, which would send the API key unencrypted; use https");
                false
            }
            _ => {
                self.problem(
                    "neon-api-url",
                    format!("\"{api_url}\" is not an http(s) URL"),
                );
                false
            }
        };
        let database = self.identifier("neon-database");
        let role = self.identifier("neon-role");
        let parent_branch = self.raw.get("neon-parent-branch").map(|b| b.value.clone());
        let call_deadline = match self
            .raw
            .neon_call_deadline
            .as_deref()
            .map(str::parse::<u64>)
        {
            None => Some(DEFAULT_NEON_CALL_DEADLINE_SECONDS),
            Some(Ok(secs)) if (1..=3600).contains(&secs) => Some(secs),
            Some(_) => {
                self.problems.push(Problem {
                    setting: NEON_CALL_DEADLINE_ENV.into(),
                    message: "expected a whole number of seconds from 1 to 3600".into(),
                });
                None
            }
        };
        let extra_roots = match self.raw.neon_ca_file.clone() {
            None => Some(None),
            Some(path) if Path::new(&path).is_file() => Some(Some(PathBuf::from(path))),
            Some(path) => {
                self.problems.push(Problem {
                    setting: NEON_CA_FILE_ENV.into(),
                    message: format!(
                        "\"{path}\" is not a file; it should name a PEM file of root certificates"
                    ),
                });
                None
            }
        };
        match (
            key,
            project,
            api_url_ok,
            database,
            role,
            call_deadline,
            extra_roots,
        ) {
            (
                Some(api_key),
                Some(project_id),
                true,
                Some(database),
                Some(role),
                Some(secs),
                Some(extra_roots),
            ) => Some(NeonSettings {
                extra_roots,
                call_deadline: std::time::Duration::from_secs(secs),
                api_url: api_url.trim_end_matches('/').to_string(),
                api_key,
                project_id,
                parent_branch,
                database,
                role,
            }),
            _ => None,
        }
    }

    fn identifier(&mut self, key: &str) -> Option<String> {
        let value = self.raw.value_or_default(key)?;
        if value.len() > 63 || value.chars().any(|c| c.is_control()) {
            self.problem(key, format!("\"{value}\" is not a valid Postgres name (at most 63 bytes, no control characters)"));
            return None;
        }
        Some(value)
    }

    fn pg_bin_dir(&mut self) -> Vec<PathBuf> {
        match self.raw.get("pg-bin-dir") {
            Some(dir) if Path::new(&dir.value).is_dir() => vec![PathBuf::from(&dir.value)],
            Some(dir) => {
                let msg = format!("\"{}\" is not a directory", dir.value);
                self.problem("pg-bin-dir", msg);
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    fn config_file(&mut self) -> Option<FileSettings> {
        let path = self.raw.get("config-file")?.value.clone();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                self.problem("config-file", format!("cannot read \"{path}\": {e}"));
                return None;
            }
        };
        match parse_file_settings(&text) {
            Ok(settings) => Some(settings),
            Err(errors) => {
                for e in errors {
                    self.problems.push(Problem {
                        setting: format!("{path}: {}", e.setting),
                        message: e.message,
                    });
                }
                None
            }
        }
    }
}

fn regex_is_match(pattern: &str, text: &str) -> bool {
    regex::Regex::new(pattern)
        .map(|re| re.is_match(text))
        .unwrap_or(false)
}

// ---------- the YAML file ----------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileSettings {
    #[serde(default)]
    schemas: FileSchemas,
    #[serde(default)]
    tables: FileTables,
    #[serde(default)]
    retention: FileRetention,
    #[serde(default)]
    health_checks: Vec<HealthCheck>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileSchemas {
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    keep_auth: Option<bool>,
    keep_storage: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileTables {
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    exclude_data: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileRetention {
    keep_last: Option<u32>,
    keep_daily: Option<u32>,
    keep_weekly: Option<u32>,
    incomplete_grace_hours: Option<u32>,
}

/// The keys the YAML file accepts, per section; used to name the nearest valid key for a typo.
const FILE_KEYS: &[(&str, &[&str])] = &[
    ("", &["schemas", "tables", "retention", "health-checks"]),
    (
        "schemas",
        &["include", "exclude", "keep-auth", "keep-storage"],
    ),
    ("tables", &["exclude", "exclude-data"]),
    (
        "retention",
        &[
            "keep-last",
            "keep-daily",
            "keep-weekly",
            "incomplete-grace-hours",
        ],
    ),
    ("health-checks[]", &["name", "sql"]),
];

fn parse_file_settings(text: &str) -> Result<FileSettings, Vec<Problem>> {
    let value: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Err(vec![Problem {
                setting: "YAML".into(),
                message: e.to_string(),
            }])
        }
    };
    if value.is_null() {
        return Ok(FileSettings::default());
    }
    let mut problems = Vec::new();
    check_keys(&value, "", &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let settings: FileSettings = serde_yaml::from_value(value).map_err(|e| {
        vec![Problem {
            setting: "YAML".into(),
            message: e.to_string(),
        }]
    })?;
    for (what, names) in [
        ("tables.exclude", &settings.tables.exclude),
        ("tables.exclude-data", &settings.tables.exclude_data),
    ] {
        for name in names {
            if name.split('.').count() != 2 || name.split('.').any(str::is_empty) {
                problems.push(Problem {
                    setting: what.into(),
                    message: format!("\"{name}\" must be schema.table"),
                });
            }
        }
    }
    for (i, check) in settings.health_checks.iter().enumerate() {
        if check.name.trim().is_empty() || check.sql.trim().is_empty() {
            problems.push(Problem {
                setting: format!("health-checks[{i}]"),
                message: "needs a name and an sql query".into(),
            });
        }
    }
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(problems)
    }
}

fn check_keys(value: &serde_yaml::Value, section: &str, problems: &mut Vec<Problem>) {
    let Some(allowed) = FILE_KEYS
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, k)| *k)
    else {
        return;
    };
    let Some(map) = value.as_mapping() else {
        return;
    };
    for (k, v) in map {
        let Some(key) = k.as_str() else { continue };
        let path = if section.is_empty() {
            key.to_string()
        } else {
            format!("{section}.{key}")
        };
        if !allowed.contains(&key) {
            let nearest = allowed
                .iter()
                .min_by_key(|a| edit_distance(a, key))
                .copied()
                .unwrap_or_default();
            problems.push(Problem {
                setting: path,
                message: format!(
                    "unknown key; did you mean \"{nearest}\"? (valid here: {})",
                    allowed.join(", ")
                ),
            });
            continue;
        }
        if key == "health-checks" {
            if let Some(items) = v.as_sequence() {
                for item in items {
                    check_keys(item, "health-checks[]", problems);
                }
            }
        } else if section.is_empty() {
            check_keys(v, key, problems);
        }
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
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
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> RawSettings {
        RawSettings::from_env(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    const URL: &str = "postgresql://postgres.abcdefghijklmnop:s3cret@aws-0-eu-west-1.pooler.supabase.com:5432/postgres?sslmode=require";

    fn valid() -> Vec<(&'static str, &'static str)> {
        vec![
            ("SUPABASE_DATABASE_URL", URL),
            ("NEON_API_KEY", "napi_unit"),
            ("NEON_PROJECT_ID", "quiet-river-12345678"),
        ]
    }

    fn problems_of(pairs: &[(&str, &str)]) -> Vec<Problem> {
        validate(&env(pairs), None).err().unwrap_or_default()
    }

    #[test]
    fn a_valid_environment_validates() {
        let (cfg, warnings) = validate(&env(&valid()), None).expect("valid");
        assert_eq!(cfg.mode, Mode::Backup);
        assert_eq!(cfg.retention.keep_last, 7);
        assert!(warnings.is_empty(), "{warnings:?}");
        // On Supabase's hosts, require is verified in full against Supabase's root.
        assert_eq!(cfg.source.unwrap().sslmode, SslMode::VerifyFull);
    }

    #[test]
    fn empty_environment_names_every_missing_variable() {
        let p = problems_of(&[]);
        let text = format!("{p:?}");
        for name in ["SUPABASE_DATABASE_URL", "NEON_API_KEY", "NEON_PROJECT_ID"] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn list_and_prune_do_not_need_the_source() {
        let raw = env(&[("NEON_API_KEY", "k"), ("NEON_PROJECT_ID", "p-1")]);
        assert!(validate(&raw, Some(Mode::List)).is_ok());
        assert!(validate(&raw, Some(Mode::Prune)).is_ok());
        assert!(validate(&raw, Some(Mode::Backup)).is_err());
    }

    #[test]
    fn weak_or_missing_sslmode_is_refused() {
        for (url, needle) in [
            ("postgresql://u:p@h:5432/db", "has no sslmode"),
            (
                "postgresql://u:p@h:5432/db?sslmode=disable",
                "sslmode=disable",
            ),
            (
                "postgresql://u:p@h:5432/db?sslmode=prefer",
                "sslmode=prefer",
            ),
            ("postgresql://u:p@h:5432/db?sslmode=allow", "sslmode=allow"),
        ] {
            let mut pairs = valid();
            pairs[0].1 = url;
            let p = problems_of(&pairs);
            assert!(p.iter().any(|p| p.message.contains(needle)), "{url}: {p:?}");
        }
        let ca = std::env::temp_dir().join("supaneon-config-unit-ca.pem");
        std::fs::write(&ca, "not read by validation").unwrap();
        for query in [
            "sslmode=require".to_string(),
            format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
            "sslmode=verify-full".to_string(),
        ] {
            let url = format!("postgresql://u:p@h:5432/db?{query}");
            let mut pairs = valid();
            pairs[0].1 = &url;
            assert!(problems_of(&pairs).is_empty(), "{query}");
        }
        // libpq refuses verify-ca without a CA file; so do we, saying why.
        let mut pairs = valid();
        pairs[0].1 = "postgresql://u:p@h:5432/db?sslmode=verify-ca";
        let p = problems_of(&pairs);
        assert!(p.iter().any(|p| p.message.contains("sslrootcert")), "{p:?}");
    }

    #[test]
    fn the_stall_timeout_is_tuned_by_its_environment_variable() {
        let (cfg, _) = validate(&env(&valid()), None).expect("valid");
        assert_eq!(cfg.stall_timeout.as_secs(), DEFAULT_STALL_TIMEOUT_SECONDS);
        let mut pairs = valid();
        pairs.push(("SUPANEON_STALL_TIMEOUT_SECONDS", "45"));
        let (cfg, _) = validate(&env(&pairs), None).expect("valid");
        assert_eq!(cfg.stall_timeout.as_secs(), 45);
        for bad in ["0", "abc", "86401"] {
            let mut pairs = valid();
            pairs.push(("SUPANEON_STALL_TIMEOUT_SECONDS", bad));
            let p = problems_of(&pairs);
            assert!(
                p.iter()
                    .any(|p| p.setting == "SUPANEON_STALL_TIMEOUT_SECONDS"),
                "{bad}: {p:?}"
            );
        }
    }

    #[test]
    fn an_unverified_source_is_a_warning_naming_verify_full() {
        let mut pairs = valid();
        pairs[0].1 = "postgresql://u:p@db.example.com:5432/db?sslmode=require";
        let (_, warnings) = validate(&env(&pairs), None).expect("valid");
        assert!(
            warnings
                .iter()
                .any(|w| w.0.contains("not be verified") && w.0.contains("verify-full")),
            "{warnings:?}"
        );
    }

    #[test]
    fn query_parameters_libpq_rejects_are_reported() {
        let mut pairs = valid();
        let url = format!("{URL}&target_session_attrs=anything");
        pairs[0].1 = &url;
        let p = problems_of(&pairs);
        assert!(
            p.len() == 1 && p[0].message.contains("target_session_attrs"),
            "{p:?}"
        );
        let url = format!("{URL}&pgbouncer=true");
        pairs[0].1 = &url;
        let p = problems_of(&pairs);
        assert!(
            p.len() == 1 && p[0].message.contains("\"pgbouncer\""),
            "{p:?}"
        );
        let url = format!("{URL}&target_session_attrs=read-write&keepalives_idle=20");
        pairs[0].1 = &url;
        assert!(problems_of(&pairs).is_empty());
    }

    #[test]
    fn transaction_pooler_port_is_refused_with_an_explanation() {
        let mut pairs = valid();
        let url = URL.replace(":5432", ":6543");
        pairs[0].1 = &url;
        let p = problems_of(&pairs);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].message.contains("session pooler on port 5432"),
            "{p:?}"
        );
    }

    #[test]
    fn pooler_user_without_ref_and_direct_host_on_actions_warn() {
        let mut pairs = valid();
        pairs[0].1 = "postgresql://postgres:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres?sslmode=require";
        let (_, w) = validate(&env(&pairs), None).unwrap();
        assert!(
            w.iter().any(|w| w.0.contains("Tenant or user not found")),
            "{w:?}"
        );

        let mut pairs = valid();
        pairs[0].1 = "postgresql://postgres:pw@db.abcdefghijklmnop.supabase.co:5432/postgres?sslmode=require";
        let (_, w) = validate(&env(&pairs), None).unwrap();
        assert!(w.is_empty(), "no IPv6 warning outside Actions: {w:?}");
        pairs.push(("GITHUB_ACTIONS", "true"));
        let (_, w) = validate(&env(&pairs), None).unwrap();
        assert!(w.iter().any(|w| w.0.contains("IPv6")), "{w:?}");
    }

    #[test]
    fn booleans_and_numbers_are_parsed_as_workflow_authors_write_them() {
        for ok in ["true", "True", "TRUE", "false", "False", "FALSE"] {
            let mut pairs = valid();
            pairs.push(("SUPANEON_PRUNE_AFTER_BACKUP", ok));
            assert!(problems_of(&pairs).is_empty(), "{ok}");
        }
        let mut pairs = valid();
        pairs.push(("SUPANEON_PRUNE_AFTER_BACKUP", "yes"));
        pairs.push(("SUPANEON_KEEP_LAST", "seven"));
        pairs.push(("NEON_PROJECT_ID", "Not A Project"));
        let p = problems_of(&pairs);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p
            .iter()
            .any(|p| p.setting == "SUPANEON_KEEP_LAST" && p.message.contains("\"seven\"")));
        assert!(p
            .iter()
            .any(|p| p.setting == "SUPANEON_PRUNE_AFTER_BACKUP" && p.message.contains("True")));
    }

    #[test]
    fn action_inputs_name_inputs_and_treat_empty_as_unset() {
        let mut vars: Vec<(String, String)> = SETTINGS
            .iter()
            .map(|d| {
                (
                    format!("INPUT_{}", d.input.to_uppercase()),
                    d.default.to_string(),
                )
            })
            .collect();
        vars.push(("PATH".into(), "/bin".into()));
        let inputs = ActionInputs::from_vars(vars.clone()).expect("all inputs present");
        let p = validate(&RawSettings::from_action(&inputs), None).unwrap_err();
        assert!(
            p.iter()
                .any(|p| p.setting == "input \"supabase-database-url\""),
            "{p:?}"
        );

        vars.push(("INPUT_NEON-PROJCT-ID".into(), "x".into()));
        ActionInputs::from_vars(vars.clone()).expect("a stray input is not fatal");
        assert_eq!(
            ActionInputs::unknown_inputs(vars.iter().map(|(k, _)| k)),
            vec!["INPUT_NEON-PROJCT-ID".to_string()]
        );
    }

    #[test]
    fn yaml_unknown_keys_name_the_nearest_valid_key() {
        let p = parse_file_settings("schemas:\n  exlude: [a]\nretention:\n  keep-lst: 3\n")
            .unwrap_err();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].setting == "schemas.exlude" && p[0].message.contains("\"exclude\""),
            "{p:?}"
        );
        assert!(p[1].message.contains("\"keep-last\""), "{p:?}");
    }

    #[test]
    fn yaml_settings_are_read() {
        let s = parse_file_settings(
            "schemas:\n  exclude: [audit]\ntables:\n  exclude: [public.big]\n  exclude-data: [public.logs]\nretention:\n  keep-last: 3\nhealth-checks:\n  - name: users exist\n    sql: select count(*) > 0 from public.profiles\n",
        )
        .unwrap();
        assert_eq!(s.tables.exclude, vec!["public.big"]);
        assert_eq!(s.retention.keep_last, Some(3));
        assert_eq!(s.health_checks.len(), 1);
        assert!(parse_file_settings("tables:\n  exclude: [nodot]\n").is_err());
    }

    #[test]
    fn redacted_lines_hold_no_secret() {
        let (cfg, _) = validate(&env(&valid()), None).unwrap();
        let text = format!("{:?}", cfg.redacted_lines());
        assert!(
            !text.contains("s3cret") && !text.contains("napi_unit"),
            "{text}"
        );
        let debug = format!("{cfg:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("napi_unit"),
            "{debug}"
        );
    }
}
