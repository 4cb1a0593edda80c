//! Storage as Neon bills it, measured on the backing cluster.
//!
//! Neon bills a root branch at its logical size and a child branch at min(data written since its
//! creation, its logical size): a child shares its parent's pages until it writes its own. Branching
//! here copies each database file for file (`CREATE DATABASE … TEMPLATE` keeps every relation's
//! file node), so what a branch wrote since its creation is read off its relation files: the growth
//! of each file that existed at creation, and the whole of each file that did not (a new table or
//! index, or a rewrite such as TRUNCATE, VACUUM FULL or a restore). Updates in place that do not grow
//! a file go unseen; PostgreSQL's MVCC writes new row versions, so real changes do grow files.

use std::collections::BTreeMap;

/// Relation file sizes of one database, by file node.
pub(crate) type RelationSizes = BTreeMap<i64, i64>;

/// Bytes written between `baseline` and `now` (see the module documentation).
pub(crate) fn written_since(baseline: &RelationSizes, now: &RelationSizes) -> i64 {
    now.iter()
        .map(|(node, size)| match baseline.get(node) {
            Some(before) => (size - before).max(0),
            None => *size,
        })
        .sum()
}

/// The logical size: every relation file's bytes.
pub(crate) fn logical(now: &RelationSizes) -> i64 {
    now.values().sum()
}

/// What Neon bills for one branch.
pub(crate) fn billed(is_root: bool, logical_size: i64, written: i64) -> i64 {
    if is_root {
        logical_size
    } else {
        written.min(logical_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(pairs: &[(i64, i64)]) -> RelationSizes {
        pairs.iter().copied().collect()
    }

    #[test]
    fn growth_of_old_files_and_all_of_new_ones_is_written() {
        let at_creation = sizes(&[(1, 8192), (2, 81920), (3, 16384)]);
        assert_eq!(written_since(&at_creation, &at_creation), 0);
        // File 2 grew by two pages, file 3 shrank (a vacuum truncation writes nothing new), file 4 is new.
        let later = sizes(&[(1, 8192), (2, 98304), (3, 8192), (4, 40960)]);
        assert_eq!(written_since(&at_creation, &later), 16384 + 40960);
        assert_eq!(logical(&later), 8192 + 98304 + 8192 + 40960);
    }

    #[test]
    fn roots_pay_their_size_and_children_the_lesser_of_writes_and_size() {
        assert_eq!(billed(true, 1000, 0), 1000);
        assert_eq!(billed(false, 1000, 10), 10);
        assert_eq!(billed(false, 1000, 5000), 1000);
    }
}
