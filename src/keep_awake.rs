//! The keep-awake ping: one request through the Supabase project's REST API before a run's work
//! (`GET {supabase-url}/rest/v1/` with the anon key), so a Free Plan project sees API traffic on every
//! scheduled run. It never fails a run: anything but an answer is a warning that says what it means.
//!
//! What is known (README, "Free plans"): Supabase pauses Free Plan projects that show low activity over a
//! 7-day period; its documented status for a request to a paused project is 540 ("project paused",
//! docs: platform/http-status-codes). Whether one request a day is enough activity is not documented.

use reqwest::header::{HeaderMap, AUTHORIZATION};

use crate::actions::Actions;
use crate::config::KeepAwakeSettings;
use crate::http;

/// Supabase's status for a request to a paused project (its documented "540 project paused").
pub const PROJECT_PAUSED: u16 = 540;

/// How the ping went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: the project answered through its REST API.
    Answered(u16),
    /// 540: the project is paused.
    Paused,
    /// 401 or 403: the project's gateway answered but refused the key.
    Refused(u16),
    /// Any other status, or no answer (the reason, never holding the key).
    Failed(String),
}

/// Sends the ping and tells the user how it went (info when answered, a warning otherwise).
pub async fn ping(settings: &KeepAwakeSettings, actions: &Actions) -> Outcome {
    let endpoint = format!("{}/rest/v1/", settings.url);
    let outcome = send(settings, &endpoint).await;
    match &outcome {
        Outcome::Answered(status) => actions.info(&format!(
            "keep-awake: {endpoint} answered {status}; the Supabase project is awake and received an API request"
        )),
        Outcome::Paused => actions.warning(&format!(
            "keep-awake: the Supabase project is paused: restore it in the dashboard ({endpoint} answered {PROJECT_PAUSED}, Supabase's status for a paused project). Until then no backup can be made; earlier backups are untouched and failover still works"
        )),
        Outcome::Refused(status) => actions.warning(&format!(
            "keep-awake: {endpoint} refused the key ({status}): the project is up, but check supabase-anon-key (the project's anon or publishable key, Project Settings, API Keys; Supabase may also have stopped serving this root of the REST API to anon keys). Whether a refused request counts as activity is not known; Supabase pauses Free Plan projects after 7 days of low activity"
        )),
        Outcome::Failed(reason) => actions.warning(&format!(
            "keep-awake: the request to {endpoint} failed ({reason}); the run goes on, but this run did not keep the Supabase project awake, and a Free Plan project may be paused after 7 days of low activity"
        )),
    }
    outcome
}

async fn send(settings: &KeepAwakeSettings, endpoint: &str) -> Outcome {
    let client = match client(settings) {
        Ok(client) => client,
        Err(reason) => return Outcome::Failed(reason),
    };
    http::retrying_once(
        || async {
            match client.get(endpoint).send().await {
                Ok(response) => classify(response.status().as_u16()),
                Err(e) => Outcome::Failed(http::describe(&e)),
            }
        },
        |outcome| matches!(outcome, Outcome::Failed(_)),
    )
    .await
}

/// What a status means; only 2xx counts as the project answering.
pub fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Answered(status),
        PROJECT_PAUSED => Outcome::Paused,
        401 | 403 => Outcome::Refused(status),
        300..=399 => Outcome::Failed(format!(
            "answered {status}, a redirect, which is not followed with the key; check supabase-url"
        )),
        _ => Outcome::Failed(format!("answered {status}")),
    }
}

fn client(settings: &KeepAwakeSettings) -> Result<reqwest::Client, String> {
    let key = settings.anon_key.expose();
    let mut headers = HeaderMap::new();
    headers.insert("apikey", http::sensitive(key, "supabase-anon-key")?);
    headers.insert(
        AUTHORIZATION,
        http::sensitive(&format!("Bearer {key}"), "supabase-anon-key")?,
    );
    http::client(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_supabase_documents_them() {
        assert_eq!(classify(200), Outcome::Answered(200));
        assert_eq!(classify(540), Outcome::Paused);
        assert_eq!(classify(401), Outcome::Refused(401));
        assert!(matches!(classify(302), Outcome::Failed(m) if m.contains("redirect")));
        assert!(matches!(classify(500), Outcome::Failed(m) if m.contains("500")));
    }
}
