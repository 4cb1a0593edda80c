//! The full restore of the source into a connected branch, and its verification: what the full strategy
//! does for every backup and the snapshot strategy for a mirror's first (or rebuilding) sync.

use tokio_postgres::Client;

use crate::config::VerifyLevel;
use crate::context::RunContext;
use crate::error::{Error, Failure, Result};
use crate::neon::{NeonClient, Project};
use crate::pg::conn::{self, ConnSpec};
use crate::pg::content::{self, Selection};
use crate::pg::fingerprints::{self, SequenceRule};
use crate::pg::manifest::{Manifest, Mismatch, TableKind};
use crate::pg::pipeline::{self, CancelSignal, DumpOptions, PipelineReport};
use crate::pg::tools::PgTools;
use crate::pg::{exclusions, inspect, large_objects, maintenance, prepare, settings};
use crate::preflight::{self, APP_NAME};

/// The source as the preflight left it: answered, its tools found.
pub(crate) struct Source {
    pub spec: ConnSpec,
    pub client: Client,
    pub tools: PgTools,
    pub version: String,
}

/// What the preflight found: the source, the Neon project and the parent branch (`None`: the default).
pub(crate) struct Preflight {
    pub source: Source,
    pub project: Project,
    pub parent_id: Option<String>,
}

/// Nothing is created until the source, the tools and the project are known to fit.
pub(crate) async fn preflight(ctx: &RunContext, neon: &NeonClient) -> Result<Preflight> {
    let config = &ctx.config;
    let actions = &ctx.actions;
    let neon_settings = ctx.neon_settings()?;
    let group = actions.group("preflight");
    let answered = preflight::source(config).await?;
    tracing::info!(source = %answered.spec.display(), server_version = %answered.version, connection = %answered.facts.describe(), "source answered over TLS");
    let pg_tools = preflight::tools_for(config, &answered)?;
    let preflight::Source {
        spec: source_spec,
        client: source,
        major,
        version,
        ..
    } = answered;
    tracing::info!(pg_dump = %pg_tools.pg_dump.display(), version = %pg_tools.version, "tools found");
    check_exclusions(&source, config).await?;
    let project = preflight::project_for(neon, major).await?;
    let parent_id = resolve_parent(neon, neon_settings.parent_branch.as_deref()).await?;
    drop(group);

    Ok(Preflight {
        source: Source {
            spec: source_spec,
            client: source,
            tools: pg_tools,
            version,
        },
        project,
        parent_id,
    })
}

/// A verified full restore: the branch holds the source's content at the snapshot, and its manifest.
pub(crate) struct Restored {
    pub manifest: Manifest,
    pub pipeline: PipelineReport,
    pub notes: Vec<String>,
    pub not_backed_up: Vec<String>,
    pub refreshed: Vec<String>,
    /// The schema archive restored (the mirror fingerprints its SQL: [`pipeline::schema_fingerprint`]),
    /// and the tools that read it.
    pub schema: pipeline::SchemaArchive,
    pub tools: crate::pg::tools::PgTools,
    /// The pg_dump options that selected the content.
    pub dump_args: Vec<String>,
    /// The session on the branch, still open (the mirror records its state on it).
    pub target: Client,
    /// The source snapshot's transaction horizon (the mirror's next sync starts from it).
    pub source_horizon: Option<crate::mirror::Horizon>,
}

/// Restores everything the selection names from `source` into the branch behind `target` in one
/// snapshot, verifies it against the manifest and stores the manifest in the branch.
pub(crate) async fn restore_into(
    ctx: &RunContext,
    source: Source,
    target_spec: &ConnSpec,
    target: Client,
    fail: Fail,
    cancel: CancelSignal,
) -> Result<Restored> {
    let config = &ctx.config;
    let actions = &ctx.actions;
    let Source {
        spec: source_spec,
        client: source,
        tools: pg_tools,
        ..
    } = source;
    let target_spec = target_spec.clone();
    // One snapshot for the dump and the manifest; the target prepared for what the dump names.
    let group = actions.group("snapshot and target preparation");
    let snapshot = inspect::SourceSnapshot::open(source)
        .await
        .map_err(|e| source_query(e, "opening the snapshot"))?;
    let source_horizon = crate::mirror::source_horizon(snapshot.client())
        .await
        .map_err(|e| source_query(e, "reading the snapshot's transaction horizon"))?;
    let mut selection = content::select(snapshot.client(), &config.content)
        .await
        .map_err(|e| source_query(e, "choosing the schemas"))?;
    let not_backed_up = not_backed_up(&selection);
    for line in &not_backed_up {
        tracing::info!("not backed up: {line}");
    }
    tracing::info!(schemas = %selection.schemas.join(", "), "dumping");
    let lo_owners = large_objects::foreign_owners(snapshot.client())
        .await
        .map_err(|e| source_query(e, "listing the owners of the large objects"))?;
    // Sequences move outside snapshots: their positions now are what the branch must at least reach,
    // since pg_dump reads them later.
    let sequence_floor = fingerprints::sequences(
        snapshot.client(),
        &selection.schemas,
        &selection.exclude_tables,
    )
    .await
    .map_err(|e| source_query(e, "reading the sequences"))?;
    let forced_rls = prepare::forced_rls_tables(snapshot.client(), &selection)
        .await
        .map_err(|e| source_query(e, "listing the tables with FORCE ROW LEVEL SECURITY"))?;
    let opts = DumpOptions::in_snapshot(&selection, snapshot.id(), config.stall_timeout);
    // The definitions go into memory (for the parallel post-data restore) while the target is prepared.
    let (prepared, schema) = tokio::join!(
        prepare::prepare_target(snapshot.client(), &target, &selection),
        pipeline::dump_schema(&pg_tools, &source_spec, &opts, cancel.clone()),
    );
    let prepared = prepared.map_err(|e| {
        fail.target(
            "preparing the branch (roles, schemas, extensions) failed",
            e,
        )
    })?;
    let schema = schema.map_err(|e| fail.restore("the schema could not be dumped", e))?;
    selection.privilege_roles = prepared.roles.clone();
    let lo_grants = large_objects::grants(snapshot.client(), &prepared.roles)
        .await
        .map_err(|e| source_query(e, "listing the grants on the large objects"))?;
    let source_settings = settings::read(snapshot.client(), &prepared.roles)
        .await
        .map_err(|e| source_query(e, "reading the database and role settings"))?;
    let dumping_role: String = snapshot
        .client()
        .query_one("SELECT current_user::text", &[])
        .await
        .map_err(|e| {
            source_query(
                inspect::InspectError::Query {
                    what: "reading the dumping role".into(),
                    source: e,
                },
                "reading the dumping role",
            )
        })?
        .get(0);
    let mut notes = Vec::new();
    for ext in &prepared.extensions_unavailable {
        notes.push(format!(
            "extension {ext} is not offered by Neon; objects that need it may be missing"
        ));
    }
    for (ext, why) in &prepared.extensions_failed {
        notes.push(format!(
            "extension {ext} could not be created on the branch: {why}"
        ));
    }
    drop(group);

    // The rows stream into the branch, large indexes are built as soon as their table is in, then
    // pg_restore adds the remaining indexes, constraints, triggers and policies in parallel. Nothing
    // else reads the source while it streams: on a small Supabase instance the dump has the CPU to itself.
    let group = actions.group("dump and restore");
    let early = inspect::early_indexes(snapshot.client(), &selection, EARLY_INDEX_PAGES)
        .await
        .map_err(|e| source_query(e, "listing the large indexes"))?;
    let (rows_in_tx, mut rows_in) = tokio::sync::watch::channel(false);
    let restore = async {
        let early = pipeline::EarlyIndexes {
            schema: &schema,
            indexes: early,
        };
        let streamed = pipeline::stream_data(
            &pg_tools,
            &source_spec,
            &target_spec,
            &opts,
            Some(early),
            Some(&rows_in_tx),
            cancel.clone(),
        )
        .await
        .map_err(|e| fail.restore("the dump could not be restored into the branch", e))?;
        tracing::info!(bytes = streamed.bytes, sha256 = %streamed.sha256, seconds = streamed.duration.as_secs_f64(), "data restored");
        prepare::set_force_rls(&target, &forced_rls, false)
            .await
            .map_err(|e| {
                fail.target("lifting FORCE ROW LEVEL SECURITY for the restore failed", e)
            })?;
        let post = pipeline::restore_post_data(
            &pg_tools,
            &target_spec,
            &schema,
            pipeline::POST_DATA_JOBS,
            &streamed.early_built,
            cancel.clone(),
        )
        .await
        .map_err(|e| {
            fail.restore(
                "the indexes, constraints or policies could not be restored into the branch",
                e,
            )
        })?;
        // FORCE comes back only once the reads below are done (after the join): a table listed while
        // FORCE was lifted is read directly, and would fail if FORCE came back before its read.
        Ok::<_, Error>(streamed.with_post_data(post))
    };

    // Once the rows are in, while the branch builds indexes (the longest part after the rows, and
    // all on Neon's side), the idle source takes the manifest in the dump's snapshot, then the branch's
    // tables are read for verification.
    let snapshot_id = snapshot.id().to_string();
    let checks = async {
        // If the stream fails, `restore` returns its error and this is dropped unfinished (and with
        // it the snapshot, whose connection then closes).
        if rows_in.wait_for(|in_| *in_).await.is_err() {
            std::future::pending::<()>().await;
        }
        // Connected only now: nothing sits idle on either side while the rows stream.
        let manifest_session = conn::connect(&source_spec, APP_NAME)
            .await
            .map_err(|e| source_unreachable(&e))?;
        let mut manifest =
            inspect::take_manifest_in_snapshot(&[&manifest_session], &snapshot_id, &selection)
                .await
                .map_err(|e| source_query(e, "taking the manifest"))?;
        if let Some(definitions) = manifest.definitions.as_mut() {
            definitions.sequences = sequence_floor.clone();
        }
        drop(manifest_session);
        // Every importer has started (pg_dump at its start, the manifest just now): the snapshot ends
        // here, so the source's vacuum is held back no longer than the source is read.
        drop(snapshot.finish().await);
        // A second session halves the wall time of reading every table (helper measurement: 5.5 s → 3 s).
        let second = conn::connect(&target_spec, APP_NAME)
            .await
            .map_err(|e| fail.target("cannot open a second session on the branch", e))?;
        let known =
            inspect::fingerprint_tables_to_match(&[&target, &second], &selection, &manifest)
                .await
                .map_err(|e| {
                    fail.target("reading the restored branch for verification failed", e)
                })?;
        Ok::<_, Error>((manifest, known, second))
    };
    // The first failure ends the step: the other half is dropped (and its children killed).
    let (piped, (manifest, known, second)) = tokio::try_join!(restore, checks)?;
    prepare::set_force_rls(&target, &forced_rls, true)
        .await
        .map_err(|e| fail.target("setting FORCE ROW LEVEL SECURITY again failed", e))?;
    tracing::info!(bytes = piped.bytes, sha256 = %piped.sha256, schema_bytes = piped.schema_bytes, seconds = piped.duration.as_secs_f64(), "restored");
    notes.extend(large_objects::restore_owners(&target, &lo_owners).await);
    notes.extend(large_objects::restore_grants(&target, &lo_grants).await);
    let mut piped = piped;
    let privileges = pipeline::privileges::statements(&pg_tools, &schema, cancel.clone())
        .await
        .map_err(|e| {
            fail.restore(
                "the privileges could not be read from the schema archive",
                e,
            )
        })?;
    let granted = pipeline::privileges::apply(&target, &privileges, &dumping_role).await;
    tracing::info!(statements = granted.applied, "privileges restored");
    if !granted.fatal.is_empty() {
        return Err(fail.restore(
            "the privileges (GRANT, REVOKE, default privileges) could not be restored into the branch",
            pipeline::PipelineError::Restore {
                errors: granted.fatal,
                status: "privilege statements failed".into(),
                stderr_tail: Vec::new(),
            },
        ));
    }
    piped.benign.extend(granted.benign);
    notes.extend(
        settings::apply(&target, &source_settings)
            .await
            .map_err(|e| fail.target("carrying the database and role settings over failed", e))?,
    );
    drop(group);

    // Verify the branch against the manifest (the tables were read above; materialized views and
    // object counts now that pg_restore is done), then keep the manifest in the branch.
    let group = actions.group("verify");
    let actual = verify(
        fail,
        config.verify,
        &[&target, &second],
        &manifest,
        &selection,
        &known,
    )
    .await?;
    // The stored manifest holds the branch's own sequence positions: a restore test compares exactly.
    let mut manifest = manifest;
    let refreshed = record_refreshed_views(&mut manifest, &actual);
    for line in &refreshed {
        tracing::warn!("{line}");
    }
    if let (Some(stored), Some(branch)) = (manifest.definitions.as_mut(), actual.definitions) {
        stored.sequences = branch.sequences;
    }
    drop(second);
    inspect::store_manifest(&target, &manifest)
        .await
        .map_err(|e| fail.target("storing the manifest in the branch failed", e))?;
    if let Err(e) = maintenance::maintain(
        &target,
        &maintenance::tables_of(&manifest),
        maintenance::Which::All,
    )
    .await
    {
        notes.push(maintenance::note(&e));
    }
    drop(group);
    Ok(Restored {
        manifest,
        pipeline: piped,
        notes,
        not_backed_up,
        refreshed,
        schema,
        tools: pg_tools,
        dump_args: selection.pg_dump_args(),
        target,
        source_horizon,
    })
}

/// Materialized views whose content on the branch differs from the source's (pg_restore refreshed them
/// from the restored tables; the source's views were stale): the manifest records the branch's
/// content, marked [`refreshed_on_restore`](crate::pg::manifest::TableFingerprint::refreshed_on_restore),
/// and each gets a line for the report. They are not verified against the source.
pub(crate) fn record_refreshed_views(manifest: &mut Manifest, branch: &Manifest) -> Vec<String> {
    let mut lines = Vec::new();
    for view in manifest
        .tables
        .iter_mut()
        .filter(|t| t.kind == TableKind::MaterializedView)
    {
        let Some(restored) = branch.table(&view.schema, &view.name) else {
            continue;
        };
        if restored.same_content(view) {
            continue;
        }
        lines.push(format!(
            "{}: refreshed on restore: {} rows on the branch, the source's view held {} (it was not refreshed since its tables changed); not verified against the source",
            view.qualified_name(),
            restored.rows,
            view.rows
        ));
        view.rows = restored.rows;
        view.checksum = restored.checksum.clone();
        view.refreshed_on_restore = true;
    }
    lines
}

/// Fails, before anything is created, when the configured exclusions would leave a view or a foreign
/// key without the table it needs: the restore would otherwise fail half-way on it.
pub(crate) async fn check_exclusions(
    source: &Client,
    config: &crate::config::Config,
) -> Result<()> {
    let content = &config.content;
    if content.exclude_tables.is_empty() && content.exclude_table_data.is_empty() {
        return Ok(());
    }
    let planned = content::select(source, content)
        .await
        .map_err(|e| source_query(e, "choosing the schemas"))?;
    let broken = exclusions::dependents(
        source,
        &planned.schemas,
        &planned.exclude_tables,
        &planned.exclude_table_data,
    )
    .await
    .map_err(|e| source_query(e, "checking the exclusions"))?;
    if broken.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = broken.iter().map(|b| format!("  - {b}")).collect();
    Err(Failure::new(format!(
        "the configured exclusions (tables.exclude, tables.exclude-data) would break {} object(s) that depend on what they leave out:\n{}",
        broken.len(),
        list.join("\n")
    ))
    .impact("no backup was made; nothing was created on Neon")
    .hint("exclude the dependent objects' tables too, or stop excluding what they depend on")
    .into())
}

/// The report's lines for what the selection leaves out: each skipped schema, then each object in
/// them a user may miss, by name.
pub fn not_backed_up(selection: &Selection) -> Vec<String> {
    selection
        .skipped_schemas
        .iter()
        .map(|(schema, why)| format!("schema {schema}: {why}"))
        .chain(
            selection
                .omitted
                .iter()
                .map(|(object, why)| format!("{object}: {why}")),
        )
        .collect()
}

/// Indexes from this size on the source (8 MiB) are built while other tables stream; smaller ones
/// are quicker in the parallel post-data restore than a pg_restore process of their own.
const EARLY_INDEX_PAGES: i64 = 1024;

/// Reads `target` (tables in `known` taken as read) and fails unless it matches `expected`: the full
/// restore's verification, and the mirror's after an incremental sync. Returns what was read.
pub(crate) async fn verify(
    fail: Fail,
    level: VerifyLevel,
    target: &[&Client],
    expected: &Manifest,
    selection: &Selection,
    known: &inspect::KnownChecksums,
) -> Result<Manifest> {
    let actual = inspect::take_manifest_to_match_with(target, selection, expected, known)
        .await
        .map_err(|e| fail.target("reading the branch for verification failed", e))?;
    let mismatches: Vec<Mismatch> = expected
        .compare_with(&actual, SequenceRule::AtLeast)
        .into_iter()
        .filter(|m| !(level == VerifyLevel::Counts && matches!(m, Mismatch::Checksum { .. })))
        .collect();
    for m in mismatches.iter().filter(|m| m.is_advisory()) {
        tracing::warn!("{m}");
    }
    let failing: Vec<&Mismatch> = mismatches.iter().filter(|m| !m.is_advisory()).collect();
    if failing.is_empty() {
        tracing::info!(
            tables = actual.tables.len(),
            rows = actual.total_rows(),
            "the branch matches the manifest"
        );
        return Ok(actual);
    }
    let list: Vec<String> = failing
        .iter()
        .take(20)
        .map(|m| format!("  - {m}"))
        .collect();
    Err(Failure::new(format!(
        "the branch does not match the source ({} difference{}):\n{}",
        failing.len(),
        if failing.len() == 1 { "" } else { "s" },
        list.join("\n")
    ))
    .impact(fail.impact)
    .hint("a difference means data would be lost in a failover; check the messages above, then run again")
    .into())
}

async fn resolve_parent(neon: &NeonClient, wanted: Option<&str>) -> Result<Option<String>> {
    let Some(wanted) = wanted else {
        return Ok(None);
    };
    let branches = neon
        .list_branches()
        .await
        .map_err(|e| e.into_failure("no backup was made; nothing was created on Neon"))?;
    branches
        .into_iter()
        .find(|b| b.branch.id == wanted || b.branch.name == wanted)
        .map(|b| Some(b.branch.id))
        .ok_or_else(|| {
            Failure::new(format!("the parent branch \"{wanted}\" does not exist in the Neon project"))
                .impact("no backup was made; nothing was created on Neon")
                .hint("set neon-parent-branch to an existing branch name or id, or leave it empty for the default branch")
                .into()
        })
}

pub(crate) fn source_unreachable(e: &conn::ConnError) -> Error {
    Failure::new(format!("cannot connect to the Supabase database: {e}"))
        .impact("no backup was made by this run; earlier backups are untouched")
        .into()
}

pub(crate) fn source_query(e: inspect::InspectError, what: &str) -> Error {
    Failure::new(format!("the Supabase database failed while {what}"))
        .impact("no complete backup was made by this run; earlier backups are untouched")
        .hint("check that the source is reachable and the role can read every dumped schema")
        .cause(e)
        .into()
}

/// What a failure while restoring or verifying means for the user's data: the caller's branch is not a
/// backup (an incomplete backup is deleted; a half-synced mirror is harmless and synced again).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fail {
    pub impact: &'static str,
}

impl Fail {
    pub(crate) fn restore(self, what: &str, e: pipeline::PipelineError) -> Error {
        Failure::new(what)
            .impact(self.impact)
            .hint(e.hint())
            .cause(e)
            .into()
    }

    pub(crate) fn target(
        self,
        what: &str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Failure::new(what).impact(self.impact).cause(e).into()
    }
}
