//! What the functions may do to health state, as traits: the health check lists the active
//! tenants, writes their status, counters and switches, and records each server's health and
//! history ([`HealthStore`]); the config API reads all of it back ([`HealthReader`]). The
//! DynamoDB implementation is [`super::dynamo::DynamoHealthStore`]; an in-memory one for tests
//! is `crate::testing::MemoryHealth` (feature `testing`). Page cursors are opaque strings.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::silence::{SilentFlag, TenantActivity};
use super::{EndpointHealth, HealthPoint, SwitchKind, TenantHealth};
use crate::secrets::SealedSecret;
use crate::tenant::store::{Page, StoreError};
use crate::tenant::{
    ConnectionStatus, Endpoint, EndpointRole, FailbackPolicy, ProviderKind, SealedConfig, TenantId,
};

/// Who the health check's audit records name.
pub const AUDIT_ACTOR: &str = "health-check";

/// The part of a tenant's config the health check needs (the adapter reads only these
/// attributes: `super::dynamo::TENANT_ATTRIBUTES_READ`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MonitoredTenant {
    pub tenant_id: TenantId,
    pub provider: ProviderKind,
    pub primary: Endpoint<SealedSecret>,
    #[serde(default)]
    pub backup: Option<Endpoint<SealedSecret>>,
    #[serde(default)]
    pub active_endpoint: EndpointRole,
    pub is_active: bool,
    #[serde(default)]
    pub connection_status: ConnectionStatus,
    #[serde(default)]
    pub failback: FailbackPolicy,
    pub version: u64,
}

/// A tenant as the health check reads it: its config and its counters.
#[derive(Debug, Clone)]
pub struct TenantRecord {
    pub config: MonitoredTenant,
    pub health: TenantHealth,
    /// `lastEventAt` (the ingress's note) and `silent` (this check's flag).
    pub activity: TenantActivity,
}

/// What one run writes to one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantStateUpdate {
    /// The status the run read (the write is conditional on it, as on the version).
    pub previous_status: ConnectionStatus,
    /// The counters the run read (the write is conditional on them).
    pub previous_health: TenantHealth,
    pub status: ConnectionStatus,
    /// The status differs from the stored one (`connectionStatusAt` is then set).
    pub status_changed: bool,
    pub health: TenantHealth,
    pub checked_at: OffsetDateTime,
    /// A new active endpoint (a switch: `version` + 1 and `updatedAt`).
    pub switch_to: Option<EndpointRole>,
}

/// An audit record of one switch. Never holds a secret (base URLs only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchAudit {
    pub tenant_id: String,
    /// Sort key: RFC 3339 time, `#`, a unique suffix.
    pub at: String,
    pub who: String,
    pub action: SwitchKind,
    pub from: EndpointRole,
    pub to: EndpointRole,
    pub from_endpoint: String,
    pub to_endpoint: String,
    pub reason: String,
    pub version_before: u64,
    pub version_after: u64,
}

impl From<&SwitchAudit> for crate::audit::AuditEntry {
    /// The record as the audit log shows it (what the table's item reads back as).
    fn from(s: &SwitchAudit) -> Self {
        crate::audit::AuditEntry {
            tenant_id: s.tenant_id.clone(),
            at: s.at.clone(),
            who: s.who.clone(),
            action: s.action.as_str().to_string(),
            fields: Vec::new(),
            version_before: Some(s.version_before),
            version_after: Some(s.version_after),
            detail: None,
            from: Some(s.from.as_str().to_string()),
            to: Some(s.to.as_str().to_string()),
            from_endpoint: Some(s.from_endpoint.clone()),
            to_endpoint: Some(s.to_endpoint.clone()),
            reason: Some(s.reason.clone()),
        }
    }
}

impl From<&SealedConfig> for MonitoredTenant {
    fn from(c: &SealedConfig) -> Self {
        MonitoredTenant {
            tenant_id: c.tenant_id.clone(),
            provider: c.provider,
            primary: c.primary.clone(),
            backup: c.backup.clone(),
            active_endpoint: c.active_endpoint,
            is_active: c.is_active,
            connection_status: c.connection_status,
            failback: c.failback,
            version: c.version,
        }
    }
}

/// The health check's storage.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// One page of active tenants (`isActive = true`), with their counters. `cursor` is the
    /// `next_cursor` of the page before.
    async fn active_tenants_page(
        &self,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<Page<TenantRecord>, StoreError>;
    /// One tenant, consistently read.
    async fn tenant(&self, tenant_id: &TenantId) -> Result<Option<TenantRecord>, StoreError>;
    /// Writes the run's result for a tenant if its version is still `expected_version` and
    /// its status and counters are still those the run read (`Conflict` otherwise).
    async fn write_tenant_state(
        &self,
        tenant_id: &TenantId,
        expected_version: u64,
        update: &TenantStateUpdate,
    ) -> Result<(), StoreError>;
    /// The stored records of these endpoints.
    async fn endpoints(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, EndpointHealth>, StoreError>;
    async fn save_endpoints(&self, records: &[EndpointHealth]) -> Result<(), StoreError>;
    async fn put_audit(&self, record: &SwitchAudit) -> Result<(), StoreError>;
    /// Appends an audit record that is not a switch (e.g. a webhook re-wired after a
    /// failover): not in the switch index.
    async fn put_note(&self, record: &crate::audit::AuditEntry) -> Result<(), StoreError>;
    /// Sets (or, with `None`, removes) the tenant's "connected but silent" flag: the
    /// `silent` attribute alone, on an existing item, never `version`.
    async fn set_silent(
        &self,
        tenant_id: &TenantId,
        flag: Option<&SilentFlag>,
    ) -> Result<(), StoreError>;
    /// Sets (or, with `None`, removes) the health check's backup-readiness verdict: the
    /// `standby` attribute alone, on an existing item, never `version`.
    async fn set_standby(
        &self,
        tenant_id: &TenantId,
        note: Option<&super::standby::StandbyNote>,
    ) -> Result<(), StoreError>;
    /// Appends these health-history points (one per probed server and run). On failure,
    /// says how many were not written.
    async fn save_history(&self, points: &[HealthPoint]) -> Result<(), HistoryWriteError>;
}

/// Health-history points that could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{unwritten} health history point(s) not written: {reason}")]
pub struct HistoryWriteError {
    pub unwritten: usize,
    pub reason: String,
}

/// A tenant's config with what the health check stored on its item.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantStatusRecord {
    pub config: SealedConfig,
    /// When `connectionStatus` last changed (RFC 3339), if it ever did.
    pub connection_status_at: Option<String>,
    /// When the health check last wrote the tenant (RFC 3339), if it ever did.
    pub health_checked_at: Option<String>,
    pub health: TenantHealth,
    /// The ingress's `lastEventAt` and the health check's `silent` flag.
    pub activity: TenantActivity,
}

/// The config API's reads of what the health check stored.
#[async_trait]
pub trait HealthReader: Send + Sync {
    /// The tenant's config and health state, consistently read; `None` without a config.
    async fn tenant_status(
        &self,
        tenant_id: &TenantId,
    ) -> Result<Option<TenantStatusRecord>, StoreError>;
    /// One server's health record (`None` until the health check probed it, or when the
    /// stored record cannot be read).
    async fn endpoint(&self, key: &str) -> Result<Option<EndpointHealth>, StoreError>;
    /// Every server's health record, in no particular order.
    async fn all_endpoints(&self) -> Result<Vec<EndpointHealth>, StoreError>;
    /// Every tenant's `lastEventAt`, `silent` flag and `standby` verdict (the fleet view), in no particular order.
    async fn all_activity(&self) -> Result<Vec<(TenantId, TenantActivity)>, StoreError>;
    /// A server's history points at or after `since` (fixed-width RFC 3339 UTC, as the
    /// points' own `at`), oldest first.
    async fn history(&self, key: &str, since: &str) -> Result<Vec<HealthPoint>, StoreError>;
}
