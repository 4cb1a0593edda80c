//! failover: the newest verified backup of this source (or the one named), given a read-write compute if it
//! has none, checked to answer and to hold its verified manifest, and its connection URI: the application's
//! new `DATABASE_URL`. Nothing is copied at failover time; the data is already in the branch.

use chrono::{DateTime, Utc};

use crate::branch_conn::{self, BranchConnError};
use crate::branches::BranchKind;
use crate::context::RunContext;
use crate::error::{Error, Failure, Result};
use crate::neon::{BranchInfo, EndpointType, NeonClient};
use crate::pg::{conn, inspect};
use crate::preflight::APP_NAME;
use crate::report;
use crate::secret::Secret;

const NOTHING_CHANGED: &str = "nothing was changed; your application still points where it did";

/// The branch to point the application at.
pub struct FailoverTarget {
    pub backup: String,
    pub taken_at: DateTime<Utc>,
    /// Whether this run gave the branch its compute.
    pub endpoint_created: bool,
    pub tables: usize,
    pub rows: i64,
    /// The connection URI (a secret: masked under Actions).
    pub uri: Secret,
}

/// Chooses the backup, makes sure it has a compute, and checks that it answers with its manifest.
pub async fn prepare(ctx: &RunContext, neon: &NeonClient) -> Result<FailoverTarget> {
    let settings = ctx.neon_settings()?;
    let all = neon
        .list_branches()
        .await
        .map_err(|e| e.into_failure(NOTHING_CHANGED))?;
    let scope = ctx.scope(&all)?;
    let chosen: &BranchInfo = match ctx.config.backup_branch.as_deref() {
        Some(name) => all.iter().find(|b| b.branch.name == name).ok_or_else(|| {
            Error::from(
                Failure::new(format!("the backup branch {name} does not exist in the Neon project"))
                    .impact(NOTHING_CHANGED)
                    .hint("name a backup that supaneon-sync list shows, or leave backup-branch empty for the newest"),
            )
        })?,
        None => scope.newest_backup(&all).ok_or_else(|| {
            Error::from(
                Failure::new("there is no complete backup of this source to fail over to")
                    .impact(NOTHING_CHANGED)
                    .hint("supaneon-sync list shows what exists; a backup is complete only once it was verified"),
            )
        })?,
    };
    let BranchKind::Backup { at } = scope.kind(chosen) else {
        let why = scope
            .not_ours(chosen)
            .map(|w| w.to_string())
            .unwrap_or_else(|| "incomplete".to_string());
        return Err(Failure::new(format!(
            "{} is not a complete backup of this source made by supaneon-sync: {why}",
            chosen.branch.name
        ))
        .impact(NOTHING_CHANGED)
        .hint("name a backup that supaneon-sync list shows, or leave backup-branch empty for the newest")
        .into());
    };
    let branch_id = chosen.branch.id.clone();
    let name = chosen.branch.name.clone();

    // A compute: the backup's own, or a new one (the mirror design creates backups without one).
    let mut endpoints = neon
        .list_endpoints(&branch_id)
        .await
        .map_err(|e| e.into_failure(NOTHING_CHANGED))?;
    let endpoint_created = !endpoints
        .iter()
        .any(|e| e.endpoint_type == EndpointType::ReadWrite);
    if endpoint_created {
        let endpoint = neon.create_endpoint(&branch_id).await.map_err(|e| {
            e.into_failure("the backup is untouched, but it has no compute to connect to yet")
        })?;
        tracing::info!(branch = %name, endpoint = %endpoint.id, "read-write compute created");
        endpoints.push(endpoint);
    }

    // It must answer, and hold the manifest it was verified against.
    let unusable = |what: String| -> Error {
        Failure::new(format!("the backup {name} cannot be used: {what}"))
            .impact(NOTHING_CHANGED)
            .hint("try the previous backup with --backup (supaneon-sync list shows them), and run restore-test to see what is wrong with this one")
            .into()
    };
    let (uri, spec) = branch_conn::branch_connection(neon, settings, &branch_id, &endpoints)
        .await
        .map_err(|e| match e {
            BranchConnError::Api(e) => Error::from(e.into_failure(NOTHING_CHANGED)),
            other => unusable(other.to_string()),
        })?;
    let client = conn::connect(&spec, APP_NAME)
        .await
        .map_err(|e| unusable(format!("its compute does not answer: {e}")))?;
    let manifest = inspect::read_manifest(&client)
        .await
        .map_err(|e| unusable(format!("its manifest cannot be read: {e}")))?
        .ok_or_else(|| unusable("it holds no manifest, so it was never verified".to_string()))?;
    Ok(FailoverTarget {
        backup: name,
        taken_at: at,
        endpoint_created,
        tables: manifest.tables.len(),
        rows: manifest.total_rows(),
        uri,
    })
}

/// The URI on stdout (its only line outside Actions, so `DATABASE_URL=$(supaneon-sync failover)` works;
/// masked in the log under Actions), the `database-url` output, and what was done, on stderr and in the
/// job summary.
pub fn report(ctx: &RunContext, target: &FailoverTarget) -> Result<()> {
    let age = (Utc::now() - target.taken_at).num_seconds().max(0);
    let result = format!(
        "fail over to {} (taken {} s ago; {} tables, {} rows verified){}",
        target.backup,
        age,
        target.tables,
        target.rows,
        if target.endpoint_created {
            "; a read-write compute was created for it"
        } else {
            ""
        }
    );
    ctx.actions.info(&result);
    ctx.actions.reveal_secret(&target.uri);
    let failure = |e: std::io::Error| {
        Error::from(Failure::new("cannot write the step outputs or summary").cause(e))
    };
    report::write_outputs(
        &ctx.actions,
        &[
            ("result", result.clone()),
            ("backup-branch", target.backup.clone()),
        ],
    )
    .map_err(failure)?;
    ctx.actions
        .set_secret_output("database-url", &target.uri)
        .map_err(failure)?;
    ctx.actions
        .append_summary(&format!(
            "## supaneon-sync failover\n\n{result}\n\nThe connection URI is in the step's `database-url` output (masked). Set it as the application's `DATABASE_URL`, restart the application, and pause the scheduled backup until you fail back.\n"
        ))
        .map_err(failure)
}
