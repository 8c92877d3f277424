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

    // Then the phone scans it (the simulator's control API) and the device is linked.
    sim.scan("acme-1", Some("6281234567890")).unwrap();
    let r = call(&api, "GET", "/tenants/acme/devices/primary", None).await;
    assert_eq!(r.json()["state"], "logged_in", "{}", r.text);
    let r = call(&api, "POST", "/tenants/acme/devices/primary/qr", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"], "already_logged_in");

    // The webhook is not wired yet.
    let r = call(&api, "GET", "/tenants/acme/devices/primary/webhook", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["state"], "missing");
    let expected_url = format!("{INGRESS}/webhooks/whatsapp/acme");
    assert_eq!(r.json()["expectedUrl"], expected_url.as_str());

    // When it is wired.
    let r = call(&api, "POST", "/tenants/acme/devices/primary/webhook", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let wired = r.json();
    assert_eq!(wired["state"], "wired");
    let secret_id = wired["secretId"].as_str().unwrap().to_string();
    assert!(secret_id.starts_with("wired-primary-"), "{secret_id}");

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
            "wire_webhook",
            "wire_webhook",
            "device_login_qr",
            "device_login_qr",
            "device_create_slot",
            "device_create_slot"
        ],
        "{actions:?}"
    );
    assert!(actions[0].1.contains("wired with secret"), "{actions:?}");
    assert!(
        actions[2].1.contains("failed (already_logged_in)"),
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

        let r = call(&api, "POST", "/tenants/acme/devices/primary/qr", None).await;

        assert_eq!(
            r.status,
            StatusCode::FAILED_DEPENDENCY,
            "{fault:?}: {}",
            r.text
        );
        assert_eq!(r.json()["error"], "bad_qr_image");
        assert!(r.json().get("pngBase64").is_none());
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
                wagate::tenant::cache::CacheSettings::with_ttl(Duration::from_secs(60)),
            )),
            sink: p.sink.clone(),
            limiter: webhook_ingress::RateLimiter::default(),
            receipts: Arc::new(p.receipts.clone()),
            replay_window: wagate::inbound::verify::DEFAULT_REPLAY_WINDOW,
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
async fn a_switch_to_a_wired_backup_whose_webhook_was_changed_is_refused_until_repaired() {
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

    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"], "webhook_not_wired");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("points_elsewhere")
    );
    let stored = call(&api, "GET", "/tenants/acme/whatsapp-config", None)
        .await
        .json();
    assert_eq!(stored["activeEndpoint"], "primary");
    assert_eq!(stored["version"], version, "nothing changed");

    // Repaired, the switch goes through.
    let r = call(&api, "POST", "/tenants/acme/devices/backup/webhook", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
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
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["activeEndpoint"], "backup");
}
