//! Tenant secrets: the redacting [`Secret`], the sealed form stored in DynamoDB
//! ([`SealedSecret`]), and the [`SecretSealer`] that seals and opens them.
//!
//! Every secret (server credential, webhook secret) is stored only as ciphertext, sealed under
//! the context `{"tenantId": …, "purpose": …}`. The sealer binds the context to the ciphertext,
//! so a ciphertext copied into another tenant's item (or used for another purpose) fails to
//! open. The KMS implementation is [`kms::KmsSealer`].

pub mod kms;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use kms::KmsSealer;

/// A plaintext secret. `Debug` and `Display` print `***`; it has no `Serialize`, so it can
/// reach a response or a log only through [`Secret::expose`], on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The plaintext. Call it only where the value is sent to the system that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A display-safe fingerprint: the last four characters of a long secret, nothing of a
    /// short one (where four characters would give too much away).
    pub fn fingerprint(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() >= 16 {
            let tail: String = chars[chars.len() - 4..].iter().collect();
            format!("****{tail}")
        } else {
            "****".to_string()
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// What a sealed secret is for; part of the KMS encryption context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A WhatsApp server credential (basic-auth password, API key, bearer token).
    ServerCredential,
    /// A webhook signing secret.
    WebhookSecret,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::ServerCredential => "server-credential",
            Purpose::WebhookSecret => "webhook-secret",
        }
    }
}

/// A secret as stored: KMS ciphertext (base64) plus a display fingerprint.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecret {
    pub ciphertext: String,
    pub fingerprint: String,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("KMS refused to seal a {purpose} secret for tenant {tenant_id}")]
    Seal {
        tenant_id: String,
        purpose: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("a {purpose} secret of tenant {tenant_id} could not be opened")]
    Open {
        tenant_id: String,
        purpose: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("a {purpose} secret of tenant {tenant_id} is not valid base64 ciphertext")]
    Corrupt {
        tenant_id: String,
        purpose: &'static str,
    },
    /// KMS answered that this ciphertext cannot be opened here: it was sealed for another
    /// tenant or purpose (encryption context), under another key, or is damaged. Retrying
    /// does not help; the secret must be set again.
    #[error("a {purpose} secret of tenant {tenant_id} cannot be opened: {reason}")]
    Refused {
        tenant_id: String,
        purpose: &'static str,
        reason: &'static str,
    },
}

impl SecretsError {
    /// Sealing failed (KMS unreachable, throttled or refusing).
    pub fn seal(
        tenant_id: &str,
        purpose: Purpose,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        SecretsError::Seal {
            tenant_id: tenant_id.to_string(),
            purpose: purpose.as_str(),
            source: source.into(),
        }
    }

    /// Opening failed for a reason that may pass (KMS unreachable or throttled).
    pub fn open(
        tenant_id: &str,
        purpose: Purpose,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        SecretsError::Open {
            tenant_id: tenant_id.to_string(),
            purpose: purpose.as_str(),
            source: source.into(),
        }
    }

    /// The ciphertext cannot be opened here, for good ([`SecretsError::Refused`]).
    pub fn refused(tenant_id: &str, purpose: Purpose, reason: &'static str) -> Self {
        SecretsError::Refused {
            tenant_id: tenant_id.to_string(),
            purpose: purpose.as_str(),
            reason,
        }
    }

    /// The stored secret itself is unusable (retrying will not open it), as opposed to
    /// KMS being unreachable or throttling.
    pub fn is_unusable(&self) -> bool {
        matches!(
            self,
            SecretsError::Corrupt { .. } | SecretsError::Refused { .. }
        )
    }
}

/// Seals and opens secrets. The KMS implementation is [`KmsSealer`]; an in-memory one for
/// tests is `crate::testing::MemorySealer` (feature `testing`).
#[async_trait]
pub trait SecretSealer: Send + Sync {
    async fn seal(
        &self,
        tenant_id: &str,
        purpose: Purpose,
        secret: &Secret,
    ) -> Result<SealedSecret, SecretsError>;

    async fn open(
        &self,
        tenant_id: &str,
        purpose: Purpose,
        sealed: &SealedSecret,
    ) -> Result<Secret, SecretsError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2-very-long-password");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
    }

    #[test]
    fn fingerprint_shows_tail_of_long_secrets_only() {
        assert_eq!(
            Secret::new("0123456789abcdefWXYZ").fingerprint(),
            "****WXYZ"
        );
        assert_eq!(Secret::new("short-secret").fingerprint(), "****");
    }

    #[test]
    fn sealed_secret_debug_hides_ciphertext() {
        let s = SealedSecret {
            ciphertext: "Q0lQSEVSVEVYVA==".into(),
            fingerprint: "****".into(),
        };
        assert!(!format!("{s:?}").contains("Q0lQ"));
    }
}
