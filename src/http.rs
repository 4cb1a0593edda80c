//! The small HTTP calls besides Neon's API (the keep-awake ping, the workflow re-enable): a client that
//! carries a secret only where it is sent (sensitive headers, no redirects followed), one bounded retry,
//! and transport errors in a few words.

use std::future::Future;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, USER_AGENT};
use reqwest::redirect::Policy;

/// One attempt's bound, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Before the one retry.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// A header value holding a secret: marked sensitive, so reqwest never shows it. `setting` names where the
/// value came from, for the error (which never holds the value).
pub fn sensitive(value: &str, setting: &str) -> Result<HeaderValue, String> {
    let mut header = HeaderValue::from_str(value)
        .map_err(|_| format!("{setting} is not a valid header value"))?;
    header.set_sensitive(true);
    Ok(header)
}

/// A client sending `headers` (and our User-Agent) on every request, bounded by [`TIMEOUT`], following no
/// redirect: a redirect would carry the secret headers to wherever it points.
pub fn client(mut headers: HeaderMap) -> Result<reqwest::Client, String> {
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("supaneon-sync/", env!("CARGO_PKG_VERSION"))),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(TIMEOUT)
        .redirect(Policy::none())
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// Runs `attempt`, and once more after [`RETRY_PAUSE`] when its outcome is `transient`.
pub async fn retrying_once<O, F, Fut>(attempt: F, transient: impl Fn(&O) -> bool) -> O
where
    F: Fn() -> Fut,
    Fut: Future<Output = O>,
{
    let outcome = attempt().await;
    if !transient(&outcome) {
        return outcome;
    }
    tokio::time::sleep(RETRY_PAUSE).await;
    attempt().await
}

/// A transport error in a few words (reqwest never prints headers).
pub fn describe(e: &reqwest::Error) -> String {
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
