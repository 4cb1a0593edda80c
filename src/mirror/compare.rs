//! Both manifests of a sync, taken side by side: the source's in its snapshot, the mirror's afresh from
//! its rows. Each table of the mirror is read after the source's, and only when the source's is what the
//! last verified sync left: a table that changed on the source is merged and read again afterwards
//! anyway, so reading it before as well would read it twice. Every table of the mirror is still read
//! once per run, and none is taken as read from a stored manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use tokio::sync::watch;
use tokio_postgres::Client;

use crate::pg::content::Selection;
use crate::pg::inspect::{self, Gate, InspectError, ReadHooks};
use crate::pg::manifest::{Manifest, TableKind};

/// The manifests, and the tables of the mirror left unread because they changed on the source.
pub struct SideBySide {
    pub source: Result<Manifest, InspectError>,
    /// The mirror as read; a table left unread holds the last verified sync's fingerprint (`stored`),
    /// which is what the mirror holds unless it was changed behind the tool's back: the merge's
    /// verification reads it afresh in either case.
    pub mirror: Result<Manifest, InspectError>,
    pub unread: BTreeSet<(String, String)>,
}

/// What the source has read so far.
#[derive(Default)]
struct Progress {
    read: BTreeMap<(String, String), (i64, String)>,
    finished: bool,
}

/// Takes the source's manifest on `sources` (in snapshot `snapshot_id`) and the mirror's on `mirrors`,
/// `stored` being the manifest of the mirror's last verified sync.
pub async fn manifests(
    sources: &[&Client],
    snapshot_id: &str,
    mirrors: &[&Client],
    selection: &Selection,
    stored: &Manifest,
) -> SideBySide {
    let (progress, _) = watch::channel(Progress::default());
    let unread = Mutex::new(BTreeSet::new());
    let on_read = |schema: &str, name: &str, rows: i64, checksum: &str| {
        progress.send_modify(|p| {
            p.read.insert(
                (schema.to_string(), name.to_string()),
                (rows, checksum.to_string()),
            );
        });
    };
    let gate = |schema: String, name: String, kind: TableKind| -> Gate<'_> {
        let mut seen = progress.subscribe();
        let unread = &unread;
        Box::pin(async move {
            if kind != TableKind::Table {
                return true;
            }
            let key = (schema, name);
            // The sender lives as long as this call: waiting cannot fail.
            let changed = match seen
                .wait_for(|p| p.finished || p.read.contains_key(&key))
                .await
            {
                Ok(p) => p.read.get(&key).is_some_and(|(rows, checksum)| {
                    stored
                        .table(&key.0, &key.1)
                        .is_none_or(|t| !t.holds(*rows, checksum))
                }),
                Err(_) => false,
            };
            if changed {
                unread.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
            }
            !changed
        })
    };
    let source_hooks = ReadHooks {
        on_read: Some(&on_read),
        gate: None,
    };
    let mirror_hooks = ReadHooks {
        on_read: None,
        gate: Some(&gate),
    };
    let source = async {
        let taken = inspect::take_manifest_in_snapshot_hooked(
            sources,
            snapshot_id,
            selection,
            &source_hooks,
        )
        .await;
        // Tables the source never read (or all, when it failed) are read on the mirror.
        progress.send_modify(|p| p.finished = true);
        taken
    };
    let (source, mirror) = tokio::join!(
        source,
        inspect::take_manifest_hooked(mirrors, selection, &mirror_hooks)
    );
    let unread = unread.into_inner().unwrap_or_else(|e| e.into_inner());
    let mirror = mirror.map(|mut m| {
        for t in &mut m.tables {
            if unread.contains(&(t.schema.clone(), t.name.clone())) {
                if let Some(last) = stored.table(&t.schema, &t.name) {
                    *t = last.clone();
                }
            }
        }
        m
    });
    SideBySide {
        source,
        mirror,
        unread,
    }
}
