//! The one place an error becomes an HTTP status and a JSON body
//! `{"error": code, "message": text, "fields"?: [...]}`. Causes are logged, never echoed.

use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;
use wagate::delivery::DeliveryError;
use wagate::secrets::SecretsError;
use wagate::tenant::ValidationErrors;
use wagate::tenant::cache::CacheError;
use wagate::tenant::store::StoreError;

use crate::auth::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    #[error("this token may not act on tenant {0}")]
    Forbidden(String),
    #[error("admin scope required")]
    AdminOnly,
    #[error("no such route")]
    NoRoute,
    /// With the methods the path has, for `Allow`.
    #[error("method not allowed")]
    MethodNotAllowed(String),
    #[error("no WhatsApp config for this tenant")]
    NotFound,
    #[error("no delivery record for this idempotency key")]
    MessageNotFound,
    #[error("a WhatsApp config for this tenant already exists")]
    AlreadyExists,
    #[error("version conflict: the config was changed since version {0} was read")]
    Conflict(u64),
    /// If-Match and the body's `version` name different versions: at most one of them is
    /// current, so the request is stale either way.
    #[error(
        "If-Match ({0}) and the body's version ({1}) disagree: at most one is current; send the version you read"
    )]
    VersionsDisagree(u64, u64),
    /// The request is well formed but does not fit the stored config (a secret left out
    /// with nothing saved to keep, a backup the tenant does not have, a webhook secret id
    /// already taken, a sixth current webhook secret). Names each field; nothing changed.
    #[error("the request does not fit the current config; nothing was changed")]
    StateConflict(ValidationErrors),
    /// A stored secret cannot be opened (KMS refused the ciphertext: sealed for another
    /// tenant or purpose, or damaged). Names each unusable field.
    #[error(
        "a stored secret of this config cannot be opened; set it again (PUT the config, rotate-credential or rotate-webhook-secret); nothing was changed"
    )]
    SecretUnusable(ValidationErrors),
    #[error("the current version is required: send If-Match: \"<version>\" or a \"version\" field")]
    VersionRequired,
    #[error("request body is over {0} bytes")]
    TooLarge(usize),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid config")]
    Invalid(ValidationErrors),
    /// A connection test failed where passing it is required (a switch); carries the report.
    #[error("the connection test failed; nothing was changed")]
    TestFailed(Box<serde_json::Value>),
    #[error("a dependency is unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
    #[error("no registered server with this id")]
    ServerNotFound,
    /// A migration names a `from` or `to` the registry does not hold.
    #[error("'from' or 'to' is not a registered server")]
    MigrationServerNotFound,
    #[error("no migration job with this id")]
    JobNotFound,
    #[error("a server with this id or base URL is already registered")]
    ServerTaken,
    /// Deregistering a server tenants still use (how many).
    #[error("{0} tenant(s) use this server; migrate them first")]
    ServerInUse(usize),
    /// Placement found no healthy server with room; says why.
    #[error("{0}")]
    NoServerAvailable(String),
    /// A migration job id resumed with other from/to/tenantIds.
    #[error(
        "this job id was started with other from/to/tenantIds; resume it with the same ones or use a new id"
    )]
    JobMismatch,
    /// A device or webhook-wiring action failed on the WhatsApp server, or the wiring state
    /// forbids the request (issue 15, `handlers/devices.rs`); the message says what and why.
    #[error("{1}")]
    Device(DeviceFailure, String),
}

/// Why a device route (or a switch's wiring precondition) failed: one code each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceFailure {
    /// The server has no such device (404).
    DeviceNotFound,
    /// The device is already logged in (409).
    AlreadyLoggedIn,
    /// The API does not know its public URL, so it cannot wire a webhook (409).
    NoWebhookUrl,
    /// The endpoint's webhook wiring is `manual`: wagate reports it and never changes it (409).
    WiringManual,
    /// The server's QR picture is not a PNG or is too large (424).
    BadQrImage,
    /// The server kind does not offer the operation (424).
    Unsupported,
    /// The server refused the endpoint's credentials (424).
    ServerCredentialsRefused,
    /// The egress guard refused the server's address (424).
    EgressRefused,
    /// The server answered with an error (424).
    ServerRefused,
    /// The server did not answer, or not in time (424).
    ServerUnreachable,
    /// The server refused the webhook change (424).
    WebhookRefused,
    /// The webhook could not be read back after it was set (424).
    ReadBackFailed,
    /// The server answers another webhook than the one set (424).
    ReadBackMismatch,
}

impl DeviceFailure {
    pub fn status(self) -> StatusCode {
        match self {
            DeviceFailure::DeviceNotFound => StatusCode::NOT_FOUND,
            DeviceFailure::AlreadyLoggedIn
            | DeviceFailure::NoWebhookUrl
            | DeviceFailure::WiringManual => StatusCode::CONFLICT,
            _ => StatusCode::FAILED_DEPENDENCY,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            DeviceFailure::DeviceNotFound => "device_not_found",
            DeviceFailure::AlreadyLoggedIn => "already_logged_in",
            DeviceFailure::NoWebhookUrl => "no_webhook_url",
            DeviceFailure::WiringManual => "webhook_wiring_manual",
            DeviceFailure::BadQrImage => "bad_qr_image",
            DeviceFailure::Unsupported => "unsupported",
            DeviceFailure::ServerCredentialsRefused => "server_credentials_refused",
            DeviceFailure::EgressRefused => "egress_refused",
            DeviceFailure::ServerRefused => "server_refused",
            DeviceFailure::ServerUnreachable => "server_unreachable",
            DeviceFailure::WebhookRefused => "webhook_refused",
            DeviceFailure::ReadBackFailed => "read_back_failed",
            DeviceFailure::ReadBackMismatch => "read_back_mismatch",
        }
    }
}

#[derive(Serialize)]
struct Body_<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a ValidationErrors>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test: Option<&'a serde_json::Value>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::AdminOnly => StatusCode::FORBIDDEN,
            ApiError::NoRoute
            | ApiError::NotFound
            | ApiError::MessageNotFound
            | ApiError::ServerNotFound
            | ApiError::MigrationServerNotFound
            | ApiError::JobNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::AlreadyExists
            | ApiError::Conflict(_)
            | ApiError::VersionsDisagree(..)
            | ApiError::SecretUnusable(_)
            | ApiError::StateConflict(_)
            | ApiError::ServerTaken
            | ApiError::ServerInUse(_)
            | ApiError::NoServerAvailable(_)
            | ApiError::JobMismatch => StatusCode::CONFLICT,
            ApiError::VersionRequired => StatusCode::PRECONDITION_REQUIRED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadRequest(_) | ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::TestFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Device(failure, _) => failure.status(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(AuthError::Expired) => "token_expired",
            ApiError::Unauthenticated(_) => "unauthorized",
            ApiError::Forbidden(_) | ApiError::AdminOnly => "forbidden",
            ApiError::NoRoute => "no_route",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::NotFound
            | ApiError::MessageNotFound
            | ApiError::ServerNotFound
            | ApiError::MigrationServerNotFound
            | ApiError::JobNotFound => "not_found",
            ApiError::AlreadyExists | ApiError::ServerTaken => "already_exists",
            ApiError::Conflict(_) | ApiError::VersionsDisagree(..) => "version_conflict",
            ApiError::SecretUnusable(_) => "secret_unusable",
            ApiError::StateConflict(_) => "state_conflict",
            ApiError::VersionRequired => "version_required",
            ApiError::TooLarge(_) => "body_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::BadRequest(_) => "invalid_body",
            ApiError::Invalid(_) => "invalid_config",
            ApiError::TestFailed(_) => "connection_test_failed",
            ApiError::Unavailable(_) => "dependency_unavailable",
            ApiError::Internal(_) => "internal_error",
            ApiError::ServerInUse(_) => "server_in_use",
            ApiError::NoServerAvailable(_) => "no_server_available",
            ApiError::JobMismatch => "job_mismatch",
            ApiError::Device(failure, _) => failure.code(),
        }
    }

    /// The response. Internal detail stays in the log line the caller of this writes.
    pub fn into_response(self) -> Response<Body> {
        let message = match &self {
            ApiError::Unavailable(_) => "a backing service is unavailable; retry later".into(),
            ApiError::Internal(_) => "internal error".into(),
            ApiError::Invalid(errs) => format!("{} invalid field(s): {errs}", errs.0.len()),
            ApiError::StateConflict(errs) => format!("{self}: {errs}"),
            other => other.to_string(),
        };
        let fields = match &self {
            ApiError::Invalid(errs)
            | ApiError::SecretUnusable(errs)
            | ApiError::StateConflict(errs) => Some(errs),
            _ => None,
        };
        let test = match &self {
            ApiError::TestFailed(report) => Some(report.as_ref()),
            _ => None,
        };
        let body = serde_json::to_string(&Body_ {
            error: self.code(),
            message,
            fields,
            test,
        })
        .unwrap_or_else(|_| r#"{"error":"internal_error","message":"internal error"}"#.into());
        let mut resp = crate::response::json(self.status(), body);
        match &self {
            ApiError::Unauthenticated(_) => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::MethodNotAllowed(allow) => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    resp.headers_mut().insert(header::ALLOW, v);
                }
            }
            _ => {}
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::AlreadyExists => ApiError::AlreadyExists,
            StoreError::Conflict => ApiError::Conflict(0),
            StoreError::InvalidCursor => ApiError::BadRequest("invalid cursor".into()),
            StoreError::Corrupt { .. } => ApiError::Internal(e.to_string()),
            StoreError::Backend(msg) => ApiError::Unavailable(msg),
        }
    }
}

impl From<DeliveryError> for ApiError {
    fn from(e: DeliveryError) -> Self {
        match e {
            DeliveryError::InvalidCursor => ApiError::BadRequest("invalid cursor".into()),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<SecretsError> for ApiError {
    /// KMS unreachable or failing is 503; a secret KMS refuses to open is 409 (callers that
    /// know the field use [`ApiError::secret`] to name it).
    fn from(e: SecretsError) -> Self {
        ApiError::secret(e, "secrets")
    }
}

impl ApiError {
    /// Errors of building a config or endpoint from a request: 409 `state_conflict` when
    /// every one of them is a secret left out with nothing saved to keep (the stored config
    /// decides those), else 400 `invalid_config`.
    pub fn from_build(errs: ValidationErrors) -> Self {
        if !errs.is_empty()
            && errs
                .0
                .iter()
                .all(|e| e.reason == crate::handlers::config::dto::NOTHING_TO_KEEP)
        {
            ApiError::StateConflict(errs)
        } else {
            ApiError::Invalid(errs)
        }
    }

    /// One field that does not fit the stored config (409 `state_conflict`).
    pub fn state(field: &str, reason: impl Into<String>) -> Self {
        let mut errs = ValidationErrors::default();
        errs.push(field, reason);
        ApiError::StateConflict(errs)
    }

    /// A sealing or opening failure of the secret in `field`.
    pub fn secret(e: SecretsError, field: &str) -> Self {
        if e.is_unusable() {
            tracing::warn!(field, error = %e, "a stored secret cannot be opened");
            let mut errs = ValidationErrors::default();
            errs.push(
                field,
                "the stored secret cannot be opened (KMS refused it: sealed for another tenant or purpose, or damaged); set it again",
            );
            ApiError::SecretUnusable(errs)
        } else {
            ApiError::Unavailable(e.to_string())
        }
    }
}

impl From<CacheError> for ApiError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Store(s) => s.into(),
            CacheError::Secrets(s) => s.into(),
        }
    }
}
