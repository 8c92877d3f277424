//! The health check: once a minute (EventBridge schedule), probe every WhatsApp server the
//! active tenants use, once per server, update each endpoint's health record and each
//! tenant's status, and fail tenants over (and back) with hysteresis.
//!
//! One run ([`HealthCheck::run`]):
//!
//! 1. list the active tenants, page by page (an eventually consistent, projected `Scan`);
//! 2. as each page arrives, start probing the servers (`Endpoint::endpoint_key`) it names
//!    that no earlier page named, so listing and probing overlap: each distinct server once,
//!    `GET /health`, then, if it is up, every device on it in one call (`GET /devices`, with
//!    the credentials of the first listed tenant on that server, opened with one KMS call
//!    and reused by later runs of a warm instance while unchanged).
//!    At most `concurrency` servers at once, each call bounded by `probe_timeout`, the whole
//!    phase by `deadline - write_reserve`: a server still unanswered then is "not probed"
//!    (its tenants' observations are unknown and count for nothing);
//! 3. once every page is in, count each server's tenants;
//! 4. write the endpoint records (streaks, latency, last error, tenants and devices counted)
//!    and, alongside, one health-history point per probed server (a failure there is logged,
//!    never fails the run);
//! 5. per tenant, [`wagate::health::decide`] and, only if its status, counters or active
//!    endpoint change, one write (status, counters, and on a switch `activeEndpoint` with
//!    `version` + 1) conditional on the version, status and counters read. A conflict (the
//!    config changed since step 1, or the listing returned a stale item) re-reads the tenant
//!    consistently and decides again on the same probe results; every switch writes an audit
//!    record and a WARN log line.
//!
//!    After every switch, the newly active endpoint's device webhook (where wagate wired it)
//!    is read back and, when no longer wired, set again and audited ([`RewireOutcome`],
//!    metrics `WebhooksRewired` and `WebhookRewireFailures`).
//! 6. per tenant whose active device reports connected, the "connected but silent" check
//!    ([`wagate::health::silence`]): no event noted (`lastEventAt`) in the window, so its
//!    delivery records of the window are read (newest first, at most 300); sends accepted
//!    and no receipt flag it `silent` (one `UpdateItem` when the flag changes, a WARN, and
//!    the `SilentTenants` metric).
//!
//! The report ([`RunReport`]) renders CloudWatch EMF lines: one per endpoint, one per switch
//! and one for the run (see docs/health-check.md).

pub mod aws;
pub mod report;
pub mod settings;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use wagate::delivery::store::DeliveryReader;
use wagate::health::silence::{self, SilentFlag, TenantActivity};
use wagate::health::standby::{self, StandbyNote};
use wagate::health::store::{
    AUDIT_ACTOR, HealthStore, MonitoredTenant, SwitchAudit, TenantRecord, TenantStateUpdate,
};
use wagate::health::{
    EndpointHealth, EndpointUse, HealthPoint, ProbeResult, SwitchKind, TenantView, decide, observe,
};
use wagate::provider::{ProviderError, Providers, Target};
use wagate::secrets::{Purpose, SealedSecret, Secret, SecretSealer};
use wagate::tenant::store::StoreError;
use wagate::tenant::{Credentials, Endpoint, EndpointRole, ProviderKind, TenantId};
use wagate::timestamp;

pub use report::RunReport;
pub use settings::Settings;

/// What is needed to probe one distinct server.
#[derive(Debug, Clone)]
struct ProbeTarget {
    key: String,
    provider: ProviderKind,
    /// One tenant's credentials for the server (for the device list).
    credential_owner: TenantId,
    credentials: Credentials<SealedSecret>,
    /// Meta only: the owner's phone number id (Meta's API has no server health route; the
    /// number's `health_status` stands in, and it names a number). Other kinds: `None`.
    device_id: Option<String>,
}

/// One distinct server of the run's tenants and how they use it.
#[derive(Debug, Clone)]
struct Server {
    key: String,
    provider: ProviderKind,
    usage: EndpointUse,
}

/// What happened to one tenant in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantOutcome {
    /// Status and counters as stored: nothing written.
    Unchanged,
    Written,
    Switched(SwitchKind),
    /// Deleted or deactivated since it was listed.
    Gone,
    /// Version conflicts on every attempt.
    GaveUp,
    Failed(String),
}

/// What settling one tenant did.
struct Settled {
    outcome: TenantOutcome,
    audit: Option<SwitchAudit>,
    conflicts: usize,
    blocked: Option<SwitchBlocked>,
    silent: Option<SilentFlag>,
    rewired: Option<RewireOutcome>,
}

/// An automatic switch the health check did not make: the target was not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchBlocked {
    pub tenant_id: String,
    pub to: EndpointRole,
    pub reason: String,
}

/// The health check, built once per instance.
#[derive(Clone)]
pub struct HealthCheck {
    store: Arc<dyn HealthStore>,
    sealer: Arc<dyn SecretSealer>,
    providers: Providers,
    settings: Settings,
    opened: Arc<Mutex<OpenedCredentials>>,
    wiring: Option<WiringGuard>,
    /// Issue 15: reads the delivery records for the "connected but silent" check.
    silence: Option<Arc<dyn DeliveryReader>>,
}

/// Issue 15: an automatic switch goes only to an endpoint that is ready, and for an endpoint
/// whose device webhook wagate wired (a current `wired-<role>-` webhook secret) ready includes
/// "webhook still wired": before the switch the target's device webhook is read back and
/// compared (URL and secret, constant time). An endpoint wagate never wired is the tenant's
/// own forwarding and is not checked. Reads the tenant's full config (one `GetItem`) only when
/// a switch is decided.
#[derive(Clone)]
pub struct WiringGuard {
    pub configs: Arc<dyn wagate::tenant::store::TenantConfigReader>,
    pub webhook_base: wagate::runtime::config::PublicWebhookBase,
}

/// A wagate-wired endpoint, opened for checking or repairing its device webhook.
struct WiredTarget {
    kind: ProviderKind,
    endpoint: Endpoint<Secret>,
    url: String,
    /// Every current webhook secret of the tenant (what the ingress accepts).
    accepted: Vec<Secret>,
    /// The wired secret wagate pushes for this role, and its id.
    pushed: Secret,
    pushed_id: String,
}

/// Issue 15: the newly active endpoint's device webhook, re-verified after a switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewireOutcome {
    pub tenant_id: String,
    pub role: EndpointRole,
    /// What the read-back found: `wired`, `missing`, `points_elsewhere`, `secret_mismatch`,
    /// `events_filtered`, or `unverified` (it could not be read).
    pub found: String,
    /// `wired` (nothing to do), `repaired` or `failed`.
    pub result: String,
    pub detail: String,
}

/// Id prefix of the webhook secrets the config API generates when it wires a device.
const WIRED_PREFIX: &str = wagate::tenant::WIRED_SECRET_PREFIX;

/// Server credentials opened in earlier runs of this instance, keyed by tenant and sealed
/// value (a rotated credential has a new ciphertext, so it is opened again). An entry lives
/// while every run uses it and at most `credential_ttl`; one no run used is dropped at the
/// end of the run. This saves one KMS `Decrypt` per server and run in the steady state.
#[derive(Default)]
struct OpenedCredentials {
    entries: HashMap<(String, String), OpenedEntry>,
}

struct OpenedEntry {
    secret: Secret,
    opened_at: Instant,
    used_at: Instant,
}

impl OpenedCredentials {
    fn get(&mut self, key: &(String, String), ttl: Duration) -> Option<Secret> {
        let e = self.entries.get_mut(key)?;
        if e.opened_at.elapsed() >= ttl {
            self.entries.remove(key);
            return None;
        }
        e.used_at = Instant::now();
        Some(e.secret.clone())
    }

    fn insert(&mut self, key: (String, String), secret: Secret) {
        let now = Instant::now();
        self.entries.insert(
            key,
            OpenedEntry {
                secret,
                opened_at: now,
                used_at: now,
            },
        );
    }

    /// Drops what the run that started at `run_started` did not use, and what is too old.
    fn prune(&mut self, run_started: Instant, ttl: Duration) {
        self.entries
            .retain(|_, e| e.used_at >= run_started && e.opened_at.elapsed() < ttl);
    }
}

/// A run could not start (the tenant listing failed).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("listing the active tenants failed: {0}")]
    Listing(#[source] StoreError),
}

fn role_endpoint(config: &MonitoredTenant, role: EndpointRole) -> Option<&Endpoint<SealedSecret>> {
    match role {
        EndpointRole::Primary => Some(&config.primary),
        EndpointRole::Backup => config.backup.as_ref(),
    }
}

impl HealthCheck {
    pub fn new(
        store: Arc<dyn HealthStore>,
        sealer: Arc<dyn SecretSealer>,
        providers: Providers,
        settings: Settings,
    ) -> Self {
        Self {
            store,
            sealer,
            providers,
            settings,
            opened: Arc::default(),
            wiring: None,
            silence: None,
        }
    }

    /// Checks the wiring of a wagate-wired target before every automatic switch
    /// ([`WiringGuard`]).
    pub fn with_wiring_guard(mut self, guard: WiringGuard) -> Self {
        self.wiring = Some(guard);
        self
    }

    /// Flags tenants "connected but silent" ([`wagate::health::silence`]) from their
    /// `lastEventAt` and, when no event came in the window, their delivery records.
    pub fn with_silence_check(mut self, deliveries: Arc<dyn DeliveryReader>) -> Self {
        self.silence = Some(deliveries);
        self
    }

    /// What checking (or repairing) `to`'s device webhook needs, when wagate wired it: `None`
    /// when no guard is set, wagate never wired it (no current `wired-<role>-` secret) or the
    /// endpoint opts out (`webhookWiring: manual`).
    async fn wired_target(
        &self,
        id: &TenantId,
        to: EndpointRole,
    ) -> Result<Option<WiredTarget>, String> {
        let Some(guard) = &self.wiring else {
            return Ok(None);
        };
        let cfg = match guard.configs.get(id).await {
            Ok(Some(cfg)) => cfg,
            Ok(None) => return Err("the tenant's config is gone".into()),
            Err(e) => return Err(format!("reading the tenant's config failed: {e}")),
        };
        let now = OffsetDateTime::now_utc();
        let role = match to {
            EndpointRole::Primary => "primary",
            EndpointRole::Backup => "backup",
        };
        let prefix = format!("{WIRED_PREFIX}{role}-");
        // The secret wagate pushes for this role: the current one without an end (a newer
        // wiring sets an end on the one it replaces), else the one that lasts longest.
        let Some(wired) = cfg
            .webhook_secrets
            .iter()
            .filter(|w| w.id.starts_with(&prefix) && w.is_current(now))
            .max_by_key(|w| (w.expires_at.is_none(), w.expires_at))
        else {
            return Ok(None);
        };
        let Some(endpoint) = (match to {
            EndpointRole::Primary => Some(&cfg.primary),
            EndpointRole::Backup => cfg.backup.as_ref(),
        }) else {
            return Err(format!("the tenant has no {role} endpoint"));
        };
        if endpoint.webhook_wiring == wagate::tenant::WebhookWiring::Manual {
            // The tenant's own forwarding: reported by the config API, never judged here.
            return Ok(None);
        }
        let Some(url) = guard.webhook_base.webhook_url(id, None) else {
            return Err("PUBLIC_WEBHOOK_BASE_URL is not set: the wiring cannot be checked".into());
        };
        let tenant = id.as_str();
        let credentials = endpoint
            .credentials
            .open(|purpose, s: &SealedSecret| async move {
                self.sealer
                    .open(tenant, purpose, s)
                    .await
                    .map_err(|e| format!("opening the server credentials failed: {e}"))
            })
            .await?;
        let mut accepted = Vec::new();
        let mut pushed = None;
        for w in cfg.webhook_secrets.iter().filter(|w| w.is_current(now)) {
            let opened = self
                .sealer
                .open(tenant, Purpose::WebhookSecret, &w.secret)
                .await
                .map_err(|e| format!("opening a webhook secret failed: {e}"))?;
            if w.id == wired.id {
                pushed = Some(opened.clone());
            }
            accepted.push(opened);
        }
        let Some(pushed) = pushed else {
            return Err("the wired webhook secret could not be opened".into());
        };
        let kind = endpoint.provider.unwrap_or(cfg.provider);
        Ok(Some(WiredTarget {
            kind,
            endpoint: Endpoint {
                base_url: endpoint.base_url.clone(),
                credentials,
                device_id: endpoint.device_id.clone(),
                region: endpoint.region.clone(),
                provider: endpoint.provider,
                webhook_source_cidrs: endpoint.webhook_source_cidrs.clone(),
                webhook_wiring: endpoint.webhook_wiring,
            },
            url,
            accepted,
            pushed,
            pushed_id: wired.id.clone(),
        }))
    }

    /// Whether `to` may take the tenant's traffic as far as its webhook wiring goes: `Ok` when
    /// it is wired (or wagate never wired it, or no guard is set), `Err(why)` otherwise.
    async fn wiring_ready(&self, id: &TenantId, to: EndpointRole) -> Result<(), String> {
        let Some(t) = self.wired_target(id, to).await? else {
            return Ok(());
        };
        let Some(provider) = self.providers.get(t.kind) else {
            return Err(format!("no client for provider {}", t.kind.as_str()));
        };
        let refs: Vec<&Secret> = t.accepted.iter().collect();
        match wagate::provider::wiring::inspect(provider, Target::from(&t.endpoint), &t.url, &refs)
            .await
        {
            Ok(wagate::provider::wiring::WiringState::Wired) => Ok(()),
            Ok(state) => Err(format!(
                "its device webhook is {}: {}",
                state.as_str(),
                state.describe()
            )),
            Err(e) => Err(format!("its device webhook could not be read: {e}")),
        }
    }

    /// Issue 15: after a failover or failback is recorded, the newly active endpoint's device
    /// webhook is read back; when wagate wired it and it is no longer wired (missing, pointing
    /// elsewhere, another secret), it is set again with the wired secret wagate holds and read
    /// back, and the repair is audited. `None` when there is nothing to verify (no guard, not
    /// wagate-wired, manual).
    async fn reverify_after_switch(
        &self,
        id: &TenantId,
        to: EndpointRole,
        kind: SwitchKind,
    ) -> Option<RewireOutcome> {
        let outcome = |found: &str, result: &str, detail: String| RewireOutcome {
            tenant_id: id.to_string(),
            role: to,
            found: found.to_string(),
            result: result.to_string(),
            detail,
        };
        let t = match self.wired_target(id, to).await {
            Ok(Some(t)) => t,
            Ok(None) => return None,
            Err(why) => return Some(outcome("unverified", "failed", why)),
        };
        let Some(provider) = self.providers.get(t.kind) else {
            return Some(outcome(
                "unverified",
                "failed",
                format!("no client for provider {}", t.kind.as_str()),
            ));
        };
        let refs: Vec<&Secret> = t.accepted.iter().collect();
        let target = Target::from(&t.endpoint);
        let found = match wagate::provider::wiring::inspect(provider, target, &t.url, &refs).await {
            Ok(wagate::provider::wiring::WiringState::Wired) => {
                return Some(outcome(
                    "wired",
                    "wired",
                    "read back after the switch".into(),
                ));
            }
            Ok(state) => state.as_str().to_string(),
            Err(e) => {
                return Some(outcome(
                    "unverified",
                    "failed",
                    format!("the device webhook could not be read: {e}"),
                ));
            }
        };
        let result = wagate::provider::wiring::wire(provider, target, &t.url, &t.pushed).await;
        let (res, detail) = match &result {
            Ok(()) => (
                "repaired",
                format!(
                    "{}: device webhook was {found} after the {}; set again with secret {} (read back and compared)",
                    to.as_str(),
                    kind.as_str(),
                    t.pushed_id
                ),
            ),
            Err(e) => (
                "failed",
                format!(
                    "{}: device webhook was {found} after the {}; repair failed ({}): {e}",
                    to.as_str(),
                    kind.as_str(),
                    e.code()
                ),
            ),
        };
        let now = OffsetDateTime::now_utc();
        let note = wagate::audit::AuditEntry {
            tenant_id: id.to_string(),
            at: wagate::audit::audit_key(now),
            who: AUDIT_ACTOR.into(),
            action: "rewire_webhook".into(),
            fields: Vec::new(),
            version_before: None,
            version_after: None,
            detail: Some(detail.clone()),
            from: None,
            to: Some(to.as_str().to_string()),
            from_endpoint: None,
            to_endpoint: Some(t.endpoint.base_url.clone()),
            reason: Some(format!("device webhook {found} after {}", kind.as_str())),
        };
        if let Err(e) = self.store.put_note(&note).await {
            tracing::error!(tenant_id = %id, error = %e, "writing the re-wiring audit record failed");
        }
        if result.is_ok() {
            tracing::warn!(tenant_id = %id, role = to.as_str(), found = %found, "device webhook re-wired after the switch");
        } else {
            tracing::warn!(tenant_id = %id, role = to.as_str(), found = %found, detail = %detail, "device webhook is not wired after the switch and could not be repaired: events from the newly active server may be refused");
        }
        Some(outcome(&found, res, detail))
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// One run, finishing by `deadline` (probes stop at `deadline - write_reserve`).
    pub async fn run(&self, deadline: Instant) -> Result<RunReport, RunError> {
        let started = Instant::now();
        let started_at = OffsetDateTime::now_utc();
        let probe_deadline = deadline
            .checked_sub(self.settings.write_reserve)
            .filter(|d| *d > started)
            .unwrap_or_else(|| started + (deadline.saturating_duration_since(started)) / 2);

        // List page by page; each page's new servers are probed while the next is read.
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut probing = JoinSet::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut tenants: Vec<TenantRecord> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            // On an error, dropping `probing` aborts the probes already started.
            let page = self
                .store
                .active_tenants_page(cursor.as_deref(), self.settings.page_size)
                .await
                .map_err(RunError::Listing)?;
            let (page, next) = (page.items, page.next_cursor);
            for target in new_probe_targets(&page, &mut seen) {
                let this = self.clone();
                let permits = permits.clone();
                probing.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let result = this.probe(&target).await;
                    (target.key, result)
                });
            }
            tenants.extend(page);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let servers = group_servers(&tenants);
        let listed = started.elapsed();

        let probes = collect_probes(probing, probe_deadline).await;
        let probed = started.elapsed();

        let now = OffsetDateTime::now_utc();
        let history: Vec<HealthPoint> = servers
            .iter()
            .filter_map(|s| {
                probes
                    .get(&s.key)
                    .map(|p| HealthPoint::new(&s.key, p, s.usage, now))
            })
            .collect();
        // The history is written alongside the endpoint records and the tenants, and never
        // holds them up: a failure is a WARN, and it stops at the run's deadline.
        let write_history = async {
            let n = history.len();
            match tokio::time::timeout_at(deadline, self.store.save_history(&history)).await {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => {
                    tracing::warn!(count = e.unwritten, error = %e.reason, "writing the health history failed");
                    e.unwritten
                }
                Err(_) => {
                    tracing::warn!(
                        count = n,
                        "writing the health history reached the run's deadline"
                    );
                    n
                }
            }
        };
        let tenant_count = tenants.len();
        let write_state = async {
            let mut errors = Vec::new();
            let endpoints = self
                .save_endpoints(&servers, &probes, now, &mut errors)
                .await;
            let state = Mutex::new((
                BTreeMap::new(),
                Vec::new(),
                0usize,
                Vec::new(),
                Vec::new(),
                Vec::new(),
            ));
            let settle = futures_util::stream::iter(tenants).for_each_concurrent(
                self.settings.write_concurrency,
                |rec| {
                    let probes = &probes;
                    let state = &state;
                    async move {
                        let id = rec.config.tenant_id.to_string();
                        let done = self.settle(rec, probes, now).await;
                        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(flag) = done.silent {
                            s.4.push((id.clone(), flag));
                        }
                        s.5.extend(done.rewired);
                        s.0.insert(id, done.outcome);
                        s.1.extend(done.audit);
                        s.2 += done.conflicts;
                        s.3.extend(done.blocked);
                    }
                },
            );
            if tokio::time::timeout_at(deadline, settle).await.is_err() {
                errors.push("the run reached its deadline before every tenant was written".into());
            }
            let (outcomes, switches, conflicts, blocked, mut silent, rewired) =
                state.into_inner().unwrap_or_else(|p| p.into_inner());
            silent.sort_by(|a, b| a.0.cmp(&b.0));
            (
                endpoints, outcomes, switches, conflicts, blocked, silent, rewired, errors,
            )
        };
        let (
            history_unwritten,
            (endpoints, outcomes, switches, conflicts, blocked, silent, rewired, mut errors),
        ) = tokio::join!(write_history, write_state);
        self.opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .prune(started, self.settings.credential_ttl);
        for (id, o) in &outcomes {
            if let TenantOutcome::Failed(e) = o {
                errors.push(format!("tenant {id}: {e}"));
            }
        }
        Ok(RunReport {
            started_at,
            duration: started.elapsed(),
            phases: [listed, probed - listed, started.elapsed() - probed],
            tenants: tenant_count,
            servers_probed: probes.len(),
            servers_not_probed: servers.len() - probes.len(),
            endpoints,
            switches,
            blocked,
            silent,
            rewired,
            outcomes,
            conflicts,
            history_written: history.len() - history_unwritten.min(history.len()),
            history_unwritten,
            errors,
        })
    }

    #[tracing::instrument(skip_all, fields(endpoint = %server.key))]
    async fn probe(&self, server: &ProbeTarget) -> ProbeResult {
        let Some(provider) = self.providers.get(server.provider) else {
            return ProbeResult {
                up: false,
                latency_ms: 0.0,
                error: Some(format!(
                    "no client for provider {}",
                    server.provider.as_str()
                )),
                devices: None,
                error_class: Some("no client".into()),
            };
        };
        let timeout = self.settings.probe_timeout;
        let none = Credentials::None;
        let started = Instant::now();
        // Meta's health answer needs the number and the token; every other kind's is open.
        let meta_credentials = match server.device_id {
            Some(_) => match self.open_credentials(server).await {
                Ok(c) => Some(c),
                Err(e) => {
                    return ProbeResult {
                        up: false,
                        latency_ms: 0.0,
                        error: Some(e),
                        devices: None,
                        error_class: Some("credentials".into()),
                    };
                }
            },
            None => None,
        };
        let health = tokio::time::timeout(
            timeout,
            provider.health(Target {
                base_url: &server.key,
                credentials: meta_credentials.as_ref().unwrap_or(&none),
                device_id: server.device_id.as_deref(),
            }),
        )
        .await;
        let latency_ms = wagate::health::latency_ms(started.elapsed());
        let down = |error: String, class: String| ProbeResult {
            up: false,
            latency_ms,
            error: Some(error),
            devices: None,
            error_class: Some(class),
        };
        match health {
            Err(_) => {
                return down(
                    format!("/health timed out after {} ms", timeout.as_millis()),
                    "timeout".into(),
                );
            }
            Ok(Err(e)) => return down(format!("/health failed: {e}"), error_class(&e)),
            Ok(Ok(())) => {}
        }
        let credentials = match self.open_credentials(server).await {
            Ok(c) => c,
            Err(e) => {
                return ProbeResult {
                    up: true,
                    latency_ms,
                    error: Some(e),
                    devices: None,
                    error_class: None,
                };
            }
        };
        let devices = tokio::time::timeout(
            timeout,
            provider.devices(Target {
                base_url: &server.key,
                credentials: &credentials,
                device_id: server.device_id.as_deref(),
            }),
        )
        .await;
        let (devices, error) = match devices {
            Ok(Ok(d)) => (Some(d), None),
            Ok(Err(e)) => (None, Some(format!("/devices failed: {e}"))),
            Err(_) => (
                None,
                Some(format!(
                    "/devices timed out after {} ms",
                    timeout.as_millis()
                )),
            ),
        };
        ProbeResult {
            up: true,
            latency_ms,
            error,
            devices,
            error_class: None,
        }
    }

    async fn open_credentials(&self, server: &ProbeTarget) -> Result<Credentials<Secret>, String> {
        let tenant = server.credential_owner.as_str();
        let ttl = self.settings.credential_ttl;
        server
            .credentials
            .open(|purpose, s: &SealedSecret| async move {
                let key = (tenant.to_string(), s.ciphertext.clone());
                let cached = self
                    .opened
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&key, ttl);
                if let Some(secret) = cached {
                    return Ok::<Secret, String>(secret);
                }
                let secret = self
                    .sealer
                    .open(tenant, purpose, s)
                    .await
                    .map_err(|e| format!("opening the server credentials failed: {e}"))?;
                if !ttl.is_zero() {
                    self.opened
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key, secret.clone());
                }
                Ok(secret)
            })
            .await
    }

    async fn save_endpoints(
        &self,
        servers: &[Server],
        probes: &HashMap<String, ProbeResult>,
        now: OffsetDateTime,
        errors: &mut Vec<String>,
    ) -> Vec<EndpointHealth> {
        let keys: Vec<String> = servers
            .iter()
            .filter(|s| probes.contains_key(&s.key))
            .map(|s| s.key.clone())
            .collect();
        let prev = match self.store.endpoints(&keys).await {
            Ok(p) => p,
            Err(e) => {
                // Writing without the previous streaks would reset them: skip this run's.
                tracing::error!(error = %e, "reading endpoint records failed");
                errors.push(format!("reading endpoint records: {e}"));
                return Vec::new();
            }
        };
        let records: Vec<EndpointHealth> = servers
            .iter()
            .filter_map(|s| {
                probes.get(&s.key).map(|p| {
                    EndpointHealth::next(
                        prev.get(&s.key),
                        &s.key,
                        s.provider.as_str(),
                        p,
                        s.usage,
                        now,
                        self.settings.endpoint_ttl,
                    )
                })
            })
            .collect();
        if let Err(e) = self.store.save_endpoints(&records).await {
            tracing::error!(error = %e, "writing endpoint records failed");
            errors.push(format!("writing endpoint records: {e}"));
        }
        records
    }

    /// Decides and writes one tenant, re-reading and deciding again on a version conflict.
    #[tracing::instrument(skip_all, fields(tenant_id = %rec.config.tenant_id))]
    async fn settle(
        &self,
        rec: TenantRecord,
        probes: &HashMap<String, ProbeResult>,
        now: OffsetDateTime,
    ) -> Settled {
        let mut held_back = None;
        let (id, activity) = (rec.config.tenant_id.clone(), rec.activity.clone());
        let active = match (rec.config.active_endpoint, &rec.config.backup) {
            (EndpointRole::Backup, Some(b)) => b.clone(),
            _ => rec.config.primary.clone(),
        };
        let mut rewired = None;
        let config = rec.config.clone();
        let (outcome, audit, conflicts) = self
            .settle_with(rec, probes, now, &mut held_back, &mut rewired)
            .await;
        if !matches!(outcome, TenantOutcome::Gone) {
            self.record_standby(&config, &outcome, activity.standby.as_ref(), probes, now)
                .await;
        }
        let silent = match &outcome {
            // The tenant is somewhere else now, or gone: the flag was about the old endpoint.
            TenantOutcome::Switched(_) | TenantOutcome::Gone => None,
            _ => {
                let connected = device_connected(
                    probes.get(active.endpoint_key()),
                    active.device_id.as_deref(),
                );
                self.assess_silence(&id, connected, &activity, now).await
            }
        };
        if silent.as_ref() != activity.silent.as_ref() && !matches!(outcome, TenantOutcome::Gone) {
            self.record_silence(&id, silent.as_ref(), activity.silent.as_ref())
                .await;
        }
        Settled {
            outcome,
            audit,
            conflicts,
            blocked: held_back,
            silent,
            rewired,
        }
    }

    /// Issue 15, backup readiness on the fleet view: the standby endpoint's verdict for this
    /// run ([`wagate::health::standby`]), written (`standby` alone) only when it changed. The
    /// webhook is read back only when the device is usable and the stored verdict is not
    /// already "ready" for this role and config version.
    async fn record_standby(
        &self,
        c: &MonitoredTenant,
        outcome: &TenantOutcome,
        stored: Option<&StandbyNote>,
        probes: &HashMap<String, ProbeResult>,
        now: OffsetDateTime,
    ) {
        let id = &c.tenant_id;
        let (active, version) = match outcome {
            TenantOutcome::Switched(_) => (c.active_endpoint.other(), c.version + 1),
            _ => (c.active_endpoint, c.version),
        };
        let note = match &c.backup {
            None => {
                if stored.is_none() {
                    return;
                }
                None
            }
            Some(_) => {
                let role = active.other();
                let Some(e) = role_endpoint(c, role) else {
                    return;
                };
                let seen = observe(probes.get(e.endpoint_key()), e.device_id.as_deref());
                let verdict = match standby::step(&seen, role, version, stored) {
                    standby::Step::Keep => return,
                    standby::Step::NotReady { reason, detail } => Err((reason, detail)),
                    standby::Step::StillReady => Ok(()),
                    standby::Step::CheckWiring => self
                        .wiring_ready(id, role)
                        .await
                        .map_err(|why| ("webhook_not_wired", why)),
                };
                match standby::next(role, version, verdict, stored, now) {
                    Some(n) => Some(n),
                    None => return,
                }
            }
        };
        if let Some(n) = &note
            && !n.ready
            && stored.is_none_or(|s| s.ready)
        {
            tracing::info!(
                tenant_id = %id,
                role = n.role.as_str(),
                reasons = ?n.reasons,
                detail = n.detail.as_deref().unwrap_or(""),
                "the standby endpoint is not ready"
            );
        }
        if let Err(e) = self.store.set_standby(id, note.as_ref()).await {
            tracing::warn!(tenant_id = %id, error = %e, "writing the tenant's standby readiness failed");
        }
    }

    /// The tenant's "connected but silent" verdict for this run (its stored flag when the
    /// check is off or the delivery records cannot be read: missing information changes
    /// nothing). Reads delivery records only for a connected device with no event noted in
    /// the window.
    async fn assess_silence(
        &self,
        id: &TenantId,
        connected: bool,
        activity: &TenantActivity,
        now: OffsetDateTime,
    ) -> Option<SilentFlag> {
        let Some(deliveries) = &self.silence else {
            return activity.silent.clone();
        };
        let window = self.settings.silent_window;
        if !connected || silence::event_in_window(activity.last_event_at, now, window) {
            return None;
        }
        let start = silence::window_start(now, window);
        let mut records = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..SILENCE_PAGES {
            let page = match deliveries
                .recent(id, SILENCE_PAGE_SIZE, cursor.as_deref(), now)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(tenant_id = %id, error = %e, "reading delivery records for the silence check failed");
                    return activity.silent.clone();
                }
            };
            let older = page.items.iter().any(|r| {
                r.created_at
                    .as_deref()
                    .and_then(|t| {
                        OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .is_some_and(|t| t < start)
            });
            records.extend(page.items);
            match page.next_cursor {
                Some(c) if !older => cursor = Some(c),
                _ => break,
            }
        }
        let traffic = silence::traffic(&records, now, window);
        silence::assess(
            connected,
            activity.last_event_at,
            traffic,
            activity.silent.as_ref(),
            now,
            window,
        )
    }

    /// Stores a changed flag (one `UpdateItem` of `silent`), with a WARN when a tenant turns
    /// silent and an INFO when it recovers.
    async fn record_silence(
        &self,
        id: &TenantId,
        flag: Option<&SilentFlag>,
        before: Option<&SilentFlag>,
    ) {
        match (flag, before) {
            (Some(f), None) => tracing::warn!(
                tenant_id = %id,
                sends_accepted = f.sends_accepted,
                window_minutes = f.window_minutes,
                last_event_at = ?f.last_event_at.map(timestamp::rfc3339),
                "tenant is connected but silent: its server accepted sends and no receipt or inbound event arrived in the window"
            ),
            (None, Some(_)) => tracing::info!(tenant_id = %id, "tenant is no longer silent"),
            _ => {}
        }
        if let Err(e) = self.store.set_silent(id, flag).await {
            tracing::warn!(tenant_id = %id, error = %e, "writing the tenant's silent flag failed");
        }
    }

    async fn settle_with(
        &self,
        mut rec: TenantRecord,
        probes: &HashMap<String, ProbeResult>,
        now: OffsetDateTime,
        held_back: &mut Option<SwitchBlocked>,
        rewired: &mut Option<RewireOutcome>,
    ) -> (TenantOutcome, Option<SwitchAudit>, usize) {
        let id = rec.config.tenant_id.clone();
        let mut conflicts = 0;
        loop {
            let c = &rec.config;
            let view = TenantView {
                active: c.active_endpoint,
                failback: c.failback,
                primary: observe(
                    probes.get(c.primary.endpoint_key()),
                    c.primary.device_id.as_deref(),
                ),
                backup: c
                    .backup
                    .as_ref()
                    .map(|b| observe(probes.get(b.endpoint_key()), b.device_id.as_deref())),
            };
            let mut d = decide(&view, rec.health, self.settings.hysteresis);
            // Issue 15: only to a ready endpoint (webhook still wired, where wagate wired it).
            let mut blocked = None;
            if let Some(s) = d.switch.clone()
                && let Err(why) = self.wiring_ready(&id, s.to).await
            {
                tracing::warn!(
                    tenant_id = %id,
                    action = s.kind.as_str(),
                    to = ?s.to,
                    reason = %why,
                    "automatic switch blocked: the target endpoint is not ready; the tenant stays where it is"
                );
                let mut held = view.clone();
                match s.to {
                    EndpointRole::Primary => held.primary = wagate::health::Observation::Unknown,
                    EndpointRole::Backup => {
                        held.backup = Some(wagate::health::Observation::Unknown)
                    }
                }
                d = decide(&held, rec.health, self.settings.hysteresis);
                blocked = Some(SwitchBlocked {
                    tenant_id: id.to_string(),
                    to: s.to,
                    reason: why,
                });
            }
            if blocked.is_some() {
                *held_back = blocked;
            }
            if d.switch.is_none() && d.status == c.connection_status && d.health == rec.health {
                // Nothing the tenant item stores changed: no write (a healthy tenant on its
                // primary costs nothing per run; its last check is its server's
                // `lastProbeAt` in the endpoints table).
                return (TenantOutcome::Unchanged, None, conflicts);
            }
            let update = TenantStateUpdate {
                previous_status: c.connection_status,
                previous_health: rec.health,
                status: d.status,
                status_changed: d.status != c.connection_status,
                health: d.health,
                checked_at: now,
                switch_to: d.switch.as_ref().map(|s| s.to),
            };
            match self.store.write_tenant_state(&id, c.version, &update).await {
                Ok(()) => {
                    let Some(s) = d.switch else {
                        return (TenantOutcome::Written, None, conflicts);
                    };
                    let endpoint_of = |r| {
                        role_endpoint(c, r)
                            .map(|e| e.base_url.clone())
                            .unwrap_or_default()
                    };
                    let audit = SwitchAudit {
                        tenant_id: id.to_string(),
                        at: format!(
                            "{}#{}",
                            timestamp::rfc3339(now),
                            &uuid::Uuid::new_v4().simple().to_string()[..8]
                        ),
                        who: AUDIT_ACTOR.into(),
                        action: s.kind,
                        from: s.from,
                        to: s.to,
                        from_endpoint: endpoint_of(s.from),
                        to_endpoint: endpoint_of(s.to),
                        reason: s.reason.clone(),
                        version_before: c.version,
                        version_after: c.version + 1,
                    };
                    tracing::warn!(
                        tenant_id = %id,
                        action = s.kind.as_str(),
                        from = ?s.from,
                        to = ?s.to,
                        from_endpoint = %audit.from_endpoint,
                        to_endpoint = %audit.to_endpoint,
                        reason = %s.reason,
                        "tenant switched endpoint"
                    );
                    if let Err(e) = self.store.put_audit(&audit).await {
                        // The switch is stored; the log line above is the record of it.
                        tracing::error!(tenant_id = %id, error = %e, "writing the audit record failed");
                    }
                    // Issue 15: the newly active endpoint's webhook, read back (and repaired).
                    *rewired = self.reverify_after_switch(&id, s.to, s.kind).await;
                    return (TenantOutcome::Switched(s.kind), Some(audit), conflicts);
                }
                Err(StoreError::Conflict) => {
                    conflicts += 1;
                    tracing::info!(tenant_id = %id, version = c.version, "config changed during the run; deciding again");
                    if conflicts > self.settings.conflict_retries as usize {
                        return (TenantOutcome::GaveUp, None, conflicts);
                    }
                    match self.store.tenant(&id).await {
                        Ok(Some(fresh)) if fresh.config.is_active => rec = fresh,
                        Ok(_) => return (TenantOutcome::Gone, None, conflicts),
                        Err(e) => return (TenantOutcome::Failed(e.to_string()), None, conflicts),
                    }
                }
                Err(e) => {
                    tracing::error!(tenant_id = %id, error = %e, "writing the tenant status failed");
                    return (TenantOutcome::Failed(e.to_string()), None, conflicts);
                }
            }
        }
    }
}

/// Delivery records read per page, and pages at most, by one tenant's silence check.
const SILENCE_PAGE_SIZE: u32 = 100;
const SILENCE_PAGES: usize = 3;

/// Whether the probe shows the device (the server's single session when none is named)
/// connected and logged in.
fn device_connected(probe: Option<&ProbeResult>, device_id: Option<&str>) -> bool {
    probe
        .filter(|p| p.up)
        .and_then(|p| p.devices.as_ref())
        .is_some_and(|devices| {
            devices
                .iter()
                .any(|d| device_id.is_none_or(|id| d.device_id == id) && d.connected && d.logged_in)
        })
}

/// A tenant's endpoints: the primary, then the backup if any.
fn endpoints_of(
    c: &MonitoredTenant,
) -> impl Iterator<Item = (EndpointRole, &Endpoint<SealedSecret>)> {
    std::iter::once((EndpointRole::Primary, &c.primary))
        .chain(c.backup.iter().map(|b| (EndpointRole::Backup, b)))
}

/// The servers `page` names that `seen` does not hold yet (added to it), each with the
/// credentials of the first tenant of the page on it.
fn new_probe_targets(page: &[TenantRecord], seen: &mut HashSet<String>) -> Vec<ProbeTarget> {
    let mut out = Vec::new();
    for rec in page {
        let c = &rec.config;
        for (_, e) in endpoints_of(c) {
            let key = e.endpoint_key();
            if seen.insert(key.to_string()) {
                out.push(ProbeTarget {
                    key: key.to_string(),
                    // The endpoint's own kind (failover across kinds), else the tenant's.
                    provider: e.provider.unwrap_or(c.provider),
                    credential_owner: c.tenant_id.clone(),
                    credentials: e.credentials.clone(),
                    device_id: (e.provider.unwrap_or(c.provider) == ProviderKind::Meta)
                        .then(|| e.device_id.clone())
                        .flatten(),
                });
            }
        }
    }
    out
}

/// Waits for the probes until `deadline`; those still running then are aborted (their
/// servers count as not probed).
async fn collect_probes(
    mut set: JoinSet<(String, ProbeResult)>,
    deadline: Instant,
) -> HashMap<String, ProbeResult> {
    let mut out = HashMap::new();
    loop {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(Some(Ok((key, result)))) => {
                out.insert(key, result);
            }
            Ok(Some(Err(e))) => tracing::error!(error = %e, "a probe task failed"),
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    not_probed = set.len(),
                    "probe phase reached its deadline; the remaining servers count as not probed"
                );
                set.abort_all();
                break;
            }
        }
    }
    out
}

/// A short class of a failed `/health` call for the health history: never the server's
/// message, a URL or a secret.
fn error_class(e: &ProviderError) -> String {
    match e {
        ProviderError::Retryable {
            before_sent: true, ..
        } => "connect".into(),
        ProviderError::Retryable { reason, .. } | ProviderError::Ambiguous { reason } => {
            match reason.strip_prefix("server answered ") {
                Some(rest) if rest.len() >= 3 && rest[..3].bytes().all(|b| b.is_ascii_digit()) => {
                    format!("http {}", &rest[..3])
                }
                _ if reason.contains("timed out") => "timeout".into(),
                _ => "connection".into(),
            }
        }
        ProviderError::Permanent { code, .. }
            if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("http {code}")
        }
        ProviderError::Permanent { .. } => "http error".into(),
        ProviderError::RateLimited { .. } => "http 429".into(),
        ProviderError::LoggedOut { .. } => "http 401".into(),
        ProviderError::BadCredentials { status } => format!("http {status}"),
        ProviderError::Egress(_) => "egress refused".into(),
        // Only a document send fetches media; a probe never does.
        ProviderError::Media { .. } => "media".into(),
    }
}

/// The distinct servers of these tenants (primary and backup endpoints) and their use, in
/// key order.
fn group_servers(tenants: &[TenantRecord]) -> Vec<Server> {
    let mut map: BTreeMap<String, Server> = BTreeMap::new();
    for rec in tenants {
        let c = &rec.config;
        let active_role = match (c.active_endpoint, &c.backup) {
            (EndpointRole::Backup, Some(_)) => EndpointRole::Backup,
            _ => EndpointRole::Primary,
        };
        let mut seen_here: Vec<&str> = Vec::new();
        for (role, e) in endpoints_of(c) {
            let key = e.endpoint_key();
            let server = map.entry(key.to_string()).or_insert_with(|| Server {
                key: key.to_string(),
                provider: e.provider.unwrap_or(c.provider),
                usage: EndpointUse::default(),
            });
            if !seen_here.contains(&key) {
                server.usage.tenants += 1;
                seen_here.push(key);
            }
            if role == active_role {
                server.usage.active_tenants += 1;
            }
        }
    }
    map.into_values().collect()
}

/// The Lambda deadline (ms since the epoch, or cargo-lambda's timeout:
/// [`wagate::runtime::config::invocation_time_left`]) as an `Instant`, less a safety margin.
pub fn deadline_from_epoch_ms(deadline_ms: u64, margin: Duration) -> Instant {
    let remaining =
        wagate::runtime::config::invocation_time_left(deadline_ms, OffsetDateTime::now_utc());
    Instant::now() + remaining.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_read_from_epoch_ms_or_as_a_duration_from_the_emulator() {
        // At a fixed "now", so nothing depends on how long the test takes.
        let now_ms: i128 = 1_795_867_200_000;
        let at = |d: i128| u64::try_from(now_ms + d).unwrap();
        let time_left = |deadline_ms: u64, now_ms: i128| {
            let now = OffsetDateTime::from_unix_timestamp_nanos(now_ms * 1_000_000).unwrap();
            wagate::runtime::config::invocation_time_left(deadline_ms, now)
        };
        assert_eq!(time_left(at(20_000), now_ms), Duration::from_secs(20));
        // cargo-lambda sends 600000 (its timeout) rather than an epoch deadline.
        assert_eq!(time_left(600_000, now_ms), Duration::from_secs(600));
        // A deadline in the past leaves no time.
        assert_eq!(time_left(at(-5_000), now_ms), Duration::ZERO);
        // The margin comes off what is left, and never below nothing.
        let past = deadline_from_epoch_ms(at(-5_000), Duration::from_secs(1));
        assert!(past <= Instant::now());
    }

    #[test]
    fn scheduled_event_fixture_parses_as_an_eventbridge_event() {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/health-check-schedule.json"
        ))
        .unwrap();
        let ev: aws_lambda_events::event::eventbridge::EventBridgeEvent =
            serde_json::from_slice(&raw).unwrap();
        assert_eq!(ev.detail_type, "Scheduled Event");
        assert_eq!(ev.source, "aws.events");
    }
}
