//! The config API's storage in DynamoDB: [`stores`] wires the shared adapters and the
//! config API's own tables (the server registry, the migration jobs).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use time::OffsetDateTime;
use wagate::audit::AuditEntry;
use wagate::audit::dynamo::{DynamoAuditLog, record_put};
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::dynamo::{conditional, error_text, scan_all};
use wagate::health::dynamo::DynamoHealthStore;
use wagate::tenant::dynamo::{DynamoConfigJournal, DynamoTenantStore};
use wagate::tenant::store::StoreError;
use wagate::timestamp;

use super::{MigrationJobs, ServerRegistry, Stores, Tables};
use crate::fleet::{MigrationJob, Server, TargetTest, TenantResult};

/// Every store of the config API over one DynamoDB client.
pub fn stores(client: Client, tables: &Tables) -> Stores {
    Stores {
        tenants: Arc::new(DynamoTenantStore::new(client.clone(), &tables.tenants)),
        journal: Arc::new(DynamoConfigJournal::new(
            client.clone(),
            &tables.tenants,
            &tables.audit,
        )),
        audit: Arc::new(DynamoAuditLog::new(client.clone(), &tables.audit)),
        health: Arc::new(
            DynamoHealthStore::new(
                client.clone(),
                &tables.tenants,
                &tables.endpoints,
                &tables.audit,
            )
            .with_history_table(&tables.history),
        ),
        // Read only: the rate table and the retention are the sender's business.
        deliveries: Arc::new(DynamoDeliveryStore::new(
            client.clone(),
            &tables.messages,
            "",
            Duration::ZERO,
        )),
        servers: Arc::new(DynamoServerRegistry::new(
            client.clone(),
            &tables.servers,
            &tables.audit,
        )),
        jobs: Arc::new(DynamoMigrationJobs::new(client, &tables.jobs)),
    }
}

fn backend(text: String) -> StoreError {
    StoreError::Backend(text)
}

fn corrupt(key: &str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Corrupt {
        tenant_id: key.to_string(),
        source: Box::new(e),
    }
}

fn built(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// One `TransactWriteItems`; `false` when a condition failed.
async fn transact(client: &Client, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
    let res = client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await;
    Ok(conditional(res).map_err(backend)?.is_some())
}

/// One item read consistently by its key, as `T` (`label` names it in a corrupt-item error).
async fn get_item<T: serde::de::DeserializeOwned>(
    client: &Client,
    table: &str,
    key: &str,
    value: AttributeValue,
    label: &str,
) -> Result<Option<T>, StoreError> {
    let resp = client
        .get_item()
        .table_name(table)
        .key(key, value)
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| backend(error_text(e)))?;
    resp.item
        .map(|i| serde_dynamo::from_item(i).map_err(|e| corrupt(label, e)))
        .transpose()
}

fn server_pk(id: &str) -> AttributeValue {
    AttributeValue::S(format!("server#{id}"))
}

fn url_pk(url: &str) -> AttributeValue {
    AttributeValue::S(format!("url#{url}"))
}

fn server_item(s: &Server) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(s).map_err(|e| corrupt(&s.server_id, e))?;
    item.insert("pk".into(), server_pk(&s.server_id));
    Ok(item)
}

/// ServersTable: `pk = server#<serverId>` (the server) and `pk = url#<baseUrl>` (the guard
/// that registers a base URL once), written with the audit record in one transaction.
#[derive(Debug, Clone)]
pub struct DynamoServerRegistry {
    client: Client,
    table: String,
    audit_table: String,
}

impl DynamoServerRegistry {
    pub fn new(client: Client, table: impl Into<String>, audit_table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            audit_table: audit_table.into(),
        }
    }
}

#[async_trait]
impl ServerRegistry for DynamoServerRegistry {
    async fn get(&self, id: &str) -> Result<Option<Server>, StoreError> {
        get_item(&self.client, &self.table, "pk", server_pk(id), id).await
    }

    async fn all(&self) -> Result<Vec<Server>, StoreError> {
        let mut out = Vec::new();
        for item in scan_all(&self.client, &self.table, true)
            .await
            .map_err(backend)?
        {
            let pk = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            if pk.starts_with("server#") {
                out.push(serde_dynamo::from_item(item).map_err(|e| corrupt(&pk, e))?);
            }
        }
        out.sort_by(|a: &Server, b| a.server_id.cmp(&b.server_id));
        Ok(out)
    }

    async fn register(&self, server: &Server, record: &AuditEntry) -> Result<bool, StoreError> {
        let items = vec![
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(server_item(server)?))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(built)?,
                )
                .build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .item("pk", url_pk(&server.base_url))
                        .item("serverId", AttributeValue::S(server.server_id.clone()))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(built)?,
                )
                .build(),
            record_put(&self.audit_table, record)?,
        ];
        transact(&self.client, items).await
    }

    async fn update(
        &self,
        server: &Server,
        expected_version: u64,
        record: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let items = vec![
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(server_item(server)?))
                        .condition_expression("attribute_exists(pk) AND #v = :v")
                        .expression_attribute_names("#v", "version")
                        .expression_attribute_values(
                            ":v",
                            AttributeValue::N(expected_version.to_string()),
                        )
                        .build()
                        .map_err(built)?,
                )
                .build(),
            record_put(&self.audit_table, record)?,
        ];
        transact(&self.client, items).await
    }

    async fn deregister(&self, server: &Server, record: &AuditEntry) -> Result<bool, StoreError> {
        let items = vec![
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .key("pk", server_pk(&server.server_id))
                        .condition_expression("#v = :v")
                        .expression_attribute_names("#v", "version")
                        .expression_attribute_values(
                            ":v",
                            AttributeValue::N(server.version.to_string()),
                        )
                        .build()
                        .map_err(built)?,
                )
                .build(),
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .key("pk", url_pk(&server.base_url))
                        .build()
                        .map_err(built)?,
                )
                .build(),
            record_put(&self.audit_table, record)?,
        ];
        transact(&self.client, items).await
    }
}

/// MigrationJobsTable: one item per job, key `jobId`; a tenant's result is an entry of the
/// job's `results` map.
#[derive(Debug, Clone)]
pub struct DynamoMigrationJobs {
    client: Client,
    table: String,
}

impl DynamoMigrationJobs {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl MigrationJobs for DynamoMigrationJobs {
    async fn get(&self, id: &str) -> Result<Option<MigrationJob>, StoreError> {
        let key = AttributeValue::S(id.to_string());
        get_item(&self.client, &self.table, "jobId", key, id).await
    }

    async fn create(&self, job: &MigrationJob) -> Result<bool, StoreError> {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(job).map_err(|e| corrupt(&job.job_id, e))?;
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(jobId)")
            .send()
            .await;
        Ok(conditional(res).map_err(backend)?.is_some())
    }

    async fn record(
        &self,
        job_id: &str,
        r: &TenantResult,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let value: AttributeValue =
            serde_dynamo::to_attribute_value(r).map_err(|e| corrupt(job_id, e))?;
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("jobId", AttributeValue::S(job_id.to_string()))
            .update_expression("SET #r.#t = :r, updatedAt = :now")
            .condition_expression(
                "attribute_exists(jobId) AND (attribute_not_exists(#r.#t) OR #r.#t.outcome <> :moved)",
            )
            .expression_attribute_names("#r", "results")
            .expression_attribute_names("#t", &r.tenant_id)
            .expression_attribute_values(":r", value)
            .expression_attribute_values(":now", AttributeValue::S(timestamp::rfc3339(now)))
            .expression_attribute_values(":moved", AttributeValue::S("moved".into()))
            .send()
            .await;
        // A recorded `moved` stays: the condition failing is not an error.
        conditional(res).map_err(backend)?;
        Ok(())
    }

    async fn record_test(
        &self,
        job_id: &str,
        t: &TargetTest,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let value: AttributeValue =
            serde_dynamo::to_attribute_value(t).map_err(|e| corrupt(job_id, e))?;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("jobId", AttributeValue::S(job_id.to_string()))
            .update_expression("SET targetTest = :t, updatedAt = :now")
            .expression_attribute_values(":t", value)
            .expression_attribute_values(":now", AttributeValue::S(timestamp::rfc3339(now)))
            .send()
            .await
            .map_err(|e| backend(error_text(e)))?;
        Ok(())
    }
}
