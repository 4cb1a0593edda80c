//! The shared snapshot: a transaction on the source whose snapshot pg_dump and the manifest's other
//! connections import, so that the dump, the manifest and the mirror's sync all see one moment.

use tokio_postgres::Client;

use super::{
    begin_all, close_all, manifest_in_transaction, pin_session, quote_literal, InspectError,
    KnownChecksums, ReadHooks,
};
use crate::pg::content::Selection;
use crate::pg::manifest::Manifest;

/// A read-only, repeatable-read transaction on the source whose snapshot is exported for pg_dump.
///
/// It owns its connection so the transaction stays open as long as the value lives; dropping it
/// without [`finish`](Self::finish) closes the connection, which ends the transaction too.
///
/// While it is open the source's vacuum cannot remove rows it can see, so it is bounded: the session has
/// an `idle_in_transaction_session_timeout`, and a heartbeat from this process keeps it from firing
/// while the run is alive. A run that hangs or is frozen stops the heartbeat, and the server ends the
/// transaction within [`SNAPSHOT_IDLE_TIMEOUT`].
pub struct SourceSnapshot {
    client: std::sync::Arc<Client>,
    snapshot_id: String,
    heartbeat: tokio::task::JoinHandle<()>,
}

/// The exporting transaction's `idle_in_transaction_session_timeout`.
pub const SNAPSHOT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);
/// How often the heartbeat runs `SELECT 1` in it: well inside the timeout.
const SNAPSHOT_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(60);

impl Drop for SourceSnapshot {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl SourceSnapshot {
    /// Pins the session, opens the transaction and exports its snapshot.
    pub async fn open(client: Client) -> Result<SourceSnapshot, InspectError> {
        pin_session(&client).await?;
        client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = '{}s'; \
                 BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                SNAPSHOT_IDLE_TIMEOUT.as_secs()
            ))
            .await
            .map_err(InspectError::query("opening the snapshot transaction"))?;
        let snapshot_id = export_snapshot(&client).await?;
        let client = std::sync::Arc::new(client);
        let beating = client.clone();
        let heartbeat = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(SNAPSHOT_HEARTBEAT);
            ticker.tick().await; // the first tick is immediate
            loop {
                ticker.tick().await;
                if beating.simple_query("SELECT 1").await.is_err() {
                    return;
                }
            }
        });
        Ok(SourceSnapshot {
            client,
            snapshot_id,
            heartbeat,
        })
    }

    /// The id to pass as `pg_dump --snapshot=<id>` or to [`take_manifest_in_snapshot`].
    pub fn id(&self) -> &str {
        &self.snapshot_id
    }

    /// The connection, inside the snapshot's transaction (e.g. for [`crate::pg::content::select`]).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The manifest, taken on the snapshot's own connection. A failure here aborts the snapshot's
    /// transaction: start pg_dump (which imports the snapshot) first, or use
    /// [`take_manifest_in_snapshot`] on other connections.
    pub async fn take_manifest(&self, selection: &Selection) -> Result<Manifest, InspectError> {
        self.take_manifest_with(&[], selection).await
    }

    /// The manifest, read by the snapshot's own connection together with `helpers` (other
    /// connections to the same database), which import the snapshot for the duration.
    pub async fn take_manifest_with(
        &self,
        helpers: &[&Client],
        selection: &Selection,
    ) -> Result<Manifest, InspectError> {
        let import = import_snapshot_sql(&self.snapshot_id)?;
        let mut opened = Vec::new();
        let result = async {
            begin_all(helpers, &import, &mut opened).await?;
            let mut workers: Vec<&Client> = vec![&self.client];
            workers.extend_from_slice(helpers);
            manifest_in_transaction(
                &workers,
                selection,
                None,
                &KnownChecksums::new(),
                &ReadHooks::default(),
            )
            .await
        }
        .await;
        close_all(&opened, result).await
    }

    /// Ends the transaction and hands the connection back.
    pub async fn finish(self) -> Result<(), InspectError> {
        self.heartbeat.abort();
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(InspectError::query("closing the snapshot transaction"))
    }
}

pub(super) async fn export_snapshot(client: &Client) -> Result<String, InspectError> {
    let row = client
        .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
        .await
        .map_err(InspectError::query("exporting the snapshot"))?;
    Ok(row.get(0))
}

/// Pins `client`'s session and opens a read-only transaction in the exported snapshot `snapshot_id`
/// (see [`SourceSnapshot`]); the caller ends it.
pub async fn import_snapshot(client: &Client, snapshot_id: &str) -> Result<(), InspectError> {
    let import = import_snapshot_sql(snapshot_id)?;
    pin_session(client).await?;
    client
        .batch_execute(&import)
        .await
        .map_err(InspectError::query("importing the snapshot"))
}

pub(super) fn import_snapshot_sql(snapshot_id: &str) -> Result<String, InspectError> {
    // Exported ids look like `00000003-0000001B-1`; anything else is refused before it reaches SQL.
    if snapshot_id.is_empty()
        || !snapshot_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '-')
    {
        return Err(InspectError::unexpected(
            "the snapshot id",
            "not an exported snapshot id",
        ));
    }
    Ok(format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
        quote_literal(snapshot_id)
    ))
}
