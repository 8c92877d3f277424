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
    /// (`config.version` is the new one); `Conflict` otherwise, `NotFound` if gone.
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
        let item = to_item(config)?;
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(tenantId) AND #v = :expected")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_version.to_string()),
            )
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
