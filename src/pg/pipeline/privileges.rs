//! GRANTs, REVOKEs and default privileges of the dumped objects, restored one statement at a time.
//!
//! The streamed and post-data restores run with `--no-privileges`: one ACL entry of the archive is a
//! single multi-statement query, so one grant to a role the target lacks (`postgres`, `dashboard_user`)
//! would take the entry's other grants (to `anon`, `authenticated`) down with it. Instead the ACL and
//! DEFAULT ACL entries of the in-memory schema archive are turned into SQL (`pg_restore -f -`, no
//! connection), and [`apply`] runs each statement on its own:
//!
//! - a grant to a role the target does not have is a benign, reported error (`restore_errors`);
//! - default privileges `FOR ROLE <the dumping role>` become `FOR ROLE CURRENT_USER`: the branch's role
//!   is the one that creates objects after a failover, as the dumping role did before;
//! - any other error is fatal, like any pg_restore error off the allow-list.

use tokio_postgres::GenericClient;

use super::{CancelSignal, ListFile, PipelineError, SchemaArchive};
use crate::pg::inspect::quote_ident;
use crate::pg::restore_errors::{is_benign, RestoreError};
use crate::pg::tools::PgTools;

/// One privilege statement and the archive entry it came from (`ACL public.TABLE todos`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivilegeStatement {
    pub object: String,
    pub sql: String,
}

/// Is this `pg_restore --list` line an ACL or DEFAULT ACL entry?
fn is_acl_entry(line: &str) -> bool {
    let Some((_, rest)) = line.split_once("; ") else {
        return false;
    };
    let mut words = rest.splitn(4, ' ');
    let (_class, _oid) = (words.next(), words.next());
    match words.next() {
        Some("ACL") => true,
        Some("DEFAULT") => words.next().is_some_and(|w| w.starts_with("ACL ")),
        _ => false,
    }
}

/// The privilege statements of `schema`, in archive order.
pub async fn statements(
    tools: &PgTools,
    schema: &SchemaArchive,
    cancel: CancelSignal,
) -> Result<Vec<PrivilegeStatement>, PipelineError> {
    let entries: Vec<&str> = schema
        .toc
        .iter()
        .map(String::as_str)
        .filter(|l| is_acl_entry(l))
        .collect();
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let list = ListFile::new(entries.into_iter())?;
    let text = super::sql_text::archive_sql(tools, schema, Some(&list), cancel).await?;
    Ok(parse(&text))
}

/// The GRANT, REVOKE and ALTER DEFAULT PRIVILEGES statements of a plain-SQL ACL listing, each with
/// the object its `-- Name: …; Type: …; Schema: …` header names. Everything else (SET lines, psql
/// meta-commands such as `\restrict`, comments) is left out.
pub fn parse(sql: &str) -> Vec<PrivilegeStatement> {
    let mut out = Vec::new();
    let mut object = String::from("ACL");
    let mut pending = String::new();
    for line in sql.lines() {
        if pending.is_empty() {
            if let Some(header) = line.strip_prefix("-- Name: ") {
                object = header_object(header);
                continue;
            }
            if line.starts_with("--") || line.starts_with('\\') || line.trim().is_empty() {
                continue;
            }
        }
        if !pending.is_empty() {
            pending.push('\n');
        }
        pending.push_str(line);
        if ends_statement(&pending) {
            let statement = pending.trim().trim_end_matches(';').to_string();
            pending.clear();
            let upper = statement.to_ascii_uppercase();
            if upper.starts_with("GRANT ")
                || upper.starts_with("REVOKE ")
                || upper.starts_with("ALTER DEFAULT PRIVILEGES ")
            {
                out.push(PrivilegeStatement {
                    object: object.clone(),
                    sql: statement,
                });
            }
        }
    }
    out
}

/// `TABLE todos; Type: ACL; Schema: public; Owner: -` → `ACL public.TABLE todos`.
fn header_object(header: &str) -> String {
    let mut parts = header.split("; ");
    let name = parts.next().unwrap_or_default();
    let (mut kind, mut schema) = ("ACL", "-");
    for part in parts {
        if let Some(k) = part.strip_prefix("Type: ") {
            kind = k;
        } else if let Some(s) = part.strip_prefix("Schema: ") {
            schema = s;
        }
    }
    if schema == "-" {
        format!("{kind} {name}")
    } else {
        format!("{kind} {schema}.{name}")
    }
}

/// Does `text` end with a `;` outside quotes and identifiers?
fn ends_statement(text: &str) -> bool {
    let (mut single, mut double) = (false, false);
    let mut last_significant = ' ';
    for c in text.chars() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            _ => {}
        }
        if !c.is_whitespace() {
            last_significant = c;
        }
    }
    !single && !double && last_significant == ';'
}

/// What applying the privileges did.
#[derive(Debug, Default, Clone)]
pub struct PrivilegesReport {
    pub applied: usize,
    /// Errors on the allow-list (a grantee the target lacks), reported.
    pub benign: Vec<RestoreError>,
    /// Everything else: the backup fails.
    pub fatal: Vec<RestoreError>,
}

/// Runs each statement on `target` in its own implicit transaction. `dumping_role` is the source role
/// whose default privileges become the target role's.
pub async fn apply(
    target: &impl GenericClient,
    statements: &[PrivilegeStatement],
    dumping_role: &str,
) -> PrivilegesReport {
    let mut report = PrivilegesReport::default();
    let for_role = format!(
        "ALTER DEFAULT PRIVILEGES FOR ROLE {} ",
        pg_dump_ident(dumping_role)
    );
    for statement in statements {
        let sql = match statement.sql.strip_prefix(&for_role) {
            Some(rest) => format!("ALTER DEFAULT PRIVILEGES FOR ROLE CURRENT_USER {rest}"),
            None => statement.sql.clone(),
        };
        match target.batch_execute(&sql).await {
            Ok(()) => report.applied += 1,
            Err(e) => {
                let message = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                let error = RestoreError {
                    message,
                    object: Some(statement.object.clone()),
                };
                if is_benign(&error) {
                    report.benign.push(error);
                } else {
                    report.fatal.push(error);
                }
            }
        }
    }
    report
}

/// A role name as pg_dump writes it: bare when that reads back the same, else double-quoted.
fn pg_dump_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"--
-- PostgreSQL database dump
--

\restrict 5ed6MEfQFHhBmSCDqJJtx

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: TABLE t; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.t TO anon;
GRANT SELECT ON TABLE public.t TO "odd;role";


--
-- Name: DEFAULT PRIVILEGES FOR TABLES; Type: DEFAULT ACL; Schema: public; Owner: -
--

ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES TO anon;

\unrestrict 5ed6MEfQFHhBmSCDqJJtx
"#;

    #[test]
    fn only_privilege_statements_are_kept_with_their_object() {
        let parsed = parse(LISTING);
        let got: Vec<(&str, &str)> = parsed
            .iter()
            .map(|s| (s.object.as_str(), s.sql.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("ACL public.TABLE t", "GRANT SELECT ON TABLE public.t TO anon"),
                (
                    "ACL public.TABLE t",
                    "GRANT SELECT ON TABLE public.t TO \"odd;role\""
                ),
                (
                    "DEFAULT ACL public.DEFAULT PRIVILEGES FOR TABLES",
                    "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES TO anon"
                ),
            ]
        );
    }

    #[test]
    fn acl_entries_are_recognised_in_a_toc() {
        assert!(is_acl_entry("2576; 0 0 ACL public TABLE t admin"));
        assert!(is_acl_entry(
            "2055; 826 16389 DEFAULT ACL public DEFAULT PRIVILEGES FOR TABLES postgres"
        ));
        assert!(!is_acl_entry("217; 1259 16386 TABLE public t admin"));
        assert!(!is_acl_entry("2575; 0 0 COMMENT public TABLE t admin"));
    }

    #[test]
    fn role_names_are_written_as_pg_dump_does() {
        assert_eq!(pg_dump_ident("postgres"), "postgres");
        assert_eq!(pg_dump_ident("Admin"), "\"Admin\"");
        assert_eq!(pg_dump_ident("a-b"), "\"a-b\"");
    }
}
