//! WAHA (devlikeapro/waha, Plus tier, GOWS engine): the routes a gateway uses.
//!
//! Sources: waha-docs `content/docs/how-to/{send-messages,sessions,events,security,
//! observability}/index.md`; waha `src/api/{auth,health}.controller.ts`,
//! `src/structures/{chatting,files}.dto.ts`, `src/nestjs/pipes/SessionPipe.ts` (sends need a
//! `WORKING` session, the QR a `SCAN_QR_CODE` one), `src/core/abc/manager.abc.ts`
//! (`waitUntilStatus`: 422 with `{error, session, status, expected}`),
//! `src/api/exception.filter.ts` (engine errors become 500 `{statusCode, timestamp, path,
//! error, stack}`), `src/core/engines/gows/session.gows.core.ts` (`messageResponse`: `{id:
//! "true_<chat>_<ID>", _data}`). Errors of NestJS itself are `{message, error?, statusCode}`.

// Validation helpers return the kind's ready answer as their error (`Err(response)` is what
// the handler sends); a `Response` is large, boxing it would only add noise here.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::body::{BodyKind, ParsedBody};
use crate::config::{DeviceSpec, DeviceState, DeviceWebhook};
use crate::envelope::proxy_page;
use crate::events::{self, SentMessage};
use crate::faults::{DeviceWebhookFault, SendErrorStatus};
use crate::linking;
use crate::outgoing::c_us;
use crate::recording::{self, Authorized};
use crate::state::{Device, SimState};

/// WAHA's error answers for the `provider_error` fault: WhatsApp's server errors surfaced by
/// the engine (500 through the exception filter). `463`: reachout timelock (messaging new
/// contacts restricted); `475`: message capping (new-contact quota used up).
pub(crate) const PROVIDER_ERRORS: &[&str] = &["463", "475"];

pub(crate) fn router(state: Arc<SimState>) -> Router {
    let routes = Router::new()
        .route("/health", get(health))
        .route("/ping", get(ping))
        .route("/api/sessions", get(list_sessions).post(create_session))
        .route(
            "/api/sessions/{session}",
            get(get_session).put(update_session).delete(delete_session),
        )
        .route("/api/sessions/{session}/me", get(get_me))
        .route("/api/sessions/{session}/start", post(start_session))
        .route("/api/sessions/{session}/stop", post(stop_session))
        .route("/api/sessions/{session}/restart", post(restart_session))
        .route("/api/sessions/{session}/logout", post(logout_session))
        .route("/api/{session}/auth/qr", get(get_qr))
        .route("/api/{session}/auth/request-code", post(request_code))
        .route("/api/sendText", post(send_text))
        .route("/api/sendImage", post(send_image))
        .route("/api/sendFile", post(send_file))
        .route("/api/contacts/check-exists", get(check_exists))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(from_fn_with_state(state.clone(), require_api_key));
    recording::recorded(routes, state)
}

// ---------------------------------------------------------------------------------------------
// Answers

/// NestJS's `HttpException` body: `{message, error?, statusCode}`.
fn nest(status: StatusCode, message: Value, error: Option<&str>) -> Response {
    let mut body = serde_json::Map::new();
    body.insert("message".into(), message);
    if let Some(error) = error {
        body.insert("error".into(), json!(error));
    }
    body.insert("statusCode".into(), json!(status.as_u16()));
    (status, Json(Value::Object(body))).into_response()
}

/// 400 from class-validator: `{"message": [..], "error": "Bad Request", "statusCode": 400}`.
fn bad_request(messages: Vec<String>) -> Response {
    nest(
        StatusCode::BAD_REQUEST,
        json!(messages),
        Some("Bad Request"),
    )
}

fn session_not_found(name: &str) -> Response {
    nest(
        StatusCode::NOT_FOUND,
        json!(format!(
            "We didn't find a session with name '{name}'. Please start it first by using POST /api/sessions/{name}/start request"
        )),
        Some("Not Found"),
    )
}

/// 422 of `waitUntilStatus`: the session is not in an expected status.
fn unexpected_status(device: &Device, expected: &[&str]) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "error": "Session status is not as expected. Try again later or restart the session",
            "session": device.spec.id,
            "status": device.spec.state.waha_status(),
            "expected": expected,
        })),
    )
        .into_response()
}

/// 500 of the exception filter for an engine error.
fn engine_error(path: &str, message: &str) -> Response {
    let timestamp = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({
            "statusCode": 500,
            "timestamp": timestamp,
            "path": path,
            "error": message,
            "stack": format!("Error: {message}\n    at GowsEngine.sendMessage (/app/dist/core/engines/gows/session.gows.core.js:1:1)"),
        })),
    )
        .into_response()
}

async fn require_api_key(
    Extension(authorized): Extension<Authorized>,
    request: Request,
    next: Next,
) -> Response {
    if authorized.0 {
        next.run(request).await
    } else {
        // waha-docs security: `{"message":"Unauthorized","statusCode":401}`.
        nest(StatusCode::UNAUTHORIZED, json!("Unauthorized"), None)
    }
}

async fn not_found(method: Method, request: Request) -> Response {
    nest(
        StatusCode::NOT_FOUND,
        json!(format!("Cannot {method} {}", request.uri().path())),
        Some("Not Found"),
    )
}

// ---------------------------------------------------------------------------------------------
// Server

/// `GET /health` (WAHA Plus; @nestjs/terminus): 200 `status: ok`, or 503 `status: error`.
async fn health(State(state): State<Arc<SimState>>) -> Response {
    let space = json!({"status": "up", "path": "/tmp/whatsapp-files", "diskPath": "/", "free": 132_979_355_648u64, "threshold": 104_857_600});
    if state.faults().health_unhealthy {
        let down = json!({"status": "down", "error": "Timeout"});
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "error",
                "info": {"mediaFiles.space": space},
                "error": {"mongodb": down},
                "details": {"mediaFiles.space": space, "mongodb": down},
            })),
        )
            .into_response();
    }
    Json(json!({
        "status": "ok",
        "info": {"mediaFiles.space": space, "sessionsFiles.space": space},
        "error": {},
        "details": {"mediaFiles.space": space, "sessionsFiles.space": space},
    }))
    .into_response()
}

async fn ping() -> Response {
    Json(json!({"message": "pong"})).into_response()
}

// ---------------------------------------------------------------------------------------------
// Sessions

fn me_of(device: &Device) -> Value {
    if device.spec.state == DeviceState::LoggedIn && !device.spec.jid.is_empty() {
        json!({"id": c_us(&device.spec.jid), "pushName": "WAHA"})
    } else {
        Value::Null
    }
}

/// `SessionInfo`: `{name, status, config, me, engine}`.
fn session_info(device: &Device) -> Value {
    json!({
        "name": device.spec.id,
        "status": device.spec.state.waha_status(),
        "config": device.extra.waha_config.clone().unwrap_or(Value::Null),
        "me": me_of(device),
        "engine": {"engine": "GOWS"},
    })
}

async fn list_sessions(
    State(state): State<Arc<SimState>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let all = query.get("all").is_some_and(|v| v == "true");
    let sessions: Vec<Value> = state
        .devices()
        .iter()
        .filter(|d| all || d.spec.state != DeviceState::Disconnected)
        .map(session_info)
        .collect();
    Json(sessions).into_response()
}

async fn get_session(State(state): State<Arc<SimState>>, Path(name): Path<String>) -> Response {
    match state.device(&name) {
        Some(device) => {
            let mut info = session_info(&device);
            // The `device_webhook` fault: the first webhook reads back with another URL or key.
            if let Some(hook) = info
                .pointer_mut("/config/webhooks/0")
                .and_then(Value::as_object_mut)
            {
                match state.faults().device_webhook {
                    Some(DeviceWebhookFault::OtherUrl) => {
                        hook.insert("url".into(), json!("https://elsewhere.example/hook"));
                    }
                    Some(DeviceWebhookFault::OtherSecret) => {
                        hook.insert("hmac".into(), json!({"key": "not-yours"}));
                    }
                    _ => {}
                }
            }
            Json(info).into_response()
        }
        None => session_not_found(&name),
    }
}

async fn get_me(State(state): State<Arc<SimState>>, Path(name): Path<String>) -> Response {
    match state.device(&name) {
        Some(device) => Json(me_of(&device)).into_response(),
        None => session_not_found(&name),
    }
}

/// Reads `config.webhooks[]` of a session body into webhooks, or the validation messages.
fn parse_webhooks(config: &Value) -> Result<Vec<DeviceWebhook>, Vec<String>> {
    let Some(list) = config.get("webhooks") else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_array() else {
        return Err(vec!["config.webhooks must be an array".to_owned()]);
    };
    let mut errors = Vec::new();
    let mut webhooks = Vec::new();
    for (i, hook) in list.iter().enumerate() {
        let url = hook.get("url").and_then(Value::as_str).unwrap_or_default();
        if url.is_empty() || reqwest::Url::parse(url).is_err() {
            errors.push(format!("config.webhooks.{i}.url must be a URL address"));
            continue;
        }
        let events: Vec<String> = match hook.get("events") {
            Some(Value::Array(events)) => events
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            None => Vec::new(),
            Some(_) => {
                errors.push(format!("config.webhooks.{i}.events must be an array"));
                continue;
            }
        };
        if events.is_empty() {
            errors.push(format!("config.webhooks.{i}.events should not be empty"));
            continue;
        }
        let secret = hook
            .get("hmac")
            .and_then(|h| h.get("key"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let headers = hook
            .get("customHeaders")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|h| {
                        Some((
                            h.get("name")?.as_str()?.to_owned(),
                            h.get("value")?.as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        webhooks.push(DeviceWebhook {
            url: url.to_owned(),
            secret,
            events,
            headers,
        });
    }
    if errors.is_empty() {
        Ok(webhooks)
    } else {
        Err(errors)
    }
}

/// The config as WAHA echoes it: the webhooks with their optional parts spelled out.
fn echoed_config(config: &Value) -> Value {
    let mut config = config.clone();
    if let Some(hooks) = config.get_mut("webhooks").and_then(Value::as_array_mut) {
        for hook in hooks {
            for key in ["hmac", "retries", "customHeaders"] {
                if hook.get(key).is_none() {
                    hook[key] = Value::Null;
                }
            }
        }
    }
    if config.get("proxy").is_none() {
        config["proxy"] = Value::Null;
    }
    if config.get("debug").is_none() {
        config["debug"] = json!(false);
    }
    config
}

fn json_body(body: &ParsedBody) -> Result<Value, Response> {
    match &body.kind {
        BodyKind::Json(value @ Value::Object(_)) => Ok(value.clone()),
        BodyKind::Json(_) | BodyKind::Form { .. } | BodyKind::Unsupported => {
            Ok(Value::Object(serde_json::Map::new()))
        }
        BodyKind::Invalid(message) => Err(nest(
            StatusCode::BAD_REQUEST,
            json!(message),
            Some("Bad Request"),
        )),
    }
}

fn apply_config(state: &SimState, name: &str, config: Option<&Value>) -> Result<(), Response> {
    let webhooks = match config {
        Some(config) => parse_webhooks(config).map_err(bad_request)?,
        None => Vec::new(),
    };
    state.update_device(name, |device| {
        device.extra.waha_config = config.map(echoed_config);
        device.spec.webhook = webhooks.first().cloned();
        device.extra.waha_webhooks = webhooks;
    });
    Ok(())
}

/// Starting a session: one with an account (a JID, kept until logout) comes back `WORKING`,
/// one without asks for a QR (`SCAN_QR_CODE`).
fn start(state: &Arc<SimState>, name: &str) {
    state.update_device(name, |device| {
        let next = if device.spec.jid.is_empty() {
            DeviceState::Connected
        } else {
            DeviceState::LoggedIn
        };
        device.set_state(next);
    });
    events::schedule_status_change(state, name);
}

async fn create_session(
    State(state): State<Arc<SimState>>,
    Extension(body): Extension<Arc<ParsedBody>>,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("session_{}", hex::encode(rand::random::<[u8; 4]>())));
    if state.device(&name).is_some() {
        return nest(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!(format!(
                "Session '{name}' already exists. Use PUT to update it."
            )),
            Some("Unprocessable Entity"),
        );
    }
    let config = body.get("config").filter(|c| !c.is_null());
    if let Some(config) = config
        && let Err(errors) = parse_webhooks(config)
    {
        return bad_request(errors);
    }
    state.add_device(DeviceSpec::new(name.clone(), "", DeviceState::Disconnected));
    if let Err(response) = apply_config(&state, &name, config) {
        return response;
    }
    let start_now = body.get("start").and_then(Value::as_bool).unwrap_or(true);
    if start_now {
        start(&state, &name);
    }
    let device = state.device(&name).expect("just created");
    (StatusCode::CREATED, Json(session_info(&device))).into_response()
}

async fn update_session(
    State(state): State<Arc<SimState>>,
    Path(name): Path<String>,
    Extension(body): Extension<Arc<ParsedBody>>,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(device) = state.device(&name) else {
        return session_not_found(&name);
    };
    if state.faults().device_webhook == Some(DeviceWebhookFault::Refuse) {
        return nest(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!("Internal server error"),
            None,
        );
    }
    if let Err(response) = apply_config(&state, &name, body.get("config").filter(|c| !c.is_null()))
    {
        return response;
    }
    // "If the session not in STOPPED status, it'll be stopped and started with a new
    // configuration."
    if device.spec.state != DeviceState::Disconnected {
        start(&state, &name);
    }
    Json(session_info(&state.device(&name).expect("exists"))).into_response()
}

async fn delete_session(State(state): State<Arc<SimState>>, Path(name): Path<String>) -> Response {
    state.remove_device(&name);
    StatusCode::OK.into_response()
}

async fn start_session(State(state): State<Arc<SimState>>, Path(name): Path<String>) -> Response {
    let Some(device) = state.device(&name) else {
        return session_not_found(&name);
    };
    if device.spec.state == DeviceState::Disconnected || device.spec.state == DeviceState::Failed {
        start(&state, &name);
    }
    Json(session_info(&state.device(&name).expect("exists"))).into_response()
}

async fn stop_session(State(state): State<Arc<SimState>>, Path(name): Path<String>) -> Response {
    if state
        .update_device(&name, |d| d.set_state(DeviceState::Disconnected))
        .is_none()
    {
        return session_not_found(&name);
    }
    events::schedule_status_change(&state, &name);
    Json(session_info(&state.device(&name).expect("exists"))).into_response()
}

async fn restart_session(State(state): State<Arc<SimState>>, Path(name): Path<String>) -> Response {
    if state.device(&name).is_none() {
        return session_not_found(&name);
    }
    start(&state, &name);
    Json(session_info(&state.device(&name).expect("exists"))).into_response()
}

/// "Log out removes session information (authentication info and data), but keeps the
/// session's configuration"; a running session starts again from scratch (`SCAN_QR_CODE`).
async fn logout_session(State(state): State<Arc<SimState>>, Path(name): Path<String>) -> Response {
    let found = state.update_device(&name, |device| {
        device.spec.jid.clear();
        device.extra.link = None;
        let next = if device.spec.state == DeviceState::Disconnected {
            DeviceState::Disconnected
        } else {
            DeviceState::Connected
        };
        device.set_state(next);
    });
    if found.is_none() {
        return session_not_found(&name);
    }
    events::schedule_status_change(&state, &name);
    Json(session_info(&state.device(&name).expect("exists"))).into_response()
}

// ---------------------------------------------------------------------------------------------
// Device linking

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"))
}

/// `GET /api/{session}/auth/qr[?format=image|raw]`: the PNG, `{mimetype, data}` with
/// `Accept: application/json`, or `{value}` for `raw`. Only in `SCAN_QR_CODE`.
async fn get_qr(
    State(state): State<Arc<SimState>>,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(device) = state.device(&name) else {
        return session_not_found(&name);
    };
    if device.spec.state != DeviceState::Connected {
        return unexpected_status(&device, &["SCAN_QR_CODE"]);
    }
    let link = state
        .update_device(&name, |d| {
            d.extra
                .link
                .get_or_insert_with(|| linking::new_link(None, true))
                .clone()
        })
        .expect("exists");
    match query.get("format").map(String::as_str) {
        Some("raw") => return Json(json!({"value": link.qr})).into_response(),
        None | Some("image") => {}
        Some(other) => {
            return bad_request(vec![format!(
                "format must be one of the following values: image, raw (got {other})"
            )]);
        }
    }
    let png = linking::qr_png(&link.qr);
    if wants_json(&headers) {
        return Json(json!({"mimetype": "image/png", "data": STANDARD.encode(&png)}))
            .into_response();
    }
    let mut response = (StatusCode::OK, png).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    response
}

/// `POST /api/{session}/auth/request-code {phoneNumber}` → `{code: "ABCD-EFGH"}`.
async fn request_code(
    State(state): State<Arc<SimState>>,
    Path(name): Path<String>,
    Extension(body): Extension<Arc<ParsedBody>>,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(device) = state.device(&name) else {
        return session_not_found(&name);
    };
    let phone = body
        .get("phoneNumber")
        .and_then(Value::as_str)
        .map(|p| p.chars().filter(char::is_ascii_digit).collect::<String>())
        .unwrap_or_default();
    if !(5..=15).contains(&phone.len()) {
        return bad_request(vec!["phoneNumber must be a string".to_owned()]);
    }
    if device.spec.state != DeviceState::Connected {
        return unexpected_status(&device, &["SCAN_QR_CODE"]);
    }
    let link = linking::new_link(Some(&phone), true);
    let code = link.pairing_code.clone().unwrap_or_default();
    state.update_device(&name, |d| d.extra.link = Some(link));
    Json(json!({"code": code})).into_response()
}

// ---------------------------------------------------------------------------------------------
// Sends

enum SendKind {
    Text,
    Image,
    File,
}

/// The validated parts of a send.
struct WahaSend {
    session: String,
    chat: String,
    text: Option<String>,
}

fn validate_send(body: &Value, kind: &SendKind) -> Result<WahaSend, Response> {
    let mut errors = Vec::new();
    let session = match body.get("session") {
        None => "default".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            errors.push("session must be a string".to_owned());
            String::new()
        }
    };
    let chat = match body.get("chatId") {
        Some(Value::String(c)) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => {
            errors.push("chatId must be a string".to_owned());
            String::new()
        }
    };
    let text = match kind {
        SendKind::Text => match body.get("text") {
            Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
            _ => {
                errors.push("text must be a string".to_owned());
                None
            }
        },
        SendKind::Image | SendKind::File => {
            match body.get("file") {
                Some(Value::Object(file)) => {
                    let has_url = file
                        .get("url")
                        .and_then(Value::as_str)
                        .is_some_and(|u| !u.is_empty());
                    let has_data = file
                        .get("data")
                        .and_then(Value::as_str)
                        .is_some_and(|d| !d.is_empty());
                    if !has_url && !has_data {
                        errors.push("file.url or file.data must be provided".to_owned());
                    }
                    if let Some(url) = file.get("url").and_then(Value::as_str)
                        && !url.is_empty()
                        && reqwest::Url::parse(url).is_err()
                    {
                        errors.push("file.url must be a URL address".to_owned());
                    }
                    if !file.get("mimetype").is_some_and(Value::is_string) {
                        errors.push("file.mimetype must be a string".to_owned());
                    }
                }
                _ => errors.push("file must be an object".to_owned()),
            }
            if let Some(caption) = body.get("caption")
                && !caption.is_string()
                && !caption.is_null()
            {
                errors.push("caption must be a string".to_owned());
            }
            None
        }
    };
    if let Some(reply) = body.get("reply_to")
        && !reply.is_string()
        && !reply.is_null()
    {
        errors.push("reply_to must be a string".to_owned());
    }
    if !errors.is_empty() {
        return Err(bad_request(errors));
    }
    Ok(WahaSend {
        session,
        chat,
        text,
    })
}

/// `<digits>@c.us` (also `@s.whatsapp.net`, or bare digits that WAHA completes), or a
/// validation error.
fn recipient(chat: &str) -> Result<String, Response> {
    let (user, server) = chat.split_once('@').unwrap_or((chat, "c.us"));
    let ok_server = matches!(server, "c.us" | "s.whatsapp.net");
    let ok_user = (5..=15).contains(&user.len()) && user.bytes().all(|b| b.is_ascii_digit());
    if ok_server && ok_user {
        Ok(format!("{user}@s.whatsapp.net"))
    } else {
        Err(bad_request(vec![format!(
            "chatId must be a phone number chat id like 11111111111@c.us, not {chat}"
        )]))
    }
}

async fn send_text(state: State<Arc<SimState>>, body: Extension<Arc<ParsedBody>>) -> Response {
    send(state, body, SendKind::Text, "/api/sendText").await
}

async fn send_image(state: State<Arc<SimState>>, body: Extension<Arc<ParsedBody>>) -> Response {
    send(state, body, SendKind::Image, "/api/sendImage").await
}

async fn send_file(state: State<Arc<SimState>>, body: Extension<Arc<ParsedBody>>) -> Response {
    send(state, body, SendKind::File, "/api/sendFile").await
}

async fn send(
    State(state): State<Arc<SimState>>,
    Extension(body): Extension<Arc<ParsedBody>>,
    kind: SendKind,
    path: &str,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request = match validate_send(&body, &kind) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let Some(device) = state.device(&request.session) else {
        return session_not_found(&request.session);
    };
    if device.spec.state != DeviceState::LoggedIn {
        return unexpected_status(&device, &["WORKING"]);
    }
    let chat = match recipient(&request.chat) {
        Ok(chat) => chat,
        Err(response) => return response,
    };
    if let Some(code) = state.take_provider_error() {
        return if PROVIDER_ERRORS.contains(&code.as_str()) {
            engine_error(path, &format!("server returned error {code}"))
        } else {
            engine_error(
                path,
                &format!("gowa-sim: no WAHA error {code:?} (known: {PROVIDER_ERRORS:?})"),
            )
        };
    }
    if let Some(status) = state.take_send_error() {
        return injected_failure(status, state.faults().gateway_timeout(), path).await;
    }
    let raw_id = format!("3EB0{}", hex::encode_upper(rand::random::<[u8; 9]>()));
    let id = format!("true_{}_{raw_id}", c_us(&chat));
    // A number not on WhatsApp is accepted, then acknowledged with ERROR.
    let failure = if state.not_on_whatsapp(&chat) {
        Some(String::new())
    } else {
        state.take_delivery_failure()
    };
    let sent = SentMessage {
        id: id.clone(),
        device_id: device.spec.id.clone(),
        chat: chat.clone(),
        text: request.text.clone(),
        failure,
    };
    state.note_sent(sent.clone());
    events::schedule_receipts(&state, sent);
    let message = match kind {
        SendKind::Text => json!({"conversation": request.text}),
        SendKind::Image => {
            json!({"imageMessage": {"caption": body.get("caption"), "mimetype": body["file"].get("mimetype")}})
        }
        SendKind::File => {
            json!({"documentMessage": {"caption": body.get("caption"), "fileName": body["file"].get("filename"), "mimetype": body["file"].get("mimetype")}})
        }
    };
    let timestamp = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    (
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "_data": {
                "Info": {"ID": raw_id, "Chat": chat, "IsFromMe": true, "Timestamp": timestamp},
                "Message": message,
            },
        })),
    )
        .into_response()
}

async fn injected_failure(
    status: SendErrorStatus,
    gateway_timeout: std::time::Duration,
    path: &str,
) -> Response {
    match status {
        // No rate limiter in WAHA itself: a NestJS throttler in front answers this.
        SendErrorStatus::TooManyRequests => nest(
            StatusCode::TOO_MANY_REQUESTS,
            json!("ThrottlerException: Too Many Requests"),
            None,
        ),
        SendErrorStatus::InternalServerError => engine_error(path, "server returned error 500"),
        SendErrorStatus::BadGateway => proxy_page(StatusCode::BAD_GATEWAY),
        SendErrorStatus::ServiceUnavailable => proxy_page(StatusCode::SERVICE_UNAVAILABLE),
        SendErrorStatus::GatewayTimeout => {
            tokio::time::sleep(gateway_timeout).await;
            proxy_page(StatusCode::GATEWAY_TIMEOUT)
        }
    }
}

/// `GET /api/contacts/check-exists?phone=&session=` → `{numberExists, chatId?}`.
async fn check_exists(
    State(state): State<Arc<SimState>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let session = query
        .get("session")
        .cloned()
        .unwrap_or_else(|| "default".to_owned());
    let Some(device) = state.device(&session) else {
        return session_not_found(&session);
    };
    if device.spec.state != DeviceState::LoggedIn {
        return unexpected_status(&device, &["WORKING"]);
    }
    let phone: String = query
        .get("phone")
        .map(|p| p.chars().filter(char::is_ascii_digit).collect())
        .unwrap_or_default();
    if phone.is_empty() {
        return bad_request(vec!["phone must be a string".to_owned()]);
    }
    let exists = (5..=15).contains(&phone.len()) && !state.not_on_whatsapp(&phone);
    if exists {
        Json(json!({"numberExists": true, "chatId": format!("{phone}@c.us")})).into_response()
    } else {
        Json(json!({"numberExists": false})).into_response()
    }
}
