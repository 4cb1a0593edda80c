//! Fingerprints of the definitions a failover relies on (manifest format 3): per table its RLS flags,
//! columns and trigger states; per policy its table, command, roles, permissive flag and expressions;
//! per function its body, volatility, SECURITY DEFINER and settings; sequence positions; comments;
//! privileges. Taken on the source in the dump's snapshot and on a restored copy alike (the session
//! is pinned to `search_path = ''`, so every name in an expression is schema-qualified), then compared
//! object by object, so a difference names its object: `policy "owner can read" on public.todos:
//! USING differs`.
//!
//! Owners are not compared: a restore makes the restoring role the owner of everything. Privileges are
//! compared for `PUBLIC` and the roles the target is prepared with ([`Definitions::privilege_roles`]);
//! grants to other roles cannot exist on the target and are reported when the restore skips them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use crate::pg::inspect::InspectError;
use crate::pg::large_objects::SESSION_OWNER;

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
pub struct Definitions {
    /// Roles whose privileges are fingerprinted (besides PUBLIC).
    pub privilege_roles: Vec<String>,
    /// `schema.table` → its definition.
    pub tables: BTreeMap<String, TableDefinition>,
    /// `policy "name" on schema.table` → its definition.
    pub policies: BTreeMap<String, PolicyDefinition>,
    /// `function schema.name(identity arguments)` → its definition.
    pub functions: BTreeMap<String, FunctionDefinition>,
    /// `schema.sequence` → its position.
    pub sequences: BTreeMap<String, SequenceState>,
    /// `comment on ` and the `pg_describe_object` of each commented object → MD5 of the comment.
    pub comments: BTreeMap<String, String>,
    /// Object → its grants to PUBLIC and [`Definitions::privilege_roles`], `role:PRIVILEGE` (`*` for
    /// WITH GRANT OPTION), sorted.
    pub privileges: BTreeMap<String, Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
pub struct TableDefinition {
    pub rls: bool,
    pub force_rls: bool,
    pub columns: BTreeMap<String, ColumnDefinition>,
    /// User trigger → `pg_trigger.tgenabled` (`O` enabled, `D` disabled, `R` replica, `A` always).
    pub triggers: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
pub struct ColumnDefinition {
    #[serde(rename = "type")]
    pub data_type: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// `a` ALWAYS, `d` BY DEFAULT, empty: not an identity.
    pub identity: String,
    pub generated: Option<String>,
    /// Set when it differs from the type's default collation.
    pub collation: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
pub struct PolicyDefinition {
    pub table: String,
    pub command: String,
    pub roles: Vec<String>,
    pub permissive: bool,
    pub using: Option<String>,
    pub with_check: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
pub struct FunctionDefinition {
    /// MD5 of the body (`prosrc`, `probin`), language and result type.
    pub definition: String,
    pub volatility: String,
    pub security_definer: bool,
    /// `proconfig`: `SET search_path = ''` and the like.
    pub settings: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
pub struct SequenceState {
    /// `None` when `nextval` was never called (or after `RESTART`), or the role may not read it.
    pub last_value: Option<i64>,
    pub readable: bool,
    pub increment: i64,
}

/// How sequence positions are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceRule {
    /// The copy must be exactly where the manifest says (restore-test: the manifest holds the copy's
    /// own positions).
    Exact,
    /// The copy must be at or past the manifest's position in the sequence's direction (backup: the
    /// source's positions are read before pg_dump reads them, and a sequence moves outside snapshots).
    AtLeast,
}

/// The relations a fingerprint covers: tables of `$1` (schemas) not in `$2` (excluded tables), no
/// extension member. An identity sequence goes with its excluded table (pg_dump dumps it as part of the
/// table); a serial one is dumped on its own and stays.
const RELS: &str = "rels AS ( \
  SELECT c.oid, c.relkind, c.relowner, c.relacl, c.relrowsecurity, c.relforcerowsecurity, \
         n.nspname::text || '.' || c.relname::text AS name \
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
   WHERE n.nspname = ANY ($1::text[]) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
     AND (n.nspname::text || '.' || c.relname::text) <> ALL ($2::text[]) \
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
          WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e') \
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
          JOIN pg_catalog.pg_class t ON t.oid = d.refobjid \
          JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace \
          WHERE c.relkind = 'S' AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
            AND d.objid = c.oid AND d.deptype = 'i' \
            AND (tn.nspname::text || '.' || t.relname::text) = ANY ($2::text[]))), \
funcs AS ( \
  SELECT p.oid, p.proowner, p.proacl, \
         'function ' || n.nspname::text || '.' || p.proname::text || '(' \
           || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' AS name \
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
   WHERE n.nspname = ANY ($1::text[]) \
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
          WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e'))";

fn failed(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> InspectError {
    move |source| InspectError::Query {
        what: format!("fingerprinting the {what}"),
        source,
    }
}

/// Every fingerprint but the sequences' (see [`sequences`]) of `schemas` minus `exclude` as `client`
/// sees them.
pub async fn take(
    client: &impl GenericClient,
    schemas: &[String],
    exclude: &[String],
    privilege_roles: &[String],
) -> Result<Definitions, InspectError> {
    let mut defs = Definitions {
        privilege_roles: privilege_roles.to_vec(),
        ..Definitions::default()
    };
    let args: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&schemas, &exclude];

    let sql = format!(
        "WITH {RELS} SELECT name, relrowsecurity, relforcerowsecurity FROM rels WHERE relkind IN ('r', 'p')"
    );
    for row in client.query(&sql, &args).await.map_err(failed("tables"))? {
        defs.tables.insert(
            row.get(0),
            TableDefinition {
                rls: row.get(1),
                force_rls: row.get(2),
                ..TableDefinition::default()
            },
        );
    }

    let sql = format!(
        "WITH {RELS} SELECT r.name, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), \
                a.attnotnull, \
                CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END, \
                a.attidentity::text, \
                CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END, \
                CASE WHEN a.attcollation <> t.typcollation THEN co.collname::text END \
           FROM rels r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid \
           JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
           LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
           LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
          WHERE r.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
    );
    for row in client.query(&sql, &args).await.map_err(failed("columns"))? {
        if let Some(table) = defs.tables.get_mut(row.get::<_, &str>(0)) {
            table.columns.insert(
                row.get(1),
                ColumnDefinition {
                    data_type: row.get(2),
                    not_null: row.get(3),
                    default: row.get(4),
                    identity: row.get(5),
                    generated: row.get(6),
                    collation: row.get(7),
                },
            );
        }
    }

    // Triggers cloned onto partitions follow their parent's and are not dumped on their own.
    let sql = format!(
        "WITH {RELS} SELECT r.name, t.tgname::text, t.tgenabled::text \
           FROM rels r JOIN pg_catalog.pg_trigger t ON t.tgrelid = r.oid \
          WHERE NOT t.tgisinternal AND t.tgparentid = 0"
    );
    for row in client
        .query(&sql, &args)
        .await
        .map_err(failed("triggers"))?
    {
        if let Some(table) = defs.tables.get_mut(row.get::<_, &str>(0)) {
            table.triggers.insert(row.get(1), row.get(2));
        }
    }

    let sql = format!(
        "WITH {RELS} SELECT p.polname::text, r.name, p.polcmd::text, p.polpermissive, \
                ARRAY(SELECT CASE WHEN x = 0 THEN 'public' ELSE pg_catalog.pg_get_userbyid(x)::text END \
                        FROM pg_catalog.unnest(p.polroles) AS x ORDER BY 1), \
                pg_catalog.pg_get_expr(p.polqual, p.polrelid), \
                pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) \
           FROM rels r JOIN pg_catalog.pg_policy p ON p.polrelid = r.oid"
    );
    for row in client
        .query(&sql, &args)
        .await
        .map_err(failed("policies"))?
    {
        let (name, table): (String, String) = (row.get(0), row.get(1));
        defs.policies.insert(
            policy_key(&name, &table),
            PolicyDefinition {
                table,
                command: command_name(row.get(2)).to_string(),
                permissive: row.get(3),
                roles: row.get(4),
                using: row.get(5),
                with_check: row.get(6),
            },
        );
    }

    let sql = format!(
        "WITH {RELS} SELECT f.name, pg_catalog.md5(COALESCE(p.prosrc, '') || '|' || COALESCE(p.probin, '') \
                || '|' || l.lanname::text || '|' || COALESCE(pg_catalog.pg_get_function_result(p.oid), '')), \
                p.provolatile::text, p.prosecdef, COALESCE(p.proconfig, '{{}}'::text[]) \
           FROM funcs f JOIN pg_catalog.pg_proc p ON p.oid = f.oid \
           JOIN pg_catalog.pg_language l ON l.oid = p.prolang"
    );
    for row in client
        .query(&sql, &args)
        .await
        .map_err(failed("functions"))?
    {
        let mut settings: Vec<String> = row.get(4);
        settings.sort();
        defs.functions.insert(
            row.get(0),
            FunctionDefinition {
                definition: row.get(1),
                volatility: volatility_name(row.get(2)).to_string(),
                security_definer: row.get(3),
                settings,
            },
        );
    }

    let sql = format!(
        "WITH {RELS} SELECT pg_catalog.pg_describe_object(d.classoid, d.objoid, d.objsubid), \
                pg_catalog.md5(d.description) \
           FROM pg_catalog.pg_description d \
          WHERE (d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objoid IN (SELECT oid FROM rels)) \
             OR (d.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objoid IN (SELECT oid FROM funcs)) \
             OR (d.classoid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objoid IN \
                  (SELECT p.oid FROM pg_catalog.pg_policy p WHERE p.polrelid IN (SELECT oid FROM rels))) \
             OR (d.classoid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND d.objoid IN \
                  (SELECT t.oid FROM pg_catalog.pg_trigger t WHERE t.tgrelid IN (SELECT oid FROM rels))) \
             OR (d.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.objoid IN \
                  (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY ($1::text[])))"
    );
    for row in client
        .query(&sql, &args)
        .await
        .map_err(failed("comments"))?
    {
        defs.comments
            .insert(format!("comment on {}", row.get::<_, &str>(0)), row.get(1));
    }

    defs.privileges = privileges(client, schemas, exclude, privilege_roles).await?;
    Ok(defs)
}

/// `policy "name" on schema.table`.
pub fn policy_key(name: &str, table: &str) -> String {
    format!("policy \"{}\" on {table}", name.replace('"', "\"\""))
}

fn command_name(polcmd: &str) -> &'static str {
    match polcmd {
        "r" => "SELECT",
        "a" => "INSERT",
        "w" => "UPDATE",
        "d" => "DELETE",
        _ => "ALL",
    }
}

fn volatility_name(provolatile: &str) -> &'static str {
    match provolatile {
        "i" => "IMMUTABLE",
        "s" => "STABLE",
        _ => "VOLATILE",
    }
}

/// Grants to PUBLIC and `roles` on the relations, columns, functions and schemas, and the default
/// privileges of the session's role (as [`SESSION_OWNER`]) and of `roles`. `MAINTAIN` (PostgreSQL
/// 17) is left out, so a copy on a newer major compares equal.
async fn privileges(
    client: &impl GenericClient,
    schemas: &[String],
    exclude: &[String],
    roles: &[String],
) -> Result<BTreeMap<String, Vec<String>>, InspectError> {
    let sql = format!(
        "WITH {RELS}, objs AS ( \
           SELECT CASE relkind WHEN 'S' THEN 'sequence ' ELSE 'table ' END || name AS object, \
                  COALESCE(relacl, pg_catalog.acldefault(CASE relkind WHEN 'S' THEN 's' ELSE 'r' END::\"char\", relowner)) AS acl \
             FROM rels \
           UNION ALL \
           SELECT 'column ' || a.attname::text || ' of ' || r.name, a.attacl \
             FROM rels r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid \
            WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL \
           UNION ALL \
           SELECT name, COALESCE(proacl, pg_catalog.acldefault('f', proowner)) FROM funcs \
           UNION ALL \
           SELECT 'schema ' || n.nspname::text, COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner)) \
             FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY ($1::text[]) \
           UNION ALL \
           SELECT 'default privileges of ' \
                  || CASE WHEN d.defaclrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) \
                          THEN $4 ELSE pg_catalog.pg_get_userbyid(d.defaclrole)::text END \
                  || ' in schema ' || n.nspname::text || ' on ' || d.defaclobjtype::text, d.defaclacl \
             FROM pg_catalog.pg_default_acl d JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace \
            WHERE n.nspname = ANY ($1::text[]) \
              AND (d.defaclrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) \
                   OR pg_catalog.pg_get_userbyid(d.defaclrole)::text = ANY ($3::text[]))) \
         SELECT o.object, CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(x.grantee)::text END \
                || ':' || x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END \
           FROM objs o CROSS JOIN LATERAL pg_catalog.aclexplode(o.acl) AS x \
          WHERE (x.grantee = 0 OR pg_catalog.pg_get_userbyid(x.grantee)::text = ANY ($3::text[])) \
            AND x.privilege_type <> 'MAINTAIN'"
    );
    let rows = client
        .query(&sql, &[&schemas, &exclude, &roles, &SESSION_OWNER])
        .await
        .map_err(failed("privileges"))?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        out.entry(row.get(0)).or_default().push(row.get(1));
    }
    for grants in out.values_mut() {
        grants.sort();
        grants.dedup();
    }
    Ok(out)
}

/// The position of each sequence of `schemas` minus `exclude`.
pub async fn sequences(
    client: &impl GenericClient,
    schemas: &[String],
    exclude: &[String],
) -> Result<BTreeMap<String, SequenceState>, InspectError> {
    // A sequence the role may not read is recorded as unreadable instead of failing the snapshot.
    let sql = format!(
        "WITH {RELS} SELECT r.name, \
                pg_catalog.has_sequence_privilege(r.oid, 'SELECT'), \
                CASE WHEN pg_catalog.has_sequence_privilege(r.oid, 'SELECT') \
                     THEN pg_catalog.pg_sequence_last_value(r.oid) END, \
                s.seqincrement \
           FROM rels r JOIN pg_catalog.pg_sequence s ON s.seqrelid = r.oid \
          WHERE r.relkind = 'S'"
    );
    let rows = client
        .query(&sql, &[&schemas, &exclude])
        .await
        .map_err(failed("sequences"))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                SequenceState {
                    readable: r.get(1),
                    last_value: r.get(2),
                    increment: r.get(3),
                },
            )
        })
        .collect())
}

/// Every difference between `expected` and `actual`, as (object, what differs).
pub fn compare(
    expected: &Definitions,
    actual: &Definitions,
    rule: SequenceRule,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    compare_maps(
        &expected.tables,
        &actual.tables,
        &mut out,
        |t| format!("table {t}"),
        |name, e, a, out| {
            let object = format!("table {name}");
            if e.rls != a.rls {
                out.push((object.clone(), flag("row level security", e.rls, a.rls)));
            }
            if e.force_rls != a.force_rls {
                out.push((
                    object.clone(),
                    flag("FORCE row level security", e.force_rls, a.force_rls),
                ));
            }
            compare_maps(
                &e.columns,
                &a.columns,
                out,
                |c| format!("column {c} of table {name}"),
                |column, e, a, out| {
                    let object = format!("column {column} of table {name}");
                    for (what, differs) in [
                        ("type", e.data_type != a.data_type),
                        ("NOT NULL", e.not_null != a.not_null),
                        ("default", e.default != a.default),
                        ("identity", e.identity != a.identity),
                        ("generated expression", e.generated != a.generated),
                        ("collation", e.collation != a.collation),
                    ] {
                        if differs {
                            out.push((object.clone(), format!("{what} differs")));
                        }
                    }
                },
            );
            compare_maps(
                &e.triggers,
                &a.triggers,
                out,
                |t| format!("trigger {t} on {name}"),
                |trigger, e, a, out| {
                    if e != a {
                        out.push((
                            format!("trigger {trigger} on {name}"),
                            format!("{}, expected {}", trigger_state(a), trigger_state(e)),
                        ));
                    }
                },
            );
        },
    );
    compare_maps(
        &expected.policies,
        &actual.policies,
        &mut out,
        |k| k.to_string(),
        |object, e, a, out| {
            for (what, differs) in [
                ("table", e.table != a.table),
                ("command", e.command != a.command),
                ("roles", e.roles != a.roles),
                ("PERMISSIVE/RESTRICTIVE", e.permissive != a.permissive),
                ("USING", e.using != a.using),
                ("WITH CHECK", e.with_check != a.with_check),
            ] {
                if differs {
                    out.push((object.to_string(), format!("{what} differs")));
                }
            }
        },
    );
    compare_maps(
        &expected.functions,
        &actual.functions,
        &mut out,
        |k| k.to_string(),
        |object, e, a, out| {
            for (what, differs) in [
                ("definition", e.definition != a.definition),
                ("volatility", e.volatility != a.volatility),
                ("settings (SET …)", e.settings != a.settings),
            ] {
                if differs {
                    out.push((object.to_string(), format!("{what} differs")));
                }
            }
            if e.security_definer != a.security_definer {
                out.push((
                    object.to_string(),
                    if e.security_definer {
                        "SECURITY INVOKER, expected SECURITY DEFINER".to_string()
                    } else {
                        "SECURITY DEFINER, expected SECURITY INVOKER".to_string()
                    },
                ));
            }
        },
    );
    compare_maps(
        &expected.sequences,
        &actual.sequences,
        &mut out,
        |q| format!("sequence {q}"),
        |name, e, a, out| {
            if let Some(detail) = sequence_difference(e, a, rule) {
                out.push((format!("sequence {name}"), detail));
            }
        },
    );
    compare_maps(
        &expected.comments,
        &actual.comments,
        &mut out,
        |k| k.to_string(),
        |object, e, a, out| {
            if e != a {
                out.push((object.to_string(), "differs".into()));
            }
        },
    );
    // A missing entry means no grant to the compared roles: compare as empty lists.
    let objects: BTreeSet<&String> = expected
        .privileges
        .keys()
        .chain(actual.privileges.keys())
        .collect();
    let none = Vec::new();
    for object in objects {
        let e = expected.privileges.get(object).unwrap_or(&none);
        let a = actual.privileges.get(object).unwrap_or(&none);
        let missing: Vec<&String> = e.iter().filter(|g| !a.contains(g)).collect();
        let extra: Vec<&String> = a.iter().filter(|g| !e.contains(g)).collect();
        if !missing.is_empty() || !extra.is_empty() {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!("missing grants {}", join(&missing)));
            }
            if !extra.is_empty() {
                parts.push(format!("unexpected grants {}", join(&extra)));
            }
            out.push((format!("privileges on {object}"), parts.join("; ")));
        }
    }
    out
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn flag(what: &str, expected: bool, actual: bool) -> String {
    let state = |on: bool| if on { "enabled" } else { "disabled" };
    format!("{what} {}, expected {}", state(actual), state(expected))
}

fn trigger_state(tgenabled: &str) -> &'static str {
    match tgenabled {
        "O" => "enabled",
        "D" => "disabled",
        "R" => "enabled on replicas only",
        "A" => "always enabled",
        _ => "in an unknown state",
    }
}

fn sequence_difference(e: &SequenceState, a: &SequenceState, rule: SequenceRule) -> Option<String> {
    if !e.readable {
        return None;
    }
    let shown = |v: Option<i64>| {
        v.map_or("never used (nextval not called)".to_string(), |v| {
            format!("at {v}")
        })
    };
    let ok = match rule {
        SequenceRule::Exact => e.last_value == a.last_value,
        SequenceRule::AtLeast => match (e.last_value, a.last_value) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(e_v), Some(a_v)) if e.increment < 0 => a_v <= e_v,
            (Some(e_v), Some(a_v)) => a_v >= e_v,
        },
    };
    (!ok).then(|| {
        let expected = match rule {
            SequenceRule::Exact => shown(e.last_value),
            SequenceRule::AtLeast => format!("at least {}", shown(e.last_value)),
        };
        format!("{}, expected {expected}", shown(a.last_value))
    })
}

/// Walks two maps: an entry only in `expected` is missing, one only in `actual` is unexpected, and
/// `both` compares the rest.
fn compare_maps<V>(
    expected: &BTreeMap<String, V>,
    actual: &BTreeMap<String, V>,
    out: &mut Vec<(String, String)>,
    describe: impl Fn(&str) -> String,
    mut both: impl FnMut(&str, &V, &V, &mut Vec<(String, String)>),
) {
    for (key, e) in expected {
        match actual.get(key) {
            Some(a) => both(key, e, a, out),
            None => out.push((describe(key), "missing".into())),
        }
    }
    for key in actual.keys().filter(|k| !expected.contains_key(*k)) {
        out.push((describe(key), "not in the manifest".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> Definitions {
        let mut d = Definitions::default();
        let mut table = TableDefinition {
            rls: true,
            force_rls: false,
            ..Default::default()
        };
        table.columns.insert(
            "id".into(),
            ColumnDefinition {
                data_type: "bigint".into(),
                not_null: true,
                identity: "d".into(),
                ..Default::default()
            },
        );
        table.triggers.insert("audit".into(), "O".into());
        d.tables.insert("public.todos".into(), table);
        d.policies.insert(
            policy_key("owner can read", "public.todos"),
            PolicyDefinition {
                table: "public.todos".into(),
                command: "SELECT".into(),
                roles: vec!["authenticated".into()],
                permissive: true,
                using: Some("(auth.uid() = user_id)".into()),
                with_check: None,
            },
        );
        d.sequences.insert(
            "public.todos_id_seq".into(),
            SequenceState {
                last_value: Some(2000),
                readable: true,
                increment: 1,
            },
        );
        d
    }

    #[test]
    fn each_difference_names_its_object() {
        let expected = defs();
        let mut actual = defs();
        assert!(compare(&expected, &actual, SequenceRule::Exact).is_empty());
        let t = actual.tables.get_mut("public.todos").unwrap();
        t.rls = false;
        t.columns.get_mut("id").unwrap().not_null = false;
        t.triggers.insert("audit".into(), "D".into());
        actual.policies.values_mut().next().unwrap().using = Some("true".into());
        actual
            .sequences
            .get_mut("public.todos_id_seq")
            .unwrap()
            .last_value = Some(1);
        let found: Vec<String> = compare(&expected, &actual, SequenceRule::Exact)
            .into_iter()
            .map(|(o, d)| format!("{o}: {d}"))
            .collect();
        assert_eq!(
            found,
            [
                "table public.todos: row level security disabled, expected enabled",
                "column id of table public.todos: NOT NULL differs",
                "trigger audit on public.todos: disabled, expected enabled",
                "policy \"owner can read\" on public.todos: USING differs",
                "sequence public.todos_id_seq: at 1, expected at 2000",
            ]
        );
    }

    #[test]
    fn sequences_may_be_ahead_during_a_backup_but_not_behind() {
        let e = SequenceState {
            last_value: Some(10),
            readable: true,
            increment: 1,
        };
        let at = |v: Option<i64>| SequenceState {
            last_value: v,
            ..e.clone()
        };
        assert_eq!(
            sequence_difference(&e, &at(Some(12)), SequenceRule::AtLeast),
            None
        );
        assert!(sequence_difference(&e, &at(Some(9)), SequenceRule::AtLeast).is_some());
        assert!(sequence_difference(&e, &at(None), SequenceRule::AtLeast).is_some());
        assert!(sequence_difference(&e, &at(Some(12)), SequenceRule::Exact).is_some());
    }

    #[test]
    fn privileges_compare_as_sets_per_object() {
        let mut expected = Definitions::default();
        expected
            .privileges
            .insert("table public.t".into(), vec!["anon:SELECT".into()]);
        let actual = Definitions::default();
        assert_eq!(
            compare(&expected, &actual, SequenceRule::Exact),
            [(
                "privileges on table public.t".to_string(),
                "missing grants anon:SELECT".to_string()
            )]
        );
    }
}
