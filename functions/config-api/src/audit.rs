//! The audit log and the one writer of tenant configs.
//!
//! Every config change goes through [`Journal`]: the tenant item and its audit record are
//! written in one `TransactWriteItems` request, so there is no change without its record and
//! no record of a change that did not happen. Audit records live in the health check's
//! AuditTable (hash `tenantId`, range `at`), next to its failover/failback records
//! ([`wagate::health::store::SwitchAudit`]); the config API adds its own attributes
//! (`fields`, `detail`) and reads both kinds back as [`AuditEntry`].
//!
//! An audit record names the fields that changed, never a value: a secret shows up as
//! `primary.credentials.password`, not as its ciphertext or fingerprint.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use wagate::tenant::dynamo::{replace_config_update, to_item};
use wagate::tenant::store::StoreError;
use wagate::tenant::{SealedConfig, TenantId};

/// What a config change was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
    RotateCredential,
    RotateWebhookSecret,
    /// The active endpoint set by hand.
    Switch,
    /// Primary and backup exchanged by hand.
    Swap,
    /// An endpoint replaced by a tested candidate.
    ReplaceEndpoint,
    Import,
    /// An endpoint moved to another server by a bulk migration job.
    Migrate,
    /// A device or webhook-wiring action on a WhatsApp server (issue 15, `devices.rs`).
    Device(crate::devices::DeviceAction),
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::RotateCredential => "rotate_credential",
            Action::RotateWebhookSecret => "rotate_webhook_secret",
            Action::Switch => "switch",
            Action::Swap => "swap",
            Action::ReplaceEndpoint => "replace_endpoint",
            Action::Import => "import",
            Action::Migrate => "migrate",
            Action::Device(a) => a.as_str(),
        }
    }
}

/// One audit record as the API shows it: the config API's records and the health check's
/// failover/failback records share the table, so the action-specific attributes are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub tenant_id: String,
    /// Sort key: RFC 3339 time, `#`, a unique suffix.
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
    // The health check's switch records.
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

/// One page of a tenant's audit log, newest first.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The sort key of a record written at `now`: fixed-width UTC microseconds, so keys sort
/// by time, and a random suffix, so two changes in one microsecond both stay.
pub fn audit_key(now: OffsetDateTime) -> String {
    let t = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z#{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Names of the fields that differ between two configs (dotted paths, list indexes in
/// brackets). Secrets are named by their slot: a changed ciphertext or fingerprint shows as
/// the slot's name. Bookkeeping (`version`, `updatedAt`, `createdAt`) is left out.
pub fn changed_fields(before: Option<&SealedConfig>, after: Option<&SealedConfig>) -> Vec<String> {
    let flat = |c: Option<&SealedConfig>| {
        let mut out = HashMap::new();
        if let Some(c) = c
            && let Ok(v) = serde_json::to_value(c)
        {
            flatten("", &v, &mut out);
        }
        out
    };
    let (a, b) = (flat(before), flat(after));
    let mut names = BTreeSet::new();
    for k in a.keys().chain(b.keys()) {
        if a.get(k) != b.get(k) {
            let name = k
                .strip_suffix(".ciphertext")
                .or_else(|| k.strip_suffix(".fingerprint"))
                .unwrap_or(k);
            if !matches!(name, "version" | "updatedAt" | "createdAt") {
                names.insert(name.to_string());
            }
        }
    }
    names.into_iter().collect()
}

fn flatten(prefix: &str, v: &Value, out: &mut HashMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        Value::Array(a) if !a.is_empty() && a.iter().any(Value::is_object) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// The audit side of a change.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub who: &'a str,
    pub action: Action,
    pub detail: Option<String>,
    /// What a switch, swap or endpoint replacement moved, in the attributes the health
    /// check's failover records use (`from`, `to`, `fromEndpoint`, `toEndpoint`).
    pub moved: Option<Moved>,
}

/// The roles and servers before and after: for a switch or swap the active endpoint, for a
/// replacement the replaced one (`from_endpoint` absent when a backup is added).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub from: String,
    pub to: String,
    pub from_endpoint: Option<String>,
    pub to_endpoint: String,
}

/// Writes configs with their audit records, and reads the audit log.
#[derive(Debug, Clone)]
pub struct Journal {
    client: Client,
    tenants_table: String,
    audit_table: String,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl Journal {
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

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn audit_table(&self) -> &str {
        &self.audit_table
    }

    pub fn tenants_table(&self) -> &str {
        &self.tenants_table
    }

    fn record(
        &self,
        tenant: &TenantId,
        change: &Change<'_>,
        before: Option<&SealedConfig>,
        after: Option<&SealedConfig>,
    ) -> Result<TransactWriteItem, StoreError> {
        // The wall clock at full precision (configs carry whole seconds), so records of
        // changes within one second keep their order.
        let now = OffsetDateTime::now_utc();
        let mut item = HashMap::from([
            (
                "tenantId".to_string(),
                AttributeValue::S(tenant.to_string()),
            ),
            ("at".to_string(), AttributeValue::S(audit_key(now))),
            ("who".to_string(), AttributeValue::S(change.who.to_string())),
            (
                "action".to_string(),
                AttributeValue::S(change.action.as_str().to_string()),
            ),
        ]);
        let fields = changed_fields(before, after);
        if !fields.is_empty() {
            item.insert(
                "fields".into(),
                AttributeValue::L(fields.into_iter().map(AttributeValue::S).collect()),
            );
        }
        if let Some(b) = before {
            item.insert(
                "versionBefore".into(),
                AttributeValue::N(b.version.to_string()),
            );
        }
        if let Some(a) = after {
            item.insert(
                "versionAfter".into(),
                AttributeValue::N(a.version.to_string()),
            );
        }
        if let Some(d) = &change.detail {
            item.insert("detail".into(), AttributeValue::S(d.clone()));
        }
        if let Some(m) = &change.moved {
            item.insert("from".into(), AttributeValue::S(m.from.clone()));
            item.insert("to".into(), AttributeValue::S(m.to.clone()));
            if let Some(f) = &m.from_endpoint {
                item.insert("fromEndpoint".into(), AttributeValue::S(f.clone()));
            }
            item.insert(
                "toEndpoint".into(),
                AttributeValue::S(m.to_endpoint.clone()),
            );
        }
        Ok(TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.audit_table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(tenantId)")
                    .build()
                    .map_err(backend)?,
            )
            .build())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        transact(&self.client, items).await
    }

    async fn exists(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tenants_table)
            .key("tenantId", AttributeValue::S(tenant.to_string()))
            .projection_expression("tenantId")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(DisplayErrorContext(e)))?;
        Ok(out.item.is_some())
    }

    /// Writes one audit record of an action that changed no config (a device action on a
    /// WhatsApp server).
    pub async fn note(&self, tenant: &TenantId, change: Change<'_>) -> Result<(), StoreError> {
        let item = self.record(tenant, &change, None, None)?;
        if self.transact(vec![item]).await? {
            Ok(())
        } else {
            Err(StoreError::Backend("audit record key collision".into()))
        }
    }

    /// Stores a new config and its record; `AlreadyExists` if the tenant has one.
    pub async fn create(&self, cfg: &SealedConfig, change: Change<'_>) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.tenants_table)
            .set_item(Some(to_item(cfg)?))
            .condition_expression("attribute_not_exists(tenantId)")
            .build()
            .map_err(backend)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            self.record(&cfg.tenant_id, &change, None, Some(cfg))?,
        ];
        if self.transact(items).await? {
            Ok(())
        } else if self.exists(&cfg.tenant_id).await? {
            Err(StoreError::AlreadyExists)
        } else {
            Err(StoreError::Backend("transaction cancelled".into()))
        }
    }

    /// Replaces `before` (its version is the condition) by `after`, with the record.
    /// `Conflict` if the stored version moved, `NotFound` if the config is gone. The
    /// health check's state on the item is kept ([`replace_config_update`]).
    pub async fn update(
        &self,
        before: &SealedConfig,
        after: &SealedConfig,
        change: Change<'_>,
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
            .map_err(backend)?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.record(&after.tenant_id, &change, Some(before), Some(after))?,
        ];
        if self.transact(items).await? {
            Ok(())
        } else if self.exists(&after.tenant_id).await? {
            Err(StoreError::Conflict)
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// Deletes the config read as `before` (conditional on its version when `checked`).
    pub async fn delete(
        &self,
        before: &SealedConfig,
        checked: bool,
        change: Change<'_>,
    ) -> Result<(), StoreError> {
        let mut del = Delete::builder()
            .table_name(&self.tenants_table)
            .key("tenantId", AttributeValue::S(before.tenant_id.to_string()));
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
                .delete(del.build().map_err(backend)?)
                .build(),
            self.record(&before.tenant_id, &change, Some(before), None)?,
        ];
        if self.transact(items).await? {
            Ok(())
        } else if self.exists(&before.tenant_id).await? {
            Err(StoreError::Conflict)
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// One page of a tenant's audit log, newest first.
    pub async fn page(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<AuditPage, StoreError> {
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
            .table_name(&self.audit_table)
            .key_condition_expression("tenantId = :t")
            .expression_attribute_values(":t", AttributeValue::S(tenant.to_string()))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| backend(DisplayErrorContext(e)))?;
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
        Ok(AuditPage { items, next_cursor })
    }
}

/// One `TransactWriteItems`; `Ok(false)` when a condition failed (the transaction was
/// cancelled), so the caller can tell a conflict from an outage.
pub(crate) async fn transact(
    client: &Client,
    items: Vec<TransactWriteItem>,
) -> Result<bool, StoreError> {
    match client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_transaction_canceled_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(backend(DisplayErrorContext(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use wagate::secrets::SealedSecret;
    use wagate::tenant::*;

    fn cfg() -> SealedConfig {
        let sealed = |c: &str| SealedSecret {
            ciphertext: c.into(),
            fingerprint: "****".into(),
        };
        TenantConfig {
            tenant_id: "t1".parse().unwrap(),
            provider: ProviderKind::Gowa,
            primary: Endpoint {
                base_url: "https://a.example.com".into(),
                credentials: Credentials::Basic {
                    username: "u".into(),
                    password: sealed("CIPHER-A"),
                },
                device_id: None,
                region: None,
                webhook_source_cidrs: vec![],
            },
            backup: None,
            webhook_secrets: vec![WebhookSecret {
                id: "s1".into(),
                secret: sealed("CIPHER-W"),
                expires_at: None,
            }],
            active_endpoint: EndpointRole::Primary,
            is_active: true,
            connection_status: ConnectionStatus::Unknown,
            failback: Default::default(),
            limits: Limits::default(),
            version: 1,
            created_at: datetime!(2026-01-01 0:00 UTC),
            updated_at: datetime!(2026-01-01 0:00 UTC),
        }
    }

    #[test]
    fn changed_fields_names_secret_slots_never_values() {
        let a = cfg();
        let mut b = cfg();
        b.version = 2;
        b.updated_at = datetime!(2026-01-02 0:00 UTC);
        b.primary.credentials = Credentials::Basic {
            username: "u".into(),
            password: SealedSecret {
                ciphertext: "CIPHER-B".into(),
                fingerprint: "****WXYZ".into(),
            },
        };
        b.webhook_secrets[0].expires_at = Some(datetime!(2026-01-03 0:00 UTC));
        let f = changed_fields(Some(&a), Some(&b));
        assert_eq!(
            f,
            [
                "primary.credentials.password",
                "webhookSecrets[0].expiresAt"
            ]
        );
        assert!(!format!("{f:?}").contains("CIPHER"));
    }

    #[test]
    fn audit_keys_sort_by_time() {
        let a = audit_key(datetime!(2026-01-01 0:00:00.5 UTC));
        let b = audit_key(datetime!(2026-01-01 0:00:01 UTC));
        assert!(a < b, "{a} {b}");
        assert!(a.starts_with("2026-01-01T00:00:00.500000Z#"));
    }
}
