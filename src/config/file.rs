//! The optional YAML file: schemas, tables, retention tiers and health checks; unknown keys are named with
//! the nearest valid key.

use serde::Deserialize;

use super::HealthCheck;
use crate::error::Problem;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileSettings {
    #[serde(default)]
    pub(super) schemas: FileSchemas,
    #[serde(default)]
    pub(super) tables: FileTables,
    #[serde(default)]
    pub(super) retention: FileRetention,
    #[serde(default)]
    pub(super) health_checks: Vec<HealthCheck>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileSchemas {
    #[serde(default)]
    pub(super) include: Vec<String>,
    #[serde(default)]
    pub(super) exclude: Vec<String>,
    pub(super) keep_auth: Option<bool>,
    pub(super) keep_storage: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileTables {
    #[serde(default)]
    pub(super) exclude: Vec<String>,
    #[serde(default)]
    pub(super) exclude_data: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileRetention {
    pub(super) keep_last: Option<u32>,
    pub(super) keep_daily: Option<u32>,
    pub(super) keep_weekly: Option<u32>,
    pub(super) incomplete_grace_hours: Option<u32>,
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

pub(super) fn parse_file_settings(text: &str) -> Result<FileSettings, Vec<Problem>> {
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
