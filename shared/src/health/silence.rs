//! "Connected but silent" (issue 15, item 5): a device that says it is connected while the
//! server takes the tenant's sends and nothing comes back: no receipt, no inbound event.
//! WAHA and Evolution users report exactly this (../shared/contracts/providers.md): the
//! session looks fine and delivers nothing.
//!
//! What is known, and who records it:
//!
//! - the ingress notes when it last accepted a webhook of the tenant (`lastEventAt` on the
//!   tenant's item, at most one write per tenant per minute per instance, so the value may
//!   lag by up to [`EVENT_SEEN_WRITE_INTERVAL`]);
//! - the sender's delivery records say which sends a server accepted (`sentAt`) and which got
//!   a receipt (`deliveredAt`, `readAt`);
//! - the health check knows whether the active endpoint's device reports connected.
//!
//! The health check decides ([`assess`]) and records the flag (`silent` on the tenant's item);
//! the status API, the dashboard, a metric and an alarm show it. Pure: no I/O here.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::delivery::{DeliveryRecord, DeliveryState};

/// At most one "last event seen" write per tenant per this long per ingress instance.
pub const EVENT_SEEN_WRITE_INTERVAL: Duration = Duration::from_secs(60);

/// A send younger than this is not yet evidence of silence: a receipt normally comes within
/// seconds, but the ingress's note of it may lag by [`EVENT_SEEN_WRITE_INTERVAL`].
pub const RECEIPT_GRACE: Duration = Duration::from_secs(120);

/// Default window (`HEALTH_SILENT_WINDOW_MINUTES`).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 60);
/// Bounds of the window, in minutes: shorter than 5 would flag a tenant whose receipts are
/// merely slow; longer than a day is no longer "now".
pub const MIN_WINDOW_MINUTES: u64 = 5;
pub const MAX_WINDOW_MINUTES: u64 = 1440;

/// The flag as stored on the tenant's item (attribute `silent`) and shown by the status API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilentFlag {
    /// When the health check first found the tenant silent (kept while it stays so).
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Sends the server accepted in the window, at the last check.
    pub sends_accepted: u32,
    /// The window the check used, in minutes.
    pub window_minutes: u64,
    /// The last event the ingress accepted for the tenant, if it ever noted one.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_event_at: Option<OffsetDateTime>,
}

/// What the tenant's item holds about its traffic (the ingress's note and the health
/// check's flag) and the health check's backup-readiness verdict.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantActivity {
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_event_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent: Option<SilentFlag>,
    /// The health check's verdict on the standby endpoint (backup readiness, for the fleet
    /// view: [`super::standby`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby: Option<super::standby::StandbyNote>,
    /// Issue 16: when Meta's verification handshake last passed on the tenant's callback
    /// URL (the ingress's `verifiedAt`); absent if it never did.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub verified_at: Option<OffsetDateTime>,
}

/// What the delivery records of the window say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowTraffic {
    /// Sends the server accepted in the window and at least [`RECEIPT_GRACE`] ago.
    pub sends_accepted: u32,
    /// Receipts (delivered or read) that arrived in the window.
    pub receipts: u32,
}

/// The oldest time the window covers.
pub fn window_start(now: OffsetDateTime, window: Duration) -> OffsetDateTime {
    now - window
}

/// Whether an event the ingress noted at `last_event_at` already shows the tenant is not
/// silent (then no delivery record need be read).
pub fn event_in_window(
    last_event_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    window: Duration,
) -> bool {
    last_event_at.is_some_and(|t| t >= window_start(now, window))
}

fn parse(t: Option<&str>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t?, &time::format_description::well_known::Rfc3339).ok()
}

/// Counts, over `records` (any order, any tenant's own records), the accepted sends and the
/// receipts of the window ending at `now`.
pub fn traffic(records: &[DeliveryRecord], now: OffsetDateTime, window: Duration) -> WindowTraffic {
    let start = window_start(now, window);
    let settled = now - RECEIPT_GRACE;
    let mut t = WindowTraffic::default();
    for r in records {
        let sent = parse(r.sent_at.as_deref());
        let accepted = matches!(
            r.state,
            DeliveryState::Sent | DeliveryState::Delivered | DeliveryState::Read
        );
        if accepted && sent.is_some_and(|s| s >= start && s <= settled) {
            t.sends_accepted += 1;
        }
        // A failed receipt (`failedAt`, written only by a receipt) is the server talking too.
        let receipt = [
            r.delivered_at.as_deref(),
            r.read_at.as_deref(),
            r.failed_at.as_deref(),
        ]
        .into_iter()
        .filter_map(parse)
        .any(|at| at >= start);
        if receipt {
            t.receipts += 1;
        }
    }
    t
}

/// The verdict: `Some(flag)` when the tenant is silent (device connected, sends accepted in
/// the window, no receipt and no inbound event in it). `previous` keeps its `since`.
pub fn assess(
    device_connected: bool,
    last_event_at: Option<OffsetDateTime>,
    traffic: WindowTraffic,
    previous: Option<&SilentFlag>,
    now: OffsetDateTime,
    window: Duration,
) -> Option<SilentFlag> {
    if !device_connected
        || event_in_window(last_event_at, now, window)
        || traffic.receipts > 0
        || traffic.sends_accepted == 0
    {
        return None;
    }
    Some(SilentFlag {
        since: previous.map_or(now, |p| p.since),
        sends_accepted: traffic.sends_accepted,
        window_minutes: window.as_secs() / 60,
        last_event_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
    const W: Duration = DEFAULT_WINDOW;

    fn record(
        state: DeliveryState,
        sent_min_ago: i64,
        receipt_min_ago: Option<i64>,
    ) -> DeliveryRecord {
        let at = |m: i64| Some(crate::timestamp::rfc3339(NOW - time::Duration::minutes(m)));
        DeliveryRecord {
            pk: "t#k".into(),
            tenant_id: Some("t".into()),
            idempotency_key: Some("k".into()),
            state,
            attempts: 1,
            lock_owner: None,
            lock_expires_at: None,
            provider_message_id: Some("p".into()),
            recipient: None,
            content_type: None,
            endpoint: None,
            endpoint_role: None,
            error_class: None,
            reason: None,
            sqs_message_id: None,
            created_at: at(sent_min_ago),
            updated_at: at(sent_min_ago),
            sent_at: at(sent_min_ago),
            delivered_at: receipt_min_ago.and_then(at),
            read_at: None,
            failed_at: None,
            send_latency_ms: None,
            expires_at: i64::MAX,
        }
    }

    fn traffic_of(records: &[DeliveryRecord]) -> WindowTraffic {
        traffic(records, NOW, W)
    }

    #[test]
    fn connected_with_accepted_sends_and_nothing_back_is_silent() {
        let t = traffic_of(&[record(DeliveryState::Sent, 10, None)]);
        assert_eq!(
            t,
            WindowTraffic {
                sends_accepted: 1,
                receipts: 0
            }
        );
        let flag = assess(true, None, t, None, NOW, W).unwrap();
        assert_eq!(flag.since, NOW);
        assert_eq!((flag.sends_accepted, flag.window_minutes), (1, 30));
    }

    #[test]
    fn a_receipt_or_an_event_in_the_window_is_not_silent() {
        let t = traffic_of(&[
            record(DeliveryState::Sent, 10, None),
            record(DeliveryState::Delivered, 12, Some(11)),
        ]);
        assert_eq!(t.receipts, 1);
        assert!(assess(true, None, t, None, NOW, W).is_none());
        let quiet = traffic_of(&[record(DeliveryState::Sent, 10, None)]);
        let recent = Some(NOW - time::Duration::minutes(29));
        assert!(assess(true, recent, quiet, None, NOW, W).is_none());
        // An event older than the window does not count.
        let old = Some(NOW - time::Duration::minutes(31));
        assert!(assess(true, old, quiet, None, NOW, W).is_some());
    }

    #[test]
    fn a_failed_receipt_in_the_window_is_the_server_talking() {
        let mut failed = record(DeliveryState::Failed, 12, None);
        failed.failed_at = Some(crate::timestamp::rfc3339(NOW - time::Duration::minutes(11)));
        let t = traffic_of(&[record(DeliveryState::Sent, 10, None), failed]);
        assert_eq!(t.receipts, 1);
        assert!(assess(true, None, t, None, NOW, W).is_none());
    }

    #[test]
    fn no_accepted_send_or_a_disconnected_device_is_not_silent() {
        assert!(assess(true, None, WindowTraffic::default(), None, NOW, W).is_none());
        let t = traffic_of(&[record(DeliveryState::Sent, 10, None)]);
        assert!(assess(false, None, t, None, NOW, W).is_none());
        // Failed, unknown and too-young sends, and sends before the window, are not accepted
        // sends of the window.
        let t = traffic_of(&[
            record(DeliveryState::Failed, 10, None),
            record(DeliveryState::Unknown, 10, None),
            record(DeliveryState::Sent, 1, None),
            record(DeliveryState::Sent, 45, None),
        ]);
        assert_eq!(t, WindowTraffic::default());
    }

    #[test]
    fn a_tenant_that_stays_silent_keeps_its_since() {
        let t = traffic_of(&[record(DeliveryState::Sent, 10, None)]);
        let first = assess(true, None, t, None, NOW - time::Duration::minutes(5), W).unwrap();
        let again = assess(true, None, t, Some(&first), NOW, W).unwrap();
        assert_eq!(again.since, first.since);
    }
}
