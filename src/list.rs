//! list: the backups that exist, with their state, age, size, what their stored manifest says was
//! verified, and whether a restore test hangs off them. A terminal table and a job summary table, or with
//! `--json` one JSON document on stdout for scripts.
//!
//! The JSON shape (format 1) is stable; fields are only ever added:
//! ```json
//! { "format": 1, "generated_at": "2026-01-02T03:04:05Z",
//!   "backups": [ { "name": "backup-20260102T030000Z", "id": "br-…", "state": "complete",
//!                  "taken_at": "2026-01-02T03:00:00Z", "age_seconds": 245,
//!                  "logical_size_bytes": 123456, "verification": "verified",
//!                  "tables": 12, "rows": 3456, "restore_tests": ["restore-test-20260102T031000Z"] } ],
//!   "foreign": [ { "name": "backup-29991231T235959Z", "id": "br-…",
//!                  "reason": "the timestamp in its name lies in the future" } ] }
//! ```
//! Only branches that are ours by identity (annotations, this source; see `crate::ownership`) are backups;
//! branches named like ours that are not are listed under `foreign`, never as a backup or `latest-backup`.
//! `state` is `complete` or `incomplete`; backups are newest first. `verification` is `verified` (the
//! branch holds the manifest it was verified against; `tables` and `rows` come from it), `no-manifest`,
//! `unknown` (the branch could not be read; `tables`/`rows` are null) or `not-applicable` (incomplete).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::actions::one_line;
use crate::branch_conn;
use crate::branches::BranchKind;
use crate::context::RunContext;
use crate::error::{Error, Failure, Result};
use crate::neon::{BranchInfo, NeonClient};
use crate::pg::conn;
use crate::pg::inspect;
use crate::preflight::APP_NAME;
use crate::secret::redact;
use crate::{ownership, report};

/// The version of the JSON shape.
pub const JSON_FORMAT: u32 = 1;

/// How long reading one backup's manifest may take (waking its compute included).
const READ_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub format: u32,
    pub generated_at: DateTime<Utc>,
    pub backups: Vec<BackupEntry>,
    /// Branches named like ours that are not ours, and why.
    pub foreign: Vec<ForeignEntry>,
    /// The project's storage as Neon bills it, when Neon reports it.
    pub storage_billed_bytes: Option<u64>,
    /// The plan's storage allowance, when known (the free plan's 0.5 GB).
    pub storage_allowance_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForeignEntry {
    pub name: String,
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupEntry {
    pub name: String,
    pub id: String,
    /// `complete` or `incomplete`.
    pub state: &'static str,
    pub taken_at: DateTime<Utc>,
    pub age_seconds: i64,
    pub logical_size_bytes: Option<u64>,
    /// Written since the branch's creation: a backup is billed for min(this, its logical size).
    pub written_bytes: Option<u64>,
    /// `verified`, `no-manifest`, `unknown` or `not-applicable`.
    pub verification: &'static str,
    pub tables: Option<usize>,
    pub rows: Option<i64>,
    pub restore_tests: Vec<String>,
}

/// Builds the listing: every backup branch by its exact name, newest first, complete ones read for their
/// manifest (then their compute is suspended again if it was idle before).
pub async fn collect(ctx: &RunContext, neon: &NeonClient) -> Result<Listing> {
    let all = neon
        .list_branches()
        .await
        .map_err(|e| e.into_failure("nothing was changed"))?;
    let scope = ctx.scope(&all)?;
    let now = scope.now;
    let foreign = scope
        .name_alikes(&all)
        .into_iter()
        .map(|(b, why)| ForeignEntry {
            name: b.branch.name.clone(),
            id: b.branch.id.clone(),
            reason: why.to_string(),
        })
        .collect();
    let mut backups = Vec::new();
    for b in &all {
        let (state, at) = match scope.kind(b) {
            BranchKind::Backup { at } => ("complete", at),
            BranchKind::IncompleteBackup { at } => ("incomplete", at),
            _ => continue,
        };
        let restore_tests = all
            .iter()
            .filter(|c| c.branch.parent_id.as_deref() == Some(b.branch.id.as_str()))
            .filter(|c| matches!(scope.kind(c), BranchKind::RestoreTest { .. }))
            .map(|c| c.branch.name.clone())
            .collect();
        let from_annotations = (
            b.annotations
                .get(ownership::TABLES_KEY)
                .and_then(|t| t.parse::<usize>().ok()),
            b.annotations
                .get(ownership::ROWS_KEY)
                .and_then(|r| r.parse::<i64>().ok()),
        );
        let (verification, tables, rows) = if let (Some(tables), Some(rows)) = from_annotations {
            // A snapshot backup: verified at birth, its manifest's totals annotated; no compute to wake.
            ("verified", Some(tables), Some(rows))
        } else if state == "complete" {
            match read_verified(ctx, neon, b).await {
                Ok(Some((tables, rows))) => ("verified", Some(tables), Some(rows)),
                Ok(None) => ("no-manifest", None, None),
                Err(why) => {
                    tracing::warn!(branch = %b.branch.name, reason = %redact(&why), "cannot read the backup's manifest");
                    ("unknown", None, None)
                }
            }
        } else {
            ("not-applicable", None, None)
        };
        backups.push(BackupEntry {
            name: b.branch.name.clone(),
            id: b.branch.id.clone(),
            state,
            taken_at: at,
            age_seconds: (now - at).num_seconds(),
            logical_size_bytes: b.branch.logical_size,
            written_bytes: b.branch.written_data_bytes,
            verification,
            tables,
            rows,
            restore_tests,
        });
    }
    backups.sort_by(|a, b| b.taken_at.cmp(&a.taken_at).then(b.name.cmp(&a.name)));
    // Storage is reported when Neon tells it; the listing stands without it.
    let project = neon.get_project().await.ok();
    Ok(Listing {
        format: JSON_FORMAT,
        generated_at: now,
        backups,
        foreign,
        storage_billed_bytes: project.as_ref().and_then(|p| p.synthetic_storage_size),
        storage_allowance_bytes: project.as_ref().and_then(|p| p.free_plan_storage()),
    })
}

/// "Neon storage billed: 310 MB of the free plan's 512 MB (61 %)", when Neon reports the figure.
fn storage_line(listing: &Listing) -> Option<String> {
    let billed = listing.storage_billed_bytes?;
    let mb = |b: u64| b.div_ceil(1024 * 1024);
    Some(match listing.storage_allowance_bytes {
        Some(allowance) => format!(
            "Neon storage billed by Neon's rule: {} MB of the free plan's {} MB ({} %)",
            mb(billed),
            mb(allowance),
            billed * 100 / allowance.max(1)
        ),
        None => format!("Neon storage billed by Neon's rule: {} MB", mb(billed)),
    })
}

/// (tables, rows) from the manifest stored in the branch; `None` when it holds none.
async fn read_verified(
    ctx: &RunContext,
    neon: &NeonClient,
    b: &BranchInfo,
) -> std::result::Result<Option<(usize, i64)>, String> {
    let settings = ctx.config.neon.as_ref().ok_or("no Neon settings")?;
    let endpoints = neon
        .list_endpoints(&b.branch.id)
        .await
        .map_err(|e| e.to_string())?;
    let read = async {
        let spec = branch_conn::branch_spec_with(neon, settings, &b.branch.id, &endpoints)
            .await
            .map_err(|e| e.to_string())?;
        let client = conn::connect(&spec, APP_NAME)
            .await
            .map_err(|e| e.to_string())?;
        inspect::read_manifest(&client)
            .await
            .map_err(|e| e.to_string())
    };
    let result = match tokio::time::timeout(READ_DEADLINE, read).await {
        Ok(r) => r.map(|m| m.map(|m| (m.tables.len(), m.total_rows()))),
        Err(_) => Err(format!("no answer within {} s", READ_DEADLINE.as_secs())),
    };
    // Neon's free plan bills compute on non-default branches: put back to sleep what we woke. An endpoint
    // that was active is left alone: someone may be using it (a failover points an app at a backup).
    for ep in endpoints.iter().filter(|ep| ep.current_state == "idle") {
        if let Err(e) = neon.suspend_endpoint(&ep.id).await {
            tracing::warn!(branch = %b.branch.name, error = %e, "could not suspend the backup's compute again; Neon suspends it after 5 idle minutes");
        }
    }
    result
}

/// Prints the listing (a table, or JSON with `--json`), writes `result`, `latest-backup`, `backup-count`
/// and the job summary.
pub fn report(ctx: &RunContext, listing: &Listing) -> Result<()> {
    let complete: Vec<&BackupEntry> = listing
        .backups
        .iter()
        .filter(|b| b.state == "complete")
        .collect();
    let latest = complete.first().map(|b| b.name.clone()).unwrap_or_default();
    let result = match complete.first() {
        Some(newest) => format!(
            "{} complete backup{}, newest {} ({} old)",
            complete.len(),
            if complete.len() == 1 { "" } else { "s" },
            newest.name,
            human_age(newest.age_seconds)
        ),
        None => "no complete backup exists".to_string(),
    };
    let storage = storage_line(listing);
    let header = [
        "backup",
        "state",
        "age",
        "logical size",
        "verified tables",
        "verified rows",
        "restore test",
    ];
    let rows: Vec<Vec<String>> = listing.backups.iter().map(row).collect();
    if ctx.json {
        let json = serde_json::to_string_pretty(listing)
            .map_err(|e| Error::from(Failure::new("cannot write the listing as JSON").cause(e)))?;
        ctx.actions.document(&json);
    } else {
        ctx.actions.info(&text_table(&header, &rows));
        for f in &listing.foreign {
            ctx.actions.info(&format!(
                "not ours, never touched: {} ({})",
                one_line(&f.name),
                f.reason
            ));
        }
        ctx.actions.info(&result);
        if let Some(line) = &storage {
            ctx.actions.info(line);
        }
    }
    report::write_outputs(
        &ctx.actions,
        &[
            ("result", result.clone()),
            ("latest-backup", latest),
            ("backup-count", complete.len().to_string()),
        ],
    )
    .map_err(output_failure)?;
    let mut summary = format!(
        "## supaneon-sync backups\n\n{result}\n\n{}",
        report::markdown_table(&header, &rows)
    );
    if let Some(line) = &storage {
        summary.push_str(&format!("\n{line}\n"));
    }
    if !listing.foreign.is_empty() {
        let foreign: Vec<Vec<String>> = listing
            .foreign
            .iter()
            .map(|f| vec![f.name.clone(), f.reason.clone()])
            .collect();
        summary.push_str("\nNamed like backups but not ours (never touched):\n\n");
        summary.push_str(&report::markdown_table(&["branch", "why"], &foreign));
    }
    ctx.actions.append_summary(&summary).map_err(output_failure)
}

fn row(b: &BackupEntry) -> Vec<String> {
    let unknown = |v: Option<String>| {
        v.unwrap_or_else(|| match b.verification {
            "not-applicable" => "-".to_string(),
            "no-manifest" => "no manifest".to_string(),
            _ => "unknown".to_string(),
        })
    };
    vec![
        b.name.clone(),
        b.state.to_string(),
        human_age(b.age_seconds),
        b.logical_size_bytes
            .map(human_size)
            .unwrap_or_else(|| "unknown".into()),
        unknown(b.tables.map(|t| t.to_string())),
        unknown(b.rows.map(|r| r.to_string())),
        if b.restore_tests.is_empty() {
            "-".to_string()
        } else {
            b.restore_tests.join(", ")
        },
    ]
}

/// "3d 4h", "5h 2m", "12m", "40s".
pub fn human_age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

/// Bytes in binary units with one decimal.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A plain-text table with padded columns, for the terminal.
fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .map(|c| one_line(c))
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.to_vec())];
    for r in rows {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

fn output_failure(e: std::io::Error) -> Error {
    Failure::new("cannot write the step outputs or summary")
        .impact("nothing was changed")
        .cause(e)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes_read_naturally() {
        assert_eq!(human_age(40), "40s");
        assert_eq!(human_age(12 * 60 + 5), "12m");
        assert_eq!(human_age(5 * 3600 + 120), "5h 2m");
        assert_eq!(human_age(3 * 86_400 + 4 * 3600 + 59), "3d 4h");
        assert_eq!(human_age(-5), "0s");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(30 * 1024 * 1024), "30.0 MiB");
    }

    #[test]
    fn the_text_table_pads_columns() {
        let t = text_table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\nxxx  y");
    }
}
