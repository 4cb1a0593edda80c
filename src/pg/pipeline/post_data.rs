//! After the rows: the large plain indexes built while later tables stream, and the parallel post-data
//! restore from the in-memory schema archive.

use super::*;

/// `pg_restore --list` of the in-memory archive: its entries, without the comment lines.
pub(super) async fn list_toc(
    tools: &PgTools,
    file: &File,
    cancel: &mut CancelSignal,
) -> Result<Vec<String>, PipelineError> {
    let stdin = file.try_clone().map_err(PipelineError::SchemaArchive)?;
    let mut list = spawn(
        "pg_restore",
        &tools.pg_restore,
        &["--list".to_string(), "/proc/self/fd/0".to_string()],
        Vec::new(),
        Stdio::from(stdin),
        Stdio::piped(),
    )?;
    let mut out = list.stdout.take().expect("stdout is piped");
    let list_err = drain_stderr(
        "pg_restore",
        list.stderr.take().expect("stderr is piped"),
        None,
        None,
    );
    let mut text = String::new();
    let read = async {
        out.read_to_string(&mut text).await?;
        list.wait().await
    };
    let status = tokio::select! {
        st = read => st.map_err(PipelineError::SchemaArchive)?,
        _ = cancelled(cancel) => {
            kill(&mut list).await;
            return Err(PipelineError::Cancelled);
        }
    };
    let summary = list_err.await;
    if !status.success() {
        return Err(PipelineError::Restore {
            errors: Vec::new(),
            status: status.to_string(),
            stderr_tail: summary.tail,
        });
    }
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(String::from)
        .collect())
}

/// The source OID of a plain `INDEX` entry of a `pg_restore --list` line
/// (`3261; 1259 16480 INDEX public t_payload owner`); `None` for every other kind of entry.
pub(super) fn toc_index_oid(line: &str) -> Option<u32> {
    let (_, rest) = line.split_once("; ")?;
    let mut words = rest.splitn(4, ' ');
    let (_class, oid, desc, more) = (words.next()?, words.next()?, words.next()?, words.next()?);
    // `INDEX ATTACH` (a partition's index joining its parent's) is another kind of entry. A schema
    // named ATTACH reads the same; its indexes are then left to the post-data restore, which is safe.
    let plain = desc == "INDEX" && !more.starts_with("ATTACH ");
    plain.then(|| oid.parse().ok()).flatten()
}

/// Restores the post-data section of `schema` into `target` with `jobs` parallel pg_restore workers,
/// but for the indexes in `skip` (built early, see [`stream_data`]). Run it after [`stream_data`] has
/// loaded the rows.
pub async fn restore_post_data(
    tools: &PgTools,
    target: &ConnSpec,
    schema: &SchemaArchive,
    jobs: u32,
    skip: &[u32],
    cancel: CancelSignal,
) -> Result<PostDataReport, PipelineError> {
    let started = Instant::now();
    let list = if skip.is_empty() {
        None
    } else {
        let kept = schema
            .toc
            .iter()
            .filter(|l| !toc_index_oid(l).is_some_and(|oid| skip.contains(&oid)));
        Some(ListFile::new(kept.map(String::as_str))?)
    };
    tracing::info!(
        pg_restore_jobs = jobs,
        "restoring indexes, constraints, triggers and policies ({jobs} jobs, {} index(es) already built)",
        skip.len()
    );
    let benign = restore_items(tools, target, schema, jobs, list.as_ref(), cancel).await?;
    let report = PostDataReport {
        schema_bytes: schema.bytes,
        duration: started.elapsed(),
        benign,
    };
    tracing::info!(
        "post-data restored in {:.1} s",
        report.duration.as_secs_f64()
    );
    Ok(report)
}

/// One pg_restore of the post-data section of `schema`, or of the entries `list` names.
pub(super) async fn restore_items(
    tools: &PgTools,
    target: &ConnSpec,
    schema: &SchemaArchive,
    jobs: u32,
    list: Option<&ListFile>,
    mut cancel: CancelSignal,
) -> Result<Vec<RestoreError>, PipelineError> {
    let stdin = schema
        .file
        .try_clone()
        .map_err(PipelineError::SchemaArchive)?;
    let (dbname, env) = child_connection(tools, target, "supaneon-sync pg_restore")?;
    let mut args = restore_args();
    args.push(dbname);
    args.push("--section=post-data".into());
    if jobs > 1 {
        args.push(format!("--jobs={jobs}"));
    }
    if let Some(list) = list {
        args.push(list.arg());
    }
    // pg_restore refuses --jobs with standard input but opens a path, and each worker reopens it:
    // /proc/self/fd/0 is the memory file, seekable, in the leader and every worker alike.
    args.push("/proc/self/fd/0".into());
    let mut restore = spawn(
        "pg_restore",
        &tools.pg_restore,
        &args,
        env,
        Stdio::from(stdin),
        Stdio::null(),
    )?;
    let restore_err = drain_stderr(
        "pg_restore",
        restore.stderr.take().expect("stderr is piped"),
        Some(if jobs > 1 {
            RestoreErrorParser::parallel()
        } else {
            RestoreErrorParser::new()
        }),
        None,
    );
    tracing::debug!(
        pg_restore_pid = restore.id(),
        "post-data pg_restore started"
    );
    let status = tokio::select! {
        st = restore.wait() => st.map_err(PipelineError::Relay)?,
        _ = cancelled(&mut cancel) => {
            kill(&mut restore).await;
            tracing::warn!("post-data restore cancelled; pg_restore stopped");
            return Err(PipelineError::Cancelled);
        }
    };
    restore_finished(status, restore_err.await)
}

/// Adds the early indexes of `table` to `ready` (their rank in `early` and archive entry), keeping
/// the largest (lowest rank) last, where `pop` takes it.
pub(super) fn enqueue_early<'a>(
    early: &'a EarlyIndexes<'_>,
    table: &str,
    ready: &mut Vec<(usize, &'a str)>,
) {
    for (rank, index) in early.indexes.iter().enumerate() {
        if index.table != table {
            continue;
        }
        if let Some(line) = early
            .schema
            .toc
            .iter()
            .find(|l| toc_index_oid(l) == Some(index.oid))
        {
            ready.push((rank, line));
        }
    }
    ready.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
}

/// Builds `early` indexes one at a time, largest first, as soon as pg_restore reports (on `loaded`)
/// that their table's rows are in; stops taking new ones once `streamed` is set and returns after
/// the one being built. Returns the OIDs built and pg_restore's benign notes.
pub(super) async fn build_early(
    tools: &PgTools,
    target: &ConnSpec,
    early: &EarlyIndexes<'_>,
    mut loaded: tokio::sync::mpsc::UnboundedReceiver<String>,
    mut streamed: watch::Receiver<bool>,
    cancel: CancelSignal,
) -> Result<(Vec<u32>, Vec<RestoreError>), PipelineError> {
    let mut ready: Vec<(usize, &str)> = Vec::new();
    let (mut built, mut benign) = (Vec::new(), Vec::new());
    loop {
        while let Ok(table) = loaded.try_recv() {
            enqueue_early(early, &table, &mut ready);
        }
        if *streamed.borrow() {
            break;
        }
        if let Some((rank, line)) = ready.pop() {
            let index = &early.indexes[rank];
            tracing::info!(table = %index.table, "building an index while the rows of other tables stream");
            let list = ListFile::new(std::iter::once(line))?;
            benign.extend(
                restore_items(tools, target, early.schema, 1, Some(&list), cancel.clone()).await?,
            );
            built.push(index.oid);
            continue;
        }
        tokio::select! {
            table = loaded.recv() => match table {
                Some(table) => enqueue_early(early, &table, &mut ready),
                None => break,
            },
            _ = streamed.changed() => break,
        }
    }
    Ok((built, benign))
}
