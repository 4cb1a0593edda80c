//! Raw strings → one validated [`Config`], every problem reported at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::file::{parse_file_settings, FileSettings};
use super::*;
use crate::error::Problem;
use crate::pg::conn::ConnSpec;
use crate::pg::content::ContentPolicy;
use crate::secret::Secret;

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
    let strategy = v.strategy();
    let sync_streams = v.number("sync-streams", 1, 8);
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
    let keep_awake = v.keep_awake();
    let github_token = raw
        .get("github-token")
        .map(|t| Secret::new(t.value.clone()));
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
            Some(strategy),
            Some(sync_streams),
            Some(expiry),
            Some(max_age),
            Some(dry_run),
            Some(stall_timeout),
        ) = (
            mode,
            keep_last,
            prune_after_backup,
            verify,
            strategy,
            sync_streams,
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
            strategy,
            sync_streams: sync_streams as usize,
            backup_branch,
            restore_test_expiry_hours: expiry,
            max_backup_age_hours: max_age,
            dry_run,
            health_checks: file.health_checks,
            config_file: raw.get("config-file").map(|f| PathBuf::from(&f.value)),
            pg_bin_dirs,
            on_github_actions: raw.on_github_actions,
            stall_timeout: std::time::Duration::from_secs(stall_timeout),
            keep_awake,
            github_token,
        };
        Ok((config, warnings))
    } else {
        Err(problems)
    }
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

    fn strategy(&mut self) -> Option<Strategy> {
        let value = self.raw.value_or_default("strategy")?;
        match value.as_str() {
            "snapshot" => Some(Strategy::Snapshot),
            "full" => Some(Strategy::Full),
            _ => {
                self.problem(
                    "strategy",
                    format!("\"{value}\" is not a backup strategy; expected snapshot or full"),
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

    /// `supabase-url` and `supabase-anon-key`: both or neither.
    fn keep_awake(&mut self) -> Option<KeepAwakeSettings> {
        let url = self.raw.get("supabase-url").map(|u| u.value.clone());
        let anon_key = self
            .raw
            .get("supabase-anon-key")
            .map(|k| Secret::new(k.value.clone()));
        match (&url, &anon_key) {
            (Some(_), None) => {
                let other = self.raw.name_of("supabase-url");
                self.problem("supabase-anon-key", format!("is not set, but {other} is: the keep-awake ping needs both (the project's anon key: Supabase dashboard, Project Settings, API Keys)"));
            }
            (None, Some(_)) => {
                let other = self.raw.name_of("supabase-anon-key");
                self.problem("supabase-url", format!("is not set, but {other} is: the keep-awake ping needs both (the project URL, https://<project-ref>.supabase.co)"));
            }
            _ => {}
        }
        let url = url.and_then(|u| self.project_url(&u));
        Some(KeepAwakeSettings {
            url: url?,
            anon_key: anon_key?,
        })
    }

    /// The Supabase project URL: https (plain http only to a loopback host, for tests), no path.
    fn project_url(&mut self, value: &str) -> Option<String> {
        let key = "supabase-url";
        let expected = "expected the project URL, https://<project-ref>.supabase.co";
        let url = match url::Url::parse(value) {
            Ok(url) => url,
            Err(e) => {
                self.problem(key, format!("is not a URL ({e}); {expected}"));
                return None;
            }
        };
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                self.problem(key, "uses plain http to a remote host, which would send the anon key unencrypted; use https (plain http is accepted only to 127.0.0.1, ::1 and localhost, for tests)");
                return None;
            }
            other => {
                self.problem(key, format!("has scheme \"{other}\"; {expected}"));
                return None;
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            self.problem(key, format!("has no host; {expected}"));
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.problem(
                key,
                format!("must not carry a user name or password; {expected}"),
            );
            return None;
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            self.problem(
                key,
                format!(
                    "has a path, query or fragment; {expected} (the ping adds /rest/v1/ itself)"
                ),
            );
            return None;
        }
        Some(url.as_str().trim_end_matches('/').to_string())
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
