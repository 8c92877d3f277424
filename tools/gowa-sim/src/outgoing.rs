//! The bodies of the events WAHA, Evolution and Meta send to their webhooks (GOWA's are in
//! `events.rs`), serialised the way each server does.
//!
//! - WAHA (waha-docs `content/docs/how-to/events/index.md`, "Event Payload" and "message.ack"):
//!   `{id: "evt_<ulid>", timestamp (ms), event, session, me, payload, environment, engine}`,
//!   compact `JSON.stringify` (field order as written). Receipts are `message.ack` with
//!   `ack`/`ackName` (`DEVICE` 2, `READ` 3, `ERROR` -1); incoming messages `message`; status
//!   changes `session.status`. The simulated engine is GOWS.
//! - Evolution (`webhook.controller.ts` `emit`, 2.3.7): `{event, instance, data, destination,
//!   date_time, sender, server_url, apikey}`; receipts are `messages.update` (`data.status`
//!   `DELIVERY_ACK`, `READ`, `ERROR`, as Evolution maps Baileys' numeric statuses), incoming
//!   messages `messages.upsert`, status changes `connection.update`. The body carries the
//!   instance's `apikey`, as upstream does.
//! - Meta (`WebhookPayload` in Meta's spec): `{object: "whatsapp_business_account", entry:
//!   [{id: <WABA id>, changes: [{value: {...}, field: "messages"}]}]}`; receipts are
//!   `value.statuses[]` (`sent`, `delivered`, `read`, `failed` with `errors[]`), incoming
//!   messages `value.messages[]` with `value.contacts[]`.

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::events::{IncomingMessage, SentMessage};
use crate::kind::Kind;
use crate::meta_errors;
use crate::state::{Device, SimState};
use crate::webhook::meta_escape;

/// WAHA's version string the simulator reports (`environment.version`).
pub const WAHA_VERSION: &str = "2025.9.1";
/// Evolution's version the simulator reports (`GET /`, the webhook `User-Agent`).
pub const EVOLUTION_VERSION: &str = "2.3.7";

/// What became of a message, as one receipt reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Receipt {
    /// Meta's `sent` (WhatsApp accepted it).
    Sent,
    /// On the recipient's phone.
    Delivered,
    /// Seen by the recipient.
    Read,
    /// Not delivered; Meta's error code (empty: the kind's default).
    Failed(String),
}

impl Receipt {
    /// The name recorded in [`crate::EventRecord::receipt_type`].
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed(_) => "failed",
        }
    }
}

/// One event, ready to send.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    /// The kind's event name (`message.ack`, `messages.update`, `statuses`, …).
    pub event: String,
    /// The provider message ids it is about.
    pub ids: Vec<String>,
    /// For receipts: `sent`, `delivered`, `read` or `failed`.
    pub receipt_type: Option<String>,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

impl Outgoing {
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
}

fn unix_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `6281…@s.whatsapp.net` → `6281…@c.us` (WAHA's chat ids).
pub(crate) fn c_us(jid: &str) -> String {
    let user = jid.split('@').next().unwrap_or(jid);
    format!("{user}@c.us")
}

/// The digits of a JID or number.
pub(crate) fn digits(jid: &str) -> String {
    jid.split('@')
        .next()
        .unwrap_or(jid)
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// Lowercase ULID-ish id of WAHA events (`evt_<26 chars>`).
fn waha_event_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let millis = unix_ms(OffsetDateTime::now_utc()) as u128;
    let value = (millis << 80) | (rand::random::<u128>() >> 48);
    let ulid: String = (0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect();
    format!("evt_{ulid}")
}

// ---------------------------------------------------------------------------------------------
// WAHA

#[derive(Serialize)]
struct WahaMe {
    id: String,
    #[serde(rename = "pushName")]
    push_name: String,
}

#[derive(Serialize)]
struct WahaEnvironment {
    version: &'static str,
    engine: &'static str,
    tier: &'static str,
    browser: Option<String>,
}

#[derive(Serialize)]
struct WahaEnvelope<P: Serialize> {
    id: String,
    timestamp: i64,
    event: String,
    session: String,
    me: Option<WahaMe>,
    payload: P,
    environment: WahaEnvironment,
    engine: &'static str,
}

fn waha_envelope<P: Serialize>(
    device: &Device,
    event: &str,
    payload: P,
    at: OffsetDateTime,
) -> Vec<u8> {
    let me = (device.spec.state == crate::DeviceState::LoggedIn && !device.spec.jid.is_empty())
        .then(|| WahaMe {
            id: c_us(&device.spec.jid),
            push_name: "WAHA".to_owned(),
        });
    let envelope = WahaEnvelope {
        id: waha_event_id(),
        timestamp: unix_ms(at),
        event: event.to_owned(),
        session: device.spec.id.clone(),
        me,
        payload,
        environment: WahaEnvironment {
            version: WAHA_VERSION,
            engine: "GOWS",
            tier: "PLUS",
            browser: None,
        },
        engine: "GOWS",
    };
    serde_json::to_vec(&envelope).expect("WAHA envelopes serialise")
}

#[derive(Serialize)]
struct WahaAck {
    id: String,
    from: String,
    participant: Option<String>,
    #[serde(rename = "fromMe")]
    from_me: bool,
    ack: i32,
    #[serde(rename = "ackName")]
    ack_name: &'static str,
}

#[derive(Serialize)]
struct WahaReplyTo {
    id: String,
    participant: String,
    body: Option<String>,
}

#[derive(Serialize)]
struct WahaMessage {
    id: String,
    timestamp: i64,
    from: String,
    #[serde(rename = "fromMe")]
    from_me: bool,
    source: &'static str,
    to: String,
    participant: Option<String>,
    body: String,
    #[serde(rename = "hasMedia")]
    has_media: bool,
    media: Option<Value>,
    ack: i32,
    #[serde(rename = "ackName")]
    ack_name: &'static str,
    #[serde(rename = "vCards")]
    v_cards: Vec<String>,
    #[serde(rename = "replyTo", skip_serializing_if = "Option::is_none")]
    reply_to: Option<WahaReplyTo>,
    #[serde(rename = "_data")]
    data: Value,
}

#[derive(Serialize)]
struct WahaStatus {
    status: &'static str,
    statuses: Vec<WahaStatusEntry>,
}

#[derive(Serialize)]
struct WahaStatusEntry {
    status: String,
    timestamp: i64,
}

// ---------------------------------------------------------------------------------------------
// Evolution

#[derive(Serialize)]
struct EvolutionEnvelope<D: Serialize> {
    event: String,
    instance: String,
    data: D,
    destination: String,
    date_time: String,
    sender: String,
    server_url: String,
    apikey: String,
}

#[derive(Serialize)]
struct EvolutionUpdate {
    #[serde(rename = "messageId")]
    message_id: String,
    #[serde(rename = "keyId")]
    key_id: String,
    #[serde(rename = "remoteJid")]
    remote_jid: String,
    #[serde(rename = "fromMe")]
    from_me: bool,
    status: &'static str,
    #[serde(rename = "instanceId")]
    instance_id: String,
}

#[derive(Serialize)]
struct EvolutionKey {
    #[serde(rename = "remoteJid")]
    remote_jid: String,
    #[serde(rename = "fromMe")]
    from_me: bool,
    id: String,
}

#[derive(Serialize)]
struct EvolutionUpsert {
    key: EvolutionKey,
    #[serde(rename = "pushName")]
    push_name: String,
    status: &'static str,
    message: Value,
    #[serde(rename = "contextInfo", skip_serializing_if = "Option::is_none")]
    context_info: Option<Value>,
    #[serde(rename = "messageType")]
    message_type: &'static str,
    #[serde(rename = "messageTimestamp")]
    message_timestamp: i64,
    #[serde(rename = "instanceId")]
    instance_id: String,
    source: &'static str,
}

#[derive(Serialize)]
struct EvolutionConnection {
    instance: String,
    state: &'static str,
    #[serde(rename = "statusReason")]
    status_reason: u16,
}

/// `2026-08-22T10:20:11.734Z` (JavaScript's `toISOString`).
fn js_iso(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let millis = at.millisecond();
    let whole = at.replace_nanosecond(0).unwrap_or(at);
    let text = whole.format(&Rfc3339).unwrap_or_default();
    match text.strip_suffix('Z') {
        Some(base) => format!("{base}.{millis:03}Z"),
        None => text,
    }
}

fn evolution_envelope<D: Serialize>(
    state: &SimState,
    device: &Device,
    event: &str,
    destination: &str,
    data: D,
    at: OffsetDateTime,
) -> Vec<u8> {
    let envelope = EvolutionEnvelope {
        event: event.to_owned(),
        instance: device.spec.id.clone(),
        data,
        destination: destination.to_owned(),
        date_time: js_iso(at),
        sender: device.spec.jid.clone(),
        server_url: state.base_url(),
        apikey: state.config().device_key_of(&device.spec.id),
    };
    serde_json::to_vec(&envelope).expect("Evolution envelopes serialise")
}

/// A Prisma cuid-like row id (`messageId` of `messages.update`).
fn cuid() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let tail: String = (0..23)
        .map(|_| ALPHABET[rand::random::<u8>() as usize % ALPHABET.len()] as char)
        .collect();
    format!("cm{tail}")
}

// ---------------------------------------------------------------------------------------------
// Meta

fn meta_envelope(state: &SimState, value: Value) -> Vec<u8> {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": state.config().waba_id,
            "changes": [{"value": value, "field": "messages"}],
        }],
    });
    // serde_json writes object keys in order (no `preserve_order`): build the text in Meta's
    // order instead of relying on it.
    meta_escape(&meta_ordered(&body)).into_bytes()
}

/// Compact JSON with the keys in Meta's order: `object`/`entry`, `id`/`changes`,
/// `value`/`field`, `messaging_product`/`metadata`/`contacts`/`messages`/`statuses`, and the
/// spec examples' order inside messages and statuses; other keys after them, sorted.
fn meta_ordered(value: &Value) -> String {
    const ORDER: &[&str] = &[
        "object",
        "entry",
        "id",
        "changes",
        "value",
        "field",
        "messaging_product",
        "metadata",
        "display_phone_number",
        "phone_number_id",
        "contacts",
        "profile",
        "name",
        "wa_id",
        "messages",
        "statuses",
        "context",
        "from",
        "status",
        "timestamp",
        "recipient_id",
        "conversation",
        "expiration_timestamp",
        "origin",
        "type",
        "pricing",
        "billable",
        "pricing_model",
        "category",
        "errors",
        "code",
        "title",
        "message",
        "error_data",
        "details",
        "href",
        "text",
        "body",
    ];
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| {
                (
                    ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()),
                    (*k).clone(),
                )
            });
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(k).expect("keys serialise"),
                        meta_ordered(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(meta_ordered).collect::<Vec<_>>().join(",")
        ),
        other => serde_json::to_string(other).expect("JSON values serialise"),
    }
}

fn meta_metadata(device: &Device) -> Value {
    json!({"display_phone_number": device.number(), "phone_number_id": device.spec.id})
}

/// A `wamid.` id shaped like Meta's: base64 of a small frame holding the contact's number
/// and a hex message id.
pub(crate) fn wamid(contact_digits: &str) -> String {
    use base64::Engine;
    let mut frame = vec![0x1c, 0x18, contact_digits.len() as u8];
    frame.extend_from_slice(contact_digits.as_bytes());
    frame.extend_from_slice(&[0x15, 0x02, 0x00, 0x11, 0x18, 0x12]);
    let id: [u8; 9] = rand::random();
    frame.extend_from_slice(hex::encode_upper(id).as_bytes());
    frame.push(0x00);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(frame)
    )
}

// ---------------------------------------------------------------------------------------------
// Builders

/// The receipt a `kind` server sends for `sent`; `None` when the kind sends no such receipt
/// (GOWA has no `sent` and no failure receipt).
pub(crate) fn receipt(
    state: &SimState,
    device: &Device,
    sent: &SentMessage,
    receipt: &Receipt,
    destination: &str,
    at: OffsetDateTime,
) -> Option<Outgoing> {
    let kind = state.kind();
    let ids = vec![sent.id.clone()];
    let receipt_type = Some(receipt.name().to_owned());
    let (event, bytes) = match kind {
        Kind::Gowa => match receipt {
            Receipt::Delivered | Receipt::Read => (
                "message.ack",
                crate::gomarshal::go_marshal(&crate::events::receipt_body(
                    device,
                    sent,
                    receipt.name(),
                    at,
                )),
            ),
            Receipt::Sent | Receipt::Failed(_) => return None,
        },
        Kind::Waha => {
            let (ack, ack_name) = match receipt {
                Receipt::Sent => (1, "SERVER"),
                Receipt::Delivered => (2, "DEVICE"),
                Receipt::Read => (3, "READ"),
                Receipt::Failed(_) => (-1, "ERROR"),
            };
            let payload = WahaAck {
                id: sent.id.clone(),
                from: c_us(&sent.chat),
                participant: None,
                from_me: true,
                ack,
                ack_name,
            };
            (
                "message.ack",
                waha_envelope(device, "message.ack", payload, at),
            )
        }
        Kind::Evolution => {
            let status = match receipt {
                Receipt::Sent => "SERVER_ACK",
                Receipt::Delivered => "DELIVERY_ACK",
                Receipt::Read => "READ",
                Receipt::Failed(_) => "ERROR",
            };
            let data = EvolutionUpdate {
                message_id: cuid(),
                key_id: sent.id.clone(),
                remote_jid: sent.chat.clone(),
                from_me: true,
                status,
                instance_id: device.extra.instance_id.clone(),
            };
            (
                "messages.update",
                evolution_envelope(state, device, "messages.update", destination, data, at),
            )
        }
        Kind::Meta => {
            let timestamp = at.unix_timestamp().to_string();
            let recipient = digits(&sent.chat);
            let mut status = json!({
                "id": sent.id,
                "status": receipt.name(),
                "timestamp": timestamp,
                "recipient_id": recipient,
            });
            let conversation_id =
                hex::encode(sha_prefix(&format!("{}{}", device.spec.id, recipient)));
            match receipt {
                Receipt::Sent => {
                    status["conversation"] = json!({
                        "id": conversation_id,
                        "expiration_timestamp": (at.unix_timestamp() + 86_400).to_string(),
                        "origin": {"type": "service"},
                    });
                    status["pricing"] =
                        json!({"billable": true, "pricing_model": "PMP", "category": "service"});
                }
                Receipt::Delivered => {
                    status["conversation"] =
                        json!({"id": conversation_id, "origin": {"type": "service"}});
                    status["pricing"] =
                        json!({"billable": true, "pricing_model": "PMP", "category": "service"});
                }
                Receipt::Read => {}
                Receipt::Failed(code) => {
                    let code = if code.is_empty() {
                        "131026"
                    } else {
                        code.as_str()
                    };
                    status["errors"] = json!([meta_errors::status_error(code)]);
                }
            }
            let value = json!({
                "messaging_product": "whatsapp",
                "metadata": meta_metadata(device),
                "statuses": [status],
            });
            ("statuses", meta_envelope(state, value))
        }
    };
    Some(Outgoing {
        event: event.to_owned(),
        ids,
        receipt_type,
        bytes,
    })
}

fn sha_prefix(text: &str) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// A contact's message to `device` (`from` is a user JID `…@s.whatsapp.net`), shaped like the
/// `kind` server's incoming-message event, with its message id.
pub(crate) fn incoming(
    state: &SimState,
    device: &Device,
    message: &IncomingMessage,
    from: &str,
    quoted: Option<&SentMessage>,
    destination: &str,
    at: OffsetDateTime,
) -> Outgoing {
    let kind = state.kind();
    let from_digits = digits(from);
    let raw_id: [u8; 16] = rand::random();
    let raw_id = hex::encode_upper(raw_id);
    let reply_to = message.reply_to.as_deref().filter(|r| !r.is_empty());
    let (event, id, bytes) = match kind {
        Kind::Gowa => {
            let body = crate::events::incoming_body(
                device,
                message,
                from,
                &raw_id,
                quoted.and_then(|q| q.text.as_deref()),
                at,
            );
            ("message", raw_id, crate::gomarshal::go_marshal(&body))
        }
        Kind::Waha => {
            let id = format!("false_{}_{raw_id}", c_us(from));
            let payload = WahaMessage {
                id: id.clone(),
                timestamp: at.unix_timestamp(),
                from: c_us(from),
                from_me: false,
                source: "app",
                to: c_us(&device.spec.jid),
                participant: None,
                body: message.text.clone(),
                has_media: false,
                media: None,
                ack: 2,
                ack_name: "DEVICE",
                v_cards: Vec::new(),
                reply_to: reply_to.map(|r| WahaReplyTo {
                    // WAHA's replyTo.id is the bare message id (no `true_<chat>_` prefix).
                    id: r.rsplit('_').next().unwrap_or(r).to_owned(),
                    participant: c_us(&device.spec.jid),
                    body: quoted.and_then(|q| q.text.clone()),
                }),
                data: json!({
                    "Info": {
                        "ID": raw_id,
                        "PushName": message.from_name.clone().unwrap_or_default(),
                    }
                }),
            };
            ("message", id, waha_envelope(device, "message", payload, at))
        }
        Kind::Evolution => {
            let (content, context_info, message_type) = match reply_to {
                None => (json!({"conversation": message.text}), None, "conversation"),
                Some(reply) => {
                    let context = json!({
                        "stanzaId": reply,
                        "participant": device.spec.jid,
                        "quotedMessage": {"conversation": quoted.and_then(|q| q.text.clone()).unwrap_or_default()},
                    });
                    (
                        json!({"extendedTextMessage": {"text": message.text, "contextInfo": context}}),
                        Some(context),
                        "extendedTextMessage",
                    )
                }
            };
            let data = EvolutionUpsert {
                key: EvolutionKey {
                    remote_jid: from.to_owned(),
                    from_me: false,
                    id: raw_id.clone(),
                },
                push_name: message.from_name.clone().unwrap_or_default(),
                status: "DELIVERY_ACK",
                message: content,
                context_info,
                message_type,
                message_timestamp: at.unix_timestamp(),
                instance_id: device.extra.instance_id.clone(),
                source: "android",
            };
            (
                "messages.upsert",
                raw_id,
                evolution_envelope(state, device, "messages.upsert", destination, data, at),
            )
        }
        Kind::Meta => {
            let id = wamid(&from_digits);
            let mut msg = json!({
                "from": from_digits,
                "id": id,
                "timestamp": at.unix_timestamp().to_string(),
                "type": "text",
                "text": {"body": message.text},
            });
            if let Some(reply) = reply_to {
                msg["context"] = json!({"from": device.number(), "id": reply});
            }
            let value = json!({
                "messaging_product": "whatsapp",
                "metadata": meta_metadata(device),
                "contacts": [{
                    "profile": {"name": message.from_name.clone().unwrap_or_default()},
                    "wa_id": from_digits,
                }],
                "messages": [msg],
            });
            ("messages", id, meta_envelope(state, value))
        }
    };
    Outgoing {
        event: event.to_owned(),
        ids: vec![id],
        receipt_type: None,
        bytes,
    }
}

/// The event a `kind` server sends when a session's status changes: WAHA `session.status`,
/// Evolution `connection.update`; `None` for GOWA (no such webhook) and Meta.
pub(crate) fn status_change(
    state: &SimState,
    device: &Device,
    destination: &str,
    at: OffsetDateTime,
) -> Option<Outgoing> {
    let (event, bytes) = match state.kind() {
        Kind::Waha => {
            let payload = WahaStatus {
                status: device.spec.state.waha_status(),
                statuses: device
                    .extra
                    .statuses
                    .iter()
                    .rev()
                    .take(3)
                    .rev()
                    .map(|(status, ts)| WahaStatusEntry {
                        status: status.clone(),
                        timestamp: *ts,
                    })
                    .collect(),
            };
            (
                "session.status",
                waha_envelope(device, "session.status", payload, at),
            )
        }
        Kind::Evolution => {
            let data = EvolutionConnection {
                instance: device.spec.id.clone(),
                state: device.spec.state.evolution_state(),
                status_reason: if device.spec.state == crate::DeviceState::LoggedIn {
                    200
                } else {
                    401
                },
            };
            (
                "connection.update",
                evolution_envelope(state, device, "connection.update", destination, data, at),
            )
        }
        Kind::Gowa | Kind::Meta => return None,
    };
    Some(Outgoing {
        event: event.to_owned(),
        ids: Vec::new(),
        receipt_type: None,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn javascript_iso_times_have_milliseconds() {
        let at = OffsetDateTime::parse("2026-08-22T10:20:11.734Z", &Rfc3339).unwrap();
        assert_eq!(js_iso(at), "2026-08-22T10:20:11.734Z");
    }

    #[test]
    fn meta_order_follows_the_spec_examples() {
        let value = json!({"entry": [{"changes": [{"field": "messages", "value": {"statuses": [], "metadata": {"phone_number_id": "1", "display_phone_number": "2"}, "messaging_product": "whatsapp"}}], "id": "9"}], "object": "whatsapp_business_account"});
        assert_eq!(
            meta_ordered(&value),
            r#"{"object":"whatsapp_business_account","entry":[{"id":"9","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"2","phone_number_id":"1"},"statuses":[]},"field":"messages"}]}]}"#
        );
    }

    #[test]
    fn wamids_look_like_metas() {
        let id = wamid("16505551234");
        // base64 of 0x1c 0x18 len "16505551234" 0x15 0x02 0x00 0x11 0x18 0x12, then random hex.
        assert!(id.starts_with("wamid.HBgLMTY1MDU1NTEyMzQVAgARGB"), "{id}");
    }

    #[test]
    fn waha_chat_ids_use_c_us() {
        assert_eq!(c_us("6281234567890@s.whatsapp.net"), "6281234567890@c.us");
        assert_eq!(digits("+62 812-345"), "62812345");
    }
}
