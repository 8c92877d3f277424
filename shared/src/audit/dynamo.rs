//! The audit table in DynamoDB: records are written inside the transaction of the change they
//! record ([`record_put`]), and read a tenant at a time or from the switch-stream index.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use super::{AuditEntry, AuditReader, SWITCH_STREAM, SWITCH_STREAM_INDEX};
use crate::dynamo::error_text;
use crate::tenant::TenantId;
use crate::tenant::store::{Page, StoreError};

/// The transaction item that writes `entry` to `table`, once (its key is new, or the
/// transaction fails).
pub fn record_put(table: &str, entry: &AuditEntry) -> Result<TransactWriteItem, StoreError> {
    let item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(entry).map_err(|e| StoreError::Corrupt {
            tenant_id: entry.tenant_id.clone(),
            source: Box::new(e),
        })?;
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(tenantId)")
        .build()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Reads the audit table.
#[derive(Debug, Clone)]
pub struct DynamoAuditLog {
    client: Client,
    table: String,
}

impl DynamoAuditLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl AuditReader for DynamoAuditLog {
    async fn page(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let start = match cursor {
            None => None,
            Some(c) => {
                let at = B64URL
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .filter(|s| !s.is_empty() && s.len() <= 200)
                    .ok_or(StoreError::InvalidCursor)?;
                Some(HashMap::from([
                    (
                        "tenantId".to_string(),
                        AttributeValue::S(tenant.to_string()),
                    ),
                    ("at".to_string(), AttributeValue::S(at)),
                ]))
            }
        };
        let resp = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("tenantId = :t")
            .expression_attribute_values(":t", AttributeValue::S(tenant.to_string()))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::Backend(error_text(e)))?;
        let mut items = Vec::new();
        for item in resp.items.unwrap_or_default() {
            let entry: AuditEntry =
                serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt {
                    tenant_id: tenant.to_string(),
                    source: Box::new(e),
                })?;
            items.push(entry);
        }
        let next_cursor = resp
            .last_evaluated_key
            .as_ref()
            .and_then(|k| k.get("at"))
            .and_then(|v| v.as_s().ok())
            .map(|s| B64URL.encode(s.as_bytes()));
        Ok(Page { items, next_cursor })
    }

    async fn switches_since(
        &self,
        since: &str,
        max: usize,
    ) -> Result<(Vec<AuditEntry>, bool), StoreError> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        let mut truncated = false;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(SWITCH_STREAM_INDEX)
                .key_condition_expression("switchStream = :s AND #at >= :since")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":s", AttributeValue::S(SWITCH_STREAM.into()))
                .expression_attribute_values(":since", AttributeValue::S(since.to_string()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::Backend(error_text(e)))?;
            for item in resp.items.unwrap_or_default() {
                if items.len() == max {
                    truncated = true;
                    break;
                }
                if let Ok(e) = serde_dynamo::from_item::<_, AuditEntry>(item) {
                    items.push(e);
                }
            }
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() && !truncated => start = Some(k),
                _ => break,
            }
        }
        Ok((items, truncated))
    }
}
