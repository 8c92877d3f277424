//! The health check over a tenant whose endpoints are of different kinds (issue 16): a GOWA
//! primary with a Meta Cloud API backup, and the reverse. Each server is probed through its
//! own kind's client (GOWA `/health` + `/devices`; Meta the number's `health_status`), and the
//! tenant fails over and back by the same hysteresis rules as between two GOWA servers
//! (3 failed runs to fail over, 5 healthy runs to fail back). Every request to either
//! simulator is checked against its kind's spec.

mod health_common;

use gowa_sim::DeviceState::LoggedIn;
use gowa_sim::{Kind, SimConfig, SimHandle};
use health_common::*;
use wagate::Secret;
use wagate::tenant::*;
use wagate_tests::sim_contract::{Checked, checked};

const META_TOKEN: &str = "EAAG-health-cross-kind-token";

async fn meta() -> Checked {
    checked(
        gowa_sim::start(SimConfig::for_kind(Kind::Meta).api_key(META_TOKEN))
            .await
            .unwrap(),
    )
}

fn meta_endpoint(sim: &SimHandle) -> Endpoint<Secret> {
    Endpoint {
        base_url: normalize_base_url(&sim.base_url()).unwrap(),
        credentials: Credentials::Meta {
            token: Secret::new(META_TOKEN),
            app_secret: Secret::new("app-secret-health"),
            verify_token: Secret::new("verify-health"),
        },
        device_id: Some(gowa_sim::DEFAULT_META_PHONE_NUMBER_ID.into()),
        region: None,
        provider: Some(ProviderKind::Meta),
        webhook_source_cidrs: Vec::new(),
        webhook_wiring: Default::default(),
    }
}

fn meta_probes(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.query.as_deref() == Some("fields=health_status"))
        .count()
}

#[tokio::test]
async fn a_gowa_primary_fails_over_to_meta_after_three_runs_and_back_after_five() {
    let fx = fx(settings()).await;
    let primary = sim(&[("p1", LoggedIn)]).await;
    let backup = meta().await;
    fx.add(config(
        "acme",
        endpoint(&primary, "p1"),
        Some(meta_endpoint(&backup)),
    ))
    .await;
    primary.set_down(true).await.unwrap();
    for run in 1..=2 {
        fx.run().await;
        assert_eq!(
            s(&fx.item("acme").await, "activeEndpoint"),
            "primary",
            "run {run}"
        );
    }
    fx.run().await;
    let item = fx.item("acme").await;
    assert_eq!(s(&item, "activeEndpoint"), "backup");
    assert_eq!(s(&item, "connectionStatus"), "connected");
    // Each run asks the number's health_status twice: as the server's health and as its
    // device's status.
    assert_eq!(
        meta_probes(&backup),
        6,
        "Meta probed through its own client"
    );
    assert!(
        backup.requests_to("/health").is_empty(),
        "no GOWA route asked of Meta"
    );

    primary.set_down(false).await.unwrap();
    for run in 1..=4 {
        fx.run().await;
        assert_eq!(
            s(&fx.item("acme").await, "activeEndpoint"),
            "backup",
            "run {run}"
        );
    }
    fx.run().await;
    let item = fx.item("acme").await;
    assert_eq!(s(&item, "activeEndpoint"), "primary");
    let audit = fx.audit("acme").await;
    let actions: Vec<String> = audit.iter().map(|a| s(a, "action")).collect();
    assert_eq!(actions, ["failover", "failback"]);
    assert!(!format!("{audit:?}").contains(META_TOKEN));
}

#[tokio::test]
async fn a_meta_primary_fails_over_to_gowa_when_meta_is_unreachable() {
    let fx = fx(settings()).await;
    let primary = meta().await;
    let backup = sim(&[("b1", LoggedIn)]).await;
    let mut cfg = config(
        "acme",
        meta_endpoint(&primary),
        Some(endpoint(&backup, "b1")),
    );
    cfg.provider = ProviderKind::Meta;
    cfg.backup.as_mut().unwrap().provider = Some(ProviderKind::Gowa);
    fx.add(cfg).await;
    primary.set_down(true).await.unwrap();
    for _ in 1..=3 {
        fx.run().await;
    }
    let item = fx.item("acme").await;
    assert_eq!(s(&item, "activeEndpoint"), "backup");
    assert_eq!(backup.requests_to("/health").len(), 3);
}
