//! "Last event seen" (issue 15, "connected but silent"): the one DynamoDB write the warm path
//! may make. After a webhook is accepted, the tenant's `lastEventAt` is written at most once
//! per tenant per [`EVENT_SEEN_WRITE_INTERVAL`] per instance (a per-process throttle), so
//! a busy tenant costs one `UpdateItem` a minute, not one per webhook. The health check
//! reads it to tell a connected-but-silent device from one that delivers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;
use wagate::TenantId;
use wagate::tenant::store::EventSeenWriter;

pub use wagate::health::silence::EVENT_SEEN_WRITE_INTERVAL;

/// Tenants remembered before the throttle drops those it wrote more than an interval ago.
const REMEMBERED: usize = 10_000;

/// The throttled writer of `lastEventAt`.
pub struct EventSeen {
    writer: Arc<dyn EventSeenWriter>,
    interval: Duration,
    last: Mutex<HashMap<TenantId, Instant>>,
}

impl EventSeen {
    /// At most one write per tenant per `interval` ([`EVENT_SEEN_WRITE_INTERVAL`] deployed).
    pub fn new(writer: Arc<dyn EventSeenWriter>, interval: Duration) -> Self {
        Self {
            writer,
            interval,
            last: Mutex::default(),
        }
    }

    /// Whether this instance should write the tenant's note now (and, if so, counts it as
    /// written: a failed write is not retried before the interval ends either, so an
    /// unavailable table cannot turn every webhook into a DynamoDB call).
    fn due(&self, tenant: &TenantId) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last
            .get(tenant)
            .is_some_and(|t| now.duration_since(*t) < self.interval)
        {
            return false;
        }
        if last.len() >= REMEMBERED {
            let interval = self.interval;
            last.retain(|_, t| now.duration_since(*t) < interval);
        }
        last.insert(tenant.clone(), now);
        true
    }

    /// Notes an accepted webhook of `tenant` at `at`: one `UpdateItem` when due, else
    /// nothing. A failure is a WARN; the webhook stays accepted.
    pub async fn note(&self, tenant: &TenantId, at: OffsetDateTime) {
        if !self.due(tenant) {
            return;
        }
        if let Err(e) = self.writer.note_event_seen(tenant, at).await {
            tracing::warn!(error = %e, "noting the tenant's last event failed");
        }
    }

    /// Issue 16: records that Meta's verification handshake passed (`verifiedAt`), at once
    /// (no throttle: only a caller with the tenant's verify token gets here, and Meta makes
    /// one handshake when the callback is saved). A failure is a WARN; the challenge is
    /// still answered (Meta's console then shows the callback verified, and the next
    /// handshake records it).
    pub async fn note_verified(&self, tenant: &TenantId, at: OffsetDateTime) {
        match self.writer.note_callback_verified(tenant, at).await {
            Ok(()) => tracing::info!("callback verification recorded"),
            Err(e) => tracing::warn!(error = %e, "recording the callback verification failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use wagate::tenant::store::StoreError;

    use super::*;

    #[derive(Default)]
    struct Counting(AtomicUsize);

    #[async_trait]
    impl EventSeenWriter for Counting {
        async fn note_event_seen(&self, _: &TenantId, _: OffsetDateTime) -> Result<(), StoreError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        async fn note_callback_verified(
            &self,
            _: &TenantId,
            _: OffsetDateTime,
        ) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// On tokio's paused clock: how long the calls take does not matter, only the interval.
    #[tokio::test(start_paused = true)]
    async fn the_last_event_is_written_again_once_the_interval_has_passed() {
        let writer = Arc::new(Counting::default());
        let seen = EventSeen::new(writer.clone(), Duration::from_secs(60));
        let (acme, globex): (TenantId, TenantId) =
            ("acme".parse().unwrap(), "globex".parse().unwrap());
        let now = OffsetDateTime::now_utc();
        seen.note(&acme, now).await;
        seen.note(&acme, now).await;
        assert_eq!(
            writer.0.load(Ordering::SeqCst),
            1,
            "once within the interval"
        );
        tokio::time::advance(Duration::from_secs(59)).await;
        seen.note(&acme, now).await;
        assert_eq!(writer.0.load(Ordering::SeqCst), 1);
        seen.note(&globex, now).await;
        assert_eq!(
            writer.0.load(Ordering::SeqCst),
            2,
            "another tenant has its own"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        seen.note(&acme, now).await;
        assert_eq!(
            writer.0.load(Ordering::SeqCst),
            3,
            "again once the interval passed"
        );
    }
}
