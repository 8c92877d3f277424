//! Issue 15: automatic failover goes only to a ready backup. For a backup whose device webhook
//! wagate wired (a current `wired-backup-…` secret), ready includes "its webhook still reads
//! back as wired": otherwise the switch is not made (a WARN and the `SwitchesBlocked` metric)
//! and the tenant stays on its primary. GOWA simulators over HTTP, moto_server.

mod health_common;

use std::sync::Arc;

use gowa_sim::{DeviceState, DeviceWebhook};
use health_check::{HealthCheck, Settings, WiringGuard};
use health_common::*;
use wagate::Secret;
use wagate::health::Hysteresis;
use wagate::runtime::config::PublicWebhookBase;
use wagate::tenant::WebhookSecret;

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
