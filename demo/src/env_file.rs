//! The env file: the only place the world's secrets go. `export NAME='value'` lines, mode 0600.

use std::fs::{OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Quotes `value` for a POSIX shell: single quotes, each `'` written as `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The file's text: one `export NAME='value'` line per variable, in order.
pub fn render(vars: &[(&str, String)]) -> String {
    vars.iter()
        .map(|(name, value)| format!("export {name}={}\n", shell_quote(value)))
        .collect()
}

/// Writes the variables to `path` readable by the owner only. The mode is set before any byte is
/// written, also when the file already existed with a wider mode.
pub fn write(path: &Path, vars: &[(&str, String)]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    file.write_all(render(vars).as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_survive_a_shell() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's $HOME `x`"), r"'it'\''s $HOME `x`'");
    }

    #[test]
    fn renders_export_lines() {
        let text = render(&[("A", "1".into()), ("B", "x'y".into())]);
        assert_eq!(text, "export A='1'\nexport B='x'\\''y'\n");
    }

    #[test]
    fn tightens_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        write(&path, &[("A", "1".into())]).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "export A='1'\n");
    }
}
