//! GOWA's device management routes (`/devices/...`, v9.2): device slots, QR and pairing-code
//! login, logout, reconnect and status. The device's own webhook (`/devices/{id}/webhook`) is
//! in `api.rs`.
//!
//! A login started here completes when the control API's `POST /_sim/devices/{id}/scan` plays
//! the phone. The QR picture is a real PNG served, as GOWA serves it, from
//! `/statics/images/qrcode/scan-qr-<uuid>.png` (the `qr_link`); it is gone once it expires
//! (`qr_duration` seconds) or once the device is logged in.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::body::{BodyKind, Fields, ParsedBody};
use crate::config::{DeviceSpec, DeviceState, DeviceWebhook};
use crate::envelope::{GowaError, success, text};
use crate::faults::QrImageFault;
use crate::linking::{self, QR_DURATION_SECS};
use crate::recording::query_value;
use crate::state::{Device, SimState};

/// `POST /devices` results (`DeviceAddResponse`), the webhook fields echoed when given.
#[derive(Serialize)]
struct DeviceAdded {
    id: String,
    state: DeviceState,
    jid: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_events: Option<String>,
}

/// `POST /devices {device_id?, webhook_url?, webhook_secret?, webhook_events?}`: a new slot,
/// disconnected until a login completes. 400 `DEVICE_EXISTS` when the id is taken.
pub(crate) async fn add_device(
    State(state): State<Arc<SimState>>,
    Extension(body): Extension<Arc<ParsedBody>>,
) -> Response {
    let parsed = match &body.kind {
        // GOWA binds an empty body as an empty request.
        BodyKind::Unsupported => Ok((None, None, None, None)),
        _ => Fields::bind(&body, "DeviceAddRequest").and_then(|fields| {
            Ok((
                fields.text("device_id")?,
                fields.text("webhook_url")?,
                fields.text("webhook_secret")?,
                fields.text("webhook_events")?,
            ))
        }),
    };
    let (id, url, secret, events) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return GowaError::Validation(err.0).into_response(),
    };
    let id = id
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 8]>()));
    if id.len() > 128 || id.chars().any(|c| c.is_control() || c == '/') {
        return GowaError::Validation("device_id: must be a valid id.".to_owned()).into_response();
    }
    let webhook_url = url.as_deref().map(str::trim).unwrap_or_default();
    if !webhook_url.is_empty() && reqwest::Url::parse(webhook_url).is_err() {
        return GowaError::Validation("webhook_url must be a valid URL".to_owned()).into_response();
    }
    let mut spec = DeviceSpec::new(id.clone(), "", DeviceState::Disconnected);
    if !webhook_url.is_empty() {
        spec.webhook = Some(DeviceWebhook {
            url: webhook_url.to_owned(),
            secret: secret.clone().unwrap_or_default(),
            events: split_events(events.as_deref().unwrap_or_default()),
            headers: Default::default(),
        });
    }
    if !state.add_device(spec) {
        return GowaError::DeviceExists.into_response();
    }
    tracing::info!(device = %id, own_webhook = !webhook_url.is_empty(), "device slot added");
    let device = state.device(&id).expect("just added");
    let given = !webhook_url.is_empty();
    success(
        "Device added",
        DeviceAdded {
            id,
            state: device.spec.state,
            jid: String::new(),
            created_at: device.created_at.format(&Rfc3339).unwrap_or_default(),
            webhook_url: given.then(|| webhook_url.to_owned()),
            webhook_secret: given.then(|| secret.unwrap_or_default()),
            webhook_events: given.then(|| events.unwrap_or_default()),
        },
    )
}

/// The comma-separated event list GOWA stores.
pub(crate) fn split_events(events: &str) -> Vec<String> {
    events
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `GET /devices/{device_id}`: `DeviceInfo`.
pub(crate) async fn get_device(
    State(state): State<Arc<SimState>>,
    Path(device_id): Path<String>,
) -> Response {
    match state.device(&device_id) {
        Some(device) => success("Device info", crate::api::DeviceInfo::from(device)),
        None => GowaError::DeviceNotFound(device_id).into_response(),
    }
}

#[derive(Serialize)]
struct LoginResults {
    device_id: String,
    qr_link: String,
    qr_duration: u32,
}

/// `GET /devices/{device_id}/login`: a fresh QR code (the link to its PNG and how long it
/// lasts); the device is connected (to WhatsApp) but not logged in until the scan.
pub(crate) async fn login(
    State(state): State<Arc<SimState>>,
    Path(device_id): Path<String>,
) -> Response {
    let started = state.update_device(&device_id, |device| {
        if device.spec.state.is_logged_in() {
            return None;
        }
        let link = linking::new_link(None, true);
        let image = link.image.clone();
        device.extra.link = Some(link);
        device.set_state(DeviceState::Connected);
        Some(image)
    });
    match started {
        None => GowaError::DeviceNotFound(device_id).into_response(),
        Some(None) => GowaError::AlreadyLoggedIn.into_response(),
        Some(Some(image)) => {
            tracing::info!(device = %device_id, "QR login started");
            success(
                "Login success",
                LoginResults {
                    device_id,
                    qr_link: format!("{}/statics/images/qrcode/{image}", state.base_url()),
                    qr_duration: QR_DURATION_SECS,
                },
            )
        }
    }
}

#[derive(Serialize)]
struct PairCodeResults {
    device_id: String,
    pair_code: String,
}

/// `POST /devices/{device_id}/login/code?phone=`: a pairing code for that number.
pub(crate) async fn login_code(
    State(state): State<Arc<SimState>>,
    Path(device_id): Path<String>,
    request: Request,
) -> Response {
    let phone = query_value(request.uri().query(), "phone").unwrap_or_default();
    let phone = phone.trim().trim_start_matches('+').to_owned();
    if phone.is_empty() {
        return GowaError::Validation("phone: cannot be blank.".to_owned()).into_response();
    }
    if !(7..=15).contains(&phone.len()) || !phone.bytes().all(|b| b.is_ascii_digit()) {
        return GowaError::Validation("phone: must be a valid phone number.".to_owned())
            .into_response();
    }
    let started = state.update_device(&device_id, |device| {
        if device.spec.state.is_logged_in() {
            return None;
        }
        let link = linking::new_link(Some(&phone), true);
        let code = link.pairing_code.clone().unwrap_or_default();
        device.extra.link = Some(link);
        device.set_state(DeviceState::Connected);
        Some(code)
    });
    match started {
        None => GowaError::DeviceNotFound(device_id).into_response(),
        Some(None) => GowaError::AlreadyLoggedIn.into_response(),
        Some(Some(pair_code)) => {
            tracing::info!(device = %device_id, "pairing-code login started");
            success(
                "Login with code started",
                PairCodeResults {
                    device_id,
                    pair_code,
                },
            )
        }
    }
}

/// `{code, message, results: null}` (`GenericResponse`).
fn generic(message: &str) -> Response {
    success(message, Value::Null)
}

/// `POST /devices/{device_id}/logout`: logged out, session cleared, slot (and its webhook)
/// kept.
pub(crate) async fn logout(
    State(state): State<Arc<SimState>>,
    Path(device_id): Path<String>,
) -> Response {
    let done = state.update_device(&device_id, |device| {
        device.spec.jid.clear();
        device.extra.link = None;
        device.set_state(DeviceState::Disconnected);
    });
    match done {
        Some(()) => {
            tracing::info!(device = %device_id, "device logged out");
            generic("Device logged out")
        }
        None => GowaError::DeviceNotFound(device_id).into_response(),
    }
}

/// `POST /devices/{device_id}/reconnect`: a device with a session (a JID) is logged in again;
/// one without is connected, waiting for a login.
pub(crate) async fn reconnect(
    State(state): State<Arc<SimState>>,
    Path(device_id): Path<String>,
) -> Response {
    let done = state.update_device(&device_id, |device| {
        let next = if device.spec.jid.is_empty() {
            DeviceState::Connected
        } else {
            DeviceState::LoggedIn
        };
        device.set_state(next);
    });
    match done {
        Some(()) => generic("Device reconnected"),
        None => GowaError::DeviceNotFound(device_id).into_response(),
    }
}

#[derive(Serialize)]
struct StatusResults {
    device_id: String,
    is_connected: bool,
    is_logged_in: bool,
}

/// `GET /devices/{device_id}/status`.
pub(crate) async fn status(
    State(state): State<Arc<SimState>>,
    Path(device_id): Path<String>,
) -> Response {
    match state.device(&device_id) {
        Some(device) => success(
            "Device status",
            StatusResults {
                is_connected: device.spec.state.is_connected(),
                is_logged_in: device.spec.state.is_logged_in(),
                device_id,
            },
        ),
        None => GowaError::DeviceNotFound(device_id).into_response(),
    }
}

/// `GET /statics/images/qrcode/{file}`: the QR picture of a login in progress, until it
/// expires; fiber's plain 404 otherwise.
pub(crate) async fn qr_image(
    State(state): State<Arc<SimState>>,
    Path(file): Path<String>,
) -> Response {
    let now = OffsetDateTime::now_utc();
    let found = state
        .devices()
        .into_iter()
        .filter_map(|device: Device| device.extra.link)
        .find(|link| link.image == file && link.expires_at > now);
    match found {
        Some(link) => {
            let (bytes, mime) = match state.faults().qr_image {
                None => (linking::qr_png(&link.qr), "image/png"),
                Some(QrImageFault::NotPng) => (b"GIF89a\x01\x00\x01\x00".to_vec(), "image/gif"),
                Some(QrImageFault::Oversize) => {
                    let mut png = linking::qr_png(&link.qr);
                    png.resize(1024 * 1024, 0);
                    (png, "image/png")
                }
            };
            let mut response = (StatusCode::OK, bytes).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            response
        }
        None => text(StatusCode::NOT_FOUND, "Not Found"),
    }
}
