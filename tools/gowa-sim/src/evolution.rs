//! Evolution API v2 (evolution-foundation/evolution-api, Baileys integration): the routes a
//! gateway uses.
//!
//! Sources (EvolutionAPI/evolution-api): `src/api/routes/{index,instance,sendMessage}.router.ts`
//! (guards in order: instance exists, then `apikey`; sends answer 201), `src/api/guards/`
//! (`apikey`: the global `AUTHENTICATION_API_KEY` or the instance's own token),
//! `src/main.ts` (every error is `{status, error, response: {message}}`),
//! `src/exceptions/*.ts`, `src/api/dto/sendMessage.dto.ts` (v2 flat DTOs: `{number, text,
//! quoted?}`, `{number, mediatype, mimetype?, caption?, fileName?, media}`),
//! `src/api/controllers/instance.controller.ts` (`connectionState`, `connectToWhatsapp`,
//! `logout`, `restartInstance`), `src/api/integrations/event/webhook/webhook.controller.ts`
//! (`set`, the stored row). Upstream issues 1286/1772 show the `Connection Closed` answer.

// Validation helpers return the kind's ready answer as their error (`Err(response)` is what
// the handler sends); a `Response` is large, boxing it would only add noise here.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::body::{BodyKind, ParsedBody};
use crate::config::{DeviceState, DeviceWebhook};
use crate::envelope::proxy_page;
use crate::events::{self, SentMessage};
use crate::faults::{DeviceWebhookFault, SendErrorStatus};
use crate::linking;
use crate::outgoing::EVOLUTION_VERSION;
use crate::recording::{self, Authorized, slot_from_request};
use crate::state::{Device, SimState};

/// Evolution's error answers for the `provider_error` fault: Baileys errors its error handler
/// turns into 500s. `connection_closed`: "Error: Connection Closed" (the socket dropped);
/// `rate_overlimit`: WhatsApp's `rate-overlimit`.
pub(crate) const PROVIDER_ERRORS: &[&str] = &["connection_closed", "rate_overlimit"];

/// Evolution's webhook event names (`Events` in `src/api/types/wa.types.ts`).
pub(crate) const EVENTS: &[&str] = &[
    "APPLICATION_STARTUP",
    "QRCODE_UPDATED",
    "MESSAGES_SET",
    "MESSAGES_UPSERT",
    "MESSAGES_EDITED",
    "MESSAGES_UPDATE",
    "MESSAGES_DELETE",
    "SEND_MESSAGE",
    "SEND_MESSAGE_UPDATE",
    "CONTACTS_SET",
    "CONTACTS_UPSERT",
    "CONTACTS_UPDATE",
    "PRESENCE_UPDATE",
    "CHATS_SET",
    "CHATS_UPSERT",
    "CHATS_UPDATE",
    "CHATS_DELETE",
    "GROUPS_UPSERT",
    "GROUP_UPDATE",
    "GROUP_PARTICIPANTS_UPDATE",
    "CONNECTION_UPDATE",
    "LABELS_EDIT",
    "LABELS_ASSOCIATION",
    "CALL",
    "TYPEBOT_START",
    "TYPEBOT_CHANGE_STATUS",
    "REMOVE_INSTANCE",
    "LOGOUT_INSTANCE",
    "INSTANCE_CREATE",
    "INSTANCE_DELETE",
    "STATUS_INSTANCE",
];

pub(crate) fn router(state: Arc<SimState>) -> Router {
    let routes = Router::new()
        .route("/", get(welcome))
        .route("/instance/fetchInstances", get(fetch_instances))
        .route(
            "/instance/connectionState/{instance}",
            get(connection_state),
        )
        .route("/instance/connect/{instance}", get(connect))
        .route("/instance/logout/{instance}", delete(logout))
        .route("/instance/restart/{instance}", post(restart))
        .route("/webhook/set/{instance}", post(set_webhook))
        .route("/webhook/find/{instance}", get(find_webhook))
        .route("/message/sendText/{instance}", post(send_text))
        .route("/message/sendMedia/{instance}", post(send_media))
        .route("/chat/whatsappNumbers/{instance}", post(whatsapp_numbers))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(from_fn_with_state(state.clone(), guards));
    recording::recorded(routes, state)
}

// ---------------------------------------------------------------------------------------------
// Answers

/// `{status, error, response: {message}}`, Evolution's error handler in `main.ts`.
fn evo_error(status: StatusCode, message: Value) -> Response {
    let name = status.canonical_reason().unwrap_or("Error");
    (
        status,
        Json(json!({"status": status.as_u16(), "error": name, "response": {"message": message}})),
    )
        .into_response()
}

fn bad_request(messages: Vec<Value>) -> Response {
    evo_error(StatusCode::BAD_REQUEST, Value::Array(messages))
}

fn instance_not_found(name: &str) -> Response {
    evo_error(
        StatusCode::NOT_FOUND,
        json!([format!("The \"{name}\" instance does not exist")]),
    )
}

/// The guards of every router but `/`: the instance must exist (404), then the `apikey` must
/// be the global key or the instance's token (401), in upstream's order.
async fn guards(
    State(state): State<Arc<SimState>>,
    Extension(authorized): Extension<Authorized>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if path == "/" {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let instance = slot_from_request(state.kind(), &parts);
    let request = Request::from_parts(parts, body);
    if let Some(instance) = &instance
        && state.device(instance).is_none()
    {
        return instance_not_found(instance);
    }
    if !authorized.0 {
        return evo_error(StatusCode::UNAUTHORIZED, json!("Unauthorized"));
    }
    next.run(request).await
}

async fn not_found(method: Method, request: Request) -> Response {
    evo_error(
        StatusCode::NOT_FOUND,
        json!([format!("Cannot {method} {}", request.uri().path())]),
    )
}

fn json_body(body: &ParsedBody) -> Result<Value, Response> {
    match &body.kind {
        BodyKind::Json(value @ Value::Object(_)) => Ok(value.clone()),
        BodyKind::Json(_) | BodyKind::Form { .. } | BodyKind::Unsupported => {
            Ok(Value::Object(serde_json::Map::new()))
        }
        BodyKind::Invalid(message) => Err(evo_error(StatusCode::BAD_REQUEST, json!([message]))),
    }
}

// ---------------------------------------------------------------------------------------------
// Server and instances

/// `GET /`: the welcome page, Evolution's only unauthenticated health answer.
async fn welcome(State(state): State<Arc<SimState>>) -> Response {
    if state.faults().health_unhealthy {
        return proxy_page(StatusCode::SERVICE_UNAVAILABLE);
    }
    Json(json!({
        "status": 200,
        "message": "Welcome to the Evolution API, it is working!",
        "version": EVOLUTION_VERSION,
        "clientName": "evolution",
        "manager": format!("{}/manager", state.base_url()),
        "documentation": "https://doc.evolution-api.com",
    }))
    .into_response()
}

fn connection_state_of(device: &Device) -> Value {
    json!({"instance": {"instanceName": device.spec.id, "state": device.spec.state.evolution_state()}})
}

async fn connection_state(
    State(state): State<Arc<SimState>>,
    Path(name): Path<String>,
) -> Response {
    let device = state.device(&name).expect("guarded");
    Json(connection_state_of(&device)).into_response()
}

fn iso(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn instance_info(state: &SimState, device: &Device) -> Value {
    let open = device.spec.state == DeviceState::LoggedIn;
    json!({
        "id": device.extra.instance_id,
        "name": device.spec.id,
        "connectionStatus": device.spec.state.evolution_state(),
        "ownerJid": if open && !device.spec.jid.is_empty() { json!(device.spec.jid) } else { Value::Null },
        "profileName": if open { json!("Evolution") } else { Value::Null },
        "profilePicUrl": Value::Null,
        "integration": "WHATSAPP-BAILEYS",
        "number": Value::Null,
        "businessId": Value::Null,
        "token": state.config().device_key_of(&device.spec.id),
        "clientName": "evolution",
        "disconnectionReasonCode": if open { Value::Null } else { json!(401) },
        "disconnectionObject": Value::Null,
        "disconnectionAt": Value::Null,
        "createdAt": iso(device.created_at),
        "updatedAt": iso(OffsetDateTime::now_utc()),
    })
}

/// `GET /instance/fetchInstances[?instanceName=]`: every instance with the global key; with an
/// instance token, that instance only.
async fn fetch_instances(
    State(state): State<Arc<SimState>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let key = recording::header_text(&headers, "apikey").unwrap_or_default();
    let global = state
        .config()
        .api_key
        .as_ref()
        .is_none_or(|k| recording::constant_time_eq(k.as_bytes(), key.as_bytes()));
    let wanted = query.get("instanceName");
    let list: Vec<Value> = state
        .devices()
        .iter()
        .filter(|d| wanted.is_none_or(|w| *w == d.spec.id))
        .filter(|d| {
            global
                || recording::constant_time_eq(
                    state.config().device_key_of(&d.spec.id).as_bytes(),
                    key.as_bytes(),
                )
        })
        .map(|d| instance_info(&state, d))
        .collect();
    if list.is_empty() && !global {
        return evo_error(StatusCode::UNAUTHORIZED, json!("Unauthorized"));
    }
    Json(list).into_response()
}

/// The QR answer of `connect`: `{pairingCode, code, base64, count}`.
fn qrcode(link: &crate::state::PendingLink) -> Value {
    json!({
        "pairingCode": link.pairing_code,
        "code": link.qr,
        "base64": format!("data:image/png;base64,{}", STANDARD.encode(linking::qr_png(&link.qr))),
        "count": 1,
    })
}

/// `GET /instance/connect/{instance}[?number=]`: `open` answers its state; `connecting` the
/// QR it has; `close` starts connecting and answers a new QR (and a pairing code for
/// `number`).
async fn connect(
    State(state): State<Arc<SimState>>,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let device = state.device(&name).expect("guarded");
    let number = query
        .get("number")
        .map(|n| n.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|n| !n.is_empty());
    match device.spec.state {
        DeviceState::LoggedIn => Json(connection_state_of(&device)).into_response(),
        DeviceState::Connecting => {
            let link = state
                .update_device(&name, |d| {
                    d.extra
                        .link
                        .get_or_insert_with(|| linking::new_link(number.as_deref(), false))
                        .clone()
                })
                .expect("exists");
            Json(qrcode(&link)).into_response()
        }
        DeviceState::Disconnected | DeviceState::Connected | DeviceState::Failed => {
            let link = linking::new_link(number.as_deref(), false);
            state.update_device(&name, |d| {
                d.extra.link = Some(link.clone());
                d.set_state(DeviceState::Connecting);
            });
            events::schedule_status_change(&state, &name);
            Json(qrcode(&link)).into_response()
        }
    }
}

/// `DELETE /instance/logout/{instance}`: 400 when already `close`.
async fn logout(State(state): State<Arc<SimState>>, Path(name): Path<String>) -> Response {
    let device = state.device(&name).expect("guarded");
    if device.spec.state.evolution_state() == "close" {
        return bad_request(vec![json!(format!(
            "The \"{name}\" instance is not connected"
        ))]);
    }
    state.update_device(&name, |d| {
        d.spec.jid.clear();
        d.extra.link = None;
        d.set_state(DeviceState::Connected);
    });
    events::schedule_status_change(&state, &name);
    Json(json!({"status": "SUCCESS", "error": false, "response": {"message": "Instance logged out"}}))
        .into_response()
}

/// `POST /instance/restart/{instance}`: an `open` instance reconnects and stays open; a
/// `connecting` one gets a new QR; a `close` one answers its status.
async fn restart(State(state): State<Arc<SimState>>, Path(name): Path<String>) -> Response {
    let device = state.device(&name).expect("guarded");
    match device.spec.state {
        DeviceState::LoggedIn => Json(connection_state_of(&device)).into_response(),
        DeviceState::Connecting => {
            let link = linking::new_link(None, false);
            state.update_device(&name, |d| d.extra.link = Some(link.clone()));
            Json(qrcode(&link)).into_response()
        }
        _ => Json(json!({"instance": {"instanceName": name, "status": "close"}})).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook

/// `POST /webhook/set/{instance} {webhook: {enabled, url, headers?, byEvents?, base64?,
/// events?}}`: answers the stored row. A `jwt_key` header signs deliveries with a bearer JWT.
async fn set_webhook(
    State(state): State<Arc<SimState>>,
    Path(name): Path<String>,
    Extension(body): Extension<Arc<ParsedBody>>,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    if state.faults().device_webhook == Some(DeviceWebhookFault::Refuse) {
        return evo_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!(["Internal server error"]),
        );
    }
    let Some(webhook) = body.get("webhook").and_then(Value::as_object) else {
        return bad_request(vec![json!("requires property \"webhook\"")]);
    };
    let mut errors = Vec::new();
    let enabled = match webhook.get("enabled") {
        Some(Value::Bool(b)) => *b,
        _ => {
            errors.push(json!("webhook requires property \"enabled\" (boolean)"));
            false
        }
    };
    let url = webhook
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if enabled && reqwest::Url::parse(&url).is_err() {
        errors.push(json!("webhook.url is not a valid URL"));
    }
    let mut events: Vec<String> = Vec::new();
    match webhook.get("events") {
        None => {}
        Some(Value::Array(list)) => {
            for event in list {
                match event.as_str() {
                    Some(e) if EVENTS.contains(&e) => events.push(e.to_owned()),
                    _ => errors.push(json!(format!(
                        "webhook.events is not one of enum values: {}",
                        EVENTS.join(",")
                    ))),
                }
            }
        }
        Some(_) => errors.push(json!("webhook.events is not of a type(s) array")),
    }
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    match webhook.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                match v.as_str() {
                    Some(v) => {
                        headers.insert(k.clone(), v.to_owned());
                    }
                    None => errors.push(json!(format!(
                        "webhook.headers.{k} is not of a type(s) string"
                    ))),
                }
            }
        }
        Some(_) => errors.push(json!("webhook.headers is not of a type(s) object")),
    }
    if !errors.is_empty() {
        return bad_request(errors);
    }
    // set(): enabled with no events subscribes every event; disabled keeps none.
    if !enabled {
        events.clear();
    } else if events.is_empty() {
        events = EVENTS.iter().map(|e| (*e).to_owned()).collect();
    }
    let by_events = webhook
        .get("byEvents")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let base64 = webhook
        .get("base64")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let jwt_key = headers.remove("jwt_key").unwrap_or_default();
    let now = iso(OffsetDateTime::now_utc());
    let device = state.device(&name).expect("guarded");
    let mut echoed_headers = headers.clone();
    if !jwt_key.is_empty() {
        echoed_headers.insert("jwt_key".into(), jwt_key.clone());
    }
    let row = json!({
        "id": format!("cm{}", hex::encode(rand::random::<[u8; 11]>())),
        "url": url,
        "headers": echoed_headers,
        "enabled": enabled,
        "events": events,
        "webhookByEvents": by_events,
        "webhookBase64": base64,
        "createdAt": now,
        "updatedAt": now,
        "instanceId": device.extra.instance_id,
    });
    let hook = (enabled && !url.is_empty()).then(|| DeviceWebhook {
        url: url.clone(),
        secret: jwt_key,
        events: events.clone(),
        headers,
    });
    state.update_device(&name, |d| {
        d.spec.webhook = hook;
        d.extra.evolution_webhook = Some(row.clone());
    });
    (StatusCode::CREATED, Json(row)).into_response()
}

/// `GET /webhook/find/{instance}`: the stored row, or `null`.
async fn find_webhook(State(state): State<Arc<SimState>>, Path(name): Path<String>) -> Response {
    let device = state.device(&name).expect("guarded");
    let mut row = device.extra.evolution_webhook.unwrap_or(Value::Null);
    // The `device_webhook` fault: the row reads back with another URL or JWT key.
    if let Some(r) = row.as_object_mut() {
        match state.faults().device_webhook {
            Some(DeviceWebhookFault::OtherUrl) => {
                r.insert("url".into(), json!("https://elsewhere.example/hook"));
            }
            Some(DeviceWebhookFault::OtherSecret) => {
                r.insert("headers".into(), json!({"jwt_key": "not-yours"}));
            }
            _ => {}
        }
    }
    Json(row).into_response()
}

// ---------------------------------------------------------------------------------------------
// Sends

/// `createJid`: digits (with an optional `+`, spaces or dashes) or a user JID.
fn jid_of(number: &str) -> Option<String> {
    let user = number.split('@').next().unwrap_or(number);
    let digits: String = user.chars().filter(char::is_ascii_digit).collect();
    let clean = user
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'));
    ((5..=15).contains(&digits.len()) && clean).then(|| format!("{digits}@s.whatsapp.net"))
}

/// `quoted.key.id`, when a well-formed `quoted` was sent.
fn quoted_id(body: &Value) -> Result<Option<String>, Value> {
    match body.get("quoted") {
        None | Some(Value::Null) => Ok(None),
        Some(quoted) => match quoted
            .get("key")
            .and_then(|k| k.get("id"))
            .and_then(Value::as_str)
        {
            Some(id) if !id.is_empty() => Ok(Some(id.to_owned())),
            _ => Err(json!("quoted.key.id is required")),
        },
    }
}

async fn send_text(
    state: State<Arc<SimState>>,
    path: Path<String>,
    body: Extension<Arc<ParsedBody>>,
) -> Response {
    send(state, path, body, false).await
}

async fn send_media(
    state: State<Arc<SimState>>,
    path: Path<String>,
    body: Extension<Arc<ParsedBody>>,
) -> Response {
    send(state, path, body, true).await
}

async fn send(
    State(state): State<Arc<SimState>>,
    Path(name): Path<String>,
    Extension(body): Extension<Arc<ParsedBody>>,
    media: bool,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut errors = Vec::new();
    let number = body
        .get("number")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if number.is_none() {
        errors.push(json!("requires property \"number\""));
    }
    let text = body.get("text").and_then(Value::as_str).map(str::to_owned);
    if !media && text.as_deref().is_none_or(str::is_empty) {
        errors.push(json!("requires property \"text\""));
    }
    let mediatype = body
        .get("mediatype")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let media_value = body
        .get("media")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if media {
        if !matches!(
            mediatype.as_str(),
            "image" | "document" | "video" | "audio" | "ptv"
        ) {
            errors.push(json!(
                "mediatype is not one of enum values: image,document,video,audio,ptv"
            ));
        }
        if media_value.is_empty() {
            errors.push(json!("requires property \"media\""));
        } else if reqwest::Url::parse(&media_value).is_err()
            && STANDARD.decode(&media_value).is_err()
        {
            errors.push(json!("Owned media must be a url or base64"));
        }
        for field in ["caption", "fileName", "mimetype"] {
            if body.get(field).is_some_and(|v| !v.is_string()) {
                errors.push(json!(format!("{field} is not of a type(s) string")));
            }
        }
    }
    let quoted = match quoted_id(&body) {
        Ok(quoted) => quoted,
        Err(message) => {
            errors.push(message);
            None
        }
    };
    if !errors.is_empty() {
        return bad_request(errors);
    }
    let number = number.unwrap_or_default();
    let Some(jid) = jid_of(&number) else {
        return bad_request(vec![
            json!({"jid": number, "exists": false, "number": number}),
        ]);
    };
    let device = state.device(&name).expect("guarded");
    if device.spec.state != DeviceState::LoggedIn {
        return evo_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!(["Error: Connection Closed"]),
        );
    }
    if state.not_on_whatsapp(&jid) {
        let digits: String = jid.split('@').next().unwrap_or_default().to_owned();
        return bad_request(vec![json!({"jid": jid, "exists": false, "number": digits})]);
    }
    if let Some(code) = state.take_provider_error() {
        let message = match code.as_str() {
            "connection_closed" => "Error: Connection Closed".to_owned(),
            "rate_overlimit" => "Error: rate-overlimit".to_owned(),
            other => format!("gowa-sim: no Evolution error {other:?} (known: {PROVIDER_ERRORS:?})"),
        };
        return evo_error(StatusCode::INTERNAL_SERVER_ERROR, json!([message]));
    }
    if let Some(status) = state.take_send_error() {
        return injected_failure(status, state.faults().gateway_timeout()).await;
    }
    let id = format!("3EB0{}", hex::encode_upper(rand::random::<[u8; 9]>()));
    let sent = SentMessage {
        id: id.clone(),
        device_id: name.clone(),
        chat: jid.clone(),
        text: text.clone().filter(|_| !media),
        failure: state.take_delivery_failure(),
    };
    state.note_sent(sent.clone());
    events::schedule_receipts(&state, sent);

    let context_info = quoted.as_ref().map(|stanza| {
        let quoted_text = state
            .sent_message(stanza)
            .and_then(|m| m.text)
            .unwrap_or_default();
        json!({
            "stanzaId": stanza,
            "participant": jid,
            "quotedMessage": {"conversation": quoted_text},
        })
    });
    let (message, message_type) = if media {
        let key = match mediatype.as_str() {
            "image" => "imageMessage",
            "video" | "ptv" => "videoMessage",
            "audio" => "audioMessage",
            _ => "documentMessage",
        };
        let mut content = json!({
            "url": if media_value.starts_with("http") { json!(media_value) } else { Value::Null },
            "mimetype": body.get("mimetype").cloned().unwrap_or(json!("application/octet-stream")),
            "caption": body.get("caption").cloned().unwrap_or(Value::Null),
        });
        if key == "documentMessage" {
            content["fileName"] = body.get("fileName").cloned().unwrap_or(Value::Null);
        }
        if let Some(context) = &context_info {
            content["contextInfo"] = context.clone();
        }
        (json!({ key: content }), key)
    } else if let Some(context) = &context_info {
        (
            json!({"extendedTextMessage": {"text": text, "contextInfo": context}}),
            "extendedTextMessage",
        )
    } else {
        (json!({"conversation": text}), "conversation")
    };
    (
        StatusCode::CREATED,
        Json(json!({
            "key": {"remoteJid": jid, "fromMe": true, "id": id},
            "pushName": "",
            "status": "PENDING",
            "message": message,
            "contextInfo": context_info,
            "messageType": message_type,
            "messageTimestamp": OffsetDateTime::now_utc().unix_timestamp(),
            "instanceId": device.extra.instance_id,
            "source": "unknown",
        })),
    )
        .into_response()
}

async fn injected_failure(
    status: SendErrorStatus,
    gateway_timeout: std::time::Duration,
) -> Response {
    match status {
        // TooManyRequestsException through main.ts: its `message` is undefined, so the
        // handler writes "Internal Server Error".
        SendErrorStatus::TooManyRequests => evo_error(
            StatusCode::TOO_MANY_REQUESTS,
            json!("Internal Server Error"),
        ),
        SendErrorStatus::InternalServerError => evo_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!("Internal Server Error"),
        ),
        SendErrorStatus::BadGateway => proxy_page(StatusCode::BAD_GATEWAY),
        SendErrorStatus::ServiceUnavailable => proxy_page(StatusCode::SERVICE_UNAVAILABLE),
        SendErrorStatus::GatewayTimeout => {
            tokio::time::sleep(gateway_timeout).await;
            proxy_page(StatusCode::GATEWAY_TIMEOUT)
        }
    }
}

/// `POST /chat/whatsappNumbers/{instance} {numbers: [..]}` → `[{exists, jid, number}]`.
async fn whatsapp_numbers(
    State(state): State<Arc<SimState>>,
    Path(_name): Path<String>,
    Extension(body): Extension<Arc<ParsedBody>>,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(numbers) = body.get("numbers").and_then(Value::as_array) else {
        return bad_request(vec![json!("requires property \"numbers\"")]);
    };
    let answers: Vec<Value> = numbers
        .iter()
        .filter_map(Value::as_str)
        .map(|number| match jid_of(number) {
            Some(jid) => {
                let exists = !state.not_on_whatsapp(&jid);
                json!({"exists": exists, "jid": jid, "number": number})
            }
            None => json!({"exists": false, "jid": number, "number": number}),
        })
        .collect();
    Json(answers).into_response()
}
