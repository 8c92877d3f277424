//! Webhook wiring: a device's own webhook on its server pointing at the tenant's wagate URL,
//! signed with a secret the ingress accepts. Inspecting it ([`inspect`]) and setting it and
//! reading it back ([`wire`]) are shared by the config API (device routes, connection test)
//! and the health check (backup readiness).
//!
//! Secrets are compared in constant time and never logged or returned: a [`WiringReport`]
//! says only which check failed.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{DeviceWebhook, ProviderError, Target, WhatsAppProvider};
use crate::secrets::Secret;

/// Events wagate needs from a device. wagate consumes every event (unknown ones are passed on
/// as `other`), so the wiring sets no filter; a filter set by hand that drops one of these is
/// reported as [`WiringState::EventsFiltered`].
pub const REQUIRED_EVENTS: &[&str] = &["message", "message.ack"];

/// Bytes of a webhook secret wagate generates (256 bits).
pub const WIRED_SECRET_BYTES: usize = 32;

/// What a device's webhook is, compared with what wagate expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WiringState {
    /// URL and secret as expected, no filter dropping wagate's events.
    Wired,
    /// The device has no webhook of its own.
    Missing,
    /// The device's webhook goes to another URL.
    PointsElsewhere,
    /// The URL is right but the device signs with a secret the ingress does not accept.
    SecretMismatch,
    /// The URL and secret are right but an event filter drops events wagate needs.
    EventsFiltered,
}

impl WiringState {
    pub fn as_str(self) -> &'static str {
        match self {
            WiringState::Wired => "wired",
            WiringState::Missing => "missing",
            WiringState::PointsElsewhere => "points_elsewhere",
            WiringState::SecretMismatch => "secret_mismatch",
            WiringState::EventsFiltered => "events_filtered",
        }
    }

    /// A sentence for an operator.
    pub fn describe(self) -> &'static str {
        match self {
            WiringState::Wired => {
                "the device posts its events to this tenant's wagate URL, signed with a secret wagate accepts"
            }
            WiringState::Missing => {
                "the device has no webhook of its own: its events go to the server's global webhook, if any"
            }
            WiringState::PointsElsewhere => {
                "the device's webhook points to another URL than this tenant's wagate URL"
            }
            WiringState::SecretMismatch => {
                "the device signs its webhooks with a secret wagate does not accept: they would be refused (401)"
            }
            WiringState::EventsFiltered => {
                "the device's webhook filters out events wagate needs (message, message.ack)"
            }
        }
    }
}

/// Compares a device's webhook with the expected URL and the secrets the ingress accepts
/// (constant time over the secrets; every one is compared).
pub fn compare(found: &DeviceWebhook, url: &str, accepted: &[&Secret]) -> WiringState {
    if found.url.is_empty() {
        return WiringState::Missing;
    }
    if found.url.trim_end_matches('/') != url.trim_end_matches('/') {
        return WiringState::PointsElsewhere;
    }
    let mut matched = subtle::Choice::from(0u8);
    for secret in accepted {
        matched |= found
            .secret
            .expose()
            .as_bytes()
            .ct_eq(secret.expose().as_bytes());
    }
    if !bool::from(matched) || found.secret.is_empty() {
        return WiringState::SecretMismatch;
    }
    let filtered = !found.events.is_empty()
        && REQUIRED_EVENTS
            .iter()
            .any(|e| !found.events.iter().any(|f| f == e));
    if filtered {
        return WiringState::EventsFiltered;
    }
    WiringState::Wired
}

/// Reads the device's webhook and compares it ([`compare`]).
pub async fn inspect(
    provider: &dyn WhatsAppProvider,
    target: Target<'_>,
    url: &str,
    accepted: &[&Secret],
) -> Result<WiringState, ProviderError> {
    let found = provider.get_webhook(target).await?;
    Ok(compare(&found, url, accepted))
}

/// Why wiring failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WiringError {
    /// The server refused or failed the change (or the device does not exist).
    #[error("the server did not take the webhook: {0}")]
    Set(ProviderError),
    /// The change was answered but the read-back failed.
    #[error("the webhook could not be read back: {0}")]
    ReadBack(ProviderError),
    /// The read-back shows something else than what was set.
    #[error("the server answers another webhook than the one set ({})", .0.as_str())]
    Mismatch(WiringState),
}

impl WiringError {
    /// A short code for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            WiringError::Set(e) | WiringError::ReadBack(e) if e.is_device_not_found() => {
                "device_not_found"
            }
            WiringError::Set(_) => "webhook_refused",
            WiringError::ReadBack(_) => "read_back_failed",
            WiringError::Mismatch(_) => "read_back_mismatch",
        }
    }
}

/// Sets the device's webhook to `url` signed with `secret` (no event filter), then reads it
/// back and compares: `Ok` only when the server answers exactly that.
pub async fn wire(
    provider: &dyn WhatsAppProvider,
    target: Target<'_>,
    url: &str,
    secret: &Secret,
) -> Result<(), WiringError> {
    let webhook = DeviceWebhook {
        url: url.to_string(),
        secret: secret.clone(),
        events: Vec::new(),
    };
    provider
        .set_webhook(target, &webhook)
        .await
        .map_err(WiringError::Set)?;
    let state = inspect(provider, target, url, &[secret])
        .await
        .map_err(WiringError::ReadBack)?;
    match state {
        WiringState::Wired => Ok(()),
        other => Err(WiringError::Mismatch(other)),
    }
}

/// A fresh webhook secret: [`WIRED_SECRET_BYTES`] random bytes, hex.
pub fn generate_secret() -> Secret {
    let bytes: [u8; WIRED_SECRET_BYTES] = rand::random();
    Secret::new(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str, secret: &str, events: &[&str]) -> DeviceWebhook {
        DeviceWebhook {
            url: url.into(),
            secret: Secret::new(secret),
            events: events.iter().map(|e| e.to_string()).collect(),
        }
    }

    const URL: &str = "https://wagate.example/webhooks/whatsapp/acme";

    #[test]
    fn each_difference_is_named() {
        let s = Secret::new("s1");
        let old = Secret::new("s0");
        let accepted = [&old, &s];
        assert_eq!(
            compare(&hook(URL, "s1", &[]), URL, &accepted),
            WiringState::Wired
        );
        assert_eq!(
            compare(
                &hook(URL, "s0", &["message", "message.ack", "x"]),
                URL,
                &accepted
            ),
            WiringState::Wired,
            "any accepted secret, a filter that keeps wagate's events"
        );
        assert_eq!(
            compare(&hook("", "", &[]), URL, &accepted),
            WiringState::Missing
        );
        assert_eq!(
            compare(&hook("https://other.example/h", "s1", &[]), URL, &accepted),
            WiringState::PointsElsewhere
        );
        assert_eq!(
            compare(&hook(URL, "s2", &[]), URL, &accepted),
            WiringState::SecretMismatch
        );
        assert_eq!(
            compare(&hook(URL, "", &[]), URL, &[&Secret::new("")]),
            WiringState::SecretMismatch,
            "an unsigned webhook is never wired"
        );
        assert_eq!(
            compare(&hook(URL, "s1", &["message"]), URL, &accepted),
            WiringState::EventsFiltered
        );
    }

    #[test]
    fn generated_secrets_are_256_bits_and_differ() {
        let a = generate_secret();
        assert_eq!(a.len(), 64);
        assert_ne!(a.expose(), generate_secret().expose());
    }
}
