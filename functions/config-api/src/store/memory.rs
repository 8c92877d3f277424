//! In-memory stores for the config API's tests (feature `testing`): the shared fakes of
//! `wagate::testing` plus the config API's own ([`MemoryServers`], [`MemoryJobs`]), all over
//! one set of tables, so what a handler writes through one trait the next reads through
//! another, as with DynamoDB.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;
use wagate::audit::AuditEntry;
use wagate::tenant::store::StoreError;
use wagate::testing::{MemoryAudit, MemoryDeliveries, MemoryHealth, MemoryJournal, MemoryTenants};

use super::{MigrationJobs, ServerRegistry, Stores};
use crate::fleet::{MigrationJob, Server, TargetTest, TenantResult};

/// Every table of the config API in memory, with handles a test reads them through.
#[derive(Clone)]
pub struct MemoryStores {
    pub tenants: Arc<MemoryTenants>,
    pub audit: Arc<MemoryAudit>,
    pub health: Arc<MemoryHealth>,
    pub deliveries: Arc<MemoryDeliveries>,
    pub servers: Arc<MemoryServers>,
    pub jobs: Arc<MemoryJobs>,
}

impl Default for MemoryStores {
    fn default() -> Self {
        let tenants = Arc::new(MemoryTenants::new());
        let audit = Arc::new(MemoryAudit::new());
        Self {
            health: Arc::new(MemoryHealth::new(tenants.clone(), audit.clone())),
            servers: Arc::new(MemoryServers::new(audit.clone())),
            tenants,
            audit,
            deliveries: Arc::new(MemoryDeliveries::default()),
            jobs: Arc::new(MemoryJobs::default()),
        }
    }
}

impl MemoryStores {
    pub fn new() -> Self {
        Self::default()
    }

    /// The stores the handlers use.
    pub fn stores(&self) -> Stores {
        Stores {
            tenants: self.tenants.clone(),
            journal: Arc::new(MemoryJournal::new(self.tenants.clone(), self.audit.clone())),
            audit: self.audit.clone(),
            health: self.health.clone(),
            deliveries: self.deliveries.clone(),
            servers: self.servers.clone(),
            jobs: self.jobs.clone(),
        }
    }
}

/// The server registry in memory: a server's id and its base URL are each registered once.
#[derive(Debug)]
pub struct MemoryServers {
    servers: Mutex<BTreeMap<String, Server>>,
    audit: Arc<MemoryAudit>,
}

impl MemoryServers {
    pub fn new(audit: Arc<MemoryAudit>) -> Self {
        Self {
            servers: Mutex::default(),
            audit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Server>> {
        self.servers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ServerRegistry for MemoryServers {
    async fn get(&self, id: &str) -> Result<Option<Server>, StoreError> {
        Ok(self.lock().get(id).cloned())
    }

    async fn all(&self) -> Result<Vec<Server>, StoreError> {
        Ok(self.lock().values().cloned().collect())
    }

    async fn register(&self, server: &Server, record: &AuditEntry) -> Result<bool, StoreError> {
        let mut servers = self.lock();
        let taken = servers.contains_key(&server.server_id)
            || servers.values().any(|s| s.base_url == server.base_url);
        if taken {
            return Ok(false);
        }
        servers.insert(server.server_id.clone(), server.clone());
        self.audit.record(record.clone());
        Ok(true)
    }

    async fn update(
        &self,
        server: &Server,
        expected_version: u64,
        record: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut servers = self.lock();
        match servers.get_mut(&server.server_id) {
            Some(s) if s.version == expected_version => {
                *s = server.clone();
                self.audit.record(record.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn deregister(&self, server: &Server, record: &AuditEntry) -> Result<bool, StoreError> {
        let mut servers = self.lock();
        match servers.get(&server.server_id) {
            Some(s) if s.version == server.version => {
                servers.remove(&server.server_id);
                self.audit.record(record.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Migration jobs in memory.
#[derive(Debug, Default)]
pub struct MemoryJobs {
    jobs: Mutex<BTreeMap<String, MigrationJob>>,
}

impl MemoryJobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, MigrationJob>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl MigrationJobs for MemoryJobs {
    async fn get(&self, id: &str) -> Result<Option<MigrationJob>, StoreError> {
        Ok(self.lock().get(id).cloned())
    }

    async fn create(&self, job: &MigrationJob) -> Result<bool, StoreError> {
        let mut jobs = self.lock();
        if jobs.contains_key(&job.job_id) {
            return Ok(false);
        }
        jobs.insert(job.job_id.clone(), job.clone());
        Ok(true)
    }

    async fn record(
        &self,
        job_id: &str,
        result: &TenantResult,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if let Some(job) = self.lock().get_mut(job_id) {
            let moved = job
                .results
                .get(&result.tenant_id)
                .is_some_and(|r| r.outcome == "moved");
            if !moved {
                job.results.insert(result.tenant_id.clone(), result.clone());
                job.updated_at = wagate::timestamp::rfc3339(now);
            }
        }
        Ok(())
    }

    async fn record_test(
        &self,
        job_id: &str,
        test: &TargetTest,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if let Some(job) = self.lock().get_mut(job_id) {
            job.target_test = Some(test.clone());
            job.updated_at = wagate::timestamp::rfc3339(now);
        }
        Ok(())
    }
}
