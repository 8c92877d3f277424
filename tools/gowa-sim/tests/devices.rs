//! GOWA's device routes: slots, QR and pairing-code login completed by the control API's scan,
//! logout, reconnect, status, and the device's own webhook secret.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::{PHONE, Receiver, client, status_and_json};
use gowa_sim::{DeviceState, Receipts, SimConfig, SimHandle, contract};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

async fn sim() -> SimHandle {
    let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = SimConfig::default().basic_auth("admin", "pw");
    config.receipts = Receipts::off();
    gowa_sim::start_on(config, any, Some(any)).await.unwrap()
}

async fn call(
    sim: &SimHandle,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = client()
        .request(method, format!("{}{path}", sim.base_url()))
        .basic_auth("admin", Some("pw"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    status_and_json(request.send().await.unwrap()).await
}

fn state_of(sim: &SimHandle, id: &str) -> Option<DeviceState> {
    sim.devices()
        .into_iter()
        .find(|d| d.id == id)
        .map(|d| d.state)
}

#[tokio::test]
async fn a_new_slot_is_disconnected_and_its_id_is_unique() {
    let sim = sim().await;
    let _contract = contract::guard(&sim);

    let (status, body) = call(
        &sim,
        reqwest::Method::POST,
        "/devices",
        Some(json!({"device_id": "tenant-a"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], "SUCCESS");
    assert_eq!(body["results"]["id"], "tenant-a");
    assert_eq!(body["results"]["state"], "disconnected");
    assert!(
        body["results"].get("webhook_url").is_none(),
        "echoed only when given"
    );
    assert_eq!(state_of(&sim, "tenant-a"), Some(DeviceState::Disconnected));

    let (status, body) = call(
        &sim,
        reqwest::Method::POST,
        "/devices",
        Some(json!({"device_id": "tenant-a"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "DEVICE_EXISTS");
    assert_eq!(sim.devices().len(), 2, "demo and tenant-a, no duplicate");

    let (status, body) = call(&sim, reqwest::Method::GET, "/devices/tenant-a", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"]["id"], "tenant-a");
    let (status, body) = call(&sim, reqwest::Method::GET, "/devices/nope", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "DEVICE_NOT_FOUND");
}

#[tokio::test]
async fn qr_login_serves_a_png_until_the_scan_logs_the_device_in() {
    let sim = sim().await;
    let _contract = contract::guard(&sim);
    call(
        &sim,
        reqwest::Method::POST,
        "/devices",
        Some(json!({"device_id": "tenant-a"})),
    )
    .await;

    let (status, body) = call(&sim, reqwest::Method::GET, "/devices/tenant-a/login", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"]["device_id"], "tenant-a");
    assert_eq!(body["results"]["qr_duration"], 30);
    let link = body["results"]["qr_link"].as_str().unwrap().to_owned();
    assert!(
        link.starts_with(&format!(
            "{}/statics/images/qrcode/scan-qr-",
            sim.base_url()
        )),
        "{link}"
    );
    let (status, body) = call(&sim, reqwest::Method::GET, "/devices/tenant-a/status", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["results"],
        json!({"device_id": "tenant-a", "is_connected": true, "is_logged_in": false})
    );

    // The picture needs no credentials (fiber serves /statics before basic auth).
    let png = client().get(&link).send().await.unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));

    sim.scan("tenant-a", Some("6281234567890")).unwrap();

    let (_, body) = call(&sim, reqwest::Method::GET, "/devices/tenant-a/status", None).await;
    assert_eq!(body["results"]["is_logged_in"], true);
    assert_eq!(body["results"]["is_connected"], true);
    let gone = client().get(&link).send().await.unwrap();
    assert_eq!(gone.status(), 404, "a used QR code is gone");
    let (status, body) = call(&sim, reqwest::Method::GET, "/devices/tenant-a/login", None).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "ALREADY_LOGGED_IN");
}

#[tokio::test]
async fn pairing_code_login_needs_a_valid_phone_and_completes_with_its_number() {
    let sim = sim().await;
    let _contract = contract::guard(&sim);
    call(
        &sim,
        reqwest::Method::POST,
        "/devices",
        Some(json!({"device_id": "tenant-a"})),
    )
    .await;

    let (status, body) = call(
        &sim,
        reqwest::Method::POST,
        "/devices/tenant-a/login/code?phone=12ab",
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert_eq!(state_of(&sim, "tenant-a"), Some(DeviceState::Disconnected));

    let (status, body) = call(
        &sim,
        reqwest::Method::POST,
        &format!("/devices/tenant-a/login/code?phone={PHONE}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let code = body["results"]["pair_code"].as_str().unwrap();
    assert_eq!(code.len(), 9, "{code}");

    sim.scan("tenant-a", None).unwrap();
    let device = sim
        .devices()
        .into_iter()
        .find(|d| d.id == "tenant-a")
        .unwrap();
    assert_eq!(device.state, DeviceState::LoggedIn);
    assert_eq!(device.jid, format!("{PHONE}@s.whatsapp.net"));
}

#[tokio::test]
async fn logout_keeps_the_slot_and_reconnect_needs_a_session() {
    let sim = sim().await;
    let _contract = contract::guard(&sim);

    let (status, body) = call(&sim, reqwest::Method::POST, "/devices/demo/logout", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"], serde_json::Value::Null);
    assert_eq!(state_of(&sim, "demo"), Some(DeviceState::Disconnected));
    let (_, body) = call(&sim, reqwest::Method::GET, "/devices/demo/status", None).await;
    assert_eq!(body["results"]["is_logged_in"], false);

    let (status, _) = call(&sim, reqwest::Method::POST, "/devices/demo/reconnect", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        state_of(&sim, "demo"),
        Some(DeviceState::Connected),
        "connected, but the session is gone: a new login is needed"
    );

    let (status, body) = call(&sim, reqwest::Method::POST, "/devices/nope/logout", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "DEVICE_NOT_FOUND");
}

#[tokio::test]
async fn a_slot_created_with_its_own_webhook_signs_with_its_own_secret() {
    let receiver = Receiver::start(&[]).await;
    let sim = sim().await;
    let _contract = contract::guard(&sim);
    sim.set_webhook(gowa_sim::WebhookConfig {
        urls: vec![receiver.url.clone()],
        secret: "global-secret".to_owned(),
        ..gowa_sim::WebhookConfig::default()
    });

    let (status, body) = call(
        &sim,
        reqwest::Method::POST,
        "/devices",
        Some(json!({"device_id": "tenant-a", "webhook_url": receiver.url,
                    "webhook_secret": "device-secret", "webhook_events": "message"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"]["webhook_url"], receiver.url.as_str());
    sim.scan("tenant-a", Some("6281234567890")).unwrap();

    let response = client()
        .post(format!("{}/_sim/incoming", sim.control_url().unwrap()))
        .json(&json!({"from": PHONE, "text": "hello", "device_id": "tenant-a"}))
        .send()
        .await
        .unwrap();
    let (status, record) = status_and_json(response).await;
    assert_eq!(status, 200, "{record}");
    let hits = receiver.wait_for(1).await;
    let hit = hits
        .iter()
        .find(|h| h.json()["event"] == "message")
        .expect("the message event");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"device-secret").unwrap();
    mac.update(&hit.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(hit.headers["x-hub-signature-256"], expected.as_str());
}
