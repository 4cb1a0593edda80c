//! The schema archive as SQL text (`pg_restore -f -`, no connection): for the privilege statements and for
//! the schema fingerprint that decides whether a mirror can be synced or must be rebuilt.

use std::process::Stdio;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{
    cancelled, drain_stderr, kill, spawn, CancelSignal, ListFile, PipelineError, SchemaArchive,
};
use crate::pg::tools::PgTools;

/// The SQL of `schema`'s entries, or only of those in `list` when given.
pub(super) async fn archive_sql(
    tools: &PgTools,
    schema: &SchemaArchive,
    list: Option<&ListFile>,
    mut cancel: CancelSignal,
) -> Result<String, PipelineError> {
    let stdin = schema
        .file
        .try_clone()
        .map_err(PipelineError::SchemaArchive)?;
    let mut args = vec!["--no-owner".to_string(), "--file=-".to_string()];
    if let Some(list) = list {
        args.push(list.arg());
    }
    args.push("/proc/self/fd/0".to_string());
    let mut child = spawn(
        "pg_restore",
        &tools.pg_restore,
        &args,
        Vec::new(),
        Stdio::from(stdin),
        Stdio::piped(),
    )?;
    let mut out = child.stdout.take().expect("stdout is piped");
    let errors = drain_stderr(
        "pg_restore",
        child.stderr.take().expect("stderr is piped"),
        None,
        None,
    );
    let mut text = String::new();
    let read = async {
        out.read_to_string(&mut text).await?;
        child.wait().await
    };
    let status = tokio::select! {
        st = read => st.map_err(PipelineError::SchemaArchive)?,
        _ = cancelled(&mut cancel) => {
            kill(&mut child).await;
            return Err(PipelineError::Cancelled);
        }
    };
    let summary = errors.await;
    if !status.success() {
        return Err(PipelineError::Restore {
            errors: Vec::new(),
            status: status.to_string(),
            stderr_tail: summary.tail,
        });
    }
    Ok(text)
}

/// A digest of every definition in `schema` (tables, columns, constraints, indexes, functions, policies,
/// grants): equal for two dumps exactly when their SQL is. Comments and psql meta-commands are left out:
/// pg_dump 17 writes a random `\restrict` key into every dump.
pub async fn schema_fingerprint(
    tools: &PgTools,
    schema: &SchemaArchive,
    cancel: CancelSignal,
) -> Result<String, PipelineError> {
    let sql = archive_sql(tools, schema, None, cancel).await?;
    Ok(fingerprint_sql(&sql))
}

fn fingerprint_sql(sql: &str) -> String {
    let mut h = Sha256::new();
    for line in sql.lines() {
        if line.starts_with("--") || line.starts_with('\\') || line.trim().is_empty() {
            continue;
        }
        h.update(line.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_ignores_comments_and_restrict_keys_but_not_definitions() {
        let a =
            "\\restrict abc\n-- Dumped by pg_dump 17\nCREATE TABLE t (id int);\n\\unrestrict abc\n";
        let b = "\\restrict xyz\n-- Dumped by pg_dump 17\n\nCREATE TABLE t (id int);\n\\unrestrict xyz\n";
        let c = "\\restrict abc\nCREATE TABLE t (id bigint);\n";
        assert_eq!(fingerprint_sql(a), fingerprint_sql(b));
        assert_ne!(fingerprint_sql(a), fingerprint_sql(c));
    }
}
