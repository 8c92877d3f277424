//! Meta WhatsApp Cloud API webhooks: normalisation of `{object: "whatsapp_business_account",
//! entry[].changes[].value {metadata.phone_number_id, contacts[], messages[], statuses[]}}`
//! into [`InboundEvent`] (verification is in [`super::verify`]: `X-Hub-Signature-256` with
//! the app secret; the `GET` handshake is [`handshake`]).
//!
//! Meta batches: one POST may carry several entries, each several changes, each several
//! `messages` and `statuses`. [`normalize_all`] makes one event of each message (event
//! `messages`) and of each status (event `statuses`: a receipt for its `wamid`, `sent` /
//! `delivered` / `read` / `failed`), in body order. A POST of one item keeps the whole body in
//! `raw`; in a batch each event's `raw` is that item alone in Meta's envelope (its entry id,
//! the change's `field`, `metadata` and `contacts`), as if Meta had posted it by itself.
//! Messages deduplicate on their `wamid`; statuses on `wamid` and state, each on its own.

use serde_json::Value;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{Chat, EventType, InboundEvent, Media, Party, Receipt, ReplyTo, body_hash_key, str_of};
use crate::secrets::Secret;
use crate::tenant::{Credentials, OpenedConfig, ProviderKind, TenantId};

fn user(wa_id: &str) -> String {
    format!("{wa_id}@s.whatsapp.net")
}

/// Every message and status of a verified Meta webhook, one event each, in body order
/// (entries, their changes, in each change its messages, then its statuses). A body with at
/// most one of them gives exactly [`normalize`]'s event. Never fails, never empty.
pub fn normalize_all(
    tenant_id: &TenantId,
    raw: Value,
    raw_body: &[u8],
    received_at: OffsetDateTime,
) -> Vec<InboundEvent> {
    let singles = split(&raw);
    if singles.len() <= 1 {
        return vec![normalize(tenant_id, raw, raw_body, received_at)];
    }
    singles
        .into_iter()
        .map(|single| {
            let bytes = serde_json::to_vec(&single).unwrap_or_default();
            normalize(tenant_id, single, &bytes, received_at)
        })
        .collect()
}

/// Each message and status of `raw` alone in Meta's envelope.
fn split(raw: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let entries = raw.get("entry").and_then(Value::as_array);
    for entry in entries.into_iter().flatten() {
        let changes = entry.get("changes").and_then(Value::as_array);
        for change in changes.into_iter().flatten() {
            let Some(value) = change.get("value").and_then(Value::as_object) else {
                continue;
            };
            for list in ["messages", "statuses"] {
                let items = value.get(list).and_then(Value::as_array);
                for item in items.into_iter().flatten() {
                    let mut one = value.clone();
                    one.remove("messages");
                    one.remove("statuses");
                    one.insert(list.into(), Value::Array(vec![item.clone()]));
                    let mut c = serde_json::Map::new();
                    c.insert("value".into(), Value::Object(one));
                    if let Some(f) = change.get("field") {
                        c.insert("field".into(), f.clone());
                    }
                    let mut e = serde_json::Map::new();
                    if let Some(id) = entry.get("id") {
                        e.insert("id".into(), id.clone());
                    }
                    e.insert("changes".into(), Value::Array(vec![Value::Object(c)]));
                    let mut single = serde_json::Map::new();
                    if let Some(o) = raw.get("object") {
                        single.insert("object".into(), o.clone());
                    }
                    single.insert("entry".into(), Value::Array(vec![Value::Object(e)]));
                    out.push(Value::Object(single));
                }
            }
        }
    }
    out
}

/// Normalises a verified Meta webhook of one item (the first message of the first change,
/// else the statuses of the first change that share the first one's state). Never fails.
pub fn normalize(
    tenant_id: &TenantId,
    raw: Value,
    raw_body: &[u8],
    received_at: OffsetDateTime,
) -> InboundEvent {
    let mut ev = InboundEvent::blank(tenant_id, ProviderKind::Meta, received_at);
    let value = raw
        .pointer("/entry/0/changes/0/value")
        .cloned()
        .unwrap_or(Value::Null);
    ev.session_id = str_of(value.pointer("/metadata/phone_number_id"));
    ev.account = str_of(value.pointer("/metadata/display_phone_number")).map(|n| user(&n));
    if let Some(m) = value.pointer("/messages/0") {
        ev.provider_event = "messages".into();
        if let (Some(id), Some(from)) = (str_of(m.get("id")), str_of(m.get("from"))) {
            ev.event_type = EventType::Message;
            ev.provider_event_id = Some(id.clone());
            ev.dedup_key = format!("meta:message:{id}");
            let name = value
                .get("contacts")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.get("wa_id").and_then(Value::as_str) == Some(from.as_str()))
                })
                .and_then(|c| str_of(c.pointer("/profile/name")));
            ev.sender = Some(Party {
                id: user(&from),
                lid: None,
                name,
            });
            ev.chat = Some(Chat {
                id: user(&from),
                lid: None,
                is_group: false,
            });
            ev.is_from_me = Some(false);
            ev.occurred_at = str_of(m.get("timestamp"));
            let kind = str_of(m.get("type")).unwrap_or_default();
            ev.text = str_of(m.pointer("/text/body"));
            if ["image", "video", "audio", "document", "sticker"].contains(&kind.as_str()) {
                let media = m.get(&kind);
                ev.media = Some(Media {
                    kind: kind.clone(),
                    caption: media.and_then(|x| str_of(x.get("caption"))),
                    path: None,
                    url: None,
                    mime_type: media.and_then(|x| str_of(x.get("mime_type"))),
                });
            }
            ev.reply_to = str_of(m.pointer("/context/id")).map(|id| ReplyTo {
                message_id: id,
                quoted_text: None,
            });
        }
    } else if let Some(statuses) = value.get("statuses").and_then(Value::as_array) {
        ev.provider_event = "statuses".into();
        let state = statuses
            .first()
            .and_then(|s| str_of(s.get("status")))
            .unwrap_or_default();
        let ids: Vec<String> = statuses
            .iter()
            .filter(|s| s.get("status").and_then(Value::as_str) == Some(state.as_str()))
            .filter_map(|s| str_of(s.get("id")))
            .collect();
        if !ids.is_empty() {
            ev.event_type = EventType::Receipt;
            ev.provider_event_id = (ids.len() == 1).then(|| ids[0].clone());
            ev.dedup_key = format!("meta:status:{state}:{}", ids.join(","));
            ev.chat = statuses
                .first()
                .and_then(|s| str_of(s.get("recipient_id")))
                .map(|r| Chat {
                    id: user(&r),
                    lid: None,
                    is_group: false,
                });
            ev.is_from_me = Some(true);
            ev.occurred_at = statuses.first().and_then(|s| str_of(s.get("timestamp")));
            ev.receipt = Some(Receipt {
                message_ids: ids,
                state,
            });
        }
    }
    if ev.dedup_key.is_empty() {
        ev.dedup_key = body_hash_key(raw_body);
    }
    ev.raw = raw;
    ev
}

/// The answer to Meta's verification `GET` (`hub.mode`, `hub.verify_token`,
/// `hub.challenge`): the challenge when the mode is `subscribe` and the token is the verify
/// token of one of the tenant's Meta endpoints (compared in constant time).
pub fn handshake<'q>(
    cfg: &OpenedConfig,
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&'q str>,
) -> Option<&'q str> {
    let (Some("subscribe"), Some(given), Some(challenge)) = (mode, verify_token, challenge) else {
        return None;
    };
    if challenge.is_empty() || challenge.len() > 256 {
        return None;
    }
    let tokens: Vec<&Secret> = std::iter::once(&cfg.primary)
        .chain(cfg.backup.as_ref())
        .filter_map(|e| match &e.credentials {
            Credentials::Meta { verify_token, .. } => Some(verify_token),
            _ => None,
        })
        .collect();
    tokens
        .iter()
        .any(|t| bool::from(t.expose().as_bytes().ct_eq(given.as_bytes())))
        .then_some(challenge)
}
