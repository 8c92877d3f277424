//! [`MemoryDeliveries`]: the messages and rate-limits tables in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{UNAVAILABLE, decode_cursor, encode_cursor};
use crate::delivery::store::{DeliveryReader, DeliveryWriter, ReceiptRecorder};
use crate::delivery::{
    Begin, BeginRequest, DeliveryError, DeliveryRecord, DeliveryState, Lock, ReceiptOutcome,
    ReceiptState, Rejection, bounded, content_type, epoch_ms, record_key,
};
use crate::outbound::ratelimit::{RateWindow, RateWindows};
use crate::provider::ErrorClass;
use crate::tenant::store::Page;
use crate::tenant::{EndpointRole, TenantId};
use crate::timestamp;

#[derive(Debug, Default)]
struct Tables {
    records: HashMap<String, DeliveryRecord>,
    /// Slots taken, by rate-window key.
    windows: HashMap<String, u32>,
}

/// Delivery records and rate windows in memory, with the conditions of the DynamoDB
/// adapter: see the module docs of [`crate::delivery`].
#[derive(Debug)]
pub struct MemoryDeliveries {
    tables: Mutex<Tables>,
    retention: Duration,
    unavailable: AtomicBool,
}

impl Default for MemoryDeliveries {
    fn default() -> Self {
        Self::new(Duration::from_secs(24 * 3600))
    }
}

impl MemoryDeliveries {
    /// `retention`: how long a record is kept after its last write (its `expiresAt`).
    pub fn new(retention: Duration) -> Self {
        Self {
            tables: Mutex::default(),
            retention,
            unavailable: AtomicBool::new(false),
        }
    }

    /// The record under `pk`, expired or not.
    pub fn record(&self, pk: &str) -> Option<DeliveryRecord> {
        self.lock().records.get(pk).cloned()
    }

    /// Every record, expired or not.
    pub fn records(&self) -> Vec<DeliveryRecord> {
        self.lock().records.values().cloned().collect()
    }

    /// Stores a record as it is (a test's seed: another invocation's lock, an old outcome).
    pub fn put_record(&self, record: DeliveryRecord) {
        self.lock().records.insert(record.pk.clone(), record);
    }

    /// While set, every call fails as an unreachable DynamoDB would.
    pub fn set_unavailable(&self, on: bool) {
        self.unavailable.store(on, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self) -> Result<(), DeliveryError> {
        if self.unavailable.load(Ordering::SeqCst) {
            Err(DeliveryError::Backend(UNAVAILABLE.into()))
        } else {
            Ok(())
        }
    }

    fn expires_at(&self, now: OffsetDateTime) -> i64 {
        now.unix_timestamp() + self.retention.as_secs() as i64
    }

    /// The lock's condition: absent, retrying, its lock expired, or past its `expiresAt`.
    fn may_lock(record: Option<&DeliveryRecord>, now: OffsetDateTime) -> bool {
        match record {
            None => true,
            Some(r) => {
                r.state == DeliveryState::Retrying
                    || (r.state == DeliveryState::InProgress
                        && r.lock_expires_at.unwrap_or(0) < epoch_ms(now))
                    || r.is_expired(now)
            }
        }
    }

    fn begin_one(
        &self,
        t: &mut Tables,
        r: &BeginRequest<'_>,
        until_ms: i64,
        now: OffsetDateTime,
        take_slot: bool,
    ) -> Begin {
        let pk = record_key(&r.msg.tenant_id, &r.msg.idempotency_key);
        let old = t.records.get(&pk);
        if !Self::may_lock(old, now) {
            let old = old.expect("a record that may not be locked exists");
            return match old.state {
                DeliveryState::InProgress => Begin::Locked {
                    until_ms: old.lock_expires_at.unwrap_or(0),
                },
                _ => Begin::Settled(Box::new(old.clone())),
            };
        }
        if take_slot {
            let taken = t.windows.get(&r.window.key()).copied().unwrap_or(0);
            if taken >= r.window.limit {
                return Begin::RateLimited;
            }
            t.windows.insert(r.window.key(), taken + 1);
        }
        let now_s = timestamp::rfc3339(now);
        let msg = r.msg;
        let mut rec = t.records.remove(&pk).unwrap_or_else(|| DeliveryRecord {
            pk: pk.clone(),
            tenant_id: None,
            idempotency_key: None,
            state: DeliveryState::InProgress,
            attempts: 0,
            lock_owner: None,
            lock_expires_at: None,
            provider_message_id: None,
            recipient: None,
            content_type: None,
            endpoint: None,
            endpoint_role: None,
            error_class: None,
            reason: None,
            sqs_message_id: None,
            created_at: None,
            updated_at: None,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            failed_at: None,
            send_latency_ms: None,
            expires_at: 0,
        });
        rec.state = DeliveryState::InProgress;
        rec.lock_owner = Some(r.owner.to_string());
        rec.lock_expires_at = Some(until_ms);
        rec.tenant_id = Some(msg.tenant_id.to_string());
        rec.idempotency_key = Some(msg.idempotency_key.clone());
        rec.recipient = Some(msg.to.clone());
        rec.content_type = Some(content_type(&msg.content).to_string());
        rec.sqs_message_id = Some(r.sqs_message_id.to_string());
        rec.updated_at = Some(now_s.clone());
        rec.created_at.get_or_insert(now_s);
        rec.expires_at = self.expires_at(now);
        rec.provider_message_id = None;
        rec.endpoint = None;
        rec.endpoint_role = None;
        rec.attempts += 1;
        t.records.insert(pk.clone(), rec);
        Begin::Acquired(Lock {
            pk,
            owner: r.owner.to_string(),
            until_ms,
        })
    }

    /// An outcome write: only while `lock` is still held.
    fn settle(
        &self,
        lock: &Lock,
        state: DeliveryState,
        now: OffsetDateTime,
        apply: impl FnOnce(&mut DeliveryRecord),
    ) -> Result<bool, DeliveryError> {
        self.check()?;
        let expires_at = self.expires_at(now);
        let mut t = self.lock();
        let Some(rec) = t.records.get_mut(&lock.pk) else {
            return Ok(false);
        };
        if rec.state != DeliveryState::InProgress
            || rec.lock_owner.as_deref() != Some(lock.owner.as_str())
        {
            return Ok(false);
        }
        rec.state = state;
        rec.updated_at = Some(timestamp::rfc3339(now));
        rec.expires_at = expires_at;
        rec.lock_owner = None;
        rec.lock_expires_at = None;
        apply(rec);
        Ok(true)
    }
}

#[async_trait]
impl DeliveryWriter for MemoryDeliveries {
    async fn begin_many(
        &self,
        reqs: &[BeginRequest<'_>],
        lock_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Vec<Result<Begin, DeliveryError>> {
        if let Err(e) = self.check() {
            return reqs
                .iter()
                .map(|_| Err(DeliveryError::Backend(e.to_string())))
                .collect();
        }
        let until_ms = epoch_ms(lock_until);
        let mut t = self.lock();
        reqs.iter()
            .map(|r| Ok(self.begin_one(&mut t, r, until_ms, now, true)))
            .collect()
    }

    async fn lock_only(
        &self,
        req: &BeginRequest<'_>,
        lock_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Begin, DeliveryError> {
        self.check()?;
        let mut t = self.lock();
        Ok(self.begin_one(&mut t, req, epoch_ms(lock_until), now, false))
    }

    async fn take_slots(&self, window: &RateWindow, n: u32) -> Result<bool, DeliveryError> {
        self.check()?;
        let mut t = self.lock();
        let taken = t.windows.get(&window.key()).copied().unwrap_or(0);
        if taken.saturating_add(n) > window.limit {
            return Ok(false);
        }
        t.windows.insert(window.key(), taken + n);
        Ok(true)
    }

    async fn return_slots(&self, window: &RateWindow, n: u32) -> Result<(), DeliveryError> {
        self.check()?;
        let mut t = self.lock();
        if let Some(taken) = t.windows.get_mut(&window.key()) {
            *taken = taken.saturating_sub(n);
        }
        Ok(())
    }

    async fn mark_sent(
        &self,
        lock: &Lock,
        _tenant_id: &TenantId,
        provider_message_id: &str,
        endpoint: &str,
        role: EndpointRole,
        latency_ms: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError> {
        self.settle(lock, DeliveryState::Sent, now, |r| {
            r.provider_message_id = Some(provider_message_id.to_string());
            r.endpoint = Some(endpoint.to_string());
            r.endpoint_role = Some(role);
            r.send_latency_ms = latency_ms;
            r.sent_at = Some(timestamp::rfc3339(now));
            r.error_class = None;
            r.reason = None;
        })
    }

    async fn mark_failed(
        &self,
        lock: &Lock,
        class: &str,
        reason: &str,
        at: Option<(&str, EndpointRole)>,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError> {
        self.settle(lock, DeliveryState::Failed, now, |r| {
            r.error_class = Some(class.to_string());
            r.reason = Some(bounded(reason));
            if let Some((endpoint, role)) = at {
                r.endpoint = Some(endpoint.to_string());
                r.endpoint_role = Some(role);
            }
        })
    }

    async fn mark_unknown(
        &self,
        lock: &Lock,
        reason: &str,
        endpoint: &str,
        role: EndpointRole,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError> {
        self.settle(lock, DeliveryState::Unknown, now, |r| {
            r.error_class = Some(ErrorClass::Ambiguous.as_str().to_string());
            r.reason = Some(bounded(reason));
            r.endpoint = Some(endpoint.to_string());
            r.endpoint_role = Some(role);
        })
    }

    async fn release_for_retry(
        &self,
        lock: &Lock,
        class: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError> {
        self.settle(lock, DeliveryState::Retrying, now, |r| {
            r.error_class = Some(class.to_string());
            r.reason = Some(bounded(reason));
        })
    }

    async fn record_rejected(
        &self,
        rejection: &Rejection<'_>,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError> {
        self.check()?;
        let mut t = self.lock();
        if t.records
            .get(rejection.pk)
            .is_some_and(|r| !r.is_expired(now))
        {
            return Ok(false);
        }
        let now_s = timestamp::rfc3339(now);
        t.records.insert(
            rejection.pk.to_string(),
            DeliveryRecord {
                pk: rejection.pk.to_string(),
                tenant_id: rejection.tenant_id.map(|t| t.to_string()),
                idempotency_key: rejection.idempotency_key.map(str::to_string),
                state: DeliveryState::Failed,
                attempts: 0,
                lock_owner: None,
                lock_expires_at: None,
                provider_message_id: None,
                recipient: None,
                content_type: None,
                endpoint: None,
                endpoint_role: None,
                error_class: Some(rejection.code.to_string()),
                reason: Some(bounded(rejection.reason)),
                sqs_message_id: Some(rejection.sqs_message_id.to_string()),
                created_at: Some(now_s.clone()),
                updated_at: Some(now_s),
                sent_at: None,
                delivered_at: None,
                read_at: None,
                failed_at: None,
                send_latency_ms: None,
                expires_at: self.expires_at(now),
            },
        );
        Ok(true)
    }
}

#[async_trait]
impl DeliveryReader for MemoryDeliveries {
    async fn get_key(
        &self,
        pk: &str,
        now: OffsetDateTime,
    ) -> Result<Option<DeliveryRecord>, DeliveryError> {
        self.check()?;
        Ok(self
            .lock()
            .records
            .get(pk)
            .filter(|r| !r.is_expired(now))
            .cloned())
    }

    async fn recent(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Page<DeliveryRecord>, DeliveryError> {
        self.check()?;
        // The position after a record: its `createdAt` and `pk`; another tenant's is refused.
        let after = match cursor {
            None => None,
            Some(c) => {
                let raw = decode_cursor(c).ok_or(DeliveryError::InvalidCursor)?;
                let (created, pk) = raw.split_once('\n').ok_or(DeliveryError::InvalidCursor)?;
                if !pk.starts_with(&format!("{tenant}#")) {
                    return Err(DeliveryError::InvalidCursor);
                }
                Some((created.to_string(), pk.to_string()))
            }
        };
        let sort_key =
            |r: &DeliveryRecord| (r.created_at.clone().unwrap_or_default(), r.pk.clone());
        let mut mine: Vec<DeliveryRecord> = self
            .lock()
            .records
            .values()
            .filter(|r| r.tenant_id.as_deref() == Some(tenant.as_str()))
            .cloned()
            .collect();
        mine.sort_by_key(|r| std::cmp::Reverse(sort_key(r)));
        let rest: Vec<DeliveryRecord> = mine
            .into_iter()
            .filter(|r| after.as_ref().is_none_or(|a| &sort_key(r) < a))
            .collect();
        let limit = limit.clamp(1, 1000) as usize;
        let next_cursor = (rest.len() > limit).then(|| {
            let (created, pk) = sort_key(&rest[limit - 1]);
            encode_cursor(&format!("{created}\n{pk}"))
        });
        // As the index query does: the page is cut first, expired records are left out after.
        let items = rest
            .into_iter()
            .take(limit)
            .filter(|r| !r.is_expired(now))
            .collect();
        Ok(Page { items, next_cursor })
    }
}

#[async_trait]
impl ReceiptRecorder for MemoryDeliveries {
    async fn apply_receipt(
        &self,
        tenant_id: &TenantId,
        provider_message_id: &str,
        state: &str,
        now: OffsetDateTime,
    ) -> Result<ReceiptOutcome, DeliveryError> {
        let Some(target) = ReceiptState::from_provider(state) else {
            return Ok(ReceiptOutcome::Ignored);
        };
        self.check()?;
        let mut t = self.lock();
        let Some(rec) = t.records.values_mut().find(|r| {
            r.tenant_id.as_deref() == Some(tenant_id.as_str())
                && r.provider_message_id.as_deref() == Some(provider_message_id)
        }) else {
            return Ok(ReceiptOutcome::NotFound);
        };
        if rec.is_expired(now) {
            return Ok(ReceiptOutcome::NotFound);
        }
        let from = rec.state;
        if !target.moves_from().contains(&from) {
            return Ok(ReceiptOutcome::Unchanged { current: from });
        }
        let to = target.target();
        let now_s = timestamp::rfc3339(now);
        rec.state = to;
        match target {
            ReceiptState::Delivered => rec.delivered_at = Some(now_s.clone()),
            ReceiptState::Read => rec.read_at = Some(now_s.clone()),
            ReceiptState::Failed => {
                rec.failed_at = Some(now_s.clone());
                rec.error_class = Some(crate::delivery::FAILED_RECEIPT_CLASS.into());
                rec.reason = Some(crate::delivery::FAILED_RECEIPT_REASON.into());
            }
        }
        rec.updated_at = Some(now_s);
        Ok(ReceiptOutcome::Updated { from, to })
    }
}

#[async_trait]
impl RateWindows for MemoryDeliveries {
    async fn slots_taken(&self, window: &RateWindow) -> Result<u32, String> {
        self.check().map_err(|e| e.to_string())?;
        Ok(self.lock().windows.get(&window.key()).copied().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::OutboundMessage;

    fn msg(tenant: &str, key: &str) -> OutboundMessage {
        OutboundMessage::parse(
            &serde_json::json!({"tenantId": tenant, "idempotencyKey": key,
                "to": "6289685028129", "content": {"type": "text", "body": "x"}})
            .to_string(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn since_reads_the_window_newest_first_and_says_when_it_left_some_unread() {
        use crate::delivery::store::DeliveryReader;
        let store = MemoryDeliveries::default();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let tenant: TenantId = "acme".parse().unwrap();
        // Five records one hour apart (k0 newest), and one of another tenant.
        for (i, key) in ["k0", "k1", "k2", "k3", "k4"].iter().enumerate() {
            let at = now - Duration::from_secs(3_600 * i as u64);
            let m = msg("acme", key);
            let w = RateWindow::at(&m.tenant_id, 100, at);
            let until = at + Duration::from_secs(30);
            store.begin(&m, "s", "o", until, &w, at).await.unwrap();
        }
        let o = msg("other", "x");
        let w = RateWindow::at(&o.tenant_id, 100, now);
        let until = now + Duration::from_secs(30);
        store.begin(&o, "s", "o", until, &w, now).await.unwrap();
        let keys = |rs: &[DeliveryRecord]| {
            rs.iter()
                .map(|r| r.idempotency_key.clone().unwrap())
                .collect::<Vec<_>>()
        };

        // The last 2.5 hours: k0..k2, nothing left unread.
        let from = now - Duration::from_secs(9_000);
        let (rs, more) = store.since(&tenant, from, 100, now).await.unwrap();
        assert_eq!(
            (keys(&rs), more),
            (vec!["k0".into(), "k1".into(), "k2".into()], false)
        );
        // Exactly as many as the bound: not truncated.
        let (rs, more) = store.since(&tenant, from, 3, now).await.unwrap();
        assert_eq!((rs.len(), more), (3, false));
        // Fewer than the window holds: the newest, truncated.
        let (rs, more) = store.since(&tenant, from, 2, now).await.unwrap();
        assert_eq!((keys(&rs), more), (vec!["k0".into(), "k1".into()], true));
    }

    #[tokio::test]
    async fn a_lock_takes_a_slot_and_a_settled_record_is_never_locked_again() {
        let store = MemoryDeliveries::default();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let until = now + Duration::from_secs(30);
        let m = msg("acme", "k1");
        let window = RateWindow::at(&m.tenant_id, 1, now);
        let Begin::Acquired(lock) = store
            .begin(&m, "sqs-1", "owner-1", until, &window, now)
            .await
            .unwrap()
        else {
            panic!("the first begin wins");
        };
        assert_eq!(store.slots_taken(&window).await.unwrap(), 1);
        // Another invocation while the lock lives: locked; the window is full for a new key.
        assert!(matches!(
            store
                .begin(&m, "sqs-1", "owner-2", until, &window, now)
                .await,
            Ok(Begin::Locked { .. })
        ));
        assert_eq!(
            store
                .begin(&msg("acme", "k2"), "sqs-2", "o", until, &window, now)
                .await
                .unwrap(),
            Begin::RateLimited
        );
        assert!(
            !store
                .mark_failed(
                    &Lock {
                        owner: "owner-2".into(),
                        ..lock.clone()
                    },
                    "x",
                    "y",
                    None,
                    now
                )
                .await
                .unwrap(),
            "an outcome needs the lock"
        );
        let tenant = m.tenant_id.clone();
        assert!(
            store
                .mark_sent(
                    &lock,
                    &tenant,
                    "P1",
                    "http://a",
                    EndpointRole::Primary,
                    Some(12),
                    now
                )
                .await
                .unwrap()
        );
        let next = RateWindow::at(&m.tenant_id, 1, now + Duration::from_secs(60));
        assert!(matches!(
            store.begin(&m, "sqs-1", "owner-3", until, &next, now).await,
            Ok(Begin::Settled(r)) if r.state == DeliveryState::Sent
        ));
        // Receipts move it forwards only.
        assert_eq!(
            store
                .apply_receipt(&tenant, "P1", "read", now)
                .await
                .unwrap(),
            ReceiptOutcome::Updated {
                from: DeliveryState::Sent,
                to: DeliveryState::Read
            }
        );
        assert_eq!(
            store
                .apply_receipt(&tenant, "P1", "delivered", now)
                .await
                .unwrap(),
            ReceiptOutcome::Unchanged {
                current: DeliveryState::Read
            }
        );
        let other: TenantId = "other".parse().unwrap();
        assert_eq!(
            store
                .apply_receipt(&other, "P1", "read", now)
                .await
                .unwrap(),
            ReceiptOutcome::NotFound
        );
    }

    #[tokio::test]
    async fn slots_for_a_batch_are_all_or_none_and_a_prepaid_lock_takes_none() {
        let store = MemoryDeliveries::default();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let m = msg("acme", "k1");
        let window = RateWindow::at(&m.tenant_id, 5, now);
        assert!(store.take_slots(&window, 3).await.unwrap());
        assert!(!store.take_slots(&window, 3).await.unwrap(), "3 + 3 > 5");
        assert_eq!(store.slots_taken(&window).await.unwrap(), 3);
        let req = BeginRequest {
            msg: &m,
            sqs_message_id: "s",
            owner: "o",
            window: window.clone(),
        };
        let until = now + Duration::from_secs(30);
        assert!(matches!(
            store.lock_only(&req, until, now).await,
            Ok(Begin::Acquired(_))
        ));
        assert!(matches!(
            store.lock_only(&req, until, now).await,
            Ok(Begin::Locked { .. })
        ));
        assert_eq!(store.slots_taken(&window).await.unwrap(), 3);
        store.return_slots(&window, 2).await.unwrap();
        assert_eq!(store.slots_taken(&window).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn an_expired_lock_is_taken_over() {
        let store = MemoryDeliveries::default();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let m = msg("acme", "k1");
        let window = RateWindow::at(&m.tenant_id, 10, now);
        let first = store
            .begin(&m, "s", "dead", now + Duration::from_secs(1), &window, now)
            .await
            .unwrap();
        assert!(matches!(first, Begin::Acquired(_)));
        let later = now + Duration::from_secs(2);
        assert!(matches!(
            store
                .begin(&m, "s", "alive", later + Duration::from_secs(30), &window, later)
                .await,
            Ok(Begin::Acquired(l)) if l.owner == "alive"
        ));
        assert_eq!(store.record("acme#k1").unwrap().attempts, 2);
    }
}
