//! Where settings come from: the Action's inputs, the environment and flags, gathered as raw strings that
//! remember their origin (so every message names a setting as the user wrote it).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::Problem;

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
    SettingDef { input: "strategy", env: "SUPANEON_STRATEGY", description: "How backups are made: snapshot (one verified mirror branch, synced incrementally; each backup a copy-on-write child of it) or full (each backup a fresh full restore).", default: "snapshot" },
    SettingDef { input: "sync-streams", env: "SUPANEON_SYNC_STREAMS", description: "snapshot: how many tables are compared and copied at once (1 to 8).", default: "2" },
    SettingDef { input: "verify", env: "SUPANEON_VERIFY", description: "Verification of a backup against the source: full (row counts and checksums) or counts.", default: "full" },
    SettingDef { input: "backup-branch", env: "SUPANEON_BACKUP_BRANCH", description: "restore-test, failover: the backup branch to test or fail over to; default: the newest complete backup.", default: "" },
    SettingDef { input: "max-backup-age-hours", env: "SUPANEON_MAX_BACKUP_AGE_HOURS", description: "restore-test: fail when the newest complete backup is older than this many hours (a stopped schedule turns the workflow red).", default: "26" },
    SettingDef { input: "restore-test-expiry-hours", env: "SUPANEON_RESTORE_TEST_EXPIRY_HOURS", description: "restore-test: hours after which Neon deletes a kept (failed) test branch.", default: "72" },
    SettingDef { input: "dry-run", env: "SUPANEON_DRY_RUN", description: "prune: print the plan, delete nothing.", default: "false" },
    SettingDef { input: "config-file", env: "SUPANEON_CONFIG_FILE", description: "Path to an optional YAML file with schemas, tables, retention tiers and health checks.", default: "" },
    SettingDef { input: "pg-bin-dir", env: "SUPANEON_PG_BIN_DIR", description: "Directory holding pg_dump and pg_restore of the source's major version, if not in a standard place.", default: "" },
    SettingDef { input: "supabase-url", env: "SUPANEON_SUPABASE_URL", description: "The Supabase project URL, https://<ref>.supabase.co: with supabase-anon-key, every run first sends one request through the project's REST API (keep-awake ping).", default: "" },
    SettingDef { input: "supabase-anon-key", env: "SUPANEON_SUPABASE_ANON_KEY", description: "The project's anon (public) API key, for the keep-awake ping; a secret: masked, never logged.", default: "" },
    SettingDef { input: "github-token", env: "SUPANEON_GITHUB_TOKEN", description: "A token with actions: write: after its work every run re-enables the workflow it runs in, so GitHub does not disable its schedule after 60 days without repository activity.", default: "" },
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
    pub strategy: String,
    pub sync_streams: String,
    pub verify: String,
    pub backup_branch: String,
    pub restore_test_expiry_hours: String,
    pub max_backup_age_hours: String,
    pub dry_run: String,
    pub config_file: String,
    pub pg_bin_dir: String,
    pub supabase_url: String,
    pub supabase_anon_key: String,
    pub github_token: String,
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

    fn pairs(&self) -> [(&'static str, &str); 22] {
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
            ("strategy", &self.strategy),
            ("sync-streams", &self.sync_streams),
            ("verify", &self.verify),
            ("backup-branch", &self.backup_branch),
            ("restore-test-expiry-hours", &self.restore_test_expiry_hours),
            ("max-backup-age-hours", &self.max_backup_age_hours),
            ("dry-run", &self.dry_run),
            ("config-file", &self.config_file),
            ("pg-bin-dir", &self.pg_bin_dir),
            ("supabase-url", &self.supabase_url),
            ("supabase-anon-key", &self.supabase_anon_key),
            ("github-token", &self.github_token),
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
    pub(super) values: BTreeMap<&'static str, RawValue>,
    /// Whether we run inside GitHub Actions (changes some warnings).
    pub on_github_actions: bool,
    /// `SUPANEON_NEON_CALL_DEADLINE_SECONDS`: advanced tuning, environment only.
    pub(super) neon_call_deadline: Option<String>,
    /// `SUPANEON_NEON_CA_FILE`: extra roots for Neon branch certificates, environment only.
    pub(super) neon_ca_file: Option<String>,
    /// `SUPANEON_STALL_TIMEOUT_SECONDS`: the relay's watchdog, environment only.
    pub(super) stall_timeout: Option<String>,
}

/// How long one Neon API call may take across its retries, unless tuned.
pub const DEFAULT_NEON_CALL_DEADLINE_SECONDS: u64 = 90;
pub(super) const NEON_CALL_DEADLINE_ENV: &str = "SUPANEON_NEON_CALL_DEADLINE_SECONDS";
/// How long the dump → restore stream may move no byte before the run fails, unless tuned: long enough
/// for pg_dump to wait out a short lock on the source, short enough that a hung run frees the source.
pub const DEFAULT_STALL_TIMEOUT_SECONDS: u64 = 300;
pub(super) const STALL_TIMEOUT_ENV: &str = "SUPANEON_STALL_TIMEOUT_SECONDS";
/// A PEM file of roots trusted for Neon branch certificates besides the public roots: for a private
/// Neon-compatible endpoint, or the local emulator's test CA. Verification stays verify-full with
/// channel binding; this only adds anchors.
pub const NEON_CA_FILE_ENV: &str = "SUPANEON_NEON_CA_FILE";

pub(super) const SECRET_INPUTS: &[&str] = &[
    "supabase-database-url",
    "neon-api-key",
    "supabase-anon-key",
    "github-token",
];

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

    pub(super) fn get(&self, key: &str) -> Option<&RawValue> {
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

    pub(super) fn value_or_default(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| v.value.clone()).or_else(|| {
            SETTINGS
                .iter()
                .find(|d| d.input == key)
                .map(|d| d.default.to_string())
                .filter(|d| !d.is_empty())
        })
    }
}
