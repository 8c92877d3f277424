//! Connection tests: can wagate use this endpoint right now?
//!
//! Four checks, each with its own result and a reason a person can act on:
//! 1. `reachable`: `GET /health` answers 2xx (no credentials involved);
//! 2. `credentials`: an authenticated call (`GET /app/status`) is not refused: any HTTP 401
//!    or 403 fails it, whatever the body (GOWA's basic auth answers a plain 401; a proxy or
//!    the spec's `ErrorUnauthorized` a JSON one). Only GOWA's own JSON code
//!    `AUTHENTICATION_ERROR` (a device that is not logged in, answered after the basic-auth
//!    middleware let the call through) passes it and fails `device`;
//! 3. `device`: the device (`X-Device-Id`, or the server's single session) is logged in;
//! 4. `latency`: `/health` answered within [`LATENCY_BUDGET_MS`].
//!
//! A check that cannot run because an earlier one failed is `skipped`. Results carry
//! base URLs and reasons, never a credential (provider errors never hold one).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use wagate::Secret;
use wagate::provider::{ProviderError, Providers, Target};
use wagate::tenant::{Endpoint, ProviderKind};

/// Slower than this and the `latency` check fails (the sender's own request timeout is
/// longer; a server this slow is usable but should not take traffic by a switch).
pub const LATENCY_BUDGET_MS: u64 = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Skipped,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    pub reason: String,
    /// Milliseconds with microsecond precision ([`wagate::health::latency_ms`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// The result for one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointResult {
    /// `primary`, `backup` or `candidate`.
    pub role: String,
    pub base_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Every check passed.
    pub ok: bool,
    pub checks: Vec<Check>,
    /// Issue 15: whether the device's own webhook is wired to this tenant (saved endpoints
    /// only; reported beside the checks, it does not change `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<crate::handlers::devices::WebhookCheck>,
}

fn check(name: &str, outcome: Outcome, reason: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        outcome,
        reason: reason.into(),
        latency_ms: None,
    }
}

fn describe(e: &ProviderError) -> String {
    match e {
        ProviderError::Retryable { reason, .. } => reason.clone(),
        ProviderError::Ambiguous { reason } => reason.clone(),
        ProviderError::Permanent { code, message } => format!("server answered {code}: {message}"),
        ProviderError::RateLimited { message, .. } => format!("rate limited: {message}"),
        ProviderError::LoggedOut { message } => format!("device not logged in: {message}"),
        ProviderError::BadCredentials { status } => {
            format!("the server refused the credentials (HTTP {status})")
        }
        ProviderError::Egress(e) => format!("refused by wagate's egress guard (SSRF): {e}"),
        ProviderError::Media { reason, .. } => reason.clone(),
    }
}

/// Runs the checks against one endpoint.
pub async fn test_endpoint(
    providers: &Providers,
    provider: ProviderKind,
    role: &str,
    endpoint: &Endpoint<Secret>,
) -> EndpointResult {
    let Some(client) = providers.get(provider) else {
        return finish(
            role,
            endpoint,
            vec![check(
                "reachable",
                Outcome::Fail,
                format!("no client for provider {}", provider.as_str()),
            )],
        );
    };
    let target = Target::from(endpoint);
    let mut checks = Vec::with_capacity(4);

    let started = Instant::now();
    let health = client.health(target).await;
    let latency = wagate::health::latency_ms(started.elapsed());
    match &health {
        Ok(()) => {
            let mut c = check("reachable", Outcome::Pass, "GET /health answered 2xx");
            c.latency_ms = Some(latency);
            checks.push(c);
        }
        Err(e) => {
            let mut c = check("reachable", Outcome::Fail, describe(e));
            c.latency_ms = Some(latency);
            checks.push(c);
            let why = "skipped: the server is not reachable";
            checks.push(check("credentials", Outcome::Skipped, why));
            checks.push(check("device", Outcome::Skipped, why));
            checks.push(check("latency", Outcome::Skipped, why));
            return finish(role, endpoint, checks);
        }
    }

    match client.device_status(target).await {
        Ok(status) => {
            checks.push(check(
                "credentials",
                Outcome::Pass,
                "the server accepted the credentials",
            ));
            checks.push(if status.logged_in {
                check("device", Outcome::Pass, "the device is logged in")
            } else if status.connected {
                check(
                    "device",
                    Outcome::Fail,
                    "the device is connected but not logged in (scan the QR code)",
                )
            } else {
                check("device", Outcome::Fail, "the device is not logged in")
            });
        }
        Err(e @ ProviderError::BadCredentials { .. }) => {
            checks.push(check("credentials", Outcome::Fail, describe(&e)));
            checks.push(check(
                "device",
                Outcome::Skipped,
                "skipped: the credentials were refused",
            ));
        }
        Err(e @ ProviderError::LoggedOut { .. }) => {
            checks.push(check(
                "credentials",
                Outcome::Pass,
                "the server accepted the credentials",
            ));
            checks.push(check("device", Outcome::Fail, describe(&e)));
        }
        Err(e) => {
            checks.push(check(
                "credentials",
                Outcome::Skipped,
                format!("skipped: the status call failed ({})", describe(&e)),
            ));
            checks.push(check("device", Outcome::Fail, describe(&e)));
        }
    }

    let mut c = if latency <= LATENCY_BUDGET_MS as f64 {
        check(
            "latency",
            Outcome::Pass,
            format!("/health answered in {latency} ms (budget {LATENCY_BUDGET_MS} ms)"),
        )
    } else {
        check(
            "latency",
            Outcome::Fail,
            format!("/health took {latency} ms, over the {LATENCY_BUDGET_MS} ms budget"),
        )
    };
    c.latency_ms = Some(latency);
    checks.push(c);
    finish(role, endpoint, checks)
}

fn finish(role: &str, endpoint: &Endpoint<Secret>, checks: Vec<Check>) -> EndpointResult {
    EndpointResult {
        role: role.into(),
        base_url: endpoint.base_url.clone(),
        device_id: endpoint.device_id.clone(),
        ok: checks.iter().all(|c| c.outcome == Outcome::Pass),
        checks,
        webhook: None,
    }
}

/// The answer of the test route.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    pub tenant_id: String,
    /// Every endpoint passed every check.
    pub ok: bool,
    pub results: Vec<EndpointResult>,
}
