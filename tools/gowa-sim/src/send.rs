//! `POST /send/message`, `/send/image` and `/send/file`, in GOWA's order of checks:
//! bind the body (`BodyParser`) -> `SanitizePhone` -> validation (`validations/send_validation.go`)
//! -> `MustLogin` -> recipient check (`IsOnWhatsapp`, `ParseJID`) -> the WhatsApp send.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::body::{BindError, Fields, ParsedBody};
use crate::envelope::{GowaError, MSG_INTERNAL, MSG_INVALID_JID, proxy_page, success};
use crate::events::{self, SentMessage};
use crate::faults::SendErrorStatus;
use crate::state::{RecordedFile, SimState};

/// GOWA's default `WHATSAPP_SETTING_MAX_FILE_SIZE`.
const MAX_FILE_SIZE: usize = 50_000_000;

/// The device chosen by the device middleware.
#[derive(Clone, Debug)]
pub(crate) struct ResolvedDevice(pub String);

/// What is being sent, with the fields that GOWA validates.
enum Payload {
    Text {
        message: String,
    },
    Media {
        kind: MediaKind,
        file: Option<RecordedFile>,
        url: Option<String>,
    },
}

#[derive(Clone, Copy)]
enum MediaKind {
    Image,
    File,
}

impl MediaKind {
    /// Names used in GOWA's validation messages: (file, url, base64 path).
    fn labels(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Image => ("Image (file)", "ImageURL", "ImagePath (base64)"),
            Self::File => ("File (multipart)", "FileURL", "FilePath (base64)"),
        }
    }
}

struct SendRequest {
    phone: String,
    payload: Payload,
}

#[derive(Serialize)]
struct SendResults<'a> {
    message_id: &'a str,
    status: &'a str,
}

fn bind_failed(err: BindError) -> Response {
    GowaError::Internal(err.0).into_response()
}

pub(crate) async fn send_message(
    State(state): State<Arc<SimState>>,
    Extension(device): Extension<ResolvedDevice>,
    Extension(body): Extension<Arc<ParsedBody>>,
) -> Response {
    let parsed = Fields::bind(&body, "MessageRequest").and_then(|fields| {
        Ok(SendRequest {
            phone: fields.text("phone")?.unwrap_or_default(),
            payload: Payload::Text {
                message: fields.text("message")?.unwrap_or_default(),
            },
        })
    });
    match parsed {
        Ok(request) => send(&state, &device.0, request).await,
        Err(err) => bind_failed(err),
    }
}

pub(crate) async fn send_image(
    State(state): State<Arc<SimState>>,
    Extension(device): Extension<ResolvedDevice>,
    Extension(body): Extension<Arc<ParsedBody>>,
) -> Response {
    send_media(&state, &device.0, &body, MediaKind::Image).await
}

pub(crate) async fn send_file(
    State(state): State<Arc<SimState>>,
    Extension(device): Extension<ResolvedDevice>,
    Extension(body): Extension<Arc<ParsedBody>>,
) -> Response {
    send_media(&state, &device.0, &body, MediaKind::File).await
}

async fn send_media(
    state: &Arc<SimState>,
    device_id: &str,
    body: &ParsedBody,
    kind: MediaKind,
) -> Response {
    let (go_type, file_field, url_field) = match kind {
        MediaKind::Image => ("ImageRequest", "image", "image_url"),
        MediaKind::File => ("FileRequest", "file", "file_url"),
    };
    let parsed = Fields::bind(body, go_type).and_then(|fields| {
        // caption and reply_message_id are bound too; a wrong type fails like in Go.
        fields.text("caption")?;
        fields.text("reply_message_id")?;
        Ok(SendRequest {
            phone: fields.text("phone")?.unwrap_or_default(),
            payload: Payload::Media {
                kind,
                file: fields.file(file_field).cloned(),
                url: fields.text(url_field)?,
            },
        })
    });
    match parsed {
        Ok(request) => send(state, device_id, request).await,
        Err(err) => bind_failed(err),
    }
}

async fn send(state: &Arc<SimState>, device_id: &str, mut request: SendRequest) -> Response {
    sanitize_phone(&mut request.phone);
    if let Err(err) = validate(&request) {
        return err.into_response();
    }
    let Some(device) = state.device(device_id) else {
        return GowaError::DeviceNotFound(device_id.to_owned()).into_response();
    };
    if !device.spec.state.is_connected() {
        return GowaError::NotConnected.into_response();
    }
    if !device.spec.state.is_logged_in() {
        return GowaError::NotLoggedIn.into_response();
    }
    if let Err(err) = check_recipient(&request.phone) {
        return err.into_response();
    }
    if state.not_on_whatsapp(&request.phone) {
        return GowaError::InvalidJid(format!("Phone {} is not on WhatsApp", request.phone))
            .into_response();
    }
    if let Some(status) = state.take_send_error() {
        return injected_failure(status, state.faults().gateway_timeout()).await;
    }

    let message_id = new_message_id();
    let sent = SentMessage {
        id: message_id.clone(),
        device_id: device_id.to_owned(),
        chat: request
            .phone
            .strip_prefix('+')
            .unwrap_or(&request.phone)
            .to_owned(),
        text: match &request.payload {
            Payload::Text { message } => Some(message.clone()),
            Payload::Media { .. } => None,
        },
        // GOWA forwards no failure receipts: a delivery_failure fault only leaves the
        // message without receipts.
        failure: state.take_delivery_failure(),
    };
    state.note_sent(sent.clone());
    events::schedule_receipts(state, sent);
    let verb = match request.payload {
        Payload::Media {
            kind: MediaKind::File,
            ..
        } => "Document",
        _ => "Message",
    };
    let status = format!(
        "{verb} sent to {} (server timestamp: {})",
        request.phone,
        go_time_string(OffsetDateTime::now_utc())
    );
    success(
        &status,
        SendResults {
            message_id: &message_id,
            status: &status,
        },
    )
}

async fn injected_failure(
    status: SendErrorStatus,
    gateway_timeout: std::time::Duration,
) -> Response {
    match status {
        SendErrorStatus::TooManyRequests => GowaError::ReachoutTimelock.into_response(),
        SendErrorStatus::InternalServerError => {
            GowaError::Internal(MSG_INTERNAL.to_owned()).into_response()
        }
        SendErrorStatus::BadGateway => proxy_page(StatusCode::BAD_GATEWAY),
        SendErrorStatus::ServiceUnavailable => proxy_page(StatusCode::SERVICE_UNAVAILABLE),
        SendErrorStatus::GatewayTimeout => {
            tokio::time::sleep(gateway_timeout).await;
            GowaError::GatewayTimeout.into_response()
        }
    }
}

/// `utils.SanitizePhone`: a bare number gets `@s.whatsapp.net` (up to 15 characters) or
/// `@g.us` (longer).
fn sanitize_phone(phone: &mut String) {
    if !phone.is_empty() && !phone.contains('@') {
        if phone.len() <= 15 {
            phone.push_str("@s.whatsapp.net");
        } else {
            phone.push_str("@g.us");
        }
    }
}

fn validate(request: &SendRequest) -> Result<(), GowaError> {
    // ozzo-validation's `Required`, keys sorted, joined with "; ", ending with ".".
    let mut blank: Vec<&str> = Vec::new();
    if matches!(&request.payload, Payload::Text { message } if message.is_empty()) {
        blank.push("message");
    }
    if request.phone.is_empty() {
        blank.push("phone");
    }
    if !blank.is_empty() {
        let joined: Vec<String> = blank
            .iter()
            .map(|field| format!("{field}: cannot be blank"))
            .collect();
        return Err(GowaError::Validation(format!("{}.", joined.join("; "))));
    }
    validate_phone_number(&request.phone)?;

    if let Payload::Media { kind, file, url } = &request.payload {
        let (file_label, url_label, path_label) = kind.labels();
        let has_file = file.is_some();
        let has_url = url.as_deref().is_some_and(|u| !u.is_empty());
        if !has_file && !has_url {
            return Err(GowaError::Validation(format!(
                "either {file_label}, {url_label}, or {path_label} must be provided"
            )));
        }
        if has_file && has_url {
            return Err(GowaError::Validation(format!(
                "only one of {file_label}, {url_label}, or {path_label} can be provided"
            )));
        }
        if let Some(file) = file {
            match kind {
                MediaKind::Image => {
                    let mime = file.content_type.as_deref().unwrap_or_default();
                    if !matches!(mime, "image/jpeg" | "image/jpg" | "image/png") {
                        return Err(GowaError::Validation(
                            "your image is not allowed. please use jpg/jpeg/png".to_owned(),
                        ));
                    }
                }
                MediaKind::File => {
                    if file.size > MAX_FILE_SIZE {
                        return Err(GowaError::Validation(
                            "max file upload is 50 MB, please upload in cloud and send via text if your file is higher than 50 MB"
                                .to_owned(),
                        ));
                    }
                }
            }
        }
        if let Some(url) = url {
            if url.is_empty() {
                return Err(GowaError::Validation(format!(
                    "{url_label} cannot be empty"
                )));
            }
            if !looks_like_url(url) {
                return Err(GowaError::Validation(format!(
                    "{url_label} must be a valid URL"
                )));
            }
        }
    }
    Ok(())
}

/// `validatePhoneNumber`: international format, not starting with 0.
fn validate_phone_number(phone: &str) -> Result<(), GowaError> {
    let trimmed = phone.trim();
    let number = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if number.is_empty() {
        return Err(GowaError::Validation(
            "phone number cannot be empty".to_owned(),
        ));
    }
    if number.starts_with('0') {
        return Err(GowaError::Validation(
            "phone number must be in international format (should not start with 0). For Indonesian numbers, use 62xxx format instead of 08xxx"
                .to_owned(),
        ));
    }
    Ok(())
}

/// ozzo's `is.URL`, approximately: an absolute URL with a host, or a host with a dot.
fn looks_like_url(text: &str) -> bool {
    let has_host = |candidate: &str| {
        url::Url::parse(candidate)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.contains('.') || h == "localhost"))
            .unwrap_or(false)
    };
    !text.contains(char::is_whitespace) && (has_host(text) || has_host(&format!("http://{text}")))
}

/// `ValidateJidWithLogin` after `MustLogin`: WhatsApp's `IsOnWhatsApp` for user JIDs (the
/// simulator treats a user part of 5 to 15 digits as registered), then `ParseJID`.
fn check_recipient(phone: &str) -> Result<(), GowaError> {
    let jid = phone.strip_prefix('+').unwrap_or(phone);
    let (user, server) = jid.split_once('@').unwrap_or((jid, ""));
    if user.is_empty() || server.is_empty() {
        return Err(GowaError::InvalidJid(MSG_INVALID_JID.to_owned()));
    }
    if server == "s.whatsapp.net" {
        let user = user.split(':').next().unwrap_or(user);
        let digits_ok = (5..=15).contains(&user.len()) && user.bytes().all(|b| b.is_ascii_digit());
        if !digits_ok {
            return Err(GowaError::InvalidJid(format!(
                "Phone {phone} is not on WhatsApp"
            )));
        }
    }
    Ok(())
}

/// A WhatsApp-style message id, as whatsmeow's `GenerateMessageID`: `3EB0` and 18 uppercase
/// hex digits.
fn new_message_id() -> String {
    let bytes: [u8; 9] = rand::random();
    format!("3EB0{}", hex::encode_upper(bytes))
}

/// Go's `time.Time.String()` for a UTC time: `2026-08-22 10:15:30 +0000 UTC`.
fn go_time_string(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] +0000 UTC");
    at.format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(phone: &str, message: &str) -> SendRequest {
        let mut request = SendRequest {
            phone: phone.to_owned(),
            payload: Payload::Text {
                message: message.to_owned(),
            },
        };
        sanitize_phone(&mut request.phone);
        request
    }

    #[test]
    fn blank_fields_are_listed_in_ozzo_order() {
        assert_eq!(
            validate(&text("", "")),
            Err(GowaError::Validation(
                "message: cannot be blank; phone: cannot be blank.".to_owned()
            ))
        );
        assert_eq!(
            validate(&text("628123456789", "")),
            Err(GowaError::Validation(
                "message: cannot be blank.".to_owned()
            ))
        );
    }

    #[test]
    fn local_format_number_is_a_validation_error() {
        let Err(GowaError::Validation(message)) = validate(&text("08123456789", "hi")) else {
            panic!("expected a validation error");
        };
        assert!(message.starts_with("phone number must be in international format"));
    }

    #[test]
    fn sanitize_adds_the_user_or_group_server() {
        assert_eq!(
            text("6281234567890", "x").phone,
            "6281234567890@s.whatsapp.net"
        );
        assert_eq!(
            text("120363402106123456", "x").phone,
            "120363402106123456@g.us"
        );
        assert_eq!(text("1@lid", "x").phone, "1@lid");
    }

    #[test]
    fn non_numeric_user_is_not_on_whatsapp() {
        assert_eq!(
            check_recipient("hello@s.whatsapp.net"),
            Err(GowaError::InvalidJid(
                "Phone hello@s.whatsapp.net is not on WhatsApp".to_owned()
            ))
        );
        assert_eq!(
            check_recipient("@s.whatsapp.net"),
            Err(GowaError::InvalidJid(MSG_INVALID_JID.to_owned()))
        );
        assert!(check_recipient("+6281234567890@s.whatsapp.net").is_ok());
        assert!(check_recipient("120363402106123456@g.us").is_ok());
    }

    #[test]
    fn message_ids_look_like_whatsapp_ids() {
        let id = new_message_id();
        assert_eq!(id.len(), 22);
        assert!(id.starts_with("3EB0"));
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }

    #[test]
    fn timestamps_use_go_time_string_format() {
        let at = OffsetDateTime::from_unix_timestamp(1_787_393_822).unwrap();
        assert_eq!(go_time_string(at), "2026-08-22 10:17:02 +0000 UTC");
    }
}
