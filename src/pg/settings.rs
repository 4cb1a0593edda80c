//! Database-level settings (`ALTER DATABASE … SET app.settings.*`) and the settings of the roles the
//! target was prepared with (`ALTER ROLE authenticated SET statement_timeout …`), carried from the
//! source to the branch where the branch's role may set them, and reported by name where not.
//!
//! Values can be secrets (`app.settings.jwt_secret`): they are never logged or reported, only names.

use tokio_postgres::GenericClient;

use crate::pg::inspect::{quote_ident, quote_literal, InspectError};

/// One `name=value` of `pg_db_role_setting`.
#[derive(Clone, PartialEq, Eq)]
pub struct Setting {
    /// `None`: a database-level setting.
    pub role: Option<String>,
    /// A role's setting that applies only in this database (`ALTER ROLE … IN DATABASE …`).
    pub in_database: bool,
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for Setting {
    // The value may be a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setting")
            .field("role", &self.role)
            .field("in_database", &self.in_database)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Setting {
    /// How the report names it.
    pub fn describe(&self) -> String {
        match &self.role {
            None => format!("database setting {}", self.name),
            Some(role) => format!("setting {} of role {role}", self.name),
        }
    }

    /// The statement that sets it on the target's current database `dbname`.
    fn sql(&self, dbname: &str) -> String {
        let name = self
            .name
            .split('.')
            .map(quote_ident)
            .collect::<Vec<_>>()
            .join(".");
        let value = setting_value(&self.name, &self.value);
        match (&self.role, self.in_database) {
            (None, _) => format!(
                "ALTER DATABASE {} SET {name} TO {value}",
                quote_ident(dbname)
            ),
            (Some(role), false) => {
                format!("ALTER ROLE {} SET {name} TO {value}", quote_ident(role))
            }
            (Some(role), true) => format!(
                "ALTER ROLE {} IN DATABASE {} SET {name} TO {value}",
                quote_ident(role),
                quote_ident(dbname)
            ),
        }
    }
}

/// Settings whose stored value is a list of possibly double-quoted names (GUC_LIST_QUOTE): each
/// element becomes its own literal, as `SET search_path TO 'a', 'b'` expects.
const LIST_SETTINGS: &[&str] = &[
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "local_preload_libraries",
];

fn setting_value(name: &str, value: &str) -> String {
    if !LIST_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        return quote_literal(value);
    }
    split_list(value)
        .iter()
        .map(|e| quote_literal(e))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `"$user", public` → [`$user`, `public`].
fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut current).trim().to_string()),
            _ => current.push(c),
        }
    }
    let last = current.trim().to_string();
    if !last.is_empty() || !out.is_empty() {
        out.push(last);
    }
    out
}

/// The source's settings for its current database and for `roles` (global or in this database).
pub async fn source_settings(
    source: &impl GenericClient,
    roles: &[String],
) -> Result<Vec<Setting>, InspectError> {
    let rows = source
        .query(
            "SELECT r.rolname::text, s.setdatabase <> 0, c.setting \
               FROM pg_catalog.pg_db_role_setting s \
               LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole \
               CROSS JOIN LATERAL pg_catalog.unnest(s.setconfig) WITH ORDINALITY AS c(setting, n) \
              WHERE (s.setdatabase = 0 OR s.setdatabase = \
                       (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())) \
                AND ((s.setrole = 0 AND s.setdatabase <> 0) OR r.rolname = ANY ($1::text[])) \
              ORDER BY 1 NULLS FIRST, 2, c.n",
            &[&roles],
        )
        .await
        .map_err(|source| InspectError::Query {
            what: "reading the database and role settings".into(),
            source,
        })?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let setting: String = r.get(2);
            let (name, value) = setting.split_once('=')?;
            Some(Setting {
                role: r.get(0),
                in_database: r.get(1),
                name: name.to_string(),
                value: value.to_string(),
            })
        })
        .collect())
}

/// Sets each of `settings` on `target`; returns one line per setting it refused (without the value).
pub async fn apply(
    target: &impl GenericClient,
    settings: &[Setting],
) -> Result<Vec<String>, InspectError> {
    if settings.is_empty() {
        return Ok(Vec::new());
    }
    let dbname: String = target
        .query_one("SELECT pg_catalog.current_database()::text", &[])
        .await
        .map_err(|source| InspectError::Query {
            what: "reading the branch's database name".into(),
            source,
        })?
        .get(0);
    let mut refused = Vec::new();
    for setting in settings {
        if let Err(e) = target.batch_execute(&setting.sql(&dbname)).await {
            let message = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            let message = if setting.value.is_empty() {
                message
            } else {
                message.replace(&setting.value, "…")
            };
            refused.push(format!(
                "{} was not carried over to the branch: {message}",
                setting.describe()
            ));
        }
    }
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(role: Option<&str>, in_database: bool, name: &str, value: &str) -> Setting {
        Setting {
            role: role.map(String::from),
            in_database,
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn statements_quote_names_and_values() {
        assert_eq!(
            setting(None, true, "app.settings.api_url", "https://x/'y'").sql("neondb"),
            r#"ALTER DATABASE "neondb" SET "app"."settings"."api_url" TO 'https://x/''y'''"#
        );
        assert_eq!(
            setting(Some("authenticated"), false, "statement_timeout", "8s").sql("neondb"),
            r#"ALTER ROLE "authenticated" SET "statement_timeout" TO '8s'"#
        );
        assert_eq!(
            setting(Some("anon"), true, "search_path", r#""$user", public"#).sql("d"),
            r#"ALTER ROLE "anon" IN DATABASE "d" SET "search_path" TO '$user', 'public'"#
        );
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = setting(None, true, "app.settings.jwt_secret", "very-secret");
        assert!(!format!("{s:?}").contains("very-secret"));
        assert!(!s.describe().contains("very-secret"));
    }
}
