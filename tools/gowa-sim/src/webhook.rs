//! Signed webhook delivery, as GOWA's `submitWebhook`
//! (`src/infrastructure/whatsapp/webhook.go`) does it.
//!
//! One `POST` with `Content-Type: application/json` and
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>`. Go's `http.Client` also sends
//! `User-Agent: Go-http-client/1.1` and `Accept-Encoding: gzip`, and because GOWA sets the
//! request body after building the request, the body goes out with chunked transfer encoding.
//! Each attempt has a 10 s timeout; up to 5 attempts with sleeps of 1, 2, 4 and 8 s; all within
//! the event's 30 s context deadline. Any non-2xx answer or network error is a failure.

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body::Frame;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::gomarshal::go_marshal;

/// `sha256=<lowercase hex HMAC-SHA256(body)>`, the `X-Hub-Signature-256` value GOWA sends.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A webhook for the simulator to sign and deliver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// Target URL; must point at a loopback address (`127.0.0.1`, `::1` or `localhost`).
    pub url: String,
    /// HMAC key (GOWA's default is the literal `secret`).
    pub secret: String,
    /// What to send.
    pub body: WebhookBody,
    /// Retry like GOWA (up to [`RetryPolicy::max_attempts`]); `false` makes one attempt.
    #[serde(default)]
    pub retry: bool,
    /// Timings; the default is GOWA's. Tests shrink it.
    #[serde(default)]
    pub policy: RetryPolicy,
}

impl WebhookDelivery {
    /// Sends `body` verbatim (e.g. a sample file's bytes).
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
        }
    }

    /// Sends `value` marshalled like Go's `json.Marshal` of a `map[string]any`.
    pub fn json(url: impl Into<String>, secret: impl Into<String>, value: Value) -> Self {
        Self {
            body: WebhookBody::Json(value),
            ..Self::raw(url, secret, Vec::new())
        }
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
            WebhookBody::Json(value) => go_marshal(value),
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

/// Delivery timings; `Default` is GOWA's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Timeout of one attempt (GOWA: 10 000).
    pub attempt_timeout_ms: u64,
    /// Attempts when retrying (GOWA: 5).
    pub max_attempts: u32,
    /// Sleep after the first failure, doubled after each later one (GOWA: 1 000).
    pub initial_backoff_ms: u64,
    /// Deadline of the whole delivery (GOWA: 30 000). Attempts starting after it fail with
    /// `context deadline exceeded` without sending, as Go's request context makes them.
    pub deadline_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempt_timeout_ms: 10_000,
            max_attempts: 5,
            initial_backoff_ms: 1_000,
            deadline_ms: 30_000,
        }
    }
}

impl RetryPolicy {
    /// GOWA's attempts with every duration divided by `factor` (e.g. 100 for tests).
    pub fn scaled_down(factor: u64) -> Self {
        let factor = factor.max(1);
        let gowa = Self::default();
        Self {
            attempt_timeout_ms: gowa.attempt_timeout_ms / factor,
            max_attempts: gowa.max_attempts,
            initial_backoff_ms: gowa.initial_backoff_ms / factor,
            deadline_ms: gowa.deadline_ms / factor,
        }
    }
}

/// What happened to a delivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// Target URL.
    pub url: String,
    /// The `X-Hub-Signature-256` value sent.
    pub signature: String,
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

/// Signs and delivers one webhook.
pub(crate) async fn deliver(
    client: &reqwest::Client,
    delivery: WebhookDelivery,
) -> anyhow::Result<DeliveryReport> {
    let url = reqwest::Url::parse(&delivery.url)
        .with_context(|| format!("webhook url {:?} does not parse", delivery.url))?;
    ensure_loopback_url(&url)?;
    let body = Bytes::from(delivery.body_bytes());
    let signature = sign(delivery.secret.as_bytes(), &body);
    let policy = &delivery.policy;
    let max_attempts = if delivery.retry {
        policy.max_attempts.max(1)
    } else {
        1
    };
    let started = Instant::now();
    let deadline = started + Duration::from_millis(policy.deadline_ms);
    let mut backoff = Duration::from_millis(policy.initial_backoff_ms);
    let mut attempts = Vec::new();
    let mut delivered = false;

    for attempt in 1..=max_attempts {
        let attempt_started = Instant::now();
        let remaining = deadline.saturating_duration_since(attempt_started);
        let (status, error) = if remaining.is_zero() {
            (None, Some("context deadline exceeded".to_owned()))
        } else {
            let timeout = remaining.min(Duration::from_millis(policy.attempt_timeout_ms));
            let request = client
                .post(url.clone())
                .header("Content-Type", "application/json")
                .header("X-Hub-Signature-256", &signature)
                .header("User-Agent", "Go-http-client/1.1")
                .header("Accept-Encoding", "gzip")
                .body(reqwest::Body::wrap(OneChunk(Some(body.clone()))))
                .send();
            match tokio::time::timeout(timeout, request).await {
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
        tracing::info!(url = %url, attempt, ?status, error = error.as_deref(), "webhook attempt");
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
        if attempt < max_attempts {
            // Go's time.Sleep ignores the context: the sleeps happen even past the deadline.
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }

    Ok(DeliveryReport {
        url: delivery.url,
        signature,
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

fn ensure_loopback_url(url: &reqwest::Url) -> anyhow::Result<()> {
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
    fn non_loopback_targets_are_refused() {
        let url = reqwest::Url::parse("http://10.0.0.1/hook").unwrap();
        assert!(ensure_loopback_url(&url).is_err());
        let url = reqwest::Url::parse("http://127.0.0.1:9/hook").unwrap();
        assert!(ensure_loopback_url(&url).is_ok());
    }
}
