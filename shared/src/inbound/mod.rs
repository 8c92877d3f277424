//! Inbound: a tenant's WhatsApp server posts its events to the webhook ingress. This file holds
//! the contract the platform reads from the inbound queue, [`InboundEvent`] (JSON Schema:
//! `schemas/inbound-event.schema.json`); each provider kind has one file for its signature
//! scheme and its normalisation into that contract ([`gowa`]); [`signature`] holds the
//! HMAC schemes they share. [`verify`] and [`normalize`] pick the kind's.

pub mod evolution;
pub mod gowa;
pub mod meta;
pub mod signature;
pub mod verify;
pub mod waha;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::secrets::Secret;
use crate::tenant::{ProviderKind, TenantId, WebhookSecret};

pub use signature::SignatureError;

/// Version of the [`InboundEvent`] shape; bumped on a breaking change. 2: `provider` may be
/// `waha`, `evolution` or `meta` as well as `gowa` (issue 16); the fields are those of 1.
pub const INBOUND_SCHEMA_VERSION: u32 = 2;

/// What kind of event this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// An incoming (or own, `isFromMe`) chat message.
    Message,
    /// A delivery/read receipt for messages (`receipt.messageIds`).
    Receipt,
    /// Group members joined, left, were promoted or demoted.
    GroupParticipants,
    /// Anything else; the raw payload carries it.
    Other,
}

impl EventType {
    /// As the platform reads it (`eventType`, the queue's `eventType` attribute).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Message => "message",
            EventType::Receipt => "receipt",
            EventType::GroupParticipants => "group_participants",
            EventType::Other => "other",
        }
    }
}

/// A sender or participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    /// WhatsApp JID (`628…@s.whatsapp.net`).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The chat an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lid: Option<String>,
    pub is_group: bool,
}

/// Media carried by a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Media {
    /// image, video, audio, document, sticker.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Path on the WhatsApp server (GOWA auto-download).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// The message a message replies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyTo {
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_text: Option<String>,
}

/// A delivery/read receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// Provider message ids the receipt is for (our outbound messages).
    pub message_ids: Vec<String>,
    /// delivered, read, played, … as the provider says it.
    pub state: String,
}

/// A change of group membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupChange {
    /// join, leave, promote, demote.
    pub action: String,
    pub participants: Vec<String>,
}

/// One normalised webhook event, as the platform reads it from the inbound queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundEvent {
    pub schema_version: u32,
    pub tenant_id: String,
    pub provider: ProviderKind,
    pub event_type: EventType,
    /// The provider's own event name (`message`, `message.ack`, …).
    pub provider_event: String,
    /// The provider's id of the event or message, when it has one.
    pub provider_event_id: Option<String>,
    /// What deduplicates retries of this event (also the SQS deduplication source).
    pub dedup_key: String,
    /// The receiving WhatsApp account (JID).
    pub account: Option<String>,
    /// The provider's device/session id.
    pub session_id: Option<String>,
    pub sender: Option<Party>,
    pub chat: Option<Chat>,
    pub text: Option<String>,
    pub media: Option<Media>,
    pub reply_to: Option<ReplyTo>,
    pub receipt: Option<Receipt>,
    pub group: Option<GroupChange>,
    pub is_from_me: Option<bool>,
    /// The provider's timestamp of the event, as sent (RFC 3339).
    pub occurred_at: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The webhook body as received (parsed JSON).
    pub raw: Value,
}

impl InboundEvent {
    /// An event of `provider` with nothing but its tenant and arrival filled in
    /// ([`EventType::Other`], provider event `unknown`).
    pub fn blank(
        tenant_id: &TenantId,
        provider: ProviderKind,
        received_at: OffsetDateTime,
    ) -> Self {
        InboundEvent {
            schema_version: INBOUND_SCHEMA_VERSION,
            tenant_id: tenant_id.to_string(),
            provider,
            event_type: EventType::Other,
            provider_event: String::from("unknown"),
            provider_event_id: None,
            dedup_key: String::new(),
            account: None,
            session_id: None,
            sender: None,
            chat: None,
            text: None,
            media: None,
            reply_to: None,
            receipt: None,
            group: None,
            is_from_me: None,
            occurred_at: None,
            received_at,
            raw: Value::Null,
        }
    }

    /// The SQS FIFO deduplication id: hex SHA-256 of tenant and dedup key (64 characters,
    /// within SQS's 128 and its character set).
    pub fn deduplication_id(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.tenant_id.as_bytes());
        h.update(b"\n");
        h.update(self.dedup_key.as_bytes());
        hex::encode(h.finalize())
    }
}

/// The header that carries the signature of a `kind` server's webhooks.
pub fn signature_header(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Gowa | ProviderKind::Meta => gowa::SIGNATURE_HEADER,
        ProviderKind::Waha => "x-webhook-hmac",
        ProviderKind::Evolution => "authorization",
    }
}

/// Verifies a `kind` webhook's `signature` (the value of [`signature_header`]) over the raw
/// `body` against every secret current at `now`; returns the id of the secret that matched.
/// Only the schemes that need nothing but one header and the webhook secrets (GOWA); a
/// whole request of any kind goes through [`verify::verify_webhook`].
pub fn verify<'a>(
    kind: ProviderKind,
    signature: Option<&str>,
    body: &[u8],
    secrets: &'a [WebhookSecret<Secret>],
    now: OffsetDateTime,
) -> Result<&'a str, SignatureError> {
    match kind {
        ProviderKind::Gowa => gowa::verify(signature, body, secrets, now),
        ProviderKind::Waha | ProviderKind::Evolution | ProviderKind::Meta => {
            let _ = (signature, body, secrets, now);
            Err(SignatureError::UnsupportedKind)
        }
    }
}

/// Normalises a verified `kind` webhook (its JSON `raw`, its exact bytes `raw_body`) into the
/// contract. Never fails: an unknown shape becomes [`EventType::Other`] with the raw payload.
pub fn normalize(
    kind: ProviderKind,
    tenant_id: &TenantId,
    raw: Value,
    raw_body: &[u8],
    received_at: OffsetDateTime,
) -> InboundEvent {
    match kind {
        ProviderKind::Gowa => gowa::normalize(tenant_id, raw, raw_body, received_at),
        ProviderKind::Waha => waha::normalize(tenant_id, raw, raw_body, received_at),
        ProviderKind::Evolution => evolution::normalize(tenant_id, raw, raw_body, received_at),
        ProviderKind::Meta => meta::normalize(tenant_id, raw, raw_body, received_at),
    }
}

/// Every event of one verified webhook: Meta batches several messages and statuses in one
/// POST (one event each, [`meta::normalize_all`]); every other kind posts one event.
pub fn normalize_all(
    kind: ProviderKind,
    tenant_id: &TenantId,
    raw: Value,
    raw_body: &[u8],
    received_at: OffsetDateTime,
) -> Vec<InboundEvent> {
    match kind {
        ProviderKind::Meta => meta::normalize_all(tenant_id, raw, raw_body, received_at),
        _ => vec![normalize(kind, tenant_id, raw, raw_body, received_at)],
    }
}

/// The deduplication key of an event that carries no id of its own: a hash of its bytes.
pub(crate) fn body_hash_key(raw_body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(raw_body)))
}

/// A non-empty string field.
pub(crate) fn str_of(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
}

/// `<digits>@c.us` (WAHA's chat ids) as a WhatsApp user JID (`<digits>@s.whatsapp.net`).
pub(crate) fn user_jid(id: &str) -> String {
    match id.strip_suffix("@c.us") {
        Some(user) => format!("{user}@s.whatsapp.net"),
        None if !id.contains('@') => format!("{id}@s.whatsapp.net"),
        None => id.to_string(),
    }
}
