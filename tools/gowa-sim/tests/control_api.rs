//! The control API on its own port, over HTTP.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use common::{PHONE, client, fixture, send_text, status_and_json};
use gowa_sim::{SimConfig, SimHandle, start_on};
use serde_json::{Value, json};

fn any_port() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

async fn sim_with_control() -> (SimHandle, String) {
    let sim = start_on(SimConfig::default(), any_port(), Some(any_port()))
        .await
        .unwrap();
    let control = sim.control_url().expect("control port");
    (sim, control)
}

#[tokio::test]
async fn lists_recorded_requests_filtered_by_path() {
    let (sim, control) = sim_with_control().await;
    send_text(&sim, PHONE, "hi").await;
    client()
        .get(format!("{}/health", sim.base_url()))
        .send()
        .await
        .unwrap();

    let (status, all) = status_and_json(
        client()
            .get(format!("{control}/_sim/requests"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (_, sends) = status_and_json(
        client()
            .get(format!("{control}/_sim/requests?path=/send/message"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(all.as_array().unwrap().len(), 2);
    let sends = sends.as_array().unwrap();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["seq"], 1);
    assert_eq!(sends[0]["json"]["message"], "hi");
    assert_eq!(sends[0]["status"], 200);
}

#[tokio::test]
async fn delete_requests_clears_the_log() {
    let (sim, control) = sim_with_control().await;
    send_text(&sim, PHONE, "hi").await;

    let response = client()
        .delete(format!("{control}/_sim/requests"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn put_faults_injects_errors_and_get_reads_them_back() {
    let (sim, control) = sim_with_control().await;

    let response = client()
        .put(format!("{control}/_sim/faults"))
        .json(&json!({"send_error": {"status": 429, "count": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    assert_eq!(send_text(&sim, PHONE, "hi").await.status(), 429);
    let (_, faults) = status_and_json(
        client()
            .get(format!("{control}/_sim/faults"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        faults["send_error"],
        Value::Null,
        "the one covered send used it up"
    );
    assert_eq!(send_text(&sim, PHONE, "hi").await.status(), 200);
}

#[tokio::test]
async fn invalid_faults_are_400_and_change_nothing() {
    let (sim, control) = sim_with_control().await;

    let (status, body) = status_and_json(
        client()
            .put(format!("{control}/_sim/faults"))
            .json(&json!({"send_error": {"status": 418}}))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(status, 400);
    assert_eq!(body["error"], "bad_request");
    assert_eq!(sim.faults(), gowa_sim::Faults::default());
}

#[tokio::test]
async fn put_device_state_logs_the_device_out() {
    let (sim, control) = sim_with_control().await;

    let (status, device) = status_and_json(
        client()
            .put(format!("{control}/_sim/devices/demo"))
            .json(&json!({"state": "connected"}))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(device["state"], "connected");
    let (status, body) = status_and_json(send_text(&sim, PHONE, "hi").await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("AUTHENTICATION_ERROR"))
    );
}

#[tokio::test]
async fn put_state_of_unknown_device_is_404() {
    let (_sim, control) = sim_with_control().await;

    let response = client()
        .put(format!("{control}/_sim/devices/ghost"))
        .json(&json!({"state": "connected"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn put_down_closes_the_gowa_port_while_control_keeps_answering() {
    let (sim, control) = sim_with_control().await;

    let response = client()
        .put(format!("{control}/_sim/down"))
        .json(&json!({"down": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let error = client()
        .get(format!("{}/health", sim.base_url()))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    let (_, status) = status_and_json(
        client()
            .get(format!("{control}/_sim/status"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status["down"], true);

    client()
        .put(format!("{control}/_sim/down"))
        .json(&json!({"down": false}))
        .send()
        .await
        .unwrap();
    let response = client()
        .get(format!("{}/health", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn reset_clears_log_and_faults_and_restores_devices() {
    let (sim, control) = sim_with_control().await;
    send_text(&sim, PHONE, "hi").await;
    sim.set_faults(gowa_sim::Faults {
        health_unhealthy: true,
        ..Default::default()
    });
    sim.set_device_state("demo", gowa_sim::DeviceState::Disconnected);

    let response = client()
        .post(format!("{control}/_sim/reset"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    assert!(sim.requests().is_empty());
    assert_eq!(sim.faults(), gowa_sim::Faults::default());
    assert_eq!(sim.devices()[0].state, gowa_sim::DeviceState::LoggedIn);
}

#[tokio::test]
async fn post_webhooks_signs_delivers_and_reports() {
    let (_sim, control) = sim_with_control().await;
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = received.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let signature = headers["x-hub-signature-256"].to_str().unwrap().to_owned();
                sink.lock().unwrap().push((signature, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sample = String::from_utf8(fixture("gowa-message-image-group-with-caption.json")).unwrap();

    let (status, report) = status_and_json(
        client()
            .post(format!("{control}/_sim/webhooks"))
            .json(&json!({"url": hook, "secret": "secret", "body": {"raw": sample}}))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(report["delivered"], true);
    let expected = "sha256=ab11e42f41d2d8117f3944985eb84a42fbb97915700320182cedf1db3c85b45c";
    assert_eq!(report["signature"], expected);
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].0, expected);
    assert_eq!(received[0].1.as_ref(), sample.as_bytes());
}

#[tokio::test]
async fn refuses_to_listen_on_a_non_loopback_address() {
    let everywhere = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));

    let result = start_on(SimConfig::default(), everywhere, None).await;

    let error = result.expect_err("0.0.0.0 is refused");
    assert!(format!("{error:#}").contains("loopback"), "{error:#}");
}
