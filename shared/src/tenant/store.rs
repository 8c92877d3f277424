//! What the functions may do to stored tenant configs, as traits: the ingress and the sender
//! read ([`TenantConfigReader`]), the sender also records a logged-out device
//! ([`TenantStatusWriter`]), the config API writes configs together with their audit record
//! ([`ConfigJournal`]). The DynamoDB implementation is [`super::dynamo`]; an in-memory one for
//! tests is `crate::testing::MemoryTenants` (feature `testing`).

use async_trait::async_trait;

use super::{ConnectionStatus, SealedConfig, TenantId};
use crate::audit::AuditEntry;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("tenant config not found")]
    NotFound,
    #[error("tenant config already exists")]
    AlreadyExists,
    /// The item's version is not the one the caller read: someone else changed it.
    #[error("tenant config was changed by someone else (version conflict)")]
    Conflict,
    #[error("invalid page cursor")]
    InvalidCursor,
    #[error("stored item for tenant {tenant_id} cannot be read")]
    Corrupt {
        tenant_id: String,
        #[source]
        source: BoxError,
    },
    #[error("DynamoDB request failed: {0}")]
    Backend(String),
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; pass it back to get the next page. `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Reads configs. What the ingress, sender and cache need: nothing that writes.
#[async_trait]
pub trait TenantConfigReader: Send + Sync {
    async fn get(&self, tenant_id: &TenantId) -> Result<Option<SealedConfig>, StoreError>;
}

/// Reads and writes configs.
#[async_trait]
pub trait TenantConfigStore: TenantConfigReader {
    /// Stores a new config; `AlreadyExists` if the tenant has one.
    async fn create(&self, config: &SealedConfig) -> Result<(), StoreError>;
    /// Replaces the config if its stored version is still `expected_version`
    /// (`config.version` is the new one); `Conflict` otherwise, `NotFound` if gone. The
    /// health check's attributes on the item are kept.
    async fn update(&self, config: &SealedConfig, expected_version: u64) -> Result<(), StoreError>;
    /// Deletes the config, if given only when its version still matches.
    async fn delete(
        &self,
        tenant_id: &TenantId,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;
    /// One page of all configs, in no particular order.
    async fn list(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<SealedConfig>, StoreError>;
    /// Every config, read consistently (an export).
    async fn all(&self) -> Result<Vec<SealedConfig>, StoreError>;
    /// Every tenant whose primary or backup endpoint is `endpoint_key` (a normalised base URL).
    async fn by_endpoint(&self, endpoint_key: &str) -> Result<Vec<SealedConfig>, StoreError>;
}

/// Writes a tenant's connection status (the sender, when a device reports it is logged out).
/// Only `connectionStatus` and `connectionStatusAt` change: not `version` (the status is an
/// observation, not a configuration change, and must not make a concurrent config edit fail).
#[async_trait]
pub trait TenantStatusWriter: Send + Sync {
    async fn set_connection_status(
        &self,
        tenant_id: &TenantId,
        status: ConnectionStatus,
    ) -> Result<(), String>;
}

/// The ingress's one write (issue 15, "connected but silent"): when it last accepted a
/// webhook of the tenant. Only `lastEventAt` changes (never `version`: an observation, not a
/// configuration change). The ingress calls it at most once per tenant per
/// [`crate::health::silence::EVENT_SEEN_WRITE_INTERVAL`] per instance.
#[async_trait]
pub trait EventSeenWriter: Send + Sync {
    async fn note_event_seen(
        &self,
        tenant_id: &TenantId,
        at: time::OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Issue 16: Meta's verification handshake passed on the tenant's callback URL at `at`
    /// (`verifiedAt`; only that attribute changes, never `version`). Written on each passed
    /// handshake (Meta makes one when the callback is saved in its console), unthrottled:
    /// only a caller holding a verify token of the tenant gets here.
    async fn note_callback_verified(
        &self,
        tenant_id: &TenantId,
        at: time::OffsetDateTime,
    ) -> Result<(), StoreError>;
}

/// Writes configs together with their audit record, both or neither: no change without its
/// record, no record of a change that did not happen. Every write but a create is
/// conditional on the version the caller read (`before.version`).
#[async_trait]
pub trait ConfigJournal: Send + Sync {
    /// Stores a new config and its record; `AlreadyExists` if the tenant has one.
    async fn create(&self, config: &SealedConfig, record: &AuditEntry) -> Result<(), StoreError>;
    /// Replaces `before` by `after` with the record; `Conflict` if the stored version moved,
    /// `NotFound` if the config is gone. The health check's state on the item is kept.
    async fn update(
        &self,
        before: &SealedConfig,
        after: &SealedConfig,
        record: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// Deletes the config read as `before` (conditional on its version when `checked`).
    async fn delete(
        &self,
        before: &SealedConfig,
        checked: bool,
        record: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// Writes the audit record of an action that changed no config (a device action on a
    /// WhatsApp server).
    async fn note(&self, record: &AuditEntry) -> Result<(), StoreError>;
}
