//! Meta's WhatsApp Cloud API (Graph API): the routes a gateway uses.
//!
//! Sources: Meta's OpenAPI spec (`business-messaging-api_v23.0.yaml`: `sendMessage` at
//! `/{Version}/{Phone-Number-ID}/messages` with `Authorization: Bearer`, `getPhoneNumberById`,
//! `register`/`deregister`, `GraphAPIError`), Meta's docs on sending text, image and document
//! messages (`type` defaults to `text`; `context.message_id` replies), on error codes
//! (`meta_errors.rs`), on messaging health status (`GET /<PHONE_NUMBER_ID>?fields=health_status`
//! → `can_send_message` AVAILABLE | LIMITED | BLOCKED with `entities[]`) and the Graph API
//! reference of the WhatsApp Business Phone Number node (`status`, `platform_type`).

// Validation helpers return the kind's ready answer as their error (`Err(response)` is what
// the handler sends); a `Response` is large, boxing it would only add noise here.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::body::{BodyKind, ParsedBody};
use crate::config::DeviceState;
use crate::envelope::proxy_page;
use crate::events::{self, SentMessage};
use crate::faults::SendErrorStatus;
use crate::meta_errors::{self, graph_error};
use crate::outgoing::wamid;
use crate::recording::{self, Authorized};
use crate::state::{Device, MessagingHealth, SimState};

pub(crate) fn router(state: Arc<SimState>) -> Router {
    let routes = Router::new()
        .route("/{version}/{phone_number_id}", get(get_phone_number))
        .route("/{version}/{phone_number_id}/messages", post(send_message))
        .route("/{version}/{phone_number_id}/register", post(register))
        .route("/{version}/{phone_number_id}/deregister", post(deregister))
        .fallback(unknown_path)
        .method_not_allowed_fallback(unknown_path)
        .layer(from_fn_with_state(state.clone(), guards));
    recording::recorded(routes, state)
}

fn param_error(message: &str) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        100,
        None,
        &format!("(#100) {message}"),
        None,
    )
}

/// Graph's answer for a path it does not serve.
async fn unknown_path(request: Request) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        2500,
        None,
        &format!("Unknown path components: {}", request.uri().path()),
        None,
    )
}

/// The token (190 on a missing, unknown or expired one), the API version (`vN.M`) and the
/// phone number id (code 100, subcode 33 for an unknown one), in Graph's order.
async fn guards(
    State(state): State<Arc<SimState>>,
    Extension(authorized): Extension<Authorized>,
    request: Request,
    next: Next,
) -> Response {
    if !authorized.0 {
        return if state.faults().credentials_expired {
            meta_errors::expired_token()
        } else {
            meta_errors::invalid_token()
        };
    }
    let segments: Vec<String> = request
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(recording::percent_decode)
        .collect();
    if let Some(version) = segments.first() {
        let valid = version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(major, minor)| {
                !major.is_empty()
                    && !minor.is_empty()
                    && major.bytes().all(|b| b.is_ascii_digit())
                    && minor.bytes().all(|b| b.is_ascii_digit())
            });
        if !valid {
            return unknown_path(request).await;
        }
    }
    if let Some(id) = segments.get(1)
        && state.device(id).is_none()
    {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            Some(33),
            &format!(
                "Unsupported post request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
            ),
            None,
        );
    }
    next.run(request).await
}

fn json_body(body: &ParsedBody) -> Result<Value, Response> {
    match &body.kind {
        BodyKind::Json(value @ Value::Object(_)) => Ok(value.clone()),
        BodyKind::Form { fields, .. } => Ok(json!(fields)),
        BodyKind::Json(_) | BodyKind::Unsupported => Ok(Value::Object(serde_json::Map::new())),
        BodyKind::Invalid(_) => Err(param_error("Invalid JSON for postcard")),
    }
}

// ---------------------------------------------------------------------------------------------
// Phone number

const DEFAULT_FIELDS: &[&str] = &[
    "verified_name",
    "code_verification_status",
    "display_phone_number",
    "quality_rating",
];
const KNOWN_FIELDS: &[&str] = &[
    "id",
    "verified_name",
    "code_verification_status",
    "display_phone_number",
    "quality_rating",
    "name_status",
    "health_status",
    "status",
    "platform_type",
    "throughput",
    "messaging_limit_tier",
];

fn health_status(state: &SimState, device: &Device) -> Value {
    let health = device.extra.health;
    let mut phone = json!({"entity_type": "PHONE_NUMBER", "id": device.spec.id, "can_send_message": health.as_str()});
    match health {
        MessagingHealth::Available => {}
        MessagingHealth::Limited => {
            phone["additional_info"] = json!([
                "Your business phone number has reached its messaging limit. You can't start new conversations until the limit resets."
            ]);
        }
        MessagingHealth::Blocked => {
            phone["errors"] = json!([{
                "error_code": 141010,
                "error_description": "The phone number has been restricted from sending messages.",
                "possible_solution": "Check the Account Quality page in WhatsApp Manager."
            }]);
        }
    }
    json!({
        "can_send_message": health.as_str(),
        "entities": [
            phone,
            {"entity_type": "WABA", "id": state.config().waba_id, "can_send_message": "AVAILABLE"},
            {"entity_type": "BUSINESS", "id": "102289599326934", "can_send_message": "AVAILABLE"},
            {"entity_type": "APP", "id": "1200000000000000", "can_send_message": "AVAILABLE"},
        ],
    })
}

fn field_value(state: &SimState, device: &Device, field: &str) -> Value {
    let registered = device.spec.state == DeviceState::LoggedIn;
    match field {
        "id" => json!(device.spec.id),
        "verified_name" => json!("Wagate Demo"),
        "code_verification_status" => json!("VERIFIED"),
        "display_phone_number" => json!(format!("+{}", device.number())),
        "quality_rating" => json!("GREEN"),
        "name_status" => json!("APPROVED"),
        "health_status" => health_status(state, device),
        "status" => json!(if registered { "CONNECTED" } else { "PENDING" }),
        "platform_type" => json!(if registered {
            "CLOUD_API"
        } else {
            "NOT_APPLICABLE"
        }),
        "throughput" => json!({"level": "STANDARD"}),
        "messaging_limit_tier" => json!("TIER_1K"),
        _ => Value::Null,
    }
}

/// `GET /{Version}/{Phone-Number-ID}[?fields=a,b]`: the default fields, or the requested ones
/// (with `id`).
async fn get_phone_number(
    State(state): State<Arc<SimState>>,
    Path((_version, id)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if state.faults().health_unhealthy {
        let entry = meta_errors::lookup("131016").expect("131016 is catalogued");
        return meta_errors::answer(entry);
    }
    let device = state.device(&id).expect("guarded");
    let fields: Vec<String> = match query.get("fields") {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
        None => DEFAULT_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
    };
    if let Some(unknown) = fields.iter().find(|f| !KNOWN_FIELDS.contains(&f.as_str())) {
        return param_error(&format!(
            "Tried accessing nonexisting field ({unknown}) on node type (WhatsAppBusinessPhoneNumber)"
        ));
    }
    let mut body = serde_json::Map::new();
    for field in &fields {
        body.insert(field.clone(), field_value(&state, &device, field));
    }
    body.insert("id".into(), json!(device.spec.id));
    Json(Value::Object(body)).into_response()
}

/// `POST /{Version}/{Phone-Number-ID}/register {messaging_product, pin}` → `{success: true}`.
async fn register(
    State(state): State<Arc<SimState>>,
    Path((_version, id)): Path<(String, String)>,
    Extension(body): Extension<Arc<ParsedBody>>,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return param_error("The parameter messaging_product is required.");
    }
    let pin_ok = body
        .get("pin")
        .and_then(Value::as_str)
        .is_some_and(|p| p.len() == 6 && p.bytes().all(|b| b.is_ascii_digit()));
    if !pin_ok {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "Invalid PIN format. PIN must be exactly 6 digits",
            None,
        );
    }
    if let Some(code) = state.take_provider_error()
        && let Some(entry) = meta_errors::lookup(&code)
    {
        return meta_errors::answer(entry);
    }
    state.update_device(&id, |d| d.set_state(DeviceState::LoggedIn));
    Json(json!({"success": true})).into_response()
}

/// `POST /{Version}/{Phone-Number-ID}/deregister` → `{success: true}`.
async fn deregister(
    State(state): State<Arc<SimState>>,
    Path((_version, id)): Path<(String, String)>,
) -> Response {
    state.update_device(&id, |d| d.set_state(DeviceState::Disconnected));
    Json(json!({"success": true})).into_response()
}

// ---------------------------------------------------------------------------------------------
// Messages

struct MetaSend {
    to: String,
    text: Option<String>,
}

/// Meta's checks of a message body, each a code-100 answer.
fn validate(body: &Value) -> Result<MetaSend, Response> {
    match body.get("messaging_product").and_then(Value::as_str) {
        None => return Err(param_error("The parameter messaging_product is required.")),
        Some("whatsapp") => {}
        Some(other) => {
            return Err(param_error(&format!(
                "Param messaging_product must be one of {{WHATSAPP}} - got \"{other}\"."
            )));
        }
    }
    if let Some(kind) = body.get("recipient_type")
        && !matches!(kind.as_str(), Some("individual" | "group"))
    {
        return Err(param_error(
            "Param recipient_type must be one of {INDIVIDUAL, GROUP}.",
        ));
    }
    let Some(to) = body
        .get("to")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
    else {
        return Err(param_error("The parameter to is required."));
    };
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("text");
    let text = match kind {
        "text" => {
            let text = body
                .get("text")
                .and_then(|t| t.get("body"))
                .and_then(Value::as_str)
                .filter(|b| !b.is_empty());
            match text {
                Some(text) => Some(text.to_owned()),
                None => return Err(param_error("The parameter text['body'] is required.")),
            }
        }
        "image" | "document" => {
            let media = body.get(kind);
            let has = |key: &str| {
                media
                    .and_then(|m| m.get(key))
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty())
            };
            if !has("link") && !has("id") {
                return Err(param_error(&format!(
                    "Param {kind} must contain one of {{id, link}}."
                )));
            }
            if let Some(link) = media.and_then(|m| m.get("link")).and_then(Value::as_str)
                && !matches!(
                    reqwest::Url::parse(link)
                        .map(|u| u.scheme().to_owned())
                        .as_deref(),
                    Ok("http" | "https")
                )
            {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    131009,
                    None,
                    "(#131009) Parameter value is not valid",
                    Some(&format!("{kind}.link must be an http(s) URL")),
                ));
            }
            None
        }
        "audio" | "video" | "sticker" | "location" | "contacts" | "interactive" | "template"
        | "reaction" => {
            return Err(graph_error(
                StatusCode::BAD_REQUEST,
                131051,
                None,
                "(#131051) Unsupported message type",
                Some(&format!(
                    "The simulator serves text, image and document messages, not {kind}."
                )),
            ));
        }
        other => {
            return Err(param_error(&format!(
                "Param type must be one of {{AUDIO, CONTACTS, DOCUMENT, IMAGE, INTERACTIVE, LOCATION, REACTION, STICKER, TEMPLATE, TEXT, VIDEO}} - got \"{other}\"."
            )));
        }
    };
    if let Some(context) = body.get("context")
        && !context.get("message_id").is_some_and(Value::is_string)
    {
        return Err(param_error(
            "The parameter context['message_id'] is required.",
        ));
    }
    Ok(MetaSend {
        to: to.to_owned(),
        text,
    })
}

/// `POST /{Version}/{Phone-Number-ID}/messages`.
async fn send_message(
    State(state): State<Arc<SimState>>,
    Path((_version, id)): Path<(String, String)>,
    Extension(body): Extension<Arc<ParsedBody>>,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request = match validate(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let device = state.device(&id).expect("guarded");
    let digits: String = request.to.chars().filter(char::is_ascii_digit).collect();
    let clean = request
        .to
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'));
    if !clean || !(5..=15).contains(&digits.len()) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            131009,
            None,
            "(#131009) Parameter value is not valid",
            Some("to must be a phone number in international format"),
        );
    }
    if device.spec.state != DeviceState::LoggedIn {
        let entry = meta_errors::lookup("133010").expect("133010 is catalogued");
        return meta_errors::answer(entry);
    }
    if device.extra.health == MessagingHealth::Blocked {
        let entry = meta_errors::lookup("131031").expect("131031 is catalogued");
        return meta_errors::answer(entry);
    }
    if digits == device.number() {
        let entry = meta_errors::lookup("131021").expect("131021 is catalogued");
        return meta_errors::answer(entry);
    }
    if let Some(code) = state.take_provider_error() {
        return match meta_errors::lookup(&code) {
            Some(entry) => meta_errors::answer(entry),
            None => graph_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                1,
                None,
                &format!("gowa-sim: no Meta error code {code:?} in the simulator's catalogue"),
                None,
            ),
        };
    }
    if let Some(status) = state.take_send_error() {
        return injected_failure(status, state.faults().gateway_timeout()).await;
    }
    let message_id = wamid(&digits);
    let chat = format!("{digits}@s.whatsapp.net");
    // A number not on WhatsApp is accepted, then reported failed with 131026.
    let failure = if state.not_on_whatsapp(&chat) {
        Some("131026".to_owned())
    } else {
        state.take_delivery_failure()
    };
    let sent = SentMessage {
        id: message_id.clone(),
        device_id: id,
        chat,
        text: request.text,
        failure,
    };
    state.note_sent(sent.clone());
    events::schedule_receipts(&state, sent);
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": request.to, "wa_id": digits}],
        "messages": [{"id": message_id}],
    }))
    .into_response()
}

async fn injected_failure(
    status: SendErrorStatus,
    gateway_timeout: std::time::Duration,
) -> Response {
    let entry = |code: &str| meta_errors::lookup(code).expect("catalogued");
    match status {
        SendErrorStatus::TooManyRequests => {
            let e = entry("130429");
            graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                e.code,
                None,
                &format!("(#{}) {}", e.code, e.title),
                Some(e.details),
            )
        }
        SendErrorStatus::InternalServerError => meta_errors::answer(entry("131000")),
        SendErrorStatus::ServiceUnavailable => meta_errors::answer(entry("131016")),
        SendErrorStatus::BadGateway => proxy_page(StatusCode::BAD_GATEWAY),
        SendErrorStatus::GatewayTimeout => {
            tokio::time::sleep(gateway_timeout).await;
            proxy_page(StatusCode::GATEWAY_TIMEOUT)
        }
    }
}
