//! Per-instance cache of opened tenant configs: the warm path's answer.
//!
//! Within the TTL a read of a cached tenant makes no DynamoDB call and no KMS call. An
//! unknown tenant is remembered too (for a shorter time), so a flood of webhooks to a
//! tenant that does not exist cannot turn into a flood of DynamoDB reads. A changed config
//! reaches a warm instance at the latest one TTL after the change.
//!
//! A function opens only the secrets it uses ([`Opens`]): the ingress only the webhook
//! secrets (its cold path is one GetItem and one KMS Decrypt per webhook secret, one in the
//! steady state of a tenant), the sender only the active endpoint's server credential (the
//! other endpoint's is opened on first use, at failover: [`Loaded::credentials`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::OnceCell;

use super::store::{StoreError, TenantConfigReader};
use super::{Credentials, EndpointRole, OpenedConfig, SealedConfig, TenantId};
use crate::secrets::{Purpose, SealedSecret, Secret, SecretSealer, SecretsError};

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

/// Which of a tenant's secrets a function opens when it loads the tenant's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Opens {
    /// Every secret, at load (one KMS call per secret).
    #[default]
    All,
    /// Only the webhook secrets: the ingress verifies signatures and never calls a WhatsApp
    /// server. The config it is given carries no server credentials
    /// ([`Credentials::None`] in both endpoints, but a Meta endpoint's app secret and verify
    /// token, sealed as webhook secrets, with an empty token); [`Loaded::credentials`] would
    /// open them.
    WebhookSecrets,
    /// Only the active endpoint's server credential: the sender. The config carries no
    /// webhook secrets and no credential for the other endpoint; take every credential from
    /// [`Loaded::credentials`], which opens the other one on first use (at failover).
    ActiveCredential,
}

/// A loaded tenant: the config with the secrets its function opens, and the endpoints'
/// credentials, each opened at most once per load.
pub struct Loaded {
    /// The config; which secrets it carries depends on [`Opens`].
    pub config: Arc<OpenedConfig>,
    sealed: [Option<Credentials<SealedSecret>>; 2],
    opened: [OnceCell<Credentials<Secret>>; 2],
    sealer: Arc<dyn SecretSealer>,
}

impl Loaded {
    /// The server credentials of the endpoint in `role` (the primary's if there is no
    /// backup), opened now if the load did not open them, then kept with this load.
    pub async fn credentials(
        &self,
        role: EndpointRole,
    ) -> Result<&Credentials<Secret>, SecretsError> {
        let i = slot(role, self.sealed[1].is_some());
        let sealed = self.sealed[i].as_ref().unwrap_or(&Credentials::None);
        let tenant = self.config.tenant_id.as_str();
        self.opened[i]
            .get_or_try_init(|| sealed.open(|purpose, s| self.sealer.open(tenant, purpose, s)))
            .await
    }
}

fn slot(role: EndpointRole, has_backup: bool) -> usize {
    match role {
        EndpointRole::Backup if has_backup => 1,
        _ => 0,
    }
}

/// Opens what `opens` asks of a stored config.
async fn load(
    sealer: &Arc<dyn SecretSealer>,
    sealed: SealedConfig,
    opens: Opens,
) -> Result<Loaded, SecretsError> {
    let creds = [
        Some(sealed.primary.credentials.clone()),
        sealed.backup.as_ref().map(|b| b.credentials.clone()),
    ];
    let loaded = |config: OpenedConfig| Loaded {
        config: Arc::new(config),
        sealed: creds,
        opened: [OnceCell::new(), OnceCell::new()],
        sealer: sealer.clone(),
    };
    match opens {
        Opens::All => {
            let config = open_config(sealer.as_ref(), sealed).await?;
            let opened = [
                OnceCell::new_with(Some(config.primary.credentials.clone())),
                OnceCell::new_with(config.backup.as_ref().map(|b| b.credentials.clone())),
            ];
            let mut l = loaded(config);
            l.opened = opened;
            Ok(l)
        }
        Opens::WebhookSecrets => {
            let tenant = sealed.tenant_id.as_str().to_string();
            let mut secrets = Vec::with_capacity(sealed.webhook_secrets.len());
            for w in &sealed.webhook_secrets {
                secrets.push(
                    sealer
                        .open(&tenant, Purpose::WebhookSecret, &w.secret)
                        .await?,
                );
            }
            // A Meta endpoint's app secret and verify token are webhook secrets too (sealed for
            // that purpose inside its credentials): the ingress needs them, never its token.
            let inbound = [
                inbound_credentials(sealer, &tenant, Some(&sealed.primary.credentials)).await?,
                inbound_credentials(
                    sealer,
                    &tenant,
                    sealed.backup.as_ref().map(|b| &b.credentials),
                )
                .await?,
            ];
            let mut config = without_secrets(sealed, None, secrets);
            let [primary, backup] = inbound;
            if let Some(c) = primary {
                config.primary.credentials = c;
            }
            if let (Some(b), Some(c)) = (config.backup.as_mut(), backup) {
                b.credentials = c;
            }
            Ok(loaded(config))
        }
        Opens::ActiveCredential => {
            let l = loaded(without_secrets(sealed.clone(), None, Vec::new()));
            let role = sealed.active_endpoint;
            let active = l.credentials(role).await?.clone();
            let config = without_secrets(sealed, Some((role, active)), Vec::new());
            Ok(Loaded {
                config: Arc::new(config),
                ..l
            })
        }
    }
}

/// What the ingress needs of an endpoint's credentials: a Meta endpoint's app secret and
/// verify token (its token left empty, never opened); `None` for every other kind.
async fn inbound_credentials(
    sealer: &Arc<dyn SecretSealer>,
    tenant: &str,
    creds: Option<&Credentials<SealedSecret>>,
) -> Result<Option<Credentials<Secret>>, SecretsError> {
    let Some(creds @ Credentials::Meta { .. }) = creds else {
        return Ok(None);
    };
    let opened = creds
        .open(|purpose, s| async move {
            match purpose {
                Purpose::WebhookSecret => sealer.open(tenant, purpose, s).await,
                _ => Ok(Secret::new(String::new())),
            }
        })
        .await?;
    Ok(Some(opened))
}

/// The config with no server credential (but `active`'s, if given) and `webhook` as the
/// webhook secrets (in order; empty drops them all).
fn without_secrets(
    sealed: SealedConfig,
    active: Option<(EndpointRole, Credentials<Secret>)>,
    webhook: Vec<Secret>,
) -> OpenedConfig {
    let has_backup = sealed.backup.is_some();
    let (active_slot, mut active_creds) = match active {
        Some((role, c)) => (Some(slot(role, has_backup)), Some(c)),
        None => (None, None),
    };
    let mut take = |i: usize| {
        if active_slot == Some(i) {
            active_creds.take().unwrap_or(Credentials::None)
        } else {
            Credentials::None
        }
    };
    let endpoint = |e: super::Endpoint<SealedSecret>, creds| super::Endpoint {
        base_url: e.base_url,
        credentials: creds,
        device_id: e.device_id,
        region: e.region,
        webhook_source_cidrs: e.webhook_source_cidrs,
        webhook_wiring: e.webhook_wiring,
        provider: e.provider,
    };
    let primary = endpoint(sealed.primary, take(0));
    let backup = sealed.backup.map(|b| endpoint(b, take(1)));
    let webhook_secrets = if webhook.is_empty() {
        Vec::new()
    } else {
        sealed
            .webhook_secrets
            .into_iter()
            .zip(webhook)
            .map(|(w, secret)| super::WebhookSecret {
                id: w.id,
                secret,
                expires_at: w.expires_at,
            })
            .collect()
    };
    super::TenantConfig {
        tenant_id: sealed.tenant_id,
        provider: sealed.provider,
        primary,
        backup,
        webhook_secrets,
        active_endpoint: sealed.active_endpoint,
        is_active: sealed.is_active,
        connection_status: sealed.connection_status,
        failback: sealed.failback,
        limits: sealed.limits,
        version: sealed.version,
        created_at: sealed.created_at,
        updated_at: sealed.updated_at,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

struct Entry {
    value: Option<Arc<Loaded>>,
    expires: Instant,
    loaded: Instant,
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
    /// Which secrets a load opens.
    pub opens: Opens,
}

impl CacheSettings {
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            negative_ttl: ttl.min(Duration::from_secs(10)),
            max_entries: 10_000,
            opens: Opens::All,
        }
    }

    /// The same settings, opening only `opens`.
    pub fn opening(self, opens: Opens) -> Self {
        Self { opens, ..self }
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
    /// Which secrets it carries: [`CacheSettings::opens`].
    pub async fn get(&self, tenant_id: &TenantId) -> Result<Option<Arc<OpenedConfig>>, CacheError> {
        Ok(self.load(tenant_id).await?.map(|l| l.config.clone()))
    }

    /// The loaded tenant (its config and its endpoints' credentials), `None` if the tenant
    /// has none.
    pub async fn load(&self, tenant_id: &TenantId) -> Result<Option<Arc<Loaded>>, CacheError> {
        let now = Instant::now();
        if let Some(e) = self.lock().get(tenant_id)
            && e.expires > now
        {
            return Ok(e.value.clone());
        }
        let loaded = match self.reader.get(tenant_id).await? {
            None => None,
            Some(sealed) => Some(Arc::new(
                load(&self.sealer, sealed, self.settings.opens).await?,
            )),
        };
        self.put(tenant_id.clone(), loaded.clone());
        Ok(loaded)
    }

    /// The tenant's config read again from the store, bypassing the TTL, but only when the
    /// held entry was loaded at least `min_age` ago (or none is held); `Ok(None)` when the
    /// held entry is younger (nothing read). For the ingress: a signature that matches none of
    /// the cached secrets may be signed with one the config API added since (a rotation, a
    /// device re-wired with a new secret), so the config is re-read once, at most once per
    /// `min_age` per tenant and instance (junk cannot turn into a read per request).
    pub async fn reload_if_older(
        &self,
        tenant_id: &TenantId,
        min_age: Duration,
    ) -> Result<Option<Option<Arc<OpenedConfig>>>, CacheError> {
        let now = Instant::now();
        if let Some(e) = self.lock().get(tenant_id)
            && now.duration_since(e.loaded) < min_age
        {
            return Ok(None);
        }
        let loaded = match self.reader.get(tenant_id).await? {
            None => None,
            Some(sealed) => Some(Arc::new(
                load(&self.sealer, sealed, self.settings.opens).await?,
            )),
        };
        self.put(tenant_id.clone(), loaded.clone());
        Ok(Some(loaded.map(|l| l.config.clone())))
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

    fn put(&self, tenant_id: TenantId, value: Option<Arc<Loaded>>) {
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
                loaded: now,
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
        /// Give the tenant a backup endpoint (password `bpw`) and make it the active one.
        on_backup: bool,
        opened: std::sync::Mutex<Vec<(&'static str, String)>>,
    }

    #[async_trait]
    impl TenantConfigReader for Fake {
        async fn get(&self, id: &TenantId) -> Result<Option<SealedConfig>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.present.then(|| {
                let mut c = sample(id);
                if self.on_backup {
                    let mut b = c.primary.clone();
                    b.base_url = "https://backup.example.com".into();
                    b.credentials = Credentials::Basic {
                        username: "u".into(),
                        password: SealedSecret {
                            ciphertext: "bpw".into(),
                            fingerprint: "****".into(),
                        },
                    };
                    c.backup = Some(b);
                    c.active_endpoint = EndpointRole::Backup;
                }
                c
            }))
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
            p: Purpose,
            s: &SealedSecret,
        ) -> Result<Secret, SecretsError> {
            self.opens.fetch_add(1, Ordering::SeqCst);
            self.opened
                .lock()
                .unwrap()
                .push((p.as_str(), s.ciphertext.clone()));
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
                webhook_wiring: Default::default(),
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
                opens: Opens::All,
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

    fn opening(fake: Arc<Fake>, opens: Opens) -> ConfigCache {
        ConfigCache::new(
            fake.clone(),
            fake,
            CacheSettings::with_ttl(Duration::from_secs(60)).opening(opens),
        )
    }

    #[tokio::test]
    async fn the_ingress_opens_only_the_webhook_secrets() {
        let fake = Arc::new(Fake {
            present: true,
            ..Default::default()
        });
        let c = opening(fake.clone(), Opens::WebhookSecrets);
        let cfg = c.get(&"t1".parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(
            *fake.opened.lock().unwrap(),
            [("webhook-secret", "ws".to_string())]
        );
        assert_eq!(cfg.webhook_secrets[0].secret.expose(), "ws");
        assert_eq!(cfg.webhook_secrets[0].id, "s1");
        assert_eq!(cfg.primary.credentials, Credentials::None, "not carried");
    }

    #[tokio::test]
    async fn the_sender_opens_only_the_active_credential_and_the_other_on_first_use() {
        let fake = Arc::new(Fake {
            present: true,
            on_backup: true,
            ..Default::default()
        });
        let c = opening(fake.clone(), Opens::ActiveCredential);
        let l = c.load(&"t1".parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(
            *fake.opened.lock().unwrap(),
            [("server-credential", "bpw".to_string())],
            "the backup is active: only its password"
        );
        assert!(l.config.webhook_secrets.is_empty(), "not carried");
        assert_eq!(l.config.primary.credentials, Credentials::None);
        let active = l.credentials(EndpointRole::Backup).await.unwrap();
        assert!(
            matches!(active, Credentials::Basic { password, .. } if password.expose() == "bpw")
        );
        assert_eq!(fake.opens.load(Ordering::SeqCst), 1, "kept from the load");
        // Failover to the primary: opened now, once.
        for _ in 0..2 {
            let p = l.credentials(EndpointRole::Primary).await.unwrap();
            assert!(matches!(p, Credentials::Basic { password, .. } if password.expose() == "pw"));
        }
        assert_eq!(fake.opens.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn opening_everything_keeps_the_credentials_without_opening_them_again() {
        let fake = Arc::new(Fake {
            present: true,
            on_backup: true,
            ..Default::default()
        });
        let c = opening(fake.clone(), Opens::All);
        let l = c.load(&"t1".parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(fake.opens.load(Ordering::SeqCst), 3);
        l.credentials(EndpointRole::Primary).await.unwrap();
        l.credentials(EndpointRole::Backup).await.unwrap();
        assert_eq!(fake.opens.load(Ordering::SeqCst), 3);
    }
}
