//! The health state in DynamoDB: the health check's writes and the config API's reads.
//!
//! - **Tenants table** (read: `Scan`, `GetItem` of the attributes in
//!   [`TENANT_ATTRIBUTES_READ`] only; write: `UpdateItem` of the attributes in
//!   [`TENANT_ATTRIBUTES_WRITTEN`] only, which the function's IAM policy enforces with a
//!   `dynamodb:Attributes` condition). The listing `Scan` is eventually consistent (half the
//!   read capacity of a consistent one); the re-read after a conflict is consistent. Every
//!   write is conditional on what the run read and decided from: the `version`, the status
//!   and both counters. A concurrent config change, or a listing that returned a stale item,
//!   makes it fail with [`StoreError::Conflict`] and the caller re-reads and decides again,
//!   so neither a config edit nor a counter is ever lost. A status-only write leaves `version` alone (an
//!   observation is not a configuration change, and bumping it every minute would make every
//!   slow config edit fail); a switch of `activeEndpoint` is a configuration change and bumps
//!   `version` and `updatedAt`, so a config edit based on the old version gets a 409 instead
//!   of silently undoing the failover.
//! - **Endpoints table**: one [`EndpointHealth`] per server, keyed by `endpointKey`, written
//!   only by the health check (`BatchGetItem`, `BatchWriteItem`), TTL `expiresAt`.
//! - **Audit table**: one [`SwitchAudit`] per failover or failback (`PutItem`), keyed by
//!   `tenantId` and `at`, with `switchStream = "switch"` ([`crate::audit::SWITCH_STREAM`]) so that the
//!   sparse index [`crate::audit::SWITCH_STREAM_INDEX`] lists every automatic switch of every
//!   tenant by time.
//! - **Health-history table** (optional, [`DynamoHealthStore::with_history_table`]): one
//!   [`HealthPoint`] per probed server and run (`BatchWriteItem`), keyed by `endpointKey` and
//!   `at`, TTL `expiresAt` ([`crate::health::HISTORY_RETENTION`]).
//! - The config API reads the same tables ([`HealthReader`]): a tenant's item with the
//!   health check's attributes, endpoint records, history points.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::silence::{SilentFlag, TenantActivity};
use super::standby::StandbyNote;
use super::store::{
    HealthReader, HealthStore, HistoryWriteError, SwitchAudit, TenantRecord, TenantStateUpdate,
    TenantStatusRecord,
};
use super::{EndpointHealth, HealthPoint, TenantHealth};
use crate::audit::SWITCH_STREAM;
use crate::dynamo::{all_pages, conditional, error_text, scan_all};
use crate::tenant::dynamo::{decode_cursor, encode_cursor, from_item};
use crate::tenant::store::{Page, StoreError};
use crate::tenant::{ConnectionStatus, TenantId};
use crate::timestamp;

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
    "silent",
    "standby",
];

/// `BatchWriteItem` requests of health-history points in flight at once.
pub const HISTORY_WRITE_CONCURRENCY: usize = 4;

/// Every tenant-item attribute the health check reads (the projection of its `Scan` and
/// `GetItem`): what [`super::store::MonitoredTenant`] and [`TenantHealth`] hold, nothing else (not the
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
    "lastEventAt",
    "silent",
    "standby",
];

/// The DynamoDB implementation.
#[derive(Debug, Clone)]
pub struct DynamoHealthStore {
    client: Client,
    tenants_table: String,
    endpoints_table: String,
    audit_table: String,
    history_table: Option<String>,
}

impl DynamoHealthStore {
    /// Sets (`Some`) or removes (`None`) one observation attribute of an existing tenant item
    /// (`silent`, `standby`): one `UpdateItem`, never the config's own attributes, never
    /// `version`; a tenant deleted meanwhile is `NotFound`, not re-created.
    async fn set_observation(
        &self,
        tenant_id: &TenantId,
        attribute: &str,
        value: Option<AttributeValue>,
    ) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.tenants_table)
            .key("tenantId", AttributeValue::S(tenant_id.to_string()))
            .condition_expression("attribute_exists(tenantId)")
            .expression_attribute_names("#a", attribute);
        let req = match value {
            Some(v) => req
                .update_expression("SET #a = :v")
                .expression_attribute_values(":v", v),
            None => req.update_expression("REMOVE #a"),
        };
        match conditional(req.send().await) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(StoreError::NotFound),
            Err(e) => Err(StoreError::Backend(e)),
        }
    }

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
            history_table: None,
        }
    }

    /// Writes each run's health-history points to `table` (without it, none are written).
    pub fn with_history_table(mut self, table: impl Into<String>) -> Self {
        self.history_table = Some(table.into());
        self
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn record(item: HashMap<String, AttributeValue>) -> Result<TenantRecord, StoreError> {
    let health: TenantHealth = serde_dynamo::from_item(item.clone()).unwrap_or_default();
    let activity = activity_of(&item);
    let tenant_id = match item.get("tenantId") {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::from("?"),
    };
    let config = serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt {
        tenant_id,
        source: Box::new(e),
    })?;
    Ok(TenantRecord {
        config,
        health,
        activity,
    })
}

/// `lastEventAt`, `silent`, `standby` and `verifiedAt` of a tenant item; an unreadable value
/// reads as absent (an observation, never a reason to skip the tenant).
fn activity_of(item: &HashMap<String, AttributeValue>) -> TenantActivity {
    let mut part = HashMap::new();
    for k in ["lastEventAt", "silent", "standby", "verifiedAt"] {
        if let Some(v) = item.get(k) {
            part.insert(k.to_string(), v.clone());
        }
    }
    serde_dynamo::from_item(part).unwrap_or_default()
}

/// `ProjectionExpression` and its names for [`TENANT_ATTRIBUTES_READ`].
fn projection() -> (String, HashMap<String, String>) {
    projection_of(TENANT_ATTRIBUTES_READ.iter().copied())
}

/// The listing's projection: [`TENANT_ATTRIBUTES_READ`] but `isActive`, which its filter
/// (`isActive = true`) already fixes ([`listed_record`] puts it back).
fn listing_projection() -> (String, HashMap<String, String>) {
    projection_of(
        TENANT_ATTRIBUTES_READ
            .iter()
            .copied()
            .filter(|a| *a != "isActive"),
    )
}

fn projection_of<'a>(attrs: impl Iterator<Item = &'a str>) -> (String, HashMap<String, String>) {
    let attrs: Vec<&str> = attrs.collect();
    let names: HashMap<String, String> = attrs
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("#p{i}"), a.to_string()))
        .collect();
    let expr = (0..attrs.len())
        .map(|i| format!("#p{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    (expr, names)
}

/// A record from the listing: its filter selected `isActive = true`.
fn listed_record(mut item: HashMap<String, AttributeValue>) -> Result<TenantRecord, StoreError> {
    item.entry("isActive".into())
        .or_insert(AttributeValue::Bool(true));
    record(item)
}

#[async_trait]
impl HealthStore for DynamoHealthStore {
    async fn active_tenants_page(
        &self,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<Page<TenantRecord>, StoreError> {
        let start = decode_cursor(cursor)?;
        let (projection, mut names) = listing_projection();
        names.insert("#active".into(), "isActive".into());
        // Eventually consistent: half the read capacity. A stale item is harmless, since
        // every write is conditional on the version, status and counters read.
        let resp = self
            .client
            .scan()
            .table_name(&self.tenants_table)
            .projection_expression(projection)
            .set_expression_attribute_names(Some(names))
            .filter_expression("#active = :t")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .limit(page_size.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start)
            .consistent_read(false)
            .send()
            .await
            .map_err(|e| backend(error_text(e)))?;
        let items = resp
            .items
            .unwrap_or_default()
            .into_iter()
            .map(listed_record)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next_cursor: encode_cursor(resp.last_evaluated_key.as_ref()),
        })
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
            .map_err(|e| backend(error_text(e)))?;
        resp.item.map(record).transpose()
    }

    async fn write_tenant_state(
        &self,
        tenant_id: &TenantId,
        expected_version: u64,
        u: &TenantStateUpdate,
    ) -> Result<(), StoreError> {
        let now = timestamp::rfc3339(u.checked_at);
        let mut sets = vec!["#cs = :s", "healthCheckedAt = :now", "#af = :f", "#ps = :p"];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tenants_table)
            .key("tenantId", AttributeValue::S(tenant_id.to_string()))
            .condition_expression(format!(
                "attribute_exists(tenantId) AND #v = :expected AND {}",
                read_state_condition(u)
            ))
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#cs", "connectionStatus")
            .expression_attribute_names("#af", "healthActiveFailures")
            .expression_attribute_names("#ps", "healthPrimarySuccesses")
            .expression_attribute_values(
                ":s0",
                AttributeValue::S(u.previous_status.as_str().into()),
            )
            .expression_attribute_values(
                ":f0",
                AttributeValue::N(u.previous_health.active_failures.to_string()),
            )
            .expression_attribute_values(
                ":p0",
                AttributeValue::N(u.previous_health.primary_successes.to_string()),
            )
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_version.to_string()),
            )
            .expression_attribute_values(":s", AttributeValue::S(u.status.as_str().into()))
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
                .expression_attribute_values(":to", AttributeValue::S(to.as_str().into()))
                .expression_attribute_values(
                    ":next",
                    AttributeValue::N((expected_version + 1).to_string()),
                );
        }
        let res = req
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await;
        match conditional(res).map_err(StoreError::Backend)? {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict),
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
                    .map_err(|e| backend(error_text(e)))?;
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
        for chunk in put_requests(records).map_err(backend)?.chunks(25) {
            write_batch(&self.client, &self.endpoints_table, chunk.to_vec())
                .await
                .map_err(|(n, reason)| {
                    StoreError::Backend(format!("{n} endpoint record(s) not written: {reason}"))
                })?;
        }
        Ok(())
    }

    async fn put_note(&self, record: &crate::audit::AuditEntry) -> Result<(), StoreError> {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(record).map_err(backend)?;
        self.client
            .put_item()
            .table_name(&self.audit_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(tenantId)")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend(error_text(e)))
    }

    async fn set_silent(
        &self,
        tenant_id: &TenantId,
        flag: Option<&SilentFlag>,
    ) -> Result<(), StoreError> {
        let value = flag.map(serde_dynamo::to_attribute_value).transpose();
        self.set_observation(tenant_id, "silent", value.map_err(backend)?)
            .await
    }

    async fn put_audit(&self, record: &SwitchAudit) -> Result<(), StoreError> {
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(record).map_err(backend)?;
        // Every record written here is an automatic switch: into the sparse index.
        item.insert(
            "switchStream".into(),
            AttributeValue::S(SWITCH_STREAM.into()),
        );
        self.client
            .put_item()
            .table_name(&self.audit_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(tenantId)")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend(error_text(e)))
    }

    async fn set_standby(
        &self,
        tenant_id: &TenantId,
        note: Option<&StandbyNote>,
    ) -> Result<(), StoreError> {
        let value = note.map(serde_dynamo::to_attribute_value).transpose();
        self.set_observation(tenant_id, "standby", value.map_err(backend)?)
            .await
    }

    async fn save_history(&self, points: &[HealthPoint]) -> Result<(), HistoryWriteError> {
        let Some(table) = &self.history_table else {
            return Ok(());
        };
        let mut requests = put_requests(points).map_err(|reason| HistoryWriteError {
            unwritten: points.len(),
            reason,
        })?;
        // At most 25 items a request, HISTORY_WRITE_CONCURRENCY requests at once.
        let permits = Arc::new(Semaphore::new(HISTORY_WRITE_CONCURRENCY));
        let mut set = JoinSet::new();
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(25));
            let batch = std::mem::replace(&mut requests, rest);
            let client = self.client.clone();
            let table = table.clone();
            let permits = permits.clone();
            set.spawn(async move {
                let _permit = permits.acquire_owned().await;
                write_batch(&client, &table, batch).await
            });
        }
        let (mut unwritten, mut reason) = (0, None);
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err((n, e))) => {
                    unwritten += n;
                    reason.get_or_insert(e);
                }
                Err(e) => {
                    // A panicked or cancelled batch: its size is unknown here, count a batch.
                    unwritten += 25;
                    reason.get_or_insert(e.to_string());
                }
            }
        }
        match reason {
            None => Ok(()),
            Some(reason) => Err(HistoryWriteError {
                unwritten: unwritten.min(points.len()),
                reason,
            }),
        }
    }
}

#[async_trait]
impl HealthReader for DynamoHealthStore {
    async fn tenant_status(
        &self,
        tenant_id: &TenantId,
    ) -> Result<Option<TenantStatusRecord>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.tenants_table)
            .key("tenantId", AttributeValue::S(tenant_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(error_text(e)))?;
        let Some(item) = resp.item else {
            return Ok(None);
        };
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let (connection_status_at, health_checked_at) =
            (s("connectionStatusAt"), s("healthCheckedAt"));
        let health = TenantHealth {
            active_failures: item
                .get("healthActiveFailures")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            primary_successes: item
                .get("healthPrimarySuccesses")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        };
        let activity = activity_of(&item);
        Ok(Some(TenantStatusRecord {
            activity,
            config: from_item(item)?,
            connection_status_at,
            health_checked_at,
            health,
        }))
    }

    async fn endpoint(&self, key: &str) -> Result<Option<EndpointHealth>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.endpoints_table)
            .key("endpointKey", AttributeValue::S(key.to_string()))
            .send()
            .await
            .map_err(|e| backend(error_text(e)))?;
        Ok(resp
            .item
            .and_then(|i| serde_dynamo::from_item::<_, EndpointHealth>(i).ok()))
    }

    async fn all_endpoints(&self) -> Result<Vec<EndpointHealth>, StoreError> {
        // A record this version cannot read is skipped, not fatal to the whole listing.
        Ok(scan_all(&self.client, &self.endpoints_table, false)
            .await
            .map_err(backend)?
            .into_iter()
            .filter_map(|item| serde_dynamo::from_item::<_, EndpointHealth>(item).ok())
            .collect())
    }

    async fn all_activity(&self) -> Result<Vec<(TenantId, TenantActivity)>, StoreError> {
        let (projection, names) =
            projection_of(["tenantId", "lastEventAt", "silent", "standby"].into_iter());
        let items = all_pages(|start| {
            let (projection, names) = (projection.clone(), names.clone());
            async move {
                let resp = self
                    .client
                    .scan()
                    .table_name(&self.tenants_table)
                    .projection_expression(projection)
                    .set_expression_attribute_names(Some(names))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(error_text)?;
                Ok((resp.items.unwrap_or_default(), resp.last_evaluated_key))
            }
        })
        .await
        .map_err(backend)?;
        Ok(items
            .into_iter()
            .filter_map(|item| {
                let id = item
                    .get("tenantId")?
                    .as_s()
                    .ok()?
                    .parse::<TenantId>()
                    .ok()?;
                Some((id, activity_of(&item)))
            })
            .collect())
    }

    async fn history(&self, key: &str, since: &str) -> Result<Vec<HealthPoint>, StoreError> {
        let Some(table) = &self.history_table else {
            return Ok(Vec::new());
        };
        let client = &self.client;
        let items = all_pages(|start| async move {
            let resp = client
                .query()
                .table_name(table)
                .key_condition_expression("endpointKey = :k AND #at >= :s")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":k", AttributeValue::S(key.to_string()))
                .expression_attribute_values(":s", AttributeValue::S(since.to_string()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(error_text)?;
            Ok((resp.items.unwrap_or_default(), resp.last_evaluated_key))
        })
        .await
        .map_err(backend)?;
        // A point this version cannot read is skipped, not fatal to the whole chart.
        Ok(items
            .into_iter()
            .filter_map(|item| serde_dynamo::from_item::<_, HealthPoint>(item).ok())
            .collect())
    }
}

/// One `PutRequest` per record, for `BatchWriteItem`.
fn put_requests<T: Serialize>(records: &[T]) -> Result<Vec<WriteRequest>, String> {
    records
        .iter()
        .map(|r| {
            let item = serde_dynamo::to_item(r).map_err(|e| e.to_string())?;
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| e.to_string())?;
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect()
}

/// One `BatchWriteItem` of up to 25 puts, its `UnprocessedItems` retried 4 times with
/// backoff (40, 80, 160, 320 ms). On failure: how many were not written, and why.
async fn write_batch(
    client: &Client,
    table: &str,
    mut pending: Vec<WriteRequest>,
) -> Result<(), (usize, String)> {
    for attempt in 0..5u32 {
        if pending.is_empty() {
            return Ok(());
        }
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
        }
        let n = pending.len();
        let resp = client
            .batch_write_item()
            .request_items(table, std::mem::take(&mut pending))
            .send()
            .await
            .map_err(|e| (n, error_text(e)))?;
        pending = resp
            .unprocessed_items
            .and_then(|mut u| u.remove(table))
            .unwrap_or_default();
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err((pending.len(), "left unprocessed after retries".into()))
    }
}

/// The write's condition on the state the run read: status and counters as read (absent
/// when read as their defaults and never written).
fn read_state_condition(u: &TenantStateUpdate) -> String {
    let eq_or_absent = |name: &str, value: &str, default: bool| {
        if default {
            format!("(attribute_not_exists({name}) OR {name} = {value})")
        } else {
            format!("{name} = {value}")
        }
    };
    [
        eq_or_absent(
            "#cs",
            ":s0",
            u.previous_status == ConnectionStatus::default(),
        ),
        eq_or_absent("#af", ":f0", u.previous_health.active_failures == 0),
        eq_or_absent("#ps", ":p0", u.previous_health.primary_successes == 0),
    ]
    .join(" AND ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::store::MonitoredTenant;
    use crate::secrets::SealedSecret;
    use crate::tenant::*;
    use time::OffsetDateTime;
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
            provider: None,
            webhook_source_cidrs: vec![],
            webhook_wiring: Default::default(),
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
        let mut item = crate::tenant::dynamo::to_item(&cfg).unwrap();
        item.insert("healthActiveFailures".into(), AttributeValue::N("2".into()));
        item.insert(
            "healthPrimarySuccesses".into(),
            AttributeValue::N("0".into()),
        );
        item.insert("healthCheckedAt".into(), AttributeValue::S("x".into()));
        item.insert(
            "lastEventAt".into(),
            AttributeValue::S("2026-01-01T00:05:00Z".into()),
        );
        let flag = SilentFlag {
            since: datetime!(2026-01-01 1:00 UTC),
            sends_accepted: 3,
            window_minutes: 30,
            last_event_at: None,
        };
        item.insert(
            "silent".into(),
            serde_dynamo::to_attribute_value(&flag).unwrap(),
        );
        let standby = StandbyNote {
            role: EndpointRole::Primary,
            ready: false,
            reasons: vec!["server_down".into()],
            detail: Some("its server does not answer (timeout)".into()),
            config_version: 7,
            since: datetime!(2026-01-01 1:30 UTC),
        };
        item.insert(
            "standby".into(),
            serde_dynamo::to_attribute_value(&standby).unwrap(),
        );
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
        assert_eq!(
            rec.activity.last_event_at,
            Some(datetime!(2026-01-01 0:05 UTC))
        );
        assert_eq!(rec.activity.silent, Some(flag));
        assert_eq!(rec.activity.standby, Some(standby));
        let (expr, names) = projection();
        assert_eq!(names.len(), TENANT_ATTRIBUTES_READ.len());
        assert_eq!(expr.split(", ").count(), TENANT_ATTRIBUTES_READ.len());
    }

    #[test]
    fn the_listing_leaves_out_is_active_and_puts_it_back() {
        let (expr, names) = listing_projection();
        assert_eq!(expr.split(", ").count(), TENANT_ATTRIBUTES_READ.len() - 1);
        assert!(!names.values().any(|a| a == "isActive"));
        let mut item = HashMap::new();
        item.insert("tenantId".to_string(), AttributeValue::S("t1".into()));
        let with = listed_record(item.clone());
        // Still incomplete (no primary), but not for lack of isActive.
        let err = format!("{:?}", with.unwrap_err());
        assert!(!err.contains("isActive"), "{err}");
    }

    #[test]
    fn a_write_is_conditional_on_the_state_read() {
        let u = |status, f, p| TenantStateUpdate {
            previous_status: status,
            previous_health: TenantHealth {
                active_failures: f,
                primary_successes: p,
            },
            status: ConnectionStatus::Connected,
            status_changed: true,
            health: TenantHealth::default(),
            checked_at: OffsetDateTime::UNIX_EPOCH,
            switch_to: None,
        };
        assert_eq!(
            read_state_condition(&u(ConnectionStatus::Unknown, 0, 0)),
            "(attribute_not_exists(#cs) OR #cs = :s0) AND (attribute_not_exists(#af) OR #af = :f0) \
             AND (attribute_not_exists(#ps) OR #ps = :p0)"
        );
        assert_eq!(
            read_state_condition(&u(ConnectionStatus::EndpointDown, 2, 1)),
            "#cs = :s0 AND #af = :f0 AND #ps = :p0"
        );
    }
}
