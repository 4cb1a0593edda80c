//! The shared heart of the emulator: state, backing cluster, faults and recorder, plus the branch
//! storage work (physical databases) that several endpoints need.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::api::error::ApiError;
use crate::backing::Backing;
use crate::config::EmulatorConfig;
use crate::faults::Faults;
use crate::ids;
use crate::model::{Branch, State};
use crate::recording::Recorder;

pub(crate) type Shared = Arc<App>;

pub(crate) struct App {
    pub cfg: EmulatorConfig,
    state: Mutex<State>,
    /// Serialises mutations, including their slow database work, without blocking reads of the state.
    pub gate: tokio::sync::Mutex<()>,
    pub backing: Backing,
    pub faults: Faults,
    pub recorder: Recorder,
    /// Test hook: the port written into connection URIs instead of the backing cluster's, standing
    /// in for a network path that leads the endpoint's host name to another server.
    pub connection_port_override: Mutex<Option<u16>>,
}

/// The physical database of (branch, database), at most 63 bytes, and none of `taken` (the branch's
/// others: two names can clean up alike, `a b` and `a_b`); unique per branch id.
pub(crate) fn physical_name(branch_id: &str, database: &str, taken: &[&str]) -> String {
    let clean: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut base = format!("br_{}_{}", ids::id_suffix(branch_id), clean);
    base.truncate(63);
    let mut name = base.clone();
    let mut n = 1;
    while taken.contains(&name.as_str()) {
        n += 1;
        let suffix = format!("_{n}");
        name = format!("{}{suffix}", &base[..base.len().min(63 - suffix.len())]);
    }
    name
}

impl App {
    pub fn new(cfg: EmulatorConfig, state: State, backing: Backing, faults: Faults) -> Self {
        App {
            cfg,
            state: Mutex::new(state),
            gate: tokio::sync::Mutex::new(()),
            backing,
            faults,
            recorder: Recorder::default(),
            connection_port_override: Mutex::new(None),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("state lock")
    }

    pub fn check_project(&self, project_id: &str) -> Result<(), ApiError> {
        if project_id == self.cfg.project_id {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "project {project_id} not found"
            )))
        }
    }

    /// 423 while any operation of the project is still in progress.
    pub fn check_unlocked(&self, now: DateTime<Utc>) -> Result<(), ApiError> {
        if self.state().has_running_operations(now) {
            Err(ApiError::locked())
        } else {
            Ok(())
        }
    }

    /// Measures every branch's logical size and writes since creation on the backing cluster (see
    /// [`crate::storage`]). A database that cannot be measured now keeps its last figures.
    pub async fn refresh_storage(&self) {
        // Never while a mutation copies or drops databases (a half-copied database is no branch yet);
        // the last figures stand then. Held while measuring, so no copy starts under us.
        let Ok(_gate) = self.gate.try_lock() else {
            return;
        };
        let targets: Vec<(String, String, crate::storage::RelationSizes)> = self
            .state()
            .branches
            .iter()
            .flat_map(|b| {
                b.databases
                    .iter()
                    .map(|d| (b.id.clone(), d.physical.clone(), d.baseline.clone()))
            })
            .collect();
        let physicals: Vec<String> = targets.iter().map(|(_, p, _)| p.clone()).collect();
        let Ok(now) = self.backing.relation_sizes_of(&physicals).await else {
            return;
        };
        let mut measured: Vec<(String, i64, i64)> = Vec::new();
        for (branch_id, physical, baseline) in targets {
            // A database the listing did not find (dropped under us) keeps its last figures.
            if let Some(now) = now.get(&physical).filter(|n| !n.is_empty()) {
                measured.push((
                    branch_id,
                    crate::storage::logical(now),
                    crate::storage::written_since(&baseline, now),
                ));
            }
        }
        let mut st = self.state();
        let mut totals: std::collections::HashMap<String, (i64, i64)> = Default::default();
        for (branch_id, logical, written) in measured {
            let t = totals.entry(branch_id).or_default();
            t.0 += logical;
            t.1 += written;
        }
        for (branch_id, (logical, written)) in totals {
            if let Some(b) = st.branch_mut(&branch_id) {
                b.logical_size = logical;
                b.written_data_bytes = written;
            }
        }
    }

    /// A connection URI to a physical database on the backing cluster.
    pub fn connection_uri(&self, role: &str, password: &str, physical: &str) -> String {
        let pg = self.backing.public();
        let port = self
            .connection_port_override
            .lock()
            .expect("override lock")
            .unwrap_or(pg.public_port);
        let mut uri = url::Url::parse(&format!(
            "postgresql://{}:{}/{}",
            pg.public_host, port, physical
        ))
        .expect("valid URI");
        uri.set_username(role).expect("URI has a host");
        uri.set_password(Some(password)).expect("URI has a host");
        if !pg.uri_query.is_empty() {
            uri.set_query(Some(&pg.uri_query));
        }
        uri.to_string()
    }

    /// Drops the branch's physical databases and forgets the branch and its endpoints. The caller
    /// holds the gate and has checked that the branch may go.
    pub async fn remove_branch(&self, branch_id: &str) -> Result<Branch, ApiError> {
        let physical: Vec<String> = match self.state().branch(branch_id) {
            Some(b) => b.databases.iter().map(|d| d.physical.clone()).collect(),
            None => return Err(ApiError::not_found(format!("branch {branch_id} not found"))),
        };
        for db in &physical {
            self.backing.drop_database(db).await.map_err(|e| {
                ApiError::internal(format!("dropping the branch's database failed: {e}"))
            })?;
        }
        let mut st = self.state();
        let index = st
            .branches
            .iter()
            .position(|b| b.id == branch_id)
            .expect("branch still present");
        let branch = st.branches.remove(index);
        st.endpoints.retain(|e| e.branch_id != branch_id);
        st.deleted_branch_names.push(branch.name.clone());
        Ok(branch)
    }

    /// Removes branches whose `expires_at` has passed (Neon does this with a background job).
    pub async fn sweep_expired(&self) -> Result<(), ApiError> {
        let now = Utc::now();
        let any_expired = |st: &State| {
            st.branches
                .iter()
                .any(|b| b.expires_at.is_some_and(|t| t <= now) && !b.default)
        };
        if !any_expired(&self.state()) {
            return Ok(());
        }
        let _gate = self.gate.lock().await;
        let expired: Vec<String> = self
            .state()
            .branches
            .iter()
            .filter(|b| b.expires_at.is_some_and(|t| t <= now) && !b.default)
            .map(|b| b.id.clone())
            .collect();
        for id in expired {
            self.remove_branch(&id).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::physical_name;

    #[test]
    fn physical_names_stay_unique_and_within_the_identifier_limit() {
        let branch = "br-quiet-sea-12345678";
        let first = physical_name(branch, "a b", &[]);
        assert_eq!(first, "br_12345678_a_b");
        let second = physical_name(branch, "a_b", &[&first]);
        assert_eq!(second, "br_12345678_a_b_2");
        let third = physical_name(branch, "A-b", &[&first, &second]);
        assert_eq!(third, "br_12345678_a_b_3");
        let long = "x".repeat(80);
        let a = physical_name(branch, &long, &[]);
        let b = physical_name(branch, &format!("{long}y"), &[&a]);
        assert!(a.len() == 63 && b.len() == 63 && a != b, "{a} {b}");
    }
}
