//! The tenants table in DynamoDB.
//!
//! One item per tenant, keyed by `tenantId`, holding the [`SealedConfig`] (secrets are KMS
//! ciphertext) plus two derived attributes for the endpoint indexes:
//! `primaryEndpointKey` (GSI `byPrimaryEndpoint`) and `backupEndpointKey` (GSI
//! `byBackupEndpoint`, sparse). Every update is conditional on `version`. The health check's
//! attributes on the same item (status and counters) are written by `crate::health::dynamo`;
//! a config update leaves them alone ([`replace_config_update`]).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use time::OffsetDateTime;

use super::store::{
    ConfigJournal, EventSeenWriter, Page, StoreError, TenantConfigReader, TenantConfigStore,
    TenantStatusWriter,
};
use super::{ConnectionStatus, SealedConfig, TenantId};
use crate::audit::AuditEntry;
use crate::audit::dynamo::record_put;
use crate::dynamo::{conditional, error_text, scan_all};
use crate::timestamp;

/// GSI over the primary endpoint's base URL.
pub const INDEX_BY_PRIMARY_ENDPOINT: &str = "byPrimaryEndpoint";
/// GSI over the backup endpoint's base URL (only tenants with a backup).
pub const INDEX_BY_BACKUP_ENDPOINT: &str = "byBackupEndpoint";

fn backend(text: String) -> StoreError {
    StoreError::Backend(text)
}

/// A page cursor of a listing of the tenants table: the last key, opaque to the caller.
pub(crate) fn encode_cursor(last_key: Option<&HashMap<String, AttributeValue>>) -> Option<String> {
    last_key
        .and_then(|k| k.get("tenantId"))
        .and_then(|v| v.as_s().ok())
        .map(|s| B64URL.encode(s.as_bytes()))
}

/// The `ExclusiveStartKey` of a cursor made by [`encode_cursor`].
pub(crate) fn decode_cursor(
    cursor: Option<&str>,
) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
    let Some(c) = cursor else {
        return Ok(None);
    };
    let raw = B64URL.decode(c).map_err(|_| StoreError::InvalidCursor)?;
    let id = String::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse::<TenantId>().ok())
        .ok_or(StoreError::InvalidCursor)?;
    Ok(Some(HashMap::from([("tenantId".to_string(), key(&id))])))
}

/// The DynamoDB implementation.
#[derive(Debug, Clone)]
pub struct DynamoTenantStore {
    client: Client,
    table: String,
}

impl DynamoTenantStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn query_index(
        &self,
        index: &str,
        attr: &str,
        key: &str,
        out: &mut Vec<SealedConfig>,
    ) -> Result<(), StoreError> {
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", attr)
                .expression_attribute_values(":k", AttributeValue::S(key.to_string()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| backend(error_text(e)))?;
            for item in resp.items() {
                let cfg = from_item(item.clone())?;
                if !out.iter().any(|c| c.tenant_id == cfg.tenant_id) {
                    out.push(cfg);
                }
            }
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(()),
            }
        }
    }
}

/// The DynamoDB item of a config, with the derived index attributes.
pub fn to_item(config: &SealedConfig) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(config).map_err(|e| StoreError::Corrupt {
            tenant_id: config.tenant_id.to_string(),
            source: Box::new(e),
        })?;
    item.insert(
        "primaryEndpointKey".into(),
        AttributeValue::S(config.primary.endpoint_key().to_string()),
    );
    if let Some(b) = &config.backup {
        item.insert(
            "backupEndpointKey".into(),
            AttributeValue::S(b.endpoint_key().to_string()),
        );
    }
    Ok(item)
}

/// Top-level attributes a config item has only sometimes (an optional field of
/// [`SealedConfig`] skipped when empty, and its derived index key). A replacing update
/// removes those the new config lacks.
pub const OPTIONAL_CONFIG_ATTRIBUTES: &[&str] = &["backup", "backupEndpointKey"];

/// Attributes of the tenant item that the health check owns once the item exists: a
/// config update leaves them as stored (see [`replace_config_update`]).
pub const HEALTH_OWNED_ATTRIBUTES: &[&str] = &["connectionStatus"];

/// The parts of an `UpdateItem` (plain or in a transaction) that replaces the config stored
/// at `expected_version` by `config`.
#[derive(Debug, Clone)]
pub struct ConfigUpdate {
    pub key: HashMap<String, AttributeValue>,
    pub update_expression: String,
    pub condition_expression: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

/// A config update as an `UpdateItem` rather than a whole-item `PutItem`: it sets every
/// attribute of the new config and removes the optional ones it no longer has, and leaves
/// every other attribute of the item alone: the health check's state
/// (`healthActiveFailures`, `healthPrimarySuccesses`, `connectionStatus`,
/// `connectionStatusAt`, `healthCheckedAt`), which a whole-item put used to wipe, so that
/// an operator's edit reset the failover hysteresis. The health check writes its state
/// without bumping `version`; being an update of named attributes, this cannot lose such a
/// write made between the caller's read and this update either.
pub fn replace_config_update(
    config: &SealedConfig,
    expected_version: u64,
) -> Result<ConfigUpdate, StoreError> {
    let item = to_item(config)?;
    let mut attrs: Vec<(&String, &AttributeValue)> = item
        .iter()
        .filter(|(k, _)| k.as_str() != "tenantId" && !HEALTH_OWNED_ATTRIBUTES.contains(&k.as_str()))
        .collect();
    attrs.sort_by(|a, b| a.0.cmp(b.0));
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut sets = Vec::with_capacity(attrs.len());
    let mut version_name = None;
    for (i, (k, v)) in attrs.into_iter().enumerate() {
        let (n, val) = (format!("#a{i}"), format!(":a{i}"));
        if k == "version" {
            version_name = Some(n.clone());
        }
        sets.push(format!("{n} = {val}"));
        names.insert(n, k.clone());
        values.insert(val, v.clone());
    }
    let removes: Vec<String> = OPTIONAL_CONFIG_ATTRIBUTES
        .iter()
        .filter(|a| !item.contains_key(**a))
        .enumerate()
        .map(|(i, a)| {
            let n = format!("#r{i}");
            names.insert(n.clone(), a.to_string());
            n
        })
        .collect();
    let version_name = version_name.ok_or_else(|| StoreError::Corrupt {
        tenant_id: config.tenant_id.to_string(),
        source: "a config item without version".into(),
    })?;
    values.insert(
        ":expected".into(),
        AttributeValue::N(expected_version.to_string()),
    );
    let mut update_expression = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        update_expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    Ok(ConfigUpdate {
        key: HashMap::from([("tenantId".to_string(), key(&config.tenant_id))]),
        update_expression,
        condition_expression: format!("attribute_exists(tenantId) AND {version_name} = :expected"),
        names,
        values,
    })
}

/// A config from its DynamoDB item.
pub fn from_item(item: HashMap<String, AttributeValue>) -> Result<SealedConfig, StoreError> {
    let tenant_id = match item.get("tenantId") {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::from("?"),
    };
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt {
        tenant_id,
        source: Box::new(e),
    })
}

fn key(tenant_id: &TenantId) -> AttributeValue {
    AttributeValue::S(tenant_id.as_str().to_string())
}

#[async_trait]
impl TenantConfigReader for DynamoTenantStore {
    async fn get(&self, tenant_id: &TenantId) -> Result<Option<SealedConfig>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("tenantId", key(tenant_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(error_text(e)))?;
        resp.item.map(from_item).transpose()
    }
}

#[async_trait]
impl TenantConfigStore for DynamoTenantStore {
    async fn create(&self, config: &SealedConfig) -> Result<(), StoreError> {
        let item = to_item(config)?;
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(tenantId)")
            .send()
            .await;
        match conditional(res).map_err(backend)? {
            Some(_) => Ok(()),
            None => Err(StoreError::AlreadyExists),
        }
    }

    async fn update(&self, config: &SealedConfig, expected_version: u64) -> Result<(), StoreError> {
        let u = replace_config_update(config, expected_version)?;
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(u.key))
            .update_expression(u.update_expression)
            .condition_expression(u.condition_expression)
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
            .send()
            .await;
        match conditional(res).map_err(backend)? {
            Some(_) => Ok(()),
            // Tell "gone" from "changed": one read, on the failure path only.
            None => match self.get(&config.tenant_id).await? {
                None => Err(StoreError::NotFound),
                Some(_) => Err(StoreError::Conflict),
            },
        }
    }

    async fn delete(
        &self,
        tenant_id: &TenantId,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut req = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("tenantId", key(tenant_id));
        req = match expected_version {
            Some(v) => req
                .condition_expression("attribute_exists(tenantId) AND #v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
            None => req.condition_expression("attribute_exists(tenantId)"),
        };
        match conditional(req.send().await).map_err(backend)? {
            Some(_) => Ok(()),
            None => match self.get(tenant_id).await? {
                None => Err(StoreError::NotFound),
                Some(_) => Err(StoreError::Conflict),
            },
        }
    }

    async fn list(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<SealedConfig>, StoreError> {
        let start = decode_cursor(cursor)?;
        let resp = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| backend(error_text(e)))?;
        let items = resp
            .items()
            .iter()
            .cloned()
            .map(from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = encode_cursor(resp.last_evaluated_key());
        Ok(Page { items, next_cursor })
    }

    async fn all(&self) -> Result<Vec<SealedConfig>, StoreError> {
        scan_all(&self.client, &self.table, true)
            .await
            .map_err(backend)?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn by_endpoint(&self, endpoint_key: &str) -> Result<Vec<SealedConfig>, StoreError> {
        let mut out = Vec::new();
        self.query_index(
            INDEX_BY_PRIMARY_ENDPOINT,
            "primaryEndpointKey",
            endpoint_key,
            &mut out,
        )
        .await?;
        self.query_index(
            INDEX_BY_BACKUP_ENDPOINT,
            "backupEndpointKey",
            endpoint_key,
            &mut out,
        )
        .await?;
        Ok(out)
    }
}

#[async_trait]
impl TenantStatusWriter for DynamoTenantStore {
    /// Updates only `connectionStatus` and `connectionStatusAt` of the tenant's item.
    async fn set_connection_status(
        &self,
        tenant_id: &TenantId,
        status: ConnectionStatus,
    ) -> Result<(), String> {
        let now = timestamp::rfc3339(OffsetDateTime::now_utc());
        self.client
            .update_item()
            .table_name(&self.table)
            .key("tenantId", key(tenant_id))
            .update_expression("SET connectionStatus = :s, connectionStatusAt = :now")
            .condition_expression("attribute_exists(tenantId)")
            .expression_attribute_values(":s", AttributeValue::S(status.as_str().into()))
            .expression_attribute_values(":now", AttributeValue::S(now))
            .send()
            .await
            .map(|_| ())
            .map_err(error_text)
    }
}

#[async_trait]
impl EventSeenWriter for DynamoTenantStore {
    async fn note_event_seen(
        &self,
        tenant_id: &TenantId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.set_observed_time(tenant_id, "lastEventAt", at).await
    }

    async fn note_callback_verified(
        &self,
        tenant_id: &TenantId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.set_observed_time(tenant_id, "verifiedAt", at).await
    }
}

impl DynamoTenantStore {
    /// One `UpdateItem` of `attribute` alone (an observation the ingress makes: never the
    /// config's own attributes, never `version`), on an existing item (a deleted tenant's late
    /// webhook creates nothing). The ingress's IAM statement allows exactly these attributes.
    async fn set_observed_time(
        &self,
        tenant_id: &TenantId,
        attribute: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("tenantId", key(tenant_id))
            .update_expression("SET #a = :at")
            .condition_expression("attribute_exists(tenantId)")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":at", AttributeValue::S(timestamp::rfc3339(at)))
            .send()
            .await;
        match conditional(res) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(StoreError::NotFound),
            Err(e) => Err(StoreError::Backend(e)),
        }
    }
}

/// Writes configs with their audit records: the tenant item and its record in one
/// `TransactWriteItems` request.
#[derive(Debug, Clone)]
pub struct DynamoConfigJournal {
    client: Client,
    tenants_table: String,
    audit_table: String,
}

impl DynamoConfigJournal {
    pub fn new(
        client: Client,
        tenants_table: impl Into<String>,
        audit_table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            tenants_table: tenants_table.into(),
            audit_table: audit_table.into(),
        }
    }

    /// One `TransactWriteItems`; `Ok(false)` when it was cancelled (a condition failed), so
    /// the caller can tell a conflict from an outage.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        let res = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        Ok(conditional(res).map_err(backend)?.is_some())
    }

    async fn exists(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tenants_table)
            .key("tenantId", key(tenant))
            .projection_expression("tenantId")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(error_text(e)))?;
        Ok(out.item.is_some())
    }
}

#[async_trait]
impl ConfigJournal for DynamoConfigJournal {
    async fn note(&self, record: &AuditEntry) -> Result<(), StoreError> {
        if self
            .transact(vec![record_put(&self.audit_table, record)?])
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::Backend("audit record key collision".into()))
        }
    }

    async fn create(&self, cfg: &SealedConfig, record: &AuditEntry) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.tenants_table)
            .set_item(Some(to_item(cfg)?))
            .condition_expression("attribute_not_exists(tenantId)")
            .build()
            .map_err(|e| backend(e.to_string()))?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            record_put(&self.audit_table, record)?,
        ];
        if self.transact(items).await? {
            Ok(())
        } else if self.exists(&cfg.tenant_id).await? {
            Err(StoreError::AlreadyExists)
        } else {
            Err(StoreError::Backend("transaction cancelled".into()))
        }
    }

    async fn update(
        &self,
        before: &SealedConfig,
        after: &SealedConfig,
        record: &AuditEntry,
    ) -> Result<(), StoreError> {
        // An update of the config's attributes, not a put of the whole item: the health
        // check's counters and status on the item survive the edit.
        let u = replace_config_update(after, before.version)?;
        let update = Update::builder()
            .table_name(&self.tenants_table)
            .set_key(Some(u.key))
            .update_expression(u.update_expression)
            .condition_expression(u.condition_expression)
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
            .build()
            .map_err(|e| backend(e.to_string()))?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            record_put(&self.audit_table, record)?,
        ];
        if self.transact(items).await? {
            Ok(())
        } else if self.exists(&after.tenant_id).await? {
            Err(StoreError::Conflict)
        } else {
            Err(StoreError::NotFound)
        }
    }

    async fn delete(
        &self,
        before: &SealedConfig,
        checked: bool,
        record: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut del = Delete::builder()
            .table_name(&self.tenants_table)
            .key("tenantId", key(&before.tenant_id));
        del = if checked {
            del.condition_expression("attribute_exists(tenantId) AND #v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(
                    ":expected",
                    AttributeValue::N(before.version.to_string()),
                )
        } else {
            del.condition_expression("attribute_exists(tenantId)")
        };
        let items = vec![
            TransactWriteItem::builder()
                .delete(del.build().map_err(|e| backend(e.to_string()))?)
                .build(),
            record_put(&self.audit_table, record)?,
        ];
        if self.transact(items).await? {
            Ok(())
        } else if self.exists(&before.tenant_id).await? {
            Err(StoreError::Conflict)
        } else {
            Err(StoreError::NotFound)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SealedSecret;
    use crate::tenant::*;
    use std::collections::BTreeSet;
    use time::macros::datetime;

    fn endpoint(url: &str) -> Endpoint<SealedSecret> {
        Endpoint {
            base_url: url.into(),
            credentials: Credentials::Basic {
                username: "u".into(),
                password: SealedSecret {
                    ciphertext: "C".into(),
                    fingerprint: "****".into(),
                },
            },
            device_id: Some("d".into()),
            region: Some("eu".into()),
            provider: None,
            webhook_source_cidrs: vec![],
            webhook_wiring: Default::default(),
        }
    }

    fn cfg(backup: bool) -> SealedConfig {
        TenantConfig {
            tenant_id: "t1".parse().unwrap(),
            provider: ProviderKind::Gowa,
            primary: endpoint("https://a.example.com"),
            backup: backup.then(|| endpoint("https://b.example.com")),
            webhook_secrets: vec![],
            active_endpoint: EndpointRole::Primary,
            is_active: true,
            connection_status: ConnectionStatus::Unknown,
            failback: Default::default(),
            limits: Limits::default(),
            version: 3,
            created_at: datetime!(2026-01-01 0:00 UTC),
            updated_at: datetime!(2026-01-01 0:00 UTC),
        }
    }

    fn keys(c: &SealedConfig) -> BTreeSet<String> {
        to_item(c).unwrap().into_keys().collect()
    }

    #[test]
    fn the_optional_attributes_are_exactly_those_a_config_may_lack() {
        let full = keys(&cfg(true));
        let lean = keys(&cfg(false));
        let missing: Vec<&str> = full.difference(&lean).map(String::as_str).collect();
        assert_eq!(missing, OPTIONAL_CONFIG_ATTRIBUTES);
    }

    #[test]
    fn a_config_update_names_every_config_attribute_but_the_health_owned_ones() {
        let u = replace_config_update(&cfg(false), 2).unwrap();
        let mut named: BTreeSet<String> = u.names.values().cloned().collect();
        for a in OPTIONAL_CONFIG_ATTRIBUTES {
            assert!(named.remove(*a), "{a} removed");
        }
        let mut expected = keys(&cfg(false));
        expected.remove("tenantId");
        for a in HEALTH_OWNED_ATTRIBUTES {
            expected.remove(*a);
        }
        assert_eq!(named, expected);
        assert!(
            u.update_expression.contains(" REMOVE #r0, #r1"),
            "{}",
            u.update_expression
        );
        for h in [
            "healthActiveFailures",
            "healthPrimarySuccesses",
            "connectionStatusAt",
        ] {
            assert!(!u.names.values().any(|n| n == h));
        }
        assert_eq!(u.values[":expected"], AttributeValue::N("2".into()));
        let with_backup = replace_config_update(&cfg(true), 2).unwrap();
        assert!(!with_backup.update_expression.contains("REMOVE"));
    }
}
