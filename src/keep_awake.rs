//! The keep-awake ping: one request through the Supabase project's REST API before a run's work
//! (`GET {supabase-url}/rest/v1/` with the anon key), so a Free Plan project sees API traffic on every
//! scheduled run. It never fails a run: anything but an answer is a warning that says what it means.
//!
//! What is known (README, "Free plans"): Supabase pauses Free Plan projects that show low activity over a
//! 7-day period; its documented status for a request to a paused project is 540 ("project paused",
//! docs: platform/http-status-codes). Whether one request a day is enough activity is not documented.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, USER_AGENT};
use reqwest::redirect::Policy;

use crate::actions::Actions;
use crate::config::KeepAwakeSettings;

/// One attempt's bound, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Supabase's status for a request to a paused project (its documented "540 project paused").
pub const PROJECT_PAUSED: u16 = 540;
/// Before the one retry (after no answer, or a status that is neither an answer, 540 nor a refusal).
const RETRY_PAUSE: Duration = Duration::from_secs(1);

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
    let mut retried = false;
    loop {
        let outcome = match client.get(endpoint).send().await {
            Ok(response) => classify(response.status().as_u16()),
            Err(e) => Outcome::Failed(describe(&e)),
        };
        if !matches!(outcome, Outcome::Failed(_)) || retried {
            return outcome;
        }
        retried = true;
        tracing::debug!("keep-awake: retrying once after {outcome:?}");
        tokio::time::sleep(RETRY_PAUSE).await;
    }
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
    let mut apikey = HeaderValue::from_str(key)
        .map_err(|_| "supabase-anon-key is not a valid header value".to_string())?;
    apikey.set_sensitive(true);
    let mut bearer = HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| "supabase-anon-key is not a valid header value".to_string())?;
    bearer.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert("apikey", apikey);
    headers.insert(AUTHORIZATION, bearer);
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("supaneon-sync/", env!("CARGO_PKG_VERSION"))),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(TIMEOUT)
        // A redirect would carry the `apikey` header to wherever it points.
        .redirect(Policy::none())
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// A transport error in a few words (reqwest never prints headers).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if e.is_connect() {
        let mut text = String::from("cannot connect");
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            text = format!("cannot connect: {cause}");
            source = cause.source();
        }
        text
    } else {
        e.to_string()
    }
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
