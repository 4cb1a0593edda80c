//! Database-level settings (`ALTER DATABASE … SET app.settings.*`) and the settings of the roles the
//! target was prepared with (`ALTER ROLE authenticated SET statement_timeout …`), carried from the
//! source to the branch where the branch's role may set them, and reported by name where not. A
//! mirror's sync brings them to the source's again: changed ones set, removed ones reset.
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

    /// Whether `other` is the same setting (role, scope and name), whatever its value.
    fn same_slot(&self, other: &Setting) -> bool {
        self.role == other.role && self.in_database == other.in_database && self.name == other.name
    }

    /// The statement that removes it from the target's current database `dbname`.
    fn reset_sql(&self, dbname: &str) -> String {
        let name = self.quoted_name();
        match (&self.role, self.in_database) {
            (None, _) => format!("ALTER DATABASE {} RESET {name}", quote_ident(dbname)),
            (Some(role), false) => format!("ALTER ROLE {} RESET {name}", quote_ident(role)),
            (Some(role), true) => format!(
                "ALTER ROLE {} IN DATABASE {} RESET {name}",
                quote_ident(role),
                quote_ident(dbname)
            ),
        }
    }

    fn quoted_name(&self) -> String {
        self.name
            .split('.')
            .map(quote_ident)
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The statement that sets it on the target's current database `dbname`.
    fn sql(&self, dbname: &str) -> String {
        let name = self.quoted_name();
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

/// The settings of `client`'s current database and of `roles` (global or in this database).
pub async fn read(
    client: &impl GenericClient,
    roles: &[String],
) -> Result<Vec<Setting>, InspectError> {
    let rows = client
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
    let dbname = current_database(target).await?;
    let (_, refused) = execute_each(
        target,
        settings,
        |s| s.sql(&dbname),
        "was not carried over to the branch",
    )
    .await;
    Ok(refused)
}

/// What [`sync`] changed on the target.
#[derive(Debug, Default)]
pub struct Synced {
    pub set: usize,
    pub reset: usize,
    /// One line per setting the target refused (without the value).
    pub refused: Vec<String>,
}

/// Brings `target`'s settings (its current database's and `roles'`) to `wanted`, the source's: sets
/// those missing or different, resets those the source no longer has.
pub async fn sync(
    target: &impl GenericClient,
    wanted: &[Setting],
    roles: &[String],
) -> Result<Synced, InspectError> {
    let have = read(target, roles).await?;
    let to_set: Vec<&Setting> = wanted.iter().filter(|w| !have.contains(w)).collect();
    let to_reset: Vec<&Setting> = have
        .iter()
        .filter(|h| !wanted.iter().any(|w| w.same_slot(h)))
        .collect();
    if to_set.is_empty() && to_reset.is_empty() {
        return Ok(Synced::default());
    }
    let dbname = current_database(target).await?;
    let (reset, mut refused) = execute_each(
        target,
        to_reset,
        |s| s.reset_sql(&dbname),
        "is gone from the source but could not be removed from the mirror",
    )
    .await;
    let (set, refused_set) = execute_each(
        target,
        to_set,
        |s| s.sql(&dbname),
        "was not carried over to the mirror",
    )
    .await;
    refused.extend(refused_set);
    Ok(Synced {
        set,
        reset,
        refused,
    })
}

async fn current_database(target: &impl GenericClient) -> Result<String, InspectError> {
    Ok(target
        .query_one("SELECT pg_catalog.current_database()::text", &[])
        .await
        .map_err(|source| InspectError::Query {
            what: "reading the branch's database name".into(),
            source,
        })?
        .get(0))
}

/// Runs `statement` of each of `settings` on `target`: how many succeeded, and a line per setting
/// refused, saying it `what`.
async fn execute_each<'a>(
    target: &impl GenericClient,
    settings: impl IntoIterator<Item = &'a Setting>,
    statement: impl Fn(&Setting) -> String,
    what: &str,
) -> (usize, Vec<String>) {
    let (mut done, mut refused) = (0, Vec::new());
    for setting in settings {
        match target.batch_execute(&statement(setting)).await {
            Ok(()) => done += 1,
            Err(e) => refused.push(refusal(setting, what, &e)),
        }
    }
    (done, refused)
}

/// The report's line for a setting the target refused: its name and the server's message, never
/// its value (which may be a secret).
fn refusal(setting: &Setting, what: &str, e: &tokio_postgres::Error) -> String {
    let message = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string());
    let message = if setting.value.is_empty() {
        message
    } else {
        message.replace(&setting.value, "…")
    };
    format!("{} {what}: {message}", setting.describe())
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
    fn resets_name_the_slot_and_slots_ignore_values() {
        assert_eq!(
            setting(None, true, "app.settings.api_url", "x").reset_sql("neondb"),
            r#"ALTER DATABASE "neondb" RESET "app"."settings"."api_url""#
        );
        assert_eq!(
            setting(Some("anon"), false, "statement_timeout", "3s").reset_sql("d"),
            r#"ALTER ROLE "anon" RESET "statement_timeout""#
        );
        assert_eq!(
            setting(Some("anon"), true, "search_path", "public").reset_sql("d"),
            r#"ALTER ROLE "anon" IN DATABASE "d" RESET "search_path""#
        );
        let a = setting(Some("anon"), true, "search_path", "public");
        assert!(a.same_slot(&setting(Some("anon"), true, "search_path", "other")));
        assert!(!a.same_slot(&setting(Some("anon"), false, "search_path", "public")));
        assert!(!a.same_slot(&setting(None, true, "search_path", "public")));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = setting(None, true, "app.settings.jwt_secret", "very-secret");
        assert!(!format!("{s:?}").contains("very-secret"));
        assert!(!s.describe().contains("very-secret"));
    }
}
