//! The config API's storage, all behind traits: handlers never see a DynamoDB client.
//!
//! [`Stores`] holds one handle per capability. The shared ones come from `wagate` (tenant
//! configs, the audited config journal, the audit log, the health check's records, delivery
//! records); the registry of servers and the migration jobs are the config API's own
//! ([`ServerRegistry`], [`MigrationJobs`]). Their DynamoDB implementations are [`dynamo`]
//! (built by `main.rs`); in-memory ones for tests are [`memory`] (feature `testing`).

pub mod dynamo;
#[cfg(feature = "testing")]
pub mod memory;

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use wagate::audit::{AuditEntry, AuditReader};
use wagate::delivery::store::DeliveryReader;
use wagate::health::store::HealthReader;
use wagate::tenant::SealedConfig;
use wagate::tenant::store::{ConfigJournal, StoreError, TenantConfigStore};

use crate::fleet::{MigrationJob, Server, TargetTest, TenantResult};

/// Everything the handlers read and write.
#[derive(Clone)]
pub struct Stores {
    /// Tenant configs (reads; the writes go through `journal`).
    pub tenants: Arc<dyn TenantConfigStore>,
    /// Config writes, each with its audit record in the same transaction.
    pub journal: Arc<dyn ConfigJournal>,
    pub audit: Arc<dyn AuditReader>,
    /// What the health check stored: tenant status, server records, history.
    pub health: Arc<dyn HealthReader>,
    /// Outbound delivery records (read only).
    pub deliveries: Arc<dyn DeliveryReader>,
    pub servers: Arc<dyn ServerRegistry>,
    pub jobs: Arc<dyn MigrationJobs>,
}

/// Whether a config can be written as a stored item (an import checks every item before it
/// writes any).
pub fn storable(cfg: &SealedConfig) -> bool {
    wagate::tenant::dynamo::to_item(cfg).is_ok()
}

/// The table names of [`dynamo::stores`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub tenants: String,
    pub audit: String,
    pub endpoints: String,
    pub history: String,
    pub messages: String,
    pub servers: String,
    pub jobs: String,
}

/// The server registry: each server once by id and once by base URL.
#[async_trait]
pub trait ServerRegistry: Send + Sync {
    async fn get(&self, id: &str) -> Result<Option<Server>, StoreError>;
    /// Every registered server, by id.
    async fn all(&self) -> Result<Vec<Server>, StoreError>;
    /// Registers `server` with its audit record; `false` when its id or base URL is taken.
    async fn register(&self, server: &Server, record: &AuditEntry) -> Result<bool, StoreError>;
    /// Replaces the server stored at `expected_version` by `server`, with the record;
    /// `false` when it changed or is gone.
    async fn update(
        &self,
        server: &Server,
        expected_version: u64,
        record: &AuditEntry,
    ) -> Result<bool, StoreError>;
    /// Deregisters the server read as `server` (its version is the condition) and frees its
    /// base URL, with the record; `false` when it changed.
    async fn deregister(&self, server: &Server, record: &AuditEntry) -> Result<bool, StoreError>;
}

/// Bulk migration jobs.
#[async_trait]
pub trait MigrationJobs: Send + Sync {
    async fn get(&self, id: &str) -> Result<Option<MigrationJob>, StoreError>;
    /// Stores a new job; `false` when the id is taken.
    async fn create(&self, job: &MigrationJob) -> Result<bool, StoreError>;
    /// Records a tenant's result; a recorded `moved` is never overwritten.
    async fn record(
        &self,
        job_id: &str,
        result: &TenantResult,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Records the target's connection test.
    async fn record_test(
        &self,
        job_id: &str,
        test: &TargetTest,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
}
