//! Meta's callback, pasted by hand (issue 16): the config API shows a Meta tenant the
//! callback URL and verify token to paste (never the app secret or access token), the
//! ingress records `verifiedAt` when Meta's `GET` handshake passes (one narrow UpdateItem,
//! nothing on a wrong token), the status says "verified at …" or "never verified", and a
//! whole-config save by the config API keeps the record. Config API and ingress in-process
//! on one moto_server stack.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use http::StatusCode;
use serde_json::{Value, json};
use wagate::delivery::dynamo::DynamoDeliveryStore;
use wagate::secrets::KmsSealer;
use wagate::tenant::cache::{CacheSettings, ConfigCache};
use wagate::tenant::dynamo::DynamoTenantStore;
use wagate_tests::ApiEvent;
use wagate_tests::api::{Api, api};
use webhook_ingress::{EVENT_SEEN_WRITE_INTERVAL, EventSeen};

const TOKEN: &str = "EAAG-meta-access-token-7f3a91";
const APP_SECRET: &str = "meta-app-secret-2b8e44";
const VERIFY_TOKEN: &str = "meta-verify-token-c0ffee";
const PHONE_NUMBER_ID: &str = "106540352242922";

/// The ingress as deployed (`lastEventAt`/`verifiedAt` writer on), on the API's stack.
fn ingress(api: &Api) -> webhook_ingress::App {
    let stack = &api.stack;
    let store = DynamoTenantStore::new(stack.dynamodb.clone(), stack.tenants_table());
    webhook_ingress::App {
        cache: Arc::new(ConfigCache::new(
            Arc::new(store.clone()),
            Arc::new(KmsSealer::new(stack.kms.clone(), stack.kms_key_id())),
            // No cache between steps: each handshake reads the config as saved.
            CacheSettings::with_ttl(Duration::ZERO),
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
        event_seen: Some(Arc::new(EventSeen::new(
            Arc::new(store),
            EVENT_SEEN_WRITE_INTERVAL,
        ))),
    }
}

fn meta_endpoint(base: &str) -> Value {
    json!({
        "baseUrl": base,
        "deviceId": PHONE_NUMBER_ID,
        "credentials": {"type": "meta", "token": TOKEN, "appSecret": APP_SECRET, "verifyToken": VERIFY_TOKEN},
    })
}

/// acme: a GOWA primary with a Meta backup on a live Meta simulator (its number registered:
/// wagate would wire a device of another kind now). Returns the simulator.
async fn gowa_with_meta_backup(api: &Api) -> gowa_sim::contract::Checked {
    let meta = wagate_tests::sim_contract::checked(
        gowa_sim::start(gowa_sim::SimConfig::for_kind(gowa_sim::Kind::Meta).api_key(TOKEN))
            .await
            .unwrap(),
    );
    let mut backup = meta_endpoint(&meta.base_url());
    backup["provider"] = json!("meta");
    let r = api
        .create(&json!({
            "provider": "gowa",
            "primary": {"baseUrl": "http://127.0.0.1:7001", "credentials": {"type": "none"}, "deviceId": "dev-1"},
            "backup": backup,
            "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-a8c3e0"}],
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Meta's callback is not wagate's to set: reported, never attempted (an attempt would
    // have refused the whole create).
    let wiring = r.json()["wiring"].clone();
    let backup = wiring
        .as_array()
        .and_then(|w| w.iter().find(|o| o["role"] == "backup"))
        .unwrap_or_else(|| panic!("no backup outcome: {}", r.text));
    assert_eq!(backup["state"], "manual", "{wiring}");
    assert!(
        backup["message"]
            .as_str()
            .unwrap()
            .contains("meta-callback"),
        "{wiring}"
    );
    meta
}

fn handshake(tenant: &str, token: &str, challenge: &str) -> ApiEvent {
    ApiEvent::new("GET", &format!("/webhooks/whatsapp/{tenant}")).query(&format!(
        "hub.mode=subscribe&hub.verify_token={token}&hub.challenge={challenge}"
    ))
}

async fn knock(app: &webhook_ingress::App, ev: ApiEvent) -> (StatusCode, String) {
    let resp = webhook_ingress::handle_event(app, ev.event()).await;
    let text = match &resp.body {
        Some(lambda_http::Body::Text(t)) => t.clone(),
        _ => String::new(),
    };
    (StatusCode::from_u16(resp.status_code as u16).unwrap(), text)
}

/// The tenant item's `verifiedAt`, read straight from the table.
async fn verified_at(api: &Api, tenant: &str) -> Option<String> {
    api.stack
        .dynamodb
        .get_item()
        .table_name(api.stack.tenants_table())
        .key("tenantId", AttributeValue::S(tenant.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .and_then(|i| i.get("verifiedAt").and_then(|v| v.as_s().ok()).cloned())
}

async fn get(api: &Api, path: &str, tenant: &str) -> (StatusCode, Value, String) {
    let r = api
        .call(ApiEvent::new("GET", path).bearer(&api.tenant(tenant)))
        .await;
    (r.status, r.json(), r.text)
}

#[tokio::test]
async fn the_meta_callback_view_shows_what_to_paste_and_never_the_app_secret_or_token() {
    let api = api().await;
    let _meta = gowa_with_meta_backup(&api).await;

    let (status, v, text) = get(&api, "/tenants/acme/meta-callback", "acme").await;

    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        v["callbackUrl"]
            .as_str()
            .unwrap()
            .ends_with("/webhooks/whatsapp/acme"),
        "{v}"
    );
    assert_eq!(v["verified"], false);
    assert!(v.get("verifiedAt").is_none(), "{v}");
    let endpoints = v["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1, "only the Meta endpoint: {v}");
    assert_eq!(endpoints[0]["role"], "backup");
    assert_eq!(endpoints[0]["phoneNumberId"], PHONE_NUMBER_ID);
    assert_eq!(endpoints[0]["verifyToken"], VERIFY_TOKEN);
    assert!(endpoints[0]["appSecretFingerprint"].is_string());
    assert!(!text.contains(APP_SECRET), "app secret shown: {text}");
    assert!(!text.contains(TOKEN), "access token shown: {text}");
    // The status of a tenant with a Meta endpoint says "never verified" (null).
    let (_, s, _) = get(&api, "/tenants/acme/status", "acme").await;
    assert!(s["callbackVerifiedAt"].is_null(), "{s}");
    assert!(s.as_object().unwrap().contains_key("callbackVerifiedAt"));
}

#[tokio::test]
async fn a_tenant_without_a_meta_endpoint_has_no_callback_to_paste() {
    let api = api().await;
    let r = api
        .create(&json!({
            "provider": "gowa",
            "primary": {"baseUrl": "http://127.0.0.1:7001", "credentials": {"type": "none"}, "deviceId": "dev-1"},
            "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-a8c3e0"}],
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let (status, v, text) = get(&api, "/tenants/acme/meta-callback", "acme").await;

    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    assert_eq!(v["error"], "state_conflict", "{v}");
    assert!(text.contains("Meta"), "{text}");
    let (_, s, _) = get(&api, "/tenants/acme/status", "acme").await;
    assert!(
        !s.as_object().unwrap().contains_key("callbackVerifiedAt"),
        "{s}"
    );
    // Another tenant's caller reads neither.
    let (status, _, _) = get(&api, "/tenants/acme/meta-callback", "globex").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_wrong_verify_token_is_refused_and_records_nothing() {
    let api = api().await;
    let _meta = gowa_with_meta_backup(&api).await;
    let ingress = ingress(&api);
    api.stack.counter.reset();

    for token in ["wrong-token", APP_SECRET, TOKEN, "webhook-secret-a8c3e0"] {
        let (status, text) = knock(&ingress, handshake("acme", token, "42")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{token}: {text}");
        assert!(text.contains("handshake_refused"), "{text}");
    }

    assert_eq!(verified_at(&api, "acme").await, None);
    let c = &api.stack.counter;
    assert_eq!(c.count_op("DynamoDB", "UpdateItem"), 0, "{:?}", c.calls());
    let (_, v, _) = get(&api, "/tenants/acme/meta-callback", "acme").await;
    assert_eq!(v["verified"], false, "{v}");
}

#[tokio::test]
async fn a_passed_handshake_answers_the_challenge_and_records_verified_at_which_a_save_keeps() {
    let api = api().await;
    let meta = gowa_with_meta_backup(&api).await;
    let ingress = ingress(&api);
    api.stack.counter.reset();

    let (status, text) = knock(&ingress, handshake("acme", VERIFY_TOKEN, "1158201444")).await;

    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(text, "1158201444");
    let c = &api.stack.counter;
    assert_eq!(c.count_op("DynamoDB", "UpdateItem"), 1, "{:?}", c.calls());
    let at = verified_at(&api, "acme")
        .await
        .expect("verifiedAt recorded");
    let parsed =
        time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(
        (time::OffsetDateTime::now_utc() - parsed).whole_minutes() < 5,
        "{at}"
    );
    // Nothing was enqueued by a handshake.
    let queued =
        wagate_tests::drain_queue(&api.stack.sdk, &api.stack.env()["INBOUND_QUEUE_URL"]).await;
    assert!(queued.is_empty(), "{queued:?}");

    // The API shows it: the paste view and the status.
    let (_, v, _) = get(&api, "/tenants/acme/meta-callback", "acme").await;
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["verifiedAt"], at.as_str());
    let (_, s, _) = get(&api, "/tenants/acme/status", "acme").await;
    assert_eq!(s["callbackVerifiedAt"], at.as_str(), "{s}");

    // A whole-config save (PUT, every attribute of the config rewritten) keeps it.
    let (_, cfg, _) = get(&api, "/tenants/acme/whatsapp-config", "acme").await;
    let backup = json!({
        "provider": "meta",
        "baseUrl": meta.base_url(),
        "deviceId": PHONE_NUMBER_ID,
        "region": "eu-west-1",
        "credentials": {"type": "meta"},
    });
    let r = api
        .call(
            ApiEvent::new("PUT", "/tenants/acme/whatsapp-config")
                .bearer(&api.tenant("acme"))
                .json(&json!({
                    "version": cfg["version"],
                    "provider": "gowa",
                    "primary": {"baseUrl": "http://127.0.0.1:7001", "credentials": {"type": "none"}, "deviceId": "dev-1"},
                    "backup": backup,
                    "webhookSecrets": [{"id": "s1"}],
                })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["backup"]["region"], "eu-west-1", "{}", r.text);
    assert_eq!(verified_at(&api, "acme").await, Some(at.clone()));
    let (_, s, _) = get(&api, "/tenants/acme/status", "acme").await;
    assert_eq!(s["callbackVerifiedAt"], at.as_str(), "{s}");
}

#[test]
fn the_ingress_may_update_only_tenant_id_last_event_at_and_verified_at() {
    let raw =
        std::fs::read_to_string(wagate_tests::workspace_root().join("template.yaml")).unwrap();
    let start = raw
        .find("Sid: TenantsTableNoteLastEventOnly")
        .expect("statement");
    let rest = &raw[start..];
    let list_at = rest.find("dynamodb:Attributes:").unwrap();
    let listed: Vec<&str> = rest[list_at..]
        .lines()
        .skip(1)
        .map(str::trim)
        .take_while(|l| l.starts_with("- "))
        .map(|l| l.trim_start_matches("- "))
        .collect();
    assert_eq!(listed, ["tenantId", "lastEventAt", "verifiedAt"]);
}
