//! Meta's Cloud API error answers: the Graph API error envelope and the codes the simulator
//! can answer with, from Meta's error codes page
//! (developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes:
//! code, title, description and HTTP status) and the `GraphAPIError` schema of Meta's spec.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Where Meta's failed statuses point (`errors[].href`).
pub const ERROR_CODES_HREF: &str =
    "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/";

/// One documented error: (code, HTTP status, title, details).
pub(crate) struct MetaError {
    pub code: u32,
    pub status: u16,
    pub title: &'static str,
    pub details: &'static str,
}

/// Every code the simulator can answer with (`provider_error` and `delivery_failure` faults).
pub(crate) const CATALOG: &[MetaError] = &[
    MetaError {
        code: 4,
        status: 400,
        title: "Application request limit reached",
        details: "The app has reached its API call rate limit.",
    },
    MetaError {
        code: 100,
        status: 400,
        title: "Invalid parameter",
        details: "The request included one or more unsupported or misspelled parameters.",
    },
    MetaError {
        code: 190,
        status: 401,
        title: "Access token has expired",
        details: "Your access token has expired.",
    },
    MetaError {
        code: 368,
        status: 400,
        title: "Temporarily blocked for policies violations",
        details: "The WhatsApp Business Account associated with the app has been restricted or disabled for violating a platform policy.",
    },
    MetaError {
        code: 80007,
        status: 400,
        title: "Rate limit issues",
        details: "The WhatsApp Business Account has reached its rate limit.",
    },
    MetaError {
        code: 130429,
        status: 400,
        title: "Rate limit hit",
        details: "Cloud API message throughput has been reached.",
    },
    MetaError {
        code: 130472,
        status: 400,
        title: "User's number is part of an experiment",
        details: "Message was not sent as part of an experiment.",
    },
    MetaError {
        code: 131000,
        status: 500,
        title: "Something went wrong",
        details: "Message failed to send due to an unknown error.",
    },
    MetaError {
        code: 131005,
        status: 403,
        title: "Access denied",
        details: "Permission is either not granted or has been removed.",
    },
    MetaError {
        code: 131008,
        status: 400,
        title: "Required parameter is missing",
        details: "The request is missing a required parameter.",
    },
    MetaError {
        code: 131009,
        status: 400,
        title: "Parameter value is not valid",
        details: "One or more parameter values are invalid.",
    },
    MetaError {
        code: 131016,
        status: 503,
        title: "Service unavailable",
        details: "A service is temporarily unavailable.",
    },
    MetaError {
        code: 131021,
        status: 400,
        title: "Recipient cannot be sender",
        details: "Sender and recipient phone number is the same.",
    },
    MetaError {
        code: 131026,
        status: 400,
        title: "Message undeliverable",
        details: "Unable to deliver message. Reasons can include: the recipient phone number is not a WhatsApp phone number; the recipient has not accepted our new Terms of Service and Privacy Policy; the recipient is using an old WhatsApp version.",
    },
    MetaError {
        code: 131030,
        status: 400,
        title: "Recipient phone number not in allowed list",
        details: "Recipient phone number not in allowed list.",
    },
    MetaError {
        code: 131031,
        status: 400,
        title: "Business Account locked",
        details: "Business Account has been restricted or disabled for violating a platform policy.",
    },
    MetaError {
        code: 131047,
        status: 400,
        title: "Re-engagement message",
        details: "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
    },
    MetaError {
        code: 131048,
        status: 400,
        title: "Spam rate limit hit",
        details: "Message failed to send because there are restrictions on how many messages can be sent from this phone number.",
    },
    MetaError {
        code: 131049,
        status: 400,
        title: "This message was not delivered to maintain healthy ecosystem engagement.",
        details: "Meta chose not to deliver this message.",
    },
    MetaError {
        code: 131051,
        status: 400,
        title: "Unsupported message type",
        details: "Unsupported message type.",
    },
    MetaError {
        code: 131056,
        status: 400,
        title: "(Business Account, Consumer Account) pair rate limit hit",
        details: "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time.",
    },
    MetaError {
        code: 133010,
        status: 400,
        title: "Account not registered",
        details: "The phone number is not registered on the WhatsApp Business Platform.",
    },
    MetaError {
        code: 133016,
        status: 400,
        title: "Account register deregister rate limit exceeded",
        details: "Registration or Deregistration failed because there were too many attempts for this phone number in a short period of time.",
    },
];

/// The catalogue entry of `code`.
pub(crate) fn lookup(code: &str) -> Option<&'static MetaError> {
    let code: u32 = code.trim().parse().ok()?;
    CATALOG.iter().find(|e| e.code == code)
}

/// A Graph `fbtrace_id`-looking value.
fn fbtrace_id() -> String {
    use base64::Engine;
    let bytes: [u8; 15] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `{"error": {message, type, code, error_subcode?, error_data?, fbtrace_id}}` with the
/// status, as the Graph API answers.
pub(crate) fn graph_error(
    status: StatusCode,
    code: u32,
    subcode: Option<u32>,
    message: &str,
    details: Option<&str>,
) -> Response {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    if let Some(details) = details {
        error["error_data"] = json!({"messaging_product": "whatsapp", "details": details});
    }
    error["fbtrace_id"] = json!(fbtrace_id());
    let mut response = (status, axum::Json(json!({ "error": error }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "OAuth \"Facebook Platform\" \"invalid_token\" \"Invalid OAuth access token - Cannot parse access token\"",
            ),
        );
    }
    response
}

/// The synchronous answer of a catalogued code (`(#130429) Rate limit hit`, …).
pub(crate) fn answer(entry: &MetaError) -> Response {
    if entry.code == 190 {
        return expired_token();
    }
    graph_error(
        StatusCode::from_u16(entry.status).unwrap_or(StatusCode::BAD_REQUEST),
        entry.code,
        None,
        &format!("(#{}) {}", entry.code, entry.title),
        Some(entry.details),
    )
}

/// 401, code 190, subcode 463: the token expired.
pub(crate) fn expired_token() -> Response {
    graph_error(
        StatusCode::UNAUTHORIZED,
        190,
        Some(463),
        "Error validating access token: Session has expired on Thursday, 01-Jan-26 00:00:00 PST. The current time is later than that.",
        None,
    )
}

/// 401, code 190: no, malformed or unknown token.
pub(crate) fn invalid_token() -> Response {
    graph_error(
        StatusCode::UNAUTHORIZED,
        190,
        None,
        "Invalid OAuth access token - Cannot parse access token",
        None,
    )
}

/// `statuses[].errors[]` entry of a failed message.
pub(crate) fn status_error(code: &str) -> Value {
    let entry = lookup(code).unwrap_or_else(|| lookup("131026").expect("131026 is catalogued"));
    json!({
        "code": entry.code,
        "title": entry.title,
        "message": entry.title,
        "error_data": {"details": entry.details},
        "href": ERROR_CODES_HREF,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_has_the_codes_the_issue_names() {
        for code in ["130429", "131056", "131047", "131026", "100", "190"] {
            assert!(lookup(code).is_some(), "{code}");
        }
        assert!(lookup("999999").is_none());
        assert!(lookup("abc").is_none());
    }

    #[test]
    fn a_failed_status_names_its_code_title_and_details() {
        let error = status_error("131047");
        assert_eq!(error["code"], 131047);
        assert_eq!(error["title"], "Re-engagement message");
        assert!(
            error["error_data"]["details"]
                .as_str()
                .unwrap()
                .contains("24 hours")
        );
    }
}
