//! The messages table in DynamoDB, and the rate-limits table whose slot a lock takes in the
//! same request.
//!
//! Records are keyed by `pk = tenantId#idempotencyKey`, TTL attribute `expiresAt`. Receipts
//! find a record through the GSI [`INDEX_BY_PROVIDER_MESSAGE`] over
//! `providerKey = tenantId#providerMessageId`; the dashboard lists a tenant's records through
//! [`INDEX_BY_TENANT`]. A rate window is one item per tenant and calendar minute
//! (`pk = tenantId#windowStartEpochSecs`, attribute `sent`, TTL `expiresAt` two minutes after
//! the window): taking a slot is `ADD sent 1` under `attribute_not_exists(sent) OR
//! sent < :limit`, in the lock's `TransactWriteItems`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use time::OffsetDateTime;

use super::store::{DeliveryReader, DeliveryWriter, ReceiptRecorder};
use super::{
    Begin, BeginRequest, DeliveryError, DeliveryRecord, DeliveryState, FAILED_RECEIPT_CLASS,
    FAILED_RECEIPT_REASON, Lock, ReceiptOutcome, ReceiptState, Rejection, bounded, content_type,
    epoch_ms, record_key,
};
use crate::dynamo::{conditional, error_text};
use crate::outbound::ratelimit::{RateWindow, RateWindows, WINDOW};
use crate::provider::ErrorClass;
use crate::tenant::store::Page;
use crate::tenant::{EndpointRole, TenantId};
use crate::timestamp;

/// GSI of the messages table over `providerKey` (`tenantId#providerMessageId`), keys only.
pub const INDEX_BY_PROVIDER_MESSAGE: &str = "byProviderMessage";
/// GSI of the messages table over `tenantId` and `createdAt` (every attribute): a tenant's
/// records newest first, for the dashboard. Records of bodies that named no tenant have no
/// `tenantId` and stay out of it.
pub const INDEX_BY_TENANT: &str = "byTenant";

/// Most records [`DynamoDeliveryWriter::begin_many`](DeliveryWriter::begin_many) puts in one
/// `TransactWriteItems` (two items each; DynamoDB takes up to 100).
pub const MAX_RECORDS_PER_TRANSACTION: usize = 50;

fn state_value(state: DeliveryState) -> AttributeValue {
    AttributeValue::S(state.as_str().into())
}

fn backend(text: String) -> DeliveryError {
    DeliveryError::Backend(text)
}

/// Cancellation reasons that say "try again shortly" rather than "no".
fn contention(code: &str) -> bool {
    matches!(
        code,
        "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
    )
}

/// The messages table (and the rate-limit table the lock shares a request with).
#[derive(Debug, Clone)]
pub struct DynamoDeliveryStore {
    client: Client,
    messages_table: String,
    rate_table: String,
    retention: Duration,
}

fn ts(t: OffsetDateTime) -> AttributeValue {
    AttributeValue::S(timestamp::rfc3339(t))
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

impl DynamoDeliveryStore {
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
                        .update(take_slot(&r.window, &self.rate_table))
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
                    let text = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
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
                        aws_sdk_dynamodb::error::DisplayErrorContext(&err)
                    )))),
                };
            }
            if again.len() == pending.len() {
                // Cancelled without a reason for any record: nothing to learn from a retry.
                let text = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
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
                (":inprog".into(), state_value(DeliveryState::InProgress)),
                (":retrying".into(), state_value(DeliveryState::Retrying)),
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
            (":state".to_string(), state_value(state)),
            (":now".to_string(), ts(now)),
            (":ttl".to_string(), self.ttl(now)),
            (
                ":inprog".to_string(),
                state_value(DeliveryState::InProgress),
            ),
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
        Ok(conditional(res).map_err(backend)?.is_some())
    }
}

#[async_trait]
impl DeliveryWriter for DynamoDeliveryStore {
    /// [`DeliveryWriter::begin`] for several records at once: every record's lock and rate
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
    async fn begin_many(
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

    /// One conditional `UpdateItem` (1 WRU for a record under 1 KB, against 2 for the same
    /// write inside a transaction): the lock condition of [`Self::begin_many`], no slot.
    async fn lock_only(
        &self,
        req: &BeginRequest<'_>,
        lock_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Begin, DeliveryError> {
        let until_ms = epoch_ms(lock_until);
        let u = self.lock_update(req, until_ms, now);
        let pk = record_key(&req.msg.tenant_id, &req.msg.idempotency_key);
        let res = self
            .client
            .update_item()
            .table_name(u.table_name())
            .set_key(Some(u.key().clone()))
            .update_expression(u.update_expression())
            .set_condition_expression(u.condition_expression().map(str::to_string))
            .set_expression_attribute_names(u.expression_attribute_names().cloned())
            .set_expression_attribute_values(u.expression_attribute_values().cloned())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(_) => Ok(Begin::Acquired(Lock {
                pk,
                owner: req.owner.to_string(),
                until_ms,
            })),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    let old = c.item().filter(|item| !item.is_empty());
                    self.held_by_other(&pk, old, now).await
                }
                Some(e)
                    if contention(
                        aws_sdk_dynamodb::error::ProvideErrorMetadata::code(e).unwrap_or_default(),
                    ) =>
                {
                    Ok(Begin::Contended)
                }
                _ => Err(DeliveryError::Backend(
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
                )),
            },
        }
    }

    /// `ADD sent :n` under `attribute_not_exists(sent) OR sent <= :limit - :n`: one
    /// conditional `UpdateItem` for every slot a tenant's records in a batch need.
    async fn take_slots(&self, window: &RateWindow, n: u32) -> Result<bool, DeliveryError> {
        if n == 0 {
            return Ok(true);
        }
        if n > window.limit {
            return Ok(false);
        }
        let u = take_slots(window, &self.rate_table, n);
        let res = self
            .client
            .update_item()
            .table_name(u.table_name())
            .set_key(Some(u.key().clone()))
            .update_expression(u.update_expression())
            .set_condition_expression(u.condition_expression().map(str::to_string))
            .set_expression_attribute_names(u.expression_attribute_names().cloned())
            .set_expression_attribute_values(u.expression_attribute_values().cloned())
            .send()
            .await;
        Ok(conditional(res).map_err(backend)?.is_some())
    }

    async fn return_slots(&self, window: &RateWindow, count: u32) -> Result<(), DeliveryError> {
        if count == 0 {
            return Ok(());
        }
        self.client
            .update_item()
            .table_name(&self.rate_table)
            .key("pk", AttributeValue::S(window.key()))
            .update_expression("ADD #sent :minus")
            .condition_expression("attribute_exists(#sent)")
            .expression_attribute_names("#sent", "sent")
            .expression_attribute_values(":minus", n(-i64::from(count)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()))
    }

    /// Sent: the provider's id (indexed for receipts) and the endpoint that took it. Returns
    /// `false` when the lock had been lost (nothing written).
    async fn mark_sent(
        &self,
        lock: &Lock,
        tenant_id: &TenantId,
        provider_message_id: &str,
        endpoint: &str,
        role: EndpointRole,
        latency_ms: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError> {
        let mut sets = vec![
            ("providerMessageId", s(provider_message_id)),
            (
                "providerKey",
                s(&format!("{tenant_id}#{provider_message_id}")),
            ),
            ("endpoint", s(endpoint)),
            ("endpointRole", s(role.as_str())),
            ("sentAt", ts(now)),
        ];
        if let Some(ms) = latency_ms {
            sets.push(("sendLatencyMs", n(ms.min(i64::MAX as u64) as i64)));
        }
        self.settle(
            lock,
            DeliveryState::Sent,
            &sets,
            &["errorClass", "reason"],
            now,
        )
        .await
    }

    /// Failed for good (permanent), with the endpoint that refused it when one did.
    async fn mark_failed(
        &self,
        lock: &Lock,
        class: &str,
        reason: &str,
        at: Option<(&str, EndpointRole)>,
        now: OffsetDateTime,
    ) -> Result<bool, DeliveryError> {
        let mut sets = vec![("errorClass", s(class)), ("reason", s(&bounded(reason)))];
        if let Some((endpoint, role)) = at {
            sets.push(("endpoint", s(endpoint)));
            sets.push(("endpointRole", s(role.as_str())));
        }
        self.settle(lock, DeliveryState::Failed, &sets, &[], now)
            .await
    }

    /// Maybe delivered by `endpoint`: never resent automatically.
    async fn mark_unknown(
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
                ("errorClass", s(ErrorClass::Ambiguous.as_str())),
                ("reason", s(&bounded(reason))),
                ("endpoint", s(endpoint)),
                ("endpointRole", s(role.as_str())),
            ],
            &[],
            now,
        )
        .await
    }

    /// Releases the lock after a failure without effect; the queue brings the message back
    /// and the next `begin` wins it again. `reason` is the last failure (what an operator
    /// sees for a message that ends in the DLQ).
    async fn release_for_retry(
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
    async fn record_rejected(
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
            ("state".to_string(), state_value(DeliveryState::Failed)),
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
        Ok(conditional(res).map_err(backend)?.is_some())
    }
}

#[async_trait]
impl DeliveryReader for DynamoDeliveryStore {
    /// The record under `pk`, `None` if absent or expired.
    async fn get_key(
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
            .map_err(|e| backend(error_text(e)))?;
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
    async fn recent(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Page<DeliveryRecord>, DeliveryError> {
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
            .map_err(|e| backend(error_text(e)))?;
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
        Ok(Page {
            items: records,
            next_cursor,
        })
    }
}

#[async_trait]
impl ReceiptRecorder for DynamoDeliveryStore {
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
            .map_err(|e| backend(error_text(e)))?;
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
        let stamp = target.stamp_attribute();
        let mut values = HashMap::from([
            (":to".to_string(), state_value(to)),
            (":now".to_string(), ts(now)),
            (":pkey".to_string(), s(&provider_key)),
            (":nows".to_string(), n(now.unix_timestamp())),
        ]);
        let mut from_names = Vec::new();
        for (i, from) in target.moves_from().iter().enumerate() {
            from_names.push(format!(":from{i}"));
            values.insert(format!(":from{i}"), state_value(*from));
        }
        let cond = format!("#state IN ({})", from_names.join(", "));
        // A failure report also says why, in the record's failure fields.
        let failure = if target == ReceiptState::Failed {
            values.insert(":class".into(), s(FAILED_RECEIPT_CLASS));
            values.insert(":reason".into(), s(FAILED_RECEIPT_REASON));
            ", errorClass = :class, reason = :reason"
        } else {
            ""
        };
        let res = self
            .client
            .update_item()
            .table_name(&self.messages_table)
            .key("pk", s(&pk))
            .update_expression(format!(
                "SET #state = :to, {stamp} = :now, updatedAt = :now{failure}"
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
                    return Err(backend(error_text(e)));
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
                Err(backend(error_text(e)))
            }
        }
    }
}

/// The `TransactWriteItems` part that takes one slot of `window`.
fn take_slot(window: &RateWindow, table: &str) -> Update {
    take_slots(window, table, 1)
}

/// Takes `n` slots of `window` (`n` ≤ the limit): `ADD sent :n` while `sent + n ≤ limit`.
fn take_slots(window: &RateWindow, table: &str, n: u32) -> Update {
    Update::builder()
        .table_name(table)
        .key("pk", AttributeValue::S(window.key()))
        .update_expression("ADD #sent :one SET expiresAt = :ttl, tenantId = :t")
        .condition_expression("attribute_not_exists(#sent) OR #sent <= :limit")
        .expression_attribute_names("#sent", "sent")
        .set_expression_attribute_values(Some(HashMap::from([
            (":one".to_string(), AttributeValue::N(n.to_string())),
            (
                ":limit".to_string(),
                AttributeValue::N((window.limit.saturating_sub(n)).to_string()),
            ),
            (
                ":ttl".to_string(),
                AttributeValue::N((window.start + 2 * WINDOW.as_secs() as i64).to_string()),
            ),
            (
                ":t".to_string(),
                AttributeValue::S(window.tenant_id.to_string()),
            ),
        ])))
        .build()
        .expect("table, key and expression are set")
}

#[async_trait]
impl RateWindows for DynamoDeliveryStore {
    async fn slots_taken(&self, window: &RateWindow) -> Result<u32, String> {
        let out = self
            .client
            .get_item()
            .table_name(&self.rate_table)
            .key("pk", AttributeValue::S(window.key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(error_text)?;
        Ok(out
            .item
            .and_then(|i| i.get("sent").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::OutboundMessage;

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
