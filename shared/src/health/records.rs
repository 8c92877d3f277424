//! What the health check records: the health record of each WhatsApp server (the endpoints
//! table) and one history point per server and run (the health-history table). Pure: the
//! DynamoDB side is [`super::dynamo`].

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::provider::DeviceStatus;
use crate::timestamp::{self, Precision};

/// A duration in milliseconds with microsecond precision (`0.412` is 412 µs): how latencies
/// are recorded and shown everywhere (endpoint records, history points, the status API, the
/// dashboard), so a loopback answer in under a millisecond is not recorded as 0.
pub fn latency_ms(d: std::time::Duration) -> f64 {
    // Whole microseconds over 1000: the nearest f64, printed back as at most 3 decimals.
    d.as_micros() as f64 / 1000.0
}

/// What probing one server found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// `/health` answered 2xx within the probe timeout.
    pub up: bool,
    /// Time `/health` took, in milliseconds with microsecond precision ([`latency_ms`]; to
    /// the timeout when it timed out).
    pub latency_ms: f64,
    /// Why the server counts as down, or why the device list is missing.
    pub error: Option<String>,
    /// Every device on the server (`GET /devices`), when the server is up and listed them.
    pub devices: Option<Vec<DeviceStatus>>,
    /// When the server is down, a short class of the failure for the health history:
    /// `timeout`, `connect`, `connection`, `http <status>`, ... Never a URL, a message from
    /// the server or a secret. `None` when the server is up.
    pub error_class: Option<String>,
}

impl ProbeResult {
    /// `/health` answered (2xx or an HTTP error), so its latency means something.
    pub fn answered(&self) -> bool {
        self.up
            || self
                .error_class
                .as_deref()
                .is_some_and(|c| c.starts_with("http "))
    }
}

/// The health record of one WhatsApp server (one item of the endpoints table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHealth {
    /// The normalised base URL (`Endpoint::endpoint_key`).
    pub endpoint_key: String,
    pub provider: String,
    pub up: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub last_probe_at: OffsetDateTime,
    /// `/health`'s time in milliseconds, microsecond precision (an older record's whole
    /// milliseconds read the same way).
    pub latency_ms: f64,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_error_at: Option<OffsetDateTime>,
    /// Tenants with this server as primary or backup.
    pub tenants: u32,
    /// Tenants whose active endpoint is on this server.
    pub active_tenants: u32,
    /// Devices the server listed (absent when it could not list them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices_total: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices_connected: Option<u32>,
    /// TTL (epoch seconds): a server no tenant uses any more disappears.
    pub expires_at: i64,
}

/// Counts for an endpoint record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointUse {
    pub tenants: u32,
    pub active_tenants: u32,
}

impl EndpointHealth {
    /// The record after `probe`, carrying the streaks of `prev`.
    pub fn next(
        prev: Option<&EndpointHealth>,
        endpoint_key: &str,
        provider: &str,
        probe: &ProbeResult,
        usage: EndpointUse,
        now: OffsetDateTime,
        ttl: std::time::Duration,
    ) -> EndpointHealth {
        let (fails, oks) = prev
            .map(|p| (p.consecutive_failures, p.consecutive_successes))
            .unwrap_or((0, 0));
        let (consecutive_failures, consecutive_successes) = if probe.up {
            (0, oks.saturating_add(1))
        } else {
            (fails.saturating_add(1), 0)
        };
        let (last_error, last_error_at) = match &probe.error {
            Some(e) => (Some(e.clone()), Some(now)),
            None => (
                prev.and_then(|p| p.last_error.clone()),
                prev.and_then(|p| p.last_error_at),
            ),
        };
        let devices = probe.devices.as_ref();
        EndpointHealth {
            endpoint_key: endpoint_key.to_string(),
            provider: provider.to_string(),
            up: probe.up,
            last_probe_at: now,
            latency_ms: probe.latency_ms,
            consecutive_failures,
            consecutive_successes,
            last_error,
            last_error_at,
            tenants: usage.tenants,
            active_tenants: usage.active_tenants,
            devices_total: devices.map(|d| d.len() as u32),
            devices_connected: devices.map(|d| d.iter().filter(|x| x.logged_in).count() as u32),
            expires_at: now.unix_timestamp() + ttl.as_secs() as i64,
        }
    }
}

/// How long the health history keeps a point (its `expiresAt` TTL): 24 hours.
pub const HISTORY_RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// One point of a server's health history (the health-history table, keyed by
/// `endpointKey` and `at`): what one run found about one probed server. Never holds a secret,
/// a URL with credentials or a message from the server (`error` is a short class).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthPoint {
    /// The normalised base URL (`Endpoint::endpoint_key`), as in the endpoints table.
    pub endpoint_key: String,
    /// The run's probe time, RFC 3339 UTC with milliseconds, fixed width
    /// ([`timestamp::fixed`]: the strings sort as the times do).
    pub at: String,
    pub up: bool,
    /// Time `/health` took, in milliseconds with microsecond precision; absent when it did
    /// not answer (timeout, connection failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Tenants with this server as primary or backup.
    pub tenants: u32,
    /// Devices the server listed; absent when it could not list them (down, or the device
    /// list failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<u32>,
    /// Logged-in devices; absent when `devices` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices_connected: Option<u32>,
    /// Why the server is down (`timeout`, `connect`, `http 503`...); absent when up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// TTL (epoch seconds): `at` + [`HISTORY_RETENTION`].
    pub expires_at: i64,
}

impl HealthPoint {
    /// The point for `probe` of the server `endpoint_key` in the run probing at `at`.
    pub fn new(
        endpoint_key: &str,
        probe: &ProbeResult,
        usage: EndpointUse,
        at: OffsetDateTime,
    ) -> HealthPoint {
        let devices = probe.devices.as_ref().filter(|_| probe.up);
        HealthPoint {
            endpoint_key: endpoint_key.to_string(),
            at: timestamp::fixed(at, Precision::Millis),
            up: probe.up,
            latency_ms: probe.answered().then_some(probe.latency_ms),
            tenants: usage.tenants,
            devices: devices.map(|d| d.len() as u32),
            devices_connected: devices.map(|d| d.iter().filter(|x| x.logged_in).count() as u32),
            error: if probe.up {
                None
            } else {
                Some(
                    probe
                        .error_class
                        .clone()
                        .unwrap_or_else(|| "unhealthy".into()),
                )
            },
            expires_at: at.unix_timestamp() + HISTORY_RETENTION.as_secs() as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_recorded_in_milliseconds_to_the_microsecond() {
        use std::time::Duration;
        assert_eq!(latency_ms(Duration::from_micros(412)), 0.412);
        assert_eq!(latency_ms(Duration::from_nanos(412_999)), 0.412);
        assert_eq!(latency_ms(Duration::from_micros(1)), 0.001);
        assert_eq!(latency_ms(Duration::from_millis(1500)), 1500.0);
        assert_eq!(latency_ms(Duration::ZERO), 0.0);
        // As JSON (the API, the history) it prints as written.
        assert_eq!(
            serde_json::to_string(&latency_ms(Duration::from_micros(412))).unwrap(),
            "0.412"
        );
        assert_eq!(
            serde_json::to_string(&latency_ms(Duration::from_micros(12_345))).unwrap(),
            "12.345"
        );
    }

    #[test]
    fn endpoint_record_carries_streaks_and_last_error() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let ttl = std::time::Duration::from_secs(60);
        let down = ProbeResult {
            up: false,
            latency_ms: 500.0,
            error: Some("timed out".into()),
            devices: None,
            error_class: Some("timeout".into()),
        };
        let up = ProbeResult {
            up: true,
            latency_ms: 4.0,
            error: None,
            devices: Some(vec![]),
            error_class: None,
        };
        let u = EndpointUse {
            tenants: 2,
            active_tenants: 1,
        };
        let a = EndpointHealth::next(None, "http://x", "gowa", &down, u, t0, ttl);
        let b = EndpointHealth::next(Some(&a), "http://x", "gowa", &down, u, t0, ttl);
        assert_eq!((b.consecutive_failures, b.consecutive_successes), (2, 0));
        let c = EndpointHealth::next(Some(&b), "http://x", "gowa", &up, u, t0, ttl);
        assert_eq!((c.consecutive_failures, c.consecutive_successes), (0, 1));
        assert_eq!(c.last_error.as_deref(), Some("timed out"), "kept");
        assert_eq!(c.devices_connected, Some(0));
        assert_eq!(c.expires_at, 60);
    }

    #[test]
    fn history_point_of_an_up_and_a_down_server() {
        use time::macros::datetime;
        let at = datetime!(2026-11-28 19:30:00.123456 UTC);
        let dev = |logged_in| DeviceStatus {
            device_id: "d".into(),
            connected: true,
            logged_in,
            jid: None,
        };
        let u = EndpointUse {
            tenants: 3,
            active_tenants: 2,
        };
        let up = ProbeResult {
            up: true,
            latency_ms: 0.104,
            error: None,
            devices: Some(vec![dev(true), dev(false)]),
            error_class: None,
        };
        let p = HealthPoint::new("https://wa.example.com", &up, u, at);
        assert_eq!(
            p,
            HealthPoint {
                endpoint_key: "https://wa.example.com".into(),
                at: "2026-11-28T19:30:00.123Z".into(),
                up: true,
                latency_ms: Some(0.104),
                tenants: 3,
                devices: Some(2),
                devices_connected: Some(1),
                error: None,
                expires_at: at.unix_timestamp() + 86_400,
            }
        );
        let timeout = ProbeResult {
            up: false,
            latency_ms: 2000.0,
            error: Some("/health timed out after 2000 ms".into()),
            devices: None,
            error_class: Some("timeout".into()),
        };
        let p = HealthPoint::new("https://wa.example.com", &timeout, u, at);
        assert_eq!((p.latency_ms, p.devices), (None, None));
        assert_eq!(p.error.as_deref(), Some("timeout"));
        let http = ProbeResult {
            latency_ms: 7.0,
            error_class: Some("http 503".into()),
            ..timeout
        };
        let p = HealthPoint::new("https://wa.example.com", &http, u, at);
        assert_eq!(p.latency_ms, Some(7.0), "an HTTP error is an answer");
        assert_eq!(p.error.as_deref(), Some("http 503"));
    }
}
