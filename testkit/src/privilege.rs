//! Running server-side commands as an unprivileged user: `initdb` and `postgres` refuse root.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Who the server processes run as: `nobody` when we are root, ourselves otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerUser {
    /// `Some((uid, gid))` of `nobody` when we must drop root.
    drop_to: Option<(u32, u32)>,
}

impl ServerUser {
    pub(crate) fn detect() -> ServerUser {
        if effective_uid() == 0 {
            ServerUser {
                drop_to: Some(lookup_nobody()),
            }
        } else {
            ServerUser { drop_to: None }
        }
    }

    /// A command for `program` that runs as the server user (setuid/setgid in the child;
    /// std clears supplementary groups when root drops to another uid).
    pub(crate) fn command(&self, program: impl AsRef<Path>) -> Command {
        let mut cmd = Command::new(program.as_ref());
        if let Some((uid, gid)) = self.drop_to {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// Gives `path` (not recursive) to the server user.
    pub(crate) fn own(&self, path: &Path) -> io::Result<()> {
        match self.drop_to {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
            None => Ok(()),
        }
    }

    /// Gives `dir` and everything below it to the server user.
    pub(crate) fn own_tree(&self, dir: &Path) -> io::Result<()> {
        self.own(dir)?;
        if dir.is_dir() {
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    self.own_tree(&entry.path())?;
                } else {
                    self.own(&entry.path())?;
                }
            }
        }
        Ok(())
    }
}

/// Effective uid from `/proc/self/status` ("Uid: real effective saved fs").
fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .expect("effective uid in /proc/self/status")
}

/// uid and primary gid of `nobody` from `/etc/passwd`.
fn lookup_nobody() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() > 3 && fields[0] == "nobody")
        .and_then(|fields| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
        .expect("running as root, but there is no `nobody` user to run PostgreSQL as")
}
