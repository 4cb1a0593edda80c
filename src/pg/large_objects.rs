//! Large objects: their fingerprint for the manifest, and their owners on a restored copy.
//!
//! pg_dump leaves large objects out when schemas are selected (`--schema`) unless `-b` is given, which
//! the data stream does (see `pipeline::dump_args`); pg_restore recreates them under their source OIDs,
//! so `oid` columns still point at them. `--no-owner` makes the restoring role their owner: afterwards
//! [`restore_owners`] gives each one owned by another role on the source back to that role, which
//! `prepare` has created on the target, and [`restore_grants`] grants them as on the source to PUBLIC
//! and the prepared roles (the schema archive, where the other privileges come from, holds no large
//! object).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use crate::pg::inspect::{quote_ident, InspectError};

/// What the manifest records of the large objects. Owners are by role name; the role taking the
/// manifest (the dumping role on the source, the restoring role on a copy) is recorded as
/// [`SESSION_OWNER`], since the restore makes it the owner of what the dumping role owned.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
pub struct LargeObjects {
    pub count: i64,
    /// Order-independent checksum (decimal) over each object's OID and the MD5 of its data.
    pub checksum: String,
    /// Owner role → number of objects it owns.
    pub owners: BTreeMap<String, i64>,
    /// `grantee:PRIVILEGE` (`*` WITH GRANT OPTION) → on how many objects, for PUBLIC and the roles the
    /// target is prepared with (as [`crate::pg::fingerprints::Definitions::privilege_roles`]).
    #[serde(default)]
    pub grants: BTreeMap<String, i64>,
}

/// How the session's own role appears in [`LargeObjects::owners`].
pub const SESSION_OWNER: &str = "(the backup's role)";

const OWNER_SQL: &str =
    "CASE WHEN m.lomowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) \
     THEN $1 ELSE pg_catalog.pg_get_userbyid(m.lomowner)::text END";

/// Grants on large objects to PUBLIC and `$1` (roles), the owner's own entry left out.
const GRANTS_SQL: &str = "SELECT m.oid, CASE WHEN x.grantee = 0 THEN 'PUBLIC' \
         ELSE pg_catalog.pg_get_userbyid(x.grantee)::text END, x.privilege_type, x.is_grantable \
    FROM pg_catalog.pg_largeobject_metadata m CROSS JOIN LATERAL pg_catalog.aclexplode(m.lomacl) AS x \
   WHERE m.lomacl IS NOT NULL AND x.grantee <> m.lomowner \
     AND (x.grantee = 0 OR pg_catalog.pg_get_userbyid(x.grantee)::text = ANY ($1::text[])) \
   ORDER BY 1, 2, 3";

/// One grant on a large object: (OID, grantee or `PUBLIC`, privilege, WITH GRANT OPTION).
pub type LargeObjectGrant = (u32, String, String, bool);

/// The grants on large objects to PUBLIC and `roles`, for [`restore_grants`].
pub async fn grants(
    source: &impl GenericClient,
    roles: &[String],
) -> Result<Vec<LargeObjectGrant>, InspectError> {
    let rows = source
        .query(GRANTS_SQL, &[&roles])
        .await
        .map_err(|source| InspectError::Query {
            what: "listing the grants on the large objects".into(),
            source,
        })?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect())
}

/// Grants each of `grants` on the restored large objects (after [`restore_owners`]: the owner, or a
/// member of it, grants). Returns what could not be granted, one line each.
pub async fn restore_grants(
    target: &impl GenericClient,
    grants: &[LargeObjectGrant],
) -> Vec<String> {
    let mut notes = Vec::new();
    for (oid, grantee, privilege, grantable) in grants {
        let to = if grantee == "PUBLIC" {
            "PUBLIC".to_string()
        } else {
            quote_ident(grantee)
        };
        let privilege = match privilege.as_str() {
            "SELECT" => "SELECT",
            "UPDATE" => "UPDATE",
            _ => continue,
        };
        let option = if *grantable { " WITH GRANT OPTION" } else { "" };
        let sql = format!("GRANT {privilege} ON LARGE OBJECT {oid} TO {to}{option}");
        if let Err(e) = target.batch_execute(&sql).await {
            let message = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            notes.push(format!(
                "{privilege} on large object {oid} to {grantee} was not granted on the branch: {message}"
            ));
        }
    }
    notes
}

/// The large objects as `client` sees them (in the manifest's snapshot on the source), with their
/// grants to PUBLIC and `roles`.
pub async fn fingerprint(
    client: &impl GenericClient,
    roles: &[String],
) -> Result<LargeObjects, InspectError> {
    let failed = |source| InspectError::Query {
        what: "fingerprinting the large objects".into(),
        source,
    };
    let row = client
        .query_one(
            "SELECT count(*), COALESCE(sum(pg_catalog.hashtextextended( \
                 m.oid::text || ':' || pg_catalog.md5(pg_catalog.lo_get(m.oid)), 0)), 0)::text \
               FROM pg_catalog.pg_largeobject_metadata m",
            &[],
        )
        .await
        .map_err(failed)?;
    let rows = client
        .query(
            &format!(
                "SELECT {OWNER_SQL}, count(*) FROM pg_catalog.pg_largeobject_metadata m GROUP BY 1"
            ),
            &[&SESSION_OWNER],
        )
        .await
        .map_err(failed)?;
    let mut granted: BTreeMap<String, i64> = BTreeMap::new();
    for r in client.query(GRANTS_SQL, &[&roles]).await.map_err(failed)? {
        let (grantee, privilege, grantable): (String, String, bool) =
            (r.get(1), r.get(2), r.get(3));
        let key = format!("{grantee}:{privilege}{}", if grantable { "*" } else { "" });
        *granted.entry(key).or_default() += 1;
    }
    Ok(LargeObjects {
        count: row.get(0),
        checksum: row.get(1),
        owners: rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
        grants: granted,
    })
}

/// Large objects owned on the source by a role other than the dumping one: (OID, owner).
pub async fn foreign_owners(
    source: &impl GenericClient,
) -> Result<Vec<(u32, String)>, InspectError> {
    let rows = source
        .query(
            &format!(
                "SELECT m.oid, {OWNER_SQL} FROM pg_catalog.pg_largeobject_metadata m ORDER BY 1"
            ),
            &[&SESSION_OWNER],
        )
        .await
        .map_err(|source| InspectError::Query {
            what: "listing the owners of the large objects".into(),
            source,
        })?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, u32>(0), r.get::<_, String>(1)))
        .filter(|(_, owner)| owner != SESSION_OWNER)
        .collect())
}

/// The roles owning large objects on the source, other than the dumping role: `prepare` creates them.
pub fn owner_roles(owners: &[(u32, String)]) -> Vec<String> {
    let mut roles: Vec<String> = owners.iter().map(|(_, o)| o.clone()).collect();
    roles.sort();
    roles.dedup();
    roles
}

/// Gives each restored large object in `owners` to its source owner. The restoring role joins each
/// owner role first (`GRANT … TO current_user`; it created the role, or may grant it), since changing
/// an owner needs that membership. Returns what could not be done, one line per role.
pub async fn restore_owners(target: &impl GenericClient, owners: &[(u32, String)]) -> Vec<String> {
    let mut by_role: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (oid, role) in owners {
        by_role.entry(role).or_default().push(*oid);
    }
    let mut notes = Vec::new();
    for (role, oids) in by_role {
        let grant = format!("GRANT {} TO current_user", quote_ident(role));
        let alter = oids
            .iter()
            .map(|oid| format!("ALTER LARGE OBJECT {oid} OWNER TO {}", quote_ident(role)))
            .collect::<Vec<_>>()
            .join("; ");
        // Granting a membership the role already has is only a notice.
        let done = async {
            target.batch_execute(&grant).await?;
            target.batch_execute(&alter).await
        };
        if let Err(e) = done.await {
            let message = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            notes.push(format!(
                "{} large object(s) of role {role} are owned by the branch's role instead: {message}",
                oids.len()
            ));
        }
    }
    notes
}
