//! Signed webhook delivery, each kind the way its server sends.
//!
//! GOWA (`submitWebhook`, `src/infrastructure/whatsapp/webhook.go`): one `POST` with
//! `Content-Type: application/json` and `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>`.
//! Go's `http.Client` also sends `User-Agent: Go-http-client/1.1` and `Accept-Encoding: gzip`,
//! and because GOWA sets the request body after building the request, the body goes out with
//! chunked transfer encoding. Each attempt has a 10 s timeout; up to 5 attempts with sleeps of
//! 1, 2, 4 and 8 s; all within the event's 30 s context deadline. Any non-2xx answer or network
//! error is a failure.
//!
//! WAHA (waha-docs `content/docs/how-to/events/index.md`, "Headers" and "HMAC authentication"):
//! `X-Webhook-Request-Id` and `X-Webhook-Timestamp` (Unix milliseconds) on every request; with
//! an HMAC key, `X-Webhook-Hmac` (lowercase hex HMAC-SHA512 of the raw body; the docs' example
//! value is hex) and `X-Webhook-Hmac-Algorithm: sha512`; the session's `customHeaders`.
//!
//! Evolution (`src/api/integrations/event/webhook/webhook.controller.ts`, 2.3.7): no body
//! signature; the webhook's own headers, `X-Instance-ID`, `X-Instance-Name`, `X-Event-Type`,
//! `X-Timestamp` (ms), `User-Agent: EvolutionAPI-Webhook/2.3.7`; when the headers hold a
//! `jwt_key`, it is removed and `Authorization: Bearer <JWT>` is sent instead: HS256 over
//! `{iat, exp: iat + 600, app: "evolution", action: "webhook"}` with that key. No retry on 400,
//! 401, 403, 404 or 422.
//!
//! Meta (Graph API webhooks, "Validate payloads"): `X-Hub-Signature-256: sha256=<hex
//! HMAC-SHA256(body, app secret)>`; the body escapes `/` and every non-ASCII character
//! (`\u00e9`, lowercase hex), and the signature covers those escaped bytes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body::Frame;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Sha256, Sha512};

use crate::gomarshal::go_marshal;
use crate::kind::Kind;

/// `sha256=<lowercase hex HMAC-SHA256(body)>`, the `X-Hub-Signature-256` value GOWA (and Meta,
/// keyed with the app secret) sends.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Lowercase hex HMAC-SHA512 of `body`, WAHA's `X-Webhook-Hmac`.
pub fn sign_waha(key: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha512> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The JWT Evolution puts in `Authorization: Bearer` when a webhook has a `jwt_key`: HS256
/// over `{"iat":…,"exp":iat+600,"app":"evolution","action":"webhook"}` (jsonwebtoken's
/// header `{"alg":"HS256","typ":"JWT"}`), issued at `iat` (Unix seconds).
pub fn evolution_jwt(jwt_key: &[u8], iat: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = format!(
        r#"{{"iat":{iat},"exp":{},"app":"evolution","action":"webhook"}}"#,
        iat + 600
    );
    let payload = URL_SAFE_NO_PAD.encode(claims.as_bytes());
    let signing_input = format!("{header}.{payload}");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(jwt_key)
        .expect("HMAC accepts keys of any length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Meta's webhook JSON: compact, `/` written `\/` and every non-ASCII character as a
/// lowercase `\uXXXX` escape (UTF-16 surrogate pairs above U+FFFF), as Meta's payloads are.
pub fn meta_json(value: &Value) -> Vec<u8> {
    let compact = serde_json::to_string(value).expect("a JSON value serialises");
    meta_escape(&compact).into_bytes()
}

/// Escapes `/` and non-ASCII characters of compact JSON text the way Meta does. Outside
/// strings compact JSON has neither, so the whole text can be rewritten.
pub(crate) fn meta_escape(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len());
    for c in compact.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

/// A webhook for the simulator to sign and deliver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// Target URL; must point at a loopback address (`127.0.0.1`, `::1` or `localhost`).
    pub url: String,
    /// The key: GOWA's HMAC secret (default literal `secret`), WAHA's `hmac.key` (empty: no
    /// HMAC headers), Evolution's `jwt_key` (empty: no JWT), Meta's app secret.
    pub secret: String,
    /// What to send.
    pub body: WebhookBody,
    /// Retry like the server does (up to [`RetryPolicy::max_attempts`]); `false` makes one
    /// attempt.
    #[serde(default)]
    pub retry: bool,
    /// Timings; the default is GOWA's. Tests shrink it.
    #[serde(default)]
    pub policy: RetryPolicy,
    /// Whose way of sending: headers, signature, JSON encoding of a `json` body (GOWA's
    /// `json.Marshal` of a map, compact `JSON.stringify` for WAHA and Evolution, Meta's escaped
    /// JSON). GOWA by default.
    #[serde(default)]
    pub kind: Kind,
    /// More headers (WAHA `customHeaders`, Evolution webhook headers and `X-Instance-*`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl WebhookDelivery {
    /// Sends `body` verbatim (e.g. a sample file's bytes), signed like GOWA.
    pub fn raw(
        url: impl Into<String>,
        secret: impl Into<String>,
        body: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
            body: WebhookBody::Raw(body.into()),
            retry: false,
            policy: RetryPolicy::default(),
            kind: Kind::Gowa,
            headers: BTreeMap::new(),
        }
    }

    /// Sends `value` marshalled like Go's `json.Marshal` of a `map[string]any`.
    pub fn json(url: impl Into<String>, secret: impl Into<String>, value: Value) -> Self {
        Self {
            body: WebhookBody::Json(value),
            ..Self::raw(url, secret, Vec::new())
        }
    }

    /// The same delivery sent the way a `kind` server sends.
    pub fn as_kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// Retries with the given timings.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = true;
        self.policy = policy;
        self
    }

    /// The exact bytes that will be sent.
    pub fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            WebhookBody::Raw(bytes) => bytes.clone(),
            WebhookBody::Json(value) => match self.kind {
                Kind::Gowa => go_marshal(value),
                Kind::Meta => meta_json(value),
                Kind::Waha | Kind::Evolution => {
                    serde_json::to_vec(value).expect("a JSON value serialises")
                }
            },
        }
    }
}

/// A webhook body. Over JSON (the control API) it is one of `{"raw": "<text>"}`,
/// `{"raw_base64": "<base64>"}` or `{"json": <value>}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BodyRepr", into = "BodyRepr")]
pub enum WebhookBody {
    /// Sent byte for byte.
    Raw(Vec<u8>),
    /// Marshalled with [`go_marshal`].
    Json(Value),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum BodyRepr {
    Raw(String),
    RawBase64(String),
    Json(Value),
}

impl TryFrom<BodyRepr> for WebhookBody {
    type Error = String;

    fn try_from(repr: BodyRepr) -> Result<Self, Self::Error> {
        match repr {
            BodyRepr::Raw(text) => Ok(Self::Raw(text.into_bytes())),
            BodyRepr::RawBase64(encoded) => STANDARD
                .decode(encoded)
                .map(Self::Raw)
                .map_err(|err| format!("raw_base64 is not base64: {err}")),
            BodyRepr::Json(value) => Ok(Self::Json(value)),
        }
    }
}

impl From<WebhookBody> for BodyRepr {
    fn from(body: WebhookBody) -> Self {
        match body {
            WebhookBody::Raw(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Self::Raw(text),
                Err(err) => Self::RawBase64(STANDARD.encode(err.into_bytes())),
            },
            WebhookBody::Json(value) => Self::Json(value),
        }
    }
}

/// Delivery timings; `Default` is GOWA's, [`RetryPolicy::for_kind`] each kind's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Timeout of one attempt (GOWA: 10 000).
    pub attempt_timeout_ms: u64,
    /// Attempts when retrying (GOWA: 5).
    pub max_attempts: u32,
    /// Sleep after the first failure, doubled after each later one unless `constant`
    /// (GOWA: 1 000).
    pub initial_backoff_ms: u64,
    /// Deadline of the whole delivery (GOWA: 30 000). Attempts starting after it fail with
    /// `context deadline exceeded` without sending, as Go's request context makes them.
    pub deadline_ms: u64,
    /// The same sleep between every attempt (WAHA's `constant` policy).
    pub constant: bool,
    /// Upper bound of a sleep (Evolution: 300 000).
    pub max_backoff_ms: Option<u64>,
    /// Answers that end the delivery without more attempts (Evolution: 400, 401, 403, 404,
    /// 422).
    pub no_retry_statuses: Vec<u16>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempt_timeout_ms: 10_000,
            max_attempts: 5,
            initial_backoff_ms: 1_000,
            deadline_ms: 30_000,
            constant: false,
            max_backoff_ms: None,
            no_retry_statuses: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// GOWA's attempts with every duration divided by `factor` (e.g. 100 for tests).
    pub fn scaled_down(factor: u64) -> Self {
        Self::default().scaled(factor)
    }

    /// The same attempts with every duration divided by `factor`.
    pub fn scaled(mut self, factor: u64) -> Self {
        let factor = factor.max(1);
        self.attempt_timeout_ms /= factor;
        self.initial_backoff_ms /= factor;
        self.deadline_ms /= factor;
        self.max_backoff_ms = self.max_backoff_ms.map(|ms| ms / factor);
        self
    }

    /// How a `kind` server retries its webhooks:
    /// - GOWA: 5 attempts of 10 s, sleeps 1, 2, 4, 8 s, 30 s deadline.
    /// - WAHA: 15 attempts, a constant 2 s apart (waha-docs "Retries": `constant`,
    ///   `delaySeconds: 2`, `attempts: 15`); the docs give no attempt timeout: 10 s here, and no
    ///   overall deadline beyond the attempts.
    /// - Evolution: 10 attempts, 5 s doubling up to 300 s, 30 s request timeout, no retry on
    ///   400/401/403/404/422 (`webhook.controller.ts`; its ±20 % jitter is left out so tests are
    ///   repeatable).
    /// - Meta: retried "with decreasing frequency" for up to 7 days (Graph webhooks docs): here
    ///   8 attempts doubling from 5 s, 20 s timeout.
    pub fn for_kind(kind: Kind) -> Self {
        match kind {
            Kind::Gowa => Self::default(),
            Kind::Waha => Self {
                attempt_timeout_ms: 10_000,
                max_attempts: 15,
                initial_backoff_ms: 2_000,
                deadline_ms: 15 * 12_000,
                constant: true,
                ..Self::default()
            },
            Kind::Evolution => Self {
                attempt_timeout_ms: 30_000,
                max_attempts: 10,
                initial_backoff_ms: 5_000,
                deadline_ms: 10 * 30_000 + 2_000_000,
                max_backoff_ms: Some(300_000),
                no_retry_statuses: vec![400, 401, 403, 404, 422],
                ..Self::default()
            },
            Kind::Meta => Self {
                attempt_timeout_ms: 20_000,
                max_attempts: 8,
                initial_backoff_ms: 5_000,
                deadline_ms: 7 * 24 * 3_600_000,
                ..Self::default()
            },
        }
    }
}

/// What happened to a delivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// Target URL.
    pub url: String,
    /// The signature sent: `X-Hub-Signature-256` (GOWA, Meta), `X-Webhook-Hmac` (WAHA with an
    /// HMAC key), the bearer JWT (Evolution with a `jwt_key`); empty when unsigned.
    pub signature: String,
    /// The headers that authenticate or identify the delivery (lowercase names): the
    /// signature headers and WAHA's request id and timestamp.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body length in bytes.
    pub body_size: usize,
    /// The body sent (lossy UTF-8, for reading).
    pub body: String,
    /// Whether an attempt got a 2xx answer.
    pub delivered: bool,
    /// Every attempt, in order.
    pub attempts: Vec<DeliveryAttempt>,
}

/// One attempt of a delivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// 1-based attempt number.
    pub attempt: u32,
    /// HTTP status, when an answer came.
    pub status: Option<u16>,
    /// Why the attempt failed, if it did (`webhook returned status 500`, a network error, ...).
    pub error: Option<String>,
    /// Time taken by the attempt.
    pub elapsed_ms: u64,
}

/// The HTTP client webhooks go out with: no proxy, no redirects, HTTP/1.1.
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .http1_only()
        .build()
        .context("building the webhook HTTP client")
}

/// The headers a `kind` server puts on a delivery of `body`, and the signature among them.
fn kind_headers(delivery: &WebhookDelivery, body: &[u8]) -> (Vec<(String, String)>, String) {
    let mut headers: Vec<(String, String)> =
        vec![("Content-Type".to_owned(), "application/json".to_owned())];
    let secret = delivery.secret.as_bytes();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let signature = match delivery.kind {
        Kind::Gowa => {
            let signature = sign(secret, body);
            headers.push(("X-Hub-Signature-256".into(), signature.clone()));
            headers.push(("User-Agent".into(), "Go-http-client/1.1".into()));
            headers.push(("Accept-Encoding".into(), "gzip".into()));
            signature
        }
        Kind::Meta => {
            let signature = sign(secret, body);
            headers.push(("X-Hub-Signature-256".into(), signature.clone()));
            headers.push(("User-Agent".into(), "facebookexternalua".into()));
            signature
        }
        Kind::Waha => {
            headers.push(("X-Webhook-Request-Id".into(), ulid_like()));
            headers.push(("X-Webhook-Timestamp".into(), now_ms.to_string()));
            if secret.is_empty() {
                String::new()
            } else {
                let signature = sign_waha(secret, body);
                headers.push(("X-Webhook-Hmac".into(), signature.clone()));
                headers.push(("X-Webhook-Hmac-Algorithm".into(), "sha512".into()));
                signature
            }
        }
        Kind::Evolution => {
            headers.push(("X-Timestamp".into(), now_ms.to_string()));
            headers.push(("User-Agent".into(), "EvolutionAPI-Webhook/2.3.7".into()));
            if secret.is_empty() {
                String::new()
            } else {
                let jwt = evolution_jwt(secret, (now_ms / 1000) as i64);
                headers.push(("Authorization".into(), format!("Bearer {jwt}")));
                jwt
            }
        }
    };
    for (name, value) in &delivery.headers {
        headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
        headers.push((name.clone(), value.clone()));
    }
    (headers, signature)
}

/// A request id like WAHA's (`X-Webhook-Request-Id`): 26 Crockford base32 characters, a ULID.
fn ulid_like() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u128;
    let random: u128 = rand::random::<u128>() >> 48;
    let value = (millis << 80) | random;
    (0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// Signs and delivers one webhook.
pub(crate) async fn deliver(
    client: &reqwest::Client,
    delivery: WebhookDelivery,
) -> anyhow::Result<DeliveryReport> {
    let url = reqwest::Url::parse(&delivery.url)
        .with_context(|| format!("webhook url {:?} does not parse", delivery.url))?;
    ensure_loopback_url(&url)?;
    let body = Bytes::from(delivery.body_bytes());
    let (headers, signature) = kind_headers(&delivery, &body);
    let policy = &delivery.policy;
    let max_attempts = if delivery.retry {
        policy.max_attempts.max(1)
    } else {
        1
    };
    let started = Instant::now();
    let deadline = started + Duration::from_millis(policy.deadline_ms);
    let mut backoff = Duration::from_millis(policy.initial_backoff_ms);
    let max_backoff = policy.max_backoff_ms.map(Duration::from_millis);
    let mut attempts = Vec::new();
    let mut delivered = false;

    for attempt in 1..=max_attempts {
        let attempt_started = Instant::now();
        let remaining = deadline.saturating_duration_since(attempt_started);
        let (status, error) = if remaining.is_zero() {
            (None, Some("context deadline exceeded".to_owned()))
        } else {
            let timeout = remaining.min(Duration::from_millis(policy.attempt_timeout_ms));
            let mut request = client.post(url.clone());
            for (name, value) in &headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let request = match delivery.kind {
                // Go sets the body after building the request: chunked.
                Kind::Gowa => request.body(reqwest::Body::wrap(OneChunk(Some(body.clone())))),
                _ => request.body(body.clone()),
            };
            match tokio::time::timeout(timeout, request.send()).await {
                Ok(Ok(response)) if response.status().is_success() => {
                    (Some(response.status().as_u16()), None)
                }
                Ok(Ok(response)) => {
                    let code = response.status().as_u16();
                    (Some(code), Some(format!("webhook returned status {code}")))
                }
                Ok(Err(err)) => (None, Some(describe(&err))),
                Err(_) if timeout < Duration::from_millis(policy.attempt_timeout_ms) => {
                    (None, Some("context deadline exceeded".to_owned()))
                }
                Err(_) => (
                    None,
                    Some(format!(
                        "Client.Timeout exceeded after {} ms",
                        timeout.as_millis()
                    )),
                ),
            }
        };
        let ok = error.is_none();
        tracing::info!(url = %url, kind = %delivery.kind, attempt, ?status, error = error.as_deref(), "webhook attempt");
        let final_status = status.is_some_and(|code| policy.no_retry_statuses.contains(&code));
        attempts.push(DeliveryAttempt {
            attempt,
            status,
            error,
            elapsed_ms: u64::try_from(attempt_started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        if ok {
            delivered = true;
            break;
        }
        if final_status {
            break;
        }
        if attempt < max_attempts {
            // Go's time.Sleep ignores the context: the sleeps happen even past the deadline.
            tokio::time::sleep(backoff).await;
            if !policy.constant {
                backoff *= 2;
                if let Some(max) = max_backoff {
                    backoff = backoff.min(max);
                }
            }
        }
    }

    let report_headers = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .filter(|(name, _)| {
            matches!(
                name.as_str(),
                "x-hub-signature-256"
                    | "x-webhook-hmac"
                    | "x-webhook-hmac-algorithm"
                    | "x-webhook-request-id"
                    | "x-webhook-timestamp"
                    | "authorization"
            )
        })
        .collect();
    Ok(DeliveryReport {
        url: delivery.url,
        signature,
        headers: report_headers,
        body_size: body.len(),
        body: String::from_utf8_lossy(&body).into_owned(),
        delivered,
        attempts,
    })
}

fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_connect() {
        "connect error"
    } else if err.is_timeout() {
        "timeout"
    } else {
        "request error"
    };
    let mut text = format!("{kind}: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

pub(crate) fn ensure_loopback_url(url: &reqwest::Url) -> anyhow::Result<()> {
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https"),
        "webhook url must be http or https, not {}",
        url.scheme()
    );
    let loopback = match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    anyhow::ensure!(
        loopback,
        "webhook url {url} is not a loopback address; the simulator only delivers to 127.0.0.1, ::1 or localhost"
    );
    Ok(())
}

/// A one-frame body whose length is not announced, so hyper sends it chunked (as Go does
/// for a body set on an existing request).
struct OneChunk(Option<Bytes>);

impl http_body::Body for OneChunk {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(self.0.take().map(|chunk| Ok(Frame::data(chunk))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_lowercase_hex_with_prefix() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn body_repr_round_trips_text_binary_and_json() {
        for body in [
            WebhookBody::Raw(b"{\"a\":1}".to_vec()),
            WebhookBody::Raw(vec![0xff, 0x00]),
            WebhookBody::Json(serde_json::json!({"b": [1, 2]})),
        ] {
            let json = serde_json::to_string(&body).unwrap();
            assert_eq!(serde_json::from_str::<WebhookBody>(&json).unwrap(), body);
        }
    }

    #[test]
    fn waha_hmac_matches_the_docs_example() {
        // waha-docs content/docs/how-to/events/index.md, "HMAC authentication".
        assert_eq!(
            sign_waha(
                b"my-secret-key",
                br#"{"event":"message","session":"default","engine":"WEBJS"}"#
            ),
            "208f8a55dde9e05519e898b10b89bf0d0b3b0fdf11fdbf09b6b90476301b98d8097c462b2b17a6ce93b6b47a136cf2e78a33a63f6752c2c1631777076153fa89"
        );
    }

    #[test]
    fn meta_json_escapes_slashes_and_non_ascii_in_lowercase_hex() {
        let value = serde_json::json!({"a": "caf\u{e9} https://x/y \u{1f44d}"});
        assert_eq!(
            String::from_utf8(meta_json(&value)).unwrap(),
            r#"{"a":"caf\u00e9 https:\/\/x\/y \ud83d\udc4d"}"#
        );
    }

    #[test]
    fn evolution_jwt_has_upstreams_claims_and_verifies() {
        let token = evolution_jwt(b"jwt-key", 1_700_000_000);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({"iat": 1_700_000_000, "exp": 1_700_000_600, "app": "evolution", "action": "webhook"})
        );
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"jwt-key").unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            mac.finalize().into_bytes().to_vec()
        );
    }

    #[test]
    fn waha_request_ids_look_like_ulids() {
        let id = ulid_like();
        assert_eq!(id.len(), 26);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }

    #[test]
    fn non_loopback_targets_are_refused() {
        let url = reqwest::Url::parse("http://10.0.0.1/hook").unwrap();
        assert!(ensure_loopback_url(&url).is_err());
        let url = reqwest::Url::parse("http://127.0.0.1:9/hook").unwrap();
        assert!(ensure_loopback_url(&url).is_ok());
    }
}
