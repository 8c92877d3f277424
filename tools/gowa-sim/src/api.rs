//! The GOWA REST API: routes, and the middleware chain GOWA runs in front of them.
//!
//! Order, outermost first: recording -> injected latency / hang -> basic auth (every route
//! but `/health`, as `app.Use(basicauth)` registered after `/health` in `src/cmd/rest.go`) ->
//! device selection (`DeviceMiddleware`, every route but `/health` and `/devices`) -> handler.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use crate::body::{Fields, ParsedBody};
use crate::config::{DeviceState, DeviceWebhook};
use crate::devices;
use crate::envelope::{GowaError, success, text};
use crate::faults::DeviceWebhookFault;
use crate::recording::{self, constant_time_eq, header_text, query_value as query_param};
use crate::send::{self, ResolvedDevice};
use crate::state::{Device, SimState};

/// Builds the GOWA API router over shared state.
pub(crate) fn router(state: Arc<SimState>) -> Router {
    let routes = Router::new()
        .route("/health", get(health))
        .route("/devices", get(list_devices).post(devices::add_device))
        .route("/devices/{device_id}", get(devices::get_device))
        .route("/devices/{device_id}/login", get(devices::login))
        .route("/devices/{device_id}/login/code", post(devices::login_code))
        .route("/devices/{device_id}/logout", post(devices::logout))
        .route("/devices/{device_id}/reconnect", post(devices::reconnect))
        .route("/devices/{device_id}/status", get(devices::status))
        .route("/statics/images/qrcode/{file}", get(devices::qr_image))
        .route(
            "/devices/{device_id}/webhook",
            get(get_device_webhook).patch(patch_device_webhook),
        )
        .route("/app/status", get(app_status))
        .route("/send/message", post(send::send_message))
        .route("/send/image", post(send::send_image))
        .route("/send/file", post(send::send_file))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), select_device))
        .layer(from_fn_with_state(state.clone(), basic_auth));
    recording::recorded(routes, state)
}

// ---------------------------------------------------------------------------------------------
// Middleware

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuthOutcome {
    Ok,
    Unauthorized,
    BadRequest,
}

/// Result of checking the `Authorization` header against the configured account.
#[derive(Clone, Debug)]
pub(crate) struct BasicAuth {
    pub user: Option<String>,
    outcome: AuthOutcome,
}

impl BasicAuth {
    /// Whether the credentials were accepted (or none are required).
    pub fn is_ok(&self) -> bool {
        self.outcome == AuthOutcome::Ok
    }
}

/// fiber v3's `basicauth` middleware with GOWA's authorizer (constant-time compare).
pub(crate) fn check_basic_auth(state: &SimState, headers: &HeaderMap) -> BasicAuth {
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(|v| parse_basic(v.as_bytes()));
    let user = match &presented {
        Some(Ok((user, _))) => Some(user.clone()),
        _ => None,
    };
    let Some((expected_user, expected_password)) = &state.config().basic_auth else {
        return BasicAuth {
            user,
            outcome: AuthOutcome::Ok,
        };
    };
    let outcome = match presented {
        None | Some(Err(AuthOutcome::Unauthorized)) => AuthOutcome::Unauthorized,
        Some(Err(_)) => AuthOutcome::BadRequest,
        Some(Ok((user, password))) => {
            let user_ok = constant_time_eq(user.as_bytes(), expected_user.as_bytes());
            let password_ok = constant_time_eq(password.as_bytes(), expected_password.as_bytes());
            if user_ok && password_ok {
                AuthOutcome::Ok
            } else {
                AuthOutcome::Unauthorized
            }
        }
    };
    BasicAuth { user, outcome }
}

/// Splits `Basic base64(user:password)`. A missing or foreign scheme is 401; a malformed
/// Basic value is 400, as in fiber.
fn parse_basic(raw: &[u8]) -> Result<(String, String), AuthOutcome> {
    let raw = std::str::from_utf8(raw).map_err(|_| AuthOutcome::BadRequest)?;
    let value = raw.trim();
    if value.is_empty() {
        return Err(AuthOutcome::Unauthorized);
    }
    let scheme_ok = value
        .get(..5)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic"));
    if !scheme_ok {
        return Err(AuthOutcome::Unauthorized);
    }
    let rest = &value[5..];
    let encoded = rest.strip_prefix(' ').ok_or(AuthOutcome::BadRequest)?;
    if encoded.is_empty() || encoded.contains(char::is_whitespace) {
        return Err(AuthOutcome::BadRequest);
    }
    let decoded = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .map_err(|_| AuthOutcome::BadRequest)?;
    let creds = String::from_utf8(decoded).map_err(|_| AuthOutcome::BadRequest)?;
    let (user, password) = creds.split_once(':').ok_or(AuthOutcome::BadRequest)?;
    if user.chars().any(char::is_control) || password.chars().any(char::is_control) {
        return Err(AuthOutcome::BadRequest);
    }
    Ok((user.to_owned(), password.to_owned()))
}

/// Answers 401 (plain `Unauthorized`, no JSON) or 400 before any route but `/health`.
async fn basic_auth(request: Request, next: Next) -> Response {
    // `/statics` is served by fiber's static handler, registered before basic auth.
    if request.uri().path() == "/health" || request.uri().path().starts_with("/statics/") {
        return next.run(request).await;
    }
    let outcome = request
        .extensions()
        .get::<BasicAuth>()
        .map_or(AuthOutcome::Unauthorized, |auth| auth.outcome);
    match outcome {
        AuthOutcome::Ok => next.run(request).await,
        AuthOutcome::BadRequest => text(StatusCode::BAD_REQUEST, "Bad Request"),
        AuthOutcome::Unauthorized => {
            let mut response = text(StatusCode::UNAUTHORIZED, "Unauthorized");
            let headers = response.headers_mut();
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Restricted\", charset=\"UTF-8\""),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::VARY, HeaderValue::from_static("Authorization"));
            response
        }
    }
}

/// GOWA's `DeviceMiddleware`: `X-Device-Id` (URL-decoded), else `?device_id=`, else the only
/// device.
async fn select_device(
    State(state): State<Arc<SimState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    // Device management routes name the device in the path.
    if matches!(path, "/health" | "/devices" | "/" | "")
        || path.starts_with("/devices/")
        || path.starts_with("/statics/")
    {
        return next.run(request).await;
    }
    let from_header = header_text(request.headers(), "x-device-id")
        .map(|raw| query_unescape(raw.trim()))
        .unwrap_or_default();
    let wanted = if from_header.is_empty() {
        query_param(request.uri().query(), "device_id").unwrap_or_default()
    } else {
        from_header
    };
    let wanted = wanted.trim().to_owned();

    let resolved = if wanted.is_empty() {
        match state.only_device() {
            Some(device) => device.spec.id,
            None => return GowaError::DeviceIdRequired.into_response(),
        }
    } else if state.device(&wanted).is_some() {
        wanted
    } else {
        return GowaError::DeviceNotFound(wanted).into_response();
    };
    request.extensions_mut().insert(ResolvedDevice(resolved));
    next.run(request).await
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn health(State(state): State<Arc<SimState>>) -> Response {
    if state.faults().health_unhealthy {
        text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
    } else {
        text(StatusCode::OK, "OK")
    }
}

/// GOWA's `domainDevice.Device` (struct field order, `omitempty` where Go has it).
#[derive(Serialize)]
pub(crate) struct DeviceInfo {
    id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    phone_number: String,
    state: DeviceState,
    #[serde(skip_serializing_if = "String::is_empty")]
    jid: String,
    created_at: String,
}

impl From<Device> for DeviceInfo {
    fn from(device: Device) -> Self {
        let phone_number = device
            .spec
            .jid
            .split('@')
            .next()
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        Self {
            id: device.spec.id,
            phone_number,
            state: device.spec.state,
            jid: device.spec.jid,
            created_at: device.created_at.format(&Rfc3339).unwrap_or_default(),
        }
    }
}

async fn list_devices(State(state): State<Arc<SimState>>) -> Response {
    let mut devices = state.devices();
    devices.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.spec.id.cmp(&b.spec.id))
    });
    let infos: Vec<DeviceInfo> = devices.into_iter().map(DeviceInfo::from).collect();
    success("List devices", infos)
}

/// `/app/status` results: a Go map, so keys in sorted order.
#[derive(Serialize)]
struct ConnectionStatus {
    device_id: String,
    is_connected: bool,
    is_logged_in: bool,
    jid: String,
}

async fn app_status(
    State(state): State<Arc<SimState>>,
    Extension(device): Extension<ResolvedDevice>,
) -> Response {
    let Some(device) = state.device(&device.0) else {
        return GowaError::DeviceNotFound(device.0).into_response();
    };
    success(
        "Connection status retrieved",
        ConnectionStatus {
            is_connected: device.spec.state.is_connected(),
            is_logged_in: device.spec.state.is_logged_in(),
            device_id: device.spec.id,
            jid: device.spec.jid,
        },
    )
}

/// `GET`/`PATCH /devices/{device_id}/webhook` results (the spec's order).
#[derive(Serialize)]
struct DeviceWebhookInfo {
    device_id: String,
    webhook_url: String,
    webhook_secret: String,
    webhook_events: String,
    webhook_insecure_skip_verify: bool,
}

impl DeviceWebhookInfo {
    fn of(device_id: String, webhook: Option<DeviceWebhook>) -> Self {
        let webhook = webhook.unwrap_or_default();
        Self {
            device_id,
            webhook_url: webhook.url,
            webhook_secret: webhook.secret,
            webhook_events: webhook.events.join(","),
            webhook_insecure_skip_verify: false,
        }
    }
}

async fn get_device_webhook(
    State(state): State<Arc<SimState>>,
    Path(device_id): Path<String>,
) -> Response {
    match state.device(&device_id) {
        Some(device) => {
            let mut webhook = device.spec.webhook;
            if let Some(w) = webhook.as_mut() {
                match state.faults().device_webhook {
                    Some(DeviceWebhookFault::OtherUrl) => {
                        w.url = "https://elsewhere.example/webhook".to_owned();
                    }
                    Some(DeviceWebhookFault::OtherSecret) => w.secret = "not-yours".to_owned(),
                    _ => {}
                }
            }
            success(
                "Device webhook retrieved",
                DeviceWebhookInfo::of(device_id, webhook),
            )
        }
        None => GowaError::DeviceNotFound(device_id).into_response(),
    }
}

/// Sets the device's own webhook; an empty `webhook_url` clears it (the global webhook
/// applies again).
async fn patch_device_webhook(
    State(state): State<Arc<SimState>>,
    Path(device_id): Path<String>,
    Extension(body): Extension<Arc<ParsedBody>>,
) -> Response {
    let parsed = Fields::bind(&body, "DeviceWebhookRequest").and_then(|fields| {
        Ok((
            fields.text("webhook_url")?,
            fields.text("webhook_secret")?.unwrap_or_default(),
            fields.text("webhook_events")?.unwrap_or_default(),
        ))
    });
    let (url, secret, events) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return GowaError::Internal(err.0).into_response(),
    };
    let Some(url) = url else {
        return GowaError::Validation("webhook_url: cannot be blank.".to_owned()).into_response();
    };
    if state.faults().device_webhook == Some(DeviceWebhookFault::Refuse) {
        return GowaError::Internal(crate::envelope::MSG_INTERNAL.to_owned()).into_response();
    }
    let url = url.trim().to_owned();
    if !url.is_empty() && reqwest::Url::parse(&url).is_err() {
        return GowaError::Validation("webhook_url must be a valid URL".to_owned()).into_response();
    }
    let webhook = (!url.is_empty()).then(|| DeviceWebhook {
        url,
        secret,
        events: events
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
        headers: Default::default(),
    });
    if !state.set_device_webhook(&device_id, webhook.clone()) {
        return GowaError::DeviceNotFound(device_id).into_response();
    }
    success(
        "Device webhook updated",
        DeviceWebhookInfo::of(device_id, webhook),
    )
}

/// fiber's default 404: `Cannot GET /path`.
async fn not_found(method: Method, request: Request) -> Response {
    let body = format!("Cannot {method} {}", request.uri().path());
    let mut response = (StatusCode::NOT_FOUND, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn method_not_allowed() -> Response {
    text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Go's `url.QueryUnescape`; on a malformed escape GOWA keeps the raw header value.
fn query_unescape(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => return raw.to_owned(),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_credentials_and_rejects_malformed_ones() {
        let header = format!("Basic {}", STANDARD.encode("admin:s3cret:x"));
        assert_eq!(
            parse_basic(header.as_bytes()),
            Ok(("admin".to_owned(), "s3cret:x".to_owned()))
        );
        assert_eq!(parse_basic(b"Bearer abc"), Err(AuthOutcome::Unauthorized));
        assert_eq!(parse_basic(b"Basic !!!"), Err(AuthOutcome::BadRequest));
        let no_colon = format!("Basic {}", STANDARD.encode("admin"));
        assert_eq!(
            parse_basic(no_colon.as_bytes()),
            Err(AuthOutcome::BadRequest)
        );
    }

    #[test]
    fn device_header_is_url_decoded_like_go() {
        assert_eq!(query_unescape("toko%20satu"), "toko satu");
        assert_eq!(query_unescape("a+b"), "a b");
        assert_eq!(query_unescape("bad%zz"), "bad%zz");
    }
}
