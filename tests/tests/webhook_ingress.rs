//! webhook-ingress: the handler called in-process with real API Gateway v2 events, against
//! moto_server (DynamoDB, KMS, SQS). Every refusal asserts its exact status and that the
//! inbound queue stayed empty; every accepted event is validated against the checked-in
//! JSON Schema.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use time::OffsetDateTime;
use wagate::Secret;
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::inbound::signature::sign_sha256;
use wagate::secrets::{KmsSealer, SecretSealer};
use wagate::tenant::cache::ConfigCache;
use wagate::tenant::dynamo::DynamoTenantStore;
use wagate::tenant::store::TenantConfigStore;
use wagate::tenant::*;
use wagate_tests::{ApiEvent, LogCapture, Stack, drain_queue, workspace_root};
use webhook_ingress::{App, EVENT_SEEN_WRITE_INTERVAL, EventSeen, RateLimiter, SqsSink};

/// Expected signatures from ../shared/contracts/README.md (copied with the samples).
const SAMPLES: &[(&str, &str, &str)] = &[
    (
        "gowa-message-text-incoming.json",
        "sha256=b0c547901276dfbe584429d7cf24222c14d564e9039bf7fcba9181ef84db1721",
        "sha256=ba2ba4869e4f36acd3d5192596ed16a867f507f255ec74ee258644c2b8133850",
    ),
    (
        "gowa-message-image-group-with-caption.json",
        "sha256=ab11e42f41d2d8117f3944985eb84a42fbb97915700320182cedf1db3c85b45c",
        "sha256=f6e2502274644be2e0389a9245a067fd34086d75d4956e9fda046128ba5f1d3a",
    ),
    (
        "gowa-message-ack-delivered.json",
        "sha256=e0117c2f171cc9af15af54093ef5bea0b84b3fe42d3705b674daf0f9cfc2a714",
        "sha256=8d7b51cd3773c472f5aaf5f3212e9d1ea7fff30ea9c3ee000b5a5e70eacfcadc",
    ),
    (
        "gowa-group-participants-join.json",
        "sha256=43327c5f15b34ad3b8952b2998991401925dba1e6e14262beefb1ee375c3702c",
        "sha256=dcf27eddd6fe8b2cb014708fdf6f8fb14bc6b8b4588ce54ee21c6fbfbc73b84f",
    ),
];

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(workspace_root().join("tests/fixtures/gowa").join(name)).expect("fixture")
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
    store: DynamoTenantStore,
    sealer: KmsSealer,
    queue_url: String,
}

struct Reply {
    status: StatusCode,
    json: Value,
    retry_after: Option<String>,
}

struct TenantSpec<'a> {
    id: &'a str,
    secrets: Vec<(&'a str, &'a str, Option<OffsetDateTime>)>,
    active: bool,
    cidrs: Vec<&'a str>,
    inbound_per_second: u32,
    /// The primary's basic-auth password, if any (the ingress must never open it).
    server_password: Option<&'a str>,
}

impl<'a> TenantSpec<'a> {
    fn new(id: &'a str, secret: &'a str) -> Self {
        TenantSpec {
            id,
            secrets: vec![("s1", secret, None)],
            active: true,
            cidrs: Vec::new(),
            inbound_per_second: 50,
            server_password: None,
        }
    }
}

async fn ingress() -> Ingress {
    let stack = Stack::new().await;
    let store = DynamoTenantStore::new(stack.dynamodb.clone(), stack.tenants_table());
    let sealer = KmsSealer::new(stack.kms.clone(), stack.kms_key_id());
    let queue_url = stack.env()["INBOUND_QUEUE_URL"].clone();
    let app = App {
        cache: Arc::new(ConfigCache::new(
            Arc::new(store.clone()),
            Arc::new(sealer.clone()),
            webhook_ingress::cache_settings(Duration::from_secs(60)),
        )),
        sink: Arc::new(SqsSink::new(stack.sqs.clone(), queue_url.clone())),
        limiter: RateLimiter::default(),
        receipts: Arc::new(DynamoDeliveryStore::new(
            stack.dynamodb.clone(),
            stack.env()["MESSAGES_TABLE"].clone(),
            "",
            Duration::from_secs(0),
        )),
        replay_window: wagate::inbound::verify::DEFAULT_REPLAY_WINDOW,
        // As deployed: `lastEventAt` noted at most once per tenant per minute.
        event_seen: Some(Arc::new(EventSeen::new(
            Arc::new(store.clone()),
            EVENT_SEEN_WRITE_INTERVAL,
        ))),
    };
    Ingress {
        stack,
        app,
        store,
        sealer,
        queue_url,
    }
}

impl Ingress {
    async fn add_tenant(&self, spec: TenantSpec<'_>) {
        let cfg = self.sealed(spec, 1).await;
        self.store.create(&cfg).await.unwrap();
    }

    /// Writes `spec` over the stored config (version `version`, conditional on the one
    /// before), as the config API does on a rotation.
    async fn replace_tenant(&self, spec: TenantSpec<'_>, version: u64) {
        let cfg = self.sealed(spec, version).await;
        self.store.update(&cfg, version - 1).await.unwrap();
    }

    async fn sealed(&self, spec: TenantSpec<'_>, version: u64) -> wagate::tenant::SealedConfig {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let cfg: TenantConfig<Secret> = TenantConfig {
            tenant_id: spec.id.parse().unwrap(),
            provider: ProviderKind::Gowa,
            primary: Endpoint {
                base_url: "https://wa.example.com".into(),
                credentials: match spec.server_password {
                    Some(p) => Credentials::Basic {
                        username: "admin".into(),
                        password: Secret::new(p),
                    },
                    None => Credentials::None,
                },
                device_id: None,
                region: None,
                provider: None,
                webhook_source_cidrs: spec.cidrs.iter().map(|c| c.parse().unwrap()).collect(),
                webhook_wiring: Default::default(),
            },
            backup: None,
            webhook_secrets: spec
                .secrets
                .iter()
                .map(|(id, s, exp)| WebhookSecret {
                    id: id.to_string(),
                    secret: Secret::new(*s),
                    expires_at: *exp,
                })
                .collect(),
            active_endpoint: EndpointRole::Primary,
            is_active: spec.active,
            connection_status: ConnectionStatus::Unknown,
            failback: Default::default(),
            limits: Limits {
                inbound_per_second: spec.inbound_per_second,
                ..Limits::default()
            },
            version,
            created_at: now,
            updated_at: now,
        };
        let mut sealed = Vec::new();
        for (p, s) in cfg.secret_slots() {
            sealed.push(self.sealer.seal(spec.id, p, s).await.unwrap());
        }
        cfg.with_secrets(sealed).unwrap()
    }

    /// Through the Lambda entry point: the raw v2 event in, the v2 response out.
    async fn post(&self, ev: ApiEvent) -> Reply {
        let resp = webhook_ingress::handle_event(&self.app, ev.event()).await;
        let text = match &resp.body {
            Some(lambda_http::Body::Text(t)) => t.clone(),
            _ => String::new(),
        };
        Reply {
            status: StatusCode::from_u16(resp.status_code as u16).unwrap(),
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            retry_after: resp
                .headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string()),
        }
    }

    async fn queued(&self) -> Vec<Value> {
        drain_queue(&self.stack.sdk, &self.queue_url)
            .await
            .into_iter()
            .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
            .collect()
    }
}

fn webhook(tenant: &str, body: &[u8], signature: Option<&str>) -> ApiEvent {
    let mut ev = ApiEvent::new("POST", &format!("/webhooks/whatsapp/{tenant}"))
        .header("content-type", "application/json")
        .raw_body(body.to_vec());
    if let Some(s) = signature {
        ev = ev.header("X-Hub-Signature-256", s);
    }
    ev
}

async fn assert_refused_nothing_queued(i: &Ingress, r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.json);
    assert_eq!(r.json["error"], code, "{}", r.json);
    assert!(r.json["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(i.queued().await.is_empty(), "something was enqueued");
}

// ---------- the signed samples ----------

#[tokio::test]
async fn every_sample_verifies_under_both_secrets_and_lands_on_the_queue_once() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("default-secret", "secret"))
        .await;
    i.add_tenant(TenantSpec::new("custom-secret", "super-secret-key"))
        .await;
    let v = validator();
    for (name, sig_default, sig_custom) in SAMPLES {
        let body = sample(name);
        for (tenant, sig) in [
            ("default-secret", sig_default),
            ("custom-secret", sig_custom),
        ] {
            let r = i.post(webhook(tenant, &body, Some(sig))).await;
            assert_eq!(r.status, StatusCode::OK, "{name} {tenant}: {}", r.json);
        }
    }
    let events = i.queued().await;
    assert_eq!(events.len(), 8);
    for e in &events {
        let errors: Vec<String> = v.iter_errors(e).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {e}");
    }
    let of = |tenant: &str, ty: &str| {
        events
            .iter()
            .filter(|e| e["tenantId"] == tenant && e["eventType"] == ty)
            .count()
    };
    for t in ["default-secret", "custom-secret"] {
        assert_eq!(of(t, "message"), 2);
        assert_eq!(of(t, "receipt"), 1);
        assert_eq!(of(t, "group_participants"), 1);
    }
}

#[tokio::test]
async fn text_sample_is_normalised_field_by_field() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let r = i
        .post(webhook("acme", &sample(SAMPLES[0].0), Some(SAMPLES[0].1)))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let e = &i.queued().await[0];
    assert_eq!(e["eventType"], "message");
    assert_eq!(e["providerEventId"], "A1B2C3D4E5F60718293A4B5C6D7E8F90");
    assert_eq!(e["sender"]["id"], "6289876543210@s.whatsapp.net");
    assert_eq!(e["sender"]["name"], "Budi Santoso");
    assert_eq!(e["chat"]["isGroup"], false);
    assert_eq!(e["text"], "Hi, is my order #1042 shipped yet?");
    assert_eq!(e["replyTo"]["messageId"], "3EB0B430B6F8F1D0E053AC");
    assert_eq!(e["account"], "6281234567890@s.whatsapp.net");
    assert_eq!(e["sessionId"], "tenant-42");
    assert_eq!(e["occurredAt"], "2026-08-22T10:15:30Z");
    assert_eq!(
        e["raw"]["payload"]["id"],
        "A1B2C3D4E5F60718293A4B5C6D7E8F90"
    );
}

#[tokio::test]
async fn image_and_ack_samples_carry_media_and_receipt() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    for (name, sig, _) in &SAMPLES[1..3] {
        assert_eq!(
            i.post(webhook("acme", &sample(name), Some(sig)))
                .await
                .status,
            StatusCode::OK
        );
    }
    let events = i.queued().await;
    let image = events.iter().find(|e| e["eventType"] == "message").unwrap();
    assert_eq!(image["media"]["kind"], "image");
    assert_eq!(image["media"]["caption"], "Receipt for today's delivery");
    assert!(image["text"].is_null(), "caption is not repeated as text");
    assert_eq!(image["chat"]["isGroup"], true);
    let ack = events.iter().find(|e| e["eventType"] == "receipt").unwrap();
    assert_eq!(ack["receipt"]["messageIds"][0], "3EB0B430B6F8F1D0E053AC");
    assert_eq!(ack["receipt"]["state"], "delivered");
}

#[tokio::test]
async fn the_same_event_delivered_twice_reaches_the_queue_once() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let (name, sig, _) = SAMPLES[0];
    for _ in 0..3 {
        assert_eq!(
            i.post(webhook("acme", &sample(name), Some(sig)))
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(i.queued().await.len(), 1);
}

#[tokio::test]
async fn messages_are_grouped_by_tenant_and_deduplicated_by_event() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let (name, sig, _) = SAMPLES[0];
    i.post(webhook("acme", &sample(name), Some(sig))).await;
    let msgs = drain_queue(&i.stack.sdk, &i.queue_url).await;
    let attrs = msgs[0].attributes().unwrap();
    assert_eq!(
        attrs[&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId],
        "acme"
    );
    let dedup = &attrs[&aws_sdk_sqs::types::MessageSystemAttributeName::MessageDeduplicationId];
    assert_eq!(dedup.len(), 64);
    assert_eq!(
        msgs[0].message_attributes().unwrap()["eventType"].string_value(),
        Some("message")
    );
}

// ---------- signatures refused ----------

#[tokio::test]
async fn a_tampered_byte_is_401_and_nothing_queued() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let (name, sig, _) = SAMPLES[0];
    let mut body = sample(name);
    let at = body.iter().position(|b| *b == b'#').unwrap();
    body[at] = b'$';
    let r = i.post(webhook("acme", &body, Some(sig))).await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_invalid").await;
}

#[tokio::test]
async fn another_tenants_secret_is_401() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    i.add_tenant(TenantSpec::new("other", "super-secret-key"))
        .await;
    let (name, _, sig_other) = SAMPLES[0];
    let r = i
        .post(webhook("acme", &sample(name), Some(sig_other)))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_invalid").await;
}

#[tokio::test]
async fn missing_signature_header_is_401() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let r = i.post(webhook("acme", &sample(SAMPLES[0].0), None)).await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_missing").await;
}

#[tokio::test]
async fn wrong_prefix_is_401() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let (name, sig, _) = SAMPLES[0];
    let wrong = sig.replace("sha256=", "sha1=");
    let r = i.post(webhook("acme", &sample(name), Some(&wrong))).await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_invalid").await;
}

#[tokio::test]
async fn uppercase_hex_is_the_same_signature_and_accepted() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let (name, sig, _) = SAMPLES[0];
    let upper = format!("sha256={}", sig["sha256=".len()..].to_uppercase());
    let r = i.post(webhook("acme", &sample(name), Some(&upper))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(i.queued().await.len(), 1);
}

#[tokio::test]
async fn empty_body_unsigned_is_401_and_signed_is_400() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let r = i
        .post(webhook("acme", b"", Some(&sign_sha256(b"other", b""))))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_invalid").await;
    let r = i
        .post(webhook("acme", b"", Some(&sign_sha256(b"secret", b""))))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::BAD_REQUEST, "invalid_json").await;
}

#[tokio::test]
async fn non_utf8_body_is_verified_over_its_bytes_then_400() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let body: &[u8] = &[0xff, 0xfe, b'{', 0x80, b'}'];
    let r = i
        .post(webhook("acme", body, Some(&sign_sha256(b"wrong", body))).base64_encoded())
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_invalid").await;
    let r = i
        .post(webhook("acme", body, Some(&sign_sha256(b"secret", body))).base64_encoded())
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::BAD_REQUEST, "invalid_json").await;
}

#[tokio::test]
async fn base64_encoded_bodies_verify_over_the_decoded_bytes() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let (name, sig, _) = SAMPLES[3];
    let r = i
        .post(webhook("acme", &sample(name), Some(sig)).base64_encoded())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(i.queued().await[0]["eventType"], "group_participants");
}

#[tokio::test]
async fn body_flagged_base64_that_is_not_base64_is_400_and_nothing_is_enqueued() {
    // lambda_http's own conversion panics on this event (an invocation error, a 5xx at API
    // Gateway); the entry point decodes the body itself.
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    for junk in [
        "!!! not base64 !!!",
        "e30",
        "e30=e30=",
        "{\"event\":\"message\"}",
    ] {
        let ev = ApiEvent::new("POST", "/webhooks/whatsapp/acme")
            .header("content-type", "application/json")
            .header(
                "X-Hub-Signature-256",
                &sign_sha256(b"secret", junk.as_bytes()),
            )
            .base64_body_verbatim(junk);
        let r = i.post(ev).await;
        assert_refused_nothing_queued(&i, &r, StatusCode::BAD_REQUEST, "invalid_body_encoding")
            .await;
    }
    // The same check never hides the route: an unknown path is still 404.
    let r = i
        .post(ApiEvent::new("POST", "/elsewhere").base64_body_verbatim("%%%"))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::NOT_FOUND, "no_route").await;
}

#[tokio::test]
async fn signed_message_envelope_without_payload_is_passed_on_as_other_never_as_an_empty_message() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let v = validator();
    let bodies: [&[u8]; 4] = [
        br#"{"device_id":"6281234567890@s.whatsapp.net","event":"message"}"#,
        br#"{"device_id":"6281234567890@s.whatsapp.net","event":"message","payload":null}"#,
        br#"{"event":"message","payload":{"body":"no id, no sender, no chat"}}"#,
        br#"{"event":"message","payload":{"id":"3EB0X","chat_id":"6289876543210@s.whatsapp.net"}}"#,
    ];
    for body in bodies {
        let r = i
            .post(webhook("acme", body, Some(&sign_sha256(b"secret", body))))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    }
    let events = i.queued().await;
    assert_eq!(events.len(), bodies.len());
    for e in &events {
        assert_eq!(e["eventType"], "other", "{e}");
        assert_eq!(e["providerEvent"], "message", "{e}");
        assert!(e["text"].is_null() && e["sender"].is_null(), "{e}");
        let errors: Vec<String> = v.iter_errors(e).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {e}");
    }
    // The one with an id keeps it (and deduplicates on it).
    assert!(events.iter().any(|e| e["providerEventId"] == "3EB0X"));
    // And the schema says so: a `message` without its sender and chat is not a valid event.
    let mut as_message = events[0].clone();
    as_message["eventType"] = "message".into();
    assert!(!v.is_valid(&as_message), "{as_message}");
}

// ---------- rotation ----------

#[tokio::test]
async fn old_secret_verifies_until_its_expiry_and_not_after() {
    let i = ingress().await;
    let now = OffsetDateTime::now_utc();
    let mut live = TenantSpec::new("rotating", "new-secret-value");
    live.secrets
        .push(("old", "secret", Some(now + time::Duration::hours(1))));
    i.add_tenant(live).await;
    let mut expired = TenantSpec::new("rotated", "new-secret-value");
    expired
        .secrets
        .push(("old", "secret", Some(now - time::Duration::seconds(1))));
    i.add_tenant(expired).await;

    let (name, sig, _) = SAMPLES[0];
    let r = i.post(webhook("rotating", &sample(name), Some(sig))).await;
    assert_eq!(r.status, StatusCode::OK, "before expiry");
    let r = i.post(webhook("rotated", &sample(name), Some(sig))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "after expiry");
    let queued = i.queued().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["tenantId"], "rotating");
    // The new secret works for both.
    let body = sample(name);
    let new_sig = sign_sha256(b"new-secret-value", &body);
    assert_eq!(
        i.post(webhook("rotated", &body, Some(&new_sig)))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_secret_added_after_the_config_was_cached_is_accepted_at_once() {
    // Issue 15: a rotation (or a device re-wired with a new secret) is written by the config
    // API; a warm ingress instance still holds the config without it. The server signs its
    // next event with the new secret: accepted, not refused until the cache expires.
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let (name, sig, _) = SAMPLES[0];
    assert_eq!(
        i.post(webhook("acme", &sample(name), Some(sig)))
            .await
            .status,
        StatusCode::OK,
        "cached"
    );
    let mut rotated = TenantSpec::new("acme", "secret");
    rotated
        .secrets
        .push(("wired-primary-1", "the-new-wired-secret", None));
    i.replace_tenant(rotated, 2).await;
    // Older than the re-read interval, so the instance may read the config again.
    tokio::time::sleep(webhook_ingress::SECRET_REFRESH_MIN_AGE + Duration::from_millis(200)).await;

    let body = br#"{"event":"message","payload":{"id":"after-rotation-1","body":"hi"}}"#;
    let new_sig = sign_sha256(b"the-new-wired-secret", body);
    i.stack.counter.reset();
    let r = i.post(webhook("acme", body, Some(&new_sig))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        i.stack.counter.count_op("DynamoDB", "GetItem"),
        1,
        "read once"
    );
    assert_eq!(i.queued().await.len(), 2);

    // A bad signature right after that re-read reads nothing (at most one re-read per
    // interval per tenant), and is refused with nothing queued.
    i.stack.counter.reset();
    let junk = sign_sha256(b"not-a-secret-of-acme", body);
    let r = i.post(webhook("acme", body, Some(&junk))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["error"], "signature_invalid");
    assert_eq!(
        i.stack.counter.count("DynamoDB"),
        0,
        "{:?}",
        i.stack.counter.calls()
    );
    assert_eq!(i.stack.counter.count("KMS"), 0);
    assert_eq!(i.queued().await.len(), 0, "nothing more queued");
}

// ---------- tenant, source, size, rate, queue ----------

#[tokio::test]
async fn unknown_tenant_is_404() {
    let i = ingress().await;
    let (name, sig, _) = SAMPLES[0];
    let r = i.post(webhook("nobody", &sample(name), Some(sig))).await;
    assert_refused_nothing_queued(&i, &r, StatusCode::NOT_FOUND, "unknown_tenant").await;
}

#[tokio::test]
async fn inactive_tenant_is_403() {
    let i = ingress().await;
    let mut spec = TenantSpec::new("sleepy", "secret");
    spec.active = false;
    i.add_tenant(spec).await;
    let (name, sig, _) = SAMPLES[0];
    let r = i.post(webhook("sleepy", &sample(name), Some(sig))).await;
    assert_refused_nothing_queued(&i, &r, StatusCode::FORBIDDEN, "tenant_inactive").await;
}

#[tokio::test]
async fn source_outside_the_allowlist_is_403_and_inside_is_accepted() {
    let i = ingress().await;
    let mut spec = TenantSpec::new("fenced", "secret");
    spec.cidrs = vec!["198.51.100.0/24"];
    i.add_tenant(spec).await;
    let (name, sig, _) = SAMPLES[0];
    let r = i
        .post(webhook("fenced", &sample(name), Some(sig)).source_ip("203.0.113.10"))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::FORBIDDEN, "source_not_allowed").await;
    let r = i
        .post(webhook("fenced", &sample(name), Some(sig)).source_ip("198.51.100.77"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(i.queued().await.len(), 1);
}

#[tokio::test]
async fn body_over_256_kib_is_413() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let body = format!(
        r#"{{"event":"message","payload":{{"body":"{}"}}}}"#,
        "x".repeat(257 * 1024)
    );
    let sig = sign_sha256(b"secret", body.as_bytes());
    let r = i.post(webhook("acme", body.as_bytes(), Some(&sig))).await;
    assert_refused_nothing_queued(&i, &r, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
}

// ---------- both front doors ----------

/// The HTTP API route and the function URL deliver the same request in two event shapes; the
/// ingress holds every rule for both.
#[tokio::test]
async fn every_rule_holds_through_the_function_url_as_through_the_http_api() {
    for via_url in [false, true] {
        let door = |ev: ApiEvent| if via_url { ev.via_function_url() } else { ev };
        let name = if via_url { "function URL" } else { "HTTP API" };
        let mut i = ingress().await;
        let frozen = tokio::time::Instant::now();
        i.app.limiter = RateLimiter::with_clock(move || frozen);
        let mut spec = TenantSpec::new("fenced", "secret");
        spec.cidrs = vec!["198.51.100.0/24"];
        spec.inbound_per_second = 2;
        i.add_tenant(spec).await;
        let inside = "198.51.100.77";
        let (sample_name, sig, _) = SAMPLES[0];
        let body = sample(sample_name);

        // Signature.
        let r = i
            .post(door(
                webhook("fenced", &body, Some("sha256=00")).source_ip(inside),
            ))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}");
        assert_refused_nothing_queued(&i, &r, StatusCode::UNAUTHORIZED, "signature_invalid").await;
        // Size.
        let big = format!(
            r#"{{"event":"message","payload":{{"body":"{}"}}}}"#,
            "x".repeat(257 * 1024)
        );
        let big_sig = sign_sha256(b"secret", big.as_bytes());
        let r = i
            .post(door(
                webhook("fenced", big.as_bytes(), Some(&big_sig)).source_ip(inside),
            ))
            .await;
        assert_refused_nothing_queued(&i, &r, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
            .await;
        // Allowlist, from the event's request context.
        let r = i
            .post(door(
                webhook("fenced", &body, Some(sig)).source_ip("203.0.113.10"),
            ))
            .await;
        assert_refused_nothing_queued(&i, &r, StatusCode::FORBIDDEN, "source_not_allowed").await;
        // Accepted, then the tenant's rate (2 per second, the clock stands still).
        let r = i
            .post(door(webhook("fenced", &body, Some(sig)).source_ip(inside)))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.json);
        let r = i
            .post(door(webhook("fenced", &body, Some(sig)).source_ip(inside)))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.json);
        let r = i
            .post(door(webhook("fenced", &body, Some(sig)).source_ip(inside)))
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{name}");
        assert_eq!(r.json["error"], "rate_limited");
        // The same event twice: one queue message (deduplicated), none from the refusals.
        let queued = i.queued().await;
        assert_eq!(queued.len(), 1, "{name}");
        assert_eq!(queued[0]["tenantId"], "fenced");
    }
}

#[tokio::test]
async fn the_local_stacks_webhook_events_of_both_front_doors_are_accepted() {
    use wagate_devstack::front_door::{FrontDoor, webhook_event};
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let body = String::from_utf8(sample(SAMPLES[0].0)).unwrap();
    for (k, door) in [FrontDoor::HttpApi, FrontDoor::FunctionUrl]
        .into_iter()
        .enumerate()
    {
        // `wagate-dev webhook --front-door …` invokes the function with this event.
        let body = body.replace("A1B2C3D4E5F60718293A4B5C6D7E8F90", &format!("DOOR{k}"));
        let sig = sign_sha256(b"secret", body.as_bytes());
        let ev = webhook_event(door, "acme", &body, &sig, "198.51.100.7");
        let ev = serde_json::from_value(ev).expect("a payload v2 event");
        let resp = webhook_ingress::handle_event(&i.app, ev).await;
        assert_eq!(resp.status_code, 200, "{door:?}: {:?}", resp.body);
        let ev = webhook_event(door, "acme", &body, "sha256=00", "198.51.100.7");
        let resp = webhook_ingress::handle_event(&i.app, serde_json::from_value(ev).unwrap()).await;
        assert_eq!(resp.status_code, 401, "{door:?}");
    }
    assert_eq!(i.queued().await.len(), 2);
}

#[test]
fn the_committed_function_url_sample_event_is_read_as_the_ingress_reads_it() {
    let text =
        std::fs::read_to_string(workspace_root().join("events/webhook-ingress-function-url.json"))
            .unwrap();
    let ev: lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest =
        serde_json::from_str(&text).expect("a function URL event is a payload v2 event");
    assert_eq!(ev.raw_path.as_deref(), Some("/webhooks/whatsapp/demo"));
    assert_eq!(
        ev.request_context.http.source_ip.as_deref(),
        Some("198.51.100.77")
    );
    assert!(
        ev.request_context
            .domain_name
            .as_deref()
            .is_some_and(|d| d.contains(".lambda-url."))
    );
    let body = ev.body.unwrap();
    let sig = ev.headers["x-hub-signature-256"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        sig,
        sign_sha256(b"secret", body.as_bytes()),
        "signed with `secret`"
    );
}

#[tokio::test]
async fn above_the_tenants_inbound_rate_is_429_with_retry_after() {
    let mut i = ingress().await;
    // The buckets' clock stands still: however long each webhook takes here, no token comes
    // back between them (the refill itself is the limiter's unit test, on tokio's clock).
    let frozen = tokio::time::Instant::now();
    i.app.limiter = RateLimiter::with_clock(move || frozen);
    let mut spec = TenantSpec::new("chatty", "secret");
    spec.inbound_per_second = 2;
    i.add_tenant(spec).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for n in 0..3 {
        let body = format!(r#"{{"event":"message","payload":{{"id":"m{n}","body":"hi"}}}}"#);
        let sig = sign_sha256(b"secret", body.as_bytes());
        let r = i.post(webhook("chatty", body.as_bytes(), Some(&sig))).await;
        statuses.push(r.status);
        last = Some(r);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let last = last.unwrap();
    assert_eq!(last.json["error"], "rate_limited");
    assert_eq!(last.retry_after.as_deref(), Some("1"));
    assert_eq!(
        i.queued().await.len(),
        2,
        "the refused one was not enqueued"
    );
}

#[tokio::test]
async fn unreachable_queue_is_503_so_the_sender_retries() {
    let mut i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    i.app.sink = Arc::new(SqsSink::new(
        i.stack.sqs.clone(),
        format!("{}-missing.fifo", i.queue_url.trim_end_matches(".fifo")),
    ));
    let (name, sig, _) = SAMPLES[0];
    let r = i.post(webhook("acme", &sample(name), Some(sig))).await;
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    assert_refused_nothing_queued(&i, &r, StatusCode::SERVICE_UNAVAILABLE, "queue_unavailable")
        .await;
}

#[tokio::test]
async fn wrong_method_and_path_are_refused() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let r = i
        .post(ApiEvent::new("GET", "/webhooks/whatsapp/acme"))
        .await;
    assert_refused_nothing_queued(&i, &r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
        .await;
    let r = i.post(ApiEvent::new("POST", "/webhooks/other/acme")).await;
    assert_refused_nothing_queued(&i, &r, StatusCode::NOT_FOUND, "no_route").await;
}

#[tokio::test]
async fn unknown_event_type_passes_through_as_other() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let body = br#"{"event":"call.offer","device_id":"628@s.whatsapp.net","payload":{"id":"call-1","from":"629@s.whatsapp.net"}}"#;
    let r = i
        .post(webhook("acme", body, Some(&sign_sha256(b"secret", body))))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let e = &i.queued().await[0];
    assert_eq!(e["eventType"], "other");
    assert_eq!(e["providerEvent"], "call.offer");
    assert_eq!(e["raw"]["payload"]["id"], "call-1");
    assert!(validator().is_valid(e));
}

#[tokio::test]
async fn pre_v8_flat_message_is_normalised() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let body = br#"{"chat_id":"6289876543210","from":"6289876543210@s.whatsapp.net in 6289876543210@s.whatsapp.net","message":{"id":"3EB0LEGACY","quoted_message":"","replied_id":"","text":"old server says hi"},"pushname":"Budi","sender_id":"6289876543210","timestamp":"2024-01-05T10:00:00Z"}"#;
    let r = i
        .post(webhook("acme", body, Some(&sign_sha256(b"secret", body))))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let e = &i.queued().await[0];
    assert_eq!(e["eventType"], "message");
    assert_eq!(e["text"], "old server says hi");
    assert_eq!(e["providerEventId"], "3EB0LEGACY");
    assert_eq!(e["sender"]["name"], "Budi");
    assert!(validator().is_valid(e));
}

// ---------- warm path budget ----------

#[tokio::test]
async fn warm_path_makes_no_dynamodb_or_kms_call_and_one_sqs_call() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    let (name, sig, _) = SAMPLES[0];
    // Cold: the cache loads the tenant once, and the tenant's first event of the minute is
    // noted (`lastEventAt`, one UpdateItem).
    i.stack.counter.reset();
    assert_eq!(
        i.post(webhook("acme", &sample(name), Some(sig)))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(i.stack.counter.count_op("DynamoDB", "GetItem"), 1);
    assert_eq!(i.stack.counter.count_op("DynamoDB", "UpdateItem"), 1);
    // Within the minute, the note was made: the warm webhooks below write nothing.
    for n in 0..10 {
        i.stack.counter.reset();
        let body = format!(r#"{{"event":"message","payload":{{"id":"warm-{n}","body":"hi"}}}}"#);
        let sig = sign_sha256(b"secret", body.as_bytes());
        let r = i.post(webhook("acme", body.as_bytes(), Some(&sig))).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            i.stack.counter.count("DynamoDB"),
            0,
            "{:?}",
            i.stack.counter.calls()
        );
        assert_eq!(
            i.stack.counter.count("KMS"),
            0,
            "{:?}",
            i.stack.counter.calls()
        );
        assert_eq!(i.stack.counter.count_op("SQS", "SendMessage"), 1);
        assert_eq!(i.stack.counter.total(), 1);
    }
    assert_eq!(i.queued().await.len(), 11);
}

#[tokio::test]
async fn cold_webhook_costs_one_get_one_decrypt_one_send_and_never_opens_the_server_password() {
    let i = ingress().await;
    let mut spec = TenantSpec::new("acme", "secret");
    spec.server_password = Some("server-password-never-opened");
    i.add_tenant(spec).await;
    let (name, sig, _) = SAMPLES[0];
    i.stack.counter.reset();

    let r = i.post(webhook("acme", &sample(name), Some(sig))).await;

    assert_eq!(r.status, StatusCode::OK);
    let c = &i.stack.counter;
    assert_eq!(c.count_op("DynamoDB", "GetItem"), 1, "{:?}", c.calls());
    assert_eq!(c.count_op("KMS", "Decrypt"), 1, "{:?}", c.calls());
    assert_eq!(c.count_op("SQS", "SendMessage"), 1, "{:?}", c.calls());
    // The tenant's first event of the minute: its `lastEventAt` (issue 15).
    assert_eq!(c.count_op("DynamoDB", "UpdateItem"), 1, "{:?}", c.calls());
    assert_eq!(c.total(), 4, "nothing else: {:?}", c.calls());
    assert_eq!(i.queued().await.len(), 1);
}

// ---------- last event seen (issue 15, "connected but silent") ----------

async fn last_event_at(i: &Ingress, tenant: &str) -> Option<String> {
    i.stack
        .dynamodb
        .get_item()
        .table_name(i.stack.tenants_table())
        .key(
            "tenantId",
            aws_sdk_dynamodb::types::AttributeValue::S(tenant.into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .and_then(|item| item.get("lastEventAt").and_then(|v| v.as_s().ok()).cloned())
}

fn warm_body(n: usize) -> (Vec<u8>, String) {
    let body = format!(r#"{{"event":"message","payload":{{"id":"seen-{n}","body":"hi"}}}}"#);
    let sig = sign_sha256(b"secret", body.as_bytes());
    (body.into_bytes(), sig)
}

#[tokio::test]
async fn many_webhooks_of_one_tenant_within_a_minute_write_its_last_event_once() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    i.add_tenant(TenantSpec::new("globex", "secret")).await;
    assert_eq!(last_event_at(&i, "acme").await, None);
    i.stack.counter.reset();

    for n in 0..20 {
        let (body, sig) = warm_body(n);
        assert_eq!(
            i.post(webhook("acme", &body, Some(&sig))).await.status,
            StatusCode::OK
        );
    }

    let c = &i.stack.counter;
    assert_eq!(c.count_op("DynamoDB", "UpdateItem"), 1, "{:?}", c.calls());
    assert_eq!(c.count_op("SQS", "SendMessage"), 20);
    let noted = last_event_at(&i, "acme")
        .await
        .expect("lastEventAt written");
    let at = OffsetDateTime::parse(&noted, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(
        (OffsetDateTime::now_utc() - at).whole_minutes() < 5,
        "{noted}"
    );
    // Another tenant's events are its own: one write for it too, none more for acme.
    i.stack.counter.reset();
    for n in 20..25 {
        let (body, sig) = warm_body(n);
        assert_eq!(
            i.post(webhook("globex", &body, Some(&sig))).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(c.count_op("DynamoDB", "UpdateItem"), 1, "{:?}", c.calls());
    assert!(last_event_at(&i, "globex").await.is_some());
    assert_eq!(last_event_at(&i, "acme").await, Some(noted));
}

// "Written again once the interval has passed" is a unit test of `EventSeen` on tokio's paused
// clock (functions/webhook-ingress/src/activity.rs): here, with a 200 ms interval against
// moto_server, two webhooks more than 200 ms apart on a loaded machine wrote twice.

#[tokio::test]
async fn a_refused_webhook_notes_no_event() {
    let i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    i.stack.counter.reset();
    let (body, _) = warm_body(1);
    let r = i
        .post(webhook("acme", &body, Some(&sign_sha256(b"wrong", &body))))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(i.stack.counter.count_op("DynamoDB", "UpdateItem"), 0);
    assert_eq!(last_event_at(&i, "acme").await, None);
    assert!(i.queued().await.is_empty());
}

// ---------- log budget ----------

#[tokio::test]
async fn accepted_webhooks_log_under_a_tenth_of_a_kb_each_and_every_refusal_is_logged() {
    let i = ingress().await;
    // A bucket far above the 200 webhooks below, however fast they go (no 429 here).
    let mut spec = TenantSpec::new("acme", "secret");
    spec.inbound_per_second = Limits::MAX_INBOUND_PER_SECOND;
    i.add_tenant(spec).await;
    // The functions' own subscriber at their default level.
    let logs = LogCapture::production("info");

    let n = 200;
    // GOWA's incoming text sample, each with its own message id.
    let sample = String::from_utf8(sample(SAMPLES[0].0)).unwrap();
    for k in 0..n {
        let body = sample.replace(
            "A1B2C3D4E5F60718293A4B5C6D7E8F90",
            &format!("BUDGET{k:026}"),
        );
        let sig = sign_sha256(b"secret", body.as_bytes());
        let r = i.post(webhook("acme", body.as_bytes(), Some(&sig))).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let accepted_bytes = logs.len();
    let per_webhook = accepted_bytes as f64 / f64::from(n);
    eprintln!("log bytes per accepted webhook: {per_webhook:.1} ({accepted_bytes} for {n})");
    assert!(
        per_webhook <= 100.0,
        "{per_webhook} bytes per accepted webhook (budget 100): {}",
        logs.text()
    );
    assert!(
        logs.text().contains("webhook enqueued"),
        "the instance's first accepted webhook is logged"
    );
    assert_eq!(i.queued().await.len(), n as usize);

    // Every refusal still gets its line, with its code.
    let body = br#"{"event":"message","payload":{"id":"refused","body":"hi"}}"#;
    for (ev, code) in [
        (
            webhook("acme", body, Some("sha256=00")),
            "signature_invalid",
        ),
        (webhook("acme", body, None), "signature_missing"),
        (
            webhook("ghost", body, Some(&sign_sha256(b"secret", body))),
            "unknown_tenant",
        ),
    ] {
        let before = logs.text().len();
        let r = i.post(ev).await;
        assert_eq!(r.json["error"], code);
        let added = logs.text()[before..].to_string();
        assert!(
            added.contains("webhook refused") && added.contains(code),
            "{code}: {added}"
        );
    }
    assert!(i.queued().await.is_empty(), "nothing enqueued by a refusal");
}

#[tokio::test]
async fn receipt_that_cannot_be_recorded_is_503_and_nothing_queued() {
    let mut i = ingress().await;
    i.add_tenant(TenantSpec::new("acme", "secret")).await;
    i.app.receipts = Arc::new(DynamoDeliveryStore::new(
        i.stack.dynamodb.clone(),
        "no-such-table",
        "",
        Duration::from_secs(0),
    ));
    let (name, sig, _) = SAMPLES[2];
    let r = i.post(webhook("acme", &sample(name), Some(sig))).await;
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    assert_refused_nothing_queued(
        &i,
        &r,
        StatusCode::SERVICE_UNAVAILABLE,
        "receipts_unavailable",
    )
    .await;
    // Messages (not receipts) do not touch delivery records and still pass.
    let (name, sig, _) = SAMPLES[0];
    assert_eq!(
        i.post(webhook("acme", &sample(name), Some(sig)))
            .await
            .status,
        StatusCode::OK
    );
}
