//! Events the simulated server sends on its own, as each kind forwards WhatsApp's events to
//! its webhooks: receipts for the messages it accepted, incoming messages, and (WAHA,
//! Evolution) session status changes. The other kinds' bodies are built in `outgoing.rs`; where
//! their events go is [`targets_for`].
//!
//! Bodies are built like GOWA v9.2's (`createReceiptPayload` in
//! `src/infrastructure/whatsapp/event_receipt.go`, the v8+ message envelope of the samples in
//! `tests/fixtures/gowa/`): `{device_id, event, payload, session_id, timestamp?}`, marshalled
//! like Go's `json.Marshal` of a map (compact, keys sorted) and signed with
//! `X-Hub-Signature-256`. Where each event goes follows GOWA: a device with a webhook URL of its
//! own gets its events there, signed with its own secret (the global secret when it has none),
//! filtered by its own event list; other devices' events go to every global webhook URL with
//! the global secret and event list. No target, or a stopped server: nothing is sent (the
//! record says why).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use std::collections::BTreeMap;

use crate::config::{DeviceWebhook, WebhookConfig};
use crate::kind::Kind;
use crate::outgoing::{self, Outgoing, Receipt};
use crate::state::{Device, SimState};
use crate::webhook::{self, DeliveryReport, WebhookBody, WebhookDelivery};

/// GOWA's `receipt_type_description` for a delivery receipt.
pub const DELIVERED_DESCRIPTION: &str =
    "means the message was delivered to the device (but the user might not have noticed).";
/// GOWA's `receipt_type_description` for a read receipt.
pub const READ_DESCRIPTION: &str = "the user opened the chat and saw the message.";

/// A message the simulated server accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    /// The id answered to the sender (`results.message_id`).
    pub id: String,
    /// The device that sent it.
    pub device_id: String,
    /// The chat it went to, as a JID without a leading `+` (`6289…@s.whatsapp.net`).
    pub chat: String,
    /// The text, for a text message.
    pub text: Option<String>,
    /// Set when the message will be reported failed instead of delivered (the
    /// `delivery_failure` fault, or a recipient not on WhatsApp): Meta's error code, or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// A message from a contact, delivered to the device's webhook as GOWA would
/// (`POST /_sim/incoming`, [`crate::SimHandle::deliver_incoming`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomingMessage {
    /// The receiving device; may be left out when the server has exactly one.
    #[serde(default)]
    pub device_id: Option<String>,
    /// The sender: a number in international format (optional `+`) or a user JID.
    pub from: String,
    /// The text.
    pub text: String,
    /// The sender's push name (`from_name`, `sender_display_name`).
    #[serde(default)]
    pub from_name: Option<String>,
    /// Id of the message this one replies to (`replied_to_id`; `quoted_body` when the
    /// simulator sent that message).
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// One event the server emitted and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Emission order, from 1.
    pub seq: u64,
    /// When it was emitted (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `message.ack` or `message`.
    pub event: String,
    /// The device (session) id.
    pub device_id: String,
    /// The provider message ids the event is about: the acknowledged ids, or the incoming
    /// message's id.
    pub ids: Vec<String>,
    /// For receipts: `delivered` or `read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_type: Option<String>,
    /// The body as sent (parsed).
    pub body: Value,
    /// One report per target URL.
    pub deliveries: Vec<DeliveryReport>,
    /// Why nothing was sent, when nothing was (no webhook configured, event filtered out,
    /// server down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Why an incoming message cannot be delivered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IncomingError {
    #[error("{0}")]
    Invalid(String),
    #[error("no device with id {0:?}")]
    UnknownDevice(String),
    #[error("device_id is required: the server has several devices")]
    DeviceRequired,
}

/// A webhook target: URL and HMAC key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub url: String,
    pub secret: String,
    /// Extra headers (WAHA `customHeaders`, Evolution headers and `X-Instance-*`).
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Where an event of `device` goes, and why nowhere when it goes nowhere.
pub(crate) fn targets(
    own: Option<&DeviceWebhook>,
    global: &WebhookConfig,
    event: &str,
) -> Result<Vec<Target>, String> {
    let wanted = |events: &[String]| events.is_empty() || events.iter().any(|e| e == event);
    if let Some(own) = own.filter(|w| !w.url.trim().is_empty()) {
        if !wanted(&own.events) {
            return Err(format!("{event} is not in the device webhook's events"));
        }
        let secret = if own.secret.is_empty() {
            global.secret.clone()
        } else {
            own.secret.clone()
        };
        return Ok(vec![Target {
            url: own.url.clone(),
            secret,
            headers: BTreeMap::new(),
        }]);
    }
    let urls: Vec<&String> = global
        .urls
        .iter()
        .filter(|u| !u.trim().is_empty())
        .collect();
    if urls.is_empty() {
        return Err("no webhook configured for the device".to_owned());
    }
    if !wanted(&global.events) {
        return Err(format!("{event} is not in the webhook events"));
    }
    Ok(urls
        .into_iter()
        .map(|url| Target {
            url: url.clone(),
            secret: global.secret.clone(),
            headers: BTreeMap::new(),
        })
        .collect())
}

/// Where an event of `device` goes on a `kind` server:
/// - GOWA: [`targets`].
/// - WAHA: every webhook of the session's config whose `events` has the event (or `*`), with
///   its HMAC key and custom headers; and the global webhook (`WHATSAPP_HOOK_URL`, its events,
///   HMAC key = the global secret).
/// - Evolution: the instance's webhook when enabled and the event (upper snake case,
///   `MESSAGES_UPDATE`) is in its events, to `url` or `url/<event-name>` with `byEvents`, with
///   its headers (`jwt_key` → bearer JWT) and `X-Instance-*`; and the global webhook
///   (`WEBHOOK_GLOBAL_URL`, no JWT).
/// - Meta: the app's callback URL (the global webhook), signed with the app secret.
pub(crate) fn targets_for(
    kind: Kind,
    device: &Device,
    global: &WebhookConfig,
    event: &str,
) -> Result<Vec<Target>, String> {
    let global_targets = |wanted: &dyn Fn(&[String]) -> bool| -> Vec<Target> {
        if !wanted(&global.events) {
            return Vec::new();
        }
        global
            .urls
            .iter()
            .filter(|u| !u.trim().is_empty())
            .map(|url| Target {
                url: url.clone(),
                secret: global.secret.clone(),
                headers: BTreeMap::new(),
            })
            .collect()
    };
    let found = match kind {
        Kind::Gowa => return targets(device.spec.webhook.as_ref(), global, event),
        Kind::Waha => {
            let wanted = |events: &[String]| {
                events.is_empty() || events.iter().any(|e| e == event || e == "*")
            };
            let mut found: Vec<Target> = device
                .extra
                .waha_webhooks
                .iter()
                .filter(|w| !w.url.trim().is_empty() && wanted(&w.events))
                .map(|w| Target {
                    url: w.url.clone(),
                    secret: w.secret.clone(),
                    headers: w.headers.clone(),
                })
                .collect();
            // The global hook's secret is WHATSAPP_HOOK_HMAC_KEY; GOWA's default `secret` is
            // not WAHA's default (none).
            let mut global_found = global_targets(&wanted);
            if global.secret == crate::DEFAULT_WEBHOOK_SECRET {
                for target in &mut global_found {
                    target.secret.clear();
                }
            }
            found.extend(global_found);
            found
        }
        Kind::Evolution => {
            let upper = event.replace(['.', '-'], "_").to_ascii_uppercase();
            let path_name = upper.replace('_', "-").to_ascii_lowercase();
            let wanted = |events: &[String]| {
                events.is_empty() || events.iter().any(|e| e.eq_ignore_ascii_case(&upper))
            };
            let mut found = Vec::new();
            if let Some(own) = device
                .spec
                .webhook
                .as_ref()
                .filter(|w| !w.url.trim().is_empty())
                && wanted(&own.events)
            {
                let by_events = device
                    .extra
                    .evolution_webhook
                    .as_ref()
                    .and_then(|w| w.get("webhookByEvents"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let url = if by_events {
                    format!("{}/{path_name}", own.url.trim_end_matches('/'))
                } else {
                    own.url.clone()
                };
                let mut headers = own.headers.clone();
                headers.insert("X-Instance-ID".into(), device.extra.instance_id.clone());
                headers.insert("X-Instance-Name".into(), device.spec.id.clone());
                headers.insert("X-Event-Type".into(), event.to_owned());
                found.push(Target {
                    url,
                    secret: own.secret.clone(),
                    headers,
                });
            }
            for mut target in global_targets(&wanted) {
                // The global webhook sends no JWT.
                target.secret.clear();
                found.push(target);
            }
            found
        }
        Kind::Meta => global_targets(&|_: &[String]| true),
    };
    if found.is_empty() {
        Err(format!("no webhook configured for {event}"))
    } else {
        Ok(found)
    }
}

/// `2026-08-22T10:20:11Z`, Go's `time.RFC3339` of a UTC time (whole seconds).
fn go_rfc3339(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The envelope every v8+ event shares.
fn envelope(device: &Device, event: &str, payload: Value, timestamp: Option<String>) -> Value {
    let mut body = Map::new();
    if !device.spec.jid.is_empty() {
        body.insert("device_id".into(), json!(device.spec.jid));
    }
    body.insert("event".into(), json!(event));
    body.insert("payload".into(), payload);
    body.insert("session_id".into(), json!(device.spec.id));
    if let Some(timestamp) = timestamp {
        body.insert("timestamp".into(), json!(timestamp));
    }
    Value::Object(body)
}

/// A `message.ack` body for `sent`, as GOWA's `createReceiptPayload` builds it.
pub(crate) fn receipt_body(
    device: &Device,
    sent: &SentMessage,
    receipt_type: &str,
    at: OffsetDateTime,
) -> Value {
    let description = match receipt_type {
        "delivered" => DELIVERED_DESCRIPTION,
        "read" => READ_DESCRIPTION,
        _ => "unknown receipt type",
    };
    let payload = json!({
        "chat_id": sent.chat,
        "from": sent.chat,
        "ids": [sent.id],
        "receipt_type": receipt_type,
        "receipt_type_description": description,
    });
    envelope(device, "message.ack", payload, Some(go_rfc3339(at)))
}

/// A user JID from a number (`+62…`, `62…`) or a JID.
fn user_jid(from: &str) -> Result<String, IncomingError> {
    let trimmed = from.trim();
    let (user, server) = match trimmed.split_once('@') {
        Some((user, server)) => (user, server),
        None => (
            trimmed.strip_prefix('+').unwrap_or(trimmed),
            "s.whatsapp.net",
        ),
    };
    let digits_ok = (5..=15).contains(&user.len()) && user.bytes().all(|b| b.is_ascii_digit());
    if !matches!(server, "s.whatsapp.net" | "c.us") || !digits_ok || user.starts_with('0') {
        return Err(IncomingError::Invalid(format!(
            "from must be a phone number in international format (5-15 digits, optional '+') or a user JID, not {from:?}"
        )));
    }
    Ok(format!("{user}@s.whatsapp.net"))
}

/// A `message` body for an incoming text, as in GOWA's v8+ envelope.
pub(crate) fn incoming_body(
    device: &Device,
    message: &IncomingMessage,
    from: &str,
    id: &str,
    quoted: Option<&str>,
    at: OffsetDateTime,
) -> Value {
    let mut payload = Map::new();
    payload.insert("body".into(), json!(message.text));
    payload.insert("chat_id".into(), json!(from));
    payload.insert("from".into(), json!(from));
    payload.insert("id".into(), json!(id));
    payload.insert("is_from_me".into(), json!(false));
    payload.insert("timestamp".into(), json!(go_rfc3339(at)));
    if let Some(name) = message.from_name.as_deref().filter(|n| !n.is_empty()) {
        payload.insert("from_name".into(), json!(name));
        payload.insert("sender_display_name".into(), json!(name));
    }
    if let Some(reply_to) = message.reply_to.as_deref().filter(|r| !r.is_empty()) {
        payload.insert("replied_to_id".into(), json!(reply_to));
        if let Some(quoted) = quoted {
            payload.insert("quoted_body".into(), json!(quoted));
        }
    }
    envelope(device, "message", Value::Object(payload), None)
}

/// Signs and delivers one event of `device` to its targets, one after the other (as GOWA
/// does), and records what happened. `build` shapes the body for a target URL (Evolution's
/// body names its `destination`); it is also called with `""` for the record when nothing is
/// sent.
pub(crate) async fn emit(
    state: &SimState,
    device: &Device,
    event: &str,
    build: impl Fn(&str) -> Outgoing,
) -> EventRecord {
    let kind = state.kind();
    let targets = if state.is_down() {
        Err("the server is down".to_owned())
    } else {
        targets_for(kind, device, &state.webhook(), event)
    };
    let first = build(
        targets
            .as_ref()
            .ok()
            .and_then(|t| t.first())
            .map_or("", |t| t.url.as_str()),
    );
    let mut record = EventRecord {
        seq: 0,
        at: OffsetDateTime::now_utc(),
        event: first.event.clone(),
        device_id: device.spec.id.clone(),
        ids: first.ids.clone(),
        receipt_type: first.receipt_type.clone(),
        body: first.value(),
        deliveries: Vec::new(),
        skipped: None,
    };
    match targets {
        Err(why) => {
            tracing::info!(event, device = %device.spec.id, why = %why, "event not forwarded");
            record.skipped = Some(why);
        }
        Ok(targets) => {
            for target in targets {
                let outgoing = build(&target.url);
                let delivery = WebhookDelivery {
                    url: target.url.clone(),
                    secret: target.secret,
                    body: WebhookBody::Raw(outgoing.bytes),
                    retry: true,
                    policy: state.config().webhook_retry.clone(),
                    kind,
                    headers: target.headers,
                };
                match webhook::deliver(&state.http, delivery).await {
                    Ok(report) => {
                        tracing::info!(
                            event,
                            device = %device.spec.id,
                            url = %report.url,
                            delivered = report.delivered,
                            attempts = report.attempts.len(),
                            "event forwarded"
                        );
                        record.deliveries.push(report);
                    }
                    Err(err) => {
                        tracing::warn!(event, url = %target.url, error = %format!("{err:#}"), "event not forwarded");
                        record.skipped = Some(format!("{err:#}"));
                    }
                }
            }
        }
    }
    state.record_event(record)
}

/// Schedules the receipts of an accepted message: Meta's `sent` at once; then `delivered`
/// after [`crate::Receipts::delivered_ms`] and `read` after [`crate::Receipts::read_ms`], or,
/// for a message marked to fail, the kind's failure receipt after `delivered_ms`.
pub(crate) fn schedule_receipts(state: &Arc<SimState>, sent: SentMessage) {
    let receipts = state.receipts();
    let kind = state.kind();
    let state_for_task = state.clone();
    state.spawn(async move {
        let state = state_for_task;
        if kind == Kind::Meta && !send_receipt(&state, &sent, Receipt::Sent).await {
            return;
        }
        let Some(delivered_ms) = receipts.delivered_ms else {
            return;
        };
        tokio::time::sleep(Duration::from_millis(delivered_ms)).await;
        if let Some(code) = &sent.failure {
            send_receipt(&state, &sent, Receipt::Failed(code.clone())).await;
            return;
        }
        if !send_receipt(&state, &sent, Receipt::Delivered).await {
            return;
        }
        if let Some(read_ms) = receipts.read_ms {
            tokio::time::sleep(Duration::from_millis(read_ms)).await;
            send_receipt(&state, &sent, Receipt::Read).await;
        }
    });
}

/// Emits one receipt; false when the device is gone. A receipt the kind does not send (GOWA's
/// failure) is recorded as skipped.
async fn send_receipt(state: &SimState, sent: &SentMessage, receipt: Receipt) -> bool {
    let Some(device) = state.device(&sent.device_id) else {
        return false;
    };
    let at = OffsetDateTime::now_utc();
    let Some(probe) = outgoing::receipt(state, &device, sent, &receipt, "", at) else {
        state.record_event(EventRecord {
            seq: 0,
            at,
            event: "message.ack".to_owned(),
            device_id: device.spec.id.clone(),
            ids: vec![sent.id.clone()],
            receipt_type: Some(receipt.name().to_owned()),
            body: Value::Null,
            deliveries: Vec::new(),
            skipped: Some(format!(
                "a {} server sends no {} receipt",
                state.kind(),
                receipt.name()
            )),
        });
        return true;
    };
    let event = probe.event.clone();
    emit(state, &device, &event, |destination| {
        outgoing::receipt(state, &device, sent, &receipt, destination, at).unwrap_or(probe.clone())
    })
    .await;
    true
}

/// Emits the kind's status-change event for a device (WAHA `session.status`, Evolution
/// `connection.update`), in the background.
pub(crate) fn schedule_status_change(state: &Arc<SimState>, device_id: &str) {
    if !matches!(state.kind(), Kind::Waha | Kind::Evolution) {
        return;
    }
    let state_for_task = state.clone();
    let device_id = device_id.to_owned();
    state.spawn(async move {
        let state = state_for_task;
        let Some(device) = state.device(&device_id) else {
            return;
        };
        let at = OffsetDateTime::now_utc();
        let Some(probe) = outgoing::status_change(&state, &device, "", at) else {
            return;
        };
        let event = probe.event.clone();
        emit(&state, &device, &event, |destination| {
            outgoing::status_change(&state, &device, destination, at).unwrap_or(probe.clone())
        })
        .await;
    });
}

/// Delivers an incoming message now.
pub(crate) async fn deliver_incoming(
    state: &SimState,
    message: IncomingMessage,
) -> Result<EventRecord, IncomingError> {
    if message.text.trim().is_empty() {
        return Err(IncomingError::Invalid("text must not be blank".to_owned()));
    }
    let from = user_jid(&message.from)?;
    let device = match message.device_id.as_deref().filter(|d| !d.is_empty()) {
        Some(id) => state
            .device(id)
            .ok_or_else(|| IncomingError::UnknownDevice(id.to_owned()))?,
        None => state.only_device().ok_or(IncomingError::DeviceRequired)?,
    };
    let quoted = message
        .reply_to
        .as_deref()
        .and_then(|id| state.sent_message(id));
    let at = OffsetDateTime::now_utc();
    let probe = outgoing::incoming(state, &device, &message, &from, quoted.as_ref(), "", at);
    let event = probe.event.clone();
    // One id for every target (the message is one message).
    let id = probe.ids.clone();
    Ok(emit(state, &device, &event, |destination| {
        if destination.is_empty() || state.kind() != Kind::Evolution {
            return probe.clone();
        }
        // Evolution's body names its destination; the rest (and the id) stays the same.
        let mut value = probe.value();
        value["destination"] = Value::String(destination.to_owned());
        Outgoing {
            bytes: serde_json::to_vec(&value).unwrap_or_else(|_| probe.bytes.clone()),
            ids: id.clone(),
            ..probe.clone()
        }
    })
    .await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DeviceSpec, DeviceState};
    use crate::gomarshal::go_marshal;

    fn device() -> Device {
        Device::new(
            DeviceSpec::new(
                "tenant-42",
                "6281234567890@s.whatsapp.net",
                DeviceState::LoggedIn,
            ),
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn delivered_receipt_has_the_sample_shape() {
        // tests/fixtures/gowa/gowa-message-ack-delivered.json without sender_display_name
        // (GOWA adds it only when it knows the contact's name).
        let sent = SentMessage {
            id: "3EB0B430B6F8F1D0E053AC".into(),
            device_id: "tenant-42".into(),
            chat: "6289876543210@s.whatsapp.net".into(),
            text: None,
            failure: None,
        };
        let at = OffsetDateTime::parse("2026-08-22T10:20:11.734Z", &Rfc3339).unwrap();
        let bytes = go_marshal(&receipt_body(&device(), &sent, "delivered", at));
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"device_id":"6281234567890@s.whatsapp.net","event":"message.ack","payload":{"chat_id":"6289876543210@s.whatsapp.net","from":"6289876543210@s.whatsapp.net","ids":["3EB0B430B6F8F1D0E053AC"],"receipt_type":"delivered","receipt_type_description":"means the message was delivered to the device (but the user might not have noticed)."},"session_id":"tenant-42","timestamp":"2026-08-22T10:20:11Z"}"#
        );
    }

    #[test]
    fn incoming_reply_quotes_the_message_it_answers() {
        let message = IncomingMessage {
            device_id: None,
            from: "+6289876543210".into(),
            text: "Hi, is my order #1042 shipped yet?".into(),
            from_name: Some("Budi".into()),
            reply_to: Some("3EB0B430B6F8F1D0E053AC".into()),
        };
        let at = OffsetDateTime::parse("2026-08-22T10:15:30Z", &Rfc3339).unwrap();
        let from = user_jid(&message.from).unwrap();
        let body = incoming_body(
            &device(),
            &message,
            &from,
            "A1B2C3D4E5F60718293A4B5C6D7E8F90",
            Some("Thanks for your order!"),
            at,
        );
        assert_eq!(
            String::from_utf8(go_marshal(&body)).unwrap(),
            r#"{"device_id":"6281234567890@s.whatsapp.net","event":"message","payload":{"body":"Hi, is my order #1042 shipped yet?","chat_id":"6289876543210@s.whatsapp.net","from":"6289876543210@s.whatsapp.net","from_name":"Budi","id":"A1B2C3D4E5F60718293A4B5C6D7E8F90","is_from_me":false,"quoted_body":"Thanks for your order!","replied_to_id":"3EB0B430B6F8F1D0E053AC","sender_display_name":"Budi","timestamp":"2026-08-22T10:15:30Z"},"session_id":"tenant-42"}"#
        );
    }

    #[test]
    fn device_webhook_wins_over_the_global_one_and_signs_with_its_own_secret() {
        let global = WebhookConfig {
            urls: vec!["http://127.0.0.1:1/global".into()],
            secret: "global-secret".into(),
            events: Vec::new(),
        };
        let own = DeviceWebhook {
            url: "http://127.0.0.1:2/own".into(),
            secret: "own-secret".into(),
            events: Vec::new(),
            headers: BTreeMap::new(),
        };
        let t = targets(Some(&own), &global, "message.ack").unwrap();
        assert_eq!(
            t,
            vec![Target {
                url: own.url.clone(),
                secret: "own-secret".into(),
                headers: BTreeMap::new(),
            }]
        );
        let no_secret = DeviceWebhook {
            secret: String::new(),
            ..own.clone()
        };
        assert_eq!(
            targets(Some(&no_secret), &global, "message").unwrap()[0].secret,
            "global-secret"
        );
        assert_eq!(
            targets(None, &global, "message").unwrap()[0].url,
            "http://127.0.0.1:1/global"
        );
    }

    #[test]
    fn event_filters_and_missing_webhooks_send_nothing() {
        let filtered = DeviceWebhook {
            url: "http://127.0.0.1:2/own".into(),
            secret: String::new(),
            events: vec!["message".into()],
            headers: BTreeMap::new(),
        };
        assert!(targets(Some(&filtered), &WebhookConfig::default(), "message.ack").is_err());
        assert!(targets(None, &WebhookConfig::default(), "message").is_err());
    }

    #[test]
    fn incoming_sender_must_be_a_user_number_or_jid() {
        assert_eq!(
            user_jid("+6289876543210").unwrap(),
            "6289876543210@s.whatsapp.net"
        );
        assert_eq!(
            user_jid("6289876543210@s.whatsapp.net").unwrap(),
            "6289876543210@s.whatsapp.net"
        );
        for bad in ["", "0812345678", "abc", "120363402106123456@g.us", "12"] {
            assert!(user_jid(bad).is_err(), "{bad}");
        }
    }
}
