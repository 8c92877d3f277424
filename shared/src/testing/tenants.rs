//! [`MemoryTenants`] (the tenants table) and [`MemoryJournal`] (configs with their audit
//! records).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{MemoryAudit, UNAVAILABLE, decode_cursor, encode_cursor};
use crate::audit::AuditEntry;
use crate::health::TenantHealth;
use crate::health::silence::TenantActivity;
use crate::tenant::store::{
    ConfigJournal, EventSeenWriter, Page, StoreError, TenantConfigReader, TenantConfigStore,
    TenantStatusWriter,
};
use crate::tenant::{ConnectionStatus, SealedConfig, TenantId};
use crate::timestamp;

/// One tenant's item: the config and what the health check (and the sender) store beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantItem {
    pub config: SealedConfig,
    /// When `connectionStatus` last changed (RFC 3339).
    pub connection_status_at: Option<String>,
    /// When the health check last wrote the tenant (RFC 3339).
    pub health_checked_at: Option<String>,
    pub health: TenantHealth,
    /// The ingress's `lastEventAt` and the health check's `silent` flag.
    pub activity: TenantActivity,
}

impl TenantItem {
    fn new(config: SealedConfig) -> Self {
        Self {
            config,
            connection_status_at: None,
            health_checked_at: None,
            health: TenantHealth::default(),
            activity: TenantActivity::default(),
        }
    }
}

/// The tenants table in memory.
#[derive(Debug, Default)]
pub struct MemoryTenants {
    items: Mutex<BTreeMap<TenantId, TenantItem>>,
    reads: AtomicUsize,
    unavailable: AtomicBool,
}

impl MemoryTenants {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads of configs so far (`get`, `list`, `all`, `by_endpoint`): what a test asserts
    /// instead of DynamoDB `GetItem`s.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// While set, every call fails as an unreachable DynamoDB would.
    pub fn set_unavailable(&self, on: bool) {
        self.unavailable.store(on, Ordering::SeqCst);
    }

    /// The stored item of `tenant`.
    pub fn item(&self, tenant: &str) -> Option<TenantItem> {
        let id = tenant.parse::<TenantId>().ok()?;
        self.lock().get(&id).cloned()
    }

    /// Every stored item, by tenant id.
    pub fn items(&self) -> Vec<TenantItem> {
        self.lock().values().cloned().collect()
    }

    /// Stores `item` as it is (a test's seed: any status and counters).
    pub fn put_item(&self, item: TenantItem) {
        self.lock().insert(item.config.tenant_id.clone(), item);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, BTreeMap<TenantId, TenantItem>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if self.unavailable.load(Ordering::SeqCst) {
            Err(StoreError::Backend(UNAVAILABLE.into()))
        } else {
            Ok(())
        }
    }

    fn read(&self) -> Result<MutexGuard<'_, BTreeMap<TenantId, TenantItem>>, StoreError> {
        self.check()?;
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.lock())
    }

    /// A config update as DynamoDB applies it: the config replaced, the health check's
    /// attributes (`connectionStatus` and the rest of [`TenantItem`]) kept.
    fn replace(item: &mut TenantItem, config: &SealedConfig) {
        let status = item.config.connection_status;
        item.config = config.clone();
        item.config.connection_status = status;
    }
}

#[async_trait]
impl TenantConfigReader for MemoryTenants {
    async fn get(&self, tenant_id: &TenantId) -> Result<Option<SealedConfig>, StoreError> {
        Ok(self.read()?.get(tenant_id).map(|i| i.config.clone()))
    }
}

#[async_trait]
impl TenantConfigStore for MemoryTenants {
    async fn create(&self, config: &SealedConfig) -> Result<(), StoreError> {
        self.check()?;
        let mut items = self.lock();
        if items.contains_key(&config.tenant_id) {
            return Err(StoreError::AlreadyExists);
        }
        items.insert(config.tenant_id.clone(), TenantItem::new(config.clone()));
        Ok(())
    }

    async fn update(&self, config: &SealedConfig, expected_version: u64) -> Result<(), StoreError> {
        self.check()?;
        match self.lock().get_mut(&config.tenant_id) {
            None => Err(StoreError::NotFound),
            Some(i) if i.config.version != expected_version => Err(StoreError::Conflict),
            Some(i) => {
                Self::replace(i, config);
                Ok(())
            }
        }
    }

    async fn delete(
        &self,
        tenant_id: &TenantId,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut items = self.lock();
        match items.get(tenant_id) {
            None => Err(StoreError::NotFound),
            Some(i) if expected_version.is_some_and(|v| v != i.config.version) => {
                Err(StoreError::Conflict)
            }
            Some(_) => {
                items.remove(tenant_id);
                Ok(())
            }
        }
    }

    async fn list(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<SealedConfig>, StoreError> {
        let after = match cursor {
            None => None,
            Some(c) => Some(
                decode_cursor(c)
                    .and_then(|s| s.parse::<TenantId>().ok())
                    .ok_or(StoreError::InvalidCursor)?,
            ),
        };
        let items = self.read()?;
        let rest: Vec<&TenantItem> = items
            .values()
            .filter(|i| after.as_ref().is_none_or(|a| &i.config.tenant_id > a))
            .collect();
        let limit = limit.clamp(1, 1000) as usize;
        let page: Vec<SealedConfig> = rest.iter().take(limit).map(|i| i.config.clone()).collect();
        let next_cursor = (rest.len() > limit)
            .then(|| page.last().map(|c| encode_cursor(c.tenant_id.as_str())))
            .flatten();
        Ok(Page {
            items: page,
            next_cursor,
        })
    }

    async fn all(&self) -> Result<Vec<SealedConfig>, StoreError> {
        Ok(self.read()?.values().map(|i| i.config.clone()).collect())
    }

    async fn by_endpoint(&self, endpoint_key: &str) -> Result<Vec<SealedConfig>, StoreError> {
        Ok(self
            .read()?
            .values()
            .filter(|i| {
                i.config.primary.endpoint_key() == endpoint_key
                    || i.config
                        .backup
                        .as_ref()
                        .is_some_and(|b| b.endpoint_key() == endpoint_key)
            })
            .map(|i| i.config.clone())
            .collect())
    }
}

#[async_trait]
impl TenantStatusWriter for MemoryTenants {
    async fn set_connection_status(
        &self,
        tenant_id: &TenantId,
        status: ConnectionStatus,
    ) -> Result<(), String> {
        self.check().map_err(|e| e.to_string())?;
        match self.lock().get_mut(tenant_id) {
            None => Err("ConditionalCheckFailedException: the tenant has no item".into()),
            Some(i) => {
                i.config.connection_status = status;
                i.connection_status_at = Some(timestamp::rfc3339(OffsetDateTime::now_utc()));
                Ok(())
            }
        }
    }
}

#[async_trait]
impl EventSeenWriter for MemoryTenants {
    async fn note_event_seen(
        &self,
        tenant_id: &TenantId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.observe(tenant_id, |a| a.last_event_at = Some(at))
    }

    async fn note_callback_verified(
        &self,
        tenant_id: &TenantId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.observe(tenant_id, |a| a.verified_at = Some(at))
    }
}

impl MemoryTenants {
    /// Changes an existing tenant's activity attributes (the ingress's observations) only.
    fn observe(
        &self,
        tenant_id: &TenantId,
        set: impl FnOnce(&mut TenantActivity),
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut items = self.lock();
        let item = items.get_mut(tenant_id).ok_or(StoreError::NotFound)?;
        set(&mut item.activity);
        Ok(())
    }
}

/// Configs with their audit records, both or neither (what the config API writes through).
#[derive(Debug, Clone)]
pub struct MemoryJournal {
    pub tenants: Arc<MemoryTenants>,
    pub audit: Arc<MemoryAudit>,
}

impl MemoryJournal {
    pub fn new(tenants: Arc<MemoryTenants>, audit: Arc<MemoryAudit>) -> Self {
        Self { tenants, audit }
    }
}

#[async_trait]
impl ConfigJournal for MemoryJournal {
    async fn note(&self, record: &AuditEntry) -> Result<(), StoreError> {
        self.tenants.check()?;
        self.audit.record(record.clone());
        Ok(())
    }

    async fn create(&self, config: &SealedConfig, record: &AuditEntry) -> Result<(), StoreError> {
        self.tenants.check()?;
        let mut items = self.tenants.lock();
        if items.contains_key(&config.tenant_id) {
            return Err(StoreError::AlreadyExists);
        }
        items.insert(config.tenant_id.clone(), TenantItem::new(config.clone()));
        self.audit.record(record.clone());
        Ok(())
    }

    async fn update(
        &self,
        before: &SealedConfig,
        after: &SealedConfig,
        record: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.tenants.check()?;
        let mut items = self.tenants.lock();
        match items.get_mut(&after.tenant_id) {
            None => Err(StoreError::NotFound),
            Some(i) if i.config.version != before.version => Err(StoreError::Conflict),
            Some(i) => {
                MemoryTenants::replace(i, after);
                self.audit.record(record.clone());
                Ok(())
            }
        }
    }

    async fn delete(
        &self,
        before: &SealedConfig,
        checked: bool,
        record: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.tenants.check()?;
        let mut items = self.tenants.lock();
        match items.get(&before.tenant_id) {
            None => Err(StoreError::NotFound),
            Some(i) if checked && i.config.version != before.version => Err(StoreError::Conflict),
            Some(_) => {
                items.remove(&before.tenant_id);
                self.audit.record(record.clone());
                Ok(())
            }
        }
    }
}
