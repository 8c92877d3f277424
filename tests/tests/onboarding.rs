//! Tenant onboarding (issue 15): the config API links each endpoint's device (slot, QR,
//! pairing code, logout, reconnect, status) and wires its webhook, against the GOWA simulator
//! over HTTP, on moto_server. Every request wagate makes to the simulator is checked against
//! GOWA's OpenAPI spec (`sim_contract::checked`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use gowa_sim::{DeviceWebhookFault, Faults, QrImageFault, SimConfig, SimHandle};
use http::StatusCode;
use serde_json::{Value, json};
use wagate::egress::{EgressPolicy, HttpClient, HttpTimeouts, SystemResolver};
use wagate::runtime::config::PublicWebhookBase;
use wagate::secrets::{Purpose, SealedSecret};
use wagate_tests::ApiEvent;
use wagate_tests::api::{Api, Reply, api};
use wagate_tests::sim_contract::{Checked, checked};

const PASSWORD: &str = "sim-password-0123456";
const INGRESS: &str = "http://127.0.0.1:9000/lambda-url/webhook-ingress";

async fn sim() -> Checked {
    checked(
        gowa_sim::start(SimConfig::default().basic_auth("admin", PASSWORD))
            .await
            .unwrap(),
    )
}

/// The API with a public webhook base, and acme on `sim` (device `acme-1` on the primary,
/// `acme-2` on the backup, neither on the server yet).
async fn onboarding(sim: &SimHandle) -> Api {
    let mut api = api().await;
    api.app.webhook_base = PublicWebhookBase::parse(INGRESS).unwrap();
    let endpoint = |device: &str| {
        json!({"baseUrl": sim.base_url(), "deviceId": device,
               "credentials": {"type": "basic", "username": "admin", "password": PASSWORD}})
    };
    let r = api
        .create(&json!({
            "provider": "gowa", "primary": endpoint("acme-1"), "backup": endpoint("acme-2"),
            "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    api
}

async fn call(api: &Api, method: &str, path: &str, body: Option<Value>) -> Reply {
    let mut ev = ApiEvent::new(method, path).bearer(&api.tenant("acme"));
    if let Some(b) = body {
        ev = ev.json(&b);
    }
    api.call(ev).await
}

/// The tenant's audit records (newest first).
async fn audit(api: &Api) -> Vec<Value> {
    let r = api
        .call(ApiEvent::new("GET", "/tenants/acme/audit?limit=200").bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()["items"].as_array().unwrap().clone()
}

fn device_actions(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .filter(|i| {
            let a = i["action"].as_str().unwrap_or_default();
            a.starts_with("device_") || a == "wire_webhook"
        })
        .map(|i| {
            (
                i["action"].as_str().unwrap().to_string(),
                i["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The stored config's webhook secrets: `(id, expiresAt)`.
async fn secret_ids(api: &Api) -> Vec<(String, Option<String>)> {
    let r = call(api, "GET", "/tenants/acme/whatsapp-config", None).await;
    r.json()["webhookSecrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["id"].as_str().unwrap().to_string(),
                w["expiresAt"].as_str().map(str::to_string),
            )
        })
        .collect()
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

fn sim_device(sim: &SimHandle, id: &str) -> Option<gowa_sim::DeviceSpec> {
    sim.devices().into_iter().find(|d| d.id == id)
}

#[tokio::test]
async fn a_tenant_links_its_device_by_qr_and_wires_its_webhook_without_touching_the_server() {
    let logs = wagate_tests::LogCapture::start();
    let sim = sim().await;
    let api = onboarding(&sim).await;

    // Given a device id the server does not know yet.
    let r = call(&api, "GET", "/tenants/acme/devices/primary", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["state"], "not_found");

    // When the slot is created (twice: the second time nothing changes).
    let r = call(&api, "POST", "/tenants/acme/devices/primary", None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["slot"], "created");
    assert_eq!(r.json()["state"], "logged_out");
    let r = call(&api, "POST", "/tenants/acme/devices/primary", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["slot"], "existed");
    assert_eq!(
        sim.requests_to("/devices")
            .iter()
            .filter(|r| r.method == "POST")
            .count(),
        1
    );

    // And a QR code is asked for: the API answers the picture itself.
    let r = call(&api, "POST", "/tenants/acme/devices/primary/qr", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let qr = r.json();
    let png = B64.decode(qr["pngBase64"].as_str().unwrap()).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(qr["mimeType"], "image/png");
    assert_eq!(qr["expiresInSeconds"], 30);
    assert!(qr["expiresAt"].as_str().is_some());
    let r = call(&api, "GET", "/tenants/acme/devices/primary", None).await;
    assert_eq!(r.json()["state"], "connected", "waiting for the scan");

    // Then the phone scans it (the simulator's control API): the next status read finds the
    // device linked and wires its webhook at once (nobody asks for it).
    sim.scan("acme-1", Some("6281234567890")).unwrap();
    let r = call(&api, "GET", "/tenants/acme/devices/primary", None).await;
    assert_eq!(r.json()["state"], "logged_in", "{}", r.text);
    let wired = r.json()["webhook"].clone();
    assert_eq!(wired["state"], "wired", "{}", r.text);
    let secret_id = wired["secretId"].as_str().unwrap().to_string();
    assert!(secret_id.starts_with("wired-primary-"), "{secret_id}");
    let r = call(&api, "GET", "/tenants/acme/devices/primary", None).await;
    assert!(r.json().get("webhook").is_none(), "wired once: {}", r.text);
    let r = call(&api, "POST", "/tenants/acme/devices/primary/qr", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"], "already_logged_in");
    let expected_url = format!("{INGRESS}/webhooks/whatsapp/acme");
    let r = call(&api, "GET", "/tenants/acme/devices/primary/webhook", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["expectedUrl"], expected_url.as_str());

    // Then the device posts to the tenant's URL, signed with the secret wagate sealed.
    let device = sim_device(&sim, "acme-1").unwrap();
    let hook = device.webhook.expect("the device has its own webhook");
    assert_eq!(hook.url, expected_url);
    assert_eq!(hook.secret.len(), 64, "256 bits, hex");
    assert_eq!(hook.secret, opened_secret(&api, &secret_id).await);
    assert!(
        hook.events.is_empty(),
        "no filter: every event reaches wagate"
    );
    let ids: Vec<String> = secret_ids(&api)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["s1".to_string(), secret_id.clone()]);
    let r = call(&api, "GET", "/tenants/acme/devices/primary/webhook", None).await;
    assert_eq!(r.json()["state"], "wired", "{}", r.text);
    // The secret is never shown.
    for text in [&r.text, &wired.to_string()] {
        assert!(!text.contains(&hook.secret));
    }
    let log = audit(&api).await;
    assert!(!serde_json::to_string(&log).unwrap().contains(&hook.secret));
    // Nor logged: the wiring's log lines name the secret's id only.
    let logged = logs.text();
    assert!(
        logged.contains(&secret_id),
        "the wiring is logged with its secret id"
    );
    assert!(!logged.contains(&hook.secret));

    // And every action is audited with its outcome.
    let actions = device_actions(&log);
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        names,
        [
            "device_login_qr",
            "wire_webhook",
            "wire_webhook",
            "device_login_qr",
            "device_create_slot",
            "device_create_slot"
        ],
        "{actions:?}"
    );
    assert!(actions[1].1.contains("wired with secret"), "{actions:?}");
    assert!(
        actions[0].1.contains("failed (already_logged_in)"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn rewiring_replaces_the_secret_and_keeps_the_previous_one_for_a_grace() {
    let sim = sim().await;
    let api = onboarding(&sim).await;
    call(&api, "POST", "/tenants/acme/devices/primary", None).await;
    let first = call(&api, "POST", "/tenants/acme/devices/primary/webhook", None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let first_id = first.json()["secretId"].as_str().unwrap().to_string();

    // Repairs many times over: never more than the newest earlier wired secret is kept.
    let mut last_id = first_id.clone();
    for _ in 0..4 {
        let r = call(&api, "POST", "/tenants/acme/devices/primary/webhook", None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        last_id = r.json()["secretId"].as_str().unwrap().to_string();
    }
    let secrets = secret_ids(&api).await;
    assert_eq!(secrets.len(), 3, "{secrets:?}");
    assert_eq!(secrets[0], ("s1".to_string(), None));
    assert!(
        secrets[1].1.is_some(),
        "the previous wired secret expires: {secrets:?}"
    );
    assert_eq!(secrets[2], (last_id.clone(), None));
    let hook = sim_device(&sim, "acme-1").unwrap().webhook.unwrap();
    assert_eq!(hook.secret, opened_secret(&api, &last_id).await);
}

#[tokio::test]
async fn pairing_code_for_a_bad_phone_is_400_and_nothing_is_sent_or_audited() {
    let sim = sim().await;
    let api = onboarding(&sim).await;
    call(&api, "POST", "/tenants/acme/devices/backup", None).await;
    sim.clear_requests();
    let before = audit(&api).await.len();

    for phone in [
        "0812345678",
        "+62 812 345",
        "12345",
        "6281234567890123",
        "abc",
        "",
    ] {
        let r = call(
            &api,
            "POST",
            "/tenants/acme/devices/backup/pairing-code",
            Some(json!({"phone": phone})),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{phone:?}: {}", r.text);
        assert_eq!(r.json()["error"], "invalid_config", "{phone:?}");
        assert_eq!(r.json()["fields"][0]["field"], "phone");
    }
    for body in [
        json!({}),
        json!({"phone": 6281234567890u64}),
        json!([]),
        json!({"phone": "6281234567890", "x": 1}),
    ] {
        let r = call(
            &api,
            "POST",
            "/tenants/acme/devices/backup/pairing-code",
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
    }
    assert!(
        sim.requests().is_empty(),
        "nothing sent: {:?}",
        sim.requests()
    );
    assert_eq!(audit(&api).await.len(), before, "nothing audited");

    // A valid number gets a code, and the scan links the phone with that number.
    let r = call(
        &api,
        "POST",
        "/tenants/acme/devices/backup/pairing-code",
        Some(json!({"phone": "+6281234567890"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["code"].as_str().unwrap().len(), 9);
    sim.scan("acme-2", None).unwrap();
    let r = call(&api, "GET", "/tenants/acme/devices/backup", None).await;
    assert_eq!(r.json()["state"], "logged_in");
    assert_eq!(
        sim_device(&sim, "acme-2").unwrap().jid,
        "6281234567890@s.whatsapp.net"
    );
}

#[tokio::test]
async fn logout_and_reconnect_change_the_live_status() {
    let sim = sim().await;
    let api = onboarding(&sim).await;
    call(&api, "POST", "/tenants/acme/devices/primary", None).await;
    sim.scan("acme-1", Some("6281234567890")).unwrap();

    let r = call(&api, "POST", "/tenants/acme/devices/primary/logout", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["state"], "logged_out");
    let r = call(
        &api,
        "POST",
        "/tenants/acme/devices/primary/reconnect",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json()["state"],
        "connected",
        "no session left: a new login is needed"
    );
    let names: Vec<String> = device_actions(&audit(&api).await)
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(
        names[..2],
        ["device_reconnect".to_string(), "device_logout".to_string()]
    );
}

#[tokio::test]
async fn another_tenants_token_is_403_and_the_server_is_not_called() {
    let sim = sim().await;
    let api = onboarding(&sim).await;
    sim.clear_requests();
    let audited = audit(&api).await.len();
    let secrets = secret_ids(&api).await;
    let beta = api.tenant("beta");
    for (method, path) in [
        ("POST", "/tenants/acme/devices/primary/qr"),
        ("GET", "/tenants/acme/devices/primary"),
        ("POST", "/tenants/acme/devices/primary/webhook"),
        ("POST", "/tenants/acme/devices/backup/logout"),
    ] {
        let r = api.call(ApiEvent::new(method, path).bearer(&beta)).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            r.text
        );
    }
    let r = api
        .call(
            ApiEvent::new("POST", "/tenants/acme/devices/primary/pairing-code")
                .bearer(&beta)
                .json(&json!({"phone": "6281234567890"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(sim.requests().is_empty());
    // Nothing stored either: no audit record, the webhook secrets as they were.
    assert_eq!(audit(&api).await.len(), audited);
    assert_eq!(secret_ids(&api).await, secrets);
}

#[tokio::test]
async fn unknown_roles_and_missing_backups_are_clear_refusals() {
    let sim = sim().await;
    let api = onboarding(&sim).await;
    sim.clear_requests();
    let r = call(&api, "POST", "/tenants/acme/devices/tertiary/qr", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = call(&api, "DELETE", "/tenants/acme/devices/primary", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = call(&api, "GET", "/tenants/acme/devices/primary/qr", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = call(&api, "POST", "/tenants/acme/devices/primary/nope", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&api, "POST", "/tenants/ghost/devices/primary/qr", None).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "acme's token, ghost's tenant"
    );
    let r = api
        .call(ApiEvent::new("POST", "/tenants/ghost/devices/primary/qr").bearer(&api.admin()))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn wiring_a_device_the_server_does_not_have_is_404_and_the_new_secret_is_withdrawn() {
    let sim = sim().await;
    let api = onboarding(&sim).await;
    let before = secret_ids(&api).await;

    let r = call(&api, "POST", "/tenants/acme/devices/primary/webhook", None).await;

    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.json()["error"], "device_not_found");
    assert_eq!(
        secret_ids(&api).await,
        before,
        "the secrets are as they were"
    );
    let actions = device_actions(&audit(&api).await);
    assert!(
        actions[0].1.contains("wiring failed (device_not_found)"),
        "{actions:?}"
    );
    assert!(actions[0].1.contains("withdrawn"), "{actions:?}");
}

#[tokio::test]
async fn a_server_failing_the_webhook_change_is_reported_and_nothing_is_half_saved() {
    let sim = sim().await;
    let api = onboarding(&sim).await;
    call(&api, "POST", "/tenants/acme/devices/primary", None).await;
    let before = secret_ids(&api).await;
    sim.set_faults(Faults {
        device_webhook: Some(DeviceWebhookFault::Refuse),
        ..Faults::default()
    });

    let r = call(&api, "POST", "/tenants/acme/devices/primary/webhook", None).await;

    assert_eq!(r.status, StatusCode::FAILED_DEPENDENCY, "{}", r.text);
    assert_eq!(r.json()["error"], "webhook_refused");
    assert_eq!(
        secret_ids(&api).await,
        before,
        "the new secret is withdrawn"
    );
    assert!(sim_device(&sim, "acme-1").unwrap().webhook.is_none());
    let actions = device_actions(&audit(&api).await);
    assert!(
        actions[0].1.contains("wiring failed (webhook_refused)"),
        "audited: {actions:?}"
    );
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_424_and_the_new_secret_stays_for_its_grace() {
    let sim = sim().await;
    let mut api = onboarding(&sim).await;
    // A short request timeout; the simulator hangs until released, so no clock race.
    let egress = EgressPolicy::new(EgressPolicy::parse_allowlist("127.0.0.1/32").unwrap());
    api.app.http = HttpClient::with_resolver(
        egress,
        HttpTimeouts {
            connect: Duration::from_secs(3),
            request: Duration::from_millis(500),
        },
        Arc::new(SystemResolver),
    )
    .unwrap();
    call(&api, "POST", "/tenants/acme/devices/primary", None).await;
    sim.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });

    let r = call(&api, "POST", "/tenants/acme/devices/primary/webhook", None).await;
    sim.set_faults(Faults::default());

    assert_eq!(r.status, StatusCode::FAILED_DEPENDENCY, "{}", r.text);
    assert_eq!(r.json()["error"], "server_unreachable");
    let secrets = secret_ids(&api).await;
    assert_eq!(secrets.len(), 2, "{secrets:?}");
    assert!(secrets[1].0.starts_with("wired-primary-"));
    assert!(
        secrets[1].1.is_some(),
        "the server may have taken it: accepted until its grace ends: {secrets:?}"
    );
    let actions = device_actions(&audit(&api).await);
    assert!(
        actions[0].1.contains("kept until its grace ends"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_read_back_with_another_url_or_secret_is_a_mismatch_and_the_check_names_it() {
    for (fault, state) in [
        (DeviceWebhookFault::OtherUrl, "points_elsewhere"),
        (DeviceWebhookFault::OtherSecret, "secret_mismatch"),
    ] {
        let sim = sim().await;
        let api = onboarding(&sim).await;
        call(&api, "POST", "/tenants/acme/devices/primary", None).await;
        sim.set_faults(Faults {
            device_webhook: Some(fault),
            ..Faults::default()
        });

        let r = call(&api, "POST", "/tenants/acme/devices/primary/webhook", None).await;

        assert_eq!(
            r.status,
            StatusCode::FAILED_DEPENDENCY,
            "{fault:?}: {}",
            r.text
        );
        assert_eq!(r.json()["error"], "read_back_mismatch");
        assert!(
            r.json()["message"].as_str().unwrap().contains(state),
            "{}",
            r.text
        );
        let r = call(&api, "GET", "/tenants/acme/devices/primary/webhook", None).await;
        assert_eq!(r.json()["state"], state, "{}", r.text);
        // The server took the PATCH: the new secret stays accepted until its grace ends.
        let secrets = secret_ids(&api).await;
        assert_eq!(secrets.len(), 2, "{secrets:?}");
        assert!(secrets[1].1.is_some());
    }
}

#[tokio::test]
async fn a_qr_picture_that_is_not_a_png_or_too_large_is_refused() {
    for fault in [QrImageFault::NotPng, QrImageFault::Oversize] {
        let sim = sim().await;
        let api = onboarding(&sim).await;
        call(&api, "POST", "/tenants/acme/devices/primary", None).await;
        sim.set_faults(Faults {
            qr_image: Some(fault),
            ..Faults::default()
        });
        let version = call(&api, "GET", "/tenants/acme/whatsapp-config", None)
            .await
            .json()["version"]
            .clone();

        let r = call(&api, "POST", "/tenants/acme/devices/primary/qr", None).await;

        assert_eq!(
            r.status,
            StatusCode::FAILED_DEPENDENCY,
            "{fault:?}: {}",
            r.text
        );
        assert_eq!(r.json()["error"], "bad_qr_image");
        assert!(r.json().get("pngBase64").is_none());
        // Nothing stored: the config is the version it was.
        let after = call(&api, "GET", "/tenants/acme/whatsapp-config", None).await;
        assert_eq!(after.json()["version"], version, "{fault:?}");
    }
}

#[tokio::test]
async fn the_connection_test_reports_whether_each_device_webhook_is_wired() {
    let sim = sim().await;
    let api = onboarding(&sim).await;
    call(&api, "POST", "/tenants/acme/devices/primary", None).await;
    sim.scan("acme-1", Some("6281234567890")).unwrap();

    let r = call(&api, "POST", "/tenants/acme/whatsapp-config/test", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let report = r.json();
    assert_eq!(report["results"][0]["webhook"]["state"], "missing");
    assert_eq!(
        report["results"][0]["webhook"]["repair"],
        "POST /tenants/acme/devices/primary/webhook"
    );
    assert_eq!(report["results"][1]["webhook"]["state"], "unknown");
    assert!(
        report["results"][1]["webhook"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("device_not_found"),
        "{report}"
    );

    let r = call(&api, "POST", "/tenants/acme/devices/primary/webhook", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(&api, "POST", "/tenants/acme/whatsapp-config/test", None).await;
    let report = r.json();
    assert_eq!(
        report["results"][0]["webhook"]["state"], "wired",
        "{report}"
    );
    assert!(report["results"][0]["webhook"].get("repair").is_none());
    assert_eq!(report["results"][0]["ok"], true, "{report}");
}

/// The webhook ingress, in-process, behind a real HTTP listener on 127.0.0.1 (a free port), so
/// the simulator posts its signed webhooks to it as a GOWA server posts to API Gateway. Each
/// request reads the tenant's config afresh (no cache between requests).
async fn ingress_over_http(stack: &wagate_tests::Stack) -> (String, tokio::task::JoinHandle<()>) {
    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::HeaderMap;

    #[derive(Clone)]
    struct Parts {
        store: wagate::tenant::dynamo::DynamoTenantStore,
        sealer: wagate::secrets::KmsSealer,
        receipts: wagate::delivery::dynamo::DynamoDeliveryStore,
        sink: Arc<webhook_ingress::SqsSink>,
    }
    async fn receive(
        State(p): State<Parts>,
        Path(tenant): Path<String>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (axum::http::StatusCode, String) {
        let app = webhook_ingress::App {
            cache: Arc::new(wagate::tenant::cache::ConfigCache::new(
                Arc::new(p.store.clone()),
                Arc::new(p.sealer.clone()),
                webhook_ingress::cache_settings(Duration::from_secs(60)),
            )),
            sink: p.sink.clone(),
            limiter: webhook_ingress::RateLimiter::default(),
            receipts: Arc::new(p.receipts.clone()),
            replay_window: wagate::inbound::verify::DEFAULT_REPLAY_WINDOW,
            event_seen: None,
        };
        let mut ev =
            ApiEvent::new("POST", &format!("/webhooks/whatsapp/{tenant}")).raw_body(body.to_vec());
        for name in ["content-type", "x-hub-signature-256"] {
            if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                ev = ev.header(name, v);
            }
        }
        let resp = webhook_ingress::handle_event(&app, ev.event()).await;
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
    let parts = Parts {
        store: wagate::tenant::dynamo::DynamoTenantStore::new(
            stack.dynamodb.clone(),
            stack.tenants_table(),
        ),
        sealer: wagate::secrets::KmsSealer::new(stack.kms.clone(), stack.kms_key_id()),
        receipts: wagate::delivery::dynamo::DynamoDeliveryStore::new(
            stack.dynamodb.clone(),
            env["MESSAGES_TABLE"].clone(),
            "",
            Duration::ZERO,
        ),
        sink: Arc::new(webhook_ingress::SqsSink::new(
            stack.sqs.clone(),
            env["INBOUND_QUEUE_URL"].clone(),
        )),
    };
    let router = axum::Router::new()
        .route("/webhooks/whatsapp/{tenant}", axum::routing::post(receive))
        .with_state(parts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (url, task)
}

/// The simulator's contact writes to the device; answers whether the ingress took it (200),
/// `None` when the device had nowhere to post it.
async fn incoming_accepted(sim: &SimHandle, text: &str) -> Option<bool> {
    let record = sim
        .deliver_incoming(gowa_sim::IncomingMessage {
            device_id: Some("acme-1".into()),
            from: "6289685028129".into(),
            text: text.into(),
            from_name: None,
            reply_to: None,
        })
        .await
        .expect("the simulator delivers the event");
    record.deliveries.first().map(|d| d.delivered)
}

#[tokio::test]
async fn events_are_accepted_before_during_and_after_a_rewiring() {
    let sim = sim().await;
    let mut api = onboarding(&sim).await;
    let (ingress_url, _task) = ingress_over_http(&api.stack).await;
    api.app.webhook_base = PublicWebhookBase::parse(&ingress_url).unwrap();
    call(&api, "POST", "/tenants/acme/devices/primary", None).await;
    sim.scan("acme-1", Some("6281234567890")).unwrap();

    // Before wiring, the device has no webhook of its own: nothing reaches wagate.
    assert_eq!(incoming_accepted(&sim, "unwired").await, None);
    let r = call(&api, "POST", "/tenants/acme/devices/primary/webhook", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let first = r.json()["secretId"].as_str().unwrap().to_string();
    let first_secret = opened_secret(&api, &first).await;
    assert_eq!(
        incoming_accepted(&sim, "wired").await,
        Some(true),
        "signed with the wired secret, accepted"
    );

    // A webhook the server signed with the first secret arrives after the rewiring (GOWA
    // retries for 30 s): still accepted during the grace.
    let late_body = br#"{"event":"message","device_id":"6281234567890@s.whatsapp.net","payload":{"id":"LATE1","from":"6289685028129@s.whatsapp.net","chat_id":"6289685028129@s.whatsapp.net","body":"late"}}"#;
    let r = call(&api, "POST", "/tenants/acme/devices/primary/webhook", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let signature = wagate::inbound::signature::sign_sha256(first_secret.as_bytes(), late_body);
    let late = reqwest::Client::new()
        .post(format!("{ingress_url}/webhooks/whatsapp/acme"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(late_body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        late.status(),
        200,
        "the previous secret is accepted during its grace"
    );

    // And the device now signs with the new secret, which is accepted too.
    assert_eq!(incoming_accepted(&sim, "rewired").await, Some(true));
    let queued =
        wagate_tests::drain_queue(&api.stack.sdk, &api.stack.env()["INBOUND_QUEUE_URL"]).await;
    let bodies: Vec<String> = queued
        .iter()
        .map(|m| m.body().unwrap_or_default().to_string())
        .collect();
    for text in ["wired", "late", "rewired"] {
        assert!(
            bodies.iter().any(|b| b.contains(&format!("\"{text}\""))),
            "{text} reached the inbound queue: {bodies:?}"
        );
    }
}

#[tokio::test]
async fn a_webhook_secret_rotation_pushes_a_new_secret_to_every_endpoint_wagate_wired() {
    let sim = sim().await;
    let api = onboarding(&sim).await;
    call(&api, "POST", "/tenants/acme/devices/primary", None).await;
    let r = call(&api, "POST", "/tenants/acme/devices/primary/webhook", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let wired_before = r.json()["secretId"].as_str().unwrap().to_string();

    // The backup was never wired by wagate (the tenant forwards its webhooks itself): left alone.
    let r = call(
        &api,
        "POST",
        "/tenants/acme/whatsapp-config/rotate-webhook-secret",
        None,
    )
    .await;

    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    let wiring = body["wiring"].as_array().expect("the re-wiring outcome");
    assert_eq!(wiring.len(), 1, "{body}");
    assert_eq!(wiring[0]["role"], "primary");
    assert_eq!(wiring[0]["state"], "wired");
    let wired_after = wiring[0]["secretId"].as_str().unwrap().to_string();
    assert_ne!(wired_after, wired_before);
    let hook = sim_device(&sim, "acme-1").unwrap().webhook.unwrap();
    assert_eq!(hook.secret, opened_secret(&api, &wired_after).await);
    // The answer's config and ETag are the stored version (after the re-wiring).
    let stored = call(&api, "GET", "/tenants/acme/whatsapp-config", None).await;
    assert_eq!(body["config"]["version"], stored.json()["version"]);
    assert_eq!(r.headers["etag"], stored.headers["etag"]);
    // The new wired secret has no expiry; the previous one and s1 expire.
    let secrets = secret_ids(&api).await;
    let of = |id: &str| secrets.iter().find(|(i, _)| i == id).cloned();
    assert_eq!(of(&wired_after).unwrap().1, None, "{secrets:?}");
    assert!(of(&wired_before).unwrap().1.is_some(), "{secrets:?}");
    assert!(of("s1").unwrap().1.is_some(), "{secrets:?}");
    assert!(
        sim_device(&sim, "acme-2").is_none(),
        "the backup's server was not touched"
    );
}

#[tokio::test]
async fn a_rotation_is_kept_when_the_server_refuses_the_new_wired_secret_and_says_so() {
    let sim = sim().await;
    let api = onboarding(&sim).await;
    call(&api, "POST", "/tenants/acme/devices/primary", None).await;
    let r = call(&api, "POST", "/tenants/acme/devices/primary/webhook", None).await;
    let wired = r.json()["secretId"].as_str().unwrap().to_string();
    let device_secret = sim_device(&sim, "acme-1").unwrap().webhook.unwrap().secret;
    sim.set_faults(Faults {
        device_webhook: Some(DeviceWebhookFault::Refuse),
        ..Faults::default()
    });

    let r = call(
        &api,
        "POST",
        "/tenants/acme/whatsapp-config/rotate-webhook-secret",
        None,
    )
    .await;

    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    assert_eq!(body["wiring"][0]["state"], "failed", "{body}");
    assert_eq!(body["wiring"][0]["error"], "webhook_refused", "{body}");
    let rotated = body["id"].as_str().unwrap();
    let secrets = secret_ids(&api).await;
    assert!(secrets.iter().any(|(id, _)| id == rotated), "{secrets:?}");
    // The server still signs with the wired secret, which stays accepted for the grace.
    assert_eq!(
        sim_device(&sim, "acme-1").unwrap().webhook.unwrap().secret,
        device_secret
    );
    let of_wired = secrets.iter().find(|(id, _)| *id == wired).unwrap();
    assert!(of_wired.1.is_some(), "{secrets:?}");
    assert!(!r.text.contains(&device_secret));
}

#[tokio::test]
async fn a_switch_wires_the_target_before_the_cut_over_and_a_refused_wiring_switches_nothing() {
    let sim = sim().await;
    let api = onboarding(&sim).await;
    call(&api, "POST", "/tenants/acme/devices/backup", None).await;
    sim.scan("acme-2", Some("6281234567891")).unwrap();
    let r = call(&api, "POST", "/tenants/acme/devices/backup/webhook", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Someone points the backup device's webhook elsewhere on the server by hand.
    let mut hook = sim_device(&sim, "acme-2").unwrap().webhook.unwrap();
    hook.url = "https://elsewhere.example/hook".into();
    assert!(sim.set_device_webhook("acme-2", Some(hook)));
    let before = call(&api, "GET", "/tenants/acme/whatsapp-config", None)
        .await
        .json();
    let version = before["version"].clone();
    let switch = json!({"action": "activate", "to": "backup", "version": version});

    // A dry run says what the switch would do, and changes nothing anywhere.
    sim.clear_requests();
    let r = call(
        &api,
        "POST",
        "/tenants/acme/whatsapp-config/switch",
        Some(json!({"action": "activate", "to": "backup", "dryRun": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let plan = r.json();
    assert_eq!(plan["ok"], true, "{plan}");
    assert_eq!(plan["deviceLinked"], true, "{plan}");
    assert_eq!(plan["wiring"]["state"], "would_wire", "{plan}");
    assert!(
        plan["wiring"]["message"]
            .as_str()
            .unwrap()
            .contains("points_elsewhere"),
        "{plan}"
    );
    assert!(
        !sim.requests()
            .iter()
            .any(|q| q.method == "PATCH" || q.method == "POST"),
        "a dry run changes nothing on the server: {:?}",
        sim.requests()
    );
    let stored = call(&api, "GET", "/tenants/acme/whatsapp-config", None)
        .await
        .json();
    assert_eq!(stored, before, "a dry run changes nothing in wagate");

    // When the server refuses the webhook change, nothing is switched.
    sim.set_faults(Faults {
        device_webhook: Some(DeviceWebhookFault::Refuse),
        ..Faults::default()
    });
    let r = call(
        &api,
        "POST",
        "/tenants/acme/whatsapp-config/switch",
        Some(switch.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FAILED_DEPENDENCY, "{}", r.text);
    assert_eq!(r.json()["error"], "webhook_refused");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("nothing was switched")
    );
    let stored = call(&api, "GET", "/tenants/acme/whatsapp-config", None)
        .await
        .json();
    assert_eq!(stored["activeEndpoint"], "primary");
    assert_eq!(
        stored["webhookSecrets"], before["webhookSecrets"],
        "the new wired secret is withdrawn"
    );
    let actions = device_actions(&audit(&api).await);
    assert!(
        actions[0].1.contains("wiring failed (webhook_refused)"),
        "{actions:?}"
    );

    // Once the server takes it, the switch wires the backup first, then cuts over.
    sim.set_faults(Faults::default());
    let version = stored["version"].clone();
    let r = call(
        &api,
        "POST",
        "/tenants/acme/whatsapp-config/switch",
        Some(json!({"action": "activate", "to": "backup", "version": version})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["activeEndpoint"], "backup");
    assert_eq!(r.json()["wiring"][0]["state"], "wired", "{}", r.text);
    let hook = sim_device(&sim, "acme-2").unwrap().webhook.unwrap();
    assert_eq!(hook.url, format!("{INGRESS}/webhooks/whatsapp/acme"));
    let id = r.json()["wiring"][0]["secretId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(hook.secret, opened_secret(&api, &id).await);
    let names: Vec<String> = audit(&api)
        .await
        .iter()
        .take(3)
        .map(|i| i["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["switch", "wire_webhook", "wire_webhook"],
        "wired, then switched"
    );
}

// =====================================================================================
// Wiring kept true by every operation
// =====================================================================================

/// A simulator whose devices are already linked (as after a QR scan).
async fn sim_with(devices: &[&str]) -> Checked {
    let specs = devices
        .iter()
        .map(|d| gowa_sim::DeviceSpec::logged_in(*d, "6281234567890@s.whatsapp.net"))
        .collect();
    checked(
        gowa_sim::start(SimConfig::with_devices(specs).basic_auth("admin", PASSWORD))
            .await
            .unwrap(),
    )
}

fn endpoint_on(sim: &SimHandle, device: &str) -> Value {
    json!({"baseUrl": sim.base_url(), "deviceId": device,
           "credentials": {"type": "basic", "username": "admin", "password": PASSWORD}})
}

/// The API with a public webhook base and no config yet.
async fn bare_api() -> Api {
    let mut api = api().await;
    api.app.webhook_base = PublicWebhookBase::parse(INGRESS).unwrap();
    api
}

fn patches(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|q| q.method == "PATCH" && q.path.ends_with("/webhook"))
        .count()
}

#[tokio::test]
async fn a_config_saved_with_a_linked_device_is_wired_in_the_same_write() {
    // acme-1 is linked on the server; acme-2 is not there yet.
    let sim = sim_with(&["acme-1"]).await;
    let api = bare_api().await;

    let r = api
        .create(&json!({
            "provider": "gowa", "primary": endpoint_on(&sim, "acme-1"),
            "backup": endpoint_on(&sim, "acme-2"),
            "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
        }))
        .await;

    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let body = r.json();
    assert_eq!(body["version"], 1, "config and wiring in one write");
    assert_eq!(body["wiring"][0]["role"], "primary");
    assert_eq!(body["wiring"][0]["state"], "wired", "{body}");
    assert_eq!(body["wiring"][1]["role"], "backup");
    assert_eq!(body["wiring"][1]["state"], "pending_link", "{body}");
    let id = body["wiring"][0]["secretId"].as_str().unwrap().to_string();
    let hook = sim_device(&sim, "acme-1").unwrap().webhook.unwrap();
    assert_eq!(hook.url, format!("{INGRESS}/webhooks/whatsapp/acme"));
    assert_eq!(hook.secret, opened_secret(&api, &id).await);
    assert!(!r.text.contains(&hook.secret));
    assert_eq!(patches(&sim), 1, "only the linked device was changed");
    let names: Vec<String> = audit(&api)
        .await
        .iter()
        .map(|i| i["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["wire_webhook", "create"]);
}

#[tokio::test]
async fn a_config_whose_wiring_fails_is_not_saved_and_the_failure_is_audited() {
    for (fault, status, code) in [
        (
            DeviceWebhookFault::Refuse,
            StatusCode::FAILED_DEPENDENCY,
            "webhook_refused",
        ),
        (
            DeviceWebhookFault::OtherUrl,
            StatusCode::FAILED_DEPENDENCY,
            "read_back_mismatch",
        ),
        (
            DeviceWebhookFault::OtherSecret,
            StatusCode::FAILED_DEPENDENCY,
            "read_back_mismatch",
        ),
    ] {
        let sim = sim_with(&["acme-1"]).await;
        let api = bare_api().await;
        sim.set_faults(Faults {
            device_webhook: Some(fault),
            ..Faults::default()
        });

        let r = api
            .create(&json!({
                "provider": "gowa", "primary": endpoint_on(&sim, "acme-1"),
                "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
            }))
            .await;

        assert_eq!(r.status, status, "{fault:?}: {}", r.text);
        assert_eq!(r.json()["error"], code, "{fault:?}");
        let r = call(&api, "GET", "/tenants/acme/whatsapp-config", None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{fault:?}: nothing saved");
        let log = audit(&api).await;
        let names: Vec<&str> = log.iter().map(|i| i["action"].as_str().unwrap()).collect();
        assert_eq!(names, ["delete", "wire_webhook", "create"], "{fault:?}");
        assert!(
            log[1]["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("wiring failed ({code})")),
            "{log:?}"
        );
        assert!(log[0]["detail"].as_str().unwrap().contains("withdrawn"));
    }
}

#[tokio::test]
async fn an_endpoint_change_is_wired_before_the_update_is_written() {
    let old = sim_with(&["acme-1"]).await;
    let new = sim_with(&["acme-9"]).await;
    let api = bare_api().await;
    let mut body = json!({
        "provider": "gowa", "primary": endpoint_on(&old, "acme-1"),
        "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
    });
    let r = api.create(&body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let old_hook = sim_device(&old, "acme-1").unwrap().webhook.unwrap();

    // A change the new server refuses writes nothing of the update.
    new.set_faults(Faults {
        device_webhook: Some(DeviceWebhookFault::Refuse),
        ..Faults::default()
    });
    body["primary"] = endpoint_on(&new, "acme-9");
    body["version"] = json!(1);
    let r = call(
        &api,
        "PUT",
        "/tenants/acme/whatsapp-config",
        Some(body.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FAILED_DEPENDENCY, "{}", r.text);
    assert_eq!(r.json()["error"], "webhook_refused");
    let stored = call(&api, "GET", "/tenants/acme/whatsapp-config", None)
        .await
        .json();
    assert_eq!(stored["primary"]["baseUrl"], old.base_url(), "not switched");
    let ids: Vec<String> = secret_ids(&api).await.into_iter().map(|(i, _)| i).collect();
    assert_eq!(ids.len(), 2, "s1 and the first wiring's secret: {ids:?}");

    // Accepted, the new device is wired first, then the update is written.
    new.set_faults(Faults::default());
    body["version"] = stored["version"].clone();
    let r = call(
        &api,
        "PUT",
        "/tenants/acme/whatsapp-config",
        Some(body.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let out = r.json();
    assert_eq!(out["primary"]["baseUrl"], new.base_url());
    assert_eq!(out["wiring"][0]["state"], "wired", "{out}");
    let id = out["wiring"][0]["secretId"].as_str().unwrap().to_string();
    let hook = sim_device(&new, "acme-9").unwrap().webhook.unwrap();
    assert_eq!(hook.secret, opened_secret(&api, &id).await);
    // The old server's webhook is left as it was, its secret accepted for the grace.
    assert_eq!(
        sim_device(&old, "acme-1").unwrap().webhook.unwrap(),
        old_hook
    );
    let secrets = secret_ids(&api).await;
    assert_eq!(secrets.len(), 3, "{secrets:?}");
    assert!(
        secrets[1].1.is_some(),
        "the old wired secret expires: {secrets:?}"
    );

    // An update that changes no endpoint leaves the wiring alone.
    let before = patches(&new);
    let mut same = body.clone();
    same["version"] = out["version"].clone();
    same["limits"] = json!({"outboundPerMinute": 20});
    // Credentials left out are kept (a password sent again counts as a change).
    same["primary"]["credentials"] = json!({"type": "basic", "username": "admin"});
    let r = call(&api, "PUT", "/tenants/acme/whatsapp-config", Some(same)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["wiring"][0]["state"], "unchanged");
    assert_eq!(patches(&new), before);
}

#[tokio::test]
async fn manual_endpoints_are_reported_and_never_changed() {
    let sim = sim_with(&["acme-1", "acme-2"]).await;
    let api = bare_api().await;
    let mut primary = endpoint_on(&sim, "acme-1");
    primary["webhookWiring"] = json!("manual");
    let mut backup = endpoint_on(&sim, "acme-2");
    backup["webhookWiring"] = json!("manual");
    let r = api
        .create(&json!({
            "provider": "gowa", "primary": primary, "backup": backup,
            "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["wiring"][0]["state"], "manual");
    assert_eq!(r.json()["primary"]["webhookWiring"], "manual");

    // Asked to wire it: 409, nothing sent to the server, the secrets as they were.
    let before = secret_ids(&api).await;
    let r = call(&api, "POST", "/tenants/acme/devices/primary/webhook", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"], "webhook_wiring_manual");
    assert_eq!(secret_ids(&api).await, before);
    // Read: reported, with no repair offered.
    let r = call(&api, "GET", "/tenants/acme/devices/primary/webhook", None).await;
    assert_eq!(r.json()["state"], "missing", "{}", r.text);
    let r = call(&api, "GET", "/tenants/acme/devices/primary", None).await;
    assert!(r.json().get("webhook").is_none(), "{}", r.text);
    let r = call(&api, "POST", "/tenants/acme/whatsapp-config/test", None).await;
    assert_eq!(r.json()["results"][0]["webhook"]["state"], "missing");
    assert!(r.json()["results"][0]["webhook"].get("repair").is_none());
    // A switch to a manual backup does not touch its webhook either.
    let r = call(
        &api,
        "POST",
        "/tenants/acme/whatsapp-config/switch",
        Some(json!({"action": "activate", "to": "backup", "version": 1})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["wiring"][0]["state"], "manual");
    assert_eq!(patches(&sim), 0, "no PATCH recorded: {:?}", sim.requests());
    assert!(sim.devices().iter().all(|d| d.webhook.is_none()));
}

#[tokio::test]
async fn a_migration_wires_each_target_before_the_move_and_its_dry_run_changes_nothing() {
    let from = sim_with(&["acme-1"]).await;
    let to = sim_with(&["acme-1"]).await;
    let api = bare_api().await;
    let r = api
        .create(&json!({
            "provider": "gowa", "primary": endpoint_on(&from, "acme-1"),
            "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let source_hook = sim_device(&from, "acme-1").unwrap().webhook.unwrap();
    for (id, sim) in [("gowa-a", &from), ("gowa-b", &to)] {
        let r = api
            .call(
                ApiEvent::new("POST", "/admin/servers")
                    .bearer(&api.admin())
                    .json(
                        &json!({"serverId": id, "baseUrl": sim.base_url(), "provider": "gowa",
                                  "region": "eu-west-1", "capacity": 10}),
                    ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let migrate = |dry: bool| {
        ApiEvent::new("POST", "/admin/migrations")
            .bearer(&api.admin())
            .json(&json!({"jobId": "move-1", "from": "gowa-a", "to": "gowa-b", "dryRun": dry}))
    };

    let before = call(&api, "GET", "/tenants/acme/whatsapp-config", None)
        .await
        .json();
    let r = api.call(migrate(true)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let res = &r.json()["results"][0];
    assert_eq!(res["outcome"], "would_move", "{res}");
    assert_eq!(res["wiring"][0]["state"], "would_wire", "{res}");
    assert_eq!(patches(&to), 0, "a dry run changes nothing on the target");
    let after = call(&api, "GET", "/tenants/acme/whatsapp-config", None)
        .await
        .json();
    assert_eq!(after, before, "nor in wagate");

    let r = api.call(migrate(false)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let res = &r.json()["results"][0];
    assert_eq!(res["outcome"], "moved", "{res}");
    assert_eq!(res["wiring"][0]["state"], "wired", "{res}");
    let id = res["wiring"][0]["secretId"].as_str().unwrap().to_string();
    let hook = sim_device(&to, "acme-1").unwrap().webhook.unwrap();
    assert_eq!(hook.secret, opened_secret(&api, &id).await);
    assert_eq!(
        sim_device(&from, "acme-1").unwrap().webhook.unwrap(),
        source_hook,
        "the source's webhook is left in place"
    );
    let stored = call(&api, "GET", "/tenants/acme/whatsapp-config", None)
        .await
        .json();
    assert_eq!(stored["primary"]["baseUrl"], to.base_url());
}

/// The simulator's contact writes to `device`; answers whether the ingress took it (200),
/// `None` when the device had nowhere to post it.
async fn incoming_to(sim: &SimHandle, device: &str, text: &str) -> Option<bool> {
    let record = sim
        .deliver_incoming(gowa_sim::IncomingMessage {
            device_id: Some(device.into()),
            from: "6289685028129".into(),
            text: text.into(),
            from_name: None,
            reply_to: None,
        })
        .await
        .expect("the simulator delivers the event");
    record.deliveries.first().map(|d| d.delivered)
}

#[tokio::test]
async fn no_event_is_refused_while_a_switch_wires_the_backup_and_cuts_over() {
    let sim = sim_with(&["acme-1", "acme-2"]).await;
    let mut api = bare_api().await;
    let (ingress_url, _task) = ingress_over_http(&api.stack).await;
    api.app.webhook_base = PublicWebhookBase::parse(&ingress_url).unwrap();
    let mut backup = endpoint_on(&sim, "acme-2");
    // The backup is wired by the switch, not at save.
    backup["webhookWiring"] = json!("manual");
    let r = api
        .create(&json!({
            "provider": "gowa", "primary": endpoint_on(&sim, "acme-1"), "backup": backup,
            "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut cfg = call(&api, "GET", "/tenants/acme/whatsapp-config", None)
        .await
        .json();
    cfg["backup"]["webhookWiring"] = json!("wagate");
    cfg["backup"]["credentials"] = json!({"type": "basic", "username": "admin"});
    cfg["primary"]["credentials"] = json!({"type": "basic", "username": "admin"});
    for k in [
        "tenantId",
        "createdAt",
        "updatedAt",
        "webhookPath",
        "webhookUrl",
        "connectionStatus",
        "webhookSecrets",
    ] {
        cfg.as_object_mut().unwrap().remove(k);
    }
    // Handing the backup back to wagate wires it only when it changes: set it to wagate now
    // (it is wired here: the device is linked), then take its webhook away by hand so the
    // switch has to wire it again.
    let r = call(&api, "PUT", "/tenants/acme/whatsapp-config", Some(cfg)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["wiring"][1]["state"], "wired", "{}", r.text);
    assert!(sim.set_device_webhook("acme-2", None));

    // Events flow from both devices before, during and after the switch.
    let done = std::sync::atomic::AtomicBool::new(false);
    let sender = async {
        let mut outcomes = Vec::new();
        let mut i = 0;
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst);
            for device in ["acme-1", "acme-2"] {
                let text = format!("{device}-{i}");
                outcomes.push((text.clone(), incoming_to(&sim, device, &text).await));
            }
            i += 1;
            if finished && i > 3 {
                break outcomes;
            }
        }
    };
    let switch = async {
        let version = call(&api, "GET", "/tenants/acme/whatsapp-config", None)
            .await
            .json()["version"]
            .clone();
        let r = call(
            &api,
            "POST",
            "/tenants/acme/whatsapp-config/switch",
            Some(json!({"action": "activate", "to": "backup", "version": version})),
        )
        .await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    };
    let (outcomes, r) = tokio::join!(sender, switch);

    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["wiring"][0]["state"], "wired", "{}", r.text);
    let refused: Vec<&(String, Option<bool>)> =
        outcomes.iter().filter(|(_, o)| *o == Some(false)).collect();
    assert!(refused.is_empty(), "refused during the switch: {refused:?}");
    let accepted = |device: &str| {
        outcomes
            .iter()
            .filter(|(t, o)| t.starts_with(device) && *o == Some(true))
            .count()
    };
    assert!(
        accepted("acme-1") >= 4,
        "the old endpoint kept posting: {outcomes:?}"
    );
    assert!(
        accepted("acme-2") >= 1,
        "the new endpoint posts once wired: {outcomes:?}"
    );
    assert_eq!(
        outcomes.last().map(|(_, o)| *o),
        Some(Some(true)),
        "after the switch the backup's events are accepted"
    );
}

#[tokio::test]
async fn the_status_says_whether_the_backup_is_ready_and_why_not() {
    let primary = sim_with(&["acme-1"]).await;
    let backup = gowa_sim::start(SimConfig::default().basic_auth("admin", PASSWORD))
        .await
        .unwrap();
    let mut api = bare_api().await;
    // This test follows live changes made seconds apart: the status's 30 s standby cache is
    // off here (it has its own test below).
    api.app.standby_cache = config_api::handlers::status::StandbyCache::with_ttl(Duration::ZERO);
    let r = api
        .create(&json!({
            "provider": "gowa", "primary": endpoint_on(&primary, "acme-1"),
            "backup": endpoint_on(&backup, "acme-2"),
            "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // The backup's device is not on its server yet.
    let s = standby_of(&api).await;
    assert_eq!(s["role"], "backup");
    assert_eq!(s["ready"], false, "{s}");
    assert_eq!(s["reasons"], json!(["device_not_logged_in"]), "{s}");

    // Linked (the status read of the device wires it): ready.
    call(&api, "POST", "/tenants/acme/devices/backup", None).await;
    backup.scan("acme-2", Some("6281234567891")).unwrap();
    let r = call(&api, "GET", "/tenants/acme/devices/backup", None).await;
    assert_eq!(r.json()["webhook"]["state"], "wired", "{}", r.text);
    let s = standby_of(&api).await;
    assert_eq!(s["ready"], true, "{s}");
    assert!(s.get("reasons").is_none(), "{s}");

    // Its webhook changed by hand on the server: not ready, and the repair is named.
    let mut hook = sim_device(&backup, "acme-2").unwrap().webhook.unwrap();
    hook.url = "https://elsewhere.example/hook".into();
    assert!(backup.set_device_webhook("acme-2", Some(hook)));
    let s = standby_of(&api).await;
    assert_eq!(s["reasons"], json!(["webhook_not_wired"]), "{s}");
    assert!(
        s["detail"].as_str().unwrap().contains("points_elsewhere"),
        "{s}"
    );
    assert!(
        s["detail"]
            .as_str()
            .unwrap()
            .contains("POST /tenants/acme/devices/backup/webhook")
    );
    backup.clear_requests();
    let before = secret_ids(&api).await;
    let _ = standby_of(&api).await;
    assert!(
        !backup.requests().iter().any(|q| q.method != "GET"),
        "the status only reads"
    );
    assert_eq!(secret_ids(&api).await, before);

    // The backup's server down: not ready, server_down.
    drop(backup);
    let s = standby_of(&api).await;
    assert_eq!(s["ready"], false, "{s}");
    assert_eq!(s["reasons"], json!(["server_down"]), "{s}");
}

#[tokio::test]
async fn two_status_polls_within_the_window_ask_the_standby_server_once() {
    let primary = sim_with(&["acme-1"]).await;
    let backup = sim_with(&["acme-2"]).await;
    let api = bare_api().await;
    let body = json!({
        "provider": "gowa", "primary": endpoint_on(&primary, "acme-1"),
        "backup": endpoint_on(&backup, "acme-2"),
        "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
    });
    let r = api.create(&body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    backup.clear_requests();
    api.stack.counter.reset();

    let first = standby_of(&api).await;
    let asked = backup.requests().len();
    let decrypts = api.stack.counter.count_op("KMS", "Decrypt");
    let second = standby_of(&api).await;

    assert!(asked >= 1, "the first poll reads the standby live");
    assert_eq!(
        backup.requests().len(),
        asked,
        "the second poll asks the server nothing"
    );
    assert_eq!(
        api.stack.counter.count_op("KMS", "Decrypt"),
        decrypts,
        "nor opens its credential again"
    );
    assert_eq!(first, second);

    // A new config version reads live at once.
    let cur = call(&api, "GET", "/tenants/acme/whatsapp-config", None)
        .await
        .json();
    let mut next = body.clone();
    next["version"] = cur["version"].clone();
    next["limits"] = json!({"outboundPerMinute": 20});
    let r = call(&api, "PUT", "/tenants/acme/whatsapp-config", Some(next)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    backup.clear_requests();
    let _ = standby_of(&api).await;
    assert!(
        !backup.requests().is_empty(),
        "a changed config is read live"
    );
}

async fn standby_of(api: &Api) -> Value {
    let r = call(api, "GET", "/tenants/acme/status", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()["standby"].clone()
}

#[tokio::test]
async fn without_a_public_url_wiring_is_409_no_webhook_url_and_nothing_is_sent() {
    // No PUBLIC_WEBHOOK_BASE_URL and a front door that does not report the API's own URL.
    let sim = sim_with(&["acme-1"]).await;
    let api = api().await;
    let r = api
        .call(
            ApiEvent::new("POST", "/tenants/acme/whatsapp-config")
                .without_domain()
                .bearer(&api.admin())
                .json(&json!({
                    "provider": "gowa", "primary": endpoint_on(&sim, "acme-1"),
                    "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
                })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.json()["wiring"][0]["state"],
        "no_webhook_url",
        "{}",
        r.text
    );
    let before = secret_ids(&api).await;

    let r = api
        .call(
            ApiEvent::new("POST", "/tenants/acme/devices/primary/webhook")
                .without_domain()
                .bearer(&api.tenant("acme")),
        )
        .await;

    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"], "no_webhook_url");
    assert_eq!(patches(&sim), 0, "nothing sent to the server");
    assert_eq!(secret_ids(&api).await, before, "nothing stored");
}
