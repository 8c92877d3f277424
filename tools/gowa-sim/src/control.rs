//! The control API (second port, JSON): inspect what GOWA received, inject faults, change
//! device states, and deliver signed webhooks.
//!
//! | route | does |
//! |---|---|
//! | `GET /_sim/status` | `{"base_url", "down"}` |
//! | `GET /_sim/requests[?path=/send/message]` | recorded requests, oldest first |
//! | `DELETE /_sim/requests` | clears the log (204) |
//! | `GET /_sim/faults`, `PUT /_sim/faults` | read / replace the [`Faults`] |
//! | `PUT /_sim/down` `{"down": bool}` | close / reopen the GOWA port |
//! | `GET /_sim/devices` | devices and states |
//! | `PUT /_sim/devices/{id}` `{"state": "logged_in"}` | change a device's state (404 if unknown) |
//! | `POST /_sim/reset` | clear log and faults, restore devices (204) |
//! | `POST /_sim/webhooks` | body [`WebhookDelivery`], answers [`DeliveryReport`] |
//! | `GET`/`PUT /_sim/receipts` | `{"delivered_ms", "read_ms"}` ([`Receipts`]; `null` = none) |
//! | `GET`/`PUT /_sim/webhook` | the global webhook `{"urls", "secret", "events"}` (the secret is write-only) |
//! | `POST /_sim/incoming` | body [`IncomingMessage`]: a contact's message to the device's webhook; answers the [`EventRecord`] |
//! | `GET /_sim/events` | every event emitted (receipts, incoming messages) with its deliveries, oldest first |
//! | `POST /_sim/devices/{id}/scan` `{"jid"?}` | completes a device link as a phone scanning the QR (404 unknown, 409 Meta) |
//! | `POST /_sim/verify-callback` `{"url", "verify_token", "challenge"?}` | Meta's `GET` verification handshake; answers [`HandshakeReport`] |
//!
//! Errors are `{"error": code, "message": text}`.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::SimCore;
use crate::config::{DeviceSpec, DeviceState, Receipts, WebhookConfig};
use crate::events::{EventRecord, IncomingError, IncomingMessage};
use crate::faults::Faults;
use crate::kind::Kind;
use crate::linking::{HandshakeReport, ScanError};
use crate::state::MessagingHealth;
use crate::webhook::{DeliveryReport, WebhookDelivery};

/// Builds the control router.
pub(crate) fn router(core: Arc<SimCore>) -> Router {
    Router::new()
        .route("/_sim/status", get(status))
        .route("/_sim/requests", get(list_requests).delete(clear_requests))
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route("/_sim/down", put(put_down))
        .route("/_sim/devices", get(list_devices))
        .route("/_sim/devices/{id}", put(put_device))
        .route("/_sim/devices/{id}/scan", post(scan))
        .route("/_sim/verify-callback", post(verify_callback))
        .route("/_sim/reset", post(reset))
        .route("/_sim/webhooks", post(deliver_webhook))
        .route("/_sim/receipts", get(get_receipts).put(put_receipts))
        .route("/_sim/webhook", get(get_webhook).put(put_webhook))
        .route("/_sim/incoming", post(incoming))
        .route("/_sim/events", get(list_events))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such control route") })
        .with_state(core)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": code, "message": message.into() })),
    )
        .into_response()
}

fn bad_json(rejection: JsonRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        rejection.body_text(),
    )
}

#[derive(Serialize)]
struct Status {
    kind: Kind,
    base_url: String,
    down: bool,
}

async fn status(State(core): State<Arc<SimCore>>) -> Json<Status> {
    Json(Status {
        kind: core.state.kind(),
        base_url: core.base_url(),
        down: core.is_down().await,
    })
}

#[derive(Deserialize)]
struct RequestFilter {
    path: Option<String>,
}

async fn list_requests(
    State(core): State<Arc<SimCore>>,
    Query(filter): Query<RequestFilter>,
) -> Response {
    let requests = match filter.path {
        Some(path) => core.state.requests_to(&path),
        None => core.state.requests(),
    };
    Json(requests).into_response()
}

async fn clear_requests(State(core): State<Arc<SimCore>>) -> StatusCode {
    core.state.clear_requests();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(core): State<Arc<SimCore>>) -> Json<Faults> {
    Json(core.state.faults())
}

async fn put_faults(
    State(core): State<Arc<SimCore>>,
    faults: Result<Json<Faults>, JsonRejection>,
) -> Response {
    match faults {
        Ok(Json(faults)) => {
            if let Some(fault) = &faults.provider_error
                && let Err(message) = crate::check_provider_error(core.state.kind(), &fault.code)
            {
                return error(StatusCode::BAD_REQUEST, "bad_fault", message);
            }
            core.state.set_faults(faults);
            Json(core.state.faults()).into_response()
        }
        Err(rejection) => bad_json(rejection),
    }
}

#[derive(Serialize, Deserialize)]
struct Down {
    down: bool,
}

async fn put_down(
    State(core): State<Arc<SimCore>>,
    body: Result<Json<Down>, JsonRejection>,
) -> Response {
    let Json(Down { down }) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    match core.set_down(down).await {
        Ok(()) => Json(Down { down }).into_response(),
        Err(err) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rebind_failed",
            format!("{err:#}"),
        ),
    }
}

async fn list_devices(State(core): State<Arc<SimCore>>) -> Json<Vec<DeviceSpec>> {
    Json(core.state.devices().into_iter().map(|d| d.spec).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceUpdate {
    #[serde(default)]
    state: Option<DeviceState>,
    /// Meta: the number's messaging health.
    #[serde(default)]
    health: Option<MessagingHealth>,
}

async fn put_device(
    State(core): State<Arc<SimCore>>,
    Path(id): Path<String>,
    body: Result<Json<DeviceUpdate>, JsonRejection>,
) -> Response {
    let Json(update) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    if core.state.device(&id).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            "device_not_found",
            format!("no device with id {id:?}"),
        );
    }
    if let Some(state) = update.state {
        core.set_device_state(&id, state);
    }
    if let Some(health) = update.health {
        core.state.update_device(&id, |d| d.extra.health = health);
    }
    match core.state.device(&id) {
        Some(device) => Json(device.spec).into_response(),
        None => error(StatusCode::NOT_FOUND, "device_not_found", id),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScanRequest {
    #[serde(default)]
    jid: Option<String>,
}

async fn scan(
    State(core): State<Arc<SimCore>>,
    Path(id): Path<String>,
    body: Option<Json<ScanRequest>>,
) -> Response {
    let request = body.map(|Json(b)| b).unwrap_or_default();
    match crate::linking::scan(&core.state, &id, request.jid.as_deref()) {
        Ok(()) => match core.state.device(&id) {
            Some(device) => Json(device.spec).into_response(),
            None => error(StatusCode::NOT_FOUND, "device_not_found", id),
        },
        Err(err @ ScanError::UnknownDevice(_)) => {
            error(StatusCode::NOT_FOUND, "device_not_found", err.to_string())
        }
        Err(err @ ScanError::NotLinkable) => {
            error(StatusCode::CONFLICT, "not_linkable", err.to_string())
        }
        Err(err @ ScanError::BadJid(_)) => {
            error(StatusCode::BAD_REQUEST, "bad_jid", err.to_string())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    url: String,
    verify_token: String,
    #[serde(default)]
    challenge: Option<String>,
}

async fn verify_callback(
    State(core): State<Arc<SimCore>>,
    body: Result<Json<VerifyRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    match crate::linking::verify_callback(
        &core.state.http,
        &request.url,
        &request.verify_token,
        request.challenge.as_deref(),
    )
    .await
    {
        Ok(report) => Json::<HandshakeReport>(report).into_response(),
        Err(err) => error(StatusCode::BAD_REQUEST, "bad_callback", format!("{err:#}")),
    }
}

async fn reset(State(core): State<Arc<SimCore>>) -> StatusCode {
    core.state.reset();
    StatusCode::NO_CONTENT
}

async fn deliver_webhook(
    State(core): State<Arc<SimCore>>,
    body: Result<Json<WebhookDelivery>, JsonRejection>,
) -> Response {
    let Json(delivery) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    match core.deliver_webhook(delivery).await {
        Ok(report) => Json::<DeliveryReport>(report).into_response(),
        Err(err) => error(StatusCode::BAD_REQUEST, "bad_webhook", format!("{err:#}")),
    }
}

async fn get_receipts(State(core): State<Arc<SimCore>>) -> Json<Receipts> {
    Json(core.state.receipts())
}

async fn put_receipts(
    State(core): State<Arc<SimCore>>,
    body: Result<Json<Receipts>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(receipts)) => {
            core.state.set_receipts(receipts);
            Json(core.state.receipts()).into_response()
        }
        Err(rejection) => bad_json(rejection),
    }
}

async fn get_webhook(State(core): State<Arc<SimCore>>) -> Json<WebhookConfig> {
    Json(core.state.webhook())
}

async fn put_webhook(
    State(core): State<Arc<SimCore>>,
    body: Result<Json<WebhookConfig>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(webhook)) => {
            core.state.set_webhook(webhook);
            Json(core.state.webhook()).into_response()
        }
        Err(rejection) => bad_json(rejection),
    }
}

async fn incoming(
    State(core): State<Arc<SimCore>>,
    body: Result<Json<IncomingMessage>, JsonRejection>,
) -> Response {
    let Json(message) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    match core.deliver_incoming(message).await {
        Ok(record) => Json::<EventRecord>(record).into_response(),
        Err(err @ IncomingError::UnknownDevice(_)) => {
            error(StatusCode::NOT_FOUND, "device_not_found", err.to_string())
        }
        Err(err) => error(StatusCode::BAD_REQUEST, "bad_incoming", err.to_string()),
    }
}

async fn list_events(State(core): State<Arc<SimCore>>) -> Json<Vec<EventRecord>> {
    Json(core.state.events())
}
