//! Failover across server kinds (issue 16): a tenant whose primary is GOWA and whose backup
//! is Meta's Cloud API (and the reverse) — the sender on moto_server, two simulators of
//! different kinds with contract checking on, the ingress in-process. A send that certainly
//! did not reach the primary goes to the backup through the backup's own client; an
//! ambiguous one is never sent to the other kind; a redelivered key is sent by neither;
//! receipts from either kind move the same delivery records.

mod outbound_common;

use std::sync::Arc;
use std::time::Duration;

use gowa_sim::{Faults, Kind, SendErrorFault, SendErrorStatus, SimConfig};
use http::StatusCode;
use outbound_common::*;
use outbound_sender::Outcome;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wagate::Secret;
use wagate::delivery::DeliveryState;
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::inbound::signature::sign_sha256;
use wagate::secrets::{KmsSealer, SecretSealer};
use wagate::tenant::cache::{CacheSettings, ConfigCache};
use wagate::tenant::dynamo::DynamoTenantStore;
use wagate::tenant::store::TenantConfigStore;
use wagate::tenant::*;
use wagate_tests::ApiEvent;
use wagate_tests::sim_contract::{Checked, checked};

const META_TOKEN: &str = "EAAG-cross-kind-token-51c0";
const APP_SECRET: &str = "meta-app-secret-cross-9d1e";
const WEBHOOK_SECRET: &str = "gowa-webhook-secret-cross-77";

fn gowa_endpoint(base: &str) -> Endpoint<Secret> {
    Endpoint {
        base_url: base.into(),
        credentials: Credentials::Basic {
            username: "admin".into(),
            password: Secret::new(PASSWORD),
        },
        device_id: Some(gowa_sim::DEFAULT_DEVICE_ID.into()),
        region: None,
        provider: Some(ProviderKind::Gowa),
        webhook_source_cidrs: Vec::new(),
        webhook_wiring: Default::default(),
    }
}

fn meta_endpoint(base: &str) -> Endpoint<Secret> {
    Endpoint {
        base_url: base.into(),
        credentials: Credentials::Meta {
            token: Secret::new(META_TOKEN),
            app_secret: Secret::new(APP_SECRET),
            verify_token: Secret::new("verify-cross"),
        },
        device_id: Some(gowa_sim::DEFAULT_META_PHONE_NUMBER_ID.into()),
        region: None,
        provider: Some(ProviderKind::Meta),
        webhook_source_cidrs: Vec::new(),
        webhook_wiring: Default::default(),
    }
}

/// Stores `id` with `primary` and `backup` of their own kinds (secrets sealed with KMS).
async fn store_tenant(fx: &Fx, id: &str, primary: Endpoint<Secret>, backup: Endpoint<Secret>) {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let cfg = TenantConfig {
        tenant_id: id.parse().unwrap(),
        provider: primary.provider.unwrap(),
        primary,
        backup: Some(backup),
        webhook_secrets: vec![WebhookSecret {
            id: "s1".into(),
            secret: Secret::new(WEBHOOK_SECRET),
            expires_at: None,
        }],
        active_endpoint: EndpointRole::Primary,
        is_active: true,
        connection_status: ConnectionStatus::Connected,
        failback: Default::default(),
        limits: Limits::default(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    cfg.validate(&wagate::egress::EgressPolicy::new(
        wagate::egress::EgressPolicy::parse_allowlist("127.0.0.1/32").unwrap(),
    ))
    .expect("a cross-kind config is valid");
    let sealer = KmsSealer::new(
        aws_sdk_kms::Client::new(&fx.stack.sdk),
        fx.stack.kms_key_id(),
    );
    let mut sealed = Vec::new();
    for (purpose, s) in cfg.secret_slots() {
        sealed.push(sealer.seal(id, purpose, s).await.unwrap());
    }
    DynamoTenantStore::new(
        aws_sdk_dynamodb::Client::new(&fx.stack.sdk),
        fx.stack.tenants_table(),
    )
    .create(&cfg.with_secrets(sealed).unwrap())
    .await
    .unwrap();
}

async fn gowa() -> Checked {
    checked(
        gowa_sim::start(SimConfig::default().basic_auth("admin", PASSWORD))
            .await
            .unwrap(),
    )
}

async fn meta() -> Checked {
    checked(
        gowa_sim::start(SimConfig::for_kind(Kind::Meta).api_key(META_TOKEN))
            .await
            .unwrap(),
    )
}

fn meta_sends(sim: &Checked) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/messages"))
        .count()
}

fn gowa_sends(sim: &Checked) -> usize {
    sim.requests_to("/send/message").len()
}

fn sent_id(o: Option<&Outcome>) -> (String, EndpointRole, bool) {
    match o {
        Some(Outcome::Sent {
            provider_message_id,
            role,
            failed_over,
        }) => (provider_message_id.clone(), *role, *failed_over),
        other => panic!("not sent: {other:?}"),
    }
}

#[tokio::test]
async fn a_gowa_primary_fails_over_to_a_meta_backup_and_back() {
    let fx = fixture().await;
    let (g, m) = (gowa().await, meta().await);
    store_tenant(
        &fx,
        "acme",
        gowa_endpoint(&g.base_url()),
        meta_endpoint(&m.base_url()),
    )
    .await;

    // GOWA down: the message goes to Meta, through Meta's client, in the same invocation.
    g.set_down(true).await.unwrap();
    let b = fx.handle(vec![msg("m1", "acme", "k1", "hi")]).await;
    assert!(failures(&b).is_empty());
    let (id, role, failed_over) = sent_id(b.outcome("m1"));
    assert!(id.starts_with("wamid."), "{id}");
    assert_eq!((role, failed_over), (EndpointRole::Backup, true));
    assert_eq!((gowa_sends(&g), meta_sends(&m)), (0, 1));
    let body = m
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/messages"))
        .unwrap();
    assert_eq!(body.json.unwrap()["text"]["body"], "hi");

    // GOWA back: the next message goes to GOWA again.
    g.set_down(false).await.unwrap();
    let b = fx.handle(vec![msg("m2", "acme", "k2", "again")]).await;
    let (_, role, failed_over) = sent_id(b.outcome("m2"));
    assert_eq!((role, failed_over), (EndpointRole::Primary, false));
    assert_eq!((gowa_sends(&g), meta_sends(&m)), (1, 1));
}

#[tokio::test]
async fn a_meta_primary_fails_over_to_a_gowa_backup() {
    let fx = fixture().await;
    let (g, m) = (gowa().await, meta().await);
    store_tenant(
        &fx,
        "acme",
        meta_endpoint(&m.base_url()),
        gowa_endpoint(&g.base_url()),
    )
    .await;
    m.set_faults(Faults {
        send_error: Some(SendErrorFault::always(SendErrorStatus::ServiceUnavailable)),
        ..Default::default()
    });
    let b = fx.handle(vec![msg("m1", "acme", "k1", "hi")]).await;
    let (id, role, failed_over) = sent_id(b.outcome("m1"));
    assert!(!id.starts_with("wamid."), "a GOWA id: {id}");
    assert_eq!((role, failed_over), (EndpointRole::Backup, true));
    assert_eq!(texts(&g), ["hi"]);
    let r = fx.record("acme", "k1").await.unwrap();
    assert_eq!(
        (r.state, r.endpoint_role),
        (DeliveryState::Sent, Some(EndpointRole::Backup))
    );
}

#[tokio::test]
async fn one_key_is_never_sent_by_both_kinds() {
    let fx = fixture().await;
    let (g, m) = (gowa().await, meta().await);
    store_tenant(
        &fx,
        "acme",
        gowa_endpoint(&g.base_url()),
        meta_endpoint(&m.base_url()),
    )
    .await;
    // GOWA answers 504: the message may be out. It is recorded unknown, never resent to Meta.
    g.set_faults(Faults {
        send_error: Some(SendErrorFault::next(1, SendErrorStatus::GatewayTimeout)),
        gateway_timeout_ms: Some(0),
        ..Default::default()
    });
    fx.handle(vec![msg("m1", "acme", "k1", "maybe")]).await;
    assert_eq!((gowa_sends(&g), meta_sends(&m)), (1, 0));
    assert_eq!(
        fx.record("acme", "k1").await.unwrap().state,
        DeliveryState::Unknown
    );
    // A message sent through Meta after failover, redelivered by SQS: sent by neither again.
    g.set_down(true).await.unwrap();
    let b = fx.handle(vec![msg("m2", "acme", "k2", "once")]).await;
    sent_id(b.outcome("m2"));
    let again = fx
        .handle(vec![record(
            "m2",
            &text("acme", "k2", TO, "once").to_string(),
            "acme",
            2,
        )])
        .await;
    assert!(failures(&again).is_empty());
    assert_eq!(meta_sends(&m), 1, "the redelivery was not sent again");
    g.set_down(false).await.unwrap();
    assert_eq!(gowa_sends(&g), 1, "nor sent to GOWA");
}

/// The ingress on the sender's stack.
fn ingress(fx: &Fx) -> webhook_ingress::App {
    let stack = &fx.stack;
    webhook_ingress::App {
        cache: Arc::new(ConfigCache::new(
            Arc::new(DynamoTenantStore::new(
                stack.dynamodb.clone(),
                stack.tenants_table(),
            )),
            Arc::new(KmsSealer::new(stack.kms.clone(), stack.kms_key_id())),
            CacheSettings::with_ttl(Duration::from_secs(60)),
        )),
        sink: Arc::new(webhook_ingress::SqsSink::new(
            stack.sqs.clone(),
            stack.env()["INBOUND_QUEUE_URL"].clone(),
        )),
        limiter: webhook_ingress::RateLimiter::default(),
        receipts: Arc::new(DynamoDeliveryStore::new(
            stack.dynamodb.clone(),
            stack.env()["MESSAGES_TABLE"].clone(),
            "",
            Duration::ZERO,
        )),
        replay_window: wagate::inbound::verify::DEFAULT_REPLAY_WINDOW,
        event_seen: None,
    }
}

fn meta_status(wamid: &str, status: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{
        "id": gowa_sim::DEFAULT_META_WABA_ID,
        "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881",
                         "phone_number_id": gowa_sim::DEFAULT_META_PHONE_NUMBER_ID},
            "statuses": [{"id": wamid, "status": status, "timestamp": "1787393850",
                          "recipient_id": "6289685028129"}]}}]}]}))
    .unwrap()
}

fn gowa_ack(id: &str, state: &str) -> Vec<u8> {
    format!(
        r#"{{"device_id":"6281234567890@s.whatsapp.net","event":"message.ack","payload":{{"chat_id":"6289685028129@s.whatsapp.net","from":"6289685028129@s.whatsapp.net","ids":["{id}"],"receipt_type":"{state}"}},"timestamp":"2026-11-28T10:20:11Z"}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn receipts_from_either_kind_move_the_same_tenants_records() {
    let fx = fixture().await;
    let (g, m) = (gowa().await, meta().await);
    store_tenant(
        &fx,
        "acme",
        gowa_endpoint(&g.base_url()),
        meta_endpoint(&m.base_url()),
    )
    .await;
    g.set_down(true).await.unwrap();
    let (via_meta, ..) = sent_id(
        fx.handle(vec![msg("m1", "acme", "k1", "a")])
            .await
            .outcome("m1"),
    );
    g.set_down(false).await.unwrap();
    let (via_gowa, ..) = sent_id(
        fx.handle(vec![msg("m2", "acme", "k2", "b")])
            .await
            .outcome("m2"),
    );
    let app = ingress(&fx);
    let post = |body: Vec<u8>, secret: &str| {
        let ev = ApiEvent::new("POST", "/webhooks/whatsapp/acme")
            .header(
                "X-Hub-Signature-256",
                &sign_sha256(secret.as_bytes(), &body),
            )
            .raw_body(body);
        webhook_ingress::handle(&app, ev.request())
    };
    // Meta's status, signed with the Meta endpoint's app secret.
    let r = post(meta_status(&via_meta, "delivered"), APP_SECRET).await;
    assert_eq!(r.status(), StatusCode::OK);
    // GOWA's ack, signed with the tenant's webhook secret, at the same URL.
    let r = post(gowa_ack(&via_gowa, "read"), WEBHOOK_SECRET).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        fx.record("acme", "k1").await.unwrap().state,
        DeliveryState::Delivered
    );
    assert_eq!(
        fx.record("acme", "k2").await.unwrap().state,
        DeliveryState::Read
    );
    // A Meta-shaped status signed with the GOWA secret is read as what its key says: a
    // GOWA event (an unknown shape: `other`), never as Meta's receipt.
    let r = post(meta_status(&via_meta, "read"), WEBHOOK_SECRET).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        fx.record("acme", "k1").await.unwrap().state,
        DeliveryState::Delivered
    );
    let queued =
        wagate_tests::drain_queue(&fx.stack.sdk, &fx.stack.env()["INBOUND_QUEUE_URL"]).await;
    let seen: Vec<String> = queued
        .iter()
        .map(|q| {
            let v: Value = serde_json::from_str(q.body().unwrap()).unwrap();
            format!(
                "{}:{}",
                v["provider"].as_str().unwrap(),
                v["eventType"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(seen, ["meta:receipt", "gowa:receipt", "gowa:other"]);
    // Signed with neither key: refused, nothing changes.
    let r = post(meta_status(&via_meta, "read"), "not-a-key-of-this-tenant").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        fx.record("acme", "k1").await.unwrap().state,
        DeliveryState::Delivered
    );
}
