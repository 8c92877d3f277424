//! KMS `Encrypt` / `Decrypt` with encryption context `{tenantId, purpose}`: the sealer of every
//! stored secret.

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::{Purpose, SealedSecret, Secret, SecretSealer, SecretsError};

/// KMS `Encrypt` / `Decrypt` with encryption context `{tenantId, purpose}`.
#[derive(Clone, Debug)]
pub struct KmsSealer {
    client: aws_sdk_kms::Client,
    key_id: String,
}

/// The whole error chain of a failed KMS request, as one line (the service's message and the
/// request id; never the plaintext, which KMS errors do not carry).
fn error_text<E, R>(e: aws_sdk_kms::error::SdkError<E, R>) -> String
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    aws_sdk_kms::error::DisplayErrorContext(e).to_string()
}

impl KmsSealer {
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

#[async_trait]
impl SecretSealer for KmsSealer {
    async fn seal(
        &self,
        tenant_id: &str,
        purpose: Purpose,
        secret: &Secret,
    ) -> Result<SealedSecret, SecretsError> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(secret.expose().as_bytes()))
            .encryption_context("tenantId", tenant_id)
            .encryption_context("purpose", purpose.as_str())
            .send()
            .await
            .map_err(|e| SecretsError::seal(tenant_id, purpose, error_text(e)))?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| SecretsError::seal(tenant_id, purpose, "KMS returned no ciphertext"))?;
        Ok(SealedSecret {
            ciphertext: B64.encode(blob.as_ref()),
            fingerprint: secret.fingerprint(),
        })
    }

    async fn open(
        &self,
        tenant_id: &str,
        purpose: Purpose,
        sealed: &SealedSecret,
    ) -> Result<Secret, SecretsError> {
        let bytes =
            B64.decode(sealed.ciphertext.as_bytes())
                .map_err(|_| SecretsError::Corrupt {
                    tenant_id: tenant_id.to_string(),
                    purpose: purpose.as_str(),
                })?;
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(bytes))
            .encryption_context("tenantId", tenant_id)
            .encryption_context("purpose", purpose.as_str())
            .send()
            .await
            .map_err(|e| {
                let refused = e.as_service_error().and_then(|s| {
                    if s.is_invalid_ciphertext_exception() {
                        Some("KMS says the ciphertext is not valid for this tenant and purpose (sealed for another tenant, or damaged)")
                    } else if s.is_incorrect_key_exception() {
                        Some("KMS says the ciphertext was sealed under another key")
                    } else {
                        None
                    }
                });
                match refused {
                    Some(reason) => SecretsError::refused(tenant_id, purpose, reason),
                    None => SecretsError::open(tenant_id, purpose, error_text(e)),
                }
            })?;
        let plain = out
            .plaintext
            .ok_or_else(|| SecretsError::open(tenant_id, purpose, "KMS returned no plaintext"))?;
        let text = String::from_utf8(plain.into_inner()).map_err(|_| {
            SecretsError::refused(tenant_id, purpose, "the opened secret is not UTF-8 text")
        })?;
        Ok(Secret::new(text))
    }
}
