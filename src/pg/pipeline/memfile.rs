//! Files that live in memory only: the anonymous file (`memfd_create`) holding the schema archive or
//! a `--use-list` for pg_restore, and the digest of such a file.

use std::fs::File;
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

use super::PipelineError;

/// A `--use-list` file in memory, for pg_restore to read through our `/proc` entry.
pub(super) struct ListFile(File);

impl ListFile {
    pub(super) fn new<'a>(lines: impl Iterator<Item = &'a str>) -> Result<ListFile, PipelineError> {
        use std::io::Write;
        let mut file = memfd("supaneon-sync-list").map_err(PipelineError::SchemaArchive)?;
        for line in lines {
            writeln!(file, "{line}").map_err(PipelineError::SchemaArchive)?;
        }
        Ok(ListFile(file))
    }

    /// Our own descriptor through /proc: the child (same user) opens it afresh, from the start.
    pub(super) fn arg(&self) -> String {
        use std::os::fd::AsRawFd;
        format!(
            "--use-list=/proc/{}/fd/{}",
            std::process::id(),
            self.0.as_raw_fd()
        )
    }
}

/// An anonymous file in memory, closed on exec (children get it only as a redirected stdio).
pub(super) fn memfd(name: &str) -> std::io::Result<File> {
    let name = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: `name` is NUL-terminated and outlives the call; the call returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Size and SHA-256 of a whole file, read by offset (the file position is shared with children).
pub(super) fn digest(file: &File) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    loop {
        let n = file.read_at(&mut buf, offset)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok((offset, hex::encode(hasher.finalize())))
}
