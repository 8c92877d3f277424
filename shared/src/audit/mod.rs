//! The audit log (AuditTable, hash `tenantId`, range `at`): one record per change of a
//! tenant's config (the config API, written in the same transaction as the config: see
//! [`crate::tenant::store::ConfigJournal`]), per automatic failover or failback (the health
//! check, also on the sparse index [`SWITCH_STREAM_INDEX`]) and per change of the server
//! registry (partition `#server/<serverId>`, which no tenant id can spell).
//!
//! A record names the fields that changed, never a value: a secret shows up as
//! `primary.credentials.password`, not as its ciphertext or fingerprint. The DynamoDB
//! adapter is [`dynamo`].

pub mod dynamo;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::tenant::TenantId;
use crate::tenant::store::{Page, StoreError};
use crate::timestamp::{self, Precision};

/// The `switchStream` every automatic switch's audit record carries: the hash key of the
/// audit table's sparse index [`SWITCH_STREAM_INDEX`] (config API records lack it, so the
/// index holds the automatic switches only).
pub const SWITCH_STREAM: &str = "switch";

/// The audit table's index of automatic switches: `switchStream` (hash), `at` (range),
/// projection ALL. `switchStream = "switch" AND at >= <cutoff>` lists every failover and
/// failback since the cutoff, across tenants.
pub const SWITCH_STREAM_INDEX: &str = "BySwitchStream";

/// One audit record, as written by the config API and as the API shows every record: the
/// config API's records and the health check's failover/failback records share the table,
/// so the action-specific attributes are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub tenant_id: String,
    /// Sort key: [`audit_key`].
    pub at: String,
    pub who: String,
    pub action: String,
    /// Names of the changed fields (config API records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_after: Option<u64>,
    /// Free text without secrets (e.g. "grace 86400 s", a migration job id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    // What a switch moved (the health check's records; the config API's switch, swap and
    // endpoint replacement records too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl AuditEntry {
    /// A record of `action` by `who` on `partition` (a tenant id, or `#server/<id>`), keyed
    /// at `now`; everything else empty.
    pub fn new(partition: &str, who: &str, action: &str, now: OffsetDateTime) -> AuditEntry {
        AuditEntry {
            tenant_id: partition.to_string(),
            at: audit_key(now),
            who: who.to_string(),
            action: action.to_string(),
            fields: Vec::new(),
            version_before: None,
            version_after: None,
            detail: None,
            from: None,
            to: None,
            from_endpoint: None,
            to_endpoint: None,
            reason: None,
        }
    }
}

/// The sort key of a record written at `now`: fixed-width UTC microseconds, so keys sort
/// by time, and a random suffix, so two changes in one microsecond both stay.
pub fn audit_key(now: OffsetDateTime) -> String {
    format!(
        "{}#{}",
        timestamp::fixed(now, Precision::Micros),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Reads the audit log (the config API).
#[async_trait]
pub trait AuditReader: Send + Sync {
    /// One page of a tenant's records, newest first.
    async fn page(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<AuditEntry>, StoreError>;
    /// Every automatic switch of every tenant since `since` (an RFC 3339 time), newest
    /// first, at most `max`; `true` when there were more.
    async fn switches_since(
        &self,
        since: &str,
        max: usize,
    ) -> Result<(Vec<AuditEntry>, bool), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn audit_keys_sort_by_time() {
        let a = audit_key(datetime!(2026-01-01 0:00:00.5 UTC));
        let b = audit_key(datetime!(2026-01-01 0:00:01 UTC));
        assert!(a < b, "{a} {b}");
        assert!(a.starts_with("2026-01-01T00:00:00.500000Z#"));
    }
}
