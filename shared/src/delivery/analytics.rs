//! Analytics per endpoint and per tenant, computed from the delivery records the sender and
//! the ingress already write (no write of its own): how many messages each endpoint took
//! (sent), refused for good (failed) or maybe took (unknown), how many of the sent ones were
//! delivered and read, and how long the server took to accept them (the send latency the
//! sender writes with the sent outcome), over the last hour, day and week.
//!
//! Definitions (the API and the dashboard say the same):
//! - a record belongs to a window when its `createdAt` (the first time the sender locked
//!   it) is at or after the window's start;
//! - `sent` counts records the server accepted: states `sent`, `delivered`, `read`;
//!   `delivered` counts `delivered` and `read` (a read message was delivered); `read` counts
//!   `read`; `failed` (refused, or accepted and then reported failed by a receipt) and
//!   `unknown` their states; `pending` is `in_progress` and `retrying`;
//! - `deliveryRate` = delivered / sent, `readRate` = read / sent, `null` when nothing was sent;
//! - latency percentiles are nearest-rank over the sent records that carry a latency: the
//!   p-th percentile of n sorted values is the value at rank ⌈p·n/100⌉.
//!
//! A record is the endpoint's that took it (or refused it); a record refused before any
//! server saw it (malformed, unknown tenant, no client) has no endpoint and counts only in
//! the tenant's totals.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{DeliveryRecord, DeliveryState};
use crate::tenant::{EndpointRole, ProviderKind};

/// The windows analytics reports, shortest first: name and length in seconds.
pub const WINDOWS: [(&str, i64); 3] = [("1h", 3_600), ("24h", 86_400), ("7d", 604_800)];

/// The longest window, in seconds: how far back a read goes.
pub const LONGEST_WINDOW_SECONDS: i64 = 604_800;

/// Send latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    /// How many sent records carried a latency.
    pub samples: u64,
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub p99: Option<u64>,
}

/// Counts and rates of one endpoint (or the tenant) over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub sent: u64,
    pub delivered: u64,
    pub read: u64,
    pub failed: u64,
    pub unknown: u64,
    pub pending: u64,
    pub delivery_rate: Option<f64>,
    pub read_rate: Option<f64>,
    pub latency_ms: Latency,
}

/// One endpoint's stats over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStats {
    /// The server's base URL as the records name it.
    pub endpoint: String,
    /// The role it had when it took the newest message of the window.
    pub role: Option<EndpointRole>,
    /// The endpoint's kind as the tenant's config names it now (filled by the caller that
    /// read the config; `None` for an endpoint the tenant no longer has).
    pub kind: Option<ProviderKind>,
    #[serde(flatten)]
    pub stats: Stats,
}

/// One window: the tenant's totals and each endpoint's.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowStats {
    /// `1h`, `24h`, `7d`.
    pub window: &'static str,
    /// RFC 3339: the window's start.
    pub from: String,
    pub tenant: Stats,
    /// By endpoint, in the order of their first record (newest first).
    pub endpoints: Vec<EndpointStats>,
}

/// One hour of the last day for a chart: what was created in it, by outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HourBucket {
    /// RFC 3339: the hour's start.
    pub from: String,
    pub sent: u64,
    pub failed: u64,
    pub unknown: u64,
}

#[derive(Default)]
struct Acc {
    stats: Stats,
    latencies: Vec<u64>,
}

impl Acc {
    fn add(&mut self, r: &DeliveryRecord) {
        let s = &mut self.stats;
        match r.state {
            DeliveryState::Sent | DeliveryState::Delivered | DeliveryState::Read => {
                s.sent += 1;
                if matches!(r.state, DeliveryState::Delivered | DeliveryState::Read) {
                    s.delivered += 1;
                }
                if r.state == DeliveryState::Read {
                    s.read += 1;
                }
                if let Some(ms) = r.send_latency_ms {
                    self.latencies.push(ms);
                }
            }
            DeliveryState::Failed => s.failed += 1,
            DeliveryState::Unknown => s.unknown += 1,
            DeliveryState::InProgress | DeliveryState::Retrying => s.pending += 1,
        }
    }

    fn finish(mut self) -> Stats {
        let mut s = self.stats;
        if s.sent > 0 {
            s.delivery_rate = Some(s.delivered as f64 / s.sent as f64);
            s.read_rate = Some(s.read as f64 / s.sent as f64);
        }
        self.latencies.sort_unstable();
        s.latency_ms = Latency {
            samples: self.latencies.len() as u64,
            p50: percentile(&self.latencies, 50),
            p90: percentile(&self.latencies, 90),
            p99: percentile(&self.latencies, 99),
        };
        s
    }
}

/// Nearest-rank percentile of sorted values: the value at rank ⌈p·n/100⌉ (1-based).
pub fn percentile(sorted: &[u64], p: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (u64::from(p) * n).div_ceil(100).clamp(1, n);
    sorted.get((rank - 1) as usize).copied()
}

/// When a record was created, if its `createdAt` reads.
fn created(r: &DeliveryRecord) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(r.created_at.as_deref()?, &Rfc3339).ok()
}

/// The stats of every window from `records` (any order; those older than the longest
/// window, or without a readable `createdAt`, are left out).
pub fn windows(records: &[DeliveryRecord], now: OffsetDateTime) -> Vec<WindowStats> {
    let dated: Vec<(OffsetDateTime, &DeliveryRecord)> = records
        .iter()
        .filter_map(|r| created(r).map(|t| (t, r)))
        .collect();
    WINDOWS
        .iter()
        .map(|(name, secs)| {
            let from = now - time::Duration::seconds(*secs);
            let mut tenant = Acc::default();
            let mut by_endpoint: Vec<(String, Option<EndpointRole>, Acc)> = Vec::new();
            for (_, r) in dated.iter().filter(|(at, _)| *at >= from) {
                tenant.add(r);
                let Some(endpoint) = r.endpoint.as_deref() else {
                    continue;
                };
                let slot = match by_endpoint.iter().position(|(e, _, _)| e == endpoint) {
                    Some(i) => i,
                    None => {
                        by_endpoint.push((endpoint.to_string(), r.endpoint_role, Acc::default()));
                        by_endpoint.len() - 1
                    }
                };
                by_endpoint[slot].2.add(r);
            }
            WindowStats {
                window: name,
                from: crate::timestamp::rfc3339(from),
                tenant: tenant.finish(),
                endpoints: by_endpoint
                    .into_iter()
                    .map(|(endpoint, role, acc)| EndpointStats {
                        endpoint,
                        role,
                        kind: None,
                        stats: acc.finish(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The last 24 hours in 24 buckets, oldest first (the dashboard's chart).
pub fn hourly(records: &[DeliveryRecord], now: OffsetDateTime) -> Vec<HourBucket> {
    let start = now - time::Duration::hours(24);
    let mut buckets: Vec<HourBucket> = (0..24)
        .map(|h| HourBucket {
            from: crate::timestamp::rfc3339(start + time::Duration::hours(h)),
            sent: 0,
            failed: 0,
            unknown: 0,
        })
        .collect();
    for r in records {
        let Some(at) = created(r) else { continue };
        if at < start || at > now {
            continue;
        }
        let i = (((at - start).whole_seconds()) / 3_600).clamp(0, 23) as usize;
        match r.state {
            DeliveryState::Sent | DeliveryState::Delivered | DeliveryState::Read => {
                buckets[i].sent += 1
            }
            DeliveryState::Failed => buckets[i].failed += 1,
            DeliveryState::Unknown => buckets[i].unknown += 1,
            DeliveryState::InProgress | DeliveryState::Retrying => {}
        }
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        state: &str,
        created: OffsetDateTime,
        endpoint: Option<&str>,
        ms: Option<u64>,
    ) -> DeliveryRecord {
        serde_json::from_value(serde_json::json!({
            "pk": "t#k", "state": state, "expiresAt": i64::MAX,
            "createdAt": crate::timestamp::rfc3339(created),
            "endpoint": endpoint, "sendLatencyMs": ms,
        }))
        .unwrap()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=10).map(|i| i * 10).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 90), Some(90));
        assert_eq!(percentile(&v, 99), Some(100));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn a_record_counts_in_each_window_it_falls_in_and_rates_divide_by_sent() {
        let now = OffsetDateTime::now_utc();
        let recs = vec![
            rec(
                "read",
                now - time::Duration::minutes(5),
                Some("http://a"),
                Some(100),
            ),
            rec(
                "delivered",
                now - time::Duration::hours(2),
                Some("http://a"),
                Some(300),
            ),
            rec(
                "failed",
                now - time::Duration::days(2),
                Some("http://b"),
                None,
            ),
            rec(
                "sent",
                now - time::Duration::days(8),
                Some("http://a"),
                Some(1),
            ),
        ];
        let w = windows(&recs, now);
        assert_eq!(w[0].tenant.sent, 1);
        assert_eq!(w[0].tenant.read_rate, Some(1.0));
        assert_eq!(w[1].tenant.sent, 2);
        assert_eq!(w[1].tenant.delivery_rate, Some(1.0));
        assert_eq!(w[1].tenant.read_rate, Some(0.5));
        assert_eq!(w[1].tenant.latency_ms.p50, Some(100));
        assert_eq!(w[1].tenant.latency_ms.p99, Some(300));
        assert_eq!(w[2].tenant.failed, 1);
        assert_eq!(w[2].endpoints.len(), 2);
        assert_eq!(w[2].endpoints[1].stats.failed, 1);
        assert_eq!(w[2].endpoints[1].stats.delivery_rate, None);
    }
}
