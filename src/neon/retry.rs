//! The one retry table of the Neon client, and the backoff that goes with it.
//!
//! Retried: 423 (project locked by a running operation), 429 (rate limit), 422 that Neon means as "not
//! yet" (`branch not ready yet`, as Neon's own test harness retries), 500, 502, 503, 504, 524 (Cloudflare
//! timeout page), connection errors and timeouts. Everything else fails at once. Delays are full-jitter
//! exponential (base 250 ms, cap 8 s) with a floor, `Retry-After` is honoured between that floor and a cap,
//! and a call never makes more than [`RetryPolicy::max_attempts`] attempts nor outlives its deadline.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::time::Instant;

/// Whether a failed attempt may be retried, and whether the server may already have applied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fail at once.
    Fatal,
    /// Retry; the server certainly did not apply the request (423, 429).
    RetryNotApplied,
    /// Retry; the server may have applied the request (5xx, 524, connection error, timeout), so a
    /// non-idempotent call must check before repeating itself.
    RetryAmbiguous,
}

/// The retry table for HTTP statuses and Neon's error messages: a 422 whose message says the resource is
/// not ready yet is transient (nothing was applied); any other 422 (plan limits, invalid state) is final.
pub fn verdict_for(status: u16, message: &str) -> Verdict {
    let m = message.to_ascii_lowercase();
    if status == 422 && (m.contains("not ready") || m.contains("operation in progress")) {
        return Verdict::RetryNotApplied;
    }
    verdict_for_status(status)
}

/// The retry table for HTTP statuses.
pub fn verdict_for_status(status: u16) -> Verdict {
    match status {
        423 | 429 => Verdict::RetryNotApplied,
        500 | 502 | 503 | 504 | 524 => Verdict::RetryAmbiguous,
        _ => Verdict::Fatal,
    }
}

/// Connection errors and timeouts: the request may or may not have reached Neon.
pub fn verdict_for_transport_error() -> Verdict {
    Verdict::RetryAmbiguous
}

/// Timing of retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// The longest `Retry-After` we wait for.
    pub retry_after_cap: Duration,
    /// Overall deadline for one call, across all attempts.
    pub deadline: Duration,
    /// The shortest pause between attempts, whatever `Retry-After` says (`0` included).
    pub min_pause: Duration,
    /// The most attempts one call makes, however much time is left.
    pub max_attempts: u32,
}

impl RetryPolicy {
    pub const DEFAULT_BASE: Duration = Duration::from_millis(250);
    pub const DEFAULT_CAP: Duration = Duration::from_secs(8);
    pub const DEFAULT_RETRY_AFTER_CAP: Duration = Duration::from_secs(20);
    pub const DEFAULT_MIN_PAUSE: Duration = Duration::from_millis(250);
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

    pub fn with_deadline(deadline: Duration) -> Self {
        RetryPolicy {
            base: Self::DEFAULT_BASE,
            cap: Self::DEFAULT_CAP,
            retry_after_cap: Self::DEFAULT_RETRY_AFTER_CAP,
            deadline,
            min_pause: Self::DEFAULT_MIN_PAUSE,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// The full-jitter delay before retry number `attempt` (1-based): uniform in [0, min(cap, base·2^(attempt-1))].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1).min(20))
                .unwrap_or(u32::MAX),
        );
        let ceiling = exp.min(self.cap);
        let millis = ceiling.as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
    }

    /// The delay before the next attempt: the server's `Retry-After` (capped) when given, else backoff;
    /// never shorter than the floor.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let delay = match retry_after {
            Some(d) => d.min(self.retry_after_cap),
            None => self.backoff(attempt),
        };
        delay.max(self.min_pause)
    }
}

/// Parses `Retry-After`: delta-seconds or an HTTP-date (relative to `now`). Dates in the past mean 0.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Tracks one call's attempts against its deadline.
pub struct Attempts {
    policy: RetryPolicy,
    started: Instant,
    /// Attempts made so far.
    pub count: u32,
}

impl Attempts {
    pub fn new(policy: RetryPolicy) -> Self {
        Attempts {
            policy,
            started: Instant::now(),
            count: 0,
        }
    }

    /// Call before each attempt.
    pub fn begin(&mut self) -> u32 {
        self.count += 1;
        self.count
    }

    /// How long is left of the deadline.
    pub fn remaining(&self) -> Duration {
        self.policy.deadline.saturating_sub(self.started.elapsed())
    }

    /// The pause before the next attempt, or `None` when the attempts are used up or waiting would pass
    /// the deadline (give up now).
    pub fn next_delay(&self, retry_after: Option<Duration>) -> Option<Duration> {
        if self.count >= self.policy.max_attempts {
            return None;
        }
        let delay = self.policy.delay(self.count, retry_after);
        if delay >= self.remaining() {
            None
        } else {
            Some(delay)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_table() {
        for s in [423, 429] {
            assert_eq!(verdict_for_status(s), Verdict::RetryNotApplied, "{s}");
        }
        for s in [500, 502, 503, 504, 524] {
            assert_eq!(verdict_for_status(s), Verdict::RetryAmbiguous, "{s}");
        }
        for s in [400, 401, 403, 404, 409, 412, 422, 501, 200] {
            assert_eq!(verdict_for_status(s), Verdict::Fatal, "{s}");
        }
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let p = RetryPolicy::with_deadline(Duration::from_secs(90));
        for attempt in 1..40 {
            let ceiling = (Duration::from_millis(250) * 2u32.pow((attempt - 1).min(10))).min(p.cap);
            for _ in 0..20 {
                assert!(p.backoff(attempt) <= ceiling);
            }
        }
        // jitter: not always the ceiling
        let samples: Vec<_> = (0..50).map(|_| p.backoff(5)).collect();
        assert!(samples.iter().any(|d| *d < Duration::from_secs(4)));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        let p = RetryPolicy::with_deadline(Duration::from_secs(90));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(300))),
            Duration::from_secs(20)
        );
    }

    #[test]
    fn a_floor_under_every_pause_and_a_cap_on_attempts() {
        let p = RetryPolicy::with_deadline(Duration::from_secs(3600));
        for attempt in 1..20 {
            assert!(p.delay(attempt, Some(Duration::ZERO)) >= p.min_pause);
            assert!(p.delay(attempt, None) >= p.min_pause);
        }
        let mut a = Attempts::new(p);
        for _ in 0..p.max_attempts - 1 {
            a.begin();
            assert!(a.next_delay(Some(Duration::ZERO)).is_some());
        }
        a.begin();
        assert_eq!(a.next_delay(Some(Duration::ZERO)), None);
    }

    #[test]
    fn transient_422s_are_retried_and_limits_are_not() {
        assert_eq!(
            verdict_for(422, "branch not ready yet"),
            Verdict::RetryNotApplied
        );
        assert_eq!(verdict_for(422, "branches limit exceeded"), Verdict::Fatal);
        assert_eq!(verdict_for(503, ""), Verdict::RetryAmbiguous);
    }

    #[test]
    fn gives_up_when_the_wait_would_pass_the_deadline() {
        let a = Attempts::new(RetryPolicy::with_deadline(Duration::from_secs(2)));
        assert_eq!(a.next_delay(Some(Duration::from_secs(5))), None);
        assert!(a.next_delay(Some(Duration::from_millis(10))).is_some());
    }
}
