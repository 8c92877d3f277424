//! config-api operations (issue 6): audit log, connection tests, rotation, switching,
//! dashboard status, delivery records, export/import. The handler runs in-process with
//! real API Gateway v2 events against moto_server (DynamoDB, KMS) and GOWA simulators over
//! HTTP. Every refusal asserts its exact status and that nothing changed.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use gowa_sim::{DeviceState, Faults, SimConfig};
use http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wagate::health::EndpointHealth;
use wagate::health::SwitchKind;
use wagate::health::dynamo::DynamoHealthStore;
use wagate::health::store::{HealthStore, SwitchAudit};
use wagate::inbound::signature::sign_sha256;
use wagate::secrets::KmsSealer;
use wagate::tenant::EndpointRole;
use wagate::tenant::cache::{ConfigCache, open_config};
use wagate::tenant::dynamo::DynamoTenantStore;
use wagate::tenant::store::TenantConfigReader;
use wagate_tests::ApiEvent;
use wagate_tests::api::{Api, PATH, Reply, api};
use wagate_tests::sim_contract::{Checked, checked};

const USER: &str = "admin";
const PASSWORD: &str = "gowa-password-5d2f81";
const WEBHOOK_SECRET: &str = "webhook-secret-a8c3e0";

async fn sim() -> Checked {
    checked(
        gowa_sim::start(SimConfig::default().basic_auth(USER, PASSWORD))
            .await
            .expect("start simulator"),
    )
}

/// A tenant that runs its own webhook forwarding (`webhookWiring: manual`): these tests are
/// about config operations, so wagate's automatic wiring (issue 15, tested in
/// `onboarding.rs`) adds no secrets, audit records or server calls to what they count.
fn body(primary: &str, backup: &str) -> Value {
    json!({
        "provider": "gowa",
        "primary": {
            "baseUrl": primary,
            "credentials": {"type": "basic", "username": USER, "password": PASSWORD},
            "deviceId": "demo",
            "region": "eu-west-1",
            "webhookWiring": "manual"
        },
        "backup": {
            "baseUrl": backup,
            "credentials": {"type": "basic", "username": USER, "password": PASSWORD},
            "deviceId": "demo",
            "region": "eu-west-1",
            "webhookWiring": "manual"
        },
        "webhookSecrets": [{"id": "s1", "secret": WEBHOOK_SECRET}],
        "isActive": true
    })
}

/// A tenant `acme` on two simulators (primary, backup).
struct World {
    api: Api,
    primary: Checked,
    backup: Checked,
}

async fn world() -> World {
    let api = api().await;
    let (primary, backup) = (sim().await, sim().await);
    let r = api
        .create(&body(&primary.base_url(), &backup.base_url()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    World {
        api,
        primary,
        backup,
    }
}

fn op(name: &str) -> String {
    format!("{PATH}/{name}")
}

impl World {
    async fn post(&self, path: &str, token: &str, body: Option<Value>) -> Reply {
        let mut ev = ApiEvent::new("POST", path).bearer(token);
        if let Some(b) = body {
            ev = ev.json(&b);
        }
        self.api.call(ev).await
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        let (p, q) = path.split_once('?').unwrap_or((path, ""));
        self.api
            .call(ApiEvent::new("GET", p).query(q).bearer(token))
            .await
    }

    async fn config(&self) -> Value {
        self.get(PATH, &self.api.admin()).await.json()
    }

    /// The raw stored items (to prove nothing changed).
    async fn raw(&self) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        self.api.stored().await
    }

    async fn audit(&self) -> Vec<Value> {
        let r = self
            .get("/tenants/acme/audit?limit=200", &self.api.admin())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json()["items"].as_array().unwrap().clone()
    }
}

fn checks(result: &Value) -> Vec<(String, String)> {
    result["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn outcome(result: &Value, name: &str) -> String {
    checks(result)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, o)| o)
        .unwrap_or_default()
}

// =====================================================================================
// Audit log
// =====================================================================================

#[tokio::test]
async fn every_change_is_audited_newest_first_with_field_names_only() {
    let w = world().await;
    let admin = w.api.admin();
    let mut b = body(&w.primary.base_url(), &w.backup.base_url());
    b["primary"]["deviceId"] = json!("dev-2");
    b.as_object_mut().unwrap().remove("webhookSecrets");
    let r = w
        .api
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&w.api.tenant("acme"))
                .header("If-Match", "\"1\"")
                .json(&b),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w.post(&op("rotate-webhook-secret"), &admin, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new_secret = r.json()["secret"].as_str().unwrap().to_string();
    let r = w
        .api
        .call(
            ApiEvent::new("DELETE", PATH)
                .bearer(&admin)
                .header("If-Match", "\"3\""),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    let items = w.audit().await;
    let actions: Vec<&str> = items
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["delete", "rotate_webhook_secret", "update", "create"]
    );
    assert_eq!(items[2]["who"], "local-tenant-acme");
    assert_eq!(items[3]["who"], "local-admin");
    // The update changed the password slot (re-sent, re-sealed) and the device.
    let fields: Vec<&str> = items[2]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(fields.contains(&"primary.deviceId"), "{fields:?}");
    assert!(
        fields.contains(&"primary.credentials.password"),
        "{fields:?}"
    );
    assert!(!fields.contains(&"webhookSecrets[0].secret"), "{fields:?}");
    assert_eq!(items[2]["versionBefore"], 1);
    assert_eq!(items[2]["versionAfter"], 2);
    let rot: Vec<&str> = items[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        rot,
        [
            "webhookSecrets[0].expiresAt",
            "webhookSecrets[1].id",
            "webhookSecrets[1].secret"
        ]
    );
    let text = serde_json::to_string(&items).unwrap();
    for secret in [PASSWORD, WEBHOOK_SECRET, new_secret.as_str(), "ciphertext"] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
    // Keys sort by time: newest first means descending `at`.
    let ats: Vec<&str> = items.iter().map(|i| i["at"].as_str().unwrap()).collect();
    let mut sorted = ats.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ats, sorted);
}

#[tokio::test]
async fn audit_log_is_paginated() {
    let w = world().await;
    for _ in 0..3 {
        let r = w
            .post(&op("rotate-webhook-secret"), &w.api.admin(), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let r = w
        .get("/tenants/acme/audit?limit=3", &w.api.tenant("acme"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 3);
    let cursor = r.json()["nextCursor"].as_str().unwrap().to_string();
    let r = w
        .get(
            &format!("/tenants/acme/audit?limit=3&cursor={cursor}"),
            &w.api.tenant("acme"),
        )
        .await;
    let rest = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["action"], "create");
}

#[tokio::test]
async fn audit_refuses_other_tenants_and_bad_paging() {
    let w = world().await;
    let r = w.get("/tenants/acme/audit", &w.api.tenant("other")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.text.contains("create"));
    let r = w.get("/tenants/acme/audit?limit=0", &w.api.admin()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = w
        .get("/tenants/acme/audit?cursor=%25%25", &w.api.admin())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_body");
    let r = w
        .api
        .call(ApiEvent::new("POST", "/tenants/acme/audit").bearer(&w.api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(w.audit().await.len(), 1);
}

#[tokio::test]
async fn a_refused_change_writes_no_audit_record() {
    let w = world().await;
    let r = w
        .api
        .call(
            ApiEvent::new("PUT", PATH)
                .bearer(&w.api.admin())
                .header("If-Match", "\"7\"")
                .json(&body(&w.primary.base_url(), &w.backup.base_url())),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = w
        .api
        .create(&body("http://10.0.0.1", "http://10.0.0.2"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let items = w.audit().await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["action"], "create");
}

#[tokio::test]
async fn health_check_failover_records_show_in_the_audit_log() {
    let w = world().await;
    let env = w.api.stack.env();
    let hs = DynamoHealthStore::new(
        w.api.stack.dynamodb.clone(),
        env["TENANTS_TABLE"].clone(),
        env["ENDPOINTS_TABLE"].clone(),
        env["AUDIT_TABLE"].clone(),
    );
    hs.put_audit(&SwitchAudit {
        tenant_id: "acme".into(),
        at: "2999-01-01T00:00:00Z#abc".into(),
        who: "health-check".into(),
        action: SwitchKind::Failover,
        from: EndpointRole::Primary,
        to: EndpointRole::Backup,
        from_endpoint: w.primary.base_url(),
        to_endpoint: w.backup.base_url(),
        reason: "primary endpoint unusable for 3 consecutive runs".into(),
        version_before: 1,
        version_after: 2,
    })
    .await
    .unwrap();
    let items = w.audit().await;
    assert_eq!(items[0]["action"], "failover");
    assert_eq!(items[0]["who"], "health-check");
    assert_eq!(items[0]["toEndpoint"], w.backup.base_url());
    assert_eq!(items[1]["action"], "create");
}

// =====================================================================================
// Connection tests
// =====================================================================================

#[tokio::test]
async fn saved_config_passes_every_check_on_both_endpoints() {
    let w = world().await;
    let r = w.post(&op("test"), &w.api.tenant("acme"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["role"], "primary");
    assert_eq!(results[1]["role"], "backup");
    for res in results {
        assert_eq!(
            checks(res),
            [
                ("reachable".into(), "pass".into()),
                ("credentials".into(), "pass".into()),
                ("device".into(), "pass".into()),
                ("latency".into(), "pass".into())
            ]
        );
        // Milliseconds to the microsecond: a loopback answer is a fraction of one.
        assert!(
            res["checks"][0]["latencyMs"]
                .as_f64()
                .is_some_and(|ms| ms >= 0.0)
        );
    }
    assert!(!r.text.contains(PASSWORD));
    // The simulator saw the authenticated status call with the device header.
    let seen = w.primary.requests_to("/app/status");
    assert_eq!(seen.len(), 1);
}

fn candidate(base: &str, password: &str) -> Value {
    json!({"candidate": {
        "baseUrl": base,
        "credentials": {"type": "basic", "username": USER, "password": password},
        "deviceId": "demo"
    }})
}

#[tokio::test]
async fn candidate_that_is_unreachable_fails_reachability_and_skips_the_rest() {
    let w = world().await;
    let down = sim().await;
    let url = down.base_url();
    down.shutdown().await;
    let before = w.raw().await;
    let r = w
        .post(&op("test"), &w.api.admin(), Some(candidate(&url, PASSWORD)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let res = &r.json()["results"][0];
    assert_eq!(r.json()["ok"], false);
    assert_eq!(res["role"], "candidate");
    assert_eq!(
        checks(res),
        [
            ("reachable".into(), "fail".into()),
            ("credentials".into(), "skipped".into()),
            ("device".into(), "skipped".into()),
            ("latency".into(), "skipped".into())
        ]
    );
    assert!(
        res["checks"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{res}"
    );
    assert_eq!(w.raw().await, before, "a test changed the config");
}

#[tokio::test]
async fn candidate_with_a_wrong_password_fails_the_credentials_check() {
    let w = world().await;
    let r = w
        .post(
            &op("test"),
            &w.api.admin(),
            Some(candidate(&w.backup.base_url(), "wrong-password-123")),
        )
        .await;
    let res = &r.json()["results"][0];
    assert_eq!(outcome(res, "reachable"), "pass", "{res}");
    assert_eq!(outcome(res, "credentials"), "fail", "{res}");
    assert_eq!(outcome(res, "device"), "skipped", "{res}");
    assert!(!r.text.contains("wrong-password-123"));
}

#[tokio::test]
async fn candidate_whose_device_is_logged_out_fails_the_device_check() {
    let w = world().await;
    assert!(w.backup.set_device_state("demo", DeviceState::Connected));
    let r = w
        .post(
            &op("test"),
            &w.api.admin(),
            Some(candidate(&w.backup.base_url(), PASSWORD)),
        )
        .await;
    let res = &r.json()["results"][0];
    assert_eq!(outcome(res, "credentials"), "pass", "{res}");
    assert_eq!(outcome(res, "device"), "fail", "{res}");
    assert_eq!(res["ok"], false);
}

#[tokio::test]
async fn slow_candidate_fails_the_latency_check() {
    let w = world().await;
    w.backup.set_faults(Faults {
        latency_ms: 2200,
        ..Faults::default()
    });
    let r = w
        .post(
            &op("test"),
            &w.api.admin(),
            Some(candidate(&w.backup.base_url(), PASSWORD)),
        )
        .await;
    let res = &r.json()["results"][0];
    assert_eq!(outcome(res, "reachable"), "pass", "{res}");
    assert_eq!(outcome(res, "latency"), "fail", "{res}");
    // The simulator waited 2200 ms before answering: a floor, whatever the machine.
    assert!(res["checks"][3]["latencyMs"].as_f64().unwrap() >= 2200.0);
}

#[tokio::test]
async fn candidate_may_reuse_saved_credentials_of_the_same_server() {
    let w = world().await;
    let r = w
        .post(
            &op("test"),
            &w.api.admin(),
            Some(json!({"candidate": {"baseUrl": w.backup.base_url(), "deviceId": "demo"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["ok"], true, "{}", r.text);
}

#[tokio::test]
async fn candidate_ssrf_target_or_bad_body_is_400_and_nothing_is_called() {
    let w = world().await;
    let before = w.raw().await;
    for (b, status, code) in [
        (
            candidate("http://169.254.169.254", PASSWORD),
            StatusCode::BAD_REQUEST,
            "invalid_config",
        ),
        (
            candidate("not a url", PASSWORD),
            StatusCode::BAD_REQUEST,
            "invalid_config",
        ),
        // No password given and none saved for that server: the stored config decides.
        (
            json!({"candidate": {"baseUrl": "https://new.example.com", "credentials": {"type": "basic", "username": "u"}}}),
            StatusCode::CONFLICT,
            "state_conflict",
        ),
        (
            json!({"candidat": {}}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ] {
        let r = w.post(&op("test"), &w.api.admin(), Some(b)).await;
        assert_eq!(r.status, status, "{}", r.text);
        assert_eq!(r.json()["error"], code, "{}", r.text);
    }
    assert_eq!(w.raw().await, before);
    assert!(w.primary.requests().is_empty() && w.backup.requests().is_empty());
}

#[tokio::test]
async fn testing_another_tenant_is_403_and_a_missing_config_is_404() {
    let w = world().await;
    let r = w.post(&op("test"), &w.api.tenant("other"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w
        .post("/tenants/nobody/whatsapp-config/test", &w.api.admin(), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(w.primary.requests().is_empty());
}

// =====================================================================================
// Rotation
// =====================================================================================

fn password_cipher(items: &[std::collections::HashMap<String, AttributeValue>]) -> String {
    items[0]["primary"].as_m().unwrap()["credentials"]
        .as_m()
        .unwrap()["password"]
        .as_m()
        .unwrap()["ciphertext"]
        .as_s()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn rotating_a_server_credential_reseals_it_and_audits_the_field() {
    let w = world().await;
    let before = password_cipher(&w.api.stored().await);
    let new_pw = "rotated-password-0000-9f3e";
    let r = w
        .post(
            &op("rotate-credential"),
            &w.api.tenant("acme"),
            Some(json!({"role": "primary", "credentials": {"type": "basic", "username": USER, "password": new_pw}, "version": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["version"], 2);
    assert_eq!(
        r.json()["primary"]["credentials"]["fingerprint"],
        "****9f3e"
    );
    assert!(!r.text.contains(new_pw));
    let items = w.api.stored().await;
    assert_ne!(password_cipher(&items), before);
    assert!(!format!("{items:?}").contains(new_pw));
    let audit = w.audit().await;
    assert_eq!(audit[0]["action"], "rotate_credential");
    assert_eq!(audit[0]["fields"], json!(["primary.credentials.password"]));
    // The sealed value opens to the new password (the sender would use it).
    let store = DynamoTenantStore::new(w.api.stack.dynamodb.clone(), w.api.stack.tenants_table());
    let sealer = KmsSealer::new(w.api.stack.kms.clone(), w.api.stack.kms_key_id());
    let cfg = store.get(&"acme".parse().unwrap()).await.unwrap().unwrap();
    let opened = open_config(&sealer, cfg).await.unwrap();
    assert_eq!(
        opened.primary.credentials.secret().unwrap().expose(),
        new_pw
    );
}

#[tokio::test]
async fn credential_rotation_refusals_change_nothing() {
    let w = world().await;
    let before = w.raw().await;
    let cases = [
        // No secret given: a rotation needs the new one.
        (
            json!({"credentials": {"type": "basic", "username": USER}}),
            StatusCode::BAD_REQUEST,
            "invalid_config",
        ),
        (
            json!({"credentials": {"type": "basic", "username": USER, "password": "x"}, "version": 9}),
            StatusCode::CONFLICT,
            "version_conflict",
        ),
        (
            json!({"credentials": {"type": "telepathy"}}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ];
    for (b, status, code) in cases {
        let r = w
            .post(&op("rotate-credential"), &w.api.admin(), Some(b))
            .await;
        assert_eq!(r.status, status, "{}", r.text);
        assert_eq!(r.json()["error"], code, "{}", r.text);
    }
    let r = w
        .post(
            &op("rotate-credential"),
            &w.api.tenant("other"),
            Some(json!({"credentials": {"type": "none"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(w.raw().await, before);
    assert_eq!(w.audit().await.len(), 1);
}

fn webhook_event(secret: &str, tenant: &str) -> (ApiEvent, Vec<u8>) {
    let body =
        br#"{"event":"message","payload":{"id":"m1","from":"6281@s.whatsapp.net","body":"hi"}}"#
            .to_vec();
    let sig = sign_sha256(secret.as_bytes(), &body);
    (
        ApiEvent::new("POST", &format!("/webhooks/whatsapp/{tenant}"))
            .header("x-hub-signature-256", &sig)
            .raw_body(body.clone()),
        body,
    )
}

fn ingress(api: &Api) -> webhook_ingress::App {
    let stack = &api.stack;
    webhook_ingress::App {
        cache: Arc::new(ConfigCache::new(
            Arc::new(DynamoTenantStore::new(
                stack.dynamodb.clone(),
                stack.tenants_table(),
            )),
            Arc::new(KmsSealer::new(stack.kms.clone(), stack.kms_key_id())),
            webhook_ingress::cache_settings(Duration::from_secs(60)),
        )),
        sink: Arc::new(webhook_ingress::SqsSink::new(
            stack.sqs.clone(),
            stack.env()["INBOUND_QUEUE_URL"].clone(),
        )),
        limiter: webhook_ingress::RateLimiter::default(),
        receipts: Arc::new(wagate::delivery::dynamo::DynamoDeliveryStore::new(
            stack.dynamodb.clone(),
            stack.env()["MESSAGES_TABLE"].clone(),
            "",
            Duration::ZERO,
        )),
        replay_window: wagate::inbound::verify::DEFAULT_REPLAY_WINDOW,
        event_seen: None,
    }
}

#[tokio::test]
async fn rotated_webhook_secret_is_shown_once_and_the_old_one_verifies_until_the_grace_ends() {
    let w = world().await;
    let r = w
        .post(
            &op("rotate-webhook-secret"),
            &w.api.tenant("acme"),
            Some(json!({"graceSeconds": 3600, "id": "s2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    let new = v["secret"].as_str().unwrap().to_string();
    assert_eq!(new.len(), 64);
    assert!(new.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(v["id"], "s2");
    let expires = OffsetDateTime::parse(
        v["previousExpireAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::seconds(3500) && left <= time::Duration::seconds(3600),
        "{left}"
    );
    assert_eq!(v["config"]["webhookSecrets"][0]["id"], "s1");
    assert_eq!(v["config"]["webhookSecrets"][1]["id"], "s2");
    // Never shown again.
    let cfg = w.config().await;
    assert!(!cfg.to_string().contains(&new));
    assert!(!format!("{:?}", w.api.stored().await).contains(&new));

    // The ingress, over the stored config: both secrets verify now.
    let app = ingress(&w.api);
    for secret in [WEBHOOK_SECRET, new.as_str()] {
        let (ev, _) = webhook_event(secret, "acme");
        let resp = webhook_ingress::handle(&app, ev.request()).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "secret rejected in the grace"
        );
    }
    // After the grace the old one is refused and the new one still verifies.
    let opened = app
        .cache
        .get(&"acme".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let (_, raw) = webhook_event(WEBHOOK_SECRET, "acme");
    let after = expires + time::Duration::seconds(1);
    let before_end = expires - time::Duration::seconds(1);
    let old_sig = sign_sha256(WEBHOOK_SECRET.as_bytes(), &raw);
    let new_sig = sign_sha256(new.as_bytes(), &raw);
    assert!(webhook_ingress::accept(&opened, Some(&old_sig), &raw, None, before_end).is_ok());
    let err = webhook_ingress::accept(&opened, Some(&old_sig), &raw, None, after).unwrap_err();
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    let ok = webhook_ingress::accept(&opened, Some(&new_sig), &raw, None, after).unwrap();
    assert_eq!(ok.secret_id, "s2");
}

#[tokio::test]
async fn rotation_with_a_past_expiry_stops_the_old_secret_at_once() {
    let w = world().await;
    let r = w
        .post(
            &op("rotate-webhook-secret"),
            &w.api.admin(),
            Some(json!({"oldExpiresAt": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new = r.json()["secret"].as_str().unwrap().to_string();
    // A fresh ingress instance (cold cache) reads the rotated config.
    let app = ingress(&w.api);
    let (ev, _) = webhook_event(WEBHOOK_SECRET, "acme");
    let resp = webhook_ingress::handle(&app, ev.request()).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (ev, _) = webhook_event(&new, "acme");
    let resp = webhook_ingress::handle(&app, ev.request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // A second rotation drops the expired secret.
    let r = w
        .post(&op("rotate-webhook-secret"), &w.api.admin(), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json()["config"]["webhookSecrets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn webhook_rotation_refusals_change_nothing() {
    let w = world().await;
    let before = w.raw().await;
    for (b, status, code) in [
        (
            json!({"graceSeconds": 99_999_999u64}),
            StatusCode::BAD_REQUEST,
            "invalid_config",
        ),
        (
            json!({"graceSeconds": 10, "oldExpiresAt": "2030-01-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "invalid_config",
        ),
        (json!({"id": "s1"}), StatusCode::CONFLICT, "state_conflict"),
        (
            json!({"id": "bad id!"}),
            StatusCode::BAD_REQUEST,
            "invalid_config",
        ),
        (
            json!({"graceSeconds": -1}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"version": 5}),
            StatusCode::CONFLICT,
            "version_conflict",
        ),
    ] {
        let r = w
            .post(&op("rotate-webhook-secret"), &w.api.admin(), Some(b))
            .await;
        assert_eq!(r.status, status, "{}", r.text);
        assert_eq!(r.json()["error"], code, "{}", r.text);
        assert!(r.json().get("secret").is_none());
    }
    let r = w
        .post(&op("rotate-webhook-secret"), &w.api.tenant("other"), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(w.raw().await, before);
    assert_eq!(w.api.stack.counter.count_op("KMS", "Encrypt"), 3);
}

// =====================================================================================
// Switching
// =====================================================================================

#[tokio::test]
async fn activating_the_backup_after_it_passes_the_test() {
    let w = world().await;
    let r = w
        .post(
            &op("switch"),
            &w.api.tenant("acme"),
            Some(json!({"action": "activate", "to": "backup", "version": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["activeEndpoint"], "backup");
    assert_eq!(r.json()["version"], 2);
    assert_eq!(w.backup.requests_to("/health").len(), 1);
    let audit = w.audit().await;
    assert_eq!(audit[0]["action"], "switch");
    assert_eq!(audit[0]["fields"], json!(["activeEndpoint"]));
    // What moved, in the attributes the health check's failovers use (the dashboard's
    // switch history shows them).
    assert_eq!(
        (&audit[0]["from"], &audit[0]["to"]),
        (&json!("primary"), &json!("backup"))
    );
    assert_eq!(audit[0]["fromEndpoint"], w.primary.base_url());
    assert_eq!(audit[0]["toEndpoint"], w.backup.base_url());
}

#[tokio::test]
async fn switching_to_a_failing_endpoint_is_422_and_changes_nothing() {
    let w = world().await;
    w.backup.set_down(true).await.unwrap();
    let before = w.raw().await;
    let r = w
        .post(
            &op("switch"),
            &w.api.admin(),
            Some(json!({"action": "activate", "to": "backup", "version": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.json()["error"], "connection_test_failed");
    assert_eq!(
        outcome(&r.json()["test"]["results"][0], "reachable"),
        "fail"
    );
    assert_eq!(w.raw().await, before);
    assert_eq!(w.audit().await.len(), 1);
}

#[tokio::test]
async fn replacing_the_primary_needs_a_passing_candidate() {
    let w = world().await;
    let fresh = sim().await;
    let bad = json!({"action": "replace", "role": "primary", "version": 1, "endpoint": {
        "baseUrl": fresh.base_url(),
        "credentials": {"type": "basic", "username": USER, "password": "not-the-password"},
        "deviceId": "demo"
    }});
    let before = w.raw().await;
    let r = w.post(&op("switch"), &w.api.admin(), Some(bad)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        outcome(&r.json()["test"]["results"][0], "credentials"),
        "fail"
    );
    assert!(!r.text.contains("not-the-password"));
    assert_eq!(w.raw().await, before);

    let good = json!({"action": "replace", "role": "primary", "version": 1, "endpoint": {
        "baseUrl": fresh.base_url(),
        "credentials": {"type": "basic", "username": USER, "password": PASSWORD},
        "deviceId": "demo",
        "region": "eu-west-1"
    }});
    let r = w.post(&op("switch"), &w.api.admin(), Some(good)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["primary"]["baseUrl"], fresh.base_url());
    // The replacement is wagate's to wire (the default): its device webhook was set and read
    // back before the cut-over (version 2: its secret accepted; version 3: the switch).
    assert_eq!(r.json()["version"], 3);
    assert_eq!(r.json()["wiring"][0]["state"], "wired", "{}", r.text);
    assert_eq!(
        fresh
            .requests()
            .iter()
            .filter(|q| q.method == "PATCH" && q.path == "/devices/demo/webhook")
            .count(),
        1
    );
    let audit = w.audit().await;
    assert_eq!(audit[1]["action"], "wire_webhook");
    assert_eq!(audit[0]["action"], "replace_endpoint");
    assert_eq!(
        (&audit[0]["from"], &audit[0]["to"]),
        (&json!("primary"), &json!("primary"))
    );
    assert_eq!(audit[0]["fromEndpoint"], w.primary.base_url());
    assert_eq!(audit[0]["toEndpoint"], fresh.base_url());
    assert!(
        audit[0]["fields"]
            .as_array()
            .unwrap()
            .contains(&json!("primary.baseUrl"))
    );
}

#[tokio::test]
async fn swap_exchanges_primary_and_backup() {
    let w = world().await;
    let r = w
        .api
        .call(
            ApiEvent::new("POST", &op("switch"))
                .bearer(&w.api.admin())
                .header("If-Match", "\"1\"")
                .json(&json!({"action": "swap"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["primary"]["baseUrl"], w.backup.base_url());
    assert_eq!(r.json()["backup"]["baseUrl"], w.primary.base_url());
    assert_eq!(r.json()["activeEndpoint"], "primary");
    let audit = w.audit().await;
    assert_eq!(audit[0]["action"], "swap");
    assert_eq!(audit[0]["fromEndpoint"], w.primary.base_url());
    assert_eq!(audit[0]["toEndpoint"], w.backup.base_url());
    // Credentials travelled with their server (fingerprints unchanged, still openable).
    let r = w.post(&op("test"), &w.api.admin(), None).await;
    assert_eq!(r.json()["ok"], true, "{}", r.text);
}

#[tokio::test]
async fn switch_refusals_change_nothing() {
    let w = world().await;
    let before = w.raw().await;
    for (b, status, code) in [
        (
            json!({"action": "activate", "to": "backup"}),
            StatusCode::PRECONDITION_REQUIRED,
            "version_required",
        ),
        (
            json!({"action": "activate", "version": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_config",
        ),
        (
            json!({"action": "activate", "to": "primary", "version": 1}),
            StatusCode::CONFLICT,
            "state_conflict",
        ),
        (
            json!({"action": "teleport", "version": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"action": "replace", "role": "backup", "version": 1, "endpoint": {"baseUrl": "http://169.254.169.254", "credentials": {"type": "none"}}}),
            StatusCode::BAD_REQUEST,
            "invalid_config",
        ),
        (
            json!({"action": "activate", "to": "backup", "version": 3}),
            StatusCode::CONFLICT,
            "version_conflict",
        ),
    ] {
        let r = w.post(&op("switch"), &w.api.admin(), Some(b)).await;
        assert_eq!(r.status, status, "{}", r.text);
        assert_eq!(r.json()["error"], code, "{}", r.text);
    }
    let r = w
        .post(
            &op("switch"),
            &w.api.tenant("other"),
            Some(json!({"action": "swap", "version": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(w.raw().await, before);
    assert_eq!(w.audit().await.len(), 1);
}

#[tokio::test]
async fn a_switch_racing_an_update_gets_409_and_the_update_stands() {
    let w = world().await;
    // The switch reads version 1, then its connection test waits on the backup's /health,
    // held by the simulator until an update has landed; its conditional write must then
    // fail. (A gate, not a delay: nothing here depends on how fast the machine is.)
    w.backup.set_faults(Faults {
        hold: true,
        ..Faults::default()
    });
    let mut upd = body(&w.primary.base_url(), &w.backup.base_url());
    upd["primary"]["deviceId"] = json!("dev-upd");
    upd.as_object_mut().unwrap().remove("webhookSecrets");
    let admin = w.api.admin();
    let switch_path = op("switch");
    let switch = w.post(
        &switch_path,
        &admin,
        Some(json!({"action": "activate", "to": "backup", "version": 1})),
    );
    let update = async {
        // Once the switch is at the backup's /health (it read the config before that)...
        while w.backup.requests_to("/health").is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let u = w
            .api
            .call(
                ApiEvent::new("PUT", PATH)
                    .bearer(&admin)
                    .header("If-Match", "\"1\"")
                    .json(&upd),
            )
            .await;
        // ...the update lands, and only then does /health answer.
        w.backup.set_faults(Faults::default());
        u
    };
    let (s, u) = tokio::join!(switch, update);
    assert_eq!(u.status, StatusCode::OK, "{}", u.text);
    assert_eq!(s.status, StatusCode::CONFLICT, "{}", s.text);
    assert_eq!(s.json()["error"], "version_conflict");
    // The switch had passed its test: the conflict came from the conditional write.
    assert_eq!(w.backup.requests_to("/health").len(), 1);
    let cfg = w.config().await;
    assert_eq!(cfg["version"], 2);
    assert_eq!(cfg["activeEndpoint"], "primary");
    assert_eq!(cfg["primary"]["deviceId"], "dev-upd");
    let actions: Vec<String> = w
        .audit()
        .await
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["update", "create"]);
}

// =====================================================================================
// Status, endpoints, messages
// =====================================================================================

fn health_record(key: &str, up: bool, latency: f64) -> EndpointHealth {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    EndpointHealth {
        endpoint_key: key.into(),
        provider: "gowa".into(),
        up,
        last_probe_at: now,
        latency_ms: latency,
        consecutive_failures: if up { 0 } else { 4 },
        consecutive_successes: if up { 7 } else { 0 },
        last_error: (!up).then(|| "could not connect to the server".into()),
        last_error_at: (!up).then_some(now),
        tenants: 1,
        active_tenants: u32::from(up),
        devices_total: Some(1),
        devices_connected: Some(1),
        expires_at: now.unix_timestamp() + 3600,
    }
}

#[tokio::test]
async fn status_joins_config_health_records_and_recent_switches() {
    let w = world().await;
    let env = w.api.stack.env();
    let hs = DynamoHealthStore::new(
        w.api.stack.dynamodb.clone(),
        env["TENANTS_TABLE"].clone(),
        env["ENDPOINTS_TABLE"].clone(),
        env["AUDIT_TABLE"].clone(),
    );
    hs.save_endpoints(&[
        health_record(&w.primary.base_url(), false, 3000.0),
        health_record(&w.backup.base_url(), true, 0.412),
    ])
    .await
    .unwrap();
    let r = w
        .post(
            &op("switch"),
            &w.api.admin(),
            Some(json!({"action": "activate", "to": "backup", "version": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w.get("/tenants/acme/status", &w.api.tenant("acme")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!(v["activeEndpoint"], "backup");
    assert_eq!(v["activeBaseUrl"], w.backup.base_url());
    assert_eq!(v["latencyMs"], 0.412, "to the microsecond");
    assert_eq!(v["connectionStatus"], "unknown");
    // The tenant item holds no check time (the health check writes it only on a change):
    // the last check is the active server's last probe.
    let backup_record = health_record(&w.backup.base_url(), true, 0.412);
    let probed = time::OffsetDateTime::parse(
        v["lastCheckAt"].as_str().expect("lastCheckAt"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        (backup_record.last_probe_at - probed).whole_seconds().abs() <= 5,
        "{probed} vs the record's {}",
        backup_record.last_probe_at
    );
    assert_eq!(v["endpoints"][1]["health"]["lastProbeAt"], v["lastCheckAt"]);
    assert_eq!(v["endpoints"][0]["health"]["up"], false);
    assert_eq!(v["endpoints"][1]["active"], true);
    assert_eq!(v["recentFailures"][0]["baseUrl"], w.primary.base_url());
    assert_eq!(v["recentFailures"][0]["consecutiveFailures"], 4);
    assert_eq!(v["recentSwitches"][0]["action"], "switch");
    assert!(!r.text.contains(PASSWORD) && !r.text.contains("ciphertext"));

    let r = w.get("/tenants/acme/status", &w.api.tenant("other")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w.get("/tenants/ghost/status", &w.api.admin()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = w.get("/admin/endpoints", &w.api.admin()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 2);
}

async fn put_message(api: &Api, tenant: &str, key: &str, state: &str) {
    let client = aws_sdk_dynamodb::Client::new(&api.stack.sdk);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    client
        .put_item()
        .table_name(api.stack.env()["MESSAGES_TABLE"].clone())
        .item("pk", AttributeValue::S(format!("{tenant}#{key}")))
        .item("tenantId", AttributeValue::S(tenant.into()))
        .item("idempotencyKey", AttributeValue::S(key.into()))
        .item("state", AttributeValue::S(state.into()))
        .item("attempts", AttributeValue::N("1".into()))
        .item("providerMessageId", AttributeValue::S("3EB0ABC".into()))
        .item(
            "endpoint",
            AttributeValue::S("http://127.0.0.1:3000".into()),
        )
        .item("expiresAt", AttributeValue::N((now + 3600).to_string()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn message_route_returns_the_delivery_record_of_the_tenant_only() {
    let w = world().await;
    put_message(&w.api, "acme", "order-42/confirm", "sent").await;
    put_message(&w.api, "other", "order-42/confirm", "failed").await;
    let path = "/tenants/acme/messages/order-42%2Fconfirm";
    let r = w.get(path, &w.api.tenant("acme")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["state"], "sent");
    assert_eq!(r.json()["idempotencyKey"], "order-42/confirm");
    assert_eq!(r.json()["providerMessageId"], "3EB0ABC");
    let r = w.get(path, &w.api.tenant("other")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w
        .get("/tenants/acme/messages/unknown-key", &w.api.admin())
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"], "not_found");
    let r = w
        .get("/tenants/acme/messages/bad%20key", &w.api.admin())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

// =====================================================================================
// Export and import; admin scope
// =====================================================================================

#[tokio::test]
async fn export_wipe_import_restores_every_item_identically() {
    let w = world().await;
    for t in ["beta", "gamma"] {
        let r = w
            .api
            .call(
                ApiEvent::new("POST", &format!("/tenants/{t}/whatsapp-config"))
                    .bearer(&w.api.admin())
                    .json(&body(&w.primary.base_url(), &w.backup.base_url())),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    w.post(&op("rotate-webhook-secret"), &w.api.admin(), None)
        .await;
    let mut before = w.api.stored().await;
    before.sort_by_key(|i| i["tenantId"].as_s().unwrap().clone());
    let r = w.get("/admin/export", &w.api.admin()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let doc = r.json();
    assert_eq!(doc["items"].as_array().unwrap().len(), 3);
    // Secrets stay sealed: ciphertext only.
    assert!(!r.text.contains(PASSWORD) && !r.text.contains(WEBHOOK_SECRET));
    assert!(r.text.contains("ciphertext"));

    // Wipe.
    let client = aws_sdk_dynamodb::Client::new(&w.api.stack.sdk);
    for item in &before {
        client
            .delete_item()
            .table_name(w.api.stack.tenants_table())
            .key("tenantId", item["tenantId"].clone())
            .send()
            .await
            .unwrap();
    }
    assert!(w.api.stored().await.is_empty());

    // Dry run: a report, nothing written.
    let r = w
        .api
        .call(
            ApiEvent::new("POST", "/admin/import")
                .query("dryRun=true")
                .bearer(&w.api.admin())
                .json(&doc),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["created"], json!(["acme", "beta", "gamma"]));
    assert!(w.api.stored().await.is_empty());

    let r = w
        .api
        .call(
            ApiEvent::new("POST", "/admin/import")
                .bearer(&w.api.admin())
                .json(&doc),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["conflicts"], json!([]));
    let mut after = w.api.stored().await;
    after.sort_by_key(|i| i["tenantId"].as_s().unwrap().clone());
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            b, a,
            "item {:?} differs after the round trip",
            b["tenantId"]
        );
    }
    // The restored secrets still open, and the import is audited.
    let r = w.post(&op("test"), &w.api.admin(), None).await;
    assert_eq!(r.json()["ok"], true, "{}", r.text);
    assert_eq!(w.audit().await[0]["action"], "import");

    // A second import conflicts on every tenant and overwrites nothing.
    let r = w
        .api
        .call(
            ApiEvent::new("POST", "/admin/import")
                .bearer(&w.api.admin())
                .json(&doc),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["created"], json!([]));
    assert_eq!(r.json()["conflicts"].as_array().unwrap().len(), 3);
    assert_eq!(r.json()["conflicts"][0]["identical"], true);
}

#[tokio::test]
async fn invalid_import_documents_are_400_and_write_nothing() {
    let api = api().await;
    let good_item = |id: &str| {
        json!({
            "tenantId": id, "provider": "gowa",
            "primary": {"baseUrl": "https://wa.example.com", "credentials": {"type": "none"}},
            "webhookSecrets": [{"id": "s1", "secret": {"ciphertext": "AAAA", "fingerprint": "****"}}],
            "activeEndpoint": "primary", "isActive": true, "connectionStatus": "unknown",
            "limits": {"outboundPerMinute": 30, "inboundPerSecond": 50},
            "version": 1, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"
        })
    };
    let doc = |items: Vec<Value>| json!({"format": "wagate-config-export/1", "exportedAt": "2026-01-01T00:00:00Z", "items": items});
    let mut ssrf = good_item("b");
    ssrf["primary"]["baseUrl"] = json!("http://169.254.169.254");
    for (d, code) in [
        (doc(vec![good_item("a"), good_item("a")]), "invalid_config"),
        (doc(vec![good_item("a"), ssrf]), "invalid_config"),
        (
            json!({"format": "something-else/9", "exportedAt": "2026-01-01T00:00:00Z", "items": []}),
            "invalid_body",
        ),
        (doc(vec![json!({"tenantId": "x"})]), "invalid_body"),
    ] {
        let r = api
            .call(
                ApiEvent::new("POST", "/admin/import")
                    .bearer(&api.admin())
                    .json(&d),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(r.json()["error"], code, "{}", r.text);
    }
    let r = api
        .call(
            ApiEvent::new("POST", "/admin/import")
                .query("dryRun=maybe")
                .bearer(&api.admin())
                .json(&doc(vec![good_item("a")])),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(api.stored().await.is_empty());
}

#[tokio::test]
async fn tenant_tokens_get_403_on_every_admin_route_and_nothing_changes() {
    let w = world().await;
    let token = w.api.tenant("acme");
    let before = w.raw().await;
    let export = w.get("/admin/export", &w.api.admin()).await.json();
    for ev in [
        ApiEvent::new("GET", "/tenants"),
        ApiEvent::new("GET", "/admin/endpoints"),
        ApiEvent::new("GET", "/admin/export"),
        ApiEvent::new("POST", "/admin/import").json(&export),
        ApiEvent::new("POST", "/admin/import")
            .query("dryRun=true")
            .json(&export),
    ] {
        let r = w.api.call(ev.bearer(&token)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_eq!(r.json()["error"], "forbidden");
        assert!(!r.text.contains("ciphertext") && !r.text.contains("127.0.0.1"));
    }
    let r = w.api.call(ApiEvent::new("GET", "/admin/export")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(w.raw().await, before);
    assert_eq!(w.audit().await.len(), 1);
}

#[tokio::test]
async fn unknown_admin_path_is_404() {
    let api = api().await;
    let r = api
        .call(ApiEvent::new("GET", "/admin/everything").bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"], "no_route");
}
