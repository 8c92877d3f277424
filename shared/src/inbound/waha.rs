//! WAHA webhooks: normalisation of the envelope `{id: "evt_…", timestamp (ms), event,
//! session, me, payload, environment, engine}` into [`InboundEvent`] (verification is in
//! [`super::verify`]: HMAC-SHA512 and the replay window).
//!
//! `message` → a message (`payload.id`, `from`, `body`, `replyTo`); `message.ack` → a
//! receipt for `payload.id` with the state DEVICE → `delivered`, READ → `read`, PLAYED →
//! `played`, ERROR → `failed`, SERVER → `server`, PENDING → `pending` (the delivery record
//! takes delivered/read/played); anything else (`session.status`, …) → `other`. Each event
//! is deduplicated on WAHA's event id (`evt_<ulid>`, the same on every retry).

use serde_json::Value;
use time::OffsetDateTime;

use super::{
    Chat, EventType, InboundEvent, Party, Receipt, ReplyTo, body_hash_key, str_of, user_jid,
};
use crate::tenant::{ProviderKind, TenantId};

/// A receipt state as wagate's delivery records read it.
pub fn ack_state(ack_name: &str) -> String {
    match ack_name {
        "DEVICE" => "delivered",
        "READ" => "read",
        "PLAYED" => "played",
        "ERROR" => "failed",
        "SERVER" => "server",
        "PENDING" => "pending",
        other => return other.to_ascii_lowercase(),
    }
    .to_string()
}

fn chat(id: &str) -> Chat {
    Chat {
        is_group: id.ends_with("@g.us"),
        lid: None,
        id: if id.ends_with("@g.us") {
            id.to_string()
        } else {
            user_jid(id)
        },
    }
}

/// Normalises a verified WAHA webhook. Never fails: an unknown shape becomes
/// [`EventType::Other`] with the raw payload.
pub fn normalize(
    tenant_id: &TenantId,
    raw: Value,
    raw_body: &[u8],
    received_at: OffsetDateTime,
) -> InboundEvent {
    let mut ev = InboundEvent::blank(tenant_id, ProviderKind::Waha, received_at);
    let event_id = str_of(raw.get("id"));
    if let Some(event) = str_of(raw.get("event")) {
        ev.provider_event = event;
    }
    ev.session_id = str_of(raw.get("session"));
    ev.account = str_of(raw.pointer("/me/id")).map(|id| user_jid(&id));
    ev.occurred_at = raw.get("timestamp").and_then(Value::as_i64).and_then(|ms| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
    });
    let p = raw.get("payload").cloned().unwrap_or(Value::Null);
    let from_me = p.get("fromMe").and_then(Value::as_bool);
    match ev.provider_event.as_str() {
        "message" | "message.any" => {
            let id = str_of(p.get("id"));
            // Our own messages come back as `fromMe`: the chat is `to`.
            let chat_id = if from_me == Some(true) {
                str_of(p.get("to"))
            } else {
                str_of(p.get("from"))
            };
            let sender = str_of(p.get("participant")).or_else(|| str_of(p.get("from")));
            if let (Some(id), Some(chat_id), Some(sender)) = (id, chat_id, sender) {
                ev.event_type = EventType::Message;
                ev.provider_event_id = Some(id);
                ev.chat = Some(chat(&chat_id));
                ev.sender = Some(Party {
                    id: user_jid(&sender),
                    lid: None,
                    name: str_of(p.pointer("/_data/Info/PushName")),
                });
                ev.text = str_of(p.get("body"));
                ev.is_from_me = from_me;
                ev.reply_to = str_of(p.pointer("/replyTo/id")).map(|id| ReplyTo {
                    message_id: id,
                    quoted_text: str_of(p.pointer("/replyTo/body")),
                });
            }
        }
        "message.ack" => {
            if let Some(id) = str_of(p.get("id")) {
                ev.event_type = EventType::Receipt;
                let state = ack_state(p.get("ackName").and_then(Value::as_str).unwrap_or(""));
                ev.provider_event_id = Some(id.clone());
                ev.chat = str_of(p.get("from")).map(|c| chat(&c));
                ev.is_from_me = from_me;
                ev.receipt = Some(Receipt {
                    message_ids: vec![id],
                    state,
                });
            }
        }
        _ => {}
    }
    ev.dedup_key = match (&event_id, &ev.provider_event_id) {
        (Some(evt), _) => format!("waha:{evt}"),
        (None, Some(id)) => format!("waha:{}:{id}", ev.provider_event),
        (None, None) => body_hash_key(raw_body),
    };
    if ev.provider_event_id.is_none() {
        ev.provider_event_id = event_id;
    }
    ev.raw = raw;
    ev
}
