//! Where a tenant's message goes: the active endpoint first, the other one (if the tenant has
//! a backup) only when failing over is safe; and a per-endpoint circuit breaker shared by
//! every record an instance handles.
//!
//! Failover rules ([`may_fail_over`]): only after a failure that certainly had no effect on
//! WhatsApp — the server could not be reached, answered 5xx, reports the device logged out,
//! refused the credentials, or the breaker is open. Never after an ambiguous failure (the
//! message may be out: a second server would send it twice), never after WhatsApp's
//! rate limit (`WA_REACHOUT_TIMELOCK` is about the sending number, another server does not
//! help and would make it worse), never after a permanent refusal (the message is wrong).
//!
//! The breaker ([`Breakers`]) counts consecutive failures per endpoint (server base URL and
//! device). After `failure_threshold` of them it opens: the endpoint is skipped without a
//! request for `cool_down`. Then one request is let through as a probe (half-open); its
//! success closes the breaker, its failure opens it for another cool-down. The state lives in
//! the instance's memory: every record of every batch on that instance shares it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::provider::{ErrorClass, ProviderError};
use crate::tenant::{Endpoint, EndpointRole, TenantConfig};

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses before it lets one probe through.
    pub cool_down: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            cool_down: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out.
    HalfOpen,
}

/// What the breaker says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Closed: go.
    Go,
    /// Half-open: this request is the probe.
    Probe,
    /// Open (or a probe is already out): skip the endpoint.
    Refused,
}

impl Permit {
    pub fn allowed(self) -> bool {
        !matches!(self, Permit::Refused)
    }
}

/// What a request said about the endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The server answered sensibly (success, a permanent refusal, a rate limit).
    Healthy,
    /// The endpoint cannot send (unreachable, 5xx, timeout, logged out, bad credentials).
    Failed,
    /// Says nothing (the request never left: refused by the egress guard).
    Neutral,
}

impl Health {
    pub fn of(result: &Result<impl Sized, ProviderError>) -> Health {
        match result {
            Ok(_) => Health::Healthy,
            // The request never reached the server.
            Err(ProviderError::Egress(_) | ProviderError::Media { .. }) => Health::Neutral,
            Err(e) => match e.class() {
                ErrorClass::Permanent | ErrorClass::RateLimited => Health::Healthy,
                ErrorClass::Retryable
                | ErrorClass::Ambiguous
                | ErrorClass::LoggedOut
                | ErrorClass::BadCredentials => Health::Failed,
            },
        }
    }
}

/// Per-endpoint breakers of one instance.
#[derive(Debug)]
pub struct Breakers {
    settings: BreakerSettings,
    states: Mutex<HashMap<String, State>>,
}

/// The breaker key of an endpoint: its server and device.
pub fn endpoint_key<S>(e: &Endpoint<S>) -> String {
    format!(
        "{}#{}",
        e.base_url,
        e.device_id.as_deref().unwrap_or_default()
    )
}

impl Breakers {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            states: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> BreakerSettings {
        self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May a request go to `key` now?
    pub fn permit(&self, key: &str) -> Permit {
        let now = Instant::now();
        let mut map = self.lock();
        let state = map
            .entry(key.to_string())
            .or_insert(State::Closed { failures: 0 });
        match *state {
            State::Closed { .. } => Permit::Go,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen;
                Permit::Probe
            }
            State::Open { .. } | State::HalfOpen => Permit::Refused,
        }
    }

    /// Records what a permitted request found.
    pub fn record(&self, key: &str, permit: Permit, health: Health) {
        let now = Instant::now();
        let mut map = self.lock();
        let state = map
            .entry(key.to_string())
            .or_insert(State::Closed { failures: 0 });
        match (health, *state) {
            (Health::Healthy, _) => *state = State::Closed { failures: 0 },
            (Health::Failed, State::Closed { failures }) => {
                let failures = failures + 1;
                *state = if failures >= self.settings.failure_threshold {
                    State::Open {
                        until: now + self.settings.cool_down,
                    }
                } else {
                    State::Closed { failures }
                };
            }
            (Health::Failed, _) => {
                *state = State::Open {
                    until: now + self.settings.cool_down,
                }
            }
            (Health::Neutral, State::HalfOpen) if permit == Permit::Probe => {
                // The probe told us nothing: let the next request probe.
                *state = State::Open { until: now };
            }
            (Health::Neutral, _) => {}
        }
    }

    /// Is the breaker of `key` open (refusing) right now? For logs and tests.
    pub fn is_open(&self, key: &str) -> bool {
        matches!(self.lock().get(key), Some(State::Open { until }) if Instant::now() < *until)
    }

    /// Ends every open breaker's cool-down now, as if it had passed: tests of the crates that
    /// use this one move past a cool-down without sleeping against the clock (a test that
    /// sleeps for a cool-down races the work before it on a slow machine).
    #[cfg(feature = "testing")]
    pub fn end_cool_downs(&self) {
        let now = Instant::now();
        for state in self.lock().values_mut() {
            if let State::Open { until } = state {
                *until = now;
            }
        }
    }
}

/// The endpoints to try, in order: the active one, then the other one if the tenant has a
/// backup.
pub fn candidates<S>(config: &TenantConfig<S>) -> Vec<(EndpointRole, &Endpoint<S>)> {
    let mut out = vec![(config.active_endpoint, config.active())];
    if let Some(b) = &config.backup {
        match config.active_endpoint {
            EndpointRole::Primary => out.push((EndpointRole::Backup, b)),
            EndpointRole::Backup => out.push((EndpointRole::Primary, &config.primary)),
        }
    }
    out
}

/// May the same message go to the other endpoint after this failure? Not after a document
/// that could not be fetched: the other endpoint would fetch the same URL.
pub fn may_fail_over(err: &ProviderError) -> bool {
    matches!(
        err.class(),
        ErrorClass::Retryable | ErrorClass::LoggedOut | ErrorClass::BadCredentials
    ) && err.certainly_not_sent()
        && !matches!(err, ProviderError::Media { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers() -> Breakers {
        Breakers::new(BreakerSettings {
            failure_threshold: 3,
            cool_down: Duration::from_secs(10),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_only() {
        let b = breakers();
        for _ in 0..2 {
            assert_eq!(b.permit("e"), Permit::Go);
            b.record("e", Permit::Go, Health::Failed);
        }
        b.record("e", Permit::Go, Health::Healthy);
        for _ in 0..2 {
            b.record("e", Permit::Go, Health::Failed);
        }
        assert_eq!(b.permit("e"), Permit::Go, "a success reset the count");
        b.record("e", Permit::Go, Health::Failed);
        assert_eq!(b.permit("e"), Permit::Refused);
        assert_eq!(b.permit("other"), Permit::Go, "per endpoint");
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_probe_through_after_the_cool_down() {
        let b = breakers();
        for _ in 0..3 {
            b.record("e", Permit::Go, Health::Failed);
        }
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(b.permit("e"), Permit::Refused);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.permit("e"), Permit::Probe);
        assert_eq!(b.permit("e"), Permit::Refused, "one probe at a time");
        b.record("e", Permit::Probe, Health::Failed);
        assert_eq!(b.permit("e"), Permit::Refused, "failed probe reopens");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.permit("e"), Permit::Probe);
        b.record("e", Permit::Probe, Health::Healthy);
        assert_eq!(b.permit("e"), Permit::Go);
    }

    #[test]
    fn failover_only_when_nothing_can_have_been_sent() {
        let yes = [
            ProviderError::Retryable {
                reason: "refused".into(),
                before_sent: true,
            },
            ProviderError::Retryable {
                reason: "502".into(),
                before_sent: false,
            },
            ProviderError::LoggedOut {
                message: "x".into(),
            },
            ProviderError::BadCredentials { status: 401 },
        ];
        let no = [
            ProviderError::Ambiguous {
                reason: "timeout".into(),
            },
            ProviderError::RateLimited {
                message: "timelock".into(),
                retry_after: None,
            },
            ProviderError::Permanent {
                code: "INVALID_JID".into(),
                message: "x".into(),
            },
            // The other endpoint would fetch the same document.
            ProviderError::Media {
                reason: "the document URL answered 503".into(),
                retryable: true,
            },
            ProviderError::Media {
                reason: "the document URL answered 404".into(),
                retryable: false,
            },
        ];
        assert!(yes.iter().all(may_fail_over));
        assert!(!no.iter().any(may_fail_over));
    }
}
