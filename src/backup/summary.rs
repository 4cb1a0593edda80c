//! What a finished backup tells the user: the result line, the outputs, the notes and the job summary (what
//! was backed up, what was not and why, and what the run read from the source).

use std::collections::BTreeMap;

use super::BackupOutcome;
use crate::context::RunContext;
use crate::error::{Error, Failure, Result};
use crate::report;

/// Outputs and the job summary of a finished backup.
pub fn report(ctx: &RunContext, outcome: &BackupOutcome) -> Result<()> {
    let m = &outcome.manifest;
    let data_tables = m
        .tables
        .iter()
        .filter(|t| !t.data_excluded && !t.refreshed_on_restore)
        .count();
    let refreshed_note = match outcome.refreshed.len() {
        0 => String::new(),
        n => format!(
            " ({n} materialized view{} refreshed on restore, not verified)",
            if n == 1 { "" } else { "s" }
        ),
    };
    let result = format!(
        "backup {} verified: {} tables, {} rows, {} bytes in {:.1} s{refreshed_note}",
        outcome.branch_name,
        m.tables.len(),
        m.total_rows(),
        outcome.pipeline.bytes,
        outcome.duration.as_secs_f64()
    );
    ctx.actions.info(&result);
    let how = how_made(outcome);
    ctx.actions.info(&how);
    if let Some(crate::mirror::SyncPath::Incremental(r)) = &outcome.sync {
        if !r.repaired.is_empty() {
            ctx.actions.warning(&format!(
                "the mirror had been changed outside supaneon-sync since its last verified sync ({}); the sync repaired it from the source, and the backup is verified",
                r.repaired.join(", ")
            ));
        }
    }
    // Things the user may need to act on are warnings; errors on the allow-list are only notes.
    for note in &outcome.notes {
        ctx.actions.warning(note);
    }
    let harmless: Vec<String> = outcome
        .pipeline
        .benign
        .iter()
        .map(|e| format!("pg_restore reported a known-harmless error: {e}"))
        .collect();
    for note in &harmless {
        ctx.actions.info(&format!("note: {note}"));
    }
    for line in &outcome.not_backed_up {
        ctx.actions.info(&format!("not backed up: {line}"));
    }
    for line in &outcome.refreshed {
        ctx.actions.warning(line);
    }
    report::write_outputs(
        &ctx.actions,
        &[
            ("result", result.clone()),
            ("backup-branch", outcome.branch_name.clone()),
            ("backup-branch-id", outcome.branch_id.clone()),
            ("tables", m.tables.len().to_string()),
            ("rows", m.total_rows().to_string()),
            ("bytes", outcome.pipeline.bytes.to_string()),
            ("sha256", outcome.pipeline.sha256.clone()),
            ("source-bytes", source_bytes(outcome).to_string()),
            (
                "strategy",
                if outcome.sync.is_some() {
                    "snapshot"
                } else {
                    "full"
                }
                .to_string(),
            ),
            (
                "duration-seconds",
                format!("{:.1}", outcome.duration.as_secs_f64()),
            ),
        ],
    )
    .map_err(output_failure)?;

    let mut by_schema: BTreeMap<&str, (usize, i64, usize)> = BTreeMap::new();
    for t in &m.tables {
        let entry = by_schema.entry(t.schema.as_str()).or_default();
        entry.0 += 1;
        entry.1 += t.rows;
        entry.2 += usize::from(t.data_excluded);
    }
    let rows: Vec<Vec<String>> = by_schema
        .iter()
        .map(|(schema, (tables, rows, excluded))| {
            vec![
                schema.to_string(),
                tables.to_string(),
                rows.to_string(),
                excluded.to_string(),
            ]
        })
        .collect();
    let objects: Vec<Vec<String>> = m
        .objects
        .entries()
        .iter()
        .map(|(k, v)| vec![k.to_string(), v.to_string()])
        .collect();
    let mut summary = format!(
        "## supaneon-sync backup\n\n**{}** — verified against the source manifest ({data_tables} tables with data){refreshed_note}.\n\n\
         | | |\n| --- | --- |\n| archive | {} bytes, sha256 `{}` |\n| duration | {:.1} s |\n| source | PostgreSQL {} |\n| read from the source | {} |\n| how | {} |\n\n",
        outcome.branch_name,
        outcome.pipeline.bytes,
        outcome.pipeline.sha256,
        outcome.duration.as_secs_f64(),
        m.source_server_version,
        egress_projection(
            source_bytes(outcome),
            matches!(outcome.sync, Some(crate::mirror::SyncPath::Full { .. }))
        ),
        how.replace('|', "/")
    );
    summary.push_str(&report::markdown_table(
        &["schema", "tables", "rows", "tables without data"],
        &rows,
    ));
    summary.push('\n');
    summary.push_str(&report::markdown_table(&["objects", "count"], &objects));
    if !outcome.notes.is_empty() || !harmless.is_empty() {
        summary.push_str("\n**Notes**\n\n");
        for n in outcome.notes.iter().chain(&harmless) {
            summary.push_str(&format!("- {}\n", n.replace('\n', " ")));
        }
    }
    if !outcome.refreshed.is_empty() {
        summary.push_str("\n**Refreshed on restore** (not verified against the source)\n\n");
        for line in &outcome.refreshed {
            summary.push_str(&format!("- {}\n", line.replace('\n', " ")));
        }
    }
    if !outcome.not_backed_up.is_empty() {
        summary.push_str("\n**Not backed up**\n\n");
        for line in &outcome.not_backed_up {
            summary.push_str(&format!("- {}\n", line.replace('\n', " ")));
        }
    }
    ctx.actions
        .append_summary(&summary)
        .map_err(output_failure)?;
    Ok(())
}

/// One line on how the backup was made.
fn how_made(outcome: &BackupOutcome) -> String {
    use crate::mirror::SyncPath;
    match &outcome.sync {
        None => "full strategy: a fresh full restore into the backup branch".to_string(),
        Some(SyncPath::Full { why }) => format!(
            "snapshot strategy: the mirror was restored in full ({why}); the backup is a copy-on-write child of it"
        ),
        Some(SyncPath::Incremental(r)) => {
            let mut line = format!(
                "snapshot strategy: the mirror was synced incrementally: {} of {} tables changed, {} rows read ({} bytes of rows, {} bytes of digests); {} deleted, {} updated, {} inserted; the backup is a copy-on-write child of it",
                r.tables_changed.len(),
                r.tables_compared,
                r.rows_read,
                r.bytes_read,
                r.digest_bytes,
                r.deleted,
                r.updated,
                r.inserted
            );
            if r.tables_written_since > 0 {
                line.push_str(&format!(
                    "; {} table{} brought over by the rows written since the last sync alone",
                    r.tables_written_since,
                    if r.tables_written_since == 1 { "" } else { "s" }
                ));
            }
            if !r.narrowed_again.is_empty() {
                line.push_str(&format!(
                    "; compared by digests after the rows written since the last sync did not bring them to the source's content (rows deleted, a key moved between rows, or rows changed on the mirror): {}",
                    r.narrowed_again.join(", ")
                ));
            }
            if r.large_objects_written + r.large_objects_removed > 0 {
                line.push_str(&format!(
                    "; large objects: {} written, {} removed",
                    r.large_objects_written, r.large_objects_removed
                ));
            }
            if r.settings_set + r.settings_reset > 0 {
                line.push_str(&format!(
                    "; database and role settings: {} set, {} reset",
                    r.settings_set, r.settings_reset
                ));
            }
            if r.resumed {
                line.push_str("; it resumed a sync that did not finish");
            }
            if !r.repaired.is_empty() {
                line.push_str(&format!(
                    "; repaired, changed on the mirror since its last verified sync: {}",
                    r.repaired.join(", ")
                ));
            }
            line
        }
    }
}

/// What this run read from the source: the schema archive and the data stream (the manifest's digests
/// are computed on the source and add next to nothing). Through Supabase's pooler this is egress.
pub(super) fn source_bytes(outcome: &BackupOutcome) -> u64 {
    outcome.pipeline.bytes + outcome.pipeline.schema_bytes
}

/// Supabase's free plan includes 5 GB of egress a month, the pooler's traffic counted.
const FREE_PLAN_EGRESS_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// "124 MB; a backup every day reads about 3.6 GB a month (73 % of the free plan's 5 GB of egress)". A
/// mirror restored in full (`mirror_rebuilt`: the first run, or one after a migration) is not what the
/// daily runs after it read, so its month is said as what a full read every day would cost.
pub(super) fn egress_projection(bytes: u64, mirror_rebuilt: bool) -> String {
    let month = bytes * 30;
    let mb = bytes.div_ceil(1024 * 1024);
    let gb = month as f64 / (1024.0 * 1024.0 * 1024.0);
    let share = month * 100 / FREE_PLAN_EGRESS_BYTES;
    if mirror_rebuilt {
        format!(
            "{mb} MB, the whole source: the mirror was restored in full, and later runs read only what changed (a full read every day would be {gb:.1} GB a month, {share} % of Supabase's free 5 GB of egress)"
        )
    } else {
        format!(
            "{mb} MB; a backup every day reads about {gb:.1} GB a month ({share} % of Supabase's free 5 GB of egress)"
        )
    }
}

fn output_failure(e: std::io::Error) -> Error {
    Failure::new("cannot write the step outputs or summary")
        .impact("the backup itself is complete and verified")
        .cause(e)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_is_projected_over_a_month_of_daily_backups() {
        let text = egress_projection(124 * 1024 * 1024, false);
        assert!(
            text.starts_with("124 MB; a backup every day reads about 3.6 GB a month (72 %"),
            "{text}"
        );
        // A rebuild of the mirror is a one-off: its month is not what the next runs will read.
        let rebuilt = egress_projection(124 * 1024 * 1024, true);
        assert!(
            rebuilt.starts_with("124 MB, the whole source: the mirror was restored in full")
                && rebuilt.contains("a full read every day would be 3.6 GB a month, 72 %"),
            "{rebuilt}"
        );
    }
}
