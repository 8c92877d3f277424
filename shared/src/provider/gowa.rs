//! go-whatsapp-web-multidevice ("GOWA") client.
//!
//! Basic auth (optional), device chosen by `X-Device-Id`, answers `{code, message, results}`.
//! Failure mapping (DESIGN.md section 2):
//! 400 → permanent; 401 with JSON code `AUTHENTICATION_ERROR` → device logged out; any
//! other 401 or 403 (with or without a JSON body) → bad credentials; 429 `WA_REACHOUT_TIMELOCK` → rate limited; 504 on a send →
//! ambiguous (GOWA gave up waiting on WhatsApp; the message may be out); other 5xx →
//! retryable; connect failure → retryable, not sent; timeout or broken connection after the
//! request left → ambiguous for a send, retryable for a read.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use url::Url;

use super::{
    Content, DeviceStatus, DeviceWebhook, LoginQr, MAX_QR_PNG_BYTES, ProviderError, SendReceipt,
    SendRequest, SlotOutcome, Target, WhatsAppProvider,
};
use crate::egress::{HttpClient, egress_refusal};
use crate::secrets::Secret;
use crate::tenant::{Credentials, ProviderKind};

/// GOWA's error code for a call to a device that is not logged in (HTTP 401).
const AUTHENTICATION_ERROR: &str = "AUTHENTICATION_ERROR";

/// GOWA client over the shared HTTP client.
#[derive(Debug, Clone)]
pub struct GowaClient {
    http: HttpClient,
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
    results: Option<T>,
}

#[derive(Debug, Deserialize)]
struct SendResults {
    message_id: String,
}

#[derive(Debug, Deserialize)]
struct AppStatus {
    #[serde(default)]
    is_connected: bool,
    #[serde(default)]
    is_logged_in: bool,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    jid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DeviceInfo {
    id: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    jid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LoginResults {
    qr_link: String,
    #[serde(default)]
    qr_duration: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct PairCodeResults {
    pair_code: String,
}

#[derive(Debug, Deserialize)]
struct DeviceStatusResults {
    #[serde(default)]
    is_connected: bool,
    #[serde(default)]
    is_logged_in: bool,
}

#[derive(Debug, Deserialize)]
struct WebhookResults {
    #[serde(default)]
    webhook_url: String,
    #[serde(default)]
    webhook_secret: String,
    #[serde(default)]
    webhook_events: String,
}

/// QR codes last this long when the server does not say (GOWA's example).
const DEFAULT_QR_DURATION: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    /// A send: a failure after the request left is ambiguous.
    Send,
    /// A read: any failure is just retryable.
    Read,
}

impl GowaClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    fn url(target: &Target<'_>, path: &str) -> Result<Url, ProviderError> {
        let base = target.base_url.trim_end_matches('/');
        Url::parse(&format!("{base}{path}")).map_err(|_| ProviderError::Permanent {
            code: "INVALID_BASE_URL".into(),
            message: "the endpoint base URL is not a valid URL".into(),
        })
    }

    fn request(
        &self,
        method: Method,
        target: &Target<'_>,
        path: &str,
        auth: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut rb = self.http.request(method, Self::url(target, path)?)?;
        if auth {
            rb = apply_credentials(rb, target.credentials);
            if let Some(d) = target.device_id {
                rb = rb.header("X-Device-Id", d);
            }
        }
        Ok(rb)
    }

    /// `/devices/{device_id}{suffix}` of the target's device (the id percent-encoded as one
    /// path segment), with credentials. No `X-Device-Id`: the path names the device.
    fn device_request(
        &self,
        method: Method,
        target: &Target<'_>,
        suffix: &[&str],
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        self.device_request_with(method, target, suffix, &[])
    }

    /// [`Self::device_request`] with query parameters.
    fn device_request_with(
        &self,
        method: Method,
        target: &Target<'_>,
        suffix: &[&str],
        query: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let device =
            target
                .device_id
                .filter(|d| !d.is_empty())
                .ok_or_else(|| ProviderError::Permanent {
                    code: "DEVICE_ID_REQUIRED".into(),
                    message: "the endpoint has no deviceId: set one to manage its device".into(),
                })?;
        let mut url = Self::url(target, "/devices")?;
        url.path_segments_mut()
            .map_err(|_| ProviderError::Permanent {
                code: "INVALID_BASE_URL".into(),
                message: "the endpoint base URL cannot take a path".into(),
            })?
            .push(device)
            .extend(suffix);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let rb = self.http.request(method, url)?;
        Ok(apply_credentials(rb, target.credentials))
    }

    /// Calls a device route and reads its `results` (a read: failures are retryable).
    async fn device_call<T: for<'de> Deserialize<'de>>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<T, ProviderError> {
        let resp = self.execute(rb, Call::Read).await?;
        ok_results(resp, Call::Read).await
    }

    /// Calls a device route whose answer has no useful `results` (`GenericResponse`).
    async fn device_action(&self, rb: reqwest::RequestBuilder) -> Result<(), ProviderError> {
        let resp = self.execute(rb, Call::Read).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(error_from(resp, Call::Read).await)
        }
    }

    /// Fetches the QR picture a login linked to. Only the link's path is used, on the
    /// endpoint's own origin: GOWA builds the link from the host it was called by (often
    /// `localhost` behind a proxy), and wagate goes nowhere but the configured server. At most
    /// [`MAX_QR_PNG_BYTES`], no redirects, and it must be a PNG.
    async fn fetch_qr(&self, target: &Target<'_>, link: &str) -> Result<Vec<u8>, ProviderError> {
        let bad = |message: &str| ProviderError::Permanent {
            code: "BAD_QR_IMAGE".into(),
            message: message.into(),
        };
        let path = match Url::parse(link) {
            Ok(u) => u.path().to_string(),
            Err(_) if link.starts_with('/') => link.split(['?', '#']).next().unwrap_or("").into(),
            Err(_) => return Err(bad("the server's qr_link is not a URL")),
        };
        let mut url = Self::url(target, "")?;
        url.set_path(&path);
        url.set_query(None);
        let rb = self.http.request(Method::GET, url)?;
        let mut resp = self.execute(rb, Call::Read).await?;
        let status = resp.status();
        if !status.is_success() {
            let hint = if status.is_redirection() {
                " (redirects are not followed)"
            } else {
                ""
            };
            return Err(bad(&format!(
                "the QR picture answered HTTP {}{hint}",
                status.as_u16()
            )));
        }
        let too_large = || bad(&format!("the QR picture is over {MAX_QR_PNG_BYTES} bytes"));
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_QR_PNG_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transport_error(&e, Call::Read))?
        {
            if bytes.len() + chunk.len() > MAX_QR_PNG_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        if !bytes.starts_with(PNG_SIGNATURE) {
            return Err(bad("the QR picture is not a PNG"));
        }
        Ok(bytes)
    }

    async fn execute(
        &self,
        rb: reqwest::RequestBuilder,
        call: Call,
    ) -> Result<Response, ProviderError> {
        rb.send().await.map_err(|e| transport_error(&e, call))
    }

    /// Fetches a document to upload it under `filename` (at most
    /// [`MAX_DOCUMENT_UPLOAD_BYTES`], redirects not followed, like every request through the
    /// egress guard). Its failures never name the URL (it may carry a signature).
    async fn fetch_document(
        &self,
        url: &str,
        filename: &str,
    ) -> Result<reqwest::multipart::Part, ProviderError> {
        let media = |reason: String, retryable: bool| ProviderError::Media { reason, retryable };
        let parsed = Url::parse(url)
            .map_err(|_| media("the document URL is not a valid URL".into(), false))?;
        let resp = self
            .http
            .request(Method::GET, parsed)?
            .send()
            .await
            .map_err(|e| match egress_refusal(&e) {
                Some(refused) => ProviderError::Egress(refused),
                None if e.is_timeout() => media("the document URL timed out".into(), true),
                None => media("could not connect to the document URL".into(), true),
            })?;
        let status = resp.status();
        if !status.is_success() {
            let retryable = status.is_server_error()
                || status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS;
            let hint = if status.is_redirection() {
                " (redirects are not followed: give the final URL)"
            } else {
                ""
            };
            return Err(media(
                format!("the document URL answered {}{hint}", status.as_u16()),
                retryable,
            ));
        }
        let too_large = || {
            media(
                format!(
                    "the document is over {MAX_DOCUMENT_UPLOAD_BYTES} bytes, the most the sender \
                     uploads (send it without a filename: the server fetches the URL itself)"
                ),
                false,
            )
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_UPLOAD_BYTES as u64)
        {
            return Err(too_large());
        }
        let mime = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(content_type_essence)
            .unwrap_or_else(|| "application/octet-stream".into());
        let mut resp = resp;
        let mut bytes = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_DOCUMENT_UPLOAD_BYTES {
                        return Err(too_large());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return Err(media("the document URL timed out".into(), true));
                }
                Err(_) => {
                    return Err(media("the document download broke off".into(), true));
                }
            }
        }
        reqwest::multipart::Part::bytes(bytes)
            .file_name(filename.to_string())
            .mime_str(&mime)
            .map_err(|_| {
                media(
                    "the document's content type is not a MIME type".into(),
                    false,
                )
            })
    }
}

/// The eight bytes every PNG file starts with.
pub(super) const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Largest document the sender fetches to upload under a producer's `filename` (GOWA's own
/// default limit is 50 MB; the sender holds the file in memory, and a batch sends up to 10
/// messages at once in a 256 MB function).
pub const MAX_DOCUMENT_UPLOAD_BYTES: usize = 16 * 1024 * 1024;

/// A `Content-Type` value's `type/subtype` (lowercase, without parameters), when it is one.
fn content_type_essence(value: &str) -> Option<String> {
    let essence = value.split(';').next().unwrap_or("").trim();
    let (ty, sub) = essence.split_once('/')?;
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    (token(ty) && token(sub)).then(|| essence.to_ascii_lowercase())
}

fn apply_credentials(
    rb: reqwest::RequestBuilder,
    creds: &Credentials<Secret>,
) -> reqwest::RequestBuilder {
    match creds {
        Credentials::None => rb,
        Credentials::Basic { username, password } => {
            rb.basic_auth(username, Some(password.expose()))
        }
        Credentials::ApiKey { key } => rb.header("X-Api-Key", key.expose()),
        Credentials::Bearer { token } | Credentials::Meta { token, .. } => {
            rb.bearer_auth(token.expose())
        }
    }
}

pub(super) fn transport_error(e: &reqwest::Error, call: Call) -> ProviderError {
    // reqwest errors carry the URL, never the credentials (they travel in headers);
    // still, say only what kind of failure it was.
    // The guarded resolver refused every address the host name resolved to: say so (it is
    // the egress guard, not the server, that stopped the request).
    if let Some(refused) = egress_refusal(e) {
        return ProviderError::Egress(refused);
    }
    if e.is_connect() {
        return ProviderError::Retryable {
            reason: "could not connect to the server".into(),
            before_sent: true,
        };
    }
    let what = if e.is_timeout() {
        "timed out waiting for the server"
    } else {
        "the connection failed after the request was sent"
    };
    match call {
        Call::Send => ProviderError::Ambiguous {
            reason: what.into(),
        },
        Call::Read => ProviderError::Retryable {
            reason: what.into(),
            before_sent: false,
        },
    }
}

/// Maps a non-2xx answer to its class.
async fn error_from(resp: Response, call: Call) -> ProviderError {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = resp.bytes().await.unwrap_or_default();
    let env: Option<Envelope<serde_json::Value>> = serde_json::from_slice(&body).ok();
    let code = env
        .as_ref()
        .and_then(|e| e.code.as_ref())
        .map(|c| match c {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| status.as_u16().to_string());
    let message = env
        .as_ref()
        .and_then(|e| e.message.clone())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    // Bound what we carry from a server we do not control.
    let message: String = message.chars().take(300).collect();
    match status {
        // GOWA's basic-auth middleware answers before any handler, so its own JSON
        // `AUTHENTICATION_ERROR` (a send to a device that is not logged in) means the
        // credentials were accepted. Any other 401 or 403, JSON or not (the spec's
        // `ErrorUnauthorized` is JSON), is a refusal of the credentials.
        StatusCode::UNAUTHORIZED if code == AUTHENTICATION_ERROR => {
            ProviderError::LoggedOut { message }
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ProviderError::BadCredentials {
            status: status.as_u16(),
        },
        StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited {
            message,
            retry_after,
        },
        StatusCode::GATEWAY_TIMEOUT if call == Call::Send => ProviderError::Ambiguous {
            reason: format!("server answered 504: {message}"),
        },
        s if s.is_server_error() => ProviderError::Retryable {
            reason: format!("server answered {}: {message}", s.as_u16()),
            before_sent: false,
        },
        _ => ProviderError::Permanent { code, message },
    }
}

async fn ok_results<T: for<'de> Deserialize<'de>>(
    resp: Response,
    call: Call,
) -> Result<T, ProviderError> {
    if !resp.status().is_success() {
        return Err(error_from(resp, call).await);
    }
    let bytes = resp.bytes().await.map_err(|e| transport_error(&e, call))?;
    let env: Envelope<T> = serde_json::from_slice(&bytes).map_err(|_| bad_answer(call))?;
    env.results.ok_or_else(|| bad_answer(call))
}

fn bad_answer(call: Call) -> ProviderError {
    let reason = "the server's answer was not GOWA's {code, message, results}".to_string();
    match call {
        // It answered 2xx: the message most likely went out, but we cannot prove it.
        Call::Send => ProviderError::Ambiguous { reason },
        Call::Read => ProviderError::Retryable {
            reason,
            before_sent: false,
        },
    }
}

#[async_trait]
impl WhatsAppProvider for GowaClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gowa
    }

    async fn send(
        &self,
        target: Target<'_>,
        req: &SendRequest,
    ) -> Result<SendReceipt, ProviderError> {
        let rb = match &req.content {
            Content::Text { body } => {
                let mut json = serde_json::json!({ "phone": req.to, "message": body });
                if let Some(r) = &req.reply_to {
                    json["reply_message_id"] = r.clone().into();
                }
                self.request(Method::POST, &target, "/send/message", true)?
                    .json(&json)
            }
            Content::Image { url, caption } => {
                let mut form = reqwest::multipart::Form::new()
                    .text("phone", req.to.clone())
                    .text("image_url", url.clone());
                if let Some(c) = caption {
                    form = form.text("caption", c.clone());
                }
                if let Some(r) = &req.reply_to {
                    form = form.text("reply_message_id", r.clone());
                }
                self.request(Method::POST, &target, "/send/image", true)?
                    .multipart(form)
            }
            Content::Document {
                url,
                caption,
                filename,
            } => {
                let mut form = reqwest::multipart::Form::new().text("phone", req.to.clone());
                form = match filename {
                    // GOWA's `/send/file` has no file-name field: a document it fetches by
                    // `file_url` is named after the URL. The one way to give it the producer's
                    // name is the multipart `file` part's filename, so the sender fetches the
                    // document (through the egress guard) and uploads it.
                    Some(name) => form.part("file", self.fetch_document(url, name).await?),
                    None => form.text("file_url", url.clone()),
                };
                if let Some(c) = caption {
                    form = form.text("caption", c.clone());
                }
                if let Some(r) = &req.reply_to {
                    form = form.text("reply_message_id", r.clone());
                }
                self.request(Method::POST, &target, "/send/file", true)?
                    .multipart(form)
            }
        };
        let resp = self.execute(rb, Call::Send).await?;
        let results: SendResults = ok_results(resp, Call::Send).await?;
        Ok(SendReceipt {
            provider_message_id: results.message_id,
        })
    }

    async fn device_status(&self, target: Target<'_>) -> Result<DeviceStatus, ProviderError> {
        let rb = self.request(Method::GET, &target, "/app/status", true)?;
        let resp = self.execute(rb, Call::Read).await?;
        let s: AppStatus = ok_results(resp, Call::Read).await?;
        Ok(DeviceStatus {
            device_id: s
                .device_id
                .or_else(|| target.device_id.map(str::to_string))
                .unwrap_or_default(),
            connected: s.is_connected,
            logged_in: s.is_logged_in,
            jid: s.jid.filter(|j| !j.is_empty()),
        })
    }

    async fn devices(&self, target: Target<'_>) -> Result<Vec<DeviceStatus>, ProviderError> {
        let rb = self.request(Method::GET, &target, "/devices", true)?;
        let resp = self.execute(rb, Call::Read).await?;
        let list: Vec<DeviceInfo> = ok_results(resp, Call::Read).await?;
        Ok(list
            .into_iter()
            .map(|d| DeviceStatus {
                connected: d.state == "connected" || d.state == "logged_in",
                logged_in: d.state == "logged_in",
                device_id: d.id,
                jid: d.jid.filter(|j| !j.is_empty()),
            })
            .collect())
    }

    async fn health(&self, target: Target<'_>) -> Result<(), ProviderError> {
        let rb = self.request(Method::GET, &target, "/health", false)?;
        let resp = self.execute(rb, Call::Read).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(error_from(resp, Call::Read).await)
        }
    }

    async fn slot_status(&self, target: Target<'_>) -> Result<DeviceStatus, ProviderError> {
        let rb = self.device_request(Method::GET, &target, &["status"])?;
        let s: DeviceStatusResults = self.device_call(rb).await?;
        Ok(DeviceStatus {
            device_id: target.device_id.unwrap_or_default().to_string(),
            connected: s.is_connected,
            logged_in: s.is_logged_in,
            jid: None,
        })
    }

    async fn create_device(&self, target: Target<'_>) -> Result<SlotOutcome, ProviderError> {
        let probe = self.device_request(Method::GET, &target, &[])?;
        match self.device_call::<serde_json::Value>(probe).await {
            Ok(_) => return Ok(SlotOutcome::Existed),
            Err(e) if e.is_device_not_found() => {}
            Err(e) => return Err(e),
        }
        let device = target.device_id.unwrap_or_default();
        let rb = self
            .request(Method::POST, &target, "/devices", false)?
            .json(&serde_json::json!({ "device_id": device }));
        let rb = apply_credentials(rb, target.credentials);
        let _: serde_json::Value = self.device_call(rb).await?;
        Ok(SlotOutcome::Created)
    }

    async fn login_qr(&self, target: Target<'_>) -> Result<LoginQr, ProviderError> {
        let rb = self.device_request(Method::GET, &target, &["login"])?;
        let results: LoginResults = self.device_call(rb).await?;
        let png = self.fetch_qr(&target, &results.qr_link).await?;
        Ok(LoginQr {
            png,
            expires_in: results
                .qr_duration
                .filter(|d| *d > 0)
                .map_or(DEFAULT_QR_DURATION, Duration::from_secs),
        })
    }

    async fn login_code(&self, target: Target<'_>, phone: &str) -> Result<String, ProviderError> {
        let rb = self.device_request_with(
            Method::POST,
            &target,
            &["login", "code"],
            &[("phone", phone)],
        )?;
        let results: PairCodeResults = self.device_call(rb).await?;
        Ok(results.pair_code)
    }

    async fn logout(&self, target: Target<'_>) -> Result<(), ProviderError> {
        let rb = self.device_request(Method::POST, &target, &["logout"])?;
        self.device_action(rb).await
    }

    async fn reconnect(&self, target: Target<'_>) -> Result<(), ProviderError> {
        let rb = self.device_request(Method::POST, &target, &["reconnect"])?;
        self.device_action(rb).await
    }

    async fn get_webhook(&self, target: Target<'_>) -> Result<DeviceWebhook, ProviderError> {
        let rb = self.device_request(Method::GET, &target, &["webhook"])?;
        let results: WebhookResults = self.device_call(rb).await?;
        Ok(DeviceWebhook {
            url: results.webhook_url,
            secret: Secret::new(results.webhook_secret),
            events: split_events(&results.webhook_events),
        })
    }

    async fn set_webhook(
        &self,
        target: Target<'_>,
        webhook: &DeviceWebhook,
    ) -> Result<(), ProviderError> {
        let rb = self
            .device_request(Method::PATCH, &target, &["webhook"])?
            .json(&serde_json::json!({
                "webhook_url": webhook.url,
                "webhook_secret": webhook.secret.expose(),
                "webhook_events": webhook.events.join(","),
            }));
        let _: WebhookResults = self.device_call(rb).await?;
        Ok(())
    }
}

/// GOWA's comma-separated event list.
fn split_events(events: &str) -> Vec<String> {
    events
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn class_of(status: u16, body: &str) -> ProviderError {
        let resp = http::Response::builder()
            .status(status)
            .body(body.to_string())
            .unwrap();
        error_from(Response::from(resp), Call::Read).await
    }

    #[tokio::test]
    async fn any_401_or_403_is_a_credential_refusal_whatever_the_body() {
        for (status, body) in [
            (401, "Unauthorized"),
            (401, ""),
            (
                401,
                r#"{"code":"401","message":"Unauthorized access","results":null}"#,
            ),
            (401, r#"{"error":"invalid token"}"#),
            (403, r#"{"code":"FORBIDDEN","message":"no"}"#),
            (403, "Forbidden"),
        ] {
            assert_eq!(
                class_of(status, body).await,
                ProviderError::BadCredentials { status },
                "{status} {body}"
            );
        }
    }

    #[tokio::test]
    async fn gowas_authentication_error_is_a_device_that_is_not_logged_in() {
        let e = class_of(
            401,
            r#"{"code":"AUTHENTICATION_ERROR","message":"you are not logged in","results":null}"#,
        )
        .await;
        assert_eq!(
            e,
            ProviderError::LoggedOut {
                message: "you are not logged in".into()
            }
        );
    }
}
