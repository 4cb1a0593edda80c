//! Checks that the outside world fits the configuration: the source answers over TLS, pg tools of its major
//! are installed, the Neon key and project work and have room. Used by `validate-config --online` (every
//! check reported on its own line) and by backup-run before it creates anything.

use tokio_postgres::Client;

use crate::config::{Config, Strategy};
use crate::error::{Error, Failure};
use crate::neon::{NeonClient, Project};
use crate::pg::conn::{self, ConnSpec};
use crate::pg::inspect;
use crate::pg::tools::{self, PgTools};

/// The application name our own sessions show in `pg_stat_activity`.
pub const APP_NAME: &str = "supaneon-sync";

const NOTHING_MADE: &str = "no backup was made; nothing was created on Neon";

/// A reachable source and the tools that fit it.
pub struct Source {
    pub spec: ConnSpec,
    pub client: Client,
    pub major: u32,
    pub version: String,
    /// What the connection verified (TLS version, certificate anchor, authentication).
    pub facts: conn::Facts,
}

/// Connects to the source over TLS and reads its version.
pub async fn source(config: &Config) -> Result<Source, Error> {
    let url = config.source_url.as_ref().ok_or_else(|| {
        Failure::new("this mode needs the Supabase connection URI")
            .hint("set SUPABASE_DATABASE_URL")
    })?;
    let spec = ConnSpec::for_source(url).map_err(|e| {
        Failure::new(format!("the Supabase connection URI cannot be used: {e}"))
            .impact(NOTHING_MADE)
            .hint("run validate-config to check the settings")
    })?;
    let (client, facts) = conn::connect_with_facts(&spec, APP_NAME)
        .await
        .map_err(|e| unreachable_source(&spec, e))?;
    let read = |e: inspect::InspectError| {
        Failure::new("the Supabase database did not tell its version")
            .impact(NOTHING_MADE)
            .cause(e)
    };
    let major = inspect::server_major(&client).await.map_err(read)?;
    let version = inspect::server_version(&client).await.map_err(read)?;
    Ok(Source {
        spec,
        client,
        major,
        version,
        facts,
    })
}

/// Why the source could not be connected to, as the run's failure. An unreachable Supabase host is most
/// likely a paused project (free projects pause after about a week of low activity), which gets a
/// message of its own; every other host keeps the connection's own message.
fn unreachable_source(spec: &ConnSpec, e: conn::ConnError) -> Failure {
    const UNTOUCHED: &str = "no backup was made by this run; earlier backups are untouched";
    match e {
        conn::ConnError::Unreachable { target, detail } if conn::is_supabase_host(&spec.host) => {
            Failure::new(format!(
                "the Supabase project is unreachable and looks paused: {target} did not answer ({detail}); Supabase pauses Free Plan projects after about a week of low activity"
            ))
            .title("supaneon-sync: the Supabase project looks paused")
            .impact(format!("{UNTOUCHED}, and failover to the newest backup still works (`supaneon-sync failover`, or mode: failover)"))
            .hint("restore the project in the Supabase dashboard (a paused Free Plan project is restored from there), then run again; set supabase-url and supabase-anon-key so that every run also sends a keep-awake request through the project's REST API")
        }
        e => Failure::new(format!("cannot connect to the Supabase database: {e}")).impact(UNTOUCHED),
    }
}

/// pg_dump and pg_restore of exactly the source's major, able to connect the way the source must be
/// connected: on an unverified connection their libpq has to enforce SCRAM (`require_auth`).
pub fn tools_for(config: &Config, source: &Source) -> Result<PgTools, Error> {
    let major = source.major;
    let tools = tools::find_tools(major, &config.pg_bin_dirs).map_err(|e| {
        Failure::new(format!(
            "pg_dump/pg_restore of PostgreSQL {major} are not installed"
        ))
        .impact(NOTHING_MADE)
        .cause(e)
    })?;
    if source.spec.restricts_auth() && !tools.libpq_require_auth {
        return Err(Failure::new(format!(
            "{}: the certificate is not verified (sslmode=require), and the libpq of {} is older than 16, so pg_dump could not be kept from sending the password to an impostor",
            source.spec.display(),
            tools.pg_dump.display()
        ))
        .impact(NOTHING_MADE)
        .hint("verify the server's certificate (sslmode=verify-full with sslrootcert=<the server's CA>), or use pg_dump/pg_restore linked with libpq 16 or newer (the supaneon-sync image ships them; set pg-bin-dir)")
        .into());
    }
    Ok(tools)
}

/// The Neon project, checked to run a major at least the source's.
pub async fn project_for(neon: &NeonClient, source_major: u32) -> Result<Project, Error> {
    let project = neon
        .get_project()
        .await
        .map_err(|e| e.into_failure(NOTHING_MADE))?;
    if project.pg_version < source_major {
        return Err(Failure::new(format!(
            "the Neon project runs PostgreSQL {}, older than the source's {source_major}",
            project.pg_version
        ))
        .impact("no backup was made; a dump of a newer server cannot be restored into an older one")
        .hint(format!(
            "create the Neon project with PostgreSQL {source_major}, the same major as Supabase"
        ))
        .into());
    }
    Ok(project)
}

/// The project's storage as Neon bills it, against the free plan's allowance.
pub struct StorageCheck {
    /// False when the next backup would be refused for lack of storage.
    pub fits: bool,
    pub detail: String,
    /// Said before it runs out.
    pub warning: Option<String>,
}

/// `None` when Neon does not report the project's storage. The warning says what each backup adds by
/// `strategy`.
pub fn storage_check(project: &Project, strategy: Strategy) -> Option<StorageCheck> {
    let billed = project.synthetic_storage_size?;
    let mb = |b: u64| b.div_ceil(1024 * 1024);
    Some(match project.free_plan_storage() {
        Some(allowance) if billed >= allowance => StorageCheck {
            fits: false,
            detail: format!("{} MB billed by Neon's rule, at or over the free plan's {} MB: Neon refuses writes beyond it, so the next backup would fail; lower keep-last, delete backups you no longer need, or move to a paid plan", mb(billed), mb(allowance)),
            warning: None,
        },
        Some(allowance) => StorageCheck {
            fits: true,
            detail: format!(
                "{} MB billed by Neon's rule of the free plan's {} MB",
                mb(billed),
                mb(allowance)
            ),
            warning: (billed * 10 >= allowance * 8).then(|| {
                let growth = match strategy {
                    Strategy::Full => "each full backup adds about the database's size: lower keep-last before it runs out",
                    Strategy::Snapshot => "the mirror holds the database once and each backup what changed before it, so the database's own growth fills the rest: delete data you no longer need, lower keep-last, or move to a paid plan before it runs out",
                };
                format!(
                    "Neon storage is at {} % of the free plan's {} MB; {growth}",
                    billed * 100 / allowance,
                    mb(allowance)
                )
            }),
        },
        None => StorageCheck {
            fits: true,
            detail: format!("{} MB billed by Neon's rule", mb(billed)),
            warning: None,
        },
    })
}

/// Neon's free plan allows 10 branches per project, the default branch included.
pub const FREE_PLAN_BRANCH_LIMIT: usize = 10;

/// Whether the retention setting fits the plan: the kept backups, the default branch, one branch for the
/// next backup in progress and one restore-test branch must all exist at once.
pub fn branch_budget_problem(branch_limit: usize, keep_last: u32) -> Option<String> {
    let needed = keep_last as usize + 3;
    (needed > branch_limit).then(|| {
        format!(
            "keep-last {keep_last} needs {needed} branches at once (the kept backups, the default branch, the next backup \
             while it runs and a restore-test branch) but the project allows {branch_limit}; set keep-last to at most {}",
            branch_limit.saturating_sub(3)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(storage: Option<u64>, plan: &str) -> Project {
        serde_json::from_value(serde_json::json!({
            "id": "p", "name": "p", "pg_version": 17,
            "owner": {"branches_limit": 10, "subscription_type": plan},
            "synthetic_storage_size": storage,
        }))
        .unwrap()
    }

    #[test]
    fn storage_is_judged_against_the_free_plan_and_warned_about_before_it_runs_out() {
        const MB: u64 = 1024 * 1024;
        let check = |p: &Project| storage_check(p, Strategy::Full);
        assert!(check(&project(None, "free_v3")).is_none());
        let roomy = check(&project(Some(100 * MB), "free_v3")).unwrap();
        assert!(roomy.fits && roomy.warning.is_none(), "{}", roomy.detail);
        assert!(roomy.detail.contains("100 MB") && roomy.detail.contains("512 MB"));
        let tight = check(&project(Some(420 * MB), "free_v3")).unwrap();
        assert!(tight.fits);
        let warning = tight.warning.unwrap();
        assert!(warning.contains("82 %") && warning.contains("each full backup adds"));
        let snapshot = storage_check(&project(Some(420 * MB), "free_v3"), Strategy::Snapshot)
            .unwrap()
            .warning
            .unwrap();
        assert!(
            snapshot.contains("82 %") && snapshot.contains("the mirror holds the database once"),
            "{snapshot}"
        );
        let full = check(&project(Some(512 * MB), "free_v3")).unwrap();
        assert!(
            !full.fits && full.detail.contains("keep-last"),
            "{}",
            full.detail
        );
        let paid = check(&project(Some(5000 * MB), "launch")).unwrap();
        assert!(paid.fits && paid.warning.is_none());
    }

    #[test]
    fn the_branch_budget_counts_the_default_the_next_backup_and_a_restore_test() {
        assert_eq!(branch_budget_problem(10, 7), None);
        let p = branch_budget_problem(10, 8).unwrap();
        assert!(
            p.contains("needs 11 branches") && p.contains("at most 7"),
            "{p}"
        );
    }
}
