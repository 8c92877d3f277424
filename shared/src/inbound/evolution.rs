//! Evolution API v2 webhooks: normalisation of `{event, instance, data, destination,
//! date_time, sender, server_url, apikey}` into [`InboundEvent`] (verification is in
//! [`super::verify`]: an HS256 JWT plus the source allowlist; Evolution signs no body).
//!
//! **The body carries the instance's `apikey`**: [`strip_secrets`] removes it before the
//! event is normalised, so it is never queued or logged. `messages.upsert` → a message
//! (`data.key.id`, `remoteJid`, `conversation` or `extendedTextMessage.text`, the quoted
//! `contextInfo.stanzaId`); `messages.update` → a receipt for `data.keyId` with
//! DELIVERY_ACK → `delivered`, READ → `read`, PLAYED → `played`, ERROR → `failed`,
//! SERVER_ACK → `server`; anything else (`connection.update`, …) → `other`. Evolution's
//! events have no event id: messages deduplicate on the message id, receipts on message id
//! and state, the rest on the body's hash.

use serde_json::Value;
use time::OffsetDateTime;

use super::{Chat, EventType, InboundEvent, Party, Receipt, ReplyTo, body_hash_key, str_of};
use crate::tenant::{ProviderKind, TenantId};

/// The body fields that hold a credential.
pub const SECRET_FIELDS: &[&str] = &["apikey"];

/// Removes the credentials an Evolution body carries (its top-level `apikey`).
pub fn strip_secrets(raw: &mut Value) {
    if let Some(o) = raw.as_object_mut() {
        for f in SECRET_FIELDS {
            o.remove(*f);
        }
    }
}

/// A receipt state as wagate's delivery records read it.
pub fn update_state(status: &str) -> String {
    match status {
        "DELIVERY_ACK" => "delivered",
        "READ" => "read",
        "PLAYED" => "played",
        "ERROR" => "failed",
        "SERVER_ACK" => "server",
        "PENDING" => "pending",
        other => return other.to_ascii_lowercase(),
    }
    .to_string()
}

fn chat(id: &str) -> Chat {
    Chat {
        is_group: id.ends_with("@g.us"),
        lid: None,
        id: id.to_string(),
    }
}

/// Normalises a verified Evolution webhook (its `apikey` removed first). Never fails.
pub fn normalize(
    tenant_id: &TenantId,
    mut raw: Value,
    raw_body: &[u8],
    received_at: OffsetDateTime,
) -> InboundEvent {
    strip_secrets(&mut raw);
    let mut ev = InboundEvent::blank(tenant_id, ProviderKind::Evolution, received_at);
    if let Some(event) = str_of(raw.get("event")) {
        ev.provider_event = event;
    }
    ev.session_id = str_of(raw.get("instance"));
    ev.account = str_of(raw.get("sender"));
    ev.occurred_at = str_of(raw.get("date_time"));
    let d = raw.get("data").cloned().unwrap_or(Value::Null);
    match ev.provider_event.as_str() {
        "messages.upsert" => {
            let id = str_of(d.pointer("/key/id"));
            let jid = str_of(d.pointer("/key/remoteJid"));
            let from_me = d.pointer("/key/fromMe").and_then(Value::as_bool);
            if let (Some(id), Some(jid)) = (id, jid) {
                ev.event_type = EventType::Message;
                ev.provider_event_id = Some(id.clone());
                ev.dedup_key = format!("evolution:message:{id}");
                let sender = str_of(d.pointer("/key/participant")).unwrap_or_else(|| jid.clone());
                ev.chat = Some(chat(&jid));
                ev.sender = Some(Party {
                    id: sender,
                    lid: None,
                    name: str_of(d.get("pushName")),
                });
                ev.is_from_me = from_me;
                ev.text = str_of(d.pointer("/message/conversation"))
                    .or_else(|| str_of(d.pointer("/message/extendedTextMessage/text")));
                let ctx = d
                    .pointer("/message/extendedTextMessage/contextInfo")
                    .or_else(|| d.get("contextInfo"));
                ev.reply_to = ctx
                    .and_then(|c| str_of(c.get("stanzaId")))
                    .map(|id| ReplyTo {
                        message_id: id,
                        quoted_text: ctx
                            .and_then(|c| str_of(c.pointer("/quotedMessage/conversation"))),
                    });
            }
        }
        "messages.update" => {
            if let Some(id) = str_of(d.get("keyId")) {
                let state = update_state(d.get("status").and_then(Value::as_str).unwrap_or(""));
                ev.event_type = EventType::Receipt;
                ev.provider_event_id = Some(id.clone());
                ev.dedup_key = format!("evolution:update:{id}:{state}");
                ev.chat = str_of(d.get("remoteJid")).map(|c| chat(&c));
                ev.is_from_me = d.get("fromMe").and_then(Value::as_bool);
                ev.receipt = Some(Receipt {
                    message_ids: vec![id],
                    state,
                });
            }
        }
        _ => {}
    }
    if ev.dedup_key.is_empty() {
        ev.dedup_key = body_hash_key(raw_body);
    }
    ev.raw = raw;
    ev
}
