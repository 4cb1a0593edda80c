//! Finding `pg_dump` and `pg_restore` of one PostgreSQL major version.
//!
//! pg_dump refuses servers newer than itself and emits SQL for servers at least as new as itself
//! (pg_dump 17 writes `SET transaction_timeout`, which a 15 server rejects), so the client major must
//! equal the source major, and the Neon branch runs that major too.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming an extra directory to search first (after the configured ones).
pub const BIN_DIR_ENV: &str = "SUPANEON_PG_BIN_DIR";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTools {
    pub major: u32,
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    /// `pg_dump --version` output, e.g. `pg_dump (PostgreSQL) 17.4`.
    pub version: String,
    /// Whether their libpq knows `require_auth` (libpq 16 and newer), which limits the password to
    /// SCRAM on a connection whose certificate is not verified.
    pub libpq_require_auth: bool,
}

/// One directory looked at, and why it did not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    pub dir: PathBuf,
    pub outcome: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    NotFound { major: u32, tried: Vec<Tried> },
}

impl fmt::Display for ToolsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolsError::NotFound { major, tried } => {
                writeln!(
                    f,
                    "no pg_dump/pg_restore of PostgreSQL {major} found (the client major must equal the source database's major); looked in:"
                )?;
                for t in tried {
                    writeln!(f, "  - {}: {}", t.dir.display(), t.outcome)?;
                }
                write!(
                    f,
                    "fix: install them with `apt-get install postgresql-client-{major}` from the PGDG repository (apt.postgresql.org), or set `pg-bin-dir` ({BIN_DIR_ENV}) to the directory that holds them"
                )
            }
        }
    }
}

/// Finds pg_dump and pg_restore of exactly `major`. Search order: `extra_dirs` (configuration),
/// `$SUPANEON_PG_BIN_DIR`, `/usr/lib/postgresql/<major>/bin`, `/usr/pgsql-<major>/bin`,
/// `/usr/local/pgsql/bin`, then `$PATH`. A directory serves only when both tools are there and both
/// report `major` from `--version`.
pub fn find_tools(major: u32, extra_dirs: &[PathBuf]) -> Result<PgTools, ToolsError> {
    let mut tried = Vec::new();
    for dir in candidate_dirs(major, extra_dirs) {
        match probe(&dir, major) {
            Ok(tools) => return Ok(tools),
            Err(outcome) => tried.push(Tried { dir, outcome }),
        }
    }
    Err(ToolsError::NotFound { major, tried })
}

fn candidate_dirs(major: u32, extra_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = extra_dirs.to_vec();
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")));
    dirs.push(PathBuf::from(format!("/usr/pgsql-{major}/bin")));
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|d| !d.as_os_str().is_empty()));
    }
    let mut unique = Vec::new();
    for dir in dirs {
        if !unique.contains(&dir) {
            unique.push(dir);
        }
    }
    unique
}

fn probe(dir: &Path, major: u32) -> Result<PgTools, String> {
    let pg_dump = dir.join("pg_dump");
    let pg_restore = dir.join("pg_restore");
    let missing: Vec<&str> = [("pg_dump", &pg_dump), ("pg_restore", &pg_restore)]
        .into_iter()
        .filter(|(_, p)| !p.is_file())
        .map(|(name, _)| name)
        .collect();
    if !missing.is_empty() {
        return Err(format!("{} not present", missing.join(" and ")));
    }
    let dump_version = version_of(&pg_dump)?;
    let restore_version = version_of(&pg_restore)?;
    for (name, version) in [("pg_dump", &dump_version), ("pg_restore", &restore_version)] {
        match major_of(version) {
            Some(found) if found == major => {}
            Some(found) => return Err(format!("{name} is PostgreSQL {found} (\"{version}\")")),
            None => return Err(format!("{name} --version printed \"{version}\"")),
        }
    }
    let libpq_require_auth = knows_require_auth(&pg_dump);
    Ok(PgTools {
        major,
        pg_dump,
        pg_restore,
        version: dump_version,
        libpq_require_auth,
    })
}

/// Asks the tool's libpq itself: a conninfo naming `require_auth` and a socket directory that does not
/// exist fails at once, with "invalid connection option" where libpq does not know the keyword and a
/// connection error where it does. No network is touched. (pg_dump's own version says nothing: the
/// image's PostgreSQL 15 client links the newest libpq.)
fn knows_require_auth(pg_dump: &Path) -> bool {
    let probe = Command::new(pg_dump)
        .arg("--schema-only")
        .arg("--dbname=require_auth=scram-sha-256 host=/nonexistent/supaneon-sync-probe connect_timeout=2")
        .env_clear()
        .env("LC_ALL", "C")
        .output();
    match probe {
        Ok(out) => !String::from_utf8_lossy(&out.stderr).contains("invalid connection option"),
        Err(_) => false,
    }
}

fn version_of(tool: &Path) -> Result<String, String> {
    let name = tool.file_name().unwrap_or_default().to_string_lossy();
    let output = Command::new(tool)
        .arg("--version")
        .env_clear()
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{name} --version failed ({})", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The major version in `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` or
/// `pg_restore (PostgreSQL) 17beta1`.
pub fn major_of(version_line: &str) -> Option<u32> {
    let rest = version_line.split(") ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_major_from_version_lines() {
        assert_eq!(
            major_of("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(major_of("pg_restore (PostgreSQL) 17.11"), Some(17));
        assert_eq!(major_of("pg_dump (PostgreSQL) 18beta1"), Some(18));
        assert_eq!(major_of("something else"), None);
    }

    #[test]
    fn the_error_lists_every_directory_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = find_tools(99, &[dir.path().to_path_buf()]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        assert!(text.contains("/usr/lib/postgresql/99/bin"), "{text}");
        assert!(text.contains("/usr/pgsql-99/bin"), "{text}");
        assert!(
            text.contains("apt-get install postgresql-client-99"),
            "{text}"
        );
        assert!(text.contains("pg-bin-dir"), "{text}");
    }
}
