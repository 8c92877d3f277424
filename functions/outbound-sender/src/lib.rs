//! # outbound-sender
//!
//! Consumes the outbound FIFO queue (message group = tenant) and sends each
//! [`OutboundMessage`] through the tenant's WhatsApp server. Per record:
//!
//! 1. parse the body ([`OutboundMessage::parse`]); a poisoned body is recorded as failed and
//!    acknowledged, never failing its neighbours;
//! 2. the tenant's config from the per-instance cache (warm: no DynamoDB, no KMS);
//! 3. one slot of the tenant's rate window per record of the group, taken at once in one
//!    conditional write ([`DeliveryWriter::take_slots`]), then the idempotency lock on
//!    `tenantId#idempotencyKey` alone, one conditional write per record
//!    ([`DeliveryWriter::lock_only`]); unused slots are given back at the end of the group.
//!    When the window cannot hold the whole group: lock plus one slot, both or neither, for
//!    the first record of every such group in **one** `TransactWriteItems`
//!    ([`DeliveryWriter::begin_many`]), for a later record in one of its own
//!    ([`DeliveryWriter::begin`]); a full window is waited for inside the invocation when the
//!    wait fits, else the record is deferred untouched;
//! 4. send to the active endpoint, failing over to the backup when that is safe
//!    ([`wagate::routing`]), through per-endpoint circuit breakers shared by the instance;
//! 5. one `UpdateItem` with the outcome: sent, failed (permanent), unknown (ambiguous) or
//!    retrying (returned to the queue).
//!
//! Records of different tenants run concurrently, records of one group in order; once a
//! record of a group is returned to the queue, the later records of that group in the batch
//! are returned too, untouched, so order within a tenant holds.

pub mod aws;
pub mod settings;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::future::join_all;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{Instrument, error, info, warn};
use wagate::delivery::store::DeliveryWriter;
use wagate::delivery::{
    Begin, BeginRequest, DeliveryError, DeliveryState, Lock, Rejection, record_key, rejected_key,
};
use wagate::outbound::OutboundMessage;
use wagate::outbound::ratelimit::{RateWindow, WindowClock};
use wagate::outbound::routing::{
    BreakerSettings, Breakers, Health, candidates, endpoint_key, may_fail_over,
};
use wagate::provider::{ErrorClass, ProviderError, Providers, Target};
use wagate::tenant::cache::{CacheSettings, ConfigCache, Loaded, Opens};
use wagate::tenant::store::TenantStatusWriter;
use wagate::tenant::{ConnectionStatus, EndpointRole, OpenedConfig, TenantId};

/// The config cache as the sender uses it: entries kept `ttl`, and only the active
/// endpoint's credential opened at load (the other endpoint's on first use, at failover;
/// webhook secrets never).
pub fn cache_settings(ttl: Duration) -> CacheSettings {
    CacheSettings::with_ttl(ttl).opening(Opens::ActiveCredential)
}

/// Sender settings (read from the environment by [`settings::Environment`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The queue's `maxReceiveCount`: a failure on this receive sends the record to the DLQ,
    /// and the log says so.
    pub max_receive_count: u32,
    pub breaker: BreakerSettings,
    /// How long a message record is kept (and deduplicates) after its last write.
    pub retention: Duration,
    /// Time kept free before the deadline for one send and its writes; a rate-limit wait
    /// longer than what is left after it defers the record instead.
    pub send_reserve: Duration,
    /// Back-off after WhatsApp's rate limit when the server gives no `Retry-After`.
    pub timelock_backoff: Duration,
    /// Which rate window a moment counts in (the wall clock's minute; tests pin it).
    pub window_clock: WindowClock,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_receive_count: 5,
            breaker: BreakerSettings::default(),
            retention: Duration::from_secs(15 * 24 * 3600),
            send_reserve: Duration::from_secs(17),
            timelock_backoff: Duration::from_secs(60),
            window_clock: WindowClock::System,
        }
    }
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server took it.
    Sent {
        provider_message_id: String,
        role: EndpointRole,
        failed_over: bool,
    },
    /// It already had an outcome (a redelivery): acknowledged, not sent again.
    AlreadySettled(DeliveryState),
    /// Refused for good (permanent provider error, unknown or inactive tenant): recorded,
    /// acknowledged.
    Failed { class: String, reason: String },
    /// The body is not an OutboundMessage: recorded as failed, acknowledged.
    Poisoned { reason: String },
    /// Maybe delivered: recorded as unknown, acknowledged, never resent automatically.
    Unknown { reason: String },
    /// Failed without effect: returned to the queue.
    Retry { class: String, reason: String },
    /// The tenant's rate window is full beyond what this invocation can wait: returned to
    /// the queue untouched (no record written, no slot taken).
    Deferred { wait: Duration },
    /// Another live invocation holds the record: returned to the queue.
    Locked,
    /// An earlier record of the same group was returned: returned too, untouched.
    Skipped,
}

impl Outcome {
    /// Acknowledged (deleted from the queue) rather than returned.
    pub fn acknowledged(&self) -> bool {
        matches!(
            self,
            Outcome::Sent { .. }
                | Outcome::AlreadySettled(_)
                | Outcome::Failed { .. }
                | Outcome::Poisoned { .. }
                | Outcome::Unknown { .. }
        )
    }

    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Sent { .. } => "sent",
            Outcome::AlreadySettled(_) => "already_settled",
            Outcome::Failed { .. } => "failed",
            Outcome::Poisoned { .. } => "poisoned",
            Outcome::Unknown { .. } => "unknown",
            Outcome::Retry { .. } => "retry",
            Outcome::Deferred { .. } => "deferred",
            Outcome::Locked => "locked",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One record's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    pub sqs_message_id: String,
    pub outcome: Outcome,
}

/// The outcomes of a batch, in record order.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    pub records: Vec<RecordOutcome>,
}

impl BatchOutcome {
    /// The partial batch response: every record not acknowledged.
    pub fn response(&self) -> SqsBatchResponse {
        let mut resp = SqsBatchResponse::default();
        for r in &self.records {
            if !r.outcome.acknowledged() {
                resp.add_failure(r.sqs_message_id.clone());
            }
        }
        resp
    }

    /// The outcome of one SQS message.
    pub fn outcome(&self, sqs_message_id: &str) -> Option<&Outcome> {
        self.records
            .iter()
            .find(|r| r.sqs_message_id == sqs_message_id)
            .map(|r| &r.outcome)
    }

    pub fn count(&self, label: &str) -> usize {
        self.records
            .iter()
            .filter(|r| r.outcome.label() == label)
            .count()
    }

    /// One CloudWatch Embedded Metric Format line for the batch.
    pub fn emf_line(&self, now: OffsetDateTime) -> String {
        let metrics = [
            ("MessagesSent", "sent"),
            ("MessagesAlreadySettled", "already_settled"),
            ("MessagesFailed", "failed"),
            ("MessagesPoisoned", "poisoned"),
            ("MessagesUnknown", "unknown"),
            ("MessagesRetried", "retry"),
            ("MessagesDeferred", "deferred"),
            ("MessagesLocked", "locked"),
            ("MessagesSkipped", "skipped"),
        ];
        let failovers = self
            .records
            .iter()
            .filter(|r| {
                matches!(
                    r.outcome,
                    Outcome::Sent {
                        failed_over: true,
                        ..
                    }
                )
            })
            .count();
        let mut obj = serde_json::Map::new();
        let defs: Vec<serde_json::Value> = metrics
            .iter()
            .map(|(name, _)| *name)
            .chain(["Failovers", "BatchRecords"])
            .map(|name| serde_json::json!({"Name": name, "Unit": "Count"}))
            .collect();
        obj.insert(
            "_aws".into(),
            serde_json::json!({
                "Timestamp": now.unix_timestamp() * 1000,
                "CloudWatchMetrics": [{
                    "Namespace": "wagate",
                    "Dimensions": [["Function"]],
                    "Metrics": defs,
                }],
            }),
        );
        obj.insert("Function".into(), "outbound-sender".into());
        for (name, label) in metrics {
            obj.insert(name.into(), self.count(label).into());
        }
        obj.insert("Failovers".into(), failovers.into());
        obj.insert("BatchRecords".into(), self.records.len().into());
        serde_json::Value::Object(obj).to_string()
    }
}

/// One parsed record.
struct Item {
    index: usize,
    sqs_message_id: String,
    receive_count: u32,
    message: OutboundMessage,
}

/// Where the first record of a group stands when its group starts.
enum Head {
    /// Settled before its lock (back-off, unknown tenant, config error).
    Done(Outcome),
    /// Config in hand; `begun` is its share of the batch's lock transaction, if it had one.
    Ready {
        cfg: Arc<Loaded>,
        owner: String,
        begun: Option<(OffsetDateTime, Result<Begin, DeliveryError>)>,
    },
    /// Config in hand and one rate slot per record of the group taken at once
    /// ([`DeliveryWriter::take_slots`]): each record then only takes its lock.
    Reserved {
        cfg: Arc<Loaded>,
        window: RateWindow,
        slots: u32,
    },
}

fn record_span(item: &Item, group: &str) -> tracing::Span {
    tracing::info_span!(
        "record",
        sqs_message_id = %item.sqs_message_id,
        group = %group,
        tenant_id = %item.message.tenant_id,
        idempotency_key = %item.message.idempotency_key,
        receive_count = item.receive_count,
        endpoint = tracing::field::Empty,
    )
}

/// The sender: built once per instance, shared by every invocation on it.
pub struct Sender {
    cache: Arc<ConfigCache>,
    delivery: Arc<dyn DeliveryWriter>,
    status: Arc<dyn TenantStatusWriter>,
    providers: Providers,
    breakers: Breakers,
    settings: Settings,
    /// Tenants WhatsApp rate-limited (`WA_REACHOUT_TIMELOCK`), until when.
    timelocked: Mutex<HashMap<TenantId, Instant>>,
}

impl Sender {
    pub fn new(
        cache: Arc<ConfigCache>,
        delivery: Arc<dyn DeliveryWriter>,
        status: Arc<dyn TenantStatusWriter>,
        providers: Providers,
        settings: Settings,
    ) -> Self {
        Self {
            cache,
            delivery,
            status,
            providers,
            breakers: Breakers::new(settings.breaker),
            settings,
            timelocked: Mutex::new(HashMap::new()),
        }
    }

    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    pub fn delivery(&self) -> &Arc<dyn DeliveryWriter> {
        &self.delivery
    }

    /// Handles one SQS batch; `deadline` is the invocation's. Never fails: every record gets
    /// an outcome.
    pub async fn handle_batch(&self, event: SqsEvent, deadline: OffsetDateTime) -> BatchOutcome {
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; event.records.len()];
        let mut groups: Vec<(String, Vec<Item>)> = Vec::new();
        let mut poisoned = Vec::new();
        for (index, record) in event.records.into_iter().enumerate() {
            let sqs_message_id = record.message_id.clone().unwrap_or_default();
            let receive_count = receive_count(&record);
            let body = record.body.as_deref().unwrap_or_default();
            match OutboundMessage::parse(body) {
                Ok(message) => {
                    let group = group_of(&record, &message);
                    let item = Item {
                        index,
                        sqs_message_id,
                        receive_count,
                        message,
                    };
                    match groups.iter_mut().find(|(g, _)| *g == group) {
                        Some((_, items)) => items.push(item),
                        None => groups.push((group, vec![item])),
                    }
                }
                Err(rejected) => poisoned.push((index, sqs_message_id, receive_count, rejected)),
            }
        }

        let poison_futs = poisoned.into_iter().map(|(index, id, rc, rejected)| {
            let span = tracing::info_span!("record", sqs_message_id = %id, receive_count = rc, tenant_id = tracing::field::Empty, idempotency_key = tracing::field::Empty);
            async move {
                let outcome = self.poisoned(&id, rejected).await;
                (index, RecordOutcome {
                    sqs_message_id: id,
                    outcome,
                })
            }
            .instrument(span)
        });
        let (poison_done, groups_done) =
            tokio::join!(join_all(poison_futs), self.run_groups(groups, deadline));
        for (index, r) in poison_done
            .into_iter()
            .chain(groups_done.into_iter().flatten())
        {
            outcomes[index] = Some(r);
        }
        BatchOutcome {
            records: outcomes.into_iter().flatten().collect(),
        }
    }

    /// Every group, concurrently. The first record of each group can start at once: their
    /// configs are read concurrently, then each group takes the rate slots of all its records
    /// in one write ([`DeliveryWriter::take_slots`], concurrently across groups) and each
    /// record then only its lock, one at a time after the record before it (order within a
    /// group). Groups whose window cannot hold them all take lock and slot together: their
    /// first records in one `TransactWriteItems` ([`DeliveryWriter::begin_many`]), the later
    /// ones one transaction each.
    async fn run_groups(
        &self,
        groups: Vec<(String, Vec<Item>)>,
        deadline: OffsetDateTime,
    ) -> Vec<Vec<(usize, RecordOutcome)>> {
        let heads = join_all(groups.iter().map(|(group, items)| {
            let head = &items[0];
            self.prepare(head).instrument(record_span(head, group))
        }))
        .await;
        let owners: Vec<String> = groups
            .iter()
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        // One record per tenant in the transaction (two records of a tenant would take the
        // same rate-window item twice); a second group of the same tenant (a producer using
        // another MessageGroupId) takes its lock on its own, as before.
        let now = OffsetDateTime::now_utc();
        // The steady state: every group's rate slots in one write per group (a tenant's
        // records of the batch), then one lock write per record.
        let windows: Vec<Option<RateWindow>> = heads
            .iter()
            .zip(&groups)
            .map(|(head, (_, items))| {
                head.as_ref().ok().map(|cfg| {
                    RateWindow::at(
                        &items[0].message.tenant_id,
                        cfg.config.limits.outbound_per_minute,
                        self.settings.window_clock.window_time(now),
                    )
                })
            })
            .collect();
        let reserved: Vec<bool> = join_all(windows.iter().zip(&groups).map(
            |(window, (_, items))| async move {
                match window {
                    Some(w) => match self.delivery.take_slots(w, items.len() as u32).await {
                        Ok(granted) => granted,
                        Err(e) => {
                            warn!(tenant_id = %w.tenant_id, store_error = %e, "taking the batch's rate slots failed: one lock transaction per record instead");
                            false
                        }
                    },
                    None => false,
                }
            },
        ))
        .await;
        let mut tenants = std::collections::HashSet::new();
        let (mut batched, mut reqs) = (Vec::new(), Vec::new());
        for (g, head) in heads.iter().enumerate() {
            let (Ok(cfg), item) = (head, &groups[g].1[0]) else {
                continue;
            };
            if reserved[g] {
                continue;
            }
            let tenant = &item.message.tenant_id;
            if tenants.insert(tenant.clone()) {
                batched.push(g);
                reqs.push(BeginRequest {
                    msg: &item.message,
                    sqs_message_id: &item.sqs_message_id,
                    owner: &owners[g],
                    window: RateWindow::at(
                        tenant,
                        cfg.config.limits.outbound_per_minute,
                        self.settings.window_clock.window_time(now),
                    ),
                });
            }
        }
        let mut begun: Vec<Option<Result<Begin, DeliveryError>>> =
            groups.iter().map(|_| None).collect();
        if !reqs.is_empty() {
            let results = self.delivery.begin_many(&reqs, deadline, now).await;
            for (g, r) in batched.into_iter().zip(results) {
                begun[g] = Some(r);
            }
        }
        let futs = groups
            .into_iter()
            .zip(heads)
            .zip(owners.into_iter().zip(begun))
            .zip(windows.into_iter().zip(reserved))
            .map(
                |((((group, items), head), (owner, begun)), (window, reserved))| {
                    let head = match (head, window) {
                        (Ok(cfg), Some(window)) if reserved => Head::Reserved {
                            cfg,
                            window,
                            slots: items.len() as u32,
                        },
                        (Ok(cfg), _) => Head::Ready {
                            cfg,
                            owner,
                            begun: begun.map(|b| (now, b)),
                        },
                        (Err(outcome), _) => Head::Done(outcome),
                    };
                    self.run_group(group, items, head, deadline)
                },
            );
        join_all(futs).await
    }

    async fn run_group(
        &self,
        group: String,
        items: Vec<Item>,
        head: Head,
        deadline: OffsetDateTime,
    ) -> Vec<(usize, RecordOutcome)> {
        let mut out = Vec::with_capacity(items.len());
        let mut blocked = false;
        // Slots taken for the group and not yet used by a lock, with their window.
        let mut prepaid = match &head {
            Head::Reserved { cfg, window, slots } => Some((cfg.clone(), window.clone(), *slots)),
            _ => None,
        };
        let mut head = match head {
            Head::Reserved { .. } => None,
            h => Some(h),
        };
        for item in items {
            let span = record_span(&item, &group);
            let outcome = if blocked {
                let _e = span.enter();
                info!(
                    outcome = "skipped",
                    "returned to the queue untouched: an earlier record of its group was returned"
                );
                Outcome::Skipped
            } else {
                let o = match (head.take(), &mut prepaid) {
                    (Some(Head::Done(o)), _) => o,
                    (Some(Head::Ready { cfg, owner, begun }), _) => {
                        self.lock_and_send(&item, &cfg, &owner, deadline, begun, false)
                            .instrument(span.clone())
                            .await
                            .0
                    }
                    // A slot of the group's is used only in the window it was taken in.
                    (_, Some((cfg, window, left))) if *left > 0 && self.in_window(window) => {
                        let owner = uuid::Uuid::new_v4().to_string();
                        let (o, locked) = self
                            .lock_and_send(&item, cfg, &owner, deadline, None, true)
                            .instrument(span.clone())
                            .await;
                        if locked {
                            *left -= 1;
                        }
                        o
                    }
                    _ => self.process(&item, deadline).instrument(span.clone()).await,
                };
                span.in_scope(|| self.log_outcome(&item, &o));
                o
            };
            blocked |= !outcome.acknowledged();
            out.push((
                item.index,
                RecordOutcome {
                    sqs_message_id: item.sqs_message_id,
                    outcome,
                },
            ));
        }
        if let Some((_, window, left)) = prepaid
            && left > 0
            && let Err(e) = self.delivery.return_slots(&window, left).await
        {
            warn!(tenant_id = %window.tenant_id, slots = left, store_error = %e, "unused rate slots could not be given back: the window allows fewer sends");
        }
        out
    }

    /// Whether `window` is still the current one.
    fn in_window(&self, window: &RateWindow) -> bool {
        let now = self
            .settings
            .window_clock
            .window_time(OffsetDateTime::now_utc());
        RateWindow::at(&window.tenant_id, window.limit, now).start == window.start
    }

    fn log_outcome(&self, item: &Item, o: &Outcome) {
        let last = item.receive_count >= self.settings.max_receive_count;
        match o {
            Outcome::Sent {
                provider_message_id,
                role,
                failed_over,
            } => info!(
                outcome = "sent",
                provider_message_id = %provider_message_id,
                endpoint_role = ?role,
                failed_over,
                "message sent"
            ),
            Outcome::AlreadySettled(state) => info!(
                outcome = "already_settled",
                state = state.as_str(),
                "already settled by an earlier delivery: acknowledged without sending"
            ),
            Outcome::Failed { class, reason } => warn!(
                outcome = "failed",
                error_class = %class,
                reason = %reason,
                "permanent failure recorded; not retried"
            ),
            Outcome::Unknown { reason } => warn!(
                outcome = "unknown",
                error_class = "ambiguous",
                reason = %reason,
                "outcome unknown (maybe delivered): recorded as unknown, never resent automatically"
            ),
            Outcome::Retry { class, reason } if last => error!(
                outcome = "retry",
                error_class = %class,
                reason = %reason,
                dead_letter = true,
                "last receive failed: the queue moves this message to the DLQ"
            ),
            Outcome::Retry { class, reason } => warn!(
                outcome = "retry",
                error_class = %class,
                reason = %reason,
                "failed without effect: returned to the queue"
            ),
            Outcome::Deferred { wait } => info!(
                outcome = "deferred",
                wait_ms = wait.as_millis() as u64,
                "tenant rate limit reached: returned to the queue untouched"
            ),
            Outcome::Locked => info!(
                outcome = "locked",
                "another invocation is sending this message: returned to the queue"
            ),
            Outcome::Poisoned { .. } | Outcome::Skipped => {}
        }
    }

    async fn poisoned(
        &self,
        sqs_message_id: &str,
        rejected: wagate::outbound::Rejected,
    ) -> Outcome {
        let reason = rejected.error.to_string();
        let (pk, tenant, key) = match &rejected.key {
            Some((t, k)) => {
                tracing::Span::current().record("tenant_id", t.as_str());
                tracing::Span::current().record("idempotency_key", k.as_str());
                (record_key(t, k), Some(t), Some(k.as_str()))
            }
            None => (rejected_key(sqs_message_id), None, None),
        };
        let written = self
            .delivery
            .record_rejected(
                &Rejection {
                    pk: &pk,
                    tenant_id: tenant,
                    idempotency_key: key,
                    code: rejected.error.code(),
                    reason: &reason,
                    sqs_message_id,
                },
                OffsetDateTime::now_utc(),
            )
            .await;
        match written {
            Ok(w) => error!(
                outcome = "poisoned",
                error_class = rejected.error.code(),
                reason = %reason,
                record = %pk,
                recorded = w,
                "body is not a valid OutboundMessage: recorded as failed and acknowledged"
            ),
            Err(e) => error!(
                outcome = "poisoned",
                error_class = rejected.error.code(),
                reason = %reason,
                record = %pk,
                recorded = false,
                store_error = %e,
                "body is not a valid OutboundMessage: acknowledged; recording it failed"
            ),
        }
        Outcome::Poisoned { reason }
    }

    fn timelocked_until(&self, tenant: &TenantId) -> Option<Instant> {
        let mut map = self.timelocked.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(tenant) {
            Some(until) if *until > Instant::now() => Some(*until),
            Some(_) => {
                map.remove(tenant);
                None
            }
            None => None,
        }
    }

    fn set_timelocked(&self, tenant: &TenantId, wait: Duration) {
        self.timelocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.clone(), Instant::now() + wait);
    }

    /// One record on its own: [`Sender::prepare`], then [`Sender::lock_and_send`].
    async fn process(&self, item: &Item, deadline: OffsetDateTime) -> Outcome {
        match self.prepare(item).await {
            Ok(cfg) => {
                let owner = uuid::Uuid::new_v4().to_string();
                self.lock_and_send(item, &cfg, &owner, deadline, None, false)
                    .await
                    .0
            }
            Err(outcome) => outcome,
        }
    }

    /// What a record needs before its lock: no WhatsApp back-off for the tenant, and the
    /// tenant's config (an unknown or inactive tenant is recorded failed here).
    async fn prepare(&self, item: &Item) -> Result<Arc<Loaded>, Outcome> {
        let tenant = &item.message.tenant_id;
        if self.timelocked_until(tenant).is_some() {
            return Err(Outcome::Retry {
                class: ErrorClass::RateLimited.as_str().into(),
                reason: "backing off after WhatsApp's rate limit (WA_REACHOUT_TIMELOCK)".into(),
            });
        }
        match self.cache.load(tenant).await {
            Ok(Some(cfg)) if cfg.config.is_active => Ok(cfg),
            Ok(found) => {
                let code = if found.is_some() {
                    "tenant_inactive"
                } else {
                    "unknown_tenant"
                };
                Err(self.reject(item, code).await)
            }
            Err(e) => Err(Outcome::Retry {
                class: "config".into(),
                reason: format!("tenant config could not be loaded: {e}"),
            }),
        }
    }

    /// Lock + rate slot, send, record the outcome. `begun`: the result of a lock attempt
    /// already made for this record (by the batch's transaction) and the time it was made
    /// at; without it the first attempt is made here. `prepaid`: the record's rate slot was
    /// taken with the group's ([`DeliveryWriter::take_slots`]), so only the lock is taken.
    /// Also says whether the lock was taken (the slot used).
    async fn lock_and_send(
        &self,
        item: &Item,
        loaded: &Loaded,
        owner: &str,
        deadline: OffsetDateTime,
        begun: Option<(OffsetDateTime, Result<Begin, DeliveryError>)>,
        prepaid: bool,
    ) -> (Outcome, bool) {
        let cfg: &OpenedConfig = &loaded.config;
        let lock = match self
            .acquire(item, cfg, owner, deadline, begun, prepaid)
            .await
        {
            Ok(lock) => lock,
            Err(outcome) => return (outcome, false),
        };
        (self.send_locked(item, loaded, &lock).await, true)
    }

    /// Takes the record's lock (and its rate slot unless `prepaid`), waiting for the next
    /// window when it fits the invocation. `Err`: the record's outcome without a lock.
    async fn acquire(
        &self,
        item: &Item,
        cfg: &OpenedConfig,
        owner: &str,
        deadline: OffsetDateTime,
        mut begun: Option<(OffsetDateTime, Result<Begin, DeliveryError>)>,
        prepaid: bool,
    ) -> Result<Lock, Outcome> {
        let msg = &item.message;
        let tenant = &msg.tenant_id;
        let mut contended = 0;
        let lock = loop {
            let (now, result) = match begun.take() {
                Some(earlier) => earlier,
                None => {
                    let now = OffsetDateTime::now_utc();
                    let window = RateWindow::at(
                        tenant,
                        cfg.limits.outbound_per_minute,
                        self.settings.window_clock.window_time(now),
                    );
                    let r = if prepaid {
                        let req = BeginRequest {
                            msg,
                            sqs_message_id: &item.sqs_message_id,
                            owner,
                            window,
                        };
                        self.delivery.lock_only(&req, deadline, now).await
                    } else {
                        self.delivery
                            .begin(msg, &item.sqs_message_id, owner, deadline, &window, now)
                            .await
                    };
                    (now, r)
                }
            };
            let window = RateWindow::at(
                tenant,
                cfg.limits.outbound_per_minute,
                self.settings.window_clock.window_time(now),
            );
            match result {
                Ok(Begin::Acquired(lock)) => break lock,
                Ok(Begin::Settled(r)) => return Err(Outcome::AlreadySettled(r.state)),
                Ok(Begin::Locked { .. }) => return Err(Outcome::Locked),
                Ok(Begin::Contended) if contended < 20 => {
                    contended += 1;
                    tokio::time::sleep(Duration::from_millis(25 * contended)).await;
                }
                Ok(Begin::Contended) => {
                    return Err(Outcome::Retry {
                        class: "contention".into(),
                        reason: "the record stayed contended".into(),
                    });
                }
                Ok(Begin::RateLimited) => {
                    // Wake a little after the window opens (clock skew between instances).
                    let wait = window.wait_from(
                        self.settings
                            .window_clock
                            .window_time(OffsetDateTime::now_utc()),
                    ) + Duration::from_millis(50);
                    let left = deadline - OffsetDateTime::now_utc();
                    let budget = Duration::try_from(left)
                        .unwrap_or_default()
                        .saturating_sub(self.settings.send_reserve);
                    if wait > budget {
                        return Err(Outcome::Deferred { wait });
                    }
                    info!(
                        wait_ms = wait.as_millis() as u64,
                        limit = window.limit,
                        "tenant rate limit reached: waiting for the next window"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    return Err(Outcome::Retry {
                        class: "store".into(),
                        reason: e.to_string(),
                    });
                }
            }
        };
        Ok(lock)
    }

    /// Sends a locked record (failing over when that is safe) and records the outcome.
    async fn send_locked(&self, item: &Item, loaded: &Loaded, lock: &Lock) -> Outcome {
        let cfg: &OpenedConfig = &loaded.config;
        let msg = &item.message;
        let tenant = &msg.tenant_id;
        let lock = lock.clone();

        let req = msg.send_request();
        let mut last: Option<(EndpointRole, String, ProviderError)> = None;
        let mut failed_over = false;
        for (i, (role, endpoint)) in candidates(cfg).into_iter().enumerate() {
            if i > 0 {
                failed_over = true;
            }
            let key = endpoint_key(endpoint);
            let permit = self.breakers.permit(&key);
            if !permit.allowed() {
                warn!(endpoint = %endpoint.base_url, endpoint_role = ?role, "circuit breaker open: endpoint skipped");
                continue;
            }
            tracing::Span::current().record("endpoint", endpoint.base_url.as_str());
            // Each endpoint through its own kind's client (failover across kinds).
            let kind = cfg.kind_of(endpoint);
            let Some(provider) = self.providers.get(kind) else {
                return self
                    .finish_failed(
                        &lock,
                        "unsupported_provider",
                        "no client for the provider",
                        Some((&endpoint.base_url, role)),
                    )
                    .await;
            };
            // Opened at load for the active endpoint; for the other one now, at failover.
            let credentials = match loaded.credentials(role).await {
                Ok(c) => c,
                Err(e) => {
                    let now = OffsetDateTime::now_utc();
                    warn!(endpoint = %endpoint.base_url, endpoint_role = ?role, error = %e, "the endpoint's credential could not be opened");
                    let reason = format!(
                        "the {} endpoint's credential could not be opened: {e}",
                        role.as_str()
                    );
                    return self.finish_retry(&lock, "config", &reason, now).await;
                }
            };
            let target = Target {
                base_url: &endpoint.base_url,
                credentials,
                device_id: endpoint.device_id.as_deref(),
            };
            let started = std::time::Instant::now();
            let res = provider.send(target, &req).await;
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.breakers.record(&key, permit, Health::of(&res));
            match res {
                Ok(receipt) => {
                    let now = OffsetDateTime::now_utc();
                    match self
                        .delivery
                        .mark_sent(
                            &lock,
                            tenant,
                            &receipt.provider_message_id,
                            &endpoint.base_url,
                            role,
                            Some(latency_ms),
                            now,
                        )
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => error!(
                            provider_message_id = %receipt.provider_message_id,
                            "sent, but the lock had expired: the record was not updated"
                        ),
                        Err(e) => error!(
                            provider_message_id = %receipt.provider_message_id,
                            store_error = %e,
                            "sent, but recording it failed: acknowledged anyway so it is not sent twice"
                        ),
                    }
                    return Outcome::Sent {
                        provider_message_id: receipt.provider_message_id,
                        role,
                        failed_over,
                    };
                }
                Err(e) => {
                    let class = e.class();
                    if class == ErrorClass::LoggedOut {
                        if let Err(err) = self
                            .status
                            .set_connection_status(tenant, ConnectionStatus::LoggedOut)
                            .await
                        {
                            warn!(store_error = %err, "could not record the logged-out status");
                        }
                        warn!(endpoint = %endpoint.base_url, endpoint_role = ?role, "device is logged out: tenant status set to logged_out");
                    }
                    let go_on = may_fail_over(&e);
                    if go_on {
                        warn!(endpoint = %endpoint.base_url, endpoint_role = ?role, error_class = class.as_str(), reason = %e, "send failed before reaching WhatsApp: trying the other endpoint if there is one");
                    }
                    last = Some((role, endpoint.base_url.clone(), e));
                    if !go_on {
                        break;
                    }
                }
            }
        }

        let now = OffsetDateTime::now_utc();
        let Some((role, endpoint, err)) = last else {
            let reason = "every endpoint's circuit breaker is open";
            return self.finish_retry(&lock, "circuit_open", reason, now).await;
        };
        let class = err.class();
        let reason = err.to_string();
        match class {
            ErrorClass::Permanent => {
                self.finish_failed(&lock, "permanent", &reason, Some((&endpoint, role)))
                    .await
            }
            ErrorClass::Ambiguous => {
                if let Err(e) = self
                    .delivery
                    .mark_unknown(&lock, &reason, &endpoint, role, now)
                    .await
                {
                    error!(store_error = %e, "recording the unknown outcome failed");
                }
                Outcome::Unknown { reason }
            }
            ErrorClass::RateLimited => {
                let wait = match &err {
                    ProviderError::RateLimited {
                        retry_after: Some(d),
                        ..
                    } => *d,
                    _ => self.settings.timelock_backoff,
                };
                self.set_timelocked(tenant, wait);
                self.finish_retry(&lock, class.as_str(), &reason, now).await
            }
            ErrorClass::Retryable | ErrorClass::LoggedOut | ErrorClass::BadCredentials => {
                self.finish_retry(&lock, class.as_str(), &reason, now).await
            }
        }
    }

    async fn finish_failed(
        &self,
        lock: &Lock,
        class: &str,
        reason: &str,
        at: Option<(&str, EndpointRole)>,
    ) -> Outcome {
        if let Err(e) = self
            .delivery
            .mark_failed(lock, class, reason, at, OffsetDateTime::now_utc())
            .await
        {
            error!(store_error = %e, "recording the permanent failure failed");
        }
        Outcome::Failed {
            class: class.into(),
            reason: reason.into(),
        }
    }

    async fn finish_retry(
        &self,
        lock: &Lock,
        class: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Outcome {
        if let Err(e) = self
            .delivery
            .release_for_retry(lock, class, reason, now)
            .await
        {
            // The lock still expires with the invocation; the retry wins it then.
            error!(store_error = %e, "releasing the record failed");
        }
        Outcome::Retry {
            class: class.into(),
            reason: reason.into(),
        }
    }

    /// Unknown or inactive tenant: recorded as failed (unless the key already has a record).
    async fn reject(&self, item: &Item, code: &str) -> Outcome {
        let msg = &item.message;
        let reason = match code {
            "tenant_inactive" => "the tenant is not active",
            _ => "no tenant has this id",
        };
        if let Err(e) = self
            .delivery
            .record_rejected(
                &Rejection {
                    pk: &record_key(&msg.tenant_id, &msg.idempotency_key),
                    tenant_id: Some(&msg.tenant_id),
                    idempotency_key: Some(&msg.idempotency_key),
                    code,
                    reason,
                    sqs_message_id: &item.sqs_message_id,
                },
                OffsetDateTime::now_utc(),
            )
            .await
        {
            error!(store_error = %e, "recording the refusal failed");
        }
        Outcome::Failed {
            class: code.into(),
            reason: reason.into(),
        }
    }
}

/// `ApproximateReceiveCount` of a record (1 if absent).
fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// The record's FIFO message group, or its tenant when the event carries none.
fn group_of(record: &SqsMessage, msg: &OutboundMessage) -> String {
    record
        .attributes
        .get("MessageGroupId")
        .cloned()
        .unwrap_or_else(|| msg.tenant_id.to_string())
}

/// The invocation deadline from the Lambda context: epoch milliseconds in AWS, the timeout
/// itself under cargo-lambda's emulator ([`wagate::runtime::config::invocation_time_left`]), so a local
/// run's locks and rate-limit waits see the time really left rather than a deadline in 1970.
pub fn deadline_from_ms(ms: u64) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now + wagate::runtime::config::invocation_time_left(ms, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_an_epoch_in_aws_and_a_duration_under_the_emulator() {
        let now = OffsetDateTime::now_utc();
        let in_30s = (now + Duration::from_secs(30)).unix_timestamp_nanos() / 1_000_000;
        let aws = deadline_from_ms(in_30s as u64);
        assert!((aws - now).whole_seconds() >= 29 && (aws - now).whole_seconds() <= 30);
        // cargo-lambda 1.9 sends its timeout (600000) instead of an epoch deadline.
        let emulator = deadline_from_ms(600_000);
        let left = (emulator - now).whole_seconds();
        assert!((599..=600).contains(&left), "{left}");
    }

    #[test]
    fn response_lists_exactly_the_records_not_acknowledged() {
        let b = BatchOutcome {
            records: vec![
                RecordOutcome {
                    sqs_message_id: "a".into(),
                    outcome: Outcome::Poisoned { reason: "x".into() },
                },
                RecordOutcome {
                    sqs_message_id: "b".into(),
                    outcome: Outcome::Retry {
                        class: "retryable".into(),
                        reason: "502".into(),
                    },
                },
                RecordOutcome {
                    sqs_message_id: "c".into(),
                    outcome: Outcome::Skipped,
                },
                RecordOutcome {
                    sqs_message_id: "d".into(),
                    outcome: Outcome::Unknown { reason: "t".into() },
                },
            ],
        };
        let ids: Vec<String> = b
            .response()
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        assert_eq!(ids, ["b", "c"]);
        let emf: serde_json::Value =
            serde_json::from_str(&b.emf_line(OffsetDateTime::UNIX_EPOCH)).unwrap();
        assert_eq!(emf["MessagesRetried"], 1);
        assert_eq!(emf["MessagesSkipped"], 1);
        assert_eq!(emf["BatchRecords"], 4);
        assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Namespace"], "wagate");
    }
}
