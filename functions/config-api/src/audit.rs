//! The audit log and the one writer of tenant configs.
//!
//! Every config change goes through [`Journal`]: the tenant item and its audit record are
//! written together by the store's [`ConfigJournal`] (in DynamoDB, one `TransactWriteItems`
//! request), so there is no change without its record and no record of a change that did not
//! happen. Audit records live in the health check's
//! AuditTable (hash `tenantId`, range `at`), next to its failover/failback records
//! ([`wagate::health::store::SwitchAudit`]); the config API adds its own attributes
//! (`fields`, `detail`) and reads both kinds back as [`AuditEntry`].
//!
//! An audit record names the fields that changed, never a value: a secret shows up as
//! `primary.credentials.password`, not as its ciphertext or fingerprint.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
pub use wagate::audit::{AuditEntry, AuditReader, audit_key};
use wagate::tenant::store::{ConfigJournal, StoreError};
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
    Device(crate::handlers::devices::DeviceAction),
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

/// One page of a tenant's audit log, newest first.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
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

/// The audit record of a change of `tenant`'s config from `before` to `after`.
pub fn record(
    tenant: &TenantId,
    change: &Change<'_>,
    before: Option<&SealedConfig>,
    after: Option<&SealedConfig>,
) -> AuditEntry {
    // The wall clock at full precision (configs carry whole seconds), so records of
    // changes within one second keep their order.
    let mut entry = AuditEntry::new(
        tenant.as_str(),
        change.who,
        change.action.as_str(),
        OffsetDateTime::now_utc(),
    );
    entry.fields = changed_fields(before, after);
    entry.version_before = before.map(|b| b.version);
    entry.version_after = after.map(|a| a.version);
    entry.detail = change.detail.clone();
    if let Some(m) = &change.moved {
        entry.from = Some(m.from.clone());
        entry.to = Some(m.to.clone());
        entry.from_endpoint = m.from_endpoint.clone();
        entry.to_endpoint = Some(m.to_endpoint.clone());
    }
    entry
}

/// The one writer of tenant configs: every change with its audit record, both or neither
/// ([`ConfigJournal`]), and the reader of the audit log.
#[derive(Clone)]
pub struct Journal {
    writes: Arc<dyn ConfigJournal>,
    reads: Arc<dyn AuditReader>,
}

impl Journal {
    pub fn new(writes: Arc<dyn ConfigJournal>, reads: Arc<dyn AuditReader>) -> Self {
        Self { writes, reads }
    }

    /// Writes one audit record of an action that changed no config (a device action on a
    /// WhatsApp server).
    pub async fn note(&self, tenant: &TenantId, change: Change<'_>) -> Result<(), StoreError> {
        self.writes.note(&record(tenant, &change, None, None)).await
    }

    /// Stores a new config and its record; `AlreadyExists` if the tenant has one.
    pub async fn create(&self, cfg: &SealedConfig, change: Change<'_>) -> Result<(), StoreError> {
        let entry = record(&cfg.tenant_id, &change, None, Some(cfg));
        self.writes.create(cfg, &entry).await
    }

    /// Replaces `before` (its version is the condition) by `after`, with the record.
    /// `Conflict` if the stored version moved, `NotFound` if the config is gone; the health
    /// check's state on the item is kept.
    pub async fn update(
        &self,
        before: &SealedConfig,
        after: &SealedConfig,
        change: Change<'_>,
    ) -> Result<(), StoreError> {
        let entry = record(&after.tenant_id, &change, Some(before), Some(after));
        self.writes.update(before, after, &entry).await
    }

    /// Deletes the config read as `before` (conditional on its version when `checked`).
    pub async fn delete(
        &self,
        before: &SealedConfig,
        checked: bool,
        change: Change<'_>,
    ) -> Result<(), StoreError> {
        let entry = record(&before.tenant_id, &change, Some(before), None);
        self.writes.delete(before, checked, &entry).await
    }

    /// One page of a tenant's audit log, newest first.
    pub async fn page(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<AuditPage, StoreError> {
        let page = self.reads.page(tenant, cursor, limit).await?;
        Ok(AuditPage {
            items: page.items,
            next_cursor: page.next_cursor,
        })
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
                provider: None,
                webhook_source_cidrs: vec![],
                webhook_wiring: Default::default(),
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
}
