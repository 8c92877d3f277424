//! Per-instance cache of opened tenant configs: the warm path's answer.
//!
//! Within the TTL a read of a cached tenant makes no DynamoDB call and no KMS call. An
//! unknown tenant is remembered too (for a shorter time), so a flood of webhooks to a
//! tenant that does not exist cannot turn into a flood of DynamoDB reads. A changed config
//! reaches a warm instance at the latest one TTL after the change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::store::{StoreError, TenantConfigReader};
use super::{OpenedConfig, SealedConfig, TenantId};
use crate::secrets::{SecretSealer, SecretsError};

/// Opens every secret of a stored config (one KMS call per secret).
pub async fn open_config(
    sealer: &dyn SecretSealer,
    sealed: SealedConfig,
) -> Result<OpenedConfig, SecretsError> {
    let tenant = sealed.tenant_id.as_str().to_string();
    let mut opened = Vec::new();
    for (purpose, secret) in sealed.secret_slots() {
        opened.push(sealer.open(&tenant, purpose, secret).await?);
    }
    Ok(sealed
        .with_secrets(opened)
        .expect("one opened value per slot, by construction"))
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

struct Entry {
    value: Option<Arc<OpenedConfig>>,
    expires: Instant,
}

/// Cache settings.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// How long a found config is served from memory.
    pub ttl: Duration,
    /// How long "no such tenant" is remembered.
    pub negative_ttl: Duration,
    /// Most entries kept; past it, expired entries go first, then arbitrary ones.
    pub max_entries: usize,
}

impl CacheSettings {
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            negative_ttl: ttl.min(Duration::from_secs(10)),
            max_entries: 10_000,
        }
    }
}

/// The cache. Share one per instance (`Arc`).
pub struct ConfigCache {
    reader: Arc<dyn TenantConfigReader>,
    sealer: Arc<dyn SecretSealer>,
    settings: CacheSettings,
    entries: Mutex<HashMap<TenantId, Entry>>,
}

impl ConfigCache {
    pub fn new(
        reader: Arc<dyn TenantConfigReader>,
        sealer: Arc<dyn SecretSealer>,
        settings: CacheSettings,
    ) -> Self {
        Self {
            reader,
            sealer,
            settings,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The opened config of `tenant_id`, `None` if the tenant has none.
    pub async fn get(&self, tenant_id: &TenantId) -> Result<Option<Arc<OpenedConfig>>, CacheError> {
        let now = Instant::now();
        if let Some(e) = self.lock().get(tenant_id)
            && e.expires > now
        {
            return Ok(e.value.clone());
        }
        let loaded = match self.reader.get(tenant_id).await? {
            None => None,
            Some(sealed) => Some(Arc::new(open_config(self.sealer.as_ref(), sealed).await?)),
        };
        self.put(tenant_id.clone(), loaded.clone());
        Ok(loaded)
    }

    /// Drops one tenant (after this instance changed it).
    pub fn invalidate(&self, tenant_id: &TenantId) {
        self.lock().remove(tenant_id);
    }

    /// Number of entries held (found and not-found).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn put(&self, tenant_id: TenantId, value: Option<Arc<OpenedConfig>>) {
        let ttl = if value.is_some() {
            self.settings.ttl
        } else {
            self.settings.negative_ttl
        };
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= self.settings.max_entries && !map.contains_key(&tenant_id) {
            map.retain(|_, e| e.expires > now);
            if map.len() >= self.settings.max_entries
                && let Some(k) = map.keys().next().cloned()
            {
                map.remove(&k);
            }
        }
        map.insert(
            tenant_id,
            Entry {
                value,
                expires: now + ttl,
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent (every write is
        // one insert/remove), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{Purpose, SealedSecret, Secret};
    use crate::tenant::*;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// In-memory fakes for the pure cache logic; the moto-backed test lives in tests/.
    #[derive(Default)]
    struct Fake {
        reads: AtomicUsize,
        opens: AtomicUsize,
        present: bool,
    }

    #[async_trait]
    impl TenantConfigReader for Fake {
        async fn get(&self, id: &TenantId) -> Result<Option<SealedConfig>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.present.then(|| sample(id)))
        }
    }

    #[async_trait]
    impl SecretSealer for Fake {
        async fn seal(
            &self,
            _: &str,
            _: Purpose,
            _: &Secret,
        ) -> Result<SealedSecret, SecretsError> {
            unreachable!()
        }
        async fn open(
            &self,
            _: &str,
            _: Purpose,
            s: &SealedSecret,
        ) -> Result<Secret, SecretsError> {
            self.opens.fetch_add(1, Ordering::SeqCst);
            Ok(Secret::new(s.ciphertext.clone()))
        }
    }

    fn sample(id: &TenantId) -> SealedConfig {
        let sealed = |c: &str| SealedSecret {
            ciphertext: c.into(),
            fingerprint: "****".into(),
        };
        let now = time::OffsetDateTime::UNIX_EPOCH;
        TenantConfig {
            tenant_id: id.clone(),
            provider: ProviderKind::Gowa,
            primary: Endpoint {
                base_url: "https://wa.example.com".into(),
                credentials: Credentials::Basic {
                    username: "u".into(),
                    password: sealed("pw"),
                },
                device_id: None,
                region: None,
                provider: None,
                webhook_source_cidrs: Vec::new(),
            },
            backup: None,
            webhook_secrets: vec![WebhookSecret {
                id: "s1".into(),
                secret: sealed("ws"),
                expires_at: None,
            }],
            active_endpoint: EndpointRole::Primary,
            is_active: true,
            connection_status: ConnectionStatus::Unknown,
            failback: Default::default(),
            limits: Limits::default(),
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    fn cache(fake: Arc<Fake>) -> ConfigCache {
        ConfigCache::new(
            fake.clone(),
            fake,
            CacheSettings {
                ttl: Duration::from_secs(60),
                negative_ttl: Duration::from_secs(5),
                max_entries: 2,
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn serves_from_memory_until_the_ttl_then_reloads() {
        let fake = Arc::new(Fake {
            present: true,
            ..Default::default()
        });
        let c = cache(fake.clone());
        let id: TenantId = "t1".parse().unwrap();
        let first = c.get(&id).await.unwrap().unwrap();
        assert_eq!(first.webhook_secrets[0].secret.expose(), "ws");
        tokio::time::advance(Duration::from_secs(59)).await;
        c.get(&id).await.unwrap().unwrap();
        assert_eq!(fake.reads.load(Ordering::SeqCst), 1);
        assert_eq!(fake.opens.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_secs(2)).await;
        c.get(&id).await.unwrap().unwrap();
        assert_eq!(fake.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn remembers_unknown_tenants_for_the_negative_ttl() {
        let fake = Arc::new(Fake::default());
        let c = cache(fake.clone());
        let id: TenantId = "ghost".parse().unwrap();
        assert!(c.get(&id).await.unwrap().is_none());
        assert!(c.get(&id).await.unwrap().is_none());
        assert_eq!(fake.reads.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(c.get(&id).await.unwrap().is_none());
        assert_eq!(fake.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_forces_a_reload_and_size_stays_bounded() {
        let fake = Arc::new(Fake {
            present: true,
            ..Default::default()
        });
        let c = cache(fake.clone());
        let a: TenantId = "a".parse().unwrap();
        c.get(&a).await.unwrap();
        c.invalidate(&a);
        c.get(&a).await.unwrap();
        assert_eq!(fake.reads.load(Ordering::SeqCst), 2);
        for id in ["b", "c", "d"] {
            c.get(&id.parse().unwrap()).await.unwrap();
        }
        assert!(c.len() <= 2);
    }
}
