//! Block ranges of a table: disjoint parts of its rows by their place in its file, each read by a TID
//! range scan of its blocks only (PostgreSQL 14 and later; an older server scans the whole table for
//! each part). A large table's work is shared out between sessions this way: its merge in the sync, and
//! the reading of its rows for a manifest.

/// Blocks `from` up to `to` of a table; the last range of a split is open-ended, so rows appended
/// after the table's size was read are in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRange {
    pub from: i64,
    /// `None`: to the end of the table, however it grew.
    pub to: Option<i64>,
}

impl BlockRange {
    /// `count` ranges covering a table of `pages` blocks, even in blocks (not always in rows).
    pub fn split(pages: i64, count: u32) -> Vec<BlockRange> {
        let count = i64::from(count.max(1));
        let pages = pages.max(0);
        (0..count)
            .map(|i| BlockRange {
                from: pages * i / count,
                to: (i + 1 < count).then(|| pages * (i + 1) / count),
            })
            .collect()
    }

    /// The SQL condition selecting the rows of `alias` in this range.
    pub fn condition(&self, alias: &str) -> String {
        let from = format!("{alias}.ctid >= '({},0)'::pg_catalog.tid", self.from);
        match self.to {
            Some(to) => format!("{from} AND {alias}.ctid < '({to},0)'::pg_catalog.tid"),
            None => from,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BlockRange;

    #[test]
    fn ranges_cover_every_block_once_and_the_last_is_open_ended() {
        let ranges = BlockRange::split(10, 3);
        assert_eq!(
            ranges,
            vec![
                BlockRange {
                    from: 0,
                    to: Some(3)
                },
                BlockRange {
                    from: 3,
                    to: Some(6)
                },
                BlockRange { from: 6, to: None },
            ]
        );
        assert_eq!(
            ranges[0].condition("r"),
            "r.ctid >= '(0,0)'::pg_catalog.tid AND r.ctid < '(3,0)'::pg_catalog.tid"
        );
        assert_eq!(
            ranges[2].condition("r"),
            "r.ctid >= '(6,0)'::pg_catalog.tid"
        );
        // An empty table still gets one open-ended range that reads anything appended.
        assert_eq!(BlockRange::split(0, 2)[1], BlockRange { from: 0, to: None });
        assert_eq!(
            BlockRange::split(5, 1),
            vec![BlockRange { from: 0, to: None }]
        );
    }
}
