//! Delivery records: one idempotency and delivery record per outbound message, keyed by
//! `pk = tenantId#idempotencyKey`. This file holds the states and records (pure); the
//! repository traits are [`store`], the DynamoDB adapter (the messages table, and the rate
//! window the lock shares a request with) is [`dynamo`].
//!
//! States and the only moves between them:
//!
//! ```text
//!  (none) ──begin──▶ in_progress ──▶ sent ──receipt──▶ delivered ──receipt──▶ read
//!                      │  ▲   │  │      └──────────receipt (read)──────────────▲
//!                      │  │   │  └──▶ failed    (permanent: recorded, never retried;
//!                      │  │   │                    also sent ──failed receipt──▶ failed)
//!                      │  │   └─────▶ unknown   (ambiguous: maybe delivered, never resent)
//!                      ▼  │
//!                    retrying (returned to the queue; `reason` holds the last failure)
//! ```
//!
//! `begin` (or `begin_many`, the same for several records at once) wins the record only when
//! it is absent, `retrying`, an `in_progress` whose lock has expired (the lock lives no longer
//! than the invocation that took it), or past its `expiresAt` (DynamoDB deletes TTL items
//! late, and moto never, so expiry is checked in every condition and read), and only with a
//! free slot of the tenant's rate window: both or neither. Every outcome write is
//! conditional on still holding the lock. Receipts look the record up by provider message id
//! within the tenant (one tenant's receipt can never touch another tenant's record) and only
//! move forwards.

pub mod analytics;
pub mod dynamo;
pub mod store;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::outbound::ratelimit::RateWindow;
use crate::outbound::{MessageContent, OutboundMessage};
use crate::tenant::{EndpointRole, TenantId};

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
    /// When a failed receipt came (the server accepted the message, then reported it failed).
    #[serde(default)]
    pub failed_at: Option<String>,
    /// How long the WhatsApp server took to accept the message (the send request's round
    /// trip, written with the sent outcome; analytics' latency percentiles read it).
    #[serde(default)]
    pub send_latency_ms: Option<u64>,
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

/// The lock an invocation holds on a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub pk: String,
    pub owner: String,
    /// Epoch milliseconds.
    pub until_ms: i64,
}

/// A body refused before any send, for [`store::DeliveryWriter::record_rejected`].
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

/// What [`store::DeliveryWriter::begin`] found.
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

/// One record for [`store::DeliveryWriter::begin_many`].
#[derive(Debug, Clone)]
pub struct BeginRequest<'a> {
    pub msg: &'a OutboundMessage,
    pub sqs_message_id: &'a str,
    /// The lock owner: one per record and invocation.
    pub owner: &'a str,
    /// The tenant's current window, one slot of which the record takes.
    pub window: RateWindow,
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

impl std::fmt::Display for ReceiptOutcome {
    /// What happened, for a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReceiptOutcome::Updated { from, to } => {
                write!(f, "updated {} -> {}", from.as_str(), to.as_str())
            }
            ReceiptOutcome::Unchanged { current } => write!(f, "unchanged ({})", current.as_str()),
            ReceiptOutcome::NotFound => f.write_str("no record (not sent through wagate)"),
            ReceiptOutcome::Ignored => f.write_str("ignored state"),
        }
    }
}

/// The receipt states that move a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptState {
    Delivered,
    Read,
    /// The server accepted the message, then reported it undeliverable (Meta `statuses`
    /// `failed`, WAHA ack `ERROR`, Evolution `ERROR`, each normalised to `failed`).
    Failed,
}

/// The error class a failed receipt records (`errorClass`).
pub const FAILED_RECEIPT_CLASS: &str = "delivery_failed";

/// The reason a failed receipt records.
pub const FAILED_RECEIPT_REASON: &str =
    "the WhatsApp server accepted the message, then reported it failed (failed receipt)";

impl ReceiptState {
    /// GOWA's `receipt_type` (as the ingress passes it in `receipt.state`): `delivered`;
    /// `read` and `played` (a voice note listened to) mean read. Receipts from the tenant's
    /// own other devices (`read-self`, `played-self`) and technical ones move nothing.
    pub fn from_provider(state: &str) -> Option<Self> {
        match state.trim().to_ascii_lowercase().as_str() {
            "delivered" | "delivery" => Some(ReceiptState::Delivered),
            "read" | "played" => Some(ReceiptState::Read),
            "failed" => Some(ReceiptState::Failed),
            _ => None,
        }
    }

    /// The state a record moves to.
    pub fn target(self) -> DeliveryState {
        match self {
            ReceiptState::Delivered => DeliveryState::Delivered,
            ReceiptState::Read => DeliveryState::Read,
            ReceiptState::Failed => DeliveryState::Failed,
        }
    }

    /// The states this receipt moves a record from: a receipt never moves a record back
    /// (a late "delivered" after "read") nor touches one that was not sent. A failure report
    /// moves only a record that is sent and not yet delivered (a device that has the message
    /// makes a later "failed" moot).
    pub fn moves_from(self) -> &'static [DeliveryState] {
        match self {
            ReceiptState::Delivered => &[DeliveryState::Sent],
            ReceiptState::Read => &[DeliveryState::Sent, DeliveryState::Delivered],
            ReceiptState::Failed => &[DeliveryState::Sent],
        }
    }

    /// The attribute that records when the receipt came (`deliveredAt`, `readAt`).
    pub fn stamp_attribute(self) -> &'static str {
        match self {
            ReceiptState::Delivered => "deliveredAt",
            ReceiptState::Read => "readAt",
            ReceiptState::Failed => "failedAt",
        }
    }
}

/// `text`, `image` or `document`: what a record says of its content.
pub fn content_type(content: &MessageContent) -> &'static str {
    match content {
        MessageContent::Text { .. } => "text",
        MessageContent::Image { .. } => "image",
        MessageContent::Document { .. } => "document",
    }
}

/// Bounds what a record keeps of a failure text.
pub fn bounded(reason: &str) -> String {
    reason.chars().take(500).collect()
}

/// Epoch milliseconds (lock expiry).
pub fn epoch_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
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
        assert_eq!(
            ReceiptState::from_provider("failed"),
            Some(ReceiptState::Failed)
        );
        assert_eq!(ReceiptState::Failed.moves_from(), [DeliveryState::Sent]);
        for other in ["read-self", "played-self", "sender", "retry", ""] {
            assert_eq!(ReceiptState::from_provider(other), None, "{other}");
        }
    }
}
