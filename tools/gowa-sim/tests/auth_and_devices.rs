//! Basic auth, device selection, `/devices`, `/app/status` and `/health`.

mod common;

use common::{PHONE, client, default_sim, status_and_json};
use gowa_sim::{DeviceSpec, DeviceState, SimConfig, start};
use serde_json::json;

async fn sim_with_auth() -> gowa_sim::SimHandle {
    start(SimConfig::default().basic_auth("admin", "s3cret"))
        .await
        .unwrap()
}

async fn two_devices() -> gowa_sim::SimHandle {
    start(SimConfig::with_devices(vec![
        DeviceSpec::logged_in("shop-b", "6281111111111@s.whatsapp.net"),
        DeviceSpec::new("shop-a", "", DeviceState::Disconnected),
    ]))
    .await
    .unwrap()
}

#[tokio::test]
async fn wrong_basic_auth_is_401_with_plain_unauthorized_and_no_json() {
    let sim = sim_with_auth().await;

    let response = client()
        .post(format!("{}/send/message", sim.base_url()))
        .basic_auth("admin", Some("wrong"))
        .json(&json!({"phone": PHONE, "message": "hi"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 401);
    let headers = response.headers().clone();
    assert_eq!(
        headers["www-authenticate"],
        "Basic realm=\"Restricted\", charset=\"UTF-8\""
    );
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    let body = response.text().await.unwrap();
    assert_eq!(
        body, "Unauthorized",
        "fiber's SendStatus(401) text, not a JSON envelope"
    );
    let recorded = &sim.requests()[0];
    assert_eq!(recorded.basic_auth_user.as_deref(), Some("admin"));
    assert!(!recorded.authorized);
    assert_eq!(recorded.status, Some(401));
    let serialized = serde_json::to_string(recorded).unwrap();
    assert!(
        !serialized.contains("wrong"),
        "the password is never recorded"
    );
}

#[tokio::test]
async fn missing_basic_auth_is_401() {
    let sim = sim_with_auth().await;

    let response = client()
        .get(format!("{}/devices", sim.base_url()))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 401);
    assert_eq!(response.text().await.unwrap(), "Unauthorized");
}

#[tokio::test]
async fn malformed_basic_auth_header_is_400() {
    let sim = sim_with_auth().await;

    let response = client()
        .get(format!("{}/app/status", sim.base_url()))
        .header("Authorization", "Basic %%%")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
    assert_eq!(response.text().await.unwrap(), "Bad Request");
}

#[tokio::test]
async fn right_basic_auth_reaches_the_route() {
    let sim = sim_with_auth().await;

    let response = client()
        .get(format!("{}/app/status", sim.base_url()))
        .basic_auth("admin", Some("s3cret"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert!(sim.requests()[0].authorized);
}

#[tokio::test]
async fn health_needs_no_auth_and_answers_plain_ok() {
    let sim = sim_with_auth().await;

    let response = client()
        .get(format!("{}/health", sim.base_url()))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "OK");
}

#[tokio::test]
async fn devices_lists_every_device_with_gowa_device_info_fields() {
    let sim = two_devices().await;

    let (status, body) = status_and_json(
        client()
            .get(format!("{}/devices", sim.base_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(body["code"], "SUCCESS");
    assert_eq!(body["message"], "List devices");
    let devices = body["results"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0]["id"], "shop-b", "configured order is kept");
    assert_eq!(devices[0]["phone_number"], "6281111111111");
    assert_eq!(devices[0]["state"], "logged_in");
    assert_eq!(devices[0]["jid"], "6281111111111@s.whatsapp.net");
    assert!(devices[0]["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(devices[1]["state"], "disconnected");
    assert!(
        devices[1].get("jid").is_none(),
        "omitempty like GOWA's struct"
    );
    assert!(devices[1].get("phone_number").is_none());
}

#[tokio::test]
async fn app_status_reports_the_selected_device() {
    let sim = two_devices().await;
    sim.set_device_state("shop-a", DeviceState::Connected);

    let (status, body) = status_and_json(
        client()
            .get(format!("{}/app/status", sim.base_url()))
            .header("X-Device-Id", "shop-a")
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "code": "SUCCESS",
            "message": "Connection status retrieved",
            "results": {"device_id": "shop-a", "is_connected": true, "is_logged_in": false, "jid": ""}
        })
    );
}

#[tokio::test]
async fn device_id_query_parameter_selects_the_device() {
    let sim = two_devices().await;

    let (status, body) = status_and_json(
        client()
            .get(format!("{}/app/status?device_id=shop-b", sim.base_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(body["results"]["is_logged_in"], true);
}

#[tokio::test]
async fn single_device_is_used_without_a_header() {
    let sim = default_sim().await;

    let (status, body) = status_and_json(
        client()
            .get(format!("{}/app/status", sim.base_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(body["results"]["device_id"], "demo");
    assert_eq!(body["results"]["jid"], "6281234567890@s.whatsapp.net");
}

#[tokio::test]
async fn no_device_header_with_several_devices_is_400_device_id_required() {
    let sim = two_devices().await;

    let (status, body) = status_and_json(
        client()
            .post(format!("{}/send/message", sim.base_url()))
            .json(&json!({"phone": PHONE, "message": "hi"}))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": "DEVICE_ID_REQUIRED", "message": "device_id is required via X-Device-Id header or device_id query"})
    );
}

#[tokio::test]
async fn unknown_device_is_404_device_not_found() {
    let sim = default_sim().await;

    let (status, body) = status_and_json(
        client()
            .get(format!("{}/app/status", sim.base_url()))
            .header("X-Device-Id", "ghost")
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(status, 404);
    assert_eq!(body["code"], "DEVICE_NOT_FOUND");
    assert_eq!(body["results"], json!({"device_id": "ghost"}));
}

#[tokio::test]
async fn unknown_route_is_fibers_plain_404() {
    let sim = default_sim().await;

    let response = client()
        .get(format!("{}/nope", sim.base_url()))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "Cannot GET /nope");
}
