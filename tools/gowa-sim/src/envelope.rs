//! GOWA's response shapes and the exact error bodies it answers with.
//!
//! GOWA writes `utils.ResponseData{Status, Code, Message, Results}` with the tags
//! `json:"-"`, `json:"code"`, `json:"message"`, `json:"results,omitempty"`
//! (`src/pkg/utils/response.go`): the HTTP status is never in the body and `results` is left
//! out when nil. Errors reach that shape through the `Recovery` middleware
//! (`src/ui/rest/middleware/recovery.go`), which maps a `GenericError` to its
//! `StatusCode()` / `ErrCode()` / `Error()`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::gomarshal::go_json;

/// `AuthError` for a device without a socket (`pkg/error/app_error.go`, `ErrNotConnected`).
pub const MSG_NOT_CONNECTED: &str = "you are not connect to services server, please reconnect";
/// `AuthError` for a connected device without a session (`ErrNotLoggedIn`).
pub const MSG_NOT_LOGGED_IN: &str = "you are not logged in";
/// `InvalidJID` when the JID does not parse (`pkg/error/whatsapp_error.go`, `ErrInvalidJID`).
pub const MSG_INVALID_JID: &str = "your JID is invalid";
/// `WaReachoutTimelockError` (`ErrWaReachoutTimelock`), WhatsApp server error 463.
pub const MSG_REACHOUT_TIMELOCK: &str = "WhatsApp rejected this send (error 463). This usually means the recipient is a cold contact (no prior conversation), the WhatsApp account is restricted to mobile-only by Meta, or privacy tokens are missing/expired. Try messaging this number from the official WhatsApp app once, ask the recipient to message you first, or wait a few minutes before retrying. An automatic pre-warm + retry has already been attempted by the server.";
/// What `Recovery` answers when the 45 s request context expires.
pub const MSG_GATEWAY_TIMEOUT: &str = "Request timed out waiting for WhatsApp server response";
/// `DeviceMiddleware` (`src/ui/rest/middleware/device.go`) when several devices exist and
/// none is named.
pub const MSG_DEVICE_ID_REQUIRED: &str =
    "device_id is required via X-Device-Id header or device_id query";
/// `DeviceMiddleware` when the named device does not exist.
pub const MSG_DEVICE_NOT_FOUND: &str =
    "device not found; create a device first from /api/devices or provide a valid X-Device-Id";
/// `ALREADY_LOGGED_IN`: a login asked for a logged-in device.
pub const MSG_ALREADY_LOGGED_IN: &str = "you are already logged in :)";
/// `DEVICE_EXISTS`: a slot with that id exists.
pub const MSG_DEVICE_EXISTS: &str = "device already exists";
/// Message of an injected 500 (whatsmeow's wording for a server-side error).
pub const MSG_INTERNAL: &str = "server returned error 500";

/// `{code, message, results?}` as GOWA serialises `ResponseData`.
#[derive(Serialize)]
struct ResponseData<'a, T: Serialize> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<T>,
}

/// A JSON response with Go's encoding (struct field order kept, HTML characters escaped).
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let mut response = (status, go_json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `200 {"code":"SUCCESS","message":...,"results":...}`.
pub(crate) fn success(message: &str, results: impl Serialize) -> Response {
    json_response(
        StatusCode::OK,
        &ResponseData {
            code: "SUCCESS",
            message,
            results: Some(results),
        },
    )
}

/// A plain-text response as fiber's `SendString` writes it.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The error answers GOWA gives on the routes the simulator serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GowaError {
    /// 400 `VALIDATION_ERROR` (`pkg/error/validation_error.go`).
    Validation(String),
    /// 400 `INVALID_JID`.
    InvalidJid(String),
    /// 401 `AUTHENTICATION_ERROR`: the device has no socket.
    NotConnected,
    /// 401 `AUTHENTICATION_ERROR`: the device is logged out.
    NotLoggedIn,
    /// 429 `WA_REACHOUT_TIMELOCK`.
    ReachoutTimelock,
    /// 500 `INTERNAL_SERVER_ERROR` with the given message.
    Internal(String),
    /// 504 `GATEWAY_TIMEOUT`.
    GatewayTimeout,
    /// 400 `DEVICE_ID_REQUIRED`.
    DeviceIdRequired,
    /// 404 `DEVICE_NOT_FOUND` with `results: {"device_id": ...}`.
    DeviceNotFound(String),
    /// 400 `ALREADY_LOGGED_IN`: a login (QR or code) asked for a device that is logged in.
    AlreadyLoggedIn,
    /// 400 `DEVICE_EXISTS`: `POST /devices` with an id already taken.
    DeviceExists,
}

impl GowaError {
    fn parts(&self) -> (StatusCode, &'static str, &str) {
        match self {
            Self::Validation(message) => (StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message),
            Self::InvalidJid(message) => (StatusCode::BAD_REQUEST, "INVALID_JID", message),
            Self::NotConnected => (
                StatusCode::UNAUTHORIZED,
                "AUTHENTICATION_ERROR",
                MSG_NOT_CONNECTED,
            ),
            Self::NotLoggedIn => (
                StatusCode::UNAUTHORIZED,
                "AUTHENTICATION_ERROR",
                MSG_NOT_LOGGED_IN,
            ),
            Self::ReachoutTimelock => (
                StatusCode::TOO_MANY_REQUESTS,
                "WA_REACHOUT_TIMELOCK",
                MSG_REACHOUT_TIMELOCK,
            ),
            Self::Internal(message) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                message,
            ),
            Self::GatewayTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "GATEWAY_TIMEOUT",
                MSG_GATEWAY_TIMEOUT,
            ),
            Self::DeviceIdRequired => (
                StatusCode::BAD_REQUEST,
                "DEVICE_ID_REQUIRED",
                MSG_DEVICE_ID_REQUIRED,
            ),
            Self::DeviceNotFound(_) => (
                StatusCode::NOT_FOUND,
                "DEVICE_NOT_FOUND",
                MSG_DEVICE_NOT_FOUND,
            ),
            Self::AlreadyLoggedIn => (
                StatusCode::BAD_REQUEST,
                "ALREADY_LOGGED_IN",
                MSG_ALREADY_LOGGED_IN,
            ),
            Self::DeviceExists => (StatusCode::BAD_REQUEST, "DEVICE_EXISTS", MSG_DEVICE_EXISTS),
        }
    }
}

#[derive(Serialize)]
struct DeviceIdResult<'a> {
    device_id: &'a str,
}

impl IntoResponse for GowaError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        match &self {
            Self::DeviceNotFound(device_id) => json_response(
                status,
                &ResponseData {
                    code,
                    message,
                    results: Some(DeviceIdResult { device_id }),
                },
            ),
            _ => json_response(
                status,
                &ResponseData::<()> {
                    code,
                    message,
                    results: None,
                },
            ),
        }
    }
}

/// An nginx-style error page: GOWA itself never answers 502/503 on a send; a reverse proxy in
/// front of it does.
pub(crate) fn proxy_page(status: StatusCode) -> Response {
    let body = match status.as_u16() {
        502 => {
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        }
        504 => {
            "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        }
        _ => {
            "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        }
    };
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn body_of(response: Response) -> String {
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn errors_have_no_status_field_and_no_results() {
        let response = GowaError::NotLoggedIn.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            body_of(response).await,
            r#"{"code":"AUTHENTICATION_ERROR","message":"you are not logged in"}"#
        );
    }

    #[tokio::test]
    async fn device_not_found_names_the_device_in_results() {
        let response = GowaError::DeviceNotFound("x".into()).into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(
            body_of(response)
                .await
                .ends_with(r#""results":{"device_id":"x"}}"#)
        );
    }
}
