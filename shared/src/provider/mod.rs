//! WhatsApp API servers behind one trait ([`WhatsAppProvider`]), the error classes every
//! caller maps on ([`ErrorClass`]), and the registry of one client per kind ([`Providers`]).
//! Each kind's client is its own file, over the one guarded HTTP client
//! ([`crate::egress::HttpClient`]): [`gowa`], [`waha`], [`evolution`], [`meta`] (the last
//! three share [`http`]'s helpers).

pub mod evolution;
pub mod gowa;
mod http;
pub mod meta;
pub mod waha;
pub mod wiring;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use evolution::EvolutionClient;
pub use gowa::{GowaClient, MAX_DOCUMENT_UPLOAD_BYTES};
pub use meta::MetaClient;
pub use waha::WahaClient;

use crate::egress::{EgressError, HttpClient};
use crate::secrets::Secret;
use crate::tenant::{Credentials, Endpoint, ProviderKind};

/// Where one call goes: a server, its credentials and the device/session on it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub base_url: &'a str,
    pub credentials: &'a Credentials<Secret>,
    pub device_id: Option<&'a str>,
}

impl<'a> From<&'a Endpoint<Secret>> for Target<'a> {
    fn from(e: &'a Endpoint<Secret>) -> Self {
        Target {
            base_url: &e.base_url,
            credentials: &e.credentials,
            device_id: e.device_id.as_deref(),
        }
    }
}

/// What to send: also the `content` of the outbound queue's contract
/// ([`crate::outbound::MessageContent`]), so unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Content {
    Text {
        body: String,
    },
    Image {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
    Document {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
}

/// One outbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// Phone number with country code, or a JID (`…@s.whatsapp.net`, `…@g.us`).
    pub to: String,
    pub content: Content,
    /// Provider message id this message replies to.
    pub reply_to: Option<String>,
}

/// The server accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    pub provider_message_id: String,
}

/// One device/session on a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceStatus {
    pub device_id: String,
    pub connected: bool,
    pub logged_in: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jid: Option<String>,
}

/// A device's login QR code: the picture itself (a PNG, fetched from the server through the
/// egress guard) and how long it stays valid.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginQr {
    pub png: Vec<u8>,
    pub expires_in: Duration,
}

impl std::fmt::Debug for LoginQr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginQr")
            .field("png_bytes", &self.png.len())
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Largest QR picture accepted from a server (GOWA's are a few KiB).
pub const MAX_QR_PNG_BYTES: usize = 512 * 1024;

/// A device's own webhook on its server: where it posts its events, the secret it signs them
/// with, and which events (empty: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceWebhook {
    /// Empty when the device has no webhook of its own (the server's global one applies).
    pub url: String,
    pub secret: Secret,
    pub events: Vec<String>,
}

/// What creating a device slot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotOutcome {
    Created,
    /// The slot was already there (nothing changed).
    Existed,
}

/// The class of a failure: what the caller should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The request is wrong and will stay wrong (invalid number, validation): record, do not retry.
    Permanent,
    /// Failed without effect (5xx answer, connection refused): retry, may fail over.
    Retryable,
    /// Maybe delivered (timeout after the request left, 504): never resend blindly.
    Ambiguous,
    /// WhatsApp anti-spam timelock: back off on the same server, never fail over.
    RateLimited,
    /// The device is logged out of WhatsApp: status to update, a backup may help.
    LoggedOut,
    /// The server refused our credentials: configuration problem.
    BadCredentials,
}

impl ErrorClass {
    /// The snake_case name of the class, as records, logs and metrics carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Permanent => "permanent",
            ErrorClass::Retryable => "retryable",
            ErrorClass::Ambiguous => "ambiguous",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::LoggedOut => "logged_out",
            ErrorClass::BadCredentials => "bad_credentials",
        }
    }
}

/// A provider call failed. Messages never contain credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("rejected by the server ({code}): {message}")]
    Permanent { code: String, message: String },
    #[error("failed without effect: {reason}")]
    Retryable {
        reason: String,
        /// `true` when the request never reached the server (connect failure, refused
        /// by the egress guard): safe to send elsewhere.
        before_sent: bool,
    },
    #[error("outcome unknown: {reason}")]
    Ambiguous { reason: String },
    #[error("rate limited by WhatsApp: {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("device is logged out: {message}")]
    LoggedOut { message: String },
    /// HTTP 401 or 403 (other than GOWA's `AUTHENTICATION_ERROR`, which is
    /// [`ProviderError::LoggedOut`]), whatever the body says.
    #[error("the server refused the credentials (HTTP {status})")]
    BadCredentials { status: u16 },
    #[error("egress refused: {0}")]
    Egress(#[from] EgressError),
    /// A file the server cannot fetch by URL with the producer's details (a document's
    /// `filename`) could not be fetched to upload it: the WhatsApp server was not called.
    #[error("the document could not be fetched for upload: {reason}")]
    Media {
        reason: String,
        /// The file's host may answer later (timeout, 5xx); else it never will (404, too
        /// large).
        retryable: bool,
    },
}

impl ProviderError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ProviderError::Permanent { .. }
            | ProviderError::Egress(_)
            | ProviderError::Media {
                retryable: false, ..
            } => ErrorClass::Permanent,
            ProviderError::Media {
                retryable: true, ..
            } => ErrorClass::Retryable,
            ProviderError::Retryable { .. } => ErrorClass::Retryable,
            ProviderError::Ambiguous { .. } => ErrorClass::Ambiguous,
            ProviderError::RateLimited { .. } => ErrorClass::RateLimited,
            ProviderError::LoggedOut { .. } => ErrorClass::LoggedOut,
            ProviderError::BadCredentials { .. } => ErrorClass::BadCredentials,
        }
    }

    /// A capability this kind's client does not have.
    pub fn unsupported(kind: ProviderKind, what: &str) -> Self {
        ProviderError::Permanent {
            code: "UNSUPPORTED".into(),
            message: format!("{what}: not supported for {} servers", kind.as_str()),
        }
    }

    /// The server has no such device (GOWA `DEVICE_NOT_FOUND`).
    pub fn is_device_not_found(&self) -> bool {
        matches!(self, ProviderError::Permanent { code, .. } if code == DEVICE_NOT_FOUND)
    }

    /// Did the request certainly not take effect on the server? (Failover is safe.)
    pub fn certainly_not_sent(&self) -> bool {
        !matches!(self, ProviderError::Ambiguous { .. })
    }
}

/// The error code of a call naming a device the server does not have.
pub const DEVICE_NOT_FOUND: &str = "DEVICE_NOT_FOUND";

/// A WhatsApp API server.
#[async_trait]
pub trait WhatsAppProvider: Send + Sync {
    fn kind(&self) -> ProviderKind;
    async fn send(
        &self,
        target: Target<'_>,
        req: &SendRequest,
    ) -> Result<SendReceipt, ProviderError>;
    /// The target device's status.
    async fn device_status(&self, target: Target<'_>) -> Result<DeviceStatus, ProviderError>;
    /// Every device on the server, in one call where the server allows.
    async fn devices(&self, target: Target<'_>) -> Result<Vec<DeviceStatus>, ProviderError>;
    /// Server health (no device, usually no auth).
    async fn health(&self, target: Target<'_>) -> Result<(), ProviderError>;

    /// The target device's status from its slot: unlike [`Self::device_status`], a device the
    /// server does not have is an error ([`ProviderError::is_device_not_found`]).
    async fn slot_status(&self, target: Target<'_>) -> Result<DeviceStatus, ProviderError> {
        self.device_status(target).await
    }
    /// Creates the target device's slot unless it exists.
    async fn create_device(&self, target: Target<'_>) -> Result<SlotOutcome, ProviderError> {
        let _ = target;
        Err(ProviderError::unsupported(self.kind(), "device slots"))
    }
    /// Starts a QR login of the target device and fetches the QR picture.
    async fn login_qr(&self, target: Target<'_>) -> Result<LoginQr, ProviderError> {
        let _ = target;
        Err(ProviderError::unsupported(self.kind(), "QR login"))
    }
    /// Starts a pairing-code login of the target device for `phone` (digits only); the code
    /// to enter on the phone.
    async fn login_code(&self, target: Target<'_>, phone: &str) -> Result<String, ProviderError> {
        let _ = (target, phone);
        Err(ProviderError::unsupported(
            self.kind(),
            "pairing-code login",
        ))
    }
    /// Logs the target device out of WhatsApp (the slot stays).
    async fn logout(&self, target: Target<'_>) -> Result<(), ProviderError> {
        let _ = target;
        Err(ProviderError::unsupported(self.kind(), "logout"))
    }
    /// Reconnects the target device to WhatsApp.
    async fn reconnect(&self, target: Target<'_>) -> Result<(), ProviderError> {
        let _ = target;
        Err(ProviderError::unsupported(self.kind(), "reconnect"))
    }
    /// The target device's own webhook.
    async fn get_webhook(&self, target: Target<'_>) -> Result<DeviceWebhook, ProviderError> {
        let _ = target;
        Err(ProviderError::unsupported(self.kind(), "device webhooks"))
    }
    /// Sets the target device's own webhook.
    async fn set_webhook(
        &self,
        target: Target<'_>,
        webhook: &DeviceWebhook,
    ) -> Result<(), ProviderError> {
        let _ = (target, webhook);
        Err(ProviderError::unsupported(self.kind(), "device webhooks"))
    }
}

/// One client per provider kind, all over one HTTP client: built once per instance, shared by
/// every request (the sender's sends, the health check's probes, the config API's connection
/// tests). Cheap to clone.
#[derive(Clone)]
pub struct Providers {
    clients: Arc<HashMap<ProviderKind, Arc<dyn WhatsAppProvider>>>,
}

impl Providers {
    /// A client for every kind in [`ProviderKind::ALL`].
    pub fn new(http: HttpClient) -> Self {
        let clients = ProviderKind::ALL
            .iter()
            .map(|kind| {
                let client: Arc<dyn WhatsAppProvider> = match kind {
                    ProviderKind::Gowa => Arc::new(GowaClient::new(http.clone())),
                    ProviderKind::Waha => Arc::new(WahaClient::new(http.clone())),
                    ProviderKind::Evolution => Arc::new(EvolutionClient::new(http.clone())),
                    ProviderKind::Meta => Arc::new(MetaClient::new(http.clone())),
                };
                (*kind, client)
            })
            .collect();
        Self {
            clients: Arc::new(clients),
        }
    }

    /// The client for `kind`, if there is one.
    pub fn get(&self, kind: ProviderKind) -> Option<&dyn WhatsAppProvider> {
        self.clients.get(&kind).map(|c| c.as_ref())
    }
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<&str> = self.clients.keys().map(|k| k.as_str()).collect();
        kinds.sort_unstable();
        f.debug_struct("Providers").field("kinds", &kinds).finish()
    }
}
