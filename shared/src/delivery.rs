//! The messages table: one idempotency and delivery record per outbound message, keyed by
//! `pk = tenantId#idempotencyKey`, TTL attribute `expiresAt`.
//!
//! States and the only moves between them:
//!
//! ```text
//!  (none) ──begin──▶ in_progress ──▶ sent ──receipt──▶ delivered ──receipt──▶ read
//!                      │  ▲   │  │      └──────────receipt (read)──────────────▲
//!                      │  │   │  └──▶ failed    (permanent: recorded, never retried)
//!                      │  │   └─────▶ unknown   (ambiguous: maybe delivered, never resent)
//!                      ▼  │
//!                    retrying (returned to the queue; `reason` holds the last failure)
//! ```
//!
//! `begin` (or `begin_many`, the same for several records in one transaction) wins the
//! record only when it is absent, `retrying`, an `in_progress` whose lock has expired (the
//! lock lives no longer than the invocation that took it), or past its `expiresAt` (moto
//! never deletes TTL items, and DynamoDB deletes them late, so expiry is checked in every
//! condition and read). Every outcome write is conditional on still holding
//! the lock. Receipts look the record up by provider message id (GSI
//! [`INDEX_BY_PROVIDER_MESSAGE`] over `providerKey = tenantId#providerMessageId`, so one
//! tenant's receipt can never touch another tenant's record) and only move forwards.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::outbound::OutboundMessage;
use crate::provider::ErrorClass;
use crate::ratelimit::RateWindow;
use crate::tenant::{EndpointRole, TenantId};

/// GSI of the messages table over `providerKey` (`tenantId#providerMessageId`), keys only.
pub const INDEX_BY_PROVIDER_MESSAGE: &str = "byProviderMessage";
/// GSI of the messages table over `tenantId` and `createdAt` (every attribute): a tenant's
/// records newest first, for the dashboard. Records of bodies that named no tenant have no
/// `tenantId` and stay out of it.
pub const INDEX_BY_TENANT: &str = "byTenant";

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// A live invocation is sending it.
    InProgress,
    /// The last attempt failed without effect; the queue will bring it back.
    Retrying,
    /// The WhatsApp server accepted it.
    Sent,
    /// The recipient's device has it.
    Delivered,
    /// The recipient read (or played) it.
    Read,
    /// Permanently refused; never retried.
    Failed,
    /// Maybe delivered (timeout after the request left); never resent automatically.
    Unknown,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::InProgress => "in_progress",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Read => "read",
            DeliveryState::Failed => "failed",
            DeliveryState::Unknown => "unknown",
        }
    }

    fn value(self) -> AttributeValue {
        AttributeValue::S(self.as_str().into())
    }
}

/// One record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    pub pk: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    pub state: DeliveryState,
    /// How many times an invocation won the lock.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub lock_owner: Option<String>,
    /// Epoch milliseconds.
    #[serde(default)]
    pub lock_expires_at: Option<i64>,
    #[serde(default)]
    pub provider_message_id: Option<String>,
    /// The recipient as the producer wrote it (`to`).
    #[serde(default)]
    pub recipient: Option<String>,
    /// `text`, `image` or `document`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Base URL of the server that took (or maybe took) the message.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub endpoint_role: Option<EndpointRole>,
    /// For failed, unknown and retrying: the class and text of the (last) failure.
    #[serde(default)]
    pub error_class: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// The SQS message id of the delivery that last wrote the record.
    #[serde(default)]
    pub sqs_message_id: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub sent_at: Option<String>,
    #[serde(default)]
    pub delivered_at: Option<String>,
    #[serde(default)]
    pub read_at: Option<String>,
    /// TTL, epoch seconds.
    pub expires_at: i64,
}

impl DeliveryRecord {
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now.unix_timestamp()
    }
}

/// The record key of a message.
pub fn record_key(tenant_id: &TenantId, idempotency_key: &str) -> String {
    format!("{tenant_id}#{idempotency_key}")
}

/// The key of a body that identified no message: `_rejected#<SQS message id>`.
pub fn rejected_key(sqs_message_id: &str) -> String {
    format!("_rejected#{sqs_message_id}")
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("DynamoDB request failed: {0}")]
    Backend(String),
    #[error("invalid page cursor")]
    InvalidCursor,
    #[error("stored record {pk} cannot be read: {reason}")]
    Corrupt { pk: String, reason: String },
}

fn backend<E, R>(e: SdkError<E, R>) -> DeliveryError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    DeliveryError::Backend(DisplayErrorContext(e).to_string())
}

/// The lock an invocation holds on a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub pk: String,
    pub owner: String,
    /// Epoch milliseconds.
    pub until_ms: i64,
}

/// A body refused before any send, for [`DeliveryStore::record_rejected`].
#[derive(Debug, Clone, Copy)]
pub struct Rejection<'a> {
    /// [`record_key`] when the body named tenant and key, else [`rejected_key`].
    pub pk: &'a str,
    pub tenant_id: Option<&'a TenantId>,
    pub idempotency_key: Option<&'a str>,
    /// `malformed`, `invalid`, `too_large`, `unknown_tenant`, `tenant_inactive`.
    pub code: &'a str,
    pub reason: &'a str,
    pub sqs_message_id: &'a str,
}

/// What [`DeliveryStore::begin`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// Ours to send (and one rate-limit slot taken).
    Acquired(Lock),
    /// It already has an outcome (sent, delivered, read, failed, unknown): do not send.
    Settled(Box<DeliveryRecord>),
    /// Another live invocation holds it.
    Locked { until_ms: i64 },
    /// The tenant's window is full; nothing was written.
    RateLimited,
    /// Another request raced on the same items; try again shortly.
    Contended,
}

/// Most records [`DeliveryStore::begin_many`] puts in one `TransactWriteItems` (two items
/// each; DynamoDB takes up to 100).
pub const MAX_RECORDS_PER_TRANSACTION: usize = 50;

/// One record for [`DeliveryStore::begin_many`].
#[derive(Debug, Clone)]
pub struct BeginRequest<'a> {
    pub msg: &'a OutboundMessage,
    pub sqs_message_id: &'a str,
    /// The lock owner: one per record and invocation.
    pub owner: &'a str,
    /// The tenant's current window, one slot of which the record takes.
    pub window: RateWindow,
}

/// Cancellation reasons that say "try again shortly" rather than "no".
fn contention(code: &str) -> bool {
    matches!(
        code,
        "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
    )
}

/// What a receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptOutcome {
    Updated {
        from: DeliveryState,
        to: DeliveryState,
    },
    /// The record is already at or past the receipt's state (or not sent): nothing changed.
    Unchanged { current: DeliveryState },
    /// No record of this tenant has that provider message id.
    NotFound,
    /// A receipt state that does not move a record (`sender`, `read-self`, `retry`, …).
    Ignored,
}

/// The receipt states that move a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptState {
    Delivered,
    Read,
}

impl ReceiptState {
    /// GOWA's `receipt_type` (as the ingress passes it in `receipt.state`): `delivered`;
    /// `read` and `played` (a voice note listened to) mean read. Receipts from the tenant's
    /// own other devices (`read-self`, `played-self`) and technical ones move nothing.
    pub fn from_provider(state: &str) -> Option<Self> {
        match state.trim().to_ascii_lowercase().as_str() {
            "delivered" | "delivery" => Some(ReceiptState::Delivered),
            "read" | "played" => Some(ReceiptState::Read),
            _ => None,
        }
    }

    fn target(self) -> DeliveryState {
        match self {
            ReceiptState::Delivered => DeliveryState::Delivered,
            ReceiptState::Read => DeliveryState::Read,
        }
    }
}

/// The messages table (and the rate-limit table the lock shares a request with).
#[derive(Debug, Clone)]
pub struct DeliveryStore {
    client: Client,
    messages_table: String,
    rate_table: String,
    retention: Duration,
}

fn ts(t: OffsetDateTime) -> AttributeValue {
    AttributeValue::S(t.format(&Rfc3339).unwrap_or_default())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn epoch_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Bounds what a record keeps of a failure text.
fn bounded(reason: &str) -> String {
    reason.chars().take(500).collect()
}

impl DeliveryStore {
    /// `retention`: how long a record is kept (and deduplicates) after its last write;
    /// longer than the queue's and the DLQ's retention, so a redriven message is still known.
    pub fn new(
        client: Client,
        messages_table: impl Into<String>,
        rate_table: impl Into<String>,
        retention: Duration,
    ) -> Self {
        Self {
            client,
            messages_table: messages_table.into(),
            rate_table: rate_table.into(),
            retention,
        }
    }

    pub fn messages_table(&self) -> &str {
        &self.messages_table
    }

    pub fn rate_table(&self) -> &str {
        &self.rate_table
    }

    fn ttl(&self, now: OffsetDateTime) -> AttributeValue {
        n(now.unix_timestamp() + self.retention.as_secs() as i64)
    }

    /// Takes the record's lock and one slot of the tenant's rate window in one
    /// `TransactWriteItems` request (both or neither). `lock_until` is the invocation's
    /// deadline, so the lock dies with it. [`DeliveryStore::begin_many`] with one record.
    pub async fn begin(
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

    /// [`DeliveryStore::begin`] for several records at once: every record's lock and rate
    /// slot in one `TransactWriteItems` (up to [`MAX_RECORDS_PER_TRANSACTION`] records;
    /// records sharing a lock or rate-window item with an earlier one go in a later
    /// transaction, as DynamoDB refuses two operations on one item in one request).
    ///
    /// A transaction is all or nothing, so when it is cancelled its `CancellationReasons`
    /// (one per item, in order) tell each record's fate: a failed lock condition is
    /// [`Begin::Settled`] or [`Begin::Locked`] (from the old item the reason carries), a
    /// failed slot condition [`Begin::RateLimited`], a conflict or throttling on one of its
    /// items [`Begin::Contended`]; the records whose items all passed are tried again in a
    /// new transaction without the others. Every round settles at least one record, so there
    /// are at most `records + 1` rounds (two in the common case of some redeliveries).
    ///
    /// One result per request, in order.
    pub async fn begin_many(
        &self,
        reqs: &[BeginRequest<'_>],
        lock_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Vec<Result<Begin, DeliveryError>> {
        let mut results: Vec<Option<Result<Begin, DeliveryError>>> =
            (0..reqs.len()).map(|_| None).collect();
        let mut rest: Vec<usize> = (0..reqs.len()).collect();
        while !rest.is_empty() {
            let (this, later) = next_transaction(reqs, rest);
            self.begin_transaction(reqs, this, lock_until, now, &mut results)
                .await;
            rest = later;
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Ok(Begin::Contended)))
            .collect()
    }

    /// One transaction over `pending` (distinct items), repeated without the records it
    /// settled until it commits or settles them all.
    async fn begin_transaction(
        &self,
        reqs: &[BeginRequest<'_>],
        mut pending: Vec<usize>,
        lock_until: OffsetDateTime,
        now: OffsetDateTime,
        results: &mut [Option<Result<Begin, DeliveryError>>],
    ) {
        let until_ms = epoch_ms(lock_until);
        while !pending.is_empty() {
            let mut items = Vec::with_capacity(2 * pending.len());
            for &i in &pending {
                let r = &reqs[i];
                items.push(
                    TransactWriteItem::builder()
                        .update(self.lock_update(r, until_ms, now))
                        .build(),
                );
                items.push(
                    TransactWriteItem::builder()
                        .update(r.window.take_slot(&self.rate_table))
                        .build(),
                );
            }
            let res = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let err = match res {
                Ok(_) => {
                    for &i in &pending {
                        let r = &reqs[i];
                        results[i] = Some(Ok(Begin::Acquired(Lock {
                            pk: record_key(&r.msg.tenant_id, &r.msg.idempotency_key),
                            owner: r.owner.to_string(),
                            until_ms,
                        })));
                    }
                    return;
                }
                Err(e) => e,
            };
            let reasons = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    c.cancellation_reasons().to_vec()
                }
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    for &i in &pending {
                        results[i] = Some(Ok(Begin::Contended));
                    }
                    return;
                }
                _ => {
                    let text = DisplayErrorContext(&err).to_string();
                    for &i in &pending {
                        results[i] = Some(Err(DeliveryError::Backend(text.clone())));
                    }
                    return;
                }
            };
            let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
            let mut again = Vec::new();
            for (j, &i) in pending.iter().enumerate() {
                let (lock, slot) = (code(2 * j), code(2 * j + 1));
                results[i] = match (lock, slot) {
                    ("ConditionalCheckFailed", _) => {
                        let r = &reqs[i];
                        let pk = record_key(&r.msg.tenant_id, &r.msg.idempotency_key);
                        let old = reasons[2 * j].item().filter(|item| !item.is_empty());
                        Some(self.held_by_other(&pk, old, now).await)
                    }
                    (_, "ConditionalCheckFailed") => Some(Ok(Begin::RateLimited)),
                    ("None", "None") => {
                        again.push(i);
                        None
                    }
                    (a, b) if contention(a) || contention(b) => Some(Ok(Begin::Contended)),
                    (a, b) => Some(Err(DeliveryError::Backend(format!(
                        "lock: {a}, rate slot: {b}: {}",
                        DisplayErrorContext(&err)
                    )))),
                };
            }
            if again.len() == pending.len() {
                // Cancelled without a reason for any record: nothing to learn from a retry.
                let text = DisplayErrorContext(&err).to_string();
                for &i in &again {
                    results[i] = Some(Err(DeliveryError::Backend(text.clone())));
                }
                return;
            }
            pending = again;
        }
    }

    /// The lock condition failed: what holds the record. `old` is the item the cancellation
    /// reason carried; not every implementation returns it, then it is read (failure path
    /// only).
    async fn held_by_other(
        &self,
        pk: &str,
        old: Option<&HashMap<String, AttributeValue>>,
        now: OffsetDateTime,
    ) -> Result<Begin, DeliveryError> {
        let old = match old {
            Some(item) => Some(parse(pk, item.clone())?),
            None => self.get_key(pk, now).await?,
        };
        Ok(match old {
            // Gone, expired or released for a retry since the condition was evaluated.
            None => Begin::Contended,
            Some(r) if r.is_expired(now) || r.state == DeliveryState::Retrying => Begin::Contended,
            Some(r) if r.state == DeliveryState::InProgress => Begin::Locked {
                until_ms: r.lock_expires_at.unwrap_or(0),
            },
            Some(r) => Begin::Settled(Box::new(r)),
        })
    }

    fn lock_update(&self, r: &BeginRequest<'_>, until_ms: i64, now: OffsetDateTime) -> Update {
        let msg = r.msg;
        Update::builder()
            .table_name(&self.messages_table)
            .key("pk", s(&record_key(&msg.tenant_id, &msg.idempotency_key)))
            .update_expression(
                "SET #state = :inprog, lockOwner = :owner, lockExpiresAt = :until, \
                 tenantId = :t, idempotencyKey = :k, recipient = :to, contentType = :ct, \
                 sqsMessageId = :sqs, updatedAt = :now, \
                 createdAt = if_not_exists(createdAt, :now), expiresAt = :ttl \
                 REMOVE providerMessageId, providerKey, endpoint, endpointRole \
                 ADD attempts :one",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR #state = :retrying \
                 OR (#state = :inprog AND lockExpiresAt < :nowms) OR expiresAt <= :nows",
            )
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(HashMap::from([
                (":inprog".into(), DeliveryState::InProgress.value()),
                (":retrying".into(), DeliveryState::Retrying.value()),
                (":owner".into(), s(r.owner)),
                (":until".into(), n(until_ms)),
                (":t".into(), s(msg.tenant_id.as_str())),
                (":k".into(), s(&msg.idempotency_key)),
                (":to".into(), s(&msg.to)),
                (":ct".into(), s(content_type(&msg.content))),
                (":sqs".into(), s(r.sqs_message_id)),
                (":now".into(), ts(now)),
                (":ttl".into(), self.ttl(now)),
                (":one".into(), n(1)),
                (":nowms".into(), n(epoch_ms(now))),
                (":nows".into(), n(now.unix_timestamp())),
            ])))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, key and expression are set")
    }

    async fn settle(
        &self,
        lock: &Lock,
        state: DeliveryState,
        sets: &[(&str, AttributeValue)],
        removes: &[&str],
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError> {
        let mut expr = String::from("SET #state = :state, updatedAt = :now, expiresAt = :ttl");
        let mut values = HashMap::from([
            (":state".to_string(), state.value()),
            (":now".to_string(), ts(now)),
            (":ttl".to_string(), self.ttl(now)),
            (":inprog".to_string(), DeliveryState::InProgress.value()),
            (":owner".to_string(), s(&lock.owner)),
        ]);
        for (i, (name, value)) in sets.iter().enumerate() {
            expr.push_str(&format!(", {name} = :v{i}"));
            values.insert(format!(":v{i}"), value.clone());
        }
        expr.push_str(" REMOVE lockOwner, lockExpiresAt");
        for r in removes {
            expr.push_str(&format!(", {r}"));
        }
        let res = self
            .client
            .update_item()
            .table_name(&self.messages_table)
            .key("pk", s(&lock.pk))
            .update_expression(expr)
            .condition_expression("#state = :inprog AND lockOwner = :owner")
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend(e)),
        }
    }

    /// Sent: the provider's id (indexed for receipts) and the endpoint that took it. Returns
    /// `false` when the lock had been lost (nothing written).
    pub async fn mark_sent(
        &self,
        lock: &Lock,
        tenant_id: &TenantId,
        provider_message_id: &str,
        endpoint: &str,
        role: EndpointRole,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError> {
        self.settle(
            lock,
            DeliveryState::Sent,
            &[
                ("providerMessageId", s(provider_message_id)),
                (
                    "providerKey",
                    s(&format!("{tenant_id}#{provider_message_id}")),
                ),
                ("endpoint", s(endpoint)),
                ("endpointRole", s(role_str(role))),
                ("sentAt", ts(now)),
            ],
            &["errorClass", "reason"],
            now,
        )
        .await
    }

    /// Failed for good (permanent).
    pub async fn mark_failed(
        &self,
        lock: &Lock,
        class: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError> {
        self.settle(
            lock,
            DeliveryState::Failed,
            &[("errorClass", s(class)), ("reason", s(&bounded(reason)))],
            &[],
            now,
        )
        .await
    }

    /// Maybe delivered by `endpoint`: never resent automatically.
    pub async fn mark_unknown(
        &self,
        lock: &Lock,
        reason: &str,
        endpoint: &str,
        role: EndpointRole,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError> {
        self.settle(
            lock,
            DeliveryState::Unknown,
            &[
                ("errorClass", s(class_name(ErrorClass::Ambiguous))),
                ("reason", s(&bounded(reason))),
                ("endpoint", s(endpoint)),
                ("endpointRole", s(role_str(role))),
            ],
            &[],
            now,
        )
        .await
    }

    /// Releases the lock after a failure without effect; the queue brings the message back
    /// and the next `begin` wins it again. `reason` is the last failure (what an operator
    /// sees for a message that ends in the DLQ).
    pub async fn release_for_retry(
        &self,
        lock: &Lock,
        class: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError> {
        self.settle(
            lock,
            DeliveryState::Retrying,
            &[("errorClass", s(class)), ("reason", s(&bounded(reason)))],
            &[],
            now,
        )
        .await
    }

    /// Records a body that was refused before any send (malformed, invalid, unknown
    /// tenant) as failed, unless a record under that key already exists. Returns whether
    /// it wrote.
    pub async fn record_rejected(
        &self,
        rejection: &Rejection<'_>,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError> {
        let Rejection {
            pk,
            tenant_id,
            idempotency_key,
            code,
            reason,
            sqs_message_id,
        } = *rejection;
        let mut item = HashMap::from([
            ("pk".to_string(), s(pk)),
            ("state".to_string(), DeliveryState::Failed.value()),
            ("errorClass".to_string(), s(code)),
            ("reason".to_string(), s(&bounded(reason))),
            ("sqsMessageId".to_string(), s(sqs_message_id)),
            ("attempts".to_string(), n(0)),
            ("createdAt".to_string(), ts(now)),
            ("updatedAt".to_string(), ts(now)),
            ("expiresAt".to_string(), self.ttl(now)),
        ]);
        if let Some(t) = tenant_id {
            item.insert("tenantId".into(), s(t.as_str()));
        }
        if let Some(k) = idempotency_key {
            item.insert("idempotencyKey".into(), s(k));
        }
        let res = self
            .client
            .put_item()
            .table_name(&self.messages_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expiresAt <= :nows")
            .expression_attribute_values(":nows", n(now.unix_timestamp()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend(e)),
        }
    }

    /// The record of a message, `None` if absent or expired.
    pub async fn get(
        &self,
        tenant_id: &TenantId,
        idempotency_key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<DeliveryRecord>, DeliveryError> {
        self.get_key(&record_key(tenant_id, idempotency_key), now)
            .await
    }

    /// The record under `pk`, `None` if absent or expired.
    pub async fn get_key(
        &self,
        pk: &str,
        now: OffsetDateTime,
    ) -> Result<Option<DeliveryRecord>, DeliveryError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.messages_table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        match out.item {
            None => Ok(None),
            Some(item) => {
                let r = parse(pk, item)?;
                Ok((!r.is_expired(now)).then_some(r))
            }
        }
    }

    /// One page of `tenant`'s records, newest first (by `createdAt`, through
    /// [`INDEX_BY_TENANT`]); expired ones are left out. `cursor` is the `next_cursor` of the
    /// page before.
    pub async fn recent(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<RecentPage, DeliveryError> {
        let start = cursor.map(|c| decode_cursor(tenant, c)).transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.messages_table)
            .index_name(INDEX_BY_TENANT)
            .key_condition_expression("tenantId = :t")
            .expression_attribute_values(":t", s(tenant.as_str()))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(backend)?;
        let mut records = Vec::new();
        for item in out.items.unwrap_or_default() {
            let pk = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            let record = parse(&pk, item)?;
            if !record.is_expired(now) {
                records.push(record);
            }
        }
        let next_cursor = out.last_evaluated_key.as_ref().and_then(encode_cursor);
        Ok(RecentPage {
            records,
            next_cursor,
        })
    }

    /// Applies a delivery receipt: `sent → delivered → read`, `sent → read`, never
    /// backwards. Looks the record up by the provider's message id within the tenant.
    pub async fn apply_receipt(
        &self,
        tenant_id: &TenantId,
        provider_message_id: &str,
        state: &str,
        now: OffsetDateTime,
    ) -> Result<ReceiptOutcome, DeliveryError> {
        let Some(target) = ReceiptState::from_provider(state) else {
            return Ok(ReceiptOutcome::Ignored);
        };
        let provider_key = format!("{tenant_id}#{provider_message_id}");
        let found = self
            .client
            .query()
            .table_name(&self.messages_table)
            .index_name(INDEX_BY_PROVIDER_MESSAGE)
            .key_condition_expression("providerKey = :pk")
            .expression_attribute_values(":pk", s(&provider_key))
            .limit(1)
            .send()
            .await
            .map_err(backend)?;
        let Some(pk) = found
            .items()
            .first()
            .and_then(|i| i.get("pk"))
            .and_then(|v| v.as_s().ok())
            .cloned()
        else {
            return Ok(ReceiptOutcome::NotFound);
        };
        let to = target.target();
        let (cond, stamp) = match target {
            ReceiptState::Delivered => ("#state = :sent", "deliveredAt"),
            ReceiptState::Read => ("#state IN (:sent, :delivered)", "readAt"),
        };
        let mut values = HashMap::from([
            (":to".to_string(), to.value()),
            (":now".to_string(), ts(now)),
            (":sent".to_string(), DeliveryState::Sent.value()),
            (":pkey".to_string(), s(&provider_key)),
            (":nows".to_string(), n(now.unix_timestamp())),
        ]);
        if target == ReceiptState::Read {
            values.insert(":delivered".into(), DeliveryState::Delivered.value());
        }
        let res = self
            .client
            .update_item()
            .table_name(&self.messages_table)
            .key("pk", s(&pk))
            .update_expression(format!(
                "SET #state = :to, {stamp} = :now, updatedAt = :now"
            ))
            .condition_expression(format!(
                "{cond} AND providerKey = :pkey AND expiresAt > :nows"
            ))
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(values))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(out) => {
                let from = out
                    .attributes()
                    .and_then(|a| a.get("state"))
                    .and_then(|v| v.as_s().ok())
                    .and_then(|v| {
                        serde_json::from_value::<DeliveryState>(serde_json::Value::String(
                            v.clone(),
                        ))
                        .ok()
                    })
                    .unwrap_or(DeliveryState::Sent);
                Ok(ReceiptOutcome::Updated { from, to })
            }
            Err(e) => {
                let Some(svc) = e.as_service_error() else {
                    return Err(backend(e));
                };
                if let aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) = svc {
                    let current = match c.item() {
                        Some(item) if !item.is_empty() => Some(parse(&pk, item.clone())?),
                        _ => self.get_key(&pk, now).await?,
                    };
                    return Ok(match current {
                        Some(r) if r.provider_message_id.as_deref() == Some(provider_message_id)
                            && !r.is_expired(now) =>
                        {
                            ReceiptOutcome::Unchanged { current: r.state }
                        }
                        _ => ReceiptOutcome::NotFound,
                    });
                }
                Err(backend(e))
            }
        }
    }
}

/// Splits `rest` into the records of the next transaction (at most
/// [`MAX_RECORDS_PER_TRANSACTION`], no lock or rate-window item twice) and those left for a
/// later one, both in request order.
fn next_transaction(reqs: &[BeginRequest<'_>], rest: Vec<usize>) -> (Vec<usize>, Vec<usize>) {
    let mut items = std::collections::HashSet::new();
    let (mut this, mut later) = (Vec::new(), Vec::new());
    for i in rest {
        let r = &reqs[i];
        let lock = record_key(&r.msg.tenant_id, &r.msg.idempotency_key);
        let slot = r.window.key();
        let free = this.len() < MAX_RECORDS_PER_TRANSACTION
            && !items.contains(&(0, lock.clone()))
            && !items.contains(&(1, slot.clone()));
        if free {
            items.insert((0, lock));
            items.insert((1, slot));
            this.push(i);
        } else {
            later.push(i);
        }
    }
    (this, later)
}

fn role_str(role: EndpointRole) -> &'static str {
    match role {
        EndpointRole::Primary => "primary",
        EndpointRole::Backup => "backup",
    }
}

/// A page of [`DeliveryStore::recent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentPage {
    pub records: Vec<DeliveryRecord>,
    /// Opaque; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `text`, `image` or `document`.
fn content_type(content: &crate::outbound::MessageContent) -> &'static str {
    use crate::outbound::MessageContent;
    match content {
        MessageContent::Text { .. } => "text",
        MessageContent::Image { .. } => "image",
        MessageContent::Document { .. } => "document",
    }
}

/// The position after a record in the tenant index: its `createdAt` and `pk`, base64url JSON
/// (the tenant is the one of the path, never the cursor's).
fn encode_cursor(key: &HashMap<String, AttributeValue>) -> Option<String> {
    use base64::Engine as _;
    let created = key.get("createdAt")?.as_s().ok()?;
    let pk = key.get("pk")?.as_s().ok()?;
    let json = serde_json::json!({ "c": created, "p": pk }).to_string();
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

fn decode_cursor(
    tenant: &TenantId,
    cursor: &str,
) -> Result<HashMap<String, AttributeValue>, DeliveryError> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| DeliveryError::InvalidCursor)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| DeliveryError::InvalidCursor)?;
    let created = value["c"]
        .as_str()
        .filter(|c| !c.is_empty() && c.len() <= 64);
    let pk = value["p"].as_str();
    match (created, pk) {
        // Another tenant's cursor cannot move this tenant's listing anywhere.
        (Some(created), Some(pk)) if pk.starts_with(&format!("{tenant}#")) && pk.len() <= 300 => {
            Ok(HashMap::from([
                ("tenantId".to_string(), s(tenant.as_str())),
                ("createdAt".to_string(), s(created)),
                ("pk".to_string(), s(pk)),
            ]))
        }
        _ => Err(DeliveryError::InvalidCursor),
    }
}

fn parse(pk: &str, item: HashMap<String, AttributeValue>) -> Result<DeliveryRecord, DeliveryError> {
    serde_dynamo::from_item(item).map_err(|e| DeliveryError::Corrupt {
        pk: pk.to_string(),
        reason: e.to_string(),
    })
}

/// The snake_case name of an error class, as records, logs and metrics carry it.
pub fn class_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Permanent => "permanent",
        ErrorClass::Retryable => "retryable",
        ErrorClass::Ambiguous => "ambiguous",
        ErrorClass::RateLimited => "rate_limited",
        ErrorClass::LoggedOut => "logged_out",
        ErrorClass::BadCredentials => "bad_credentials",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_states_from_gowa() {
        assert_eq!(
            ReceiptState::from_provider("delivered"),
            Some(ReceiptState::Delivered)
        );
        assert_eq!(
            ReceiptState::from_provider("READ"),
            Some(ReceiptState::Read)
        );
        assert_eq!(
            ReceiptState::from_provider("played"),
            Some(ReceiptState::Read)
        );
        for other in ["read-self", "played-self", "sender", "retry", ""] {
            assert_eq!(ReceiptState::from_provider(other), None, "{other}");
        }
    }

    #[test]
    fn one_transaction_never_holds_an_item_twice_nor_more_than_fifty_records() {
        let msg = |tenant: &str, key: &str| {
            OutboundMessage::parse(
                &serde_json::json!({"tenantId": tenant, "idempotencyKey": key,
                    "to": "6289685028129", "content": {"type": "text", "body": "x"}})
                .to_string(),
            )
            .unwrap()
        };
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let msgs = [
            msg("acme", "k1"),
            msg("acme", "k2"), // acme's rate window again
            msg("beta", "k1"),
            msg("beta", "k1"), // the same record again
            msg("gamma", "k1"),
        ];
        let reqs: Vec<BeginRequest> = msgs
            .iter()
            .map(|m| BeginRequest {
                msg: m,
                sqs_message_id: "m",
                owner: "o",
                window: RateWindow::at(&m.tenant_id, 30, now),
            })
            .collect();
        let (this, later) = next_transaction(&reqs, (0..reqs.len()).collect());
        assert_eq!((this, later.clone()), (vec![0, 2, 4], vec![1, 3]));
        assert_eq!(next_transaction(&reqs, later), (vec![1, 3], vec![]));

        let many: Vec<OutboundMessage> = (0..60).map(|t| msg(&format!("t{t}"), "k")).collect();
        let reqs: Vec<BeginRequest> = many
            .iter()
            .map(|m| BeginRequest {
                msg: m,
                sqs_message_id: "m",
                owner: "o",
                window: RateWindow::at(&m.tenant_id, 30, now),
            })
            .collect();
        let (this, later) = next_transaction(&reqs, (0..60).collect());
        assert_eq!((this.len(), later), (50, (50..60).collect::<Vec<_>>()));
    }

    #[test]
    fn record_reads_from_its_item() {
        let item = HashMap::from([
            ("pk".to_string(), s("acme#k1")),
            ("state".to_string(), s("sent")),
            ("attempts".to_string(), n(2)),
            ("endpointRole".to_string(), s("backup")),
            ("expiresAt".to_string(), n(2_000_000_000)),
        ]);
        let r = parse("acme#k1", item).unwrap();
        assert_eq!(r.state, DeliveryState::Sent);
        assert_eq!(r.attempts, 2);
        assert_eq!(r.endpoint_role, Some(EndpointRole::Backup));
        assert!(!r.is_expired(OffsetDateTime::UNIX_EPOCH));
        assert!(r.is_expired(OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap()));
    }
}
