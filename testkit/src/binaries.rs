//! Where the PostgreSQL binaries of each major version live, and which majors the tests cover.

use std::path::{Path, PathBuf};

/// Majors exercised when `SUPANEON_TEST_PG_MAJORS` is not set.
const DEFAULT_TEST_MAJORS: [u32; 2] = [15, 17];

/// The `bin/` directory of PostgreSQL `major`.
///
/// Order: `SUPANEON_PG{major}_BIN`, then Debian's `/usr/lib/postgresql/15/bin` for 15, then the
/// cache filled by `scripts/fetch-postgres.sh` (`<workspace>/.cache/postgres/{major}/bin`).
/// Panics with instructions when none of them holds `initdb`.
pub fn pg_bin_dir(major: u32) -> PathBuf {
    let env_name = format!("SUPANEON_PG{major}_BIN");
    if let Some(dir) = std::env::var_os(&env_name).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("initdb").is_file(),
            "{env_name}={} has no initdb; point it at a PostgreSQL {major} bin/ directory",
            dir.display()
        );
        return dir;
    }
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if major == 15 && debian.join("initdb").is_file() {
        return debian;
    }
    let cached = workspace_root()
        .join(".cache/postgres")
        .join(major.to_string())
        .join("bin");
    if cached.join("initdb").is_file() {
        return cached;
    }
    panic!(
        "PostgreSQL {major} binaries not found (looked at ${env_name}, {debian}, {cached}). \
         Run `bash scripts/fetch-postgres.sh` from the repository root (fetches 17), \
         install Debian's postgresql-{major}, or set {env_name} to a bin/ directory.",
        debian = debian.display(),
        cached = cached.display(),
    );
}

/// Majors to test, from `SUPANEON_TEST_PG_MAJORS` (e.g. `"15,17"`); both 15 and 17 by default.
pub fn test_majors() -> Vec<u32> {
    match std::env::var("SUPANEON_TEST_PG_MAJORS") {
        Ok(list) if !list.trim().is_empty() => parse_majors(&list),
        _ => DEFAULT_TEST_MAJORS.to_vec(),
    }
}

fn parse_majors(list: &str) -> Vec<u32> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("SUPANEON_TEST_PG_MAJORS: {s:?} is not a major version"))
        })
        .collect()
}

/// The cargo workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives inside the workspace")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_comma_separated_list() {
        assert_eq!(parse_majors(" 15, 17 ,"), vec![15, 17]);
        assert_eq!(parse_majors("17"), vec![17]);
    }

    #[test]
    #[should_panic(expected = "not a major version")]
    fn rejects_garbage() {
        parse_majors("15,seventeen");
    }
}
