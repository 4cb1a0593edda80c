//! The backup manifest: what the source held at the dump's snapshot, and how a restored copy is
//! compared against it.
//!
//! A manifest holds names, counts and checksums only, never row data, so it can be stored on the
//! backup branch, printed in a summary and compared anywhere.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::pg::fingerprints::{self, Definitions, SequenceRule};
use crate::pg::large_objects::LargeObjects;

/// The manifest format this build writes. Format 4 brought the `columns` checksum method, which builds
/// before it cannot read: they refuse the manifest by its format instead of failing to parse it. Format
/// 3 (methods `text`, `record`, `mixed_record`), format 2 (no large objects nor definition
/// fingerprints) and format 1 (no `checksum_method`: every checksum over the rows' text) are still read;
/// what an older manifest did not record is not compared.
pub const MANIFEST_FORMAT: u32 = 4;
/// The oldest manifest format this build reads.
pub const OLDEST_MANIFEST_FORMAT: u32 = 1;

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Manifest {
    pub format: u32,
    pub taken_at: DateTime<Utc>,
    /// `server_version` of the server the manifest was taken on.
    pub source_server_version: String,
    /// The dumped schemas that exist on this server, sorted.
    pub schemas: Vec<String>,
    /// Every table and materialized view in those schemas, sorted by (schema, name).
    pub tables: Vec<TableFingerprint>,
    pub objects: ObjectCounts,
    /// Format 3: the large objects (absent from older manifests, then not compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_objects: Option<LargeObjects>,
    /// Format 3: the definitions a failover relies on (absent from older manifests, then not compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definitions: Option<Definitions>,
}

/// Whether a fingerprinted relation holds its own data or is recomputed by the restore.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    #[default]
    Table,
    /// Refreshed by pg_restore from the restored tables: equal to the source only when the source's
    /// view was fresh, so a difference is reported but not counted as data loss.
    MaterializedView,
}

/// How a table's rows were hashed; a copy must be checked the same way.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumMethod {
    /// `hashtextextended(row::text)`: works for every type; needs the output function of every value.
    #[default]
    Text,
    /// `hash_record_extended(row)`, as manifests before [`ChecksumMethod::MixedRecord`] took it; only read
    /// to check copies against those manifests. It is linear in the columns' hashes (31 × the previous
    /// result plus the next), so a sum over rows depends on each column's values but not on which row
    /// holds them: values swapped between rows go unseen.
    Record,
    /// `hashint8extended(hash_record_extended(row))`: the types' own hash functions, about twice as
    /// fast as the text form, each row's hash mixed once more so that the sum over rows sees which
    /// row holds which values. Only for tables whose column types all have a hash function that does
    /// not depend on OIDs or a non-deterministic collation (see `inspect`), so the value is the same on
    /// any server. Manifests before [`ChecksumMethod::Columns`] took it; still read.
    MixedRecord,
    /// Each column hashed by itself and seeded by its place, by its type's own hash function where that
    /// hashes the value itself, else by its text form; the columns' hashes XORed and mixed once more.
    /// Works for every table (PostgreSQL 14 and later) and builds no whole-row value: about 60 % of
    /// the time of [`ChecksumMethod::MixedRecord`]. See `inspect::row_hash`.
    Columns,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct TableFingerprint {
    pub schema: String,
    pub name: String,
    #[serde(default)]
    pub kind: TableKind,
    /// Exact `count(*)`; 0 when the data is excluded from the dump.
    pub rows: i64,
    /// Order-independent checksum of the rows (decimal), taken by `checksum_method`; empty when the
    /// data is excluded or the materialized view is not populated.
    pub checksum: String,
    #[serde(default)]
    pub checksum_method: ChecksumMethod,
    /// The table's structure is dumped but its data is not (ledgers, user exclusions).
    pub data_excluded: bool,
    /// A materialized view whose content on the branch differs from the source's, because pg_restore
    /// refreshed it from the restored tables and the source's view was stale. Rows and checksum are
    /// then the branch's: the view is not verified against the source, only a later copy against the
    /// backup.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refreshed_on_restore: bool,
}

impl TableFingerprint {
    /// `schema.name` as people read it (unquoted).
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Whether it holds `rows` rows with `checksum`: the same content, when taken by the same method.
    pub fn holds(&self, rows: i64, checksum: &str) -> bool {
        self.rows == rows && self.checksum == checksum
    }

    /// Whether `other` holds the same content (rows and checksum; the caller knows the methods agree).
    pub fn same_content(&self, other: &TableFingerprint) -> bool {
        self.holds(other.rows, &other.checksum)
    }
}

/// Counts of the objects a naive restore tends to lose, restricted to the dumped schemas.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
pub struct ObjectCounts {
    pub policies: i64,
    pub functions: i64,
    pub triggers: i64,
    pub views: i64,
    pub materialized_views: i64,
    pub sequences: i64,
    pub indexes: i64,
    /// Table constraints (primary, unique, foreign keys, checks, exclusions): a foreign key that
    /// failed to restore shows here.
    #[serde(default)]
    pub constraints: i64,
}

impl ObjectCounts {
    /// (kind, count) pairs in a fixed order, for comparison and reports.
    pub fn entries(&self) -> [(&'static str, i64); 8] {
        [
            ("policies", self.policies),
            ("functions", self.functions),
            ("triggers", self.triggers),
            ("views", self.views),
            ("materialized views", self.materialized_views),
            ("sequences", self.sequences),
            ("indexes", self.indexes),
            ("constraints", self.constraints),
        ]
    }
}

/// One difference between the expected (source) manifest and what a restored copy holds.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Mismatch {
    MissingSchema(String),
    MissingTable {
        table: String,
    },
    /// A table the source did not have: the copy is not what was dumped.
    ExtraTable {
        table: String,
    },
    RowCount {
        table: String,
        expected: i64,
        actual: i64,
    },
    /// Same row count, different content.
    Checksum {
        table: String,
    },
    /// A materialized view whose refreshed content differs; expected when the source view was stale.
    MaterializedViewContent {
        table: String,
        expected_rows: i64,
        actual_rows: i64,
    },
    DataExclusion {
        table: String,
        expected_excluded: bool,
    },
    ObjectCount {
        kind: &'static str,
        expected: i64,
        actual: i64,
    },
    /// The large objects differ: `detail` says how.
    LargeObjects {
        detail: String,
    },
    /// A definition differs: `object` names it (`policy "p" on public.t`), `detail` says how.
    Definition {
        object: String,
        detail: String,
    },
}

impl Mismatch {
    /// True for differences that do not mean lost or altered data (a stale materialized view on the
    /// source). Everything else fails a verification.
    pub fn is_advisory(&self) -> bool {
        matches!(self, Mismatch::MaterializedViewContent { .. })
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::MissingSchema(s) => write!(f, "schema {s} is missing"),
            Mismatch::MissingTable { table } => write!(f, "{table}: table is missing"),
            Mismatch::ExtraTable { table } => write!(f, "{table}: table is not in the source manifest"),
            Mismatch::RowCount { table, expected, actual } => {
                write!(f, "{table}: {actual} rows, expected {expected}")
            }
            Mismatch::Checksum { table } => {
                write!(f, "{table}: same row count but different content (checksum differs)")
            }
            Mismatch::MaterializedViewContent { table, expected_rows, actual_rows } => write!(
                f,
                "{table}: materialized view has {actual_rows} rows after refresh, source had {expected_rows} \
                 (expected when the source view was not refreshed since its tables changed)"
            ),
            Mismatch::DataExclusion { table, expected_excluded } => write!(
                f,
                "{table}: data {} in the source manifest but {} here",
                if *expected_excluded { "excluded" } else { "included" },
                if *expected_excluded { "included" } else { "excluded" }
            ),
            Mismatch::ObjectCount { kind, expected, actual } => {
                write!(f, "{kind}: {actual}, expected {expected}")
            }
            Mismatch::LargeObjects { detail } => write!(f, "large objects: {detail}"),
            Mismatch::Definition { object, detail } => write!(f, "{object}: {detail}"),
        }
    }
}

impl Manifest {
    /// Every difference between `self` (expected, taken on the source) and `actual` (taken on the
    /// restored copy with the same selection). Empty means the copy matches. Timestamps and server
    /// versions are not compared; sequence positions must be equal.
    pub fn compare(&self, actual: &Manifest) -> Vec<Mismatch> {
        self.compare_with(actual, SequenceRule::Exact)
    }

    /// [`Manifest::compare`], with sequence positions compared by `rule`.
    pub fn compare_with(&self, actual: &Manifest, rule: SequenceRule) -> Vec<Mismatch> {
        let mut out = Vec::new();
        for schema in &self.schemas {
            if !actual.schemas.contains(schema) {
                out.push(Mismatch::MissingSchema(schema.clone()));
            }
        }

        let key = |t: &TableFingerprint| (t.schema.clone(), t.name.clone());
        let actual_tables: BTreeMap<_, _> = actual.tables.iter().map(|t| (key(t), t)).collect();
        let expected_tables: BTreeMap<_, _> = self.tables.iter().map(|t| (key(t), t)).collect();

        for (k, exp) in &expected_tables {
            let table = exp.qualified_name();
            let Some(act) = actual_tables.get(k) else {
                out.push(Mismatch::MissingTable { table });
                continue;
            };
            if exp.data_excluded != act.data_excluded {
                out.push(Mismatch::DataExclusion {
                    table,
                    expected_excluded: exp.data_excluded,
                });
                continue;
            }
            if exp.same_content(act) {
                continue;
            }
            if exp.kind == TableKind::MaterializedView {
                out.push(Mismatch::MaterializedViewContent {
                    table,
                    expected_rows: exp.rows,
                    actual_rows: act.rows,
                });
            } else if exp.rows != act.rows {
                out.push(Mismatch::RowCount {
                    table,
                    expected: exp.rows,
                    actual: act.rows,
                });
            } else {
                out.push(Mismatch::Checksum { table });
            }
        }
        for (k, act) in &actual_tables {
            if !expected_tables.contains_key(k) {
                out.push(Mismatch::ExtraTable {
                    table: act.qualified_name(),
                });
            }
        }

        for ((kind, expected), (_, actual)) in self
            .objects
            .entries()
            .into_iter()
            .zip(actual.objects.entries())
        {
            if expected != actual {
                out.push(Mismatch::ObjectCount {
                    kind,
                    expected,
                    actual,
                });
            }
        }
        if let Some(expected) = &self.large_objects {
            let actual = actual.large_objects.clone().unwrap_or_default();
            compare_large_objects(expected, &actual, &mut out);
        }
        if let Some(expected) = &self.definitions {
            let actual = actual.definitions.clone().unwrap_or_default();
            out.extend(
                fingerprints::compare(expected, &actual, rule)
                    .into_iter()
                    .map(|(object, detail)| Mismatch::Definition { object, detail }),
            );
        }
        out
    }

    /// Rows over all tables whose data is dumped (materialized views excluded: they are derived).
    pub fn total_rows(&self) -> i64 {
        self.tables
            .iter()
            .filter(|t| t.kind == TableKind::Table && !t.data_excluded)
            .map(|t| t.rows)
            .sum()
    }

    /// Looks a table up by schema and name.
    pub fn table(&self, schema: &str, name: &str) -> Option<&TableFingerprint> {
        self.tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
    }
}

fn compare_large_objects(expected: &LargeObjects, actual: &LargeObjects, out: &mut Vec<Mismatch>) {
    if expected.count != actual.count {
        out.push(Mismatch::LargeObjects {
            detail: format!("{}, expected {}", actual.count, expected.count),
        });
    } else if expected.checksum != actual.checksum {
        out.push(Mismatch::LargeObjects {
            detail: "same number but different content (checksum differs)".into(),
        });
    }
    for (grant, e, a) in differing_counts(&expected.grants, &actual.grants) {
        out.push(Mismatch::LargeObjects {
            detail: format!("{grant} granted on {a}, expected {e}"),
        });
    }
    for (role, e, a) in differing_counts(&expected.owners, &actual.owners) {
        out.push(Mismatch::LargeObjects {
            detail: format!("{a} owned by {role}, expected {e}"),
        });
    }
}

/// The keys whose counts differ between two tallies, with (expected, actual); a missing key counts 0.
fn differing_counts<'a, V: Copy + Default + PartialEq>(
    expected: &'a BTreeMap<String, V>,
    actual: &'a BTreeMap<String, V>,
) -> impl Iterator<Item = (&'a String, V, V)> + 'a {
    let keys: std::collections::BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    keys.into_iter().filter_map(|k| {
        let e = expected.get(k).copied().unwrap_or_default();
        let a = actual.get(k).copied().unwrap_or_default();
        (e != a).then_some((k, e, a))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, rows: i64, checksum: &str) -> TableFingerprint {
        TableFingerprint {
            schema: "public".into(),
            name: name.into(),
            kind: TableKind::Table,
            rows,
            checksum: checksum.into(),
            checksum_method: ChecksumMethod::Columns,
            data_excluded: false,
            refreshed_on_restore: false,
        }
    }

    fn manifest(tables: Vec<TableFingerprint>) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            taken_at: Utc::now(),
            source_server_version: "17.2".into(),
            schemas: vec!["public".into()],
            tables,
            objects: ObjectCounts {
                policies: 3,
                ..Default::default()
            },
            large_objects: Some(LargeObjects::default()),
            definitions: Some(Definitions::default()),
        }
    }

    #[test]
    fn equal_manifests_have_no_mismatch_even_with_other_timestamps() {
        let a = manifest(vec![table("a", 2, "10")]);
        let mut b = a.clone();
        b.taken_at = a.taken_at + chrono::Duration::hours(1);
        b.source_server_version = "15.8".into();
        assert!(a.compare(&b).is_empty());
    }

    #[test]
    fn reports_each_kind_of_difference() {
        let expected = manifest(vec![
            table("orders", 2000, "1"),
            table("gone", 1, "2"),
            table("same", 5, "3"),
        ]);
        let mut actual = manifest(vec![
            table("orders", 1999, "1"),
            table("same", 5, "4"),
            table("new", 0, "0"),
        ]);
        actual.schemas.clear();
        actual.objects.policies = 2;
        let found: Vec<String> = expected
            .compare(&actual)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            vec![
                "schema public is missing",
                "public.gone: table is missing",
                "public.orders: 1999 rows, expected 2000",
                "public.same: same row count but different content (checksum differs)",
                "public.new: table is not in the source manifest",
                "policies: 2, expected 3",
            ]
        );
    }

    #[test]
    fn materialized_view_differences_are_advisory() {
        let mut mv = table("mv", 3, "9");
        mv.kind = TableKind::MaterializedView;
        let expected = manifest(vec![mv.clone()]);
        mv.rows = 4;
        let m = expected.compare(&manifest(vec![mv]));
        assert_eq!(m.len(), 1);
        assert!(m[0].is_advisory());
        assert!(!Mismatch::Checksum { table: "x".into() }.is_advisory());
    }

    #[test]
    fn total_rows_skips_excluded_and_derived() {
        let mut ledger = table("ledger", 0, "");
        ledger.data_excluded = true;
        let mut mv = table("mv", 7, "1");
        mv.kind = TableKind::MaterializedView;
        assert_eq!(
            manifest(vec![table("a", 5, "1"), ledger, mv]).total_rows(),
            5
        );
    }

    #[test]
    fn large_objects_are_compared_by_count_content_and_owner() {
        let mut expected = manifest(vec![]);
        expected.large_objects = Some(LargeObjects {
            count: 2,
            checksum: "7".into(),
            owners: [
                ("anon".to_string(), 1),
                ("(the backup's role)".to_string(), 1),
            ]
            .into(),
            ..Default::default()
        });
        let mut actual = expected.clone();
        assert!(expected.compare(&actual).is_empty());
        let lo = actual.large_objects.as_mut().unwrap();
        lo.checksum = "8".into();
        lo.owners = [("(the backup's role)".to_string(), 2)].into();
        let found: Vec<String> = expected
            .compare(&actual)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "large objects: same number but different content (checksum differs)",
                "large objects: 2 owned by (the backup's role), expected 1",
                "large objects: 0 owned by anon, expected 1",
            ]
        );
    }

    #[test]
    fn a_format_2_manifest_is_read_and_its_missing_parts_are_not_compared() {
        let json = r#"{"format": 2, "taken_at": "2026-11-28T02:00:03Z", "source_server_version": "15.8",
            "schemas": ["public"], "tables": [], "objects": {"policies": 3, "functions": 0, "triggers": 0,
            "views": 0, "materialized_views": 0, "sequences": 0, "indexes": 0, "constraints": 0}}"#;
        let old: Manifest = serde_json::from_str(json).unwrap();
        assert_eq!(old.large_objects, None);
        assert!(old.compare(&manifest(vec![])).is_empty());
    }

    #[test]
    fn a_format_3_manifest_keeps_its_checksum_methods() {
        let json = r#"{"format": 3, "taken_at": "2026-11-28T02:00:03Z", "source_server_version": "15.8",
            "schemas": ["public"], "tables": [
              {"schema": "public", "name": "a", "rows": 2, "checksum": "-5", "checksum_method": "mixed_record", "data_excluded": false},
              {"schema": "public", "name": "b", "rows": 2, "checksum": "7", "checksum_method": "text", "data_excluded": false}],
            "objects": {"policies": 0, "functions": 0, "triggers": 0, "views": 0, "materialized_views": 0,
              "sequences": 0, "indexes": 0, "constraints": 0}}"#;
        let old: Manifest = serde_json::from_str(json).unwrap();
        let methods: Vec<ChecksumMethod> = old.tables.iter().map(|t| t.checksum_method).collect();
        assert_eq!(methods, [ChecksumMethod::MixedRecord, ChecksumMethod::Text]);
        // What this build writes is a newer format: a build that cannot read `columns` refuses it by number.
        let written = serde_json::to_value(manifest(vec![table("a", 1, "1")])).unwrap();
        assert_eq!(written["tables"][0]["checksum_method"], "columns");
        assert_eq!(written["format"], 4);
    }

    #[test]
    fn json_round_trip() {
        let m = manifest(vec![table("a", 5, "-123456789012345678901")]);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
    }
}
