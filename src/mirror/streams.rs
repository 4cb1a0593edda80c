//! The sync's streams: the changed tables, family by family (tables linked by foreign keys merge
//! together), merged on `sync-streams` pairs of sessions (one on the source in the snapshot, one on
//! the mirror), each table by its rows written since the last sync ([`super::since`]) or by the
//! buckets its digests narrowed down ([`super::digest`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use futures_util::future::try_join_all;
use tokio_postgres::Client;

use super::apply::{self, Filter, Job, Merged, Slice, TableShape};
use super::digest;
use super::since::Since;
use super::sync::FAIL;
use crate::error::{Error, Result};
use crate::pg::inspect::InspectError;
use crate::pg::manifest::Manifest;

/// A table the rows written since the last sync are merged into in slices, one per stream, from this
/// many rows on the source (a smaller one is merged faster than its slices' extra scans cost).
const SLICED_ROWS: i64 = 100_000;

/// One changed table merged: which, whether by its rows written since the last sync, what it moved.
pub(super) struct TableMerged {
    pub(super) table: (String, String),
    pub(super) written_since: bool,
    /// Narrowed down by digests after its rows written since the last sync failed to merge or to match.
    pub(super) narrowed_again: bool,
    /// A slice of its written rows failed to merge (rolled back): the table is narrowed down again.
    pub(super) failed: bool,
    pub(super) merged: Merged,
    /// Digest bytes read from the source to narrow it down.
    pub(super) digest_bytes: u64,
}

/// What a round of merges works with: one source session (in the snapshot) and one mirror session per
/// stream, and both sides' manifests.
pub(super) struct Round<'a> {
    pub(super) sources: &'a [&'a Client],
    pub(super) mirrors: &'a [&'a Client],
    pub(super) source_manifest: &'a Manifest,
    pub(super) before: &'a Manifest,
}

impl Round<'_> {
    /// Merges `families` on `sync-streams` workers that take them from one queue. A keyed table gets
    /// the rows written `since` the last sync (unless `tampered`: those rows would not repair it); every
    /// other table is narrowed down by digests. A family whose merge by written rows fails (a unique key
    /// freed by a delete, say) is rolled back and merged again by digests. A large table on its own has
    /// its written rows merged in slices (block ranges on the source), one per stream; a slice that
    /// fails is rolled back and its table returned as `failed`, for the caller to narrow down once
    /// every slice is done.
    pub(super) async fn merge(
        &self,
        families: Vec<Vec<&TableShape>>,
        since: Option<Since>,
        tampered: &BTreeSet<(String, String)>,
    ) -> Result<Vec<TableMerged>> {
        // The window of rows written since the last sync for a table merged by them; `None` sends the
        // table to digests straight away.
        let by_written = |s: &TableShape| since.filter(|_| self.by_written_rows(s, tampered));
        // A large table on its own is merged in slices, one per stream.
        let streams = self.sources.len().min(self.mirrors.len()) as u32;
        let mut work: Vec<(Vec<&TableShape>, Option<Slice>)> = Vec::new();
        for family in families {
            match family.as_slice() {
                [only]
                    if streams > 1
                        && by_written(only).is_some()
                        && self.rows(only).0 >= SLICED_ROWS =>
                {
                    let pages = pages(self.sources[0], only).await.map_err(|e| {
                        FAIL.target("reading the size of a table on the source failed", e)
                    })?;
                    work.extend(
                        Slice::split(pages, streams)
                            .into_iter()
                            .map(|slice| (family.clone(), Some(slice))),
                    );
                }
                _ => work.push((family, None)),
            }
        }
        let queue = Mutex::new(work);
        let workers = self.sources.iter().zip(self.mirrors).map(|(src, mir)| {
            let (queue, by_written) = (&queue, &by_written);
            async move {
                let mut done: Vec<TableMerged> = Vec::new();
                // The lock is taken and released inside the call: never held across the awaits below.
                let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                while let Some((family, slice)) = next() {
                    let written = |s: &TableShape| {
                        by_written(s).map(|since| Filter::WrittenSince(since, slice))
                    };
                    if slice.is_some() {
                        // A failed slice is rolled back; its table is narrowed down after the round
                        // (the other slices may have committed).
                        match self.merge_family(src, mir, &family, written).await {
                            Ok(merged) => done.extend(merged),
                            Err(e) => {
                                tracing::info!(
                                    error = %crate::actions::one_line(&e.render()),
                                    "merging a slice of the rows written since the last sync failed (rolled back): the table is compared by digests"
                                );
                                done.extend(family.iter().map(|s| TableMerged {
                                    table: (s.schema.clone(), s.name.clone()),
                                    written_since: true,
                                    narrowed_again: false,
                                    failed: true,
                                    merged: Merged::default(),
                                    digest_bytes: 0,
                                }));
                            }
                        }
                        continue;
                    }
                    let mut failed = false;
                    if family.iter().any(|s| by_written(s).is_some()) {
                        match self.merge_family(src, mir, &family, written).await {
                            Ok(merged) => {
                                done.extend(merged);
                                continue;
                            }
                            Err(e) => {
                                failed = true;
                                tracing::info!(
                                    error = %crate::actions::one_line(&e.render()),
                                    "merging the rows written since the last sync failed (rolled back): comparing by digests instead"
                                );
                            }
                        }
                    }
                    let merged = self.merge_family(src, mir, &family, |_| None).await?;
                    done.extend(merged.into_iter().map(|m| TableMerged {
                        narrowed_again: failed,
                        ..m
                    }));
                }
                Ok::<_, Error>(done)
            }
        });
        Ok(try_join_all(workers).await?.into_iter().flatten().collect())
    }

    /// Whether a round with a usable record of the last sync merges `s` by its rows written since: a
    /// keyed table, not changed behind our back (those rows would not repair it), with no fewer rows on
    /// the source than on the mirror (deleted rows, which the written rows cannot show).
    pub(super) fn by_written_rows(
        &self,
        s: &TableShape,
        tampered: &BTreeSet<(String, String)>,
    ) -> bool {
        s.key.is_some()
            && !tampered.contains(&(s.schema.clone(), s.name.clone()))
            && self.rows(s).0 >= self.rows(s).1
    }

    /// The table's rows on the source (in the snapshot) and on the mirror (before this run's merges).
    fn rows(&self, s: &TableShape) -> (i64, i64) {
        self.rows_of(&(s.schema.clone(), s.name.clone()))
    }

    pub(super) fn rows_of(&self, (schema, name): &(String, String)) -> (i64, i64) {
        let count = |m: &Manifest| m.table(schema, name).map_or(0, |t| t.rows);
        (count(self.source_manifest), count(self.before))
    }

    /// Merges one family in one transaction: each table by the rows `written(table)` selects, or by
    /// the buckets its digests narrowed down.
    async fn merge_family(
        &self,
        src: &Client,
        mir: &Client,
        family: &[&TableShape],
        written: impl Fn(&TableShape) -> Option<Filter>,
    ) -> Result<Vec<TableMerged>> {
        let mut jobs = Vec::with_capacity(family.len());
        let mut digest_bytes = Vec::with_capacity(family.len());
        for (i, shape) in family.iter().enumerate() {
            if let Some(filter) = written(shape) {
                jobs.push(Job::new(shape, filter, i));
                digest_bytes.push(0);
                continue;
            }
            let (theirs, ours) = (
                self.source_manifest.table(&shape.schema, &shape.name),
                self.before.table(&shape.schema, &shape.name),
            );
            let rows = theirs
                .into_iter()
                .chain(ours)
                .map(|t| t.rows)
                .max()
                .unwrap_or(0);
            let method = theirs.map(|t| t.checksum_method).unwrap_or_default();
            let narrowed = digest::narrow(src, mir, shape, rows, method)
                .await
                .map_err(|e| FAIL.target("comparing the table's key ranges failed", e))?;
            digest_bytes.push(narrowed.bytes_read);
            jobs.push(Job::new(shape, narrowed.filter, i));
        }
        let started = std::time::Instant::now();
        let merged = apply::merge_family(src, mir, &jobs)
            .await
            .map_err(|e| FAIL.target("merging the changed rows into the mirror failed", e))?;
        tracing::info!(
            tables = ?jobs.iter().map(|j| j.shape.qualified()).collect::<Vec<_>>(),
            by_key_lookups = ?jobs
                .iter()
                .filter(|j| j.probes_key())
                .map(|j| j.shape.qualified())
                .collect::<Vec<_>>(),
            rows = merged.iter().map(|m| m.rows_read).sum::<u64>(),
            seconds = started.elapsed().as_secs_f64(),
            "copied and merged"
        );
        Ok(jobs
            .iter()
            .zip(merged)
            .zip(digest_bytes)
            .map(|((job, merged), digest_bytes)| TableMerged {
                table: (job.shape.schema.clone(), job.shape.name.clone()),
                written_since: matches!(job.filter, Filter::WrittenSince(..)),
                narrowed_again: false,
                failed: false,
                merged,
                digest_bytes,
            })
            .collect())
    }
}

/// The table's size on the source in blocks, where its slices are split (rows appended since land in
/// the last, open-ended slice).
async fn pages(source: &Client, s: &TableShape) -> std::result::Result<i64, InspectError> {
    Ok(source
        .query_one(
            "SELECT pg_catalog.pg_relation_size($1::text::pg_catalog.regclass) \
                    / pg_catalog.current_setting('block_size')::int8",
            &[&s.qualified()],
        )
        .await
        .map_err(InspectError::query(format!(
            "reading the size of {}",
            s.qualified()
        )))?
        .get(0))
}

/// Changed tables grouped by the foreign keys between them, each family ordered referenced-first;
/// largest family last (the workers pop from the end).
pub(super) fn families<'a>(
    shapes: &'a [TableShape],
    manifest: &Manifest,
) -> Vec<Vec<&'a TableShape>> {
    let index: BTreeMap<(String, String), usize> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.schema.clone(), s.name.clone()), i))
        .collect();
    let mut parent: Vec<usize> = (0..shapes.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, s) in shapes.iter().enumerate() {
        for r in &s.references {
            if let Some(&j) = index.get(r) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..shapes.len() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    let mut out: Vec<Vec<&TableShape>> = groups
        .into_values()
        .map(|members| referenced_first(&members, shapes, &index))
        .collect();
    let rows = |f: &Vec<&TableShape>| -> i64 {
        f.iter()
            .filter_map(|s| manifest.table(&s.schema, &s.name).map(|t| t.rows))
            .sum()
    };
    out.sort_by_key(rows);
    out
}

/// Orders `members` so that a table comes after every member it references (a cycle keeps the
/// rest in name order).
fn referenced_first<'a>(
    members: &[usize],
    shapes: &'a [TableShape],
    index: &BTreeMap<(String, String), usize>,
) -> Vec<&'a TableShape> {
    let mut placed: Vec<usize> = Vec::with_capacity(members.len());
    let mut left: Vec<usize> = members.to_vec();
    while !left.is_empty() {
        let ready = left.iter().position(|&i| {
            shapes[i].references.iter().all(|r| match index.get(r) {
                Some(j) => *j == i || placed.contains(j) || !members.contains(j),
                None => true,
            })
        });
        let next = left.remove(ready.unwrap_or(0));
        placed.push(next);
    }
    placed.into_iter().map(|i| &shapes[i]).collect()
}
