//! Verifying a whole webhook request of any kind the tenant runs, before its body is parsed.
//!
//! Which scheme applies is read from the headers, among the kinds of the tenant's endpoints
//! only (a GOWA-only tenant never accepts a WAHA-signed request):
//!
//! | header present | kind | checked |
//! |---|---|---|
//! | `X-Webhook-Hmac` | WAHA | hex HMAC-SHA512 of the raw body with a current webhook secret; `X-Webhook-Timestamp` (ms) **and** the signed body's `timestamp` within the replay window |
//! | `X-Hub-Signature-256` | Meta, then GOWA | `sha256=<hex HMAC-SHA256>` of the raw body: with a Meta endpoint's app secret (Meta), else a current webhook secret (GOWA) |
//! | `Authorization: Bearer` | Evolution | an HS256 JWT keyed with a current webhook secret, `exp` in the future (and `iat` not ahead of the clock by more than the window) |
//!
//! Evolution signs nothing of the body (upstream issue 102): its JWT only shows the sender
//! knew the key within the last 10 minutes, so an Evolution endpoint also needs a source
//! allowlist (`webhookSourceCidrs`, required by the config's validation and checked by the
//! ingress before this). That is weaker than the other kinds, and documented as such.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Sha256, Sha512};
use time::OffsetDateTime;

use super::signature::{SignatureError, verify_sha256};
use crate::secrets::Secret;
use crate::tenant::{Credentials, OpenedConfig, ProviderKind, WebhookSecret};

/// WAHA's signature header.
pub const WAHA_HMAC_HEADER: &str = "x-webhook-hmac";
/// WAHA's timestamp header (Unix milliseconds).
pub const WAHA_TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
/// GOWA's and Meta's signature header.
pub const HUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Evolution's JWT header.
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// Default replay window for WAHA webhooks (and the clock skew allowed on Evolution's `iat`).
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// What passed verification: the kind that signed it and the key that matched (a webhook
/// secret id, or `primary.appSecret` / `backup.appSecret` for Meta).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub kind: ProviderKind,
    pub key_id: String,
}

/// Why a request was refused, finer than [`SignatureError`] (the ingress answers 401 for
/// each and logs the reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("the webhook's timestamp is missing or outside the replay window")]
    Stale,
    #[error("the bearer token has expired")]
    Expired,
}

impl VerifyError {
    /// The plain signature error this refusal reads as.
    pub fn as_signature(self) -> SignatureError {
        match self {
            VerifyError::Signature(e) => e,
            VerifyError::Stale | VerifyError::Expired => SignatureError::Mismatch,
        }
    }
}

/// The kinds of the tenant's endpoints, primary first, each once.
pub fn endpoint_kinds(cfg: &OpenedConfig) -> Vec<ProviderKind> {
    let mut kinds = Vec::new();
    for e in std::iter::once(&cfg.primary).chain(cfg.backup.as_ref()) {
        let k = cfg.kind_of(e);
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    kinds
}

/// The app secrets of the tenant's Meta endpoints, as webhook secrets named by role.
fn meta_app_secrets(cfg: &OpenedConfig) -> Vec<WebhookSecret<Secret>> {
    [
        ("primary.appSecret", Some(&cfg.primary)),
        ("backup.appSecret", cfg.backup.as_ref()),
    ]
    .into_iter()
    .filter_map(|(id, e)| match e.map(|e| &e.credentials) {
        Some(Credentials::Meta { app_secret, .. }) => Some(WebhookSecret {
            id: id.to_string(),
            secret: app_secret.clone(),
            expires_at: None,
        }),
        _ => None,
    })
    .collect()
}

/// Verifies a webhook request for `cfg` (`header` looks a header up by its lowercase name).
pub fn verify_webhook<'h>(
    cfg: &OpenedConfig,
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    now: OffsetDateTime,
    replay_window: Duration,
) -> Result<Verified, VerifyError> {
    let kinds = endpoint_kinds(cfg);
    let has = |k| kinds.contains(&k);
    if has(ProviderKind::Waha)
        && let Some(mac) = header(WAHA_HMAC_HEADER)
    {
        let key_id = verify_sha512_hex(mac, body, &cfg.webhook_secrets, now)?;
        check_waha_timestamps(header(WAHA_TIMESTAMP_HEADER), body, now, replay_window)?;
        return Ok(Verified {
            kind: ProviderKind::Waha,
            key_id: key_id.to_string(),
        });
    }
    if let Some(sig) = header(HUB_SIGNATURE_HEADER)
        && (has(ProviderKind::Meta) || has(ProviderKind::Gowa))
    {
        if has(ProviderKind::Meta) {
            let apps = meta_app_secrets(cfg);
            match verify_sha256(Some(sig), body, &apps, now) {
                Ok(id) => {
                    return Ok(Verified {
                        kind: ProviderKind::Meta,
                        key_id: id.to_string(),
                    });
                }
                Err(SignatureError::Mismatch) if has(ProviderKind::Gowa) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let id = verify_sha256(Some(sig), body, &cfg.webhook_secrets, now)?;
        return Ok(Verified {
            kind: ProviderKind::Gowa,
            key_id: id.to_string(),
        });
    }
    if has(ProviderKind::Evolution)
        && let Some(auth) = header(AUTHORIZATION_HEADER)
    {
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .ok_or(SignatureError::Malformed)?;
        let key_id = verify_hs256_jwt(token.trim(), &cfg.webhook_secrets, now, replay_window)?;
        return Ok(Verified {
            kind: ProviderKind::Evolution,
            key_id: key_id.to_string(),
        });
    }
    Err(SignatureError::Missing.into())
}

/// WAHA's `X-Webhook-Hmac`: lowercase (any case accepted) hex HMAC-SHA512 of the body.
pub fn verify_sha512_hex<'a>(
    header: &str,
    body: &[u8],
    secrets: &'a [WebhookSecret<Secret>],
    now: OffsetDateTime,
) -> Result<&'a str, SignatureError> {
    let mut mac = [0u8; 64];
    hex::decode_to_slice(header.trim(), &mut mac).map_err(|_| SignatureError::Malformed)?;
    for s in secrets.iter().filter(|s| s.is_current(now)) {
        let mut m = <Hmac<Sha512> as KeyInit>::new_from_slice(s.secret.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        m.update(body);
        if m.verify_slice(&mac).is_ok() {
            return Ok(&s.id);
        }
    }
    Err(SignatureError::Mismatch)
}

/// Lowercase hex HMAC-SHA512 of `body` under `secret` (simulators, tests, tools).
pub fn sign_sha512_hex(secret: &[u8], body: &[u8]) -> String {
    let mut m = <Hmac<Sha512> as KeyInit>::new_from_slice(secret).expect("any key length");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

fn within(ms: i128, now: OffsetDateTime, window: Duration) -> bool {
    let now_ms = now.unix_timestamp_nanos() / 1_000_000;
    (now_ms - ms).unsigned_abs() <= window.as_millis()
}

/// The header's timestamp and the signed body's `timestamp` (both ms) within the window:
/// the header alone is not signed, so a replay could carry a fresh one; the body's is.
fn check_waha_timestamps(
    header: Option<&str>,
    body: &[u8],
    now: OffsetDateTime,
    window: Duration,
) -> Result<(), VerifyError> {
    let h: i128 = header
        .and_then(|v| v.trim().parse().ok())
        .ok_or(VerifyError::Stale)?;
    if !within(h, now, window) {
        return Err(VerifyError::Stale);
    }
    // The body's timestamp, when the body is the documented envelope; a body that is not
    // JSON is refused later as malformed.
    if let Ok(v) = serde_json::from_slice::<Value>(body)
        && let Some(ts) = v.get("timestamp").and_then(Value::as_i64)
        && !within(i128::from(ts), now, window)
    {
        return Err(VerifyError::Stale);
    }
    Ok(())
}

/// An HS256 JWT (`header.claims.signature`, base64url) keyed with any current secret, with
/// `exp` after `now` and `iat` (when present) not ahead of `now` by more than `skew`.
pub fn verify_hs256_jwt<'a>(
    token: &str,
    secrets: &'a [WebhookSecret<Secret>],
    now: OffsetDateTime,
    skew: Duration,
) -> Result<&'a str, VerifyError> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SignatureError::Malformed.into());
    };
    let header: Value = b64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(SignatureError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(SignatureError::Malformed.into());
    }
    let sig = b64.decode(sig).map_err(|_| SignatureError::Malformed)?;
    let signed = &token.as_bytes()[..h.len() + 1 + c.len()];
    let key_id = secrets
        .iter()
        .filter(|s| s.is_current(now))
        .find(|s| {
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(s.secret.expose().as_bytes())
                .expect("HMAC takes a key of any length");
            m.update(signed);
            m.verify_slice(&sig).is_ok()
        })
        .map(|s| s.id.as_str())
        .ok_or(SignatureError::Mismatch)?;
    let claims: Value = b64
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(SignatureError::Malformed)?;
    let now_s = now.unix_timestamp();
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > now_s => {}
        _ => return Err(VerifyError::Expired),
    }
    if let Some(iat) = claims.get("iat").and_then(Value::as_i64)
        && iat > now_s + skew.as_secs() as i64
    {
        return Err(VerifyError::Expired);
    }
    Ok(key_id)
}

/// An HS256 JWT over `claims` with `secret` (tests and tools).
pub fn sign_hs256_jwt(secret: &[u8], claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing = format!("{head}.{body}");
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    m.update(signing.as_bytes());
    format!("{signing}.{}", b64.encode(m.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn secrets() -> Vec<WebhookSecret<Secret>> {
        vec![WebhookSecret {
            id: "s1".into(),
            secret: Secret::new("jwt-secret-of-tenant-42".to_string()),
            expires_at: None,
        }]
    }

    #[test]
    fn a_jwt_is_checked_for_its_key_and_expiry() {
        let now = datetime!(2026-08-22 10:16:00 UTC);
        let t = now.unix_timestamp();
        let good = sign_hs256_jwt(
            b"jwt-secret-of-tenant-42",
            &serde_json::json!({"iat": t, "exp": t + 600, "app": "evolution"}),
        );
        assert_eq!(
            verify_hs256_jwt(&good, &secrets(), now, DEFAULT_REPLAY_WINDOW),
            Ok("s1")
        );
        let expired = sign_hs256_jwt(
            b"jwt-secret-of-tenant-42",
            &serde_json::json!({"iat": t - 700, "exp": t - 100}),
        );
        assert_eq!(
            verify_hs256_jwt(&expired, &secrets(), now, DEFAULT_REPLAY_WINDOW),
            Err(VerifyError::Expired)
        );
        let other = sign_hs256_jwt(b"another-key", &serde_json::json!({"exp": t + 600}));
        assert_eq!(
            verify_hs256_jwt(&other, &secrets(), now, DEFAULT_REPLAY_WINDOW),
            Err(VerifyError::Signature(SignatureError::Mismatch))
        );
        let none_alg = format!(
            "{}.{}.",
            "eyJhbGciOiJub25lIn0",
            good.split('.').nth(1).unwrap()
        );
        assert!(verify_hs256_jwt(&none_alg, &secrets(), now, DEFAULT_REPLAY_WINDOW).is_err());
    }

    #[test]
    fn sha512_hex_matches_the_documented_sample() {
        // tests/fixtures/waha/SIGNATURES.md: waha-message-ack-device.json, key my-secret-key.
        let body = include_bytes!("../../../tests/fixtures/waha/waha-message-ack-device.json");
        let mac = sign_sha512_hex(b"my-secret-key", body);
        assert_eq!(
            mac,
            "439d3d53bd9621923d1284a695e18c848e0854a192dfb94c4a4765ffac036cdd64be2ef73e0cd31d0a2f43396d80084f340e75de25833d3bca3d38056f44bab7"
        );
    }
}
