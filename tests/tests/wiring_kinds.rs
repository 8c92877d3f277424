//! Webhook wiring for WAHA and Evolution (issue 16), the same way as GOWA's (issue 15): a
//! config saved with a linked session / instance gets wagate's webhook set on the server in
//! the same change, read back and compared (WAHA: the session's `config.webhooks` with
//! `hmac.key`; Evolution: `webhook/set` with `jwt_key`), and the server then signs its
//! deliveries with that secret, which the ingress accepts. A refused change or a read-back
//! that differs gives GOWA's errors and saves nothing; a manual endpoint is never changed.
//! Every request to the simulators is checked against each kind's contract.

use std::sync::Arc;
use std::time::Duration;

use gowa_sim::{DeviceWebhookFault, Faults, Kind, SimConfig, SimHandle};
use http::StatusCode;
use serde_json::{Value, json};
use wagate::runtime::config::PublicWebhookBase;
use wagate::secrets::{Purpose, SealedSecret};
use wagate_tests::ApiEvent;
use wagate_tests::api::{Api, Reply, api};
use wagate_tests::sim_contract::{Checked, checked};

const KEY: &str = "kind-api-key-5b1e";
const INGRESS: &str = "http://127.0.0.1:9000/lambda-url/webhook-ingress";

/// The kinds this file covers, with the simulator's default device (session / instance).
const KINDS: [(Kind, &str, &str); 2] = [
    (Kind::Waha, "waha", "default"),
    (Kind::Evolution, "evolution", "demo"),
];

async fn sim(kind: Kind) -> Checked {
    checked(
        gowa_sim::start(SimConfig::for_kind(kind).api_key(KEY))
            .await
            .unwrap(),
    )
}

async fn bare_api() -> Api {
    let mut api = api().await;
    api.app.webhook_base = PublicWebhookBase::parse(INGRESS).unwrap();
    api
}

fn config(kind: &str, sim: &SimHandle, device: &str, wiring: &str) -> Value {
    let mut primary = json!({
        "baseUrl": sim.base_url(), "deviceId": device,
        "credentials": {"type": "apiKey", "key": KEY},
        "webhookWiring": wiring,
    });
    if kind == "evolution" {
        // Evolution signs no body: its deliveries must also come from an allowed source
        // (ApiEvent's and API Gateway's test address).
        primary["webhookSourceCidrs"] = json!(["203.0.113.0/24"]);
    }
    json!({
        "provider": kind, "primary": primary,
        "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
    })
}

async fn call(api: &Api, method: &str, path: &str) -> Reply {
    api.call(ApiEvent::new(method, path).bearer(&api.tenant("acme")))
        .await
}

/// Opens the tenant's stored webhook secret `id` through KMS, as the ingress does.
async fn opened_secret(api: &Api, id: &str) -> String {
    let cfg = api
        .app
        .stores
        .tenants
        .get(&"acme".parse::<wagate::tenant::TenantId>().unwrap())
        .await
        .unwrap()
        .unwrap();
    let sealed: &SealedSecret = &cfg
        .webhook_secrets
        .iter()
        .find(|w| w.id == id)
        .expect("the secret is stored")
        .secret;
    api.app
        .sealer
        .open("acme", Purpose::WebhookSecret, sealed)
        .await
        .unwrap()
        .expose()
        .to_string()
}

/// The requests that change a device's webhook on `kind`'s server.
fn webhook_changes(sim: &SimHandle, kind: Kind) -> Vec<Value> {
    sim.requests()
        .into_iter()
        .filter(|q| match kind {
            Kind::Waha => q.method == "PUT" && q.path.starts_with("/api/sessions/"),
            _ => q.method == "POST" && q.path.starts_with("/webhook/set/"),
        })
        .map(|q| q.json.unwrap_or(Value::Null))
        .collect()
}

fn device(sim: &SimHandle, id: &str) -> gowa_sim::DeviceSpec {
    sim.devices().into_iter().find(|d| d.id == id).unwrap()
}

#[tokio::test]
async fn a_waha_or_evolution_config_with_a_linked_device_is_wired_and_read_back() {
    for (kind, name, dev) in KINDS {
        let sim = sim(kind).await;
        let api = bare_api().await;

        let r = api.create(&config(name, &sim, dev, "wagate")).await;

        assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.text);
        let body = r.json();
        assert_eq!(body["wiring"][0]["state"], "wired", "{name}: {body}");
        let id = body["wiring"][0]["secretId"].as_str().unwrap().to_string();
        let secret = opened_secret(&api, &id).await;
        assert!(
            !r.text.contains(&secret),
            "{name}: the secret is never answered"
        );
        let hook = device(&sim, dev)
            .webhook
            .expect("the device has wagate's webhook");
        assert_eq!(
            hook.url,
            format!("{INGRESS}/webhooks/whatsapp/acme"),
            "{name}"
        );
        assert_eq!(hook.secret, secret, "{name}: signs with the wired secret");
        let changes = webhook_changes(&sim, kind);
        assert_eq!(changes.len(), 1, "{name}: one change");
        match kind {
            Kind::Waha => {
                let w = &changes[0]["config"]["webhooks"];
                assert_eq!(
                    w.as_array().unwrap().len(),
                    1,
                    "wagate's is the only webhook"
                );
                assert_eq!(w[0]["hmac"]["key"], secret.as_str());
                assert_eq!(
                    w[0]["events"],
                    json!(["message", "message.ack", "session.status"])
                );
            }
            _ => {
                let w = &changes[0]["webhook"];
                assert_eq!(w["enabled"], true);
                assert_eq!(w["byEvents"], false, "one URL for every event");
                assert_eq!(w["headers"]["jwt_key"], secret.as_str());
            }
        }

        // Read on demand: wired (compared with the stored secrets, never shown).
        let r = call(&api, "GET", "/tenants/acme/devices/primary/webhook").await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text);
        assert_eq!(r.json()["state"], "wired", "{name}: {}", r.text);
        assert!(!r.text.contains(&secret));
    }
}

#[tokio::test]
async fn a_refused_change_or_a_different_read_back_fails_as_for_gowa_and_saves_nothing() {
    for (kind, name, dev) in KINDS {
        for (fault, code) in [
            (DeviceWebhookFault::Refuse, "webhook_refused"),
            (DeviceWebhookFault::OtherUrl, "read_back_mismatch"),
            (DeviceWebhookFault::OtherSecret, "read_back_mismatch"),
        ] {
            let sim = sim(kind).await;
            let api = bare_api().await;
            sim.set_faults(Faults {
                device_webhook: Some(fault),
                ..Faults::default()
            });

            let r = api.create(&config(name, &sim, dev, "wagate")).await;

            assert_eq!(
                r.status,
                StatusCode::FAILED_DEPENDENCY,
                "{name} {fault:?}: {}",
                r.text
            );
            assert_eq!(r.json()["error"], code, "{name} {fault:?}");
            assert!(
                !r.text.contains("not-yours"),
                "the server's secret is never echoed"
            );
            let r = call(&api, "GET", "/tenants/acme/whatsapp-config").await;
            assert_eq!(
                r.status,
                StatusCode::NOT_FOUND,
                "{name} {fault:?}: nothing saved"
            );
        }
    }
}

#[tokio::test]
async fn a_manual_endpoint_is_reported_and_nothing_is_changed_on_the_server() {
    for (kind, name, dev) in KINDS {
        let sim = sim(kind).await;
        let api = bare_api().await;

        let r = api.create(&config(name, &sim, dev, "manual")).await;

        assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.text);
        assert_eq!(r.json()["wiring"][0]["state"], "manual", "{name}");
        let r = call(&api, "POST", "/tenants/acme/devices/primary/webhook").await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{name}: {}", r.text);
        assert_eq!(r.json()["error"], "webhook_wiring_manual");
        let r = call(&api, "GET", "/tenants/acme/devices/primary/webhook").await;
        assert_eq!(r.json()["state"], "missing", "{name}: {}", r.text);
        assert!(
            webhook_changes(&sim, kind).is_empty(),
            "{name}: {:?}",
            sim.requests()
        );
        assert!(device(&sim, dev).webhook.is_none(), "{name}");
    }
}

/// The ingress over HTTP on a free port (every header passed on, as API Gateway does).
async fn ingress_over_http(stack: &wagate_tests::Stack) -> (String, tokio::task::JoinHandle<()>) {
    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::HeaderMap;

    #[derive(Clone)]
    struct Parts {
        app: Arc<webhook_ingress::App>,
    }
    async fn receive(
        State(p): State<Parts>,
        Path(tenant): Path<String>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (axum::http::StatusCode, String) {
        let mut ev =
            ApiEvent::new("POST", &format!("/webhooks/whatsapp/{tenant}")).raw_body(body.to_vec());
        for (name, v) in &headers {
            if let Ok(v) = v.to_str() {
                ev = ev.header(name.as_str(), v);
            }
        }
        let resp = webhook_ingress::handle_event(&p.app, ev.event()).await;
        let text = match &resp.body {
            Some(lambda_http::Body::Text(t)) => t.clone(),
            _ => String::new(),
        };
        (
            axum::http::StatusCode::from_u16(resp.status_code as u16).unwrap(),
            text,
        )
    }
    let env = stack.env();
    let store = wagate::tenant::dynamo::DynamoTenantStore::new(
        stack.dynamodb.clone(),
        stack.tenants_table(),
    );
    let sealer = wagate::secrets::KmsSealer::new(stack.kms.clone(), stack.kms_key_id());
    let app = webhook_ingress::App {
        cache: Arc::new(wagate::tenant::cache::ConfigCache::new(
            Arc::new(store),
            Arc::new(sealer),
            webhook_ingress::cache_settings(Duration::from_secs(60)),
        )),
        sink: Arc::new(webhook_ingress::SqsSink::new(
            stack.sqs.clone(),
            env["INBOUND_QUEUE_URL"].clone(),
        )),
        limiter: webhook_ingress::RateLimiter::default(),
        receipts: Arc::new(wagate::delivery::dynamo::DynamoDeliveryStore::new(
            stack.dynamodb.clone(),
            env["MESSAGES_TABLE"].clone(),
            "",
            Duration::ZERO,
        )),
        replay_window: wagate::inbound::verify::DEFAULT_REPLAY_WINDOW,
        event_seen: None,
    };
    let router = axum::Router::new()
        .route("/webhooks/whatsapp/{tenant}", axum::routing::post(receive))
        .with_state(Parts { app: Arc::new(app) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (url, task)
}

#[tokio::test]
async fn after_wiring_the_server_signs_with_the_wired_secret_and_the_ingress_takes_it() {
    for (kind, name, dev) in KINDS {
        let sim = sim(kind).await;
        let mut api = bare_api().await;
        let (ingress_url, task) = ingress_over_http(&api.stack).await;
        api.app.webhook_base = PublicWebhookBase::parse(&ingress_url).unwrap();
        let r = api.create(&config(name, &sim, dev, "wagate")).await;
        assert_eq!(
            r.json()["wiring"][0]["state"],
            "wired",
            "{name}: {}",
            r.text
        );

        let text = format!("hello over {name}");
        let record = sim
            .deliver_incoming(gowa_sim::IncomingMessage {
                device_id: Some(dev.into()),
                from: "6289685028129".into(),
                text: text.clone(),
                from_name: None,
                reply_to: None,
            })
            .await
            .expect("the simulator delivers the event");

        let delivered: Vec<bool> = record.deliveries.iter().map(|d| d.delivered).collect();
        assert_eq!(delivered.first(), Some(&true), "{name}: {record:?}");
        let queued =
            wagate_tests::drain_queue(&api.stack.sdk, &api.stack.env()["INBOUND_QUEUE_URL"]).await;
        assert!(
            queued
                .iter()
                .any(|m| m.body().unwrap_or_default().contains(&text)),
            "{name}: the message reached the inbound queue"
        );
        task.abort();
    }
}
