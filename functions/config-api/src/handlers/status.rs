//! What the tenant can read about its traffic and health: `GET /tenants/{tenantId}/audit`,
//! `…/status`, `…/messages` and `…/messages/{idempotencyKey}`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::StatusCode;
use lambda_http::{Body, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use wagate::audit::AuditEntry;
use wagate::delivery::DeliveryRecord;
use wagate::health::EndpointHealth;
use wagate::health::silence::SilentFlag;
use wagate::secrets::{Purpose, SealedSecret};
use wagate::tenant::{ConnectionStatus, Credentials, EndpointRole, SealedConfig, TenantId};
use wagate::timestamp::rfc3339;

use crate::App;
use crate::error::ApiError;
use crate::request::page_params;
use crate::response::to_json;
use crate::router::Ctx;

/// `GET /tenants/{id}/audit?limit=&cursor=`: newest first. Readable after a delete too.
pub async fn audit(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, tenant) = (ctx.req, ctx.tenant()?);
    let (limit, cursor) = page_params(req)?;
    let page = app.journal.page(tenant, cursor.as_deref(), limit).await?;
    to_json(StatusCode::OK, &page)
}

/// One of the tenant's endpoints in its status.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    pub role: EndpointRole,
    pub base_url: String,
    /// The device (session) the tenant uses on that server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    pub active: bool,
    /// The health check's record of the server (absent until it probed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<EndpointHealth>,
}

/// `GET /tenants/{id}/status`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    pub tenant_id: String,
    pub is_active: bool,
    pub connection_status: ConnectionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_status_at: Option<String>,
    /// When the health check last looked at the tenant: the last probe of its active
    /// server (`lastProbeAt` of the endpoint record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_at: Option<String>,
    pub active_endpoint: EndpointRole,
    pub active_base_url: String,
    /// The active server's last `/health` latency in milliseconds with microsecond
    /// precision (absent while it does not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Consecutive health-check runs in which the active endpoint was unusable.
    pub consecutive_failures: u32,
    pub version: u64,
    pub endpoints: Vec<EndpointStatus>,
    /// Recent failovers, failbacks and manual switches, newest first.
    pub recent_switches: Vec<AuditEntry>,
    /// Recent failures the health check recorded on the tenant's servers.
    pub recent_failures: Vec<FailureNote>,
    /// Stored secrets KMS refuses to open (e.g. a ciphertext copied from another tenant):
    /// the config cannot be used until each is set again. Absent when every secret opens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unusable_secrets: Vec<UnusableSecret>,
    /// Where the tenant's WhatsApp server must post its webhooks (as in the config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Issue 15: whether the endpoint a failover (or failback) would go to is ready (server
    /// up, device logged in, webhook wired), read live; absent without a backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby: Option<crate::handlers::devices::StandbyReadiness>,
    /// When the ingress last accepted a webhook of the tenant (at most a minute late).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<String>,
    /// Issue 15: "connected but silent", as the health check last found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent: Option<SilentFlag>,
    /// Issue 16, tenants with a Meta endpoint: when Meta's verification handshake last
    /// passed on the callback URL, `null` if it never did (see `GET …/meta-callback`).
    /// Absent for tenants without a Meta endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_verified_at: Option<Option<String>>,
}

/// A stored secret that cannot be opened, by field.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnusableSecret {
    /// e.g. `primary.credentials.password`, `webhookSecrets[0].secret`.
    pub field: String,
    pub reason: String,
}

/// Every secret slot of a stored config with its field name and purpose.
fn secret_fields(cfg: &SealedConfig) -> Vec<(String, Purpose, &SealedSecret)> {
    fn cred<'a>(
        role: &str,
        c: &'a Credentials<SealedSecret>,
    ) -> Option<(String, Purpose, &'a SealedSecret)> {
        let name = c.secret_name()?;
        c.secret().map(|s| {
            (
                format!("{role}.credentials.{name}"),
                Purpose::ServerCredential,
                s,
            )
        })
    }
    let mut out: Vec<_> = cred("primary", &cfg.primary.credentials)
        .into_iter()
        .collect();
    if let Some(b) = &cfg.backup {
        out.extend(cred("backup", &b.credentials));
    }
    for (i, w) in cfg.webhook_secrets.iter().enumerate() {
        out.push((
            format!("webhookSecrets[{i}].secret"),
            Purpose::WebhookSecret,
            &w.secret,
        ));
    }
    out
}

/// How long a check of a config version's secrets is trusted by one instance: a config's
/// ciphertexts change only with its version, so this bounds only how late a key disabled in
/// KMS shows here.
pub const SECRET_CHECK_TTL: Duration = Duration::from_secs(300);
/// Tenants whose check one instance keeps (past it, the memory starts over).
const SECRET_CHECKS_KEPT: usize = 10_000;

/// The last definitive check of each tenant's stored secrets, by config version, so the
/// dashboard's status polling does not cost a KMS `Decrypt` per secret per request.
#[derive(Debug, Default)]
pub struct SecretChecks {
    checked: Mutex<HashMap<String, SecretCheck>>,
}

/// A tenant's check: the config version checked, when, and the fields found unusable.
type SecretCheck = (u64, Instant, Vec<String>);

impl SecretChecks {
    fn get(&self, tenant: &str, version: u64) -> Option<Vec<String>> {
        let checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        match checked.get(tenant) {
            Some((v, at, fields)) if *v == version && at.elapsed() < SECRET_CHECK_TTL => {
                Some(fields.clone())
            }
            _ => None,
        }
    }

    fn put(&self, tenant: &str, version: u64, fields: Vec<String>) {
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        if checked.len() >= SECRET_CHECKS_KEPT && !checked.contains_key(tenant) {
            checked.clear();
        }
        checked.insert(tenant.to_string(), (version, Instant::now(), fields));
    }
}

/// How long one instance reuses a tenant's live standby readiness (same config version).
pub const STANDBY_CACHE_TTL: Duration = Duration::from_secs(30);

/// The status route's last live standby readiness of each tenant, by config version: within
/// [`STANDBY_CACHE_TTL`], a status poll answers it again without calling the standby's
/// server or opening its credential. A config change (new version) reads live at once; an
/// `unverified` answer (KMS or the server could not be asked) is never kept.
#[derive(Debug)]
pub struct StandbyCache {
    ttl: Duration,
    kept: Mutex<HashMap<String, StandbyEntry>>,
}

impl Default for StandbyCache {
    fn default() -> Self {
        Self::with_ttl(STANDBY_CACHE_TTL)
    }
}

type StandbyEntry = (
    u64,
    Instant,
    Option<crate::handlers::devices::StandbyReadiness>,
);

impl StandbyCache {
    /// A cache keeping answers `ttl` (`Duration::ZERO`: every status reads live).
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            kept: Mutex::default(),
        }
    }

    fn get(
        &self,
        tenant: &str,
        version: u64,
    ) -> Option<Option<crate::handlers::devices::StandbyReadiness>> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        match kept.get(tenant) {
            Some((v, at, r)) if *v == version && at.elapsed() < self.ttl => Some(r.clone()),
            _ => None,
        }
    }

    fn put(
        &self,
        tenant: &str,
        version: u64,
        readiness: &Option<crate::handlers::devices::StandbyReadiness>,
    ) {
        if self.ttl.is_zero()
            || readiness
                .as_ref()
                .is_some_and(|r| r.reasons.iter().any(|x| x == "unverified"))
        {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= SECRET_CHECKS_KEPT && !kept.contains_key(tenant) {
            kept.clear();
        }
        kept.insert(
            tenant.to_string(),
            (version, Instant::now(), readiness.clone()),
        );
    }
}

fn unusable(field: String) -> UnusableSecret {
    UnusableSecret {
        field,
        reason: "KMS refuses to open it (sealed for another tenant or purpose, or damaged); set it again".into(),
    }
}

/// The stored secrets KMS refuses to open, checked once per config version and instance
/// ([`SecretChecks`]). A KMS outage is not reported here (it says nothing about the secrets;
/// the status still shows health) and leaves nothing remembered, so the next request checks
/// again.
async fn unusable_secrets(app: &App, cfg: &SealedConfig) -> Vec<UnusableSecret> {
    let tenant = cfg.tenant_id.as_str();
    if let Some(fields) = app.secret_checks.get(tenant, cfg.version) {
        return fields.into_iter().map(unusable).collect();
    }
    let fields = secret_fields(cfg);
    let opened = futures_util::future::join_all(
        fields
            .iter()
            .map(|(_, purpose, sealed)| app.sealer.open(tenant, *purpose, sealed)),
    )
    .await;
    let mut definitive = true;
    let found: Vec<String> = fields
        .iter()
        .zip(opened)
        .filter_map(|((field, _, _), r)| match r {
            Err(e) if e.is_unusable() => {
                tracing::warn!(field = %field, error = %e, "a stored secret cannot be opened");
                Some(field.clone())
            }
            Err(e) => {
                tracing::warn!(field = %field, error = %e, "could not check a stored secret");
                definitive = false;
                None
            }
            Ok(_) => None,
        })
        .collect();
    if definitive {
        app.secret_checks.put(tenant, cfg.version, found.clone());
    }
    found.into_iter().map(unusable).collect()
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureNote {
    pub base_url: String,
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    pub consecutive_failures: u32,
}

/// How many audit records the status looks through for switches.
const STATUS_AUDIT_SCAN: u32 = 100;
const STATUS_SWITCHES: usize = 10;

/// The health check's records of `keys` (servers it has not probed yet are absent).
async fn endpoint_records(
    app: &App,
    keys: &[String],
) -> Result<HashMap<String, EndpointHealth>, ApiError> {
    let mut out = HashMap::new();
    for k in keys {
        if let Some(rec) = app.stores.health.endpoint(k).await? {
            out.insert(k.clone(), rec);
        }
    }
    Ok(out)
}

/// `GET /tenants/{tenantId}/status`: the config, the health check's view, recent switches
/// and failures, and the secrets that cannot be opened.
pub async fn status(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, tenant) = (ctx.req, ctx.tenant()?.clone());
    let rec = app
        .stores
        .health
        .tenant_status(&tenant)
        .await?
        .ok_or(ApiError::NotFound)?;
    let failures = rec.health.active_failures;
    // The health check writes a tenant only when its status or counters change; the
    // last check is the last probe of the tenant's active server (one record per server
    // and run), or, before any record exists, the tenant's last written check.
    let (stored_check_at, status_at) = (rec.health_checked_at, rec.connection_status_at);
    let activity = rec.activity;
    let cfg = rec.config;
    let has_meta = std::iter::once(&cfg.primary)
        .chain(cfg.backup.iter())
        .any(|e| cfg.kind_of(e) == wagate::tenant::ProviderKind::Meta);
    let mut keys = vec![cfg.primary.base_url.clone()];
    if let Some(b) = &cfg.backup
        && b.base_url != cfg.primary.base_url
    {
        keys.push(b.base_url.clone());
    }
    let mut health = endpoint_records(app, &keys).await?;
    let active = cfg.active().base_url.clone();
    let last_check_at = health
        .get(&active)
        .map(|h| rfc3339(h.last_probe_at))
        .or(stored_check_at);
    let mut endpoints = vec![EndpointStatus {
        role: EndpointRole::Primary,
        base_url: cfg.primary.base_url.clone(),
        device_id: cfg.primary.device_id.clone(),
        active: cfg.active_endpoint == EndpointRole::Primary || cfg.backup.is_none(),
        health: health.get(&cfg.primary.base_url).cloned(),
    }];
    if let Some(b) = &cfg.backup {
        endpoints.push(EndpointStatus {
            role: EndpointRole::Backup,
            base_url: b.base_url.clone(),
            device_id: b.device_id.clone(),
            active: cfg.active_endpoint == EndpointRole::Backup,
            health: health.get(&b.base_url).cloned(),
        });
    }
    let recent_failures = keys
        .iter()
        .filter_map(|k| {
            let h = health.get(k)?;
            Some(FailureNote {
                base_url: k.clone(),
                error: h.last_error.clone()?,
                at: h.last_error_at.map(rfc3339),
                consecutive_failures: h.consecutive_failures,
            })
        })
        .collect();
    let page = app.journal.page(&tenant, None, STATUS_AUDIT_SCAN).await?;
    let recent_switches = page
        .items
        .into_iter()
        .filter(|e| {
            matches!(
                e.action.as_str(),
                "failover" | "failback" | "switch" | "swap" | "replace_endpoint"
            )
        })
        .take(STATUS_SWITCHES)
        .collect();
    let unusable_secrets = unusable_secrets(app, &cfg).await;
    let standby = if unusable_secrets.is_empty() {
        match app.standby_cache.get(tenant.as_str(), cfg.version) {
            Some(cached) => cached,
            None => {
                let live = crate::handlers::devices::standby_readiness(app, req, &cfg).await?;
                app.standby_cache.put(tenant.as_str(), cfg.version, &live);
                live
            }
        }
    } else {
        None
    };
    let body = TenantStatus {
        standby,
        unusable_secrets,
        tenant_id: tenant.to_string(),
        is_active: cfg.is_active,
        connection_status: cfg.connection_status,
        connection_status_at: status_at,
        last_check_at,
        active_endpoint: if cfg.backup.is_some() {
            cfg.active_endpoint
        } else {
            EndpointRole::Primary
        },
        // A server that did not answer has no latency to show.
        latency_ms: health
            .remove(&active)
            .filter(|h| h.up)
            .map(|h| h.latency_ms),
        active_base_url: active,
        consecutive_failures: failures,
        version: cfg.version,
        endpoints,
        recent_switches,
        recent_failures,
        webhook_url: app.webhook_url(req, &tenant),
        last_event_at: activity.last_event_at.map(rfc3339),
        silent: activity.silent,
        callback_verified_at: has_meta.then(|| activity.verified_at.map(rfc3339)),
    };
    to_json(StatusCode::OK, &body)
}

/// An outbound message's delivery record as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub tenant_id: String,
    pub idempotency_key: String,
    pub state: String,
    pub attempts: u32,
    /// The recipient as the producer wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `text`, `image` or `document`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_role: Option<EndpointRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
}

fn valid_idempotency_key(k: &str) -> bool {
    (1..=wagate::outbound::MAX_IDEMPOTENCY_KEY).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@+=#/".contains(&b))
}

/// `GET /tenants/{id}/messages/{idempotencyKey}` (URL-encode `/` and `#` in the key).
pub async fn message(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (tenant, key) = (ctx.tenant()?, ctx.id()?);
    if !valid_idempotency_key(key) {
        return Err(ApiError::BadRequest(format!(
            "idempotencyKey must be 1-{} characters of A-Z a-z 0-9 and - _ . : @ + = # /",
            wagate::outbound::MAX_IDEMPOTENCY_KEY
        )));
    }
    let rec = app
        .stores
        .deliveries
        .get(tenant, key, OffsetDateTime::now_utc())
        .await?
        .ok_or(ApiError::MessageNotFound)?;
    to_json(StatusCode::OK, &MessageView::of(tenant, key, rec))
}

impl MessageView {
    fn of(tenant: &TenantId, key: &str, rec: DeliveryRecord) -> MessageView {
        MessageView {
            tenant_id: tenant.to_string(),
            idempotency_key: key.to_string(),
            state: rec.state.as_str().to_string(),
            attempts: rec.attempts,
            to: rec.recipient,
            content_type: rec.content_type,
            provider_message_id: rec.provider_message_id,
            endpoint: rec.endpoint,
            endpoint_role: rec.endpoint_role,
            error_class: rec.error_class,
            reason: rec.reason,
            created_at: rec.created_at,
            updated_at: rec.updated_at,
            sent_at: rec.sent_at,
            delivered_at: rec.delivered_at,
            read_at: rec.read_at,
        }
    }
}

/// One page of a tenant's messages, newest first.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /tenants/{id}/messages?limit=&cursor=`: the tenant's outbound messages, newest first
/// (records are kept `MESSAGE_RETENTION_DAYS`, also after the tenant's config is deleted).
pub async fn messages(app: &App, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (req, tenant) = (ctx.req, ctx.tenant()?.clone());
    let (limit, cursor) = page_params(req)?;
    let page = app
        .stores
        .deliveries
        .recent(&tenant, limit, cursor.as_deref(), OffsetDateTime::now_utc())
        .await?;
    let prefix = format!("{tenant}#");
    let items = page
        .items
        .into_iter()
        .map(|rec| {
            let key = rec
                .idempotency_key
                .clone()
                .or_else(|| rec.pk.strip_prefix(&prefix).map(str::to_owned))
                .unwrap_or_default();
            MessageView::of(&tenant, &key, rec)
        })
        .collect();
    to_json(
        StatusCode::OK,
        &MessagePage {
            items,
            next_cursor: page.next_cursor,
        },
    )
}
