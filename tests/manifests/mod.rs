//! What the manifest's tests share (`pg_manifest`, `pg_checksums`).

use supaneon_sync::pg::manifest::{ChecksumMethod, Manifest};

/// `manifest` as if every table had been hashed by `method`: what a copy is then checked against.
pub fn with_method(manifest: &Manifest, method: ChecksumMethod) -> Manifest {
    let mut m = manifest.clone();
    for t in &mut m.tables {
        t.checksum_method = method;
    }
    m
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
