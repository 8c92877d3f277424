//! WAHA (devlikeapro/waha) client.
//!
//! `X-Api-Key` (optional), the endpoint's `deviceId` is the session (default `default`),
//! chats are `<digits>@c.us`. Sends: `POST /api/sendText`, `/api/sendImage`, `/api/sendFile`
//! (files by URL, with a MIME type from the URL's extension), replies by `reply_to` (a WAHA
//! serialized id, `true_…`/`false_…`; any other id is left out and the message goes as a
//! plain one). Failure mapping: 401/403 bad credentials; 404 (no such session)
//! `DEVICE_NOT_FOUND`; 422 (the session is not `WORKING`) logged out; 400 permanent; 429 and
//! the engine's 463 (reachout timelock) and 475 (message capping) rate limited; 504 on a send
//! ambiguous; other 5xx retryable. Session statuses: `WORKING` connected and logged in;
//! `SCAN_QR_CODE` connected, not logged in; `STARTING`, `STOPPED`, `FAILED` and the passkey
//! states not connected.
//!
//! Webhook wiring: the session's `config.webhooks` (`PUT /api/sessions/{session}` with the
//! whole config, read back with `GET /api/sessions/{session}`): wagate's webhook is the
//! session's only one, with the events wagate consumes ([`WIRED_EVENTS`]) and `hmac.key` = the
//! tenant's webhook secret (WAHA then signs every delivery with `X-Webhook-Hmac`, HMAC-SHA512);
//! the rest of the session's config (metadata, proxy, engine settings) is kept as it is.
//! WAHA restarts a running session to apply a new config: a linked session stays linked.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{self as h, Answer, Call};
use super::{
    Content, DEVICE_NOT_FOUND, DeviceStatus, DeviceWebhook, LoginQr, MAX_QR_PNG_BYTES,
    ProviderError, SendReceipt, SendRequest, SlotOutcome, Target, WhatsAppProvider,
};
use crate::egress::HttpClient;
use crate::secrets::Secret;
use crate::tenant::{Credentials, ProviderKind};

/// WAHA's session when the endpoint names none.
pub const DEFAULT_SESSION: &str = "default";

/// How long a WAHA QR stays valid (WAHA refreshes it about every 20 s).
const QR_DURATION: Duration = Duration::from_secs(20);

/// WAHA client over the shared HTTP client.
#[derive(Debug, Clone)]
pub struct WahaClient {
    http: HttpClient,
}

#[derive(Debug, Deserialize)]
struct SessionInfo {
    name: String,
    status: String,
    #[serde(default)]
    me: Option<Me>,
}

#[derive(Debug, Deserialize)]
struct Me {
    id: String,
}

impl WahaClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    fn session<'a>(target: &Target<'a>) -> &'a str {
        target
            .device_id
            .filter(|d| !d.is_empty())
            .unwrap_or(DEFAULT_SESSION)
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
            Credentials::ApiKey { key } => rb.header("X-Api-Key", key.expose()),
            _ => rb,
        })
    }

    async fn read(&self, rb: reqwest::RequestBuilder, call: Call) -> Result<Answer, ProviderError> {
        h::successful(rb, call, error_from).await
    }
}

/// `<digits>@c.us` for a number or user JID; a group JID as it is.
fn chat_id(to: &str) -> Option<String> {
    if let Some(group) = to.strip_suffix("@g.us")
        && !group.is_empty()
        && group.bytes().all(|b| b.is_ascii_digit() || b == b'-')
    {
        return Some(to.to_string());
    }
    h::phone_digits(to).map(|d| format!("{d}@c.us"))
}

/// A WAHA serialized message id (`true_<chat>_<id>`), the only kind `reply_to` takes.
fn is_waha_message_id(id: &str) -> bool {
    let rest = id
        .strip_prefix("true_")
        .or_else(|| id.strip_prefix("false_"));
    rest.and_then(|r| r.split_once('_'))
        .is_some_and(|(chat, msg)| {
            !chat.is_empty()
                && msg
                    .split('_')
                    .next()
                    .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphanumeric()))
        })
}

/// The human message of a WAHA error body (`message` string or list, or `error`).
fn error_message(body: &Value, status: StatusCode) -> String {
    let m = match body.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        _ => body
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string()),
    };
    h::bounded(&m)
}

fn error_from(a: &Answer, call: Call) -> ProviderError {
    let body = a.json();
    let message = error_message(&body, a.status);
    if let Some(e) = h::common_class(a, call, &message) {
        return e;
    }
    match a.status {
        StatusCode::NOT_FOUND => ProviderError::Permanent {
            code: DEVICE_NOT_FOUND.into(),
            message,
        },
        StatusCode::UNPROCESSABLE_ENTITY => {
            let status = body.get("status").and_then(Value::as_str).unwrap_or("");
            ProviderError::LoggedOut {
                message: h::bounded(&format!("{message} (session status {status})")),
            }
        }
        StatusCode::INTERNAL_SERVER_ERROR => {
            // The engine's WhatsApp error codes come through the exception filter as
            // "server returned error <code>".
            let error = body.get("error").and_then(Value::as_str).unwrap_or("");
            if error.ends_with("error 463") || error.ends_with("error 475") {
                ProviderError::RateLimited {
                    message,
                    retry_after: a.retry_after,
                }
            } else {
                ProviderError::Retryable {
                    reason: format!("server answered 500: {message}"),
                    before_sent: false,
                }
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

fn status_of(s: &SessionInfo) -> DeviceStatus {
    DeviceStatus {
        device_id: s.name.clone(),
        connected: matches!(s.status.as_str(), "WORKING" | "SCAN_QR_CODE"),
        logged_in: s.status == "WORKING",
        jid: s.me.as_ref().map(|m| {
            m.id.strip_suffix("@c.us")
                .map(|u| format!("{u}@s.whatsapp.net"))
                .unwrap_or_else(|| m.id.clone())
        }),
    }
}

#[async_trait]
impl WhatsAppProvider for WahaClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Waha
    }

    async fn send(
        &self,
        target: Target<'_>,
        req: &SendRequest,
    ) -> Result<SendReceipt, ProviderError> {
        let chat = chat_id(&req.to).ok_or_else(|| h::bad_recipient("WAHA"))?;
        let session = Self::session(&target);
        let (path, mut body) = match &req.content {
            Content::Text { body } => (
                "sendText",
                json!({"session": session, "chatId": chat, "text": body}),
            ),
            Content::Image { url, caption } => {
                let mut b = json!({"session": session, "chatId": chat,
                    "file": {"mimetype": h::mime_from_url(url, "image/jpeg"), "url": url}});
                if let Some(c) = caption {
                    b["caption"] = json!(c);
                }
                ("sendImage", b)
            }
            Content::Document {
                url,
                filename,
                caption,
            } => {
                let mut file = json!({"mimetype": h::mime_from_url(url, "application/octet-stream"), "url": url});
                if let Some(f) = filename {
                    file["filename"] = json!(f);
                }
                let mut b = json!({"session": session, "chatId": chat, "file": file});
                if let Some(c) = caption {
                    b["caption"] = json!(c);
                }
                ("sendFile", b)
            }
        };
        if let Some(r) = req.reply_to.as_deref().filter(|r| is_waha_message_id(r)) {
            body["reply_to"] = json!(r);
        }
        let rb = self
            .request(Method::POST, &target, &["api", path])?
            .json(&body);
        let a = self.read(rb, Call::Send).await?;
        let id = a
            .json()
            .get("id")
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                // Some engines answer the id as an object with `_serialized`.
                Value::Object(o) => o
                    .get("_serialized")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                _ => None,
            })
            .filter(|s| !s.is_empty())
            .ok_or_else(|| h::unexpected(Call::Send))?;
        Ok(SendReceipt {
            provider_message_id: id,
        })
    }

    async fn device_status(&self, target: Target<'_>) -> Result<DeviceStatus, ProviderError> {
        match self.slot_status(target).await {
            Err(e) if e.is_device_not_found() => Ok(DeviceStatus {
                device_id: Self::session(&target).to_string(),
                connected: false,
                logged_in: false,
                jid: None,
            }),
            other => other,
        }
    }

    async fn slot_status(&self, target: Target<'_>) -> Result<DeviceStatus, ProviderError> {
        let rb = self.request(
            Method::GET,
            &target,
            &["api", "sessions", Self::session(&target)],
        )?;
        let info: SessionInfo = self.read(rb, Call::Read).await?.parse(Call::Read)?;
        Ok(status_of(&info))
    }

    async fn devices(&self, target: Target<'_>) -> Result<Vec<DeviceStatus>, ProviderError> {
        let rb = self.request_with(
            Method::GET,
            &target,
            &["api", "sessions"],
            &[("all", "true")],
        )?;
        let list: Vec<SessionInfo> = self.read(rb, Call::Read).await?.parse(Call::Read)?;
        Ok(list.iter().map(status_of).collect())
    }

    async fn health(&self, target: Target<'_>) -> Result<(), ProviderError> {
        let rb = self.request(Method::GET, &target, &["health"])?;
        self.read(rb, Call::Read).await.map(|_| ())
    }

    async fn create_device(&self, target: Target<'_>) -> Result<SlotOutcome, ProviderError> {
        let rb = self
            .request(Method::POST, &target, &["api", "sessions"])?
            .json(&json!({"name": Self::session(&target), "start": true}));
        let a = h::call(rb, Call::Read).await?;
        match a.status {
            s if s.is_success() => Ok(SlotOutcome::Created),
            // WAHA answers 422 when a session of that name exists.
            StatusCode::UNPROCESSABLE_ENTITY => Ok(SlotOutcome::Existed),
            _ => Err(error_from(&a, Call::Read)),
        }
    }

    /// The session's webhook: the first of its `config.webhooks`.
    async fn get_webhook(&self, target: Target<'_>) -> Result<DeviceWebhook, ProviderError> {
        Ok(webhook_of(&self.session_config(&target).await?))
    }

    /// Makes `webhook` the session's only webhook (with [`WIRED_EVENTS`] when it names none
    /// and `hmac.key` = its secret), keeping the rest of the session's config.
    async fn set_webhook(
        &self,
        target: Target<'_>,
        webhook: &DeviceWebhook,
    ) -> Result<(), ProviderError> {
        let mut config = self.session_config(&target).await?;
        let events: Vec<&str> = if webhook.events.is_empty() {
            WIRED_EVENTS.to_vec()
        } else {
            webhook.events.iter().map(String::as_str).collect()
        };
        config["webhooks"] = json!([{
            "url": webhook.url,
            "events": events,
            "hmac": {"key": webhook.secret.expose()},
        }]);
        let rb = self
            .request(
                Method::PUT,
                &target,
                &["api", "sessions", Self::session(&target)],
            )?
            .json(&json!({"config": config}));
        self.read(rb, Call::Read).await.map(|_| ())
    }

    async fn login_qr(&self, target: Target<'_>) -> Result<LoginQr, ProviderError> {
        let rb = self
            .request_with(
                Method::GET,
                &target,
                &["api", Self::session(&target), "auth", "qr"],
                &[("format", "image")],
            )?
            .header(reqwest::header::ACCEPT, "image/png");
        let a = self.read(rb, Call::Read).await?;
        let bad = |message: &str| ProviderError::Permanent {
            code: "BAD_QR_IMAGE".into(),
            message: message.into(),
        };
        if a.body.len() > MAX_QR_PNG_BYTES {
            return Err(bad(&format!(
                "the QR picture is over {MAX_QR_PNG_BYTES} bytes"
            )));
        }
        if !a.body.starts_with(h::PNG_SIGNATURE) {
            return Err(bad("the QR picture is not a PNG"));
        }
        Ok(LoginQr {
            png: a.body,
            expires_in: QR_DURATION,
        })
    }

    async fn login_code(&self, target: Target<'_>, phone: &str) -> Result<String, ProviderError> {
        let rb = self
            .request(
                Method::POST,
                &target,
                &["api", Self::session(&target), "auth", "request-code"],
            )?
            .json(&json!({"phoneNumber": phone}));
        let a = self.read(rb, Call::Read).await?;
        a.json()
            .get("code")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| h::unexpected(Call::Read))
    }

    async fn logout(&self, target: Target<'_>) -> Result<(), ProviderError> {
        let rb = self.request(
            Method::POST,
            &target,
            &["api", "sessions", Self::session(&target), "logout"],
        )?;
        self.read(rb, Call::Read).await.map(|_| ())
    }

    async fn reconnect(&self, target: Target<'_>) -> Result<(), ProviderError> {
        let rb = self.request(
            Method::POST,
            &target,
            &["api", "sessions", Self::session(&target), "restart"],
        )?;
        self.read(rb, Call::Read).await.map(|_| ())
    }
}

/// The events wagate subscribes a WAHA session's webhook to: messages, receipts and session
/// status changes (WAHA refuses an empty list).
pub const WIRED_EVENTS: &[&str] = &["message", "message.ack", "session.status"];

/// The first webhook of a session's config, as wagate compares it (no webhook: empty URL).
fn webhook_of(config: &Value) -> DeviceWebhook {
    let Some(hook) = config
        .get("webhooks")
        .and_then(Value::as_array)
        .and_then(|l| l.first())
    else {
        return DeviceWebhook {
            url: String::new(),
            secret: Secret::new(String::new()),
            events: Vec::new(),
        };
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    DeviceWebhook {
        url: text(hook.get("url")),
        secret: Secret::new(text(hook.get("hmac").and_then(|h| h.get("key")))),
        events: hook
            .get("events")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

impl WahaClient {
    /// The session's config as it is (`{}` when it has none).
    async fn session_config(&self, target: &Target<'_>) -> Result<Value, ProviderError> {
        let rb = self.request(
            Method::GET,
            target,
            &["api", "sessions", Self::session(target)],
        )?;
        let body = self.read(rb, Call::Read).await?.json();
        Ok(match body.get("config") {
            Some(c @ Value::Object(_)) => c.clone(),
            _ => json!({}),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_webhook_of_a_session_config_is_the_one_compared() {
        let cfg = json!({"webhooks": [
            {"url": "https://w.example/webhooks/whatsapp/acme", "events": ["message", "message.ack"],
             "hmac": {"key": "k1"}, "retries": null, "customHeaders": null},
            {"url": "https://other.example", "events": ["message"]}
        ], "proxy": null});
        let w = webhook_of(&cfg);
        assert_eq!(w.url, "https://w.example/webhooks/whatsapp/acme");
        assert_eq!(w.secret.expose(), "k1");
        assert_eq!(w.events, ["message", "message.ack"]);
        let none = webhook_of(
            &json!({"webhooks": [{"url": "https://x", "events": ["message"], "hmac": null}]}),
        );
        assert_eq!(none.secret.expose(), "", "no hmac: no secret");
        assert!(webhook_of(&json!({})).url.is_empty());
    }

    #[test]
    fn chat_ids_are_c_us_or_groups() {
        assert_eq!(
            chat_id("+6281234567890").as_deref(),
            Some("6281234567890@c.us")
        );
        assert_eq!(
            chat_id("6281234567890@s.whatsapp.net").as_deref(),
            Some("6281234567890@c.us")
        );
        assert_eq!(chat_id("120363-1@g.us").as_deref(), Some("120363-1@g.us"));
        assert_eq!(chat_id("x@broadcast"), None);
    }

    #[test]
    fn reply_to_takes_only_waha_serialized_ids() {
        assert!(is_waha_message_id("false_6281@c.us_3EB0ABC"));
        assert!(is_waha_message_id("true_6281@c.us_3EB0ABC_628@c.us"));
        assert!(!is_waha_message_id("3EB0ABC"));
        assert!(!is_waha_message_id("wamid.HBgL"));
        assert!(!is_waha_message_id("false_6281@c.us_"));
    }
}
