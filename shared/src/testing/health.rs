//! [`MemoryHealth`]: the health check's tables in memory (tenant items shared with
//! [`MemoryTenants`], audit records with [`MemoryAudit`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{MemoryAudit, MemoryTenants, UNAVAILABLE, decode_cursor, encode_cursor};
use crate::health::silence::{SilentFlag, TenantActivity};
use crate::health::store::{
    HealthReader, HealthStore, HistoryWriteError, MonitoredTenant, SwitchAudit, TenantRecord,
    TenantStateUpdate, TenantStatusRecord,
};
use crate::health::{EndpointHealth, HealthPoint};
use crate::tenant::TenantId;
use crate::tenant::store::{Page, StoreError};
use crate::timestamp;

/// The endpoints and health-history tables in memory, and the health check's view of the
/// tenants and audit tables (the same [`MemoryTenants`] and [`MemoryAudit`] the config API's
/// fakes use).
#[derive(Debug)]
pub struct MemoryHealth {
    pub tenants: Arc<MemoryTenants>,
    pub audit: Arc<MemoryAudit>,
    endpoints: Mutex<BTreeMap<String, EndpointHealth>>,
    history: Mutex<Vec<HealthPoint>>,
    tenant_writes: AtomicUsize,
    history_fails: AtomicBool,
    unavailable: AtomicBool,
}

impl MemoryHealth {
    pub fn new(tenants: Arc<MemoryTenants>, audit: Arc<MemoryAudit>) -> Self {
        Self {
            tenants,
            audit,
            endpoints: Mutex::default(),
            history: Mutex::default(),
            tenant_writes: AtomicUsize::new(0),
            history_fails: AtomicBool::new(false),
            unavailable: AtomicBool::new(false),
        }
    }

    /// Tenant writes so far (`write_tenant_state` calls that wrote).
    pub fn tenant_writes(&self) -> usize {
        self.tenant_writes.load(Ordering::SeqCst)
    }

    /// The stored record of a server.
    pub fn endpoint_record(&self, key: &str) -> Option<EndpointHealth> {
        self.lock_endpoints().get(key).cloned()
    }

    /// Stores a server's record as it is (a test's seed).
    pub fn put_endpoint(&self, record: EndpointHealth) {
        self.lock_endpoints()
            .insert(record.endpoint_key.clone(), record);
    }

    /// Every history point written, in the order written.
    pub fn history_points(&self) -> Vec<HealthPoint> {
        self.lock_history().clone()
    }

    /// Stores history points as they are (a test's seed).
    pub fn put_history(&self, points: &[HealthPoint]) {
        self.lock_history().extend_from_slice(points);
    }

    /// While set, writing history points fails (the run must go on).
    pub fn set_history_failing(&self, on: bool) {
        self.history_fails.store(on, Ordering::SeqCst);
    }

    /// While set, every call fails as an unreachable DynamoDB would.
    pub fn set_unavailable(&self, on: bool) {
        self.unavailable.store(on, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(StoreError::Backend(UNAVAILABLE.into()));
        }
        self.tenants.check()
    }

    fn lock_endpoints(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, EndpointHealth>> {
        self.endpoints.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_history(&self) -> std::sync::MutexGuard<'_, Vec<HealthPoint>> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record_of(item: &super::TenantItem) -> TenantRecord {
        TenantRecord {
            config: MonitoredTenant::from(&item.config),
            health: item.health,
            activity: item.activity.clone(),
        }
    }
}

#[async_trait]
impl HealthStore for MemoryHealth {
    async fn active_tenants_page(
        &self,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<Page<TenantRecord>, StoreError> {
        self.check()?;
        let after = match cursor {
            None => None,
            Some(c) => Some(
                decode_cursor(c)
                    .and_then(|s| s.parse::<TenantId>().ok())
                    .ok_or(StoreError::InvalidCursor)?,
            ),
        };
        let items = self.tenants.lock();
        let rest: Vec<TenantRecord> = items
            .values()
            .filter(|i| after.as_ref().is_none_or(|a| &i.config.tenant_id > a))
            .filter(|i| i.config.is_active)
            .map(Self::record_of)
            .collect();
        let size = page_size.clamp(1, 1000) as usize;
        let next_cursor =
            (rest.len() > size).then(|| encode_cursor(rest[size - 1].config.tenant_id.as_str()));
        Ok(Page {
            items: rest.into_iter().take(size).collect(),
            next_cursor,
        })
    }

    async fn tenant(&self, tenant_id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        self.check()?;
        Ok(self.tenants.lock().get(tenant_id).map(Self::record_of))
    }

    async fn write_tenant_state(
        &self,
        tenant_id: &TenantId,
        expected_version: u64,
        u: &TenantStateUpdate,
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut items = self.tenants.lock();
        let Some(item) = items.get_mut(tenant_id) else {
            return Err(StoreError::Conflict);
        };
        // The version, status and counters the run read: anything else changed meanwhile.
        if item.config.version != expected_version
            || item.config.connection_status != u.previous_status
            || item.health != u.previous_health
        {
            return Err(StoreError::Conflict);
        }
        let now = timestamp::rfc3339(u.checked_at);
        item.config.connection_status = u.status;
        item.health_checked_at = Some(now.clone());
        item.health = u.health;
        if u.status_changed {
            item.connection_status_at = Some(now);
        }
        if let Some(to) = u.switch_to {
            item.config.active_endpoint = to;
            item.config.version = expected_version + 1;
            item.config.updated_at = u.checked_at;
        }
        self.tenant_writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn endpoints(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, EndpointHealth>, StoreError> {
        self.check()?;
        let stored = self.lock_endpoints();
        Ok(keys
            .iter()
            .filter_map(|k| stored.get(k).map(|r| (k.clone(), r.clone())))
            .collect())
    }

    async fn save_endpoints(&self, records: &[EndpointHealth]) -> Result<(), StoreError> {
        self.check()?;
        let mut stored = self.lock_endpoints();
        for r in records {
            stored.insert(r.endpoint_key.clone(), r.clone());
        }
        Ok(())
    }

    async fn put_audit(&self, record: &SwitchAudit) -> Result<(), StoreError> {
        self.check()?;
        self.audit.record_switch(record.into());
        Ok(())
    }

    async fn put_note(&self, record: &crate::audit::AuditEntry) -> Result<(), StoreError> {
        self.check()?;
        self.audit.record(record.clone());
        Ok(())
    }

    async fn set_silent(
        &self,
        tenant_id: &TenantId,
        flag: Option<&SilentFlag>,
    ) -> Result<(), StoreError> {
        self.check()?;
        match self.tenants.lock().get_mut(tenant_id) {
            None => Err(StoreError::NotFound),
            Some(i) => {
                i.activity.silent = flag.cloned();
                Ok(())
            }
        }
    }

    async fn set_standby(
        &self,
        tenant_id: &TenantId,
        note: Option<&crate::health::standby::StandbyNote>,
    ) -> Result<(), StoreError> {
        self.check()?;
        match self.tenants.lock().get_mut(tenant_id) {
            None => Err(StoreError::NotFound),
            Some(i) => {
                i.activity.standby = note.cloned();
                Ok(())
            }
        }
    }

    async fn save_history(&self, points: &[HealthPoint]) -> Result<(), HistoryWriteError> {
        if self.history_fails.load(Ordering::SeqCst) || self.unavailable.load(Ordering::SeqCst) {
            return Err(HistoryWriteError {
                unwritten: points.len(),
                reason: UNAVAILABLE.into(),
            });
        }
        self.lock_history().extend_from_slice(points);
        Ok(())
    }
}

#[async_trait]
impl HealthReader for MemoryHealth {
    async fn tenant_status(
        &self,
        tenant_id: &TenantId,
    ) -> Result<Option<TenantStatusRecord>, StoreError> {
        self.check()?;
        Ok(self
            .tenants
            .lock()
            .get(tenant_id)
            .map(|i| TenantStatusRecord {
                config: i.config.clone(),
                connection_status_at: i.connection_status_at.clone(),
                health_checked_at: i.health_checked_at.clone(),
                health: i.health,
                activity: i.activity.clone(),
            }))
    }

    async fn endpoint(&self, key: &str) -> Result<Option<EndpointHealth>, StoreError> {
        self.check()?;
        Ok(self.lock_endpoints().get(key).cloned())
    }

    async fn all_endpoints(&self) -> Result<Vec<EndpointHealth>, StoreError> {
        self.check()?;
        Ok(self.lock_endpoints().values().cloned().collect())
    }

    async fn all_activity(&self) -> Result<Vec<(TenantId, TenantActivity)>, StoreError> {
        self.check()?;
        Ok(self
            .tenants
            .lock()
            .values()
            .map(|i| (i.config.tenant_id.clone(), i.activity.clone()))
            .collect())
    }

    async fn history(&self, key: &str, since: &str) -> Result<Vec<HealthPoint>, StoreError> {
        self.check()?;
        let mut points: Vec<HealthPoint> = self
            .lock_history()
            .iter()
            .filter(|p| p.endpoint_key == key && p.at.as_str() >= since)
            .cloned()
            .collect();
        points.sort_by(|a, b| a.at.cmp(&b.at));
        Ok(points)
    }
}
