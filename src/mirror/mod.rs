//! The snapshot strategy: one long-lived mirror branch (`supaneon-mirror`, a child of the parent branch)
//! is the only branch a backup writes. Each run brings it to the source's snapshot, verifies it against
//! the manifest and stores the manifest in it; only then is `backup-<ts>` created as a child of it:
//! copy-on-write, written nothing, complete and verified at birth, and without a compute. Neon bills a
//! child for what it writes, so a backup costs next to nothing however large the database.
//!
//! Rooms: [`state`] (what the mirror knows of its last sync), [`sync`] (the incremental sync),
//! [`compare`] (both manifests side by side), [`streams`] (changed tables merged on the sync's streams),
//! [`digest`] (narrowing a changed table down by digests), [`apply`] (merging rows into the mirror),
//! [`since`] (rows written since the last sync), [`large_objects`] (the large objects' diff).
//! The first run, and any run after the definitions changed, restores the mirror in full through
//! [`crate::backup::restore`].

mod apply;
mod compare;
mod digest;
mod large_objects;
mod since;
mod state;
mod streams;
mod sync;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::backup::restore::{self, Fail, Preflight, Restored};
use crate::backup::BackupOutcome;
use crate::branch_conn;
use crate::branches::{self, PendingBranch, MIRROR_NAME};
use crate::context::RunContext;
use crate::error::{Error, Failure, Result};
use crate::neon::{BranchInfo, CreateBranch, NeonClient};
use crate::pg::conn::{self, ConnSpec};
use crate::pg::manifest::Manifest;
use crate::pg::pipeline::{self, CancelSignal, PipelineReport};
use crate::preflight::APP_NAME;
use crate::{budget, ownership};

pub(crate) use since::{horizon as source_horizon, Horizon};
pub use sync::SyncReport;

/// How this run brought the mirror to the source.
#[derive(Debug, Clone)]
pub enum SyncPath {
    /// The mirror was restored in full: `why` says why (first run, changed definitions, ...).
    Full { why: String },
    /// Only what changed was copied.
    Incremental(SyncReport),
}

const FIRST_SYNC: Fail = Fail {
    impact: "no backup was made by this run; the new mirror is not verified and is deleted (or left for the next run to rebuild)",
};

/// The fingerprint that decides whether a mirror can be synced incrementally: the definitions' SQL, the
/// selected content, and this build (a new build may copy differently).
pub fn definitions_fingerprint(schema_fingerprint: &str, dump_args: &[String]) -> String {
    let mut h = Sha256::new();
    // v2: checksums by the mixed record hash; a mirror synced under v1 is rebuilt once.
    h.update(b"supaneon-sync mirror v2\0");
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(b"\0");
    h.update(schema_fingerprint.as_bytes());
    for arg in dump_args {
        h.update(b"\0");
        h.update(arg.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Runs one backup by the snapshot strategy.
pub async fn run(
    ctx: &RunContext,
    neon: &NeonClient,
    mut cancel: CancelSignal,
) -> Result<BackupOutcome> {
    // A mirror this run creates, until it is verified: deleted if the run fails before that.
    let created: Arc<Mutex<Option<PendingBranch>>> = Arc::default();
    let attempt = take_backup(ctx, neon, cancel.clone(), created.clone());
    let result = tokio::select! {
        result = attempt => result,
        _ = pipeline::cancelled(&mut cancel) => Err(Failure::new("the backup was cancelled (SIGTERM or SIGINT)")
            .impact("no backup was made by this run; earlier backups are untouched, and a part-synced mirror is harmless")
            .hint("run it again; nothing needs cleaning up by hand")
            .into()),
    };
    if result.is_err() {
        PendingBranch::delete_left(
            &created,
            neon,
            "the next run rebuilds it (it is not verified)",
        )
        .await;
    }
    result
}

async fn take_backup(
    ctx: &RunContext,
    neon: &NeonClient,
    cancel: CancelSignal,
    created: Arc<Mutex<Option<PendingBranch>>>,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let Preflight {
        source,
        project,
        parent_id,
    } = restore::preflight(ctx, neon).await?;
    let branches = budget::list(neon, "no backup was made; nothing was changed on Neon").await?;
    let scope = ctx.scope(&branches)?;
    if let Some(b) = branches.iter().find(|b| b.branch.name == MIRROR_NAME) {
        if let Some(why) = scope.not_ours(b) {
            return Err(Failure::new(format!(
                "a branch named {MIRROR_NAME} exists that this deployment did not make: {why}"
            ))
            .impact("no backup was made; nothing was changed on Neon")
            .hint("rename or delete that branch if it is not needed, or set strategy: full; supaneon-sync never writes a branch it did not make")
            .into());
        }
    }
    let existing = scope.mirror(&branches).cloned();
    let settings = ctx.neon_settings()?;
    let fingerprint = ctx
        .config
        .source
        .as_ref()
        .map(ownership::source_fingerprint)
        .ok_or_else(|| Failure::new("backup needs the Supabase connection URI"))?;

    let mut rebuild_why = "the first run builds the mirror".to_string();
    let mut synced = None;
    let mut mirror_database = None;
    if let Some(mirror) = &existing {
        mirror_database = neon
            .list_databases(&mirror.branch.id)
            .await
            .map_err(|e| {
                e.into_failure("no backup was made by this run; earlier backups are untouched")
            })?
            .into_iter()
            .find(|d| d.name == settings.database);
        if mirror_database.is_none() {
            rebuild_why = format!(
                "the mirror has no database {}: a rebuild did not finish, or neon-database changed",
                settings.database
            );
        }
    }
    if let Some(mirror) = existing.as_ref().filter(|_| mirror_database.is_some()) {
        let (spec, client) = connect_mirror(neon, settings, mirror).await?;
        lock(&client).await?;
        let state = state::read(&client)
            .await
            .map_err(|e| FIRST_SYNC.target("reading the mirror's state failed", e))?;
        match state {
            // An unverified state is a sync that did not finish (a rebuild records none until it is
            // verified): the definitions are those of the last verified sync, so it is resumed.
            Some(st) => match sync::run(ctx, &source, &spec, &client, &st, cancel.clone()).await {
                Ok(sync::Outcome::Synced(done)) => {
                    synced = Some((mirror.clone(), client, *done));
                }
                Ok(sync::Outcome::Rebuild(why)) => rebuild_why = why,
                Err(e) if !*cancel.borrow() => {
                    // A rebuild empties the mirror first, then reads the whole source: with the
                    // source not answering it would fail as well, and leave the next run a rebuild to
                    // do where it could have resumed this sync.
                    if !source_answers(&source.spec).await {
                        return Err(source_gone(e));
                    }
                    ctx.actions.warning(&format!(
                        "the incremental sync failed, so the mirror is rebuilt in full: {}",
                        crate::actions::one_line(&e.render())
                    ));
                    rebuild_why = "the incremental sync failed".into();
                }
                Err(e) => return Err(e),
            },
            None => rebuild_why = "the mirror has no record of a verified sync".into(),
        }
    }

    let brought = match synced {
        Some((mirror, client, done)) => {
            drop(client);
            let report = done.report;
            Brought {
                mirror,
                pipeline: PipelineReport {
                    bytes: report.bytes_read + report.digest_bytes,
                    schema_bytes: report.schema_bytes,
                    ..PipelineReport::default()
                },
                manifest: done.manifest,
                notes: done.notes,
                not_backed_up: done.not_backed_up,
                refreshed: done.refreshed,
                path: SyncPath::Incremental(report),
            }
        }
        None => {
            tracing::info!("rebuilding the mirror in full: {rebuild_why}");
            let fresh = match existing {
                Some(mirror) => {
                    let owner =
                        mirror_database.map_or_else(|| settings.role.clone(), |d| d.owner_name);
                    empty_mirror(neon, &mirror, &settings.database, &owner).await?;
                    mirror
                }
                None => {
                    create_mirror(ctx, neon, &project, parent_id, &fingerprint, &created).await?
                }
            };
            let (spec, client) = connect_mirror(neon, settings, &fresh).await?;
            lock(&client).await?;
            let restored =
                restore::restore_into(ctx, source, &spec, client, FIRST_SYNC, cancel.clone())
                    .await?;
            let Restored {
                schema,
                tools,
                dump_args,
                target,
                source_horizon,
                ..
            } = &restored;
            let schema_fingerprint = pipeline::schema_fingerprint(tools, schema, cancel.clone())
                .await
                .map_err(|e| FIRST_SYNC.restore("the schema archive could not be read back", e))?;
            state::mark_verified(
                target,
                &definitions_fingerprint(&schema_fingerprint, dump_args),
                &ctx.run_id,
                source_horizon.map(|h| h.xmin),
            )
            .await
            .map_err(|e| FIRST_SYNC.target("recording the mirror's verified sync failed", e))?;
            // Verified: from here on a failure leaves a good mirror, not one to delete.
            *created.lock().unwrap_or_else(|e| e.into_inner()) = None;
            Brought {
                mirror: fresh,
                manifest: restored.manifest,
                pipeline: restored.pipeline,
                notes: restored.notes,
                not_backed_up: restored.not_backed_up,
                refreshed: restored.refreshed,
                path: SyncPath::Full { why: rebuild_why },
            }
        }
    };

    // The backup: a child of the verified mirror, written nothing, no compute. Our session (and its lock)
    // ended above: the mirror is verified and nothing of ours writes it any more.
    let Brought {
        mirror,
        manifest,
        pipeline,
        mut notes,
        not_backed_up,
        refreshed,
        path,
    } = brought;
    let (branch_name, branch_id) =
        snapshot(ctx, neon, &project, &mirror, &manifest, &fingerprint).await?;
    if let Err(e) = suspend_mirror(neon, &mirror).await {
        notes.push(format!(
            "the mirror's compute could not be suspended ({e}); Neon suspends it after 5 idle minutes"
        ));
    }
    Ok(BackupOutcome {
        branch_name,
        branch_id,
        manifest,
        pipeline,
        duration: started.elapsed(),
        notes,
        not_backed_up,
        refreshed,
        sync: Some(path),
    })
}

/// The mirror brought to the source and verified, and what it took.
struct Brought {
    mirror: BranchInfo,
    manifest: Manifest,
    pipeline: PipelineReport,
    notes: Vec<String>,
    not_backed_up: Vec<String>,
    refreshed: Vec<String>,
    path: SyncPath,
}

/// Connects to the mirror's read-write compute (creating one if it has none).
async fn connect_mirror(
    neon: &NeonClient,
    settings: &crate::config::NeonSettings,
    mirror: &BranchInfo,
) -> Result<(ConnSpec, Client)> {
    let impact = "no backup was made by this run; earlier backups are untouched";
    let mut endpoints = neon
        .list_endpoints(&mirror.branch.id)
        .await
        .map_err(|e| e.into_failure(impact))?;
    if !endpoints
        .iter()
        .any(|e| e.endpoint_type == crate::neon::EndpointType::ReadWrite)
    {
        endpoints.push(
            neon.create_endpoint(&mirror.branch.id)
                .await
                .map_err(|e| e.into_failure(impact))?,
        );
    }
    let spec = branch_conn::branch_spec_with(neon, settings, &mirror.branch.id, &endpoints)
        .await
        .map_err(|e| match e {
            branch_conn::BranchConnError::Api(e) => Error::from(e.into_failure(impact)),
            other => FIRST_SYNC.target(
                "Neon returned an unusable connection URI for the mirror",
                other,
            ),
        })?;
    let client = conn::connect(&spec, APP_NAME).await.map_err(|e| {
        Error::from(
            Failure::new(format!("cannot connect to the mirror {MIRROR_NAME}: {e}")).impact(impact),
        )
    })?;
    Ok((spec, client))
}

async fn lock(client: &Client) -> Result<()> {
    let held = state::try_lock(client)
        .await
        .map_err(|e| FIRST_SYNC.target("locking the mirror failed", e))?;
    if held {
        return Ok(());
    }
    Err(
        Failure::new("another supaneon-sync run is syncing the mirror right now")
            .impact("no backup was made by this run; the other run's backup is unaffected")
            .hint("give the workflow a `concurrency:` group so runs queue instead of overlapping")
            .into(),
    )
}

/// Empties the mirror for a full rebuild: its database is deleted and created again, empty, through
/// Neon's API. The branch stays, and so do its backups (children, copy-on-write, holding the old
/// content), so a rebuild takes no second branch slot and, by Neon's rule (a child pays at most its
/// logical size), no storage beyond the one mirror's. A rebuild that fails after this leaves a mirror
/// without a verified sync (or without its database), which the next run rebuilds again.
async fn empty_mirror(
    neon: &NeonClient,
    mirror: &BranchInfo,
    database: &str,
    owner: &str,
) -> Result<()> {
    let impact = "no backup was made by this run; earlier backups are untouched, and the next run rebuilds the mirror";
    neon.delete_database(&mirror.branch.id, database)
        .await
        .map_err(|e| e.into_failure(impact))?;
    neon.create_database(&mirror.branch.id, database, owner)
        .await
        .map_err(|e| e.into_failure(impact))?;
    tracing::info!(
        branch = MIRROR_NAME,
        database,
        "the mirror's database was emptied for the rebuild"
    );
    Ok(())
}

/// Creates the mirror, empty, as a child of the parent branch.
async fn create_mirror(
    ctx: &RunContext,
    neon: &NeonClient,
    project: &crate::neon::Project,
    parent_id: Option<String>,
    fingerprint: &str,
    created: &Mutex<Option<PendingBranch>>,
) -> Result<BranchInfo> {
    let impact = "no backup was made by this run; earlier backups are untouched";
    let request = CreateBranch {
        name: MIRROR_NAME.to_string(),
        parent_id,
        expires_at: None,
        annotations: ownership::annotations(ownership::KIND_MIRROR, &ctx.run_id, fingerprint),
        with_endpoint: true,
    };
    let made = budget::create_with_room(ctx, neon, project, &request, created, &[], impact).await?;
    tracing::info!(branch = MIRROR_NAME, id = %made.branch.id, "mirror created");
    Ok(BranchInfo {
        branch: made.branch,
        annotations: request.annotations,
    })
}

/// A sync's failure once the source no longer answers: said first, since the step that failed (a
/// digest, a merge) only says that its connection closed.
fn source_gone(e: Error) -> Error {
    match e {
        Error::Failed(mut failure) => {
            failure.what = format!(
                "the Supabase database stopped answering during the sync ({})",
                failure.what
            );
            failure.hint = "check that the Supabase project is up (a paused free project is restored from its dashboard) and run again: the next run resumes the sync, it does not rebuild the mirror".into();
            failure.into()
        }
        other => other,
    }
}

/// Whether the source takes a new session and answers a query.
async fn source_answers(spec: &ConnSpec) -> bool {
    match conn::connect(spec, APP_NAME).await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    }
}

/// Creates `backup-<ts>` as a child of the verified mirror. Returns (name, id).
async fn snapshot(
    ctx: &RunContext,
    neon: &NeonClient,
    project: &crate::neon::Project,
    mirror: &BranchInfo,
    manifest: &Manifest,
    fingerprint: &str,
) -> Result<(String, String)> {
    let group = ctx.actions.group("snapshot the mirror");
    let mut annotations = ownership::annotations(ownership::KIND_BACKUP, &ctx.run_id, fingerprint);
    annotations.insert(
        "source-server-version".into(),
        manifest.source_server_version.clone(),
    );
    annotations.insert("tool-version".into(), env!("CARGO_PKG_VERSION").into());
    annotations.insert("strategy".into(), "snapshot".into());
    annotations.insert(
        ownership::TABLES_KEY.into(),
        manifest.tables.len().to_string(),
    );
    annotations.insert(
        ownership::ROWS_KEY.into(),
        manifest.total_rows().to_string(),
    );
    let request = CreateBranch {
        name: branches::backup_name(Utc::now()),
        parent_id: Some(mirror.branch.id.clone()),
        expires_at: None,
        annotations,
        with_endpoint: false,
    };
    // A backup child is complete at birth: nothing to clean up if the run stops after asking for it.
    let slot = Mutex::new(None);
    let made = budget::create_with_room(
        ctx,
        neon,
        project,
        &request,
        &slot,
        &[mirror.branch.id.as_str()],
        "the mirror is synced and verified, but no backup branch was made by this run",
    )
    .await?;
    tracing::info!(branch = %made.branch.name, id = %made.branch.id, "backup created: a snapshot of the verified mirror");
    drop(group);
    Ok((made.branch.name, made.branch.id))
}

async fn suspend_mirror(neon: &NeonClient, mirror: &BranchInfo) -> std::result::Result<(), String> {
    let endpoints = neon
        .list_endpoints(&mirror.branch.id)
        .await
        .map_err(|e| e.to_string())?;
    for ep in endpoints {
        neon.suspend_endpoint(&ep.id)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
