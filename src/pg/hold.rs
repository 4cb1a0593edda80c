//! A snapshot held open on a server, so that no session there prunes the row versions that later
//! transactions replace or delete until it is released.
//!
//! The mirror's sync holds one from before its merges until the merged tables are read again (see
//! `mirror::sync`). Without it that read prunes, on every page a merge touched, the versions the
//! merge replaced: it rewrites each page and logs it, whole when a checkpoint has started since the
//! merge (the merge's own WAL often starts one). With it, the read only sets hint bits, and a later
//! merge prunes those versions in the pages it visits and writes anyway; VACUUM, which the mirror's
//! upkeep runs by the dead rows it counts, removes the rest. Measured on the benchmark's database
//! (2026-12-01, PostgreSQL 15, 1 % of 6.5 million rows changed a day; blocks of runs with and without
//! it, alternating on one mirror, the first run of each block left out): the read after the merge took
//! a median 1.16 s against 1.99 s, the merge 2.02 s against 1.72 s, both together 3.13 s against
//! 3.62 s, and whole runs up to the branch 7.27 s against 7.75 s (15 and 13 runs). Under
//! `wal_log_hints = on` (as the compute specification of Neon's docker-compose setup sets it: the
//! read's first hint bit on a page after a checkpoint then logs the page whole anyway) it saves
//! little: 3.34 s against 3.39 s.

use tokio_postgres::Client;

use super::inspect::InspectError;

/// A session that holds a snapshot until [`HeldSnapshot::release`] or until it is dropped (the
/// connection closes, and the server lets the snapshot go with it).
pub struct HeldSnapshot {
    client: Client,
}

impl HeldSnapshot {
    /// Takes a snapshot on `client`'s session and keeps it: a transaction that reads nothing and
    /// writes nothing, whose snapshot is taken by its first statement and lasts to its end.
    pub async fn take(client: Client) -> Result<HeldSnapshot, InspectError> {
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1")
            .await
            .map_err(InspectError::query("holding a snapshot"))?;
        Ok(HeldSnapshot { client })
    }

    /// Ends the transaction, so pruning goes on. A failure only means the connection is gone, which
    /// lets the snapshot go too.
    pub async fn release(self) {
        let _ = self.client.batch_execute("COMMIT").await;
    }
}
