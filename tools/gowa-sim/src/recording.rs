//! The middleware every kind's API runs first: record the request (with its headers, credential
//! values redacted), check the kind's credentials, and inject the delay faults.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use time::OffsetDateTime;

use crate::api;
use crate::body::{self, BodyKind};
use crate::envelope::text;
use crate::kind::Kind;
use crate::state::{RecordedRequest, SimState};

/// Whether a request got past the kind's authentication, for the kind's auth middleware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Authorized(pub bool);

/// Buffers and parses the body, logs the request, and fills in the status once answered.
pub(crate) async fn record(
    State(state): State<Arc<SimState>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let kind = state.kind();
    let path = parts.uri.path().to_owned();
    let gowa_auth = (kind == Kind::Gowa).then(|| api::check_basic_auth(&state, &parts.headers));
    let authorized = match &gowa_auth {
        Some(auth) => path == "/health" || auth.is_ok(),
        None => authorize(&state, kind, &parts),
    };
    let mut entry = RecordedRequest {
        seq: 0,
        kind,
        received_at: OffsetDateTime::now_utc(),
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        device_id: slot_from_request(kind, &parts),
        basic_auth_user: gowa_auth.as_ref().and_then(|auth| auth.user.clone()),
        authorized,
        headers: redacted_headers(&parts.headers),
        content_type: header_text(&parts.headers, header::CONTENT_TYPE.as_str()),
        json: None,
        form: None,
        files: Vec::new(),
        body_size: 0,
        body_error: None,
        status: None,
    };
    let method = entry.method.clone();

    let Ok(bytes) = to_bytes(body, state.config().max_body_bytes).await else {
        entry.status = Some(StatusCode::PAYLOAD_TOO_LARGE.as_u16());
        state.record(entry);
        return text(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let parsed = body::parse(&parts, &bytes).await;
    entry.body_size = parsed.size;
    match &parsed.kind {
        BodyKind::Json(value) => {
            if kind == Kind::Waha && entry.device_id.is_none() {
                entry.device_id = value
                    .get("session")
                    .and_then(|s| s.as_str())
                    .map(str::to_owned);
            }
            entry.json = Some(value.clone());
        }
        BodyKind::Form { fields, files } => {
            entry.form = Some(fields.clone());
            entry.files = files.clone();
        }
        BodyKind::Invalid(message) => entry.body_error = Some(message.clone()),
        BodyKind::Unsupported => {}
    }
    let seq = state.record(entry);

    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(Arc::new(parsed));
    request.extensions_mut().insert(Authorized(authorized));
    request.extensions_mut().insert(crate::chaos::LogSeq(seq));
    if let Some(auth) = gowa_auth {
        request.extensions_mut().insert(auth);
    }
    let response = next.run(request).await;

    let status = response.status().as_u16();
    state.record_status(seq, status);
    tracing::info!(seq, %kind, %method, %path, status, "api request");
    response
}

/// The layers every kind's API shares around its routes and its own guard: the request log
/// (outermost, so every request is recorded, refused ones too), the delay faults, and no body
/// size limit (each route applies the kind's own rules).
pub(crate) fn recorded(router: axum::Router<Arc<SimState>>, state: Arc<SimState>) -> axum::Router {
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            inject_delays,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::chaos::act,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), record))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::chaos::draw,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// The `hold`, `latency_ms` and `hang` faults.
pub(crate) async fn inject_delays(
    State(state): State<Arc<SimState>>,
    request: Request,
    next: Next,
) -> Response {
    let faults = state.faults();
    if faults.hold {
        state.wait_while_held().await;
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.hang {
        std::future::pending::<()>().await;
    }
    next.run(request).await
}

/// The credential check of WAHA (`X-Api-Key`), Evolution (`apikey`: the global key, or the
/// instance's token on its own routes) and Meta (`Authorization: Bearer <token>`). An
/// unconfigured key leaves the API open; the `credentials_expired` fault closes it.
fn authorize(state: &SimState, kind: Kind, parts: &Parts) -> bool {
    let path = parts.uri.path();
    let open_route = match kind {
        // Evolution's welcome page is outside the guarded routers.
        Kind::Evolution => path == "/",
        _ => false,
    };
    if open_route {
        return true;
    }
    if state.faults().credentials_expired {
        return false;
    }
    let headers = &parts.headers;
    let config = state.config();
    match kind {
        Kind::Gowa => true,
        Kind::Waha => match &config.api_key {
            None => true,
            Some(key) => header_text(headers, "x-api-key")
                .is_some_and(|given| constant_time_eq(given.as_bytes(), key.as_bytes())),
        },
        Kind::Evolution => {
            let Some(given) = header_text(headers, "apikey") else {
                return config.api_key.is_none();
            };
            let global_ok = config
                .api_key
                .as_ref()
                .is_none_or(|key| constant_time_eq(given.as_bytes(), key.as_bytes()));
            let token_of = |instance: &str| {
                constant_time_eq(given.as_bytes(), config.device_key_of(instance).as_bytes())
            };
            let instance_ok = match slot_from_request(kind, parts) {
                Some(instance) => state.device(&instance).is_some() && token_of(&instance),
                // fetchInstances takes any instance's token (and lists only that instance).
                None if path == "/instance/fetchInstances" => {
                    state.devices().iter().any(|d| token_of(&d.spec.id))
                }
                None => false,
            };
            global_ok || instance_ok
        }
        Kind::Meta => {
            let bearer = header_text(headers, header::AUTHORIZATION.as_str()).and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_owned())
            });
            match (&config.api_key, bearer) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(key), Some(token)) => constant_time_eq(token.as_bytes(), key.as_bytes()),
            }
        }
    }
}

/// The account slot a request names, from its path or headers (WAHA's body `session` is
/// added once the body is read).
pub(crate) fn slot_from_request(kind: Kind, parts: &Parts) -> Option<String> {
    let path = parts.uri.path();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let seg = |i: usize| segments.get(i).cloned();
    match kind {
        Kind::Gowa => header_text(&parts.headers, "x-device-id"),
        Kind::Waha => match segments.first().map(String::as_str) {
            Some("api") if segments.get(1).map(String::as_str) == Some("sessions") => seg(2),
            Some("api") if segments.get(2).map(String::as_str) == Some("auth") => seg(1),
            _ => query_value(parts.uri.query(), "session"),
        },
        Kind::Evolution => (segments.len() == 3
            && matches!(
                segments[0].as_str(),
                "instance" | "message" | "webhook" | "chat"
            ))
        .then(|| segments[2].clone()),
        Kind::Meta => {
            (segments.len() >= 2 && segments[0].starts_with('v')).then(|| segments[1].clone())
        }
    }
}

/// Every header, lowercase names, credential values redacted. Repeated headers are joined
/// with `, `.
pub(crate) fn redacted_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str().to_ascii_lowercase();
        let raw = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let shown = match name.as_str() {
            "authorization" | "proxy-authorization" => match raw.trim().split_once(' ') {
                Some((scheme, _)) => format!("{scheme} ***"),
                None if raw.trim().is_empty() => String::new(),
                None => "***".to_owned(),
            },
            "x-api-key" | "apikey" | "cookie" => "***".to_owned(),
            _ => raw,
        };
        out.entry(name)
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&shown);
            })
            .or_insert(shown);
    }
    out
}

pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub(crate) fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// `%XX` decoding of one path segment (malformed escapes are kept).
pub(crate) fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(text) = std::str::from_utf8(hex)
            && let Ok(byte) = u8::from_str_radix(text, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn credential_headers_are_redacted_but_keep_their_scheme() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer EAAB-secret"),
        );
        headers.insert("x-api-key", HeaderValue::from_static("waha-secret"));
        headers.insert("apikey", HeaderValue::from_static("evo-secret"));
        headers.insert("x-device-id", HeaderValue::from_static("demo"));
        let shown = redacted_headers(&headers);
        assert_eq!(shown["authorization"], "Bearer ***");
        assert_eq!(shown["x-api-key"], "***");
        assert_eq!(shown["apikey"], "***");
        assert_eq!(shown["x-device-id"], "demo");
        assert!(!format!("{shown:?}").contains("secret"));
    }

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(percent_decode("toko%20satu"), "toko satu");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
    }
}
