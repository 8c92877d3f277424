//! Meta WhatsApp Cloud API client (Graph API [`GRAPH_VERSION`]).
//!
//! `Authorization: Bearer <token>`; the endpoint's `deviceId` is the phone number id
//! (required); the base URL is `https://graph.facebook.com` (a simulator's in tests). Sends:
//! `POST /{version}/{phone-number-id}/messages` with `type` text, image (`link`, `caption`)
//! or document (`link`, `filename`, `caption`), replies by `context.message_id` (a `wamid.`
//! id; any other is left out and the message goes as a plain one). Answer:
//! `messages[0].id`.
//!
//! Failure mapping, by the Graph error `code` first (Meta's error-code table), then by status:
//! - rate limited: 4 (application request limit), 80007, 130429 (throughput), 131048 (spam
//!   rate limit), 131056 (pair rate limit), 133016 (register rate limit), and HTTP 429;
//! - bad credentials: 190 (token invalid or expired), 131005 (access denied), 10 and 200
//!   (permission), and any other 401/403;
//! - logged out: 133010 (the number is not registered with the Cloud API), 131031 (the
//!   business account is locked): the number cannot send until someone acts; a backup may;
//! - retryable: 131000 (something went wrong), 131016 (service unavailable), 1 and 2
//!   (temporary API errors), other 5xx but 504;
//! - ambiguous: 504 on a send (an edge proxy gave up: the message may be out);
//! - permanent: 131047 (re-engagement: more than 24 h since the customer's last message),
//!   131026 (undeliverable), 131021, 131030, 131051, 100, 131008, 131009, 368 and anything
//!   else, with the Graph code as the error code.
//!
//! Health: `GET /{version}/{phone-number-id}?fields=health_status` — `can_send_message`
//! AVAILABLE or LIMITED is logged in; BLOCKED is connected but not logged in (it cannot
//! send). Meta has no QR: a number is registered in Meta's console or with `/register`.

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::http::{self as h, Answer, Call};
use super::{
    Content, DeviceStatus, ProviderError, SendReceipt, SendRequest, Target, WhatsAppProvider,
};
use crate::egress::HttpClient;
use crate::tenant::{Credentials, ProviderKind};

/// The Graph API version wagate calls.
pub const GRAPH_VERSION: &str = "v23.0";

/// Meta's Graph API base URL (an endpoint's `baseUrl` for Meta).
pub const GRAPH_BASE_URL: &str = "https://graph.facebook.com";

/// Meta Cloud API client over the shared HTTP client.
#[derive(Debug, Clone)]
pub struct MetaClient {
    http: HttpClient,
}

impl MetaClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    fn phone_number_id<'a>(target: &Target<'a>) -> Result<&'a str, ProviderError> {
        h::required_device(target, "Meta phone number id")
    }

    fn request(
        &self,
        method: Method,
        target: &Target<'_>,
        suffix: &[&str],
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        self.request_with(method, target, suffix, &[])
    }

    fn request_with(
        &self,
        method: Method,
        target: &Target<'_>,
        suffix: &[&str],
        query: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let id = Self::phone_number_id(target)?;
        let mut segments = vec![GRAPH_VERSION, id];
        segments.extend_from_slice(suffix);
        let rb = h::request(
            &self.http,
            method,
            h::url_with(target.base_url, &segments, query)?,
        )?;
        Ok(match target.credentials {
            Credentials::Meta { token, .. } | Credentials::Bearer { token } => {
                rb.bearer_auth(token.expose())
            }
            _ => rb,
        })
    }

    async fn read(&self, rb: reqwest::RequestBuilder, call: Call) -> Result<Answer, ProviderError> {
        h::successful(rb, call, error_from).await
    }

    async fn health_status(&self, target: &Target<'_>) -> Result<String, ProviderError> {
        let rb = self.request_with(Method::GET, target, &[], &[("fields", "health_status")])?;
        let a = self.read(rb, Call::Read).await?;
        a.json()
            .pointer("/health_status/can_send_message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| h::unexpected(Call::Read))
    }
}

/// Maps a Graph error code (and the HTTP status) to its class.
fn error_from(a: &Answer, call: Call) -> ProviderError {
    let body = a.json();
    let err = body.get("error");
    let code = err.and_then(|e| e.get("code")).and_then(Value::as_i64);
    let details = err
        .and_then(|e| e.pointer("/error_data/details"))
        .and_then(Value::as_str);
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| a.status.canonical_reason().unwrap_or("error"));
    let message = h::bounded(&match details {
        Some(d) => format!("{message}: {d}"),
        None => message.to_string(),
    });
    let code_str = code.map_or_else(|| a.status.as_u16().to_string(), |c| c.to_string());
    match code {
        Some(4 | 80007 | 130429 | 131048 | 131056 | 133016) => ProviderError::RateLimited {
            message,
            retry_after: a.retry_after,
        },
        Some(190 | 131005 | 10 | 200) => ProviderError::BadCredentials {
            status: a.status.as_u16(),
        },
        Some(133010 | 131031) => ProviderError::LoggedOut {
            message: format!("({code_str}) {message}"),
        },
        Some(131000 | 131016 | 1 | 2) if a.status != StatusCode::GATEWAY_TIMEOUT => {
            ProviderError::Retryable {
                reason: format!(
                    "server answered {} ({code_str}): {message}",
                    a.status.as_u16()
                ),
                before_sent: false,
            }
        }
        _ => match h::common_class(a, call, &message) {
            Some(e) => e,
            None if a.status.is_server_error() => ProviderError::Retryable {
                reason: format!("server answered {}: {message}", a.status.as_u16()),
                before_sent: false,
            },
            None => ProviderError::Permanent {
                code: code_str,
                message,
            },
        },
    }
}

/// A `wamid.` message id, the only kind `context.message_id` takes.
fn is_wamid(id: &str) -> bool {
    id.strip_prefix("wamid.")
        .is_some_and(|r| !r.is_empty() && r.len() <= 256)
}

#[async_trait]
impl WhatsAppProvider for MetaClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Meta
    }

    async fn send(
        &self,
        target: Target<'_>,
        req: &SendRequest,
    ) -> Result<SendReceipt, ProviderError> {
        let to = h::phone_digits(&req.to).ok_or_else(|| h::bad_recipient("Meta's Cloud API"))?;
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
        });
        match &req.content {
            Content::Text { body: text } => {
                body["type"] = json!("text");
                body["text"] = json!({"body": text});
            }
            Content::Image { url, caption } => {
                let mut image = json!({"link": url});
                if let Some(c) = caption {
                    image["caption"] = json!(c);
                }
                body["type"] = json!("image");
                body["image"] = image;
            }
            Content::Document {
                url,
                filename,
                caption,
            } => {
                let mut doc = json!({"link": url});
                if let Some(f) = filename {
                    doc["filename"] = json!(f);
                }
                if let Some(c) = caption {
                    doc["caption"] = json!(c);
                }
                body["type"] = json!("document");
                body["document"] = doc;
            }
        }
        if let Some(r) = req.reply_to.as_deref().filter(|r| is_wamid(r)) {
            body["context"] = json!({"message_id": r});
        }
        let rb = self
            .request(Method::POST, &target, &["messages"])?
            .json(&body);
        let a = self.read(rb, Call::Send).await?;
        let id = a
            .json()
            .pointer("/messages/0/id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| h::unexpected(Call::Send))?;
        Ok(SendReceipt {
            provider_message_id: id,
        })
    }

    async fn device_status(&self, target: Target<'_>) -> Result<DeviceStatus, ProviderError> {
        let can_send = self.health_status(&target).await?;
        Ok(DeviceStatus {
            device_id: Self::phone_number_id(&target)?.to_string(),
            connected: true,
            logged_in: matches!(can_send.as_str(), "AVAILABLE" | "LIMITED"),
            jid: None,
        })
    }

    async fn devices(&self, target: Target<'_>) -> Result<Vec<DeviceStatus>, ProviderError> {
        Ok(vec![self.device_status(target).await?])
    }

    /// Meta's API has no server health route: the number's own health answer stands in
    /// (any answer but a failure means the API is up).
    async fn health(&self, target: Target<'_>) -> Result<(), ProviderError> {
        self.health_status(&target).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: Value) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            body: serde_json::to_vec(&body).unwrap(),
        }
    }

    fn graph(status: u16, code: i64) -> ProviderError {
        error_from(
            &answer(status, json!({"error": {"message": "x", "code": code}})),
            Call::Send,
        )
    }

    #[test]
    fn graph_codes_map_to_their_classes() {
        use super::super::ErrorClass::*;
        for (status, code, class) in [
            (400, 130429, RateLimited),
            (400, 131056, RateLimited),
            (400, 80007, RateLimited),
            (400, 4, RateLimited),
            (400, 131048, RateLimited),
            (429, 130429, RateLimited),
            (401, 190, BadCredentials),
            (403, 131005, BadCredentials),
            (400, 133010, LoggedOut),
            (500, 131000, Retryable),
            (503, 131016, Retryable),
            (400, 131047, Permanent),
            (400, 131026, Permanent),
            (400, 100, Permanent),
            (400, 131051, Permanent),
        ] {
            assert_eq!(graph(status, code).class(), class, "{status} {code}");
        }
        let e = graph(400, 131047);
        assert!(matches!(e, ProviderError::Permanent { ref code, .. } if code == "131047"));
    }

    #[test]
    fn an_edge_proxys_504_on_a_send_is_ambiguous() {
        let e = error_from(&answer(504, Value::Null), Call::Send);
        assert_eq!(e.class(), super::super::ErrorClass::Ambiguous);
    }

    #[test]
    fn only_wamids_are_quoted() {
        assert!(is_wamid(
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"
        ));
        assert!(!is_wamid("3EB0ABC"));
        assert!(!is_wamid("wamid."));
    }
}
