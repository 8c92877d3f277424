//! Evolution API v2 client.
//!
//! `apikey` header (the global key or the instance's token), the endpoint's `deviceId` is
//! the instance name (required), numbers are digits. Sends: `POST /message/sendText/{i}`
//! and `/message/sendMedia/{i}` (image or document by URL, `fileName`, `caption`), replies
//! by `quoted.key.id`. Failure mapping: 401/403 bad credentials; 404 (no such instance)
//! `DEVICE_NOT_FOUND`; 400 permanent (`NOT_ON_WHATSAPP` when the answer says the number
//! does not exist); 500 `Connection Closed` (the instance is not `open`) logged out; 500
//! `rate-overlimit` and 429 rate limited; 504 on a send ambiguous; other 5xx retryable.
//! States: `open` connected and logged in; `connecting`, `close`, `refused` not.
//!
//! Webhook wiring: `POST /webhook/set/{instance}` {enabled, url, events ([`WIRED_EVENTS`]),
//! byEvents false, base64 false, headers {jwt_key: the tenant's webhook secret}}, read back
//! with `GET /webhook/find/{instance}`. Evolution signs no body: with `jwt_key` it sends
//! `Authorization: Bearer <HS256 JWT>` (iat, exp) made with that key, which is what the
//! ingress verifies (with the required source allowlist). Evolution's event names are
//! reported as wagate's (`MESSAGES_UPSERT` as `message`, `MESSAGES_UPDATE` as `message.ack`)
//! so one comparison serves every kind; a webhook sent per event (`webhookByEvents`) goes to
//! `<url>/<event>`, so it is reported as pointing elsewhere.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{self as h, Answer, Call};
use super::{
    Content, DEVICE_NOT_FOUND, DeviceStatus, DeviceWebhook, LoginQr, MAX_QR_PNG_BYTES,
    ProviderError, SendReceipt, SendRequest, Target, WhatsAppProvider,
};
use crate::egress::HttpClient;
use crate::secrets::Secret;
use crate::tenant::{Credentials, ProviderKind};

/// How long an Evolution QR stays valid (Baileys refreshes it about every 40 s).
const QR_DURATION: Duration = Duration::from_secs(40);

/// Evolution API client over the shared HTTP client.
#[derive(Debug, Clone)]
pub struct EvolutionClient {
    http: HttpClient,
}

#[derive(Debug, Deserialize)]
struct ConnectionState {
    instance: InstanceState,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceState {
    instance_name: String,
    state: String,
}

impl EvolutionClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    fn instance<'a>(target: &Target<'a>) -> Result<&'a str, ProviderError> {
        h::required_device(target, "Evolution instance name")
    }

    fn request(
        &self,
        method: Method,
        target: &Target<'_>,
        segments: &[&str],
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        self.request_with(method, target, segments, &[])
    }

    fn request_with(
        &self,
        method: Method,
        target: &Target<'_>,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let rb = h::request(
            &self.http,
            method,
            h::url_with(target.base_url, segments, query)?,
        )?;
        Ok(match target.credentials {
            Credentials::ApiKey { key } => rb.header("apikey", key.expose()),
            _ => rb,
        })
    }

    async fn read(&self, rb: reqwest::RequestBuilder, call: Call) -> Result<Answer, ProviderError> {
        h::successful(rb, call, error_from).await
    }
}

/// The messages of an Evolution error body `{status, error, response: {message: [...]}}`.
fn error_messages(body: &Value) -> Vec<Value> {
    match body.pointer("/response/message") {
        Some(Value::Array(a)) => a.clone(),
        Some(v) => vec![v.clone()],
        None => Vec::new(),
    }
}

fn error_from(a: &Answer, call: Call) -> ProviderError {
    let body = a.json();
    let messages = error_messages(&body);
    let text = messages
        .iter()
        .map(|m| match m {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let message = h::bounded(if text.is_empty() {
        a.status.canonical_reason().unwrap_or("error")
    } else {
        &text
    });
    if let Some(e) = h::common_class(a, call, &message) {
        return e;
    }
    match a.status {
        StatusCode::NOT_FOUND => ProviderError::Permanent {
            code: DEVICE_NOT_FOUND.into(),
            message,
        },
        StatusCode::BAD_REQUEST
            if messages
                .iter()
                .any(|m| m.get("exists") == Some(&Value::Bool(false))) =>
        {
            ProviderError::Permanent {
                code: "NOT_ON_WHATSAPP".into(),
                message,
            }
        }
        StatusCode::INTERNAL_SERVER_ERROR if text.contains("Connection Closed") => {
            ProviderError::LoggedOut { message }
        }
        StatusCode::INTERNAL_SERVER_ERROR if text.contains("rate-overlimit") => {
            ProviderError::RateLimited {
                message,
                retry_after: a.retry_after,
            }
        }
        s if s.is_server_error() => ProviderError::Retryable {
            reason: format!("server answered {}: {message}", s.as_u16()),
            before_sent: false,
        },
        s => ProviderError::Permanent {
            code: s.as_u16().to_string(),
            message,
        },
    }
}

/// A PNG from a `data:image/png;base64,…` URL (or bare base64).
fn png_from_data_url(data: &str) -> Result<Vec<u8>, ProviderError> {
    let bad = |message: &str| ProviderError::Permanent {
        code: "BAD_QR_IMAGE".into(),
        message: message.into(),
    };
    let b64 = data.split_once(";base64,").map_or(data, |(_, b)| b);
    if b64.len() > MAX_QR_PNG_BYTES * 4 / 3 + 4 {
        return Err(bad(&format!(
            "the QR picture is over {MAX_QR_PNG_BYTES} bytes"
        )));
    }
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad("the QR picture is not base64"))?;
    if !png.starts_with(h::PNG_SIGNATURE) {
        return Err(bad("the QR picture is not a PNG"));
    }
    Ok(png)
}

#[async_trait]
impl WhatsAppProvider for EvolutionClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Evolution
    }

    async fn send(
        &self,
        target: Target<'_>,
        req: &SendRequest,
    ) -> Result<SendReceipt, ProviderError> {
        let instance = Self::instance(&target)?;
        let number = h::phone_digits(&req.to).ok_or_else(|| h::bad_recipient("Evolution"))?;
        let (path, mut body) = match &req.content {
            Content::Text { body } => ("sendText", json!({"number": number, "text": body})),
            Content::Image { url, caption } => {
                let mut b = json!({"number": number, "mediatype": "image",
                    "mimetype": h::mime_from_url(url, "image/jpeg"), "media": url});
                if let Some(c) = caption {
                    b["caption"] = json!(c);
                }
                ("sendMedia", b)
            }
            Content::Document {
                url,
                filename,
                caption,
            } => {
                let mut b = json!({"number": number, "mediatype": "document",
                    "mimetype": h::mime_from_url(url, "application/octet-stream"), "media": url});
                if let Some(f) = filename {
                    b["fileName"] = json!(f);
                }
                if let Some(c) = caption {
                    b["caption"] = json!(c);
                }
                ("sendMedia", b)
            }
        };
        if let Some(r) = req.reply_to.as_deref().filter(|r| !r.is_empty()) {
            body["quoted"] = json!({"key": {"id": r}});
        }
        let rb = self
            .request(Method::POST, &target, &["message", path, instance])?
            .json(&body);
        let a = self.read(rb, Call::Send).await?;
        let id = a
            .json()
            .pointer("/key/id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| h::unexpected(Call::Send))?;
        Ok(SendReceipt {
            provider_message_id: id,
        })
    }

    async fn device_status(&self, target: Target<'_>) -> Result<DeviceStatus, ProviderError> {
        match self.slot_status(target).await {
            Err(e) if e.is_device_not_found() => Ok(DeviceStatus {
                device_id: Self::instance(&target)?.to_string(),
                connected: false,
                logged_in: false,
                jid: None,
            }),
            other => other,
        }
    }

    async fn slot_status(&self, target: Target<'_>) -> Result<DeviceStatus, ProviderError> {
        let instance = Self::instance(&target)?;
        let rb = self.request(
            Method::GET,
            &target,
            &["instance", "connectionState", instance],
        )?;
        let s: ConnectionState = self.read(rb, Call::Read).await?.parse(Call::Read)?;
        let open = s.instance.state == "open";
        Ok(DeviceStatus {
            device_id: s.instance.instance_name,
            connected: open,
            logged_in: open,
            jid: None,
        })
    }

    /// Evolution's instance list differs by key (all with the global key, one with an
    /// instance token): wagate asks for its own instance only.
    async fn devices(&self, target: Target<'_>) -> Result<Vec<DeviceStatus>, ProviderError> {
        Ok(vec![self.device_status(target).await?])
    }

    /// Evolution's only health answer is its welcome page (`GET /`, no key).
    async fn health(&self, target: Target<'_>) -> Result<(), ProviderError> {
        let rb = h::request(&self.http, Method::GET, h::url(target.base_url, &[])?)?;
        self.read(rb, Call::Read).await.map(|_| ())
    }

    async fn login_qr(&self, target: Target<'_>) -> Result<LoginQr, ProviderError> {
        let instance = Self::instance(&target)?;
        let rb = self.request(Method::GET, &target, &["instance", "connect", instance])?;
        let a = self.read(rb, Call::Read).await?;
        match a.json().get("base64").and_then(Value::as_str) {
            Some(data) => Ok(LoginQr {
                png: png_from_data_url(data)?,
                expires_in: QR_DURATION,
            }),
            None => Err(ProviderError::Permanent {
                code: "ALREADY_LOGGED_IN".into(),
                message: "the instance is already connected: no QR to scan".into(),
            }),
        }
    }

    async fn login_code(&self, target: Target<'_>, phone: &str) -> Result<String, ProviderError> {
        let instance = Self::instance(&target)?;
        let rb = self.request_with(
            Method::GET,
            &target,
            &["instance", "connect", instance],
            &[("number", phone)],
        )?;
        let a = self.read(rb, Call::Read).await?;
        a.json()
            .get("pairingCode")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ProviderError::Permanent {
                code: "ALREADY_LOGGED_IN".into(),
                message: "the instance answered no pairing code (already connected?)".into(),
            })
    }

    async fn get_webhook(&self, target: Target<'_>) -> Result<DeviceWebhook, ProviderError> {
        let instance = Self::instance(&target)?;
        let rb = self.request(Method::GET, &target, &["webhook", "find", instance])?;
        Ok(webhook_of(&self.read(rb, Call::Read).await?.json()))
    }

    async fn set_webhook(
        &self,
        target: Target<'_>,
        webhook: &DeviceWebhook,
    ) -> Result<(), ProviderError> {
        let instance = Self::instance(&target)?;
        let rb = self
            .request(Method::POST, &target, &["webhook", "set", instance])?
            .json(&json!({"webhook": {
                "enabled": true,
                "url": webhook.url,
                "events": WIRED_EVENTS,
                "byEvents": false,
                "base64": false,
                "headers": {"jwt_key": webhook.secret.expose()},
            }}));
        self.read(rb, Call::Read).await.map(|_| ())
    }

    async fn logout(&self, target: Target<'_>) -> Result<(), ProviderError> {
        let instance = Self::instance(&target)?;
        let rb = self.request(Method::DELETE, &target, &["instance", "logout", instance])?;
        self.read(rb, Call::Read).await.map(|_| ())
    }

    async fn reconnect(&self, target: Target<'_>) -> Result<(), ProviderError> {
        let instance = Self::instance(&target)?;
        let rb = self.request(Method::POST, &target, &["instance", "restart", instance])?;
        self.read(rb, Call::Read).await.map(|_| ())
    }
}

/// The events wagate subscribes an Evolution instance's webhook to: messages, receipts,
/// connection changes and QR updates.
pub const WIRED_EVENTS: &[&str] = &[
    "MESSAGES_UPSERT",
    "MESSAGES_UPDATE",
    "CONNECTION_UPDATE",
    "QRCODE_UPDATED",
];

/// An Evolution event name as wagate's wiring names it.
fn wagate_event(e: &str) -> String {
    match e {
        "MESSAGES_UPSERT" => "message".into(),
        "MESSAGES_UPDATE" => "message.ack".into(),
        other => other.to_string(),
    }
}

/// A `webhook/find` row as wagate compares it: disabled or absent is no webhook.
fn webhook_of(row: &Value) -> DeviceWebhook {
    let enabled = row.get("enabled").and_then(Value::as_bool).unwrap_or(false);
    let url = row.get("url").and_then(Value::as_str).unwrap_or_default();
    if !enabled || url.is_empty() {
        return DeviceWebhook {
            url: String::new(),
            secret: Secret::new(String::new()),
            events: Vec::new(),
        };
    }
    let by_events = row
        .get("webhookByEvents")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    DeviceWebhook {
        url: if by_events {
            format!("{}/<event>", url.trim_end_matches('/'))
        } else {
            url.to_string()
        },
        secret: Secret::new(
            row.get("headers")
                .and_then(|h| h.get("jwt_key"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ),
        events: row
            .get("events")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(wagate_event)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_find_row_reads_as_wagates_webhook() {
        let row = json!({"url": "https://w.example/webhooks/whatsapp/acme", "enabled": true,
            "events": ["MESSAGES_UPSERT", "MESSAGES_UPDATE", "CONNECTION_UPDATE"],
            "headers": {"jwt_key": "k1"}, "webhookByEvents": false});
        let w = webhook_of(&row);
        assert_eq!(w.url, "https://w.example/webhooks/whatsapp/acme");
        assert_eq!(w.secret.expose(), "k1");
        assert_eq!(w.events, ["message", "message.ack", "CONNECTION_UPDATE"]);
        assert!(
            webhook_of(&Value::Null).url.is_empty(),
            "no row: no webhook"
        );
        let disabled = json!({"url": "https://w.example", "enabled": false, "events": []});
        assert!(webhook_of(&disabled).url.is_empty(), "disabled: no webhook");
        let per_event = json!({"url": "https://w.example/x", "enabled": true, "events": [],
            "webhookByEvents": true});
        assert_ne!(webhook_of(&per_event).url, "https://w.example/x");
    }
}
