//! The HMAC signature schemes webhooks use, shared by the provider kinds that sign the same
//! way: `sha256=<hex HMAC-SHA256(raw body)>` (GOWA's and Meta's `X-Hub-Signature-256`).
//! We verify over the exact raw bytes, decode the hex (so case does not matter) and compare
//! MACs in constant time (`Mac::verify_slice`), against every secret the tenant currently
//! holds (rotation).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::secrets::Secret;
use crate::tenant::WebhookSecret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is missing")]
    Missing,
    #[error("signature header must be sha256=<hex>")]
    Malformed,
    #[error("signature does not match any current secret")]
    Mismatch,
    /// Webhooks of this server kind are not accepted by this build (nothing is verified,
    /// so nothing is taken).
    #[error("webhooks of this server kind are not accepted")]
    UnsupportedKind,
}

/// The MAC bytes of a `sha256=<hex>` header value.
pub fn parse_sha256_header(value: &str) -> Result<[u8; 32], SignatureError> {
    let hex_part = value
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).map_err(|_| SignatureError::Malformed)?;
    Ok(out)
}

/// Verifies `header` over `body` against every secret current at `now`; returns the id of
/// the secret that matched.
pub fn verify_sha256<'a>(
    header: Option<&str>,
    body: &[u8],
    secrets: &'a [WebhookSecret<Secret>],
    now: OffsetDateTime,
) -> Result<&'a str, SignatureError> {
    let mac = parse_sha256_header(header.ok_or(SignatureError::Missing)?)?;
    for s in secrets.iter().filter(|s| s.is_current(now)) {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(s.secret.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        m.update(body);
        if m.verify_slice(&mac).is_ok() {
            return Ok(&s.id);
        }
    }
    Err(SignatureError::Mismatch)
}

/// `sha256=<lowercase hex>` for `body` under `secret` (simulators, tests, tools).
pub fn sign_sha256(secret: &[u8], body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn secret(id: &str, value: &str, expires: Option<OffsetDateTime>) -> WebhookSecret<Secret> {
        WebhookSecret {
            id: id.into(),
            secret: Secret::new(value),
            expires_at: expires,
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-08-22 12:00 UTC);

    #[test]
    fn accepts_the_matching_secret_and_names_it() {
        let body = br#"{"a":1}"#;
        let secrets = [secret("old", "one", None), secret("new", "two", None)];
        let sig = sign_sha256(b"two", body);
        assert_eq!(verify_sha256(Some(&sig), body, &secrets, NOW), Ok("new"));
    }

    #[test]
    fn uppercase_hex_is_the_same_mac() {
        let body = b"x";
        let sig = sign_sha256(b"k", body)
            .to_uppercase()
            .replace("SHA256=", "sha256=");
        assert_eq!(
            verify_sha256(Some(&sig), body, &[secret("a", "k", None)], NOW),
            Ok("a")
        );
    }

    #[test]
    fn refuses_wrong_prefix_bad_hex_and_short_macs() {
        let s = [secret("a", "k", None)];
        for h in [
            "sha1=00",
            "SHA256=00",
            "sha256=zz",
            "sha256=abcd",
            "",
            &sign_sha256(b"k", b"x")[7..],
        ] {
            assert_eq!(
                verify_sha256(Some(h), b"x", &s, NOW),
                Err(SignatureError::Malformed),
                "{h}"
            );
        }
        assert_eq!(
            verify_sha256(None, b"x", &s, NOW),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn an_expired_secret_no_longer_verifies() {
        let body = b"x";
        let sig = sign_sha256(b"old", body);
        let s = [
            secret("old", "old", Some(datetime!(2026-08-22 12:00 UTC))),
            secret("new", "new", None),
        ];
        assert_eq!(
            verify_sha256(Some(&sig), body, &s, datetime!(2026-08-22 11:59 UTC)),
            Ok("old")
        );
        assert_eq!(
            verify_sha256(Some(&sig), body, &s, NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_tampered_byte_fails() {
        let sig = sign_sha256(b"k", b"hello");
        assert_eq!(
            verify_sha256(Some(&sig), b"hellp", &[secret("a", "k", None)], NOW),
            Err(SignatureError::Mismatch)
        );
    }
}
