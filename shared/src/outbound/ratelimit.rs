//! Per-tenant outbound rate limit, shared by every sender instance: a fixed one-minute
//! window counter, stored beside the delivery records (`crate::delivery::dynamo`).
//!
//! One item per tenant and calendar minute (`pk = tenantId#windowStartEpochSecs`, attribute
//! `sent`, TTL `expiresAt` two minutes after the window). Taking a slot is
//! `ADD sent 1` under the condition `attribute_not_exists(sent) OR sent < :limit`, so
//! concurrent invocations can never take more than `limit` slots of one window between them.
//! The sender takes the slot in the same `TransactWriteItems` request as the message's
//! idempotency lock ([`crate::delivery::store::DeliveryWriter::begin`]): a slot is spent only when
//! the lock is won, and the pair costs one request (or a share of one: the first records of
//! a batch's tenants take theirs together, [`crate::delivery::store::DeliveryWriter::begin_many`]).
//!
//! The limit counts per calendar minute, so a tenant sends at most `limit` messages in any
//! minute `[hh:mm:00, hh:mm+1:00)`.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::tenant::TenantId;

/// Length of one window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Which window a moment falls in: the calendar minute of the wall clock in every function;
/// a test pins every moment to one minute, so a test that takes longer on a slow machine
/// never straddles two windows (and never waits for a fresh one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowClock {
    /// The wall clock.
    #[default]
    System,
    /// Every moment counts in the window of this one.
    Pinned(OffsetDateTime),
}

impl WindowClock {
    /// The moment whose window `now` (the wall clock) counts in.
    pub fn window_time(&self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            WindowClock::System => now,
            WindowClock::Pinned(at) => *at,
        }
    }
}

/// One tenant's current window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateWindow {
    pub tenant_id: TenantId,
    /// Slots in the window (the tenant's `limits.outboundPerMinute`).
    pub limit: u32,
    /// Start of the window, epoch seconds (a multiple of 60).
    pub start: i64,
}

impl RateWindow {
    /// The window `now` falls in.
    pub fn at(tenant_id: &TenantId, limit: u32, now: OffsetDateTime) -> Self {
        let secs = WINDOW.as_secs() as i64;
        let t = now.unix_timestamp();
        Self {
            tenant_id: tenant_id.clone(),
            limit,
            start: t.div_euclid(secs) * secs,
        }
    }

    /// The item key.
    pub fn key(&self) -> String {
        format!("{}#{}", self.tenant_id, self.start)
    }

    /// When the next window opens.
    pub fn ends_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.start + WINDOW.as_secs() as i64)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// How long from `now` until the next window opens (zero if it already has).
    pub fn wait_from(&self, now: OffsetDateTime) -> Duration {
        let d = self.ends_at() - now;
        if d.is_positive() {
            Duration::try_from(d).unwrap_or_default()
        } else {
            Duration::ZERO
        }
    }
}

/// Reads the tenants' rate windows (operators and tests). The slots themselves are taken by
/// the delivery store, in the same request as a message's lock
/// ([`crate::delivery::store::DeliveryWriter::begin_many`]).
#[async_trait]
pub trait RateWindows: Send + Sync {
    /// Slots taken in `window` (0 when the window has no item).
    async fn slots_taken(&self, window: &RateWindow) -> Result<u32, String>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn windows_are_calendar_minutes() {
        let t: TenantId = "acme".parse().unwrap();
        let w = RateWindow::at(&t, 30, datetime!(2026-03-01 10:15:42.5 UTC));
        assert_eq!(w.start, datetime!(2026-03-01 10:15:00 UTC).unix_timestamp());
        assert_eq!(w.key(), format!("acme#{}", w.start));
        assert_eq!(
            w.wait_from(datetime!(2026-03-01 10:15:42.5 UTC)),
            Duration::from_millis(17_500)
        );
        assert_eq!(
            w.wait_from(datetime!(2026-03-01 10:16:01 UTC)),
            Duration::ZERO
        );
        let next = RateWindow::at(&t, 30, datetime!(2026-03-01 10:16:00 UTC));
        assert_eq!(next.start, w.start + 60);
    }
}
