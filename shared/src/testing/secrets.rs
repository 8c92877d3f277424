//! [`MemorySealer`]: seals by keeping the secret in memory under a random handle.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::secrets::{Purpose, SealedSecret, Secret, SecretSealer, SecretsError};

/// A [`SecretSealer`] that keeps each sealed secret in memory. The "ciphertext" is a random
/// handle (nothing of the secret); it opens only for the tenant and purpose it was sealed
/// for, as KMS's encryption context makes a ciphertext copied into another tenant's item
/// fail. A handle it never gave out is refused like damaged ciphertext.
#[derive(Debug, Default)]
pub struct MemorySealer {
    sealed: Mutex<HashMap<String, (String, Purpose, Secret)>>,
    seals: AtomicUsize,
    opens: AtomicUsize,
    unavailable: AtomicBool,
}

impl MemorySealer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Seal calls so far (successful or not).
    pub fn seals(&self) -> usize {
        self.seals.load(Ordering::SeqCst)
    }

    /// Open calls so far (successful or not): what a test asserts instead of KMS `Decrypt`s.
    pub fn opens(&self) -> usize {
        self.opens.load(Ordering::SeqCst)
    }

    /// While set, every call fails as an unreachable KMS would (retryable, not "unusable").
    pub fn set_unavailable(&self, on: bool) {
        self.unavailable.store(on, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Purpose, Secret)>> {
        self.sealed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl SecretSealer for MemorySealer {
    async fn seal(
        &self,
        tenant_id: &str,
        purpose: Purpose,
        secret: &Secret,
    ) -> Result<SealedSecret, SecretsError> {
        self.seals.fetch_add(1, Ordering::SeqCst);
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(SecretsError::seal(tenant_id, purpose, super::UNAVAILABLE));
        }
        let handle = format!("memory-sealed-{}", uuid::Uuid::new_v4().simple());
        self.lock().insert(
            handle.clone(),
            (tenant_id.to_string(), purpose, secret.clone()),
        );
        Ok(SealedSecret {
            ciphertext: handle,
            fingerprint: secret.fingerprint(),
        })
    }

    async fn open(
        &self,
        tenant_id: &str,
        purpose: Purpose,
        sealed: &SealedSecret,
    ) -> Result<Secret, SecretsError> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(SecretsError::open(tenant_id, purpose, super::UNAVAILABLE));
        }
        match self.lock().get(&sealed.ciphertext) {
            Some((t, p, secret)) if t == tenant_id && *p == purpose => Ok(secret.clone()),
            _ => Err(SecretsError::refused(
                tenant_id,
                purpose,
                "the ciphertext is not valid for this tenant and purpose (sealed for another tenant, or damaged)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sealed_secret_opens_only_for_its_tenant_and_purpose() {
        let s = MemorySealer::new();
        let sealed = s
            .seal(
                "acme",
                Purpose::WebhookSecret,
                &Secret::new("hunter2-long-secret"),
            )
            .await
            .unwrap();
        assert!(!sealed.ciphertext.contains("hunter2"));
        assert_eq!(sealed.fingerprint, "****cret");
        let opened = s
            .open("acme", Purpose::WebhookSecret, &sealed)
            .await
            .unwrap();
        assert_eq!(opened.expose(), "hunter2-long-secret");
        for (tenant, purpose) in [
            ("other", Purpose::WebhookSecret),
            ("acme", Purpose::ServerCredential),
        ] {
            let e = s.open(tenant, purpose, &sealed).await.unwrap_err();
            assert!(e.is_unusable(), "{e}");
        }
        s.set_unavailable(true);
        let e = s
            .open("acme", Purpose::WebhookSecret, &sealed)
            .await
            .unwrap_err();
        assert!(!e.is_unusable(), "an outage is not an unusable secret");
        assert_eq!(s.opens(), 4);
    }
}
