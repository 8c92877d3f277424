//! Issue 15: automatic failover goes only to a ready backup. For a backup whose device webhook
//! wagate wired (a current `wired-backup-…` secret), ready includes "its webhook still reads
//! back as wired": otherwise the switch is not made (a WARN and the `SwitchesBlocked` metric)
//! and the tenant stays on its primary. GOWA simulators over HTTP, moto_server.

mod health_common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use gowa_sim::{DeviceState, DeviceWebhook};
use health_check::{HealthCheck, Settings, WiringGuard};
use health_common::*;
use wagate::Secret;
use wagate::health::Hysteresis;
use wagate::runtime::config::PublicWebhookBase;
use wagate::tenant::WebhookSecret;
use wagate::tenant::store::StoreError;

const BASE: &str = "https://hooks.wagate.test";
const WIRED_SECRET: &str = "wired-secret-backup-0123456789abcdef";

fn quick() -> Settings {
    Settings {
        hysteresis: Hysteresis {
            failover_after: 1,
            failback_after: 1,
        },
        ..settings()
    }
}

fn guarded(fx: &Fx) -> HealthCheck {
    fx.check.clone().with_wiring_guard(WiringGuard {
        configs: Arc::new(fx.tenants.clone()),
        webhook_base: PublicWebhookBase::parse(BASE).unwrap(),
    })
}

fn hook(secret: &str) -> DeviceWebhook {
    DeviceWebhook {
        url: format!("{BASE}/webhooks/whatsapp/acme"),
        secret: secret.into(),
        events: Vec::new(),
        headers: Default::default(),
    }
}

async fn run(check: &HealthCheck) -> health_check::RunReport {
    check
        .run(tokio::time::Instant::now() + std::time::Duration::from_secs(20))
        .await
        .expect("run")
}

#[tokio::test]
async fn failover_waits_for_a_backup_whose_wired_webhook_no_longer_reads_back() {
    let fx = fx(quick()).await;
    let primary = sim(&[("p", DeviceState::LoggedIn)]).await;
    let backup = sim(&[("b", DeviceState::LoggedIn)]).await;
    let mut cfg = config(
        "acme",
        endpoint(&primary, "p"),
        Some(endpoint(&backup, "b")),
    );
    cfg.webhook_secrets.push(WebhookSecret {
        id: "wired-backup-1796000000-00aa".into(),
        secret: Secret::new(WIRED_SECRET),
        expires_at: None,
    });
    fx.add(cfg).await;
    // Someone changed the backup device's webhook secret on the server by hand.
    assert!(backup.set_device_webhook("b", Some(hook("changed-by-hand"))));
    let check = guarded(&fx);

    primary.set_down(true).await.unwrap();
    let report = run(&check).await;

    assert!(report.switches.is_empty(), "{:?}", report.switches);
    assert_eq!(report.blocked.len(), 1, "{:?}", report.blocked);
    assert!(
        report.blocked[0].reason.contains("secret_mismatch"),
        "{:?}",
        report.blocked[0]
    );
    assert!(!report.blocked[0].reason.contains(WIRED_SECRET));
    let item = fx.item("acme").await;
    assert_eq!(
        s(&item, "activeEndpoint"),
        "primary",
        "stays on the primary"
    );
    let emf = report.emf_lines(time::OffsetDateTime::now_utc()).join("\n");
    assert!(emf.contains("\"SwitchesBlocked\":1"), "{emf}");

    // Once the wiring is repaired, the next run fails over.
    assert!(backup.set_device_webhook("b", Some(hook(WIRED_SECRET))));
    let report = run(&check).await;

    assert!(report.blocked.is_empty(), "{:?}", report.blocked);
    assert_eq!(report.switches.len(), 1, "{:?}", report.switches);
    let item = fx.item("acme").await;
    assert_eq!(s(&item, "activeEndpoint"), "backup");
}

#[tokio::test]
async fn a_backup_wagate_never_wired_is_not_checked() {
    let fx = fx(quick()).await;
    let primary = sim(&[("p", DeviceState::LoggedIn)]).await;
    let backup = sim(&[("b", DeviceState::LoggedIn)]).await;
    fx.add(config(
        "acme",
        endpoint(&primary, "p"),
        Some(endpoint(&backup, "b")),
    ))
    .await;
    let check = guarded(&fx);

    primary.set_down(true).await.unwrap();
    let report = run(&check).await;

    assert!(report.blocked.is_empty(), "{:?}", report.blocked);
    assert_eq!(report.switches.len(), 1);
    assert!(
        backup.requests_to("/devices/b/webhook").is_empty(),
        "the tenant's own forwarding is not read"
    );
}

/// A store that, when the failover is written, changes the backup device's webhook on the
/// server behind wagate's back (after the readiness check passed, before the switch lands).
struct ChangedBehindTheBack {
    inner: Arc<dyn wagate::health::store::HealthStore>,
    providers: wagate::provider::Providers,
    backup: wagate::tenant::Endpoint<Secret>,
    changed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl wagate::health::store::HealthStore for ChangedBehindTheBack {
    async fn active_tenants_page(
        &self,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<wagate::tenant::store::Page<wagate::health::store::TenantRecord>, StoreError> {
        self.inner.active_tenants_page(cursor, page_size).await
    }
    async fn tenant(
        &self,
        id: &wagate::TenantId,
    ) -> Result<Option<wagate::health::store::TenantRecord>, StoreError> {
        self.inner.tenant(id).await
    }
    async fn write_tenant_state(
        &self,
        id: &wagate::TenantId,
        expected_version: u64,
        update: &wagate::health::store::TenantStateUpdate,
    ) -> Result<(), StoreError> {
        if update.switch_to.is_some() && !self.changed.swap(true, Ordering::SeqCst) {
            let gowa = self
                .providers
                .get(wagate::tenant::ProviderKind::Gowa)
                .unwrap();
            let other = wagate::provider::DeviceWebhook {
                url: "https://elsewhere.example.com/hook".into(),
                secret: Secret::new("someone-elses-secret"),
                events: Vec::new(),
            };
            gowa.set_webhook(wagate::provider::Target::from(&self.backup), &other)
                .await
                .unwrap();
        }
        self.inner
            .write_tenant_state(id, expected_version, update)
            .await
    }
    async fn endpoints(
        &self,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, wagate::health::EndpointHealth>, StoreError> {
        self.inner.endpoints(keys).await
    }
    async fn save_endpoints(
        &self,
        records: &[wagate::health::EndpointHealth],
    ) -> Result<(), StoreError> {
        self.inner.save_endpoints(records).await
    }
    async fn put_audit(
        &self,
        record: &wagate::health::store::SwitchAudit,
    ) -> Result<(), StoreError> {
        self.inner.put_audit(record).await
    }
    async fn put_note(&self, record: &wagate::audit::AuditEntry) -> Result<(), StoreError> {
        self.inner.put_note(record).await
    }
    async fn set_silent(
        &self,
        id: &wagate::TenantId,
        flag: Option<&wagate::health::silence::SilentFlag>,
    ) -> Result<(), StoreError> {
        self.inner.set_silent(id, flag).await
    }
    async fn set_standby(
        &self,
        id: &wagate::TenantId,
        note: Option<&wagate::health::standby::StandbyNote>,
    ) -> Result<(), StoreError> {
        self.inner.set_standby(id, note).await
    }
    async fn save_history(
        &self,
        points: &[wagate::health::HealthPoint],
    ) -> Result<(), wagate::health::store::HistoryWriteError> {
        self.inner.save_history(points).await
    }
}

#[tokio::test]
async fn a_backup_webhook_changed_between_readiness_and_failover_is_repaired_after_the_failover() {
    let fx = fx(quick()).await;
    let primary = sim(&[("p", DeviceState::LoggedIn)]).await;
    let backup = sim(&[("b", DeviceState::LoggedIn)]).await;
    let mut cfg = config(
        "acme",
        endpoint(&primary, "p"),
        Some(endpoint(&backup, "b")),
    );
    cfg.webhook_secrets.push(WebhookSecret {
        id: "wired-backup-1796000000-00aa".into(),
        secret: Secret::new(WIRED_SECRET),
        expires_at: None,
    });
    fx.add(cfg).await;
    // Wired and ready when the health check looks.
    assert!(backup.set_device_webhook("b", Some(hook(WIRED_SECRET))));
    let providers = wagate::provider::Providers::new(fx.http.clone());
    let store = ChangedBehindTheBack {
        inner: fx.store.clone(),
        providers: providers.clone(),
        backup: endpoint(&backup, "b"),
        changed: Default::default(),
    };
    let check = HealthCheck::new(
        Arc::new(store),
        Arc::new(fx.sealer.clone()),
        providers.clone(),
        quick(),
    )
    .with_wiring_guard(WiringGuard {
        configs: Arc::new(fx.tenants.clone()),
        webhook_base: PublicWebhookBase::parse(BASE).unwrap(),
    });

    primary.set_down(true).await.unwrap();
    let report = run(&check).await;

    // The failover landed on the backup...
    assert_eq!(report.switches.len(), 1, "{:?}", report.switches);
    assert_eq!(s(&fx.item("acme").await, "activeEndpoint"), "backup");
    // ...whose webhook, changed behind wagate's back, was read back and set again.
    assert_eq!(report.rewired.len(), 1, "{:?}", report.rewired);
    let r = &report.rewired[0];
    assert_eq!(
        (r.found.as_str(), r.result.as_str()),
        ("points_elsewhere", "repaired")
    );
    assert!(!r.detail.contains(WIRED_SECRET));
    let gowa = providers.get(wagate::tenant::ProviderKind::Gowa).unwrap();
    let b = endpoint(&backup, "b");
    let now = gowa
        .get_webhook(wagate::provider::Target::from(&b))
        .await
        .unwrap();
    assert_eq!(now.url, format!("{BASE}/webhooks/whatsapp/acme"));
    assert_eq!(now.secret.expose(), WIRED_SECRET);
    // Audited, and counted.
    let audit = fx.audit("acme").await;
    let note = audit
        .iter()
        .find(|i| {
            i.get("action")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                == Some("rewire_webhook")
        })
        .expect("re-wiring audited");
    assert!(!format!("{note:?}").contains(WIRED_SECRET));
    let emf = report.emf_lines(time::OffsetDateTime::now_utc()).join("\n");
    assert!(emf.contains("\"WebhooksRewired\":1"), "{emf}");
    assert!(emf.contains("\"WebhookRewireFailures\":0"), "{emf}");
}

#[tokio::test]
async fn a_failover_onto_a_still_wired_backup_reads_it_back_and_changes_nothing() {
    let fx = fx(quick()).await;
    let primary = sim(&[("p", DeviceState::LoggedIn)]).await;
    let backup = sim(&[("b", DeviceState::LoggedIn)]).await;
    let mut cfg = config(
        "acme",
        endpoint(&primary, "p"),
        Some(endpoint(&backup, "b")),
    );
    cfg.webhook_secrets.push(WebhookSecret {
        id: "wired-backup-1796000000-00aa".into(),
        secret: Secret::new(WIRED_SECRET),
        expires_at: None,
    });
    fx.add(cfg).await;
    assert!(backup.set_device_webhook("b", Some(hook(WIRED_SECRET))));
    let check = guarded(&fx);

    primary.set_down(true).await.unwrap();
    let report = run(&check).await;

    assert_eq!(report.switches.len(), 1);
    assert_eq!(report.rewired.len(), 1, "{:?}", report.rewired);
    assert_eq!(report.rewired[0].result, "wired");
    let patches = backup
        .requests_to("/devices/b/webhook")
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(patches, 0, "nothing set when it reads back wired");
}

/// The standby verdict the health check stored on the tenant's item, read back through the
/// config API's reader (what the fleet view shows).
async fn standby_of(fx: &Fx, id: &str) -> Option<wagate::health::standby::StandbyNote> {
    use wagate::health::store::HealthReader as _;
    fx.store
        .all_activity()
        .await
        .unwrap()
        .into_iter()
        .find(|(t, _)| t.as_str() == id)
        .expect("tenant listed")
        .1
        .standby
}

fn webhook_reads(sim: &gowa_sim::SimHandle, device: &str) -> usize {
    sim.requests_to(&format!("/devices/{device}/webhook"))
        .into_iter()
        .filter(|r| r.method == "GET")
        .count()
}

#[tokio::test]
async fn the_health_check_records_backup_readiness_for_the_fleet_and_writes_it_only_when_it_changes()
 {
    let fx = fx(quick()).await;
    let primary = sim(&[("p", DeviceState::LoggedIn)]).await;
    let backup = sim(&[("b", DeviceState::LoggedIn)]).await;
    let mut cfg = config(
        "acme",
        endpoint(&primary, "p"),
        Some(endpoint(&backup, "b")),
    );
    cfg.webhook_secrets.push(WebhookSecret {
        id: "wired-backup-1796000000-00aa".into(),
        secret: Secret::new(WIRED_SECRET),
        expires_at: None,
    });
    fx.add(cfg).await;
    fx.add(config("solo", endpoint(&primary, "p"), None)).await;
    assert!(backup.set_device_webhook("b", Some(hook(WIRED_SECRET))));
    let check = guarded(&fx);

    // Server up, device logged in, webhook read back wired: ready.
    run(&check).await;
    let note = standby_of(&fx, "acme").await.expect("a verdict");
    assert!(note.ready, "{note:?}");
    assert_eq!(note.role, wagate::tenant::EndpointRole::Backup);
    assert_eq!(note.config_version, 1);
    assert_eq!(webhook_reads(&backup, "b"), 1, "read back once");
    assert_eq!(standby_of(&fx, "solo").await, None, "no backup: no verdict");

    // Still ready: neither read nor written again (the same `since`).
    run(&check).await;
    assert_eq!(
        webhook_reads(&backup, "b"),
        1,
        "a ready standby is not read each run"
    );
    assert_eq!(standby_of(&fx, "acme").await, Some(note.clone()));

    // The backup's device logs out: not ready, without a webhook read.
    assert!(backup.set_device_state("b", DeviceState::Connected));
    run(&check).await;
    let out = standby_of(&fx, "acme").await.unwrap();
    assert!(!out.ready);
    assert_eq!(out.reasons, ["device_not_logged_in"]);
    assert_eq!(webhook_reads(&backup, "b"), 1);

    // Linked again, but its webhook was changed by hand: read back, not wired.
    assert!(backup.set_device_state("b", DeviceState::LoggedIn));
    assert!(backup.set_device_webhook("b", Some(hook("changed-by-hand"))));
    run(&check).await;
    let unwired = standby_of(&fx, "acme").await.unwrap();
    assert!(!unwired.ready);
    assert_eq!(unwired.reasons, ["webhook_not_wired"]);
    let detail = unwired.detail.clone().unwrap();
    assert!(detail.contains("secret_mismatch"), "{detail}");
    assert!(!detail.contains(WIRED_SECRET) && !detail.contains("changed-by-hand"));

    // The backup's server goes down: not ready, server down.
    backup.set_down(true).await.unwrap();
    run(&check).await;
    let down = standby_of(&fx, "acme").await.unwrap();
    assert!(!down.ready);
    assert_eq!(down.reasons, ["server_down"]);
    // The primary was never touched: the tenant stays where it is.
    assert_eq!(s(&fx.item("acme").await, "activeEndpoint"), "primary");
}
