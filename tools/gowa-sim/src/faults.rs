//! Faults the simulator can inject. `Faults::default()` is a healthy server.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long GOWA waits on WhatsApp before answering 504 (`middleware.DefaultRequestTimeout`).
pub const GOWA_REQUEST_TIMEOUT: Duration = Duration::from_secs(45);

/// Injected misbehaviour of the GOWA API. Changed at run time with
/// [`crate::SimHandle::set_faults`] or `PUT /_sim/faults`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay added before answering every GOWA route, `/health` included.
    pub latency_ms: u64,
    /// Make sends (`/send/*`) fail.
    pub send_error: Option<SendErrorFault>,
    /// Accept every GOWA request and never answer it (client timeouts).
    pub hang: bool,
    /// Hold every GOWA request (logged on arrival) until this fault is cleared, then answer
    /// it as usual: a test gate that orders the server's answer after other work without
    /// guessing how long that work takes.
    pub hold: bool,
    /// `GET /health` answers 503 `Service Unavailable`.
    pub health_unhealthy: bool,
    /// Delay before an injected 504; `None` waits GOWA's own 45 s.
    pub gateway_timeout_ms: Option<u64>,
    /// Make sends fail with one of the kind's own error answers, named by its code (Meta
    /// `130429`, `131056`, `190`, …; WAHA `463`, `475`; Evolution `connection_closed`, …; see
    /// the simulator's README for each kind's list). Not for GOWA (use `send_error`).
    pub provider_error: Option<ProviderErrorFault>,
    /// Accept sends, then report them failed in a receipt (Meta `statuses` `failed` with the
    /// code, e.g. `131047` re-engagement or `131026` undeliverable; WAHA `message.ack` `ERROR`;
    /// Evolution `messages.update` `ERROR`). GOWA forwards no failure receipts.
    pub delivery_failure: Option<DeliveryFailureFault>,
    /// Every authenticated route answers the kind's expired-credential error (Meta 401 code
    /// 190 subcode 463, the others their 401).
    pub credentials_expired: bool,
    /// Recipients (digits, no `+`) that are not on WhatsApp: GOWA and Evolution refuse the
    /// send (400), WAHA and Meta accept it and report it failed (WAHA ack `ERROR`, Meta
    /// `131026`).
    pub not_on_whatsapp: Vec<String>,
    /// GOWA's device webhook routes misbehave (`/devices/{id}/webhook`).
    pub device_webhook: Option<DeviceWebhookFault>,
    /// GOWA's QR picture (`/statics/images/qrcode/...`) is not what a login linked to.
    pub qr_image: Option<QrImageFault>,
    /// A seeded mix of faults drawn per send (5xx, reset, accept-then-hang, 429, logged
    /// out, slow): see [`crate::chaos`].
    pub chaos: Option<crate::chaos::Chaos>,
}

/// How GOWA's device webhook routes misbehave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceWebhookFault {
    /// `PATCH` answers 500 `INTERNAL_SERVER_ERROR` and changes nothing.
    Refuse,
    /// `PATCH` is taken, but `GET` answers another URL.
    OtherUrl,
    /// `PATCH` is taken, but `GET` answers another secret.
    OtherSecret,
}

/// What the QR picture is instead of a PNG.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QrImageFault {
    /// A GIF (`image/gif`).
    NotPng,
    /// A PNG of 1 MiB.
    Oversize,
}

impl Faults {
    /// The delay before an injected 504.
    pub fn gateway_timeout(&self) -> Duration {
        self.gateway_timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(GOWA_REQUEST_TIMEOUT)
    }
}

/// Sends that fail with one status, with a probability and optionally only for a few sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendErrorFault {
    /// The failure to answer with.
    pub status: SendErrorStatus,
    /// Probability in `0.0..=1.0` that a send covered by the fault fails (clamped).
    #[serde(default = "always")]
    pub rate: f64,
    /// Cover only the next N sends (each send uses one, failed or not); `None` covers all.
    #[serde(default)]
    pub count: Option<u32>,
}

fn always() -> f64 {
    1.0
}

impl SendErrorFault {
    /// Every send fails with `status` until the fault is cleared.
    pub fn always(status: SendErrorStatus) -> Self {
        Self {
            status,
            rate: 1.0,
            count: None,
        }
    }

    /// Only the next `count` sends fail with `status`; later ones succeed.
    pub fn next(count: u32, status: SendErrorStatus) -> Self {
        Self {
            status,
            rate: 1.0,
            count: Some(count),
        }
    }
}

/// Sends that answer the kind's own error, for the next `count` sends (all while `None`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderErrorFault {
    /// The kind's error code, as a string (`"131056"`, `"463"`, `"connection_closed"`).
    pub code: String,
    /// Cover only the next N sends; `None` covers all.
    #[serde(default)]
    pub count: Option<u32>,
}

impl ProviderErrorFault {
    /// Every send answers `code` until the fault is cleared.
    pub fn always(code: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            count: None,
        }
    }

    /// The next `count` sends answer `code`.
    pub fn next(count: u32, code: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            count: Some(count),
        }
    }
}

/// Sends that are accepted and then reported failed in a receipt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryFailureFault {
    /// Meta's error code in `statuses[].errors[]` (default `131026`); the other kinds carry
    /// no code in their failure receipts.
    #[serde(default)]
    pub code: Option<String>,
    /// Cover only the next N sends; `None` covers all.
    #[serde(default)]
    pub count: Option<u32>,
}

impl DeliveryFailureFault {
    /// The next `count` sends fail after acceptance with `code`.
    pub fn next(count: u32, code: impl Into<String>) -> Self {
        Self {
            code: Some(code.into()),
            count: Some(count),
        }
    }
}

/// The failures a send can be made to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum SendErrorStatus {
    /// 429: GOWA `WA_REACHOUT_TIMELOCK` (WhatsApp's anti-spam block, server error 463); the
    /// other kinds answer what a rate limiter in front of them answers (see the README).
    TooManyRequests,
    /// 500 `INTERNAL_SERVER_ERROR`.
    InternalServerError,
    /// 502 from a reverse proxy in front of GOWA (HTML page).
    BadGateway,
    /// 503 from a reverse proxy in front of GOWA (HTML page).
    ServiceUnavailable,
    /// 504 `GATEWAY_TIMEOUT`, after [`Faults::gateway_timeout`].
    GatewayTimeout,
}

impl SendErrorStatus {
    /// The HTTP status code.
    pub fn code(self) -> u16 {
        match self {
            Self::TooManyRequests => 429,
            Self::InternalServerError => 500,
            Self::BadGateway => 502,
            Self::ServiceUnavailable => 503,
            Self::GatewayTimeout => 504,
        }
    }
}

impl From<SendErrorStatus> for u16 {
    fn from(status: SendErrorStatus) -> Self {
        status.code()
    }
}

impl TryFrom<u16> for SendErrorStatus {
    type Error = String;

    fn try_from(code: u16) -> Result<Self, Self::Error> {
        match code {
            429 => Ok(Self::TooManyRequests),
            500 => Ok(Self::InternalServerError),
            502 => Ok(Self::BadGateway),
            503 => Ok(Self::ServiceUnavailable),
            504 => Ok(Self::GatewayTimeout),
            other => Err(format!(
                "send_error.status must be 429, 500, 502, 503 or 504, not {other}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_faults_are_healthy() {
        let faults = Faults::default();
        assert_eq!(faults.latency_ms, 0);
        assert!(faults.send_error.is_none() && !faults.hang && !faults.health_unhealthy);
        assert_eq!(faults.gateway_timeout(), GOWA_REQUEST_TIMEOUT);
    }

    #[test]
    fn send_error_status_reads_and_writes_plain_codes() {
        let fault: SendErrorFault = serde_json::from_str(r#"{"status":429,"count":2}"#).unwrap();
        assert_eq!(
            fault,
            SendErrorFault::next(2, SendErrorStatus::TooManyRequests)
        );
        assert_eq!(
            serde_json::to_value(&fault).unwrap()["status"],
            serde_json::json!(429)
        );
    }

    #[test]
    fn unsupported_send_error_status_is_rejected() {
        assert!(serde_json::from_str::<SendErrorFault>(r#"{"status":418}"#).is_err());
    }
}
