//! What the functions may do to delivery records, as traits, each the smallest a function
//! needs: the sender locks, sends and settles records ([`DeliveryWriter`]), the ingress moves
//! them on receipts ([`ReceiptRecorder`]), the config API reads them ([`DeliveryReader`]). The
//! DynamoDB implementation is [`super::dynamo::DynamoDeliveryStore`]; an in-memory one for
//! tests is `crate::testing::MemoryDeliveries` (feature `testing`).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Begin, BeginRequest, DeliveryError, DeliveryRecord, Lock, ReceiptOutcome, Rejection};
use crate::outbound::OutboundMessage;
use crate::outbound::ratelimit::RateWindow;
use crate::tenant::store::Page;
use crate::tenant::{EndpointRole, TenantId};

/// The sender's side: the idempotency lock (with a rate slot) and every outcome.
#[async_trait]
pub trait DeliveryWriter: Send + Sync {
    /// For each request, takes the record's lock and one slot of the tenant's rate window,
    /// both or neither, with `lock_until` (the invocation's deadline) as the lock's expiry.
    /// One result per request, in order.
    async fn begin_many(
        &self,
        reqs: &[BeginRequest<'_>],
        lock_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Vec<Result<Begin, DeliveryError>>;

    /// [`Self::begin_many`] with one record.
    async fn begin(
        &self,
        msg: &OutboundMessage,
        sqs_message_id: &str,
        owner: &str,
        lock_until: OffsetDateTime,
        window: &RateWindow,
        now: OffsetDateTime,
    ) -> Result<Begin, DeliveryError> {
        let req = BeginRequest {
            msg,
            sqs_message_id,
            owner,
            window: window.clone(),
        };
        self.begin_many(&[req], lock_until, now)
            .await
            .pop()
            .unwrap_or(Ok(Begin::Contended))
    }

    /// The record's lock alone, without a rate slot (`req.window` is not touched): for a
    /// record whose slot was taken beforehand with [`Self::take_slots`]. One conditional
    /// write; the same answers as [`Self::begin_many`] but never [`Begin::RateLimited`].
    async fn lock_only(
        &self,
        req: &BeginRequest<'_>,
        lock_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Begin, DeliveryError>;

    /// Takes `n` slots of `window` at once, all or none: `false` (nothing taken) when fewer
    /// than `n` are free. One conditional write for a whole batch of a tenant's records.
    async fn take_slots(&self, window: &RateWindow, n: u32) -> Result<bool, DeliveryError>;

    /// Gives back `n` slots taken with [`Self::take_slots`] that no record used.
    async fn return_slots(&self, window: &RateWindow, n: u32) -> Result<(), DeliveryError>;

    /// Sent: the provider's id (receipts find the record by it), the endpoint that took
    /// it and how long the send took (`latency_ms`, in the same write). `false` when the
    /// lock had been lost (nothing written).
    #[allow(clippy::too_many_arguments)]
    async fn mark_sent(
        &self,
        lock: &Lock,
        tenant_id: &TenantId,
        provider_message_id: &str,
        endpoint: &str,
        role: EndpointRole,
        latency_ms: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError>;

    /// Failed for good (permanent); `at` is the endpoint that refused it, when one did.
    async fn mark_failed(
        &self,
        lock: &Lock,
        class: &str,
        reason: &str,
        at: Option<(&str, EndpointRole)>,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError>;

    /// Maybe delivered by `endpoint`: never resent automatically.
    async fn mark_unknown(
        &self,
        lock: &Lock,
        reason: &str,
        endpoint: &str,
        role: EndpointRole,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError>;

    /// Releases the lock after a failure without effect; the queue brings the message back
    /// and the next `begin` wins it again. `reason` is the last failure (what an operator
    /// sees for a message that ends in the DLQ).
    async fn release_for_retry(
        &self,
        lock: &Lock,
        class: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError>;

    /// Records a body that was refused before any send (malformed, invalid, unknown
    /// tenant) as failed, unless a record under that key already exists. Returns whether
    /// it wrote.
    async fn record_rejected(
        &self,
        rejection: &Rejection<'_>,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError>;
}

/// Reads records (the config API, tools, tests).
#[async_trait]
pub trait DeliveryReader: Send + Sync {
    /// The record of a message, `None` if absent or expired.
    async fn get(
        &self,
        tenant_id: &TenantId,
        idempotency_key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<DeliveryRecord>, DeliveryError> {
        self.get_key(&super::record_key(tenant_id, idempotency_key), now)
            .await
    }

    /// The record under `pk`, `None` if absent or expired.
    async fn get_key(
        &self,
        pk: &str,
        now: OffsetDateTime,
    ) -> Result<Option<DeliveryRecord>, DeliveryError>;

    /// One page of `tenant`'s records, newest first (by `createdAt`); expired ones are left
    /// out. `cursor` is the `next_cursor` of the page before (another tenant's cursor is
    /// [`DeliveryError::InvalidCursor`]).
    async fn recent(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Page<DeliveryRecord>, DeliveryError>;

    /// `tenant`'s records created at or after `from`, newest first, at most `max` of them,
    /// and whether more were left unread: [`Self::recent`] pages of up to 1,000 until a
    /// page reaches past `from`, the cursor ends, or `max` are read (so at most
    /// `max / 1000 + 2` queries; analytics reads through it).
    async fn since(
        &self,
        tenant: &TenantId,
        from: OffsetDateTime,
        max: usize,
        now: OffsetDateTime,
    ) -> Result<(Vec<DeliveryRecord>, bool), DeliveryError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let left = max.saturating_sub(out.len());
            let page = self
                .recent(tenant, left.clamp(1, 1000) as u32, cursor.as_deref(), now)
                .await?;
            let mut reached_past = false;
            for r in page.items {
                // The index orders by createdAt's text, which is time order but for the
                // fraction digits within one second: an older record ends the read after
                // this page, and is itself left out.
                let created = r.created_at.as_deref().and_then(|c| {
                    OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).ok()
                });
                if created.is_none_or(|c| c < from) {
                    reached_past = true;
                    continue;
                }
                if out.len() == max {
                    return Ok((out, true));
                }
                out.push(r);
            }
            match page.next_cursor {
                Some(c) if !reached_past => {
                    if out.len() == max {
                        // Full: one more record says whether any was left unread (a cursor
                        // alone does not: DynamoDB gives one whenever the limit was reached).
                        let next = self.recent(tenant, 1, Some(&c), now).await?;
                        let more = next.items.iter().any(|r| {
                            r.created_at.as_deref().is_some_and(|t| {
                                OffsetDateTime::parse(
                                    t,
                                    &time::format_description::well_known::Rfc3339,
                                )
                                .is_ok_and(|t| t >= from)
                            })
                        });
                        return Ok((out, more));
                    }
                    cursor = Some(c);
                }
                _ => return Ok((out, false)),
            }
        }
    }
}

/// The ingress's side: delivery receipts.
#[async_trait]
pub trait ReceiptRecorder: Send + Sync {
    /// Applies a receipt (`state` as the provider says it): `sent → delivered → read`,
    /// `sent → read`, never backwards. Looks the record up by the provider's message id
    /// within the tenant.
    async fn apply_receipt(
        &self,
        tenant_id: &TenantId,
        provider_message_id: &str,
        state: &str,
        now: OffsetDateTime,
    ) -> Result<ReceiptOutcome, DeliveryError>;
}
