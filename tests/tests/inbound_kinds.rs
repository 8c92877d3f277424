//! webhook-ingress for WAHA, Evolution and Meta tenants (issue 16), in-process with real API
//! Gateway v2 events against moto_server: each kind verified before parsing (WAHA
//! HMAC-SHA512 + replay window, Meta `X-Hub-Signature-256` with the app secret and the GET
//! handshake, Evolution HS256 JWT + source allowlist), normalised into the InboundEvent schema
//! (validated), deduplicated on the kind's ids, receipts applied to delivery records by the
//! provider's message id. Every refusal asserts its exact status and an empty queue. Bodies
//! are the documented samples in tests/fixtures/{waha,evolution,meta}/.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wagate::Secret;
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::inbound::signature::sign_sha256;
use wagate::inbound::verify::{sign_hs256_jwt, sign_sha512_hex};
use wagate::secrets::{KmsSealer, SecretSealer};
use wagate::tenant::cache::{CacheSettings, ConfigCache};
use wagate::tenant::dynamo::DynamoTenantStore;
use wagate::tenant::store::TenantConfigStore;
use wagate::tenant::*;
use wagate_tests::{ApiEvent, Stack, drain_queue, workspace_root};
use webhook_ingress::{App, RateLimiter, SqsSink};

const WAHA_KEY: &str = "my-secret-key";
const JWT_KEY: &str = "jwt-secret-of-tenant-42";
const APP_SECRET: &str = "meta-app-secret";
const VERIFY_TOKEN: &str = "verify-token-3c9d";
const EVOLUTION_APIKEY: &str = "B6D711FCDE4D4FD5936544120E713976";
const EVOLUTION_SOURCE: &str = "203.0.113.7";

fn fixture(kind: &str, name: &str) -> Vec<u8> {
    std::fs::read(
        workspace_root()
            .join("tests/fixtures")
            .join(kind)
            .join(name),
    )
    .expect("fixture")
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_slice(
        &std::fs::read(workspace_root().join("schemas/inbound-event.schema.json")).unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).expect("schema compiles")
}

struct Ingress {
    stack: Stack,
    app: App,
    queue_url: String,
}

struct Reply {
    status: StatusCode,
    text: String,
    json: Value,
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

async fn ingress() -> Ingress {
    let stack = Stack::new().await;
    let store = DynamoTenantStore::new(stack.dynamodb.clone(), stack.tenants_table());
    let sealer = KmsSealer::new(stack.kms.clone(), stack.kms_key_id());
    let queue_url = stack.env()["INBOUND_QUEUE_URL"].clone();
    let app = App {
        cache: Arc::new(ConfigCache::new(
            Arc::new(store),
            Arc::new(sealer),
            CacheSettings::with_ttl(Duration::from_secs(60)),
        )),
        sink: Arc::new(SqsSink::new(stack.sqs.clone(), queue_url.clone())),
        limiter: RateLimiter::default(),
        receipts: Arc::new(DynamoDeliveryStore::new(
            stack.dynamodb.clone(),
            stack.env()["MESSAGES_TABLE"].clone(),
            "",
            Duration::from_secs(0),
        )),
        replay_window: Duration::from_secs(300),
        event_seen: None,
    };
    Ingress {
        stack,
        app,
        queue_url,
    }
}

impl Ingress {
    /// A tenant `id` of `kind` (credentials and device of that kind; webhook secret
    /// `secret`; Evolution with its source allowlist).
    async fn add(&self, id: &str, kind: ProviderKind, secret: &str) {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let (credentials, device, cidrs) = match kind {
            ProviderKind::Meta => (
                Credentials::Meta {
                    token: Secret::new("token-1"),
                    app_secret: Secret::new(APP_SECRET),
                    verify_token: Secret::new(VERIFY_TOKEN),
                },
                Some("106540352242922"),
                vec![],
            ),
            ProviderKind::Evolution => (
                Credentials::ApiKey {
                    key: Secret::new("evo-key"),
                },
                Some("toko-satu"),
                vec!["203.0.113.0/24".parse().unwrap()],
            ),
            ProviderKind::Waha => (
                Credentials::ApiKey {
                    key: Secret::new("waha-key"),
                },
                Some("default"),
                vec![],
            ),
            ProviderKind::Gowa => (Credentials::None, None, vec![]),
        };
        let cfg: TenantConfig<Secret> = TenantConfig {
            tenant_id: id.parse().unwrap(),
            provider: kind,
            primary: Endpoint {
                base_url: "https://wa.example.com".into(),
                credentials,
                device_id: device.map(str::to_string),
                region: None,
                provider: None,
                webhook_source_cidrs: cidrs,
                webhook_wiring: Default::default(),
            },
            backup: None,
            webhook_secrets: vec![WebhookSecret {
                id: "s1".into(),
                secret: Secret::new(secret),
                expires_at: None,
            }],
            active_endpoint: EndpointRole::Primary,
            is_active: true,
            connection_status: ConnectionStatus::Unknown,
            failback: Default::default(),
            limits: Limits::default(),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        cfg.validate(&wagate::egress::EgressPolicy::default())
            .expect("a valid config");
        let sealer = KmsSealer::new(self.stack.kms.clone(), self.stack.kms_key_id());
        let mut sealed = Vec::new();
        for (p, s) in cfg.secret_slots() {
            sealed.push(sealer.seal(id, p, s).await.unwrap());
        }
        DynamoTenantStore::new(self.stack.dynamodb.clone(), self.stack.tenants_table())
            .create(&cfg.with_secrets(sealed).unwrap())
            .await
            .unwrap();
    }

    async fn post(&self, ev: ApiEvent) -> Reply {
        let resp = webhook_ingress::handle_event(&self.app, ev.event()).await;
        let text = match &resp.body {
            Some(lambda_http::Body::Text(t)) => t.clone(),
            _ => String::new(),
        };
        Reply {
            status: StatusCode::from_u16(resp.status_code as u16).unwrap(),
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn queued_raw(&self) -> Vec<String> {
        drain_queue(&self.stack.sdk, &self.queue_url)
            .await
            .into_iter()
            .map(|m| m.body().unwrap().to_string())
            .collect()
    }

    async fn queued(&self) -> Vec<Value> {
        self.queued_raw()
            .await
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    }

    /// A sent delivery record of `tenant` whose provider id is `provider_id`.
    async fn sent_record(&self, tenant: &str, key: &str, provider_id: &str) {
        let expires = OffsetDateTime::now_utc().unix_timestamp() + 3600;
        aws_sdk_dynamodb::Client::new(&self.stack.sdk)
            .put_item()
            .table_name(self.stack.env()["MESSAGES_TABLE"].clone())
            .item("pk", AttributeValue::S(format!("{tenant}#{key}")))
            .item("state", AttributeValue::S("sent".into()))
            .item("attempts", AttributeValue::N("1".into()))
            .item(
                "providerKey",
                AttributeValue::S(format!("{tenant}#{provider_id}")),
            )
            .item("providerMessageId", AttributeValue::S(provider_id.into()))
            .item("expiresAt", AttributeValue::N(expires.to_string()))
            .send()
            .await
            .unwrap();
    }

    async fn record_state(&self, tenant: &str, key: &str) -> String {
        aws_sdk_dynamodb::Client::new(&self.stack.sdk)
            .get_item()
            .table_name(self.stack.env()["MESSAGES_TABLE"].clone())
            .key("pk", AttributeValue::S(format!("{tenant}#{key}")))
            .send()
            .await
            .unwrap()
            .item
            .and_then(|i| i.get("state").and_then(|s| s.as_s().ok()).cloned())
            .unwrap_or_default()
    }
}

fn post(tenant: &str, body: &[u8]) -> ApiEvent {
    ApiEvent::new("POST", &format!("/webhooks/whatsapp/{tenant}"))
        .header("content-type", "application/json")
        .raw_body(body.to_vec())
}

async fn assert_refused_nothing_queued(i: &Ingress, r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["error"], code, "{}", r.text);
    assert!(i.queued().await.is_empty(), "something was enqueued");
}

// ---------- WAHA ----------

/// A WAHA fixture with its envelope timestamp moved to now (a fresh delivery of it).
fn fresh_waha(name: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture("waha", name)).unwrap();
    v["timestamp"] = json!(now_ms());
    serde_json::to_vec(&v).unwrap()
}

fn waha_signed(tenant: &str, body: &[u8], key: &str, timestamp_ms: i64) -> ApiEvent {
    post(tenant, body)
        .header("X-Webhook-Hmac", &sign_sha512_hex(key.as_bytes(), body))
        .header("X-Webhook-Hmac-Algorithm", "sha512")
        .header("X-Webhook-Timestamp", &timestamp_ms.to_string())
        .header("X-Webhook-Request-Id", "01K3B907M4H2Q8S1V5X9Z3B6D0")
}

#[tokio::test]
async fn waha_receipt_and_reply_are_verified_normalised_and_applied() {
    let i = ingress().await;
    i.add("waha-t", ProviderKind::Waha, WAHA_KEY).await;
    let wamsg = "true_6289876543210@c.us_3EB0B430B6F8F1D0E053AC";
    i.sent_record("waha-t", "order-1", wamsg).await;
    for name in [
        "waha-message-ack-device.json",
        "waha-message-reply-incoming.json",
    ] {
        let body = fresh_waha(name);
        let r = i
            .post(waha_signed("waha-t", &body, WAHA_KEY, now_ms()))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text);
    }
    assert_eq!(i.record_state("waha-t", "order-1").await, "delivered");
    let events = i.queued().await;
    assert_eq!(events.len(), 2);
    let v = validator();
    for e in &events {
        let errs: Vec<String> = v.iter_errors(e).map(|e| e.to_string()).collect();
        assert!(errs.is_empty(), "{errs:?} in {e}");
        assert_eq!(e["provider"], "waha");
        assert_eq!(e["schemaVersion"], 2);
    }
    assert_eq!(events[0]["eventType"], "receipt");
    assert_eq!(events[0]["receipt"]["messageIds"][0], wamsg);
    assert_eq!(events[0]["receipt"]["state"], "delivered");
    assert_eq!(events[1]["eventType"], "message");
    assert_eq!(events[1]["text"], "Yes, Saturday works");
    assert_eq!(events[1]["sender"]["id"], "6289876543210@s.whatsapp.net");
    assert_eq!(events[1]["replyTo"]["messageId"], "3EB0B430B6F8F1D0E053AC");
    assert_eq!(events[1]["sessionId"], "default");
}

#[tokio::test]
async fn waha_retries_of_one_event_are_enqueued_once() {
    let i = ingress().await;
    i.add("waha-t", ProviderKind::Waha, WAHA_KEY).await;
    let body = fresh_waha("waha-message-text-incoming.json");
    for _ in 0..3 {
        let r = i
            .post(waha_signed("waha-t", &body, WAHA_KEY, now_ms()))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    assert_eq!(i.queued().await.len(), 1, "deduplicated on WAHA's event id");
}

#[tokio::test]
async fn waha_tampered_wrong_key_and_unsigned_are_401() {
    let i = ingress().await;
    i.add("waha-t", ProviderKind::Waha, WAHA_KEY).await;
    let body = fresh_waha("waha-message-text-incoming.json");
    let mut tampered = body.clone();
    let at = tampered.len() - 3;
    tampered[at] ^= 0x01;
    let sig = sign_sha512_hex(WAHA_KEY.as_bytes(), &body);
    let r = i
        .post(
            post("waha-t", &tampered)
                .header("X-Webhook-Hmac", &sig)
                .header("X-Webhook-Timestamp", &now_ms().to_string()),
        )
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_invalid").await;
    let r = i
        .post(waha_signed("waha-t", &body, "super-secret-key", now_ms()))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_invalid").await;
    let r = i.post(post("waha-t", &body)).await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_missing").await;
}

#[tokio::test]
async fn waha_replays_outside_the_window_are_401_stale() {
    let i = ingress().await;
    i.add("waha-t", ProviderKind::Waha, WAHA_KEY).await;
    // The documented sample as signed upstream: its signed body timestamp is months old;
    // a fresh header does not make it new.
    let old = fixture("waha", "waha-message-ack-device.json");
    let r = i
        .post(waha_signed("waha-t", &old, WAHA_KEY, now_ms()))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "webhook_stale").await;
    // A fresh body with an old header, or none.
    let body = fresh_waha("waha-message-ack-device.json");
    let r = i
        .post(waha_signed("waha-t", &body, WAHA_KEY, now_ms() - 301_000))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "webhook_stale").await;
    let r = i
        .post(post("waha-t", &body).header(
            "X-Webhook-Hmac",
            &sign_sha512_hex(WAHA_KEY.as_bytes(), &body),
        ))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "webhook_stale").await;
}

#[tokio::test]
async fn a_gowa_tenant_does_not_take_a_waha_signed_webhook() {
    let i = ingress().await;
    i.add("gowa-t", ProviderKind::Gowa, WAHA_KEY).await;
    let body = fresh_waha("waha-message-text-incoming.json");
    let r = i
        .post(waha_signed("gowa-t", &body, WAHA_KEY, now_ms()))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_missing").await;
}

// ---------- Evolution ----------

fn jwt(key: &str, iat: i64, exp: i64) -> String {
    sign_hs256_jwt(
        key.as_bytes(),
        &json!({"iat": iat, "exp": exp, "app": "evolution", "action": "webhook"}),
    )
}

fn evolution(tenant: &str, body: &[u8], token: Option<&str>, source: &str) -> ApiEvent {
    let mut ev = post(tenant, body).source_ip(source);
    if let Some(t) = token {
        ev = ev.header("Authorization", &format!("Bearer {t}"));
    }
    ev
}

#[tokio::test]
async fn evolution_events_are_verified_stripped_of_the_apikey_and_applied() {
    let i = ingress().await;
    i.add("evo-t", ProviderKind::Evolution, JWT_KEY).await;
    i.sent_record("evo-t", "order-7", "3EB0B430B6F8F1D0E053AC")
        .await;
    let t = OffsetDateTime::now_utc().unix_timestamp();
    let token = jwt(JWT_KEY, t, t + 600);
    for name in [
        "evolution-messages-update-read.json",
        "evolution-messages-upsert-reply.json",
    ] {
        let r = i
            .post(evolution(
                "evo-t",
                &fixture("evolution", name),
                Some(&token),
                EVOLUTION_SOURCE,
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text);
    }
    assert_eq!(i.record_state("evo-t", "order-7").await, "read");
    let raw = i.queued_raw().await;
    assert_eq!(raw.len(), 2);
    for body in &raw {
        assert!(
            !body.contains(EVOLUTION_APIKEY),
            "the instance apikey reached the queue: {body}"
        );
    }
    let events: Vec<Value> = raw
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let v = validator();
    for e in &events {
        assert!(v.is_valid(e), "{e}");
        assert!(e["raw"].get("apikey").is_none());
    }
    assert_eq!(events[0]["receipt"]["state"], "read");
    assert_eq!(
        events[0]["receipt"]["messageIds"][0],
        "3EB0B430B6F8F1D0E053AC"
    );
    assert_eq!(events[1]["eventType"], "message");
    assert_eq!(events[1]["text"], "Yes, Saturday works");
    assert_eq!(events[1]["replyTo"]["messageId"], "3EB0B430B6F8F1D0E053AC");
}

#[tokio::test]
async fn evolution_refuses_expired_wrong_key_missing_tokens_and_other_sources() {
    let i = ingress().await;
    i.add("evo-t", ProviderKind::Evolution, JWT_KEY).await;
    let body = fixture("evolution", "evolution-messages-upsert-text.json");
    // The documented sample JWT (exp 1787394330, August 2026): expired now.
    let sample = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3ODczOTM3MzAsImV4cCI6MTc4NzM5NDMzMCwiYXBwIjoiZXZvbHV0aW9uIiwiYWN0aW9uIjoid2ViaG9vayJ9.03MswolicBsKKEzAhOIWf4vRONm8SYCypXqY4O1DUbA";
    let r = i
        .post(evolution("evo-t", &body, Some(sample), EVOLUTION_SOURCE))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "token_expired").await;
    let t = OffsetDateTime::now_utc().unix_timestamp();
    let r = i
        .post(evolution(
            "evo-t",
            &body,
            Some(&jwt("another-tenants-key", t, t + 600)),
            EVOLUTION_SOURCE,
        ))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_invalid").await;
    let r = i
        .post(evolution("evo-t", &body, None, EVOLUTION_SOURCE))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_missing").await;
    // A valid token from outside the allowlist.
    let r = i
        .post(evolution(
            "evo-t",
            &body,
            Some(&jwt(JWT_KEY, t, t + 600)),
            "198.51.100.9",
        ))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::FORBIDDEN, "source_not_allowed").await;
}

// ---------- Meta ----------

/// Signatures from tests/fixtures/meta/SIGNATURES.md (app secret `meta-app-secret`).
const META_READ_SIG: &str =
    "sha256=5efba38d44a2e0995bbbec58c79328c81273e7002e6d3254a2097849df95edb9";
const META_TEXT_SIG: &str =
    "sha256=d9a99f0528d733cccc2e22a8d247b5ae03f8287a280b79c2421572794d5e72b0";

fn meta(tenant: &str, body: &[u8], sig: &str) -> ApiEvent {
    post(tenant, body).header("X-Hub-Signature-256", sig)
}

#[tokio::test]
async fn meta_samples_verify_with_the_app_secret_and_receipts_apply() {
    let i = ingress().await;
    i.add("meta-t", ProviderKind::Meta, "webhook-secret-unused")
        .await;
    let read = fixture("meta", "meta-statuses-read.json");
    let id = serde_json::from_slice::<Value>(&read).unwrap()["entry"][0]["changes"][0]["value"]
        ["statuses"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    i.sent_record("meta-t", "order-9", &id).await;
    let r = i.post(meta("meta-t", &read, META_READ_SIG)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = i
        .post(meta(
            "meta-t",
            &fixture("meta", "meta-messages-text.json"),
            META_TEXT_SIG,
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(i.record_state("meta-t", "order-9").await, "read");
    let events = i.queued().await;
    assert_eq!(events.len(), 2);
    for e in &events {
        assert!(validator().is_valid(e), "{e}");
        assert_eq!(e["provider"], "meta");
        assert_eq!(e["sessionId"], "106540352242922");
    }
    assert_eq!(events[0]["eventType"], "receipt");
    assert_eq!(events[0]["receipt"]["state"], "read");
    assert_eq!(events[1]["eventType"], "message");
    assert!(
        events[1]["providerEventId"]
            .as_str()
            .unwrap()
            .starts_with("wamid.")
    );
}

// ---------- Meta batches: one event per status and per message ----------

/// `meta-statuses-batch.json` signed with `meta-app-secret` (tests/fixtures/meta/SIGNATURES.md).
const META_STATUS_BATCH_SIG: &str =
    "sha256=66786fbb341b3647dcecb17ea11bae955968dbc17081f8370846da882862ac87";
const META_MESSAGE_BATCH_SIG: &str =
    "sha256=bc40ece4c5d361978d602663c437c176e00c31374f406d73b4b4eb74be98a5ca";

/// Each status of the batch fixture: (wamid, state), in body order.
fn batch_statuses(body: &[u8]) -> Vec<(String, String)> {
    let v: Value = serde_json::from_slice(body).unwrap();
    let mut out = Vec::new();
    for e in v["entry"].as_array().unwrap() {
        for c in e["changes"].as_array().unwrap() {
            for st in c["value"]["statuses"].as_array().unwrap() {
                out.push((
                    st["id"].as_str().unwrap().to_string(),
                    st["status"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_meta_batch_of_statuses_gives_one_receipt_per_status_each_applied_and_deduplicated_on_its_own()
 {
    let i = ingress().await;
    i.add("meta-t", ProviderKind::Meta, "webhook-secret-unused")
        .await;
    let body = fixture("meta", "meta-statuses-batch.json");
    assert_eq!(
        sign_sha256(APP_SECRET.as_bytes(), &body),
        META_STATUS_BATCH_SIG
    );
    let statuses = batch_statuses(&body);
    assert_eq!(statuses.len(), 4, "two entries, four statuses");
    for (n, (wamid, _)) in statuses.iter().enumerate() {
        i.sent_record("meta-t", &format!("order-{n}"), wamid).await;
    }

    let r = i.post(meta("meta-t", &body, META_STATUS_BATCH_SIG)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Meta's retry of the whole batch, and one of its statuses posted alone later: the same
    // events (moto_server deduplicates only against messages still queued: all before the
    // drain).
    let r = i.post(meta("meta-t", &body, META_STATUS_BATCH_SIG)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (wamid, _) = &statuses[1];
    let single = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{
        "id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "statuses": [{"id": wamid, "status": "read", "timestamp": "1787393842",
                          "recipient_id": "6289876543210"}]}}]}]}))
    .unwrap();
    let r = i
        .post(meta(
            "meta-t",
            &single,
            &sign_sha256(APP_SECRET.as_bytes(), &single),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let events = i.queued().await;
    assert_eq!(
        events.len(),
        4,
        "one event per status, each once: {events:?}"
    );
    let mut dedup = std::collections::HashSet::new();
    for (e, (wamid, state)) in events.iter().zip(&statuses) {
        assert!(validator().is_valid(e), "{e}");
        assert_eq!(e["eventType"], "receipt", "{e}");
        assert_eq!(e["providerEventId"], wamid.as_str());
        assert_eq!(e["receipt"]["messageIds"], json!([wamid]));
        assert_eq!(e["receipt"]["state"], state.as_str());
        assert_eq!(e["sessionId"], "106540352242922");
        // Each event's raw is its own status in Meta's envelope.
        let own = &e["raw"]["entry"][0]["changes"][0]["value"]["statuses"];
        assert_eq!(own.as_array().unwrap().len(), 1, "{e}");
        assert_eq!(own[0]["id"], wamid.as_str());
        assert!(dedup.insert(e["dedupKey"].as_str().unwrap().to_string()));
    }
    // Every receipt moved its own record, the failed one included.
    for (n, (_, state)) in statuses.iter().enumerate() {
        assert_eq!(
            &i.record_state("meta-t", &format!("order-{n}")).await,
            state
        );
    }
}

#[tokio::test]
async fn a_meta_batch_of_messages_gives_one_event_per_message() {
    let i = ingress().await;
    i.add("meta-t", ProviderKind::Meta, "webhook-secret-unused")
        .await;
    let body = fixture("meta", "meta-messages-batch.json");
    assert_eq!(
        sign_sha256(APP_SECRET.as_bytes(), &body),
        META_MESSAGE_BATCH_SIG
    );

    let r = i.post(meta("meta-t", &body, META_MESSAGE_BATCH_SIG)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A retry (before the drain: moto_server deduplicates against queued messages only).
    let r = i.post(meta("meta-t", &body, META_MESSAGE_BATCH_SIG)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let events = i.queued().await;
    assert_eq!(events.len(), 2, "{events:?}");
    let got: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            assert!(validator().is_valid(e), "{e}");
            assert_eq!(e["eventType"], "message");
            assert!(e["providerEventId"].as_str().unwrap().starts_with("wamid."));
            (
                e["sender"]["id"].as_str().unwrap(),
                e["sender"]["name"].as_str().unwrap(),
                e["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "16505551234@s.whatsapp.net",
                "Sheena Nelson",
                "Does it come in another color?"
            ),
            (
                "6281298765432@s.whatsapp.net",
                "Budi Santoso",
                "Jam berapa besok? \u{2014} /booking"
            ),
        ]
    );
    assert_ne!(events[0]["dedupKey"], events[1]["dedupKey"]);
}

#[tokio::test]
async fn meta_tampered_and_webhook_secret_signed_bodies_are_401() {
    let i = ingress().await;
    i.add("meta-t", ProviderKind::Meta, "webhook-secret-unused")
        .await;
    let mut body = fixture("meta", "meta-statuses-read.json");
    let r = i
        .post(meta(
            "meta-t",
            &body,
            &sign_sha256(b"webhook-secret-unused", &body),
        ))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_invalid").await;
    let at = body.len() - 5;
    body[at] ^= 0x01;
    let r = i.post(meta("meta-t", &body, META_READ_SIG)).await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_invalid").await;
}

fn handshake(tenant: &str, mode: &str, token: &str, challenge: &str) -> ApiEvent {
    ApiEvent::new("GET", &format!("/webhooks/whatsapp/{tenant}")).query(&format!(
        "hub.mode={mode}&hub.verify_token={token}&hub.challenge={challenge}"
    ))
}

#[tokio::test]
async fn the_meta_handshake_answers_the_challenge_only_to_the_verify_token() {
    let i = ingress().await;
    i.add("meta-t", ProviderKind::Meta, "webhook-secret-unused")
        .await;
    i.add("gowa-t", ProviderKind::Gowa, "secret").await;
    let r = i
        .post(handshake("meta-t", "subscribe", VERIFY_TOKEN, "1158201444"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text, "1158201444");
    for (tenant, mode, token) in [
        ("meta-t", "subscribe", "wrong-token"),
        ("meta-t", "unsubscribe", VERIFY_TOKEN),
        ("gowa-t", "subscribe", VERIFY_TOKEN),
    ] {
        let r = i.post(handshake(tenant, mode, token, "42")).await;
        assert_refused_nothing_queued(&i, &r, StatusCode::FORBIDDEN, "handshake_refused").await;
        assert!(!r.text.contains("42\""), "{}", r.text);
    }
    let r = i
        .post(handshake("nobody", "subscribe", VERIFY_TOKEN, "42"))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::NOT_FOUND, "unknown_tenant").await;
}
