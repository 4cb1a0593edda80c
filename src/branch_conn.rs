//! The connection to a Neon branch's database: the URI the API hands out, accepted only for the host of
//! the branch's own read-write endpoint (as the API named it), under the Neon rule: verify-full against
//! the public roots and channel binding, whatever the URI's query says.

use crate::config::NeonSettings;
use crate::neon::{CreatedBranch, Endpoint, EndpointType, NeonClient, NeonError};
use crate::pg::conn::{ConnError, ConnSpec};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum BranchConnError {
    #[error(transparent)]
    Api(#[from] NeonError),
    #[error("branch {branch_id} has no read-write endpoint, so it has no host to connect to")]
    NoEndpoint { branch_id: String },
    #[error(transparent)]
    Conn(#[from] ConnError),
}

/// The [`ConnSpec`] for `branch_id`'s database and role from `settings`.
pub async fn branch_spec(
    neon: &NeonClient,
    settings: &NeonSettings,
    branch_id: &str,
) -> Result<ConnSpec, BranchConnError> {
    let endpoints = neon.list_endpoints(branch_id).await?;
    branch_spec_with(neon, settings, branch_id, &endpoints).await
}

/// [`branch_spec`] for a branch this run just created: the creation answered with its endpoint, so it is
/// not listed again (a branch taken over after a retried create comes without one, and is listed).
pub async fn created_branch_spec(
    neon: &NeonClient,
    settings: &NeonSettings,
    created: &CreatedBranch,
) -> Result<ConnSpec, BranchConnError> {
    match &created.endpoint {
        Some(endpoint) => {
            branch_spec_with(
                neon,
                settings,
                &created.branch.id,
                std::slice::from_ref(endpoint),
            )
            .await
        }
        None => branch_spec(neon, settings, &created.branch.id).await,
    }
}

/// [`branch_spec`] for a caller that has listed the branch's endpoints already.
pub async fn branch_spec_with(
    neon: &NeonClient,
    settings: &NeonSettings,
    branch_id: &str,
    endpoints: &[Endpoint],
) -> Result<ConnSpec, BranchConnError> {
    branch_connection(neon, settings, branch_id, endpoints)
        .await
        .map(|(_, spec)| spec)
}

/// The URI the API handed out (a secret) and the [`ConnSpec`] made of it under the Neon rule.
pub async fn branch_connection(
    neon: &NeonClient,
    settings: &NeonSettings,
    branch_id: &str,
    endpoints: &[Endpoint],
) -> Result<(Secret, ConnSpec), BranchConnError> {
    let host = endpoints
        .iter()
        .find(|e| e.endpoint_type == EndpointType::ReadWrite)
        .map(|e| e.host.clone())
        .ok_or_else(|| BranchConnError::NoEndpoint {
            branch_id: branch_id.to_string(),
        })?;
    let uri = neon
        .connection_uri(branch_id, &settings.database, &settings.role)
        .await?;
    let spec = ConnSpec::for_neon_branch(&uri, &host, settings.extra_roots.as_deref())?;
    Ok((uri, spec))
}
