//! DynamoDB repository of tenant configs.
//!
//! One item per tenant, keyed by `tenantId`, holding the [`SealedConfig`] (secrets are KMS
//! ciphertext) plus two derived attributes for the endpoint indexes:
//! `primaryEndpointKey` (GSI `byPrimaryEndpoint`) and `backupEndpointKey` (GSI
//! `byBackupEndpoint`, sparse). Every update is conditional on `version`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use crate::tenant::{SealedConfig, TenantId};

/// GSI over the primary endpoint's base URL.
pub const INDEX_BY_PRIMARY_ENDPOINT: &str = "byPrimaryEndpoint";
/// GSI over the backup endpoint's base URL (only tenants with a backup).
pub const INDEX_BY_BACKUP_ENDPOINT: &str = "byBackupEndpoint";

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

fn backend<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    StoreError::Backend(DisplayErrorContext(e).to_string())
}

/// One page of a listing.
#[derive(Debug, Clone)]
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

/// Reads and writes configs (the config API).
#[async_trait]
pub trait TenantConfigStore: TenantConfigReader {
    /// Stores a new config; `AlreadyExists` if the tenant has one.
    async fn create(&self, config: &SealedConfig) -> Result<(), StoreError>;
    /// Replaces the config if its stored version is still `expected_version`
    /// (`config.version` is the new one); `Conflict` otherwise, `NotFound` if gone. The
    /// health check's attributes on the item are kept ([`replace_config_update`]).
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
    /// Every tenant whose primary or backup endpoint is `endpoint_key` (a normalised base URL).
    async fn by_endpoint(&self, endpoint_key: &str) -> Result<Vec<SealedConfig>, StoreError>;
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
                .map_err(backend)?;
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
            .map_err(backend)?;
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
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::AlreadyExists)
            }
            Err(e) => Err(backend(e)),
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
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                // Tell "gone" from "changed": one read, on the failure path only.
                match self.get(&config.tenant_id).await? {
                    None => Err(StoreError::NotFound),
                    Some(_) => Err(StoreError::Conflict),
                }
            }
            Err(e) => Err(backend(e)),
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
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                match self.get(tenant_id).await? {
                    None => Err(StoreError::NotFound),
                    Some(_) => Err(StoreError::Conflict),
                }
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn list(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<SealedConfig>, StoreError> {
        let start = match cursor {
            None => None,
            Some(c) => {
                let raw = B64URL.decode(c).map_err(|_| StoreError::InvalidCursor)?;
                let id = String::from_utf8(raw)
                    .ok()
                    .and_then(|s| s.parse::<TenantId>().ok())
                    .ok_or(StoreError::InvalidCursor)?;
                Some(HashMap::from([("tenantId".to_string(), key(&id))]))
            }
        };
        let resp = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(backend)?;
        let items = resp
            .items()
            .iter()
            .cloned()
            .map(from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = resp
            .last_evaluated_key()
            .and_then(|k| k.get("tenantId"))
            .and_then(|v| v.as_s().ok())
            .map(|s| B64URL.encode(s.as_bytes()));
        Ok(Page { items, next_cursor })
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
            webhook_source_cidrs: vec![],
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
