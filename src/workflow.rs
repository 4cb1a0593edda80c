//! Keeps the scheduled workflow enabled: after a run's work, with `github-token` and inside GitHub Actions,
//! `PUT {GITHUB_API_URL}/repos/{owner}/{repo}/actions/workflows/{file}/enable` for the workflow the run is
//! part of. GitHub disables scheduled workflows in public repositories after 60 days without repository
//! activity; the enable call keeps (or makes) the workflow active. It never fails a run: anything but 204
//! is a warning naming the status and what to do.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};

use crate::actions::{one_line, Actions};
use crate::http;
use crate::secret::Secret;

const API_VERSION: &str = "2022-11-28";
const GIVE_ACTIONS_WRITE: &str = "give the token actions: write (`permissions: actions: write` on the job with `github-token: ${{ github.token }}`, or a fine-grained token with the repository permission Actions: read and write)";

/// The workflow this run is part of, from the runner's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowTarget {
    /// `GITHUB_API_URL`, e.g. `https://api.github.com`.
    pub api_url: url::Url,
    /// `owner/repo`
    pub repository: String,
    /// The workflow's file name, e.g. `backup.yml`.
    pub file: String,
}

impl WorkflowTarget {
    /// Reads `GITHUB_ACTIONS`, `GITHUB_API_URL`, `GITHUB_REPOSITORY` and `GITHUB_WORKFLOW_REF`
    /// (`owner/repo/.github/workflows/backup.yml@refs/heads/main`); the reason when it cannot.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Self, String> {
        let var = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        if var("GITHUB_ACTIONS") != Some("true") {
            return Err(
                "this run is not inside GitHub Actions (GITHUB_ACTIONS is not true)".into(),
            );
        }
        let missing = |name: &str| format!("{name} is not set");
        let api = var("GITHUB_API_URL").ok_or_else(|| missing("GITHUB_API_URL"))?;
        let api_url =
            url::Url::parse(api).map_err(|e| format!("GITHUB_API_URL is not a URL ({e})"))?;
        let loopback = matches!(
            api_url.host_str(),
            Some("127.0.0.1" | "localhost" | "[::1]")
        );
        if !(api_url.scheme() == "https" || (api_url.scheme() == "http" && loopback)) {
            return Err(
                "GITHUB_API_URL is not https, and the token is never sent over plain http".into(),
            );
        }
        let repository = var("GITHUB_REPOSITORY").ok_or_else(|| missing("GITHUB_REPOSITORY"))?;
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match repository.split_once('/') {
            Some((owner, repo)) if name_ok(owner) && name_ok(repo) => {}
            _ => {
                return Err(format!(
                    "GITHUB_REPOSITORY \"{}\" is not owner/repo",
                    one_line(repository)
                ))
            }
        }
        let workflow_ref =
            var("GITHUB_WORKFLOW_REF").ok_or_else(|| missing("GITHUB_WORKFLOW_REF"))?;
        let path = workflow_ref
            .split_once('@')
            .map_or(workflow_ref, |(p, _)| p);
        let file = path
            .strip_prefix(repository)
            .and_then(|rest| rest.strip_prefix("/.github/workflows/"))
            .filter(|f| !f.is_empty() && !f.contains('/'))
            .ok_or_else(|| {
                format!(
                    "GITHUB_WORKFLOW_REF \"{}\" does not name a workflow file of {repository}",
                    one_line(workflow_ref)
                )
            })?;
        Ok(WorkflowTarget {
            api_url,
            repository: repository.to_string(),
            file: file.to_string(),
        })
    }

    /// `{api}/repos/{owner}/{repo}/actions/workflows/{file}/enable`, each part a path segment of its own.
    pub fn enable_url(&self) -> url::Url {
        let mut url = self.api_url.clone();
        let (owner, repo) = self
            .repository
            .split_once('/')
            .expect("checked in from_env");
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend([
                "repos",
                owner,
                repo,
                "actions",
                "workflows",
                &self.file,
                "enable",
            ]);
        }
        url
    }
}

/// How the call went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 204: the workflow is enabled.
    Enabled,
    /// Not attempted (outside Actions, or the environment does not name the workflow): the reason.
    Skipped(String),
    /// GitHub answered with another status.
    Refused(u16),
    /// No answer: the reason (never holding the token).
    Failed(String),
}

/// Re-enables the run's workflow and tells the user how it went (info on 204, a warning otherwise).
pub async fn keep_enabled(
    token: &Secret,
    env: &BTreeMap<String, String>,
    actions: &Actions,
) -> Outcome {
    let target = match WorkflowTarget::from_env(env) {
        Ok(target) => target,
        Err(reason) => {
            actions.warning(&format!(
                "github-token is set, but {reason}; the workflow was not re-enabled"
            ));
            return Outcome::Skipped(reason);
        }
    };
    let file = one_line(&target.file);
    let outcome = send(token, &target).await;
    match &outcome {
        Outcome::Enabled => actions.info(&format!(
            "workflow {file} of {} kept enabled (GitHub answered 204), so GitHub does not disable its schedule after 60 days without repository activity",
            target.repository
        )),
        Outcome::Refused(401) => actions.warning(&format!(
            "re-enabling workflow {file} failed: GitHub answered 401, the github-token was not accepted; pass a valid token and {GIVE_ACTIONS_WRITE}. This run is not affected, but in a public repository GitHub disables the schedule after 60 days without repository activity"
        )),
        Outcome::Refused(status) => actions.warning(&format!(
            "re-enabling workflow {file} failed: GitHub answered {status}; {GIVE_ACTIONS_WRITE}. This run is not affected, but in a public repository GitHub disables the schedule after 60 days without repository activity"
        )),
        Outcome::Failed(reason) => actions.warning(&format!(
            "re-enabling workflow {file} failed ({reason}); this run is not affected, and the next run tries again"
        )),
        Outcome::Skipped(_) => {}
    }
    outcome
}

async fn send(token: &Secret, target: &WorkflowTarget) -> Outcome {
    let client = match client(token) {
        Ok(client) => client,
        Err(reason) => return Outcome::Failed(reason),
    };
    let url = target.enable_url();
    http::retrying_once(
        || async {
            match client.put(url.clone()).body("").send().await {
                Ok(response) => match response.status().as_u16() {
                    204 => Outcome::Enabled,
                    status => Outcome::Refused(status),
                },
                Err(e) => Outcome::Failed(http::describe(&e)),
            }
        },
        |outcome| matches!(outcome, Outcome::Failed(_) | Outcome::Refused(500..=599)),
    )
    .await
}

fn client(token: &Secret) -> Result<reqwest::Client, String> {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        http::sensitive(&format!("Bearer {}", token.expose()), "github-token")?,
    );
    headers.insert(
        ACCEPT,
        HeaderValue::from_static("application/vnd.github+json"),
    );
    headers.insert(
        "X-GitHub-Api-Version",
        HeaderValue::from_static(API_VERSION),
    );
    http::client(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const ACTIONS: [(&str, &str); 4] = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_API_URL", "https://api.github.com"),
        ("GITHUB_REPOSITORY", "acme/shop"),
        (
            "GITHUB_WORKFLOW_REF",
            "acme/shop/.github/workflows/backup.yml@refs/heads/main",
        ),
    ];

    #[test]
    fn the_workflow_file_comes_from_the_workflow_ref() {
        let target = WorkflowTarget::from_env(&env(&ACTIONS)).unwrap();
        assert_eq!(target.file, "backup.yml");
        assert_eq!(
            target.enable_url().as_str(),
            "https://api.github.com/repos/acme/shop/actions/workflows/backup.yml/enable"
        );
        let mut ghes = env(&ACTIONS);
        ghes.insert(
            "GITHUB_API_URL".into(),
            "https://ghe.example/api/v3/".into(),
        );
        assert_eq!(
            WorkflowTarget::from_env(&ghes)
                .unwrap()
                .enable_url()
                .as_str(),
            "https://ghe.example/api/v3/repos/acme/shop/actions/workflows/backup.yml/enable"
        );
    }

    #[test]
    fn outside_actions_or_with_odd_variables_nothing_is_sent() {
        let cases: [(&str, &str, &str); 5] = [
            ("GITHUB_ACTIONS", "false", "not inside GitHub Actions"),
            ("GITHUB_API_URL", "http://api.example", "not https"),
            ("GITHUB_REPOSITORY", "acme", "not owner/repo"),
            (
                "GITHUB_WORKFLOW_REF",
                "other/repo/.github/workflows/backup.yml@refs/heads/main",
                "does not name a workflow file",
            ),
            ("GITHUB_WORKFLOW_REF", "", "GITHUB_WORKFLOW_REF is not set"),
        ];
        for (name, value, expected) in cases {
            let mut vars = env(&ACTIONS);
            vars.insert(name.into(), value.into());
            let err = WorkflowTarget::from_env(&vars).unwrap_err();
            assert!(err.contains(expected), "{name}={value}: {err}");
        }
    }
}
