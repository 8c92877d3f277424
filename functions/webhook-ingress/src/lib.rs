//! # webhook-ingress
//!
//! `POST /webhooks/whatsapp/{tenantId}`: each tenant's WhatsApp server posts its events
//! here, signed with the tenant's webhook secret (Meta: its app secret); `GET` with `hub.*`
//! is Meta's verification handshake. The function checks, in this order:
//!
//! | check | refusal |
//! |---|---|
//! | route and method | 404 / 405 |
//! | a body flagged `isBase64Encoded` is valid base64 | 400 |
//! | body at most 256 KiB | 413 |
//! | tenant exists (config cache) | 404 |
//! | tenant active; its webhook secrets open (KMS) | 403 |
//! | source IP in the tenant's endpoints' `webhookSourceCidrs`, if any are set | 403 |
//! | the signature of one of the tenant's kinds over the raw bytes ([`verify::verify_webhook`]) | 401 |
//! | tenant's inbound rate (per instance) | 429 |
//! | body is JSON | 400 |
//! | one SQS `SendMessage` to the inbound FIFO queue per event (Meta batches: one per message and status) | 503 if it fails |
//!
//! and answers 200 once the event is on the queue. Nothing is enqueued on any other answer.
//!
//! Two front doors deliver the same request (template parameter `WebhookFrontDoor`): the HTTP
//! API route and the function's own URL. Both hand the function a payload v2 event (the
//! function URL's with its own request context: `<url-id>.lambda-url.<region>.on.aws`, route
//! `$default`, no path parameters); the path's last three segments name the tenant and
//! `requestContext.http.sourceIp` is the caller in both, so every rule above holds for both.
//!
//! The Lambda entry point is [`handle_event`]: it takes the raw API Gateway HTTP API event and
//! decodes the body itself, because `lambda_http`'s own conversion panics (an invocation
//! error, a 5xx at API Gateway) on a body flagged base64 that is not.
//! The warm path makes no DynamoDB and no KMS call (the config cache answers) and exactly
//! one SQS call per event (one, but for a Meta batch), except at most one `UpdateItem` of the tenant's `lastEventAt` per tenant per
//! minute per instance ([`EventSeen`]); the cold path adds one GetItem and one KMS Decrypt per webhook secret (the
//! server credentials are never opened here: [`cache_settings`]).

mod activity;
pub mod aws;
mod limiter;
pub mod settings;
mod sink;
mod sqs;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderValue, StatusCode, header};
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use time::OffsetDateTime;
use tracing::{Instrument, debug, info, warn};
use wagate::TenantId;
use wagate::delivery::store::ReceiptRecorder;
use wagate::inbound::{self, InboundEvent, SignatureError, verify};
use wagate::runtime::apigw;
use wagate::tenant::OpenedConfig;
use wagate::tenant::cache::{CacheError, CacheSettings, ConfigCache, Opens};

pub use activity::{EVENT_SEEN_WRITE_INTERVAL, EventSeen};
pub use limiter::RateLimiter;
pub use sink::{EventSink, MAX_QUEUE_MESSAGE_BYTES, SinkError};
pub use sqs::SqsSink;

/// The config cache as the ingress uses it: entries kept `ttl`, and only the webhook
/// secrets opened (the ingress never calls a WhatsApp server, so it never opens a server
/// credential: a cold webhook costs one GetItem and one KMS Decrypt per webhook secret).
pub fn cache_settings(ttl: std::time::Duration) -> CacheSettings {
    CacheSettings::with_ttl(ttl).opening(Opens::WebhookSecrets)
}

/// The log budget: at the default level (`info`) an instance writes one line for its first
/// accepted webhook and then one per this many (with the running count), every refusal and
/// every error; at `debug` one line per accepted webhook (`RUST_LOG=info,webhook_ingress=debug`).
pub const ACCEPTED_LOG_EVERY: u64 = 50;

/// Webhooks accepted by this instance (the log sampling's counter).
static ACCEPTED: AtomicU64 = AtomicU64::new(0);

/// Largest webhook body accepted (bytes).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Issue 15: a signature matching none of the cached secrets re-reads the tenant's config at
/// most this often per tenant and instance (a secret added by a rotation or a re-wiring is
/// accepted at once; unsigned junk cannot turn into a DynamoDB read per request).
pub const SECRET_REFRESH_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// What the handler needs; built once per instance.
pub struct App {
    pub cache: Arc<ConfigCache>,
    pub sink: Arc<dyn EventSink>,
    pub limiter: RateLimiter,
    /// Moves outbound delivery records on receipt events (sent → delivered → read).
    pub receipts: Arc<dyn ReceiptRecorder>,
    /// How old (or how far ahead) a timestamped webhook may be: WAHA's `X-Webhook-Timestamp`
    /// and signed body `timestamp`, Evolution's JWT `iat` (`INBOUND_REPLAY_WINDOW_SECONDS`,
    /// default 300).
    pub replay_window: std::time::Duration,
    /// Notes the tenant's last accepted webhook (`lastEventAt`), at most once per tenant per
    /// minute per instance: the one DynamoDB write the warm path may make ([`EventSeen`]).
    /// `None`: never noted (the health check then cannot clear a "silent" flag by events).
    pub event_seen: Option<Arc<EventSeen>>,
}

/// Why a webhook was refused. Each maps to one status; none echoes internals.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("no such route")]
    NoRoute,
    #[error("only POST is accepted")]
    Method,
    #[error("invalid tenant id in the path")]
    BadTenantId,
    #[error("the body is flagged base64-encoded but is not valid base64")]
    BadEncoding,
    #[error("body is over {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("unknown tenant")]
    UnknownTenant,
    #[error("tenant is inactive")]
    Inactive,
    #[error("source address is not allowed for this tenant")]
    SourceNotAllowed,
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A WAHA webhook whose timestamp (header or signed body) is outside the replay window.
    #[error("the webhook's timestamp is missing or outside the replay window")]
    Stale,
    /// An Evolution webhook whose JWT has expired (or was issued in the future).
    #[error("the webhook's bearer token has expired")]
    TokenExpired,
    /// Meta's verification handshake with a wrong mode, token or no challenge.
    #[error("the verification handshake does not match this tenant's verify token")]
    HandshakeRefused,
    #[error("inbound rate limit exceeded")]
    RateLimited,
    #[error("body is not JSON")]
    NotJson,
    #[error("the normalised event is too large for the queue")]
    EventTooLarge,
    #[error("the inbound queue is unavailable; retry later")]
    QueueUnavailable,
    #[error("tenant configuration is unavailable; retry later")]
    ConfigUnavailable,
    /// A secret stored for the tenant cannot be opened: KMS refuses the ciphertext (sealed for
    /// another tenant or purpose, or damaged). Retrying cannot help; an operator sets it again.
    #[error(
        "a secret stored for this tenant cannot be opened; it must be set again (the config API's status names it)"
    )]
    SecretUnusable,
    #[error("delivery records are unavailable; retry later")]
    ReceiptsUnavailable,
    /// Not a refusal: Meta's verification handshake passed and this challenge is the answer
    /// (200, text/plain). Carried as an error so `process` keeps one return type.
    #[error("verification handshake answered")]
    Challenge(String),
}

impl IngressError {
    pub fn status(&self) -> StatusCode {
        match self {
            IngressError::NoRoute | IngressError::UnknownTenant => StatusCode::NOT_FOUND,
            IngressError::Method => StatusCode::METHOD_NOT_ALLOWED,
            IngressError::BadTenantId | IngressError::BadEncoding | IngressError::NotJson => {
                StatusCode::BAD_REQUEST
            }
            IngressError::TooLarge | IngressError::EventTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            IngressError::Inactive
            | IngressError::SourceNotAllowed
            | IngressError::SecretUnusable => StatusCode::FORBIDDEN,
            IngressError::Signature(_) | IngressError::Stale | IngressError::TokenExpired => {
                StatusCode::UNAUTHORIZED
            }
            IngressError::HandshakeRefused => StatusCode::FORBIDDEN,
            IngressError::Challenge(_) => StatusCode::OK,
            IngressError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            IngressError::QueueUnavailable
            | IngressError::ConfigUnavailable
            | IngressError::ReceiptsUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            IngressError::NoRoute => "no_route",
            IngressError::Method => "method_not_allowed",
            IngressError::BadTenantId => "invalid_tenant_id",
            IngressError::BadEncoding => "invalid_body_encoding",
            IngressError::TooLarge => "body_too_large",
            IngressError::UnknownTenant => "unknown_tenant",
            IngressError::Inactive => "tenant_inactive",
            IngressError::SourceNotAllowed => "source_not_allowed",
            IngressError::Signature(SignatureError::Missing) => "signature_missing",
            IngressError::Signature(_) => "signature_invalid",
            IngressError::Stale => "webhook_stale",
            IngressError::TokenExpired => "token_expired",
            IngressError::HandshakeRefused => "handshake_refused",
            IngressError::Challenge(_) => "challenge",
            IngressError::RateLimited => "rate_limited",
            IngressError::NotJson => "invalid_json",
            IngressError::EventTooLarge => "event_too_large",
            IngressError::QueueUnavailable => "queue_unavailable",
            IngressError::ConfigUnavailable => "config_unavailable",
            IngressError::SecretUnusable => "secret_unusable",
            IngressError::ReceiptsUnavailable => "receipts_unavailable",
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

/// An accepted webhook, ready for the queue.
#[derive(Debug)]
pub struct Accepted {
    pub event: InboundEvent,
    /// The queue message body (the event as JSON).
    pub body: String,
    /// The webhook secret id that verified it.
    pub secret_id: String,
    /// Issue 16: the other events of a batch (Meta posts several messages and statuses in
    /// one request: one event each, [`inbound::normalize_all`]), with their queue bodies, in
    /// body order after `event`. Empty for every other kind.
    pub more: Vec<(InboundEvent, String)>,
}

impl Accepted {
    /// Every event with its queue body, `event` first.
    pub fn events(&self) -> impl Iterator<Item = (&InboundEvent, &String)> {
        std::iter::once((&self.event, &self.body)).chain(self.more.iter().map(|(e, b)| (e, b)))
    }
}

/// The queue body of `event`; its raw copy is dropped when it alone makes it too big.
fn queue_body(event: &mut InboundEvent) -> Result<String, IngressError> {
    let mut json = serde_json::to_string(&*event).map_err(|_| IngressError::NotJson)?;
    if json.len() > MAX_QUEUE_MESSAGE_BYTES {
        // Keep the normalised fields; the raw copy is what makes it too big.
        event.raw = serde_json::json!({ "omitted": "raw payload too large for the queue" });
        json = serde_json::to_string(&*event).map_err(|_| IngressError::NotJson)?;
        if json.len() > MAX_QUEUE_MESSAGE_BYTES {
            return Err(IngressError::EventTooLarge);
        }
    }
    Ok(json)
}

/// The pure part of the work for a request signed with `X-Hub-Signature-256` (GOWA, Meta):
/// [`accept_request`] with that one header. No I/O; benchmarked on its own.
pub fn accept(
    cfg: &OpenedConfig,
    signature: Option<&str>,
    body: &[u8],
    source: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<Accepted, IngressError> {
    accept_request(
        cfg,
        |name| {
            (name == verify::HUB_SIGNATURE_HEADER)
                .then_some(signature)
                .flatten()
        },
        body,
        source,
        now,
        verify::DEFAULT_REPLAY_WINDOW,
    )
}

/// The pure part of the work: source check, signature (the scheme of whichever of the
/// tenant's kinds signed it, [`verify::verify_webhook`]), JSON, normalisation,
/// serialisation. `header` looks a request header up by its lowercase name. No I/O.
pub fn accept_request<'h>(
    cfg: &OpenedConfig,
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    source: Option<IpAddr>,
    now: OffsetDateTime,
    replay_window: std::time::Duration,
) -> Result<Accepted, IngressError> {
    if !cfg.is_active {
        return Err(IngressError::Inactive);
    }
    check_source(cfg, source)?;
    let verified =
        verify::verify_webhook(cfg, header, body, now, replay_window).map_err(|e| match e {
            verify::VerifyError::Signature(s) => IngressError::Signature(s),
            verify::VerifyError::Stale => IngressError::Stale,
            verify::VerifyError::Expired => IngressError::TokenExpired,
        })?;
    let secret_id = verified.key_id;
    let raw: serde_json::Value = serde_json::from_slice(body).map_err(|_| IngressError::NotJson)?;
    // Evolution's body carries its instance apikey: normalisation strips it (the raw copy
    // on the queue included) before anything is queued or logged.
    let mut events = inbound::normalize_all(verified.kind, &cfg.tenant_id, raw, body, now)
        .into_iter()
        .map(|mut e| queue_body(&mut e).map(|b| (e, b)))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let (event, json) = events.next().ok_or(IngressError::NotJson)?;
    Ok(Accepted {
        event,
        body: json,
        secret_id,
        more: events.collect(),
    })
}

/// When any endpoint of the tenant lists source CIDRs, the webhook must come from one of
/// them (the union over the tenant's endpoints).
fn check_source(cfg: &OpenedConfig, source: Option<IpAddr>) -> Result<(), IngressError> {
    let lists = std::iter::once(&cfg.primary)
        .chain(cfg.backup.as_ref())
        .flat_map(|e| e.webhook_source_cidrs.iter());
    let mut any = false;
    for net in lists {
        any = true;
        if source.is_some_and(|ip| net.contains(&ip)) {
            return Ok(());
        }
    }
    if any {
        Err(IngressError::SourceNotAllowed)
    } else {
        Ok(())
    }
}

fn parse_route(path: &str) -> Result<TenantId, IngressError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [.., "webhooks", "whatsapp", id] => id
            .parse::<TenantId>()
            .map_err(|_| IngressError::BadTenantId),
        _ => Err(IngressError::NoRoute),
    }
}

fn source_ip(req: &Request) -> Option<IpAddr> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref()?.parse().ok(),
        _ => None,
    }
}

/// The Lambda entry point: one API Gateway HTTP API (payload v2) event, as Lambda delivers
/// it. The body is decoded here, not by `lambda_http` (which panics on invalid base64): a
/// body flagged `isBase64Encoded` that is not base64 is answered 400 `invalid_body_encoding`
/// and nothing is enqueued. Never fails (errors become responses).
pub async fn handle_event(app: &App, event: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
    let (req, body) = apigw::request(event);
    let body = body.map_err(|_| IngressError::BadEncoding);
    apigw::response(respond(app, &req, body).await)
}

/// Handles one webhook request whose body is already decoded; never fails (errors become
/// responses).
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    respond(app, &req, Ok(())).await
}

/// `body`: whether the event's body could be decoded (see [`handle_event`]).
async fn respond(app: &App, req: &Request, body: Result<(), IngressError>) -> Response<Body> {
    let span = tracing::info_span!(
        "webhook",
        tenant_id = tracing::field::Empty,
        provider_event = tracing::field::Empty,
        provider_event_id = tracing::field::Empty,
        dedup_id = tracing::field::Empty,
    );
    async move {
        match process(app, req, body).await {
            Err(IngressError::Challenge(challenge)) => {
                info!(status = 200, "verification handshake answered");
                let mut resp = Response::new(Body::Text(challenge));
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                resp
            }
            Ok(sqs_id) => {
                let n = ACCEPTED.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n % ACCEPTED_LOG_EVERY == 0 {
                    info!(status = 200, sqs_message_id = %sqs_id, accepted = n, "webhook enqueued");
                } else {
                    debug!(status = 200, sqs_message_id = %sqs_id, "webhook enqueued");
                }
                json(StatusCode::OK, r#"{"status":"accepted"}"#.to_string())
            }
            Err(e) => {
                let status = e.status();
                if status.is_server_error() {
                    warn!(
                        status = status.as_u16(),
                        error = e.code(),
                        "webhook not accepted"
                    );
                } else {
                    info!(
                        status = status.as_u16(),
                        error = e.code(),
                        "webhook refused"
                    );
                }
                let mut resp = json(
                    status,
                    serde_json::to_string(&ErrorBody {
                        error: e.code(),
                        message: e.to_string(),
                    })
                    .unwrap_or_default(),
                );
                if matches!(
                    e,
                    IngressError::RateLimited
                        | IngressError::QueueUnavailable
                        | IngressError::ConfigUnavailable
                        | IngressError::ReceiptsUnavailable
                ) {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                }
                resp
            }
        }
    }
    .instrument(span)
    .await
}

async fn process(
    app: &App,
    req: &Request,
    decoded: Result<(), IngressError>,
) -> Result<String, IngressError> {
    let tenant = parse_route(req.uri().path())?;
    tracing::Span::current().record("tenant_id", tenant.as_str());
    // Meta's verification handshake is the one GET taken (by its `hub.mode`).
    if req.method() == http::Method::GET
        && req
            .query_string_parameters_ref()
            .is_some_and(|q| q.first("hub.mode").is_some())
    {
        return Err(handshake(app, req, &tenant).await);
    }
    if req.method() != http::Method::POST {
        return Err(IngressError::Method);
    }
    decoded?;
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(IngressError::TooLarge);
    }
    let cfg = match app.cache.get(&tenant).await {
        Ok(Some(cfg)) => cfg,
        Ok(None) => return Err(IngressError::UnknownTenant),
        // Not a passing failure: answered 4xx (no retry helps) and logged for the operator.
        Err(CacheError::Secrets(e)) if e.is_unusable() => {
            warn!(error = %e, "a stored secret of the tenant cannot be opened");
            return Err(IngressError::SecretUnusable);
        }
        Err(e) => {
            warn!(error = %e, "config lookup failed");
            return Err(IngressError::ConfigUnavailable);
        }
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let accepted =
        match accept_request(&cfg, header, body, source_ip(req), now(), app.replay_window) {
            // Issue 15: signed with a secret this instance's cached config does not hold yet (a
            // rotation or a device re-wired with a new secret since it was cached): the config is
            // read again once (at most once per SECRET_REFRESH_MIN_AGE per tenant and instance)
            // and the signature checked against it, so no event is refused while the cache ages.
            Err(IngressError::Signature(SignatureError::Mismatch)) => {
                let fresh = match app
                    .cache
                    .reload_if_older(&tenant, SECRET_REFRESH_MIN_AGE)
                    .await
                {
                    Ok(Some(Some(fresh))) => fresh,
                    Ok(Some(None)) => return Err(IngressError::UnknownTenant),
                    Ok(None) => return Err(IngressError::Signature(SignatureError::Mismatch)),
                    Err(e) => {
                        warn!(error = %e, "config re-read after a signature mismatch failed");
                        return Err(IngressError::Signature(SignatureError::Mismatch));
                    }
                };
                debug!("signature matched no cached secret: config read again");
                accept_request(
                    &fresh,
                    header,
                    body,
                    source_ip(req),
                    now(),
                    app.replay_window,
                )?
            }
            other => other?,
        };
    // After the signature: unauthenticated junk cannot spend a tenant's allowance.
    if !app
        .limiter
        .try_acquire(&tenant, cfg.limits.inbound_per_second)
    {
        return Err(IngressError::RateLimited);
    }
    let span = tracing::Span::current();
    span.record("provider_event", accepted.event.provider_event.as_str());
    if let Some(id) = &accepted.event.provider_event_id {
        span.record("provider_event_id", id.as_str());
    }
    let dedup = accepted.event.deduplication_id();
    span.record("dedup_id", dedup.as_str());
    // Receipts first (of every event of a batch): if recording fails the answer is 503 with
    // nothing enqueued, the server retries, and applying a receipt twice changes nothing
    // (states only move forward).
    for (event, _) in accepted.events() {
        let Some(receipt) = &event.receipt else {
            continue;
        };
        let now = now();
        for id in &receipt.message_ids {
            match app
                .receipts
                .apply_receipt(&tenant, id, &receipt.state, now)
                .await
            {
                Ok(outcome) => {
                    debug!(provider_message_id = %id, state = %receipt.state, outcome = %outcome, "receipt applied")
                }
                Err(e) => {
                    warn!(provider_message_id = %id, error = %e, "receipt not recorded");
                    return Err(IngressError::ReceiptsUnavailable);
                }
            }
        }
    }
    // One message per event, each deduplicated on its own id: a retried batch whose first
    // events were queued before a failure queues only the rest again.
    let send_all = async {
        let mut sqs_id = String::new();
        for (event, body) in accepted.events() {
            let id = app
                .sink
                .send(event, &event.deduplication_id(), body.clone())
                .await
                .map_err(|e| {
                    warn!(error = %e, "inbound queue send failed");
                    IngressError::QueueUnavailable
                })?;
            if sqs_id.is_empty() {
                sqs_id = id;
            }
        }
        Ok::<_, IngressError>(sqs_id)
    };
    // The "last event seen" write (at most one per tenant per minute per instance) runs beside
    // the queue sends, so the webhook it rides on (often a cold one) does not wait for it. It
    // notes that the server talked, even when the queue then fails (503, retried).
    let seen = async {
        if let Some(seen) = &app.event_seen {
            seen.note(&tenant, now()).await;
        }
    };
    let (sent, ()) = tokio::join!(send_all, seen);
    let sqs_id = sent?;
    if !accepted.more.is_empty() {
        debug!(
            events = accepted.more.len() + 1,
            "batch enqueued, one message per event"
        );
    }
    Ok(sqs_id)
}

/// Meta's verification `GET` on the tenant's webhook URL: `hub.mode=subscribe`,
/// `hub.verify_token` (one of the tenant's Meta endpoints' verify tokens), `hub.challenge`
/// (answered as plain text), after recording `verifiedAt` on the tenant's item (one
/// `UpdateItem`). Anything else is 403 `handshake_refused`; nothing is enqueued or recorded.
async fn handshake(app: &App, req: &Request, tenant: &TenantId) -> IngressError {
    let cfg = match app.cache.get(tenant).await {
        Ok(Some(cfg)) => cfg,
        Ok(None) => return IngressError::UnknownTenant,
        Err(CacheError::Secrets(e)) if e.is_unusable() => return IngressError::SecretUnusable,
        Err(e) => {
            warn!(error = %e, "config lookup failed");
            return IngressError::ConfigUnavailable;
        }
    };
    if !cfg.is_active {
        return IngressError::Inactive;
    }
    let q = req.query_string_parameters_ref();
    let get = |k: &str| q.and_then(|q| q.first(k));
    match inbound::meta::handshake(
        &cfg,
        get("hub.mode"),
        get("hub.verify_token"),
        get("hub.challenge"),
    ) {
        Some(challenge) => {
            if let Some(seen) = &app.event_seen {
                seen.note_verified(tenant, now()).await;
            }
            IngressError::Challenge(challenge.to_string())
        }
        None => IngressError::HandshakeRefused,
    }
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::Text(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_takes_the_last_three_segments() {
        assert_eq!(
            parse_route("/webhooks/whatsapp/acme").unwrap().as_str(),
            "acme"
        );
        assert_eq!(
            parse_route("/lambda-url/webhook-ingress/webhooks/whatsapp/acme")
                .unwrap()
                .as_str(),
            "acme"
        );
        assert!(matches!(
            parse_route("/webhooks/whatsapp/a%20b"),
            Err(IngressError::BadTenantId)
        ));
        assert!(matches!(
            parse_route("/webhooks/acme"),
            Err(IngressError::NoRoute)
        ));
    }
}
