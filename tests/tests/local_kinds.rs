//! Every server kind on the local stack (issue 16, "done when"): the real function binaries
//! under `cargo lambda watch`, moto_server, the outbound queue's event source as
//! `wagate-dev event-sources` runs it, and one simulator per kind and role over HTTP.
//!
//! One stack for all kinds. Four tenants, created through the config API; each kind is the
//! primary of one and the backup of another (GOWA → WAHA → Evolution → Meta → GOWA). For
//! each tenant: a message sent through the outbound sender reaches its primary's simulator
//! (every request checked against that kind's spec when the test ends), a contact's message
//! the primary's simulator signs and posts (with the secret wagate wired, Meta with its app
//! secret) lands on the inbound queue; then a switch to the backup, and the same through the
//! backup's kind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use gowa_sim::contract::Checked;
use gowa_sim::{IncomingMessage, Kind, SimConfig, WebhookConfig};
use serde_json::{Value, json};
use wagate_devstack::event_source::{Invoker, QueueSource};
use wagate_devstack::mappings::EventSources;
use wagate_devstack::{LocalIssuer, TokenSpec};
use wagate_tests::watch::{Watch, client, lambda_env, send_until_answered, start_watch};
use wagate_tests::{Stack, drain_queue, workspace_root};

const API_KEY: &str = "local-kinds-api-key-3e9a";
const META_TOKEN: &str = "EAAG-local-kinds-token-81f0";
const APP_SECRET: &str = "local-kinds-app-secret-55c2";
const VERIFY_TOKEN: &str = "local-kinds-verify-token-0d7b";
const CONTACT: &str = "6289685028129";

fn sim_config(kind: Kind) -> SimConfig {
    match kind {
        Kind::Gowa => SimConfig::default(),
        Kind::Meta => SimConfig::for_kind(kind).api_key(META_TOKEN),
        _ => SimConfig::for_kind(kind).api_key(API_KEY),
    }
}

fn device_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Gowa => gowa_sim::DEFAULT_DEVICE_ID,
        Kind::Waha => gowa_sim::DEFAULT_WAHA_SESSION,
        Kind::Evolution => gowa_sim::DEFAULT_EVOLUTION_INSTANCE,
        Kind::Meta => gowa_sim::DEFAULT_META_PHONE_NUMBER_ID,
    }
}

fn name(kind: Kind) -> &'static str {
    match kind {
        Kind::Gowa => "gowa",
        Kind::Waha => "waha",
        Kind::Evolution => "evolution",
        Kind::Meta => "meta",
    }
}

/// The config API's endpoint of `kind` on `sim` (`provider` named: a backup may differ).
fn endpoint(kind: Kind, sim: &Checked) -> Value {
    let credentials = match kind {
        Kind::Gowa => json!({"type": "none"}),
        Kind::Waha | Kind::Evolution => json!({"type": "apiKey", "key": API_KEY}),
        Kind::Meta => json!({"type": "meta", "token": META_TOKEN, "appSecret": APP_SECRET,
                             "verifyToken": VERIFY_TOKEN}),
    };
    let mut e = json!({"provider": name(kind), "baseUrl": sim.base_url(),
                       "credentials": credentials, "deviceId": device_of(kind)});
    if kind == Kind::Evolution {
        // Evolution signs no body: its webhooks are taken only from its addresses.
        e["webhookSourceCidrs"] = json!(["127.0.0.1/32"]);
    }
    e
}

/// Whether `path` is a text send of `kind`.
fn is_send(kind: Kind, method: &str, path: &str) -> bool {
    method == "POST"
        && match kind {
            Kind::Gowa => path == "/send/message",
            Kind::Waha => path == "/api/sendText",
            Kind::Evolution => path.starts_with("/message/sendText/"),
            Kind::Meta => path.ends_with("/messages"),
        }
}

fn sends(kind: Kind, sim: &Checked) -> usize {
    sim.requests()
        .iter()
        .filter(|r| is_send(kind, &r.method, &r.path))
        .count()
}

struct Local {
    stack: Stack,
    watch: Watch,
    http: reqwest::Client,
    admin: String,
    source: QueueSource,
    invoker: Invoker,
    /// Inbound events drained so far, by tenant.
    inbound: HashMap<String, Vec<Value>>,
}

impl Local {
    async fn api(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = self.watch.url("config-api", path);
        let (resp, _) = send_until_answered(|| {
            let r = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.admin);
            match body {
                Some(b) => r.json(b),
                None => r,
            }
        })
        .await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Puts one text message for `tenant` on the outbound queue and runs the queue's event
    /// source (as `wagate-dev event-sources`) until it was handed to the sender.
    async fn send(&self, tenant: &str, key: &str) {
        let body = json!({"tenantId": tenant, "idempotencyKey": key, "to": CONTACT,
                          "content": {"type": "text", "body": format!("local kinds {key}")}});
        self.stack
            .sqs
            .send_message()
            .queue_url(&self.source.url)
            .message_body(body.to_string())
            .message_group_id(tenant)
            .message_deduplication_id(key)
            .send()
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let report = self
                .source
                .poll_once(&self.stack.sqs, &self.invoker, Duration::from_secs(2))
                .await
                .unwrap();
            if let Some(r) = report {
                assert!(r.failure.is_none(), "{tenant} {key}: {}", r.line);
                assert!(r.kept.is_empty(), "{}", r.line);
                return;
            }
            assert!(Instant::now() < deadline, "{key} was never received");
        }
    }

    /// The delivery record of `key`, as the config API shows it.
    async fn record(&self, tenant: &str, key: &str) -> Value {
        let (status, v) = self
            .api(
                reqwest::Method::GET,
                &format!("/tenants/{tenant}/messages/{key}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{tenant} {key}: {v}");
        v
    }

    /// Waits until the inbound queue holds a `message` event of `tenant` with `text`.
    async fn received(&mut self, tenant: &str, text: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for m in drain_queue(&self.stack.sdk, &self.stack.env()["INBOUND_QUEUE_URL"]).await {
                let v: Value = serde_json::from_str(m.body().unwrap()).unwrap();
                let t = v["tenantId"].as_str().unwrap_or_default().to_string();
                self.inbound.entry(t).or_default().push(v);
            }
            if let Some(e) = self.inbound.get(tenant).and_then(|evs| {
                evs.iter()
                    .find(|e| e["eventType"] == "message" && e["text"] == text)
            }) {
                return e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{tenant}: no message event {text:?}; seen {:?}",
                self.inbound.get(tenant)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A contact writes to the device of `kind` on `sim`; the simulator signs and posts it.
async fn contact_writes(sim: &Checked, kind: Kind, text: &str) {
    let record = sim
        .deliver_incoming(IncomingMessage {
            device_id: Some(device_of(kind).to_string()),
            from: CONTACT.to_string(),
            text: text.to_string(),
            from_name: None,
            reply_to: None,
        })
        .await
        .unwrap();
    assert!(!record.deliveries.is_empty(), "{text}: {record:?}");
    for d in &record.deliveries {
        assert!(d.delivered, "{text}: {d:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_sends_and_receives_as_primary_and_as_backup_on_the_local_stack() {
    let stack = Stack::new().await;
    let issuer = LocalIssuer::generate();
    let mut env = lambda_env(&stack, &issuer);
    // A warm sender serves a config from memory for CONFIG_CACHE_TTL_SECS (60 s by default):
    // a switch reaches it within that. Here each send reads the config as switched.
    env.retain(|(k, _)| k != "CONFIG_CACHE_TTL_SECS");
    env.push(("CONFIG_CACHE_TTL_SECS".into(), "0".into()));
    let watch = start_watch(&env);
    let http = client();
    let admin = issuer.token(&TokenSpec::admin());
    let template =
        wagate_devstack::Template::load(&workspace_root().join("template.yaml")).unwrap();
    let mapping = EventSources::from_template(&template, &stack.provisioned.stack_name)
        .unwrap()
        .queues
        .into_iter()
        .find(|m| m.queue.logical_id == "OutboundQueue")
        .expect("the outbound queue's event source in template.yaml");
    let source = QueueSource {
        mapping,
        url: stack.env()["OUTBOUND_QUEUE_URL"].clone(),
        arn: stack.provisioned.arns["OutboundQueue"].clone(),
        region: stack.provisioned.region.clone(),
    };
    // The first invocation of each function builds it under cargo lambda watch.
    let invoker = Invoker::new(format!("http://127.0.0.1:{}", watch.port))
        .unwrap()
        .with_grace(Duration::from_secs(900));
    watch
        .ready(&http, "config-api", "/tenants/lk-gowa/whatsapp-config")
        .await;
    watch
        .ready(&http, "webhook-ingress", "/webhooks/whatsapp/lk-gowa")
        .await;
    let mut local = Local {
        stack,
        watch,
        http,
        admin,
        source,
        invoker,
        inbound: HashMap::new(),
    };

    let kinds = [Kind::Gowa, Kind::Waha, Kind::Evolution, Kind::Meta];
    for (i, &primary_kind) in kinds.iter().enumerate() {
        let backup_kind = kinds[(i + 1) % kinds.len()];
        let tenant = format!("lk-{}", name(primary_kind));
        let hook = local
            .watch
            .url("webhook-ingress", &format!("/webhooks/whatsapp/{tenant}"));
        let primary = wagate_tests::sim_contract::checked(
            gowa_sim::start(sim_config(primary_kind)).await.unwrap(),
        );
        let backup = wagate_tests::sim_contract::checked(
            gowa_sim::start(sim_config(backup_kind)).await.unwrap(),
        );
        // Meta's callback is the app's, set in Meta's console: here, the simulator's.
        for (kind, sim) in [(primary_kind, &primary), (backup_kind, &backup)] {
            if kind == Kind::Meta {
                sim.set_webhook(WebhookConfig {
                    urls: vec![hook.clone()],
                    secret: APP_SECRET.into(),
                    events: Vec::new(),
                });
            }
        }

        // Created through the config API: wagate wires the devices it can (GOWA, WAHA,
        // Evolution) with a secret it generates; Meta's is reported, never attempted.
        let mut primary_ep = endpoint(primary_kind, &primary);
        primary_ep.as_object_mut().unwrap().remove("provider");
        let body = json!({
            "provider": name(primary_kind),
            "primary": primary_ep,
            "backup": endpoint(backup_kind, &backup),
            "webhookSecrets": [{"id": "s1", "secret": "local-kinds-webhook-secret"}],
        });
        let (status, created) = local
            .api(
                reqwest::Method::POST,
                &format!("/tenants/{tenant}/whatsapp-config"),
                Some(&body),
            )
            .await;
        assert_eq!(status, 201, "{tenant}: {created}");
        let wired: Vec<(String, String)> = created["wiring"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["role"].as_str().unwrap().to_string(),
                    o["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for (role, kind) in [("primary", primary_kind), ("backup", backup_kind)] {
            let want = if kind == Kind::Meta {
                "manual"
            } else {
                "wired"
            };
            assert!(
                wired.contains(&(role.to_string(), want.to_string())),
                "{tenant} {role} ({}): {wired:?}",
                name(kind)
            );
        }

        // Through the primary's kind.
        let key = format!("{tenant}-1");
        local.send(&tenant, &key).await;
        let rec = local.record(&tenant, &key).await;
        assert_eq!(sends(primary_kind, &primary), 1, "{tenant}: {rec}");
        assert_eq!(sends(backup_kind, &backup), 0, "{tenant}");
        assert!(
            ["sent", "delivered", "read"].contains(&rec["state"].as_str().unwrap()),
            "{rec}"
        );
        assert_eq!(rec["endpoint"], primary.base_url(), "{rec}");
        let text = format!("hello {tenant} primary");
        contact_writes(&primary, primary_kind, &text).await;
        let ev = local.received(&tenant, &text).await;
        assert_eq!(ev["provider"], name(primary_kind), "{ev}");

        // Switched to the backup: through the backup's kind.
        let (status, switched) = local
            .api(
                reqwest::Method::POST,
                &format!("/tenants/{tenant}/whatsapp-config/switch"),
                Some(&json!({"action": "activate", "to": "backup", "version": created["version"]})),
            )
            .await;
        assert_eq!(status, 200, "{tenant}: {switched}");
        assert_eq!(switched["activeEndpoint"], "backup");
        let key = format!("{tenant}-2");
        local.send(&tenant, &key).await;
        let rec = local.record(&tenant, &key).await;
        assert_eq!(sends(backup_kind, &backup), 1, "{tenant}: {rec}");
        assert_eq!(sends(primary_kind, &primary), 1, "{tenant}: not sent twice");
        assert_eq!(rec["endpoint"], backup.base_url(), "{rec}");
        let text = format!("hello {tenant} backup");
        contact_writes(&backup, backup_kind, &text).await;
        let ev = local.received(&tenant, &text).await;
        assert_eq!(ev["provider"], name(backup_kind), "{ev}");
    }
}
