//! The health check's DynamoDB side.
//!
//! - **Tenants table** (read: `Scan`, `GetItem` of the attributes in
//!   [`TENANT_ATTRIBUTES_READ`] only; write: `UpdateItem` of the attributes in
//!   [`TENANT_ATTRIBUTES_WRITTEN`] only, which the function's IAM policy enforces with a
//!   `dynamodb:Attributes` condition). Every write is conditional on the `version` the run
//!   read: a concurrent config change makes it fail with [`StoreError::Conflict`] and the
//!   caller re-reads and decides again. A status-only write leaves `version` alone (an
//!   observation is not a configuration change, and bumping it every minute would make every
//!   slow config edit fail); a switch of `activeEndpoint` is a configuration change and bumps
//!   `version` and `updatedAt`, so a config edit based on the old version gets a 409 instead
//!   of silently undoing the failover.
//! - **Endpoints table**: one [`EndpointHealth`] per server, keyed by `endpointKey`, written
//!   only by the health check (`BatchGetItem`, `BatchWriteItem`), TTL `expiresAt`.
//! - **Audit table**: one [`SwitchAudit`] per failover or failback (`PutItem`), keyed by
//!   `tenantId` and `at`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::health::{EndpointHealth, FailbackPolicy, SwitchKind, TenantHealth};
use crate::secrets::SealedSecret;
use crate::store::StoreError;
use crate::tenant::{ConnectionStatus, Endpoint, EndpointRole, ProviderKind, TenantId};

/// Every tenant-item attribute the health check's `UpdateItem` names (keys, condition and
/// update expression). The IAM policy in template.yaml lists exactly these.
pub const TENANT_ATTRIBUTES_WRITTEN: &[&str] = &[
    "tenantId",
    "version",
    "connectionStatus",
    "connectionStatusAt",
    "healthCheckedAt",
    "healthActiveFailures",
    "healthPrimarySuccesses",
    "activeEndpoint",
    "updatedAt",
];

/// Who the audit records name.
pub const AUDIT_ACTOR: &str = "health-check";

/// Every tenant-item attribute the health check reads (the projection of its `Scan` and
/// `GetItem`): what [`MonitoredTenant`] and [`TenantHealth`] hold, nothing else (not the
/// webhook secrets, limits or timestamps, which are most of an item).
pub const TENANT_ATTRIBUTES_READ: &[&str] = &[
    "tenantId",
    "provider",
    "primary",
    "backup",
    "activeEndpoint",
    "isActive",
    "connectionStatus",
    "failback",
    "version",
    "healthActiveFailures",
    "healthPrimarySuccesses",
];

/// The part of a tenant's config the health check needs (the attributes in
/// [`TENANT_ATTRIBUTES_READ`]).
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
}

/// What one run writes to one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantStateUpdate {
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

/// The health check's storage.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// One page of active tenants (`isActive = true`), with their counters.
    async fn active_tenants_page(
        &self,
        start: Option<HashMap<String, AttributeValue>>,
        page_size: u32,
    ) -> Result<(Vec<TenantRecord>, Option<HashMap<String, AttributeValue>>), StoreError>;
    /// One tenant, consistently read.
    async fn tenant(&self, tenant_id: &TenantId) -> Result<Option<TenantRecord>, StoreError>;
    /// Writes the run's result for a tenant if its version is still `expected_version`.
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
}

/// Every active tenant, page after page.
pub async fn all_active_tenants(
    store: &dyn HealthStore,
    page_size: u32,
) -> Result<Vec<TenantRecord>, StoreError> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let (items, next) = store.active_tenants_page(start, page_size).await?;
        out.extend(items);
        match next {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(out),
        }
    }
}

/// The DynamoDB implementation.
#[derive(Debug, Clone)]
pub struct DynamoHealthStore {
    client: Client,
    tenants_table: String,
    endpoints_table: String,
    audit_table: String,
}

impl DynamoHealthStore {
    pub fn new(
        client: Client,
        tenants_table: impl Into<String>,
        endpoints_table: impl Into<String>,
        audit_table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            tenants_table: tenants_table.into(),
            endpoints_table: endpoints_table.into(),
            audit_table: audit_table.into(),
        }
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn record(item: HashMap<String, AttributeValue>) -> Result<TenantRecord, StoreError> {
    let health: TenantHealth = serde_dynamo::from_item(item.clone()).unwrap_or_default();
    let tenant_id = match item.get("tenantId") {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::from("?"),
    };
    let config = serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt {
        tenant_id,
        source: Box::new(e),
    })?;
    Ok(TenantRecord { config, health })
}

/// `ProjectionExpression` and its names for [`TENANT_ATTRIBUTES_READ`].
fn projection() -> (String, HashMap<String, String>) {
    let names: HashMap<String, String> = TENANT_ATTRIBUTES_READ
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("#p{i}"), a.to_string()))
        .collect();
    let expr = (0..TENANT_ATTRIBUTES_READ.len())
        .map(|i| format!("#p{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    (expr, names)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn role_str(r: EndpointRole) -> &'static str {
    match r {
        EndpointRole::Primary => "primary",
        EndpointRole::Backup => "backup",
    }
}

fn status_str(s: ConnectionStatus) -> &'static str {
    match s {
        ConnectionStatus::Connected => "connected",
        ConnectionStatus::LoggedOut => "logged_out",
        ConnectionStatus::EndpointDown => "endpoint_down",
        ConnectionStatus::Unknown => "unknown",
    }
}

#[async_trait]
impl HealthStore for DynamoHealthStore {
    async fn active_tenants_page(
        &self,
        start: Option<HashMap<String, AttributeValue>>,
        page_size: u32,
    ) -> Result<(Vec<TenantRecord>, Option<HashMap<String, AttributeValue>>), StoreError> {
        let (projection, names) = projection();
        let resp = self
            .client
            .scan()
            .table_name(&self.tenants_table)
            .projection_expression(projection)
            .set_expression_attribute_names(Some(names))
            .filter_expression("isActive = :t")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .limit(page_size.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(DisplayErrorContext(e)))?;
        let items = resp
            .items
            .unwrap_or_default()
            .into_iter()
            .map(record)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((items, resp.last_evaluated_key))
    }

    async fn tenant(&self, tenant_id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.tenants_table)
            .key("tenantId", AttributeValue::S(tenant_id.to_string()))
            .projection_expression(projection().0)
            .set_expression_attribute_names(Some(projection().1))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(DisplayErrorContext(e)))?;
        resp.item.map(record).transpose()
    }

    async fn write_tenant_state(
        &self,
        tenant_id: &TenantId,
        expected_version: u64,
        u: &TenantStateUpdate,
    ) -> Result<(), StoreError> {
        let now = rfc3339(u.checked_at);
        let mut sets = vec![
            "connectionStatus = :s",
            "healthCheckedAt = :now",
            "healthActiveFailures = :f",
            "healthPrimarySuccesses = :p",
        ];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tenants_table)
            .key("tenantId", AttributeValue::S(tenant_id.to_string()))
            .condition_expression("attribute_exists(tenantId) AND #v = :expected")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_version.to_string()),
            )
            .expression_attribute_values(":s", AttributeValue::S(status_str(u.status).into()))
            .expression_attribute_values(":now", AttributeValue::S(now))
            .expression_attribute_values(
                ":f",
                AttributeValue::N(u.health.active_failures.to_string()),
            )
            .expression_attribute_values(
                ":p",
                AttributeValue::N(u.health.primary_successes.to_string()),
            );
        if u.status_changed {
            sets.push("connectionStatusAt = :now");
        }
        if let Some(to) = u.switch_to {
            sets.extend(["activeEndpoint = :to", "#v = :next", "updatedAt = :now"]);
            req = req
                .expression_attribute_values(":to", AttributeValue::S(role_str(to).into()))
                .expression_attribute_values(
                    ":next",
                    AttributeValue::N((expected_version + 1).to_string()),
                );
        }
        let res = req
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(backend(DisplayErrorContext(e))),
        }
    }

    async fn endpoints(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, EndpointHealth>, StoreError> {
        let mut out = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut pending: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|k| HashMap::from([("endpointKey".into(), AttributeValue::S(k.clone()))]))
                .collect();
            for attempt in 0..5u32 {
                if pending.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                let ka = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(backend)?;
                let resp = self
                    .client
                    .batch_get_item()
                    .request_items(&self.endpoints_table, ka)
                    .send()
                    .await
                    .map_err(|e| backend(DisplayErrorContext(e)))?;
                for item in resp
                    .responses
                    .and_then(|mut r| r.remove(&self.endpoints_table))
                    .unwrap_or_default()
                {
                    // A record that no longer parses is treated as absent (streaks restart).
                    if let Ok(rec) = serde_dynamo::from_item::<_, EndpointHealth>(item) {
                        out.insert(rec.endpoint_key.clone(), rec);
                    }
                }
                pending = resp
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.endpoints_table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(StoreError::Backend(
                    "endpoint records left unprocessed after retries".into(),
                ));
            }
        }
        Ok(out)
    }

    async fn save_endpoints(&self, records: &[EndpointHealth]) -> Result<(), StoreError> {
        for chunk in records.chunks(25) {
            let mut pending = Vec::with_capacity(chunk.len());
            for r in chunk {
                let item = serde_dynamo::to_item(r).map_err(backend)?;
                pending.push(
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item))
                                .build()
                                .map_err(backend)?,
                        )
                        .build(),
                );
            }
            for attempt in 0..5u32 {
                if pending.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                let resp = self
                    .client
                    .batch_write_item()
                    .request_items(&self.endpoints_table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| backend(DisplayErrorContext(e)))?;
                pending = resp
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.endpoints_table))
                    .unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(StoreError::Backend(
                    "endpoint records left unwritten after retries".into(),
                ));
            }
        }
        Ok(())
    }

    async fn put_audit(&self, record: &SwitchAudit) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(record).map_err(backend)?;
        self.client
            .put_item()
            .table_name(&self.audit_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(tenantId)")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend(DisplayErrorContext(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::*;
    use time::macros::datetime;

    #[test]
    fn the_projection_holds_what_a_monitored_tenant_needs() {
        let sealed = SealedSecret {
            ciphertext: "CIPHER".into(),
            fingerprint: "****".into(),
        };
        let endpoint = |url: &str| Endpoint {
            base_url: url.into(),
            credentials: Credentials::Basic {
                username: "u".into(),
                password: sealed.clone(),
            },
            device_id: Some("d".into()),
            region: None,
            webhook_source_cidrs: vec![],
        };
        let cfg: SealedConfig = TenantConfig {
            tenant_id: "t1".parse().unwrap(),
            provider: ProviderKind::Gowa,
            primary: endpoint("https://a.example.com"),
            backup: Some(endpoint("https://b.example.com")),
            webhook_secrets: vec![WebhookSecret {
                id: "s1".into(),
                secret: sealed.clone(),
                expires_at: None,
            }],
            active_endpoint: EndpointRole::Backup,
            is_active: true,
            connection_status: ConnectionStatus::LoggedOut,
            failback: Default::default(),
            limits: Limits::default(),
            version: 7,
            created_at: datetime!(2026-01-01 0:00 UTC),
            updated_at: datetime!(2026-01-01 0:00 UTC),
        };
        let mut item = crate::store::to_item(&cfg).unwrap();
        item.insert("healthActiveFailures".into(), AttributeValue::N("2".into()));
        item.insert(
            "healthPrimarySuccesses".into(),
            AttributeValue::N("0".into()),
        );
        item.insert("healthCheckedAt".into(), AttributeValue::S("x".into()));
        // What DynamoDB returns for the projection.
        item.retain(|k, _| TENANT_ATTRIBUTES_READ.contains(&k.as_str()));
        assert_eq!(item.len(), TENANT_ATTRIBUTES_READ.len(), "{item:?}");
        let rec = record(item).unwrap();
        assert_eq!(
            rec.config,
            MonitoredTenant {
                tenant_id: cfg.tenant_id.clone(),
                provider: cfg.provider,
                primary: cfg.primary.clone(),
                backup: cfg.backup.clone(),
                active_endpoint: EndpointRole::Backup,
                is_active: true,
                connection_status: ConnectionStatus::LoggedOut,
                failback: Default::default(),
                version: 7,
            }
        );
        assert_eq!(rec.health.active_failures, 2);
        let (expr, names) = projection();
        assert_eq!(names.len(), TENANT_ATTRIBUTES_READ.len());
        assert_eq!(expr.split(", ").count(), TENANT_ATTRIBUTES_READ.len());
    }
}
