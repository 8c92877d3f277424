//! GOWA (go-whatsapp-web-multidevice) webhooks: the signature scheme and the normalisation
//! into [`InboundEvent`].
//!
//! GOWA signs each webhook with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body)>`
//! keyed with the webhook secret (no timestamp; retried up to 5 times within 30 s on any
//! non-2xx). Its events: the v8+ envelope `{event, device_id, session_id?, timestamp?,
//! payload}` (`message`, `message.ack`, `group.participants`, others passed on as `other`),
//! and the flat pre-v8 message shape.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::signature::{SignatureError, verify_sha256};
use super::{
    Chat, EventType, GroupChange, InboundEvent, Media, Party, Receipt, ReplyTo, body_hash_key,
};
use crate::secrets::Secret;
use crate::tenant::{ProviderKind, TenantId, WebhookSecret};

/// GOWA's signature header (the same as Meta's).
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Verifies `X-Hub-Signature-256` over `body` against every secret current at `now`;
/// returns the id of the secret that matched.
pub fn verify<'a>(
    signature: Option<&str>,
    body: &[u8],
    secrets: &'a [WebhookSecret<Secret>],
    now: OffsetDateTime,
) -> Result<&'a str, SignatureError> {
    verify_sha256(signature, body, secrets, now)
}

fn s(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
}

fn is_group_jid(jid: &str) -> bool {
    jid.ends_with("@g.us")
}

const MEDIA_KINDS: &[&str] = &["image", "video", "audio", "document", "sticker"];

fn media_of(payload: &Map<String, Value>) -> Option<Media> {
    MEDIA_KINDS.iter().find_map(|kind| {
        let v = payload.get(*kind)?;
        match v {
            Value::String(p) if !p.is_empty() => Some(Media {
                kind: kind.to_string(),
                caption: None,
                path: Some(p.clone()),
                url: None,
                mime_type: None,
            }),
            Value::Object(o) => Some(Media {
                kind: kind.to_string(),
                caption: s(o.get("caption")),
                path: s(o.get("path")).or_else(|| s(o.get("media_path"))),
                url: s(o.get("url")),
                mime_type: s(o.get("mime_type")).or_else(|| s(o.get("mimetype"))),
            }),
            _ => None,
        }
    })
}

/// Normalises a GOWA webhook (v8+ envelope `{event, device_id, session_id?, timestamp?,
/// payload}`, or the flat pre-v8 message shape). Never fails: an unknown shape becomes
/// [`EventType::Other`] with the raw payload. `raw_body` (the exact bytes) keys the
/// deduplication of events that carry no id.
pub fn normalize(
    tenant_id: &TenantId,
    raw: Value,
    raw_body: &[u8],
    received_at: OffsetDateTime,
) -> InboundEvent {
    let mut ev = InboundEvent::blank(tenant_id, ProviderKind::Gowa, received_at);
    if let Some(root) = raw.as_object() {
        match (
            root.get("event").and_then(Value::as_str),
            root.get("payload"),
        ) {
            (Some(event), payload) => {
                ev.provider_event = event.to_string();
                ev.account = s(root.get("device_id"));
                ev.session_id = s(root.get("session_id"));
                ev.occurred_at = s(root.get("timestamp"));
                let empty = Map::new();
                let p = payload.and_then(Value::as_object).unwrap_or(&empty);
                fill_envelope(&mut ev, event, p);
            }
            (None, _) if root.contains_key("message") || root.contains_key("sender_id") => {
                fill_legacy(&mut ev, root);
            }
            _ => {}
        }
    }
    if ev.dedup_key.is_empty() {
        ev.dedup_key = match &ev.provider_event_id {
            Some(id) => format!("{}:{id}", ev.provider_event),
            None => body_hash_key(raw_body),
        };
    }
    ev.raw = raw;
    ev
}

/// What every [`EventType::Message`] carries: the message id, its sender and its chat. A
/// `message` webhook without them (no `payload`, or a payload missing one) is passed on as
/// [`EventType::Other`] with its raw body, never as a message with empty fields.
fn is_complete_message(id: Option<&Value>, sender: Option<&Value>, chat: Option<&Value>) -> bool {
    s(id).is_some() && s(sender).is_some() && s(chat).is_some()
}

fn fill_envelope(ev: &mut InboundEvent, event: &str, p: &Map<String, Value>) {
    match event {
        "message" if !is_complete_message(p.get("id"), p.get("from"), p.get("chat_id")) => {
            tracing::debug!(
                provider_event = event,
                "message webhook without an id, a sender or a chat: passed on as `other`"
            );
            fill_other(ev, p);
        }
        "message" => {
            ev.event_type = EventType::Message;
            ev.provider_event_id = s(p.get("id"));
            let chat_id = s(p.get("chat_id"));
            ev.chat = chat_id.map(|id| Chat {
                is_group: is_group_jid(&id),
                lid: s(p.get("chat_lid")),
                id,
            });
            ev.sender = s(p.get("from")).map(|id| Party {
                id,
                lid: s(p.get("from_lid")),
                name: s(p.get("sender_display_name")).or_else(|| s(p.get("from_name"))),
            });
            ev.media = media_of(p);
            // With media, GOWA copies the caption into `body`; keep text for real text.
            let body = s(p.get("body"));
            ev.text = match &ev.media {
                Some(m) if m.caption.is_some() && body == m.caption => None,
                _ => body,
            };
            ev.reply_to = s(p.get("replied_to_id")).map(|id| ReplyTo {
                message_id: id,
                quoted_text: s(p.get("quoted_body")),
            });
            ev.is_from_me = p.get("is_from_me").and_then(Value::as_bool);
            ev.occurred_at = s(p.get("timestamp")).or(ev.occurred_at.take());
        }
        "message.ack" => {
            ev.event_type = EventType::Receipt;
            let mut ids: Vec<String> = p
                .get("ids")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| s(Some(v))).collect())
                .unwrap_or_default();
            let state = s(p.get("receipt_type")).unwrap_or_else(|| "unknown".into());
            ev.chat = s(p.get("chat_id")).map(|id| Chat {
                is_group: is_group_jid(&id),
                lid: None,
                id,
            });
            ev.sender = s(p.get("from")).map(|id| Party {
                id,
                lid: None,
                name: s(p.get("sender_display_name")),
            });
            let mut sorted = ids.clone();
            sorted.sort();
            ev.dedup_key = format!("message.ack:{state}:{}", sorted.join(","));
            ev.provider_event_id = (ids.len() == 1).then(|| ids[0].clone());
            ids.dedup();
            ev.receipt = Some(Receipt {
                message_ids: ids,
                state,
            });
        }
        "group.participants" => {
            ev.event_type = EventType::GroupParticipants;
            ev.chat = s(p.get("chat_id")).map(|id| Chat {
                is_group: true,
                lid: None,
                id,
            });
            ev.group = Some(GroupChange {
                action: s(p.get("type")).unwrap_or_else(|| "unknown".into()),
                participants: p
                    .get("jids")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| s(Some(v))).collect())
                    .unwrap_or_default(),
            });
        }
        _ => fill_other(ev, p),
    }
}

/// An event passed on as [`EventType::Other`]: its id and chat when it names them.
fn fill_other(ev: &mut InboundEvent, p: &Map<String, Value>) {
    ev.event_type = EventType::Other;
    ev.provider_event_id = s(p.get("id"));
    ev.chat = s(p.get("chat_id")).map(|id| Chat {
        is_group: is_group_jid(&id),
        lid: None,
        id,
    });
}

/// Pre-v8 GOWA message webhooks: `{sender_id, chat_id, from, pushname, timestamp,
/// message: {text, id, replied_id, quoted_message}, image|video|…}` with no `event` key.
fn fill_legacy(ev: &mut InboundEvent, root: &Map<String, Value>) {
    ev.provider_event = "message".into();
    let empty = Map::new();
    let msg = root
        .get("message")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if !is_complete_message(msg.get("id"), root.get("sender_id"), root.get("chat_id")) {
        tracing::debug!(
            "legacy message webhook without an id, a sender or a chat: passed on as `other`"
        );
        ev.provider_event_id = s(msg.get("id"));
        return;
    }
    ev.event_type = EventType::Message;
    ev.provider_event_id = s(msg.get("id"));
    ev.text = s(msg.get("text"));
    ev.reply_to = s(msg.get("replied_id")).map(|id| ReplyTo {
        message_id: id,
        quoted_text: s(msg.get("quoted_message")),
    });
    let sender = s(root.get("sender_id")).map(|id| {
        if id.contains('@') {
            id
        } else {
            format!("{id}@s.whatsapp.net")
        }
    });
    ev.sender = sender.map(|id| Party {
        id,
        lid: None,
        name: s(root.get("pushname")),
    });
    let chat = s(root.get("chat_id")).map(|id| {
        if id.contains('@') {
            id
        } else {
            format!("{id}@s.whatsapp.net")
        }
    });
    ev.chat = chat.map(|id| Chat {
        is_group: is_group_jid(&id),
        lid: None,
        id,
    });
    ev.media = media_of(root);
    ev.occurred_at = s(root.get("timestamp"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn norm(v: Value) -> InboundEvent {
        let bytes = serde_json::to_vec(&v).unwrap();
        normalize(
            &"t1".parse().unwrap(),
            v,
            &bytes,
            datetime!(2026-08-22 10:00 UTC),
        )
    }

    #[test]
    fn unknown_event_is_other_with_raw_payload() {
        let e = norm(json!({"event": "call.offer", "payload": {"id": "c1"}}));
        assert_eq!(e.event_type, EventType::Other);
        assert_eq!(e.provider_event, "call.offer");
        assert_eq!(e.dedup_key, "call.offer:c1");
        assert_eq!(e.raw["payload"]["id"], "c1");
    }

    #[test]
    fn message_without_payload_id_sender_or_chat_is_other_not_an_empty_message() {
        for v in [
            json!({"event": "message", "device_id": "628@s.whatsapp.net"}),
            json!({"event": "message", "payload": "text"}),
            json!({"event": "message", "payload": {"from": "a@s.whatsapp.net", "chat_id": "a@s.whatsapp.net", "body": "x"}}),
            json!({"event": "message", "payload": {"id": "m1", "chat_id": "a@s.whatsapp.net", "body": "x"}}),
            json!({"event": "message", "payload": {"id": "m1", "from": "a@s.whatsapp.net", "body": "x"}}),
            json!({"event": "message", "payload": {"id": "", "from": "a@s.whatsapp.net", "chat_id": "a@s.whatsapp.net"}}),
            json!({"message": {"text": "hi"}, "chat_id": "628"}),
        ] {
            let e = norm(v.clone());
            assert_eq!(e.event_type, EventType::Other, "{v}");
            assert_eq!(e.provider_event, "message", "{v}");
            assert_eq!((&e.sender, &e.text, &e.media), (&None, &None, &None), "{v}");
            assert_eq!(e.raw, v);
        }
        let ok = norm(
            json!({"event": "message", "payload": {"id": "m1", "from": "a@s.whatsapp.net", "chat_id": "a@s.whatsapp.net"}}),
        );
        assert_eq!(ok.event_type, EventType::Message);
        assert!(ok.sender.is_some() && ok.chat.is_some() && ok.provider_event_id.is_some());
    }

    #[test]
    fn non_object_json_is_other_keyed_by_body_hash() {
        let e = norm(json!([1, 2]));
        assert_eq!(e.event_type, EventType::Other);
        assert!(e.dedup_key.starts_with("sha256:"));
    }

    #[test]
    fn legacy_flat_message_is_normalised() {
        let e = norm(json!({
            "sender_id": "6289876543210",
            "chat_id": "6289876543210",
            "pushname": "Budi",
            "timestamp": "2023-10-15T10:30:00Z",
            "message": {"text": "hello", "id": "3EB0AAA", "replied_id": "3EB0BBB", "quoted_message": "hi"}
        }));
        assert_eq!(e.event_type, EventType::Message);
        assert_eq!(e.provider_event_id.as_deref(), Some("3EB0AAA"));
        assert_eq!(e.text.as_deref(), Some("hello"));
        assert_eq!(e.sender.unwrap().id, "6289876543210@s.whatsapp.net");
        assert_eq!(e.reply_to.unwrap().message_id, "3EB0BBB");
        assert_eq!(e.dedup_key, "message:3EB0AAA");
    }

    #[test]
    fn ack_dedup_key_ignores_id_order() {
        let a = norm(
            json!({"event": "message.ack", "payload": {"ids": ["b", "a"], "receipt_type": "read"}}),
        );
        let b = norm(
            json!({"event": "message.ack", "payload": {"ids": ["a", "b"], "receipt_type": "read"}}),
        );
        assert_eq!(a.dedup_key, b.dedup_key);
        assert_eq!(a.deduplication_id(), b.deduplication_id());
        let c = norm(
            json!({"event": "message.ack", "payload": {"ids": ["a", "b"], "receipt_type": "delivered"}}),
        );
        assert_ne!(a.dedup_key, c.dedup_key);
    }

    #[test]
    fn deduplication_id_fits_sqs() {
        let e = norm(json!({"event": "message", "payload": {"id": "x".repeat(500)}}));
        let id = e.deduplication_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
