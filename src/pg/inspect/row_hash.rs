//! How a row is hashed for a checksum: the SQL expression of its 64-bit hash, by method.
//!
//! [`ChecksumMethod::Columns`] hashes each column by itself, with no whole-row value built: a table scan
//! then costs about 40 % less than `hash_record_extended(row)` (measured on pgbench_accounts, 6.5 million
//! rows: 1.0 s against 1.7 s). Each column's hash is seeded by its place, so values moved between columns
//! change it; the columns' hashes are XORed and the result mixed once more, so the sum over rows sees
//! which row holds which values. Functions that ignore the seed for some values (jsonb without scalars
//! hashes to a constant, `[[]]` to 0; an empty array to 1) are hashed again with the seed: else two
//! columns holding `[[]]` would cancel out like two holding `[{}]`. Types whose hash is not the value
//! itself (numeric ignores the display scale, interval compares `1 day` equal to `24 hours`, an enum
//! hashes its label's OID) and types without a hash go through their text form.
//!
//! jsonb keeps its own hash, as the record hash did: its text form costs twice as much (measured 0.9 s
//! against 0.5 s over 1.5 million documents). What that hash does not see: a number's display scale
//! inside a document (`1.0` against `1.00`) and the shape of containers without scalars (`{}` against
//! `[]`). A copy made by pg_dump and pg_restore, or by our merges (which compare and copy text), does
//! not change either.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::{quote_ident, InspectError};
use crate::pg::manifest::ChecksumMethod;

/// How one column's value is hashed under [`ChecksumMethod::Columns`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnHash {
    /// The type's extended hash function, seeded everywhere; `argument` is the type it takes.
    Typed {
        function: &'static str,
        argument: &'static str,
    },
    /// Like `Typed`, for a collatable type: compared byte for byte (`COLLATE "C"`), whatever the
    /// column's collation, so a case-insensitive one cannot hide a change of case.
    Collated {
        function: &'static str,
        argument: &'static str,
    },
    /// A hash function that ignores the seed for some values: its result hashed again with the seed
    /// (measured: no cost that shows over 1.5 million jsonb documents).
    Reseeded { function: &'static str },
    /// timestamptz has no hash function of its own type; in UTC it is the same 64-bit value as a
    /// timestamp.
    TimestampTz,
    /// Two constants.
    Bool,
    /// The text form, byte for byte.
    Text,
}

/// A column as its hash sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedColumn {
    pub name: String,
    pub hash: ColumnHash,
    /// NOT NULL: no stand-in for NULL is needed.
    pub not_null: bool,
}

impl ColumnHash {
    /// How a column of base type `base` (domains resolved) is hashed; `hashable_array`: an array whose
    /// elements all hash the value itself, `deterministic`: the column's collation (if any) is.
    fn of(base: u32, hashable_array: bool, deterministic: bool) -> ColumnHash {
        let typed = |function, argument| ColumnHash::Typed { function, argument };
        let collated = |function, argument| ColumnHash::Collated { function, argument };
        match base {
            _ if hashable_array && deterministic => ColumnHash::Reseeded {
                function: "hash_array_extended",
            },
            16 => ColumnHash::Bool,
            18 => typed("hashcharextended", "\"char\""),
            19 => collated("hashnameextended", "name"),
            20 => typed("hashint8extended", "int8"),
            21 => typed("hashint2extended", "int2"),
            23 => typed("hashint4extended", "int4"),
            25 | 1043 => collated("hashtextextended", "text"),
            26 => typed("hashoidextended", "oid"),
            650 | 869 => typed("hashinetextended", "inet"),
            700 => typed("hashfloat4extended", "float4"),
            701 => typed("hashfloat8extended", "float8"),
            774 => typed("hashmacaddr8extended", "macaddr8"),
            829 => typed("hashmacaddrextended", "macaddr"),
            1042 => collated("hashbpcharextended", "bpchar"),
            1083 => typed("time_hash_extended", "time"),
            1114 => typed("timestamp_hash_extended", "timestamp"),
            1184 => ColumnHash::TimestampTz,
            1266 => typed("timetz_hash_extended", "timetz"),
            2950 => typed("uuid_hash_extended", "uuid"),
            3220 => typed("pg_lsn_hash_extended", "pg_lsn"),
            3802 => ColumnHash::Reseeded {
                function: "jsonb_hash_extended",
            },
            _ => ColumnHash::Text,
        }
    }

    /// The SQL of the hash of `value` (a column reference), seeded with `seed`; NULL for NULL.
    fn sql(self, value: &str, seed: i64) -> String {
        match self {
            ColumnHash::Typed { function, argument } => {
                format!("pg_catalog.{function}({value}::pg_catalog.{argument}, {seed})")
            }
            ColumnHash::Collated { function, argument } => format!(
                "pg_catalog.{function}({value}::pg_catalog.{argument} COLLATE pg_catalog.\"C\", {seed})"
            ),
            // Through its text, not `hashint8extended`: that folds 64 bits to 32 first, and jsonb's
            // constants (`[[]]` hashes to 0, `[{}]` to 0x6000000060000000) all fold to 0.
            ColumnHash::Reseeded { function } => format!(
                "pg_catalog.hashtextextended(pg_catalog.{function}({value}, {seed})::pg_catalog.text, {seed})"
            ),
            ColumnHash::TimestampTz => format!(
                "pg_catalog.timestamp_hash_extended(pg_catalog.timezone('UTC'::pg_catalog.text, \
                 {value}::pg_catalog.timestamptz), {seed})"
            ),
            ColumnHash::Bool => format!(
                "CASE WHEN {value} THEN {} WHEN NOT {value} THEN {} END",
                int8(seed),
                int8(mix(seed as u64) as i64)
            ),
            ColumnHash::Text => format!(
                "pg_catalog.hashtextextended({value}::pg_catalog.text COLLATE pg_catalog.\"C\", {seed})"
            ),
        }
    }
}

/// The SQL expression of a row's 64-bit hash by `method`, for the row `alias`; `columns` (the table's,
/// in order) is used by [`ChecksumMethod::Columns`] only.
pub fn row_hash(method: ChecksumMethod, alias: &str, columns: &[HashedColumn]) -> String {
    match method {
        // `alias.*`, not `alias`: a column named like the alias would shadow the whole-row reference.
        ChecksumMethod::Text => {
            format!("pg_catalog.hashtextextended({alias}.*::pg_catalog.text, 0)")
        }
        ChecksumMethod::Record => format!("pg_catalog.hash_record_extended({alias}.*, 0)"),
        ChecksumMethod::MixedRecord => {
            format!("pg_catalog.hashint8extended(pg_catalog.hash_record_extended({alias}.*, 0), 0)")
        }
        ChecksumMethod::Columns => {
            let terms: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(place, column)| {
                    let seed = mix(place as u64 + 1) as i64;
                    let hash = column
                        .hash
                        .sql(&format!("{alias}.{}", quote_ident(&column.name)), seed);
                    if column.not_null {
                        hash
                    } else {
                        let null = mix(!(place as u64 + 1)) as i64;
                        format!("COALESCE({hash}, {})", int8(null))
                    }
                })
                .collect();
            format!("pg_catalog.hashint8extended({}, 0)", xor_tree(&terms))
        }
    }
}

/// The XOR of `terms`, nested as a balanced tree: a table of 1 600 columns is 11 levels deep, not 1 600.
fn xor_tree(terms: &[String]) -> String {
    match terms {
        [] => int8(0),
        [one] => one.clone(),
        _ => {
            let (left, right) = terms.split_at(terms.len() / 2);
            format!("({} # {})", xor_tree(left), xor_tree(right))
        }
    }
}

/// An int8 literal, typed as such whatever its size.
fn int8(value: i64) -> String {
    format!("'{value}'::pg_catalog.int8")
}

/// SplitMix64's finalizer: distinct, well-spread 64-bit constants from small numbers.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Element types (through domains and nested arrays) whose hash is the value itself and the same on any
/// server, so that an array of them is hashed by `hash_array_extended`: bool, bytea, "char", name, int8,
/// int2, int4, text, oid, cidr, float4, float8, macaddr8, macaddr, inet, bpchar, varchar, date, time,
/// timestamp, timestamptz, timetz, uuid, pg_lsn. Not numeric, interval or jsonb (see the module
/// documentation): an array of those goes through its text form, like the values themselves.
const ARRAY_ELEMENT_TYPES: &str =
    "16, 17, 18, 19, 20, 21, 23, 25, 26, 650, 700, 701, 774, 829, 869, \
     1042, 1043, 1082, 1083, 1114, 1184, 1266, 2950, 3220";

/// The columns of each relation in `relations` (quoted qualified names), in order, as their hashes see
/// them: one catalog query for all.
pub async fn hashed_columns(
    client: &Client,
    relations: &[String],
) -> Result<HashMap<String, Vec<HashedColumn>>, InspectError> {
    let array = "y.typelem <> 0 AND y.typlen = -1 AND y.typcategory = 'A'";
    let sql = format!(
        "WITH RECURSIVE rels AS ( \
           SELECT r AS rel, r::pg_catalog.regclass::pg_catalog.oid AS oid FROM pg_catalog.unnest($1::text[]) AS r), \
         cols AS ( \
           SELECT s.rel, a.attnum, a.attname::text AS col, a.atttypid, a.attnotnull, \
                  COALESCE(l.collisdeterministic, true) AS deterministic \
           FROM rels s JOIN pg_catalog.pg_attribute a ON a.attrelid = s.oid \
           LEFT JOIN pg_catalog.pg_collation l ON l.oid = a.attcollation \
           WHERE a.attnum > 0 AND NOT a.attisdropped), \
         based(root, cur) AS ( \
           SELECT DISTINCT atttypid, atttypid FROM cols \
           UNION \
           SELECT b.root, y.typbasetype FROM based b JOIN pg_catalog.pg_type y ON y.oid = b.cur \
           WHERE y.typtype = 'd'), \
         base AS ( \
           SELECT b.root, b.cur AS base, ({array}) AS is_array \
           FROM based b JOIN pg_catalog.pg_type y ON y.oid = b.cur WHERE y.typtype <> 'd'), \
         inner_types(root, cur) AS ( \
           SELECT b.root, y.typelem FROM base b JOIN pg_catalog.pg_type y ON y.oid = b.base WHERE b.is_array \
           UNION \
           SELECT t.root, CASE WHEN y.typtype = 'd' THEN y.typbasetype ELSE y.typelem END \
           FROM inner_types t JOIN pg_catalog.pg_type y ON y.oid = t.cur \
           WHERE y.typtype = 'd' OR ({array})) \
         SELECT k.rel, k.col, b.base, k.attnotnull, k.deterministic, \
                b.is_array AND NOT EXISTS ( \
                  SELECT 1 FROM inner_types t JOIN pg_catalog.pg_type y ON y.oid = t.cur \
                  WHERE t.root = k.atttypid AND NOT (y.typtype = 'd' OR ({array})) \
                    AND t.cur NOT IN ({ARRAY_ELEMENT_TYPES})) \
         FROM cols k JOIN base b ON b.root = k.atttypid \
         ORDER BY k.rel, k.attnum"
    );
    let rows = client
        .query(&sql, &[&relations])
        .await
        .map_err(InspectError::query("reading the tables' column types"))?;
    let mut out: HashMap<String, Vec<HashedColumn>> = HashMap::new();
    for row in rows {
        let base: u32 = row.get(2);
        let deterministic: bool = row.get(4);
        let hashable_array: bool = row.get(5);
        out.entry(row.get(0)).or_default().push(HashedColumn {
            name: row.get(1),
            hash: ColumnHash::of(base, hashable_array, deterministic),
            not_null: row.get(3),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, hash: ColumnHash, not_null: bool) -> HashedColumn {
        HashedColumn {
            name: name.into(),
            hash,
            not_null,
        }
    }

    #[test]
    fn each_column_is_seeded_by_its_place_and_nulls_get_their_own_value() {
        let int4 = ColumnHash::of(23, false, true);
        let sql = row_hash(
            ChecksumMethod::Columns,
            "r",
            &[column("id", int4, true), column("Id", int4, false)],
        );
        let (first, second) = (mix(1) as i64, mix(2) as i64);
        assert_ne!(first, second);
        assert_eq!(
            sql,
            format!(
                "pg_catalog.hashint8extended((pg_catalog.hashint4extended(r.\"id\"::pg_catalog.int4, {first}) # \
                 COALESCE(pg_catalog.hashint4extended(r.\"Id\"::pg_catalog.int4, {second}), '{}'::pg_catalog.int8)), 0)",
                mix(!2) as i64
            )
        );
        // No column: every row hashes alike, and the count tells them apart.
        assert_eq!(
            row_hash(ChecksumMethod::Columns, "r", &[]),
            "pg_catalog.hashint8extended('0'::pg_catalog.int8, 0)"
        );
    }

    #[test]
    fn types_whose_hash_is_not_the_value_go_through_text() {
        // numeric (display scale), interval (1 day = 24 hours), date and bytea (no callable function).
        for base in [1700, 1186, 1082, 17, 114, 3500] {
            assert_eq!(
                ColumnHash::of(base, false, true),
                ColumnHash::Text,
                "{base}"
            );
        }
        // An array under a non-deterministic collation hashes by that collation: text instead.
        assert_eq!(ColumnHash::of(1009, true, false), ColumnHash::Text);
        assert!(matches!(
            ColumnHash::of(1009, true, true),
            ColumnHash::Reseeded { .. }
        ));
        assert!(matches!(
            ColumnHash::of(25, false, false),
            ColumnHash::Collated { .. }
        ));
    }

    #[test]
    fn wide_tables_nest_shallowly() {
        let terms: Vec<String> = (0..1600).map(|i| format!("t{i}")).collect();
        let sql = xor_tree(&terms);
        let mut depth = 0usize;
        let mut deepest = 0usize;
        for c in sql.chars() {
            match c {
                '(' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        assert_eq!(deepest, 11);
        assert_eq!(sql.matches('#').count(), 1599);
    }
}
